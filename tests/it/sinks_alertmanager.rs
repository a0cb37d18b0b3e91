//! The `alertmanager` sink against a real Prometheus Alertmanager (Debian's
//! `prometheus-alertmanager`, installed by scripts/test-services.sh), which notifies a local
//! endpoint standing in for the SOC's pager: alerts arrive with their labels, a silence created
//! through Alertmanager's API holds back the notification, and the same alert delivered twice is
//! one alert and one notification.

use std::collections::BTreeMap;
use std::process::{Command, Stdio};
use std::time::Duration;

use factorwatch::config::{SinkConfig, SinkKind};
use factorwatch::okta::samples::{self, Initiator};
use factorwatch::sinks::alertmanager::AlertmanagerConfig;
use serde_json::{Value, json};
use tempfile::TempDir;

use crate::daemons::{Daemon, system_binary, wait_for_port};
use crate::helpers::{TestApp, envelope, eventually, free_port, spawn_app_with_sinks};
use crate::receiver::Receiver;

const WAIT: Duration = Duration::from_secs(30);

/// A running Alertmanager that sends every notification to `pager`.
struct Alertmanager {
    _daemon: Daemon,
    _dir: TempDir,
    url: String,
    pager: Receiver,
}

impl Alertmanager {
    /// Starts Alertmanager (no clustering) grouping by incident and rule, notifying at once.
    async fn start() -> Alertmanager {
        let (pager, pager_url) = Receiver::start().await;
        let dir = TempDir::new().unwrap();
        let config = dir.path().join("alertmanager.yml");
        std::fs::write(
            &config,
            format!(
                "route:\n  receiver: soc\n  group_by: [incident, rule_id]\n  group_wait: 1s\n  \
                 group_interval: 1s\n  repeat_interval: 1h\nreceivers:\n  - name: soc\n    \
                 webhook_configs:\n      - url: {pager_url}/notify\n        send_resolved: false\n"
            ),
        )
        .unwrap();
        let port = free_port();
        let child = Command::new(system_binary("prometheus-alertmanager"))
            .arg(format!("--config.file={}", config.display()))
            .arg(format!(
                "--storage.path={}",
                dir.path().join("data").display()
            ))
            .arg(format!("--web.listen-address=127.0.0.1:{port}"))
            .arg("--cluster.listen-address=")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("prometheus-alertmanager is installed by scripts/test-services.sh");
        wait_for_port(port).await;
        let url = format!("http://127.0.0.1:{port}");
        eventually(WAIT, "Alertmanager ready", async || {
            match reqwest::get(format!("{url}/-/ready")).await {
                Ok(answer) if answer.status().is_success() => Ok(()),
                Ok(answer) => Err(answer.status().to_string()),
                Err(err) => Err(err.to_string()),
            }
        })
        .await;
        Alertmanager {
            _daemon: Daemon(child),
            _dir: dir,
            url,
            pager,
        }
    }

    /// The sink posting here, with a team label and a runbook template.
    fn sink(&self, name: &str) -> SinkConfig {
        SinkConfig::new(
            name,
            SinkKind::Alertmanager(AlertmanagerConfig {
                url: self.url.clone(),
                resolve_after: Duration::from_secs(24 * 3600),
                runbook_url: Some("https://wiki.example.com/runbooks/{rule_id}".into()),
                labels: BTreeMap::from([("team".to_owned(), "secops".to_owned())]),
            }),
        )
    }

    /// The alerts Alertmanager holds (`GET /api/v2/alerts`), silenced ones included.
    async fn alerts(&self) -> Vec<Value> {
        reqwest::get(format!("{}/api/v2/alerts", self.url))
            .await
            .unwrap()
            .json()
            .await
            .unwrap()
    }

