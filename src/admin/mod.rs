//! The admin API, which the `factorwatch dlq` and `backfill` commands call (`cli::dlq`,
//! `cli::backfill`).
//!
//! The spool is one file that only the running service may open, so dead letters are managed
//! through the service: a small HTTP API on `server.admin_listen` (loopback by default, bearer
//! token optional, required off loopback).
//!
//! | route | what |
//! |---|---|
//! | `GET /` | which instance answers ([`Instance`]: version, data directory, orgs) |
//! | `GET /dlq?org=&sink=&id=` | dead-lettered alerts |
//! | `POST /dlq/replay?org=&sink=&id=` | move them back to their outbox, as new |
//! | `POST /dlq/purge?org=&sink=&id=&all=` | delete them for good (`all=true` needed without a filter) |
//! | `POST /backfill?org=` | read a window of the System Log through detection ([`backfill`]) |
//! | `GET /secrets?org=` | the secrets the org's hook accepts: source, fingerprint, last use ([`secrets`]) |
//! | `POST /secrets/reload?org=` | read them again (the secrets file) and swap them in |
//! | `GET /responses?org=` | the responses configured and every action recorded ([`responses`]) |
//! | `POST /responses/undo?org=&id=` | reverse an executed action (risk level back, unsuspend) |
//! | `POST /responses/approve?org=&id=` | let an action held by `max_per_hour` run now |
//!
//! Each org has its own spool, so a request is about one org: `org` names a `[[okta.orgs]]`
//! org; without it, the top-level org.

pub mod backfill;
pub mod responses;
pub mod secrets;

use std::path::PathBuf;
use std::sync::Arc;

use axum::Router;
use axum::extract::{Query, Request, State};
use axum::http::{StatusCode, header};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use serde::{Deserialize, Serialize};
use serde_json::json;
use tokio::sync::Notify;

use crate::clock::rfc3339;
use crate::reconcile::backfill::Backfill;
use crate::secret::{HookSecrets, SecretSet};
use crate::spool::{OutboxEntry, Spool};

/// What the admin handlers share.
#[derive(Clone)]
pub struct AdminState {
    /// Every org served, each with its spool and sinks.
    pub orgs: Arc<[AdminOrg]>,
    /// The accepted bearer token, if one is configured.
    pub token: Option<Arc<SecretSet>>,
    /// `storage.data_dir`, which tells one instance on a host from another.
    pub data_dir: PathBuf,
}

/// One org's dead letters (its spool and its sinks), its backfill and its hook's secrets.
#[derive(Clone)]
pub struct AdminOrg {
    /// The `[[okta.orgs]]` name; `None`: the top-level org.
    pub org: Option<String>,
    /// The spool holding the dead letters.
    pub spool: Arc<Spool>,
    /// The secrets its hook accepts.
    pub secrets: Arc<HookSecrets>,
    /// Reading a window of its System Log through detection; `None` without `[okta.api]`.
    pub backfill: Option<Backfill>,
    /// Each configured sink (and each response's outbox) and the wake-up of its forwarder.
    pub sinks: Vec<(String, Arc<Notify>)>,
    /// Its responses, for `responses list`, `undo` and `approve`.
    pub responders: Vec<Arc<crate::respond::Responder>>,
}

impl AdminState {
    /// The org `selection` names, or why there is none.
    fn org(&self, selection: &Selection) -> Result<&AdminOrg, UnknownOrg> {
        self.orgs
            .iter()
            .find(|org| org.org == selection.org)
            .ok_or_else(|| {
                let named = self.orgs.iter().filter_map(|o| o.org.clone()).collect();
                match &selection.org {
                    Some(org) => UnknownOrg::Named {
                        org: org.clone(),
                        named,
                    },
                    None => UnknownOrg::TopLevel { named },
                }
            })
    }
}

