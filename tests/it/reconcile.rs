//! Reconciliation with the System Log (`[okta.reconcile]`), against the Okta stand-in: what the
//! hook missed alerts once from the log, what the hook delivered alerts once from the hook, the
//! events no hook can deliver alert at all, a crash while polling repeats and skips nothing, rate
//! limits are obeyed, each misconfiguration says what to fix, and in a cluster one replica polls
//! and another takes over.

use std::collections::{HashMap, HashSet};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use factorwatch::okta::samples::{self, Initiator};
use serde_json::{Value, json};
use tempfile::TempDir;

use crate::backends::{Backend, on_each_backend};
use crate::helpers::{
    ChildServer, eventually, free_port, post_envelope, read_alert_lines, readyz, run_cli,
    wait_for_alert_lines, wait_for_alerts_of, wait_for_readyz,
};
use crate::okta_standin::{Actor, HookSeed, OktaStandIn};

/// The API Services app the tests register on the stand-in.
pub(crate) const CLIENT_ID: &str = "0oafactorwatchtest01";
/// The id of its key.
const KEY_ID: &str = "factorwatch-test-1";
/// How long the tests wait for what should take a few polls.
pub(crate) const SOON: Duration = Duration::from_secs(30);

/// An Okta org (the stand-in) with factorwatch's service app registered, and the app's private
/// key in a file.
pub(crate) struct Org {
    pub(crate) okta: OktaStandIn,
    keys: TempDir,
}

impl Org {
    /// The stand-in with the app granted `scopes`, its key pair made here (EC P-256).
    pub(crate) async fn with_scopes(scopes: &[&str]) -> Org {
        let okta = OktaStandIn::start().await;
        let key = rcgen::KeyPair::generate().unwrap();
        okta.add_service_app(
            CLIENT_ID,
            &key.public_key_pem(),
            Some(KEY_ID),
            scopes,
            false,
        );
        let keys = TempDir::new().unwrap();
        std::fs::write(keys.path().join("okta.pem"), key.serialize_pem()).unwrap();
        Org { okta, keys }
    }

    pub(crate) async fn new() -> Org {
        Self::with_scopes(&["okta.logs.read"]).await
    }

    /// A factorwatch configuration reading this org's System Log every 200 ms, with a 1 s grace
    /// for the hook; `extra` is appended (more sections).
    pub(crate) fn config(&self, data_dir: &Path, extra: &str) -> PathBuf {
        self.config_for(&self.okta.org_url(), data_dir, extra)
    }

    /// As [`Org::config`], the hook found silent after `silence_after`.
    pub(crate) fn config_with_silence(
        &self,
        data_dir: &Path,
        silence_after: &str,
        extra: &str,
    ) -> PathBuf {
        let silence = format!("silence_after = \"{silence_after}\"\n");
        self.write_config(&self.okta.org_url(), data_dir, &silence, extra)
    }

    fn config_for(&self, org_url: &str, data_dir: &Path, extra: &str) -> PathBuf {
        self.write_config(org_url, data_dir, "", extra)
    }

    /// The configuration file: `reconcile` goes into `[okta.reconcile]`, `extra` at the end.
    fn write_config(
        &self,
        org_url: &str,
        data_dir: &Path,
        reconcile: &str,
        extra: &str,
    ) -> PathBuf {
        let key = self.keys.path().join("okta.pem");
        let text = format!(
            r#"[okta.api]
org_url = "{org_url}"
client_id = "{CLIENT_ID}"
private_key_file = "{}"
key_id = "{KEY_ID}"
timeout = "5s"

[okta.reconcile]
enabled = true
interval = "200ms"
grace = "1s"
page_size = 100
lease = "2s"
{reconcile}
[rules]
builtin_correlations = false
{extra}
"#,
            key.display()
        );
        let path = data_dir.join("factorwatch.toml");
        std::fs::write(&path, text).unwrap();
        path
    }

    /// The `/api/v1/logs` requests the stand-in received.
    pub(crate) fn log_requests(&self) -> Vec<crate::okta_standin::Recorded> {
        let requests = self.okta.requests();
        requests
            .into_iter()
            .filter(|request| request.path == "/api/v1/logs")
            .collect()
    }

