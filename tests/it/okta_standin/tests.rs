//! The stand-in's own tests: its answers checked against Okta's spec and documentation, the way a
//! client sees them over HTTP. Every test ends with no spec violation unless it provokes some.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use factorwatch::okta::samples::{self, Initiator};
use jsonwebtoken::jwk::Jwk;
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use rcgen::{KeyPair, PKCS_ECDSA_P256_SHA256, PKCS_RSA_SHA256};
use serde_json::{Value, json};
use sha2::{Digest, Sha256};

use reqwest::Method;

use super::spec::{Spec, ViolationKind};
use super::*;

const LOGS_READ: &str = "okta.logs.read";
const EXAMPLES: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/okta-api/examples");

/// A service app as a client holds it: its id, signing key and `kid`.
#[derive(Clone)]
struct ServiceClient {
    id: String,
    key: EncodingKey,
    alg: Algorithm,
    kid: Option<String>,
}

impl ServiceClient {
    /// A new key pair of `alg` (RS256 or ES256), registered on `okta` with `scopes`.
    fn register(
        okta: &OktaStandIn,
        alg: Algorithm,
        kid: Option<&str>,
        scopes: &[&str],
        dpop: bool,
    ) -> Self {
        let (pair, key) = key_pair(alg);
        let id = format!("0oa{}", &uuid::Uuid::new_v4().simple().to_string()[..17]);
        okta.add_service_app(&id, &pair.public_key_pem(), kid, scopes, dpop);
        ServiceClient {
            id,
            key,
            alg,
            kid: kid.map(str::to_owned),
        }
    }

    /// The claims Okta's docs ask for: `iss` = `sub` = client_id, `aud` = token URL, `iat`,
    /// `exp` 5 min ahead, a fresh `jti`.
    fn claims(&self, okta: &OktaStandIn) -> Value {
        let now = now_secs();
        json!({
            "iss": self.id, "sub": self.id, "aud": format!("{}/oauth2/v1/token", okta.org_url()),
            "iat": now, "exp": now + 300, "jti": uuid::Uuid::new_v4().to_string(),
        })
    }

    fn sign(&self, claims: &Value) -> String {
        let mut header = Header::new(self.alg);
        header.kid = self.kid.clone();
        jsonwebtoken::encode(&header, claims, &self.key).unwrap()
    }
}

/// A key pair from rcgen and the same private key for jsonwebtoken.
fn key_pair(alg: Algorithm) -> (KeyPair, EncodingKey) {
    let pem_key = |pair: &KeyPair| pair.serialize_pem().into_bytes();
    match alg {
        Algorithm::RS256 => {
            let pair = KeyPair::generate_for(&PKCS_RSA_SHA256).unwrap();
            let key = EncodingKey::from_rsa_pem(&pem_key(&pair)).unwrap();
            (pair, key)
        }
        Algorithm::ES256 => {
            let pair = KeyPair::generate_for(&PKCS_ECDSA_P256_SHA256).unwrap();
            let key = EncodingKey::from_ec_pem(&pem_key(&pair)).unwrap();
            (pair, key)
        }
        other => panic!("no test keys for {other:?}"),
    }
}

/// An ephemeral DPoP key (P-256) and its public JWK.
struct DpopKey {
    key: EncodingKey,
    jwk: Jwk,
}

impl DpopKey {
    fn new() -> Self {
        let (_, key) = key_pair(Algorithm::ES256);
        let jwk = Jwk::from_encoding_key(&key, Algorithm::ES256).unwrap();
        DpopKey { key, jwk }
    }

    /// A proof for `htm` `htu`, with `nonce` and the hash of `token` (`ath`) when given.
    fn proof(&self, htm: &str, htu: &str, nonce: Option<&str>, token: Option<&str>) -> String {
        let mut header = Header::new(Algorithm::ES256);
        header.typ = Some("dpop+jwt".into());
        header.jwk = Some(self.jwk.clone());
        let mut claims = json!({
            "htm": htm, "htu": htu, "iat": now_secs(), "jti": uuid::Uuid::new_v4().to_string(),
        });
        if let Some(nonce) = nonce {
            claims["nonce"] = json!(nonce);
        }
        if let Some(token) = token {
            use base64::Engine;
            let hash = Sha256::digest(token.as_bytes());
            claims["ath"] = json!(base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(hash));
        }
        jsonwebtoken::encode(&header, &claims, &self.key).unwrap()
    }
}

fn now_secs() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64
}

/// A token request with the form fields of README §a, a DPoP proof when given.
async fn token_request(
    okta: &OktaStandIn,
    assertion: &str,
    scope: &str,
    proof: Option<&str>,
) -> reqwest::Response {
    let form = [
        ("grant_type", "client_credentials"),
        ("scope", scope),
        (
            "client_assertion_type",
            "urn:ietf:params:oauth:client-assertion-type:jwt-bearer",
        ),
        ("client_assertion", assertion),
    ]
    .map(|(k, v)| (k.to_owned(), v.to_owned()));
    let mut request = reqwest::Client::new()
        .post(format!("{}/oauth2/v1/token", okta.org_url()))
        .header("content-type", "application/x-www-form-urlencoded")
        .body(encode_pairs(&form));
    if let Some(proof) = proof {
        request = request.header("dpop", proof);
    }
    request.send().await.unwrap()
}

/// A Bearer token for a new RS256 app granted `scopes`.
pub(super) async fn bearer_token(okta: &OktaStandIn, scopes: &[&str]) -> String {
    let client = ServiceClient::register(okta, Algorithm::RS256, Some("key-1"), scopes, false);
    let answer = token_request(
        okta,
        &client.sign(&client.claims(okta)),
        &scopes.join(" "),
        None,
    )
    .await;
    assert_eq!(answer.status(), 200);
    let body: Value = answer.json().await.unwrap();
    body["access_token"].as_str().unwrap().to_owned()
}

/// GET `url` with `Authorization: <authorization>`.
pub(super) async fn get(url: &str, authorization: &str) -> reqwest::Response {
    reqwest::Client::new()
        .get(url)
        .header("authorization", authorization)
        .send()
        .await
        .unwrap()
}

/// The `link` header values of an answer by relation.
fn link(answer: &reqwest::Response, rel: &str) -> Option<String> {
    let suffix = format!(">; rel=\"{rel}\"");
    answer
        .headers()
        .get_all("link")
        .iter()
        .filter_map(|v| v.to_str().ok()?.strip_suffix(&suffix)?.strip_prefix('<'))
        .map(str::to_owned)
        .next()
}

