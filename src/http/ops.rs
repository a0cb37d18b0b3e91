//! The operational listener (`server.ops_listen`): what Prometheus and an operator read, kept
//! off the hook listener, which faces the internet.
//!
//! | route | what |
//! |---|---|
//! | `GET /healthz` | the process is up |
//! | `GET /readyz` | readiness with its reason, each org's backlog and sinks (pending, dead letters, last error), the cluster backend, the System Log poller and the hook's silence |
//! | `GET /metrics` | Prometheus text format |
//!
//! The hook listener serves `/healthz` and a bare `/readyz` from here too ([`bare_readyz`]).

use std::sync::atomic::Ordering;

use axum::Router;
use axum::extract::State;
use axum::http::StatusCode;
use axum::middleware;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use serde_json::json;

use super::{AppState, OrgStatus, count_requests};

/// The operational listener's router.
pub fn router(state: AppState) -> Router {
    Router::new()
        .route("/healthz", get(healthz))
        .route("/readyz", get(detailed_readyz))
        .route("/metrics", get(render_metrics))
        .fallback(not_found)
        .with_state(state)
        .layer(middleware::from_fn(count_requests))
}

/// Names what this listener serves: whoever reaches it is an operator.
async fn not_found() -> Response {
    let body = json!({
        "error": "not_found",
        "message": "no such endpoint; the operational listener serves /healthz, /readyz and /metrics (the hook is on server.listen)",
    });
    (StatusCode::NOT_FOUND, axum::Json(body)).into_response()
}

pub(super) async fn healthz() -> impl IntoResponse {
    axum::Json(json!({"status": "ok"}))
}

/// One org's readiness view: its refusal (if its spool refuses batches), and its backlog and
/// sinks as JSON.
fn org_readiness(org: &OrgStatus) -> (Option<String>, serde_json::Value) {
    let backlog = org.spool.backlog();
    // A failing sink does not make this replica unready (its alerts wait in the outbox); only a
    // backlog at its limit does. The per-sink view says what is failing.
    let health = org.sink_health.snapshot();
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
    let refusal = backlog.refusal();
    let mut view = json!({
        "ready": refusal.is_none(),
        "reason": refusal,
        "backlog_bytes": backlog.bytes,
        "backlog_limit_bytes": backlog.limit_bytes,
        "pending_batches": backlog.batches,
        "sinks": sinks,
    });
    if let Some(poller) = &org.reconcile {
        view["reconcile"] = json!(poller.view());
        // The hook's silence is reported, never a reason to be unready: it is not this
        // replica's fault, and draining it would not bring the hook back.
        view["hook"] = json!(poller.hook_view());
    }
    (refusal, view)
}

/// The detailed readiness: 200 while this replica should receive traffic, 503 with the reason
/// otherwise. The top-level `sinks` are the top-level org's; `backlog_bytes` and
/// `pending_batches` add up every org's; `orgs` has the view of each `[[okta.orgs]]` org.
async fn detailed_readyz(State(state): State<AppState>) -> Response {
    let (ready, body) = readiness(&state);
    (ready_status(ready), axum::Json(body)).into_response()
}

/// The hook listener's readiness, for a load balancer: the same verdict as the detailed one,
/// `{"ready": bool}` and nothing else, as anyone on the internet can ask it. It builds no view:
/// only each org's backlog is read.
pub(super) async fn bare_readyz(State(state): State<AppState>) -> Response {
    let refusals = state
        .orgs
        .iter()
        .map(|org| (org, org.spool.backlog().refusal()));
    let ready = replica_refusal(&state, refusals).is_none();
    (ready_status(ready), axum::Json(json!({ "ready": ready }))).into_response()
}

/// 200 when ready, 503 when not.
fn ready_status(ready: bool) -> StatusCode {
    match ready {
        true => StatusCode::OK,
        false => StatusCode::SERVICE_UNAVAILABLE,
    }
}

/// Why this replica should not receive traffic, given each org's own refusal: it is shutting
/// down, or an org's spool refuses batches (the first such org, named). One org's full spool
/// makes the replica unready: a load balancer then sends that org's batches to another replica.
fn replica_refusal<'a>(
    state: &AppState,
    mut org_refusals: impl Iterator<Item = (&'a OrgStatus, Option<String>)>,
) -> Option<String> {
    if state.shutting_down.load(Ordering::Relaxed) {
        return Some("shutting down".to_owned());
    }
    org_refusals.find_map(|(org, refusal)| {
        refusal.map(|reason| match &org.org {
            None => reason,
            Some(name) => format!("org {name}: {reason}"),
        })
    })
}

/// Whether this replica should receive traffic, and the detailed view, from one look at each
/// org.
fn readiness(state: &AppState) -> (bool, serde_json::Value) {
    let looks: Vec<_> = state
        .orgs
        .iter()
        .map(|org| (org, org_readiness(org)))
        .collect();
    let refusals = looks
        .iter()
        .map(|(org, (refusal, _))| (*org, refusal.clone()));
    let refusal = replica_refusal(state, refusals);
    let (mut bytes, mut batches, mut limit) = (0, 0, 0);
    let mut top_level_sinks = json!({});
    let mut top_level_reconcile = None;
    let mut top_level_hook = None;
    let mut orgs = serde_json::Map::new();
    for (org, (_, view)) in looks {
        bytes += view["backlog_bytes"].as_u64().unwrap_or_default();
        batches += view["pending_batches"].as_u64().unwrap_or_default();
        limit = view["backlog_limit_bytes"].as_u64().unwrap_or_default();
        match &org.org {
            None => {
                top_level_sinks = view["sinks"].clone();
                top_level_reconcile = view.get("reconcile").cloned();
                top_level_hook = view.get("hook").cloned();
            }
            Some(name) => {
                orgs.insert(name.to_string(), view);
            }
        }
    }
    let mut body = json!({
        "ready": refusal.is_none(),
        "reason": refusal,
        "backlog_bytes": bytes,
        "backlog_limit_bytes": limit,
        "pending_batches": batches,
        "sinks": top_level_sinks,
        "cluster": cluster_view(&state.orgs),
    });
    if let Some(reconcile) = top_level_reconcile {
        body["reconcile"] = reconcile;
    }
    if let Some(hook) = top_level_hook {
        body["hook"] = hook;
    }
    if !orgs.is_empty() {
        body["orgs"] = orgs.into();
    }
    (refusal.is_none(), body)
}

/// The cluster backend as `/readyz` reports it: down when any org's last call failed.
fn cluster_view(orgs: &[OrgStatus]) -> Option<serde_json::Value> {
    let statuses: Vec<_> = orgs.iter().filter_map(|org| org.cluster.as_ref()).collect();
    if statuses.is_empty() {
        return None;
    }
    Some(match statuses.iter().find_map(|status| status.problem()) {
        None => json!({"backend": "up"}),
        Some(error) => json!({
            "backend": "down",
            "error": error,
            "effect": "until the backend answers, de-duplication uses this replica's own window and correlation waits (its inputs stay in the spool)",
        }),
    })
}

async fn render_metrics(State(state): State<AppState>) -> impl IntoResponse {
    for org in state.orgs.iter() {
        org.spool.record_gauges(org.org.as_deref());
    }
    (
        [(
            axum::http::header::CONTENT_TYPE,
            "text/plain; version=0.0.4",
        )],
        state.metrics.render(),
    )
}
