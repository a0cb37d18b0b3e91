//! `[okta.context]` (and each org's `[okta.orgs.context]`): whether MFA alerts carry live
//! context from Okta's API, and how long an alert may wait for it.

use std::time::Duration;

use anyhow::bail;
use serde::{Deserialize, Serialize};

/// The most an alert may be held for context: beyond this, a lookup is not worth the delay of
/// every alert of the pass.
const MAX_TIMEOUT: Duration = Duration::from_secs(30);
/// The most groups an alert lists: Okta answers up to 10,000 in a page.
const MAX_GROUPS: usize = 1000;

/// `[okta.context]`: live Okta context on MFA alerts (the target's factors left, admin roles,
/// groups and status; the actor's roles). Needs `[okta.api]` and the scopes `okta.users.read`
/// and `okta.roles.read`.
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct OktaContextConfig {
    /// Look the context up on each MFA alert.
    pub enabled: bool,
    /// The most an alert ever waits for its context: the lookups still running then are
    /// abandoned, and the alert is delivered saying which ones failed (`timeout`).
    #[serde(with = "humantime_serde")]
    pub timeout: Duration,
    /// How long an answer is reused for later alerts about the same user.
    #[serde(with = "humantime_serde")]
    pub ttl: Duration,
    /// The most answers kept; past it the oldest is forgotten first.
    pub max_entries: usize,
    /// The most group names an alert lists (it says `groups_truncated` when there were more).
    pub max_groups: usize,
}

impl Default for OktaContextConfig {
    fn default() -> Self {
        Self {
            enabled: false,
            timeout: Duration::from_secs(2),
            ttl: Duration::from_secs(300),
            max_entries: 10_000,
            max_groups: 20,
        }
    }
}

impl OktaContextConfig {
    /// Checks the values (no I/O); `has_api` says whether the org has `[okta.api]`.
    pub fn validate(&self, has_api: bool) -> anyhow::Result<()> {
        if !self.enabled {
            return Ok(());
        }
        if !has_api {
            bail!(
                "enabled needs [okta.api] (org_url and credentials, with the scopes \
                 okta.users.read and okta.roles.read) to look users up; see \
                 docs/okta-setup.md#11-live-okta-context-on-alerts"
            );
        }
        if self.timeout.is_zero() || self.timeout > MAX_TIMEOUT {
            bail!(
                "timeout = {} is out of range: give 1ms to 30s (every alert of a detection pass \
                 waits up to this long)",
                humantime::format_duration(self.timeout)
            );
        }
        if self.max_entries == 0 {
            bail!("max_entries must be at least 1 (set enabled = false to look nothing up)");
        }
        if !(1..=MAX_GROUPS).contains(&self.max_groups) {
            bail!(
                "max_groups = {} is out of range: give 1 to {MAX_GROUPS}",
                self.max_groups
            );
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn enabled_context_needs_api_access_and_sane_values() {
        OktaContextConfig::default().validate(false).unwrap();
        let enabled = OktaContextConfig {
            enabled: true,
            ..Default::default()
        };
        enabled.validate(true).unwrap();
        let err = enabled.validate(false).unwrap_err().to_string();
        assert!(
            err.contains("[okta.api]") && err.contains("okta.roles.read"),
            "{err}"
        );
        let zero = OktaContextConfig {
            timeout: Duration::ZERO,
            ..enabled.clone()
        };
        let err = zero.validate(true).unwrap_err().to_string();
        assert!(err.contains("timeout"), "{err}");
        let unbounded = OktaContextConfig {
            max_entries: 0,
            ..enabled.clone()
        };
        assert!(unbounded.validate(true).is_err());
        let no_groups = OktaContextConfig {
            max_groups: 0,
            ..enabled
        };
        let err = no_groups.validate(true).unwrap_err().to_string();
        assert!(err.contains("max_groups"), "{err}");
    }
}
