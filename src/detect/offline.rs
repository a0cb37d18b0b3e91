//! Detection without the service, for `factorwatch rules check` and `factorwatch rules test`
//! (which `cli::rules` prints), so teams tune rules on a System Log export before deploying them.
//! The alerts are built by the same code the detector uses (context, levels, grouping,
//! de-duplication on uuid).

use std::borrow::Cow;
use std::collections::{BTreeMap, HashSet, VecDeque};
use std::path::PathBuf;

use serde_json::Value;
use serde_json::value::RawValue;

use super::RulesConfig;
use super::enrich::{NetworkHistory, enrich};
use super::{Pass, RuleSet, group_factor_resets};
use crate::alert::{Alert, Matched};
use crate::clock::{now_ms, rfc3339};
use crate::okta::event::{dedup_key, single_line};
use crate::okta::{Delivery, LogEvent, Origin};

/// The rules in `paths`, plus the built-in ones with `builtin`: all or nothing, as `[rules]`
/// loads them. The rest of `config` (the configuration file's `[rules]`, or the defaults) applies:
/// `|expand` placeholders, and `builtin_correlations` with `builtin`; its own `paths` do not.
pub fn load_rules(
    config: &RulesConfig,
    paths: Vec<PathBuf>,
    builtin: bool,
) -> anyhow::Result<RuleSet> {
    RuleSet::load(&RulesConfig {
        builtin,
        paths,
        ..config.clone()
    })
}

/// How many of `alerts` each rule of `rules` raised, by rule title, including the rules that
/// raised none; rules that only feed correlations are left out (they raise no alerts).
pub fn alerts_per_rule(rules: &RuleSet, alerts: &[Alert]) -> BTreeMap<String, usize> {
    let mut per_rule: BTreeMap<String, usize> = rules
        .describe()
        .into_iter()
        .filter(|d| !d.correlation_only)
        .map(|d| (d.rule.title, 0))
        .collect();
    for alert in alerts {
        *per_rule.entry(alert.rule.title.clone()).or_default() += 1;
    }
    per_rule
}

/// What `rules test` found.
#[derive(Debug)]
pub struct OfflineDetection {
    /// The alerts, in order.
    pub alerts: Vec<Alert>,
    /// Alerts of absence timers still open when the events ran out.
    pub pending: Vec<Alert>,
}

/// The alerts the service would raise for `events`, in order. Time is the events' own: a
/// correlation timer fires when a later event is past its deadline; those still open at the
/// end are `pending`.
pub fn detect_events(
    rules: &RuleSet,
    privileged_users: &[String],
    events: Vec<Value>,
) -> OfflineDetection {
    detect_events_via(rules, privileged_users, events, Delivery::EventHook)
}

/// [`detect_events`] over events that came `via` the hook or the System Log (what the alerts'
/// `source` says).
pub fn detect_events_via(
    rules: &RuleSet,
    privileged_users: &[String],
    events: Vec<Value>,
    via: Delivery,
) -> OfflineDetection {
    let mut detector = OfflineDetector::new(rules, privileged_users, via);
    let mut alerts = Vec::new();
    for event in events {
        alerts.extend(detector.push(event));
    }
    let mut rest = detector.finish();
    alerts.append(&mut rest.alerts);
    OfflineDetection {
        alerts,
        pending: rest.pending,
    }
}

/// How long, in the events' time, an offline run holds an alert before it lets it go, so that
/// the other resets of its Identity Engine transaction (logged within the same second) are
/// grouped into it, as the service groups the resets of one pass.
const GROUP_HOLD_MS: i64 = 10 * 60 * 1000;

/// How long, in the events' time, an offline run remembers an event's key to drop its
/// duplicates. A duplicate has its original's `published`, so it is dropped unless the run has
/// read a day's events past it first; the memory it takes is a day of keys, not the file's.
const DEDUP_HORIZON_MS: i64 = 24 * 3600 * 1000;

/// Detection over a stream of events, one at a time, in bounded memory: what `rules test`
/// runs over an export of any size. Time is the events' own (the latest `published` read so
/// far); a correlation timer fires when a later event is past its deadline.
pub struct OfflineDetector<'a> {
    rules: &'a RuleSet,
    privileged_users: &'a [String],
    origin: Origin,
    received_at: String,
    now: u64,
    correlator: super::correlate::Correlator,
    history: NetworkHistory,
    /// The keys of the events read within [`DEDUP_HORIZON_MS`], and the same keys by time.
    seen: HashSet<String>,
    seen_by_time: BTreeMap<i64, Vec<String>>,
    /// Alerts raised and not yet let go, with the time they were raised at, oldest first. A
    /// queue: an export of a mass reset holds thousands at once and lets one go per event.
    held: VecDeque<(i64, Alert)>,
    clock_ms: i64,
}

