//! A whole lifecycle of the `factorwatch` binary at debug log level: verification and deliveries
//! with good and bad secrets, sinks that fail until their alerts are dead-lettered, the admin API
//! with good and bad tokens, `GET /secrets` and a secrets reload, `dlq list`, `sinks test`, `check-config`, and `Debug` of the loaded
//! `Config`. Every log line, every answer body and every printed output is searched for every
//! secret, and for the wrong values clients presented: none may appear.

use std::path::Path;
use std::process::{Command, Output, Stdio};
use std::time::Duration;

use base64::Engine;
use factorwatch::config::Config;
use serde_json::Value;
use tempfile::TempDir;

use crate::helpers::{batch_with_mfa, eventually, free_port, unique, wait_for_healthz};

/// Every secret of the lifecycle, each one random so that a match cannot be a coincidence.
struct Secrets {
    okta_inline: String,
    okta_from_env: String,
    okta_from_file: String,
    admin_token: String,
    webhook: String,
    slack_path: String,
    pagerduty: String,
    /// Values clients present that are not accepted: often an old or mistyped real secret.
    wrong_presented: Vec<String>,
}

impl Secrets {
    fn new() -> Self {
        let okta_inline = unique("okta-inline");
        Self {
            wrong_presented: vec![
                unique("wrong-okta"),
                okta_inline[..okta_inline.len() - 1].to_owned(),
                unique("wrong-admin"),
            ],
            okta_inline,
            okta_from_env: unique("okta-env"),
            okta_from_file: unique("okta-file"),
            admin_token: unique("admin"),
            webhook: base64::engine::general_purpose::STANDARD.encode(rand::random::<[u8; 24]>()),
            slack_path: unique("slack"),
            pagerduty: unique("pagerduty"),
        }
    }

    fn okta(&self) -> [&str; 3] {
        [&self.okta_inline, &self.okta_from_env, &self.okta_from_file]
    }

    fn all(&self) -> Vec<&str> {
        let mut all = self.okta().to_vec();
        all.extend([
            self.admin_token.as_str(),
            &self.webhook,
            &self.slack_path,
            &self.pagerduty,
        ]);
        all.extend(self.wrong_presented.iter().map(String::as_str));
        all
    }
}

/// The config file: secrets inline, from the environment (`${...}`) and from a secrets file, and
/// three sinks that cannot deliver (nothing listens on `closed`).
fn config_text(dir: &Path, secrets: &Secrets, port: u16, admin_port: u16, closed: u16) -> String {
    let secrets_file = dir.join("okta-secrets");
    std::fs::write(
        &secrets_file,
        format!("# rotated in\n{}\n", secrets.okta_from_file),
    )
    .unwrap();
    format!(
        r#"
[server]
listen = "127.0.0.1:{port}"
admin_listen = "127.0.0.1:{admin_port}"
admin_token = "${{FW_LEAK_ADMIN_TOKEN}}"

[okta]
secrets = ["{okta_inline}", "${{FW_LEAK_OKTA_SECRET}}"]
secrets_file = "{secrets_file}"

[storage]
data_dir = "{data_dir}"

[rules]
builtin_correlations = false

[delivery]
max_attempts = 2
initial_backoff = "50ms"
max_backoff = "100ms"

[log]
level = "debug"

[[sinks]]
type = "file"
name = "alerts-file"
path = "{data_dir}/alerts.jsonl"

[[sinks]]
type = "webhook"
name = "soc-webhook"
url = "http://127.0.0.1:{closed}/hook"
secret = "whsec_{webhook}"

[[sinks]]
type = "slack"
name = "slack"
webhook_url = "http://127.0.0.1:{closed}/services/{slack}"

[[sinks]]
type = "pagerduty"
name = "pager"
routing_key = "{pagerduty}"
url = "http://127.0.0.1:{closed}/v2/enqueue"
"#,
        okta_inline = secrets.okta_inline,
        secrets_file = secrets_file.display(),
        data_dir = dir.join("data").display(),
        webhook = secrets.webhook,
        slack = secrets.slack_path,
        pagerduty = secrets.pagerduty,
    )
}

/// A `factorwatch` command with only the environment the config file names.
fn factorwatch(config: &Path, secrets: &Secrets) -> Command {
    let mut command = Command::new(env!("CARGO_BIN_EXE_factorwatch"));
    command
        .env_clear()
        .arg("--config")
        .arg(config)
        .env("FW_LEAK_ADMIN_TOKEN", &secrets.admin_token)
        .env("FW_LEAK_OKTA_SECRET", &secrets.okta_from_env)
        .env("RUST_LOG", "debug")
        .env("NO_COLOR", "1");
    command
}

