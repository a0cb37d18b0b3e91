//! Dead letters through the real CLI and the admin API of a running service.

use std::process::Command;

use factorwatch::config::SinkKind;
use factorwatch::secret::Secret;
use factorwatch::sinks::webhook::WebhookConfig;
use serde_json::Value;
use tempfile::TempDir;

use crate::helpers::{TestApp, batch_with_mfa};
use crate::helpers::{run_cli, spawn_app_with_sinks};
use crate::receiver::Receiver;
use crate::sinks_http::WEBHOOK_SECRET;
use factorwatch::config::SinkConfig;

/// Runs `factorwatch dlq ARGS` against `app`'s admin API; returns (success, stdout, stderr).
async fn dlq(app: &TestApp, args: &[&str]) -> (bool, String, String) {
    let dir = TempDir::new().unwrap();
    let config = dir.path().join("factorwatch.toml");
    let admin = app.admin_addr.unwrap();
    std::fs::write(&config, format!("[server]\nadmin_listen = \"{admin}\"\n")).unwrap();
    let args: Vec<&str> = ["dlq"].iter().chain(args).copied().collect();
    run_cli(&args, &config, &[]).await
}

#[tokio::test]
async fn refused_alerts_can_be_listed_replayed_and_purged() {
    let (receiver, url) = Receiver::start().await;
    receiver.fail_first(2, 422);
    let hook = SinkConfig::new(
        "hook",
        SinkKind::Webhook(WebhookConfig {
            url,
            secret: Secret::new(WEBHOOK_SECRET),
        }),
    );
    let app = spawn_app_with_sinks(vec![hook]).await;
    let (batch, _) = batch_with_mfa(4, 2);
    assert_eq!(app.post(&batch).await.status(), 204);
    receiver.wait_for(2).await;
    app.wait_until_drained().await;

    let (ok, listing, err) = dlq(&app, &["list", "--json"]).await;
    assert!(ok, "{err}");
    let letters: Vec<Value> = serde_json::from_str(&listing).unwrap();
    assert_eq!(letters.len(), 2);
    assert!(letters.iter().all(|l| l["sink"] == "hook"));
    assert!(letters[0]["last_error"].as_str().unwrap().contains("422"));
    let (_, table, err) = dlq(&app, &["list"]).await;
    assert!(table.contains("2 dead letters"), "{table}");
    // Which instance answered comes first, on stderr (so that --json stays JSON).
    let instance = format!(
        "instance: data_dir={} orgs=top-level version=",
        app.data_dir.path().display()
    );
    assert!(err.starts_with(&instance), "{err}");

    // Purging needs a filter or --all, as the CLI spells it.
    let (ok, _, err) = dlq(&app, &["purge"]).await;
    assert!(
        !ok && err.contains("--all") && !err.contains("all=true"),
        "{err}"
    );

    // Replay one alert: the endpoint accepts now, so it is delivered.
    let first = letters[0]["alert_id"].as_str().unwrap();
    let (ok, out, err) = dlq(&app, &["replay", "--id", first]).await;
    assert!(ok, "{err}");
    assert!(out.contains("1 dead letters queued"), "{out}");
    let requests = receiver.wait_for(3).await;
    assert_eq!(requests[2].0["webhook-id"], first);

    // Purge the other; nothing is left.
    let (ok, out, _) = dlq(&app, &["purge", "--sink", "hook"]).await;
    assert!(ok && out.contains("1 dead letters deleted"), "{out}");
    let (_, table, _) = dlq(&app, &["list"]).await;
    assert!(table.contains("no dead letters"), "{table}");

    let (ok, _, err) = dlq(&app, &["replay", "--sink", "nope"]).await;
    assert!(!ok && err.contains("no sink named"), "{err}");
}

#[tokio::test]
async fn the_cli_says_what_to_do_when_the_service_is_not_running() {
    let dir = TempDir::new().unwrap();
    let config = dir.path().join("factorwatch.toml");
    std::fs::write(&config, "[server]\nadmin_listen = \"127.0.0.1:9\"\n").unwrap();
    let output = Command::new(env!("CARGO_BIN_EXE_factorwatch"))
        .args(["dlq", "list", "--config"])
        .arg(&config)
        .env_remove("FACTORWATCH_ADMIN_LISTEN")
        .output()
        .unwrap();
    assert!(!output.status.success());
    let err = String::from_utf8_lossy(&output.stderr);
    assert!(err.contains("is `factorwatch serve` running"), "{err}");
}
