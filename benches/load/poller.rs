//! The System Log poller (`[okta.reconcile]`): what reading Okta's `/api/v1/logs` costs
//! factorwatch at 1,000 events a page, and how far behind Okta it runs at Okta's ceiling of
//! 400,000 events per org and day.
//!
//! The Okta stand-in (tests/it/okta_standin) runs in this process on loopback with a day of
//! System Log already published (the load mix, `published` spread over the past 24 hours). Each
//! case starts a fresh `factorwatch serve` (release build, empty spool, file sink) whose first
//! poll starts a day back, and times it from its first `/api/v1/logs` request to the moment it
//! had read every page the filter lets through, and to the moment the last alerting event's
//! alert was in the alert file. The baseline of the same run is a plain client fetching the same
//! pages from the same stand-in (follows the `next` links, counts the events, nothing else): what
//! the stand-in can serve, so that factorwatch's time is shown not to be the stand-in's.
//!
//! The steady case publishes MFA resets live at Okta's ceiling rate (4.63 events/s) into a fresh
//! stand-in and measures, per event, publish to alert in the file: the lag a user feels once the
//! poller has caught up. It runs `interval` and `grace` sixty times shorter than the defaults so
//! that it takes seconds; what it measures beyond them is the poller's own cost.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Context as _, bail};
use factorwatch::detect::RulesConfig;
use factorwatch::detect::rules::RuleSet;
use factorwatch::okta::samples::{self, is_mfa_reset};
use rand::SeedableRng;
use rand::rngs::StdRng;
use serde_json::Value;
use tempfile::TempDir;

use crate::e2e::{self, Seen, Sent};
use crate::okta_standin::{OktaStandIn, Recorded};
use crate::progress;
use crate::report::Row;
use crate::server::{self, ProcStats, Server};

/// Okta's ceiling: System Log events per org and day.
pub const DAY_EVENTS: usize = 400_000;
/// Events per page: Okta's maximum, and `page_size`'s default.
const PAGE: usize = 1000;
/// The SSWS token factorwatch and the baseline read the stand-in's System Log with.
const API_TOKEN: &str = "00benchPollerToken";
/// The System Log path.
const LOGS_PATH: &str = "/api/v1/logs";
/// A day.
const DAY: Duration = Duration::from_secs(86_400);
/// Okta's documented `/api/v1/logs` rate limit (Workforce Identity): 120 requests a minute.
const OKTA_LIMIT: (u32, Duration) = (120, Duration::from_secs(60));
/// No rate limit to speak of: what the poller costs by itself.
const UNLIMITED: (u32, Duration) = (1_000_000_000, Duration::from_secs(60));
/// How long one case may take before the phase gives up.
const CASE_DEADLINE: Duration = Duration::from_secs(600);
/// A rule that does not pin `eventType` (and matches nothing in the mix): with it the poller
/// asks for every event, the worst case.
const UNPINNED_RULE: &str = "title: Okta sign-on denied (bench)
id: 8d0f6c3a-2b1e-4f5d-9a7c-0e4b3d2c1f90
status: experimental
logsource:
    product: okta
    service: okta
detection:
    selection:
        outcome.result: 'DENY'
    condition: selection
level: low
";

/// A day of System Log, as published to the stand-in.
pub struct DayOfLog {
    /// Events published.
    pub events: usize,
    /// uuids of the events the built-in rules alert on.
    pub alerting: Vec<String>,
}

/// Which rules factorwatch runs, hence which event types the poller asks Okta for.
#[derive(Clone, Copy, PartialEq, Eq)]
pub enum Rules {
    /// The built-in rules and correlations: the filter names their event types.
    Builtin,
    /// The same plus a rule that does not pin `eventType`: no filter, every event is read.
    Unpinned,
}

/// One catch-up measurement.
#[derive(Clone, Copy)]
pub struct Case {
    /// The rules.
    pub rules: Rules,
    /// Okta's rate limit (with factorwatch's default `rate_limit_share` of 0.5), else none.
    pub rate_limited: bool,
}

