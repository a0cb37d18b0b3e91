//! A faithful stand-in of Okta's API for tests and benches: an axum server on 127.0.0.1:0 with the
//! org authorization server's token endpoint (`POST /oauth2/v1/token`: client credentials with a
//! `private_key_jwt` client assertion, DPoP with the nonce flow), the System Log
//! (`GET /api/v1/logs`: SSWS, Bearer and DPoP tokens, scopes, SCIM filters, polling and bounded
//! queries, `link` headers, rate limits), the Event Hooks API (`/api/v1/eventHooks`: CRUD,
//! lifecycle, verification with a real challenge GET to the hook, a System Log event per change)
//! the Users API calls of an alert's context (a user, its factors, roles and groups), the
//! responder's writes (suspend, unsuspend, clear sessions, user risk) and the Shared Signals
//! receiver (security events providers, and the SET push verified with the provider's JWKS).
//! Behaviour follows Okta's documentation as summarised in shared/okta/api/README.md sections
//! a-f and shared/okta/README.md, not any client of it.
//!
//! Every request and answer is checked against Okta's OpenAPI spec (tests/okta-api); what does
//! not fit is listed by [`OktaStandIn::spec_violations`], which tests assert empty. Benches can
//! take this module with `#[path = "../tests/it/okta_standin/mod.rs"] mod okta_standin;`: it uses
//! nothing else of the `it` binary.

// A bench takes what it needs of this module and leaves the rest unused.
#![allow(dead_code)]

mod api;
mod audit;
mod auth;
mod challenge;
mod filter;
mod hooks;
mod logs;
pub mod spec;
mod ssf;
#[cfg(test)]
mod ssf_tests;
#[cfg(test)]
mod tests;
mod user_actions;
#[cfg(test)]
mod user_actions_tests;
mod users;
#[cfg(test)]
mod users_tests;

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use axum::Router;
use axum::http::header::{CONTENT_TYPE, HeaderMap, HeaderName, HeaderValue};
use axum::http::{StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use factorwatch::okta::samples;
use jsonwebtoken::DecodingKey;
use serde_json::{Value, json};
use sha2::{Digest, Sha256};
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;
use tokio::sync::oneshot;

pub use api::Family;
pub use audit::Actor;
pub use hooks::HookSeed;
pub use ssf::Transmitter;
pub use users::{FactorSeed, UserSeed};

/// Okta's documented default for `/api/v1/logs` (Workforce Identity): 120 requests a minute.
const DEFAULT_RATE_LIMIT: u32 = 120;
/// README §b [RLOLD]: "most other `/api/v1`" endpoints allow 1,200 a minute (Workforce); the
/// table names no Event Hooks row, so that default applies to them.
const DEFAULT_OTHER_RATE_LIMIT: u32 = 1200;
/// README §b [RLOLD]: `GET /api/v1/users/{idOrLogin}` allows 2,000 a minute (Workforce).
const DEFAULT_USER_RATE_LIMIT: u32 = 2000;
/// Okta's rate-limit windows last 60 s (not aligned to wall-clock minutes).
const DEFAULT_RATE_WINDOW: Duration = Duration::from_secs(60);
/// Request headers kept in [`Recorded::headers`] (`authorization` keeps only its scheme).
const RECORDED_HEADERS: [&str; 7] = [
    "authorization",
    "dpop",
    "content-type",
    "accept",
    "user-agent",
    "x-okta-retry-for",
    "x-okta-retry-count",
];

/// A running stand-in of one Okta org; dropping it stops the server.
pub struct OktaStandIn {
    shared: Arc<Shared>,
    stop: Option<oneshot::Sender<()>>,
}

/// One request the stand-in received.
#[derive(Debug, Clone)]
pub struct Recorded {
    /// HTTP method.
    pub method: String,
    /// Path, without the query.
    pub path: String,
    /// Decoded query parameters, in order.
    pub query: Vec<(String, String)>,
    /// Decoded form fields of a token request, in order, without `client_assertion` (a credential).
    pub form: Vec<(String, String)>,
    /// The [`RECORDED_HEADERS`] that were sent; `authorization` holds only the scheme (`SSWS`,
    /// `Bearer`, `DPoP`), never the credential.
    pub headers: Vec<(String, String)>,
    /// The answer's status; `None` while there is none yet, and for good when the client went away
    /// before it (a client timeout during `delay_next`).
    pub status: Option<u16>,
    /// When the request arrived.
    pub at: Instant,
}

impl Recorded {
    /// The first query parameter `name`.
    pub fn param(&self, name: &str) -> Option<&str> {
        first(&self.query, name)
    }

    /// The first form field `name` of a token request.
    pub fn field(&self, name: &str) -> Option<&str> {
        first(&self.form, name)
    }

    /// The recorded header `name` (lowercase).
    pub fn header(&self, name: &str) -> Option<&str> {
        first(&self.headers, name)
    }
}

fn first<'a>(pairs: &'a [(String, String)], name: &str) -> Option<&'a str> {
    pairs
        .iter()
        .find(|(key, _)| key == name)
        .map(|(_, value)| value.as_str())
}

