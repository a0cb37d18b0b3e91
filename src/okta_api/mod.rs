//! The Okta Management API client: authentication (an API Services app with a signed client
//! assertion and, when the app demands it, DPoP; or a legacy SSWS token), the rate-limit
//! budget, retries, the System Log call (`GET /api/v1/logs`), the Event Hooks calls
//! (`/api/v1/eventHooks`, in [`event_hooks`]), the Users API reads of an alert's context, the
//! responder's user actions (suspend, sessions, risk, in [`user_actions`]) and the Shared
//! Signals receiver calls (providers and the SET push, in [`ssf`]).
//!
//! Layer 1, beside [`okta`](crate::okta) and independent of it: the wire types this client
//! needs stay here. What it returns is Okta's bytes ([`LogPage::events`] holds each LogEvent
//! as sent); the capabilities that use it (reconciliation) read them.
//!
//! Sources: Okta's guides "Implement OAuth for Okta with a service app", "Configure OAuth 2.0
//! Demonstrating Proof-of-Possession", "Rate limits" and the System Log API reference
//! (developer.okta.com), and Okta's Go SDK for the DPoP fallback and the 429 wait; gathered in
//! `../shared/okta/api/README.md` §a-c.

mod config;
mod error;
mod event_hooks;
mod headers;
mod jwt;
mod rate_limit;
mod ssf;
mod token;
mod transport;
mod user_actions;
mod users;

use std::sync::Arc;
use std::time::{Duration, SystemTime};

use reqwest::header::{
    ACCEPT, AUTHORIZATION, CONTENT_TYPE, HeaderMap, HeaderValue, WWW_AUTHENTICATE,
};
use reqwest::{Method, StatusCode, Url};
use serde::Deserialize;
use serde_json::value::RawValue;
use tokio::time::Instant;

pub use self::config::OktaApiConfig;
pub use self::error::OktaApiError;
pub use self::event_hooks::{EventHook, HookDefinition};
use self::headers::{RateLimitHeaders, auth_param, next_link};
use self::jwt::ClientKey;
use self::rate_limit::{Budgets, InFlight, RateBudget, backoff};
pub use self::ssf::{ProviderSettings, SecurityEventsProvider};
use self::token::{APP_ADVICE, AccessToken, TokenSource};
use self::transport::{Answer, Call, Endpoint, NoAnswer, Transport};
pub use self::user_actions::{RiskLevel, UserRisk, risk_reason};
pub use self::users::{AssignedRole, GroupsPage, OktaUser, UserFactor, UserGroup, UserProfile};
use crate::secret::Secret;

/// The OAuth scopes of the calls this client makes: what each capability asks its token for.
pub mod scopes {
    /// Read the System Log (reconciliation, backfill, `rules test --okta`).
    pub const LOGS_READ: &str = "okta.logs.read";
    /// Read event hooks (`okta doctor`).
    pub const EVENT_HOOKS_READ: &str = "okta.eventHooks.read";
    /// Create, change, activate and verify event hooks (`okta register`, `okta rotate-secret`).
    pub const EVENT_HOOKS_MANAGE: &str = "okta.eventHooks.manage";
    /// Read users, their factors and groups (an alert's live Okta context).
    pub const USERS_READ: &str = "okta.users.read";
    /// Read the admin roles assigned to users (an alert's live Okta context).
    pub const ROLES_READ: &str = "okta.roles.read";
    /// Suspend and unsuspend users, clear their sessions (the responder's actions).
    pub const USERS_MANAGE: &str = "okta.users.manage";
    /// Read a user's risk level (Identity Threat Protection).
    pub const USER_RISK_READ: &str = "okta.userRisk.read";
    /// Set a user's risk level (the responder's escalation to Identity Threat Protection).
    pub const USER_RISK_MANAGE: &str = "okta.userRisk.manage";
    /// Register a Shared Signals transmitter (a security events provider) with the org.
    pub const SECURITY_EVENTS_PROVIDERS_MANAGE: &str = "okta.securityEventsProviders.manage";
    /// List the org's security events providers.
    pub const SECURITY_EVENTS_PROVIDERS_READ: &str = "okta.securityEventsProviders.read";
}