impl Case {
    /// Its label in the report: which events the poller asks for.
    pub fn label(self) -> &'static str {
        match self.rules {
            Rules::Builtin => "built-in rules",
            Rules::Unpinned => "every event",
        }
    }

    /// Its scenario in the report: with Okta's rate limit or without.
    pub fn scenario(self) -> &'static str {
        match self.rate_limited {
            true => "poller-okta-limit",
            false => "poller",
        }
    }
}

/// The catch-up cases, by the name `--only` knows them by.
const CASES: [(&str, Case); 3] = [
    (
        "builtin",
        Case {
            rules: Rules::Builtin,
            rate_limited: false,
        },
    ),
    (
        "every",
        Case {
            rules: Rules::Unpinned,
            rate_limited: false,
        },
    ),
    (
        "limited",
        Case {
            rules: Rules::Builtin,
            rate_limited: true,
        },
    ),
];

/// What the phase keeps between cases: the stand-in with its day of log, and the rule folder of
/// [`Rules::Unpinned`].
pub struct Bench {
    okta: OktaStandIn,
    day: DayOfLog,
    rule_dir: TempDir,
}

impl Bench {
    /// Starts the stand-in and publishes `events` events of the load mix, `published` spread over
    /// the past day.
    pub async fn start(events: usize) -> anyhow::Result<Self> {
        let okta = OktaStandIn::start().await;
        okta.add_api_token(API_TOKEN, &["okta.logs.read"]);
        let (published, alerting) = day_of_events(events, 7);
        okta.publish(published);
        let rule_dir = tempfile::Builder::new()
            .prefix("factorwatch-poller-rules-")
            .tempdir_in(server::scratch_root())?;
        std::fs::write(rule_dir.path().join("unpinned.yml"), UNPINNED_RULE)?;
        Ok(Self {
            okta,
            day: DayOfLog { events, alerting },
            rule_dir,
        })
    }

    /// The day published.
    pub fn day(&self) -> &DayOfLog {
        &self.day
    }

    /// Extra rule paths of `rules`.
    fn rule_paths(&self, rules: Rules) -> Vec<PathBuf> {
        match rules {
            Rules::Builtin => Vec::new(),
            Rules::Unpinned => vec![self.rule_dir.path().to_owned()],
        }
    }

    /// The System Log filter factorwatch asks for with `rules` (`None`: every event).
    fn filter(&self, rules: Rules) -> anyhow::Result<Option<String>> {
        let config = RulesConfig {
            paths: self.rule_paths(rules),
            ..Default::default()
        };
        Ok(factorwatch::app::system_log_filter(&RuleSet::load(
            &config,
        )?))
    }

    /// The `/api/v1/logs` requests from index `from` of the stand-in's request log on.
    fn log_requests(&self, from: usize) -> Vec<Recorded> {
        let mut requests = self.okta.requests();
        requests.drain(..from.min(requests.len()));
        requests.retain(|request| request.path == LOGS_PATH);
        requests
    }

    /// The catch-up cases `wanted` names (`builtin`, `every`, `limited`), each after the baseline
    /// of its rules (run once per rule set).
    pub async fn catch_ups(
        &self,
        run: usize,
        wanted: impl Fn(&str) -> bool,
    ) -> anyhow::Result<Vec<Row>> {
        let mut rows = Vec::new();
        // Events each rule set's filter lets through, as this run's baseline counted them.
        let mut baselines: Vec<(Rules, u64)> = Vec::new();
        for (name, case) in CASES {
            if !wanted(name) {
                continue;
            }
            let known = baselines.iter().find(|(rules, _)| *rules == case.rules);
            let expected = match known {
                Some(&(_, events)) => events,
                None => {
                    let (row, events) = self.baseline(run, case.rules).await?;
                    rows.push(row);
                    baselines.push((case.rules, events));
                    events
                }
            };
            rows.push(self.catch_up(run, case, expected).await?);
        }
        Ok(rows)
    }

