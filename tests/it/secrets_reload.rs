//! Rotating an org's Okta secret without a restart, as `factorwatch okta rotate-secret` will:
//! the new secret added to the secrets file and reloaded (admin API or SIGHUP), a delivery with it
//! seen on `GET /secrets`, the old one removed and reloaded; a reload that would leave no secret
//! is refused and the secrets in force stay.

use std::path::Path;
use std::time::Duration;

use serde_json::Value;
use tempfile::TempDir;

use crate::helpers::{ChildServer, batch_with_mfa, eventually, free_port, unique};
use crate::reload::hangup;

/// The org under test, served beside the top-level org on its own path.
const ORG: &str = "acme";

/// The running service and what the test talks to.
struct Rotation {
    server: ChildServer,
    client: reqwest::Client,
    hook: String,
    admin: String,
    secrets_file: std::path::PathBuf,
    log: std::path::PathBuf,
}

impl Rotation {
    /// `factorwatch serve` with the org `acme`, whose only secrets are in a file holding `first`.
    async fn start(dir: &Path, first: &str) -> Self {
        let secrets_file = dir.join("acme-secrets");
        std::fs::write(&secrets_file, format!("{first}\n")).unwrap();
        let config = dir.join("factorwatch.toml");
        std::fs::write(
            &config,
            format!(
                "[[okta.orgs]]\nname = \"{ORG}\"\nhook_path = \"/okta/{ORG}\"\nsecrets_file = {:?}\n",
                secrets_file
            ),
        )
        .unwrap();
        let admin_port = free_port();
        let log = dir.join("serve.log");
        let server = ChildServer::start_logging_to(
            &dir.join("data"),
            free_port(),
            &[
                ("FACTORWATCH_CONFIG", config.to_str().unwrap()),
                (
                    "FACTORWATCH_ADMIN_LISTEN",
                    &format!("127.0.0.1:{admin_port}"),
                ),
            ],
            &log,
        )
        .await;
        Self {
            hook: format!("http://{}/okta/{ORG}", server.addr),
            server,
            client: reqwest::Client::new(),
            admin: format!("http://127.0.0.1:{admin_port}"),
            secrets_file,
            log,
        }
    }

    /// Writes the secrets file: one secret per line.
    fn write_secrets(&self, secrets: &[&str]) {
        let mut text = String::from("# acme's Okta event hook secrets\n");
        secrets
            .iter()
            .for_each(|s| text.push_str(&format!("{s}\n")));
        std::fs::write(&self.secrets_file, text).unwrap();
    }

    /// The status of a delivery presenting `secret`.
    async fn deliver(&self, secret: &str) -> u16 {
        let (envelope, _) = batch_with_mfa(2, 0);
        let response = self.client.post(&self.hook).header("Authorization", secret);
        let response = response.json(&envelope).send().await.unwrap();
        response.status().as_u16()
    }

    /// The status of a verification challenge presenting `secret`.
    async fn verify(&self, secret: &str) -> u16 {
        let request = self.client.get(&self.hook).header("Authorization", secret);
        let request = request.header("X-Okta-Verification-Challenge", "rotate");
        request.send().await.unwrap().status().as_u16()
    }

    /// `POST /secrets/reload?org=acme`: status and body.
    async fn reload(&self) -> (u16, Value) {
        let url = format!("{}/secrets/reload?org={ORG}", self.admin);
        let response = self.client.post(url).send().await.unwrap();
        (response.status().as_u16(), response.json().await.unwrap())
    }

    /// `GET /secrets?org=acme`.
    async fn secrets(&self) -> Value {
        let url = format!("{}/secrets?org={ORG}", self.admin);
        let response = self.client.get(url).send().await.unwrap();
        assert_eq!(response.status(), 200);
        response.json().await.unwrap()
    }

    /// The `/metrics` text.
    async fn metrics(&self) -> String {
        let url = format!("http://{}/metrics", self.server.ops_addr);
        self.client
            .get(url)
            .send()
            .await
            .unwrap()
            .text()
            .await
            .unwrap()
    }

    /// How many log lines contain `text`.
    fn logged(&self, text: &str) -> usize {
        let log = std::fs::read_to_string(&self.log).unwrap_or_default();
        log.matches(text).count()
    }
}

