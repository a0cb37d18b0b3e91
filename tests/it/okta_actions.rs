//! The Okta client's responder calls against the Okta stand-in: user risk, sessions, suspend
//! and unsuspend, the admin behind an API token, the Shared Signals receiver; and how each
//! fails: a status that refuses the change, a rate limit or a server error waited out, a revoked
//! credential, a missing scope, a refused SET. Every exchange fits Okta's spec.

use std::time::{Duration, Instant};

use factorwatch::okta::samples;
use factorwatch::okta_api::{OktaApiConfig, OktaApiError, OktaClient, RiskLevel, scopes};
use rcgen::{KeyPair, PKCS_RSA_SHA256};
use serde_json::json;
use tempfile::TempDir;

use crate::okta_standin::{OktaStandIn, Transmitter, UserSeed};

const API_TOKEN: &str = "00actions-test-api-token";
const RESPONDER_SCOPES: [&str; 4] = [
    scopes::USERS_MANAGE,
    scopes::USERS_READ,
    scopes::USER_RISK_READ,
    scopes::USER_RISK_MANAGE,
];

/// The stand-in with an API token whose admin may do everything the responder does, and one
/// `ACTIVE` user with a session; its id.
async fn org() -> (OktaStandIn, String) {
    let okta = OktaStandIn::start().await;
    okta.add_api_token(API_TOKEN, &RESPONDER_SCOPES);
    let seed = UserSeed::active(&samples::users()[0]);
    let id = seed.user.id.clone();
    okta.add_user(seed);
    (okta, id)
}

/// A client of `okta` through its API token.
fn ssws_client(okta: &OktaStandIn) -> OktaClient {
    let config: OktaApiConfig =
        serde_json::from_value(json!({"org_url": okta.org_url(), "api_token": API_TOKEN})).unwrap();
    OktaClient::new(&config, &[], "").unwrap()
}

/// A client of `okta` as a new API Services app granted `granted`, asking for `scopes`; the key
/// lives in `dir`.
fn oauth_client(okta: &OktaStandIn, dir: &TempDir, granted: &[&str]) -> OktaClient {
    let pair = KeyPair::generate_for(&PKCS_RSA_SHA256).unwrap();
    let path = dir.path().join("app.pem");
    std::fs::write(&path, pair.serialize_pem()).unwrap();
    let client_id = format!("0oa{}", &uuid::Uuid::new_v4().simple().to_string()[..17]);
    okta.add_service_app(
        &client_id,
        &pair.public_key_pem(),
        Some("k1"),
        granted,
        false,
    );
    let config: OktaApiConfig = serde_json::from_value(json!({
        "org_url": okta.org_url(), "client_id": client_id,
        "private_key_file": path, "key_id": "k1",
    }))
    .unwrap();
    OktaClient::new(&config, granted, "").unwrap()
}

fn assert_no_violation(okta: &OktaStandIn) {
    assert_eq!(okta.spec_violations(), Vec::<String>::new());
}

/// The requests of `okta` to `path`.
fn requests_to(okta: &OktaStandIn, path: &str) -> usize {
    okta.requests().iter().filter(|r| r.path == path).count()
}

#[tokio::test]
async fn a_risk_level_is_set_with_a_reason_okta_accepts_and_read_back() {
    let (okta, id) = org().await;
    let client = ssws_client(&okta);
    let before = client.get_user_risk(&id).await.unwrap();
    assert_eq!((before.risk_level.as_str(), before.reason), ("NONE", None));

    let set = client
        .set_user_risk(
            &id,
            RiskLevel::High,
            "MFA reset: alice's push factor (by help desk)!",
        )
        .await
        .unwrap();
    assert_eq!(set.risk_level, "HIGH");
    assert_eq!(
        set.reason.as_deref(),
        Some("MFA reset  alice s push factor  by help desk")
    );
    assert_eq!(client.get_user_risk(&id).await.unwrap(), set);
    assert_eq!(okta.user_risk(&id).as_deref(), Some("HIGH"));

    let lowered = client.set_user_risk(&id, RiskLevel::Low, "").await.unwrap();
    assert_eq!(
        (lowered.risk_level.as_str(), lowered.reason.as_deref()),
        ("LOW", Some("override.by.admin")),
        "no reason: Okta's default"
    );
    assert_no_violation(&okta);
}

#[tokio::test]
async fn sessions_are_cleared_with_or_without_the_oauth_tokens() {
    let (okta, id) = org().await;
    let client = ssws_client(&okta);
    client.clear_user_sessions(&id, false).await.unwrap();
    assert_eq!(okta.user_sessions(&id), 0);
    assert!(!okta.oauth_tokens_revoked(&id));
    client.clear_user_sessions(&id, true).await.unwrap();
    assert!(okta.oauth_tokens_revoked(&id));
    let sent: Vec<_> = okta
        .user_requests()
        .iter()
        .map(|r| r.param("oauthTokens").map(str::to_owned))
        .collect();
    assert_eq!(sent, [Some("false".to_owned()), Some("true".to_owned())]);
    assert_no_violation(&okta);
}

#[tokio::test]
async fn suspend_and_unsuspend_and_a_status_that_refuses_them_is_a_conflict() {
    let (okta, id) = org().await;
    let client = ssws_client(&okta);
    client.suspend_user(&id).await.unwrap();
    assert_eq!(okta.user_status(&id), "SUSPENDED");

    let again = client.suspend_user(&id).await.unwrap_err();
    assert!(matches!(again, OktaApiError::Conflict(_)), "{again:?}");
    assert!(!again.is_transient());
    let text = again.to_string();
    assert!(
        text.contains("not active") && text.contains("ACTIVE"),
        "{text}"
    );
    let path = format!("/api/v1/users/{id}/lifecycle/suspend");
    assert_eq!(requests_to(&okta, &path), 2, "a refusal is not retried");

    client.unsuspend_user(&id).await.unwrap();
    assert_eq!(okta.user_status(&id), "ACTIVE");
    let error = client.unsuspend_user(&id).await.unwrap_err();
    assert!(matches!(error, OktaApiError::Conflict(_)), "{error:?}");

    let missing = client
        .suspend_user("00unknownuser0000000")
        .await
        .unwrap_err();
    assert!(
        matches!(missing, OktaApiError::NotFound { what: "user", .. }),
        "{missing:?}"
    );
    assert_no_violation(&okta);
}

