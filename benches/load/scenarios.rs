//! The measurements, one function each. Every scenario starts its own server (a fresh spool, so
//! no scenario inherits another's backlog) and returns rows for the report.

use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use anyhow::Context as _;

use crate::client::{self, Drive, OnSent, Outcome, Pace, Target};
use crate::e2e::{self, Sent};
use crate::payload::Payloads;
use crate::report::Row;
use crate::server::{self, FactorwatchSpec, ProcStats, Sampler, Server, SinkSpec};
use crate::{disk, progress};

/// Connections of a closed-loop drive, as `wrk -c32` in the reference figures.
pub const CLOSED_CONNECTIONS: usize = 32;
/// Connections of an open-loop drive: enough that a request rarely waits for a free one, which
/// would be counted as latency (as it should: Okta would be waiting too).
pub const OPEN_CONNECTIONS: usize = 64;

/// Which server a scenario loads.
#[derive(Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// `factorwatch serve` with one file sink.
    Factorwatch,
    /// The no-op axum handler.
    Noop,
}

impl Kind {
    /// Its name in the report.
    pub fn name(self) -> &'static str {
        match self {
            Kind::Factorwatch => "factorwatch",
            Kind::Noop => "noop",
        }
    }

    fn start(self) -> anyhow::Result<Server> {
        match self {
            Kind::Factorwatch => Server::factorwatch(&default_spec()),
            Kind::Noop => Server::noop(),
        }
    }
}

/// factorwatch with its alert file in the data directory, as a default installation.
fn default_spec() -> FactorwatchSpec {
    FactorwatchSpec::default()
}

fn target(server: &Server) -> Target {
    Target {
        addr: server.addr,
        path: server::HOOK_PATH.to_owned(),
        secret: server::SECRET.to_owned(),
    }
}

fn ms(micros: u64) -> f64 {
    micros as f64 / 1000.0
}

/// Latency and counts of a drive into `row`.
fn outcome_into(row: &mut Row, outcome: &Outcome) {
    let latency = &outcome.latency;
    row.set("requests", outcome.ok_requests as f64)
        .set("failed", outcome.failed as f64)
        .set("acked_eps", outcome.events_per_second())
        .set("p50_ms", ms(latency.value_at_quantile(0.5)))
        .set("p99_ms", ms(latency.value_at_quantile(0.99)))
        .set("p999_ms", ms(latency.value_at_quantile(0.999)))
        .set("max_ms", ms(latency.max()));
}

/// Process figures over a drive into `row`.
fn process_into(row: &mut Row, before: ProcStats, after: ProcStats, events: u64) {
    let per_thousand = 1000.0 / (events.max(1) as f64);
    row.set(
        "cpu_ms_per_1000_events",
        (after.cpu_seconds - before.cpu_seconds) * 1000.0 * per_thousand,
    )
    .set(
        "write_bytes_per_1000_events",
        after.write_bytes.saturating_sub(before.write_bytes) as f64 * per_thousand,
    )
    .set("rss_mib", after.rss_kib as f64 / 1024.0)
    .set("hwm_mib", after.hwm_kib as f64 / 1024.0);
}

/// The disk baseline for the body size of each batch size.
pub fn fsync(
    run: usize,
    payloads: &[(usize, Arc<Payloads>)],
    each: Duration,
) -> anyhow::Result<Vec<Row>> {
    let mut rows = Vec::new();
    for (batch, pool) in payloads {
        let rate = disk::fsync_rate(pool.mean_bytes(), each)?;
        progress!(
            "  fsync {} B appends: {:.0}/s",
            rate.write_bytes,
            rate.per_second
        );
        let mut row = Row::new(run, "fsync", "disk", *batch, "append");
        row.set("write_bytes", rate.write_bytes as f64)
            .set("fsyncs_per_s", rate.per_second);
        rows.push(row);
    }
    Ok(rows)
}

