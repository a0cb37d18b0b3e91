//! What users feel (issue 23): end-to-end throughput, events per second whose alerts are in the
//! alert file from the first request to the last alert, beside the acknowledgement rate, on two
//! mixes driven closed loop at saturation against a fresh `factorwatch serve`:
//!
//! - `mass-reset`: every event a `user.mfa.factor.deactivate` by one admin of a different user
//!   (100,000 users in turn): the correlations' worst case;
//! - `org`: the pool's mix (one event in ten an MFA reset), each event's user drawn at random from
//!   400,000 users, each with its own client IP.
//!
//! Each run starts with the generator check: the no-op handler and factorwatch at saturation with
//! the same generator (the pool's mix, and the no-op handler with each mix too), so the ratios
//! are against the same run's no-op. Then, once, memory with a million distinct users: the org
//! mix with 1,000,000 users in turn, open loop at a rate detection keeps up with, RSS every second.
//!
//! Before each phase the generator waits for the 1-minute load average to fall below
//! [`QUIET_LOAD`] (another job may share the machine) and records it.

use std::collections::HashSet;
use std::io::{Read, Seek, SeekFrom};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::Context as _;

use crate::client::{self, Drive, OnSent, Pace, Target};
use crate::payload::{Order, Payloads};
use crate::progress;
use crate::report::{Medians, Row, format_thousands};
use crate::scenarios::{self, CLOSED_CONNECTIONS, Kind, OPEN_CONNECTIONS};
use crate::server::{self, ProcStats, Sampler, Server};

/// Users of the mass-reset mix (reset in turn).
pub const MASS_RESET_USERS: u64 = 100_000;
/// Users of the org mix.
pub const ORG_USERS: u64 = 400_000;
/// Users (and events) of the memory phase.
pub const MEMORY_USERS: u64 = 1_000_000;
/// The 1-minute load average below which a phase starts (`--quiet-load`).
pub const QUIET_LOAD: f64 = 0.6;
/// The longest wait for a quiet machine before a phase starts anyway (said in the log).
const QUIET_WAIT: Duration = Duration::from_secs(300);
/// The longest wait for the last expected alert after a drive.
const CATCH_UP_LIMIT: Duration = Duration::from_secs(600);
/// Events per request in every phase.
const BATCH: usize = 10;

/// The options of the `mixes` mode.
pub struct Options {
    /// Repetitions of the generator check and the two mixes.
    pub runs: usize,
    /// Seconds of each saturation drive.
    pub secs: u64,
    /// Where mixes.json, mixes-summary.md and mixes-rss.csv go.
    pub out: PathBuf,
    /// Events per second of the memory phase; 0: 80% of the org mix's median end-to-end rate.
    pub memory_rate: f64,
    /// Events (and distinct users) of the memory phase; 0 leaves the phase out.
    pub memory_events: u64,
    /// Only these phases (generator, mass-reset, org, memory); all when empty.
    pub only: Vec<String>,
    /// The 1-minute load average below which a phase starts.
    pub quiet_load: f64,
}

impl Options {
    fn run(&self, phase: &str) -> bool {
        self.only.is_empty() || self.only.iter().any(|p| p == phase)
    }
}

fn loadavg() -> f64 {
    std::fs::read_to_string("/proc/loadavg")
        .ok()
        .and_then(|text| text.split_whitespace().next()?.parse().ok())
        .unwrap_or(f64::NAN)
}

/// Waits (polling every 10 s, at most [`QUIET_WAIT`]) until the 1-minute load average is below
/// `quiet`; returns the load average the phase starts at.
async fn wait_quiet(phase: &str, quiet: f64) -> f64 {
    let started = Instant::now();
    let mut load = loadavg();
    if load >= quiet {
        progress!("{phase}: loadavg {load:.2}, waiting for it to fall below {quiet}");
    }
    while load >= quiet && started.elapsed() < QUIET_WAIT {
        tokio::time::sleep(Duration::from_secs(10)).await;
        load = loadavg();
    }
    let waited = started.elapsed().as_secs();
    if load >= quiet {
        progress!("{phase}: still loadavg {load:.2} after {waited} s; starting anyway");
    } else {
        progress!("{phase}: loadavg {load:.2} (waited {waited} s)");
    }
    load
}

fn target(server: &Server) -> Target {
    Target {
        addr: server.addr,
        path: server::HOOK_PATH.to_owned(),
        secret: server::SECRET.to_owned(),
    }
}

