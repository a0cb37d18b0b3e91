//! Okta as a Shared Signals receiver (README §f, spec tags SSFReceiver and
//! SSFSecurityEventToken): `/api/v1/security-events-providers` (listSecurityEventsProviderInstances
//! with `okta.securityEventsProviders.read`, createSecurityEventsProviderInstance with `.manage`)
//! and the SET push, `POST /security/api/v1/security-events` (publishSecurityEventTokens,
//! `security: []`: no credentials).
//!
//! A pushed SET is verified as README §f describes: `Content-Type: application/secevent+jwt`;
//! header `alg` RS256, `kid`, `typ` `secevent+jwt`; `iss` equal to an active provider's issuer
//! (else `invalid_issuer`); the signature checked with the key of that `kid` in the JWKS the
//! stand-in fetches from the provider's `jwks_url` (unknown `kid` or no JWKS: `invalid_key`; a
//! bad signature: `authentication_failed`); `aud` the org URL, with or without a trailing slash
//! (README §f leaves the slash open; else `invalid_audience`); `iat`, `jti` and a non-empty
//! `events` (else `invalid_request`); each event of a type Okta accepts
//! (`SecurityEventTokenRequestJwtEvents`'s properties: not CAEP `credential-change`) and fitting
//! that type's schema, with `reason_admin` or `reason_user` where the schema says one is
//! required. A repeated `jti` is answered 202 and ignored. A refused SET is a 400 of Okta's, not
//! a spec violation: only a wrong `Content-Type` is (the spec's request media type).

use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use axum::Router;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::header::{CONTENT_TYPE, HeaderMap};
use axum::http::{StatusCode, Uri};
use axum::response::Response;
use axum::routing::{get, post};
use jsonwebtoken::jwk::JwkSet;
use jsonwebtoken::{Algorithm, DecodingKey, Validation};
use serde_json::{Value, json};

use super::api::{Family, Operation, validation_failed};
use super::spec::Spec;
use super::user_actions::{soon, take_quota};
use super::{Answer, OktaStandIn, Shared, okta_id};

const PROVIDERS: &str = "/api/v1/security-events-providers";
const EVENTS: &str = "/security/api/v1/security-events";
const READ: &str = "okta.securityEventsProviders.read";
const MANAGE: &str = "okta.securityEventsProviders.manage";
/// The SET's media type (RFC 8417 §2.3), the only one the push takes.
const SET_MEDIA_TYPE: &str = "application/secevent+jwt";
/// How long the stand-in waits for a provider's JWKS.
const JWKS_TIMEOUT: Duration = Duration::from_secs(3);

const LIST: Operation = Operation {
    id: "listSecurityEventsProviderInstances",
    template: PROVIDERS,
    method: "GET",
    scope: READ,
    family: Family::SecurityEventsProviders,
    unlisted: &[],
};
const CREATE: Operation = Operation {
    id: "createSecurityEventsProviderInstance",
    template: PROVIDERS,
    method: "POST",
    scope: MANAGE,
    family: Family::SecurityEventsProviders,
    unlisted: &[],
};
/// The spec lists 202 and 400 only; Okta's rate limits and server errors apply to every
/// endpoint (README §b), so 429 is answered with Okta's shared response (5xx falls back alike).
const PUSH: Operation = Operation {
    id: "publishSecurityEventTokens",
    template: EVENTS,
    method: "POST",
    scope: "",
    family: Family::SecurityEvents,
    unlisted: &[429],
};

impl OktaStandIn {
    /// The claims of every SET the push accepted, in arrival order (a repeated `jti` once).
    pub fn received_security_events(&self) -> Vec<Value> {
        let state = self.shared.lock();
        let events = state.security_events.iter();
        events.map(|set| set["claims"].clone()).collect()
    }

    /// The security events providers, as listSecurityEventsProviderInstances answers them.
    pub fn security_events_providers(&self) -> Vec<Value> {
        self.shared.lock().providers.clone()
    }
}

/// Adds the SSF receiver routes to `router`.
pub(super) fn routes(router: Router<Arc<Shared>>) -> Router<Arc<Shared>> {
    router
        .route(PROVIDERS, get(list).post(create))
        .route(EVENTS, post(push))
}

async fn list(State(shared): State<Arc<Shared>>, uri: Uri, headers: HeaderMap) -> Response {
    let index = shared.record(LIST.method, &uri, Vec::new(), &headers);
    let quota = LIST.take_quota(&shared);
    let answer = match LIST.authorize(&shared, &headers, uri.path(), quota) {
        Err(answer) => answer,
        Ok(_) => Answer::json(
            StatusCode::OK,
            Value::Array(shared.lock().providers.clone()),
        ),
    };
    LIST.finish(&shared, index, answer, quota)
}