/// Closed loop at saturation: events per second, latency, CPU and disk bytes per event.
pub async fn saturation(
    run: usize,
    kind: Kind,
    batch: usize,
    payloads: Arc<Payloads>,
    duration: Duration,
) -> anyhow::Result<Row> {
    let server = kind.start()?;
    let drive = Drive::new(Pace::Closed, CLOSED_CONNECTIONS, duration);
    let detected = |server: &Server| match kind {
        Kind::Factorwatch => server.metric("factorwatch_events_detected_total"),
        Kind::Noop => Ok(0.0),
    };
    let generator_before = ProcStats::read(std::process::id())?;
    let before = ProcStats::read(server.pid())?;
    let detected_before = detected(&server)?;
    let body_bytes = payloads.mean_bytes();
    let outcome = client::run(&drive, &target(&server), payloads, None).await?;
    let after = ProcStats::read(server.pid())?;
    let detected_after = detected(&server)?;
    let generator_after = ProcStats::read(std::process::id())?;
    let mut row = Row::new(run, "saturation", kind.name(), batch, "closed");
    outcome_into(&mut row, &outcome);
    row.set("events_per_s", outcome.events_per_second())
        .set("body_bytes", body_bytes as f64);
    // The warm-up second is inside before..after too; count its events as well.
    let events = drive.acked.load(Ordering::Relaxed);
    process_into(&mut row, before, after, events);
    row.set(
        "generator_cpu_ms_per_1000_events",
        (generator_after.cpu_seconds - generator_before.cpu_seconds) * 1e6 / events.max(1) as f64,
    );
    if kind == Kind::Factorwatch {
        let sum = server.metric("factorwatch_spool_commit_group_size_sum")?;
        let count = server.metric("factorwatch_spool_commit_group_size_count")?;
        // Events the detector got through while intake ran flat out: what the whole pipeline
        // sustains, as opposed to what intake alone acknowledges.
        let seconds = (drive.warmup + drive.duration).as_secs_f64();
        row.set("mean_commit_group", sum / count.max(1.0))
            .set("detected_eps", (detected_after - detected_before) / seconds);
    }
    progress!(
        "  {} batch {batch}: {:.0} events/s acked, {:.0} detected/s, p99 {:.2} ms, {} failed",
        kind.name(),
        outcome.events_per_second(),
        row.values.get("detected_eps").copied().unwrap_or(0.0),
        ms(outcome.latency.value_at_quantile(0.99)),
        outcome.failed
    );
    Ok(row)
}

/// Median RSS in MiB over the second half of `samples`.
fn steady_rss_mib(samples: &[(Duration, ProcStats)]) -> f64 {
    let mut rss: Vec<u64> = samples[samples.len() / 2..]
        .iter()
        .map(|(_, s)| s.rss_kib)
        .collect();
    rss.sort_unstable();
    rss.get(rss.len() / 2).copied().unwrap_or(0) as f64 / 1024.0
}

/// Open loop at `rate` events per second: acknowledgement latency without coordinated omission.
pub async fn rate(
    run: usize,
    kind: Kind,
    rate: f64,
    label: &str,
    payloads: Arc<Payloads>,
    duration: Duration,
) -> anyhow::Result<Row> {
    let server = kind.start()?;
    let batch = 10;
    let interval = Duration::from_secs_f64(batch as f64 / rate);
    let drive = Drive::new(Pace::Open { interval }, OPEN_CONNECTIONS, duration);
    let sampler = Sampler::start(server.pid(), Duration::from_millis(100), || ());
    let before = ProcStats::read(server.pid())?;
    let outcome = client::run(&drive, &target(&server), payloads, None).await?;
    let after = ProcStats::read(server.pid())?;
    let samples: Vec<(Duration, ProcStats)> = sampler
        .finish()
        .into_iter()
        .map(|(at, (), stats)| (at, stats))
        .collect();
    let mut row = Row::new(run, "rate", kind.name(), batch, label);
    outcome_into(&mut row, &outcome);
    process_into(&mut row, before, after, drive.acked.load(Ordering::Relaxed));
    row.set("offered_eps", rate)
        .set(
            "send_lag_p99_ms",
            ms(outcome.send_lag.value_at_quantile(0.99)),
        )
        .set("rss_steady_mib", steady_rss_mib(&samples));
    progress!(
        "  {} {rate:.0} events/s ({label}): p50 {:.2} / p99 {:.2} / p99.9 {:.2} ms, {} failed",
        kind.name(),
        ms(outcome.latency.value_at_quantile(0.5)),
        ms(outcome.latency.value_at_quantile(0.99)),
        ms(outcome.latency.value_at_quantile(0.999)),
        outcome.failed
    );
    Ok(row)
}