/// The most events Okta returns in one page of `/api/v1/logs` (its `limit`).
pub const MAX_LOGS_PAGE: u32 = 1000;

/// Tries of one call, the first included, before the last error is returned.
const MAX_TRIES: u32 = 5;
/// The first backoff after a server error or no answer (doubled per try, with jitter).
const SERVER_BACKOFF_BASE: Duration = Duration::from_secs(1);
/// What to check when Okta refuses a System Log request.
const LOGS_ADVICE: &str = "check the filter, since and until";

/// The first backoff after a 429 without rate-limit headers: 1 to 2 s, then doubling up to a
/// minute.
const RATE_LIMIT_BACKOFF_BASE: Duration = Duration::from_secs(2);

/// A client of one Okta org's Management API. Cheap to clone (one shared state: token cache,
/// rate-limit budget, HTTP connections). `Debug` shows no token and no key.
#[derive(Clone, Debug)]
pub struct OktaClient {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    org_url: Url,
    logs_url: Url,
    auth: Auth,
    /// One budget per bucket (Okta counts each endpoint family apart).
    budgets: Budgets,
    transport: Transport,
}

/// How requests are authenticated.
enum Auth {
    /// `Authorization: SSWS <token>` (a sensitive header value).
    Ssws(HeaderValue),
    /// OAuth 2.0 access tokens of an API Services app.
    OAuth(Box<TokenSource>),
}

impl std::fmt::Debug for Auth {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Ssws(_) => f.write_str("Ssws(<redacted>)"),
            Self::OAuth(source) => f.debug_tuple("OAuth").field(source).finish(),
        }
    }
}

/// One `GET /api/v1/logs` request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LogsRequest {
    /// Polling mode: `since`, `sortOrder=ASCENDING`, no `until`, optional SCIM `filter`,
    /// `limit`. Okta then returns events in persistence order and always a `next` link.
    Poll {
        /// RFC 3339 start.
        since: String,
        /// A SCIM filter such as `eventType sw "event_hook"`.
        filter: Option<String>,
        /// Events per page, 1 to 1000.
        limit: u32,
    },
    /// Bounded (backfill): `since` and `until`; ordered by `published`, the last page has no
    /// `next` link.
    Window {
        /// RFC 3339 start.
        since: String,
        /// RFC 3339 end.
        until: String,
        /// A SCIM filter.
        filter: Option<String>,
        /// Events per page, 1 to 1000.
        limit: u32,
    },
    /// The exact `next` link Okta returned (absolute URL). Refused when its origin is not
    /// `org_url`'s.
    Next(String),
}

/// One page of the System Log.
#[derive(Debug)]
pub struct LogPage {
    /// Each LogEvent as Okta sent it.
    pub events: Vec<Box<RawValue>>,
    /// The `rel="next"` link (always present in polling mode).
    pub next: Option<String>,
    /// The size of the answer's body.
    pub bytes: usize,
}

/// Why one try failed, and whether another may help.
#[derive(Debug)]
enum Failure {
    /// Trying again will not help.
    Final(OktaApiError),
    /// Try again at once (after dropping a refused token).
    Again(OktaApiError),
    /// Try again after a backoff.
    Backoff(OktaApiError),
    /// Try again once the window resets, in this long if the answer said.
    RateLimited(Option<Duration>),
}

impl Failure {
    /// The error to report when no further try follows.
    fn into_error(self) -> OktaApiError {
        match self {
            Self::Final(error) | Self::Again(error) | Self::Backoff(error) => error,
            Self::RateLimited(reset_in) => OktaApiError::RateLimited {
                reset_in: reset_in.unwrap_or_default(),
            },
        }
    }