/// A uuid as a number (a cheap set key).
fn uuid_key(uuid: &[u8]) -> Option<u128> {
    let mut value = 0u128;
    let mut digits = 0;
    for &byte in uuid {
        if byte == b'-' {
            continue;
        }
        value = value << 4 | (byte as char).to_digit(16)? as u128;
        digits += 1;
    }
    (digits == 32).then_some(value)
}

/// The alerting events sent and not yet alerted, and what the alert file reader saw.
#[derive(Default)]
struct Pending {
    waiting: Mutex<HashSet<u128>>,
    /// Alerting events sent.
    expected: AtomicU64,
    /// Of those, alerted.
    matched: AtomicU64,
    /// Single-event alerts read (of this run's events or not).
    singles: AtomicU64,
    /// Correlation alerts read.
    correlations: AtomicU64,
    /// When the reader last matched an event (micros since `epoch`).
    last_match_us: AtomicU64,
}

impl Pending {
    fn add(&self, uuids: Vec<String>) {
        let mut waiting = self.waiting.lock().expect("pending set");
        for uuid in uuids {
            if let Some(key) = uuid_key(uuid.as_bytes()) {
                waiting.insert(key);
                self.expected.fetch_add(1, Ordering::Relaxed);
            }
        }
    }

    fn outstanding(&self) -> usize {
        self.waiting.lock().expect("pending set").len()
    }
}

/// Finds `needle` in `hay` from `from`.
fn find(hay: &[u8], needle: &[u8], from: usize) -> Option<usize> {
    let text = hay.get(from..)?;
    // `str::find` is a two-way search, much quicker than comparing windows; the file is JSON
    // lines, so UTF-8.
    let text = std::str::from_utf8(text).ok()?;
    let needle = std::str::from_utf8(needle).ok()?;
    text.find(needle).map(|at| at + from)
}

/// One alert line: its event uuids counted against `pending` (correlation alerts apart). Reads
/// only what it needs (the generator shares the cores with factorwatch): the uuids listed in
/// `context.event_uuids`, and whether the alert carries `correlation`.
fn match_line(line: &[u8], pending: &Pending, epoch: Instant) {
    const UUIDS: &[u8] = b"\"event_uuids\":[";
    if find(line, b"\"correlation\":{", 0).is_some() {
        pending.correlations.fetch_add(1, Ordering::Relaxed);
        return;
    }
    pending.singles.fetch_add(1, Ordering::Relaxed);
    let Some(at) = find(line, UUIDS, 0) else {
        return;
    };
    let start = at + UUIDS.len();
    let end = line[start..]
        .iter()
        .position(|&b| b == b']')
        .map_or(line.len(), |p| start + p);
    let mut matched = 0;
    {
        let mut waiting = pending.waiting.lock().expect("pending set");
        for quoted in line[start..end].split(|&b| b == b',') {
            let uuid = quoted
                .iter()
                .position(|&b| b == b'"')
                .and_then(|open| {
                    let rest = &quoted[open + 1..];
                    rest.iter()
                        .position(|&b| b == b'"')
                        .map(|close| &rest[..close])
                })
                .unwrap_or_default();
            if let Some(key) = uuid_key(uuid)
                && waiting.remove(&key)
            {
                matched += 1;
            }
        }
    }
    if matched > 0 {
        pending.matched.fetch_add(matched, Ordering::Relaxed);
        pending
            .last_match_us
            .store(epoch.elapsed().as_micros() as u64, Ordering::Relaxed);
    }
}

/// Follows the alert file from a thread, every 2 ms, until `stop`.
fn tail(
    path: PathBuf,
    pending: Arc<Pending>,
    epoch: Instant,
    stop: Arc<AtomicBool>,
) -> std::thread::JoinHandle<()> {
    std::thread::spawn(move || {
        let mut offset = 0u64;
        let mut partial = Vec::new();
        loop {
            let stopping = stop.load(Ordering::Relaxed);
            let grown = std::fs::metadata(&path).is_ok_and(|m| m.len() > offset);
            if grown
                && let Ok(mut file) = std::fs::File::open(&path)
                && file.seek(SeekFrom::Start(offset)).is_ok()
                && let Ok(read) = file.read_to_end(&mut partial)
            {
                offset += read as u64;
                let mut start = 0;
                while let Some(len) = partial[start..].iter().position(|&b| b == b'\n') {
                    match_line(&partial[start..start + len], &pending, epoch);
                    start += len + 1;
                }
                partial.drain(..start);
            }
            if stopping {
                break;
            }
            std::thread::sleep(Duration::from_millis(2));
        }
    })
}

