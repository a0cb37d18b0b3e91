//! Many Okta orgs in one deployment (`[[okta.orgs]]`): each org's secret opens only its own hook
//! path, and each alert names its org and reaches that org's sinks only.

use std::path::{Path, PathBuf};
use std::time::Duration;

#[cfg(feature = "redis")]
use factorwatch::cluster::{ClusterConfig, ClusterMode};
#[cfg(feature = "redis")]
use factorwatch::config::ServerUrl;
use factorwatch::config::{Config, OrgConfig, SinkConfig};
use factorwatch::okta::samples::{self, Initiator};
use factorwatch::secret::Secret;
use reqwest::{Method, StatusCode};
use serde_json::Value;
use tempfile::TempDir;

use crate::cli::{factorwatch, stderr};
use crate::helpers::{
    ChildServer, SECRET, TestApp, envelope, free_port, read_alert_lines, spawn_app_with,
    test_config, wait_for_alert_lines,
};
use crate::reload::{PASSWORD_RULE, SESSION_RULE, hangup};

const ACME_SECRET: &str = "Basic YWNtZTphY21lLXNlY3JldA==";
const GLOBEX_SECRET: &str = "Basic Z2xvYmV4Omdsb2JleC1zZWNyZXQ=";
#[cfg(feature = "redis")]
const REDIS_URL: &str = "redis://127.0.0.1:6379";
/// Globex's hook sends its secret in a header of its own, so the header is per org too.
const GLOBEX_HEADER: &str = "X-Globex-Auth";

/// One org as a test calls it: its path, its auth header, its secret, its alert file.
struct Org {
    name: &'static str,
    path: &'static str,
    header: &'static str,
    secret: &'static str,
}

const ACME: Org = Org {
    name: "acme",
    path: "/okta/acme",
    header: "Authorization",
    secret: ACME_SECRET,
};
const GLOBEX: Org = Org {
    name: "globex",
    path: "/okta/globex",
    header: GLOBEX_HEADER,
    secret: GLOBEX_SECRET,
};

/// The test configuration (the top-level org still served, with the usual test secret) plus
/// acme, with its own alert file, and globex, with the default one in its data directory.
fn two_org_config(data_dir: &Path) -> Config {
    let mut config = test_config(data_dir);
    let org = |org: &Org, sinks: Vec<SinkConfig>| OrgConfig {
        responses: Vec::new(),
        name: org.name.into(),
        hook_path: org.path.into(),
        auth_header: org.header.into(),
        secrets: vec![Secret::new(org.secret)],
        secrets_file: None,
        hook_name: None,
        api: None,
        reconcile: Default::default(),
        context: Default::default(),
        rules: None,
        sinks,
    };
    config.okta.orgs = vec![
        org(
            &ACME,
            vec![SinkConfig::file("alerts-file", data_dir.join("acme.jsonl"))],
        ),
        org(&GLOBEX, Vec::new()),
    ];
    config
}

async fn spawn_two_orgs() -> TestApp {
    let data_dir = TempDir::new().unwrap();
    let config = two_org_config(data_dir.path());
    spawn_app_with(config, data_dir).await
}

fn alerts_of(app: &TestApp, org: &Org) -> PathBuf {
    match org.name {
        "acme" => app.data_dir.path().join("acme.jsonl"),
        name => app
            .data_dir
            .path()
            .join("orgs")
            .join(name)
            .join("alerts.jsonl"),
    }
}

/// A verification GET or a delivery POST on `path`, with `secret` in `header`.
async fn call(app: &TestApp, method: Method, path: &str, header: &str, secret: &str) -> StatusCode {
    let request = app
        .client
        .request(method.clone(), format!("http://{}{path}", app.addr))
        .header(header, secret);
    let request = match method {
        Method::GET => request.header("X-Okta-Verification-Challenge", "challenge-1"),
        _ => request.json(&envelope(Vec::new())),
    };
    request.send().await.unwrap().status()
}

