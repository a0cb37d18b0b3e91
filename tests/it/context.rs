//! Live Okta context on MFA alerts (`[okta.context]`), against the Okta stand-in: what Okta holds
//! of the target and the actor, the level raised for admins, answers reused from the cache, and
//! an Okta that is slow, down or refuses a scope: the alert is still delivered on time, saying
//! which lookup failed and why.

use std::time::{Duration, Instant};

use factorwatch::config::{Config, OktaApiConfig};
use factorwatch::okta::samples::{self, Initiator, SampleUser};
use serde_json::{Value, json};
use tempfile::TempDir;

use crate::helpers::{TestApp, envelope, run_cli, spawn_app_with, test_config, wait_for_alerts_of};
use crate::okta_standin::{FactorSeed, OktaStandIn, UserSeed};

const API_TOKEN: &str = "00context-test-api-token";
const BOTH_SCOPES: [&str; 2] = ["okta.users.read", "okta.roles.read"];
/// How long the tests wait for an alert that does not wait for Okta.
const SOON: Duration = Duration::from_secs(20);

/// The stand-in with an API token whose admin may read users and roles, and two users: the
/// target (two factors left, a role, three groups) and the admin who acts on it.
async fn org() -> (OktaStandIn, SampleUser, SampleUser) {
    let okta = OktaStandIn::start().await;
    okta.add_api_token(API_TOKEN, &BOTH_SCOPES);
    let users = samples::users();
    let (target, admin) = (users[0].clone(), users[3].clone());
    let mut seed = UserSeed::active(&target);
    seed.factors = vec![
        FactorSeed::active("push", "OKTA"),
        FactorSeed::active("webauthn", "FIDO"),
    ];
    seed.roles = vec!["SUPER_ADMIN".into()];
    seed.groups = vec!["Everyone".into(), "Finance".into(), "Executives".into()];
    okta.add_user(seed);
    let mut admin_seed = UserSeed::active(&admin);
    admin_seed.roles = vec!["HELP_DESK_ADMIN".into()];
    okta.add_user(admin_seed);
    (okta, target, admin)
}

/// The test configuration with `[okta.api]` on the stand-in (`api`) and `[okta.context]`
/// enabled with `timeout` and at most two groups.
fn config_for(data_dir: &TempDir, api: Value, timeout: Duration) -> Config {
    let mut config = test_config(data_dir.path());
    config.okta.api = Some(serde_json::from_value::<OktaApiConfig>(api).unwrap());
    config.okta.context.enabled = true;
    config.okta.context.timeout = timeout;
    config.okta.context.max_groups = 2;
    config
}

/// factorwatch with context from `okta` through its API token.
async fn app(okta: &OktaStandIn, timeout: Duration) -> TestApp {
    let data_dir = TempDir::new().unwrap();
    let api = json!({"org_url": okta.org_url(), "api_token": API_TOKEN});
    let config = config_for(&data_dir, api, timeout);
    spawn_app_with(config, data_dir).await
}

/// Posts an admin's reset of `target`'s SMS factor; returns its alerts once they are in the
/// file, and how long that took from the post.
async fn reset_by_admin(app: &TestApp, target: &SampleUser) -> (Vec<Value>, Duration) {
    let event = samples::mfa_factor_deactivate(target, "SMS", Initiator::Admin, &unique_tx());
    deliver(app, event).await
}

async fn deliver(app: &TestApp, event: Value) -> (Vec<Value>, Duration) {
    let uuid = event["uuid"].as_str().unwrap().to_owned();
    let started = Instant::now();
    assert_eq!(app.post(&envelope(vec![event])).await.status(), 204);
    let alerts = wait_for_alerts_of(&[app.alerts_path()], std::slice::from_ref(&uuid), SOON).await;
    let elapsed = started.elapsed();
    let of_event = alerts
        .into_iter()
        .filter(|alert| alert["event"]["uuid"] == json!(uuid))
        .collect();
    (of_event, elapsed)
}

