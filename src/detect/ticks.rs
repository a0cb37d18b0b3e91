//! The clock correlations run on, so that "followed by" means strictly after, in the System
//! Log's own order.
//!
//! rsigma's correlation engine places events on an integer clock it takes for seconds, and its
//! `temporal_ordered` counts a hit at the same instant as following one (`>=`). Fed Unix seconds,
//! a sign-in logged a few milliseconds *before* an MFA reset, or in the same millisecond, counted
//! as following it. So factorwatch runs that clock in ticks: a millisecond of `published` is
//! [`TICKS_PER_MS`] ticks, and each event published in a millisecond gets the next tick of it, in
//! the order factorwatch feeds the events. That order is the System Log's as Okta delivers it:
//! batches in the order they arrived, each batch's events by position (standalone passes, the
//! cluster's inputs in the order detection stored them, `rules test` the file's order). No two
//! events share a tick, so `>=` between two events is `>`; the rules' durations are converted to
//! ticks when the engine is built ([`in_ticks`]). Re-ordering a pass by uuid or time instead is not
//! needed: ticks already order events by time, and ties by arrival.

use std::collections::BTreeMap;

use rsigma_parser::{CorrelationRule, SigmaRule};
use serde::{Deserialize, Serialize};

/// Ticks in a millisecond: also the most events of one millisecond told apart (the rest share
/// its last tick).
pub const TICKS_PER_MS: i64 = 1_000;

/// Most milliseconds remembered: the state is saved in every snapshot, and a bulk reset feeds
/// the correlations thousands of events an hour. An event published in a millisecond forgotten
/// since (one that arrives later than this many newer milliseconds) may share a tick with an
/// event fed before it.
const MAX_MILLISECONDS: usize = 1_000;

/// Ticks in a second.
const TICKS_PER_SEC: u64 = 1_000 * TICKS_PER_MS as u64;

/// rsigma's custom attribute for how long a group stays quiet after it fired (a duration).
const SUPPRESS_ATTRIBUTE: &str = "rsigma.suppress";

/// When an event happened and when factorwatch received it, in Unix milliseconds.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct EventTime {
    /// Its `published` time (the arrival, for an event without one).
    pub published_ms: i64,
    /// When its batch was received (`rules test`: the latest event time read so far).
    pub received_ms: i64,
}

impl EventTime {
    /// The later of the two: an absence timer runs from here, so that a late event's timer waits
    /// its whole timespan for what follows it.
    pub fn known_ms(&self) -> i64 {
        self.published_ms.max(self.received_ms)
    }
}

/// How many events were fed at each millisecond recent enough for a window to hold them.
#[derive(Debug, Default, Clone, Serialize, Deserialize)]
pub struct Ties(BTreeMap<i64, i64>);

impl Ties {
    /// The tick of the next event published at `published_ms`. Milliseconds older than the
    /// newest by more than `horizon_ms` (the longest timespan) are forgotten, as windows no longer
    /// hold their events, and so are the oldest past [`MAX_MILLISECONDS`].
    pub fn tick(&mut self, published_ms: i64, horizon_ms: i64) -> i64 {
        let ms = published_ms.clamp(0, i64::MAX / (2 * TICKS_PER_MS));
        let fed = self.0.entry(ms).or_default();
        let tick = ms * TICKS_PER_MS + (*fed).min(TICKS_PER_MS - 1);
        *fed += 1;
        let newest = self.0.last_key_value().map_or(ms, |(&newest, _)| newest);
        let oldest_kept = newest.saturating_sub(horizon_ms);
        while self.0.len() > MAX_MILLISECONDS
            || self
                .0
                .first_key_value()
                .is_some_and(|(&at, _)| at < oldest_kept)
        {
            self.0.pop_first();
        }
        tick
    }
}

/// `parsed` with its durations (timespan, session gap, `rsigma.suppress`) in ticks.
pub fn in_ticks(parsed: &CorrelationRule) -> CorrelationRule {
    let mut rule = parsed.clone();
    rule.timespan.seconds = rule.timespan.seconds.saturating_mul(TICKS_PER_SEC);
    if let Some(gap) = &mut rule.gap {
        gap.seconds = gap.seconds.saturating_mul(TICKS_PER_SEC);
    }
    let suppress = rule.custom_attributes.get(SUPPRESS_ATTRIBUTE);
    if let Some(ticks) = duration_ticks(suppress.and_then(|value| value.as_str())) {
        let value = format!("{ticks}s").into();
        rule.custom_attributes
            .insert(SUPPRESS_ATTRIBUTE.to_owned(), value);
    }
    rule
}

/// The engine-wide `rsigma.suppress`, in ticks: rsigma takes it from the first detection rule
/// it is given that sets it.
pub fn engine_suppress_ticks(rules: &[&SigmaRule]) -> Option<u64> {
    rules.iter().find_map(|rule| {
        let suppress = rule.custom_attributes.get(SUPPRESS_ATTRIBUTE);
        duration_ticks(suppress.and_then(|value| value.as_str()))
    })
}

/// A Sigma duration (`"15m"`) in ticks.
fn duration_ticks(text: Option<&str>) -> Option<u64> {
    let timespan = rsigma_parser::Timespan::parse(text?).ok()?;
    Some(timespan.seconds.saturating_mul(TICKS_PER_SEC))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn events_of_one_millisecond_get_ticks_in_the_order_they_are_fed_and_later_ones_after() {
        let mut ties = Ties::default();
        let hour_ms = 3_600_000;
        let first = ties.tick(5_000, hour_ms);
        let second = ties.tick(5_000, hour_ms);
        let next_ms = ties.tick(5_001, hour_ms);
        // A late event of the first millisecond still comes after the two fed before it.
        let late = ties.tick(5_000, hour_ms);
        assert!(first < second && second < late && late < next_ms);
        assert_eq!(first, 5_000 * TICKS_PER_MS);
        // Past the longest timespan a millisecond is forgotten; the map stays bounded.
        for ms in 0..3 * MAX_MILLISECONDS as i64 {
            ties.tick(10_000 + ms, hour_ms);
        }
        assert_eq!(ties.0.len(), MAX_MILLISECONDS);
        ties.tick(10_000 + 2 * hour_ms, hour_ms);
        assert_eq!(ties.0.len(), 1);
    }
}
