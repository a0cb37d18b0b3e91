//! The client's behaviour that shows without a server: requests it builds, headers it sends,
//! answers it classifies, and what it never prints. Calls against Okta's stand-in are in
//! tests/it.

use std::path::PathBuf;

use aws_lc_rs::signature::ECDSA_P256_SHA256_FIXED_SIGNING;
use jsonwebtoken::{Algorithm, DecodingKey};
use serde_json::Value;

use super::jwt::tests::{ec_pkcs8, pem, rsa_pkcs8, verified};
use super::*;

const TOKEN: &str = "00SSWS-secret-token-value";
const ACCESS: &str = "eyJ.access-token-secret.sig";

fn ssws() -> OktaClient {
    let config: OktaApiConfig = toml::from_str(&format!(
        "org_url = \"https://acme.okta.com\"\napi_token = \"{TOKEN}\""
    ))
    .expect("valid");
    OktaClient::new(&config, &["okta.logs.read"], "").expect("a client")
}

/// An OAuth client whose key is in `dir`, and the key's PEM.
fn oauth(dir: &tempfile::TempDir, pem_text: &str) -> OktaClient {
    let path: PathBuf = dir.path().join("app.pem");
    std::fs::write(&path, pem_text).expect("written");
    let config = OktaApiConfig {
        org_url: "https://acme.okta.com".into(),
        client_id: Some("0oaclient".into()),
        private_key_file: Some(path),
        key_id: Some("kid-1".into()),
        api_token: None,
        rate_limit_share: 0.5,
        timeout: Duration::from_secs(30),
    };
    OktaClient::new(&config, &["okta.logs.read"], "acme").expect("a client")
}

fn source(client: &OktaClient) -> &TokenSource {
    match &client.inner.auth {
        Auth::OAuth(source) => source,
        Auth::Ssws(_) => panic!("an OAuth client"),
    }
}

fn query(url: &Url) -> Vec<(String, String)> {
    url.query_pairs()
        .map(|(k, v)| (k.into_owned(), v.into_owned()))
        .collect()
}