    pub(crate) fn assert_spec_kept(&self) {
        assert_eq!(self.okta.spec_violations(), Vec::<String>::new());
    }
}

/// `factorwatch serve` with `config`, its log in `<data_dir>/factorwatch.log`.
pub(crate) async fn serve(data_dir: &Path, config: &Path, env: &[(&str, &str)]) -> ChildServer {
    let config = config.display().to_string();
    let mut env = env.to_vec();
    env.push(("FACTORWATCH_CONFIG", &config));
    let log = data_dir.join("factorwatch.log");
    ChildServer::start_logging_to(data_dir, free_port(), &env, &log).await
}

/// Two replicas sharing `backend` under a key prefix of their own (named after `name`), each
/// serving the configuration `config` writes into its data directory, given the `[cluster]`
/// section; with their data directories and the prefix (for `Backend::forget`).
pub(crate) async fn two_replicas(
    backend: Backend,
    name: &str,
    config: impl Fn(&Path, &str) -> PathBuf,
) -> ([TempDir; 2], Vec<ChildServer>, String) {
    let prefix = format!("{}_", crate::helpers::unique(name));
    let cluster = format!("[cluster]\nkey_prefix = \"{prefix}\"");
    let url = backend.url(backend.machine_port());
    let env = [("FACTORWATCH_CLUSTER_URL", url.as_str())];
    let dirs = [TempDir::new().unwrap(), TempDir::new().unwrap()];
    let mut replicas = Vec::new();
    for dir in &dirs {
        let config = config(dir.path(), &cluster);
        replicas.push(serve(dir.path(), &config, &env).await);
    }
    (dirs, replicas, prefix)
}

/// An MFA reset of a sample user by an admin, published `ago` before now.
pub(crate) fn mfa_reset(ago: Duration) -> Value {
    let users = samples::users();
    let transaction = uuid::Uuid::new_v4().to_string();
    let mut event = samples::mfa_factor_deactivate(
        &users[0],
        "OKTA_VERIFY_PUSH",
        Initiator::Admin,
        &transaction,
    );
    let published = factorwatch::clock::now_ms() - ago.as_millis() as u64;
    event["published"] = factorwatch::clock::rfc3339(published).into();
    event
}

fn uuid_of(event: &Value) -> String {
    event["uuid"].as_str().unwrap().to_owned()
}

pub(crate) fn uuids(events: &[Value]) -> Vec<String> {
    events.iter().map(uuid_of).collect()
}

/// The alerts of `alerts` about each uuid, by uuid.
fn by_uuid(alerts: &[Value]) -> HashMap<String, Vec<&Value>> {
    let mut found: HashMap<String, Vec<&Value>> = HashMap::new();
    for alert in alerts {
        let uuid = alert["event"]["uuid"].as_str().unwrap().to_owned();
        found.entry(uuid).or_default().push(alert);
    }
    found
}

/// The value of the metric line starting with `series` in `/metrics` (0 when absent).
pub(crate) async fn metric(server: &ChildServer, series: &str) -> f64 {
    let text = reqwest::get(format!("http://{}/metrics", server.ops_addr))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    text.lines()
        .find_map(|line| line.strip_prefix(series)?.trim().parse().ok())
        .unwrap_or(0.0)
}

