//! Three replicas behind a real load balancer (HAProxy, round robin), sharing a backend of their
//! own (a Redis for `[cluster] mode = "redis"`, a NATS for `mode = "nats-kv"`; every test runs on
//! each), each with its own spool: Okta's retry landing on another replica alerts once, a
//! correlation whose events are spread over the three replicas fires once (and, with the backend
//! down, waits for it instead of being lost), a replica killed with SIGKILL under load loses no
//! acknowledged event, and the backend stopped and started again under load loses nothing.

use std::collections::HashSet;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde_json::Value;
use tempfile::TempDir;

use factorwatch::okta::samples::{self, Initiator};

use crate::backends::{Backend, on_each_backend};
use crate::daemons::{Daemon, system_binary, wait_for_port};
use crate::helpers::{
    ChildServer, assert_one_id_per_rule_and_event, batch_with_mfa, envelope, eventually, free_port,
    post_envelope, read_alert_lines, readyz, start_load, wait_for_alerts_of, wait_until_drained,
};

/// The built-in correlation "One Actor Reset the MFA of Several Users" (3 users within 1 h).
const RESET_MANY_USERS: &str = "9a4f1c7e-2b6d-4f0a-8e3c-1d5b7a9c2e41";

const WAIT: Duration = Duration::from_secs(60);

/// HAProxy on `port`, round robin over `replicas`, checking each one's `/readyz`.
async fn start_haproxy(dir: &Path, port: u16, replicas: &[u16]) -> Daemon {
    let servers: String = replicas
        .iter()
        .enumerate()
        .map(|(n, p)| format!("    server replica{n} 127.0.0.1:{p} check\n"))
        .collect();
    let config = dir.join("haproxy.cfg");
    std::fs::write(
        &config,
        format!(
            "global\n    maxconn 1000\n\ndefaults\n    mode http\n    timeout connect 1s\n    \
             timeout client 10s\n    timeout server 10s\n\nfrontend okta\n    bind 127.0.0.1:{port}\n    \
             default_backend replicas\n\nbackend replicas\n    balance roundrobin\n    \
             option httpchk GET /readyz\n    default-server inter 200ms fall 1 rise 1\n{servers}"
        ),
    )
    .unwrap();
    let child = Command::new(system_binary("haproxy"))
        .arg("-db")
        .arg("-f")
        .arg(&config)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("haproxy is installed by scripts/test-services.sh");
    wait_for_port(port).await;
    Daemon(child)
}

/// A replica on `dir`, its hook on `port` and its operational listener on `ops_port`, sharing
/// the backend at `url`, logging to a file.
async fn start_replica(dir: &Path, port: u16, ops_port: u16, url: &str) -> ChildServer {
    let log = replica_log(dir);
    let ops_listen = format!("127.0.0.1:{ops_port}");
    let env = [
        ("FACTORWATCH_CLUSTER_URL", url),
        ("FACTORWATCH_OPS_LISTEN", &ops_listen),
    ];
    ChildServer::start_logging_to(dir, port, &env, &log).await
}

/// Where the replica on `dir` logs.
fn replica_log(dir: &Path) -> PathBuf {
    dir.join("factorwatch.log")
}

/// The detailed `/readyz` answer of the replica whose operational listener is on `ops_port`.
async fn readiness(client: &reqwest::Client, ops_port: u16) -> Value {
    readyz(client, ([127, 0, 0, 1], ops_port).into()).await
}

/// Three replicas, their load balancer and their backend.
struct Fleet {
    dirs: Vec<TempDir>,
    ports: Vec<u16>,
    /// Each replica's operational listener (`/readyz` with the backlog and the backend).
    ops_ports: Vec<u16>,
    replicas: Vec<Option<ChildServer>>,
    backend: Backend,
    backend_port: u16,
    backend_dir: TempDir,
    /// The backend's process while it runs.
    daemon: Option<Daemon>,
    _haproxy: Daemon,
    _haproxy_dir: TempDir,
    url: String,
}

