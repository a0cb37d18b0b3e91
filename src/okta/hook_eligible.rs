//! Which System Log event types an event hook can deliver at all. The others
//! (`system.mfa.factor.deactivate`, `user.mfa.attempt_bypass`, `user.session.impersonation.*`,
//! every `event_hook.*`) reach factorwatch only through reconciliation with the System Log.

use std::collections::HashSet;
use std::sync::OnceLock;

/// Okta's catalog of event types tagged `event-hook-eligible`, one per line (source and release
/// in the file's header).
const CATALOG: &str = include_str!("event_hook_eligible.txt");

/// True when Okta can deliver `event_type` through an event hook.
pub fn is_hook_eligible(event_type: &str) -> bool {
    static ELIGIBLE: OnceLock<HashSet<&'static str>> = OnceLock::new();
    ELIGIBLE
        .get_or_init(|| hook_eligible_types().collect())
        .contains(event_type)
}

/// Every event type an event hook can deliver, in the catalog's order.
pub fn hook_eligible_types() -> impl Iterator<Item = &'static str> {
    CATALOG
        .lines()
        .map(str::trim)
        .filter(|line| !line.is_empty() && !line.starts_with('#'))
}

#[cfg(test)]
mod tests {
    use super::is_hook_eligible;

    #[test]
    fn the_catalog_separates_what_hooks_deliver_from_what_only_the_log_has() {
        for delivered in [
            "user.mfa.factor.deactivate",
            "user.mfa.factor.reset_all",
            "user.session.start",
        ] {
            assert!(is_hook_eligible(delivered), "{delivered}");
        }
        for log_only in [
            "system.mfa.factor.deactivate",
            "user.mfa.attempt_bypass",
            "user.session.impersonation.initiate",
            "event_hook.deactivated",
            "# Okta System Log event types that Okta can deliver through event hooks",
        ] {
            assert!(!is_hook_eligible(log_only), "{log_only}");
        }
    }
}