impl OktaStandIn {
    /// Starts a stand-in on 127.0.0.1:0. Loads Okta's spec first (once per process) so that no
    /// request waits for it.
    pub async fn start() -> Self {
        tokio::task::spawn_blocking(spec::Spec::get)
            .await
            .expect("the Okta spec loads");
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind 127.0.0.1:0");
        let addr = listener.local_addr().expect("local address");
        let shared = Arc::new(Shared {
            org_url: format!("http://{addr}"),
            state: Mutex::new(State::default()),
        });
        let app = ssf::routes(user_actions::routes(users::routes(hooks::routes(
            Router::new()
                .route("/oauth2/v1/token", post(auth::token))
                .route("/api/v1/logs", get(logs::list)),
        ))))
        .fallback(not_found)
        .with_state(shared.clone());
        let (stop, stopped) = oneshot::channel::<()>();
        tokio::spawn(async move {
            let server = axum::serve(listener, app).with_graceful_shutdown(async {
                let _ = stopped.await;
            });
            let _ = server.await;
        });
        OktaStandIn {
            shared,
            stop: Some(stop),
        }
    }

    /// The org URL, `http://127.0.0.1:PORT` (no trailing slash).
    pub fn org_url(&self) -> String {
        self.shared.org_url.clone()
    }

    /// Registers an API Services app: `client_id`, the public key of its client assertions (PEM,
    /// RSA or EC), the `kid` registered with it, the Okta API scopes granted to it, and whether it
    /// requires DPoP-bound tokens. Panics on a key that is neither RSA nor EC (a test mistake).
    pub fn add_service_app(
        &self,
        client_id: &str,
        public_key_pem: &str,
        kid: Option<&str>,
        scopes: &[&str],
        dpop: bool,
    ) {
        let pem = public_key_pem.as_bytes();
        let key = DecodingKey::from_rsa_pem(pem)
            .or_else(|_| DecodingKey::from_ec_pem(pem))
            .expect("public_key_pem is an RSA or EC public key");
        let app = auth::ServiceApp {
            key,
            kid: kid.map(str::to_owned),
            scopes: scope_set(scopes),
            dpop,
        };
        self.shared.lock().apps.insert(client_id.to_owned(), app);
    }

    /// Registers an SSWS API token whose admin holds `scopes` (`okta.logs.read` lets it read the
    /// System Log; without it the token gets 403 like one of an admin whose role is too weak).
    /// The admin is the samples' "dana.admin" (the owner of the samples' API token too), so the
    /// System Log names that user as the actor of the token's changes.
    pub fn add_api_token(&self, token: &str, scopes: &[&str]) {
        let admin = samples::users()
            .pop()
            .expect("the samples' last user is their admin");
        let api_token = auth::ApiToken {
            scopes: scope_set(scopes),
            id: okta_id("00T"),
            admin,
        };
        self.shared
            .lock()
            .api_tokens
            .insert(digest(token), api_token);
    }

    /// Makes every access token issued so far invalid, as if it had expired: the next API call
    /// with one gets 401.
    pub fn expire_tokens(&self) {
        self.shared.lock().access_tokens.clear();
    }

    /// Revokes the SSWS API token `token`: every later call with it gets 401 E0000011.
    pub fn revoke_api_token(&self, token: &str) {
        self.shared.lock().api_tokens.remove(&digest(token));
    }

    /// Deactivates the service app `client_id`: its token requests get `invalid_client`. Every
    /// access token issued so far expires as well (the stand-in does not tell one app's tokens
    /// from another's); other apps just get new ones.
    pub fn revoke_service_app(&self, client_id: &str) {
        let mut state = self.shared.lock();
        state.apps.remove(client_id);
        state.access_tokens.clear();
    }