#[tokio::test]
async fn what_the_hook_missed_alerts_once_from_the_system_log_and_what_it_delivered_from_the_hook()
{
    let org = Org::new().await;
    let data = TempDir::new().unwrap();
    let server = serve(data.path(), &org.config(data.path(), ""), &[]).await;
    let alerts_file = data.path().join("alerts.jsonl");

    // The hook is down for ten minutes while Okta logs an MFA reset every minute.
    let missed: Vec<Value> = (0..10)
        .map(|minute| mfa_reset(Duration::from_secs(600 - 60 * minute)))
        .collect();
    org.okta.publish(missed.clone());
    let alerts =
        wait_for_alerts_of(std::slice::from_ref(&alerts_file), &uuids(&missed), SOON).await;
    for (uuid, alerts) in by_uuid(&alerts) {
        assert_eq!(alerts.len(), 1, "{uuid} alerted {} times", alerts.len());
        let alert = alerts[0];
        assert_eq!(alert["source"], "system_log", "{alert}");
        let delay = alert["arrival_delay_ms"].as_u64().unwrap();
        assert!(
            delay >= 59_000,
            "published a minute ago or more, yet {delay} ms late"
        );
    }

    // The hook is back: what it delivers, Okta also logs.
    let delivered: Vec<Value> = (0..5).map(|_| mfa_reset(Duration::ZERO)).collect();
    let envelope = crate::helpers::envelope(delivered.clone());
    assert!(post_envelope(&reqwest::Client::new(), &server.hook_url, &envelope).await);
    org.okta.publish(delivered.clone());
    let all: Vec<String> = uuids(&missed)
        .into_iter()
        .chain(uuids(&delivered))
        .collect();
    wait_for_alerts_of(std::slice::from_ref(&alerts_file), &all, SOON).await;
    // The poller's copies wait out the grace (1 s), then meet the hook's claims.
    let read_all = |ready: &Value| ready["reconcile"]["events_read"].as_u64() >= Some(15);
    wait_for_readyz(
        &reqwest::Client::new(),
        server.ops_addr,
        "all read",
        read_all,
    )
    .await;
    tokio::time::sleep(Duration::from_secs(3)).await;
    let alerts = read_alert_lines(&alerts_file);
    assert_eq!(
        alerts.len(),
        15,
        "one alert per event, whichever way it came"
    );
    let found = by_uuid(&alerts);
    for uuid in uuids(&delivered) {
        assert_eq!(found[&uuid][0]["source"], "event_hook");
    }

    let recovered = metric(&server, "factorwatch_okta_events_recovered_total").await;
    assert_eq!(
        recovered, 10.0,
        "the ten events the hook missed, and only those"
    );
    let ready = readyz(&reqwest::Client::new(), server.ops_addr).await;
    assert_eq!(ready["reconcile"]["state"], "polling", "{ready}");
    assert_eq!(ready["reconcile"]["last_error"], Value::Null, "{ready}");
    assert_eq!(ready["reconcile"]["lag_seconds"], 0, "{ready}");
    let log = std::fs::read_to_string(data.path().join("factorwatch.log")).unwrap();
    assert!(log.contains("the System Log held events the event hook never delivered"));
    org.assert_spec_kept();
}

#[tokio::test]
async fn mfa_turned_off_for_the_whole_org_alerts_through_the_poller() {
    let org = Org::new().await;
    let data = TempDir::new().unwrap();
    let server = serve(data.path(), &org.config(data.path(), ""), &[]).await;
    let mut org_wide = mfa_reset(Duration::from_secs(5));
    org_wide["eventType"] = "system.mfa.factor.deactivate".into();
    org_wide["displayMessage"] = "Deactivate factor for org".into();
    let mut hook_deactivated = mfa_reset(Duration::from_secs(5));
    hook_deactivated["eventType"] = "event_hook.deactivated".into();
    hook_deactivated["target"] = json!([{"id": "whoa1b2c3d4e5f6g7h8i", "type": "EventHook",
        "alternateId": "factorwatch", "displayName": "factorwatch"}]);
    org.okta.publish(vec![hook_deactivated, org_wide.clone()]);

    let alerts = wait_for_alert_lines(&data.path().join("alerts.jsonl"), 2, SOON).await;
    assert_eq!(alerts.len(), 2, "{alerts:#?}");
    let alert = alert_of_type(&alerts, "system.mfa.factor.deactivate");
    assert_eq!(alert["event"]["uuid"], org_wide["uuid"]);
    assert_eq!(
        alert["rule"]["title"],
        "Okta MFA Factor Disabled for the Whole Org"
    );
    assert_eq!(alert["level"], "high");
    assert_eq!(alert["source"], "system_log");
    let hook_alert = alert_of_type(&alerts, "event_hook.deactivated");
    assert_eq!(hook_alert["level"], "critical");

    // The poller asked for the rules' event types, and for what a hook can never report.
    let filter = org.log_requests()[0].param("filter").unwrap().to_owned();
    for wanted in [
        r#"eventType eq "system.mfa.factor.deactivate""#,
        r#"eventType eq "user.mfa.factor.deactivate""#,
        r#"eventType sw "event_hook.""#,
    ] {
        assert!(filter.contains(wanted), "{wanted} not in {filter}");
    }
    // Neither is an event a hook could have delivered: nothing counts as recovered.
    let ready = readyz(&reqwest::Client::new(), server.ops_addr).await;
    assert_eq!(ready["reconcile"]["events_read"], 2, "{ready}");
    assert_eq!(
        metric(&server, "factorwatch_okta_events_recovered_total").await,
        0.0
    );
    org.assert_spec_kept();
}

