//! Responses (`[[responses]]`) against the Okta stand-in: an MFA reset of a privileged user by
//! an admin raises the user's risk and ends their sessions in enforce mode, reported to the
//! sinks and listed by `responses list`; dry-run calls nothing that changes Okta; `never`,
//! admins and users Okta no longer has are skipped with the reason; the cap holds under a mass reset and a person approves a
//! held action; the same alert acts once, across a restart too; 429 and 500 are retried; a
//! revoked token dead-letters the alert with a clear reason; undo reverses what can be.

use std::path::Path;
use std::time::{Duration, Instant};

use factorwatch::alert::Alert;
use factorwatch::config::{Config, OktaApiConfig, ResponseConfig};
use factorwatch::okta::samples::{self, Initiator, SampleUser};
use factorwatch::okta_api::OktaClient;
use factorwatch::respond::{Responder, ResponderParts};
use factorwatch::sinks::{Delivery, Sink};
use factorwatch::spool::Spool;
use serde_json::{Value, json};
use tempfile::TempDir;

use crate::helpers::{
    TestApp, envelope, eventually, read_alert_lines, run_cli, spawn_app_with, test_config,
};
use crate::okta_standin::{OktaStandIn, UserSeed};

const API_TOKEN: &str = "00responses-test-api-token";
/// What an API token's admin needs for raise_risk and clear_sessions, and the guards.
const SCOPES: [&str; 5] = [
    "okta.users.read",
    "okta.roles.read",
    "okta.userRisk.read",
    "okta.userRisk.manage",
    "okta.users.manage",
];
/// "Okta MFA Factor Deactivated" (rules/mfa_factor_deactivated.yml).
const FACTOR_DEACTIVATED: &str = "6f1e2b9c-3a0d-4e57-9a61-2d4c8b7f0a11";
const SOON: Duration = Duration::from_secs(30);

/// The stand-in with the API token and `users` seeded `ACTIVE`, one session each.
async fn org(users: &[SampleUser]) -> OktaStandIn {
    let okta = OktaStandIn::start().await;
    okta.add_api_token(API_TOKEN, &SCOPES);
    for user in users {
        okta.add_user(UserSeed::active(user));
    }
    okta
}

/// A response block from TOML.
fn response(toml: &str) -> ResponseConfig {
    toml::from_str(toml).expect("a response block")
}

/// The enforce-mode response of these tests: raise risk and clear sessions on the factor
/// deactivated rule's alerts.
fn contain(extra: &str) -> ResponseConfig {
    response(&format!(
        "name = \"contain\"\nmode = \"enforce\"\nactions = [\"raise_risk\", \"clear_sessions\"]\n\
         when = {{ rules = [\"{FACTOR_DEACTIVATED}\"] }}\n{extra}"
    ))
}

fn config_for(data_dir: &Path, okta: &OktaStandIn, responses: Vec<ResponseConfig>) -> Config {
    let mut config = test_config(data_dir);
    let api = json!({"org_url": okta.org_url(), "api_token": API_TOKEN});
    config.okta.api = Some(serde_json::from_value::<OktaApiConfig>(api).unwrap());
    config.responses = responses;
    config
}

async fn app(okta: &OktaStandIn, responses: Vec<ResponseConfig>) -> TestApp {
    let data_dir = TempDir::new().unwrap();
    let config = config_for(data_dir.path(), okta, responses);
    spawn_app_with(config, data_dir).await
}

/// An admin's reset of `target`'s SMS factor.
fn reset(target: &SampleUser) -> Value {
    let tx = crate::helpers::unique("tx");
    samples::mfa_factor_deactivate(target, "SMS", Initiator::Admin, &tx)
}

/// The reports (alerts with `response`) in the app's alert file, once there are `count`.
async fn reports(app: &TestApp, count: usize) -> Vec<Value> {
    let path = app.alerts_path();
    eventually(SOON, &format!("{count} response reports"), async || {
        let found: Vec<Value> = read_alert_lines(&path)
            .into_iter()
            .filter(|alert| alert.get("response").is_some())
            .collect();
        match found.len() >= count {
            true => Ok(found),
            false => Err(format!("{} so far", found.len())),
        }
    })
    .await
}

/// The requests that change Okta (not GETs) the stand-in received.
fn writes(okta: &OktaStandIn) -> Vec<String> {
    okta.requests()
        .into_iter()
        .filter(|r| r.method != "GET" && r.path.starts_with("/api/v1/users"))
        .map(|r| format!("{} {}", r.method, r.path))
        .collect()
}

