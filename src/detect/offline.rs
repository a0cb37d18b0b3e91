//! Detection without the service: `factorwatch rules check` and `factorwatch rules test`, so teams
//! tune rules on a System Log export before deploying them. The alerts are built by the same code
//! the detector uses (context, levels, grouping, de-duplication on uuid).

use std::collections::{BTreeMap, HashSet};
use std::path::PathBuf;

use serde_json::Value;
use serde_json::value::RawValue;

use super::{Pass, RuleSet, group_factor_resets};
use crate::alert::{Alert, Matched};
use crate::clock::{now_ms, rfc3339};
use crate::config::RulesConfig;
use crate::okta::event::{dedup_key, single_line};
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
    }
    eprintln!("all {} rules are valid", rules.len());
    Ok(())
}

/// `rules test --rules PATH EVENTS`: prints the alerts as JSON lines, then a summary per rule.
pub fn test(rule_paths: Vec<PathBuf>, builtin: bool, events_file: PathBuf) -> anyhow::Result<()> {
    let rules = RuleSet::load(&RulesConfig {
        builtin,
        paths: rule_paths,
        ..RulesConfig::default()
    })?;
    let events = read_log_events(&events_file)?;
    let count = events.len();
    let alerts = detect_events(&rules, &[], events);
    let mut per_rule: BTreeMap<&str, usize> = rules
        .describe()
        .iter()
        .map(|d| (d.rule.title.as_str(), 0))
        .collect();
    for alert in &alerts {
        println!("{}", alert.to_json());
        *per_rule.entry(alert.rule.title.as_str()).or_default() += 1;
    }
    eprintln!("{count} events, {} alerts", alerts.len());
    for (title, matches) in per_rule {
        eprintln!("{matches:>8}  {title}");
    }
    Ok(())
}

/// The alerts the service would raise for `events`, in order.
pub fn detect_events(
    rules: &RuleSet,
    privileged_users: &[String],
    events: Vec<Value>,
) -> Vec<Alert> {
    let now = now_ms();
    let pass = Pass {
        rules,
        sinks: &[],
        privileged_users,
        now,
        seen_until_ms: now,
    };
    let origin = Origin::default();
    let received_at = rfc3339(now);
    let mut seen = HashSet::new();
    let mut alerts = Vec::new();
    for value in events {
        let raw = single_line(
            RawValue::from_string(value.to_string()).expect("a JSON value serializes to JSON"),
        );
        let key = dedup_key(&LogEvent(&value), raw.get());
        if !seen.insert(key.clone()) {
            continue;
        }
        let matched = Matched {
            event: LogEvent(&value),
            raw: &raw,
            key: &key,
            origin: &origin,
            delivery_id: None,
            received_at: &received_at,
        };
        for rule in rules.matching(&value) {
            alerts.push((0, pass.alert(rule, &matched)));
        }
    }
    group_factor_resets(alerts)
        .into_iter()
        .map(|(_, alert)| alert)
        .collect()
}

/// Events from a System Log export (`/api/v1/logs` JSON array), JSON lines, or event-hook
/// envelopes (one, or one per line); envelopes are unpacked into their events.
pub fn read_log_events(path: &std::path::Path) -> anyhow::Result<Vec<Value>> {
    let values = crate::simulate::read_events(path)?;
    Ok(values
        .into_iter()
        .flat_map(|value| match value["data"]["events"].as_array() {
            Some(events) => events.clone(),
            None => vec![value],
        })
        .collect())
}
