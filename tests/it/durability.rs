//! Durability, proven with a real process: SIGKILL mid-load and SIGTERM under load, then every
//! acknowledged MFA event must have its alert.

use std::collections::HashSet;
use std::io::Read;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tempfile::TempDir;

use crate::helpers::{
    ChildServer, SECRET, assert_one_id_per_rule_and_event, batch_with_mfa, free_port,
    post_envelope, wait_for_alerts_of,
};

/// Sends `batches` batches from `concurrency` tasks until told to stop; returns the MFA uuids of
/// acknowledged batches.
async fn load(
    url: String,
    batches: usize,
    concurrency: usize,
    acked: Arc<Mutex<Vec<String>>>,
) -> usize {
    let client = reqwest::Client::new();
    let next = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let mut tasks = tokio::task::JoinSet::new();
    for _ in 0..concurrency {
        let (client, url, acked, next) = (client.clone(), url.clone(), acked.clone(), next.clone());
        tasks.spawn(async move {
            while next.fetch_add(1, std::sync::atomic::Ordering::Relaxed) < batches {
                let (batch, uuids) = batch_with_mfa(10, 2);
                if post_envelope(&client, &url, &batch).await {
                    acked.lock().unwrap().extend(uuids);
                }
            }
        });
    }
    tasks.join_all().await;
    acked.lock().unwrap().len()
}

async fn assert_every_acked_event_alerted(data_dir: &TempDir, acked: &[String]) {
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
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigkill_mid_load_loses_no_acknowledged_event() {
    let data_dir = TempDir::new().unwrap();
    let port = free_port();
    let mut server = ChildServer::start(data_dir.path(), port).await;
    let acked = Arc::new(Mutex::new(Vec::new()));
    let loader = tokio::spawn(load(server.hook_url.clone(), 400, 8, acked.clone()));
    // Kill once a good number of batches were acknowledged, while requests are still in flight.
    while acked.lock().unwrap().len() < 200 {
        assert!(!loader.is_finished(), "load finished before the kill");
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
    server.child.kill().unwrap(); // SIGKILL
    server.child.wait().unwrap();
    loader.await.unwrap();
    let acked = acked.lock().unwrap().clone();
    assert!(acked.len() >= 200);
    assert_every_acked_event_alerted(&data_dir, &acked).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_under_load_exits_cleanly_and_loses_nothing() {
    let data_dir = TempDir::new().unwrap();
    let port = free_port();
    let mut server = ChildServer::start(data_dir.path(), port).await;
    let acked = Arc::new(Mutex::new(Vec::new()));
    let loader = tokio::spawn(load(server.hook_url.clone(), 300, 8, acked.clone()));
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
