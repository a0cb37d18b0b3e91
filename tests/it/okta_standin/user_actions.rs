//! The responder's writes on users (README §e, spec tags UserLifecycle, UserSessions, UserRisk):
//! `POST /api/v1/users/{id}/lifecycle/suspend` (suspendUser, only from `ACTIVE`) and
//! `/unsuspend` (unsuspendUser, only from `SUSPENDED`), `DELETE /api/v1/users/{userId}/sessions`
//! (revokeUserSessions, `oauthTokens`), both `okta.users.manage`; `GET` and `PUT
//! /api/v1/users/{userId}/risk` (getUserRisk `okta.userRisk.read`, upsertUserRisk
//! `okta.userRisk.manage`: 201 when the risk is first set, 200 after).
//!
//! A refused lifecycle change answers 400 E0000001 with the reason as its cause. The spec's 400
//! of these two operations is `ErrorMissingRequiredParameter400` (example E0000028, "The request
//! is missing a required parameter"), which cannot be the reason: the calls take no parameter.
//! Both are Okta's `Error` schema; the stand-in keeps Okta's usual validation code, so a client
//! must not depend on the code, only on the status.
//!
//! All count against the [`Family::UserActions`] bucket (1,200 a minute). Tests make the next
//! calls fail with [`OktaStandIn::fail_next_user_actions`].

use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};

use axum::Router;
use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::header::HeaderMap;
use axum::http::{StatusCode, Uri};
use axum::response::Response;
use axum::routing::{get, post};
use serde_json::{Value, json};

use super::api::{Family, Operation, validation_failed};
use super::logs::injected;
use super::spec::Spec;
use super::users::{StoredUser, find, not_found, user_href};
use super::{Answer, OktaStandIn, Quota, Shared, State as OrgState, decode_pairs};

const USERS_MANAGE: &str = "okta.users.manage";
const RISK_READ: &str = "okta.userRisk.read";
const RISK_MANAGE: &str = "okta.userRisk.manage";
/// The risk levels upsertUserRisk takes (`NONE` only comes from never having set one).
const RISK_LEVELS: [&str; 3] = ["HIGH", "MEDIUM", "LOW"];
/// upsertUserRisk's `riskReason` rules.
const RISK_REASON_PATTERN: &str = r"^[a-zA-Z0-9\s\-,.]*$";
const MAX_RISK_REASON: usize = 500;
/// The reason Okta records when none is given.
const DEFAULT_RISK_REASON: &str = "override.by.admin";

const fn operation(
    id: &'static str,
    template: &'static str,
    method: &'static str,
    scope: &'static str,
) -> Operation {
    Operation {
        id,
        template,
        method,
        scope,
        family: Family::UserActions,
        unlisted: &[],
    }
}

const SUSPEND: Operation = operation(
    "suspendUser",
    "/api/v1/users/{id}/lifecycle/suspend",
    "POST",
    USERS_MANAGE,
);
const UNSUSPEND: Operation = operation(
    "unsuspendUser",
    "/api/v1/users/{id}/lifecycle/unsuspend",
    "POST",
    USERS_MANAGE,
);
const REVOKE_SESSIONS: Operation = operation(
    "revokeUserSessions",
    "/api/v1/users/{userId}/sessions",
    "DELETE",
    USERS_MANAGE,
);
const GET_RISK: Operation = operation(
    "getUserRisk",
    "/api/v1/users/{userId}/risk",
    "GET",
    RISK_READ,
);
const PUT_RISK: Operation = operation(
    "upsertUserRisk",
    "/api/v1/users/{userId}/risk",
    "PUT",
    RISK_MANAGE,
);

impl OktaStandIn {
    /// The next `n` calls of the responder's operations (suspend, unsuspend, clear sessions,
    /// user risk, and the SET push) answer `status` with Okta's body for it (as
    /// [`OktaStandIn::fail_next`]). A 429 says the window resets in about a second.
    pub fn fail_next_user_actions(&self, n: usize, status: u16) {
        self.shared.lock().action_failures = (n, status);
    }

    /// The user's `status` (`ACTIVE`, `SUSPENDED`, ...); panics on an unknown user.
    pub fn user_status(&self, id: &str) -> String {
        self.with_user(id, |user| user.seed.status.clone())
    }

    /// The user's risk level, `None` while none was set (Okta's `NONE`).
    pub fn user_risk(&self, id: &str) -> Option<String> {
        self.with_user(id, |user| {
            user.risk.as_ref().map(|(level, _)| level.clone())
        })
    }

