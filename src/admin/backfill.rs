//! `POST /backfill?org=`: runs a backfill of the org ([`crate::reconcile::backfill`]) and
//! streams its progress, one JSON object per line ([`Progress`]), the last one `done` or `failed`.
//! A caller that disconnects stops it; what it stored by then is detected anyway.

use axum::Json;
use axum::body::Body;
use axum::extract::{Query, State};
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::{Deserialize, Serialize};
use tokio::sync::mpsc;

use super::{AdminState, Selection, failure};
use crate::reconcile::backfill::{BackfillError, Progress, Window};

/// Progress lines buffered for a slow reader before the backfill waits for it.
const PROGRESS_BUFFER: usize = 64;

/// The window to backfill.
#[derive(Debug, Serialize, Deserialize)]
pub struct BackfillRequest {
    /// RFC 3339 start.
    pub since: String,
    /// RFC 3339 end; unset: now (at most now minus the org's grace).
    pub until: Option<String>,
}

/// Starts the backfill and answers with its progress as it goes.
pub(super) async fn backfill(
    State(state): State<AdminState>,
    Query(selection): Query<Selection>,
    Json(request): Json<BackfillRequest>,
) -> Response {
    let org = match state.org(&selection) {
        Ok(org) => org,
        Err(err) => return failure(StatusCode::BAD_REQUEST, err.to_string()),
    };
    let label = org.org.as_deref().unwrap_or("the top-level org");
    let Some(backfill) = org.backfill.clone() else {
        return failure(
            StatusCode::BAD_REQUEST,
            format!(
                "{label} has no [okta.api]: backfill reads the System Log through Okta's API; \
                 configure it as docs/okta-setup.md (10.) shows"
            ),
        );
    };
    let window = match Window::new(
        &request.since,
        request.until.as_deref(),
        backfill.config.grace,
    ) {
        Ok(window) => window,
        Err(err) => return failure(StatusCode::BAD_REQUEST, err.to_string()),
    };
    let (sender, receiver) = mpsc::channel(PROGRESS_BUFFER);
    let org = org.org.clone();
    tokio::spawn(async move {
        tracing::info!(org = org.as_deref(), ?window, "backfill started");
        let last = match backfill.run(window, &sender).await {
            Ok(summary) => {
                tracing::info!(org = org.as_deref(), ?summary, "backfill done");
                Progress::Done(summary)
            }
            Err(BackfillError::Abandoned) => {
                tracing::warn!(org = org.as_deref(), "backfill abandoned by its caller");
                return;
            }
            Err(err) => {
                tracing::error!(org = org.as_deref(), error = %err, "backfill failed");
                Progress::Failed {
                    error: err.to_string(),
                }
            }
        };
        let _ = sender.send(last).await;
    });
    (
        [(header::CONTENT_TYPE, "application/x-ndjson")],
        Body::from_stream(lines(receiver)),
    )
        .into_response()
}

/// Each progress update as a line of JSON.
fn lines(
    receiver: mpsc::Receiver<Progress>,
) -> impl futures_util::Stream<Item = Result<Vec<u8>, std::convert::Infallible>> {
    futures_util::stream::unfold(receiver, |mut receiver| async move {
        let update = receiver.recv().await?;
        let mut line = serde_json::to_vec(&update).expect("progress serializes");
        line.push(b'\n');
        Some((Ok(line), receiver))
    })
}