/// The uuids of a page of events.
async fn uuids(answer: reqwest::Response) -> Vec<String> {
    let events: Vec<Value> = answer.json().await.unwrap();
    events
        .iter()
        .map(|e| e["uuid"].as_str().unwrap().to_owned())
        .collect()
}

fn uuid_of(event: &Value) -> String {
    event["uuid"].as_str().unwrap().to_owned()
}

/// A `user.mfa.factor.deactivate` event published at `published` (RFC 3339).
fn mfa_event_at(published: &str) -> Value {
    let users = samples::users();
    let mut event = samples::mfa_factor_deactivate(&users[0], "SMS", Initiator::Admin, "tx1");
    event["published"] = json!(published);
    event
}

fn rfc3339(unix_secs: i64) -> String {
    time::OffsetDateTime::from_unix_timestamp(unix_secs)
        .unwrap()
        .format(&time::format_description::well_known::Rfc3339)
        .unwrap()
}

fn read_example(name: &str) -> Value {
    let text = std::fs::read_to_string(format!("{EXAMPLES}/{name}")).unwrap();
    serde_json::from_str(&text).unwrap()
}

pub(super) fn assert_no_violation(okta: &OktaStandIn) {
    assert_eq!(okta.spec_violations(), Vec::<String>::new());
}

#[tokio::test]
async fn okta_examples_validate_and_the_validator_sees_deviations() {
    let spec = Spec::get();
    let page_schema = spec.response_schema("/api/v1/logs", "get", 200).unwrap();
    let example = read_example("systemlog_list_response.json");
    let strict = spec.validate(page_schema, &example);
    // Okta's own example deviates from its schema only in the documented quirks.
    assert!(strict.iter().all(|v| v.is_okta_quirk()), "{strict:?}");
    let at = |path: &str| {
        strict
            .iter()
            .find(|v| v.path == path)
            .map(|v| v.kind.clone())
    };
    assert_eq!(at("/0/client/zone"), Some(ViolationKind::Null));
    assert!(matches!(at("/0/version"), Some(ViolationKind::Type { .. })));
    assert!(matches!(
        at("/0/client/geographicalContext/postalCode"),
        Some(ViolationKind::Type { .. })
    ));
    assert!(
        spec.validate_as_okta_sends(page_schema, &example)
            .is_empty()
    );
    let single = read_example("systemlog_list_response_additional_security_context.json");
    assert!(
        spec.validate_as_okta_sends(spec.schema("LogEvent"), &single)
            .is_empty()
    );
    let too_many = read_example("error_429_too_many_requests.json");
    let error_schema = spec.response_schema("/api/v1/logs", "get", 429).unwrap();
    assert!(spec.validate(error_schema, &too_many).is_empty());

    let mut broken = example.clone();
    broken[0]["severity"] = json!("LOUD");
    broken[0]["outcome"]["result"] = json!(7);
    broken[0]["target"] = json!({"id": "x"});
    broken[0]["published"] = json!("yesterday");
    broken[0]["outcome"]["reason"] = json!("");
    let found: Vec<String> = spec
        .validate_as_okta_sends(page_schema, &broken)
        .iter()
        .map(|v| v.path.clone())
        .collect();
    assert_eq!(
        found,
        [
            "/0/outcome/reason",
            "/0/outcome/result",
            "/0/published",
            "/0/severity",
            "/0/target"
        ]
    );
    assert!(
        !spec.validate(error_schema, &json!([])).is_empty(),
        "an array is no Error"
    );
}

#[tokio::test]
async fn accepted_parameters_are_those_of_list_log_events() {
    let listed = Spec::get().query_parameters(logs::PATH, "get");
    for (name, kind) in logs::ACCEPTED {
        let parameter = listed.iter().find(|p| p.name == name);
        let parameter = parameter.unwrap_or_else(|| panic!("listLogEvents lists no {name}"));
        assert_eq!(parameter.kind, kind, "type of {name}");
    }
    let sort = listed.iter().find(|p| p.name == "sortOrder").unwrap();
    assert_eq!(
        sort.allowed.as_deref(),
        Some(&["ASCENDING".to_owned(), "DESCENDING".to_owned()][..])
    );
}

#[tokio::test]
async fn a_bearer_token_polls_pages_in_persistence_order_forever() {
    let okta = OktaStandIn::start().await;
    let client =
        ServiceClient::register(&okta, Algorithm::RS256, Some("key-1"), &[LOGS_READ], false);
    let answer = token_request(&okta, &client.sign(&client.claims(&okta)), LOGS_READ, None).await;
    assert_eq!(answer.status(), 200);
    assert_eq!(answer.headers()["cache-control"], "no-store");
    let body: Value = answer.json().await.unwrap();
    assert_eq!(body["token_type"], "Bearer");
    assert_eq!(body["expires_in"], 3600);
    assert_eq!(body["scope"], LOGS_READ);
    let bearer = format!("Bearer {}", body["access_token"].as_str().unwrap());

    let users = samples::users();
    let events: Vec<Value> = (0..3)
        .map(|i| samples::session_start(&users[i], "198.51.100.7"))
        .collect();
    okta.publish(events.clone());
    let first_url = format!(
        "{}/api/v1/logs?sortOrder=ASCENDING&limit=2&since={}",
        okta.org_url(),
        rfc3339(now_secs() - 60)
    );
    let first = get(&first_url, &bearer).await;
    assert_eq!(first.status(), 200);
    for name in [
        "x-rate-limit-limit",
        "x-rate-limit-remaining",
        "x-rate-limit-reset",
        "date",
    ] {
        assert!(first.headers().contains_key(name), "{name} on every answer");
    }
    assert_eq!(first.headers()["x-rate-limit-limit"], "120");
    assert_eq!(link(&first, "self").as_deref(), Some(first_url.as_str()));
    let next = link(&first, "next").expect("a polling page has a next link");
    assert!(
        next.contains("after=") && !next.contains("since="),
        "{next}"
    );
    assert_eq!(
        uuids(first).await,
        [uuid_of(&events[0]), uuid_of(&events[1])]
    );

    let second = get(&next, &bearer).await;
    let next = link(&second, "next").unwrap();
    assert_eq!(uuids(second).await, [uuid_of(&events[2])]);
    let empty = get(&next, &bearer).await;
    let after_empty = link(&empty, "next").expect("an empty polling page has a next link too");
    assert!(uuids(empty).await.is_empty());

    // Persisted now though published a day ago: polling still returns it after the cursor.
    let late = mfa_event_at(&rfc3339(now_secs() - 86_400));
    okta.publish(vec![late.clone()]);
    assert_eq!(
        uuids(get(&after_empty, &bearer).await).await,
        [uuid_of(&late)]
    );

    let recorded = okta.requests();
    assert_eq!(
        (recorded[0].method.as_str(), recorded[0].path.as_str()),
        ("POST", "/oauth2/v1/token")
    );
    assert_eq!(recorded[0].field("scope"), Some(LOGS_READ));
    assert_eq!(
        recorded[0].field("client_assertion"),
        None,
        "credentials are not recorded"
    );
    assert_eq!(recorded[1].header("authorization"), Some("Bearer"));
    assert_eq!(recorded[1].param("limit"), Some("2"));
    assert!(recorded.iter().all(|r| r.status == Some(200)));
    assert_no_violation(&okta);
}

