//! Okta delivers at least once: a redelivered event must not alert twice, even across a restart.

use std::time::Duration;

use serde_json::json;

use crate::helpers::{
    bare_event, batch_with_mfa, envelope, read_alert_lines, spawn_app, spawn_app_with, test_config,
};

#[tokio::test]
async fn a_redelivered_batch_raises_no_second_alert() {
    let app = spawn_app().await;
    let (batch, uuids) = batch_with_mfa(10, 3);
    assert_eq!(app.post(&batch).await.status(), 204);
    app.wait_for_alerts(3).await;
    // Okta's retry carries the same eventId and events.
    assert_eq!(app.post(&batch).await.status(), 204);
    // A different delivery that repeats one of the events (Okta re-batching) is caught too.
    let repeat = envelope(vec![batch["data"]["events"][0].clone()]);
    assert_eq!(app.post(&repeat).await.status(), 204);
    app.wait_until_drained().await;
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert_eq!(read_alert_lines(&app.alerts_path()).len(), uuids.len());
    // The window holds each of the ten events once; the repeats claimed nothing.
    let metrics = app.ops_get("/metrics").await.text().await.unwrap();
    let keys = metrics
        .lines()
        .find(|line| line.starts_with("factorwatch_dedup_window_keys "));
    assert_eq!(keys, Some("factorwatch_dedup_window_keys 10"), "{metrics}");
}

#[tokio::test]
async fn a_uuid_repeated_inside_one_batch_alerts_once() {
    let app = spawn_app().await;
    let event = bare_event("user.mfa.factor.deactivate", "same-uuid");
    let batch = envelope(vec![event.clone(), event.clone(), event]);
    assert_eq!(app.post(&batch).await.status(), 204);
    app.wait_for_alerts(1).await;
    app.wait_until_drained().await;
    assert_eq!(read_alert_lines(&app.alerts_path()).len(), 1);
}

#[tokio::test]
async fn de_duplication_survives_a_restart() {
    let app = spawn_app().await;
    let (batch, uuids) = batch_with_mfa(6, 2);
    assert_eq!(app.post(&batch).await.status(), 204);
    app.wait_for_alerts(2).await;
    let data_dir = app.stop().await;

    let config = test_config(data_dir.path());
    let app = spawn_app_with(config, data_dir).await;
    assert_eq!(app.post(&batch).await.status(), 204);
    let fresh = envelope(vec![bare_event(
        "user.mfa.factor.reset_all",
        "after-restart",
    )]);
    assert_eq!(app.post(&fresh).await.status(), 204);
    let alerts = app.wait_for_alerts(uuids.len() + 1).await;
    app.wait_until_drained().await;
    tokio::time::sleep(Duration::from_millis(200)).await;
    let alerts_after = read_alert_lines(&app.alerts_path());
    assert_eq!(alerts_after.len(), alerts.len());
    assert_eq!(
        alerts_after.last().unwrap()["event"]["uuid"],
        json!("after-restart")
    );
}

#[tokio::test]
async fn the_window_ends() {
    let data_dir = tempfile::TempDir::new().unwrap();
    let mut config = test_config(data_dir.path());
    config.rules.dedup_window = Duration::from_millis(300);
    let app = spawn_app_with(config, data_dir).await;
    let batch = envelope(vec![bare_event("user.mfa.factor.deactivate", "windowed")]);
    assert_eq!(app.post(&batch).await.status(), 204);
    app.wait_for_alerts(1).await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    // Past the window the same uuid is news again (the alert id, a pure function, is the same).
    assert_eq!(app.post(&batch).await.status(), 204);
    let alerts = app.wait_for_alerts(2).await;
    assert_eq!(alerts[0]["id"], alerts[1]["id"]);
}
