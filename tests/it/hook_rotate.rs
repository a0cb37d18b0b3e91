//! `factorwatch okta rotate-secret` against the Okta stand-in with factorwatch serving: the new
//! secret accepted first, the hook sending it and verified, the old one dropped only after a
//! delivery with the new one; a rotation that saw no delivery keeps both and `--finish` ends it.

use std::path::{Path, PathBuf};
use std::time::Duration;

use serde_json::Value;
use tempfile::TempDir;

use crate::helpers::{ChildServer, batch_with_mfa, eventually, free_port, run_cli};
use crate::hook_register::okta_cli;
use crate::reconcile::{Org, serve};

/// The secret the org starts with, in its secrets file.
const OLD: &str = "the-old-okta-secret-0123456789abcdef";
const SCOPES: &[&str] = &["okta.eventHooks.read", "okta.eventHooks.manage"];

/// factorwatch serving the top-level org with its secrets in a file only, the hook registered.
struct Deployment {
    org: Org,
    data: TempDir,
    config: PathBuf,
    secrets_file: PathBuf,
    admin_listen: String,
    server: ChildServer,
}

impl Deployment {
    async fn start() -> Deployment {
        let org = Org::with_scopes(SCOPES).await;
        let data = TempDir::new().unwrap();
        let secrets_file = data.path().join("okta-secrets");
        std::fs::write(&secrets_file, format!("# Okta's hook secret\n{OLD}\n")).unwrap();
        let extra = format!(
            "\n[okta]\nsecrets_file = {:?}\n",
            secrets_file.display().to_string()
        );
        let config = org.config(data.path(), &extra);
        let admin_listen = format!("127.0.0.1:{}", free_port());
        let env = [
            ("FACTORWATCH_OKTA_SECRETS", ""),
            ("FACTORWATCH_ADMIN_LISTEN", admin_listen.as_str()),
        ];
        let server = serve(data.path(), &config, &env).await;
        let deployment = Deployment {
            org,
            data,
            config,
            secrets_file,
            admin_listen,
            server,
        };
        let (ok, out, err) = deployment
            .okta(&["register", "--url", &deployment.server.hook_url])
            .await;
        assert!(ok, "{out}\n{err}");
        deployment
    }

    /// `factorwatch okta ARGS` beside this deployment.
    async fn okta(&self, args: &[&str]) -> (bool, String, String) {
        okta_cli(
            &self.config,
            &self.server,
            &self.admin_listen,
            &self.data,
            args,
            &[],
        )
        .await
    }

    /// The secret Okta holds for the hook.
    fn okta_secret(&self) -> String {
        let hooks = self.org.okta.event_hooks();
        let id = hooks[0]["id"].as_str().unwrap();
        self.org.okta.event_hook_secret(id).unwrap()
    }

    /// Waits until Okta holds a secret other than `OLD`, and returns it.
    async fn new_okta_secret(&self) -> String {
        eventually(Duration::from_secs(20), "the hook updated", async || {
            let secret = self.okta_secret();
            if secret == OLD {
                Err("Okta still holds the old secret")
            } else {
                Ok(secret)
            }
        })
        .await
    }

    /// The status a delivery authenticated with `secret` gets.
    async fn deliver(&self, secret: &str) -> u16 {
        let (batch, _) = batch_with_mfa(2, 1);
        reqwest::Client::new()
            .post(&self.server.hook_url)
            .header("Authorization", secret)
            .json(&batch)
            .send()
            .await
            .unwrap()
            .status()
            .as_u16()
    }
}

fn secret_lines(file: &Path) -> Vec<String> {
    std::fs::read_to_string(file)
        .unwrap()
        .lines()
        .filter(|line| !line.trim().is_empty() && !line.starts_with('#'))
        .map(str::to_owned)
        .collect()
}

#[tokio::test]
async fn rotate_secret_switches_okta_to_a_new_secret_and_drops_the_old_after_a_delivery() {
    let deployment = std::sync::Arc::new(Deployment::start().await);
    assert_eq!(deployment.okta_secret(), OLD);
    let rotating = deployment.clone();
    let rotation =
        tokio::spawn(async move { rotating.okta(&["rotate-secret", "--wait", "30s"]).await });

    // Okta sends the new secret; both are accepted until a delivery with the new one is seen.
    let new = deployment.new_okta_secret().await;
    assert_eq!(
        secret_lines(&deployment.secrets_file),
        [OLD.to_owned(), new.clone()]
    );
    assert_eq!(deployment.deliver(&new).await, 204);

    let (ok, out, err) = rotation.await.unwrap();
    assert!(ok, "{out}\n{err}");
    for step in [
        "1/4 new secret",
        "2/4 factorwatch accepts it",
        "3/4 the hook sends it now (VERIFIED)",
        "4/4 a delivery came",
    ] {
        assert!(out.contains(step), "{step:?} missing:\n{out}");
    }
    assert!(
        !out.contains(&new) && !err.contains(&new),
        "the secret was printed"
    );
    assert_eq!(
        secret_lines(&deployment.secrets_file),
        std::slice::from_ref(&new)
    );
    assert!(
        std::fs::read_to_string(&deployment.secrets_file)
            .unwrap()
            .starts_with("# Okta's hook secret\n")
    );
    assert_eq!(
        deployment.deliver(OLD).await,
        401,
        "the old secret is still accepted"
    );
    assert_eq!(deployment.deliver(&new).await, 204);
    let hooks: Vec<Value> = deployment.org.okta.event_hooks();
    assert_eq!(hooks[0]["verificationStatus"], "VERIFIED");
    deployment.org.assert_spec_kept();
}

#[tokio::test]
async fn a_rotation_without_a_delivery_keeps_both_secrets_until_finish() {
    let deployment = Deployment::start().await;
    let (ok, out, err) = deployment.okta(&["rotate-secret", "--wait", "1s"]).await;
    assert!(!ok, "{out}\n{err}");
    assert!(err.contains("both secrets stay accepted"), "{err}");
    assert!(err.contains("rotate-secret --finish"), "{err}");
    let new = deployment.okta_secret();
    assert_ne!(new, OLD);
    assert_eq!(
        deployment.deliver(OLD).await,
        204,
        "a retry Okta sent before the change"
    );

    // The doctor shows the rotation under way.
    let (_, out, _) = deployment.okta(&["doctor"]).await;
    assert!(out.contains("a rotation is under way"), "{out}");
    assert!(out.contains("okta-secrets:2"), "{out}");

    // --finish waits for a delivery with the newest secret, then drops the old.
    assert_eq!(deployment.deliver(&new).await, 204);
    let (ok, out, err) = deployment
        .okta(&["rotate-secret", "--finish", "--wait", "5s"])
        .await;
    assert!(ok, "{out}\n{err}");
    assert!(out.contains("1 old secret(s) removed"), "{out}");
    assert_eq!(deployment.deliver(OLD).await, 401);
    assert_eq!(deployment.deliver(&new).await, 204);
}

#[tokio::test]
async fn rotate_secret_needs_a_secrets_file() {
    let org = Org::with_scopes(SCOPES).await;
    let data = TempDir::new().unwrap();
    let config = org.config(data.path(), "");
    let (ok, _, err) = run_cli(
        &["okta", "rotate-secret"],
        &config,
        &[("FACTORWATCH_OKTA_SECRETS", OLD)],
    )
    .await;
    assert!(!ok);
    assert!(
        err.contains("has no secrets_file: rotate-secret writes the new secret there"),
        "{err}"
    );
    assert!(org.okta.requests().is_empty(), "Okta was called");
}
