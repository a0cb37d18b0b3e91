//! Shared test helpers: start the real server on 127.0.0.1:0 (in-process, or as a child process
//! for crash tests) and talk to it like Okta does.

// Some helpers serve only the tests of broker sinks, which a build without them leaves out.
#![cfg_attr(
    not(all(
        feature = "nats",
        feature = "redis",
        feature = "amqp",
        feature = "mqtt",
        feature = "kafka",
        feature = "sqs"
    )),
    allow(dead_code)
)]

use std::collections::HashSet;
use std::fmt::Display;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use factorwatch::Application;
use factorwatch::config::Config;
use factorwatch::okta::samples::{self, Initiator};
use factorwatch::secret::Secret;
use serde_json::{Value, json};
use tempfile::TempDir;
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

pub use crate::ports::free_port;

/// The secret every test app accepts.
pub const SECRET: &str = "Basic dGVzdDp0ZXN0LXNlY3JldA==";

/// How long [`eventually`] sleeps between two looks.
const POLL_INTERVAL: Duration = Duration::from_millis(20);

/// Polls `condition` every 20 ms until it returns `Ok`, and returns that value. `Err` means "not
/// yet" and carries what was observed instead; after `timeout` the test fails naming `what` was
/// awaited and the last state observed.
pub async fn eventually<T, E: Display>(
    timeout: Duration,
    what: &str,
    mut condition: impl AsyncFnMut() -> Result<T, E>,
) -> T {
    let started = Instant::now();
    loop {
        match condition().await {
            Ok(value) => return value,
            Err(state) => assert!(
                started.elapsed() < timeout,
                "waited {timeout:?} for {what}; last seen: {state}"
            ),
        }
        tokio::time::sleep(POLL_INTERVAL).await;
    }
}

/// A running in-process factorwatch with its own data directory.
pub struct TestApp {
    /// Bound address.
    pub addr: SocketAddr,
    /// The operational listener's address (`/metrics`, the detailed `/readyz`).
    pub ops_addr: SocketAddr,
    /// The admin API's address.
    pub admin_addr: Option<SocketAddr>,
    /// Full hook URL.
    pub hook_url: String,
    /// Owns the data directory (deleted on drop unless kept by the test).
    pub data_dir: TempDir,
    /// An HTTP client.
    pub client: reqwest::Client,
    stop: Option<oneshot::Sender<()>>,
    task: Option<JoinHandle<anyhow::Result<()>>>,
}

/// A configuration for tests: loopback port 0, the given data directory, one secret, fast retries.
pub fn test_config(data_dir: &Path) -> Config {
    let mut config = Config::default();
    config.server.listen = "127.0.0.1:0".parse().unwrap();
    config.storage.data_dir = data_dir.to_owned();
    config.okta.secrets = vec![Secret::new(SECRET)];
    config.log.level = "warn".into();
    config.server.ops_listen = "127.0.0.1:0".parse().unwrap();
    config.server.admin_listen = "127.0.0.1:0".parse().unwrap();
    config.delivery.initial_backoff = Duration::from_millis(50);
    config.delivery.max_backoff = Duration::from_millis(200);
    // With 200 ms backoff, the default 20 attempts last ~4 s: on a loaded machine a broker
    // outage test can outlive them and dead-letter what it waits for.
    config.delivery.max_attempts = 1000;
    // These apps' tests count the alerts of single events; the default correlations (which add
    // alerts on the same events) are tested in correlation.rs and under SIGKILL in durability.rs.
    config.rules.builtin_correlations = false;
    config
}

/// The test configuration with the default alert file (the reference copy of every alert) plus
/// `extra` sinks.
pub fn config_with(data_dir: &Path, extra: Vec<factorwatch::config::SinkConfig>) -> Config {
    let mut config = test_config(data_dir);
    config.sinks = vec![factorwatch::config::SinkConfig::file(
        "alerts-file",
        data_dir.join("alerts.jsonl"),
    )];
    config.sinks.extend(extra);
    config
}

/// Starts an app with the default alert file plus `extra` sinks, on a fresh data directory.
pub async fn spawn_app_with_sinks(extra: Vec<factorwatch::config::SinkConfig>) -> TestApp {
    let data_dir = TempDir::new().unwrap();
    let config = config_with(data_dir.path(), extra);
    spawn_app_with(config, data_dir).await
}

/// Starts an app with the default test configuration.
pub async fn spawn_app() -> TestApp {
    let data_dir = TempDir::new().unwrap();
    let config = test_config(data_dir.path());
    spawn_app_with(config, data_dir).await
}