async fn create(
    State(shared): State<Arc<Shared>>,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let index = shared.record(CREATE.method, &uri, Vec::new(), &headers);
    let quota = CREATE.take_quota(&shared);
    let answer = match CREATE.authorize(&shared, &headers, uri.path(), quota) {
        Err(answer) => answer,
        Ok(_) => match provider(&shared, &headers, &body).await {
            Err(answer) => answer,
            Ok(provider) => {
                shared.lock().providers.push(provider.clone());
                Answer::json(StatusCode::OK, provider)
            }
        },
    };
    CREATE.finish(&shared, index, answer, quota)
}

/// The provider a create body asks for, checked against the spec's request schema (a deviation
/// is a client bug: a violation) and as Okta validates it (400 E0000001). Registered by a
/// well-known URL, its issuer and JWKS URL are read from that document now.
async fn provider(shared: &Shared, headers: &HeaderMap, body: &Bytes) -> Result<Value, Answer> {
    let sent = CREATE.json_body(shared, headers, body)?;
    let text = |value: &Value| value.as_str().unwrap_or_default().trim().to_owned();
    let name = text(&sent["name"]);
    let kind = text(&sent["type"]);
    if name.is_empty() || name.chars().count() > 100 || kind.is_empty() {
        return Err(validation_failed(
            "securityEventsProvider",
            &["name: at most 100 characters, not blank; type: not blank."],
        ));
    }
    let settings = &sent["settings"];
    let well_known = settings["well_known_url"].as_str().map(str::to_owned);
    let (issuer, jwks_url) = match &well_known {
        Some(url) => ssf_configuration(url).await.map_err(|why| {
            validation_failed(
                "securityEventsProvider",
                &[&format!("settings.well_known_url: {why}")],
            )
        })?,
        None => (text(&settings["issuer"]), text(&settings["jwks_url"])),
    };
    if issuer.is_empty() || reqwest::Url::parse(&jwks_url).is_err() {
        return Err(validation_failed(
            "securityEventsProvider",
            &["settings: a well_known_url, or an issuer and a jwks_url."],
        ));
    }
    let id = okta_id("sse");
    let href = format!("{}{PROVIDERS}/{id}", shared.org_url);
    let mut settings = json!({"issuer": issuer, "jwks_url": jwks_url});
    if let Some(url) = well_known {
        settings["well_known_url"] = json!(url);
    }
    Ok(json!({
        "id": id,
        "name": name,
        "type": kind,
        "status": "ACTIVE",
        "settings": settings,
        "_links": {
            "self": {"href": href, "hints": {"allow": ["GET", "PUT", "DELETE"]}},
            "deactivate": {
                "href": format!("{href}/lifecycle/deactivate"), "hints": {"allow": ["POST"]},
            },
        },
    }))
}

/// The `issuer` and `jwks_uri` of an SSF well-known document.
async fn ssf_configuration(url: &str) -> Result<(String, String), String> {
    let document: Value = fetch_json(url).await?;
    match (document["issuer"].as_str(), document["jwks_uri"].as_str()) {
        (Some(issuer), Some(jwks)) => Ok((issuer.to_owned(), jwks.to_owned())),
        _ => Err("the document has no issuer or no jwks_uri".to_owned()),
    }
}

async fn fetch_json<T: serde::de::DeserializeOwned>(url: &str) -> Result<T, String> {
    let client = reqwest::Client::builder()
        .timeout(JWKS_TIMEOUT)
        .build()
        .map_err(|e| e.to_string())?;
    let answer = client
        .get(url)
        .send()
        .await
        .map_err(|e| format!("{url} did not answer: {e}"))?;
    if !answer.status().is_success() {
        return Err(format!("{url} answered {}", answer.status()));
    }
    answer
        .json::<T>()
        .await
        .map_err(|e| format!("{url} did not answer usable JSON: {e}"))
}

fn header<'a>(headers: &'a HeaderMap, name: &str) -> &'a str {
    headers
        .get(name)
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
}

/// `POST /security/api/v1/security-events`.
async fn push(
    State(shared): State<Arc<Shared>>,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let index = shared.record(PUSH.method, &uri, Vec::new(), &headers);
    let (mut quota, failure) = take_quota(&shared, &PUSH);
    let answer = match (quota.allowed, failure) {
        (false, _) => super::api::too_many_requests(),
        (true, Some(answer)) => answer,
        (true, None) => match verify(&shared, &headers, &body).await {
            Ok(set) => {
                let mut state = shared.lock();
                let jti = set["claims"]["jti"].as_str().unwrap_or_default().to_owned();
                if state.security_event_jtis.insert(jti) {
                    state.security_events.push(set);
                }
                Answer::json(StatusCode::ACCEPTED, Value::Null)
            }
            Err((err, description)) => Answer::json(
                StatusCode::BAD_REQUEST,
                json!({"err": err, "description": description}),
            ),
        },
    };
    if answer.status == StatusCode::TOO_MANY_REQUESTS {
        quota = soon(quota);
    }
    PUSH.finish(&shared, index, answer, quota)
}

