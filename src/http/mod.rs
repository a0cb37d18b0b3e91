//! The HTTP server: the Okta hook endpoint and the operational endpoints.
//!
//! | route | what |
//! |---|---|
//! | `GET server.hook_path` | Okta's verification challenge ([`hook::verify`]) |
//! | `POST server.hook_path` | event batches ([`hook::receive`]) |
//! | `GET /healthz` | the process is up |
//! | `GET /readyz` | the spool takes writes and its backlog is under the limit, and not shutting down |
//! | `GET /metrics` | Prometheus text format |
//!
//! Before the router: [`serve`] (connection limit, header timeout, TLS from [`tls`], HTTP/2 and
//! HTTP/1.1). On the hook path only: [`guard`] (the source from [`source`], allow-list, rate limit).

pub mod error;
pub mod guard;
pub mod hook;
pub mod serve;
pub mod source;
pub mod tls;

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use axum::Router;
use axum::extract::{MatchedPath, Request, State};
use axum::http::{HeaderName, StatusCode};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use metrics_exporter_prometheus::PrometheusHandle;
use serde_json::json;
use tokio::sync::Notify;
use tower_http::catch_panic::CatchPanicLayer;
use tower_http::timeout::TimeoutLayer;
use tower_http::trace::TraceLayer;

use crate::secret::SecretSet;
use crate::spool::Spool;

/// What every handler shares.
#[derive(Clone)]
pub struct AppState {
    /// The durable spool batches go to.
    pub spool: Arc<Spool>,
    /// Accepted secrets (digests only).
    pub secrets: Arc<SecretSet>,
    /// Okta's "Authentication field".
    pub auth_header: HeaderName,
    /// Largest accepted body.
    pub max_body_bytes: usize,
    /// Time allowed to read and store one delivery.
    pub request_timeout: std::time::Duration,
    /// Woken after each stored batch.
    pub detector: Arc<Notify>,
    /// Renders `/metrics`.
    pub metrics: PrometheusHandle,
    /// Each sink's last delivery outcome.
    pub sink_health: crate::forward::SinkHealth,
    /// Set when shutdown began: readiness turns false so the load balancer drains this replica.
    pub shutting_down: Arc<AtomicBool>,
    /// In cluster mode, how the shared backend is doing (reported, not a reason to be unready:
    /// intake and detection go on without it).
    pub cluster: Option<Arc<crate::cluster::BackendStatus>>,
}

/// Builds the router for `hook_path`, with `guard` in front of the hook.
pub fn router(
    state: AppState,
    hook_path: &str,
    request_timeout: std::time::Duration,
    guard: guard::Guard,
) -> Router {
    let hook = get(hook::verify)
        .post(hook::receive)
        .route_layer(middleware::from_fn_with_state(guard, guard::guard));
    Router::new()
        .route(hook_path, hook)
        .route("/healthz", get(healthz))
        .route("/readyz", get(readyz))
        .route("/metrics", get(render_metrics))
        .fallback(not_found)
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
        .with_state(state)
}

async fn healthz() -> impl IntoResponse {
    axum::Json(json!({"status": "ok"}))
}

/// 200 while this replica should receive traffic, 503 with the reason otherwise.
async fn readyz(State(state): State<AppState>) -> Response {
    let backlog = state.spool.backlog();
    let refusal = if state.shutting_down.load(Ordering::Relaxed) {
        Some("shutting down".to_owned())
    } else {
        backlog.refusal()
    };
    // A failing sink does not make this replica unready (its alerts wait in the outbox); only a
    // backlog at its limit does. The per-sink view says what is failing.
    let health = state.sink_health.snapshot();
    let names: std::collections::BTreeSet<&String> =
        backlog.sinks.keys().chain(health.keys()).collect();
    let sinks: serde_json::Map<String, serde_json::Value> = names
        .into_iter()
        .map(|name| {
            let counts = backlog.sinks.get(name).copied().unwrap_or_default();
            let status = health.get(name).cloned().unwrap_or_default();
            let view = json!({
                "pending": counts.pending,
                "dead_letters": counts.dead,
                "failing": status.failing,
                "last_error": status.last_error,
                "last_error_at": status.last_error_at,
            });
            (name.clone(), view)
        })
        .collect();
    let body = json!({
        "ready": refusal.is_none(),
        "reason": refusal,
        "backlog_bytes": backlog.bytes,
        "backlog_limit_bytes": backlog.limit_bytes,
        "pending_batches": backlog.batches,
        "sinks": sinks,
        "cluster": state.cluster.as_ref().map(|status| match status.problem() {
            None => json!({"backend": "up"}),
            Some(error) => json!({
                "backend": "down",
                "error": error,
                "effect": "until the backend answers, de-duplication uses this replica's own window and correlation waits (its inputs stay in the spool)",
            }),
        }),
    });
    let status = if refusal.is_none() {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    (status, axum::Json(body)).into_response()
}

async fn render_metrics(State(state): State<AppState>) -> impl IntoResponse {
    crate::telemetry::record_backlog(&state.spool.backlog());
    (
        [(
            axum::http::header::CONTENT_TYPE,
            "text/plain; version=0.0.4",
        )],
        state.metrics.render(),
    )
}

async fn not_found() -> impl IntoResponse {
    (
        StatusCode::NOT_FOUND,
        axum::Json(json!({"error": "not_found", "message": "no such endpoint"})),
    )
}

/// Counts every answer by status and route.
async fn count_requests(request: Request, next: Next) -> Response {
    let route = request
        .extensions()
        .get::<MatchedPath>()
        .map_or_else(|| "unmatched".to_owned(), |p| p.as_str().to_owned());
    let response = next.run(request).await;
    metrics::counter!(
        "factorwatch_http_requests_total",
        "route" => route,
        "status" => response.status().as_u16().to_string()
    )
    .increment(1);
    response
}
