//! Logs (tracing) and metrics (the `metrics` facade, exported in Prometheus format).
//!
//! Every metric's name, type and labels are in [`metrics`], as constants; docs/operations.md
//! explains each.
//!
//! With `[[okta.orgs]]`, the metrics of one org's hook, spool and sinks also carry an `org` label
//! (see [`org_labels`]); the top-level org's carry none, so a single-org install's series stay
//! as they were. Detection counters (`alerts_total`, `events_detected_total`, ...) are per process.

pub mod metrics;
pub mod tally;

use std::sync::OnceLock;

use metrics_exporter_prometheus::{Matcher, PrometheusBuilder, PrometheusHandle};
use serde::{Deserialize, Serialize};
use tracing_subscriber::EnvFilter;

use self::metrics::{
    ACK_LATENCY_SECONDS, DETECTION_STAGE_SECONDS, OKTA_API_REQUEST_DURATION_SECONDS,
    SPOOL_COMMIT_GROUP_SIZE,
};

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
    // rsigma warns each time a correlation at its cap of groups drops some, which a mass reset
    // makes several times a second, and names a setting factorwatch does not expose; factorwatch
    // counts those itself and warns at most once a minute (detect::correlate).
    let quiet_cap = "rsigma_eval::correlation_engine=error"
        .parse()
        .expect("a valid tracing directive");
    let filter = EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| EnvFilter::new(config.level.as_str()))
        .add_directive(quiet_returns)
        .add_directive(quiet_cap);
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

/// Buckets of the histograms of local work (an answer to Okta, a stage of detection): half a
/// millisecond to 2.5 s.
const LATENCY_BUCKETS: [f64; 12] = [
    0.0005, 0.001, 0.002, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5,
];

/// The process-wide Prometheus recorder, installed on first use.
pub fn metrics_handle() -> PrometheusHandle {
    static HANDLE: OnceLock<PrometheusHandle> = OnceLock::new();
    HANDLE
        .get_or_init(|| {
            PrometheusBuilder::new()
                .set_buckets_for_metric(Matcher::Full(ACK_LATENCY_SECONDS.into()), &LATENCY_BUCKETS)
                .and_then(|b| {
                    b.set_buckets_for_metric(
                        Matcher::Full(SPOOL_COMMIT_GROUP_SIZE.into()),
                        &[1.0, 2.0, 4.0, 8.0, 16.0, 32.0, 64.0, 128.0, 256.0],
                    )
                })
                .and_then(|b| {
                    b.set_buckets_for_metric(
                        Matcher::Full(DETECTION_STAGE_SECONDS.into()),
                        &LATENCY_BUCKETS,
                    )
                })
                .and_then(|b| {
                    // Okta answers in tens of milliseconds to seconds; it gives up after 30 s.
                    b.set_buckets_for_metric(
                        Matcher::Full(OKTA_API_REQUEST_DURATION_SECONDS.into()),
                        &[0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0],
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
pub fn org_labels(org: Option<&str>, extra: &[(&'static str, &str)]) -> Vec<::metrics::Label> {
    extra
        .iter()
        .map(|(key, value)| ::metrics::Label::new(*key, value.to_string()))
        .chain(org.map(|org| ::metrics::Label::new("org", org.to_owned())))
        .collect()
}
