//! The event hook's silence (`[okta.reconcile] silence_after`), against the Okta stand-in: the hook
//! delivers, then stops while Okta's System Log goes on; factorwatch raises one `high` alert per
//! silence with the number of missed events and the last delivery, and `/readyz` and `/metrics`
//! say so; a delivery ends the silence, and the next silence alerts again. In a cluster the
//! deliveries that reach another replica count as well.

use std::path::PathBuf;
use std::time::Duration;

use serde_json::Value;
use tempfile::TempDir;

use crate::backends::Backend;
use crate::helpers::{
    ChildServer, eventually, post_envelope, read_alert_lines, readyz, wait_for_alerts_of,
    wait_for_readyz,
};
use crate::hook_register::okta_cli;
use crate::reconcile::{Org, SOON, metric, mfa_reset, serve, two_replicas, uuids};

/// `[okta.reconcile] silence_after` of these tests (the poller reads every 200 ms).
const SILENCE_AFTER: Duration = Duration::from_secs(2);

/// `n` MFA resets Okta records now, all at the same millisecond (so a check finds all of them
/// missed or none).
fn resets(n: usize) -> Vec<Value> {
    let events: Vec<Value> = (0..n).map(|_| mfa_reset(Duration::ZERO)).collect();
    let published = events[0]["published"].clone();
    events
        .into_iter()
        .map(|mut event| {
            event["published"] = published.clone();
            event
        })
        .collect()
}

/// The hook delivers `events` to `server` (a signed batch), and Okta logs them, as it does
/// with what it delivers.
async fn deliver(org: &Org, server: &ChildServer, events: Vec<Value>) {
    let envelope = crate::helpers::envelope(events.clone());
    assert!(post_envelope(&reqwest::Client::new(), &server.hook_url, &envelope).await);
    org.okta.publish(events);
}

/// The silence alerts in `files`, one per alert id.
fn silence_alerts(files: &[PathBuf]) -> Vec<Value> {
    let mut ids = std::collections::HashSet::new();
    files
        .iter()
        .flat_map(|file| read_alert_lines(file))
        .filter(|alert| alert["event"]["eventType"] == "factorwatch.hook.silent")
        // As a consumer counts them, by id: a SIGKILL between the file sink's write and the
        // outbox's delete delivers that alert again (at least once), with the same id.
        .filter(|alert| ids.insert(alert["id"].to_string()))
        .collect()
}

/// Waits until `files` hold `count` silence alerts, and returns them.
async fn wait_for_silence_alerts(files: &[PathBuf], count: usize) -> Vec<Value> {
    let awaited = format!("{count} silence alerts");
    eventually(SOON, &awaited, async || {
        let alerts = silence_alerts(files);
        match alerts.len() >= count {
            true => Ok(alerts),
            false => Err(format!("{} so far", alerts.len())),
        }
    })
    .await
}

/// What a silence alert says: its missed events and its last delivery.
fn missed_and_last_delivery(alert: &Value) -> (u64, String) {
    let data = &alert["raw_event"]["debugContext"]["debugData"];
    let missed = data["missedEvents"].as_u64().expect("a count");
    (
        missed,
        data["lastDelivery"].as_str().expect("a time").to_owned(),
    )
}

/// The alert came no earlier than `SILENCE_AFTER` after the first event the hook missed.
fn assert_not_early(alert: &Value) {
    let ms = |text: &Value| factorwatch::clock::parse_rfc3339_ms(text.as_str().unwrap()).unwrap();
    let first_missed = ms(&alert["raw_event"]["debugContext"]["debugData"]["firstMissedPublished"]);
    let raised = ms(&alert["event"]["published"]);
    assert!(
        raised - first_missed >= SILENCE_AFTER.as_millis() as i64,
        "raised {} ms after the first missed event",
        raised - first_missed
    );
}

