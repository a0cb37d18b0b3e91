//! The stand-in's Shared Signals receiver checked against Okta's spec and README §f: providers
//! registered and listed, SETs verified with the provider's JWKS (fetched over HTTP) and refused
//! with Okta's `err` codes.

use serde_json::{Value, json};

use super::tests::{assert_no_violation, bearer_token, status_and_body};
use super::{OktaStandIn, Transmitter};

const MANAGE: &str = "okta.securityEventsProviders.manage";
const READ: &str = "okta.securityEventsProviders.read";
const CREDENTIAL_CHANGE: &str =
    "https://schemas.openid.net/secevent/caep/event-type/credential-change";

/// Registers `transmitter` with `okta` through the API; returns the answer.
async fn register(okta: &OktaStandIn, transmitter: &Transmitter, token: &str) -> (u16, Value) {
    let body = json!({
        "name": "Test transmitter",
        "type": "okta",
        "settings": {"issuer": transmitter.issuer, "jwks_url": transmitter.jwks_url},
    });
    let answer = reqwest::Client::new()
        .post(format!(
            "{}/api/v1/security-events-providers",
            okta.org_url()
        ))
        .header("authorization", format!("Bearer {token}"))
        .header("content-type", "application/json")
        .body(body.to_string())
        .send()
        .await
        .unwrap();
    status_and_body(answer).await
}

/// Pushes `set` without credentials; returns the status and Okta's error body (`null` on 202).
async fn push(okta: &OktaStandIn, set: &str) -> (u16, Value) {
    let answer = reqwest::Client::new()
        .post(format!(
            "{}/security/api/v1/security-events",
            okta.org_url()
        ))
        .header("content-type", "application/secevent+jwt")
        .body(set.to_owned())
        .send()
        .await
        .unwrap();
    status_and_body(answer).await
}

/// A stand-in with `transmitter` registered.
async fn with_provider(transmitter: &Transmitter) -> OktaStandIn {
    let okta = OktaStandIn::start().await;
    let token = bearer_token(&okta, &[MANAGE, READ]).await;
    let (status, provider) = register(&okta, transmitter, &token).await;
    assert_eq!(status, 200, "{provider}");
    okta
}

#[tokio::test]
async fn a_provider_is_created_active_and_listed() {
    let okta = OktaStandIn::start().await;
    let transmitter = Transmitter::start("key-1").await;
    let token = bearer_token(&okta, &[MANAGE, READ]).await;
    let (status, created) = register(&okta, &transmitter, &token).await;
    assert_eq!(status, 200);
    assert!(
        created["id"].as_str().unwrap().starts_with("sse"),
        "{created}"
    );
    assert_eq!(created["status"], "ACTIVE");
    assert_eq!(created["settings"]["issuer"], json!(transmitter.issuer));
    assert_eq!(created["settings"]["jwks_url"], json!(transmitter.jwks_url));

    let url = format!("{}/api/v1/security-events-providers", okta.org_url());
    let answer = super::tests::get(&url, &format!("Bearer {token}")).await;
    let (status, listed) = status_and_body(answer).await;
    assert_eq!((status, listed), (200, json!([created])));
    assert_no_violation(&okta);
}

#[tokio::test]
async fn providers_need_their_scopes_and_a_valid_body() {
    let okta = OktaStandIn::start().await;
    let transmitter = Transmitter::start("key-1").await;
    let read_only = bearer_token(&okta, &[READ]).await;
    let (status, body) = register(&okta, &transmitter, &read_only).await;
    assert_eq!((status, &body["errorCode"]), (403, &json!("E0000006")));

    let token = bearer_token(&okta, &[MANAGE]).await;
    let answer = reqwest::Client::new()
        .post(format!(
            "{}/api/v1/security-events-providers",
            okta.org_url()
        ))
        .header("authorization", format!("Bearer {token}"))
        .header("content-type", "application/json")
        .body(json!({"name": "No type", "settings": {"issuer": "x"}}).to_string())
        .send()
        .await
        .unwrap();
    let (status, body) = status_and_body(answer).await;
    assert_eq!((status, &body["errorCode"]), (400, &json!("E0000001")));
    let violations = okta.spec_violations();
    assert!(
        violations.iter().any(|v| v.contains("Required(\"type\")")),
        "{violations:?}"
    );
    assert!(okta.security_events_providers().is_empty());
}

