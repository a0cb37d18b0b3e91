//! The stand-in's Users API checked against Okta's spec, and the spec checker's keywords that
//! the factor, role and group schemas use (discriminator, oneOf, anyOf, pattern, minimum and
//! maximum).

use std::time::{Duration, Instant};

use factorwatch::okta::samples;
use serde_json::{Value, json};

use super::spec::{Spec, ViolationKind};
use super::tests::{assert_no_violation, bearer_token, get, status_and_body};
use super::{FactorSeed, OktaStandIn, UserSeed};

const USERS_READ: &str = "okta.users.read";
const ROLES_READ: &str = "okta.roles.read";

/// A stand-in with one seeded admin: two factors, a role, three groups.
async fn seeded() -> (OktaStandIn, UserSeed) {
    let okta = OktaStandIn::start().await;
    let mut seed = UserSeed::active(&samples::users()[0]);
    seed.factors = vec![
        FactorSeed::active("push", "OKTA"),
        FactorSeed::active("sms", "OKTA"),
        FactorSeed::active("webauthn", "FIDO"),
        FactorSeed::active("token:software:totp", "GOOGLE"),
        FactorSeed::active("question", "OKTA"),
    ];
    seed.roles = vec!["SUPER_ADMIN".into(), "HELP_DESK_ADMIN".into()];
    seed.groups = vec!["Everyone".into(), "Admins".into(), "Finance".into()];
    okta.add_user(seed.clone());
    (okta, seed)
}

async fn read(okta: &OktaStandIn, path: &str, token: &str) -> (u16, Value) {
    let url = format!("{}/api/v1/users/{path}", okta.org_url());
    status_and_body(get(&url, &format!("Bearer {token}")).await).await
}

#[tokio::test]
async fn a_user_its_factors_roles_and_groups_answer_as_the_spec_says() {
    let (okta, seed) = seeded().await;
    let token = bearer_token(&okta, &[USERS_READ, ROLES_READ]).await;
    let id = &seed.user.id;

    let (status, user) = read(&okta, id, &token).await;
    assert_eq!((status, user["status"].as_str()), (200, Some("ACTIVE")));
    assert_eq!(user["profile"]["login"], seed.user.login);
    let (_, by_login) = read(&okta, &seed.user.login, &token).await;
    assert_eq!(by_login["id"], json!(id), "getUser takes a login too");

    let (status, factors) = read(&okta, &format!("{id}/factors"), &token).await;
    assert_eq!(status, 200);
    let types: Vec<&str> = factors
        .as_array()
        .unwrap()
        .iter()
        .map(|f| f["factorType"].as_str().unwrap())
        .collect();
    assert_eq!(
        types,
        ["push", "sms", "webauthn", "token:software:totp", "question"]
    );

    let (status, roles) = read(&okta, &format!("{id}/roles"), &token).await;
    assert_eq!(status, 200);
    assert_eq!(roles[0]["type"], "SUPER_ADMIN");
    assert_eq!(roles[0]["label"], "Super Administrator");
    assert_eq!(roles[1]["label"], "Help Desk Administrator");

    let (status, groups) = read(&okta, &format!("{id}/groups"), &token).await;
    assert_eq!(status, 200);
    assert_eq!(groups[1]["profile"]["name"], "Admins");

    let (status, missing) = read(&okta, "00unknownuser0000000", &token).await;
    assert_eq!(
        (status, missing["errorCode"].as_str()),
        (404, Some("E0000007"))
    );
    assert_no_violation(&okta);
}

#[tokio::test]
async fn roles_need_their_own_scope() {
    let (okta, seed) = seeded().await;
    let token = bearer_token(&okta, &[USERS_READ]).await;
    let id = &seed.user.id;
    assert_eq!(read(&okta, &format!("{id}/factors"), &token).await.0, 200);
    let url = format!("{}/api/v1/users/{id}/roles", okta.org_url());
    let answer = get(&url, &format!("Bearer {token}")).await;
    let challenge = answer.headers()["www-authenticate"].to_str().unwrap();
    assert!(
        challenge.contains("scope=\"okta.roles.read\""),
        "{challenge}"
    );
    assert!(challenge.contains("insufficient_scope"), "{challenge}");
    assert_eq!(answer.status(), 403);
    assert_no_violation(&okta);
}

