//! The context factorwatch adds to an alert on a `user.mfa.*` event: who did it, what was
//! removed, from where. The detector fills it in (`detect::context`); the alert carries it.

use serde::{Deserialize, Serialize};

/// Who initiated an MFA change.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum InitiatedBy {
    /// The user changed their own factors.
    #[serde(rename = "self")]
    SelfService,
    /// Another user (an admin or the help desk).
    Admin,
    /// A call authenticated with an API token (`transaction.detail.requestApiTokenId`).
    ApiToken,
    /// Okta Support (`system@okta.com`).
    OktaSupport,
    /// An OAuth service app or an app instance acting as itself (`actor.type`
    /// `PublicClientApp` or `AppInstance`): an integration or automation, not a person.
    ServiceApp,
    /// Okta's own processes: a `SystemPrincipal` actor other than Okta Support.
    System,
    /// Not enough in the event to tell.
    Unknown,
}

impl InitiatedBy {
    /// The name alerts and `factorwatch.initiated_by` use, as serialized.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::SelfService => "self",
            Self::Admin => "admin",
            Self::ApiToken => "api_token",
            Self::OktaSupport => "okta_support",
            Self::ServiceApp => "service_app",
            Self::System => "system",
            Self::Unknown => "unknown",
        }
    }
}

/// The context factorwatch adds to every alert on a `user.mfa.*` event.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct MfaContext {
    /// Who initiated the change.
    pub initiated_by: Option<InitiatedBy>,
    /// Factor types removed, such as `FIDO_WEBAUTHN` (several when an Identity Engine "reset all"
    /// arrived as one event per factor).
    pub factors: Vec<String>,
    /// `transaction.id` (`unknown` for Okta Support).
    pub transaction_id: Option<String>,
    /// The API token used, when one was.
    pub api_token_id: Option<String>,
    /// Every IP the request went through (`client.ipChain` or `request.ipChain`).
    pub ip_chain: Vec<String>,
    /// Autonomous system number of the source.
    pub asn: Option<String>,
    /// Its organisation.
    pub as_org: Option<String>,
    /// Internet service provider.
    pub isp: Option<String>,
    /// Whether Okta saw the request come through a proxy or anonymiser.
    pub is_proxy: Option<bool>,
    /// The target is listed in `[rules] privileged_users`.
    pub privileged_target: bool,
    /// The target holds an Okta admin role (live context, `[okta.context]`): the dynamic
    /// privileged list beside the static `privileged_users`.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub admin_target: bool,
    /// The actor is a user holding an Okta admin role (live context, `[okta.context]`).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub admin_actor: bool,
    /// The uuids of the events this alert stands for (more than one for a grouped reset).
    pub event_uuids: Vec<String>,
    /// Why the alert's level is above its rule's, if it is.
    pub level_reasons: Vec<String>,
}