#[tokio::test]
async fn client_assertions_are_checked_as_okta_does() {
    let okta = OktaStandIn::start().await;
    let client =
        ServiceClient::register(&okta, Algorithm::ES256, Some("ec-1"), &[LOGS_READ], false);
    let stranger = ServiceClient::register(&okta, Algorithm::ES256, None, &[LOGS_READ], false);
    let token_url = format!("{}/oauth2/v1/token", okta.org_url());
    let now = now_secs();
    let cases: Vec<(&str, Value, &str)> = vec![
        (
            "wrong aud",
            json!({"aud": format!("{}/oauth2/default/v1/token", okta.org_url())}),
            "InvalidAudience",
        ),
        ("expired", json!({"exp": now - 10}), "ExpiredSignature"),
        (
            "exp over 1 h ahead",
            json!({"exp": now + 3700}),
            "too far into the future",
        ),
        (
            "issued in the future",
            json!({"iat": now + 120}),
            "issued in the future",
        ),
        (
            "sub differs from iss",
            json!({"sub": stranger.id}),
            "InvalidSubject",
        ),
        (
            "unknown client",
            json!({"iss": "0oaNOSUCHAPP", "sub": "0oaNOSUCHAPP"}),
            "client_id",
        ),
        ("no exp", json!({"exp": null}), "exp"),
    ];
    for (case, changes, reason) in cases {
        let mut claims = client.claims(&okta);
        for (name, value) in changes.as_object().unwrap() {
            claims[name] = value.clone();
        }
        if claims["exp"].is_null() {
            claims.as_object_mut().unwrap().remove("exp");
        }
        let answer = token_request(&okta, &client.sign(&claims), LOGS_READ, None).await;
        assert_eq!(answer.status(), 401, "{case}");
        let body: Value = answer.json().await.unwrap();
        assert_eq!(body["error"], "invalid_client", "{case}");
        let description = body["error_description"].as_str().unwrap();
        assert!(description.contains(reason), "{case}: {description}");
    }
    let signed_by_stranger = {
        let mut impostor =
            ServiceClient::register(&okta, Algorithm::ES256, Some("ec-1"), &[], false);
        impostor.id = client.id.clone();
        impostor.sign(&client.claims(&okta))
    };
    let wrong_kid = ServiceClient {
        kid: Some("ec-2".into()),
        ..client.clone()
    };
    for (case, assertion) in [
        ("another key", signed_by_stranger),
        ("unregistered kid", wrong_kid.sign(&client.claims(&okta))),
    ] {
        let answer = token_request(&okta, &assertion, LOGS_READ, None).await;
        assert_eq!(answer.status(), 401, "{case}");
    }

    let assertion = client.sign(&client.claims(&okta));
    assert_eq!(
        token_request(&okta, &assertion, LOGS_READ, None)
            .await
            .status(),
        200
    );
    let replay = token_request(&okta, &assertion, LOGS_READ, None).await;
    assert_eq!(replay.status(), 401, "a jti is single use");
    let ungranted = token_request(
        &okta,
        &client.sign(&client.claims(&okta)),
        "okta.users.read",
        None,
    )
    .await;
    assert_eq!(ungranted.status(), 400);
    let body: Value = ungranted.json().await.unwrap();
    assert_eq!(body["error"], "invalid_scope");
    assert_no_violation(&okta);

    let json_body = reqwest::Client::new()
        .post(&token_url)
        .json(&json!({"grant_type": "client_credentials"}))
        .send()
        .await
        .unwrap();
    assert_eq!(json_body.status(), 400);
    assert_eq!(
        okta.spec_violations().len(),
        1,
        "a JSON token request breaks README §a"
    );
}

#[tokio::test]
async fn a_dpop_app_needs_a_proof_with_the_nonce_then_on_every_call() {
    let okta = OktaStandIn::start().await;
    let client = ServiceClient::register(&okta, Algorithm::RS256, None, &[LOGS_READ], true);
    let token_url = format!("{}/oauth2/v1/token", okta.org_url());
    let dpop = DpopKey::new();
    let assertion = || client.sign(&client.claims(&okta));

    let without = token_request(&okta, &assertion(), LOGS_READ, None).await;
    assert_eq!(without.status(), 400);
    assert_eq!(
        without.json::<Value>().await.unwrap()["error"],
        "invalid_dpop_proof"
    );
    let first = token_request(
        &okta,
        &assertion(),
        LOGS_READ,
        Some(&dpop.proof("POST", &token_url, None, None)),
    )
    .await;
    assert_eq!(first.status(), 400);
    let nonce = first.headers()["dpop-nonce"].to_str().unwrap().to_owned();
    assert_eq!(
        first.json::<Value>().await.unwrap()["error"],
        "use_dpop_nonce"
    );
    let proof = dpop.proof("POST", &token_url, Some(&nonce), None);
    let answer = token_request(&okta, &assertion(), LOGS_READ, Some(&proof)).await;
    assert_eq!(answer.status(), 200);
    let body: Value = answer.json().await.unwrap();
    assert_eq!(body["token_type"], "DPoP");
    let token = body["access_token"].as_str().unwrap().to_owned();
    let replayed = token_request(&okta, &assertion(), LOGS_READ, Some(&proof)).await;
    assert_eq!(
        replayed.json::<Value>().await.unwrap()["error"],
        "invalid_dpop_proof"
    );

    let logs_url = format!("{}/api/v1/logs", okta.org_url());
    let call = |proof: Option<String>, scheme: &'static str| {
        let request = reqwest::Client::new()
            .get(format!("{logs_url}?limit=10"))
            .header("authorization", format!("{scheme} {token}"));
        let request = match proof {
            Some(proof) => request.header("dpop", proof),
            None => request,
        };
        async move { request.send().await.unwrap() }
    };
    let bound = call(
        Some(dpop.proof("GET", &logs_url, None, Some(&token))),
        "DPoP",
    )
    .await;
    assert_eq!(
        bound.status(),
        200,
        "htu without the query, ath of the token"
    );
    let as_bearer = call(None, "Bearer").await;
    assert_eq!(as_bearer.status(), 400);
    assert_eq!(
        as_bearer.json::<Value>().await.unwrap()["error"],
        "dpop_authentication_scheme_required"
    );
    let refused = [
        ("no proof", None),
        (
            "wrong ath",
            Some(dpop.proof("GET", &logs_url, None, Some("another token"))),
        ),
        (
            "wrong htm",
            Some(dpop.proof("POST", &logs_url, None, Some(&token))),
        ),
        (
            "another key",
            Some(DpopKey::new().proof("GET", &logs_url, None, Some(&token))),
        ),
    ];
    for (case, proof) in refused {
        let answer = call(proof, "DPoP").await;
        assert_eq!(answer.status(), 400, "{case}");
        assert!(
            answer.headers()["www-authenticate"]
                .to_str()
                .unwrap()
                .contains("invalid_dpop_proof")
        );
    }
    assert_no_violation(&okta);
}

