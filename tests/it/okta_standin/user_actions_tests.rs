//! The stand-in's responder operations checked against Okta's spec, as a client sees them over
//! HTTP: suspend and unsuspend, clearing sessions, user risk, `users/me`, their scopes, their
//! injected failures and revoked credentials.

use std::time::{SystemTime, UNIX_EPOCH};

use factorwatch::okta::samples;
use reqwest::Method;
use serde_json::{Value, json};

use super::tests::{assert_no_violation, bearer_token, get, status_and_body};
use super::{OktaStandIn, UserSeed};

const USERS_MANAGE: &str = "okta.users.manage";
const USERS_READ: &str = "okta.users.read";
const RISK_READ: &str = "okta.userRisk.read";
const RISK_MANAGE: &str = "okta.userRisk.manage";
const ALL: [&str; 4] = [USERS_MANAGE, USERS_READ, RISK_READ, RISK_MANAGE];
const API_TOKEN: &str = "00-responder-token";

/// A stand-in with one `ACTIVE` user (one session) and an API token whose admin may do all.
async fn seeded() -> (OktaStandIn, String) {
    let okta = OktaStandIn::start().await;
    okta.add_api_token(API_TOKEN, &ALL);
    let seed = UserSeed::active(&samples::users()[0]);
    let id = seed.user.id.clone();
    okta.add_user(seed);
    (okta, id)
}

/// `method` on `/api/v1/users/{path}` with `authorization` and a JSON `body` when given.
pub(super) async fn send(
    okta: &OktaStandIn,
    method: Method,
    path: &str,
    authorization: &str,
    body: Option<&Value>,
) -> (u16, Value) {
    let url = format!("{}/api/v1/users/{path}", okta.org_url());
    let mut request = reqwest::Client::new()
        .request(method, url)
        .header("authorization", authorization);
    if let Some(body) = body {
        request = request
            .header("content-type", "application/json")
            .body(body.to_string());
    }
    status_and_body(request.send().await.unwrap()).await
}

fn ssws() -> String {
    format!("SSWS {API_TOKEN}")
}

#[tokio::test]
async fn suspend_works_only_on_an_active_user_and_unsuspend_only_on_a_suspended_one() {
    let (okta, id) = seeded().await;
    let suspend = format!("{id}/lifecycle/suspend");
    let unsuspend = format!("{id}/lifecycle/unsuspend");

    let (status, body) = send(&okta, Method::POST, &suspend, &ssws(), None).await;
    assert_eq!((status, body), (200, Value::Null));
    assert_eq!(okta.user_status(&id), "SUSPENDED");
    assert_eq!(
        okta.user_sessions(&id),
        0,
        "a suspended user has no session"
    );

    let (status, body) = send(&okta, Method::POST, &suspend, &ssws(), None).await;
    assert_eq!(status, 400, "{body}");
    assert_eq!(body["errorCode"], "E0000001");
    assert!(
        body["errorCauses"].to_string().contains("not active"),
        "{body}"
    );
    assert_eq!(okta.user_status(&id), "SUSPENDED");

    let (status, _) = send(&okta, Method::POST, &unsuspend, &ssws(), None).await;
    assert_eq!(status, 200);
    assert_eq!(okta.user_status(&id), "ACTIVE");
    let (status, body) = send(&okta, Method::POST, &unsuspend, &ssws(), None).await;
    assert_eq!(status, 400);
    assert!(
        body["errorCauses"].to_string().contains("not suspended"),
        "{body}"
    );

    let (status, body) = send(
        &okta,
        Method::POST,
        "00unknownuser0000000/lifecycle/suspend",
        &ssws(),
        None,
    )
    .await;
    assert_eq!((status, &body["errorCode"]), (404, &json!("E0000007")));
    assert_no_violation(&okta);
}

