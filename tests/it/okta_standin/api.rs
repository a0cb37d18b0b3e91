//! What every Management API operation of the stand-in shares: its rate-limit bucket and the
//! `X-Rate-Limit-*` headers (README §b), authentication and the operation's scope (README §a),
//! and the check of each answer against the spec's responses of that operation.

use std::time::SystemTime;

use axum::http::StatusCode;
use axum::http::header::{CONTENT_TYPE, HeaderMap, HeaderName};
use axum::response::Response;
use serde_json::{Value, json};

use super::spec::Spec;
use super::{Answer, Quota, Shared, auth};

const RATE_LIMIT: HeaderName = HeaderName::from_static("x-rate-limit-limit");
const RATE_REMAINING: HeaderName = HeaderName::from_static("x-rate-limit-remaining");
const RATE_RESET: HeaderName = HeaderName::from_static("x-rate-limit-reset");

/// The rate-limit bucket an operation counts against: Okta limits by endpoint family, so the
/// System Log and the Event Hooks API do not share one (README §b).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Family {
    /// `/api/v1/logs`.
    Logs,
    /// `/api/v1/eventHooks` and everything below it.
    EventHooks,
    /// `GET /api/v1/users/{idOrLogin}`.
    Users,
    /// A user's factors, roles and groups (the other `/api/v1/users/...` calls).
    UserResources,
    /// The writes on a user and its risk: lifecycle, sessions, `/risk` (README §b: "most other
    /// `/api/v1`" endpoints, 1,200 a minute).
    UserActions,
    /// `/api/v1/security-events-providers`.
    SecurityEventsProviders,
    /// `POST /security/api/v1/security-events` (the SET push).
    SecurityEvents,
}

/// One operation of the spec, as the stand-in serves it.
pub(super) struct Operation {
    /// The spec's `operationId`, for messages.
    pub(super) id: &'static str,
    /// The spec's path template (`/api/v1/eventHooks/{eventHookId}`).
    pub(super) template: &'static str,
    /// The HTTP method, uppercase.
    pub(super) method: &'static str,
    /// The OAuth scope of the operation's `security` (API tokens need the same permission).
    pub(super) scope: &'static str,
    pub(super) family: Family,
    /// Statuses the stand-in answers that the spec does not list for the operation, each checked
    /// against Okta's shared response for that status; every use says why.
    pub(super) unlisted: &'static [u16],
}

impl Operation {
    /// Takes one request from the operation's bucket.
    pub(super) fn take_quota(&self, shared: &Shared) -> Quota {
        shared.lock().bucket(self.family).take(SystemTime::now())
    }

    /// Who calls, if the quota allows the call, the credential is valid and carries the
    /// operation's scope; otherwise the answer to give (429, 401, 400 for DPoP, 403).
    pub(super) fn authorize(
        &self,
        shared: &Shared,
        headers: &HeaderMap,
        path: &str,
        quota: Quota,
    ) -> Result<auth::Caller, Answer> {
        if !quota.allowed {
            return Err(too_many_requests());
        }
        let caller = auth::authenticate_call(shared, headers, self.method, path)?;
        if !caller.scopes.contains(self.scope) {
            return Err(auth::forbidden(shared, &caller, self.scope, path));
        }
        Ok(caller)
    }

    /// Checks the answer against the spec, records its status for request `index` and adds the
    /// rate-limit headers.
    pub(super) fn finish(
        &self,
        shared: &Shared,
        index: usize,
        answer: Answer,
        quota: Quota,
    ) -> Response {
        self.check_answer(shared, &answer);
        shared.answered(index, answer.status);
        with_quota(answer, quota).into_response()
    }

    /// Checks an answer's body against what the spec gives for its status: the schema when there
    /// is one, no body when the response has no content (a 204).
    fn check_answer(&self, shared: &Shared, answer: &Answer) {
        let spec = Spec::get();
        let status = answer.status.as_u16();
        let method = self.method.to_ascii_lowercase();
        let response = spec.response(self.template, &method, status).or_else(|| {
            self.unlisted
                .contains(&status)
                .then(|| spec.shared_response(status))
                .flatten()
        });
        let Some(response) = response else {
            shared.violation(format!("{} has no {status} answer", self.id));
            return;
        };
        match (Spec::content_schema(response), &answer.body) {
            (Some(schema), body) => {
                for violation in spec.validate_answer(schema, body) {
                    shared.violation(format!("{} {status} answer {violation}", self.id));
                }
            }
            (None, Value::Null) => {}
            (None, _) => shared.violation(format!(
                "{} {status} answer has a body the spec does not describe",
                self.id
            )),
        }
    }
}

impl Operation {
    /// The JSON body of a request to the operation. A Content-Type other than JSON, and a body
    /// that does not fit the spec's request schema, are violations (client bugs); a body that
    /// is not JSON at all is Okta's 400 E0000003. What Okta validates beyond the schema is the
    /// caller's.
    pub(super) fn json_body(
        &self,
        shared: &Shared,
        headers: &HeaderMap,
        body: &[u8],
    ) -> Result<Value, Answer> {
        let content_type = headers
            .get(CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default();
        if !content_type.starts_with("application/json") {
            shared.violation(format!(
                "{}: Content-Type {content_type:?} is not application/json",
                self.id
            ));
        }
        let Ok(sent) = serde_json::from_slice::<Value>(body) else {
            shared.violation(format!("{}: the body is not JSON", self.id));
            return Err(Answer::okta_error(
                StatusCode::BAD_REQUEST,
                "E0000003",
                "The request body was not well-formed.",
            ));
        };
        let spec = Spec::get();
        let schema = spec.request_schema(self.template, &self.method.to_ascii_lowercase());
        for violation in spec.validate_request(schema, &sent) {
            shared.violation(format!("{} request {violation}", self.id));
        }
        Ok(sent)
    }
}

/// 400 E0000001, Okta's answer to a `resource` it does not validate, one `errorCauses` entry
/// per cause.
pub(super) fn validation_failed(resource: &str, causes: &[&str]) -> Answer {
    let mut answer = Answer::okta_error(
        StatusCode::BAD_REQUEST,
        "E0000001",
        &format!("Api validation failed: {resource}"),
    );
    answer.body["errorCauses"] = causes
        .iter()
        .map(|cause| json!({"errorSummary": cause}))
        .collect();
    answer
}

/// Adds the `X-Rate-Limit-*` headers every answer carries (`Date` is added by the server).
fn with_quota(answer: Answer, quota: Quota) -> Answer {
    let remaining = match answer.status {
        StatusCode::TOO_MANY_REQUESTS => 0,
        _ => quota.remaining,
    };
    answer
        .header(RATE_LIMIT, quota.limit.to_string())
        .header(RATE_REMAINING, remaining.to_string())
        .header(RATE_RESET, quota.reset.to_string())
}

/// 429 E0000047, Okta's answer once the bucket is used up.
pub(super) fn too_many_requests() -> Answer {
    Answer::okta_error(
        StatusCode::TOO_MANY_REQUESTS,
        "E0000047",
        "API call exceeded rate limit due to too many requests.",
    )
}
