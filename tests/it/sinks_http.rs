//! The HTTPS sinks against a real local HTTP endpoint: signed webhook (verified with the
//! Standard Webhooks reference library), Slack message, PagerDuty event, retries and refusals.

use factorwatch::config::{SinkConfig, SinkKind};
use factorwatch::okta::samples::{self, Initiator};
use factorwatch::secret::Secret;
use factorwatch::sinks::{pagerduty::PagerDutyConfig, slack::SlackConfig, webhook::WebhookConfig};
use serde_json::Value;
use std::time::Duration;
use tempfile::TempDir;

use crate::helpers::{alert_by_id, batch_with_mfa, spawn_app_with_sinks};
use crate::receiver::Receiver;

pub const WEBHOOK_SECRET: &str = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";

#[tokio::test]
async fn webhook_deliveries_verify_with_the_standard_webhooks_library() {
    let (receiver, url) = Receiver::start().await;
    let webhook = SinkConfig::new(
        "hook",
        SinkKind::Webhook(WebhookConfig {
            url: format!("{url}/alerts"),
            secret: Secret::new(WEBHOOK_SECRET),
        }),
    );
    let app = spawn_app_with_sinks(vec![webhook]).await;
    let (batch, _) = batch_with_mfa(6, 2);
    assert_eq!(app.post(&batch).await.status(), 204);
    let alerts = app.wait_for_alerts(2).await;
    let requests = receiver.wait_for(2).await;
    let verifier = standardwebhooks::Webhook::new(WEBHOOK_SECRET).unwrap();
    for (headers, body) in &requests {
        verifier.verify(body, headers).expect("signature verifies");
        let delivered: Value = serde_json::from_slice(body).unwrap();
        let id = headers["webhook-id"].to_str().unwrap();
        assert_eq!(delivered["id"], id);
        assert_eq!(
            &delivered,
            alert_by_id(&alerts, id),
            "webhook body is the alert"
        );
    }
    // A tampered body fails verification: the check above is not vacuous.
    let (headers, body) = &requests[0];
    let mut tampered = body.to_vec();
    tampered[10] ^= 1;
    assert!(verifier.verify(&tampered, headers).is_err());
}

#[tokio::test]
async fn slack_gets_a_readable_message() {
    let (receiver, url) = Receiver::start().await;
    let slack = SinkConfig::new(
        "chat",
        SinkKind::Slack(SlackConfig {
            webhook_url: Secret::new(format!("{url}/services/T000/B000/XXXX")),
        }),
    );
    let app = spawn_app_with_sinks(vec![slack]).await;
    let (batch, _) = batch_with_mfa(3, 1);
    assert_eq!(app.post(&batch).await.status(), 204);
    let alert = app.wait_for_alerts(1).await.remove(0);
    let (_, body) = receiver.wait_for(1).await.remove(0);
    let message: Value = serde_json::from_slice(&body).unwrap();
    let text = message["text"].as_str().unwrap();
    let level = alert["level"].as_str().unwrap().to_uppercase();
    for expected in [
        level.as_str(),
        alert["rule"]["title"].as_str().unwrap(),
        alert["actor"]["alternateId"].as_str().unwrap(),
        alert["targets"][0]["alternateId"].as_str().unwrap(),
        alert["client"]["ipAddress"].as_str().unwrap(),
    ] {
        assert!(
            text.contains(expected),
            "{expected:?} missing from {text:?}"
        );
    }
    let details = message["blocks"][1]["text"]["text"].as_str().unwrap();
    assert!(details.contains(alert["id"].as_str().unwrap()));
}

#[tokio::test]
async fn pagerduty_events_dedup_on_the_alert_id_and_filters_apply() {
    let (receiver, url) = Receiver::start().await;
    let pagerduty = |name: &str| {
        SinkConfig::new(
            name,
            SinkKind::PagerDuty(PagerDutyConfig {
                routing_key: Secret::new("R0UT1NGKEY"),
                url: format!("{url}/v2/enqueue"),
            }),
        )
    };
    let mut high_only = pagerduty("pd-high");
    high_only.min_level = Some(factorwatch::alert::Level::High);
    let app = spawn_app_with_sinks(vec![pagerduty("pd"), high_only]).await;
    // A user resetting their own factor stays medium; an admin resetting someone's ranks high.
    let users = samples::users();
    let own = samples::mfa_factor_deactivate(&users[0], "SMS", Initiator::SelfService, "tx-a");
    let by_admin = samples::mfa_factor_deactivate(&users[1], "SMS", Initiator::Admin, "tx-b");
    let batch = crate::helpers::envelope(vec![own, by_admin]);
    assert_eq!(app.post(&batch).await.status(), 204);
    let alerts = app.wait_for_alerts(2).await;
    let requests = receiver.wait_for(3).await;
    app.wait_until_drained().await;
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert_eq!(
        receiver.requests.lock().unwrap().len(),
        3,
        "both alerts to pd, only the high one to pd-high"
    );
    for (_, body) in requests {
        let event: Value = serde_json::from_slice(&body).unwrap();
        let alert = alert_by_id(&alerts, event["dedup_key"].as_str().unwrap());
        assert_eq!(event["routing_key"], "R0UT1NGKEY");
        assert_eq!(event["event_action"], "trigger");
        let severity = match alert["level"].as_str().unwrap() {
            "medium" => "warning",
            "high" => "error",
            other => panic!("unexpected level {other}"),
        };
        assert_eq!(event["payload"]["severity"], severity);
        assert_eq!(event["payload"]["source"], "acme.okta.com");
        assert_eq!(&event["payload"]["custom_details"], alert);
    }
}

