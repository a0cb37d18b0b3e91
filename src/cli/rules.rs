//! `factorwatch rules check` and `factorwatch rules test`: the printing around the offline
//! evaluation in [`crate::detect::offline`].

use std::path::{Path, PathBuf};

use anyhow::Context;
use serde_json::Value;

use super::status_line::StatusLine;
use super::time_arg::TimeArg;
use crate::Config;
use crate::app::{RECONCILE_SCOPES, system_log_filter};
use crate::clock::now_ms;
use crate::config::PipelineConfig;
use crate::detect::offline::{alerts_per_rule, detect_events_via, load_rules};
use crate::detect::{RuleSet, RulesConfig};
use crate::okta::Delivery;
use crate::okta::export::read_log_events;
use crate::okta_api::{MAX_LOGS_PAGE, OktaClient};
use crate::reconcile::backfill::{Window, WindowReader};

/// The `[rules]` of the configuration file `config` (`--config`), as `serve` runs the top-level
/// org's (deployment placeholders filled); the defaults without one.
fn rules_config(config: Option<&Path>) -> anyhow::Result<RulesConfig> {
    match config {
        Some(path) => Ok(Config::load(Some(path))?.top_level_rules()),
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

/// Where `rules test` reads its events.
pub enum EventSource {
    /// A System Log export, JSON lines or event-hook envelopes.
    File(PathBuf),
    /// The live System Log of an org with `[okta.api]` (`--okta`).
    Okta {
        /// Where to start.
        since: TimeArg,
        /// Where to end (default: now).
        until: Option<TimeArg>,
        /// The `[[okta.orgs]]` org; `None`: the top-level org.
        org: Option<String>,
    },
}

/// What `rules test` runs, over what.
pub struct TestOptions {
    /// Rule files or folders.
    pub rule_paths: Vec<PathBuf>,
    /// Also the built-in rules.
    pub builtin: bool,
    /// Users whose resets rank higher, besides the configuration's `privileged_users`.
    pub privileged_users: Vec<String>,
    /// The events.
    pub source: EventSource,
}

/// `rules test --rules PATH (EVENTS | --okta --since TIME)`: prints the alerts as JSON lines,
/// then a summary per rule; alerts nothing and stores nothing. With `config`, its `[rules]`
/// apply too (placeholders, privileged users, built-in correlations); with `--okta`, those of the
/// org read.
pub async fn test(options: TestOptions, config: Option<&Path>) -> anyhow::Result<()> {
    anyhow::ensure!(
        options.builtin || !options.rule_paths.is_empty(),
        "name rule files with --rules, or use --builtin"
    );
    let TestOptions {
        rule_paths,
        builtin,
        privileged_users,
        source,
    } = options;
    let load = |config: RulesConfig| -> anyhow::Result<(RuleSet, Vec<String>)> {
        let mut privileged = privileged_users.clone();
        privileged.extend(config.privileged_users.iter().cloned());
        Ok((
            load_rules(&config, rule_paths.clone(), builtin)?,
            privileged,
        ))
    };
    match source {
        EventSource::File(path) => {
            let (rules, privileged) = load(rules_config(config)?)?;
            let events = read_log_events(&path)?;
            print_detection(&rules, &privileged, events, Delivery::EventHook);
        }
        EventSource::Okta { since, until, org } => {
            let pipeline = okta_pipeline(config, org.as_deref())?;
            let (rules, privileged) = load(pipeline.rules.clone())?;
            let until = until.unwrap_or(TimeArg { ms: now_ms() });
            let events = read_system_log(&pipeline, &rules, since, until).await?;
            print_detection(&rules, &privileged, events, Delivery::SystemLog);
        }
    }
    Ok(())
}

/// The org `--okta` reads, from the configuration `--config` names.
fn okta_pipeline(config: Option<&Path>, org: Option<&str>) -> anyhow::Result<PipelineConfig> {
    let path = config.context(
        "--okta reads the org's [okta.api] from the configuration: name it with --config",
    )?;
    let pipeline = Config::load(Some(path))?.pipeline(org)?;
    anyhow::ensure!(
        pipeline.api.is_some(),
        "{} has no [okta.api]: --okta reads the System Log through Okta's API; configure it as \
         docs/okta-setup.md (10.) shows",
        pipeline.label()
    );
    Ok(pipeline)
}

/// The events of `pipeline`'s System Log from `since` to `until` that `rules` can match, with
/// progress on stderr.
async fn read_system_log(
    pipeline: &PipelineConfig,
    rules: &RuleSet,
    since: TimeArg,
    until: TimeArg,
) -> anyhow::Result<Vec<Value>> {
    anyhow::ensure!(
        since.ms < until.ms,
        "--since {} is not before --until {}",
        since.rfc3339(),
        until.rfc3339()
    );
    let api = pipeline
        .api
        .as_ref()
        .context("[okta.api] is checked above")?;
    let org = pipeline.org.as_deref().unwrap_or_default();
    let client = OktaClient::new(api, RECONCILE_SCOPES, org)?;
    let filter = system_log_filter(rules);
    eprintln!(
        "reading {}'s System Log from {} to {}",
        api.org_url,
        since.rfc3339(),
        until.rfc3339()
    );
    eprintln!("  filter: {}", filter.as_deref().unwrap_or("every event"));
    let window = Window {
        since_ms: since.ms,
        until_ms: until.ms,
    };
    let mut reader = WindowReader::new(client, window, filter, MAX_LOGS_PAGE);
    let mut status = StatusLine::stderr();
    let mut events = Vec::new();
    let mut pages = 0;
    while let Some(page) = reader.next_page().await {
        for event in page?.events {
            events.push(serde_json::from_str(event.get())?);
        }
        pages += 1;
        status.show(&format!("read {} events in {pages} pages", events.len()));
    }
    status.finish();
    Ok(events)
}

/// Runs `rules` over `events` and prints the alerts on stdout, the summary on stderr.
fn print_detection(
    rules: &RuleSet,
    privileged_users: &[String],
    events: Vec<Value>,
    via: Delivery,
) {
    let count = events.len();
    let detected = detect_events_via(rules, privileged_users, events, via);
    for alert in &detected.alerts {
        println!("{}", alert.to_json());
    }
    eprintln!("{count} events, {} alerts", detected.alerts.len());
    for (title, matches) in alerts_per_rule(rules, &detected.alerts) {
        eprintln!("{matches:>8}  {title}");
    }
    for alert in &detected.pending {
        eprintln!(
            "pending: {} for {} (its window had not run out by the last event)",
            alert.rule.title, alert.id
        );
    }
}