    /// No answer: a timeout or a failed connection is worth another try, an unknown host not.
    fn no_answer(no_answer: NoAnswer, url: &Url) -> Self {
        match no_answer {
            NoAnswer::Timeout => Self::Backoff(OktaApiError::Timeout),
            NoAnswer::NoSuchHost => Self::Final(org_not_found(url)),
            NoAnswer::Failed(detail) => Self::Backoff(OktaApiError::Transport(detail)),
        }
    }

    /// The answers every endpoint treats alike: not an Okta org (404, 3xx), rate-limited (429),
    /// server error (5xx).
    fn unavailable(answer: &Answer, url: &Url) -> Option<Self> {
        let status = answer.status;
        if status == StatusCode::NOT_FOUND || status.is_redirection() {
            Some(Self::Final(org_not_found(url)))
        } else if status == StatusCode::TOO_MANY_REQUESTS {
            let reset_in = headers::reset_in(&answer.headers, SystemTime::now());
            Some(Self::RateLimited(reset_in))
        } else if status.is_server_error() {
            Some(Self::Backoff(OktaApiError::Server {
                status: status.as_u16(),
            }))
        } else {
            None
        }
    }
}

fn org_not_found(url: &Url) -> OktaApiError {
    OktaApiError::OrgNotFound {
        url: url.origin().ascii_serialization(),
    }
}

impl OktaClient {
    /// Reads the private key (I/O), builds the HTTP client. `scopes`: what the enabled features
    /// need (reconciliation: `["okta.logs.read"]`). `org` is the metrics label ("" for the
    /// top-level org, whose series have no `org` label).
    pub fn new(config: &OktaApiConfig, scopes: &[&str], org: &str) -> Result<Self, OktaApiError> {
        config
            .validate()
            .map_err(|err| OktaApiError::Config(format!("{err:#}")))?;
        let org_url = Url::parse(&config.org_url).map_err(invalid_org_url)?;
        let logs_url = org_url.join("api/v1/logs").map_err(invalid_org_url)?;
        let auth = match (
            &config.api_token,
            &config.client_id,
            &config.private_key_file,
        ) {
            (Some(token), _, _) => Auth::Ssws(ssws_header(token)?),
            (None, Some(client_id), Some(path)) => {
                let key = ClientKey::load(path, config.key_id.clone())?;
                Auth::OAuth(Box::new(TokenSource::new(
                    client_id, key, &org_url, scopes,
                )?))
            }
            _ => {
                return Err(OktaApiError::Config(
                    "no credentials: set client_id and private_key_file, or api_token".into(),
                ));
            }
        };
        let http = reqwest::Client::builder()
            .timeout(config.timeout)
            // A redirect means org_url is not the org (a custom domain, the admin console):
            // reported, not followed with the credentials.
            .redirect(reqwest::redirect::Policy::none())
            .user_agent(concat!("factorwatch/", env!("CARGO_PKG_VERSION")))
            .build()
            .map_err(|err| {
                OktaApiError::Transport(format!("cannot build the HTTP client: {err}"))
            })?;
        Ok(Self {
            inner: Arc::new(Inner {
                org_url,
                logs_url,
                auth,
                budgets: Budgets::new(config.rate_limit_share),
                transport: Transport::new(http, org),
            }),
        })
    }

    /// One page of `/api/v1/logs`. Waits out rate limits and retries 429, 5xx, timeouts and
    /// failed connections itself (at most 5 tries, then the last error); a 401 gets one fresh
    /// token. Cancel-safe: dropping the future abandons the call and leaves the client usable.
    pub async fn list_logs(&self, request: &LogsRequest) -> Result<LogPage, OktaApiError> {
        let url = self.logs_url(request)?;
        self.call(&Call::get(Endpoint::Logs, url, LOGS_ADVICE), page)
            .await
    }

    /// Gets an access token now (OAuth), so that a refused app or a scope it is not granted
    /// shows before any call; nothing to check for an API token, whose admin's role decides.
    pub async fn check_credentials(&self) -> Result<(), OktaApiError> {
        let url = self.inner.org_url.clone();
        self.authorization(&Method::GET, &url)
            .await
            .map(|_| ())
            .map_err(Failure::into_error)
    }

