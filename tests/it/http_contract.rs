//! Each line of the HTTP contract on the hook path and the operational endpoints.

use std::time::Duration;

use factorwatch::secret::Secret;
use serde_json::Value;
use tempfile::TempDir;

use crate::helpers::{
    ChildServer, SECRET, batch_with_mfa, free_port, spawn_app, spawn_app_with, test_config,
};

#[tokio::test]
async fn verification_echoes_the_challenge_exactly() {
    let app = spawn_app().await;
    let response = app
        .verify(Some(SECRET), Some("Wf8c1Q-challenge_\"quoted\""))
        .await;
    assert_eq!(response.status(), 200);
    assert_eq!(
        response.headers()["content-type"].to_str().unwrap(),
        "application/json"
    );
    let body = response.text().await.unwrap();
    assert_eq!(body, r#"{"verification":"Wf8c1Q-challenge_\"quoted\""}"#);
}

#[tokio::test]
async fn verification_requires_the_secret() {
    let app = spawn_app().await;
    for secret in [None, Some("Basic wrong"), Some("")] {
        let response = app.verify(secret, Some("challenge-value")).await;
        assert_eq!(response.status(), 401, "secret {secret:?}");
        let body = response.text().await.unwrap();
        assert!(!body.contains("challenge-value"), "{body}");
        let error: Value = serde_json::from_str(&body).unwrap();
        assert_eq!(error["error"], "unauthorized");
        assert_eq!(error["message"], "missing or invalid credentials");
    }
}

#[tokio::test]
async fn verification_without_a_challenge_is_a_bad_request() {
    let app = spawn_app().await;
    let response = app.verify(Some(SECRET), None).await;
    assert_eq!(response.status(), 400);
    let error: Value = response.json().await.unwrap();
    assert!(
        error["message"]
            .as_str()
            .unwrap()
            .contains("X-Okta-Verification-Challenge")
    );
}

#[tokio::test]
async fn delivery_is_refused_without_the_right_secret_and_nothing_is_stored() {
    let app = spawn_app().await;
    let (envelope, _) = batch_with_mfa(5, 2);
    for secret in [None, Some("Basic wrong"), Some(&SECRET[..SECRET.len() - 1])] {
        let response = app
            .post_raw(
                envelope.to_string().into_bytes(),
                "application/json",
                secret,
            )
            .await;
        assert_eq!(response.status(), 401);
        let error: Value = response.json().await.unwrap();
        assert_eq!(error["message"], "missing or invalid credentials");
    }
    let ready: Value = app.ops_get("/readyz").await.json().await.unwrap();
    assert_eq!(ready["pending_batches"], 0);
    assert_eq!(ready["backlog_bytes"], 0);
}

#[tokio::test]
async fn the_hook_path_with_a_trailing_slash_is_the_hook() {
    let app = spawn_app().await;
    let url = format!("{}/", app.hook_url);
    let response = app
        .client
        .get(&url)
        .header("Authorization", SECRET)
        .header("X-Okta-Verification-Challenge", "slash")
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    assert_eq!(
        response.text().await.unwrap(),
        r#"{"verification":"slash"}"#
    );
    let (envelope, _) = batch_with_mfa(4, 1);
    let response = app
        .client
        .post(&url)
        .header("Authorization", SECRET)
        .json(&envelope)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 204);
    app.wait_for_alerts(1).await;
}

/// A caller with a hook's secret on a wrong path is told the path; anyone else is not.
#[tokio::test]
async fn a_wrong_path_names_the_hook_path_to_a_caller_with_its_secret_only() {
    let app = spawn_app().await;
    let wrong = format!("http://{}/okta/event", app.addr);
    let answer = |secret: &'static str| {
        let request = app.client.get(&wrong).header("Authorization", secret);
        async move {
            let response = request.send().await.unwrap();
            assert_eq!(response.status(), 404);
            response.json::<Value>().await.unwrap()
        }
    };
    let told = answer(SECRET).await;
    assert_eq!(told["hook_paths"], serde_json::json!(["/okta/events"]));
    assert!(
        told["message"].as_str().unwrap().contains("/okta/events"),
        "{told}"
    );
    let stranger = answer("Basic wrong").await;
    assert_eq!(
        stranger,
        serde_json::json!({"error": "not_found", "message": "no such endpoint"})
    );
}

