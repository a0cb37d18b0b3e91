//! Results: every measurement of every run as one row, the raw rows as JSON, the medians over runs
//! as Markdown tables (pasted into BENCHMARKS.md) and the ack latency per offered load as CSV (for
//! `scripts/plot-latency.py`).

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::path::Path;

use serde::Serialize;

/// One measurement of one run.
#[derive(Debug, Clone, Serialize)]
pub struct Row {
    /// Run number, from 1.
    pub run: usize,
    /// `fsync`, `saturation`, `rate`, `e2e`, `recovery`, `long`, `poller`, `poller-okta-limit` or
    /// `poller-steady`.
    pub scenario: String,
    /// `factorwatch`, `noop`, `disk` or `baseline` (the poller's plain System Log client).
    pub server: String,
    /// Events per request.
    pub batch: usize,
    /// What varies inside a scenario: the offered rate (`1000`, `80%sat`), the sink, ...
    pub label: String,
    /// The figures, by name.
    pub values: BTreeMap<String, f64>,
}

impl Row {
    /// A row without values yet.
    pub fn new(run: usize, scenario: &str, server: &str, batch: usize, label: &str) -> Self {
        Self {
            run,
            scenario: scenario.to_owned(),
            server: server.to_owned(),
            batch,
            label: label.to_owned(),
            values: BTreeMap::new(),
        }
    }

    /// Adds a figure.
    pub fn set(&mut self, name: &str, value: f64) -> &mut Self {
        self.values.insert(name.to_owned(), value);
        self
    }
}

/// (scenario, server, batch, label): the rows one median is taken over.
type GroupKey = (String, String, usize, String);

/// The median of each figure over the runs, per (scenario, server, batch, label).
pub struct Medians {
    groups: BTreeMap<GroupKey, BTreeMap<String, Vec<f64>>>,
    /// The order groups first appeared in, so tables follow the run order.
    order: Vec<GroupKey>,
}

impl Medians {
    /// Groups `rows`.
    pub fn of(rows: &[Row]) -> Self {
        let mut groups: BTreeMap<_, BTreeMap<String, Vec<f64>>> = BTreeMap::new();
        let mut order = Vec::new();
        for row in rows {
            let key = (
                row.scenario.clone(),
                row.server.clone(),
                row.batch,
                row.label.clone(),
            );
            if !groups.contains_key(&key) {
                order.push(key.clone());
            }
            let group = groups.entry(key).or_default();
            for (name, value) in &row.values {
                group.entry(name.clone()).or_default().push(*value);
            }
        }
        Self { groups, order }
    }

    /// The median of `name` in a group, if measured.
    pub fn get(
        &self,
        scenario: &str,
        server: &str,
        batch: usize,
        label: &str,
        name: &str,
    ) -> Option<f64> {
        let key = (
            scenario.to_owned(),
            server.to_owned(),
            batch,
            label.to_owned(),
        );
        let mut values = self.groups.get(&key)?.get(name)?.clone();
        values.sort_by(f64::total_cmp);
        let mid = values.len() / 2;
        Some(if values.len() % 2 == 1 {
            values[mid]
        } else {
            (values[mid - 1] + values[mid]) / 2.0
        })
    }

    /// Labels of a scenario and server, in run order.
    fn labels(&self, scenario: &str, server: &str) -> Vec<(usize, String)> {
        self.order
            .iter()
            .filter(|(s, v, _, _)| s == scenario && v == server)
            .map(|(_, _, batch, label)| (*batch, label.clone()))
            .collect()
    }
}

fn cell(value: Option<f64>, decimals: usize) -> String {
    match value {
        Some(v) if decimals == 0 => format_thousands(v.round() as i64),
        Some(v) => format!("{v:.decimals$}"),
        None => "–".to_owned(),
    }
}

/// `1234567` as `1,234,567`.
pub fn format_thousands(value: i64) -> String {
    let digits = value.unsigned_abs().to_string();
    let mut out = String::new();
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    if value < 0 { format!("-{out}") } else { out }
}