/// The one alert of `alerts` about an event of `event_type`.
pub(crate) fn alert_of_type<'a>(alerts: &'a [Value], event_type: &str) -> &'a Value {
    let found: Vec<&Value> = alerts
        .iter()
        .filter(|alert| alert["event"]["eventType"] == event_type)
        .collect();
    assert_eq!(found.len(), 1, "alerts about {event_type}: {alerts:#?}");
    found[0]
}

#[tokio::test]
async fn tampering_with_the_hook_or_a_log_stream_alerts_through_the_poller_once_each() {
    let org = Org::new().await;
    let seed = HookSeed::new(
        "factorwatch",
        "https://factorwatch.example.com/okta/events",
        &["user.mfa.factor.deactivate", "user.mfa.factor.reset_all"],
        "hook-secret",
    );
    let hook = org.okta.add_event_hook(&seed);
    let data = TempDir::new().unwrap();
    let _server = serve(data.path(), &org.config(data.path(), ""), &[]).await;

    // An attacker with an admin session re-points the hook, then deletes it (the console
    // deactivates it first), and cuts the SIEM's log stream.
    let attacker = Actor::admin(&samples::users()[1]);
    org.okta.edit_event_hook(&hook, &attacker, |hook| {
        hook["channel"]["config"]["uri"] = json!("https://collector.attacker.example/okta");
    });
    org.okta.remove_event_hook(&hook, &attacker);
    let mut stream_deleted = mfa_reset(Duration::from_secs(1));
    stream_deleted["eventType"] = "system.log_stream.lifecycle.delete".into();
    stream_deleted["displayMessage"] = "Delete log stream".into();
    org.okta.publish(vec![stream_deleted]);

    let alerts_file = data.path().join("alerts.jsonl");
    let alerts = wait_for_alert_lines(&alerts_file, 4, SOON).await;
    for (event_type, level) in [
        ("event_hook.updated", "critical"),
        ("event_hook.deactivated", "critical"),
        ("event_hook.deleted", "critical"),
    ] {
        let alert = alert_of_type(&alerts, event_type);
        assert_eq!(alert["level"], level, "{alert}");
        assert_eq!(alert["source"], "system_log", "{alert}");
        assert_eq!(
            alert["actor"]["alternateId"], attacker.alternate_id,
            "{alert}"
        );
        assert_eq!(
            alert["rule"]["title"],
            "Okta Event Hook of factorwatch Deactivated, Deleted or Changed"
        );
    }
    let stream = alert_of_type(&alerts, "system.log_stream.lifecycle.delete");
    assert_eq!(stream["level"], "high");
    // More polls bring nothing twice.
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert_eq!(read_alert_lines(&alerts_file).len(), 4);
    org.assert_spec_kept();
}

#[tokio::test]
async fn a_crash_while_polling_skips_nothing_and_alerts_nothing_twice() {
    let org = Org::new().await;
    let events: Vec<Value> = (0..1500)
        .map(|n| mfa_reset(Duration::from_millis(3_600_000 - n)))
        .collect();
    org.okta.publish(events.clone());
    // Slow pages, so that the kill lands while pages are still being read.
    org.okta.delay_next(16, Duration::from_millis(300));
    let data = TempDir::new().unwrap();
    let config = org.config(data.path(), "");
    let alerts_file = data.path().join("alerts.jsonl");

    let mut server = serve(data.path(), &config, &[]).await;
    wait_for_alert_lines(&alerts_file, 100, SOON).await;
    server.child.kill().unwrap();
    server.child.wait().unwrap();
    let pages_before = org.log_requests().len();
    assert!(
        pages_before < 16,
        "the kill came after the last page ({pages_before} requests)"
    );

    let _server = serve(data.path(), &config, &[]).await;
    let alerts = wait_for_alerts_of(&[alerts_file], &uuids(&events), Duration::from_secs(60)).await;
    let ids: HashSet<&str> = alerts.iter().map(|a| a["id"].as_str().unwrap()).collect();
    assert_eq!(
        ids.len(),
        events.len(),
        "one alert id per event, none twice"
    );
    org.assert_spec_kept();
}