/// The log line of a request without the auth header names the header that was expected.
#[tokio::test]
async fn a_missing_auth_header_is_logged_with_the_header_expected() {
    let data_dir = TempDir::new().unwrap();
    let log = data_dir.path().join("factorwatch.log");
    let server = ChildServer::start_logging_to(data_dir.path(), free_port(), &[], &log).await;
    let response = reqwest::Client::new()
        .get(&server.hook_url)
        .header("X-Okta-Verification-Challenge", "c")
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 401);
    drop(server);
    let log = std::fs::read_to_string(&log).unwrap();
    assert!(
        log.contains("auth header missing") && log.contains("\"authorization\" header"),
        "{log}"
    );
}

#[tokio::test]
async fn accepted_batches_get_204_with_an_empty_body() {
    let app = spawn_app().await;
    let (envelope, _) = batch_with_mfa(10, 1);
    let response = app.post(&envelope).await;
    assert_eq!(response.status(), 204);
    assert!(response.bytes().await.unwrap().is_empty());
}

#[tokio::test]
async fn every_rotated_secret_and_a_custom_header_work() {
    let data_dir = TempDir::new().unwrap();
    let mut config = test_config(data_dir.path());
    config.okta.auth_header = "X-Factorwatch-Key".into();
    config.okta.secrets = vec![Secret::new("old-one"), Secret::new("new-one")];
    let app = spawn_app_with(config, data_dir).await;
    for secret in ["old-one", "new-one"] {
        let response = app
            .client
            .get(&app.hook_url)
            .header("X-Factorwatch-Key", secret)
            .header("X-Okta-Verification-Challenge", "c")
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 200, "{secret}");
    }
    // The secret in the default header is not looked at.
    let response = app.verify(Some("new-one"), Some("c")).await;
    assert_eq!(response.status(), 401);
}

#[tokio::test]
async fn oversized_bodies_get_413() {
    let data_dir = TempDir::new().unwrap();
    let mut config = test_config(data_dir.path());
    config.server.max_body_bytes = 2048;
    let app = spawn_app_with(config, data_dir).await;
    let (envelope, _) = batch_with_mfa(10, 1);
    let body = envelope.to_string().into_bytes();
    assert!(body.len() > 2048);
    let response = app.post_raw(body, "application/json", Some(SECRET)).await;
    assert_eq!(response.status(), 413);
    let error: Value = response.json().await.unwrap();
    assert!(
        error["message"]
            .as_str()
            .unwrap()
            .contains("max_body_bytes")
    );
}

#[tokio::test]
async fn non_json_content_types_get_415() {
    let app = spawn_app().await;
    let (envelope, _) = batch_with_mfa(2, 1);
    for content_type in ["text/plain", "application/x-www-form-urlencoded", ""] {
        let response = app
            .post_raw(
                envelope.to_string().into_bytes(),
                content_type,
                Some(SECRET),
            )
            .await;
        assert_eq!(response.status(), 415, "{content_type:?}");
    }
    let response = app
        .post_raw(
            envelope.to_string().into_bytes(),
            "application/json; charset=utf-8",
            Some(SECRET),
        )
        .await;
    assert_eq!(response.status(), 204);
}

#[tokio::test]
async fn malformed_json_and_non_envelopes_get_400_with_an_actionable_message() {
    let app = spawn_app().await;
    let cases: [(&[u8], &str); 6] = [
        (b"{\"data\": {\"events\": [", "malformed JSON"),
        (b"\xff\xfe not utf8", "malformed JSON"),
        (b"[1, 2, 3]", "data.events"),
        (b"{\"eventType\": \"com.okta.event_hook\"}", "data.events"),
        (b"{\"data\": {\"events\": null}}", "data.events"),
        (b"{\"data\": {\"events\": {\"0\": {}}}}", "data.events"),
    ];
    for (body, expected) in cases {
        let response = app
            .post_raw(body.to_vec(), "application/json", Some(SECRET))
            .await;
        assert_eq!(response.status(), 400, "{}", String::from_utf8_lossy(body));
        let error: Value = response.json().await.unwrap();
        let message = error["message"].as_str().unwrap();
        assert!(message.contains(expected), "{message}");
    }
}

