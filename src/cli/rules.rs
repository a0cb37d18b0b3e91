//! `factorwatch rules check` and `factorwatch rules test`: the printing around the offline
//! evaluation in [`crate::detect::offline`].

use std::path::PathBuf;

use crate::detect::offline::{alerts_per_rule, detect_events, load_rules};
use crate::okta::export::read_log_events;

/// `rules check PATH...`: loads the rules (all or nothing) and prints what each one matches on.
pub fn check(paths: Vec<PathBuf>) -> anyhow::Result<()> {
    let rules = load_rules(paths, false)?;
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
    anyhow::ensure!(
        builtin || !rule_paths.is_empty(),
        "name rule files with --rules, or use --builtin"
    );
    let rules = load_rules(rule_paths, builtin)?;
    let events = read_log_events(&events_file)?;
    let count = events.len();
    let detected = detect_events(&rules, &privileged_users, events);
    for alert in &detected.alerts {
        println!("{}", alert.to_json());
    }
    eprintln!("{count} events, {} alerts", detected.alerts.len());
    for (title, matches) in alerts_per_rule(&rules, &detected.alerts) {
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