/// `factorwatch responses ARGS` against `app`'s admin API.
async fn responses_cli(app: &TestApp, args: &[&str]) -> (bool, String, String) {
    let dir = TempDir::new().unwrap();
    let config = dir.path().join("factorwatch.toml");
    let admin = app.admin_addr.unwrap();
    std::fs::write(&config, format!("[server]\nadmin_listen = \"{admin}\"\n")).unwrap();
    let args: Vec<&str> = ["responses"].iter().chain(args).copied().collect();
    run_cli(&args, &config, &[]).await
}

fn outcome_of<'a>(reports: &'a [Value], action: &str) -> &'a Value {
    reports
        .iter()
        .map(|r| &r["response"])
        .find(|r| r["action"] == action)
        .unwrap_or_else(|| panic!("no report of {action}: {reports:#?}"))
}

#[tokio::test]
async fn enforce_raises_risk_and_ends_sessions_then_undo_restores_the_risk() {
    let users = samples::users();
    let target = &users[0];
    let okta = org(std::slice::from_ref(target)).await;
    // The case: a privileged user's MFA reset by an admin from a network new to them,
    // which raises the alert to critical; the response takes critical alerts only.
    let critical = response(&format!(
        "name = \"contain\"\nmode = \"enforce\"\nactions = [\"raise_risk\", \"clear_sessions\"]\n\
         when = {{ levels = [\"critical\"], rules = [\"{FACTOR_DEACTIVATED}\"] }}\n"
    ));
    let data_dir = TempDir::new().unwrap();
    let mut config = config_for(data_dir.path(), &okta, vec![critical]);
    config.rules.privileged_users = vec![target.login.clone()];
    let app = spawn_app_with(config, data_dir).await;

    let event = reset(target);
    let posted = Instant::now();
    assert_eq!(app.post(&envelope(vec![event.clone()])).await.status(), 204);
    let reports = reports(&app, 2).await;

    assert_eq!(okta.user_risk(&target.id).as_deref(), Some("HIGH"));
    assert_eq!(okta.user_sessions(&target.id), 0);
    assert!(okta.oauth_tokens_revoked(&target.id));
    let last_write = okta
        .requests()
        .into_iter()
        .filter(|r| r.method == "DELETE")
        .map(|r| r.at)
        .max()
        .expect("the sessions were cleared");
    assert!(
        last_write.duration_since(posted) < Duration::from_secs(5),
        "acted {:?} after the POST",
        last_write.duration_since(posted)
    );

    let answered: Vec<&Value> = reports.iter().map(|r| &r["level"]).collect();
    assert!(
        answered.iter().all(|level| *level == "critical"),
        "{answered:?}"
    );
    let risk = outcome_of(&reports, "raise_risk");
    assert_eq!(risk["outcome"], "executed", "{risk:#}");
    assert_eq!(risk["before"], "NONE");
    assert_eq!(risk["target_login"], target.login.as_str());
    let sessions = outcome_of(&reports, "clear_sessions");
    assert_eq!(sessions["outcome"], "executed");
    // Each report is a copy of the alert it answers, with an id of its own.
    let report = reports
        .iter()
        .find(|r| r["response"]["action"] == "raise_risk")
        .unwrap();
    assert_eq!(report["event"]["uuid"], event["uuid"]);
    assert_eq!(report["rule"]["id"], FACTOR_DEACTIVATED);
    assert_ne!(report["id"], report["response"]["answers"]);

    let (ok, listing, err) = responses_cli(&app, &["list", "--json"]).await;
    assert!(ok, "{err}");
    let view: Value = serde_json::from_str(&listing).unwrap();
    assert_eq!(view["configured"][0]["mode"], "enforce");
    assert_eq!(view["actions"].as_array().unwrap().len(), 2);
    let (_, table, _) = responses_cli(&app, &["list"]).await;
    assert!(
        table.contains("raise_risk") && table.contains("executed"),
        "{table}"
    );

    let risk_id = risk["id"].as_str().unwrap();
    let (ok, out, err) = responses_cli(&app, &["undo", risk_id]).await;
    assert!(ok, "{err}");
    assert!(
        out.contains("LOW"),
        "NONE cannot be set again, LOW is: {out}"
    );
    assert_eq!(okta.user_risk(&target.id).as_deref(), Some("LOW"));
    let (ok, _, err) = responses_cli(&app, &["undo", risk_id]).await;
    assert!(!ok && err.contains("already undone"), "{err}");
    let sessions_id = sessions["id"].as_str().unwrap();
    let (ok, _, err) = responses_cli(&app, &["undo", sessions_id]).await;
    assert!(!ok && err.contains("cannot be undone"), "{err}");
    assert!(
        okta.spec_violations().is_empty(),
        "{:?}",
        okta.spec_violations()
    );
}