fn unique_tx() -> String {
    crate::helpers::unique("tx")
}

/// The `failed[].lookup` names of an alert, each with its reason.
fn failures(alert: &Value) -> Vec<(String, String)> {
    let failed = alert["okta_context"]["failed"].as_array().cloned();
    failed
        .unwrap_or_default()
        .iter()
        .map(|f| {
            let text = |key: &str| f[key].as_str().unwrap_or_default().to_owned();
            (text("lookup"), text("reason"))
        })
        .collect()
}

const ALL_LOOKUPS: [&str; 5] = [
    "target.user",
    "target.factors",
    "target.roles",
    "target.groups",
    "actor.roles",
];

#[tokio::test]
async fn an_mfa_reset_alert_tells_what_okta_holds_of_target_and_actor() {
    let (okta, target, admin) = org().await;
    let app = app(&okta, Duration::from_secs(2)).await;
    let (alerts, _) = reset_by_admin(&app, &target).await;
    assert!(!alerts.is_empty());
    for alert in &alerts {
        let context = &alert["okta_context"];
        assert_eq!(
            context["target"],
            json!({
                "id": target.id,
                "status": "ACTIVE",
                "user_type": "oty1defaultusertype0",
                "factors_left": [
                    {"type": "push", "provider": "OKTA", "status": "ACTIVE"},
                    {"type": "webauthn", "provider": "FIDO", "status": "ACTIVE"},
                ],
                "admin_roles": ["SUPER_ADMIN"],
                "groups": ["Everyone", "Finance"],
                "groups_truncated": true,
            }),
            "{alert:#}"
        );
        assert_eq!(
            context["actor"],
            json!({"id": admin.id, "type": "User", "admin_roles": ["HELP_DESK_ADMIN"]})
        );
        assert!(context.get("failed").is_none(), "{context:#}");
        // An admin resetting an admin's factor: both roles raise the level.
        assert_eq!(alert["level"], "critical");
        let reasons = alert["context"]["level_reasons"].to_string();
        assert!(
            reasons.contains("the target holds an Okta admin role"),
            "{reasons}"
        );
        assert!(
            reasons.contains("the actor holds an Okta admin role"),
            "{reasons}"
        );
    }

    // A user without a role resetting their own factor: context, and the rule's level.
    let plain = samples::users()[1].clone();
    okta.add_user(UserSeed::active(&plain));
    let own = samples::mfa_factor_deactivate(&plain, "SMS", Initiator::SelfService, &unique_tx());
    let (alerts, _) = deliver(&app, own).await;
    for alert in &alerts {
        assert_eq!(alert["okta_context"]["target"]["admin_roles"], json!([]));
        assert_eq!(alert["okta_context"]["actor"]["admin_roles"], json!([]));
        assert_eq!(alert["level"], alert["rule"]["level"], "{alert:#}");
    }
    assert_eq!(okta.spec_violations(), Vec::<String>::new());
}

#[tokio::test]
async fn a_second_alert_about_the_same_user_makes_no_new_call() {
    let (okta, target, _) = org().await;
    let app = app(&okta, Duration::from_secs(2)).await;
    reset_by_admin(&app, &target).await;
    // Four lookups of the target, one of the actor's roles.
    assert_eq!(okta.user_requests().len(), 5);
    let (alerts, _) = reset_by_admin(&app, &target).await;
    assert_eq!(alerts[0]["okta_context"]["target"]["status"], "ACTIVE");
    assert_eq!(okta.user_requests().len(), 5, "answered from the cache");
}