fn answer(status: u16, pairs: &[(&'static str, &str)], body: &str) -> Answer {
    let mut headers = HeaderMap::new();
    for (name, value) in pairs {
        headers.append(*name, HeaderValue::from_str(value).expect("a value"));
    }
    Answer {
        status: StatusCode::from_u16(status).expect("a status"),
        headers,
        body: body.as_bytes().to_vec(),
        received: Instant::now(),
    }
}

fn pairs(list: &[(&str, &str)]) -> Vec<(String, String)> {
    list.iter()
        .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
        .collect()
}

#[test]
fn a_poll_asks_for_ascending_order_without_until() {
    let client = ssws();
    let url = client
        .logs_url(&LogsRequest::Poll {
            since: "2026-08-01T00:00:00.000Z".into(),
            filter: Some(
                "eventType sw \"event_hook\" or eventType eq \"user.mfa.attempt_bypass\"".into(),
            ),
            limit: 1000,
        })
        .expect("a URL");
    assert_eq!(url.path(), "/api/v1/logs");
    assert_eq!(
        query(&url),
        pairs(&[
            ("since", "2026-08-01T00:00:00.000Z"),
            (
                "filter",
                "eventType sw \"event_hook\" or eventType eq \"user.mfa.attempt_bypass\""
            ),
            ("limit", "1000"),
            ("sortOrder", "ASCENDING"),
        ])
    );
}

#[test]
fn a_window_has_since_and_until() {
    let url = ssws()
        .logs_url(&LogsRequest::Window {
            since: "2026-08-01T00:00:00Z".into(),
            until: "2026-08-02T00:00:00Z".into(),
            filter: None,
            limit: 100,
        })
        .expect("a URL");
    assert_eq!(
        query(&url),
        pairs(&[
            ("since", "2026-08-01T00:00:00Z"),
            ("until", "2026-08-02T00:00:00Z"),
            ("limit", "100"),
            ("sortOrder", "ASCENDING"),
        ])
    );
}

#[test]
fn a_next_link_is_followed_exactly_on_the_org_only() {
    let client = ssws();
    let link =
        "https://acme.okta.com/api/v1/logs?limit=20&after=1627500044869_1&sortOrder=ASCENDING";
    let url = client
        .logs_url(&LogsRequest::Next(link.into()))
        .expect("the org's own link");
    assert_eq!(url.as_str(), link);
    for foreign in [
        "https://evil.example/api/v1/logs?after=x",
        "http://acme.okta.com/api/v1/logs?after=x",
        "https://acme.okta.com:8443/api/v1/logs?after=x",
    ] {
        let err = client
            .logs_url(&LogsRequest::Next(foreign.into()))
            .expect_err("another origin");
        assert!(matches!(err, OktaApiError::BadRequest(_)), "{err:?}");
        assert!(
            err.to_string()
                .contains("is not on org_url https://acme.okta.com"),
            "{err}"
        );
    }
    assert!(
        client
            .logs_url(&LogsRequest::Next("/api/v1/logs".into()))
            .is_err()
    );
}

#[tokio::test]
async fn ssws_sends_the_token_in_the_ssws_scheme() {
    let client = ssws();
    let url = client.inner.logs_url.clone();
    let (headers, used) = client
        .authorization(&Method::GET, &url)
        .await
        .expect("headers");
    assert!(used.is_none());
    let value = headers.get(AUTHORIZATION).expect("Authorization");
    assert_eq!(value.to_str().expect("ASCII"), format!("SSWS {TOKEN}"));
    assert!(value.is_sensitive());
}

#[tokio::test]
async fn a_dpop_bound_token_travels_with_a_proof_of_the_call() {
    let dir = tempfile::tempdir().expect("a temp dir");
    let client = oauth(
        &dir,
        &pem("PRIVATE KEY", &ec_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING)),
    );
    source(&client).cache_for_test(ACCESS, true);
    let url = client
        .logs_url(&LogsRequest::Poll {
            since: "2026-08-01T00:00:00Z".into(),
            filter: None,
            limit: 10,
        })
        .expect("a URL");
    let (headers, _) = client
        .authorization(&Method::GET, &url)
        .await
        .expect("headers");
    assert_eq!(headers[AUTHORIZATION], format!("DPoP {ACCESS}").as_str());
    let proof = headers["dpop"].to_str().expect("ASCII");
    let header: Value = serde_json::from_slice(
        &base64::Engine::decode(
            &base64::engine::general_purpose::URL_SAFE_NO_PAD,
            proof.split('.').next().expect("a header"),
        )
        .expect("base64url"),
    )
    .expect("JSON");
    let jwk: jsonwebtoken::jwk::Jwk = serde_json::from_value(header["jwk"].clone()).expect("a JWK");
    let (_, claims) = verified(
        proof,
        &DecodingKey::from_jwk(&jwk).expect("a key"),
        Algorithm::ES256,
    );
    assert_eq!(claims["htm"], "GET");
    assert_eq!(claims["htu"], "https://acme.okta.com/api/v1/logs");
    let ath = base64::Engine::encode(
        &base64::engine::general_purpose::URL_SAFE_NO_PAD,
        <sha2::Sha256 as sha2::Digest>::digest(ACCESS.as_bytes()),
    );
    assert_eq!(claims["ath"], ath.as_str());
}

#[tokio::test]
async fn a_bearer_token_travels_alone() {
    let dir = tempfile::tempdir().expect("a temp dir");
    let client = oauth(&dir, &pem("PRIVATE KEY", &rsa_pkcs8()));
    source(&client).cache_for_test(ACCESS, false);
    let url = client.inner.logs_url.clone();
    let (headers, used) = client
        .authorization(&Method::GET, &url)
        .await
        .expect("headers");
    assert_eq!(headers[AUTHORIZATION], format!("Bearer {ACCESS}").as_str());
    assert!(headers.get("dpop").is_none());
    assert!(used.is_some());
}

#[test]
fn debug_never_shows_the_token_or_the_key() {
    let shown = format!("{:?}", ssws());
    assert!(
        !shown.contains(TOKEN) && !shown.contains("secret"),
        "{shown}"
    );
    assert!(shown.contains("Ssws(<redacted>)"), "{shown}");

    let dir = tempfile::tempdir().expect("a temp dir");
    let key = pem("PRIVATE KEY", &rsa_pkcs8());
    let client = oauth(&dir, &key);
    source(&client).cache_for_test(ACCESS, true);
    let shown = format!("{client:?}");
    assert!(
        !shown.contains(ACCESS) && !shown.contains("secret"),
        "{shown}"
    );
    let key_line = key.lines().nth(1).expect("a base64 line");
    assert!(!shown.contains(key_line), "{shown}");
    assert!(
        shown.contains("0oaclient") && shown.contains("RS256"),
        "{shown}"
    );
}

#[test]
fn new_refuses_bad_settings_and_unusable_keys_without_secrets_in_the_message() {
    let mut config: OktaApiConfig = toml::from_str(&format!(
        "org_url = \"http://acme.okta.com\"\napi_token = \"{TOKEN}\""
    ))
    .expect("valid TOML");
    let err = OktaClient::new(&config, &["okta.logs.read"], "").expect_err("http to a remote host");
    assert!(matches!(err, OktaApiError::Config(_)), "{err:?}");
    assert!(
        err.to_string()
            .starts_with("invalid [okta.api] settings: org_url"),
        "{err}"
    );
    assert!(!err.to_string().contains(TOKEN));

    config.org_url = "https://acme.okta.com".into();
    config.api_token = Some(Secret::new("line\nbreak"));
    let err = OktaClient::new(&config, &["okta.logs.read"], "").expect_err("not a header value");
    assert!(!err.to_string().contains("break"), "{err}");

    let dir = tempfile::tempdir().expect("a temp dir");
    let path = dir.path().join("app.pem");
    std::fs::write(
        &path,
        "-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----\n",
    )
    .expect("written");
    let config = OktaApiConfig {
        org_url: "https://acme.okta.com".into(),
        client_id: Some("0oaclient".into()),
        private_key_file: Some(path.clone()),
        key_id: None,
        api_token: None,
        rate_limit_share: 0.5,
        timeout: Duration::from_secs(30),
    };
    let err = OktaClient::new(&config, &["okta.logs.read"], "").expect_err("not a key");
    assert!(matches!(err, OktaApiError::Key(_)), "{err:?}");
    assert!(
        err.to_string().contains(&path.display().to_string()),
        "{err}"
    );
    let pem_text = pem("PRIVATE KEY", &rsa_pkcs8());
    std::fs::write(&path, pem_text).expect("written");
    let err = OktaClient::new(&config, &[], "").expect_err("no scope");
    assert!(matches!(err, OktaApiError::Config(_)), "{err:?}");
}

#[test]
fn a_page_is_the_events_as_sent_and_the_next_link() {
    let url = ssws().inner.logs_url.clone();
    let body = r#"[{"uuid":"a","published":"2026-08-01T00:00:00.000Z"},  {"uuid":"b"}]"#;
    let full = answer(
        200,
        &[
            (
                "link",
                "<https://acme.okta.com/api/v1/logs?limit=2>; rel=\"self\"",
            ),
            (
                "link",
                "<https://acme.okta.com/api/v1/logs?limit=2&after=b>; rel=\"next\"",
            ),
        ],
        body,
    );
    let two = page(&url, &full).expect("a page");
    assert_eq!(two.events.len(), 2);
    assert_eq!(
        two.events[0].get(),
        r#"{"uuid":"a","published":"2026-08-01T00:00:00.000Z"}"#
    );
    assert_eq!(
        two.next.as_deref(),
        Some("https://acme.okta.com/api/v1/logs?limit=2&after=b")
    );
    assert_eq!(two.bytes, body.len());

    let empty = page(&url, &answer(200, &[], "[]")).expect("an empty page");
    assert!(empty.events.is_empty() && empty.next.is_none());

    for not_events in [r#"{"events":[]}"#, "<html>", ""] {
        match page(&url, &answer(200, &[], not_events)) {
            Err(Failure::Final(OktaApiError::BadResponse(message))) => {
                assert!(message.contains("not a JSON array"), "{message}")
            }
            other => panic!("{not_events}: {other:?}"),
        }
    }
}

#[test]
fn a_403_names_the_missing_scope_or_the_role() {
    let scope = answer(
        403,
        &[(
            "www-authenticate",
            "Bearer authorization_uri=\"http://acme.okta.com/oauth2/v1/authorize\", \
             realm=\"IdpMyAccountAPI\", scope=\"okta.logs.read\", error=\"insufficient_scope\", \
             error_description=\"The access token provided does not contain the required scopes.\"",
        )],
        r#"{"errorCode":"E0000006","errorSummary":"You do not have permission to perform the requested action","errorLink":"E0000006","errorId":"x","errorCauses":[]}"#,
    );
    match forbidden(&scope, "okta.logs.read") {
        OktaApiError::MissingScope { scope } => assert_eq!(scope, "okta.logs.read"),
        other => panic!("{other:?}"),
    }
    let role = answer(
        403,
        &[],
        r#"{"errorCode":"E0000006","errorSummary":"You do not have permission to perform the requested action","errorCauses":[]}"#,
    );
    let err = forbidden(&role, "okta.logs.read");
    assert!(matches!(err, OktaApiError::Forbidden(_)), "{err:?}");
    assert!(
        err.to_string()
            .contains("403 E0000006: You do not have permission"),
        "{err}"
    );
}

#[test]
fn answers_every_endpoint_shares() {
    let url = ssws().inner.logs_url.clone();
    let limited = answer(
        429,
        &[
            ("date", "Tue, 14 Nov 2023 22:13:20 GMT"),
            ("x-rate-limit-limit", "120"),
            ("x-rate-limit-remaining", "0"),
            ("x-rate-limit-reset", "1700000042"),
        ],
        r#"{"errorCode":"E0000047","errorSummary":"API call exceeded rate limit due to too many requests."}"#,
    );
    assert!(matches!(
        Failure::unavailable(&limited, &url),
        Some(Failure::RateLimited(Some(wait))) if wait == Duration::from_secs(43)
    ));
    assert!(matches!(
        Failure::unavailable(&answer(429, &[], ""), &url),
        Some(Failure::RateLimited(None))
    ));
    assert!(matches!(
        Failure::unavailable(&answer(500, &[], r#"{"errorCode":"E0000009"}"#), &url),
        Some(Failure::Backoff(OktaApiError::Server { status: 500 }))
    ));
    for status in [404, 301, 302] {
        match Failure::unavailable(&answer(status, &[], ""), &url) {
            Some(Failure::Final(OktaApiError::OrgNotFound { url })) => {
                assert_eq!(url, "https://acme.okta.com")
            }
            other => panic!("{status}: {other:?}"),
        }
    }
    assert!(Failure::unavailable(&answer(400, &[], ""), &url).is_none());
}

#[test]
fn okta_errors_are_summarised_with_their_causes() {
    let bad_filter = answer(
        400,
        &[],
        r#"{"errorCode":"E0000031","errorSummary":"Invalid search criteria.","errorLink":"E0000031","errorId":"oae1","errorCauses":[{"errorSummary":"Invalid filter expression."}]}"#,
    );
    assert_eq!(
        okta_error(&bad_filter),
        "400 E0000031: Invalid search criteria. (Invalid filter expression.)"
    );
    assert_eq!(
        refused_request(&bad_filter, LOGS_ADVICE).to_string(),
        "Okta refused the request (400 E0000031: Invalid search criteria. (Invalid filter \
         expression.)): check the filter, since and until"
    );
    let html = "<html>".repeat(100);
    let text = okta_error(&answer(400, &[], &html));
    assert!(
        text.starts_with("400: <html>") && text.len() < 210,
        "{text}"
    );
}

/// A server answering every request with 500, counting them; its URL.
async fn failing_server() -> (String, std::sync::Arc<std::sync::atomic::AtomicUsize>) {
    use std::sync::atomic::{AtomicUsize, Ordering};
    let count = std::sync::Arc::new(AtomicUsize::new(0));
    let counted = count.clone();
    let app = axum::Router::new().fallback(move || {
        counted.fetch_add(1, Ordering::SeqCst);
        async { (axum::http::StatusCode::INTERNAL_SERVER_ERROR, "{}") }
    });
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await });
    (url, count)
}

#[tokio::test]
async fn a_create_that_may_have_reached_okta_is_not_sent_again() {
    let (url, requests) = failing_server().await;
    let config: OktaApiConfig =
        toml::from_str(&format!("org_url = \"{url}\"\napi_token = \"{TOKEN}\"")).expect("valid");
    let client = OktaClient::new(&config, &[scopes::EVENT_HOOKS_MANAGE], "").expect("a client");
    let hook = HookDefinition {
        name: "factorwatch".into(),
        uri: "https://fw.example/okta/events".into(),
        event_types: vec!["user.mfa.factor.deactivate".into()],
        auth_header: "Authorization".into(),
        secret: Secret::new("hook-secret-value"),
    };
    let err = client.create_event_hook(&hook).await.expect_err("a 500");
    assert!(matches!(err, OktaApiError::Server { status: 500 }), "{err}");
    let sent = requests.load(std::sync::atomic::Ordering::SeqCst);
    assert_eq!(sent, 1, "a second create could make a second hook");
}