/// The hook view of `/readyz` once the poller judged it `silent`, after a delivery.
async fn wait_for_hook(server: &ChildServer, silent: bool) -> Value {
    let what = format!("hook silent = {silent}, after a delivery");
    let judged = |ready: &Value| {
        ready["hook"]["silent"] == silent && ready["hook"]["last_delivery"].is_string()
    };
    let ready = wait_for_readyz(&reqwest::Client::new(), server.ops_addr, &what, judged).await;
    assert_eq!(
        ready["ready"], true,
        "a silent hook is not the replica's fault: {ready}"
    );
    ready["hook"].clone()
}

#[tokio::test]
async fn a_silent_hook_alerts_once_per_episode_and_readyz_and_metrics_say_so() {
    let org = Org::new().await;
    let data = TempDir::new().unwrap();
    let config = org.config_with_silence(data.path(), "2s", "");
    let server = serve(data.path(), &config, &[]).await;
    let files = [data.path().join("alerts.jsonl")];

    // The hook delivers, and the poller sees that it does.
    let delivered = resets(1);
    deliver(&org, &server, delivered.clone()).await;
    wait_for_alerts_of(&files, &uuids(&delivered), SOON).await;
    let hook = wait_for_hook(&server, false).await;
    let first_delivery = hook["last_delivery"].as_str().expect("recorded").to_owned();

    // Then it stops, while Okta goes on logging MFA resets.
    let missed = resets(3);
    org.okta.publish(missed.clone());
    let alerts = wait_for_silence_alerts(&files, 1).await;
    let alert = &alerts[0];
    assert_eq!(alert["level"], "high", "{alert}");
    assert_eq!(alert["rule"]["title"], "Okta Event Hook Silent");
    assert_eq!(alert["source"], "system_log");
    assert_eq!(missed_and_last_delivery(alert), (3, first_delivery.clone()));
    assert_not_early(alert);
    let message = alert["event"]["displayMessage"].as_str().unwrap();
    assert!(
        message.contains("3 events") && message.contains(&first_delivery),
        "{message}"
    );
    let hook = wait_for_hook(&server, true).await;
    assert_eq!(hook["last_delivery"], first_delivery.as_str());
    assert!(hook["missed_events"].as_u64() >= Some(3), "{hook}");
    assert_eq!(metric(&server, "factorwatch_okta_hook_silent ").await, 1.0);
    let last_delivery = metric(
        &server,
        "factorwatch_okta_hook_last_delivery_timestamp_seconds ",
    );
    let expected = factorwatch::clock::parse_rfc3339_ms(&first_delivery).unwrap() as f64 / 1000.0;
    assert!((last_delivery.await - expected).abs() < 0.001);
    // `okta doctor` names it, with what to check.
    let no_admin_api = "127.0.0.1:1";
    let (ok, out, _) = okta_cli(&config, &server, no_admin_api, &data, &["doctor"], &[]).await;
    assert!(!ok, "{out}");
    assert!(out.contains("the hook is silent: 3 event(s)"), "{out}");
    assert!(
        out.contains("factorwatch.hook.silent                              made by the poller"),
        "{out}"
    );
    // The events themselves still alert, from the System Log.
    wait_for_alerts_of(&files, &uuids(&missed), SOON).await;

    // The silence goes on: more missed events, no second alert.
    let more = resets(2);
    org.okta.publish(more.clone());
    let counted = |ready: &Value| ready["hook"]["missed_events"].as_u64() >= Some(5);
    wait_for_readyz(
        &reqwest::Client::new(),
        server.ops_addr,
        "5 missed",
        counted,
    )
    .await;
    assert_eq!(silence_alerts(&files).len(), 1, "one alert per episode");

    // A delivery ends the episode.
    deliver(&org, &server, resets(1)).await;
    let hook = wait_for_hook(&server, false).await;
    let second_delivery = hook["last_delivery"].as_str().unwrap().to_owned();
    assert_ne!(second_delivery, first_delivery);
    assert_eq!(metric(&server, "factorwatch_okta_hook_silent ").await, 0.0);

    // A second silence is a second episode: a second alert, with its own id.
    org.okta.publish(resets(2));
    let alerts = wait_for_silence_alerts(&files, 2).await;
    let second = alerts
        .iter()
        .find(|a| a["id"] != alert["id"])
        .expect("a new id");
    assert_eq!(missed_and_last_delivery(second), (2, second_delivery));
    assert_not_early(second);
    tokio::time::sleep(SILENCE_AFTER).await;
    assert_eq!(silence_alerts(&files).len(), 2, "{alerts:?}");
    org.assert_spec_kept();
}