impl Fleet {
    async fn start(backend: Backend) -> Fleet {
        let backend_port = free_port();
        let backend_dir = TempDir::new().unwrap();
        let daemon = backend.start_own(backend_port, backend_dir.path()).await;
        let backend_url = backend.url(backend_port);
        let dirs: Vec<TempDir> = (0..3).map(|_| TempDir::new().unwrap()).collect();
        let ports: Vec<u16> = (0..3).map(|_| free_port()).collect();
        let ops_ports: Vec<u16> = (0..3).map(|_| free_port()).collect();
        let mut replicas = Vec::new();
        for (n, dir) in dirs.iter().enumerate() {
            let replica = start_replica(dir.path(), ports[n], ops_ports[n], &backend_url).await;
            replicas.push(Some(replica));
        }
        let haproxy_dir = TempDir::new().unwrap();
        let lb_port = free_port();
        let haproxy = start_haproxy(haproxy_dir.path(), lb_port, &ports).await;
        let fleet = Fleet {
            dirs,
            ports,
            ops_ports,
            replicas,
            backend,
            backend_port,
            backend_dir,
            daemon: Some(daemon),
            _haproxy: haproxy,
            _haproxy_dir: haproxy_dir,
            url: format!("http://127.0.0.1:{lb_port}/okta/events"),
        };
        fleet.wait_until_all_routed().await;
        fleet
    }

    /// Starts replica `n` again on its own spool and port.
    async fn restart(&mut self, n: usize) {
        let url = self.backend.url(self.backend_port);
        let (port, ops_port) = (self.ports[n], self.ops_ports[n]);
        let replica = start_replica(self.dirs[n].path(), port, ops_port, &url).await;
        self.replicas[n] = Some(replica);
    }

    /// Stops the backend (SIGKILL).
    fn stop_backend(&mut self) {
        drop(self.daemon.take());
    }

    /// Starts the backend again on its port and data.
    async fn start_backend(&mut self) {
        let daemon = self
            .backend
            .start_own(self.backend_port, self.backend_dir.path())
            .await;
        self.daemon = Some(daemon);
    }

    /// Waits until HAProxy's health checks see every replica up (three requests in a row reach
    /// three different replicas).
    async fn wait_until_all_routed(&self) {
        let started = Instant::now();
        let client = reqwest::Client::new();
        let health = self.url.replace("/okta/events", "/healthz");
        eventually(WAIT, "HAProxy to route to every replica", async || {
            let mut ok = 0;
            for _ in 0..3 {
                if client
                    .get(&health)
                    .send()
                    .await
                    .is_ok_and(|r| r.status() == 200)
                {
                    ok += 1;
                }
            }
            if ok == 3 && started.elapsed() > Duration::from_millis(600) {
                Ok(())
            } else {
                Err(format!("{ok} of 3 requests answered"))
            }
        })
        .await;
    }

    /// Waits until no replica holds a batch to detect or an alert to deliver.
    async fn wait_until_drained(&self) {
        let client = reqwest::Client::new();
        for ops_port in &self.ops_ports {
            wait_until_drained(&client, ([127, 0, 0, 1], *ops_port).into()).await;
        }
    }

    fn alert_files(&self) -> Vec<PathBuf> {
        self.dirs
            .iter()
            .map(|d| d.path().join("alerts.jsonl"))
            .collect()
    }

    /// Every alert line of every replica.
    fn alerts(&self) -> Vec<Value> {
        self.alert_files()
            .iter()
            .flat_map(|path| read_alert_lines(path))
            .collect()
    }

    /// Waits until every uuid in `acked` has an alert on some replica; returns all alerts.
    async fn wait_for_alerts_of(&self, acked: &[String]) -> Vec<Value> {
        wait_for_alerts_of(&self.alert_files(), acked, WAIT).await
    }
}

impl Drop for Fleet {
    /// A failed test shows each replica's log and whether it still runs: the logs are in
    /// directories deleted right after.
    fn drop(&mut self) {
        if !std::thread::panicking() {
            return;
        }
        for (n, (dir, replica)) in self.dirs.iter().zip(&mut self.replicas).enumerate() {
            let state = match replica.as_mut().map(|r| r.child.try_wait()) {
                None => "stopped by the test".to_owned(),
                Some(Ok(None)) => "running".to_owned(),
                Some(Ok(Some(status))) => format!("exited: {status}"),
                Some(Err(err)) => format!("unknown: {err}"),
            };
            let log = std::fs::read_to_string(replica_log(dir.path()))
                .unwrap_or_else(|err| format!("(no log: {err})"));
            let tail: Vec<&str> = log.lines().rev().take(40).collect();
            eprintln!(
                "replica {n} (port {}, ops port {}), {state}; the end of its log:",
                self.ports[n], self.ops_ports[n]
            );
            tail.iter().rev().for_each(|line| eprintln!("  {line}"));
        }
    }
}