#[tokio::test]
async fn dry_run_changes_nothing_and_says_what_it_would_have_done() {
    let users = samples::users();
    let okta = org(&users[..1]).await;
    let dry = response(&format!(
        "name = \"contain\"\nactions = [\"raise_risk\", \"suspend_user\"]\n\
         when = {{ rules = [\"{FACTOR_DEACTIVATED}\"] }}\n"
    ));
    let app = app(&okta, vec![dry]).await;
    assert_eq!(
        app.post(&envelope(vec![reset(&users[0])])).await.status(),
        204
    );
    let reports = reports(&app, 2).await;

    for action in ["raise_risk", "suspend_user"] {
        let record = outcome_of(&reports, action);
        assert_eq!(record["outcome"], "dry_run", "{record:#}");
        assert_eq!(record["mode"], "dry-run");
        assert!(
            record["reason"].as_str().unwrap().contains("would"),
            "{record:#}"
        );
    }
    let call = outcome_of(&reports, "suspend_user")["call"]
        .as_str()
        .unwrap();
    assert_eq!(
        call,
        format!("POST /api/v1/users/{}/lifecycle/suspend", users[0].id)
    );
    assert_eq!(writes(&okta), Vec::<String>::new(), "a dry run only reads");
    assert_eq!(okta.user_status(&users[0].id), "ACTIVE");
    assert_eq!(okta.user_risk(&users[0].id), None);
}

#[tokio::test]
async fn never_users_admins_and_the_tokens_own_admin_are_skipped_with_the_reason() {
    let users = samples::users();
    let (vip, admin, plain) = (&users[0], &users[1], &users[2]);
    let okta = org(&[]).await;
    let mut glass = UserSeed::active(vip);
    glass.groups = vec!["Everyone".into(), "Okta-Break-Glass".into()];
    okta.add_user(glass);
    let mut help_desk = UserSeed::active(admin);
    help_desk.roles = vec!["HELP_DESK_ADMIN".into()];
    okta.add_user(help_desk);
    okta.add_user(UserSeed::active(plain));
    // The samples' last user is the admin the API token acts as.
    let token_admin = users.last().unwrap();
    okta.add_user(UserSeed::active(token_admin));
    let guarded = contain(&format!(
        "never = [\"group:Okta-Break-Glass\", \"{}\"]\n",
        plain.login.to_uppercase()
    ));
    let app = app(&okta, vec![guarded]).await;
    // A user deleted from Okta since the event.
    let ghost = &many_users(1)[0];
    let targets = [vip, admin, plain, token_admin, ghost];
    let events: Vec<Value> = targets.into_iter().map(reset).collect();
    assert_eq!(app.post(&envelope(events)).await.status(), 204);
    let reports = reports(&app, 10).await;

    let reason_for = |user: &SampleUser| {
        let mut reasons: Vec<String> = reports
            .iter()
            .map(|r| &r["response"])
            .filter(|r| r["target_id"] == user.id.as_str())
            .inspect(|r| assert_eq!(r["outcome"], "skipped", "{r:#}"))
            .map(|r| r["reason"].as_str().unwrap().to_owned())
            .collect();
        reasons.dedup();
        assert_eq!(reasons.len(), 1, "{reasons:?}");
        reasons.pop().unwrap()
    };
    assert!(reason_for(vip).contains("Okta-Break-Glass"));
    assert!(reason_for(admin).contains("HELP_DESK_ADMIN"));
    assert!(reason_for(admin).contains("act_on_admins"));
    assert!(reason_for(plain).contains("is listed"));
    assert!(reason_for(token_admin).contains("API token acts as"));
    assert!(reason_for(ghost).contains("no such user"));
    assert_eq!(writes(&okta), Vec::<String>::new());
}

