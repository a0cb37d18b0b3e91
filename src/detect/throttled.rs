//! Warnings that can come with every event: each time counted in a metric, and logged at most
//! once a [`WARNED_EVERY`] with how many times they happened since.
//!
//! A mass reset refuses an absence timer, or meets a correlation at its cap of groups, once per
//! event; a warning each time put a line per reset in the log (BENCHMARKS.md, "Where a pass spends
//! its time"). The throttles belong to the rule set, and every correlator it builds shares them: in
//! a fleet, a correlation step builds a new correlator whenever another replica wrote the shared
//! state last, and throttles of its own would warn again at every such step.

use std::sync::{Mutex, PoisonError};
use std::time::{Duration, Instant};

use crate::telemetry::metrics::{
    CORRELATION_GROUP_CAP_REACHED_TOTAL, CORRELATION_TIMERS_REFUSED_TOTAL,
};

/// How often a warning that can repeat with every event is logged, at most.
pub(super) const WARNED_EVERY: Duration = Duration::from_secs(60);

/// The repeating warnings of the correlations of one rule set.
#[derive(Debug)]
pub(super) struct CorrelationWarnings {
    /// Absence timers refused because too many were open.
    pub refused_timers: Throttled,
    /// Events fed to a correlation at its cap of groups.
    pub at_cap: Throttled,
}

impl Default for CorrelationWarnings {
    fn default() -> Self {
        Self {
            refused_timers: Throttled::counted_in(CORRELATION_TIMERS_REFUSED_TOTAL),
            at_cap: Throttled::counted_in(CORRELATION_GROUP_CAP_REACHED_TOTAL),
        }
    }
}

/// One repeating warning: the counter every time goes to, how many times it happened since it
/// was last logged, and when that was.
#[derive(Debug)]
pub(super) struct Throttled {
    metric: &'static str,
    state: Mutex<Unlogged>,
}

#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
struct Unlogged {
    times: u64,
    logged_at: Option<Instant>,
}

impl Throttled {
    /// A warning whose every time is counted in the counter `metric`.
    fn counted_in(metric: &'static str) -> Self {
        Self {
            metric,
            state: Mutex::default(),
        }
    }

    /// Counts one more time (in the metric too); returns how many times there were since the
    /// last warning when a warning is due now.
    pub fn warning_due(&self) -> Option<u64> {
        metrics::counter!(self.metric).increment(1);
        self.warning_due_at(Instant::now())
    }

    fn warning_due_at(&self, now: Instant) -> Option<u64> {
        // A panic elsewhere while the lock was held leaves a count that is still a count.
        let mut state = self.state.lock().unwrap_or_else(PoisonError::into_inner);
        state.times += 1;
        if (state.logged_at).is_some_and(|at| now.saturating_duration_since(at) < WARNED_EVERY) {
            return None;
        }
        state.logged_at = Some(now);
        Some(std::mem::take(&mut state.times))
    }

    /// Times counted and not yet logged, and whether a warning was ever logged (for tests).
    #[cfg(test)]
    pub fn unlogged(&self) -> (u64, bool) {
        let state = *self.state.lock().unwrap();
        (state.times, state.logged_at.is_some())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_repeated_warning_is_logged_once_then_counted_until_a_minute_has_passed() {
        let throttled = Throttled::counted_in(CORRELATION_TIMERS_REFUSED_TOTAL);
        let start = Instant::now();
        assert_eq!(
            throttled.warning_due_at(start),
            Some(1),
            "the first time is logged at once"
        );
        for second in 0..60 {
            let now = start + Duration::from_secs(second);
            assert_eq!(throttled.warning_due_at(now), None, "at {second} s");
        }
        assert_eq!(
            throttled.unlogged(),
            (60, true),
            "those within a minute wait for the next warning"
        );
        assert_eq!(
            throttled.warning_due_at(start + WARNED_EVERY),
            Some(61),
            "a minute on, the count is logged and starts again"
        );
        assert_eq!(throttled.unlogged(), (0, true));
        assert_eq!(
            throttled.warning_due_at(start + WARNED_EVERY + Duration::from_secs(1)),
            None
        );
    }
}