/// One admin resets the MFA of three users, one delivery each: round robin sends each delivery
/// to another replica.
async fn reset_three_users_through_three_replicas(fleet: &Fleet) {
    let client = reqwest::Client::new();
    for user in &samples::users()[..3] {
        let tx = uuid::Uuid::new_v4().to_string();
        let event = samples::mfa_factor_deactivate(user, "OKTA_VERIFY_PUSH", Initiator::Admin, &tx);
        assert!(post_envelope(&client, &fleet.url, &envelope(vec![event])).await);
    }
}

/// The alerts of `rule_id` over every replica.
fn alerts_of(fleet: &Fleet, rule_id: &str) -> Vec<Value> {
    fleet
        .alerts()
        .into_iter()
        .filter(|a| a["rule"]["id"] == rule_id)
        .collect()
}

/// Waits until every replica has `count` single-event alerts in its own file.
async fn wait_for_single_alerts_per_replica(fleet: &Fleet, count: usize) {
    let awaited = format!("{count} single-event alerts on each replica");
    eventually(WAIT, &awaited, async || {
        let per_replica: Vec<usize> = fleet
            .alert_files()
            .iter()
            .map(|path| {
                read_alert_lines(path)
                    .iter()
                    .filter(|a| a.get("correlation").is_none())
                    .count()
            })
            .collect();
        if per_replica.iter().all(|n| *n == count) {
            Ok(())
        } else {
            Err(format!("{per_replica:?}"))
        }
    })
    .await;
}

/// Waits until `rule_id` alerted `count` times over the fleet.
async fn wait_for_correlation_alerts(fleet: &Fleet, rule_id: &str, count: usize) {
    let awaited = format!("{count} alerts of the correlation");
    eventually(WAIT, &awaited, async || {
        let raised = alerts_of(fleet, rule_id).len();
        if raised >= count { Ok(()) } else { Err(raised) }
    })
    .await;
}

/// Waits until at least `count` MFA events were acknowledged.
async fn wait_for_acked(acked: &Mutex<Vec<String>>, count: usize) {
    let awaited = format!("{count} acknowledged events");
    eventually(WAIT, &awaited, async || {
        let so_far = acked.lock().unwrap().len();
        if so_far >= count { Ok(()) } else { Err(so_far) }
    })
    .await;
}

/// Every alert appears on one replica only: the one that claimed its event.
fn assert_each_alert_on_one_replica(fleet: &Fleet) {
    let mut owners: std::collections::HashMap<String, usize> = Default::default();
    for (n, path) in fleet.alert_files().iter().enumerate() {
        for alert in read_alert_lines(path) {
            let id = alert["id"].as_str().unwrap().to_owned();
            let owner = *owners.entry(id.clone()).or_insert(n);
            assert_eq!(owner, n, "alert {id} was raised by two replicas");
        }
    }
}

on_each_backend!(
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    okta_retries_through_the_load_balancer_alert_once,
    a_correlation_spread_over_three_replicas_fires_once_and_waits_out_a_backend_outage,
    a_replica_killed_under_load_loses_no_acknowledged_event,
    the_backend_stopped_and_started_under_load_loses_nothing,
);

async fn okta_retries_through_the_load_balancer_alert_once(backend: Backend) {
    let fleet = Fleet::start(backend).await;
    let client = reqwest::Client::new();
    let (batch, uuids) = batch_with_mfa(10, 2);
    // Round robin: the first try and its two retries reach three different replicas.
    for _ in 0..3 {
        assert!(post_envelope(&client, &fleet.url, &batch).await);
    }
    fleet.wait_for_alerts_of(&uuids).await;
    fleet.wait_until_drained().await;
    let alerts = fleet.alerts();
    tokio::time::sleep(Duration::from_millis(500)).await;
    let alerts_now = fleet.alerts();
    assert_eq!(alerts_now.len(), alerts.len(), "a late duplicate arrived");
    let ids: HashSet<&str> = alerts_now
        .iter()
        .map(|a| a["id"].as_str().unwrap())
        .collect();
    assert_eq!(
        ids.len(),
        alerts_now.len(),
        "an alert was raised twice: {alerts_now:#?}"
    );
    let single_event = alerts_now.iter().filter(|a| a.get("correlation").is_none());
    assert_eq!(single_event.count(), 2, "{alerts_now:#?}");
    let received: usize = fleet
        .dirs
        .iter()
        .filter(|d| d.path().join("spool.redb").exists())
        .count();
    assert_eq!(received, 3);
}