    /// Waits until Alertmanager holds `count` alerts, and returns them.
    async fn wait_for_alerts(&self, count: usize) -> Vec<Value> {
        let awaited = format!("{count} alerts in Alertmanager");
        eventually(WAIT, &awaited, async || {
            let alerts = self.alerts().await;
            match alerts.len() >= count {
                true => Ok(alerts),
                false => Err(Value::from(alerts)),
            }
        })
        .await
    }

    /// Every alert of every notification the pager received so far.
    fn notified(&self) -> Vec<Value> {
        self.pager
            .requests
            .lock()
            .unwrap()
            .iter()
            .flat_map(|(_, body)| {
                let notification: Value = serde_json::from_slice(body).unwrap();
                notification["alerts"].as_array().unwrap().clone()
            })
            .collect()
    }
}

/// The alert in `alerts` (the alert file's) whose id is `id`.
fn by_id<'a>(alerts: &'a [Value], id: &str) -> &'a Value {
    alerts.iter().find(|alert| alert["id"] == id).unwrap()
}

/// Posts `events` to `app` and waits until every alert is delivered; returns the alert file's.
async fn deliver(app: &TestApp, events: Vec<Value>, alerts: usize) -> Vec<Value> {
    assert_eq!(app.post(&envelope(events)).await.status(), 204);
    let written = app.wait_for_alerts(alerts).await;
    app.wait_until_drained().await;
    written
}

#[tokio::test]
async fn alerts_arrive_with_their_labels_and_a_redelivered_alert_is_one_alert() {
    let alertmanager = Alertmanager::start().await;
    // Two receivers of one event, as after a restart on a lost spool or on two replicas without
    // a shared backend: the same alert (same id) is delivered twice.
    let first = spawn_app_with_sinks(vec![alertmanager.sink("am")]).await;
    let second = spawn_app_with_sinks(vec![alertmanager.sink("am")]).await;
    let victim = &samples::users()[1];
    let reset = samples::mfa_factor_deactivate(victim, "OKTA_VERIFY_PUSH", Initiator::Admin, "tx");
    let written = deliver(&first, vec![reset.clone()], 1).await;
    let again = deliver(&second, vec![reset], 1).await;
    assert_eq!(written[0]["id"], again[0]["id"], "the same alert");
    let alert = &written[0];

    let held = alertmanager.wait_for_alerts(1).await;
    eventually(WAIT, "a notification", async || {
        match alertmanager.notified().len() {
            0 => Err(0),
            count => Ok(count),
        }
    })
    .await;
    // Alertmanager notifies again only when a group changes: give it the time to.
    tokio::time::sleep(Duration::from_secs(3)).await;
    assert_eq!(alertmanager.alerts().await.len(), 1, "one alert: {held:#?}");
    assert_eq!(alertmanager.notified().len(), 1, "one notification");

    let posted = &held[0];
    let incident = &alert["incident"];
    let expected_labels = json!({
        "alertname": alert["rule"]["title"],
        "rule_id": alert["rule"]["id"],
        "level": alert["level"],
        "severity": "critical",
        "service": "factorwatch",
        "org": "acme.okta.com",
        "target_user": victim.login,
        "incident": incident["id"],
        "team": "secops",
    });
    assert_eq!(posted["labels"], expected_labels, "{posted:#}");
    assert_eq!(alert["level"], "high");
    let annotations = &posted["annotations"];
    assert_eq!(annotations["alert_id"], alert["id"]);
    assert!(
        annotations["summary"]
            .as_str()
            .unwrap()
            .starts_with(alert["rule"]["title"].as_str().unwrap()),
        "{annotations}"
    );
    let step = incident["steps"][0]["what"].as_str().unwrap();
    assert!(annotations["description"].as_str().unwrap().contains(step));
    assert_eq!(
        annotations["runbook_url"],
        format!(
            "https://wiki.example.com/runbooks/{}",
            alert["rule"]["id"].as_str().unwrap()
        )
    );
    let ms = |field: &Value| factorwatch::clock::parse_rfc3339_ms(field.as_str().unwrap()).unwrap();
    assert_eq!(ms(&posted["startsAt"]), ms(&alert["event"]["published"]));
    let day = 24 * 3600 * 1000;
    assert_eq!(ms(&posted["endsAt"]), ms(&incident["last_seen"]) + day);
    assert_eq!(posted["status"]["state"], "active");
    assert_eq!(alertmanager.notified()[0]["labels"], expected_labels);
}