/// End to end at 1,000 events/s: POST to alert in the file sink and in JetStream.
pub async fn end_to_end(
    run: usize,
    payloads: Arc<Payloads>,
    duration: Duration,
) -> anyhow::Result<Vec<Row>> {
    let id = uuid::Uuid::new_v4().simple().to_string();
    let stream = format!("FACTORWATCH_BENCH_{id}");
    let capture = format!("factorwatch.bench.{id}.*");
    e2e::create_stream(&stream, &capture).await?;
    let dir = tempfile::Builder::new()
        .prefix("factorwatch-e2e-")
        .tempdir_in(server::scratch_root())?;
    let alert_file = server::data_dir(dir.path()).join("e2e-alerts.jsonl");
    let spec = FactorwatchSpec {
        sinks: vec![
            SinkSpec::File {
                name: "alerts-file".into(),
                path: alert_file.clone(),
                min_level: None,
            },
            SinkSpec::Nats {
                subject: format!("factorwatch.bench.{id}.{{level}}"),
                stream: stream.clone(),
            },
        ],
        ..Default::default()
    };
    let server = Server::factorwatch_in(dir, &spec)?;
    let sent = Sent::default();
    let stop = Arc::new(AtomicBool::new(false));
    let file_reader = e2e::tail_file(alert_file, sent.clone(), stop.clone());
    let nats_reader = tokio::spawn(e2e::read_stream(stream.clone(), sent.clone(), stop.clone()));
    let record = sent.clone();
    let on_sent: OnSent = Arc::new(move |at, uuids| record.record(at.into_std(), uuids));
    let interval = Duration::from_millis(10); // 10 events every 10 ms: 1,000 events/s
    let drive = Drive::new(Pace::Open { interval }, OPEN_CONNECTIONS, duration);
    let outcome = client::run(&drive, &target(&server), payloads, Some(on_sent)).await?;
    // Let the last alerts arrive: detection wakes at once, delivery within milliseconds.
    tokio::time::sleep(Duration::from_secs(3)).await;
    stop.store(true, Ordering::Relaxed);
    let file_seen = file_reader
        .join()
        .map_err(|_| anyhow::anyhow!("file reader panicked"))?;
    let nats_seen = nats_reader.await??;
    drop(server);
    e2e::delete_stream(&stream).await;
    let expected = sent.len() as f64;
    let mut rows = Vec::new();
    for (sink, seen) in [("file", file_seen), ("nats-jetstream", nats_seen)] {
        let latency = &seen.latency;
        let mut row = Row::new(run, "e2e", "factorwatch", 10, sink);
        row.set("p50_ms", ms(latency.value_at_quantile(0.5)))
            .set("p99_ms", ms(latency.value_at_quantile(0.99)))
            .set("p999_ms", ms(latency.value_at_quantile(0.999)))
            .set("max_ms", ms(latency.max()))
            .set("seen", latency.len() as f64)
            .set("expected", expected);
        progress!(
            "  e2e {sink}: p50 {:.2} / p99 {:.2} ms, {} of {expected} alerts",
            ms(latency.value_at_quantile(0.5)),
            ms(latency.value_at_quantile(0.99)),
            latency.len()
        );
        rows.push(row);
    }
    let mut ack = Row::new(run, "e2e", "factorwatch", 10, "ack");
    outcome_into(&mut ack, &outcome);
    rows.push(ack);
    Ok(rows)
}

/// Counts the lines of a file (0 when it does not exist).
fn count_lines(path: &Path) -> usize {
    std::fs::read(path)
        .map(|bytes| bytes.iter().filter(|&&b| b == b'\n').count())
        .unwrap_or(0)
}