fn ratio(a: Option<f64>, b: Option<f64>) -> String {
    match (a, b) {
        (Some(a), Some(b)) if b > 0.0 => format!("{:.0}%", 100.0 * a / b),
        _ => "–".to_owned(),
    }
}

/// The medians of `rows`, and the start of their report, which says over how many runs.
fn medians(rows: &[Row]) -> (Medians, String) {
    let runs = rows.iter().map(|r| r.run).max().unwrap_or(0);
    (Medians::of(rows), format!("Medians of {runs} run(s).\n\n"))
}

/// The Markdown tables of the medians.
pub fn markdown(rows: &[Row]) -> String {
    let (m, mut out) = medians(rows);

    table(
        &mut out,
        "### Saturation (closed loop, 32 keep-alive connections)\n",
        "| batch | body bytes | no-op events/s | factorwatch events/s acked | ratio | events/s detected meanwhile | factorwatch p50 / p99 ms | CPU ms per 1,000 events (factorwatch / no-op / generator with factorwatch) | disk bytes written per 1,000 events | mean commit group | one-fsync-per-request bound events/s | factorwatch / that bound |",
    );
    for (batch, label) in m.labels("saturation", "factorwatch") {
        let fw = |name| m.get("saturation", "factorwatch", batch, &label, name);
        let noop = |name| m.get("saturation", "noop", batch, &label, name);
        let fsync = m
            .get("fsync", "disk", batch, "append", "fsyncs_per_s")
            .map(|rate| rate * batch as f64);
        let _ = writeln!(
            out,
            "| {batch} | {} | {} | {} | {} | {} | {} / {} | {} / {} / {} | {} | {} | {} | {} |",
            cell(fw("body_bytes"), 0),
            cell(noop("events_per_s"), 0),
            cell(fw("events_per_s"), 0),
            ratio(fw("events_per_s"), noop("events_per_s")),
            cell(fw("detected_eps"), 0),
            cell(fw("p50_ms"), 2),
            cell(fw("p99_ms"), 2),
            cell(fw("cpu_ms_per_1000_events"), 1),
            cell(noop("cpu_ms_per_1000_events"), 1),
            cell(fw("generator_cpu_ms_per_1000_events"), 1),
            cell(fw("write_bytes_per_1000_events"), 0),
            cell(fw("mean_commit_group"), 1),
            cell(fsync, 0),
            ratio(fw("events_per_s"), fsync),
        );
    }

    table(
        &mut out,
        "\n### Acknowledgement latency, open loop at fixed rates (10-event batches, 64 connections, latency from the intended send time)\n",
        "| server | offered events/s | acked events/s | p50 ms | p99 ms | p99.9 ms | max ms | requests measured | failed | generator send lag p99 ms | RSS MiB (median over the run's second half) | CPU ms per 1,000 events |",
    );
    for server in ["factorwatch", "noop"] {
        for (batch, label) in m.labels("rate", server) {
            let v = |name| m.get("rate", server, batch, &label, name);
            let _ = writeln!(
                out,
                "| {server} | {} ({label}) | {} | {} | {} | {} | {} | {} | {} | {} | {} | {} |",
                cell(v("offered_eps"), 0),
                cell(v("acked_eps"), 0),
                cell(v("p50_ms"), 2),
                cell(v("p99_ms"), 2),
                cell(v("p999_ms"), 2),
                cell(v("max_ms"), 1),
                cell(v("requests"), 0),
                cell(v("failed"), 0),
                cell(v("send_lag_p99_ms"), 2),
                cell(v("rss_steady_mib"), 1),
                cell(v("cpu_ms_per_1000_events"), 1),
            );
        }
    }

    table(
        &mut out,
        "\n### End to end: POST to alert readable in the sink (open loop, 1,000 events/s, 10-event batches)\n",
        "| sink | p50 ms | p99 ms | p99.9 ms | max ms | alerting events alerted / sent (correlation alerts not counted) |",
    );
    for (batch, label) in m.labels("e2e", "factorwatch") {
        let v = |name| m.get("e2e", "factorwatch", batch, &label, name);
        let _ = writeln!(
            out,
            "| {label} | {} | {} | {} | {} | {} / {} |",
            cell(v("p50_ms"), 2),
            cell(v("p99_ms"), 2),
            cell(v("p999_ms"), 2),
            cell(v("max_ms"), 1),
            cell(v("seen"), 0),
            cell(v("expected"), 0),
        );
    }

    table(
        &mut out,
        "\n### Memory (factorwatch; VmHWM is the peak resident set of the process)\n",
        "| scenario | RSS at the end MiB | peak (VmHWM) MiB |",
    );
    for (scenario, what) in [("saturation", "saturation"), ("rate", "rate")] {
        for (batch, label) in m.labels(scenario, "factorwatch") {
            let v = |name| m.get(scenario, "factorwatch", batch, &label, name);
            let _ = writeln!(
                out,
                "| {what}, batch {batch}, {label} | {} | {} |",
                cell(v("rss_mib"), 1),
                cell(v("hwm_mib"), 1),
            );
        }
    }

    table(
        &mut out,
        "\n### Crash recovery: SIGKILL right after 100,000 acknowledged events (10-event batches), sink down until the restart\n",
        "| events acked | batches awaiting detection at the kill | alerts in the outbox at the kill | restart to /healthz s | restart to backlog 0 s | alerting events alerted / sent | correlation alerts |",
    );
    for (batch, label) in m.labels("recovery", "factorwatch") {
        let v = |name| m.get("recovery", "factorwatch", batch, &label, name);
        let _ = writeln!(
            out,
            "| {} | {} | {} | {} | {} | {} / {} | {} |",
            cell(v("events_acked"), 0),
            cell(v("pending_batches_at_kill"), 0),
            cell(v("outbox_at_kill"), 0),
            cell(v("healthy_s"), 2),
            cell(v("drained_s"), 2),
            cell(v("alerts_delivered"), 0),
            cell(v("expected"), 0),
            cell(v("correlation_alerts"), 0),
        );
    }

    table(
        &mut out,
        "\n### Disk: write + fdatasync appends, one request body per write, in the spool's directory\n",
        "| write bytes | fdatasyncs/s |",
    );
    for (batch, _) in m.labels("fsync", "disk") {
        let _ = writeln!(
            out,
            "| {} (batch of {batch}) | {} |",
            cell(m.get("fsync", "disk", batch, "append", "write_bytes"), 0),
            cell(m.get("fsync", "disk", batch, "append", "fsyncs_per_s"), 0),
        );
    }
    let _ = writeln!(out, "\n### Load on the machine at the start of each run\n");
    for row in rows.iter().filter(|r| r.scenario == "machine") {
        let _ = writeln!(
            out,
            "- run {}: loadavg 1 min {:.2}",
            row.run,
            row.values.get("loadavg_1m").copied().unwrap_or(0.0)
        );
    }
    out
}