/// `n` users of the org, beyond the samples.
fn many_users(n: usize) -> Vec<SampleUser> {
    (0..n)
        .map(|i| {
            let id = format!("00umass{i:013}");
            SampleUser::new(&id, &format!("user{i}@example.com"), &format!("User {i}"))
        })
        .collect()
}

#[tokio::test]
async fn the_cap_holds_under_a_mass_reset_and_a_person_approves_the_rest() {
    let victims = many_users(12);
    let okta = org(&victims).await;
    let capped = response(&format!(
        "name = \"suspend\"\nmode = \"enforce\"\nactions = [\"suspend_user\"]\nmax_per_hour = 3\n\
         when = {{ rules = [\"{FACTOR_DEACTIVATED}\"] }}\n"
    ));
    let app = app(&okta, vec![capped]).await;
    let events: Vec<Value> = victims.iter().map(reset).collect();
    assert_eq!(app.post(&envelope(events)).await.status(), 204);
    let reports = reports(&app, 12).await;

    let count = |outcome: &str| {
        reports
            .iter()
            .filter(|r| r["response"]["outcome"] == outcome)
            .count()
    };
    assert_eq!((count("executed"), count("held")), (3, 9), "{reports:#?}");
    let suspended = victims
        .iter()
        .filter(|v| okta.user_status(&v.id) == "SUSPENDED")
        .count();
    assert_eq!(suspended, 3);
    let held = reports
        .iter()
        .map(|r| &r["response"])
        .find(|r| r["outcome"] == "held")
        .unwrap();
    assert!(
        held["reason"]
            .as_str()
            .unwrap()
            .contains("responses approve")
    );

    let id = held["id"].as_str().unwrap();
    let (ok, out, err) = responses_cli(&app, &["approve", id]).await;
    assert!(ok, "{err}");
    assert!(out.contains("executed"), "{out}");
    assert_eq!(
        okta.user_status(held["target_id"].as_str().unwrap()),
        "SUSPENDED"
    );
    let (ok, _, err) = responses_cli(&app, &["approve", id]).await;
    assert!(!ok && err.contains("not held"), "{err}");
    let (ok, _, err) = responses_cli(&app, &["undo", id]).await;
    assert!(ok, "{err}");
    assert_eq!(
        okta.user_status(held["target_id"].as_str().unwrap()),
        "ACTIVE"
    );
}

/// A responder outside the service, on its own spool: what the delivery loop does with a
/// redelivered alert and after a restart.
fn responder(
    okta: &OktaStandIn,
    spool: std::sync::Arc<Spool>,
    config: ResponseConfig,
) -> Responder {
    replica(okta, spool, config, None)
}

/// A responder of a replica sharing `cluster` with the others.
fn replica(
    okta: &OktaStandIn,
    spool: std::sync::Arc<Spool>,
    config: ResponseConfig,
    cluster: Option<std::sync::Arc<factorwatch::cluster::SharedState>>,
) -> Responder {
    let api: OktaApiConfig =
        serde_json::from_value(json!({"org_url": okta.org_url(), "api_token": API_TOKEN})).unwrap();
    let parts = ResponderParts {
        okta: OktaClient::new(&api, &config.scopes(), "").unwrap(),
        org_url: okta.org_url(),
        ssf: None,
        spool,
        sinks: Vec::new().into(),
        cluster,
    };
    Responder::new(config, parts)
}

/// An alert of the factor deactivated rule on `target`, as the detector raises it.
async fn alert_on(target: &SampleUser) -> (Alert, String) {
    let data_dir = TempDir::new().unwrap();
    let (ok, out, err) = {
        let events = data_dir.path().join("events.json");
        std::fs::write(
            &events,
            serde_json::to_string(&vec![reset(target)]).unwrap(),
        )
        .unwrap();
        let config = data_dir.path().join("factorwatch.toml");
        std::fs::write(&config, "").unwrap();
        let events = events.to_str().unwrap().to_owned();
        run_cli(&["rules", "test", "--builtin", &events], &config, &[]).await
    };
    assert!(ok, "{err}");
    let alert = out
        .lines()
        .filter_map(|line| serde_json::from_str::<Alert>(line).ok())
        .find(|alert| alert.rule.id == FACTOR_DEACTIVATED)
        .expect("the rule fires");
    let payload = serde_json::to_string(&alert).unwrap();
    (alert, payload)
}

