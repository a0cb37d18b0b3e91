//! `[rules]` (and each org's `[okta.orgs.rules]`): which Sigma rules run, who is privileged,
//! how long an event is remembered for de-duplication, the values of `|expand` placeholders.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::Duration;

use serde::{Deserialize, Serialize};

/// `[rules]`: detection.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct RulesConfig {
    /// Load the rules shipped inside the binary (MFA factor deactivated, all MFA factors reset,
    /// an MFA factor disabled for the whole org).
    pub builtin: bool,
    /// With `builtin`, also load the default correlation rules (one actor resetting many users,
    /// MFA reset then password reset, MFA reset then sign-in from a new network, MFA removed
    /// and not replaced within 12 hours).
    pub builtin_correlations: bool,
    /// Extra Sigma rule files, or folders searched for `*.yml` / `*.yaml`.
    pub paths: Vec<PathBuf>,
    /// Logins (`alternateId`) or Okta user ids of privileged users (admins, executives, break-glass
    /// accounts): an MFA change on one of them raises the alert's level.
    pub privileged_users: Vec<String>,
    /// How long an event uuid is remembered, so that Okta's redelivery of a batch raises no second alert.
    #[serde(with = "humantime_serde")]
    pub dedup_window: Duration,
    /// Values of `|expand` placeholders: `office_networks = ["192.0.2.0/24"]` fills
    /// `%office_networks%`. A rule whose placeholder is not here fails to load.
    pub placeholders: BTreeMap<String, Vec<String>>,
    /// Alerts about one target user within this long of the incident's last alert belong to
    /// one incident (`incident` on each alert, and `notify = "first"` sinks paged once per rule
    /// of it). `"0s"` turns incidents off. Default 24 h; at most 30 days.
    #[serde(with = "humantime_serde")]
    pub incident_window: Duration,
}

/// The longest `incident_window`: an incident's state is kept that long after its last alert.
const MAX_INCIDENT_WINDOW: Duration = Duration::from_secs(30 * 24 * 3600);

impl RulesConfig {
    /// Checks what the types cannot; `key` names the block (`rules`, `okta.orgs "acme": rules`).
    pub fn validate(&self, key: &str) -> anyhow::Result<()> {
        if self.incident_window > MAX_INCIDENT_WINDOW {
            anyhow::bail!(
                "{key}.incident_window = {:?} is longer than 30 days; an incident's state is kept \
                 that long after its last alert (use \"30d\" or less, or \"0s\" to turn incidents off)",
                humantime::format_duration(self.incident_window).to_string()
            );
        }
        Ok(())
    }
}

impl Default for RulesConfig {
    fn default() -> Self {
        Self {
            builtin: true,
            builtin_correlations: true,
            paths: Vec::new(),
            privileged_users: Vec::new(),
            dedup_window: Duration::from_secs(24 * 3600),
            placeholders: BTreeMap::new(),
            incident_window: Duration::from_secs(24 * 3600),
        }
    }
}