/// Why a SET is refused: Okta's `err` and `description`.
type Refusal = (&'static str, String);

/// The verified SET, `{"header", "claims"}`.
async fn verify(shared: &Shared, headers: &HeaderMap, body: &Bytes) -> Result<Value, Refusal> {
    let content_type = header(headers, CONTENT_TYPE.as_str());
    if !content_type.starts_with(SET_MEDIA_TYPE) {
        shared.violation(format!(
            "{}: Content-Type {content_type:?} is not {SET_MEDIA_TYPE}",
            PUSH.id
        ));
        return Err(invalid_request(format!(
            "The Content-Type must be {SET_MEDIA_TYPE}."
        )));
    }
    if headers.contains_key("authorization") {
        // `security: []`: a client that sends its Okta credentials here spreads them for nothing.
        shared.violation(format!("{}: the request carries credentials", PUSH.id));
    }
    let set = std::str::from_utf8(body).unwrap_or_default().trim();
    let header = jsonwebtoken::decode_header(set)
        .map_err(|e| invalid_request(format!("The security event token is not a JWT: {e}.")))?;
    if header.alg != Algorithm::RS256 {
        return Err(invalid_request(format!(
            "The security event token algorithm {:?} is not RS256.",
            header.alg
        )));
    }
    if header.typ.as_deref() != Some("secevent+jwt") {
        return Err(invalid_request(
            "The security event token typ must be secevent+jwt.".to_owned(),
        ));
    }
    let Some(kid) = header.kid.clone() else {
        return Err(invalid_request(
            "The security event token header has no kid.".to_owned(),
        ));
    };
    let unverified = jsonwebtoken::dangerous::insecure_decode::<Value>(set)
        .map_err(|e| invalid_request(format!("The security event token claims are invalid: {e}.")))?
        .claims;
    let iss = unverified["iss"].as_str().unwrap_or_default();
    let jwks_url = {
        let state = shared.lock();
        let provider = state
            .providers
            .iter()
            .find(|p| p["status"] == "ACTIVE" && p["settings"]["issuer"].as_str() == Some(iss));
        match provider {
            Some(provider) => provider["settings"]["jwks_url"]
                .as_str()
                .unwrap_or_default()
                .to_owned(),
            None => {
                return Err((
                    "invalid_issuer",
                    format!("No active security events provider has the issuer '{iss}'."),
                ));
            }
        }
    };
    let jwks: JwkSet = fetch_json(&jwks_url).await.map_err(|why| {
        (
            "invalid_key",
            format!("The provider's JWKS is unusable: {why}."),
        )
    })?;
    let key = jwks
        .find(&kid)
        .and_then(|jwk| DecodingKey::from_jwk(jwk).ok())
        .ok_or_else(|| {
            (
                "invalid_key",
                format!("The provider's JWKS has no usable key '{kid}'."),
            )
        })?;
    let mut validation = Validation::new(Algorithm::RS256);
    validation.validate_exp = false;
    validation.validate_aud = false;
    validation.set_required_spec_claims::<&str>(&[]);
    let claims = jsonwebtoken::decode::<Value>(set, &key, &validation)
        .map_err(|e| {
            (
                "authentication_failed",
                format!("The security event token signature is invalid: {e}."),
            )
        })?
        .claims;
    check_audience(&shared.org_url, &claims["aud"])?;
    check_claims(&claims)?;
    let header = serde_json::to_value(&header).unwrap_or_default();
    Ok(json!({"header": header, "claims": claims}))
}

fn invalid_request(description: String) -> Refusal {
    ("invalid_request", description)
}

/// `aud`: the org URL (a string, or an array holding it), with or without a trailing slash.
fn check_audience(org_url: &str, aud: &Value) -> Result<(), Refusal> {
    let org = org_url.trim_end_matches('/');
    let names_org = |value: &Value| value.as_str().map(|a| a.trim_end_matches('/')) == Some(org);
    let ok = match aud {
        Value::Array(all) => all.iter().any(names_org),
        other => names_org(other),
    };
    if ok {
        Ok(())
    } else {
        Err((
            "invalid_audience",
            format!("The audience {aud} is not this org ({org_url})."),
        ))
    }
}

/// `iat`, `jti`, `events` and each event, as `SecurityEventTokenRequestJwtBody` says.
fn check_claims(claims: &Value) -> Result<(), Refusal> {
    let spec = Spec::get();
    let blank = |what: &str| invalid_request(format!("'{what}': The field cannot be left blank"));
    if !claims["iat"].is_i64() && !claims["iat"].is_u64() {
        return Err(blank("iat"));
    }
    if claims["jti"].as_str().is_none_or(str::is_empty) {
        return Err(blank("jti"));
    }
    let Some(events) = claims["events"].as_object().filter(|e| !e.is_empty()) else {
        return Err(blank("events"));
    };
    let accepted = &spec.schema("SecurityEventTokenRequestJwtEvents")["properties"];
    for (event_type, event) in events {
        let Some(schema) = accepted.get(event_type) else {
            return Err(invalid_request(format!(
                "The event type '{event_type}' is not supported."
            )));
        };
        if let Some(violation) = spec.validate(schema, event).first() {
            return Err(invalid_request(format!(
                "Failed claim validation in security event token. 'events.{event_type}{}': {:?}",
                violation.path, violation.kind
            )));
        }
        let reasons = ["reason_admin", "reason_user"];
        let properties = &spec_schema(spec, schema)["properties"];
        let asks_reason = reasons.iter().any(|r| properties.get(r).is_some());
        if asks_reason && !reasons.iter().any(|r| event.get(r).is_some()) {
            return Err(invalid_request(format!(
                "Failed claim validation in security event token. 'events.{event_type}': \
                 Either reason_admin or reason_user is required"
            )));
        }
    }
    Ok(())
}

/// `schema` itself or the component its `$ref` names.
fn spec_schema<'a>(spec: &'a Spec, schema: &'a Value) -> &'a Value {
    match schema["$ref"].as_str() {
        Some(reference) => spec.schema(reference.rsplit('/').next().unwrap_or_default()),
        None => schema,
    }
}

/// A Shared Signals transmitter for tests: an RSA key (`kid`), its JWKS served on
/// 127.0.0.1:0 at `/jwks`, and SETs signed with it. Stops with the runtime.
pub struct Transmitter {
    /// The `iss` of its SETs, the issuer to register.
    pub issuer: String,
    /// Where its JWKS is served.
    pub jwks_url: String,
    /// The `kid` of its key.
    pub kid: String,
    key: jsonwebtoken::EncodingKey,
}

impl Transmitter {
    /// A new RS256 key `kid`, its JWKS served now.
    pub async fn start(kid: &str) -> Self {
        let pair = rcgen::KeyPair::generate_for(&rcgen::PKCS_RSA_SHA256).expect("an RSA key");
        let key = jsonwebtoken::EncodingKey::from_rsa_pem(pair.serialize_pem().as_bytes())
            .expect("rcgen's PEM");
        let mut jwk =
            jsonwebtoken::jwk::Jwk::from_encoding_key(&key, Algorithm::RS256).expect("an RSA JWK");
        jwk.common.key_id = Some(kid.to_owned());
        let jwks = json!({"keys": [jwk]});
        let app = Router::new().route("/jwks", get(move || async move { axum::Json(jwks) }));
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind 127.0.0.1:0");
        let addr = listener.local_addr().expect("local address");
        tokio::spawn(async move { axum::serve(listener, app).await });
        Transmitter {
            issuer: format!("https://transmitter-{}.example", &okta_id("tx")[2..10]),
            jwks_url: format!("http://{addr}/jwks"),
            kid: kid.to_owned(),
            key,
        }
    }

    /// The claims of a SET to `okta` carrying one `user-risk-change` event (README §f's
    /// spec-shaped claims) for `email`, with a fresh `jti`.
    pub fn user_risk_change(&self, okta: &OktaStandIn, email: &str) -> Value {
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap_or_default()
            .as_secs();
        json!({
            "iss": self.issuer,
            "aud": okta.org_url(),
            "iat": now,
            "jti": uuid::Uuid::new_v4().to_string(),
            "events": {
                "https://schemas.okta.com/secevent/okta/event-type/user-risk-change": {
                    "subject": {"user": {"format": "email", "email": email}},
                    "event_timestamp": now,
                    "current_level": "high",
                    "previous_level": "low",
                    "initiating_entity": "policy",
                    "reason_admin": {"en": "MFA factor reset by help desk"},
                },
            },
        })
    }

    /// `claims` signed as a SET: RS256, `typ` `secevent+jwt`, this key's `kid`.
    pub fn sign(&self, claims: &Value) -> String {
        let mut header = jsonwebtoken::Header::new(Algorithm::RS256);
        header.typ = Some("secevent+jwt".to_owned());
        header.kid = Some(self.kid.clone());
        jsonwebtoken::encode(&header, claims, &self.key).expect("a SET signs")
    }
}
