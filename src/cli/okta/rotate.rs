//! `factorwatch okta rotate-secret`: the zero-downtime rotation of docs/okta-setup.md §6 in one
//! command. A new secret is appended to the org's secrets file and reloaded (accepted first),
//! checked at the hook's URL, then the hook is updated to send it and verified; once a delivery
//! authenticated with it has been seen (`GET /secrets`), the old secrets leave the file and are
//! reloaded away. Interrupted after the update, `--finish` completes it.

use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::Context;
use tokio::time::Instant;

use super::Target;
use crate::admin::Selection;
use crate::admin::secrets::{SecretView, SecretsView};
use crate::cli::admin_client::AdminClient;
use crate::cli::status_line::StatusLine;
use crate::hook_lifecycle::{challenge, find_hook};
use crate::okta_api::{EventHook, HookDefinition, scopes};
use crate::secret::file_edit;
use crate::secret::{Secret, SecretSource};

/// How often `GET /secrets` is asked while waiting for a delivery.
const POLL_EVERY: Duration = Duration::from_secs(1);
/// Random bytes in a new secret (hex-encoded: 64 characters, no character a header refuses).
const SECRET_BYTES: usize = 32;

/// What `rotate-secret` was asked.
pub struct Options {
    /// The hook's name, when not the org's `hook_name`.
    pub name: Option<String>,
    /// How long to wait for a delivery with the new secret before stopping (the old one then
    /// stays accepted).
    pub wait: Duration,
    /// Only the last step: drop the old secrets once a delivery with the newest was seen.
    pub finish: bool,
}

/// Rotates the secret of `target`'s org, printing each step.
pub async fn run(target: &Target, options: Options) -> anyhow::Result<()> {
    let rotation = Rotation::new(target)?;
    if !options.finish {
        let hook_name = options
            .name
            .as_deref()
            .unwrap_or(&target.pipeline.hook_name);
        rotation.start(target, hook_name).await?;
    }
    rotation.finish(options.wait).await
}

/// The org's secrets file and the running service's admin API.
struct Rotation {
    file: PathBuf,
    admin: AdminClient,
    selection: Selection,
}

impl Rotation {
    fn new(target: &Target) -> anyhow::Result<Self> {
        let pipeline = &target.pipeline;
        let file = pipeline.secrets.file.clone().with_context(|| {
            format!(
                "{} has no secrets_file: rotate-secret writes the new secret there and reloads \
                 it without a restart; move the secrets to a file (docs/configuration.md)",
                pipeline.label()
            )
        })?;
        Ok(Self {
            file,
            admin: AdminClient::new(&target.config)?,
            selection: Selection {
                org: pipeline.org.clone(),
                ..Selection::default()
            },
        })
    }

    /// Steps 1 to 3: the new secret accepted here, checked at the hook's URL, sent by Okta.
    async fn start(&self, target: &Target, hook_name: &str) -> anyhow::Result<()> {
        let client = target.client(&[scopes::EVENT_HOOKS_READ, scopes::EVENT_HOOKS_MANAGE])?;
        let hooks = client.list_event_hooks().await?;
        let hook = find_hook(&hooks, hook_name).with_context(|| {
            format!("no event hook named {hook_name:?}: run `factorwatch okta register` first")
        })?;
        println!(
            "org {}: hook {:?} {} at {}",
            target.org_name(),
            hook.name,
            hook.id,
            hook.channel.config.uri
        );
        let secret = file_edit::generate(SECRET_BYTES);
        let line = file_edit::append(&self.file, &secret).with_context(|| self.cannot_write())?;
        let view = self.reload().await?;
        let added = secret_at(&view, &self.file, line).with_context(|| {
            format!("the service did not take {}:{line} in", self.file.display())
        })?;
        println!(
            "1/4 new secret {} added to {}:{line}, accepted by this replica",
            added.fingerprint,
            self.file.display()
        );
        let header = &target.pipeline.auth_header;
        if let Err(why) = challenge::play(&hook.channel.config.uri, header, &secret).await {
            file_edit::remove_line(&self.file, line).with_context(|| self.cannot_write())?;
            self.reload().await?;
            anyhow::bail!(
                "the new secret is not accepted at the hook's URL: {why}; it was removed again, nothing changed in Okta"
            );
        }
        println!("2/4 factorwatch accepts it at {}", hook.channel.config.uri);
        let definition = keep_but_secret(hook, header, secret);
        let updated = client.replace_event_hook(&hook.id, &definition).await?;
        let verified = client.verify_event_hook(&updated.id).await?;
        println!(
            "3/4 the hook sends it now ({}); Okta verified it against factorwatch",
            verified.verification_status
        );
        Ok(())
    }