/// Starts an app with `config`; `data_dir` must be the directory `config` points at.
pub async fn spawn_app_with(config: Config, data_dir: TempDir) -> TestApp {
    factorwatch::telemetry::init_logging(&config.log);
    let app = Application::build(config.clone())
        .await
        .expect("app builds");
    let addr = app.local_addr();
    let ops_addr = app.ops_addr();
    let admin_addr = app.admin_addr();
    let (stop, stopped) = oneshot::channel::<()>();
    let task = tokio::spawn(app.run_until(async {
        let _ = stopped.await;
    }));
    TestApp {
        addr,
        ops_addr,
        admin_addr,
        hook_url: format!("http://{addr}{}", config.server.hook_path),
        data_dir,
        client: reqwest::Client::new(),
        stop: Some(stop),
        task: Some(task),
    }
}

impl TestApp {
    /// Stops the app gracefully and returns its data directory (to start it again on the same spool).
    pub async fn stop(mut self) -> TempDir {
        self.stop.take().unwrap().send(()).unwrap();
        self.task.take().unwrap().await.unwrap().unwrap();
        self.data_dir
    }

    /// Okta's verification GET.
    pub async fn verify(&self, secret: Option<&str>, challenge: Option<&str>) -> reqwest::Response {
        let mut request = self.client.get(&self.hook_url);
        if let Some(secret) = secret {
            request = request.header("Authorization", secret);
        }
        if let Some(challenge) = challenge {
            request = request.header("X-Okta-Verification-Challenge", challenge);
        }
        request.send().await.unwrap()
    }

    /// A POST the way Okta sends it.
    pub async fn post(&self, envelope: &Value) -> reqwest::Response {
        self.post_raw(
            envelope.to_string().into_bytes(),
            "application/json",
            Some(SECRET),
        )
        .await
    }

    /// A POST with full control over body, content type and secret.
    pub async fn post_raw(
        &self,
        body: Vec<u8>,
        content_type: &str,
        secret: Option<&str>,
    ) -> reqwest::Response {
        let mut request = self
            .client
            .post(&self.hook_url)
            .header("Content-Type", content_type)
            .body(body);
        if let Some(secret) = secret {
            request = request.header("Authorization", secret);
        }
        request.send().await.unwrap()
    }

    /// GET on another endpoint of the hook listener.
    pub async fn get(&self, path: &str) -> reqwest::Response {
        self.get_from(self.addr, path).await
    }

    /// GET on the operational listener (`/metrics`, the detailed `/readyz`).
    pub async fn ops_get(&self, path: &str) -> reqwest::Response {
        self.get_from(self.ops_addr, path).await
    }

    async fn get_from(&self, addr: SocketAddr, path: &str) -> reqwest::Response {
        self.client
            .get(format!("http://{addr}{path}"))
            .send()
            .await
            .unwrap()
    }

    /// The default alert file.
    pub fn alerts_path(&self) -> PathBuf {
        self.data_dir.path().join("alerts.jsonl")
    }

    /// Waits until the alert file holds at least `count` alerts.
    pub async fn wait_for_alerts(&self, count: usize) -> Vec<Value> {
        wait_for_alert_lines(&self.alerts_path(), count, Duration::from_secs(20)).await
    }

    /// The value of the counter `name` for `sink` in `/metrics`, 0 when it is absent.
    pub async fn sink_counter(&self, name: &str, sink: &str) -> f64 {
        let text = self.ops_get("/metrics").await.text().await.unwrap();
        let prefix = format!("{name}{{sink=\"{sink}\"}} ");
        text.lines()
            .find_map(|line| line.strip_prefix(&prefix))
            .map_or(0.0, |value| value.trim().parse().unwrap())
    }

    /// Waits until `/metrics` counts a failed delivery for `sink`, then checks that alerts wait
    /// in the outbox and that the failing sink alone keeps the replica ready.
    pub async fn assert_waiting_in_outbox(&self, sink: &str) {
        let awaited = format!("a failed delivery to {sink} in /metrics");
        eventually(Duration::from_secs(30), &awaited, async || {
            let failures = self
                .sink_counter("factorwatch_delivery_failures_total", sink)
                .await;
            if failures >= 1.0 {
                Ok(())
            } else {
                Err(failures)
            }
        })
        .await;
        let ready = self.ops_get("/readyz").await;
        assert!(
            ready.status().is_success(),
            "a failing sink alone keeps /readyz true"
        );
        let ready: Value = ready.json().await.unwrap();
        assert!(
            ready["backlog_bytes"].as_u64().unwrap() > 0,
            "alerts wait in the outbox: {ready}"
        );
    }