    /// The baseline: every page with `rules`' filter, fetched as fast as the stand-in serves
    /// them. Returns its row and the events it read.
    async fn baseline(&self, run: usize, rules: Rules) -> anyhow::Result<(Row, u64)> {
        self.okta.set_rate_limit(UNLIMITED.0, UNLIMITED.1);
        let filter = self.filter(rules)?;
        let generator_before = ProcStats::read(std::process::id())?;
        let fetched = fetch_all(&self.okta.org_url(), filter.as_deref()).await?;
        let generator_after = ProcStats::read(std::process::id())?;
        let pages = fetched.pages.max(1) as f64;
        let label = Case {
            rules,
            rate_limited: false,
        }
        .label();
        let mut row = Row::new(run, "poller", "baseline", PAGE, label);
        row.set("events_read", fetched.events as f64)
            .set("pages", fetched.pages as f64)
            .set("read_s", fetched.elapsed.as_secs_f64())
            .set(
                "ms_per_page",
                fetched.elapsed.as_secs_f64() * 1000.0 / pages,
            )
            .set("bytes_per_page", fetched.bytes as f64 / pages)
            .set(
                "generator_cpu_ms_per_page",
                (generator_after.cpu_seconds - generator_before.cpu_seconds) * 1000.0 / pages,
            );
        progress!(
            "  baseline ({label}): {} events in {} pages in {:.2} s ({:.1} ms a page, {:.0} KB a page)",
            fetched.events,
            fetched.pages,
            fetched.elapsed.as_secs_f64(),
            row.values["ms_per_page"],
            row.values["bytes_per_page"] / 1000.0
        );
        Ok((row, fetched.events))
    }

    /// factorwatch catching up on the day: `expected_read` events pass the filter (as the
    /// baseline counted them).
    async fn catch_up(&self, run: usize, case: Case, expected_read: u64) -> anyhow::Result<Row> {
        let (limit, window) = if case.rate_limited {
            OKTA_LIMIT
        } else {
            UNLIMITED
        };
        self.okta.set_rate_limit(limit, window);
        let reconcile = Reconcile {
            interval: "250ms",
            grace: "0s",
            lookback: "1day",
        };
        let extra = reconcile.toml(&self.okta.org_url(), &self.rule_paths(case.rules));
        let from = self.okta.requests().len();
        let generator_before = ProcStats::read(std::process::id())?;
        let sent = Sent::default();
        let started = Instant::now();
        sent.record(started, self.day.alerting.clone());
        let watch = Watched::start(extra, sent.clone())?;
        let read_at = watch.until_read(expected_read).await?;
        let alerted_at = watch.until_alerted(self.day.alerting.len()).await?;
        let stats = ProcStats::read(watch.server.pid())?;
        let generator_after = ProcStats::read(std::process::id())?;
        let seen = watch.finish()?;
        let requests = self.log_requests(from);
        let first = requests.first().context("factorwatch made no request")?.at;
        // Every page but the last is full: the stand-in scans on until it has `limit` events.
        let pages = (expected_read as f64 / PAGE as f64).ceil().max(1.0);
        let read_s = read_at.saturating_duration_since(first).as_secs_f64();
        let mut row = Row::new(run, case.scenario(), "factorwatch", PAGE, case.label());
        row.set("events_read", expected_read as f64)
            .set("pages", pages)
            .set("read_s", read_s)
            .set("ms_per_page", read_s * 1000.0 / pages)
            .set(
                "alerted_s",
                alerted_at.saturating_duration_since(first).as_secs_f64(),
            )
            .set(
                "half_alerted_s",
                seen.latency.value_at_quantile(0.5) as f64 / 1e6
                    - first.saturating_duration_since(started).as_secs_f64(),
            )
            .set("alerts", seen.latency.len() as f64)
            .set("alerting_events", self.day.alerting.len() as f64)
            .set("cpu_ms_per_page", stats.cpu_seconds * 1000.0 / pages)
            .set(
                "cpu_ms_per_1000_events",
                stats.cpu_seconds * 1e6 / expected_read.max(1) as f64,
            )
            .set(
                "generator_cpu_ms_per_page",
                (generator_after.cpu_seconds - generator_before.cpu_seconds) * 1000.0 / pages,
            )
            .set("hwm_mib", stats.hwm_kib as f64 / 1024.0)
            .set("requests", requests.len() as f64)
            .set("throttled", throttled(&requests) as f64)
            .set(
                "first_request_s",
                first.saturating_duration_since(started).as_secs_f64(),
            );
        progress!(
            "  factorwatch ({}, {}): {expected_read} events in {pages} pages read in {read_s:.2} s \
             ({:.1} ms a page, CPU {:.1} ms a page), last alert at {:.2} s, {} of {} alerted, \
             {} answers 429, peak RSS {:.1} MiB",
            case.label(),
            case.scenario(),
            row.values["ms_per_page"],
            row.values["cpu_ms_per_page"],
            row.values["alerted_s"],
            seen.latency.len(),
            self.day.alerting.len(),
            row.values["throttled"],
            row.values["hwm_mib"]
        );
        Ok(row)
    }
}

