//! `[okta.reconcile]` (and each org's `[okta.orgs.reconcile]`): whether and how often the org's
//! System Log is read, and how long the event hook gets to deliver an event first.

use std::time::Duration;

use anyhow::bail;
use serde::{Deserialize, Serialize};

use crate::okta_api::MAX_LOGS_PAGE;

/// `[okta.reconcile]`: reading the org's System Log beside its event hook.
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct ReconcileConfig {
    /// Poll the System Log (needs `[okta.api]`).
    pub enabled: bool,
    /// Time between polls once the poller has caught up (a full page is followed at once).
    #[serde(with = "humantime_serde")]
    pub interval: Duration,
    /// How long after the poller reads an event a hook could deliver it waits before detecting
    /// it: the hook's head start. An event the hook delivered within it alerts as `event_hook`;
    /// after it, the poller's copy alerts as `system_log` and counts as recovered.
    #[serde(with = "humantime_serde")]
    pub grace: Duration,
    /// On the first poll (no cursor stored yet), how far back to start reading.
    #[serde(with = "humantime_serde")]
    pub lookback: Duration,
    /// Events asked for per page (Okta's `limit`, 1 to 1,000).
    pub page_size: u32,
    /// In a `[cluster]`, how long a replica's polling lease lasts unless renewed: how soon
    /// another replica takes over after the poller's replica stops.
    #[serde(with = "humantime_serde")]
    pub lease: Duration,
    /// How long the event hook may go without delivering while the System Log shows events it
    /// should have delivered (published after its last delivery, and at least this long ago)
    /// before factorwatch raises "Okta Event Hook Silent" and `/readyz` says so. `0s` turns the
    /// check off (an org read through the System Log only, with no event hook).
    #[serde(with = "humantime_serde")]
    pub silence_after: Duration,
}

impl Default for ReconcileConfig {
    fn default() -> Self {
        Self {
            enabled: false,
            interval: Duration::from_secs(60),
            grace: Duration::from_secs(120),
            lookback: Duration::from_secs(3600),
            page_size: MAX_LOGS_PAGE,
            lease: Duration::from_secs(180),
            silence_after: Duration::from_secs(15 * 60),
        }
    }
}

impl ReconcileConfig {
    /// Checks the values (no I/O); `has_api` says whether the org has `[okta.api]`.
    pub fn validate(&self, has_api: bool) -> anyhow::Result<()> {
        // Checked even when the poller is off: `backfill` reads with it too.
        if !(1..=MAX_LOGS_PAGE).contains(&self.page_size) {
            bail!(
                "page_size = {} is out of range: Okta returns 1 to {MAX_LOGS_PAGE} events a page",
                self.page_size
            );
        }
        if !self.enabled {
            return Ok(());
        }
        if !has_api {
            bail!(
                "enabled needs [okta.api] (org_url and credentials) to read the System Log; see docs/okta-setup.md#10-reconcile-with-the-system-log"
            );
        }
        if self.interval < Duration::from_millis(100) {
            bail!("interval must be at least 100ms (Okta's rate limits count every poll)");
        }
        if self.lease <= self.interval {
            bail!(
                "lease ({}) must be longer than interval ({}): the poller renews it once per poll",
                humantime::format_duration(self.lease),
                humantime::format_duration(self.interval)
            );
        }
        if !self.silence_after.is_zero() && self.silence_after < 2 * self.interval {
            bail!(
                "silence_after ({}) must be at least twice interval ({}): in a cluster each \
                 replica shares its last hook delivery once per poll",
                humantime::format_duration(self.silence_after),
                humantime::format_duration(self.interval)
            );
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_enabled_poller_needs_api_access_and_sane_values() {
        let enabled = ReconcileConfig {
            enabled: true,
            ..Default::default()
        };
        enabled.validate(true).unwrap();
        ReconcileConfig::default().validate(false).unwrap();
        let err = enabled.validate(false).unwrap_err().to_string();
        assert!(err.contains("[okta.api]"), "{err}");
        let big = ReconcileConfig {
            page_size: 5000,
            ..enabled.clone()
        };
        assert!(
            big.validate(true)
                .unwrap_err()
                .to_string()
                .contains("1 to 1000")
        );
        let big_for_backfill = ReconcileConfig {
            page_size: 5000,
            ..Default::default()
        };
        assert!(
            big_for_backfill.validate(true).is_err(),
            "backfill reads with it"
        );
        let short_lease = ReconcileConfig {
            lease: Duration::from_secs(30),
            ..enabled
        };
        let err = short_lease.validate(true).unwrap_err().to_string();
        assert!(err.contains("longer than interval"), "{err}");
        let hasty = ReconcileConfig {
            enabled: true,
            silence_after: Duration::from_secs(90),
            ..Default::default()
        };
        let err = hasty.validate(true).unwrap_err().to_string();
        assert!(err.contains("at least twice interval"), "{err}");
        let no_hook = ReconcileConfig {
            silence_after: Duration::ZERO,
            ..hasty
        };
        no_hook.validate(true).unwrap();
    }
}
