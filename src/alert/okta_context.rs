//! The live Okta context an MFA alert carries (`okta_context`): what the analyst would look up
//! next in the Admin Console, read from Okta's API when the alert was raised. The detector fills
//! it in (`detect::live_context`); the alert carries it. Each member is absent when its lookup
//! failed, and `failed` says which lookup and why.

use serde::{Deserialize, Serialize};

/// `okta_context`: the target user's state and the actor's roles, as Okta's API answered them
/// when the alert was raised.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct OktaContext {
    /// The target user of the event (its first `User` target).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub target: Option<TargetContext>,
    /// The actor, when it is a user other than the target.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub actor: Option<ActorContext>,
    /// The lookups that gave nothing, and why; empty when every lookup answered.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub failed: Vec<FailedLookup>,
}

/// What Okta holds of the target user now.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct TargetContext {
    /// Okta user id (`00u…`).
    pub id: String,
    /// `ACTIVE`, `SUSPENDED`, `LOCKED_OUT`, `RECOVERY`, ... (absent when the lookup failed).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub status: Option<String>,
    /// The user type's id (`oty…`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub user_type: Option<String>,
    /// The factors still enrolled: what is left after the change (absent when the lookup
    /// failed; empty when none is left).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub factors_left: Option<Vec<FactorLeft>>,
    /// The admin roles assigned to the user (empty: none).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub admin_roles: Option<Vec<String>>,
    /// The user's groups, at most `[okta.context] max_groups` names.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub groups: Option<Vec<String>>,
    /// The user belongs to more groups than `groups` lists.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub groups_truncated: bool,
}

/// One factor still enrolled.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FactorLeft {
    /// Okta's `factorType`: `push`, `sms`, `webauthn`, `token:software:totp`, ...
    #[serde(rename = "type")]
    pub factor_type: String,
    /// `OKTA`, `GOOGLE`, `FIDO`, ...
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub provider: Option<String>,
    /// `ACTIVE`, `PENDING_ACTIVATION`, ...
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub status: Option<String>,
}

/// What Okta holds of the actor.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct ActorContext {
    /// Okta id of the actor.
    pub id: String,
    /// The event's `actor.type`: `User`, `PublicClientApp`, `SystemPrincipal`, ...
    #[serde(rename = "type")]
    pub kind: String,
    /// The admin roles assigned to the actor, when it is a user (empty: none).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub admin_roles: Option<Vec<String>>,
}

/// One lookup that gave nothing.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FailedLookup {
    /// Which: `target.user`, `target.factors`, `target.roles`, `target.groups`, `actor.roles`.
    pub lookup: String,
    /// Why, in a word: `timeout`, `missing_scope`, `forbidden`, `not_found`, `rate_limited`,
    /// `server_error`, `unreachable`, `error`.
    pub reason: String,
    /// Okta's or the client's message, saying what to do.
    pub detail: String,
}
