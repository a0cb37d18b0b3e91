//! What lands in the alert file: the documented fields, for every MFA event of every batch.

use factorwatch::config::SinkConfig;
use factorwatch::okta::samples::{self, Initiator};
use serde_json::{Value, json};

use crate::helpers::{
    alerted_uuids, batch_with_mfa, envelope, read_alert_lines, spawn_app, spawn_app_with,
    test_config, wait_for_readyz,
};

const DEACTIVATED_RULE: &str = "6f1e2b9c-3a0d-4e57-9a61-2d4c8b7f0a11";
const RESET_ALL_RULE: &str = "b3c9d2e1-7f44-4a8e-8c0d-5e6f7a8b9c22";

#[tokio::test]
async fn an_admin_reset_alert_carries_every_documented_field() {
    let app = spawn_app().await;
    let users = samples::users();
    let mut event =
        samples::mfa_factor_deactivate(&users[1], "FIDO_WEBAUTHN", Initiator::Admin, "tx-1");
    // A field Okta may add tomorrow must reach the alert untouched.
    event["brandNewOktaField"] = json!({"nested": [1, "two", null]});
    let uuid = event["uuid"].as_str().unwrap().to_owned();
    let raw_event = event.clone();
    let batch = envelope(vec![
        samples::session_start(&users[0], "198.51.100.9"),
        event,
    ]);
    assert_eq!(app.post(&batch).await.status(), 204);

    let alerts = app.wait_for_alerts(1).await;
    assert_eq!(alerts.len(), 1);
    let alert = &alerts[0];
    assert_eq!(
        alert["id"],
        factorwatch::alert::alert_id(DEACTIVATED_RULE, &uuid)
    );
    assert_eq!(alert["rule"]["id"], DEACTIVATED_RULE);
    assert_eq!(alert["rule"]["level"], "medium");
    assert_eq!(alert["rule"]["author"], "factorwatch");
    assert!(
        alert["rule"]["title"]
            .as_str()
            .unwrap()
            .contains("Deactivated")
    );
    assert!(!alert["rule"]["tags"].as_array().unwrap().is_empty());
    assert_eq!(alert["event"]["uuid"], uuid.as_str());
    assert_eq!(alert["event"]["eventType"], "user.mfa.factor.deactivate");
    assert_eq!(alert["event"]["published"], raw_event["published"]);
    assert_eq!(alert["event"]["displayMessage"], "Reset factor for user");
    assert_eq!(alert["event"]["outcome"]["result"], "SUCCESS");
    assert_eq!(
        alert["event"]["outcome"]["reason"],
        "User reset FIDO_WEBAUTHN factor"
    );
    assert_eq!(alert["actor"]["alternateId"], "dana.admin@example.com");
    let targets = alert["targets"].as_array().unwrap();
    assert_eq!(
        targets.len(),
        1,
        "only the User target is a person acted on"
    );
    assert_eq!(targets[0]["alternateId"], users[1].login.as_str());
    assert_eq!(
        alert["client"]["ipAddress"],
        raw_event["client"]["ipAddress"]
    );
    assert!(alert["client"]["userAgent"].as_str().is_some());
    assert!(alert["client"]["geo"]["country"].as_str().is_some());
    assert_eq!(alert["okta"]["org"], "acme.okta.com");
    assert_eq!(alert["okta"]["hook_id"], "whoTEST000000000001");
    assert_eq!(alert["okta"]["delivery_id"], batch["eventId"]);
    assert!(alert["received_at"].as_str().unwrap().ends_with('Z'));
    assert_eq!(
        alert["raw_event"], raw_event,
        "raw_event is the LogEvent verbatim"
    );
}

#[tokio::test]
async fn every_event_of_every_batch_is_evaluated() {
    let app = spawn_app().await;
    let mut expected = Vec::new();
    for _ in 0..3 {
        let (batch, uuids) = batch_with_mfa(20, 4);
        expected.extend(uuids);
        assert_eq!(app.post(&batch).await.status(), 204);
    }
    let alerts = app.wait_for_alerts(expected.len()).await;
    let mut got = alerted_uuids(&alerts);
    got.sort();
    expected.sort();
    assert_eq!(got, expected);
}