/// The file lines of the accepted secrets, in order.
fn file_lines(view: &Value) -> Vec<u64> {
    view["secrets"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| {
            assert_eq!(s["source"]["type"], "file", "{s}");
            s["source"]["line"].as_u64().unwrap()
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_secret_rotates_through_the_file_without_a_restart() {
    let dir = TempDir::new().unwrap();
    let (old, new) = (unique("okta-old"), unique("okta-new"));
    let rotation = Rotation::start(dir.path(), &old).await;
    assert_eq!(rotation.deliver(&old).await, 204);
    assert_eq!(rotation.deliver(&new).await, 401);

    // The new secret added to the file and reloaded through the admin API: both accepted.
    rotation.write_secrets(&[&old, &new]);
    let (status, reloaded) = rotation.reload().await;
    assert_eq!(status, 200, "{reloaded}");
    assert_eq!(file_lines(&reloaded), [2, 3]);
    assert_eq!(rotation.verify(&new).await, 200);
    assert_eq!(rotation.deliver(&old).await, 204);
    assert_eq!(rotation.deliver(&new).await, 204);

    // GET /secrets: the last delivery used the new secret, and each secret shows its own uses.
    let view = rotation.secrets().await;
    let [old_view, new_view] = &view["secrets"].as_array().unwrap()[..] else {
        panic!("two secrets: {view}")
    };
    assert_eq!(
        view["last_delivery"]["fingerprint"],
        new_view["fingerprint"]
    );
    assert_eq!(view["last_delivery"]["accepted"], true);
    assert_ne!(old_view["fingerprint"], new_view["fingerprint"]);
    assert!(new_view["last_delivery"].is_string(), "{view}");
    assert!(new_view["last_verification"].is_string(), "{view}");
    assert!(old_view["last_delivery"].as_str() <= new_view["last_delivery"].as_str());
    assert!(old_view["last_verification"].is_null(), "{view}");
    let metrics = rotation.metrics().await;
    let gauge = format!(
        "factorwatch_okta_secret_last_used_timestamp_seconds{{fingerprint=\"{}\",org=\"{ORG}\"}}",
        new_view["fingerprint"].as_str().unwrap()
    );
    assert!(metrics.contains(&gauge), "{gauge} in\n{metrics}");

    // The old secret removed from the file, reloaded on SIGHUP: refused, the new one accepted.
    rotation.write_secrets(&[&new]);
    hangup(&rotation.server);
    eventually(
        Duration::from_secs(10),
        "the SIGHUP reload",
        async || match file_lines(&rotation.secrets().await)[..] {
            [2] => Ok(()),
            ref lines => Err(format!("{lines:?}")),
        },
    )
    .await;
    assert_eq!(rotation.deliver(&old).await, 401);
    assert_eq!(rotation.deliver(&new).await, 204);
    let view = rotation.secrets().await;
    assert_eq!(
        view["last_delivery"]["fingerprint"],
        view["secrets"][0]["fingerprint"]
    );

    // An emptied file: refused through the API and on SIGHUP, and the new secret stays accepted.
    rotation.write_secrets(&[]);
    let (status, refused) = rotation.reload().await;
    assert_eq!(status, 409, "{refused}");
    let message = refused["error"].as_str().unwrap();
    assert!(message.contains("holds none"), "{message}");
    assert!(message.contains("stay accepted"), "{message}");
    hangup(&rotation.server);
    eventually(
        Duration::from_secs(10),
        "the refused SIGHUP reload",
        async || match rotation.logged("okta secrets reload refused") {
            2 => Ok(()),
            seen => Err(seen),
        },
    )
    .await;
    assert_eq!(rotation.deliver(&new).await, 204);
    assert_eq!(file_lines(&rotation.secrets().await), [2]);

    // The top-level org, beside it, keeps its secret from the environment.
    let url = format!("{}/secrets", rotation.admin);
    let top_level: Value = rotation
        .client
        .get(url)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(top_level["org"], Value::Null);
    let source = &top_level["secrets"][0]["source"];
    assert_eq!(source["type"], "env", "{top_level}");
    assert_eq!(source["variable"], "FACTORWATCH_OKTA_SECRETS");

    // Neither secret was ever logged (the refusals are, at warn level and above), nor shown by
    // the admin API.
    let log = std::fs::read_to_string(&rotation.log).unwrap();
    let shown = format!("{log}\n{view}\n{reloaded}\n{refused}\n{metrics}");
    for secret in [&old, &new] {
        assert!(!shown.contains(secret.as_str()), "{shown}");
    }
}