/// Every `every`, the server's `/proc` figures and the events acknowledged so far (seconds
/// since the start, acknowledged, figures).
fn sample(pid: u32, acked: &Arc<AtomicU64>, every: Duration) -> Sampler<u64> {
    let acked = acked.clone();
    Sampler::start(pid, every, move || acked.load(Ordering::Relaxed))
}

/// The samples with their time in seconds.
fn in_seconds(samples: Vec<(Duration, u64, ProcStats)>) -> Vec<(f64, u64, ProcStats)> {
    samples
        .into_iter()
        .map(|(at, acked, stats)| (at.as_secs_f64(), acked, stats))
        .collect()
}

/// The largest RSS sampled, in MiB.
fn max_rss_mib(samples: &[(f64, u64, ProcStats)]) -> f64 {
    samples
        .iter()
        .map(|(_, _, s)| mib(s.rss_kib))
        .fold(0.0, f64::max)
}

fn mib(kib: u64) -> f64 {
    kib as f64 / 1024.0
}

/// The generator check: the no-op handler and factorwatch at saturation with the same generator,
/// and the no-op handler fed each mix.
async fn generator_check(
    run: usize,
    secs: Duration,
    pools: &[(&str, Arc<Payloads>)],
    load: f64,
) -> anyhow::Result<Vec<Row>> {
    let mut rows = Vec::new();
    let mut drives: Vec<(Kind, &str, Arc<Payloads>)> = vec![
        (Kind::Noop, "pool", pools[0].1.clone()),
        (Kind::Factorwatch, "pool", pools[0].1.clone()),
    ];
    for (name, pool) in &pools[1..] {
        drives.push((Kind::Noop, name, pool.clone()));
    }
    for (kind, label, pool) in drives {
        let mut row = scenarios::saturation(run, kind, BATCH, pool, secs).await?;
        row.scenario = "mixes-generator".to_owned();
        row.label = label.to_owned();
        row.set("loadavg_1m", load);
        progress!(
            "  generator check, {} fed the {label} mix: {:.0} events/s, generator {:.2} CPU ms per 1,000 events",
            kind.name(),
            row.values["events_per_s"],
            row.values["generator_cpu_ms_per_1000_events"]
        );
        rows.push(row);
    }
    Ok(rows)
}