/// `events` events of the load mix (`samples::mixed_batch`), the `i`-th published
/// `(events - i) / events` of a day ago, and the uuids of those that alert.
fn day_of_events(events: usize, seed: u64) -> (Vec<Value>, Vec<String>) {
    let mut rng = StdRng::seed_from_u64(seed);
    let mut batch = samples::mixed_batch(&mut rng, events);
    let now = factorwatch::clock::now_ms();
    let step = DAY.as_millis() as u64 / events.max(1) as u64;
    let mut alerting = Vec::new();
    for (i, event) in batch.iter_mut().enumerate() {
        let published = now - (events - i) as u64 * step;
        event["published"] = factorwatch::clock::rfc3339(published).into();
        if is_mfa_reset(event) {
            alerting.push(event["uuid"].as_str().unwrap_or_default().to_owned());
        }
    }
    (batch, alerting)
}

/// How many answers were 429.
fn throttled(requests: &[Recorded]) -> usize {
    requests.iter().filter(|r| r.status == Some(429)).count()
}

/// `[okta.reconcile]` timings of a case.
struct Reconcile {
    interval: &'static str,
    grace: &'static str,
    lookback: &'static str,
}

impl Reconcile {
    /// The config sections reading `org_url`'s System Log with the API token, with the built-in
    /// rules and `rule_paths`.
    fn toml(&self, org_url: &str, rule_paths: &[PathBuf]) -> String {
        let paths: Vec<String> = rule_paths
            .iter()
            .map(|path| format!("{:?}", path.display().to_string()))
            .collect();
        format!(
            "\n[okta.api]\norg_url = \"{org_url}\"\napi_token = \"{API_TOKEN}\"\n\n\
             [okta.reconcile]\nenabled = true\ninterval = \"{}\"\ngrace = \"{}\"\n\
             lookback = \"{}\"\npage_size = {PAGE}\n\n[rules]\npaths = [{}]\n",
            self.interval,
            self.grace,
            self.lookback,
            paths.join(", ")
        )
    }
}

/// A factorwatch polling the stand-in, with a reader following its alert file.
struct Watched {
    server: Server,
    sent: Sent,
    stop: Arc<AtomicBool>,
    reader: std::thread::JoinHandle<Seen>,
    started: Instant,
}

