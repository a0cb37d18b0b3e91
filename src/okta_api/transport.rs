//! One HTTP exchange with Okta, measured: every request is counted by endpoint and outcome,
//! timed, and read to the end of its body within the client's timeout. Also the waits for the
//! rate limit, counted in seconds.

use std::error::Error as _;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use reqwest::header::HeaderMap;
use reqwest::{Method, RequestBuilder, StatusCode};
use tokio::time::Instant;

use crate::telemetry::metrics::{
    OKTA_API_RATE_LIMIT_WAIT_SECONDS_TOTAL, OKTA_API_REQUEST_DURATION_SECONDS,
    OKTA_API_REQUESTS_TOTAL,
};
use crate::telemetry::org_labels;

/// Which Okta endpoint a request went to: the `endpoint` label.
#[derive(Debug, Clone, Copy)]
pub(super) enum Endpoint {
    /// `POST /oauth2/v1/token`.
    Token,
    /// `GET /api/v1/logs`.
    Logs,
    /// `/api/v1/eventHooks` and its lifecycle operations (one bucket for the family).
    EventHooks,
    /// `/api/v1/users/{id}` and its factors and groups (`okta.users.read`).
    Users,
    /// `/api/v1/users/{id}/roles` (`okta.roles.read`).
    Roles,
    /// `POST /api/v1/users/{id}/lifecycle/suspend` and `unsuspend` (`okta.users.manage`).
    UserLifecycle,
    /// `DELETE /api/v1/users/{userId}/sessions` (`okta.users.manage`).
    UserSessions,
    /// `/api/v1/users/{userId}/risk`: GET (`okta.userRisk.read`), PUT (`okta.userRisk.manage`).
    UserRisk,
    /// `/api/v1/security-events-providers`: GET (`.read`), POST (`.manage`).
    SecurityEventsProviders,
    /// `POST /security/api/v1/security-events`: a transmitter's SET push, without Okta
    /// credentials (the spec's `security: []`; the SET's signature authenticates it).
    SecurityEvents,
}

impl Endpoint {
    fn label(self) -> &'static str {
        match self {
            Self::Token => "token",
            Self::Logs => "logs",
            Self::EventHooks => "event_hooks",
            Self::Users => "users",
            Self::Roles => "roles",
            Self::UserLifecycle => "user_lifecycle",
            Self::UserSessions => "user_sessions",
            Self::UserRisk => "user_risk",
            Self::SecurityEventsProviders => "security_events_providers",
            Self::SecurityEvents => "security_events",
        }
    }

    /// The OAuth scope a `method` call to it needs (named when Okta's 403 does not say).
    pub(super) fn scope(self, method: &Method) -> &'static str {
        match self {
            Self::Token => "",
            Self::Logs => super::scopes::LOGS_READ,
            Self::EventHooks if method == Method::GET => super::scopes::EVENT_HOOKS_READ,
            Self::EventHooks => super::scopes::EVENT_HOOKS_MANAGE,
            Self::Users => super::scopes::USERS_READ,
            Self::Roles => super::scopes::ROLES_READ,
            Self::UserLifecycle | Self::UserSessions => super::scopes::USERS_MANAGE,
            Self::UserRisk if method == Method::GET => super::scopes::USER_RISK_READ,
            Self::UserRisk => super::scopes::USER_RISK_MANAGE,
            Self::SecurityEventsProviders if method == Method::GET => {
                super::scopes::SECURITY_EVENTS_PROVIDERS_READ
            }
            Self::SecurityEventsProviders => super::scopes::SECURITY_EVENTS_PROVIDERS_MANAGE,
            Self::SecurityEvents => "",
        }
    }

    /// Whether requests carry the client's credentials: all but the SET push, which Okta
    /// authenticates by the SET's signature alone (sending a token there would only spread it).
    pub(super) fn authenticated(self) -> bool {
        !matches!(self, Self::SecurityEvents)
    }

    /// The `Content-Type` of a request body: JSON, or a compact JWT for the SET push (RFC 8417).
    pub(super) fn media_type(self) -> &'static str {
        match self {
            Self::SecurityEvents => "application/secevent+jwt",
            _ => "application/json",
        }
    }
}

/// One request to the API, as often as the retry loop sends it.
#[derive(Debug)]
pub(super) struct Call {
    pub endpoint: Endpoint,
    pub method: Method,
    pub url: reqwest::Url,
    /// A body, of the endpoint's [`Endpoint::media_type`].
    pub body: Option<Vec<u8>>,
    /// Whether sending it twice does no harm (not a create).
    pub repeatable: bool,
    /// What to check when Okta refuses it with a 4xx.
    pub advice: &'static str,
    /// What a 404 means for a call on one resource (`user`): that resource is not there, rather
    /// than `org_url` not being an Okta org.
    pub not_found: Option<&'static str>,
    /// Not tried again after a server error or no answer: its caller cannot wait for a backoff
    /// (an alert's context). Rate limits and a refused token are still handled.
    pub single_try: bool,
}

