//! One incident per victim, over a fleet: the attack story of issue 22 (a compromised admin
//! resets the user's factors, a new factor is enrolled from a new network, a session starts,
//! the password is changed, an admin privilege is granted) spread over two replicas sharing a
//! real Redis or NATS, one of them killed with SIGKILL and restarted in the middle. Every alert
//! carries one incident id, the steps read in order, and a `notify = "first"` pager is paged
//! once while a `notify = "every"` sink with the same filter gets every reset.

use std::path::{Path, PathBuf};
use std::time::Duration;

use factorwatch::clock::{now_ms, rfc3339};
use factorwatch::cluster::SharedState;
use factorwatch::okta::samples::{self, Initiator, SampleUser};
use serde_json::{Value, json};
use tempfile::TempDir;

use crate::backends::{Backend, on_each_backend};
use crate::helpers::{
    ChildServer, eventually, free_port, post_envelope, read_alert_lines, spawn_app_with,
    test_config, unique, wait_for_alert_lines,
};
use crate::sinks_brokers::read_redis;

on_each_backend!(
    #[tokio::test]
    the_attack_story_over_two_replicas_and_a_restart_is_one_incident,
);

/// A reset of Bob's `factor` by the admin, published now, in its own delivery.
fn reset_of_bob(factor: &str) -> Value {
    let bob = &samples::users()[1];
    let mut reset = samples::mfa_factor_deactivate(bob, factor, Initiator::Admin, factor);
    reset["published"] = json!(rfc3339(now_ms()));
    samples::envelope("example.okta.com", "who0hook", vec![reset])
}

#[tokio::test]
async fn a_standalone_incident_survives_a_restart_and_a_zero_window_turns_incidents_off() {
    let data_dir = TempDir::new().unwrap();
    let config = test_config(data_dir.path());
    let app = spawn_app_with(config.clone(), data_dir).await;
    assert_eq!(
        app.post(&reset_of_bob("OKTA_VERIFY_PUSH")).await.status(),
        204
    );
    app.wait_for_alerts(1).await;
    let data_dir = app.stop().await;

    let app = spawn_app_with(config.clone(), data_dir).await;
    assert_eq!(app.post(&reset_of_bob("SMS")).await.status(), 204);
    let alerts = app.wait_for_alerts(2).await;
    let incident = &alerts[1]["incident"];
    assert_eq!(incident["id"], alerts[0]["incident"]["id"], "{alerts:#?}");
    let steps: Vec<&str> = incident["steps"]
        .as_array()
        .unwrap()
        .iter()
        .map(|step| step["alert_id"].as_str().unwrap())
        .collect();
    assert_eq!(
        steps,
        [&alerts[0]["id"], &alerts[1]["id"]].map(|id| id.as_str().unwrap())
    );
    let data_dir = app.stop().await;

    let mut off = config;
    off.rules.incident_window = Duration::ZERO;
    let app = spawn_app_with(off, data_dir).await;
    assert_eq!(app.post(&reset_of_bob("FIDO_WEBAUTHN")).await.status(), 204);
    let alerts = app.wait_for_alerts(3).await;
    assert!(alerts[2].get("incident").is_none(), "{:#}", alerts[2]);
}

/// The built-in "MFA Factor Deactivated" rule: the pager's only rule.
const FACTOR_DEACTIVATED: &str = "6f1e2b9c-3a0d-4e57-9a61-2d4c8b7f0a11";
/// The built-in correlation "MFA Reset Followed by a Sign-In From a New Network".
const RESET_THEN_NEW_NETWORK: &str = "7d2c9e14-5a3b-4e6f-8c1d-0a9b2f4e6d13";
/// The built-in correlation "MFA Reset Followed by a Password Reset of the Same User".
const RESET_THEN_PASSWORD: &str = "3e8b2d61-7c4a-4f95-a0d2-6b1e9f3c5a72";
/// The built-in correlation "MFA Reset Followed by an Admin Privilege Granted".
const RESET_THEN_PRIVILEGE: &str = "83cb7145-f72f-4f5e-a5ad-fcf74228c990";
/// This test's own rule: no built-in rule alerts on a user enrolling a factor of their own.
const ENROLLED: &str = "test-factor-enrolled";

const WAIT: Duration = Duration::from_secs(30);

/// The test's rules folder: an alert on each factor enrolment.
fn test_rules(dir: &Path) {
    std::fs::write(
        dir.join(format!("{ENROLLED}.yml")),
        format!(
            "title: Test factor enrolment\nid: {ENROLLED}\nlogsource:\n  product: okta\n  \
             service: okta\ndetection:\n  selection:\n    eventType: 'user.mfa.factor.activate'\n  \
             condition: selection\nlevel: medium\n"
        ),
    )
    .unwrap();
}