#[tokio::test]
async fn a_signed_set_is_accepted_once_and_recorded() {
    let transmitter = Transmitter::start("key-1").await;
    let okta = with_provider(&transmitter).await;
    let claims = transmitter.user_risk_change(&okta, "alice@example.com");
    let set = transmitter.sign(&claims);
    assert_eq!(push(&okta, &set).await, (202, Value::Null));
    assert_eq!(okta.received_security_events(), vec![claims.clone()]);
    // A repeated jti is accepted and ignored.
    assert_eq!(push(&okta, &set).await.0, 202);
    assert_eq!(okta.received_security_events().len(), 1);
    // The org URL with a trailing slash is the same audience.
    let mut slash = transmitter.user_risk_change(&okta, "alice@example.com");
    slash["aud"] = json!(format!("{}/", okta.org_url()));
    assert_eq!(push(&okta, &transmitter.sign(&slash)).await.0, 202);
    assert_eq!(okta.received_security_events().len(), 2);
    let pushes: Vec<_> = okta
        .requests()
        .into_iter()
        .filter(|r| r.path == "/security/api/v1/security-events")
        .collect();
    assert!(pushes.iter().all(|r| r.header("authorization").is_none()));
    assert_no_violation(&okta);
}

#[tokio::test]
async fn sets_okta_cannot_verify_are_refused_with_its_err_codes() {
    let transmitter = Transmitter::start("key-1").await;
    let okta = with_provider(&transmitter).await;
    let valid = transmitter.user_risk_change(&okta, "alice@example.com");

    let mut wrong_iss = valid.clone();
    wrong_iss["iss"] = json!("https://someone-else.example");
    let mut wrong_aud = valid.clone();
    wrong_aud["aud"] = json!("https://acme.okta.com");
    let mut credential_change = valid.clone();
    credential_change["events"] = json!({CREDENTIAL_CHANGE: {
        "subject": {"user": {"format": "email", "email": "alice@example.com"}},
        "event_timestamp": valid["iat"], "credential_type": "password", "change_type": "update",
    }});
    let mut no_reason = valid.clone();
    let event = no_reason["events"]
        .as_object_mut()
        .unwrap()
        .values_mut()
        .next()
        .unwrap();
    event.as_object_mut().unwrap().remove("reason_admin");
    let mut bad_level = valid.clone();
    let event = bad_level["events"]
        .as_object_mut()
        .unwrap()
        .values_mut()
        .next()
        .unwrap();
    event["current_level"] = json!("critical");
    let mut no_jti = valid.clone();
    no_jti.as_object_mut().unwrap().remove("jti");

    let cases = [
        (wrong_iss, "invalid_issuer"),
        (wrong_aud, "invalid_audience"),
        (credential_change, "invalid_request"),
        (no_reason, "invalid_request"),
        (bad_level, "invalid_request"),
        (no_jti, "invalid_request"),
    ];
    for (claims, err) in cases {
        let (status, body) = push(&okta, &transmitter.sign(&claims)).await;
        assert_eq!(
            (status, &body["err"]),
            (400, &json!(err)),
            "{claims}: {body}"
        );
        assert!(body["description"].is_string(), "{body}");
    }

    // Signed with another key under the same kid: the signature fails; under another kid: no key.
    let impostor = Transmitter::start("key-1").await;
    let mut forged = valid.clone();
    forged["jti"] = json!("forged-1");
    let (status, body) = push(&okta, &impostor.sign(&forged)).await;
    assert_eq!(
        (status, &body["err"]),
        (400, &json!("authentication_failed"))
    );
    let stranger = Transmitter::start("key-2").await;
    let (status, body) = push(&okta, &stranger.sign(&forged)).await;
    assert_eq!(
        (status, &body["err"]),
        (400, &json!("invalid_key")),
        "{body}"
    );

    assert!(okta.received_security_events().is_empty());
    assert_no_violation(&okta);
}

#[tokio::test]
async fn a_set_needs_its_media_type_and_header() {
    let transmitter = Transmitter::start("key-1").await;
    let okta = with_provider(&transmitter).await;
    let set = transmitter.sign(&transmitter.user_risk_change(&okta, "alice@example.com"));
    let answer = reqwest::Client::new()
        .post(format!(
            "{}/security/api/v1/security-events",
            okta.org_url()
        ))
        .header("content-type", "application/json")
        .body(set)
        .send()
        .await
        .unwrap();
    let (status, body) = status_and_body(answer).await;
    assert_eq!((status, &body["err"]), (400, &json!("invalid_request")));
    let violations = okta.spec_violations();
    assert_eq!(violations.len(), 1, "{violations:?}");
    assert!(
        violations[0].contains("application/secevent+jwt"),
        "{violations:?}"
    );

    // A plain JWT (typ JWT) is not a SET.
    let claims = transmitter.user_risk_change(&okta, "alice@example.com");
    let mut set = transmitter.sign(&claims);
    let plain = {
        use base64::Engine;
        let header = json!({"alg": "RS256", "typ": "JWT", "kid": transmitter.kid});
        base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(header.to_string())
    };
    let rest = set.split_once('.').unwrap().1.to_owned();
    set = format!("{plain}.{rest}");
    let (status, body) = push(&okta, &set).await;
    assert_eq!(
        (status, &body["err"]),
        (400, &json!("invalid_request")),
        "{body}"
    );
    assert!(okta.received_security_events().is_empty());
}