#[tokio::test]
async fn reset_all_alerts_under_its_own_rule() {
    let app = spawn_app().await;
    let users = samples::users();
    let event = samples::mfa_factor_reset_all(&users[2], Initiator::ApiToken);
    assert_eq!(app.post(&envelope(vec![event])).await.status(), 204);
    let alerts = app.wait_for_alerts(1).await;
    assert_eq!(alerts[0]["rule"]["id"], RESET_ALL_RULE);
    assert_eq!(
        alerts[0]["event"]["displayMessage"],
        "Reset all factors for user"
    );
}

#[tokio::test]
async fn odd_events_do_not_cost_the_rest_of_the_batch() {
    let app = spawn_app().await;
    let users = samples::users();
    let good = samples::mfa_factor_deactivate(&users[0], "SMS", Initiator::SelfService, "tx-9");
    let preview_style = json!({
        "uuid": "odd-1", "eventType": "user.mfa.factor.reset_all", "version": 0,
        "actor": null, "target": null, "outcome": {"result": "Success"},
        "client": {"zone": "null", "geographicalContext": {"postalCode": 94105}}
    });
    let batch = envelope(vec![
        json!("not an object"),
        json!(null),
        json!({"eventType": 42}),
        preview_style,
        good.clone(),
    ]);
    assert_eq!(app.post(&batch).await.status(), 204);
    let alerts = app.wait_for_alerts(2).await;
    let mut got = alerted_uuids(&alerts);
    got.sort();
    let mut expected = vec![
        "odd-1".to_owned(),
        good["uuid"].as_str().unwrap().to_owned(),
    ];
    expected.sort();
    assert_eq!(got, expected);
    let odd = alerts
        .iter()
        .find(|a| a["event"]["uuid"] == "odd-1")
        .unwrap();
    assert_eq!(odd["actor"], Value::Null);
    assert_eq!(odd["targets"], json!([]));
    assert_eq!(odd["event"]["outcome"]["result"], "Success");
}

#[tokio::test]
async fn an_event_without_uuid_still_alerts_once() {
    let app = spawn_app().await;
    let event =
        json!({"eventType": "user.mfa.factor.deactivate", "published": "2026-01-01T00:00:00.000Z"});
    let batch = envelope(vec![event.clone()]);
    assert_eq!(app.post(&batch).await.status(), 204);
    assert_eq!(app.post(&batch).await.status(), 204);
    app.wait_for_alerts(1).await;
    app.wait_until_drained().await;
    let alerts = crate::helpers::read_alert_lines(&app.alerts_path());
    assert_eq!(
        alerts.len(),
        1,
        "the content hash de-duplicates the redelivery"
    );
    assert_eq!(alerts[0]["event"]["uuid"], Value::Null);
}

#[tokio::test]
async fn a_pretty_printed_delivery_still_gives_one_alert_per_line() {
    let app = spawn_app().await;
    let (batch, uuids) = batch_with_mfa(4, 2);
    let pretty = serde_json::to_vec_pretty(&batch).unwrap();
    let response = app
        .post_raw(pretty, "application/json", Some(crate::helpers::SECRET))
        .await;
    assert_eq!(response.status(), 204);
    let alerts = app.wait_for_alerts(2).await;
    let raw: Value = alerts[0]["raw_event"].clone();
    assert!(uuids.contains(&raw["uuid"].as_str().unwrap().to_owned()));
    assert_eq!(
        raw,
        batch["data"]["events"]
            .as_array()
            .unwrap()
            .iter()
            .find(|e| e["uuid"] == raw["uuid"])
            .unwrap()
            .clone()
    );
}

