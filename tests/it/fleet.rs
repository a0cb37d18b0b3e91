//! Three replicas behind a real load balancer (HAProxy, round robin), sharing a Redis of their
//! own (`[cluster] mode = "redis"`), each with its own spool: Okta's retry landing on another
//! replica alerts once, a correlation whose events are spread over the three replicas fires
//! once (and, with Redis down, waits for it instead of being lost), a replica killed with
//! SIGKILL under load loses no acknowledged event, and Redis stopped and started again under
//! load loses nothing.

use std::collections::HashSet;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde_json::Value;
use tempfile::TempDir;

use factorwatch::okta::samples::{self, Initiator};

use crate::helpers::{
    ChildServer, assert_one_id_per_rule_and_event, batch_with_mfa, envelope, free_port,
    post_envelope, read_alert_lines, start_load, wait_until_drained,
};

/// The built-in correlation "One Actor Reset the MFA of Several Users" (3 users within 1 h).
const RESET_MANY_USERS: &str = "9a4f1c7e-2b6d-4f0a-8e3c-1d5b7a9c2e41";

const WAIT: Duration = Duration::from_secs(60);

/// A process the test started, killed when dropped.
struct Daemon(Child);

impl Drop for Daemon {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// A Redis server of the test's own, so stopping it disturbs no other test.
fn start_redis(port: u16) -> Daemon {
    let child = Command::new("redis-server")
        .args([
            "--port",
            &port.to_string(),
            "--save",
            "",
            "--appendonly",
            "no",
        ])
        .stdout(Stdio::null())
        .spawn()
        .expect("redis-server is installed with the machine's Redis");
    wait_for_port(port);
    Daemon(child)
}

fn wait_for_port(port: u16) {
    let started = Instant::now();
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(started.elapsed() < WAIT, "nothing listens on {port}");
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// HAProxy on `port`, round robin over `replicas`, checking each one's `/readyz`.
fn start_haproxy(dir: &Path, port: u16, replicas: &[u16]) -> Daemon {
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
    // Debian puts it in /usr/sbin, which a non-root PATH may lack.
    let haproxy = ["/usr/sbin/haproxy", "/usr/local/sbin/haproxy"]
        .into_iter()
        .find(|path| Path::new(path).exists())
        .unwrap_or("haproxy");
    let child = Command::new(haproxy)
        .arg("-db")
        .arg("-f")
        .arg(&config)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("haproxy is installed by scripts/test-services.sh");
    wait_for_port(port);
    Daemon(child)
}

/// A replica on `dir` and `port`, sharing the Redis on `redis_port`, logging to a file.
async fn start_replica(dir: &Path, port: u16, redis_port: u16) -> ChildServer {
    let url = format!("redis://127.0.0.1:{redis_port}");
    let log = dir.join("factorwatch.log");
    ChildServer::start_logging_to(dir, port, &[("FACTORWATCH_CLUSTER_URL", &url)], &log).await
}

/// The `/readyz` answer of the replica on `port`.
async fn readiness(client: &reqwest::Client, port: u16) -> Value {
    client
        .get(format!("http://127.0.0.1:{port}/readyz"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap()
}

/// Three replicas, their load balancer and their Redis.
struct Fleet {
    dirs: Vec<TempDir>,
    ports: Vec<u16>,
    replicas: Vec<Option<ChildServer>>,
    redis_port: u16,
    redis: Option<Daemon>,
    _haproxy: Daemon,
    _haproxy_dir: TempDir,
    url: String,
}

impl Fleet {
    async fn start() -> Fleet {
        let redis_port = free_port();
        let redis = start_redis(redis_port);
        let dirs: Vec<TempDir> = (0..3).map(|_| TempDir::new().unwrap()).collect();
        let ports: Vec<u16> = (0..3).map(|_| free_port()).collect();
        let mut replicas = Vec::new();
        for (dir, port) in dirs.iter().zip(&ports) {
            replicas.push(Some(start_replica(dir.path(), *port, redis_port).await));
        }
        let haproxy_dir = TempDir::new().unwrap();
        let lb_port = free_port();
        let haproxy = start_haproxy(haproxy_dir.path(), lb_port, &ports);
        let fleet = Fleet {
            dirs,
            ports,
            replicas,
            redis_port,
            redis: Some(redis),
            _haproxy: haproxy,
            _haproxy_dir: haproxy_dir,
            url: format!("http://127.0.0.1:{lb_port}/okta/events"),
        };
        fleet.wait_until_all_routed().await;
        fleet
    }

    /// Starts replica `n` again on its own spool and port.
    async fn restart(&mut self, n: usize) {
        let replica = start_replica(self.dirs[n].path(), self.ports[n], self.redis_port).await;
        self.replicas[n] = Some(replica);
    }

    /// Waits until HAProxy's health checks see every replica up (three requests in a row reach
    /// three different replicas).
    async fn wait_until_all_routed(&self) {
        let started = Instant::now();
        let client = reqwest::Client::new();
        let health = self.url.replace("/okta/events", "/healthz");
        loop {
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
                return;
            }
            assert!(
                started.elapsed() < WAIT,
                "HAProxy never routed to the replicas"
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// Waits until no replica holds a batch to detect or an alert to deliver.
    async fn wait_until_drained(&self) {
        let client = reqwest::Client::new();
        for port in &self.ports {
            wait_until_drained(&client, ([127, 0, 0, 1], *port).into()).await;
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
        let started = Instant::now();
        loop {
            let alerts = self.alerts();
            let alerted: HashSet<&str> = alerts
                .iter()
                .map(|a| a["event"]["uuid"].as_str().unwrap())
                .collect();
            let missing = acked
                .iter()
                .filter(|u| !alerted.contains(u.as_str()))
                .count();
            if missing == 0 {
                return alerts;
            }
            assert!(
                started.elapsed() < WAIT,
                "{missing} of {} acknowledged MFA events have no alert on any replica",
                acked.len()
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
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
    let started = Instant::now();
    loop {
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
            return;
        }
        assert!(
            started.elapsed() < WAIT,
            "expected {count} single-event alerts on each replica, found {per_replica:?}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Waits until `rule_id` alerted `count` times over the fleet.
async fn wait_for_correlation_alerts(fleet: &Fleet, rule_id: &str, count: usize) {
    let started = Instant::now();
    while alerts_of(fleet, rule_id).len() < count {
        assert!(
            started.elapsed() < WAIT,
            "the correlation raised {} alerts, expected {count}",
            alerts_of(fleet, rule_id).len()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Waits until at least `count` MFA events were acknowledged.
async fn wait_for_acked(acked: &Mutex<Vec<String>>, count: usize) {
    let started = Instant::now();
    while acked.lock().unwrap().len() < count {
        assert!(
            started.elapsed() < WAIT,
            "the load never reached {count} acknowledged events"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
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

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn okta_retries_through_the_load_balancer_alert_once() {
    let fleet = Fleet::start().await;
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

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_correlation_spread_over_three_replicas_fires_once_and_waits_out_a_redis_outage() {
    let mut fleet = Fleet::start().await;
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

    // Redis stops: single-event alerts go on, the correlation waits in the replicas' spools.
    drop(fleet.redis.take());
    reset_three_users_through_three_replicas(&fleet).await;
    wait_for_single_alerts_per_replica(&fleet, 2).await;
    let client = reqwest::Client::new();
    for port in &fleet.ports {
        let ready = readiness(&client, *port).await;
        assert_eq!(ready["ready"], true, "{ready}");
        assert_eq!(ready["cluster"]["backend"], "down", "{ready}");
    }
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert_eq!(alerts_of(&fleet, RESET_MANY_USERS).len(), 1);

    // Redis is back (empty: it keeps nothing on disk); the waiting events meet there.
    fleet.redis = Some(start_redis(fleet.redis_port));
    wait_for_correlation_alerts(&fleet, RESET_MANY_USERS, 2).await;
    fleet.wait_until_drained().await;
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let fired = alerts_of(&fleet, RESET_MANY_USERS);
    assert_eq!(fired.len(), 2, "{fired:#?}");
    assert_eq!(fired[1]["correlation"]["value"], 3.0, "{:#}", fired[1]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_replica_killed_under_load_loses_no_acknowledged_event() {
    let mut fleet = Fleet::start().await;
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
        "fleet SIGKILL: {} acknowledged MFA events, {} alert lines over 3 replicas",
        acked.len(),
        alerts.len()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redis_stopped_and_started_under_load_loses_nothing() {
    let mut fleet = Fleet::start().await;
    let acked = Arc::new(Mutex::new(Vec::new()));
    let tasks = start_load(&fleet.url, 4, acked.clone());
    wait_for_acked(&acked, 60).await;
    drop(fleet.redis.take()); // Redis stops.
    let at_stop = acked.lock().unwrap().len();
    wait_for_acked(&acked, at_stop + 60).await;
    let during_outage = acked.lock().unwrap().len();
    fleet.redis = Some(start_redis(fleet.redis_port));
    wait_for_acked(&acked, during_outage + 60).await;
    tasks.iter().for_each(|t| t.abort());
    let acked = acked.lock().unwrap().clone();
    let alerts = fleet.wait_for_alerts_of(&acked).await;
    assert_one_id_per_rule_and_event(&alerts);
    // Redis is back: the replicas report it up again (a pass after it returned claimed keys).
    let started = Instant::now();
    let client = reqwest::Client::new();
    for port in &fleet.ports {
        loop {
            let ready = readiness(&client, *port).await;
            if ready["cluster"]["backend"] == "up" {
                break;
            }
            assert!(
                started.elapsed() < WAIT,
                "replica {port} never saw Redis again: {ready}"
            );
            let (batch, _) = batch_with_mfa(4, 1);
            post_envelope(
                &client,
                &format!("http://127.0.0.1:{port}/okta/events"),
                &batch,
            )
            .await;
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
    eprintln!(
        "fleet Redis outage: {} acknowledged MFA events ({during_outage} before Redis came back), all alerted",
        acked.len()
    );
}
