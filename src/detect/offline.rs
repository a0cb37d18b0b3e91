//! Detection without the service: `factorwatch rules check` and `factorwatch rules test`, so teams
//! tune rules on a System Log export before deploying them. The alerts are built by the same code
//! the detector uses (context, levels, grouping, de-duplication on uuid).

use std::collections::{BTreeMap, HashSet};
use std::path::PathBuf;

use serde_json::Value;
use serde_json::value::RawValue;

use super::enrich::{NetworkHistory, enrich};
use super::{Pass, RuleSet, group_factor_resets, secs};
use crate::alert::{Alert, Matched};
use crate::clock::{now_ms, rfc3339};
use crate::config::RulesConfig;
use crate::okta::event::{dedup_key, single_line};
use crate::okta::export::read_log_events;
use crate::okta::{LogEvent, Origin};

/// `rules check PATH...`: loads the rules (all or nothing) and prints what each one matches on.
pub fn check(paths: Vec<PathBuf>) -> anyhow::Result<()> {
    let rules = RuleSet::load(&RulesConfig {
        builtin: false,
        paths,
        ..RulesConfig::default()
    })?;
    for described in rules.describe() {
        let rule = &described.rule;
        println!("{} [{}] {}", rule.title, rule.level, rule.id);
        println!("  file:    {}", described.origin);
        println!("  fields:  {}", described.fields.join(", "));
        if let Some(correlates) = &described.correlates {
            println!("  correlates: {correlates}");
        }
        if described.correlation_only {
            println!("  alerts:  none of its own (feeds correlation rules)");
        }
    }
    eprintln!("all {} rules are valid", rules.len());
    Ok(())
}

/// `rules test --rules PATH EVENTS`: prints the alerts as JSON lines, then a summary per rule.
/// `privileged_users` ranks resets of those users higher, as `[rules] privileged_users` does.
pub fn test(
    rule_paths: Vec<PathBuf>,
    builtin: bool,
    privileged_users: Vec<String>,
    events_file: PathBuf,
) -> anyhow::Result<()> {
    let rules = RuleSet::load(&RulesConfig {
        builtin,
        paths: rule_paths,
        ..RulesConfig::default()
    })?;
    let events = read_log_events(&events_file)?;
    let count = events.len();
    let detected = detect_events(&rules, &privileged_users, events);
    let described = rules.describe();
    let mut per_rule: BTreeMap<&str, usize> = described
        .iter()
        .filter(|d| !d.correlation_only)
        .map(|d| (d.rule.title.as_str(), 0))
        .collect();
    for alert in &detected.alerts {
        println!("{}", alert.to_json());
        *per_rule.entry(alert.rule.title.as_str()).or_default() += 1;
    }
    eprintln!("{count} events, {} alerts", detected.alerts.len());
    for (title, matches) in per_rule {
        eprintln!("{matches:>8}  {title}");
    }
    for alert in &detected.pending {
        eprintln!(
            "pending: {} for {} (its window had not run out by the last event)",
            alert.rule.title, alert.id
        );
    }
    Ok(())
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
    let now = now_ms();
    let origin = Origin::default();
    let received_at = rfc3339(now);
    let mut correlator = rules.correlator();
    let mut history = NetworkHistory::default();
    let mut seen = HashSet::new();
    let mut alerts = Vec::new();
    for mut value in events {
        let raw = single_line(
            RawValue::from_string(value.to_string()).expect("a JSON value serializes to JSON"),
        );
        let key = dedup_key(&LogEvent(&value), raw.get());
        if !seen.insert(key.clone()) {
            continue;
        }
        let event_ms = LogEvent(&value)
            .published_secs()
            .map_or(now, |secs| secs.max(0) as u64 * 1000);
        alerts.extend(correlator.expired(secs(event_ms)));
        enrich(&mut value, &mut history);
        let pass = Pass {
            rules,
            sinks: &[],
            privileged_users,
            org: None,
            now: event_ms,
        };
        let matched = Matched {
            event: LogEvent(&value),
            raw: &raw,
            key: &key,
            origin: &origin,
            delivery_id: None,
            received_at: &received_at,
        };
        alerts.extend(pass.detect_event(&matched, &mut correlator));
    }
    OfflineDetection {
        alerts: group_factor_resets(alerts),
        pending: correlator.pending().into_iter().cloned().collect(),
    }
}