    /// The user's active sessions.
    pub fn user_sessions(&self, id: &str) -> u32 {
        self.with_user(id, |user| user.seed.sessions)
    }

    /// Whether clearing the user's sessions also revoked its OAuth tokens.
    pub fn oauth_tokens_revoked(&self, id: &str) -> bool {
        self.with_user(id, |user| user.oauth_tokens_revoked)
    }

    fn with_user<T>(&self, id: &str, read: impl FnOnce(&StoredUser) -> T) -> T {
        let state = self.shared.lock();
        read(
            state
                .users
                .get(id)
                .unwrap_or_else(|| panic!("no user {id}")),
        )
    }
}

impl OrgState {
    /// Consumes one of the `fail_next_user_actions` answers, if any is left.
    pub(super) fn take_action_failure(&mut self) -> Option<u16> {
        super::take_one(&mut self.action_failures)
    }
}

/// Adds the routes of the responder's user operations to `router`.
pub(super) fn routes(router: Router<Arc<Shared>>) -> Router<Arc<Shared>> {
    router
        .route("/api/v1/users/{id}/lifecycle/suspend", post(suspend))
        .route("/api/v1/users/{id}/lifecycle/unsuspend", post(unsuspend))
        .route(
            "/api/v1/users/{id}/sessions",
            axum::routing::delete(revoke_sessions),
        )
        .route("/api/v1/users/{id}/risk", get(get_risk).put(put_risk))
}

/// Records the request and checks its query, takes the quota, answers an injected failure or
/// authorizes; then `work` answers on the state, the user found by `id`. The answer is checked
/// against the spec and recorded.
fn serve(
    shared: &Shared,
    operation: &Operation,
    id: &str,
    uri: &Uri,
    headers: &HeaderMap,
    work: impl FnOnce(&mut StoredUser) -> Answer,
) -> Response {
    let index = shared.record(operation.method, uri, Vec::new(), headers);
    check_query(shared, operation, uri);
    let (mut quota, failure) = take_quota(shared, operation);
    let answer = match failure {
        Some(answer) => answer,
        None => match operation.authorize(shared, headers, uri.path(), quota) {
            Err(answer) => answer,
            Ok(_) => {
                let mut state = shared.lock();
                let key = find(&state.users, id).map(|user| user.seed.user.id.clone());
                match key.and_then(|key| state.users.get_mut(&key)) {
                    Some(user) => work(user),
                    None => not_found(id),
                }
            }
        },
    };
    if answer.status == StatusCode::TOO_MANY_REQUESTS {
        quota = soon(quota);
    }
    operation.finish(shared, index, answer, quota)
}

/// One request from `operation`'s bucket, and the injected failure to answer instead, if any.
pub(super) fn take_quota(shared: &Shared, operation: &Operation) -> (Quota, Option<Answer>) {
    let quota = operation.take_quota(shared);
    let failure = if quota.allowed {
        shared.lock().take_action_failure().map(injected)
    } else {
        None
    };
    (quota, failure)
}

/// The quota of an injected 429: used up, and reset in a second (a test waits no longer).
pub(super) fn soon(quota: Quota) -> Quota {
    if quota.allowed {
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap_or_default();
        Quota {
            remaining: 0,
            reset: now.as_secs() + 1,
            ..quota
        }
    } else {
        quota
    }
}

/// Records each query parameter the operation does not list, or whose value is not of its type.
fn check_query(shared: &Shared, operation: &Operation, uri: &Uri) {
    let method = operation.method.to_ascii_lowercase();
    let listed = Spec::get().query_parameters(operation.template, &method);
    for (name, value) in decode_pairs(uri.query().unwrap_or_default()) {
        match listed.iter().find(|p| p.name == name) {
            None => shared.violation(format!("{} has no parameter {name}", operation.id)),
            Some(p) if p.kind == "boolean" && value != "true" && value != "false" => shared
                .violation(format!(
                    "{} parameter {name}={value} is not a boolean",
                    operation.id
                )),
            Some(_) => {}
        }
    }
}

async fn suspend(
    State(shared): State<Arc<Shared>>,
    Path(id): Path<String>,
    uri: Uri,
    headers: HeaderMap,
) -> Response {
    serve(&shared, &SUSPEND, &id, &uri, &headers, |user| {
        change_status(
            user,
            "ACTIVE",
            "SUSPENDED",
            "Cannot suspend a user that is not active",
        )
    })
}

