//! The HTTP server: the Okta hook endpoint and the operational endpoints.
//!
//! | route | what |
//! |---|---|
//! | `GET server.hook_path` | Okta's verification challenge ([`hook::verify`]) |
//! | `POST server.hook_path` | event batches ([`hook::receive`]) |
//! | `GET`, `POST` each `okta.orgs.hook_path` | the same, for that org only (its secrets, its spool) |
//! | each hook path with a trailing slash added (or removed) | the same as the path itself |
//! | `GET /healthz` | the process is up |
//! | `GET /readyz` | `{"ready": bool}`, 200 or 503: the spool takes writes and its backlog is under the limit, and not shutting down |
//! | `GET ssf.jwks_path`, `GET /.well-known/ssf-configuration` | with `[ssf]`: the public keys of the Security Event Tokens and the transmitter metadata ([`published`]) |
//! | anything else | 404; to a caller presenting a hook's secret, the 404 names that hook's path |
//!
//! The hook listener faces the internet, so it says no more than a load balancer needs. The
//! operational listener (`server.ops_listen`, [`ops`]) serves `/metrics` and the detailed
//! `/readyz` (backlog, sinks and their last errors, cluster backend, System Log poller).
//!
//! Before the router: [`serve`] (connection limit, header timeout, TLS from [`tls`], HTTP/2 and
//! HTTP/1.1). On every hook path: [`guard`] (the source from [`source`], allow-list, rate limit).
//!
//! Each org's hook path has its own [`HookState`]: its secrets are checked on its path only, so
//! a secret of one org never opens another's, and its batches go to its own spool.

pub mod config;
pub mod error;
pub mod guard;
pub mod hook;
pub mod ops;
pub mod serve;
pub mod source;
pub mod tls;

pub use config::{RateLimitConfig, ServerConfig, TlsConfig, check_hook_path, parse_listen_addr};

use std::collections::HashSet;
use std::sync::Arc;
use std::sync::atomic::AtomicBool;

use axum::Router;
use axum::extract::{MatchedPath, Request};
use axum::http::{HeaderMap, HeaderName, StatusCode};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use metrics_exporter_prometheus::PrometheusHandle;
use serde_json::json;
use tokio::sync::Notify;
use tower_http::catch_panic::CatchPanicLayer;
use tower_http::timeout::TimeoutLayer;
use tower_http::trace::TraceLayer;

use crate::secret::HookSecrets;
use crate::spool::Spool;
use crate::telemetry::metrics::HTTP_REQUESTS_TOTAL;

/// What one org's hook handlers share.
#[derive(Clone)]
pub struct HookState {
    /// The `[[okta.orgs]]` name, in log lines and metric labels; `None`: the top-level org.
    pub org: Option<Arc<str>>,
    /// The path the hook is served on.
    pub path: String,
    /// The org's durable spool batches go to.
    pub spool: Arc<Spool>,
    /// The org's accepted secrets (digests only), reloadable, with their last uses.
    pub secrets: Arc<HookSecrets>,
    /// The org's "Authentication field".
    pub auth_header: HeaderName,
    /// Largest accepted body.
    pub max_body_bytes: usize,
    /// Time allowed to read and store one delivery.
    pub request_timeout: std::time::Duration,
    /// The org's detector, woken after each stored batch.
    pub detector: Arc<Notify>,
}

/// One org as `/readyz` and `/metrics` report it.
#[derive(Clone)]
pub struct OrgStatus {
    /// The `[[okta.orgs]]` name; `None`: the top-level org.
    pub org: Option<Arc<str>>,
    /// The org's spool.
    pub spool: Arc<Spool>,
    /// Each of the org's sinks' last delivery outcome.
    pub sink_health: crate::forward::SinkHealth,
    /// In cluster mode, how the shared backend is doing (reported, not a reason to be unready:
    /// intake and detection go on without it).
    pub cluster: Option<Arc<crate::cluster::BackendStatus>>,
    /// When the org reconciles with its System Log, how its poller is doing (reported, not a
    /// reason to be unready: the hook path works without it).
    pub reconcile: Option<Arc<crate::reconcile::PollerStatus>>,
}

/// What the operational endpoints share.
#[derive(Clone)]
pub struct AppState {
    /// Every org served, the top-level org first when it is served.
    pub orgs: Arc<[OrgStatus]>,
    /// Renders `/metrics`.
    pub metrics: PrometheusHandle,
    /// Set when shutdown began: readiness turns false so the load balancer drains this replica.
    pub shutting_down: Arc<AtomicBool>,
}