    /// Waits until the spool holds no batch nor undelivered alert, so "no alert" can be asserted.
    pub async fn wait_until_drained(&self) {
        wait_until_drained(&self.client, self.ops_addr).await;
    }
}

/// Waits until the server whose operational listener is `ops_addr` holds no batch nor
/// undelivered alert (its `/readyz` `backlog_bytes` is 0).
pub async fn wait_until_drained(client: &reqwest::Client, ops_addr: SocketAddr) {
    wait_for_readyz(client, ops_addr, "drained", |ready| {
        ready["backlog_bytes"] == 0
    })
    .await;
}

/// The detailed `/readyz` answer of the server whose operational listener is `ops_addr`.
pub async fn readyz(client: &reqwest::Client, ops_addr: SocketAddr) -> Value {
    client
        .get(format!("http://{ops_addr}/readyz"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap()
}

/// Polls the detailed `/readyz` of the server whose operational listener is `ops_addr` until
/// `accepts` its body, and returns that body; fails the test if that takes more than 20 s
/// (`what` says what was awaited).
pub async fn wait_for_readyz(
    client: &reqwest::Client,
    ops_addr: SocketAddr,
    what: &str,
    accepts: impl Fn(&Value) -> bool,
) -> Value {
    let awaited = format!("{ops_addr} {what}");
    eventually(Duration::from_secs(20), &awaited, async || {
        let ready = readyz(client, ops_addr).await;
        if accepts(&ready) {
            Ok(ready)
        } else {
            Err(ready)
        }
    })
    .await
}

/// Every complete alert line of a file, parsed (none if the file is missing). A last line
/// without its newline is being written right now, and is left for the next read.
pub fn read_alert_lines(path: &Path) -> Vec<Value> {
    let Ok(text) = std::fs::read_to_string(path) else {
        return Vec::new();
    };
    let complete = text.rfind('\n').map_or("", |end| &text[..end]);
    complete
        .lines()
        .filter(|l| !l.is_empty())
        .map(|l| serde_json::from_str(l).expect("alert line is JSON"))
        .collect()
}

/// Polls a file until it holds at least `count` alerts.
pub async fn wait_for_alert_lines(path: &Path, count: usize, timeout: Duration) -> Vec<Value> {
    let awaited = format!("{count} alerts in {}", path.display());
    eventually(timeout, &awaited, async || {
        let alerts = read_alert_lines(path);
        if alerts.len() >= count {
            Ok(alerts)
        } else {
            Err(format!("only {} arrived", alerts.len()))
        }
    })
    .await
}

/// Polls the alert `files` until every uuid in `acked` has an alert in one of them, and returns
/// all their alerts; fails the test after `timeout`, naming some of the uuids without one.
/// Duplicates can fill a file before the last alert arrives, so this waits on the uuids, not on
/// a count.
pub async fn wait_for_alerts_of(
    files: &[PathBuf],
    acked: &[String],
    timeout: Duration,
) -> Vec<Value> {
    let awaited = format!(
        "an alert for each of {} acknowledged MFA events",
        acked.len()
    );
    eventually(timeout, &awaited, async || {
        let alerts: Vec<Value> = files
            .iter()
            .flat_map(|path| read_alert_lines(path))
            .collect();
        let alerted: HashSet<String> = alerted_uuids(&alerts).into_iter().collect();
        let missing: Vec<&String> = acked.iter().filter(|u| !alerted.contains(*u)).collect();
        if missing.is_empty() {
            Ok(alerts)
        } else {
            let some: Vec<&&String> = missing.iter().take(10).collect();
            Err(format!("{} have none, such as {some:?}", missing.len()))
        }
    })
    .await
}

/// The alert with `id` among `alerts`; fails the test naming the id when there is none.
pub fn alert_by_id<'a>(alerts: &'a [Value], id: &str) -> &'a Value {
    alerts
        .iter()
        .find(|alert| alert["id"] == id)
        .unwrap_or_else(|| panic!("{id} is the id of no alert in the file sink"))
}

/// The `event.uuid` of every alert.
pub fn alerted_uuids(alerts: &[Value]) -> Vec<String> {
    alerts
        .iter()
        .map(|a| a["event"]["uuid"].as_str().unwrap().to_owned())
        .collect()
}