#[tokio::test]
async fn the_current_user_is_the_api_token_s_admin_and_none_for_an_app() {
    let (okta, _) = org().await;
    let me = ssws_client(&okta).current_user().await.unwrap();
    assert_eq!((me.id, me.status.as_str()), (samples::admin().id, "ACTIVE"));

    let dir = TempDir::new().unwrap();
    let app = oauth_client(&okta, &dir, &[scopes::USERS_READ]);
    let error = app.current_user().await.unwrap_err();
    assert!(matches!(error, OktaApiError::NoUserContext(_)), "{error:?}");
    assert!(error.to_string().contains("API Services app"), "{error}");
    assert_no_violation(&okta);
}

#[tokio::test]
async fn a_rate_limit_and_a_server_error_are_waited_out() {
    let (okta, id) = org().await;
    let client = ssws_client(&okta);
    let path = format!("/api/v1/users/{id}/lifecycle/suspend");

    okta.fail_next_user_actions(1, 429);
    let started = Instant::now();
    client.suspend_user(&id).await.unwrap();
    assert_eq!(okta.user_status(&id), "SUSPENDED");
    assert_eq!(requests_to(&okta, &path), 2);
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "the 429's reset is a second away: {:?}",
        started.elapsed()
    );

    okta.fail_next_user_actions(1, 500);
    let risk = client
        .set_user_risk(&id, RiskLevel::Medium, "suspended after MFA reset")
        .await
        .unwrap();
    assert_eq!(risk.risk_level, "MEDIUM");
    assert_eq!(requests_to(&okta, &format!("/api/v1/users/{id}/risk")), 2);
    assert_no_violation(&okta);
}

#[tokio::test]
async fn a_revoked_token_is_a_credentials_error_and_a_missing_scope_is_named() {
    let (okta, id) = org().await;
    let client = ssws_client(&okta);
    okta.revoke_api_token(API_TOKEN);
    let error = client.clear_user_sessions(&id, true).await.unwrap_err();
    assert!(matches!(error, OktaApiError::Credentials(_)), "{error:?}");
    assert!(!error.is_transient());
    assert!(error.to_string().contains("api_token"), "{error}");
    assert_eq!(
        requests_to(&okta, &format!("/api/v1/users/{id}/sessions")),
        1
    );
    assert_eq!(okta.user_sessions(&id), 1);

    let dir = TempDir::new().unwrap();
    let app = oauth_client(&okta, &dir, &[scopes::USERS_READ, scopes::USER_RISK_READ]);
    let error = app.suspend_user(&id).await.unwrap_err();
    assert!(
        matches!(&error, OktaApiError::MissingScope { scope } if scope == scopes::USERS_MANAGE),
        "{error:?}"
    );
    assert_eq!(okta.user_status(&id), "ACTIVE");
    assert_no_violation(&okta);
}

#[tokio::test]
async fn a_transmitter_is_registered_and_its_sets_pushed_without_credentials() {
    let okta = OktaStandIn::start().await;
    let dir = TempDir::new().unwrap();
    let app = oauth_client(
        &okta,
        &dir,
        &[
            scopes::SECURITY_EVENTS_PROVIDERS_MANAGE,
            scopes::SECURITY_EVENTS_PROVIDERS_READ,
        ],
    );
    let transmitter = Transmitter::start("fw-1").await;
    let provider = app
        .create_security_events_provider("factorwatch", &transmitter.issuer, &transmitter.jwks_url)
        .await
        .unwrap();
    assert!(provider.id.starts_with("sse"), "{provider:?}");
    assert_eq!(provider.status, "ACTIVE");
    assert_eq!(
        provider.settings.issuer.as_deref(),
        Some(transmitter.issuer.as_str())
    );
    assert_eq!(
        app.list_security_events_providers().await.unwrap(),
        vec![provider]
    );

    let claims = transmitter.user_risk_change(&okta, "alice@example.com");
    okta.fail_next_user_actions(1, 429);
    app.push_security_event_token(&transmitter.sign(&claims))
        .await
        .unwrap();
    assert_eq!(okta.received_security_events(), vec![claims]);
    let pushes: Vec<_> = okta
        .requests()
        .into_iter()
        .filter(|r| r.path == "/security/api/v1/security-events")
        .collect();
    assert_eq!(pushes.len(), 2, "the 429 was waited out");
    assert!(pushes.iter().all(|r| r.header("authorization").is_none()));
    assert_eq!(
        pushes[0].header("content-type"),
        Some("application/secevent+jwt")
    );

    let mut elsewhere = transmitter.user_risk_change(&okta, "alice@example.com");
    elsewhere["aud"] = json!("https://acme.okta.com");
    let error = app
        .push_security_event_token(&transmitter.sign(&elsewhere))
        .await
        .unwrap_err();
    assert!(matches!(error, OktaApiError::BadRequest(_)), "{error:?}");
    let text = error.to_string();
    assert!(
        text.contains("invalid_audience") && text.contains("org_url"),
        "{text}"
    );
    assert_eq!(okta.received_security_events().len(), 1);
    assert_no_violation(&okta);
}