    /// True when the client authenticates as an API Services app (scopes apply), false for an
    /// API token (the admin's role applies).
    pub fn uses_oauth(&self) -> bool {
        matches!(self.inner.auth, Auth::OAuth(_))
    }

    /// Runs `call` until `read` takes the answer, at most [`MAX_TRIES`] times: the loop every
    /// call shares (rate limits waited out, server errors and no answer backed off, one fresh
    /// token after a 401). A call that is not [`Call::repeatable`] is not sent again once it
    /// may have reached Okta (no answer, a server error): a second create would make a second
    /// hook.
    async fn call<T>(
        &self,
        call: &Call,
        read: fn(&Url, &Answer) -> Result<T, Failure>,
    ) -> Result<T, OktaApiError> {
        let mut refreshed = false;
        let mut try_number = 0;
        loop {
            try_number += 1;
            let failure = match self.try_call(call, read, &mut refreshed).await {
                Ok(value) => return Ok(value),
                Err(failure) => failure,
            };
            let last = try_number >= MAX_TRIES;
            match failure {
                Failure::Final(error) => return Err(error),
                Failure::Again(error) | Failure::Backoff(error) if last => return Err(error),
                Failure::Backoff(error) if !call.repeatable || call.single_try => {
                    return Err(error);
                }
                Failure::Again(_) => {}
                Failure::Backoff(error) => {
                    let wait = backoff(try_number, SERVER_BACKOFF_BASE);
                    tracing::debug!(%error, try_number, wait_ms = wait.as_millis() as u64, "Okta API call failed; retrying");
                    tokio::time::sleep(wait).await;
                }
                Failure::RateLimited(reset_in) => {
                    let wait =
                        reset_in.unwrap_or_else(|| backoff(try_number, RATE_LIMIT_BACKOFF_BASE));
                    if last {
                        return Err(OktaApiError::RateLimited { reset_in: wait });
                    }
                    self.inner.transport.wait_for_rate_limit(wait).await;
                }
            }
        }
    }

    /// `org_url` + `path` + `segments`, each segment escaped: the URL of every call but the
    /// System Log's.
    fn api_url(&self, path: &str, segments: &[&str]) -> Result<Url, OktaApiError> {
        let mut url = self.inner.org_url.join(path).map_err(invalid_org_url)?;
        url.path_segments_mut()
            .map_err(|()| OktaApiError::Config("org_url cannot have a path".into()))?
            .extend(segments);
        Ok(url)
    }

    /// The URL of `request`, with its query.
    fn logs_url(&self, request: &LogsRequest) -> Result<Url, OktaApiError> {
        let (range, filter, limit) = match request {
            LogsRequest::Next(link) => return self.checked_link(link),
            LogsRequest::Poll {
                since,
                filter,
                limit,
            } => (vec![("since", since)], filter, limit),
            LogsRequest::Window {
                since,
                until,
                filter,
                limit,
            } => (vec![("since", since), ("until", until)], filter, limit),
        };
        let mut url = self.inner.logs_url.clone();
        {
            let mut query = url.query_pairs_mut();
            for (name, value) in range {
                query.append_pair(name, value);
            }
            if let Some(filter) = filter {
                query.append_pair("filter", filter);
            }
            query.append_pair("limit", &limit.to_string());
            query.append_pair("sortOrder", "ASCENDING");
        }
        Ok(url)
    }

    /// `link` as a URL on this org: a link to another origin would take the credentials there.
    fn checked_link(&self, link: &str) -> Result<Url, OktaApiError> {
        let url = Url::parse(link).map_err(|err| {
            OktaApiError::BadRequest(format!("the next link {link:?} is not a URL ({err})"))
        })?;
        if url.origin() != self.inner.org_url.origin() {
            return Err(OktaApiError::BadRequest(format!(
                "the next link {link} is not on org_url {}: was the checkpoint saved for \
                 another org? Start again from a time instead",
                self.inner.org_url.origin().ascii_serialization()
            )));
        }
        Ok(url)
    }

