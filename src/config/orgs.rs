//! `[okta]` and `[[okta.orgs]]`: which orgs are served, on which paths, with which secrets.

use std::path::PathBuf;

use anyhow::{Context, bail};
use serde::{Deserialize, Serialize};

use super::{Config, RulesConfig, SinkConfig};
use crate::detect::live_context::OktaContextConfig;
use crate::http::check_hook_path;
use crate::okta_api::OktaApiConfig;
use crate::reconcile::ReconcileConfig;
use crate::secret::{Secret, SecretSource};
use crate::sinks::check_sinks;

/// `[okta]`: authentication of Okta's requests.
///
/// The keys here are the top-level org's, served on `server.hook_path`. More orgs, each on its
/// own path, are `[[okta.orgs]]` blocks.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct OktaConfig {
    /// The header Okta puts the secret in: Okta's "Authentication field" (usually `Authorization`).
    pub auth_header: String,
    /// Every value accepted as Okta's "Authentication secret". List the old and the new value while
    /// rotating. Env: `FACTORWATCH_OKTA_SECRETS` (comma-separated).
    pub secrets: Vec<Secret>,
    /// Where `secrets` came from: this file, or `FACTORWATCH_OKTA_SECRETS` when it is set (not a
    /// key of the file; `GET /secrets` shows it).
    #[serde(skip)]
    pub secrets_origin: SecretSource,
    /// A file holding accepted secrets, one per line (blank lines and `#` comments ignored), read at
    /// start and again on every secrets reload (SIGHUP, `POST /secrets/reload`); accepted beside
    /// `secrets`. Env: `FACTORWATCH_OKTA_SECRETS_FILE`.
    pub secrets_file: Option<PathBuf>,
    /// The name of the top-level org's event hook in Okta: the hook `factorwatch okta register`
    /// creates, and the one the built-in tamper rule guards (`%factorwatch_hook_names%`).
    /// Unset: `factorwatch`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub hook_name: Option<String>,
    /// `[okta.api]`: the top-level org's Management API (org URL and credentials), which
    /// `[okta.reconcile]` reads the System Log through. `FACTORWATCH_OKTA_API_TOKEN` sets its
    /// `api_token`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub api: Option<OktaApiConfig>,
    /// `[okta.reconcile]`: reading the top-level org's System Log beside its event hook.
    pub reconcile: ReconcileConfig,
    /// `[okta.context]`: live Okta context (factors left, roles, groups, status) on the
    /// top-level org's MFA alerts, read through `[okta.api]`.
    pub context: OktaContextConfig,
    /// More Okta orgs, each with its own hook path, secrets, rules, sinks and spool. With orgs
    /// set, the top-level org above is served only when it has secrets.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub orgs: Vec<OrgConfig>,
}

impl Default for OktaConfig {
    fn default() -> Self {
        Self {
            auth_header: default_auth_header(),
            secrets: Vec::new(),
            secrets_origin: SecretSource::Config,
            secrets_file: None,
            hook_name: None,
            api: None,
            reconcile: ReconcileConfig::default(),
            context: OktaContextConfig::default(),
            orgs: Vec::new(),
        }
    }
}

impl OktaConfig {
    /// True when the top-level org has secrets or a secrets file.
    pub fn has_secrets(&self) -> bool {
        !self.secrets.is_empty() || self.secrets_file.is_some()
    }
}

fn default_auth_header() -> String {
    "Authorization".into()
}

/// One `[[okta.orgs]]` block: an Okta org (a tenant, a customer) served on its own hook path,
/// with its own secrets, rules, sinks and spool. A secret of one org never opens another's path,
/// and its alerts reach only its own sinks.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct OrgConfig {
    /// The org's name: lowercase letters, digits and `-`, unique. Alerts carry it as `org`; its
    /// spool lives in `<data_dir>/orgs/<name>/`.
    pub name: String,
    /// The URL path this org's Event Hook calls (GET to verify, POST to deliver). Unique, and
    /// neither `server.hook_path` nor `/healthz`, `/readyz`, `/metrics`.
    pub hook_path: String,
    /// The header this org's hook puts its secret in (its "Authentication field").
    #[serde(default = "default_auth_header")]
    pub auth_header: String,
    /// Every value accepted as this org's "Authentication secret" (old and new while rotating);
    /// `"${NAME}"` reads the environment variable `NAME`. Accepted on this org's path only.
    #[serde(default)]
    pub secrets: Vec<Secret>,
    /// A file holding more of this org's secrets, one per line (blank lines and `#` comments
    /// ignored), read at start and again on every secrets reload; accepted beside `secrets`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub secrets_file: Option<PathBuf>,
    /// The name of this org's event hook in Okta, as `[okta] hook_name`. Unset:
    /// `factorwatch-<name>`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub hook_name: Option<String>,
    /// `[okta.orgs.api]`: this org's Management API (its own org URL and credentials).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub api: Option<OktaApiConfig>,
    /// `[okta.orgs.reconcile]`: reading this org's System Log beside its event hook.
    #[serde(default)]
    pub reconcile: ReconcileConfig,
    /// `[okta.orgs.context]`: live Okta context on this org's MFA alerts, read through its
    /// `[okta.orgs.api]`.
    #[serde(default)]
    pub context: OktaContextConfig,
    /// This org's detection, a whole `[okta.orgs.rules]` block (unset keys take the `[rules]`
    /// defaults, not the top-level block's values). Unset: the top-level `[rules]`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rules: Option<RulesConfig>,
    /// Where this org's alerts go (`[[okta.orgs.sinks]]`, the keys of `[[sinks]]`). Empty: one
    /// file sink writing `<data_dir>/orgs/<name>/alerts.jsonl`. The top-level `[[sinks]]` never
    /// receive this org's alerts.
    #[serde(default)]
    pub sinks: Vec<SinkConfig>,
    /// What to do in this org's Okta about its alerts (`[[okta.orgs.responses]]`, the keys of
    /// `[[responses]]`), through `[okta.orgs.api]`. The top-level `[[responses]]` never act on
    /// this org.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub responses: Vec<crate::respond::ResponseConfig>,
}