/// A fresh name for what one test makes on a shared server: `prefix`, a dash and a new uuid, so
/// runs never see each other's.
pub fn unique(prefix: &str) -> String {
    format!("{prefix}-{}", uuid::Uuid::new_v4().simple())
}

/// An envelope from the test org holding `events`.
pub fn envelope(events: Vec<Value>) -> Value {
    samples::envelope("acme.okta.com", "whoTEST000000000001", events)
}

/// A batch of `size` events with exactly `mfa` MFA resets in it; returns it and the MFA uuids.
pub fn batch_with_mfa(size: usize, mfa: usize) -> (Value, Vec<String>) {
    let users = samples::users();
    let mut events: Vec<Value> = (0..size - mfa)
        .map(|i| samples::session_start(&users[i % 3], "198.51.100.7"))
        .collect();
    let mut uuids = Vec::new();
    for i in 0..mfa {
        let event = samples::mfa_factor_deactivate(
            &users[i % 3],
            "OKTA_VERIFY_PUSH",
            Initiator::Admin,
            &uuid::Uuid::new_v4().to_string(),
        );
        uuids.push(event["uuid"].as_str().unwrap().to_owned());
        // Spread MFA events through the batch: every event must be evaluated, not only the first.
        let position = (i * size / mfa.max(1)).min(events.len());
        events.insert(position, event);
    }
    (envelope(events), uuids)
}

/// A factorwatch child process, for tests that kill it.
pub struct ChildServer {
    /// The process.
    pub child: Child,
    /// The address it listens on.
    pub addr: SocketAddr,
    /// Its operational listener's address (`/metrics`, the detailed `/readyz`).
    pub ops_addr: SocketAddr,
    /// Its hook URL.
    pub hook_url: String,
}

impl ChildServer {
    /// Starts `factorwatch serve` on `data_dir` and `port`, and waits until /healthz answers.
    pub async fn start(data_dir: &Path, port: u16) -> ChildServer {
        Self::start_with(data_dir, port, &[]).await
    }

    /// The `factorwatch serve` command these tests run: `data_dir`, `port`, the test secret, the
    /// operational listener and the admin API on free ports (unless `env` names them), logs at
    /// warn; stdout discarded. [`ops_addr_of`] reads back the operational listener's address.
    pub fn command(data_dir: &Path, port: u16, env: &[(&str, &str)]) -> Command {
        let mut command = Command::new(env!("CARGO_BIN_EXE_factorwatch"));
        command
            .arg("serve")
            .env_remove("FACTORWATCH_CONFIG")
            // Before `env`, which may name a port the CLI is then pointed at.
            .env("FACTORWATCH_ADMIN_LISTEN", "127.0.0.1:0")
            .env(
                "FACTORWATCH_OPS_LISTEN",
                format!("127.0.0.1:{}", free_port()),
            )
            // Before `env` too: a test of secrets files sets it empty, so that only the file's
            // secrets are accepted.
            .env("FACTORWATCH_OKTA_SECRETS", SECRET)
            .envs(env.iter().copied())
            .env("FACTORWATCH_LISTEN", format!("127.0.0.1:{port}"))
            .env("FACTORWATCH_DATA_DIR", data_dir)
            .env("RUST_LOG", "warn")
            .stdout(Stdio::null());
        command
    }

    /// As [`ChildServer::start`], with extra environment variables (such as FACTORWATCH_CONFIG).
    pub async fn start_with(data_dir: &Path, port: u16, env: &[(&str, &str)]) -> ChildServer {
        let mut command = Self::command(data_dir, port, env);
        let child = command
            .stderr(Stdio::piped())
            .spawn()
            .expect("factorwatch binary starts");
        Self::started(child, port, ops_addr_of(&command)).await
    }

    /// A server whose log goes to `log` instead of a pipe (for long or noisy runs, which would
    /// fill a pipe nobody reads).
    pub async fn start_logging_to(
        data_dir: &Path,
        port: u16,
        env: &[(&str, &str)],
        log: &Path,
    ) -> ChildServer {
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(log)
            .unwrap();
        let mut command = Self::command(data_dir, port, env);
        let child = command
            .stderr(log)
            .spawn()
            .expect("factorwatch binary starts");
        Self::started(child, port, ops_addr_of(&command)).await
    }