#[tokio::test]
async fn the_poller_keeps_to_its_share_of_the_rate_limit_and_waits_out_a_429() {
    let org = Org::new().await;
    // Four requests every two seconds; factorwatch's share (half) is two.
    org.okta.set_rate_limit(4, Duration::from_secs(2));
    let events: Vec<Value> = (0..600)
        .map(|n| mfa_reset(Duration::from_millis(600_000 - n)))
        .collect();
    org.okta.publish(events.clone());
    org.okta.fail_next(1, 429);
    let data = TempDir::new().unwrap();
    let started = Instant::now();
    let _server = serve(data.path(), &org.config(data.path(), ""), &[]).await;
    let alerts_file = data.path().join("alerts.jsonl");
    wait_for_alerts_of(&[alerts_file], &uuids(&events), Duration::from_secs(60)).await;

    let requests = org.log_requests();
    let refused: Vec<_> = requests.iter().filter(|r| r.status == Some(429)).collect();
    assert_eq!(
        refused.len(),
        1,
        "only the 429 the test forced: the poller never ran out"
    );
    // Seven pages at two a window take at least three windows after the first.
    assert!(
        started.elapsed() >= Duration::from_secs(5),
        "{:?}",
        started.elapsed()
    );
    for (n, request) in requests.iter().enumerate() {
        let within = requests[n..]
            .iter()
            .take_while(|later| later.at.duration_since(request.at) < Duration::from_secs(2))
            .count();
        assert!(
            within <= 4,
            "{within} requests within one window of two seconds"
        );
    }
    org.assert_spec_kept();
}

/// One misconfiguration, and what `check-config`, the log and `/readyz` must say about it.
struct Misconfigured {
    org: Org,
    org_url: String,
    says: &'static str,
}

#[tokio::test]
async fn bad_credentials_a_missing_scope_and_a_wrong_org_url_each_say_what_to_fix() {
    let wrong_key = Org::new().await;
    // The app holds another key than the one factorwatch signs with.
    let other = rcgen::KeyPair::generate().unwrap();
    wrong_key.okta.add_service_app(
        CLIENT_ID,
        &other.public_key_pem(),
        Some(KEY_ID),
        &["okta.logs.read"],
        false,
    );
    let no_scope = Org::with_scopes(&[]).await;
    let nowhere = Org::new().await;
    let cases = [
        Misconfigured {
            org_url: wrong_key.okta.org_url(),
            org: wrong_key,
            says: "check client_id, key_id and the public key registered on the app",
        },
        Misconfigured {
            org_url: no_scope.okta.org_url(),
            org: no_scope,
            says: "okta.logs.read",
        },
        Misconfigured {
            org_url: format!("http://127.0.0.1:{}", free_port()),
            org: nowhere,
            says: "check the network path to org_url",
        },
    ];
    for case in cases {
        let data = TempDir::new().unwrap();
        let config = case.org.config_for(&case.org_url, data.path(), "");
        // On a blocking thread: the stand-in answers on this test's runtime meanwhile.
        let mut command = std::process::Command::new(env!("CARGO_BIN_EXE_factorwatch"));
        command
            .args(["check-config", "--config"])
            .arg(&config)
            .env("FACTORWATCH_OKTA_SECRETS", crate::helpers::SECRET);
        let check = tokio::task::spawn_blocking(move || command.output().unwrap())
            .await
            .unwrap();
        let stderr = String::from_utf8_lossy(&check.stderr);
        assert!(
            !check.status.success(),
            "check-config accepted it: {stderr}"
        );
        assert!(stderr.contains(case.says), "{} not in: {stderr}", case.says);
        assert!(stderr.contains("cannot read the System Log"), "{stderr}");

        let server = serve(data.path(), &config, &[]).await;
        let failing = |ready: &Value| ready["reconcile"]["state"] == "failing";
        let ready =
            wait_for_readyz(&reqwest::Client::new(), server.ops_addr, "failing", failing).await;
        let error = ready["reconcile"]["last_error"]
            .as_str()
            .unwrap_or_default();
        assert!(
            error.contains(case.says),
            "{} not in /readyz: {ready}",
            case.says
        );
        assert_eq!(
            ready["ready"], true,
            "the hook path works without the poller"
        );
        let log = data.path().join("factorwatch.log");
        eventually(SOON, "the error in the log", async || {
            let text = std::fs::read_to_string(&log).unwrap_or_default();
            match text.contains("System Log poll failed") && text.contains(case.says) {
                true => Ok(()),
                false => Err(text),
            }
        })
        .await;
    }
}