/// One replica's configuration file: the shared backend, the test rules, its own alert file
/// (every alert), and two Redis streams filtered to factor resets: the pager (`notify =
/// "first"`) and the log (`notify = "every"`).
fn replica_config(dir: &Path, cluster: &str, rules: &Path, streams: &Streams) -> PathBuf {
    let path = dir.join("factorwatch.toml");
    let text = format!(
        "{cluster}\n\
         [rules]\npaths = [{rules:?}]\nincident_window = \"24h\"\n\n\
         [[sinks]]\nname = \"all\"\ntype = \"file\"\npath = {file:?}\n\n\
         [[sinks]]\nname = \"pager\"\ntype = \"redis\"\nurl = \"redis://127.0.0.1:6379\"\n\
         stream = \"{pager}\"\nrules = [\"{FACTOR_DEACTIVATED}\"]\nnotify = \"first\"\n\n\
         [[sinks]]\nname = \"resets\"\ntype = \"redis\"\nurl = \"redis://127.0.0.1:6379\"\n\
         stream = \"{every}\"\nrules = [\"{FACTOR_DEACTIVATED}\"]\nnotify = \"every\"\n",
        file = dir.join("alerts.jsonl"),
        pager = streams.pager,
        every = streams.every,
    );
    std::fs::write(&path, text).unwrap();
    path
}

struct Streams {
    pager: String,
    every: String,
}

/// A replica: its data folder, port and configuration, and the process when it runs.
struct Replica {
    dir: TempDir,
    port: u16,
    config: PathBuf,
}

impl Replica {
    fn new(cluster: &str, rules: &Path, streams: &Streams) -> Self {
        let dir = TempDir::new().unwrap();
        let config = replica_config(dir.path(), cluster, rules, streams);
        Self {
            dir,
            port: free_port(),
            config,
        }
    }

    async fn start(&self) -> ChildServer {
        let config = self.config.to_str().unwrap();
        let log = self.dir.path().join("factorwatch.log");
        ChildServer::start_logging_to(
            self.dir.path(),
            self.port,
            &[("FACTORWATCH_CONFIG", config)],
            &log,
        )
        .await
    }

    fn alerts(&self) -> PathBuf {
        self.dir.path().join("alerts.jsonl")
    }

    /// Posts one event as Okta would.
    async fn post(&self, server: &ChildServer, event: Value) {
        self.post_all(server, vec![event]).await;
    }

    /// Posts `events` in one delivery, each published a few milliseconds after the one before
    /// (steps are ordered by their events' times).
    async fn post_all(&self, server: &ChildServer, mut events: Vec<Value>) {
        for event in &mut events {
            tokio::time::sleep(Duration::from_millis(20)).await;
            event["published"] = json!(rfc3339(now_ms()));
        }
        let envelope = samples::envelope("example.okta.com", "who0hook", events);
        let client = reqwest::Client::new();
        assert!(post_envelope(&client, &server.hook_url, &envelope).await);
    }
}

/// `user.account.privilege.grant` of an admin role to `target` by the admin: the shape of a
/// user event by an admin, as Okta logs one.
fn privilege_grant(target: &SampleUser) -> Value {
    let mut event = samples::password_reset(target, Initiator::Admin);
    event["eventType"] = json!("user.account.privilege.grant");
    event["displayMessage"] = json!("Grant user privilege");
    event["legacyEventType"] = json!("core.user.admin_privilege.granted");
    event["debugContext"]["debugData"]["privilegeGranted"] = json!("Super administrator");
    event
}

/// `user.mfa.factor.activate` of SMS by `target`, from an autonomous system new for them.
fn enrolment_from_a_new_network(target: &SampleUser) -> Value {
    let mut event = samples::mfa_factor_activate(target, "SMS");
    event["securityContext"]["asNumber"] = json!(64_511);
    event["securityContext"]["asOrg"] = json!("Example Transit");
    event["client"]["geographicalContext"]["city"] = json!("Lisbon");
    event
}

fn rule_of(alert: &Value) -> &str {
    alert["rule"]["id"].as_str().unwrap()
}