/// Posts one event to `org`'s path with its secret; asserts it was stored.
async fn post_event(app: &TestApp, org: &Org, event: Value) {
    let response = app
        .client
        .post(format!("http://{}{}", app.addr, org.path))
        .header(org.header, org.secret)
        .json(&envelope(vec![event]))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::NO_CONTENT, "{}", org.name);
}

/// An admin's MFA reset with the event uuid `uuid` (and a transaction of its own).
fn mfa_reset(uuid: &str) -> Value {
    let transaction = uuid::Uuid::new_v4().to_string();
    let user = &samples::users()[0];
    let mut event =
        samples::mfa_factor_deactivate(user, "OKTA_VERIFY_PUSH", Initiator::Admin, &transaction);
    event["uuid"] = uuid.into();
    event
}

#[tokio::test]
async fn each_org_secret_opens_only_its_own_path() {
    let app = spawn_two_orgs().await;
    for method in [Method::GET, Method::POST] {
        for org in [&ACME, &GLOBEX] {
            let own = call(&app, method.clone(), org.path, org.header, org.secret).await;
            assert!(own.is_success(), "{method} {}: {own}", org.name);
        }
        let refused = [
            (ACME.path, GLOBEX.header, GLOBEX.secret),
            (ACME.path, ACME.header, GLOBEX.secret),
            (GLOBEX.path, GLOBEX.header, ACME.secret),
            (GLOBEX.path, ACME.header, GLOBEX.secret),
            (ACME.path, "Authorization", SECRET),
            (GLOBEX.path, GLOBEX.header, SECRET),
            ("/okta/events", "Authorization", ACME.secret),
            ("/okta/events", GLOBEX.header, GLOBEX.secret),
        ];
        for (path, header, secret) in refused {
            let status = call(&app, method.clone(), path, header, secret).await;
            assert_eq!(status, StatusCode::UNAUTHORIZED, "{method} {path} {header}");
        }
        let top_level = call(
            &app,
            method.clone(),
            "/okta/events",
            "Authorization",
            SECRET,
        )
        .await;
        assert!(top_level.is_success(), "{method} top-level: {top_level}");
    }
    let verified: Value = app
        .client
        .get(format!("http://{}{}", app.addr, GLOBEX.path))
        .header(GLOBEX.header, GLOBEX.secret)
        .header("X-Okta-Verification-Challenge", "globex-challenge")
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(verified["verification"], "globex-challenge");
    app.stop().await;
}