    /// One try: the rate-limit budget, the credentials, the request, the answer.
    async fn try_call<T>(
        &self,
        call: &Call,
        read: fn(&Url, &Answer) -> Result<T, Failure>,
        refreshed: &mut bool,
    ) -> Result<T, Failure> {
        let inner = &self.inner;
        let in_flight = match inner.budgets.of(call.endpoint) {
            Some(budget) => Some(self.take_budget(budget).await),
            None => None,
        };
        let (headers, used) = if call.endpoint.authenticated() {
            self.authorization(&call.method, &call.url).await?
        } else {
            (HeaderMap::new(), None)
        };
        let mut request = inner
            .transport
            .http
            .request(call.method.clone(), call.url.clone())
            .header(ACCEPT, "application/json")
            .headers(headers);
        if let Some(body) = &call.body {
            request = request
                .header(CONTENT_TYPE, call.endpoint.media_type())
                .body(body.clone());
        }
        let answer = inner
            .transport
            .send(call.endpoint, request)
            .await
            .map_err(|no_answer| Failure::no_answer(no_answer, &call.url))?;
        if let Some(in_flight) = in_flight {
            in_flight.answered(
                RateLimitHeaders::read(&answer.headers, SystemTime::now()),
                answer.received,
            );
        }
        if let Some(error) = refusal(call.endpoint, &answer) {
            return Err(Failure::Final(error));
        }
        match answer.status {
            status if status.is_success() => read(&call.url, &answer),
            StatusCode::UNAUTHORIZED => Err(self.unauthorized(&answer, used, refreshed).await),
            StatusCode::FORBIDDEN => Err(Failure::Final(forbidden(
                &answer,
                call.endpoint.scope(&call.method),
            ))),
            StatusCode::NOT_FOUND if call.not_found.is_some() => {
                Err(Failure::Final(OktaApiError::NotFound {
                    what: call.not_found.unwrap_or_default(),
                    said: okta_error(&answer),
                }))
            }
            _ => Err(Failure::unavailable(&answer, &call.url)
                .unwrap_or_else(|| Failure::Final(refused_request(&answer, call.advice)))),
        }
    }

    /// Waits until `budget` lets a request go.
    async fn take_budget<'a>(&self, budget: &'a RateBudget) -> InFlight<'a> {
        loop {
            match budget.take(Instant::now()) {
                Ok(in_flight) => return in_flight,
                Err(wait) => self.inner.transport.wait_for_rate_limit(wait).await,
            }
        }
    }

    /// The headers that authorize `method` on `url`, and the OAuth token they carry.
    async fn authorization(
        &self,
        method: &Method,
        url: &Url,
    ) -> Result<(HeaderMap, Option<AccessToken>), Failure> {
        match &self.inner.auth {
            Auth::Ssws(value) => {
                let mut headers = HeaderMap::new();
                headers.insert(AUTHORIZATION, value.clone());
                Ok((headers, None))
            }
            Auth::OAuth(source) => {
                let (headers, token) = source.authorize(&self.inner.transport, method, url).await?;
                Ok((headers, Some(token)))
            }
        }
    }

    /// A 401: one fresh OAuth token and another try; else the credentials are wrong.
    async fn unauthorized(
        &self,
        answer: &Answer,
        used: Option<AccessToken>,
        refreshed: &mut bool,
    ) -> Failure {
        let said = okta_error(answer);
        let error = OktaApiError::Credentials(match used {
            Some(_) => format!("Okta refused the access token ({said}): {APP_ADVICE}"),
            None => format!(
                "Okta refused the API token ({said}): check api_token (revoked, unused for 30 \
                 days, or its admin deactivated?)"
            ),
        });
        match (&self.inner.auth, used) {
            (Auth::OAuth(source), Some(used)) if !*refreshed => {
                *refreshed = true;
                source.invalidate(&used).await;
                Failure::Again(error)
            }
            _ => Failure::Final(error),
        }
    }
}