/// What the alert file holds: how many of the events in `sent` have a single-event alert, and
/// how many correlation alerts came besides.
fn alert_census(path: &Path, sent: &Sent) -> (usize, usize) {
    let text = std::fs::read_to_string(path).unwrap_or_default();
    let alerts: Vec<serde_json::Value> = text
        .lines()
        .filter_map(|line| serde_json::from_str(line).ok())
        .collect();
    let (correlations, singles): (Vec<_>, Vec<_>) = alerts
        .iter()
        .partition(|alert| alert.get("correlation").is_some());
    let alerted: std::collections::HashSet<String> = singles
        .iter()
        .flat_map(|alert| e2e::event_uuids(alert))
        .filter(|uuid| sent.when(uuid).is_some())
        .collect();
    (alerted.len(), correlations.len())
}

/// SIGKILL with a backlog: `events` acknowledged while the only sink is down (its directory does
/// not exist), kill, make the directory, restart, and time until /healthz answers and until the
/// backlog (batches awaiting detection and the sink's outbox) is empty.
pub async fn recovery(run: usize, payloads: Arc<Payloads>, events: u64) -> anyhow::Result<Row> {
    let dir = tempfile::Builder::new()
        .prefix("factorwatch-recovery-")
        .tempdir_in(server::scratch_root())?;
    let out_dir = server::data_dir(dir.path()).join("out");
    let alert_file = out_dir.join("alerts.jsonl");
    let spec = FactorwatchSpec {
        sinks: vec![SinkSpec::File {
            name: "alerts".into(),
            path: alert_file.clone(),
            min_level: None,
        }],
        ..Default::default()
    };
    let server = Server::factorwatch_in(dir, &spec)?;
    let sent = Sent::default();
    let record = sent.clone();
    let on_sent: OnSent = Arc::new(move |at, uuids| record.record(at.into_std(), uuids));
    let mut drive = Drive::new(Pace::Closed, CLOSED_CONNECTIONS, Duration::from_secs(300));
    drive.warmup = Duration::ZERO;
    drive.max_requests = events / 10;
    let outcome = client::run(&drive, &target(&server), payloads, Some(on_sent)).await?;
    let at_kill = server.readyz()?;
    let dir = server.kill()?;
    let pending_batches = at_kill["pending_batches"].as_f64().unwrap_or(f64::NAN);
    let outbox = at_kill["sinks"]["alerts"]["pending"]
        .as_f64()
        .unwrap_or(f64::NAN);
    progress!(
        "  {} events acked in {:.1} s; killed with {pending_batches} batches awaiting detection and {outbox} alerts in the outbox",
        outcome.ok_events,
        outcome.elapsed.as_secs_f64()
    );
    std::fs::create_dir_all(&out_dir)?;
    let restarted = Instant::now();
    let server = Server::factorwatch_in(dir, &spec)?;
    let healthy = restarted.elapsed();
    let drained = loop {
        let ready = server.readyz()?;
        if ready["pending_batches"].as_u64() == Some(0)
            && ready["sinks"]["alerts"]["pending"].as_u64() == Some(0)
        {
            break restarted.elapsed();
        }
        anyhow::ensure!(
            restarted.elapsed() < Duration::from_secs(300),
            "the backlog did not drain within 300 s: {ready}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    let (delivered, correlations) = alert_census(&alert_file, &sent);
    let mut row = Row::new(run, "recovery", "factorwatch", 10, "sigkill");
    row.set("events_acked", outcome.ok_events as f64)
        .set("pending_batches_at_kill", pending_batches)
        .set("outbox_at_kill", outbox)
        .set("healthy_s", healthy.as_secs_f64())
        .set("drained_s", drained.as_secs_f64())
        .set("alerts_delivered", delivered as f64)
        .set("correlation_alerts", correlations as f64)
        .set("expected", sent.len() as f64);
    progress!(
        "  restart: /healthz after {:.2} s, backlog 0 after {:.2} s, {delivered} of {} alerting events alerted, {correlations} correlation alerts",
        healthy.as_secs_f64(),
        drained.as_secs_f64(),
        sent.len()
    );
    Ok(row)
}

/// Ten million events (or `events`) open loop at `rate`, sampling RSS and backlog every second:
/// does memory stay flat?
///
/// The alert file takes only `critical` alerts here. With one event in ten raising an alert, the
/// file sink (one write + fdatasync per alert) would otherwise be the limit of a long run and its
/// outbox would grow; every event still goes through intake, detection and de-duplication, and
/// the de-duplication window still grows by every uuid.
pub async fn long(
    payloads: Arc<Payloads>,
    events: u64,
    rate: f64,
    out: &Path,
) -> anyhow::Result<Row> {
    let dir = tempfile::Builder::new()
        .prefix("factorwatch-long-")
        .tempdir_in(server::scratch_root())?;
    let alert_file = server::data_dir(dir.path()).join("alerts.jsonl");
    let spec = FactorwatchSpec {
        sinks: vec![SinkSpec::File {
            name: "alerts-file".into(),
            path: alert_file.clone(),
            min_level: Some("critical"),
        }],
        ..Default::default()
    };
    let server = Server::factorwatch_in(dir, &spec)?;
    let interval = Duration::from_secs_f64(10.0 / rate);
    let duration = Duration::from_secs_f64(events as f64 / rate);
    let mut drive = Drive::new(Pace::Open { interval }, OPEN_CONNECTIONS, duration);
    drive.warmup = Duration::ZERO;
    let acked = drive.acked.clone();
    let target = target(&server);
    let load = tokio::spawn(async move { client::run(&drive, &target, payloads, None).await });
    let started = Instant::now();
    let mut csv =
        String::from("seconds,events_acked,rss_mib,hwm_mib,backlog_mib,pending_batches\n");
    let mut marks = Vec::new();
    while !load.is_finished() {
        tokio::time::sleep(Duration::from_secs(1)).await;
        let stats = ProcStats::read(server.pid())?;
        let ready = server.readyz().unwrap_or_default();
        let done = acked.load(Ordering::Relaxed);
        let backlog = ready["backlog_bytes"].as_f64().unwrap_or(f64::NAN) / 1048576.0;
        let seconds = started.elapsed().as_secs_f64();
        csv.push_str(&format!(
            "{seconds:.1},{done},{:.1},{:.1},{backlog:.1},{}\n",
            stats.rss_kib as f64 / 1024.0,
            stats.hwm_kib as f64 / 1024.0,
            ready["pending_batches"]
        ));
        marks.push((done, stats.rss_kib as f64 / 1024.0));
        if (seconds as u64).is_multiple_of(10) {
            progress!(
                "  long: {:.2} M events acked, RSS {:.1} MiB, peak {:.1} MiB, backlog {backlog:.1} MiB",
                done as f64 / 1e6,
                stats.rss_kib as f64 / 1024.0,
                stats.hwm_kib as f64 / 1024.0
            );
        }
    }
    let outcome = load.await??;
    let stats = ProcStats::read(server.pid())?;
    let ready = server.readyz()?;
    std::fs::create_dir_all(out)?;
    std::fs::write(out.join("long-rss.csv"), csv).context("writing long-rss.csv")?;
    let rss_at = |fraction: f64| {
        let wanted = (events as f64 * fraction) as u64;
        marks
            .iter()
            .find(|(done, _)| *done >= wanted)
            .map(|(_, rss)| *rss)
            .unwrap_or(f64::NAN)
    };
    let mut row = Row::new(1, "long", "factorwatch", 10, &format!("{rate:.0}"));
    outcome_into(&mut row, &outcome);
    row.set("events_acked", outcome.ok_events as f64)
        .set("rss_mib_at_10pct", rss_at(0.1))
        .set("rss_mib_at_50pct", rss_at(0.5))
        .set("rss_mib_end", stats.rss_kib as f64 / 1024.0)
        .set("hwm_mib", stats.hwm_kib as f64 / 1024.0)
        .set("offered_eps", rate)
        .set(
            "pending_batches_end",
            ready["pending_batches"].as_f64().unwrap_or(f64::NAN),
        )
        .set(
            "backlog_mib_end",
            ready["backlog_bytes"].as_f64().unwrap_or(f64::NAN) / 1048576.0,
        )
        .set("critical_alerts_delivered", count_lines(&alert_file) as f64);
    Ok(row)
}