#[tokio::test]
async fn the_same_alert_acts_once_redelivered_and_after_a_restart() {
    let users = samples::users();
    let okta = org(&users[..1]).await;
    let (alert, payload) = alert_on(&users[0]).await;
    let dir = TempDir::new().unwrap();
    let delivery = Delivery {
        payload: &payload,
        alert: &alert,
    };
    {
        let spool = std::sync::Arc::new(Spool::open(dir.path(), u64::MAX).unwrap());
        let responder = responder(&okta, spool, contain(""));
        responder.publish(delivery).await.unwrap();
        responder.publish(delivery).await.unwrap();
    }
    let spool = std::sync::Arc::new(Spool::open(dir.path(), u64::MAX).unwrap());
    responder(&okta, spool, contain(""))
        .publish(delivery)
        .await
        .unwrap();
    let id = &users[0].id;
    assert_eq!(
        writes(&okta),
        [
            format!("PUT /api/v1/users/{id}/risk"),
            format!("DELETE /api/v1/users/{id}/sessions")
        ],
        "one write per action"
    );
}

#[tokio::test]
async fn okta_answering_429_and_500_is_retried_until_it_acts() {
    let users = samples::users();
    let okta = org(&users[..1]).await;
    okta.fail_next_user_actions(2, 429);
    let app = app(&okta, vec![contain("")]).await;
    assert_eq!(
        app.post(&envelope(vec![reset(&users[0])])).await.status(),
        204
    );
    reports(&app, 2).await;
    assert_eq!(okta.user_risk(&users[0].id).as_deref(), Some("HIGH"));

    let okta = org(&users[..1]).await;
    okta.fail_next_user_actions(3, 500);
    let app = self::app(&okta, vec![contain("")]).await;
    assert_eq!(
        app.post(&envelope(vec![reset(&users[0])])).await.status(),
        204
    );
    let reports = reports(&app, 2).await;
    assert_eq!(okta.user_sessions(&users[0].id), 0);
    // The risk read and the writes were answered 500 three times before they went through.
    let failed = okta
        .requests()
        .into_iter()
        .filter(|r| r.status == Some(500))
        .count();
    assert_eq!(failed, 3);
    assert!(
        reports
            .iter()
            .all(|r| r["response"]["outcome"] == "executed")
    );
}

#[tokio::test]
async fn a_revoked_token_dead_letters_the_alert_with_what_to_do() {
    let users = samples::users();
    let okta = org(&users[..1]).await;
    let app = app(&okta, vec![contain("")]).await;
    okta.revoke_api_token(API_TOKEN);
    assert_eq!(
        app.post(&envelope(vec![reset(&users[0])])).await.status(),
        204
    );
    let reports = reports(&app, 1).await;
    let failed = &reports[0]["response"];
    assert_eq!(failed["outcome"], "failed", "{failed:#}");
    assert!(
        failed["reason"].as_str().unwrap().contains("api_token"),
        "{failed:#}"
    );

    let dir = TempDir::new().unwrap();
    let config = dir.path().join("factorwatch.toml");
    let admin = app.admin_addr.unwrap();
    std::fs::write(&config, format!("[server]\nadmin_listen = \"{admin}\"\n")).unwrap();
    let letters = eventually(
        SOON,
        "the alert in the response's dead letters",
        async || {
            let (_, out, _) = run_cli(&["dlq", "list", "--json"], &config, &[]).await;
            let letters: Vec<Value> = serde_json::from_str(&out).unwrap_or_default();
            match letters.is_empty() {
                true => Err("none yet".to_owned()),
                false => Ok(letters),
            }
        },
    )
    .await;
    assert_eq!(letters[0]["sink"], "response:contain");
    let error = letters[0]["last_error"].as_str().unwrap();
    assert!(
        error.contains("raise_risk") && error.contains("revoked"),
        "{error}"
    );
}