/// `org_url` did not parse (`validate` makes that impossible).
fn invalid_org_url(err: impl std::fmt::Display) -> OktaApiError {
    OktaApiError::Config(format!("org_url: {err}"))
}

/// `Authorization: SSWS <token>`, marked sensitive.
fn ssws_header(token: &Secret) -> Result<HeaderValue, OktaApiError> {
    let mut value = HeaderValue::from_str(&format!("SSWS {}", token.expose())).map_err(|_| {
        OktaApiError::Config("api_token holds characters an HTTP header cannot carry".into())
    })?;
    value.set_sensitive(true);
    Ok(value)
}

/// A 2xx answer of `/api/v1/logs`: a JSON array of events and the `next` link.
fn page(url: &Url, answer: &Answer) -> Result<LogPage, Failure> {
    let events: Vec<Box<RawValue>> = serde_json::from_slice(&answer.body).map_err(|err| {
        Failure::Final(OktaApiError::BadResponse(format!(
            "the System Log answer is not a JSON array of events ({err})"
        )))
    })?;
    Ok(LogPage {
        events,
        next: next_link(&answer.headers, url),
        bytes: answer.body.len(),
    })
}

/// A 4xx that an endpoint explains better than [`refused_request`] can: a lifecycle change the
/// user's status does not allow, a SET Okta refused (its own error body).
fn refusal(endpoint: Endpoint, answer: &Answer) -> Option<OktaApiError> {
    match (endpoint, answer.status) {
        (Endpoint::UserLifecycle, StatusCode::BAD_REQUEST) => {
            Some(user_actions::status_refused(answer))
        }
        (Endpoint::SecurityEvents, StatusCode::BAD_REQUEST) => Some(ssf::set_refused(answer)),
        _ => None,
    }
}

/// Another 4xx: the request itself is wrong; `advice` says what to check.
fn refused_request(answer: &Answer, advice: &str) -> OktaApiError {
    OktaApiError::BadRequest(format!(
        "Okta refused the request ({}): {advice}",
        okta_error(answer)
    ))
}

/// A 403: the scope the token lacks (`WWW-Authenticate: ... error="insufficient_scope",
/// scope="..."`, else `needed`), or a role too weak.
fn forbidden(answer: &Answer, needed: &str) -> OktaApiError {
    let challenge = answer
        .headers
        .get(WWW_AUTHENTICATE)
        .and_then(|value| value.to_str().ok())
        .unwrap_or_default();
    if auth_param(challenge, "error") == Some("insufficient_scope") {
        let scope = auth_param(challenge, "scope").unwrap_or(needed);
        return OktaApiError::MissingScope {
            scope: scope.to_owned(),
        };
    }
    OktaApiError::Forbidden(okta_error(answer))
}

/// Okta's error body (`errorCode`, `errorSummary`, `errorCauses`) in one line, or the status
/// and the start of whatever else came.
fn okta_error(answer: &Answer) -> String {
    #[derive(Deserialize)]
    #[serde(rename_all = "camelCase")]
    struct OktaError {
        error_code: String,
        error_summary: String,
        #[serde(default)]
        error_causes: Vec<Cause>,
    }
    #[derive(Deserialize)]
    #[serde(rename_all = "camelCase")]
    struct Cause {
        error_summary: String,
    }
    let status = answer.status.as_u16();
    match serde_json::from_slice::<OktaError>(&answer.body) {
        Ok(error) => {
            let causes: Vec<&str> = error
                .error_causes
                .iter()
                .map(|c| c.error_summary.as_str())
                .collect();
            let causes = if causes.is_empty() {
                String::new()
            } else {
                format!(" ({})", causes.join("; "))
            };
            format!(
                "{status} {}: {}{causes}",
                error.error_code, error.error_summary
            )
        }
        Err(_) => {
            let body = String::from_utf8_lossy(&answer.body);
            format!("{status}: {}", body.chars().take(200).collect::<String>())
        }
    }
}

#[cfg(test)]
mod tests;