#[tokio::test]
async fn clearing_sessions_ends_them_and_may_revoke_oauth_tokens() {
    let (okta, id) = seeded().await;
    let mut seed = UserSeed::active(&samples::users()[1]);
    seed.sessions = 3;
    let other = seed.user.id.clone();
    okta.add_user(seed);
    assert_eq!(
        okta.user_sessions(&id),
        1,
        "UserSeed::active has one session"
    );

    let path = format!("{id}/sessions?oauthTokens=false");
    let (status, body) = send(&okta, Method::DELETE, &path, &ssws(), None).await;
    assert_eq!((status, body), (204, Value::Null));
    assert_eq!(okta.user_sessions(&id), 0);
    assert!(!okta.oauth_tokens_revoked(&id));

    let path = format!("{other}/sessions?oauthTokens=true");
    assert_eq!(
        send(&okta, Method::DELETE, &path, &ssws(), None).await.0,
        204
    );
    assert_eq!(okta.user_sessions(&other), 0);
    assert!(okta.oauth_tokens_revoked(&other));
    assert_no_violation(&okta);
}

#[tokio::test]
async fn a_user_risk_is_created_then_updated_and_read_back() {
    let (okta, id) = seeded().await;
    let path = format!("{id}/risk");

    let (status, body) = send(&okta, Method::GET, &path, &ssws(), None).await;
    assert_eq!((status, &body["riskLevel"]), (200, &json!("NONE")));
    assert_eq!(body.get("reason"), None, "{body}");
    assert_eq!(okta.user_risk(&id), None);

    let high =
        json!({"riskLevel": "HIGH", "riskReason": "MFA reset by help desk, then new device"});
    let (status, body) = send(&okta, Method::PUT, &path, &ssws(), Some(&high)).await;
    assert_eq!(status, 201, "the first upsert creates: {body}");
    assert_eq!(body["reason"], "MFA reset by help desk, then new device");
    assert!(
        body["_links"]["user"]["href"]
            .as_str()
            .unwrap()
            .ends_with(&id)
    );

    let medium = json!({"riskLevel": "MEDIUM"});
    let (status, body) = send(&okta, Method::PUT, &path, &ssws(), Some(&medium)).await;
    assert_eq!(status, 200, "then it updates: {body}");
    assert_eq!(body["reason"], "override.by.admin", "Okta's default reason");

    let (status, body) = send(&okta, Method::GET, &path, &ssws(), None).await;
    assert_eq!(
        (status, &body["riskLevel"], &body["reason"]),
        (200, &json!("MEDIUM"), &json!("override.by.admin"))
    );
    assert_eq!(okta.user_risk(&id).as_deref(), Some("MEDIUM"));
    assert_no_violation(&okta);
}

#[tokio::test]
async fn a_risk_okta_cannot_take_is_refused_and_a_client_bug() {
    let (okta, id) = seeded().await;
    let path = format!("{id}/risk");
    let cases = [
        json!({"riskLevel": "HIGH", "riskReason": "user's push factor reset!"}),
        json!({"riskLevel": "HIGH", "riskReason": "a".repeat(501)}),
        json!({"riskLevel": "NONE"}),
    ];
    for body in cases {
        let (status, error) = send(&okta, Method::PUT, &path, &ssws(), Some(&body)).await;
        assert_eq!(
            (status, &error["errorCode"]),
            (400, &json!("E0000001")),
            "{body}"
        );
    }
    assert_eq!(okta.user_risk(&id), None, "nothing was set");
    let violations = okta.spec_violations();
    assert_eq!(violations.len(), 3, "{violations:?}");
    assert!(
        violations[0].contains("/riskReason: Pattern"),
        "{violations:?}"
    );
    assert!(
        violations[1].contains("/riskReason: Length(501)"),
        "{violations:?}"
    );
    assert!(violations[2].contains("/riskLevel: Enum"), "{violations:?}");
}