impl Call {
    /// A `GET`: repeatable, no body.
    pub(super) fn get(endpoint: Endpoint, url: reqwest::Url, advice: &'static str) -> Self {
        Self::new(endpoint, Method::GET, url, None, advice)
    }

    /// A `method` call with an optional `body`, repeatable and retried (429 waited out, server
    /// errors backed off): set [`Call::repeatable`] to false for a create.
    pub(super) fn new(
        endpoint: Endpoint,
        method: Method,
        url: reqwest::Url,
        body: Option<Vec<u8>>,
        advice: &'static str,
    ) -> Self {
        Self {
            endpoint,
            method,
            url,
            body,
            repeatable: true,
            advice,
            not_found: None,
            single_try: false,
        }
    }
}

/// An answer, body read.
pub(super) struct Answer {
    pub status: StatusCode,
    pub headers: HeaderMap,
    pub body: Vec<u8>,
    /// When the answer's headers were in (for the rate-limit window).
    pub received: Instant,
}

/// Why no answer came.
#[derive(Debug)]
pub(super) enum NoAnswer {
    /// Not within the timeout.
    Timeout,
    /// The org's host name does not resolve.
    NoSuchHost,
    /// Anything else: refused, reset, TLS. The text has no secret (requests carry them in
    /// headers and bodies, never in the URL).
    Failed(String),
}

/// The HTTP client and the metric labels of one org.
#[derive(Debug)]
pub(super) struct Transport {
    pub http: reqwest::Client,
    /// The `org` label (none for the top-level org).
    org: Option<String>,
    /// Milliseconds waited for rate limits, of which whole seconds went to the counter.
    waited_ms: AtomicU64,
}

impl Transport {
    /// `org` is the `[[okta.orgs]]` name, or "" for the top-level org.
    pub(super) fn new(http: reqwest::Client, org: &str) -> Self {
        Self {
            http,
            org: (!org.is_empty()).then(|| org.to_owned()),
            waited_ms: AtomicU64::new(0),
        }
    }

    /// Sends `request` and reads the whole answer, recording the outcome and the duration.
    pub(super) async fn send(
        &self,
        endpoint: Endpoint,
        request: RequestBuilder,
    ) -> Result<Answer, NoAnswer> {
        let started = Instant::now();
        let result = exchange(request).await;
        let outcome = match &result {
            Ok(answer) if answer.status.is_success() => "ok",
            Ok(answer) if answer.status == StatusCode::TOO_MANY_REQUESTS => "rate_limited",
            Ok(answer) if answer.status.is_server_error() => "server_error",
            Ok(_) => "client_error",
            Err(NoAnswer::Timeout) => "timeout",
            Err(_) => "transport",
        };
        let labels = org_labels(
            self.org.as_deref(),
            &[("endpoint", endpoint.label()), ("outcome", outcome)],
        );
        metrics::counter!(OKTA_API_REQUESTS_TOTAL, labels).increment(1);
        metrics::histogram!(OKTA_API_REQUEST_DURATION_SECONDS, "endpoint" => endpoint.label())
            .record(started.elapsed().as_secs_f64());
        result
    }

    /// Sleeps `wait` for a rate limit, counted in `okta_api_rate_limit_wait_seconds_total`.
    pub(super) async fn wait_for_rate_limit(&self, wait: Duration) {
        if wait.is_zero() {
            return;
        }
        tracing::debug!(
            wait_ms = wait.as_millis() as u64,
            "waiting for Okta's rate-limit window"
        );
        let waited = wait.as_millis() as u64;
        let before = self.waited_ms.fetch_add(waited, Ordering::Relaxed);
        let whole_seconds = (before + waited) / 1000 - before / 1000;
        if whole_seconds > 0 {
            let labels = org_labels(self.org.as_deref(), &[]);
            metrics::counter!(OKTA_API_RATE_LIMIT_WAIT_SECONDS_TOTAL, labels)
                .increment(whole_seconds);
        }
        tokio::time::sleep(wait).await;
    }
}

async fn exchange(request: RequestBuilder) -> Result<Answer, NoAnswer> {
    let response = request.send().await.map_err(no_answer)?;
    let received = Instant::now();
    let status = response.status();
    let headers = response.headers().clone();
    let body = response.bytes().await.map_err(no_answer)?.into();
    Ok(Answer {
        status,
        headers,
        body,
        received,
    })
}

fn no_answer(err: reqwest::Error) -> NoAnswer {
    if err.is_timeout() {
        return NoAnswer::Timeout;
    }
    // hyper-util's resolver reports "dns error"; the chain is the only place it shows.
    let mut chain = Vec::new();
    let mut source = err.source();
    while let Some(cause) = source {
        chain.push(cause.to_string());
        source = cause.source();
    }
    if err.is_connect() && chain.iter().any(|cause| cause.contains("dns error")) {
        return NoAnswer::NoSuchHost;
    }
    let detail = chain.last().cloned().unwrap_or_else(|| err.to_string());
    NoAnswer::Failed(detail)
}