on_each_backend!(
    #[tokio::test]
    one_replica_polls_and_another_takes_over_when_it_dies,
);

async fn one_replica_polls_and_another_takes_over_when_it_dies(backend: Backend) {
    let org = Org::new().await;
    let (dirs, mut replicas, prefix) = two_replicas(backend, "fw-reconcile", |dir, cluster| {
        org.config(dir, cluster)
    })
    .await;
    let files: Vec<PathBuf> = dirs.iter().map(|d| d.path().join("alerts.jsonl")).collect();

    let first: Vec<Value> = (0..20)
        .map(|n| mfa_reset(Duration::from_secs(300 - n)))
        .collect();
    org.okta.publish(first.clone());
    wait_for_alerts_of(&files, &uuids(&first), SOON).await;
    let mut states = Vec::new();
    for replica in &replicas {
        states.push(
            readyz(&reqwest::Client::new(), replica.ops_addr).await["reconcile"]["state"].clone(),
        );
    }
    let polling = states
        .iter()
        .position(|s| s == "polling")
        .expect("one replica polls");
    assert_eq!(states[1 - polling], "standby", "{states:?}");

    let mut gone = replicas.remove(polling);
    gone.child.kill().unwrap();
    gone.child.wait().unwrap();
    let killed = Instant::now();
    let second: Vec<Value> = (0..20)
        .map(|n| mfa_reset(Duration::from_secs(60 - n)))
        .collect();
    org.okta.publish(second.clone());
    let takes_over = |ready: &Value| ready["reconcile"]["state"] == "polling";
    wait_for_readyz(
        &reqwest::Client::new(),
        replicas[0].ops_addr,
        "polling",
        takes_over,
    )
    .await;
    let took = killed.elapsed();
    assert!(
        took < Duration::from_secs(5),
        "took over after {took:?} (lease 2 s)"
    );

    let all: Vec<String> = uuids(&first).into_iter().chain(uuids(&second)).collect();
    wait_for_alerts_of(&files, &all, SOON).await;
    tokio::time::sleep(Duration::from_secs(2)).await;
    let alerts: Vec<Value> = files.iter().flat_map(|f| read_alert_lines(f)).collect();
    assert_eq!(
        alerts.len(),
        40,
        "no gap and no second alert: {}",
        alerts.len()
    );
    backend.forget(&prefix).await;
}

/// The info string of the examples of docs/okta-setup.md these tests check (the docs tests run
/// the `console,ignore` examples against a server of their own, with no Okta).
const DOC_EXAMPLE: &str = "console,ignore,okta-stand-in";

/// Checks that the example of docs/okta-setup.md whose command starts with `command` shows
/// `output`, once each `(found, shown)` pair is replaced.
pub(crate) fn assert_documented(command: &str, output: &str, shown_as: &[(&str, &str)]) {
    let doc = Path::new("docs/okta-setup.md");
    let block = crate::markdown::blocks(doc)
        .into_iter()
        .find(|block| block.info == DOC_EXAMPLE && block.body.starts_with(&format!("$ {command}")))
        .unwrap_or_else(|| panic!("{} has no example of `{command}`", doc.display()));
    let shown = block.body.split_once('\n').map_or("", |(_, shown)| shown);
    let output = shown_as
        .iter()
        .fold(output.to_owned(), |text, (found, shown)| {
            text.replace(found, shown)
        });
    assert!(
        crate::markdown::matches(shown, &output),
        "{}:{}: the example no longer shows what `{command}` prints:\n{output}",
        doc.display(),
        block.line
    );
}