/// Ack latency per offered load, medians over runs: the plot's input.
pub fn latency_csv(rows: &[Row]) -> String {
    let m = Medians::of(rows);
    let mut out = String::from("server,label,offered_eps,acked_eps,p50_ms,p99_ms,p999_ms\n");
    for server in ["factorwatch", "noop"] {
        for (batch, label) in m.labels("rate", server) {
            let v = |name| {
                m.get("rate", server, batch, &label, name)
                    .unwrap_or(f64::NAN)
            };
            let _ = writeln!(
                out,
                "{server},{label},{:.0},{:.0},{:.3},{:.3},{:.3}",
                v("offered_eps"),
                v("acked_eps"),
                v("p50_ms"),
                v("p99_ms"),
                v("p999_ms"),
            );
        }
    }
    out
}

/// Writes `runs.json`, `summary.md` and `latency.csv` into `dir`.
pub fn write(dir: &Path, rows: &[Row]) -> anyhow::Result<()> {
    std::fs::create_dir_all(dir)?;
    std::fs::write(dir.join("runs.json"), serde_json::to_string_pretty(rows)?)?;
    std::fs::write(dir.join("summary.md"), markdown(rows))?;
    std::fs::write(dir.join("latency.csv"), latency_csv(rows))?;
    Ok(())
}

