//! Detection without the service, for `factorwatch rules check` and `factorwatch rules test`
//! (which `cli::rules` prints), so teams tune rules on a System Log export before deploying them.
//! The alerts are built by the same code the detector uses (context, levels, grouping,
//! de-duplication on uuid).

use std::collections::{BTreeMap, HashSet};
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
    let now = now_ms();
    let origin = Origin {
        via,
        ..Origin::default()
    };
    let received_at = rfc3339(now);
    let mut correlator = rules.correlator();
    let mut history = NetworkHistory::default();
    let mut seen = HashSet::new();
    let mut alerts = Vec::new();
    // Offline time: the latest event time read so far, which is when a later event "arrived".
    let mut clock_ms = i64::MIN;
    for mut value in events {
        let raw = single_line(
            RawValue::from_string(value.to_string()).expect("a JSON value serializes to JSON"),
        );
        let key = dedup_key(&LogEvent(&value), raw.get());
        if !seen.insert(key.clone()) {
            continue;
        }
        let event_ms = LogEvent(&value).published_ms().unwrap_or(now as i64);
        clock_ms = clock_ms.max(event_ms);
        alerts.extend(correlator.expired(clock_ms.div_euclid(1000)));
        enrich(&mut value, &mut history);
        let pass = Pass {
            rules,
            privileged_users,
            org: None,
            now: clock_ms.max(0) as u64,
        };
        let matched = Matched {
            event: LogEvent(&value),
            raw: &raw,
            key: &key,
            origin: &origin,
            delivery_id: None,
            received_at: &received_at,
        };
        alerts.extend(pass.detect_event(&matched, clock_ms, &mut correlator));
    }
    OfflineDetection {
        alerts: group_factor_resets(alerts),
        pending: correlator.pending().into_iter().cloned().collect(),
    }
}