    /// Step 4: waits for a delivery with the newest secret of the file, then drops the others.
    async fn finish(&self, wait: Duration) -> anyhow::Result<()> {
        let view = self.secrets().await?;
        let (newest, line) = newest_in_file(&view, &self.file)?;
        let fingerprint = newest.fingerprint.clone();
        self.wait_for_delivery(&fingerprint, wait).await?;
        let removed =
            file_edit::keep_only(&self.file, line).with_context(|| self.cannot_write())?;
        self.reload().await?;
        println!(
            "4/4 a delivery came with {fingerprint}: {removed} old secret(s) removed from {} and \
             no longer accepted by this replica",
            self.file.display()
        );
        if view
            .secrets
            .iter()
            .any(|s| !is_file_line(&s.source, &self.file))
        {
            println!(
                "note: secrets from the config file or the environment stay accepted until they \
                 are removed there and the service restarts"
            );
        }
        Ok(())
    }

    async fn wait_for_delivery(&self, fingerprint: &str, wait: Duration) -> anyhow::Result<()> {
        let deadline = Instant::now() + wait;
        let mut status = StatusLine::stderr();
        loop {
            let view = self.secrets().await?;
            let seen = view
                .last_delivery
                .as_ref()
                .is_some_and(|last| last.fingerprint == fingerprint);
            if seen {
                status.finish();
                return Ok(());
            }
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                status.finish();
                anyhow::bail!(
                    "no delivery with the new secret {fingerprint} within {}s (a quiet org has no \
                     events to deliver): both secrets stay accepted; run `factorwatch okta \
                     rotate-secret --finish` once one came (GET /secrets shows it)",
                    wait.as_secs()
                );
            }
            status.show(&format!(
                "waiting for a delivery with {fingerprint} ({}s left)",
                left.as_secs()
            ));
            tokio::time::sleep(POLL_EVERY.min(left)).await;
        }
    }

    fn cannot_write(&self) -> String {
        format!("cannot change the secrets file {}", self.file.display())
    }

    async fn secrets(&self) -> anyhow::Result<SecretsView> {
        let method = reqwest::Method::GET;
        self.admin
            .call(method, "/secrets", Some(&self.selection))
            .await
    }

    async fn reload(&self) -> anyhow::Result<SecretsView> {
        let method = reqwest::Method::POST;
        let path = "/secrets/reload";
        self.admin.call(method, path, Some(&self.selection)).await
    }
}

/// The hook as it is, sending `secret` in `header`.
fn keep_but_secret(hook: &EventHook, header: &str, secret: Secret) -> HookDefinition {
    HookDefinition {
        name: hook.name.clone(),
        uri: hook.channel.config.uri.clone(),
        event_types: hook.events.items.clone(),
        auth_header: header.to_owned(),
        secret,
    }
}

fn is_file_line(source: &SecretSource, file: &Path) -> bool {
    matches!(source, SecretSource::File { path, .. } if path == file)
}

/// The accepted secret read from `file` at `line`.
fn secret_at<'a>(view: &'a SecretsView, file: &Path, line: usize) -> Option<&'a SecretView> {
    view.secrets.iter().find(|s| {
        matches!(&s.source, SecretSource::File { path, line: at } if path == file && *at == line)
    })
}

/// The secret of `file`'s last secret line, and that line.
fn newest_in_file<'a>(
    view: &'a SecretsView,
    file: &Path,
) -> anyhow::Result<(&'a SecretView, usize)> {
    view.secrets
        .iter()
        .filter_map(|s| match &s.source {
            SecretSource::File { path, line } if path == file => Some((s, *line)),
            _ => None,
        })
        .max_by_key(|(_, line)| *line)
        .with_context(|| format!("{} holds no secret the service accepts", file.display()))
}