#[tokio::test]
async fn calls_without_the_scope_or_a_valid_token_are_refused_like_okta() {
    let okta = OktaStandIn::start().await;
    let logs_url = format!("{}/api/v1/logs", okta.org_url());
    let users_only = bearer_token(&okta, &["okta.users.read"]).await;
    let forbidden = get(&logs_url, &format!("Bearer {users_only}")).await;
    assert_eq!(forbidden.status(), 403);
    let challenge = forbidden.headers()["www-authenticate"]
        .to_str()
        .unwrap()
        .to_owned();
    assert!(
        challenge.contains("error=\"insufficient_scope\"")
            && challenge.contains("scope=\"okta.logs.read\""),
        "{challenge}"
    );
    assert_eq!(
        forbidden.json::<Value>().await.unwrap()["errorCode"],
        "E0000006"
    );

    okta.add_api_token("00-reader-token", &[LOGS_READ]);
    okta.add_api_token("00-weak-admin-token", &[]);
    assert_eq!(get(&logs_url, "SSWS 00-reader-token").await.status(), 200);
    let weak = get(&logs_url, "SSWS 00-weak-admin-token").await;
    assert_eq!(weak.status(), 403);
    assert!(
        !weak.headers().contains_key("www-authenticate"),
        "no scope to grant an API token"
    );
    for authorization in ["SSWS 00-unknown", "Bearer not-a-token", ""] {
        let answer = get(&logs_url, authorization).await;
        assert_eq!(answer.status(), 401, "{authorization:?}");
        assert_eq!(
            answer.json::<Value>().await.unwrap()["errorCode"],
            "E0000011"
        );
    }
    let reader = bearer_token(&okta, &[LOGS_READ]).await;
    assert_eq!(
        get(&logs_url, &format!("Bearer {reader}")).await.status(),
        200
    );
    okta.expire_tokens();
    assert_eq!(
        get(&logs_url, &format!("Bearer {reader}")).await.status(),
        401
    );
    assert_no_violation(&okta);
}