/// A request about an org that is not served; the message names the orgs there are.
#[derive(Debug, thiserror::Error)]
enum UnknownOrg {
    /// `org=` names no `[[okta.orgs]]` org.
    #[error("no org named {org:?} is configured (orgs: {named:?})")]
    Named { org: String, named: Vec<String> },
    /// No `org=`, but only `[[okta.orgs]]` orgs are served.
    #[error("the top-level org is not served; name one of {named:?} with org=")]
    TopLevel { named: Vec<String> },
}

/// Which instance answers (`GET /`). The CLI shows it before each answer: a command that reached
/// another instance than meant (another configuration's admin port) is seen at once.
#[derive(Debug, Serialize, Deserialize)]
pub struct Instance {
    /// The version of the running service.
    pub version: String,
    /// Its `storage.data_dir`.
    pub data_dir: PathBuf,
    /// Whether it serves the top-level org.
    pub top_level: bool,
    /// The `[[okta.orgs]]` orgs it serves.
    pub orgs: Vec<String>,
}

impl std::fmt::Display for Instance {
    /// `data_dir=/var/lib/factorwatch orgs=top-level,acme version=0.1.0`.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let top_level = self.top_level.then_some("top-level");
        let orgs: Vec<&str> = top_level
            .into_iter()
            .chain(self.orgs.iter().map(String::as_str))
            .collect();
        write!(
            f,
            "data_dir={} orgs={} version={}",
            self.data_dir.display(),
            orgs.join(","),
            self.version
        )
    }
}

/// Which dead letters a request is about.
#[derive(Debug, Default, Deserialize, Serialize)]
pub struct Selection {
    /// Of this `[[okta.orgs]]` org; unset: the top-level org.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub org: Option<String>,
    /// Only this sink's.
    pub sink: Option<String>,
    /// Only this alert's (an action's, for `/responses/undo` and `/responses/approve`).
    pub id: Option<String>,
    /// Purge everything when no filter is given.
    #[serde(default)]
    pub all: bool,
}

/// One dead letter as the API shows it.
#[derive(Debug, Serialize, Deserialize)]
pub struct DeadLetter {
    /// The sink that gave up on it.
    pub sink: String,
    /// The alert id.
    pub alert_id: String,
    /// Attempts made.
    pub attempts: u32,
    /// When the alert was raised.
    pub created_at: String,
    /// Why it was dead-lettered.
    pub last_error: Option<String>,
    /// The alert.
    pub alert: serde_json::Value,
}

impl From<OutboxEntry> for DeadLetter {
    fn from(entry: OutboxEntry) -> Self {
        let alert = serde_json::from_str(entry.record.alert.get()).unwrap_or_default();
        Self {
            sink: entry.sink,
            alert_id: entry.record.alert_id,
            attempts: entry.record.attempts,
            created_at: rfc3339(entry.record.created_at_ms),
            last_error: entry.record.last_error,
            alert,
        }
    }
}

/// The admin router.
pub fn router(state: AdminState) -> Router {
    Router::new()
        .route("/", get(instance))
        .route("/dlq", get(list))
        .route("/dlq/replay", post(replay))
        .route("/dlq/purge", post(purge))
        .route("/backfill", post(backfill::backfill))
        .route("/secrets", get(secrets::list))
        .route("/secrets/reload", post(secrets::reload))
        .route("/responses", get(responses::list))
        .route("/responses/undo", post(responses::undo))
        .route("/responses/approve", post(responses::approve))
        .layer(middleware::from_fn_with_state(state.clone(), require_token))
        .with_state(state)
}

async fn require_token(State(state): State<AdminState>, request: Request, next: Next) -> Response {
    if let Some(token) = &state.token {
        let presented = request
            .headers()
            .get(header::AUTHORIZATION)
            .and_then(|v| v.as_bytes().strip_prefix(b"Bearer "))
            .unwrap_or_default();
        if !token.accepts(presented) {
            return failure(StatusCode::UNAUTHORIZED, "missing or invalid admin token");
        }
    }
    next.run(request).await
}