#[tokio::test]
async fn a_slow_okta_delays_no_alert_beyond_the_timeout() {
    let (okta, target, _) = org().await;
    let timeout = Duration::from_millis(500);
    let app = app(&okta, timeout).await;
    okta.delay_users(Duration::from_secs(10));
    let (alerts, took) = reset_by_admin(&app, &target).await;
    // Detection, the file sink's write and this test's polling fit in the margin; the stand-in
    // would have held the alert 10 s.
    let margin = Duration::from_secs(3);
    assert!(took < timeout + margin, "the alert took {took:?}");
    for alert in &alerts {
        let expected: Vec<(String, String)> = ALL_LOOKUPS
            .iter()
            .map(|lookup| (lookup.to_string(), "timeout".to_owned()))
            .collect();
        assert_eq!(failures(alert), expected);
        let detail = alert["okta_context"]["failed"][0]["detail"]
            .as_str()
            .unwrap();
        assert!(
            detail.contains("within [okta.context] timeout (500ms)"),
            "{detail}"
        );
        // What it could not learn does not raise the level.
        assert!(alert["okta_context"]["target"].get("admin_roles").is_none());
    }
}

#[tokio::test]
async fn okta_down_is_reported_per_lookup_without_retries() {
    let (okta, target, _) = org().await;
    let timeout = Duration::from_secs(2);
    let app = app(&okta, timeout).await;
    okta.fail_users(Some(503));
    let (alerts, took) = reset_by_admin(&app, &target).await;
    assert!(
        took < timeout + Duration::from_secs(3),
        "the alert took {took:?}"
    );
    for alert in &alerts {
        let reasons: Vec<String> = failures(alert).into_iter().map(|(_, r)| r).collect();
        assert_eq!(reasons, vec!["server_error"; 5], "{alert:#}");
    }
    assert_eq!(okta.user_requests().len(), 5, "one try each");

    // Back up: the next alert has its context (nothing failed was cached).
    okta.fail_users(None);
    let (alerts, _) = reset_by_admin(&app, &target).await;
    assert!(alerts[0]["okta_context"].get("failed").is_none());
}

#[tokio::test]
async fn a_scope_not_granted_is_named_in_the_alert_and_by_check_config() {
    let (okta, target, _) = org().await;
    let key = rcgen::KeyPair::generate().unwrap();
    let client_id = "0oacontextnoroles001";
    okta.add_service_app(
        client_id,
        &key.public_key_pem(),
        None,
        &["okta.users.read"],
        false,
    );
    let data_dir = TempDir::new().unwrap();
    let key_file = data_dir.path().join("okta.pem");
    std::fs::write(&key_file, key.serialize_pem()).unwrap();
    let api = json!({
        "org_url": okta.org_url(), "client_id": client_id, "private_key_file": key_file,
    });
    let config_file = data_dir.path().join("factorwatch.toml");
    let toml = format!(
        "[storage]\ndata_dir = {dir:?}\n[okta]\nsecrets = [\"s\"]\n[okta.api]\norg_url = {url:?}\n\
         client_id = {client_id:?}\nprivate_key_file = {key:?}\n[okta.context]\nenabled = true\n",
        dir = data_dir.path().join("spool"),
        url = okta.org_url(),
        key = key_file,
    );
    std::fs::write(&config_file, toml).unwrap();
    let (ok, _, stderr) = run_cli(&["check-config"], &config_file, &[]).await;
    assert!(!ok, "{stderr}");
    assert!(
        stderr.contains("the top-level org: cannot get a token for live context in")
            && stderr.contains("not granted okta.users.read okta.roles.read"),
        "{stderr}"
    );

    let config = config_for(&data_dir, api, Duration::from_secs(2));
    let app = spawn_app_with(config, data_dir).await;
    let (alerts, _) = reset_by_admin(&app, &target).await;
    for alert in &alerts {
        let failed = &alert["okta_context"]["failed"];
        assert_eq!(failed.as_array().unwrap().len(), 5, "{failed:#}");
        assert_eq!(failed[0]["reason"], "missing_scope");
        let detail = failed[0]["detail"].as_str().unwrap();
        assert!(
            detail.contains("okta.roles.read") && detail.contains("Okta API Scopes"),
            "{detail}"
        );
    }
}
