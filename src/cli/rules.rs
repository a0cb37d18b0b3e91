//! `factorwatch rules check` and `factorwatch rules test`: the printing around the offline
//! evaluation in [`crate::detect::offline`].

use std::collections::BTreeMap;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use anyhow::Context;
use serde_json::Value;

use super::status_line::StatusLine;
use super::time_arg::TimeArg;
use crate::Config;
use crate::alert::Alert;
use crate::app::{RECONCILE_SCOPES, system_log_filter};
use crate::clock::now_ms;
use crate::config::PipelineConfig;
use crate::detect::offline::{OfflineDetector, alerts_per_rule, load_rules};
use crate::detect::{RuleSet, RulesConfig};
use crate::okta::Delivery;
use crate::okta::export::for_each_log_event;
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
            let mut run = Run::new(&rules, &privileged, Delivery::EventHook, true);
            for_each_log_event(&path, |event| run.push(event))?;
            run.finish()
        }
        EventSource::Okta { since, until, org } => {
            let pipeline = okta_pipeline(config, org.as_deref())?;
            let (rules, privileged) = load(pipeline.rules.clone())?;
            let until = until.unwrap_or(TimeArg { ms: now_ms() });
            let mut run = Run::new(&rules, &privileged, Delivery::SystemLog, false);
            read_system_log(&pipeline, &rules, since, until, |event| run.push(event)).await?;
            run.finish()
        }
    }
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

/// Hands `each` the events of `pipeline`'s System Log from `since` to `until` that `rules` can
/// match, page by page, with progress on stderr.
async fn read_system_log(
    pipeline: &PipelineConfig,
    rules: &RuleSet,
    since: TimeArg,
    until: TimeArg,
    mut each: impl FnMut(Value),
) -> anyhow::Result<()> {
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
    let (mut events, mut pages) = (0, 0);
    while let Some(page) = reader.next_page().await {
        for event in page?.events {
            each(serde_json::from_str(event.get())?);
            events += 1;
        }
        pages += 1;
        status.show(&format!("read {events} events in {pages} pages"));
    }
    status.finish();
    Ok(())
}

/// One `rules test` run: the events in, the alerts out on stdout as they are raised, progress
/// and the summary per rule on stderr.
struct Run<'a> {
    detector: OfflineDetector<'a>,
    printer: Printer,
    events: u64,
    /// Progress on stderr, at most once a second, when shown at all.
    progress: Option<(StatusLine, Instant, Instant)>,
}

impl<'a> Run<'a> {
    fn new(rules: &'a RuleSet, privileged: &'a [String], via: Delivery, progress: bool) -> Self {
        let now = Instant::now();
        Run {
            detector: OfflineDetector::new(rules, privileged, via),
            printer: Printer {
                out: std::io::BufWriter::new(std::io::stdout().lock()),
                failed: None,
                per_rule: alerts_per_rule(rules, &[]),
                alerts: 0,
            },
            events: 0,
            progress: progress.then(|| (StatusLine::stderr(), now, now)),
        }
    }

    /// Detects `event` and prints the alerts it lets go.
    fn push(&mut self, event: Value) {
        self.events += 1;
        self.printer.print(self.detector.push(event));
        self.show_progress();
    }

    /// Every second: events read, alerts raised, the rate.
    fn show_progress(&mut self) {
        let Some((status, started, shown)) = &mut self.progress else {
            return;
        };
        if shown.elapsed() < Duration::from_secs(1) {
            return;
        }
        *shown = Instant::now();
        let rate = self.events as f64 / started.elapsed().as_secs_f64();
        status.show(&format!(
            "read {} events, {} alerts ({rate:.0} events/s)",
            self.events, self.printer.alerts
        ));
    }

    /// Prints the alerts still held, then the summary on stderr.
    fn finish(mut self) -> anyhow::Result<()> {
        if let Some((status, _, _)) = &mut self.progress {
            status.finish();
        }
        let detected = self.detector.finish();
        self.printer.print(detected.alerts);
        let Printer {
            per_rule, alerts, ..
        } = self
            .printer
            .flush()
            .context("cannot write the alerts to stdout")?;
        eprintln!("{} events, {alerts} alerts", self.events);
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
}

/// Writes alerts to stdout as JSON lines and counts them per rule.
struct Printer {
    out: std::io::BufWriter<std::io::StdoutLock<'static>>,
    /// The first failed write (a closed pipe): nothing more is written, and the run fails.
    failed: Option<std::io::Error>,
    /// Alerts per rule title, every rule that can raise one listed.
    per_rule: BTreeMap<String, usize>,
    alerts: u64,
}

impl Printer {
    fn print(&mut self, alerts: Vec<Alert>) {
        for alert in alerts {
            self.alerts += 1;
            *self.per_rule.entry(alert.rule.title.clone()).or_default() += 1;
            if self.failed.is_none()
                && let Err(err) = writeln!(self.out, "{}", alert.to_json())
            {
                self.failed = Some(err);
            }
        }
    }

    /// Flushes stdout; fails if a write did.
    fn flush(mut self) -> std::io::Result<Self> {
        match self.failed.take() {
            Some(err) => Err(err),
            None => self.out.flush().map(|()| self),
        }
    }
}