async fn a_correlation_spread_over_three_replicas_fires_once_and_waits_out_a_backend_outage(
    backend: Backend,
) {
    let mut fleet = Fleet::start(backend).await;
    reset_three_users_through_three_replicas(&fleet).await;
    // Each replica saw one reset only: alone, none of them could count three.
    wait_for_single_alerts_per_replica(&fleet, 1).await;
    wait_for_correlation_alerts(&fleet, RESET_MANY_USERS, 1).await;
    fleet.wait_until_drained().await;
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let fired = alerts_of(&fleet, RESET_MANY_USERS);
    assert_eq!(
        fired.len(),
        1,
        "the correlation fired more than once: {fired:#?}"
    );
    assert_eq!(fired[0]["correlation"]["value"], 3.0, "{:#}", fired[0]);

    // The backend stops: single-event alerts go on, the correlation waits in the replicas'
    // spools.
    fleet.stop_backend();
    reset_three_users_through_three_replicas(&fleet).await;
    wait_for_single_alerts_per_replica(&fleet, 2).await;
    let client = reqwest::Client::new();
    for ops_port in &fleet.ops_ports {
        let ready = readiness(&client, *ops_port).await;
        assert_eq!(ready["ready"], true, "{ready}");
        assert_eq!(ready["cluster"]["backend"], "down", "{ready}");
    }
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert_eq!(alerts_of(&fleet, RESET_MANY_USERS).len(), 1);

    // The backend is back (Redis empty, NATS with its buckets); the waiting events meet there.
    fleet.start_backend().await;
    wait_for_correlation_alerts(&fleet, RESET_MANY_USERS, 2).await;
    fleet.wait_until_drained().await;
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let fired = alerts_of(&fleet, RESET_MANY_USERS);
    assert_eq!(fired.len(), 2, "{fired:#?}");
    assert_eq!(fired[1]["correlation"]["value"], 3.0, "{:#}", fired[1]);
}

async fn a_replica_killed_under_load_loses_no_acknowledged_event(backend: Backend) {
    let mut fleet = Fleet::start(backend).await;
    let acked = Arc::new(Mutex::new(Vec::new()));
    let tasks = start_load(&fleet.url, 4, acked.clone());
    wait_for_acked(&acked, 60).await;
    let mut victim = fleet.replicas[1].take().unwrap();
    victim.child.kill().unwrap(); // SIGKILL
    victim.child.wait().unwrap();
    let at_kill = acked.lock().unwrap().len();
    wait_for_acked(&acked, at_kill + 60).await;
    fleet.restart(1).await;
    let at_restart = acked.lock().unwrap().len();
    wait_for_acked(&acked, at_restart + 60).await;
    tasks.iter().for_each(|t| t.abort());
    let acked = acked.lock().unwrap().clone();
    let alerts = fleet.wait_for_alerts_of(&acked).await;
    assert_one_id_per_rule_and_event(&alerts);
    assert_each_alert_on_one_replica(&fleet);
    eprintln!(
        "fleet SIGKILL ({backend:?}): {} acknowledged MFA events, {} alert lines over 3 replicas",
        acked.len(),
        alerts.len()
    );
}

async fn the_backend_stopped_and_started_under_load_loses_nothing(backend: Backend) {
    let mut fleet = Fleet::start(backend).await;
    let acked = Arc::new(Mutex::new(Vec::new()));
    let tasks = start_load(&fleet.url, 4, acked.clone());
    wait_for_acked(&acked, 60).await;
    fleet.stop_backend();
    let at_stop = acked.lock().unwrap().len();
    wait_for_acked(&acked, at_stop + 60).await;
    let during_outage = acked.lock().unwrap().len();
    fleet.start_backend().await;
    wait_for_acked(&acked, during_outage + 60).await;
    tasks.iter().for_each(|t| t.abort());
    let acked = acked.lock().unwrap().clone();
    let alerts = fleet.wait_for_alerts_of(&acked).await;
    assert_one_id_per_rule_and_event(&alerts);
    // The backend is back: the replicas report it up again (a pass after it returned claimed keys).
    let client = reqwest::Client::new();
    for (port, ops_port) in fleet.ports.iter().zip(&fleet.ops_ports) {
        let awaited = format!("replica {port} to see {backend:?} again");
        eventually(WAIT, &awaited, async || {
            let ready = readiness(&client, *ops_port).await;
            if ready["cluster"]["backend"] == "up" {
                return Ok(());
            }
            let (batch, _) = batch_with_mfa(4, 1);
            post_envelope(
                &client,
                &format!("http://127.0.0.1:{port}/okta/events"),
                &batch,
            )
            .await;
            Err(ready)
        })
        .await;
    }
    eprintln!(
        "fleet {backend:?} outage: {} acknowledged MFA events ({during_outage} before the backend came back), all alerted",
        acked.len()
    );
}
