//! `GET /responses?org=`, `POST /responses/undo?org=&id=` and `POST /responses/approve?org=&id=`:
//! what the org's responses did (the ledger), reversing an executed action, and letting an
//! action held by `max_per_hour` run.

use axum::extract::{Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde::{Deserialize, Serialize};

use super::{AdminOrg, AdminState, Selection, failure};
use crate::alert::ActionRecord;
use crate::respond::{ResponseError, ledger};

/// An org's recorded actions, oldest first, as `GET /responses` answers.
#[derive(Debug, Serialize, Deserialize)]
pub struct ResponsesView {
    /// The `[[okta.orgs]]` name; `None`: the top-level org.
    pub org: Option<String>,
    /// The responses configured, with their mode.
    pub configured: Vec<ConfiguredResponse>,
    /// Every recorded action.
    pub actions: Vec<ActionRecord>,
}

/// One configured response, as the list shows it.
#[derive(Debug, Serialize, Deserialize)]
pub struct ConfiguredResponse {
    /// Its name.
    pub name: String,
    /// `dry-run` or `enforce`.
    pub mode: String,
    /// Its actions.
    pub actions: Vec<String>,
    /// Its cap.
    pub max_per_hour: u32,
}

/// `GET /responses`.
pub async fn list(State(state): State<AdminState>, Query(selection): Query<Selection>) -> Response {
    let org = match state.org(&selection) {
        Ok(org) => org,
        Err(err) => return failure(StatusCode::BAD_REQUEST, err.to_string()),
    };
    match ledger(&org.spool).await {
        Ok(actions) => axum::Json(ResponsesView {
            org: org.org.clone(),
            configured: configured(org),
            actions,
        })
        .into_response(),
        Err(err) => failure(StatusCode::SERVICE_UNAVAILABLE, err.to_string()),
    }
}

fn configured(org: &AdminOrg) -> Vec<ConfiguredResponse> {
    org.responders
        .iter()
        .map(|responder| {
            let config = responder.config();
            ConfiguredResponse {
                name: config.name.clone(),
                mode: config.mode.as_str().to_owned(),
                actions: config
                    .actions
                    .iter()
                    .map(|a| a.as_str().to_owned())
                    .collect(),
                max_per_hour: config.max_per_hour,
            }
        })
        .collect()
}

/// Which change a request asks of an action.
#[derive(Clone, Copy)]
enum Change {
    Undo,
    Approve,
}

/// `POST /responses/undo?id=`.
pub async fn undo(state: State<AdminState>, selection: Query<Selection>) -> Response {
    change(state, selection, Change::Undo).await
}

/// `POST /responses/approve?id=`.
pub async fn approve(state: State<AdminState>, selection: Query<Selection>) -> Response {
    change(state, selection, Change::Approve).await
}

/// Finds the responder that recorded the action `id` and asks it for `change`; answers the
/// updated record.
async fn change(
    State(state): State<AdminState>,
    Query(selection): Query<Selection>,
    change: Change,
) -> Response {
    let org = match state.org(&selection) {
        Ok(org) => org,
        Err(err) => return failure(StatusCode::BAD_REQUEST, err.to_string()),
    };
    let Some(id) = selection.id.as_deref() else {
        return failure(
            StatusCode::BAD_REQUEST,
            "name the action with id= (`factorwatch responses list` shows the ids)",
        );
    };
    let mut last = ResponseError::NotFound(id.to_owned());
    for responder in org.responders.iter() {
        let done = match change {
            Change::Undo => responder.undo(id).await,
            Change::Approve => responder.approve(id).await,
        };
        match done {
            Ok(record) => return axum::Json(record).into_response(),
            Err(ResponseError::NotFound(_)) => {}
            Err(other) => {
                last = other;
                break;
            }
        }
    }
    let status = match last {
        ResponseError::NotFound(_) => StatusCode::NOT_FOUND,
        ResponseError::Refused(_) => StatusCode::CONFLICT,
        ResponseError::Okta(_) => StatusCode::BAD_GATEWAY,
        ResponseError::Spool(_) => StatusCode::SERVICE_UNAVAILABLE,
    };
    failure(status, last.to_string())
}