/// The number after `label` in the backfill summary `stdout` (`  new:   4  (...)`).
fn summary_count(stdout: &str, label: &str) -> u64 {
    stdout
        .lines()
        .find_map(|line| line.trim().strip_prefix(label))
        .and_then(|rest| rest.split_whitespace().next())
        .and_then(|count| count.parse().ok())
        .unwrap_or_else(|| panic!("no {label:?} in the summary:\n{stdout}"))
}

/// Hours of MFA resets in the org's log, two of which the hook delivered when they happened.
async fn history_with_some_delivered(org: &Org, server: &ChildServer) -> (Vec<Value>, Vec<Value>) {
    let history: Vec<Value> = (0..6)
        .map(|hour| mfa_reset(Duration::from_secs(3_600 * (6 - hour))))
        .collect();
    let noise: Vec<Value> = (0..20)
        .map(|_| samples::session_start(&samples::users()[1], "198.51.100.7"))
        .collect();
    org.okta
        .publish(history.iter().chain(&noise).cloned().collect());
    let delivered = history[..2].to_vec();
    let envelope = crate::helpers::envelope(delivered.clone());
    assert!(post_envelope(&reqwest::Client::new(), &server.hook_url, &envelope).await);
    (history, delivered)
}

#[tokio::test]
async fn backfill_detects_a_window_once_and_can_be_run_again() {
    let org = Org::new().await;
    let data = TempDir::new().unwrap();
    let config = org.config(data.path(), "");
    let text = std::fs::read_to_string(&config).unwrap();
    std::fs::write(&config, text.replace("enabled = true", "enabled = false")).unwrap();
    let admin = format!("127.0.0.1:{}", free_port());
    let env = [("FACTORWATCH_ADMIN_LISTEN", admin.as_str())];
    let server = serve(data.path(), &config, &env).await;
    let alerts_file = data.path().join("alerts.jsonl");
    let (history, delivered) = history_with_some_delivered(&org, &server).await;
    wait_for_alerts_of(std::slice::from_ref(&alerts_file), &uuids(&delivered), SOON).await;

    let (ok, stdout, stderr) = run_cli(&["backfill", "--since", "7h"], &config, &env).await;
    assert!(ok, "{stderr}");
    let data_dir = data.path().display().to_string();
    let shown_as = [(data_dir.as_str(), "/var/lib/factorwatch")];
    assert_documented(
        "factorwatch backfill",
        &format!("{stderr}{stdout}"),
        &shown_as,
    );
    assert!(stderr.contains("reading the System Log from"), "{stderr}");
    assert!(stderr.contains("read 6 events in 1 pages"), "{stderr}");
    assert!(stdout.contains("6 events read in 1 pages"), "{stdout}");
    assert_eq!(summary_count(&stdout, "new:"), 4);
    assert_eq!(summary_count(&stdout, "already seen:"), 2);
    assert_eq!(summary_count(&stdout, "alerts:"), 4);
    let alerts = read_alert_lines(&alerts_file);
    assert_eq!(
        alerts.len(),
        6,
        "one alert per reset, whichever way it came"
    );
    let found = by_uuid(&alerts);
    for (index, uuid) in uuids(&history).iter().enumerate() {
        let source = if index < 2 {
            "event_hook"
        } else {
            "system_log"
        };
        assert_eq!(found[uuid].len(), 1, "{uuid}");
        assert_eq!(found[uuid][0]["source"], source, "{uuid}");
    }

    // Again: everything is already seen, nothing alerts twice.
    let (ok, stdout, stderr) = run_cli(&["backfill", "--since", "7h"], &config, &env).await;
    assert!(ok, "{stderr}");
    assert_eq!(summary_count(&stdout, "new:"), 0);
    assert_eq!(summary_count(&stdout, "already seen:"), 6);
    assert_eq!(summary_count(&stdout, "alerts:"), 0);
    assert_eq!(read_alert_lines(&alerts_file).len(), 6);

    // Each read asked for a bounded window and only the event types the rules can match.
    let requests = org.log_requests();
    assert_eq!(requests.len(), 2, "one page per backfill");
    for request in &requests {
        assert!(request.param("until").is_some(), "{request:?}");
        let filter = request.param("filter").unwrap_or_default();
        assert!(filter.contains("user.mfa.factor.deactivate"), "{filter}");
    }
    org.assert_spec_kept();

    // What is wrong with a request says what to do.
    for (args, says) in [
        (
            &["--since", "1h", "--org", "nope"][..],
            "no org named \"nope\"",
        ),
        (&["--since", "1h", "--until", "2h"], "the window is empty"),
        (&["--since", "last week"], "neither how long ago"),
    ] {
        let args = [&["backfill"][..], args].concat();
        let (ok, _, stderr) = run_cli(&args, &config, &env).await;
        assert!(!ok && stderr.contains(says), "{args:?}: {stderr}");
    }
    drop(server);
    let (ok, _, stderr) = run_cli(&["backfill", "--since", "1h"], &config, &env).await;
    assert!(
        !ok && stderr.contains("is `factorwatch serve` running"),
        "{stderr}"
    );
}