    /// Appends events to the System Log; persistence order is call order (and order within the
    /// call), whatever their `published` time.
    pub fn publish(&self, events: Vec<Value>) {
        let mut state = self.shared.lock();
        for event in events {
            state.append_log(event);
        }
    }

    /// Every event of the System Log, in persistence order.
    pub fn log(&self) -> Vec<Value> {
        let state = self.shared.lock();
        state
            .log
            .iter()
            .map(|stored| stored.event.clone())
            .collect()
    }

    /// Sets the `/api/v1/logs` bucket: `limit` requests per `window`; the window starts with the
    /// next request. Default 120 per 60 s.
    pub fn set_rate_limit(&self, limit: u32, window: Duration) {
        self.set_rate_limit_of(Family::Logs, limit, window);
    }

    /// Sets the bucket of an endpoint `family` like [`OktaStandIn::set_rate_limit`]. Default of
    /// the Event Hooks API: 1,200 per 60 s.
    pub fn set_rate_limit_of(&self, family: Family, limit: u32, window: Duration) {
        *self.shared.lock().bucket(family) = Bucket::new(limit, window);
    }

    /// The next `n` answers of `/api/v1/logs` have `status`: 500 with Okta's E0000009 body, 429
    /// with E0000047, 401 E0000011, 403 E0000006, others E0000001. They count against the rate
    /// limit like any request.
    pub fn fail_next(&self, n: usize, status: u16) {
        self.shared.lock().failures = (n, status);
    }

    /// The next `n` answers of `/api/v1/logs` come after `delay`.
    pub fn delay_next(&self, n: usize, delay: Duration) {
        self.shared.lock().delays = (n, delay);
    }

    /// Every request received so far, in arrival order.
    pub fn requests(&self) -> Vec<Recorded> {
        self.shared.lock().requests.clone()
    }

    /// What did not fit Okta's spec or documentation, requests and answers alike.
    pub fn spec_violations(&self) -> Vec<String> {
        self.shared.lock().violations.clone()
    }
}

impl Drop for OktaStandIn {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
    }
}

/// What the handlers share.
struct Shared {
    org_url: String,
    state: Mutex<State>,
}

impl Shared {
    fn lock(&self) -> MutexGuard<'_, State> {
        self.state
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Records a request as it arrives; returns its index for [`Shared::answered`].
    fn record(
        &self,
        method: &str,
        uri: &Uri,
        form: Vec<(String, String)>,
        headers: &HeaderMap,
    ) -> usize {
        let recorded = Recorded {
            method: method.to_owned(),
            path: uri.path().to_owned(),
            query: decode_pairs(uri.query().unwrap_or_default()),
            form,
            headers: recorded_headers(headers),
            status: None,
            at: Instant::now(),
        };
        let mut state = self.lock();
        state.requests.push(recorded);
        state.requests.len() - 1
    }

    fn answered(&self, index: usize, status: StatusCode) {
        self.lock().requests[index].status = Some(status.as_u16());
    }

    fn violation(&self, what: String) {
        self.lock().violations.push(what);
    }
}

/// The mutable state of the org.
struct State {
    apps: HashMap<String, auth::ServiceApp>,
    /// SHA-256 of each API token → what it is (looked up by digest: no secret compared directly).
    api_tokens: HashMap<[u8; 32], auth::ApiToken>,
    /// SHA-256 of each access token → what it grants.
    access_tokens: HashMap<[u8; 32], auth::AccessToken>,
    /// `jti`s of client assertions and DPoP proofs already used.
    used_jtis: HashSet<String>,
    dpop_nonce: String,
    log: Vec<logs::Stored>,
    /// The event hooks, in creation order (the order the list answers).
    hooks: Vec<hooks::StoredHook>,
    /// The users, by id.
    users: HashMap<String, users::StoredUser>,
    user_faults: users::Faults,
    /// The next answers of the responder's operations that fail, and with which status.
    action_failures: (usize, u16),
    /// The security events providers, in creation order.
    providers: Vec<Value>,
    /// Every SET accepted: `{"header": …, "claims": …}`, in arrival order.
    security_events: Vec<Value>,
    /// The `jti`s of the SETs accepted (a repeated one is accepted and ignored).
    security_event_jtis: HashSet<String>,
    buckets: HashMap<Family, Bucket>,
    failures: (usize, u16),
    delays: (usize, Duration),
    requests: Vec<Recorded>,
    violations: Vec<String>,
}