#[tokio::test]
async fn each_alert_names_its_org_and_reaches_only_its_sinks() {
    let app = spawn_two_orgs().await;
    let (acme_uuid, globex_uuid) = (uuid::Uuid::new_v4(), uuid::Uuid::new_v4());
    post_event(&app, &ACME, mfa_reset(&acme_uuid.to_string())).await;
    post_event(&app, &GLOBEX, mfa_reset(&globex_uuid.to_string())).await;
    let timeout = Duration::from_secs(20);
    wait_for_alert_lines(&alerts_of(&app, &ACME), 1, timeout).await;
    wait_for_alert_lines(&alerts_of(&app, &GLOBEX), 1, timeout).await;
    app.wait_until_drained().await;

    for (org, uuid) in [(&ACME, acme_uuid), (&GLOBEX, globex_uuid)] {
        let alerts = read_alert_lines(&alerts_of(&app, org));
        assert_eq!(alerts.len(), 1, "{}: {alerts:?}", org.name);
        assert_eq!(alerts[0]["org"], org.name);
        assert_eq!(alerts[0]["event"]["uuid"], uuid.to_string());
    }
    assert!(
        read_alert_lines(&app.alerts_path()).is_empty(),
        "the top-level org's sink gets no org's alert"
    );
    assert!(
        app.data_dir.path().join("orgs/acme/spool.redb").exists(),
        "each org has its own spool"
    );

    let ready: Value = app.ops_get("/readyz").await.json().await.unwrap();
    assert_eq!(ready["ready"], true, "{ready}");
    for org in ["acme", "globex"] {
        let view = &ready["orgs"][org];
        assert_eq!(view["pending_batches"], 0, "{ready}");
        assert_eq!(view["sinks"]["alerts-file"]["failing"], false, "{ready}");
    }
    let metrics = app.ops_get("/metrics").await.text().await.unwrap();
    assert!(
        metrics.contains(r#"factorwatch_spool_pending_batches{org="globex"}"#),
        "{metrics}"
    );
    app.stop().await;
}

#[tokio::test]
async fn orgs_never_de_duplicate_each_other() {
    let data_dir = TempDir::new().unwrap();
    let config = two_org_config(data_dir.path());
    let app = spawn_app_with(config, data_dir).await;
    same_event_alerts_once_in_each_org(&app, &uuid::Uuid::new_v4().to_string()).await;
    app.stop().await;
}

/// In `[cluster] mode = "redis"` each org claims its event keys under a prefix of its own.
#[tokio::test]
#[cfg(feature = "redis")]
async fn orgs_never_de_duplicate_each_other_in_a_cluster() {
    let data_dir = TempDir::new().unwrap();
    let mut config = two_org_config(data_dir.path());
    let prefix = format!("factorwatch-test:{}:", uuid::Uuid::new_v4().simple());
    config.cluster = ClusterConfig {
        mode: ClusterMode::Redis,
        url: Some(ServerUrl::new(REDIS_URL)),
        key_prefix: Some(prefix.clone()),
    };
    let app = spawn_app_with(config, data_dir).await;
    let uuid = uuid::Uuid::new_v4().to_string();
    same_event_alerts_once_in_each_org(&app, &uuid).await;
    let mut redis = redis::Client::open(REDIS_URL)
        .unwrap()
        .get_multiplexed_async_connection()
        .await
        .unwrap();
    for org in ["acme", "globex"] {
        let key = format!("{prefix}org:{org}:seen:{uuid}");
        let claimed: bool = redis::cmd("EXISTS")
            .arg(&key)
            .query_async(&mut redis)
            .await
            .unwrap();
        assert!(claimed, "{key}");
    }
    app.stop().await;
}

/// Posts one event uuid to acme, globex, and acme again: one alert in each org's file, with
/// different ids (a sink both orgs shared would keep both).
async fn same_event_alerts_once_in_each_org(app: &TestApp, uuid: &str) {
    for org in [&ACME, &GLOBEX, &ACME] {
        post_event(app, org, mfa_reset(uuid)).await;
    }
    let timeout = Duration::from_secs(20);
    wait_for_alert_lines(&alerts_of(app, &ACME), 1, timeout).await;
    wait_for_alert_lines(&alerts_of(app, &GLOBEX), 1, timeout).await;
    app.wait_until_drained().await;
    let acme = read_alert_lines(&alerts_of(app, &ACME));
    let globex = read_alert_lines(&alerts_of(app, &GLOBEX));
    assert_eq!(acme.len(), 1, "acme's redelivery is a duplicate: {acme:?}");
    assert_eq!(globex.len(), 1, "{globex:?}");
    for (alerts, org) in [(&acme, "acme"), (&globex, "globex")] {
        assert_eq!(alerts[0]["org"], org);
        assert_eq!(alerts[0]["event"]["uuid"], uuid);
    }
    assert_ne!(acme[0]["id"], globex[0]["id"], "a shared sink keeps both");
}

#[tokio::test]
async fn dead_letters_are_managed_per_org() {
    let app = spawn_two_orgs().await;
    let admin = format!("http://{}", app.admin_addr.unwrap());
    for query in ["", "?org=acme", "?org=globex"] {
        let response = app
            .client
            .get(format!("{admin}/dlq{query}"))
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), StatusCode::OK, "{query}");
        assert_eq!(
            response.json::<Value>().await.unwrap(),
            Value::Array(vec![])
        );
    }
    let response = app
        .client
        .post(format!("{admin}/dlq/replay?org=initech"))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::BAD_REQUEST);
    let message = response.text().await.unwrap();
    assert!(
        message.contains("initech") && message.contains("acme"),
        "{message}"
    );
    app.stop().await;
}