fn printed(output: Output) -> String {
    format!(
        "{}\n{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    )
}

/// Sends a request and keeps its status and body for the search.
async fn answered(request: reqwest::RequestBuilder, seen: &mut Vec<String>) -> (u16, String) {
    let response = request.send().await.unwrap();
    let status = response.status().as_u16();
    let body = response.text().await.unwrap();
    seen.push(body.clone());
    (status, body)
}

#[tokio::test]
async fn no_secret_appears_in_any_log_line_answer_or_printed_configuration() {
    let dir = TempDir::new().unwrap();
    let secrets = Secrets::new();
    let (port, admin_port, closed) = (free_port(), free_port(), free_port());
    let config_path = dir.path().join("factorwatch.toml");
    std::fs::write(
        &config_path,
        config_text(dir.path(), &secrets, port, admin_port, closed),
    )
    .unwrap();
    let log_path = dir.path().join("serve.log");
    let mut server = factorwatch(&config_path, &secrets)
        .arg("serve")
        .stdout(Stdio::from(
            std::fs::File::create(dir.path().join("serve.out")).unwrap(),
        ))
        .stderr(Stdio::from(std::fs::File::create(&log_path).unwrap()))
        .spawn()
        .unwrap();
    let base = format!("http://127.0.0.1:{port}");
    let hook = format!("{base}/okta/events");
    let client = reqwest::Client::new();
    wait_for_healthz(([127, 0, 0, 1], port).into()).await;

    let mut seen = Vec::new();
    let verify = |secret: &str| {
        client
            .get(&hook)
            .header("Authorization", secret)
            .header("X-Okta-Verification-Challenge", "challenge")
    };
    for secret in secrets.okta() {
        assert_eq!(answered(verify(secret), &mut seen).await.0, 200);
    }
    for wrong in &secrets.wrong_presented {
        assert_eq!(answered(verify(wrong), &mut seen).await.0, 401);
    }
    let no_challenge = client.get(&hook).header("Authorization", secrets.okta()[0]);
    assert_eq!(answered(no_challenge, &mut seen).await.0, 400);

    let mut alerts_expected = 0;
    for secret in secrets.okta() {
        let (envelope, _) = batch_with_mfa(4, 1);
        let post = client
            .post(&hook)
            .header("Authorization", secret)
            .json(&envelope);
        assert_eq!(answered(post, &mut seen).await.0, 204);
        alerts_expected += 1;
    }
    for wrong in &secrets.wrong_presented {
        let (envelope, _) = batch_with_mfa(4, 1);
        let post = client
            .post(&hook)
            .header("Authorization", wrong)
            .json(&envelope);
        assert_eq!(answered(post, &mut seen).await.0, 401);
    }

    // Every failing sink dead-letters every alert; the admin API shows them (with the token).
    let admin = format!("http://127.0.0.1:{admin_port}/dlq");
    let awaited = format!("{} dead letters", 3 * alerts_expected);
    eventually(Duration::from_secs(30), &awaited, async || {
        let list = client.get(&admin).bearer_auth(&secrets.admin_token);
        let (status, body) = answered(list, &mut seen).await;
        assert_eq!(status, 200, "{body}");
        let letters: Vec<Value> = serde_json::from_str(&body).unwrap();
        if letters.len() >= 3 * alerts_expected {
            Ok(())
        } else {
            Err(letters.len())
        }
    })
    .await;
    let wrong_token = client.get(&admin).bearer_auth(&secrets.wrong_presented[2]);
    assert_eq!(answered(wrong_token, &mut seen).await.0, 401);

    // The accepted secrets, by source and fingerprint, behind the same token; reloaded too.
    let listed = format!("http://127.0.0.1:{admin_port}/secrets");
    let reload = format!("http://127.0.0.1:{admin_port}/secrets/reload");
    assert_eq!(answered(client.get(&listed), &mut seen).await.0, 401);
    let (status, body) = answered(
        client.post(&reload).bearer_auth(&secrets.admin_token),
        &mut seen,
    )
    .await;
    assert_eq!(status, 200, "{body}");
    let (status, body) = answered(
        client.get(&listed).bearer_auth(&secrets.admin_token),
        &mut seen,
    )
    .await;
    assert_eq!(status, 200, "{body}");
    let listed: Value = serde_json::from_str(&body).unwrap();
    assert_eq!(listed["secrets"].as_array().unwrap().len(), 3, "{body}");

    for args in [
        &["dlq", "list"][..],
        &["dlq", "list", "--json"],
        &["sinks", "test"],
        &["check-config"],
    ] {
        let output = factorwatch(&config_path, &secrets)
            .args(args)
            .output()
            .unwrap();
        seen.push(printed(output));
    }

    // The configuration as the process loads it, printed every way it can be.
    let literal = dir.path().join("literal.toml");
    let text = std::fs::read_to_string(&config_path)
        .unwrap()
        .replace("${FW_LEAK_ADMIN_TOKEN}", &secrets.admin_token)
        .replace("${FW_LEAK_OKTA_SECRET}", &secrets.okta_from_env);
    std::fs::write(&literal, text).unwrap();
    let config = Config::load(Some(&literal)).unwrap();
    // The file's secret is read when the pipeline is prepared, not into the loaded config.
    assert_eq!(config.okta.secrets.len(), 2);
    seen.push(format!(
        "{config:?}\n{config:#?}\n{}",
        config.to_redacted_toml().unwrap()
    ));

    terminate(&server);
    let status = server.wait().unwrap();
    assert!(status.success(), "{status}");
    let log = std::fs::read_to_string(&log_path).unwrap();
    // The capture is real: the run logged what it did, at debug level.
    for expected in [
        "factorwatch ready",
        "request refused",
        "DEBUG",
        "dead-letter",
        "stopped cleanly",
    ] {
        assert!(log.contains(expected), "the log has no {expected:?}");
    }
    seen.push(log);

    for text in &seen {
        for secret in secrets.all() {
            assert!(
                !text.contains(secret),
                "a secret ({}...) appears in:\n{text}",
                &secret[..8]
            );
        }
    }
}

/// SIGTERM, so the server shuts down cleanly and flushes its last log lines.
fn terminate(server: &std::process::Child) {
    let pid = libc::pid_t::try_from(server.id()).unwrap();
    // SAFETY: kill(2) on our own child's pid has no memory-safety preconditions.
    assert_eq!(unsafe { libc::kill(pid, libc::SIGTERM) }, 0);
}