#[tokio::test]
async fn signals_okta_verifies_against_the_published_keys() {
    let users = samples::users();
    let target = &users[0];
    let okta = org(std::slice::from_ref(target)).await;
    okta.add_api_token(
        API_TOKEN,
        &[
            "okta.users.read",
            "okta.roles.read",
            "okta.userRisk.read",
            "okta.securityEventsProviders.read",
            "okta.securityEventsProviders.manage",
        ],
    );
    let data_dir = TempDir::new().unwrap();
    let key = rcgen::KeyPair::generate_for(&rcgen::PKCS_RSA_SHA256).unwrap();
    let key_file = data_dir.path().join("ssf.pem");
    std::fs::write(&key_file, key.serialize_pem()).unwrap();
    let port = crate::helpers::free_port();
    let issuer = format!("http://127.0.0.1:{port}");
    let toml = format!(
        "[okta.api]\norg_url = \"{}\"\napi_token = \"{API_TOKEN}\"\n\
         [ssf]\nissuer = \"{issuer}\"\nsigning_key_file = \"{}\"\n",
        okta.org_url(),
        key_file.display()
    );
    let config_file = data_dir.path().join("factorwatch.toml");
    std::fs::write(&config_file, &toml).unwrap();

    // register-ssf prints its plan, and registers only with --apply (once).
    let (ok, out, err) = run_cli(&["okta", "register-ssf"], &config_file, &[]).await;
    assert!(ok && out.contains("would register"), "{out}{err}");
    assert!(okta.security_events_providers().is_empty());
    let (ok, out, err) = run_cli(&["okta", "register-ssf", "--apply"], &config_file, &[]).await;
    assert!(ok && out.contains("registered"), "{out}{err}");
    let (ok, out, _) = run_cli(&["okta", "register-ssf", "--apply"], &config_file, &[]).await;
    assert!(ok && out.contains("already registered"), "{out}");
    let providers = okta.security_events_providers();
    assert_eq!(providers.len(), 1);
    assert_eq!(providers[0]["settings"]["issuer"], issuer.as_str());

    let mut config = Config::from_toml(&toml).unwrap();
    let test = test_config(data_dir.path());
    config.server = test.server;
    config.server.listen = format!("127.0.0.1:{port}").parse().unwrap();
    config.storage = test.storage;
    config.okta.secrets = test.okta.secrets;
    config.rules.builtin_correlations = false;
    config.responses = vec![response(&format!(
        "name = \"signal\"\nmode = \"enforce\"\n\
         actions = [\"ssf_session_revoked\", \"ssf_user_risk_change\"]\n\
         when = {{ rules = [\"{FACTOR_DEACTIVATED}\"] }}\n"
    ))];
    let app = spawn_app_with(config, data_dir).await;

    let jwks: Value = app
        .get("/.well-known/jwks.json")
        .await
        .json()
        .await
        .unwrap();
    let metadata: Value = app
        .get("/.well-known/ssf-configuration")
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(
        metadata["jwks_uri"],
        format!("{issuer}/.well-known/jwks.json")
    );
    assert_eq!(jwks["keys"][0]["kty"], "RSA");
    assert!(jwks["keys"][0].get("d").is_none(), "public keys only");

    assert_eq!(app.post(&envelope(vec![reset(target)])).await.status(), 204);
    let reports = reports(&app, 2).await;
    for report in &reports {
        assert_eq!(report["response"]["outcome"], "executed", "{report:#}");
    }
    // The stand-in fetched factorwatch's JWKS and verified each token's signature with it.
    let received = okta.received_security_events();
    assert_eq!(received.len(), 2);
    let event_of = |uri: &str| {
        let claims = received
            .iter()
            .find(|c| c["events"].get(uri).is_some())
            .unwrap_or_else(|| panic!("no {uri} event: {received:#?}"));
        assert_eq!(claims["iss"], issuer.as_str());
        let jti = claims["jti"].as_str().unwrap();
        assert!(reports.iter().any(|r| r["response"]["id"] == jti), "{jti}");
        claims["events"][uri].clone()
    };
    let revoked = event_of("https://schemas.openid.net/secevent/caep/event-type/session-revoked");
    assert_eq!(revoked["subject"]["user"]["email"], target.login.as_str());
    let risk = event_of("https://schemas.okta.com/secevent/okta/event-type/user-risk-change");
    assert_eq!(
        (
            risk["previous_level"].as_str(),
            risk["current_level"].as_str()
        ),
        (Some("none"), Some("high"))
    );
    assert!(
        okta.spec_violations().is_empty(),
        "{:?}",
        okta.spec_violations()
    );
}