#[tokio::test]
async fn filters_select_events_and_bad_ones_get_okta_errors() {
    let okta = OktaStandIn::start().await;
    okta.add_api_token("00-reader-token", &[LOGS_READ]);
    let users = samples::users();
    let deactivate = samples::mfa_factor_deactivate(&users[1], "SMS", Initiator::Admin, "tx1");
    let reset_all = samples::mfa_factor_reset_all(&users[2], Initiator::ApiToken);
    okta.publish(vec![
        samples::session_start(&users[0], "198.51.100.7"),
        deactivate.clone(),
        reset_all.clone(),
    ]);
    let query = |filter: &str| {
        let url = format!(
            "{}/api/v1/logs?{}",
            okta.org_url(),
            encode_pairs(&[("filter".into(), filter.into())])
        );
        async move { get(&url, "SSWS 00-reader-token").await }
    };
    let mfa = query(
        r#"eventType eq "user.mfa.factor.deactivate" or eventType sw "user.mfa.factor.reset""#,
    )
    .await;
    assert_eq!(
        uuids(mfa).await,
        [uuid_of(&deactivate), uuid_of(&reset_all)]
    );
    let by_target = query(&format!(
        r#"target.id eq "{}" and not (eventType sw "user.session")"#,
        users[2].id
    ))
    .await;
    assert_eq!(uuids(by_target).await, [uuid_of(&reset_all)]);
    for (filter, code) in [
        ("eventType eq", "E0000053"),
        (r#"eventType xx "a""#, "E0000053"),
        (r#"published gt "2024-01-01T00:00:00Z""#, "E0000031"),
        (r#"debugContext.debugData.url co "/api""#, "E0000031"),
    ] {
        let answer = query(filter).await;
        assert_eq!(answer.status(), 400, "{filter}");
        assert_eq!(
            answer.json::<Value>().await.unwrap()["errorCode"],
            code,
            "{filter}"
        );
    }
    assert_no_violation(&okta);
}

#[tokio::test]
async fn bounded_queries_order_by_published_and_end_without_next() {
    let okta = OktaStandIn::start().await;
    okta.add_api_token("00-reader-token", &[LOGS_READ]);
    let t0 = now_secs() - 3600;
    let at = |offset: i64| mfa_event_at(&rfc3339(t0 + offset));
    let (third, first, second, outside) = (at(3), at(1), at(2), at(-86_400));
    okta.publish(vec![third.clone(), first.clone(), outside, second.clone()]);
    let window = encode_pairs(&[
        ("since".into(), rfc3339(t0)),
        ("until".into(), rfc3339(t0 + 60)),
    ]);
    let url = format!("{}/api/v1/logs?{window}&limit=2", okta.org_url());
    let page = get(&url, "SSWS 00-reader-token").await;
    let next = link(&page, "next").expect("more events in the window");
    assert_eq!(uuids(page).await, [uuid_of(&first), uuid_of(&second)]);
    let last = get(&next, "SSWS 00-reader-token").await;
    assert_eq!(
        link(&last, "next"),
        None,
        "the last bounded page has no next link"
    );
    assert_eq!(uuids(last).await, [uuid_of(&third)]);
    let descending = get(
        &format!("{url}&sortOrder=DESCENDING"),
        "SSWS 00-reader-token",
    )
    .await;
    assert_eq!(uuids(descending).await, [uuid_of(&third), uuid_of(&second)]);
    assert_no_violation(&okta);
}

#[tokio::test]
async fn a_used_up_bucket_answers_429_until_its_reset() {
    let okta = OktaStandIn::start().await;
    okta.add_api_token("00-reader-token", &[LOGS_READ]);
    okta.set_rate_limit(2, Duration::from_millis(500));
    let url = format!("{}/api/v1/logs", okta.org_url());
    let header = |answer: &reqwest::Response, name: &str| {
        answer.headers()[name].to_str().unwrap().to_owned()
    };
    let first = get(&url, "SSWS 00-reader-token").await;
    assert_eq!(
        (
            header(&first, "x-rate-limit-limit"),
            header(&first, "x-rate-limit-remaining")
        ),
        ("2".into(), "1".into())
    );
    assert_eq!(get(&url, "SSWS 00-reader-token").await.status(), 200);
    let limited = get(&url, "SSWS 00-reader-token").await;
    assert_eq!(limited.status(), 429);
    assert_eq!(header(&limited, "x-rate-limit-remaining"), "0");
    let reset: u64 = header(&limited, "x-rate-limit-reset").parse().unwrap();
    let date = httpdate_secs(&header(&limited, "date"));
    assert!(
        reset >= date && reset <= date + 2,
        "reset {reset} within the window after {date}"
    );
    assert_eq!(
        limited.json::<Value>().await.unwrap()["errorCode"],
        "E0000047"
    );
    let wait = Duration::from_secs(reset)
        .saturating_sub(SystemTime::now().duration_since(UNIX_EPOCH).unwrap());
    tokio::time::sleep(wait + Duration::from_millis(20)).await;
    assert_eq!(
        get(&url, "SSWS 00-reader-token").await.status(),
        200,
        "a new window"
    );
    assert_no_violation(&okta);
}

/// Seconds since the epoch of an HTTP date (`Sun, 06 Nov 1994 08:49:37 GMT`).
fn httpdate_secs(text: &str) -> u64 {
    let format = time::macros::format_description!(
        "[weekday repr:short], [day] [month repr:short] [year] [hour]:[minute]:[second] GMT"
    );
    time::PrimitiveDateTime::parse(text, &format)
        .unwrap()
        .assume_utc()
        .unix_timestamp() as u64
}

#[tokio::test]
async fn injected_failures_and_delays_answer_as_okta_does() {
    let okta = OktaStandIn::start().await;
    okta.add_api_token("00-reader-token", &[LOGS_READ]);
    let url = format!("{}/api/v1/logs", okta.org_url());
    okta.fail_next(2, 500);
    for _ in 0..2 {
        let failed = get(&url, "SSWS 00-reader-token").await;
        assert_eq!(failed.status(), 500);
        assert_eq!(
            failed.json::<Value>().await.unwrap()["errorCode"],
            "E0000009"
        );
    }
    okta.fail_next(1, 429);
    let limited = get(&url, "SSWS 00-reader-token").await;
    assert_eq!(
        (
            limited.status().as_u16(),
            &limited.headers()["x-rate-limit-remaining"]
        ),
        (429, &"0".parse().unwrap())
    );
    assert_eq!(get(&url, "SSWS 00-reader-token").await.status(), 200);

    okta.delay_next(2, Duration::from_millis(300));
    let started = std::time::Instant::now();
    assert_eq!(get(&url, "SSWS 00-reader-token").await.status(), 200);
    assert!(started.elapsed() >= Duration::from_millis(300));
    let impatient = reqwest::Client::builder()
        .timeout(Duration::from_millis(50))
        .build()
        .unwrap();
    let gave_up = impatient
        .get(&url)
        .header("authorization", "SSWS 00-reader-token")
        .send()
        .await;
    assert!(gave_up.unwrap_err().is_timeout());
    let statuses: Vec<Option<u16>> = okta.requests().iter().map(|r| r.status).collect();
    assert_eq!(
        statuses,
        [Some(500), Some(500), Some(429), Some(200), Some(200), None]
    );
    assert_no_violation(&okta);
}

#[tokio::test]
async fn requests_outside_the_spec_are_violations() {
    let okta = OktaStandIn::start().await;
    okta.add_api_token("00-reader-token", &[LOGS_READ]);
    let base = format!("{}/api/v1/logs", okta.org_url());
    let since = rfc3339(now_secs());
    for (query, status) in [
        ("?sortOrder=ASCENDING&pageSize=5".to_owned(), 200),
        ("?limit=ten".to_owned(), 400),
        ("?limit=5000".to_owned(), 400),
        ("?limit=-1".to_owned(), 400),
        ("?sortOrder=UP".to_owned(), 400),
        (format!("?since={since}&after=1_1_1"), 400),
    ] {
        let answer = get(&format!("{base}{query}"), "SSWS 00-reader-token").await;
        assert_eq!(answer.status(), status, "{query}");
    }
    let violations = okta.spec_violations();
    for expected in [
        "no parameter pageSize",
        "limit=\"ten\"",
        "limit 5000",
        "limit -1",
        "sortOrder=\"UP\"",
        "mutually exclusive",
    ] {
        assert!(
            violations.iter().any(|v| v.contains(expected)),
            "{expected} in {violations:?}"
        );
    }
    let elsewhere = get(
        &format!("{}/api/v1/apps", okta.org_url()),
        "SSWS 00-reader-token",
    )
    .await;
    assert_eq!(elsewhere.status(), 404);
    assert_eq!(okta.spec_violations().len(), violations.len() + 1);
}

const HOOKS_READ: &str = "okta.eventHooks.read";
const HOOKS_MANAGE: &str = "okta.eventHooks.manage";

/// `method` `url` with `Authorization: <authorization>` and a JSON `body` when given.
async fn call(
    method: reqwest::Method,
    url: &str,
    authorization: &str,
    body: Option<&Value>,
) -> reqwest::Response {
    let mut request = reqwest::Client::new()
        .request(method, url)
        .header("authorization", authorization);
    if let Some(body) = body {
        request = request
            .header("content-type", "application/json")
            .body(body.to_string());
    }
    request.send().await.unwrap()
}

/// The status and JSON body of an answer (`null` when empty).
pub(super) async fn status_and_body(answer: reqwest::Response) -> (u16, Value) {
    let status = answer.status().as_u16();
    let text = answer.text().await.unwrap();
    (status, serde_json::from_str(&text).unwrap_or_default())
}

/// How a test's hook server answers Okta's verification GET.
#[derive(Clone, Copy)]
enum HookAnswer {
    /// `{"verification": "<challenge>"}`, as the contract asks.
    Echo,
    /// 200 with another value.
    Wrong,
    /// 500.
    Fail,
}

/// A tiny hook server on 127.0.0.1:0; it keeps the headers of every GET it gets.
struct HookServer {
    url: String,
    seen: Arc<Mutex<Vec<HeaderMap>>>,
}

impl HookServer {
    async fn start(answer: HookAnswer) -> Self {
        let seen = Arc::new(Mutex::new(Vec::new()));
        let kept = seen.clone();
        let app = Router::new().route(
            "/hook",
            axum::routing::get(move |headers: HeaderMap| async move {
                let challenge = headers
                    .get("x-okta-verification-challenge")
                    .and_then(|v| v.to_str().ok())
                    .unwrap_or_default()
                    .to_owned();
                kept.lock().unwrap().push(headers);
                match answer {
                    HookAnswer::Echo => {
                        axum::Json(json!({"verification": challenge})).into_response()
                    }
                    HookAnswer::Wrong => {
                        axum::Json(json!({"verification": "nope"})).into_response()
                    }
                    HookAnswer::Fail => StatusCode::INTERNAL_SERVER_ERROR.into_response(),
                }
            }),
        );
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}/hook", listener.local_addr().unwrap());
        tokio::spawn(async move { axum::serve(listener, app).await });
        HookServer { url, seen }
    }

    /// How many verification GETs arrived.
    fn gets(&self) -> usize {
        self.seen.lock().unwrap().len()
    }
}

/// A create body for a hook to `uri` with secret `secret` and one custom header.
fn hook_body(uri: &str, secret: &str) -> Value {
    let mut body = read_example("eventhook_create_request.json");
    body["events"]["items"] = json!(["user.mfa.factor.deactivate", "user.mfa.factor.reset_all"]);
    body["channel"]["config"]["uri"] = json!(uri);
    body["channel"]["config"]["authScheme"]["value"] = json!(secret);
    body
}

#[tokio::test]
async fn okta_event_hook_examples_validate() {
    let spec = Spec::get();
    let hook = spec.schema("EventHook");
    for name in [
        "eventhook_response.json",
        "eventhook_with_filter_response.json",
        "eventhook_deactivated_response.json",
    ] {
        let example = read_example(name);
        assert_eq!(spec.validate_answer(hook, &example), [], "{name}");
    }
    let list = spec
        .response_schema("/api/v1/eventHooks", "get", 200)
        .unwrap();
    assert_eq!(
        spec.validate_answer(list, &read_example("eventhook_list_response.json")),
        []
    );
    let create = read_example("eventhook_create_request.json");
    assert_eq!(spec.validate_request(hook, &create), []);
    // Okta's own filter example sends `events.filter.type`, which its schema marks readOnly.
    let filtered = read_example("eventhook_create_with_filter_request.json");
    let paths: Vec<String> = spec
        .validate_request(hook, &filtered)
        .into_iter()
        .map(|v| v.path)
        .collect();
    assert_eq!(paths, ["/events/filter/type"]);
    // The directions: a secret in an answer, a server-assigned id in a request.
    let mut leaky = read_example("eventhook_response.json");
    leaky["channel"]["config"]["authScheme"]["value"] = json!("secret");
    let kinds: Vec<ViolationKind> = spec
        .validate_answer(hook, &leaky)
        .into_iter()
        .map(|v| v.kind)
        .collect();
    assert_eq!(kinds, [ViolationKind::WriteOnly("value".into())]);
    let echoed = read_example("eventhook_response.json");
    let read_only: Vec<String> = spec
        .validate_request(hook, &echoed)
        .into_iter()
        .map(|v| v.path)
        .collect();
    assert!(read_only.contains(&"/id".to_owned()), "{read_only:?}");
    assert!(read_only.contains(&"/_links".to_owned()), "{read_only:?}");
}

#[tokio::test]
async fn event_hooks_round_trip_through_the_api() {
    let okta = OktaStandIn::start().await;
    okta.add_api_token("00-hooks-admin", &[HOOKS_READ, HOOKS_MANAGE]);
    let auth = "SSWS 00-hooks-admin";
    let base = format!("{}/api/v1/eventHooks", okta.org_url());
    let body = hook_body("https://hooks.example.com/okta", "Basic c2VjcmV0");
    let (status, created) =
        status_and_body(call(Method::POST, &base, auth, Some(&body)).await).await;
    assert_eq!(status, 200, "{created}");
    let id = created["id"].as_str().unwrap().to_owned();
    assert!(id.starts_with("who") && id.len() == 20, "{id}");
    assert_eq!(
        (&created["status"], &created["verificationStatus"]),
        (&json!("ACTIVE"), &json!("UNVERIFIED"))
    );
    assert_eq!(
        created["channel"]["config"]["authScheme"],
        json!({"type": "HEADER", "key": "authorization"}),
        "no secret in the answer, the key lowercased as Okta's examples show"
    );
    assert_eq!(created["channel"]["config"]["method"], "POST");
    assert_eq!(created["_links"]["self"]["href"], format!("{base}/{id}"));
    assert_eq!(
        okta.event_hook_secret(&id).as_deref(),
        Some("Basic c2VjcmV0")
    );

    let (status, listed) = status_and_body(call(Method::GET, &base, auth, None).await).await;
    assert_eq!((status, listed), (200, json!([created.clone()])));
    let url = format!("{base}/{id}");
    let (status, got) = status_and_body(call(Method::GET, &url, auth, None).await).await;
    assert_eq!((status, &got), (200, &created));

    let refused = call(Method::DELETE, &url, auth, None).await;
    let (status, error) = status_and_body(refused).await;
    assert_eq!((status, &error["errorCode"]), (400, &json!("E0000001")));
    assert!(
        error["errorCauses"][0]["errorSummary"]
            .as_str()
            .unwrap()
            .contains("INACTIVE")
    );

    let mut replaced = body.clone();
    replaced["name"] = json!("factorwatch");
    replaced["events"]["items"] = json!(["user.mfa.factor.deactivate"]);
    let (status, after) =
        status_and_body(call(Method::PUT, &url, auth, Some(&replaced)).await).await;
    assert_eq!((status, &after["name"]), (200, &json!("factorwatch")));
    assert_eq!(
        (&after["id"], &after["created"]),
        (&created["id"], &created["created"])
    );

    for (action, status) in [
        ("deactivate", "INACTIVE"),
        ("activate", "ACTIVE"),
        ("deactivate", "INACTIVE"),
    ] {
        let lifecycle = format!("{url}/lifecycle/{action}");
        let (code, hook) = status_and_body(call(Method::POST, &lifecycle, auth, None).await).await;
        assert_eq!((code, &hook["status"]), (200, &json!(status)), "{action}");
    }
    let deleted = call(Method::DELETE, &url, auth, None).await;
    assert_eq!(deleted.status(), 204);
    assert!(!deleted.headers().contains_key("content-type"));
    assert_eq!(deleted.text().await.unwrap(), "");
    let (status, error) = status_and_body(call(Method::GET, &url, auth, None).await).await;
    assert_eq!((status, &error["errorCode"]), (404, &json!("E0000007")));
    assert_eq!(okta.event_hooks(), Vec::<Value>::new());
    assert_no_violation(&okta);
}

#[tokio::test]
async fn replacing_the_channel_needs_a_new_verification() {
    let okta = OktaStandIn::start().await;
    okta.add_api_token("00-hooks-admin", &[HOOKS_READ, HOOKS_MANAGE]);
    let seed = HookSeed::new(
        "factorwatch",
        "https://fw.example.com/okta",
        &["user.mfa.factor.deactivate"],
        "old",
    );
    let id = okta.add_event_hook(&seed);
    let url = format!("{}/api/v1/eventHooks/{id}", okta.org_url());
    let mut body = hook_body("https://fw.example.com/okta", "old");
    body["name"] = json!("factorwatch");
    body["events"]["items"] = json!(["user.mfa.factor.deactivate"]);
    body["channel"]["config"]["headers"] = json!([]);
    let (_, same) =
        status_and_body(call(Method::PUT, &url, "SSWS 00-hooks-admin", Some(&body)).await).await;
    assert_eq!(
        same["verificationStatus"], "VERIFIED",
        "the same channel keeps it"
    );
    body["channel"]["config"]["authScheme"]["value"] = json!("rotated");
    let (_, rotated) =
        status_and_body(call(Method::PUT, &url, "SSWS 00-hooks-admin", Some(&body)).await).await;
    assert_eq!(rotated["verificationStatus"], "UNVERIFIED", "a new secret");
    assert_eq!(okta.event_hook_secret(&id).as_deref(), Some("rotated"));
    assert_no_violation(&okta);
}

#[tokio::test]
async fn invalid_hooks_are_refused_with_their_causes() {
    let okta = OktaStandIn::start().await;
    okta.add_api_token("00-hooks-admin", &[HOOKS_MANAGE]);
    let base = format!("{}/api/v1/eventHooks", okta.org_url());
    let valid = hook_body("https://fw.example.com/okta", "s");
    let too_many: Vec<String> = (0..301)
        .map(|_| "user.mfa.factor.deactivate".to_owned())
        .collect();
    let cases: [(&str, Value, &str); 6] = [
        (
            "/channel/config/uri",
            json!("http://fw.example.com/okta"),
            "HTTPS",
        ),
        ("/channel/version", json!("2.0.0"), "1.0.0"),
        ("/events/type", json!("EVENT"), "EVENT_TYPE"),
        ("/events/items", json!(too_many), "300"),
        (
            "/events/items",
            json!(["system.mfa.factor.deactivate"]),
            "not eligible",
        ),
        ("/name", json!(""), "blank"),
    ];
    for (pointer, value, cause) in cases {
        let mut body = valid.clone();
        *body.pointer_mut(pointer).unwrap() = value;
        let answer = call(Method::POST, &base, "SSWS 00-hooks-admin", Some(&body)).await;
        let (status, error) = status_and_body(answer).await;
        assert_eq!(
            (status, &error["errorCode"]),
            (400, &json!("E0000001")),
            "{pointer}"
        );
        assert!(
            error["errorCauses"].to_string().contains(cause),
            "{pointer}: {error}"
        );
    }
    // Deviations from the spec's schema are the client's bug: violations as well.
    let violations = okta.spec_violations();
    assert!(
        violations.iter().any(|v| v.contains("/events/type")),
        "{violations:?}"
    );
    assert_eq!(okta.event_hooks(), Vec::<Value>::new());
}

#[tokio::test]
async fn event_hook_calls_need_their_scope_and_have_their_own_bucket() {
    let okta = OktaStandIn::start().await;
    let base = format!("{}/api/v1/eventHooks", okta.org_url());
    let reader = bearer_token(&okta, &[HOOKS_READ]).await;
    let listed = call(Method::GET, &base, &format!("Bearer {reader}"), None).await;
    assert_eq!(listed.status(), 200);
    assert_eq!(listed.headers()["x-rate-limit-limit"], "1200");
    let body = hook_body("https://fw.example.com/okta", "s");
    let refused = call(
        Method::POST,
        &base,
        &format!("Bearer {reader}"),
        Some(&body),
    )
    .await;
    assert_eq!(refused.status(), 403);
    let challenge = refused.headers()["www-authenticate"]
        .to_str()
        .unwrap()
        .to_owned();
    assert!(
        challenge.contains("scope=\"okta.eventHooks.manage\""),
        "{challenge}"
    );
    let logs_only = bearer_token(&okta, &[LOGS_READ]).await;
    let refused = call(Method::GET, &base, &format!("Bearer {logs_only}"), None).await;
    assert_eq!(refused.status(), 403);
    let challenge = refused.headers()["www-authenticate"]
        .to_str()
        .unwrap()
        .to_owned();
    assert!(
        challenge.contains("scope=\"okta.eventHooks.read\""),
        "{challenge}"
    );
    assert_eq!(
        refused.json::<Value>().await.unwrap()["errorCode"],
        "E0000006"
    );
    okta.add_api_token("00-weak-admin", &[LOGS_READ]);
    let weak = call(
        Method::DELETE,
        &format!("{base}/who0000000000000000"),
        "SSWS 00-weak-admin",
        None,
    )
    .await;
    assert_eq!(weak.status(), 403);

    okta.set_rate_limit_of(Family::EventHooks, 1, Duration::from_secs(60));
    assert_eq!(
        call(Method::GET, &base, &format!("Bearer {reader}"), None)
            .await
            .status(),
        200
    );
    let limited = call(Method::GET, &base, &format!("Bearer {reader}"), None).await;
    assert_eq!(limited.status(), 429);
    let logs = get(
        &format!("{}/api/v1/logs", okta.org_url()),
        &format!("Bearer {logs_only}"),
    )
    .await;
    assert_eq!(logs.status(), 200, "the System Log's bucket is another");
    assert_no_violation(&okta);
}

#[tokio::test]
async fn verify_sends_the_challenge_with_the_hook_headers() {
    let okta = OktaStandIn::start().await;
    okta.add_api_token("00-hooks-admin", &[HOOKS_READ, HOOKS_MANAGE]);
    let auth = "SSWS 00-hooks-admin";
    let base = format!("{}/api/v1/eventHooks", okta.org_url());
    let create = async |uri: &str| {
        let answer = call(
            Method::POST,
            &base,
            auth,
            Some(&hook_body(uri, "Basic c2VjcmV0")),
        )
        .await;
        let (_, hook) = status_and_body(answer).await;
        format!("{base}/{}/lifecycle/verify", hook["id"].as_str().unwrap())
    };

    let good = HookServer::start(HookAnswer::Echo).await;
    let (status, hook) =
        status_and_body(call(Method::POST, &create(&good.url).await, auth, None).await).await;
    assert_eq!(
        (status, &hook["verificationStatus"]),
        (200, &json!("VERIFIED"))
    );
    let sent = good.seen.lock().unwrap()[0].clone();
    assert_eq!(sent["authorization"], "Basic c2VjcmV0");
    assert_eq!(sent["x-other-header"], "my-header-value");
    assert!(!sent["x-okta-verification-challenge"].is_empty());

    let wrong = HookServer::start(HookAnswer::Wrong).await;
    let (status, error) =
        status_and_body(call(Method::POST, &create(&wrong.url).await, auth, None).await).await;
    assert_eq!((status, &error["errorCode"]), (400, &json!("E0000001")));
    assert!(
        error["errorCauses"][0]["errorSummary"]
            .as_str()
            .unwrap()
            .contains("execution failed")
    );
    assert_eq!(wrong.gets(), 1, "a wrong answer is no error to retry");

    let failing = HookServer::start(HookAnswer::Fail).await;
    let (status, _) =
        status_and_body(call(Method::POST, &create(&failing.url).await, auth, None).await).await;
    assert_eq!(status, 400);
    assert_eq!(failing.gets(), 2, "one retry after an error response");

    let closed = format!("http://127.0.0.1:{}/hook", crate::ports::free_port());
    let (status, error) =
        status_and_body(call(Method::POST, &create(&closed).await, auth, None).await).await;
    assert_eq!(status, 400, "{error}");
    let statuses: Vec<Value> = okta
        .event_hooks()
        .iter()
        .map(|h| h["verificationStatus"].clone())
        .collect();
    assert_eq!(
        statuses,
        ["VERIFIED", "UNVERIFIED", "UNVERIFIED", "UNVERIFIED"]
    );
    assert_no_violation(&okta);
}

#[tokio::test]
async fn hook_changes_reach_the_system_log_with_their_actor() {
    let okta = OktaStandIn::start().await;
    let app = ServiceClient::register(
        &okta,
        Algorithm::RS256,
        Some("k1"),
        &[HOOKS_MANAGE, LOGS_READ],
        false,
    );
    let answer = token_request(
        &okta,
        &app.sign(&app.claims(&okta)),
        &format!("{HOOKS_MANAGE} {LOGS_READ}"),
        None,
    )
    .await;
    let token = answer.json::<Value>().await.unwrap()["access_token"]
        .as_str()
        .unwrap()
        .to_owned();
    let bearer = format!("Bearer {token}");
    okta.add_api_token("00-hooks-admin", &[HOOKS_MANAGE]);
    let base = format!("{}/api/v1/eventHooks", okta.org_url());
    let body = hook_body("https://fw.example.com/okta", "s");
    let (_, hook) = status_and_body(call(Method::POST, &base, &bearer, Some(&body)).await).await;
    let id = hook["id"].as_str().unwrap().to_owned();
    let url = format!("{base}/{id}");
    call(Method::PUT, &url, "SSWS 00-hooks-admin", Some(&body)).await;
    let attacker = Actor::admin(&samples::users()[1]);
    okta.edit_event_hook(&id, &attacker, |hook| {
        hook["channel"]["config"]["uri"] = json!("https://evil.example.net/okta");
    });
    okta.remove_event_hook(&id, &attacker);

    let logs = format!(
        "{}/api/v1/logs?filter={}",
        okta.org_url(),
        "eventType%20sw%20%22event_hook.%22"
    );
    let events: Vec<Value> = get(&logs, &bearer).await.json().await.unwrap();
    let seen: Vec<(&str, &str, &str)> = events
        .iter()
        .map(|e| {
            (
                e["eventType"].as_str().unwrap(),
                e["actor"]["type"].as_str().unwrap(),
                e["actor"]["id"].as_str().unwrap(),
            )
        })
        .collect();
    let admin = samples::users().pop().unwrap();
    let (app_id, admin_id, attacker_id) =
        (app.id.as_str(), admin.id.as_str(), attacker.id.as_str());
    assert_eq!(
        seen,
        [
            ("event_hook.created", "PublicClientApp", app_id),
            ("event_hook.updated", "User", admin_id),
            ("event_hook.updated", "User", attacker_id),
            ("event_hook.deactivated", "User", attacker_id),
            ("event_hook.deleted", "User", attacker_id),
        ]
    );
    assert!(events.iter().all(|e| e["target"][0]["id"] == id));
    assert!(
        events[1]["transaction"]["detail"]["requestApiTokenId"]
            .as_str()
            .unwrap()
            .starts_with("00T")
    );
    assert_eq!(
        events[0]["debugContext"]["debugData"]["requestUri"],
        "/api/v1/eventHooks"
    );
    assert_eq!(okta.log().len(), 5);
    assert_no_violation(&okta);
}
