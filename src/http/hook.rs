//! The hook endpoint: Okta's one-time verification GET and its event-batch POSTs.
//!
//! A POST is answered only after the batch is durably in the spool, and never waits for detection
//! or delivery: Okta gives a receiver 3 seconds and retries at most once.

use std::net::{IpAddr, SocketAddr};
use std::time::Instant;

use axum::body::Body;
use axum::extract::{ConnectInfo, Extension, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use http_body_util::{BodyExt, LengthLimitError, Limited};

use super::HookState;
use super::error::ApiError;
use super::source::ClientSource;
use crate::clock::now_ms;
use crate::okta::EnvelopeCheck;
use crate::secret::Use;
use crate::spool::SpoolError;
use crate::telemetry::metrics::{
    ACK_LATENCY_SECONDS, EVENTS_RECEIVED_TOTAL, OKTA_SECRET_LAST_USED_TIMESTAMP_SECONDS,
};

/// The header Okta's verification GET carries.
pub const CHALLENGE_HEADER: &str = "x-okta-verification-challenge";

/// `GET hook_path`: echoes the challenge as `{"verification": ...}`.
pub async fn verify(
    State(state): State<HookState>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    Extension(ClientSource(source)): Extension<ClientSource>,
    headers: HeaderMap,
) -> Response {
    let result =
        authenticate(&state, &headers, Use::Verification).and_then(|()| challenge(&headers));
    match result {
        Ok(value) => {
            tracing::info!(%peer, %source, org = state.org.as_deref(), "answered Okta's verification challenge");
            let body = serde_json::json!({ "verification": value }).to_string();
            ([(header::CONTENT_TYPE, "application/json")], body).into_response()
        }
        Err(err) => refuse(err, &state, peer, source, "verify"),
    }
}

/// `POST hook_path`: authenticates, validates and durably stores a batch, then answers 204.
pub async fn receive(
    State(state): State<HookState>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    Extension(ClientSource(source)): Extension<ClientSource>,
    headers: HeaderMap,
    body: Body,
) -> Response {
    let started = Instant::now();
    let outcome = tokio::time::timeout(state.request_timeout, store_batch(&state, &headers, body))
        .await
        .unwrap_or_else(|_| {
            Err(ApiError::Unavailable(format!(
                "not read and stored within server.request_timeout ({:?})",
                state.request_timeout
            )))
        });
    match outcome {
        Ok(events) => {
            let labels = crate::telemetry::org_labels(state.org.as_deref(), &[]);
            metrics::counter!(EVENTS_RECEIVED_TOTAL, labels).increment(events as u64);
            metrics::histogram!(ACK_LATENCY_SECONDS).record(started.elapsed().as_secs_f64());
            tracing::debug!(%peer, %source, org = state.org.as_deref(), events, "batch stored");
            StatusCode::NO_CONTENT.into_response()
        }
        Err(err) => refuse(err, &state, peer, source, "deliver"),
    }
}

async fn store_batch(
    state: &HookState,
    headers: &HeaderMap,
    body: Body,
) -> Result<usize, ApiError> {
    authenticate(state, headers, Use::Delivery)?;
    require_json(headers)?;
    let body = read_body(body, state.max_body_bytes).await?;
    let events = EnvelopeCheck::parse(&body)
        .map_err(|err| ApiError::BadRequest(err.to_string()))?
        .event_count();
    // Stored from its own task: if the client goes away mid-commit, the batch is still stored
    // and counted, and Okta's retry is then de-duplicated.
    let spool = state.spool.clone();
    tokio::spawn(async move { spool.append_delivery(now_ms(), &body).await })
        .await
        .map_err(|err| ApiError::Unavailable(format!("spool task failed: {err}")))?
        .map_err(|err: SpoolError| ApiError::Unavailable(err.to_string()))?;
    state.detector.notify_one();
    Ok(events)
}

/// Checks the configured auth header against every accepted secret, in constant time, and
/// records the use of the secret that matched (a delivery's in a gauge too).
fn authenticate(state: &HookState, headers: &HeaderMap, used_for: Use) -> Result<(), ApiError> {
    let presented = presented_secret(state, headers)?;
    let fingerprint = state
        .secrets
        .authenticate(presented.as_bytes(), used_for)
        .ok_or(ApiError::Unauthorized("auth header value not accepted"))?;
    if used_for == Use::Delivery {
        let fingerprint = fingerprint.to_string();
        let labels =
            crate::telemetry::org_labels(state.org.as_deref(), &[("fingerprint", &fingerprint)]);
        metrics::gauge!(OKTA_SECRET_LAST_USED_TIMESTAMP_SECONDS, labels)
            .set(now_ms() as f64 / 1000.0);
    }
    Ok(())
}

/// The value of the org's auth header.
pub(super) fn presented_secret<'h>(
    state: &HookState,
    headers: &'h HeaderMap,
) -> Result<&'h HeaderValue, ApiError> {
    headers
        .get(&state.auth_header)
        .ok_or_else(|| ApiError::MissingAuthHeader(state.auth_header.clone()))
}

fn challenge(headers: &HeaderMap) -> Result<String, ApiError> {
    headers
        .get(CHALLENGE_HEADER)
        .and_then(|value| value.to_str().ok())
        .map(str::to_owned)
        .ok_or(ApiError::MissingChallenge)
}

fn require_json(headers: &HeaderMap) -> Result<(), ApiError> {
    let content_type = headers
        .get(header::CONTENT_TYPE)
        .map(|v| String::from_utf8_lossy(v.as_bytes()).into_owned())
        .unwrap_or_default();
    let essence = content_type.split(';').next().unwrap_or("").trim();
    if essence.eq_ignore_ascii_case("application/json") {
        Ok(())
    } else {
        Err(ApiError::UnsupportedMediaType(content_type))
    }
}

/// Reads the body, refusing it as soon as it passes `limit` bytes.
async fn read_body(body: Body, limit: usize) -> Result<axum::body::Bytes, ApiError> {
    match Limited::new(body, limit).collect().await {
        Ok(collected) => Ok(collected.to_bytes()),
        Err(err) if err.downcast_ref::<LengthLimitError>().is_some() => {
            Err(ApiError::PayloadTooLarge(limit))
        }
        Err(err) => Err(ApiError::BadRequest(format!(
            "cannot read the request body: {err}"
        ))),
    }
}

/// Logs a refused request with its reason (never a secret) and builds the response.
fn refuse(
    err: ApiError,
    state: &HookState,
    peer: SocketAddr,
    source: IpAddr,
    action: &'static str,
) -> Response {
    let status = err.status();
    let org = state.org.as_deref();
    if status.is_server_error() {
        tracing::error!(%peer, %source, org, action, status = status.as_u16(), reason = %err, "request refused");
    } else {
        tracing::warn!(%peer, %source, org, action, status = status.as_u16(), reason = %err, "request refused");
    }
    err.into_response()
}