async fn unsuspend(
    State(shared): State<Arc<Shared>>,
    Path(id): Path<String>,
    uri: Uri,
    headers: HeaderMap,
) -> Response {
    serve(&shared, &UNSUSPEND, &id, &uri, &headers, |user| {
        change_status(
            user,
            "SUSPENDED",
            "ACTIVE",
            "Cannot unsuspend a user that is not suspended",
        )
    })
}

/// `from` → `to`, 200 without a body; from any other status, 400 with `refusal` as the cause.
fn change_status(user: &mut StoredUser, from: &str, to: &str, refusal: &str) -> Answer {
    if user.seed.status != from {
        return validation_failed("user", &[refusal]);
    }
    user.seed.status = to.to_owned();
    if to == "SUSPENDED" {
        // A suspended user cannot sign in: its sessions end with it.
        user.seed.sessions = 0;
    }
    Answer::json(StatusCode::OK, Value::Null)
}

async fn revoke_sessions(
    State(shared): State<Arc<Shared>>,
    Path(id): Path<String>,
    uri: Uri,
    headers: HeaderMap,
) -> Response {
    let pairs = decode_pairs(uri.query().unwrap_or_default());
    let oauth_tokens = super::first(&pairs, "oauthTokens") == Some("true");
    serve(&shared, &REVOKE_SESSIONS, &id, &uri, &headers, |user| {
        user.seed.sessions = 0;
        user.oauth_tokens_revoked |= oauth_tokens;
        Answer::no_content()
    })
}

async fn get_risk(
    State(shared): State<Arc<Shared>>,
    Path(id): Path<String>,
    uri: Uri,
    headers: HeaderMap,
) -> Response {
    let org_url = shared.org_url.clone();
    serve(&shared, &GET_RISK, &id, &uri, &headers, |user| {
        Answer::json(StatusCode::OK, risk_view(&org_url, user))
    })
}

async fn put_risk(
    State(shared): State<Arc<Shared>>,
    Path(id): Path<String>,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let org_url = shared.org_url.clone();
    let sent = risk_request(&shared, &headers, &body);
    serve(&shared, &PUT_RISK, &id, &uri, &headers, |user| {
        let (level, reason) = match sent {
            Ok(sent) => sent,
            Err(answer) => return answer,
        };
        let status = if user.risk.is_some() {
            StatusCode::OK
        } else {
            StatusCode::CREATED
        };
        user.risk = Some((level, reason));
        Answer::json(status, risk_view(&org_url, user))
    })
}

/// The level and reason of an upsertUserRisk body, checked against the spec's request schema (a
/// deviation is a client bug: a violation) and as Okta validates it (400 E0000001).
fn risk_request(
    shared: &Shared,
    headers: &HeaderMap,
    body: &Bytes,
) -> Result<(String, String), Answer> {
    let sent = PUT_RISK.json_body(shared, headers, body)?;
    let level = sent["riskLevel"].as_str().unwrap_or_default();
    if !RISK_LEVELS.contains(&level) {
        return Err(validation_failed(
            "user",
            &["riskLevel: must be one of HIGH, MEDIUM, LOW."],
        ));
    }
    let reason = match &sent["riskReason"] {
        Value::Null => DEFAULT_RISK_REASON,
        Value::String(reason) => reason,
        _ => {
            return Err(validation_failed(
                "user",
                &["riskReason: must be a string."],
            ));
        }
    };
    let pattern = regex::Regex::new(RISK_REASON_PATTERN).expect("the spec's pattern");
    if reason.chars().count() > MAX_RISK_REASON || !pattern.is_match(reason) {
        return Err(validation_failed(
            "user",
            &["riskReason: at most 500 letters, digits, spaces, hyphens, commas and periods."],
        ));
    }
    Ok((level.to_owned(), reason.to_owned()))
}

/// The user's risk as getUserRisk and upsertUserRisk answer it.
fn risk_view(org_url: &str, user: &StoredUser) -> Value {
    let user_href = user_href(org_url, user);
    let links = json!({
        "self": {"href": format!("{user_href}/risk"), "hints": {"allow": ["GET", "PUT"]}},
        "user": {"href": user_href, "hints": {"allow": ["GET"]}},
    });
    match &user.risk {
        Some((level, reason)) => json!({"riskLevel": level, "reason": reason, "_links": links}),
        None => json!({"riskLevel": "NONE", "_links": links}),
    }
}