#[tokio::test]
async fn an_identity_engine_reset_all_becomes_one_alert_listing_the_factors() {
    let app = spawn_app().await;
    let users = samples::users();
    let factors = ["OKTA_VERIFY_PUSH", "FIDO_WEBAUTHN", "SMS"];
    let events: Vec<Value> = factors
        .iter()
        .map(|f| samples::mfa_factor_deactivate(&users[2], f, Initiator::Admin, "oie-tx-1"))
        .collect();
    let uuids: Vec<Value> = events.iter().map(|e| e["uuid"].clone()).collect();
    assert_eq!(app.post(&envelope(events)).await.status(), 204);
    app.wait_for_alerts(1).await;
    app.wait_until_drained().await;
    let alerts = crate::helpers::read_alert_lines(&app.alerts_path());
    assert_eq!(alerts.len(), 1, "one alert for one transaction: {alerts:?}");
    let alert = &alerts[0];
    assert_eq!(alert["context"]["factors"], json!(factors));
    assert_eq!(alert["context"]["event_uuids"], json!(uuids));
    assert_eq!(alert["context"]["initiated_by"], "admin");
    assert_eq!(alert["level"], "high");
    assert_eq!(
        alert["id"],
        factorwatch::alert::alert_id(DEACTIVATED_RULE, "transaction:oie-tx-1")
    );
}

#[tokio::test]
async fn okta_support_and_self_service_resets_are_told_apart() {
    let app = spawn_app().await;
    let users = samples::users();
    let support = samples::mfa_factor_reset_all(&users[0], Initiator::OktaSupport);
    let own = samples::mfa_factor_deactivate(&users[1], "SMS", Initiator::SelfService, "tx-own");
    assert_eq!(
        app.post(&envelope(vec![support.clone(), own.clone()]))
            .await
            .status(),
        204
    );
    let alerts = app.wait_for_alerts(2).await;
    let by_uuid = |event: &Value| {
        alerts
            .iter()
            .find(|a| a["event"]["uuid"] == event["uuid"])
            .unwrap()
            .clone()
    };
    let support_alert = by_uuid(&support);
    assert_eq!(support_alert["context"]["initiated_by"], "okta_support");
    assert_eq!(support_alert["level"], "high");
    assert_eq!(support_alert["rule"]["level"], "medium");
    let own_alert = by_uuid(&own);
    assert_eq!(own_alert["context"]["initiated_by"], "self");
    assert_eq!(own_alert["context"]["factors"], json!(["SMS"]));
    assert_eq!(own_alert["level"], "medium");
    assert!(own_alert["context"]["ip_chain"].as_array().is_some());
}

#[tokio::test]
async fn an_alert_file_that_cannot_be_written_keeps_its_alerts_and_gets_each_once_when_it_can() {
    let data_dir = tempfile::TempDir::new().unwrap();
    let out = data_dir.path().join("rotated");
    // A file where the sink's directory belongs: serve cannot create the directory, so every
    // append fails until the file gives way to it.
    std::fs::write(&out, b"").unwrap();
    let mut config = test_config(data_dir.path());
    config.sinks = vec![SinkConfig::file("alerts-file", out.join("alerts.jsonl"))];
    let app = spawn_app_with(config, data_dir).await;
    // More alerts than one delivery pass takes (64), so several appends share the outage.
    let mut expected = Vec::new();
    for _ in 0..5 {
        let (batch, uuids) = batch_with_mfa(40, 30);
        expected.extend(uuids);
        assert_eq!(app.post(&batch).await.status(), 204);
    }
    let queued = expected.len();
    let all_queued = |ready: &Value| {
        let sink = &ready["sinks"]["alerts-file"];
        sink["failing"] == true && sink["pending"] == queued
    };
    wait_for_readyz(&app.client, app.ops_addr, "queued every alert", all_queued).await;

    std::fs::remove_file(&out).unwrap();
    std::fs::create_dir(&out).unwrap();
    app.wait_until_drained().await;
    let alerts = read_alert_lines(&out.join("alerts.jsonl"));
    let mut got = alerted_uuids(&alerts);
    got.sort();
    expected.sort();
    assert_eq!(got, expected, "every alert, each once");
    let delivering = |ready: &Value| ready["sinks"]["alerts-file"]["failing"] == false;
    let ready = wait_for_readyz(&app.client, app.ops_addr, "delivered again", delivering).await;
    assert_eq!(ready["sinks"]["alerts-file"]["dead_letters"], 0);
}
