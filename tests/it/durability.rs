//! Durability, proven with a real process: SIGKILL mid-load (the usual mix, and a mass reset, the
//! correlations' worst case) and SIGTERM under load, then every acknowledged MFA event must have
//! its alert.

use std::collections::HashSet;
use std::io::Read;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use factorwatch::okta::samples::{self, Initiator, SampleUser};
use serde_json::Value;
use tempfile::TempDir;

use crate::helpers::{
    ChildServer, SECRET, assert_one_id_per_rule_and_event, batch_with_mfa, envelope, free_port,
    post_envelope, wait_for_alerts_of,
};

/// The built-in "One Actor Reset the MFA of Several Users".
const RESET_MANY_USERS: &str = "9a4f1c7e-2b6d-4f0a-8e3c-1d5b7a9c2e41";

/// Makes the batch numbered `n` of a load: the envelope and its MFA uuids.
type BatchMaker = fn(usize) -> (Value, Vec<String>);

/// The usual mix: 10 events, 2 of them MFA resets of three users.
fn mixed(_: usize) -> (Value, Vec<String>) {
    batch_with_mfa(10, 2)
}

/// A mass reset: 10 resets by one admin, each of a user no other event names.
fn mass_reset(n: usize) -> (Value, Vec<String>) {
    let events: Vec<Value> = (0..10)
        .map(|i| {
            let user = n * 10 + i;
            let target = SampleUser::new(
                &format!("00u{user:017}"),
                &format!("user{user}@example.com"),
                &format!("User {user}"),
            );
            let tx = uuid::Uuid::new_v4().to_string();
            samples::mfa_factor_deactivate(&target, "OKTA_VERIFY_PUSH", Initiator::Admin, &tx)
        })
        .collect();
    let uuids = events
        .iter()
        .map(|event| event["uuid"].as_str().unwrap().to_owned())
        .collect();
    (envelope(events), uuids)
}

/// Sends `batches` batches made by `make` from `concurrency` tasks; returns the MFA uuids of
/// acknowledged batches.
async fn load(
    url: String,
    (batches, make): (usize, BatchMaker),
    concurrency: usize,
    acked: Arc<Mutex<Vec<String>>>,
) -> usize {
    let client = reqwest::Client::new();
    let next = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let mut tasks = tokio::task::JoinSet::new();
    for _ in 0..concurrency {
        let (client, url, acked, next) = (client.clone(), url.clone(), acked.clone(), next.clone());
        tasks.spawn(async move {
            loop {
                let n = next.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                if n >= batches {
                    break;
                }
                let (batch, uuids) = make(n);
                if post_envelope(&client, &url, &batch).await {
                    acked.lock().unwrap().extend(uuids);
                }
            }
        });
    }
    tasks.join_all().await;
    acked.lock().unwrap().len()
}

/// Starts factorwatch again on `data_dir` and waits for the alert of every `acked` event; returns
/// the alerts.
async fn assert_every_acked_event_alerted(data_dir: &TempDir, acked: &[String]) -> Vec<Value> {
    let port = free_port();
    let mut server = ChildServer::start(data_dir.path(), port).await;
    let alerts_path = data_dir.path().join("alerts.jsonl");
    let alerts = wait_for_alerts_of(&[alerts_path], acked, Duration::from_secs(60)).await;
    // Duplicates (a crash between publish and outbox removal) must carry the same alert id,
    // for single-event alerts and for the default correlations' alerts alike.
    let distinct = assert_one_id_per_rule_and_event(&alerts);
    let correlation_ids: HashSet<&str> = alerts
        .iter()
        .filter(|a| a.get("correlation").is_some())
        .map(|a| a["id"].as_str().unwrap())
        .collect();
    eprintln!(
        "{} acknowledged MFA events, {} alert lines, {} duplicate lines, {} correlation alerts",
        acked.len(),
        alerts.len(),
        alerts.len() - distinct,
        correlation_ids.len()
    );
    server.child.kill().unwrap();
    server.child.wait().unwrap();
    alerts
}

/// Loads a fresh factorwatch with `load_of` and SIGKILLs it once `kill_at` MFA events were
/// acknowledged, requests still in flight; returns the data directory and the acknowledged
/// MFA uuids.
async fn killed_mid_load(load_of: (usize, BatchMaker), kill_at: usize) -> (TempDir, Vec<String>) {
    let data_dir = TempDir::new().unwrap();
    let port = free_port();
    let mut server = ChildServer::start(data_dir.path(), port).await;
    let acked = Arc::new(Mutex::new(Vec::new()));
    let loader = tokio::spawn(load(server.hook_url.clone(), load_of, 8, acked.clone()));
    while acked.lock().unwrap().len() < kill_at {
        assert!(!loader.is_finished(), "load finished before the kill");
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
    server.child.kill().unwrap(); // SIGKILL
    server.child.wait().unwrap();
    loader.await.unwrap();
    let acked = acked.lock().unwrap().clone();
    assert!(acked.len() >= kill_at);
    (data_dir, acked)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigkill_mid_load_loses_no_acknowledged_event() {
    let (data_dir, acked) = killed_mid_load((400, mixed), 200).await;
    assert_every_acked_event_alerted(&data_dir, &acked).await;
}

/// The correlations' worst case: every event opens windows and a timer of its own, and the
/// correlation state is journaled and snapshotted under the load. After the kill every
/// acknowledged reset has its alert, once, and the admin's many-users correlation still fires,
/// its alerts never doubled by the journal's replay.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigkill_under_a_mass_reset_loses_no_acknowledged_event() {
    let (data_dir, acked) = killed_mid_load((800, mass_reset), 4_000).await;
    let alerts = assert_every_acked_event_alerted(&data_dir, &acked).await;
    let many_users: HashSet<&str> = alerts
        .iter()
        .filter(|alert| alert["rule"]["id"] == RESET_MANY_USERS)
        .map(|alert| alert["id"].as_str().unwrap())
        .collect();
    assert!(
        many_users.len() * 3 >= acked.len() / 2,
        "{} many-users alerts for {} resets by one admin",
        many_users.len(),
        acked.len()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_under_load_exits_cleanly_and_loses_nothing() {
    let data_dir = TempDir::new().unwrap();
    let port = free_port();
    let mut server = ChildServer::start(data_dir.path(), port).await;
    let acked = Arc::new(Mutex::new(Vec::new()));
    let loader = tokio::spawn(load(
        server.hook_url.clone(),
        (300, mixed),
        8,
        acked.clone(),
    ));
    while acked.lock().unwrap().len() < 100 {
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
    let pid = server.child.id() as libc::pid_t;
    // SAFETY: sending a signal to our own child process.
    assert_eq!(unsafe { libc::kill(pid, libc::SIGTERM) }, 0);
    let status = server.child.wait().unwrap();
    assert!(
        status.success(),
        "factorwatch exited with {status} on SIGTERM"
    );
    let mut log = String::new();
    server
        .child
        .stderr
        .take()
        .unwrap()
        .read_to_string(&mut log)
        .unwrap();
    assert!(!log.contains(SECRET), "the secret appeared in the log");
    assert!(!log.contains("panicked"), "{log}");
    loader.await.unwrap();
    let acked = acked.lock().unwrap().clone();
    assert_every_acked_event_alerted(&data_dir, &acked).await;
}