async fn the_attack_story_over_two_replicas_and_a_restart_is_one_incident(backend: Backend) {
    let prefix = format!("{}_", unique("factorwatch-incident"));
    let shared = backend.on_machine(&prefix);
    let cluster = format!(
        "[cluster]\nmode = \"{}\"\nurl = \"{}\"\nkey_prefix = \"{prefix}\"\n",
        match backend {
            Backend::Redis => "redis",
            Backend::NatsKv => "nats-kv",
        },
        shared.url.as_ref().unwrap().expose(),
    );
    let rules = TempDir::new().unwrap();
    test_rules(rules.path());
    let streams = Streams {
        pager: unique("incident-pager"),
        every: unique("incident-resets"),
    };
    let (first, second) = (
        Replica::new(&cluster, rules.path(), &streams),
        Replica::new(&cluster, rules.path(), &streams),
    );
    let mut on_first = first.start().await;
    let on_second = second.start().await;
    let bob = &samples::users()[1];

    // A compromised admin removes Bob's push factor, then his SMS factor: two resets (two
    // transactions) in one delivery to the first replica.
    let resets = [("OKTA_VERIFY_PUSH", "tx-push"), ("SMS", "tx-sms")]
        .map(|(factor, tx)| samples::mfa_factor_deactivate(bob, factor, Initiator::Admin, tx));
    first.post_all(&on_first, resets.into()).await;
    wait_for_alert_lines(&first.alerts(), 2, WAIT).await;
    // Their correlation step reached the shared state before the session below arrives.
    let observer = SharedState::new(&shared, "observer").unwrap();
    eventually(
        WAIT,
        "the resets in the shared correlation state",
        async || match observer.load_correlation(None).await {
            Ok(loaded) if loaded.token.is_some() => Ok(()),
            Ok(_) => Err("no correlation step yet".to_owned()),
            Err(err) => Err(err.chain()),
        },
    )
    .await;
    // A new factor and a session from a new network, on the second replica: the session
    // completes the reset-then-new-network correlation, fed by both replicas' events.
    second
        .post(&on_second, enrolment_from_a_new_network(bob))
        .await;
    second
        .post(&on_second, samples::session_start(bob, "192.0.2.66"))
        .await;
    wait_for_alert_lines(&second.alerts(), 2, WAIT).await;

    // The first replica dies (SIGKILL) and comes back; the story goes on through it.
    on_first.child.kill().unwrap();
    on_first.child.wait().unwrap();
    on_first = first.start().await;
    first
        .post(
            &on_first,
            samples::password_reset(bob, Initiator::SelfService),
        )
        .await;
    second.post(&on_second, privilege_grant(bob)).await;
    // The correlations run on whichever replica holds the lease: count both files.
    eventually(WAIT, "six alerts over both replicas", async || {
        let written =
            read_alert_lines(&first.alerts()).len() + read_alert_lines(&second.alerts()).len();
        if written >= 6 {
            Ok(())
        } else {
            Err(format!("{written} alerts so far"))
        }
    })
    .await;

    let mut alerts = read_alert_lines(&first.alerts());
    alerts.extend(read_alert_lines(&second.alerts()));
    let rules: Vec<&str> = alerts.iter().map(rule_of).collect();
    let story = [
        FACTOR_DEACTIVATED,
        FACTOR_DEACTIVATED,
        ENROLLED,
        RESET_THEN_NEW_NETWORK,
        RESET_THEN_PASSWORD,
        RESET_THEN_PRIVILEGE,
    ];
    assert_eq!(alerts.len(), story.len(), "{rules:?}");

    // One incident on every alert.
    let id = alerts[0]["incident"]["id"].as_str().unwrap().to_owned();
    for alert in &alerts {
        assert_eq!(alert["incident"]["id"], id.as_str(), "{alert:#}");
        assert_eq!(alert["incident"]["user"], "bob@example.com");
    }
    // The last alert tells the whole story, in order, each step naming its alert.
    let last = alerts
        .iter()
        .max_by_key(|alert| alert["incident"]["steps"].as_array().unwrap().len())
        .unwrap();
    let steps = last["incident"]["steps"].as_array().unwrap();
    let step_rules: Vec<&str> = steps
        .iter()
        .map(|s| s["rule_id"].as_str().unwrap())
        .collect();
    assert_eq!(step_rules, story, "{:#}", last["incident"]);
    let words: Vec<&str> = steps.iter().map(|s| s["what"].as_str().unwrap()).collect();
    assert!(
        words[0].starts_with("factor removed (push) by dana.admin@example.com from"),
        "{words:?}"
    );
    assert!(
        words[1].starts_with("factor removed (sms) by dana.admin"),
        "{words:?}"
    );
    assert!(
        words[2]
            .starts_with("new enrolment of phone by the user from AS64511 Example Transit, Lisbon"),
        "{words:?}"
    );
    assert!(words[3].starts_with("first session from"), "{words:?}");
    assert!(
        words[4].starts_with("password reset by the user"),
        "{words:?}"
    );
    assert!(
        words[5].starts_with("admin privilege granted by dana.admin"),
        "{words:?}"
    );
    for step in steps {
        let alert_id = step["alert_id"].as_str().unwrap();
        assert!(alerts.iter().any(|a| a["id"] == alert_id), "{step}");
    }
    assert_eq!(last["incident"]["first_seen"], steps[0]["at"]);
    assert_eq!(last["incident"]["last_seen"], steps[5]["at"]);

    // The pager was paged once, for the first reset; the "every" sink got both resets.
    let resets: Vec<&Value> = alerts
        .iter()
        .filter(|a| rule_of(a) == FACTOR_DEACTIVATED)
        .collect();
    let every = read_redis(std::slice::from_ref(&streams.every), 2).await;
    assert_eq!(every.len(), 2);
    let pager = read_redis(std::slice::from_ref(&streams.pager), 1).await;
    assert_eq!(pager.len(), 1, "{pager:?}");
    let paged: Value = serde_json::from_str(&pager[0].body).unwrap();
    assert_eq!(paged["id"], resets[0]["id"]);
    assert_eq!(paged["incident"]["id"], id.as_str());
    backend.forget(&prefix).await;
}