#[tokio::test]
async fn the_users_api_can_be_slow_or_down() {
    let (okta, seed) = seeded().await;
    let token = bearer_token(&okta, &[USERS_READ, ROLES_READ]).await;
    okta.delay_users(Duration::from_millis(300));
    let started = Instant::now();
    assert_eq!(read(&okta, &seed.user.id, &token).await.0, 200);
    assert!(started.elapsed() >= Duration::from_millis(300));
    okta.delay_users(Duration::ZERO);
    okta.fail_users(Some(503));
    let (status, body) = read(&okta, &seed.user.id, &token).await;
    assert_eq!(
        (status, body["errorCode"].as_str()),
        (503, Some("E0000009"))
    );
    okta.fail_users(None);
    assert_eq!(read(&okta, &seed.user.id, &token).await.0, 200);
    assert_eq!(okta.user_requests().len(), 3);
    assert_no_violation(&okta);
}

#[test]
fn a_discriminator_picks_the_schema_its_property_names() {
    let spec = Spec::get();
    let factor = spec.schema("UserFactor");
    let push = json!({"factorType": "push", "provider": "OKTA", "profile": {"name": "My Phone"}});
    assert!(spec.validate(factor, &push).is_empty());
    // UserFactorPush allows only the OKTA provider; the base schema alone would not say so.
    let mut wrong_provider = push.clone();
    wrong_provider["provider"] = json!("FIDO");
    let found = spec.validate(factor, &wrong_provider);
    assert_eq!(found.len(), 1, "{found:?}");
    assert_eq!(found[0].path, "/provider");
    assert!(matches!(found[0].kind, ViolationKind::Enum(_)));
    // And the mapped schema's profile applies: an SMS number must be E.164 (pattern).
    let sms =
        json!({"factorType": "sms", "provider": "OKTA", "profile": {"phoneNumber": "555-1337"}});
    let found = spec.validate(factor, &sms);
    assert!(
        found.iter().any(|v| v.path == "/profile/phoneNumber"
            && v.kind == ViolationKind::Pattern("555-1337".into())),
        "{found:?}"
    );
    let role_items = &spec
        .response_schema("/api/v1/users/{userId}/roles", "get", 200)
        .unwrap()["items"];
    let custom = json!({"type": "CUSTOM", "role": "cr0abc", "resource-set": "iam0abc"});
    assert!(spec.validate(role_items, &custom).is_empty());
    let bad = json!({"type": "SUPER_ADMIN", "status": "GONE"});
    let found = spec.validate(role_items, &bad);
    assert_eq!(found.len(), 1, "{found:?}");
    assert_eq!(found[0].path, "/status");
}

#[test]
fn one_of_any_of_and_ranges_are_checked() {
    let spec = Spec::get();
    let one_of = json!({"oneOf": [{"type": "string"}, {"type": "string", "maxLength": 3}]});
    assert!(spec.validate(&one_of, &json!("long enough")).is_empty());
    assert_eq!(
        spec.validate(&one_of, &json!("ab"))[0].kind,
        ViolationKind::OneOf(2)
    );
    assert_eq!(
        spec.validate(&one_of, &json!(7))[0].kind,
        ViolationKind::OneOf(0)
    );
    let group_profile = spec.schema("GroupProfile");
    assert!(
        spec.validate(group_profile, &json!({"name": "Admins"}))
            .is_empty()
    );
    assert_eq!(
        spec.validate(group_profile, &json!({"name": 5}))[0].kind,
        ViolationKind::AnyOf
    );
    let range = json!({"type": "integer", "minimum": 1, "maximum": 20});
    assert!(spec.validate(&range, &json!(20)).is_empty());
    assert_eq!(
        spec.validate(&range, &json!(0))[0].kind,
        ViolationKind::Range(0.0)
    );
    assert_eq!(
        spec.validate(&range, &json!(21))[0].kind,
        ViolationKind::Range(21.0)
    );
}