impl Default for State {
    fn default() -> Self {
        State {
            apps: HashMap::new(),
            api_tokens: HashMap::new(),
            access_tokens: HashMap::new(),
            used_jtis: HashSet::new(),
            dpop_nonce: random_token(),
            log: Vec::new(),
            hooks: Vec::new(),
            users: HashMap::new(),
            user_faults: users::Faults::default(),
            action_failures: (0, 0),
            providers: Vec::new(),
            security_events: Vec::new(),
            security_event_jtis: HashSet::new(),
            buckets: HashMap::new(),
            failures: (0, 0),
            delays: (0, Duration::ZERO),
            requests: Vec::new(),
            violations: Vec::new(),
        }
    }
}

impl State {
    /// The rate-limit bucket of `family`, at its default until set.
    fn bucket(&mut self, family: Family) -> &mut Bucket {
        self.buckets.entry(family).or_insert_with(|| {
            let limit = match family {
                Family::Logs => DEFAULT_RATE_LIMIT,
                Family::EventHooks
                | Family::UserResources
                | Family::UserActions
                | Family::SecurityEventsProviders
                | Family::SecurityEvents => DEFAULT_OTHER_RATE_LIMIT,
                Family::Users => DEFAULT_USER_RATE_LIMIT,
            };
            Bucket::new(limit, DEFAULT_RATE_WINDOW)
        })
    }

    /// Persists one System Log event now, after every earlier one.
    fn append_log(&mut self, event: Value) {
        let persisted = unix_ms(SystemTime::now()).max(self.log.last().map_or(0, |e| e.persisted));
        let published = event["published"]
            .as_str()
            .and_then(|text| OffsetDateTime::parse(text, &Rfc3339).ok())
            .map(|at| (at.unix_timestamp_nanos() / 1_000_000) as i64);
        let seq = self.log.len() as u64 + 1;
        self.log.push(logs::Stored {
            seq,
            persisted,
            published,
            text: event.to_string().to_lowercase(),
            event,
        });
    }

    /// Consumes one of the `fail_next` answers, if any is left.
    fn take_failure(&mut self) -> Option<u16> {
        take_one(&mut self.failures)
    }

    /// Consumes one of the `delay_next` delays, if any is left.
    fn take_delay(&mut self) -> Option<Duration> {
        take_one(&mut self.delays)
    }
}

fn take_one<T: Copy>(counted: &mut (usize, T)) -> Option<T> {
    if counted.0 == 0 {
        return None;
    }
    counted.0 -= 1;
    Some(counted.1)
}

/// A fixed-window rate-limit bucket; the window starts with the first request after the last one
/// ended, as Okta's are not aligned to wall-clock minutes.
struct Bucket {
    limit: u32,
    window: Duration,
    started: SystemTime,
    used: u32,
}

/// The bucket's state after a request, as the `X-Rate-Limit-*` headers tell it.
#[derive(Debug, Clone, Copy)]
struct Quota {
    allowed: bool,
    limit: u32,
    remaining: u32,
    /// UTC epoch seconds when the window ends (rounded up: the window is over by then).
    reset: u64,
}

impl Bucket {
    fn new(limit: u32, window: Duration) -> Self {
        Bucket {
            limit,
            window,
            started: UNIX_EPOCH,
            used: 0,
        }
    }

    fn take(&mut self, now: SystemTime) -> Quota {
        if now >= self.started + self.window {
            self.started = now;
            self.used = 0;
        }
        let allowed = self.used < self.limit;
        if allowed {
            self.used += 1;
        }
        let end = (self.started + self.window)
            .duration_since(UNIX_EPOCH)
            .unwrap_or_default();
        Quota {
            allowed,
            limit: self.limit,
            remaining: self.limit - self.used,
            reset: end.as_secs() + u64::from(end.subsec_nanos() > 0),
        }
    }
}

/// An answer before it becomes a response, so its body can be checked against the spec.
struct Answer {
    status: StatusCode,
    headers: Vec<(HeaderName, String)>,
    body: Value,
}

impl Answer {
    fn json(status: StatusCode, body: Value) -> Self {
        Answer {
            status,
            headers: Vec::new(),
            body,
        }
    }