/// SIGHUP reloads an org's own rules (here a folder only acme uses), in the running process.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sighup_reloads_each_org_s_own_rules() {
    let data_dir = TempDir::new().unwrap();
    let rules_dir = TempDir::new().unwrap();
    let rule_file = rules_dir.path().join("acme.yml");
    std::fs::write(&rule_file, SESSION_RULE).unwrap();
    let config = data_dir.path().join("factorwatch.toml");
    let text = format!(
        "[[okta.orgs]]\nname = \"acme\"\nhook_path = \"/okta/acme\"\nsecrets = [{ACME_SECRET:?}]\n\
         [okta.orgs.rules]\nbuiltin = false\npaths = [{:?}]\n",
        rules_dir.path()
    );
    std::fs::write(&config, text).unwrap();
    let env = [("FACTORWATCH_CONFIG", config.to_str().unwrap())];
    let server = ChildServer::start_with(data_dir.path(), free_port(), &env).await;
    let url = format!("http://{}{}", server.addr, ACME.path);
    let client = reqwest::Client::new();
    let post = |event: Value| {
        let request = client.post(&url).header(ACME.header, ACME.secret);
        async move {
            let response = request.json(&envelope(vec![event])).send().await.unwrap();
            assert_eq!(response.status(), StatusCode::NO_CONTENT);
        }
    };
    let user = &samples::users()[0];
    let alerts_path = data_dir.path().join("orgs/acme/alerts.jsonl");
    post(samples::session_start(user, "198.51.100.3")).await;
    wait_for_alert_lines(&alerts_path, 1, Duration::from_secs(20)).await;

    std::fs::write(&rule_file, PASSWORD_RULE).unwrap();
    hangup(&server);
    tokio::time::sleep(Duration::from_millis(500)).await;
    post(samples::session_start(user, "198.51.100.3")).await;
    post(samples::password_reset(user, Initiator::Admin)).await;
    let alerts = wait_for_alert_lines(&alerts_path, 2, Duration::from_secs(20)).await;
    let rules: Vec<&Value> = alerts.iter().map(|a| &a["rule"]["id"]).collect();
    assert_eq!(rules, ["session-start", "password-reset"]);
    assert!(alerts.iter().all(|a| a["org"] == "acme"));
}

/// `check-config` with two orgs, their secrets from a file and the environment; then the same
/// file with a duplicate name, and with a duplicate path.
#[test]
fn check_config_checks_every_org_and_names_duplicates() {
    let dir = TempDir::new().unwrap();
    let secrets = dir.path().join("globex-secrets");
    std::fs::write(&secrets, "# globex\nglobex-file-s3cret\n").unwrap();
    let text = format!(
        r#"
        [[okta.orgs]]
        name = "acme"
        hook_path = "/okta/acme"
        secrets = ["${{FW_ORGS_ACME_SECRET}}"]
        [[okta.orgs]]
        name = "globex"
        hook_path = "/okta/globex"
        secrets_file = "{}"
        [okta.orgs.rules]
        builtin_correlations = false
        "#,
        secrets.display()
    );
    let check = |text: &str| {
        let path = dir.path().join("factorwatch.toml");
        std::fs::write(&path, text).unwrap();
        let env = [("FW_ORGS_ACME_SECRET", "acme-env-s3cret")];
        factorwatch(&["check-config", "--config", path.to_str().unwrap()], &env)
    };
    let output = check(&text);
    assert!(output.status.success(), "{}", stderr(&output));
    let printed = String::from_utf8_lossy(&output.stdout);
    assert!(!printed.contains("s3cret"), "{printed}");
    assert!(printed.contains("orgs/acme/alerts.jsonl"), "{printed}");

    let output = check(&text.replace("\"globex\"", "\"acme\""));
    assert!(!output.status.success());
    assert!(
        stderr(&output).contains(r#"two orgs are named "acme""#),
        "{}",
        stderr(&output)
    );

    let output = check(&text.replace("/okta/globex", "/okta/acme"));
    assert!(!output.status.success());
    let message = stderr(&output);
    assert!(
        message.contains(r#"okta.orgs "globex""#) && message.contains(r#"okta.orgs "acme""#),
        "{message}"
    );
    assert!(message.contains("/okta/acme"), "{message}");
}
