//! The Users API calls of the responder: suspend and unsuspend a user, clear its sessions, read
//! and set its risk level (Identity Threat Protection), and the user the credentials act as
//! (`GET /api/v1/users/me`), so that the responder never acts on its own identity.
//!
//! Source: Okta's Management API spec (suspendUser, unsuspendUser, revokeUserSessions,
//! getUserRisk, upsertUserRisk, getUser), gathered in `../shared/okta/api/README.md` §e. Each
//! write has the same effect however often it is sent (a second suspend is refused, not doubled),
//! so all are retried like reads: the responder can wait out a 429 and a server error's backoff.
//!
//! Okta refuses a suspend of a user that is not `ACTIVE` (an unsuspend of one not `SUSPENDED`)
//! with a 400, whose schema the spec gives as `ErrorMissingRequiredParameter400` (E0000028): the
//! call has no parameter to miss, so any 400 of these calls is read as the status refusing it,
//! [`OktaApiError::Conflict`].

use reqwest::Method;
use serde::{Deserialize, Serialize};

use super::transport::{Answer, Call, Endpoint};
use super::users::{OktaUser, USERS_PATH, read_user_json};
use super::{Failure, OktaApiError, OktaClient};

/// What to check when Okta refuses a user action with a 4xx.
const ACTIONS_ADVICE: &str = "check the user id the alert named";
/// What to check when Okta refuses a risk change.
const RISK_ADVICE: &str =
    "check the user id; the org needs Identity Threat Protection for user risk";
/// The longest `riskReason` Okta takes (upsertUserRisk's `maxLength`).
const MAX_RISK_REASON: usize = 500;

/// A user's risk as Okta answers it (`UserRiskGetResponse`, `UserRiskPutResponse`).
#[derive(Debug, Clone, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct UserRisk {
    /// `HIGH`, `MEDIUM`, `LOW`, or `NONE` (never set).
    pub risk_level: String,
    /// Why (`override.by.admin` when an admin set it without a reason); absent for `NONE`.
    #[serde(default)]
    pub reason: Option<String>,
}

/// A risk level an admin can set (upsertUserRisk's `riskLevel`): Okta's PUT cannot set `NONE`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "UPPERCASE")]
pub enum RiskLevel {
    /// `HIGH`.
    High,
    /// `MEDIUM`.
    Medium,
    /// `LOW`.
    Low,
}

impl RiskLevel {
    /// Okta's name of the level (`HIGH`, `MEDIUM`, `LOW`).
    pub fn as_str(self) -> &'static str {
        match self {
            Self::High => "HIGH",
            Self::Medium => "MEDIUM",
            Self::Low => "LOW",
        }
    }
}

impl std::fmt::Display for RiskLevel {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// `text` as a `riskReason` Okta accepts: each character outside its pattern
/// `^[a-zA-Z0-9\s\-,.]*$` becomes a space, and the result is cut to 500 characters. Whitespace
/// other than a space becomes one too: `\s` differs between regex engines, a space does not.
pub fn risk_reason(text: &str) -> String {
    text.chars()
        .map(|c| match c {
            'a'..='z' | 'A'..='Z' | '0'..='9' | '-' | ',' | '.' | ' ' => c,
            _ => ' ',
        })
        .take(MAX_RISK_REASON)
        .collect()
}

/// The body of upsertUserRisk.
#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct RiskRequest<'a> {
    risk_level: RiskLevel,
    /// Left out when empty, so that Okta's default (`override.by.admin`) applies.
    #[serde(skip_serializing_if = "str::is_empty")]
    risk_reason: &'a str,
}

impl OktaClient {
    /// `GET /api/v1/users/{userId}/risk`: the user's risk level. Needs `okta.userRisk.read`.
    pub async fn get_user_risk(&self, user_id: &str) -> Result<UserRisk, OktaApiError> {
        let call = self.user_action(Endpoint::UserRisk, Method::GET, user_id, &["risk"], None)?;
        self.call(&call, read_user_json).await
    }

    /// `PUT /api/v1/users/{userId}/risk`: sets the user's risk `level` (Okta answers 201 the
    /// first time, 200 after). `reason` goes through [`risk_reason`] first, so any text is
    /// accepted; an empty one leaves Okta's default `override.by.admin`. Needs
    /// `okta.userRisk.manage` and Identity Threat Protection.
    pub async fn set_user_risk(
        &self,
        user_id: &str,
        level: RiskLevel,
        reason: &str,
    ) -> Result<UserRisk, OktaApiError> {
        let reason = risk_reason(reason);
        let body = RiskRequest {
            risk_level: level,
            risk_reason: reason.trim(),
        };
        let body = serde_json::to_vec(&body).expect("a risk request serializes");
        let call = self.user_action(
            Endpoint::UserRisk,
            Method::PUT,
            user_id,
            &["risk"],
            Some(body),
        )?;
        self.call(&call, read_user_json).await
    }