fn failure(status: StatusCode, message: impl Into<String>) -> Response {
    (status, axum::Json(json!({"error": message.into()}))).into_response()
}

async fn instance(State(state): State<AdminState>) -> Response {
    let instance = Instance {
        version: env!("CARGO_PKG_VERSION").to_owned(),
        data_dir: state.data_dir.clone(),
        top_level: state.orgs.iter().any(|org| org.org.is_none()),
        orgs: state
            .orgs
            .iter()
            .filter_map(|org| org.org.clone())
            .collect(),
    };
    axum::Json(instance).into_response()
}

async fn list(State(state): State<AdminState>, Query(selection): Query<Selection>) -> Response {
    let org = match state.org(&selection) {
        Ok(org) => org,
        Err(err) => return failure(StatusCode::BAD_REQUEST, err.to_string()),
    };
    match org.spool.dead_letters(selection.sink).await {
        Ok(entries) => {
            let letters: Vec<DeadLetter> = entries
                .into_iter()
                .filter(|e| {
                    selection
                        .id
                        .as_ref()
                        .is_none_or(|id| *id == e.record.alert_id)
                })
                .map(DeadLetter::from)
                .collect();
            axum::Json(letters).into_response()
        }
        Err(err) => failure(StatusCode::SERVICE_UNAVAILABLE, err.to_string()),
    }
}

async fn replay(State(state): State<AdminState>, Query(selection): Query<Selection>) -> Response {
    let org = match state.org(&selection) {
        Ok(org) => org,
        Err(err) => return failure(StatusCode::BAD_REQUEST, err.to_string()),
    };
    if let Some(sink) = &selection.sink
        && !org.sinks.iter().any(|(name, _)| name == sink)
    {
        return failure(
            StatusCode::BAD_REQUEST,
            format!("no sink named {sink:?} is configured"),
        );
    }
    // Only configured sinks' letters: others would wait in an outbox no forwarder reads.
    let mut replayed = 0;
    for (name, wake) in &org.sinks {
        if selection.sink.as_ref().is_some_and(|wanted| wanted != name) {
            continue;
        }
        match org
            .spool
            .replay_dead_letters(Some(name.clone()), selection.id.clone())
            .await
        {
            Ok(entries) if entries.is_empty() => {}
            Ok(entries) => {
                replayed += entries.len();
                wake.notify_one();
            }
            Err(err) => return failure(StatusCode::SERVICE_UNAVAILABLE, err.to_string()),
        }
    }
    tracing::info!(replayed, org = org.org.as_deref(), "dead letters replayed");
    axum::Json(json!({ "replayed": replayed })).into_response()
}

async fn purge(State(state): State<AdminState>, Query(selection): Query<Selection>) -> Response {
    if selection.sink.is_none() && selection.id.is_none() && !selection.all {
        return failure(
            StatusCode::BAD_REQUEST,
            "name a sink or an alert id, or confirm purging every dead letter with all=true",
        );
    }
    let org = match state.org(&selection) {
        Ok(org) => org,
        Err(err) => return failure(StatusCode::BAD_REQUEST, err.to_string()),
    };
    match org
        .spool
        .purge_dead_letters(selection.sink, selection.id)
        .await
    {
        Ok(count) => {
            tracing::warn!(
                purged = count,
                org = org.org.as_deref(),
                "dead letters purged"
            );
            axum::Json(json!({"purged": count})).into_response()
        }
        Err(err) => failure(StatusCode::SERVICE_UNAVAILABLE, err.to_string()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_instance_is_one_line_naming_the_top_level_org_and_the_others() {
        let instance = Instance {
            version: "0.1.0".into(),
            data_dir: "/var/lib/factorwatch".into(),
            top_level: true,
            orgs: vec!["acme".into(), "globex".into()],
        };
        assert_eq!(
            instance.to_string(),
            "data_dir=/var/lib/factorwatch orgs=top-level,acme,globex version=0.1.0"
        );
    }
}