/// One mix closed loop at saturation for `secs` into a fresh factorwatch with one file sink, then
/// until every alerting event sent has its alert in the file (at most [`CATCH_UP_LIMIT`]).
async fn drive_mix(
    run: usize,
    name: &str,
    payloads: Arc<Payloads>,
    secs: Duration,
    load: f64,
) -> anyhow::Result<Row> {
    let (dir, alert_file, spec) =
        server::with_alert_file(&format!("factorwatch-mix-{name}-"), String::new())?;
    let server = Server::factorwatch_in(dir, &spec)?;
    let pending = Arc::new(Pending::default());
    let stop = Arc::new(AtomicBool::new(false));
    let epoch = Instant::now();
    let reader = tail(alert_file.clone(), pending.clone(), epoch, stop.clone());
    let record = pending.clone();
    let on_sent: OnSent = Arc::new(move |_, uuids| record.add(uuids));
    let mut drive = Drive::new(Pace::Closed, CLOSED_CONNECTIONS, secs);
    // The end-to-end clock starts at the first request: no warm-up left out.
    drive.warmup = Duration::ZERO;
    let acked = drive.acked.clone();
    let sampler = sample(server.pid(), &acked, Duration::from_millis(250));
    let generator_before = ProcStats::read(std::process::id())?;
    let before = ProcStats::read(server.pid())?;
    let detected_before = server.metric("factorwatch_events_detected_total")?;
    let first_request = epoch.elapsed();
    let outcome = client::run(&drive, &target(&server), payloads, Some(on_sent)).await?;
    let drive_end = epoch.elapsed();
    let at_drive_end = ProcStats::read(server.pid())?;
    let generator_after = ProcStats::read(std::process::id())?;
    let detected_at_end = server.metric("factorwatch_events_detected_total")?;
    let events = outcome.ok_events;
    progress!(
        "  {name}: {events} events acked in {:.1} s ({:.0}/s), {} failed, {:.0} detected meanwhile; {} of {} alerting events alerted so far",
        (drive_end - first_request).as_secs_f64(),
        outcome.events_per_second(),
        outcome.failed,
        detected_at_end - detected_before,
        pending.matched.load(Ordering::Relaxed),
        pending.expected.load(Ordering::Relaxed),
    );
    // Until every alerting event sent is alerted; when requests failed, their events never
    // alert, so also stop after 30 s without a new alert.
    let mut last_progress = Instant::now();
    let mut last_matched = pending.matched.load(Ordering::Relaxed);
    let waited_from = Instant::now();
    let mut last_log = Instant::now();
    loop {
        let outstanding = pending.outstanding();
        if outstanding == 0 {
            break;
        }
        let matched = pending.matched.load(Ordering::Relaxed);
        if matched != last_matched {
            last_matched = matched;
            last_progress = Instant::now();
        }
        if waited_from.elapsed() > CATCH_UP_LIMIT
            || (outcome.failed > 0 && last_progress.elapsed() > Duration::from_secs(30))
        {
            progress!("  {name}: gave up with {outstanding} alerting events not alerted");
            break;
        }
        if last_log.elapsed() >= Duration::from_secs(10) {
            last_log = Instant::now();
            progress!(
                "  {name}: catching up, {matched} alerted, {outstanding} to go, RSS {:.1} MiB",
                ProcStats::read(server.pid()).map_or(0.0, |s| mib(s.rss_kib))
            );
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    // Let the reader take in what is written after the last match (correlation alerts).
    tokio::time::sleep(Duration::from_millis(200)).await;
    stop.store(true, Ordering::Relaxed);
    reader
        .join()
        .map_err(|_| anyhow::anyhow!("the alert reader panicked"))?;
    let end = ProcStats::read(server.pid())?;
    let detected_end = server.metric("factorwatch_events_detected_total")?;
    let timers_refused = server.metric("factorwatch_correlation_timers_refused_total")?;
    let open_state = server.metric("factorwatch_correlation_open_state")?;
    let stages = detection_stages(&server)?;
    let samples = in_seconds(sampler.finish());
    drop(server);

    let last_alert = Duration::from_micros(pending.last_match_us.load(Ordering::Relaxed));
    let e2e = last_alert.saturating_sub(first_request);
    let drive_secs = (drive_end - first_request).as_secs_f64();
    let expected = pending.expected.load(Ordering::Relaxed);
    let matched = pending.matched.load(Ordering::Relaxed);
    let mut row = Row::new(run, "mixes", "factorwatch", BATCH, name);
    for (stage, seconds, passes) in stages {
        row.set(&format!("stage_{stage}_s"), seconds)
            .set(&format!("stage_{stage}_passes"), passes);
    }
    row.set("loadavg_1m", load)
        .set("events_acked", events as f64)
        .set("failed", outcome.failed as f64)
        .set("acked_eps", outcome.events_per_second())
        .set("drive_s", drive_secs)
        .set(
            "detected_during_drive_eps",
            (detected_at_end - detected_before) / drive_secs,
        )
        .set("events_detected", detected_end - detected_before)
        .set("correlation_timers_refused", timers_refused)
        .set("correlation_open_state", open_state)
        .set("alerting_sent", expected as f64)
        .set("alerting_alerted", matched as f64)
        .set(
            "single_alerts",
            pending.singles.load(Ordering::Relaxed) as f64,
        )
        .set(
            "correlation_alerts",
            pending.correlations.load(Ordering::Relaxed) as f64,
        )
        .set("e2e_s", e2e.as_secs_f64())
        .set(
            "catch_up_s",
            last_alert.saturating_sub(drive_end).as_secs_f64(),
        )
        .set("e2e_eps", events as f64 / e2e.as_secs_f64().max(1e-9))
        .set(
            "ack_p99_ms",
            outcome.latency.value_at_quantile(0.99) as f64 / 1000.0,
        )
        .set("rss_end_mib", mib(end.rss_kib))
        .set("rss_drive_end_mib", mib(at_drive_end.rss_kib))
        .set("hwm_mib", mib(end.hwm_kib))
        .set("rss_max_sampled_mib", max_rss_mib(&samples))
        .set(
            "cpu_ms_per_1000_events",
            (end.cpu_seconds - before.cpu_seconds) * 1e6 / events.max(1) as f64,
        )
        .set(
            "cpu_s_during_drive",
            at_drive_end.cpu_seconds - before.cpu_seconds,
        )
        .set("cpu_s_total", end.cpu_seconds - before.cpu_seconds)
        .set(
            "generator_cpu_ms_per_1000_events",
            (generator_after.cpu_seconds - generator_before.cpu_seconds) * 1e6
                / events.max(1) as f64,
        )
        .set(
            "disk_write_mib",
            end.write_bytes.saturating_sub(before.write_bytes) as f64 / 1048576.0,
        );
    progress!(
        "  {name}: {matched} of {expected} alerting events alerted; last alert {:.1} s after the first request ({:.1} s after the drive): {:.0} events/s end to end against {:.0} acked; {} correlation alerts; RSS {:.1} MiB at the end, peak {:.1}",
        e2e.as_secs_f64(),
        row.values["catch_up_s"],
        row.values["e2e_eps"],
        outcome.events_per_second(),
        row.values["correlation_alerts"],
        mib(end.rss_kib),
        mib(end.hwm_kib),
    );
    Ok(row)
}

/// Memory with `users` distinct users: the org mix, users in turn, open loop at `rate` until
/// `users` events were sent; RSS every second.
async fn memory(users: u64, rate: f64, load: f64, out: &Path) -> anyhow::Result<Row> {
    let payloads = Arc::new(Payloads::org(BATCH, users, Order::RoundRobin, 5));
    let (dir, alert_file, spec) =
        server::with_alert_file("factorwatch-mix-memory-", String::new())?;
    let server = Server::factorwatch_in(dir, &spec)?;
    let interval = Duration::from_secs_f64(BATCH as f64 / rate);
    let duration = Duration::from_secs_f64(users as f64 / rate + 1.0);
    let mut drive = Drive::new(Pace::Open { interval }, OPEN_CONNECTIONS, duration);
    drive.warmup = Duration::ZERO;
    drive.max_requests = users / BATCH as u64;
    let acked = drive.acked.clone();
    let sampler = sample(server.pid(), &acked, Duration::from_secs(1));
    let target = target(&server);
    let started = Instant::now();
    let load_task = tokio::spawn(async move { client::run(&drive, &target, payloads, None).await });
    let mut ticks = 0u64;
    while !load_task.is_finished() {
        tokio::time::sleep(Duration::from_secs(1)).await;
        ticks += 1;
        if ticks.is_multiple_of(20) {
            let stats = ProcStats::read(server.pid())?;
            let ready = server.readyz().unwrap_or_default();
            progress!(
                "  memory: {:.0} k events acked, RSS {:.1} MiB, peak {:.1} MiB, {} batches awaiting detection",
                acked.load(Ordering::Relaxed) as f64 / 1e3,
                mib(stats.rss_kib),
                mib(stats.hwm_kib),
                ready["pending_batches"]
            );
        }
    }
    let outcome = load_task.await??;
    let sent_done = started.elapsed();
    let at_send_end = ProcStats::read(server.pid())?;
    let ready_at_end = server.readyz().unwrap_or_default();
    // Then until detection has every batch (bounded).
    let drained = loop {
        let ready = server.readyz().unwrap_or_default();
        if ready["pending_batches"].as_u64() == Some(0) {
            break Some(started.elapsed());
        }
        if started.elapsed() > sent_done + Duration::from_secs(300) {
            break None;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    let end = ProcStats::read(server.pid())?;
    let detected = server.metric("factorwatch_events_detected_total")?;
    let metrics = server_metrics(&server);
    let samples = in_seconds(sampler.finish());
    // Before the server goes: its directory, the alert file's too, is removed with it.
    let alert_lines = std::fs::read(&alert_file)
        .map(|bytes| bytes.iter().filter(|&&b| b == b'\n').count())
        .unwrap_or(0);
    drop(server);

    let mut csv = String::from("seconds,events_acked,rss_mib,hwm_mib\n");
    for (seconds, acked, stats) in &samples {
        csv.push_str(&format!(
            "{seconds:.1},{acked},{:.1},{:.1}\n",
            mib(stats.rss_kib),
            mib(stats.hwm_kib)
        ));
    }
    std::fs::create_dir_all(out)?;
    std::fs::write(out.join("mixes-rss.csv"), csv).context("writing mixes-rss.csv")?;
    std::fs::write(out.join("mixes-memory-metrics.txt"), metrics)?;
    let rss_at = |wanted: u64| {
        samples
            .iter()
            .find(|(_, acked, _)| *acked >= wanted)
            .map_or(f64::NAN, |(_, _, s)| mib(s.rss_kib))
    };
    let mut row = Row::new(1, "mixes-memory", "factorwatch", BATCH, "org-1m");
    row.set("loadavg_1m", load)
        .set("users", users as f64)
        .set("offered_eps", rate)
        .set("events_acked", outcome.ok_events as f64)
        .set("failed", outcome.failed as f64)
        .set("send_s", sent_done.as_secs_f64())
        .set(
            "ack_p99_ms",
            outcome.latency.value_at_quantile(0.99) as f64 / 1000.0,
        )
        .set(
            "send_lag_p99_ms",
            outcome.send_lag.value_at_quantile(0.99) as f64 / 1000.0,
        )
        .set("rss_mib_at_250k", rss_at(users / 4))
        .set("rss_mib_at_500k", rss_at(users / 2))
        .set("rss_mib_at_750k", rss_at(users * 3 / 4))
        .set("rss_mib_at_send_end", mib(at_send_end.rss_kib))
        .set(
            "pending_batches_at_send_end",
            ready_at_end["pending_batches"].as_f64().unwrap_or(f64::NAN),
        )
        .set("drained_s", drained.map_or(f64::NAN, |d| d.as_secs_f64()))
        .set("rss_mib_end", mib(end.rss_kib))
        .set("rss_max_sampled_mib", max_rss_mib(&samples))
        .set("hwm_mib", mib(end.hwm_kib))
        .set("events_detected", detected)
        .set("alert_lines", alert_lines as f64);
    progress!(
        "  memory: {} of {users} events acked in {:.0} s; RSS {:.1} / {:.1} / {:.1} / {:.1} MiB at 250k / 500k / 750k / {users}; {:.1} after detection drained; peak {:.1}",
        outcome.ok_events,
        sent_done.as_secs_f64(),
        row.values["rss_mib_at_250k"],
        row.values["rss_mib_at_500k"],
        row.values["rss_mib_at_750k"],
        mib(at_send_end.rss_kib),
        mib(end.rss_kib),
        mib(end.hwm_kib)
    );
    Ok(row)
}

/// The stages of a detection pass (`factorwatch_detection_stage_seconds`): each one's name,
/// seconds in all, and how many passes went through it. Where a pass spends its time, and
/// whether detection or its commit is the longer while they overlap.
fn detection_stages(server: &Server) -> anyhow::Result<Vec<(&'static str, f64, f64)>> {
    let series = |stage: &str, part: &str| {
        server.metric(&format!(
            "factorwatch_detection_stage_seconds_{part}{{stage=\"{stage}\"}}"
        ))
    };
    ["read", "rules", "claim", "prepare", "store"]
        .into_iter()
        .map(|stage| Ok((stage, series(stage, "sum")?, series(stage, "count")?)))
        .collect()
}

/// factorwatch's `/metrics` lines that say how much state it holds (for the record).
fn server_metrics(server: &Server) -> String {
    let names = [
        "factorwatch_dedup_window_keys",
        "factorwatch_events_detected_total",
        "factorwatch_dedup_window_segments",
        "factorwatch_correlation_open_state",
        "factorwatch_correlation_timers_refused_total",
    ];
    let mut text = String::new();
    for name in names {
        let _ = server.metric(name).map(|value| {
            text.push_str(&format!("{name} {value}\n"));
        });
    }
    text
}

/// The `mixes` mode.
pub async fn run(options: Options) -> anyhow::Result<()> {
    let secs = Duration::from_secs(options.secs);
    let pool = Arc::new(Payloads::new(BATCH, 5));
    let mass = Arc::new(Payloads::mass_reset(BATCH, MASS_RESET_USERS, 7));
    let org = Arc::new(Payloads::org(BATCH, ORG_USERS, Order::Random, 5));
    progress!(
        "mixes: bodies of {} B (pool), {} B (mass reset, {:.0}% alerting), {} B (org, {:.1}% alerting, {:.0}% of events name one of {ORG_USERS} users)",
        pool.mean_bytes(),
        mass.mean_bytes(),
        mass.alerting_share() * 100.0,
        org.mean_bytes(),
        org.alerting_share() * 100.0,
        org.user_share() * 100.0
    );
    let pools = [
        ("pool", pool.clone()),
        ("mass-reset", mass.clone()),
        ("org", org.clone()),
    ];
    let mut rows = Vec::new();
    for run in 1..=options.runs {
        let mut machine = Row::new(run, "machine", "host", 0, "start");
        machine.set("loadavg_1m", loadavg());
        rows.push(machine);
        if options.run("generator") {
            let load = wait_quiet(&format!("run {run}: generator check"), options.quiet_load).await;
            rows.extend(generator_check(run, secs, &pools, load).await?);
        }
        for (name, payloads) in [("mass-reset", &mass), ("org", &org)] {
            if !options.run(name) {
                continue;
            }
            let load = wait_quiet(&format!("run {run}: {name} mix"), options.quiet_load).await;
            rows.push(drive_mix(run, name, payloads.clone(), secs, load).await?);
        }
        write(&options.out, &rows)?;
        progress!(
            "run {run} done; results so far in {}",
            options.out.display()
        );
    }
    if options.memory_events > 0 && options.run("memory") {
        let rate = if options.memory_rate > 0.0 {
            options.memory_rate
        } else {
            let m = Medians::of(&rows);
            let e2e = m
                .get("mixes", "factorwatch", BATCH, "org", "e2e_eps")
                .unwrap_or(5_000.0);
            (e2e * 0.8).round()
        };
        let load = wait_quiet("memory", options.quiet_load).await;
        progress!(
            "memory: {} users, org mix, {rate:.0} events/s, about {:.0} s",
            options.memory_events,
            options.memory_events as f64 / rate
        );
        rows.push(memory(options.memory_events, rate, load, &options.out).await?);
        write(&options.out, &rows)?;
    }
    print!("{}", markdown(&rows));
    Ok(())
}

/// mixes.json (every figure of every run) and mixes-summary.md (medians).
fn write(dir: &Path, rows: &[Row]) -> anyhow::Result<()> {
    std::fs::create_dir_all(dir)?;
    std::fs::write(dir.join("mixes.json"), serde_json::to_string_pretty(rows)?)?;
    std::fs::write(dir.join("mixes-summary.md"), markdown(rows))?;
    Ok(())
}

fn cell(value: Option<f64>, decimals: usize) -> String {
    match value {
        Some(v) if v.is_finite() && decimals == 0 => format_thousands(v.round() as i64),
        Some(v) if v.is_finite() => format!("{v:.decimals$}"),
        _ => "–".to_owned(),
    }
}

fn percent(a: Option<f64>, b: Option<f64>) -> String {
    match (a, b) {
        (Some(a), Some(b)) if b > 0.0 => format!("{:.1}%", a / b * 100.0),
        _ => "–".to_owned(),
    }
}

/// Each run's value of a figure, for the "runs" columns.
fn per_run(rows: &[Row], scenario: &str, server: &str, label: &str, name: &str) -> String {
    rows.iter()
        .filter(|r| r.scenario == scenario && r.server == server && r.label == label)
        .filter_map(|r| r.values.get(name))
        .map(|v| cell(Some(*v), if v.abs() >= 100.0 { 0 } else { 1 }))
        .collect::<Vec<_>>()
        .join(", ")
}

/// The Markdown tables of the medians.
fn markdown(rows: &[Row]) -> String {
    use std::fmt::Write as _;
    let m = Medians::of(rows);
    let runs = rows.iter().filter(|r| r.scenario == "machine").count();
    let loads = rows
        .iter()
        .filter(|r| r.scenario != "machine")
        .filter_map(|r| r.values.get("loadavg_1m"))
        .map(|v| format!("{v:.2}"))
        .collect::<Vec<_>>()
        .join(", ");
    let generator = |server: &str, label: &str, name: &str| {
        m.get("mixes-generator", server, BATCH, label, name)
    };
    let mix = |label: &str, name: &str| m.get("mixes", "factorwatch", BATCH, label, name);
    let mut out = format!(
        "### Mixes (issue 23): medians of {runs} run(s), {BATCH}-event envelopes\n\n\
         Load average (1 min) at the start of each phase: {loads}.\n\n"
    );
    let _ = writeln!(
        out,
        "Generator check (closed loop, {CLOSED_CONNECTIONS} connections):\n\n\
         | server | mix | events/s | runs | generator CPU ms per 1,000 events | server CPU ms per 1,000 events |\n|---|---|---|---|---|---|"
    );
    for (server, label) in [
        ("noop", "pool"),
        ("factorwatch", "pool"),
        ("noop", "mass-reset"),
        ("noop", "org"),
    ] {
        let _ = writeln!(
            out,
            "| {server} | {label} | {} | {} | {} | {} |",
            cell(generator(server, label, "events_per_s"), 0),
            per_run(rows, "mixes-generator", server, label, "events_per_s"),
            cell(
                generator(server, label, "generator_cpu_ms_per_1000_events"),
                2
            ),
            cell(generator(server, label, "cpu_ms_per_1000_events"), 1),
        );
    }
    let noop = generator("noop", "pool", "events_per_s");
    let fw = generator("factorwatch", "pool", "events_per_s");
    let _ = writeln!(
        out,
        "\nno-op / factorwatch acknowledged (pool mix): {}× (the issue asks for at least 2×); factorwatch detected meanwhile {} events/s.\n",
        match (noop, fw) {
            (Some(a), Some(b)) if b > 0.0 => format!("{:.2}", a / b),
            _ => "–".to_owned(),
        },
        cell(generator("factorwatch", "pool", "detected_eps"), 0)
    );
    let _ = writeln!(
        out,
        "| mix | events acked | acked events/s (runs) | end-to-end events/s (runs) | end to end / acked | catch-up after the drive s (runs) | acked / no-op (same mix) | end to end / no-op (same mix) | end to end / no-op (pool) | detected during the drive events/s | alerting events alerted / sent | correlation alerts | factorwatch CPU ms per 1,000 events | RSS at the end MiB | peak (VmHWM) MiB |\n|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|"
    );
    for label in ["mass-reset", "org"] {
        let noop_mix = generator("noop", label, "events_per_s");
        let _ = writeln!(
            out,
            "| {label} | {} | {} ({}) | {} ({}) | {} | {} ({}) | {} | {} | {} | {} | {} / {} | {} | {} | {} | {} |",
            cell(mix(label, "events_acked"), 0),
            cell(mix(label, "acked_eps"), 0),
            per_run(rows, "mixes", "factorwatch", label, "acked_eps"),
            cell(mix(label, "e2e_eps"), 0),
            per_run(rows, "mixes", "factorwatch", label, "e2e_eps"),
            percent(mix(label, "e2e_eps"), mix(label, "acked_eps")),
            cell(mix(label, "catch_up_s"), 1),
            per_run(rows, "mixes", "factorwatch", label, "catch_up_s"),
            percent(mix(label, "acked_eps"), noop_mix),
            percent(mix(label, "e2e_eps"), noop_mix),
            percent(mix(label, "e2e_eps"), noop),
            cell(mix(label, "detected_during_drive_eps"), 0),
            cell(mix(label, "alerting_alerted"), 0),
            cell(mix(label, "alerting_sent"), 0),
            cell(mix(label, "correlation_alerts"), 0),
            cell(mix(label, "cpu_ms_per_1000_events"), 1),
            cell(mix(label, "rss_end_mib"), 1),
            cell(mix(label, "hwm_mib"), 1),
        );
    }
    if let Some(row) = rows.iter().find(|r| r.scenario == "mixes-memory") {
        let v = |name: &str| row.values.get(name).copied();
        let _ = writeln!(
            out,
            "\nMemory, org mix, {} users in turn, open loop at {} events/s:\n\n\
             | events acked | RSS at 250k / 500k / 750k users MiB | at 1M (all sent) MiB | after detection drained MiB | sampled max MiB | peak (VmHWM) MiB | batches awaiting detection when all were sent | ack p99 ms |\n|---|---|---|---|---|---|---|---|\n\
             | {} | {} / {} / {} | {} | {} | {} | {} | {} | {} |",
            cell(v("users"), 0),
            cell(v("offered_eps"), 0),
            cell(v("events_acked"), 0),
            cell(v("rss_mib_at_250k"), 1),
            cell(v("rss_mib_at_500k"), 1),
            cell(v("rss_mib_at_750k"), 1),
            cell(v("rss_mib_at_send_end"), 1),
            cell(v("rss_mib_end"), 1),
            cell(v("rss_max_sampled_mib"), 1),
            cell(v("hwm_mib"), 1),
            cell(v("pending_batches_at_send_end"), 0),
            cell(v("ack_p99_ms"), 2),
        );
    }
    out
}