impl<'a> OfflineDetector<'a> {
    /// A detector for events that came `via` the hook or the System Log.
    pub fn new(rules: &'a RuleSet, privileged_users: &'a [String], via: Delivery) -> Self {
        let now = now_ms();
        Self {
            rules,
            privileged_users,
            origin: Origin {
                via,
                ..Origin::default()
            },
            received_at: rfc3339(now),
            now,
            correlator: rules.correlator(),
            history: NetworkHistory::default(),
            seen: HashSet::new(),
            seen_by_time: BTreeMap::new(),
            held: VecDeque::new(),
            clock_ms: i64::MIN,
        }
    }

    /// Detects `value`; returns the alerts no longer held, in order.
    pub fn push(&mut self, mut value: Value) -> Vec<Alert> {
        let raw = single_line(Cow::Owned(
            RawValue::from_string(value.to_string()).expect("a JSON value serializes to JSON"),
        ));
        let key = dedup_key(&LogEvent(&value), raw.get());
        if self.seen.contains(&key) {
            return Vec::new();
        }
        let event_ms = LogEvent(&value).published_ms().unwrap_or(self.now as i64);
        self.clock_ms = self.clock_ms.max(event_ms);
        self.remember(key.clone(), event_ms);
        let clock_ms = self.clock_ms;
        let expired = self.correlator.expired(clock_ms.div_euclid(1000));
        self.held
            .extend(expired.into_iter().map(|alert| (clock_ms, alert)));
        enrich(&mut value, &mut self.history);
        let pass = Pass {
            rules: self.rules,
            privileged_users: self.privileged_users,
            org: None,
            now: clock_ms.max(0) as u64,
        };
        let matched = Matched {
            event: LogEvent(&value),
            raw: &raw,
            key: &key,
            origin: &self.origin,
            delivery_id: None,
            received_at: &self.received_at,
        };
        let raised = pass.detect_event(&matched, clock_ms, &mut self.correlator);
        self.held
            .extend(raised.into_iter().map(|alert| (clock_ms, alert)));
        self.let_go(clock_ms.saturating_sub(GROUP_HOLD_MS))
    }

    /// Records `key` as seen at `event_ms`, and forgets the keys past the horizon.
    fn remember(&mut self, key: String, event_ms: i64) {
        self.seen.insert(key.clone());
        self.seen_by_time.entry(event_ms).or_default().push(key);
        let horizon = self.clock_ms.saturating_sub(DEDUP_HORIZON_MS);
        while let Some(entry) = self.seen_by_time.first_entry() {
            if *entry.key() >= horizon {
                break;
            }
            for key in entry.remove() {
                self.seen.remove(&key);
            }
        }
    }

    /// The held alerts raised before `before`, grouped, in order.
    fn let_go(&mut self, before: i64) -> Vec<Alert> {
        let mut gone = Vec::new();
        while let Some((_, alert)) = self.held.pop_front_if(|(at, _)| *at < before) {
            gone.push(alert);
        }
        group_factor_resets(gone)
    }

    /// Ends the run: the alerts still held, and the absence timers still open.
    pub fn finish(mut self) -> OfflineDetection {
        OfflineDetection {
            alerts: self.let_go(i64::MAX),
            pending: self.correlator.pending().into_iter().cloned().collect(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::okta::samples::{self, Initiator};

    const DAY_MS: u64 = 24 * 3600 * 1000;

    /// `event` as published at `ms`.
    fn at(mut event: Value, ms: u64) -> Value {
        event["published"] = rfc3339(ms).into();
        event
    }

    #[test]
    fn alerts_go_out_as_the_events_move_on_and_old_keys_are_forgotten() {
        let rules = load_rules(&RulesConfig::default(), Vec::new(), true).unwrap();
        let mut detector = OfflineDetector::new(&rules, &[], Delivery::EventHook);
        let users = samples::users();
        let start = 1_790_000_000_000;
        let reset =
            |factor| samples::mfa_factor_deactivate(&users[0], factor, Initiator::Admin, "tx");
        let first = at(reset("SMS"), start);
        assert!(
            detector.push(first.clone()).is_empty(),
            "held for its transaction"
        );
        assert!(
            detector
                .push(at(reset("OKTA_VERIFY_PUSH"), start + 1))
                .is_empty()
        );
        assert!(
            detector.push(first).is_empty(),
            "a duplicate raises nothing"
        );
        assert_eq!(detector.seen.len(), 2);

        // Two days later the resets are let go, grouped, and their keys forgotten.
        let later = at(
            samples::session_start(&users[1], "198.51.100.7"),
            start + 2 * DAY_MS,
        );
        let gone = detector.push(later);
        assert!(!gone.is_empty());
        for alert in &gone {
            let context = alert.context.as_ref().expect("an MFA alert has context");
            assert_eq!(
                context.event_uuids.len(),
                2,
                "{}: one alert per transaction",
                alert.rule.title
            );
        }
        assert_eq!(detector.seen.len(), 1, "only the day's keys are remembered");
        // Left: what the later event set off (absence timers that ran out), nothing of the resets.
        let rest = detector.finish();
        assert!(rest.alerts.iter().all(|alert| alert.correlation.is_some()));
    }
}
