//! `GET /secrets?org=` and `POST /secrets/reload?org=`: the secrets an org's hook accepts, where
//! each came from and when this replica last saw it used, and reading them again without a
//! restart (what a rotation needs: the new secret accepted before Okta sends it, the old one
//! dropped once a delivery with the new one was seen).

use axum::extract::{Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde::{Deserialize, Serialize};

use super::{AdminOrg, AdminState, Selection, failure};
use crate::clock::rfc3339;
use crate::secret::{LastDelivery, SecretSource, SecretUse, SecretsReport};

/// An org's accepted secrets, as `GET /secrets` and a successful reload answer.
#[derive(Debug, Serialize, Deserialize)]
pub struct SecretsView {
    /// The `[[okta.orgs]]` name; `None`: the top-level org.
    pub org: Option<String>,
    /// Each accepted secret, fixed ones (config, environment) first, then the file's in order.
    pub secrets: Vec<SecretView>,
    /// The secret the last delivery was authenticated with, if this replica saw one.
    pub last_delivery: Option<LastDeliveryView>,
}

/// One accepted secret, without its value.
#[derive(Debug, Serialize, Deserialize)]
pub struct SecretView {
    /// 8 hex digits naming the secret within this run of this replica (keyed per process).
    pub fingerprint: String,
    /// Where it came from: `{"type": "config"}`, `{"type": "env", "variable": ...}` or
    /// `{"type": "file", "path": ..., "line": ...}`.
    pub source: SecretSource,
    /// The last delivery authenticated with it (RFC 3339), on this replica since it started.
    pub last_delivery: Option<String>,
    /// The last verification challenge authenticated with it (RFC 3339).
    pub last_verification: Option<String>,
}

/// The secret of the last delivery.
#[derive(Debug, Serialize, Deserialize)]
pub struct LastDeliveryView {
    /// Its fingerprint.
    pub fingerprint: String,
    /// When (RFC 3339).
    pub at: String,
    /// Whether it is still accepted.
    pub accepted: bool,
}

impl SecretsView {
    fn new(org: &AdminOrg, report: SecretsReport) -> Self {
        Self {
            org: org.org.clone(),
            secrets: report.secrets.into_iter().map(SecretView::from).collect(),
            last_delivery: report.last_delivery.map(LastDeliveryView::from),
        }
    }
}

impl From<SecretUse> for SecretView {
    fn from(secret: SecretUse) -> Self {
        Self {
            fingerprint: secret.fingerprint.to_string(),
            source: secret.source,
            last_delivery: secret.last_delivery_ms.map(rfc3339),
            last_verification: secret.last_verification_ms.map(rfc3339),
        }
    }
}

impl From<LastDelivery> for LastDeliveryView {
    fn from(last: LastDelivery) -> Self {
        Self {
            fingerprint: last.fingerprint.to_string(),
            at: rfc3339(last.at_ms),
            accepted: last.accepted,
        }
    }
}

/// `GET /secrets?org=`.
pub(super) async fn list(
    State(state): State<AdminState>,
    Query(selection): Query<Selection>,
) -> Response {
    match state.org(&selection) {
        Ok(org) => axum::Json(SecretsView::new(org, org.secrets.report())).into_response(),
        Err(err) => failure(StatusCode::BAD_REQUEST, err.to_string()),
    }
}

/// `POST /secrets/reload?org=`: the secrets read again and swapped in, answered with the new set;
/// refused with 409 (the set in force kept) when the file cannot be read or holds no secret and
/// no other is configured.
pub(super) async fn reload(
    State(state): State<AdminState>,
    Query(selection): Query<Selection>,
) -> Response {
    let org = match state.org(&selection) {
        Ok(org) => org,
        Err(err) => return failure(StatusCode::BAD_REQUEST, err.to_string()),
    };
    match org.secrets.reload("admin API").await {
        Ok(_) => axum::Json(SecretsView::new(org, org.secrets.report())).into_response(),
        Err(err) => failure(
            StatusCode::CONFLICT,
            format!("{err}; the secrets in force stay accepted"),
        ),
    }
}
