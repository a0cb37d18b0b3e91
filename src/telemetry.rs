//! Logs (tracing) and metrics (the `metrics` facade, exported in Prometheus format).
//!
//! Metric names, all prefixed `factorwatch_` (docs/operations.md explains each):
//! `http_requests_total{route,status}`, `events_received_total`, `events_detected_total`,
//! `duplicate_events_total`, `alerts_total{rule_id,level}`, `delivery_attempts_total{sink}`,
//! `delivery_failures_total{sink}`, `dead_letters_total{sink}`, `spool_backlog_bytes`,
//! `spool_pending_batches`, `spool_writable`, `outbox_pending{sink}`, `dead_letter_pending{sink}`,
//! `ack_latency_seconds` (histogram), `spool_commit_group_size` (histogram).
//!
//! With `[[okta.orgs]]`, the metrics of one org's hook, spool and sinks also carry an `org` label
//! (see [`org_labels`]); the top-level org's carry none, so a single-org install's series stay
//! as they were. Detection counters (`alerts_total`, `events_detected_total`, ...) are per process.

use std::sync::OnceLock;

use metrics_exporter_prometheus::{Matcher, PrometheusBuilder, PrometheusHandle};
use serde::{Deserialize, Serialize};
use tracing_subscriber::EnvFilter;

use crate::spool::BacklogSnapshot;

/// `[log]`: logging.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct LogConfig {
    /// `text` for people, `json` for log pipelines. Env: `FACTORWATCH_LOG_FORMAT`.
    pub format: LogFormat,
    /// A tracing filter such as `info` or `factorwatch=debug`. `RUST_LOG` wins when set.
    pub level: String,
}

impl Default for LogConfig {
    fn default() -> Self {
        Self {
            format: LogFormat::Text,
            level: "info".into(),
        }
    }
}

/// Log line format.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    /// Human-readable lines.
    Text,
    /// One JSON object per line.
    Json,
}

impl LogConfig {
    /// Checks that `level` is a filter tracing understands.
    pub fn validate(&self) -> anyhow::Result<()> {
        if let Err(err) = tracing_subscriber::EnvFilter::try_new(&self.level) {
            anyhow::bail!("log.level = {:?}: {err}", self.level);
        }
        Ok(())
    }
}

/// Installs the global log subscriber. Later calls (tests starting several apps) are no-ops.
pub fn init_logging(config: &LogConfig) {
    // lapin logs every message a broker returns, body included, at warn: an alert body names users
    // and IPs, and the AMQP sink already reports the return itself.
    let quiet_returns = "lapin::returned_messages=error"
        .parse()
        .expect("a valid tracing directive");
    let filter = EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| EnvFilter::new(config.level.as_str()))
        .add_directive(quiet_returns);
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(
            std::io::IsTerminal::is_terminal(&std::io::stderr())
                && std::env::var_os("NO_COLOR").is_none(),
        );
    let _ = match config.format {
        LogFormat::Json => builder.json().flatten_event(true).try_init(),
        LogFormat::Text => builder.try_init(),
    };
}

/// The process-wide Prometheus recorder, installed on first use.
pub fn metrics_handle() -> PrometheusHandle {
    static HANDLE: OnceLock<PrometheusHandle> = OnceLock::new();
    HANDLE
        .get_or_init(|| {
            PrometheusBuilder::new()
                .set_buckets_for_metric(
                    Matcher::Full("factorwatch_ack_latency_seconds".into()),
                    &[
                        0.0005, 0.001, 0.002, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5,
                    ],
                )
                .and_then(|b| {
                    b.set_buckets_for_metric(
                        Matcher::Full("factorwatch_spool_commit_group_size".into()),
                        &[1.0, 2.0, 4.0, 8.0, 16.0, 32.0, 64.0, 128.0, 256.0],
                    )
                })
                .expect("bucket lists are not empty")
                .install_recorder()
                .expect("no other metrics recorder is installed")
        })
        .clone()
}

/// The labels of a per-org metric: `extra`, plus `org` for a `[[okta.orgs]]` org (none for the
/// top-level org, whose series keep their single-org shape).
pub fn org_labels(org: Option<&str>, extra: &[(&'static str, &str)]) -> Vec<metrics::Label> {
    extra
        .iter()
        .map(|(key, value)| metrics::Label::new(*key, value.to_string()))
        .chain(org.map(|org| metrics::Label::new("org", org.to_owned())))
        .collect()
}

/// Publishes `org`'s spool gauges: its backlog and its de-duplication window.
pub fn record_spool(spool: &crate::spool::Spool, org: Option<&str>) {
    record_backlog(&spool.backlog(), org);
    record_window(spool.window_size(), org);
}

/// Publishes the size of `org`'s de-duplication window as gauges.
fn record_window(size: crate::spool::WindowSize, org: Option<&str>) {
    let labels = org_labels(org, &[]);
    metrics::gauge!("factorwatch_dedup_window_keys", labels.clone()).set(size.keys as f64);
    metrics::gauge!("factorwatch_dedup_window_segments", labels).set(size.segments as f64);
}

/// Publishes the counters of `org`'s spool as gauges.
fn record_backlog(backlog: &BacklogSnapshot, org: Option<&str>) {
    let labels = org_labels(org, &[]);
    metrics::gauge!("factorwatch_spool_backlog_bytes", labels.clone()).set(backlog.bytes as f64);
    metrics::gauge!("factorwatch_spool_backlog_limit_bytes", labels.clone())
        .set(backlog.limit_bytes as f64);
    metrics::gauge!("factorwatch_spool_pending_batches", labels.clone())
        .set(backlog.batches as f64);
    metrics::gauge!("factorwatch_spool_writable", labels).set(if backlog.writable {
        1.0
    } else {
        0.0
    });
    for (sink, counts) in &backlog.sinks {
        let labels = org_labels(org, &[("sink", sink)]);
        metrics::gauge!("factorwatch_outbox_pending", labels.clone()).set(counts.pending as f64);
        metrics::gauge!("factorwatch_dead_letter_pending", labels).set(counts.dead as f64);
    }
}