impl Config {
    /// The `[[okta.orgs]]` blocks: names, paths, auth and sinks. Each error names the org.
    pub(super) fn validate_orgs(&self) -> anyhow::Result<()> {
        let mut names = std::collections::HashSet::new();
        let mut paths = std::collections::HashMap::new();
        for org in &self.okta.orgs {
            let name = &org.name;
            let valid_name = !name.is_empty()
                && name
                    .bytes()
                    .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-');
            if !valid_name {
                bail!("okta.orgs: name {name:?} must be lowercase letters, digits and '-'");
            }
            if !names.insert(name.as_str()) {
                bail!("okta.orgs: two orgs are named {name:?}; names must be unique");
            }
            let key = format!("okta.orgs {name:?}");
            check_hook_path(&format!("{key}: hook_path"), &org.hook_path)?;
            if org.hook_path == self.server.hook_path {
                bail!(
                    "{key}: hook_path {:?} is server.hook_path, the top-level org's path; give \
                     each org its own",
                    org.hook_path
                );
            }
            if let Some(other) = paths.insert(org.hook_path.as_str(), name) {
                bail!(
                    "{key}: hook_path {:?} is also okta.orgs {other:?}'s; paths must be unique",
                    org.hook_path
                );
            }
            check_auth(&key, &org.auth_header, &org.secrets)?;
            check_hook_name(&key, org.hook_name.as_deref())?;
            check_api(&key, org.api.as_ref(), &org.reconcile, &org.context)?;
            check_sinks(&format!("{key}: sinks"), &org.sinks)?;
            crate::respond::check_responses(
                &format!("{key}: responses"),
                &org.responses,
                org.api.is_some(),
                self.ssf.is_some(),
            )?;
            if let Some(rules) = &org.rules {
                rules.validate(&format!("{key}: rules"))?;
            }
        }
        Ok(())
    }

    /// Fails with instructions when no secret is configured: `serve` must not run open. With
    /// `[[okta.orgs]]`, every org needs a secret, and the top-level org may have none (it is then
    /// not served). A secrets file counts here; that it holds a secret is checked when it is read.
    pub fn require_secret(&self) -> anyhow::Result<()> {
        if let Some(org) = self
            .okta
            .orgs
            .iter()
            .find(|org| org.secrets.is_empty() && org.secrets_file.is_none())
        {
            bail!(
                "okta.orgs {:?}: no secret is configured, so its hook would refuse every request. \
                 Set the \"Authentication secret\" of this org's Event Hook as its secrets \
                 (\"${{ENV_VAR}}\" reads a variable) or secrets_file",
                org.name
            );
        }
        if !self.okta.has_secrets() && self.okta.orgs.is_empty() {
            bail!(
                "no Okta secret is configured, so every request would be refused.\n\
                 Set the value you entered as the hook's \"Authentication secret\" in Okta, one of:\n  \
                 [okta] secrets = [\"...\"] in the config file\n  \
                 FACTORWATCH_OKTA_SECRETS=... (comma-separated while rotating)\n  \
                 FACTORWATCH_OKTA_SECRETS_FILE=/path/to/file (one secret per line)"
            );
        }
        Ok(())
    }
}

/// Checks an org's auth header and secrets; `key` (`okta`, `okta.orgs "acme"`) prefixes errors.
pub(super) fn check_auth(key: &str, auth_header: &str, secrets: &[Secret]) -> anyhow::Result<()> {
    if auth_header.parse::<axum::http::HeaderName>().is_err() {
        bail!("{key}.auth_header = {auth_header:?}: not a valid HTTP header name");
    }
    if secrets.iter().any(|s| s.expose().is_empty()) {
        bail!("{key}.secrets: an empty secret would let anyone in; remove it");
    }
    Ok(())
}

/// Checks an org's `hook_name`: Okta refuses a hook without a name, so none could be registered
/// under it. `key` (`okta`, `okta.orgs "acme"`) prefixes errors.
pub(super) fn check_hook_name(key: &str, hook_name: Option<&str>) -> anyhow::Result<()> {
    if hook_name.is_some_and(|name| name.trim().is_empty()) {
        bail!("{key}.hook_name is empty: Okta requires a name; remove the key for the default");
    }
    Ok(())
}

/// Checks an org's `api`, `reconcile` and `context` blocks; `key` (`okta`, `okta.orgs "acme"`)
/// prefixes errors.
pub(super) fn check_api(
    key: &str,
    api: Option<&OktaApiConfig>,
    reconcile: &ReconcileConfig,
    context: &OktaContextConfig,
) -> anyhow::Result<()> {
    if let Some(api) = api {
        api.validate().with_context(|| format!("{key}.api"))?;
    }
    reconcile
        .validate(api.is_some())
        .with_context(|| format!("{key}.reconcile"))?;
    context
        .validate(api.is_some())
        .with_context(|| format!("{key}.context"))
}