#[tokio::test]
async fn health_readiness_and_metrics() {
    let app = spawn_app().await;
    assert_eq!(app.get("/healthz").await.status(), 200);
    let ready = app.ops_get("/readyz").await;
    assert_eq!(ready.status(), 200);
    let (envelope, _) = batch_with_mfa(4, 1);
    assert_eq!(app.post(&envelope).await.status(), 204);
    app.wait_for_alerts(1).await;
    let metrics = app.ops_get("/metrics").await.text().await.unwrap();
    for name in [
        "factorwatch_http_requests_total",
        "factorwatch_events_received_total",
        "factorwatch_alerts_total",
        "factorwatch_delivery_attempts_total",
        "factorwatch_spool_backlog_bytes",
        "factorwatch_ack_latency_seconds_bucket",
    ] {
        assert!(metrics.contains(name), "{name} missing from /metrics");
    }
    assert!(metrics.contains("status=\"204\""));
    // The room left on the spool's disk, as `df` would show it.
    let gauge = |name: &str| -> f64 {
        let line = metrics.lines().find(|l| l.starts_with(&format!("{name} ")));
        let value = line
            .and_then(|l| l.split(' ').nth(1))
            .unwrap_or_else(|| panic!("{name}"));
        value.parse().unwrap()
    };
    let (free, size) = (
        gauge("factorwatch_storage_available_bytes"),
        gauge("factorwatch_storage_capacity_bytes"),
    );
    let df = fs4::statvfs(app.data_dir.path()).unwrap();
    assert!(0.0 < free && free <= size, "{free} of {size}");
    assert_eq!(size, df.total_space() as f64);
    assert_eq!(app.get("/no/such/path").await.status(), 404);
}

#[tokio::test]
async fn a_full_spool_answers_503_and_turns_readiness_false() {
    let data_dir = TempDir::new().unwrap();
    let mut config = test_config(data_dir.path());
    // A sink that cannot deliver keeps its alerts in the outbox, so the backlog stays. Its
    // directory is a file, so serve cannot create it.
    let blocked = data_dir.path().join("not-a-dir");
    std::fs::write(&blocked, b"").unwrap();
    let unwritable = blocked.join("alerts.jsonl");
    config.sinks = vec![factorwatch::config::SinkConfig::file("broken", unwritable)];
    config.storage.max_backlog_bytes = 4096;
    let app = spawn_app_with(config, data_dir).await;
    let mut refused = None;
    for _ in 0..50 {
        let (envelope, _) = batch_with_mfa(10, 3);
        let response = app.post(&envelope).await;
        if response.status() == 503 {
            refused = Some(response);
            break;
        }
        assert_eq!(response.status(), 204);
    }
    let refused = refused.expect("the backlog limit was never enforced");
    assert!(refused.headers().contains_key("retry-after"));
    let ready = app.ops_get("/readyz").await;
    assert_eq!(ready.status(), 503);
    let body: Value = ready.json().await.unwrap();
    assert!(
        body["reason"]
            .as_str()
            .unwrap()
            .contains("max_backlog_bytes"),
        "{body}"
    );
    // The metrics say why too: the backlog is at its limit, and 503s are counted.
    let metrics = app.ops_get("/metrics").await.text().await.unwrap();
    let gauge = |name: &str| -> f64 {
        metrics
            .lines()
            .find_map(|line| line.strip_prefix(name)?.trim().parse().ok())
            .unwrap_or_else(|| panic!("{name} missing from /metrics"))
    };
    assert_eq!(gauge("factorwatch_spool_backlog_limit_bytes"), 4096.0);
    assert!(gauge("factorwatch_spool_backlog_bytes") >= 4096.0);
    assert!(metrics.contains("status=\"503\""), "{metrics}");
}

#[tokio::test]
async fn okta_sample_envelope_is_accepted() {
    let app = spawn_app().await;
    let sample = std::fs::read(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/okta-api/examples/eventhook_delivery_user.session.start.json"
    ))
    .expect("Okta's sample delivery is committed with the tests");
    let response = app.post_raw(sample, "application/json", Some(SECRET)).await;
    assert_eq!(response.status(), 204);
    // user.session.start raises no alert, and the batch still leaves the spool.
    app.wait_until_drained().await;
    tokio::time::sleep(Duration::from_millis(100)).await;
    assert!(!app.alerts_path().exists());
}