#[tokio::test]
async fn check_config_names_a_scope_a_response_is_not_granted() {
    let okta = org(&[]).await;
    let key = rcgen::KeyPair::generate().unwrap();
    let client_id = "0oaresponsesnomanage";
    let granted = ["okta.users.read", "okta.roles.read"];
    okta.add_service_app(client_id, &key.public_key_pem(), None, &granted, false);
    let data_dir = TempDir::new().unwrap();
    let key_file = data_dir.path().join("okta.pem");
    std::fs::write(&key_file, key.serialize_pem()).unwrap();
    let config_file = data_dir.path().join("factorwatch.toml");
    let toml = format!(
        "[storage]\ndata_dir = {dir:?}\n[okta]\nsecrets = [\"s\"]\n[okta.api]\norg_url = {url:?}\n\
         client_id = {client_id:?}\nprivate_key_file = {key:?}\n\
         [[responses]]\nname = \"contain\"\nactions = [\"suspend_user\"]\n",
        dir = data_dir.path().join("spool"),
        url = okta.org_url(),
        key = key_file,
    );
    std::fs::write(&config_file, toml).unwrap();
    let (ok, _, stderr) = run_cli(&["check-config"], &config_file, &[]).await;
    assert!(!ok, "{stderr}");
    assert!(
        stderr.contains("cannot get a token for response \"contain\"")
            && stderr.contains("okta.users.manage"),
        "{stderr}"
    );

    okta.add_service_app(
        client_id,
        &key.public_key_pem(),
        None,
        &["okta.users.read", "okta.roles.read", "okta.users.manage"],
        false,
    );
    let (ok, _, stderr) = run_cli(&["check-config"], &config_file, &[]).await;
    assert!(ok, "{stderr}");
    assert!(
        stderr.contains("is granted okta.users.read okta.roles.read okta.users.manage"),
        "{stderr}"
    );
}

/// Two replicas sharing a Redis backend (`[cluster] mode = "redis"`), each on its own spool: the
/// same alert delivered to both acts once, and `max_per_hour` counts the actions of both.
#[cfg(feature = "redis")]
#[tokio::test]
async fn replicas_act_once_per_alert_and_share_the_cap() {
    use factorwatch::cluster::{ClusterConfig, ClusterMode, SharedState};
    use factorwatch::config::ServerUrl;
    let victims = many_users(5);
    let okta = org(&victims).await;
    let cluster = ClusterConfig {
        mode: ClusterMode::Redis,
        url: Some(ServerUrl::new("redis://127.0.0.1:6379")),
        key_prefix: Some(format!("{}:", crate::helpers::unique("responses"))),
    };
    let capped = response(&format!(
        "name = \"suspend\"\nmode = \"enforce\"\nactions = [\"suspend_user\"]\nmax_per_hour = 2\n\
         when = {{ rules = [\"{FACTOR_DEACTIVATED}\"] }}\n"
    ));
    let dirs = [TempDir::new().unwrap(), TempDir::new().unwrap()];
    let replicas: Vec<Responder> = dirs
        .iter()
        .zip(["replica-a", "replica-b"])
        .map(|(dir, name)| {
            let spool = std::sync::Arc::new(Spool::open(dir.path(), u64::MAX).unwrap());
            let shared = SharedState::new(&cluster, name).map(std::sync::Arc::new);
            replica(&okta, spool, capped.clone(), shared)
        })
        .collect();

    // The first victim's alert reaches both replicas at once.
    let (alert, payload) = alert_on(&victims[0]).await;
    let delivery = Delivery {
        payload: &payload,
        alert: &alert,
    };
    let (a, b) = tokio::join!(replicas[0].publish(delivery), replicas[1].publish(delivery));
    a.unwrap();
    b.unwrap();
    let suspends = |okta: &OktaStandIn| {
        okta.requests()
            .into_iter()
            .filter(|r| r.path.ends_with("/lifecycle/suspend"))
            .count()
    };
    assert_eq!(suspends(&okta), 1, "one replica acts");

    // Four more victims, two to each replica: the cap of 2 an hour is shared, so one more acts.
    for (at, victim) in victims[1..].iter().enumerate() {
        let (alert, payload) = alert_on(victim).await;
        let delivery = Delivery {
            payload: &payload,
            alert: &alert,
        };
        replicas[at % 2].publish(delivery).await.unwrap();
    }
    assert_eq!(suspends(&okta), 2, "max_per_hour counts both replicas");
    let mut held = 0;
    for replica in &replicas {
        let records = replica.records().await.unwrap();
        held += records
            .iter()
            .filter(|r| r.outcome.as_str() == "held")
            .count();
        assert!(
            records
                .iter()
                .filter(|r| r.outcome.as_str() == "skipped")
                .all(|r| r.reason.contains("another replica")),
            "{records:#?}"
        );
    }
    assert_eq!(held, 3);
}