#[tokio::test]
async fn failing_endpoints_are_retried_and_refusals_dead_lettered() {
    let (flaky, flaky_url) = Receiver::start().await;
    flaky.fail_first(3, 503);
    let (refusing, refusing_url) = Receiver::start().await;
    refusing.fail_first(usize::MAX, 400);
    let webhook = |name: &str, url: &str| {
        SinkConfig::new(
            name,
            SinkKind::Webhook(WebhookConfig {
                url: url.to_owned(),
                secret: Secret::new(WEBHOOK_SECRET),
            }),
        )
    };
    let app = spawn_app_with_sinks(vec![
        webhook("flaky", &flaky_url),
        webhook("refusing", &refusing_url),
    ])
    .await;
    let (batch, _) = batch_with_mfa(2, 1);
    assert_eq!(app.post(&batch).await.status(), 204);
    // 3 failures, then the fourth attempt is accepted.
    let attempts = flaky.wait_for(4).await;
    let ids: Vec<&str> = attempts
        .iter()
        .map(|(h, _)| h["webhook-id"].to_str().unwrap())
        .collect();
    assert!(
        ids.windows(2).all(|pair| pair[0] == pair[1]),
        "retries carry the same id"
    );
    app.wait_until_drained().await;
    let metrics = app.ops_get("/metrics").await.text().await.unwrap();
    assert!(
        metrics.contains("factorwatch_delivery_failures_total{sink=\"flaky\"}"),
        "{metrics}"
    );
    assert!(
        metrics.contains("factorwatch_dead_letters_total{sink=\"refusing\"}"),
        "{metrics}"
    );
    // A 400 is final: one attempt, then the dead-letter table.
    assert_eq!(refusing.requests.lock().unwrap().len(), 1);
    let ready: Value = app.ops_get("/readyz").await.json().await.unwrap();
    assert_eq!(ready["backlog_bytes"], 0);
    let flaky = &ready["sinks"]["flaky"];
    assert_eq!(flaky["failing"], false, "recovered: {ready}");
    assert!(
        flaky["last_error"].as_str().unwrap().contains("503"),
        "{ready}"
    );
    assert_eq!(ready["sinks"]["refusing"]["dead_letters"], 1, "{ready}");
    assert!(
        metrics.contains("factorwatch_sink_up{sink=\"flaky\"} 1"),
        "{metrics}"
    );
}

#[tokio::test]
async fn sinks_test_sends_a_marked_alert_and_reports_each_sink() {
    let (receiver, url) = Receiver::start().await;
    let dir = TempDir::new().unwrap();
    let alerts_file = dir.path().join("alerts.jsonl");
    let config = dir.path().join("factorwatch.toml");
    std::fs::write(
        &config,
        format!(
            "[[sinks]]\nname = \"file\"\ntype = \"file\"\npath = {alerts_file:?}\n\n\
             [[sinks]]\nname = \"hook\"\ntype = \"webhook\"\nurl = \"{url}\"\nsecret = \"{WEBHOOK_SECRET}\"\n\n\
             [[sinks]]\nname = \"down\"\ntype = \"webhook\"\nurl = \"http://127.0.0.1:9/\"\nsecret = \"{WEBHOOK_SECRET}\"\n"
        ),
    )
    .unwrap();
    let output = tokio::task::spawn_blocking(move || {
        std::process::Command::new(env!("CARGO_BIN_EXE_factorwatch"))
            .args(["sinks", "test", "--config"])
            .arg(&config)
            .output()
            .unwrap()
    })
    .await
    .unwrap();
    let printed = String::from_utf8_lossy(&output.stdout);
    assert!(!output.status.success(), "one sink is down: {printed}");
    assert!(printed.contains("file: delivered test alert"), "{printed}");
    assert!(printed.contains("hook: delivered test alert"), "{printed}");
    assert!(printed.contains("down: FAILED"), "{printed}");
    let (headers, body) = receiver.wait_for(1).await.remove(0);
    standardwebhooks::Webhook::new(WEBHOOK_SECRET)
        .unwrap()
        .verify(&body, &headers)
        .unwrap();
    let alert: Value = serde_json::from_slice(&body).unwrap();
    assert_eq!(alert["rule"]["id"], "factorwatch-sinks-test");
    assert!(
        alert["rule"]["title"]
            .as_str()
            .unwrap()
            .contains("not a real alert")
    );
    let line = std::fs::read_to_string(&alerts_file).unwrap();
    assert!(line.contains(alert["id"].as_str().unwrap()));
}

#[tokio::test]
async fn a_redirect_is_not_taken_for_a_delivery() {
    let (redirecting, url) = Receiver::start().await;
    redirecting.fail_first(usize::MAX, 302);
    let hook = SinkConfig::new(
        "moved",
        SinkKind::Webhook(WebhookConfig {
            url,
            secret: Secret::new(WEBHOOK_SECRET),
        }),
    );
    let app = spawn_app_with_sinks(vec![hook]).await;
    let (batch, _) = batch_with_mfa(2, 1);
    assert_eq!(app.post(&batch).await.status(), 204);
    app.wait_until_drained().await;
    let ready: Value = app.ops_get("/readyz").await.json().await.unwrap();
    assert_eq!(ready["sinks"]["moved"]["dead_letters"], 1, "{ready}");
    let error = ready["sinks"]["moved"]["last_error"].as_str().unwrap();
    assert!(error.contains("302"), "{error}");
    assert_eq!(
        redirecting.requests.lock().unwrap().len(),
        1,
        "no redirect followed"
    );
}
