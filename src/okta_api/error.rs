//! What can go wrong calling Okta, each message saying what to do next. No message carries a
//! token, a key or a client assertion.

use std::time::Duration;

/// A failed call to Okta's API, after the client's own retries.
#[derive(Debug, thiserror::Error)]
pub enum OktaApiError {
    /// The `[okta.api]` settings are not usable (the message names the key).
    #[error("invalid [okta.api] settings: {0}")]
    Config(String),
    /// Okta refused the credentials: the token endpoint (`invalid_client`, an unusable DPoP
    /// proof) or the API (401). The message names the keys to check.
    #[error("{0}")]
    Credentials(String),
    /// The token lacks a scope the call needs.
    #[error(
        "the app is not granted {scope}: grant it in the Admin Console ▸ Applications ▸ the \
         app ▸ Okta API Scopes"
    )]
    MissingScope {
        /// The scope Okta names (or the one the call needs).
        scope: String,
    },
    /// 403 for another reason, typically an admin role too weak for the call.
    #[error(
        "Okta refused the call ({0}): give the app (or the token's admin) a role that allows it"
    )]
    Forbidden(String),
    /// Not an Okta org: 404, a redirect, or a host name that does not resolve.
    #[error("{url} is not an Okta org (not found, a redirect, or no such host): check org_url")]
    OrgNotFound {
        /// The URL called.
        url: String,
    },
    /// The resource a call is about is not in the org (404 on a call on one resource).
    #[error("Okta has no such {what} ({said}): it may have been deleted since the event")]
    NotFound {
        /// What was looked up: `user`.
        what: &'static str,
        /// Okta's error, in one line.
        said: String,
    },
    /// Okta refused the request itself (400, or another 4xx), or the client refused to send it
    /// (a `next` link to another origin). The message says which.
    #[error("{0}")]
    BadRequest(String),
    /// Okta refused a lifecycle change because of the user's status (400): suspend needs an
    /// `ACTIVE` user, unsuspend a `SUSPENDED` one. Often already done: a suspend of a user
    /// someone else suspended meanwhile. The message has Okta's error.
    #[error("{0}")]
    Conflict(String),
    /// `GET /api/v1/users/me` named no user (Okta answers 404 or 400): an API Services app acts
    /// as itself, not as an admin; only an API token acts as a user (the admin who made it).
    #[error(
        "Okta names no user behind these credentials ({0}): an API Services app acts as itself; \
         only an api_token acts as a user (its admin)"
    )]
    NoUserContext(String),
    /// Still rate-limited after the retries.
    #[error(
        "Okta's rate limit is used up (resets in {}s): lower the polling rate or \
         rate_limit_share, or ask Okta for a higher limit",
        reset_in.as_secs()
    )]
    RateLimited {
        /// How long until the window resets, by the server's clock.
        reset_in: Duration,
    },
    /// Still a server error after the retries.
    #[error("Okta answered {status} to every try: retry later (status.okta.com)")]
    Server {
        /// The last status.
        status: u16,
    },
    /// No answer within `timeout`, on every try.
    #[error("Okta did not answer within the timeout on every try: retry later, or raise timeout")]
    Timeout,
    /// The connection failed (refused, reset, TLS).
    #[error("cannot reach Okta ({0}): check the network path to org_url")]
    Transport(String),
    /// The private key file is unreadable or not a usable key.
    #[error("{0}")]
    Key(String),
    /// Okta answered 2xx with something that is not what the API documents.
    #[error("unexpected answer from Okta: {0}")]
    BadResponse(String),
}

impl OktaApiError {
    /// True when the same call may succeed later without a change of configuration: rate
    /// limits, server errors, timeouts and connection failures.
    pub fn is_transient(&self) -> bool {
        matches!(
            self,
            Self::RateLimited { .. } | Self::Server { .. } | Self::Timeout | Self::Transport(_)
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_waiting_helps_with_transient_errors() {
        assert!(OktaApiError::Timeout.is_transient());
        assert!(OktaApiError::Server { status: 503 }.is_transient());
        assert!(
            OktaApiError::RateLimited {
                reset_in: Duration::from_secs(3)
            }
            .is_transient()
        );
        assert!(OktaApiError::Transport("connection refused".into()).is_transient());
        assert!(
            !OktaApiError::MissingScope {
                scope: "okta.logs.read".into()
            }
            .is_transient()
        );
        assert!(!OktaApiError::Credentials("401".into()).is_transient());
    }

    #[test]
    fn messages_say_what_to_do() {
        let scope = OktaApiError::MissingScope {
            scope: "okta.logs.read".into(),
        };
        assert_eq!(
            scope.to_string(),
            "the app is not granted okta.logs.read: grant it in the Admin Console ▸ \
             Applications ▸ the app ▸ Okta API Scopes"
        );
        let rate = OktaApiError::RateLimited {
            reset_in: Duration::from_secs(42),
        };
        assert!(rate.to_string().contains("resets in 42s"), "{rate}");
    }
}