    /// 204 without a body (a `null` body stands for none).
    fn no_content() -> Self {
        Self::json(StatusCode::NO_CONTENT, Value::Null)
    }

    /// Okta's error object (`Error` in the spec).
    fn okta_error(status: StatusCode, code: &str, summary: &str) -> Self {
        Self::json(
            status,
            json!({
                "errorCode": code,
                "errorSummary": summary,
                "errorLink": code,
                "errorId": format!("oae{}", &uuid::Uuid::new_v4().simple().to_string()[..22]),
                "errorCauses": [],
            }),
        )
    }

    /// An OAuth 2.0 error (RFC 6749 §5.2), as the token endpoint and DPoP checks answer.
    fn oauth_error(status: StatusCode, error: &str, description: &str) -> Self {
        Self::json(
            status,
            json!({"error": error, "error_description": description}),
        )
    }

    fn header(mut self, name: HeaderName, value: impl Into<String>) -> Self {
        self.headers.push((name, value.into()));
        self
    }

    fn into_response(self) -> Response {
        let no_body = self.body.is_null();
        let text = if no_body {
            String::new()
        } else {
            self.body.to_string()
        };
        let mut response = (self.status, text).into_response();
        let headers = response.headers_mut();
        if no_body {
            headers.remove(CONTENT_TYPE);
        } else {
            headers.insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
        }
        for (name, value) in self.headers {
            let value = HeaderValue::from_str(&value).expect("header values are ASCII");
            headers.append(name, value);
        }
        response
    }
}

async fn not_found(
    axum::extract::State(shared): axum::extract::State<Arc<Shared>>,
    method: axum::http::Method,
    uri: Uri,
    headers: HeaderMap,
) -> Response {
    let index = shared.record(method.as_str(), &uri, Vec::new(), &headers);
    shared.violation(format!(
        "{method} {}: not an operation of the stand-in",
        uri.path()
    ));
    let answer = Answer::okta_error(
        StatusCode::NOT_FOUND,
        "E0000007",
        &format!(
            "Not found: Resource not found: {} (GenericResource)",
            uri.path()
        ),
    );
    shared.answered(index, answer.status);
    answer.into_response()
}

/// The recorded headers of a request, credentials left out.
fn recorded_headers(headers: &HeaderMap) -> Vec<(String, String)> {
    RECORDED_HEADERS
        .iter()
        .flat_map(|&name| headers.get_all(name).iter().map(move |v| (name, v)))
        .map(|(name, value)| {
            let value = value.to_str().unwrap_or("<not ASCII>");
            let value = if name == "authorization" {
                value.split(' ').next().unwrap_or_default()
            } else {
                value
            };
            (name.to_owned(), value.to_owned())
        })
        .collect()
}

/// Decodes `application/x-www-form-urlencoded` pairs (a query string or a form body).
fn decode_pairs(text: &str) -> Vec<(String, String)> {
    let mut url = reqwest::Url::parse("http://decode.invalid/").expect("a valid URL");
    url.set_query(Some(text));
    url.query_pairs().into_owned().collect()
}

/// Encodes pairs as a query string.
fn encode_pairs(pairs: &[(String, String)]) -> String {
    let mut url = reqwest::Url::parse("http://encode.invalid/").expect("a valid URL");
    url.query_pairs_mut().extend_pairs(pairs);
    url.query().unwrap_or_default().to_owned()
}

fn scope_set(scopes: &[&str]) -> HashSet<String> {
    scopes.iter().map(|&s| s.to_owned()).collect()
}

/// SHA-256 of a credential, the key it is stored and looked up by.
fn digest(credential: &str) -> [u8; 32] {
    Sha256::digest(credential.as_bytes()).into()
}

/// An Okta-style id: `prefix` and random alphanumerics, 20 characters in all (`who8vt36…`).
fn okta_id(prefix: &str) -> String {
    use rand::distr::{Alphanumeric, SampleString};
    let rest = Alphanumeric.sample_string(&mut rand::rng(), 20 - prefix.len());
    format!("{prefix}{rest}")
}

/// 32 random bytes, base64url: access tokens and DPoP nonces.
fn random_token() -> String {
    use base64::Engine;
    let bytes: [u8; 32] = rand::random();
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes)
}

fn unix_ms(at: SystemTime) -> i64 {
    at.duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as i64)
}

fn unix_secs(at: SystemTime) -> i64 {
    unix_ms(at) / 1000
}