    /// `DELETE /api/v1/users/{userId}/sessions?oauthTokens=…`: ends the user's Okta sessions
    /// (the user must sign in again), and with `revoke_oauth_tokens` also the OIDC/OAuth access
    /// and refresh tokens issued to the user. App sessions are not Okta's to end. Needs
    /// `okta.users.manage`.
    pub async fn clear_user_sessions(
        &self,
        user_id: &str,
        revoke_oauth_tokens: bool,
    ) -> Result<(), OktaApiError> {
        let mut call = self.user_action(
            Endpoint::UserSessions,
            Method::DELETE,
            user_id,
            &["sessions"],
            None,
        )?;
        call.url.query_pairs_mut().append_pair(
            "oauthTokens",
            if revoke_oauth_tokens { "true" } else { "false" },
        );
        self.call(&call, read_nothing).await
    }

    /// `POST /api/v1/users/{id}/lifecycle/suspend`: the user can no longer sign in and keeps its
    /// groups and apps. A user that is not `ACTIVE` (already suspended, deprovisioned, ...) is
    /// [`OktaApiError::Conflict`]. Needs `okta.users.manage`.
    pub async fn suspend_user(&self, user_id: &str) -> Result<(), OktaApiError> {
        self.lifecycle_action(user_id, "suspend").await
    }

    /// `POST /api/v1/users/{id}/lifecycle/unsuspend`: the user is `ACTIVE` again. A user that is
    /// not `SUSPENDED` is [`OktaApiError::Conflict`]. Needs `okta.users.manage`.
    pub async fn unsuspend_user(&self, user_id: &str) -> Result<(), OktaApiError> {
        self.lifecycle_action(user_id, "unsuspend").await
    }

    /// `GET /api/v1/users/me`: the admin an API token acts as. An API Services app acts as no
    /// user: [`OktaApiError::NoUserContext`]. Needs `okta.users.read`.
    pub async fn current_user(&self) -> Result<OktaUser, OktaApiError> {
        let call = self.user_action(Endpoint::Users, Method::GET, "me", &[], None)?;
        self.call(&call, read_user_json)
            .await
            .map_err(|error| match error {
                OktaApiError::NotFound { said, .. } => OktaApiError::NoUserContext(said),
                OktaApiError::BadRequest(said) => OktaApiError::NoUserContext(said),
                other => other,
            })
    }

    async fn lifecycle_action(&self, user_id: &str, action: &str) -> Result<(), OktaApiError> {
        let call = self.user_action(
            Endpoint::UserLifecycle,
            Method::POST,
            user_id,
            &["lifecycle", action],
            None,
        )?;
        self.call(&call, read_nothing).await
    }

    /// A call on `api/v1/users/{user_id}/{segments…}`, each escaped; a 404 is the user missing.
    fn user_action(
        &self,
        endpoint: Endpoint,
        method: Method,
        user_id: &str,
        segments: &[&str],
        body: Option<Vec<u8>>,
    ) -> Result<Call, OktaApiError> {
        let path: Vec<&str> = std::iter::once(user_id)
            .chain(segments.iter().copied())
            .collect();
        let url = self.api_url(USERS_PATH, &path)?;
        let advice = match endpoint {
            Endpoint::UserRisk => RISK_ADVICE,
            _ => ACTIONS_ADVICE,
        };
        let mut call = Call::new(endpoint, method, url, body, advice);
        call.not_found = Some("user");
        Ok(call)
    }
}

/// A 400 of suspend or unsuspend: the user's status does not allow it.
pub(super) fn status_refused(answer: &Answer) -> OktaApiError {
    OktaApiError::Conflict(format!(
        "Okta refused the change because of the user's status ({}): suspend needs an ACTIVE \
         user, unsuspend a SUSPENDED one; check the user's status in Okta",
        super::okta_error(answer)
    ))
}

/// A 2xx answer whose body, if any, says nothing (200 of a lifecycle call, 204).
fn read_nothing(_url: &reqwest::Url, _answer: &Answer) -> Result<(), Failure> {
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_risk_reason_keeps_only_what_okta_accepts() {
        let pattern = regex::Regex::new(r"^[a-zA-Z0-9\s\-,.]*$").expect("Okta's pattern");
        let text = "MFA reset by help desk: user's push factor (00u1) reset_all\t\u{e9}\n!";
        let reason = risk_reason(text);
        assert_eq!(
            reason,
            "MFA reset by help desk  user s push factor  00u1  reset all    "
        );
        assert!(pattern.is_match(&reason), "{reason:?}");
        assert_eq!(reason.chars().count(), text.chars().count());
        let long = risk_reason(&"a.".repeat(400));
        assert_eq!(long.chars().count(), 500);
        assert!(pattern.is_match(&long));
        assert_eq!(
            risk_reason("Impossible travel, 2 countries."),
            "Impossible travel, 2 countries."
        );
    }

    #[test]
    fn a_risk_request_names_the_level_in_uppercase_and_leaves_out_an_empty_reason() {
        let with = RiskRequest {
            risk_level: RiskLevel::High,
            risk_reason: "MFA reset",
        };
        assert_eq!(
            serde_json::to_value(&with).expect("serializes"),
            serde_json::json!({"riskLevel": "HIGH", "riskReason": "MFA reset"})
        );
        let without = RiskRequest {
            risk_level: RiskLevel::Medium,
            risk_reason: "",
        };
        assert_eq!(
            serde_json::to_value(&without).expect("serializes"),
            serde_json::json!({"riskLevel": "MEDIUM"})
        );
        assert_eq!(RiskLevel::Low.to_string(), "LOW");
    }
}