#[tokio::test]
async fn each_operation_needs_its_scope() {
    let (okta, id) = seeded().await;
    let token = bearer_token(&okta, &[USERS_READ, RISK_READ]).await;
    let bearer = format!("Bearer {token}");
    let cases = [
        (
            Method::POST,
            format!("{id}/lifecycle/suspend"),
            USERS_MANAGE,
        ),
        (Method::DELETE, format!("{id}/sessions"), USERS_MANAGE),
        (Method::PUT, format!("{id}/risk"), RISK_MANAGE),
    ];
    for (method, path, scope) in cases {
        let url = format!("{}/api/v1/users/{path}", okta.org_url());
        let mut request = reqwest::Client::new()
            .request(method.clone(), url)
            .header("authorization", &bearer);
        if method == Method::PUT {
            request = request
                .header("content-type", "application/json")
                .body(json!({"riskLevel": "LOW"}).to_string());
        }
        let answer = request.send().await.unwrap();
        assert_eq!(answer.status(), 403, "{method} {path}");
        let challenge = answer.headers()["www-authenticate"].to_str().unwrap();
        assert!(
            challenge.contains(&format!("scope=\"{scope}\"")),
            "{challenge}"
        );
    }
    assert_eq!(okta.user_status(&id), "ACTIVE");
    assert_eq!(okta.user_sessions(&id), 1);
    let (status, body) = send(&okta, Method::GET, &format!("{id}/risk"), &bearer, None).await;
    assert_eq!((status, &body["riskLevel"]), (200, &json!("NONE")));
    assert_no_violation(&okta);
}

#[tokio::test]
async fn injected_failures_answer_429_with_a_reset_a_second_ahead_then_500() {
    let (okta, id) = seeded().await;
    let path = format!("{id}/sessions");
    okta.fail_next_user_actions(2, 429);
    for _ in 0..2 {
        let url = format!("{}/api/v1/users/{path}", okta.org_url());
        let answer = reqwest::Client::new()
            .delete(url)
            .header("authorization", ssws())
            .send()
            .await
            .unwrap();
        assert_eq!(answer.status(), 429);
        let header = |name: &str| answer.headers()[name].to_str().unwrap().to_owned();
        assert_eq!(header("x-rate-limit-remaining"), "0");
        let reset: u64 = header("x-rate-limit-reset").parse().unwrap();
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap()
            .as_secs();
        assert!((now..=now + 2).contains(&reset), "reset {reset}, now {now}");
        let (_, body) = status_and_body(answer).await;
        assert_eq!(body["errorCode"], "E0000047");
    }
    assert_eq!(okta.user_sessions(&id), 1, "a refused call changes nothing");
    okta.fail_next_user_actions(1, 500);
    let (status, body) = send(&okta, Method::DELETE, &path, &ssws(), None).await;
    assert_eq!((status, &body["errorCode"]), (500, &json!("E0000009")));
    assert_eq!(
        send(&okta, Method::DELETE, &path, &ssws(), None).await.0,
        204
    );
    assert_eq!(okta.user_sessions(&id), 0);
    assert_no_violation(&okta);
}

#[tokio::test]
async fn a_revoked_api_token_gets_401() {
    let (okta, id) = seeded().await;
    let path = format!("{id}/lifecycle/suspend");
    okta.revoke_api_token(API_TOKEN);
    let (status, body) = send(&okta, Method::POST, &path, &ssws(), None).await;
    assert_eq!((status, &body["errorCode"]), (401, &json!("E0000011")));
    assert_eq!(okta.user_status(&id), "ACTIVE");
    assert_no_violation(&okta);
}

#[tokio::test]
async fn me_is_the_api_token_s_admin_and_no_user_for_a_service_app() {
    let (okta, _) = seeded().await;
    let url = format!("{}/api/v1/users/me", okta.org_url());
    let (status, me) = status_and_body(get(&url, &ssws()).await).await;
    assert_eq!(status, 200);
    assert_eq!(me["id"], json!(samples::admin().id));
    assert_eq!(me["profile"]["login"], json!(samples::admin().login));

    let token = bearer_token(&okta, &[USERS_READ]).await;
    let (status, body) = status_and_body(get(&url, &format!("Bearer {token}")).await).await;
    assert_eq!((status, &body["errorCode"]), (404, &json!("E0000007")));
    assert_no_violation(&okta);
}
