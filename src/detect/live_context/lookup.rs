//! One lookup of the live context (a user, its factors, roles or groups), and why one failed in
//! the words an alert gives.

use crate::alert::FailedLookup;
use crate::okta_api::{AssignedRole, GroupsPage, OktaApiError, OktaClient, OktaUser, UserFactor};

/// Which call a lookup makes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub(super) enum LookupKind {
    User,
    Factors,
    Roles,
    Groups,
}

/// One call about one user: also the cache's key.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub(super) struct Lookup {
    pub(super) kind: LookupKind,
    pub(super) user_id: String,
}

/// What a lookup answered.
#[derive(Debug, Clone)]
pub(super) enum Answer {
    User(OktaUser),
    Factors(Vec<UserFactor>),
    Roles(Vec<AssignedRole>),
    Groups(GroupsPage),
}

/// Why a lookup gave nothing.
#[derive(Debug, Clone)]
pub(super) enum Missing {
    /// Not answered within `[okta.context] timeout`.
    Deadline,
    /// Okta, or the way to it, failed.
    Api(String, String),
}

impl Lookup {
    /// Makes the call.
    pub(super) async fn run(&self, client: &OktaClient) -> Result<Answer, OktaApiError> {
        let id = self.user_id.as_str();
        Ok(match self.kind {
            LookupKind::User => Answer::User(client.get_user(id).await?),
            LookupKind::Factors => Answer::Factors(client.list_factors(id).await?),
            LookupKind::Roles => Answer::Roles(client.list_user_roles(id).await?),
            LookupKind::Groups => Answer::Groups(client.list_user_groups(id).await?),
        })
    }
}

impl LookupKind {
    /// The name of the lookup in `failed[].lookup`, below `target` or `actor`.
    fn name(self) -> &'static str {
        match self {
            Self::User => "user",
            Self::Factors => "factors",
            Self::Roles => "roles",
            Self::Groups => "groups",
        }
    }
}

impl Missing {
    /// Classifies a failed call.
    pub(super) fn of(error: &OktaApiError) -> Self {
        let reason = match error {
            OktaApiError::Timeout => "timeout",
            OktaApiError::MissingScope { .. } => "missing_scope",
            OktaApiError::Forbidden(_) => "forbidden",
            OktaApiError::NotFound { .. } => "not_found",
            OktaApiError::RateLimited { .. } => "rate_limited",
            OktaApiError::Server { .. } => "server_error",
            OktaApiError::Transport(_) | OktaApiError::OrgNotFound { .. } => "unreachable",
            OktaApiError::Credentials(_) => "credentials",
            _ => "error",
        };
        Self::Api(reason.to_owned(), error.to_string())
    }

    /// The alert's record of it, for the lookup `kind` of the `whose` (`target`, `actor`).
    pub(super) fn record(&self, whose: &str, kind: LookupKind, timeout: &str) -> FailedLookup {
        let (reason, detail) = match self {
            Self::Deadline => (
                "timeout".to_owned(),
                format!(
                    "Okta did not answer within [okta.context] timeout ({timeout}); the alert \
                     was sent without it: check Okta's status, or raise timeout"
                ),
            ),
            Self::Api(reason, detail) => (reason.clone(), detail.clone()),
        };
        FailedLookup {
            lookup: format!("{whose}.{}", kind.name()),
            reason,
            detail,
        }
    }
}