#[tokio::test]
async fn backfill_of_an_org_without_okta_api_says_how_to_configure_it() {
    let data = TempDir::new().unwrap();
    let admin = format!("127.0.0.1:{}", free_port());
    let env = [("FACTORWATCH_ADMIN_LISTEN", admin.as_str())];
    let server = ChildServer::start_with(data.path(), free_port(), &env).await;
    let config = data.path().join("empty.toml");
    std::fs::write(&config, "").unwrap();
    let (ok, _, stderr) = run_cli(&["backfill", "--since", "1h"], &config, &env).await;
    assert!(!ok, "{stderr}");
    assert!(
        stderr.contains("the top-level org has no [okta.api]")
            && stderr.contains("docs/okta-setup.md"),
        "{stderr}"
    );
    drop(server);
}

#[tokio::test]
async fn rules_test_runs_the_rules_over_the_live_system_log_without_alerting() {
    let org = Org::new().await;
    let data = TempDir::new().unwrap();
    let config = org.config(data.path(), "");
    let history: Vec<Value> = (0..3)
        .map(|day| mfa_reset(Duration::from_secs(86_400 * day + 60)))
        .collect();
    org.okta.publish(history.clone());

    let args = ["rules", "test", "--builtin", "--okta", "--since", "7d"];
    let (ok, stdout, stderr) = run_cli(&args, &config, &[]).await;
    assert!(ok, "{stderr}");
    let org_url = org.okta.org_url();
    let shown_as = [(org_url.trim_end_matches('/'), "https://acme.okta.com")];
    assert_documented("factorwatch rules test", &stderr, &shown_as);
    let alerts: Vec<Value> = stdout
        .lines()
        .map(|line| serde_json::from_str(line).unwrap())
        .collect();
    let found = by_uuid(&alerts);
    for uuid in uuids(&history) {
        assert!(found.contains_key(&uuid), "no alert for {uuid}:\n{stdout}");
    }
    assert!(alerts.iter().all(|alert| alert["source"] == "system_log"));
    assert!(stderr.contains("read 3 events in 1 pages"), "{stderr}");
    assert!(
        stderr.contains(&format!("3 events, {} alerts", alerts.len())),
        "{stderr}"
    );
    assert!(
        !data.path().join("alerts.jsonl").exists(),
        "rules test alerts nobody"
    );
    org.assert_spec_kept();

    let (ok, _, stderr) = run_cli(&["rules", "test", "--builtin", "--okta"], &config, &[]).await;
    assert!(!ok && stderr.contains("--since"), "{stderr}");
    let no_api = data.path().join("no-api.toml");
    std::fs::write(&no_api, "").unwrap();
    let (ok, _, stderr) = run_cli(&args, &no_api, &[]).await;
    assert!(!ok && stderr.contains("has no [okta.api]"), "{stderr}");
}