/// The Markdown tables of the poller phase, medians over runs.
pub fn poller_markdown(rows: &[Row]) -> String {
    let (m, mut out) = medians(rows);
    table(
        &mut out,
        "### System Log poller: catching up on a day of System Log (1,000-event pages)\n",
        "| events asked for | Okta rate limit | events read | pages | baseline: all pages s (ms a page) | factorwatch: all pages read and stored s (ms a page) | factorwatch / baseline | last alert in the file s | half the alerts s | alerting events alerted / published | factorwatch CPU ms a page | stand-in CPU ms a page (baseline / with factorwatch) | factorwatch peak RSS MiB | answers 429 |",
    );
    for (scenario, limit) in [
        ("poller", "none"),
        ("poller-okta-limit", "120/min, share 0.5"),
    ] {
        for (batch, label) in m.labels(scenario, "factorwatch") {
            let fw = |name| m.get(scenario, "factorwatch", batch, &label, name);
            let base = |name| m.get("poller", "baseline", batch, &label, name);
            let _ = writeln!(
                out,
                "| {label} | {limit} | {} | {} | {} ({}) | {} ({}) | {} | {} | {} | {} / {} | {} | {} / {} | {} | {} |",
                cell(fw("events_read"), 0),
                cell(fw("pages"), 0),
                cell(base("read_s"), 2),
                cell(base("ms_per_page"), 1),
                cell(fw("read_s"), 2),
                cell(fw("ms_per_page"), 1),
                times(fw("ms_per_page"), base("ms_per_page")),
                cell(fw("alerted_s"), 2),
                cell(fw("half_alerted_s"), 2),
                cell(fw("alerts"), 0),
                cell(fw("alerting_events"), 0),
                cell(fw("cpu_ms_per_page"), 1),
                cell(base("generator_cpu_ms_per_page"), 1),
                cell(fw("generator_cpu_ms_per_page"), 1),
                cell(fw("hwm_mib"), 1),
                cell(fw("throttled"), 0),
            );
        }
    }
    table(
        &mut out,
        "\n### System Log poller, steady state: MFA resets published live at Okta's ceiling (400,000 a day), publication to alert in the file\n",
        "| interval / grace | events/s | alerted / published | lag min / p50 / p99 / max s | peak RSS MiB |",
    );
    for (batch, label) in m.labels("poller-steady", "factorwatch") {
        let v = |name| m.get("poller-steady", "factorwatch", batch, &label, name);
        let _ = writeln!(
            out,
            "| {label} | {} | {} / {} | {} / {} / {} / {} | {} |",
            cell(v("events_per_s"), 2),
            cell(v("alerts"), 0),
            cell(v("published"), 0),
            cell(v("lag_min_s"), 2),
            cell(v("lag_p50_s"), 2),
            cell(v("lag_p99_s"), 2),
            cell(v("lag_max_s"), 2),
            cell(v("hwm_mib"), 1),
        );
    }
    out
}

/// Writes a table's `heading` (as given, blank lines included), its `header` row and the
/// separator row, one `|---` per column of the header.
fn table(out: &mut String, heading: &str, header: &str) {
    let columns = header.matches('|').count().saturating_sub(1);
    let _ = writeln!(out, "{heading}");
    let _ = writeln!(out, "{header}");
    let _ = writeln!(out, "{}|", "|---".repeat(columns));
}

fn times(a: Option<f64>, b: Option<f64>) -> String {
    match (a, b) {
        (Some(a), Some(b)) if b > 0.0 => format!("{:.1}×", a / b),
        _ => "–".to_owned(),
    }
}
