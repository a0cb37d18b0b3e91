//! `[cluster]` in each shared mode (`redis` against the local Redis, `nats-kv` against the
//! local NATS): replicas with their own spools claim event keys in the backend, so Okta's retry
//! landing on another replica alerts once; a replica that detects its own batch again (after a
//! crash) keeps its claim; without the backend each replica still alerts (without an incident),
//! and says so.

use std::time::Duration;

use factorwatch::cluster::{Claim, ClusterConfig, SharedState};
use serde_json::Value;
use tempfile::TempDir;

use crate::backends::{Backend, on_each_backend};
use crate::helpers::{
    TestApp, batch_with_mfa, eventually, read_alert_lines, spawn_app_with, test_config, unique,
};

on_each_backend!(
    #[tokio::test]
    a_batch_replayed_to_another_replica_raises_no_second_alert,
    a_claim_is_kept_by_its_own_batch_and_refused_to_any_other,
    without_the_backend_a_replica_still_alerts_and_readiness_says_why,
);

/// A test's own key prefix, so runs never see each other's claims (also a bucket name).
fn prefix() -> String {
    format!("{}_", unique("factorwatch-test"))
}

async fn replica(cluster: ClusterConfig) -> TestApp {
    let data_dir = TempDir::new().unwrap();
    let mut config = test_config(data_dir.path());
    config.cluster = cluster;
    spawn_app_with(config, data_dir).await
}

async fn a_batch_replayed_to_another_replica_raises_no_second_alert(backend: Backend) {
    let prefix = prefix();
    let first = replica(backend.on_machine(&prefix)).await;
    let second = replica(backend.on_machine(&prefix)).await;

    let (batch, uuids) = batch_with_mfa(10, 2);
    assert_eq!(first.post(&batch).await.status(), 204);
    let alerts = first.wait_for_alerts(2).await;
    assert_eq!(alerts.len(), 2);

    // Okta's retry of the same batch lands on the other replica.
    assert_eq!(second.post(&batch).await.status(), 204);
    second.wait_until_drained().await;
    assert!(
        read_alert_lines(&second.alerts_path()).is_empty(),
        "the replay alerted again on the second replica"
    );

    // The second replica alerts on what is new to the fleet.
    let (fresh, fresh_uuids) = batch_with_mfa(10, 2);
    assert_eq!(second.post(&fresh).await.status(), 204);
    let alerts = second.wait_for_alerts(2).await;
    let alerted: Vec<&str> = alerts
        .iter()
        .map(|a| a["event"]["uuid"].as_str().unwrap())
        .collect();
    assert!(fresh_uuids.iter().all(|u| alerted.contains(&u.as_str())));
    assert!(uuids.iter().all(|u| !alerted.contains(&u.as_str())));
    let ready: Value = second.ops_get("/readyz").await.json().await.unwrap();
    assert_eq!(ready["cluster"]["backend"], "up", "{ready}");
    backend.forget(&prefix).await;
}

async fn a_claim_is_kept_by_its_own_batch_and_refused_to_any_other(backend: Backend) {
    let prefix = prefix();
    let config = backend.on_machine(&prefix);
    let replica_a = SharedState::new(&config, "replica-a").unwrap();
    let replica_b = SharedState::new(&config, "replica-b").unwrap();
    let window = Duration::from_secs(60);
    // How many of events 1 and 2, seen in batch `batch_id` of `replica`, are duplicates.
    let duplicates = async |replica: &SharedState, batch_id| {
        // A uuid, and the content hash of an event without one.
        let claims = ["evt-1", "sha256:0a1b"].map(|key| Claim {
            key: key.into(),
            batch_id,
        });
        replica.duplicates(&claims, window).await.unwrap().len()
    };
    assert_eq!(duplicates(&replica_a, 7).await, 0);
    // Replica A detecting batch 7 again after a crash: still its own.
    assert_eq!(duplicates(&replica_a, 7).await, 0);
    // The same events in a later batch of A, or in any batch of B: duplicates.
    assert_eq!(duplicates(&replica_a, 8).await, 2);
    assert_eq!(duplicates(&replica_b, 7).await, 2);
    backend.forget(&prefix).await;
}

async fn without_the_backend_a_replica_still_alerts_and_readiness_says_why(backend: Backend) {
    // Nothing listens on port 1.
    let app = replica(backend.cluster(&backend.url(1), &prefix())).await;
    let (batch, _) = batch_with_mfa(10, 2);
    assert_eq!(app.post(&batch).await.status(), 204);
    let alerts = app.wait_for_alerts(2).await;
    assert_eq!(alerts.len(), 2);
    // Without the backend there is no incident to fold into: the alerts go out without one,
    // and that is counted.
    assert!(
        alerts.iter().all(|alert| alert.get("incident").is_none()),
        "{alerts:?}"
    );
    let metrics = app.ops_get("/metrics").await.text().await.unwrap();
    assert!(
        metrics.contains("factorwatch_incidents_unavailable_total "),
        "{metrics}"
    );
    let ready = app.ops_get("/readyz").await;
    assert_eq!(ready.status(), 200, "intake goes on without the backend");
    let ready: Value = ready.json().await.unwrap();
    assert_eq!(ready["cluster"]["backend"], "down", "{ready}");
    assert!(
        ready["cluster"]["error"]
            .as_str()
            .unwrap()
            .contains("127.0.0.1:1"),
        "{ready}"
    );
    // The gauge is one per process, and other tests' replicas in this process set it to 1 when
    // their backend answers: each look first makes this replica try its backend again.
    eventually(
        Duration::from_secs(20),
        "factorwatch_cluster_backend_up 0",
        async || {
            let (batch, _) = batch_with_mfa(1, 0);
            assert_eq!(app.post(&batch).await.status(), 204);
            let metrics = app.ops_get("/metrics").await.text().await.unwrap();
            match metrics.contains("factorwatch_cluster_backend_up 0") {
                true => Ok(()),
                false => Err(metrics),
            }
        },
    )
    .await;
}
