//! What a response (`[[responses]]`) did about an alert: one [`ActionRecord`] per alert,
//! response and action. It is kept in the spool's ledger (`factorwatch responses list`) and
//! delivered to the sinks as a copy of the alert it answers with `response` set, so a team sees
//! "factorwatch cleared alice's sessions" beside the alert that caused it.

use serde::{Deserialize, Serialize};
use uuid::Uuid;

/// The namespace of action ids (UUIDv5), apart from alert ids.
const ACTION_ID_NAMESPACE: Uuid = Uuid::from_u128(0x6d1c_0f6a_51e4_4c1b_9b3a_62f1_0a7e_d4c2);

/// The id of `action` of the response `response` on the alert `alert_id`: the same alert
/// redelivered, retried or replayed on another replica gets the same id, so it acts once.
pub fn action_id(alert_id: &str, response: &str, action: &str) -> String {
    Uuid::new_v5(
        &ACTION_ID_NAMESPACE,
        format!("{alert_id}\n{response}\n{action}").as_bytes(),
    )
    .to_string()
}

/// One action of a response on one alert, and what came of it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ActionRecord {
    /// Deterministic, see [`action_id`]; what `responses undo` and `responses approve` take.
    pub id: String,
    /// The id of the alert it answers.
    pub answers: String,
    /// The `[[responses]]` name.
    pub response: String,
    /// `raise_risk`, `clear_sessions`, `suspend_user`, `ssf_session_revoked`,
    /// `ssf_user_risk_change`.
    pub action: String,
    /// `dry-run` or `enforce`, as the response was configured when it ran.
    pub mode: String,
    /// What came of it.
    pub outcome: ActionOutcome,
    /// Why: what was done, what would have been done, or why nothing was.
    pub reason: String,
    /// The Okta user acted on (id), when the alert names one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub target_id: Option<String>,
    /// The user's login, when known.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub target_login: Option<String>,
    /// What the action changed, before it ran: the risk level (`LOW`, `NONE`, ...) or the user's
    /// status (`ACTIVE`). What `undo` restores.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub before: Option<String>,
    /// The Okta call made (or that a dry run would make), such as
    /// `PUT /api/v1/users/00u1/risk {"riskLevel":"HIGH"}`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub call: Option<String>,
    /// When the outcome was reached (RFC 3339, UTC).
    pub at: String,
    /// When the action was undone (RFC 3339), by `responses undo`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub undone_at: Option<String>,
}

/// What came of one action.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ActionOutcome {
    /// Okta did it.
    Executed,
    /// `mode = "dry-run"`: nothing was done; `reason` and `call` say what would have been.
    DryRun,
    /// A guard stopped it (`never`, an admin, factorwatch's own identity, no user): `reason`
    /// says which.
    Skipped,
    /// The response's `max_per_hour` was reached: it waits for a person
    /// (`factorwatch responses approve ID`).
    Held,
    /// Okta refused it, or it could not be tried: `reason` says what to do.
    Failed,
}

impl ActionOutcome {
    /// The outcome as configured and printed (`executed`, `dry_run`, ...).
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Executed => "executed",
            Self::DryRun => "dry_run",
            Self::Skipped => "skipped",
            Self::Held => "held",
            Self::Failed => "failed",
        }
    }

    /// True when the action is settled for good: a redelivered alert does not try it again.
    /// A failed action is tried again when its alert is (a dead letter replayed).
    pub fn is_final(self) -> bool {
        !matches!(self, Self::Failed)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn action_ids_depend_on_alert_response_and_action() {
        let id = action_id("a1", "contain", "raise_risk");
        assert_eq!(id, action_id("a1", "contain", "raise_risk"));
        assert_ne!(id, action_id("a2", "contain", "raise_risk"));
        assert_ne!(id, action_id("a1", "other", "raise_risk"));
        assert_ne!(id, action_id("a1", "contain", "suspend_user"));
    }

    #[test]
    fn only_a_failure_is_tried_again() {
        assert!(!ActionOutcome::Failed.is_final());
        for settled in [
            ActionOutcome::Executed,
            ActionOutcome::DryRun,
            ActionOutcome::Skipped,
            ActionOutcome::Held,
        ] {
            assert!(settled.is_final(), "{settled:?}");
        }
    }
}