impl Watched {
    /// Starts factorwatch with `extra` config and a file sink, and the reader matching its
    /// alerts with `sent`.
    fn start(extra: String, sent: Sent) -> anyhow::Result<Self> {
        let (dir, alert_file, spec) = server::with_alert_file("factorwatch-poller-", extra)?;
        let stop = Arc::new(AtomicBool::new(false));
        let reader = e2e::tail_file(alert_file, sent.clone(), stop.clone());
        let server = Server::factorwatch_in(dir, &spec)?;
        Ok(Self {
            server,
            sent,
            stop,
            reader,
            started: Instant::now(),
        })
    }

    /// Waits until `/readyz` says the poller read `events` events; when it saw that.
    async fn until_read(&self, events: u64) -> anyhow::Result<Instant> {
        self.until("every page read", || {
            let ready = self.server.readyz()?;
            Ok(ready["reconcile"]["events_read"].as_u64().unwrap_or(0) >= events)
        })
        .await
    }

    /// Waits until the reader saw `alerts` alerts of this run's events; when it saw that.
    async fn until_alerted(&self, alerts: usize) -> anyhow::Result<Instant> {
        self.until("every alert written", || Ok(self.sent.alerted() >= alerts))
            .await
    }

    /// Polls `done` every 5 ms until true, for at most [`CASE_DEADLINE`].
    async fn until(
        &self,
        what: &str,
        done: impl Fn() -> anyhow::Result<bool>,
    ) -> anyhow::Result<Instant> {
        while !done()? {
            if self.started.elapsed() > CASE_DEADLINE {
                bail!(
                    "{what}: not within {} s; see {}",
                    CASE_DEADLINE.as_secs(),
                    self.server.dir.path().display()
                );
            }
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        Ok(Instant::now())
    }

    /// Stops the reader (after the file had a moment to be read to its end) and factorwatch.
    fn finish(self) -> anyhow::Result<Seen> {
        std::thread::sleep(Duration::from_millis(50));
        self.stop.store(true, Ordering::Relaxed);
        let seen = self
            .reader
            .join()
            .map_err(|_| anyhow::anyhow!("the alert file reader panicked"))?;
        drop(self.server);
        Ok(seen)
    }
}

/// What the baseline client fetched.
struct Fetched {
    pages: u64,
    events: u64,
    bytes: u64,
    elapsed: Duration,
}

/// Reads every page of `org_url`'s System Log since a day ago with `filter`, 1,000 events a
/// page, as Okta's polling mode serves them: follows `next` until a page comes back empty.
async fn fetch_all(org_url: &str, filter: Option<&str>) -> anyhow::Result<Fetched> {
    let client = reqwest::Client::new();
    let since = factorwatch::clock::rfc3339(factorwatch::clock::now_ms() - DAY.as_millis() as u64);
    let mut url = reqwest::Url::parse(&format!("{org_url}{LOGS_PATH}"))?;
    {
        let mut query = url.query_pairs_mut();
        query.append_pair("since", &since);
        if let Some(filter) = filter {
            query.append_pair("filter", filter);
        }
        query
            .append_pair("limit", &PAGE.to_string())
            .append_pair("sortOrder", "ASCENDING");
    }
    let started = Instant::now();
    let mut fetched = Fetched {
        pages: 0,
        events: 0,
        bytes: 0,
        elapsed: Duration::ZERO,
    };
    loop {
        let answer = client
            .get(url.clone())
            .header("Authorization", format!("SSWS {API_TOKEN}"))
            .header("Accept", "application/json")
            .send()
            .await?
            .error_for_status()?;
        let next = next_link(answer.headers()).context("a polling answer without next")?;
        let body = answer.bytes().await?;
        let events = serde_json::from_slice::<Vec<serde::de::IgnoredAny>>(&body)?.len() as u64;
        if events == 0 {
            break;
        }
        fetched.pages += 1;
        fetched.events += events;
        fetched.bytes += body.len() as u64;
        url = reqwest::Url::parse(&next)?;
    }
    fetched.elapsed = started.elapsed();
    Ok(fetched)
}

/// The `rel="next"` target of an answer's `link` headers.
fn next_link(headers: &reqwest::header::HeaderMap) -> Option<String> {
    headers
        .get_all(reqwest::header::LINK)
        .iter()
        .filter_map(|value| value.to_str().ok())
        .find(|value| value.contains("rel=\"next\""))
        .and_then(|value| {
            let start = value.find('<')? + 1;
            let end = value.find('>')?;
            Some(value[start..end].to_owned())
        })
}

/// Okta's ceiling as a rate: 400,000 events a day.
pub fn ceiling_per_second() -> f64 {
    DAY_EVENTS as f64 / DAY.as_secs_f64()
}

/// Steady state: MFA resets published live at Okta's ceiling rate for `duration` into a fresh
/// stand-in, `interval` 1 s and `grace` 2 s (the defaults are 1 min and 2 min); the lag of each
/// from its publication to its alert in the file.
pub async fn steady(run: usize, duration: Duration) -> anyhow::Result<Row> {
    let okta = OktaStandIn::start().await;
    okta.add_api_token(API_TOKEN, &["okta.logs.read"]);
    okta.set_rate_limit(UNLIMITED.0, UNLIMITED.1);
    let reconcile = Reconcile {
        interval: "1s",
        grace: "2s",
        lookback: "1m",
    };
    let sent = Sent::default();
    let watch = Watched::start(reconcile.toml(&okta.org_url(), &[]), sent.clone())?;
    let every = Duration::from_secs_f64(1.0 / ceiling_per_second());
    let count = (duration.as_secs_f64() * ceiling_per_second()).round() as usize;
    let mut rng = StdRng::seed_from_u64(11);
    let mut resets = samples::mixed_batch(&mut rng, count * 20)
        .into_iter()
        .filter(is_mfa_reset);
    let mut ticker = tokio::time::interval(every);
    for _ in 0..count {
        ticker.tick().await;
        let mut event = resets.next().context("enough MFA resets drawn")?;
        event["published"] = factorwatch::clock::rfc3339(factorwatch::clock::now_ms()).into();
        let uuid = event["uuid"].as_str().unwrap_or_default().to_owned();
        sent.record(Instant::now(), vec![uuid]);
        okta.publish(vec![event]);
    }
    watch.until_alerted(count).await?;
    let stats = ProcStats::read(watch.server.pid())?;
    let seen = watch.finish()?;
    let seconds = |q: f64| seen.latency.value_at_quantile(q) as f64 / 1e6;
    let mut row = Row::new(run, "poller-steady", "factorwatch", PAGE, "1s/2s");
    row.set("published", count as f64)
        .set("alerts", seen.latency.len() as f64)
        .set("events_per_s", ceiling_per_second())
        .set("lag_min_s", seen.latency.min() as f64 / 1e6)
        .set("lag_p50_s", seconds(0.5))
        .set("lag_p99_s", seconds(0.99))
        .set("lag_max_s", seen.latency.max() as f64 / 1e6)
        .set("hwm_mib", stats.hwm_kib as f64 / 1024.0)
        .set("requests", okta.requests().len() as f64);
    progress!(
        "  steady, {count} MFA resets at {:.2}/s, interval 1 s, grace 2 s: lag min {:.2} / p50 {:.2} / p99 {:.2} / max {:.2} s, {} of {count} alerted",
        ceiling_per_second(),
        row.values["lag_min_s"],
        row.values["lag_p50_s"],
        row.values["lag_p99_s"],
        row.values["lag_max_s"],
        seen.latency.len()
    );
    Ok(row)
}

/// Writes `poller.json` (every figure of every run) and `poller-summary.md` into `dir`.
pub fn write(dir: &Path, rows: &[Row]) -> anyhow::Result<()> {
    std::fs::create_dir_all(dir)?;
    std::fs::write(dir.join("poller.json"), serde_json::to_string_pretty(rows)?)?;
    std::fs::write(
        dir.join("poller-summary.md"),
        crate::report::poller_markdown(rows),
    )?;
    Ok(())
}