/// A restart in the middle of a silence remembers the last delivery, and raises no second alert.
#[tokio::test]
async fn a_restart_during_a_silence_raises_no_second_alert() {
    let org = Org::new().await;
    let data = TempDir::new().unwrap();
    let config = org.config_with_silence(data.path(), "2s", "");
    let server = serve(data.path(), &config, &[]).await;
    let files = [data.path().join("alerts.jsonl")];
    deliver(&org, &server, resets(1)).await;
    let delivered = wait_for_hook(&server, false).await["last_delivery"].clone();
    org.okta.publish(resets(2));
    wait_for_silence_alerts(&files, 1).await;
    drop(server);

    let server = serve(data.path(), &config, &[]).await;
    org.okta.publish(resets(1));
    let hook = wait_for_hook(&server, true).await;
    assert_eq!(hook["last_delivery"], delivered, "kept in the spool");
    tokio::time::sleep(SILENCE_AFTER).await;
    assert_eq!(silence_alerts(&files).len(), 1, "the same episode");
}

crate::backends::on_each_backend!(
    #[tokio::test]
    deliveries_to_any_replica_keep_the_hook_from_looking_silent,
);

/// Okta's deliveries all reach the replica that does not poll; the one that polls judges on the
/// fleet's deliveries, shared through the backend, and alerts once when they stop.
async fn deliveries_to_any_replica_keep_the_hook_from_looking_silent(backend: Backend) {
    let org = Org::new().await;
    let (dirs, replicas, prefix) = two_replicas(backend, "fw-silence", |dir, cluster| {
        org.config_with_silence(dir, "2s", cluster)
    })
    .await;
    let files: Vec<PathBuf> = dirs.iter().map(|d| d.path().join("alerts.jsonl")).collect();
    let (polling, other) = polling_and_other(&replicas).await;

    // Three silence periods' worth of deliveries, every half second, all to the other replica.
    for _ in 0..12 {
        deliver(&org, other, resets(1)).await;
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    let standby = readyz(&reqwest::Client::new(), other.ops_addr).await;
    assert_eq!(
        standby["hook"]["silent"],
        Value::Null,
        "judged by the poller: {standby}"
    );
    let latest = standby["hook"]["last_delivery"].clone();
    assert!(latest.is_string(), "{standby}");
    let sees_it = |ready: &Value| ready["hook"]["last_delivery"] == latest;
    let client = reqwest::Client::new();
    let ready = wait_for_readyz(&client, polling.ops_addr, "the fleet's delivery", sees_it).await;
    assert_eq!(ready["hook"]["silent"], false, "{ready}");
    assert_eq!(silence_alerts(&files), Vec::<Value>::new());

    org.okta.publish(resets(2));
    let alerts = wait_for_silence_alerts(&files, 1).await;
    assert_eq!(missed_and_last_delivery(&alerts[0]).0, 2);
    assert_eq!(
        alerts[0]["raw_event"]["debugContext"]["debugData"]["lastDelivery"],
        latest
    );
    tokio::time::sleep(SILENCE_AFTER).await;
    assert_eq!(silence_alerts(&files).len(), 1);
    backend.forget(&prefix).await;
}

/// The replica that polls and the other one, once one polls.
async fn polling_and_other(replicas: &[ChildServer]) -> (&ChildServer, &ChildServer) {
    eventually(SOON, "a replica polling", async || {
        for (n, replica) in replicas.iter().enumerate() {
            let ready = readyz(&reqwest::Client::new(), replica.ops_addr).await;
            if ready["reconcile"]["state"] == "polling" {
                return Ok((replica, &replicas[1 - n]));
            }
        }
        Err("none yet")
    })
    .await
}
