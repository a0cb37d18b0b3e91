//! The Users API calls behind an alert's live context: a user (status, type), its factors, its
//! admin roles and its groups. Read-only, one request each, never paged further than the first
//! page.
//!
//! Source: Okta's Management API spec (getUser, listFactors, listAssignedRolesForUser,
//! listUserGroups), gathered in `../shared/okta/api/README.md` §e: the three user calls need
//! `okta.users.read`, the roles call `okta.roles.read`. Okta's factor list holds only the
//! factors of the highest-priority enrollment policy as seen by the caller, so it may be
//! incomplete (README §e). Each is tried once after a server error or no answer: an alert waits
//! for them.

use serde::Deserialize;

use super::headers::next_link;
use super::transport::{Answer, Call, Endpoint};
use super::{Failure, OktaApiError, OktaClient};

/// The Users API collection, below `org_url`.
pub(super) const USERS_PATH: &str = "api/v1/users";
/// What to check when Okta refuses a user lookup with a 4xx.
const USERS_ADVICE: &str = "check the user id the event named";

/// A user as `GET /api/v1/users/{id}` answers it (the members factorwatch reads).
#[derive(Debug, Clone, Deserialize, PartialEq, Eq)]
pub struct OktaUser {
    /// Okta's id (`00u…`).
    pub id: String,
    /// `ACTIVE`, `SUSPENDED`, `LOCKED_OUT`, `RECOVERY`, ... (Okta's `UserStatus`).
    pub status: String,
    /// The user type (`type.id`, `oty…`), when Okta sends one.
    #[serde(default, rename = "type")]
    pub user_type: Option<UserTypeRef>,
    /// The profile's login and email, when Okta sends them.
    #[serde(default)]
    pub profile: Option<UserProfile>,
}

/// `profile` of a user (the members factorwatch reads).
#[derive(Debug, Clone, Deserialize, PartialEq, Eq)]
pub struct UserProfile {
    /// The login (`alice@acme.example`).
    #[serde(default)]
    pub login: Option<String>,
    /// The primary email.
    #[serde(default)]
    pub email: Option<String>,
}

/// `type` of a user: the id of its user type.
#[derive(Debug, Clone, Deserialize, PartialEq, Eq)]
pub struct UserTypeRef {
    /// The user type's id.
    pub id: Option<String>,
}

/// One enrolled factor (`UserFactor`, the members factorwatch reads).
#[derive(Debug, Clone, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct UserFactor {
    /// `push`, `sms`, `webauthn`, `token:software:totp`, ...
    pub factor_type: String,
    /// `OKTA`, `GOOGLE`, `FIDO`, ...
    #[serde(default)]
    pub provider: Option<String>,
    /// `ACTIVE`, `PENDING_ACTIVATION`, ...
    #[serde(default)]
    pub status: Option<String>,
}

/// One admin role assigned to a user (`StandardRole` or `CustomRole`).
#[derive(Debug, Clone, Deserialize, PartialEq, Eq)]
pub struct AssignedRole {
    /// `SUPER_ADMIN`, `ORG_ADMIN`, `HELP_DESK_ADMIN`, ..., or `CUSTOM`.
    #[serde(rename = "type")]
    pub role_type: String,
    /// Okta's label, such as "Super Administrator".
    #[serde(default)]
    pub label: Option<String>,
    /// `ACTIVE` or `INACTIVE`.
    #[serde(default)]
    pub status: Option<String>,
}

/// One group of a user (`Group`: its id and `profile.name`).
#[derive(Debug, Clone, Deserialize, PartialEq, Eq)]
pub struct UserGroup {
    /// Okta's id (`00g…`).
    pub id: String,
    /// The group's profile.
    #[serde(default)]
    pub profile: Option<GroupProfile>,
}

/// `profile` of a group (the member factorwatch reads).
#[derive(Debug, Clone, Deserialize, PartialEq, Eq)]
pub struct GroupProfile {
    /// The group's name.
    #[serde(default)]
    pub name: Option<String>,
}

/// The first page of a user's groups.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GroupsPage {
    /// The groups, in Okta's order.
    pub groups: Vec<UserGroup>,
    /// Okta has more than this page (a `next` link).
    pub more: bool,
}

impl OktaClient {
    /// `GET /api/v1/users/{id}`. A user Okta does not know is [`OktaApiError::NotFound`].
    pub async fn get_user(&self, user_id: &str) -> Result<OktaUser, OktaApiError> {
        let call = self.user_call(Endpoint::Users, user_id, None)?;
        self.call(&call, read_user_json).await
    }

    /// `GET /api/v1/users/{userId}/factors`: the factors enrolled (what is left after a reset).
    pub async fn list_factors(&self, user_id: &str) -> Result<Vec<UserFactor>, OktaApiError> {
        let call = self.user_call(Endpoint::Users, user_id, Some("factors"))?;
        self.call(&call, read_user_json).await
    }

    /// `GET /api/v1/users/{userId}/roles`: the admin roles assigned to the user itself (not
    /// through a group). Needs `okta.roles.read`.
    pub async fn list_user_roles(&self, user_id: &str) -> Result<Vec<AssignedRole>, OktaApiError> {
        let call = self.user_call(Endpoint::Roles, user_id, Some("roles"))?;
        self.call(&call, read_user_json).await
    }

    /// `GET /api/v1/users/{id}/groups`, the first page only.
    pub async fn list_user_groups(&self, user_id: &str) -> Result<GroupsPage, OktaApiError> {
        let call = self.user_call(Endpoint::Users, user_id, Some("groups"))?;
        self.call(&call, read_groups).await
    }

    /// A GET of `api/v1/users/{user_id}` or one of its `sub` collections, the id escaped.
    fn user_call(
        &self,
        endpoint: Endpoint,
        user_id: &str,
        sub: Option<&str>,
    ) -> Result<Call, OktaApiError> {
        let mut segments = vec![user_id];
        segments.extend(sub);
        let url = self.api_url(USERS_PATH, &segments)?;
        let mut call = Call::get(endpoint, url, USERS_ADVICE);
        call.not_found = Some("user");
        // An alert waits for these: a server error is reported, not backed off.
        call.single_try = true;
        Ok(call)
    }
}

/// A 2xx answer of the Users API read as `T`.
pub(super) fn read_user_json<T: serde::de::DeserializeOwned>(
    _url: &reqwest::Url,
    answer: &Answer,
) -> Result<T, Failure> {
    serde_json::from_slice(&answer.body).map_err(|err| {
        Failure::Final(OktaApiError::BadResponse(format!(
            "the Users API answer is not what the API documents ({err})"
        )))
    })
}

/// A 2xx answer of the groups call: the groups and whether a `next` link follows.
fn read_groups(url: &reqwest::Url, answer: &Answer) -> Result<GroupsPage, Failure> {
    Ok(GroupsPage {
        groups: read_user_json(url, answer)?,
        more: next_link(&answer.headers, url).is_some(),
    })
}