#[tokio::test]
async fn a_silence_created_in_alertmanager_holds_back_its_notifications() {
    let alertmanager = Alertmanager::start().await;
    let users = samples::users();
    // A known change on one user: the SOC silences alerts about them for an hour.
    let now = factorwatch::clock::now_ms();
    let silence = json!({
        "matchers": [{"name": "target_user", "value": users[0].login, "isRegex": false, "isEqual": true}],
        "startsAt": factorwatch::clock::rfc3339(now),
        "endsAt": factorwatch::clock::rfc3339(now + 3_600_000),
        "createdBy": "soc@example.com",
        "comment": "help desk re-enrolls this user's phone",
    });
    let created: Value = reqwest::Client::new()
        .post(format!("{}/api/v2/silences", alertmanager.url))
        .json(&silence)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let silence_id = created["silenceID"].as_str().expect("a silence id");

    let app = spawn_app_with_sinks(vec![alertmanager.sink("am")]).await;
    let events = users[..2]
        .iter()
        .enumerate()
        .map(|(n, user)| {
            let tx = format!("tx-{n}");
            samples::mfa_factor_deactivate(user, "SMS", Initiator::Admin, &tx)
        })
        .collect();
    let written = deliver(&app, events, 2).await;

    let held = alertmanager.wait_for_alerts(2).await;
    let about = |login: &str| {
        held.iter()
            .find(|alert| alert["labels"]["target_user"] == login)
            .unwrap_or_else(|| panic!("no alert about {login}: {held:#?}"))
            .clone()
    };
    let silenced = about(&users[0].login);
    assert_eq!(silenced["status"]["state"], "suppressed", "{silenced:#}");
    assert_eq!(silenced["status"]["silencedBy"], json!([silence_id]));
    let paged = about(&users[1].login);
    assert_eq!(paged["status"]["state"], "active", "{paged:#}");
    let paged_id = paged["annotations"]["alert_id"].as_str().unwrap();
    assert_eq!(
        by_id(&written, paged_id)["targets"][0]["alternateId"],
        users[1].login.as_str()
    );

    eventually(WAIT, "the unsilenced alert's notification", async || {
        let notified = alertmanager.notified();
        match notified.len() {
            0 => Err(0),
            count => Ok(count),
        }
    })
    .await;
    tokio::time::sleep(Duration::from_secs(3)).await;
    let notified = alertmanager.notified();
    let pages: Vec<&Value> = notified
        .iter()
        .map(|alert| &alert["labels"]["target_user"])
        .collect();
    assert_eq!(
        pages,
        [&json!(users[1].login)],
        "only the unsilenced user is paged"
    );
}

/// An Alertmanager that cannot be reached: the alert waits in the outbox, retried, not lost.
#[tokio::test]
async fn an_unreachable_alertmanager_keeps_the_alert_waiting() {
    let sink = SinkConfig::new(
        "am-down",
        SinkKind::Alertmanager(AlertmanagerConfig {
            url: format!("http://127.0.0.1:{}", free_port()),
            resolve_after: Duration::from_secs(3600),
            runbook_url: None,
            labels: BTreeMap::new(),
        }),
    );
    let app = spawn_app_with_sinks(vec![sink]).await;
    let victim = &samples::users()[2];
    let reset = samples::mfa_factor_deactivate(victim, "SMS", Initiator::Admin, "tx-down");
    assert_eq!(app.post(&envelope(vec![reset])).await.status(), 204);
    app.wait_for_alerts(1).await;
    app.assert_waiting_in_outbox("am-down").await;
}