    async fn started(child: Child, port: u16, ops_addr: SocketAddr) -> ChildServer {
        let addr: SocketAddr = format!("127.0.0.1:{port}").parse().unwrap();
        let mut server = ChildServer {
            child,
            addr,
            ops_addr,
            hook_url: format!("http://{addr}/okta/events"),
        };
        server.wait_healthy().await;
        // What answered must be this child, not another test's server on the same port.
        if let Some(status) = server.child.try_wait().unwrap() {
            panic!(
                "factorwatch on {addr} exited ({status}), yet something answered /healthz there"
            );
        }
        server
    }

    async fn wait_healthy(&self) {
        wait_for_healthz(self.addr).await;
    }
}

/// The operational listener's address `command` (from [`ChildServer::command`]) gives the server.
pub fn ops_addr_of(command: &Command) -> SocketAddr {
    let value = command
        .get_envs()
        .filter(|(name, _)| *name == "FACTORWATCH_OPS_LISTEN")
        .find_map(|(_, value)| value)
        .expect("ChildServer::command sets FACTORWATCH_OPS_LISTEN");
    value.to_str().unwrap().parse().unwrap()
}

/// Waits until the server at `addr` answers `/healthz`.
pub async fn wait_for_healthz(addr: SocketAddr) {
    let url = format!("http://{addr}/healthz");
    let awaited = format!("factorwatch up on {addr}");
    eventually(Duration::from_secs(20), &awaited, async || {
        reqwest::get(&url).await
    })
    .await;
}

impl Drop for ChildServer {
    /// A test that fails midway must not leave its server running (holding ports, mounts).
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// POSTs an envelope with the test secret; true when it was acknowledged (2xx).
pub async fn post_envelope(client: &reqwest::Client, url: &str, envelope: &Value) -> bool {
    client
        .post(url)
        .header("Authorization", SECRET)
        .json(envelope)
        .send()
        .await
        .is_ok_and(|r| r.status().is_success())
}

/// A minimal event: the given type and uuid, nothing else.
pub fn bare_event(event_type: &str, uuid: &str) -> Value {
    json!({"uuid": uuid, "eventType": event_type})
}

/// Asserts that each (rule, event) pair has one alert id, however often it was delivered (the
/// duplicates a crash leaves carry the same id); returns the number of distinct alerts.
pub fn assert_one_id_per_rule_and_event(alerts: &[Value]) -> usize {
    let ids: std::collections::HashSet<&str> =
        alerts.iter().map(|a| a["id"].as_str().unwrap()).collect();
    let rule_events: std::collections::HashSet<(&str, &str)> = alerts
        .iter()
        .map(|a| {
            (
                a["rule"]["id"].as_str().unwrap(),
                a["event"]["uuid"].as_str().unwrap(),
            )
        })
        .collect();
    assert_eq!(
        ids.len(),
        rule_events.len(),
        "one alert id per rule and event"
    );
    ids.len()
}

/// Posts batches to `url` from `concurrency` tasks until the tasks are aborted, recording the MFA
/// uuids of every acknowledged batch.
pub fn start_load(
    url: &str,
    concurrency: usize,
    acked: std::sync::Arc<std::sync::Mutex<Vec<String>>>,
) -> Vec<JoinHandle<()>> {
    (0..concurrency)
        .map(|_| {
            let (url, acked) = (url.to_owned(), acked.clone());
            tokio::spawn(async move {
                let client = reqwest::Client::new();
                loop {
                    let (batch, uuids) = batch_with_mfa(10, 2);
                    if post_envelope(&client, &url, &batch).await {
                        acked.lock().unwrap().extend(uuids);
                    }
                }
            })
        })
        .collect()
}

/// Runs `factorwatch ARGS --config CONFIG` with `env` (the CLI, as a user would, against a
/// service told its admin address by `config` or `env`); returns (success, stdout, stderr).
/// The child runs on a blocking thread, so servers this test runs in-process (the Okta
/// stand-in, an app) keep answering meanwhile.
pub async fn run_cli(args: &[&str], config: &Path, env: &[(&str, &str)]) -> (bool, String, String) {
    let mut command = Command::new(env!("CARGO_BIN_EXE_factorwatch"));
    command.args(args).arg("--config").arg(config);
    command.env_remove("FACTORWATCH_ADMIN_LISTEN");
    command.envs(env.iter().copied());
    let output = tokio::task::spawn_blocking(move || command.output().unwrap())
        .await
        .unwrap();
    (
        output.status.success(),
        String::from_utf8_lossy(&output.stdout).into_owned(),
        String::from_utf8_lossy(&output.stderr).into_owned(),
    )
}