/// Builds the hook listener's router: each of `hooks` on its path with `guard` in front, and
/// what a load balancer needs (`/healthz`, a bare `/readyz`). The rest is on [`ops::router`].
pub fn router(
    state: AppState,
    hooks: Vec<HookState>,
    request_timeout: std::time::Duration,
    guard: guard::Guard,
) -> Router {
    let operational = Router::new()
        .route("/healthz", get(ops::healthz))
        .route("/readyz", get(ops::bare_readyz))
        .with_state(state);
    let paths: HashSet<String> = hooks.iter().map(|hook| hook.path.clone()).collect();
    let known: Arc<[HookState]> = hooks.clone().into();
    hooks
        .into_iter()
        .fold(operational, |app, hook| {
            app.merge(hook_route(hook, &paths, guard.clone()))
        })
        .fallback(move |headers: HeaderMap| not_found(known.clone(), headers))
        .layer(middleware::from_fn(count_requests))
        // A backstop for every route; the hook handler times out first, with a logged reason.
        .layer(TimeoutLayer::with_status_code(
            StatusCode::SERVICE_UNAVAILABLE,
            request_timeout + std::time::Duration::from_secs(1),
        ))
        // A bug must cost one request a 500, not the connection and its neighbours.
        .layer(CatchPanicLayer::new())
        // Request spans at debug level; refusals are already logged once, with their reason.
        .layer(TraceLayer::new_for_http().on_failure(()))
}

/// The JSON documents served as they are on the hook listener (path, document): with `[ssf]`,
/// the JWKS Okta's SSF receiver verifies factorwatch's Security Event Tokens with, and the
/// transmitter metadata. Public by design: they hold public keys only.
pub fn published(documents: Vec<(String, serde_json::Value)>) -> Router {
    documents
        .into_iter()
        .fold(Router::new(), |router, (path, document)| {
            let document = Arc::new(document);
            router.route(
                &path,
                get(move || {
                    let document = document.clone();
                    async move { axum::Json(document.as_ref().clone()) }
                }),
            )
        })
}

/// One org's hook path: the verification GET and the delivery POST, behind `guard`. The path
/// with a trailing slash added (or removed) is served too, as a URL pasted into Okta often has
/// one, unless it is another hook's path (one of `paths`).
fn hook_route(hook: HookState, paths: &HashSet<String>, guard: guard::Guard) -> Router {
    let path = hook.path.clone();
    let methods = get(hook::verify)
        .post(hook::receive)
        .route_layer(middleware::from_fn_with_state(guard, guard::guard));
    let router = Router::new().route(&path, methods.clone());
    match slash_twin(&path).filter(|twin| !paths.contains(twin)) {
        Some(twin) => router.route(&twin, methods),
        None => router,
    }
    .with_state(hook)
}

/// `path` with its trailing slash removed, or with one added; `None` for `/`.
fn slash_twin(path: &str) -> Option<String> {
    match path.strip_suffix('/') {
        Some("") => None,
        Some(trimmed) => Some(trimmed.to_owned()),
        None => Some(format!("{path}/")),
    }
}

/// The answer to an unknown path. A caller presenting a hook's secret (`factorwatch simulate`, an
/// admin with curl) has the wrong path, not the wrong secret: the answer names the paths its
/// secret opens in `hook_paths`. Anyone else learns nothing about the hooks.
async fn not_found(hooks: Arc<[HookState]>, headers: HeaderMap) -> Response {
    let opened: Vec<&str> = hooks
        .iter()
        .filter(|hook| {
            hook::presented_secret(hook, &headers)
                .is_ok_and(|presented| hook.secrets.accepts(presented.as_bytes()))
        })
        .map(|hook| hook.path.as_str())
        .collect();
    let mut body = json!({"error": "not_found", "message": "no such endpoint"});
    if !opened.is_empty() {
        body["message"] = format!(
            "no such endpoint; this secret's hook is served at {}",
            opened.join(", ")
        )
        .into();
        body["hook_paths"] = opened.into();
    }
    (StatusCode::NOT_FOUND, axum::Json(body)).into_response()
}

/// Counts every answer by status and route.
async fn count_requests(request: Request, next: Next) -> Response {
    let route = request
        .extensions()
        .get::<MatchedPath>()
        .map_or_else(|| "unmatched".to_owned(), |p| p.as_str().to_owned());
    let response = next.run(request).await;
    metrics::counter!(
        HTTP_REQUESTS_TOTAL,
        "route" => route,
        "status" => response.status().as_u16().to_string()
    )
    .increment(1);
    response
}
