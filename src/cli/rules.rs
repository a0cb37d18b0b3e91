//! `factorwatch rules check` and `factorwatch rules test`: the printing around the offline
//! evaluation in [`crate::detect::offline`].

use std::path::{Path, PathBuf};

use crate::Config;
use crate::detect::RulesConfig;
use crate::detect::offline::{alerts_per_rule, detect_events, load_rules};
use crate::okta::export::read_log_events;

/// The `[rules]` of the configuration file `config` (`--config`), as `serve` reads it; the
/// defaults without one.
fn rules_config(config: Option<&Path>) -> anyhow::Result<RulesConfig> {
    match config {
        Some(path) => Ok(Config::load(Some(path))?.rules),
        None => Ok(RulesConfig::default()),
    }
}

/// `rules check PATH...`: loads the rules (all or nothing) and prints what each one matches on.
/// With `config`, its `[rules.placeholders]` fill `|expand` placeholders.
pub fn check(paths: Vec<PathBuf>, config: Option<&Path>) -> anyhow::Result<()> {
    let rules = load_rules(&rules_config(config)?, paths, false)?;
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
/// `privileged_users` ranks resets of those users higher, as `[rules] privileged_users` does;
/// with `config`, its `[rules]` apply too (placeholders, privileged users, built-in correlations).
pub fn test(
    rule_paths: Vec<PathBuf>,
    builtin: bool,
    mut privileged_users: Vec<String>,
    events_file: PathBuf,
    config: Option<&Path>,
) -> anyhow::Result<()> {
    anyhow::ensure!(
        builtin || !rule_paths.is_empty(),
        "name rule files with --rules, or use --builtin"
    );
    let config = rules_config(config)?;
    privileged_users.extend(config.privileged_users.iter().cloned());
    let rules = load_rules(&config, rule_paths, builtin)?;
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
