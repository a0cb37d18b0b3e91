//! The delivery loop every sink shares: read due alerts from the sink's outbox, publish them
//! oldest first (an alert waiting for its backoff can be overtaken by later ones), remove what
//! was acknowledged, reschedule failures with exponential backoff and jitter, and move to the
//! dead-letter table what ran out of attempts or age, or was refused outright.
//!
//! Each sink has its own loop and its own outbox, so one destination being down never delays another.
//! Delivery is at least once: a crash between the publish and the outbox removal publishes again
//! with the same alert id, which the destinations de-duplicate on.

use std::sync::Arc;
use std::time::{Duration, Instant};

use rand::Rng;
use serde::{Deserialize, Serialize};
use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;

use crate::alert::{Alert, AlertFormat};
use crate::clock::{now_ms, wait_for_work};
use crate::sinks::{Delivery, DeliveryError, Sink};
use crate::spool::{OutboxEntry, Spool};
use crate::telemetry::metrics::{
    DEAD_LETTERS_TOTAL, DELIVERY_ATTEMPTS_TOTAL, DELIVERY_FAILURES_TOTAL,
    SINK_LAST_ERROR_TIMESTAMP_SECONDS, SINK_UP,
};

/// `[delivery]`: how a forwarder retries a sink before giving up on an alert.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct DeliveryConfig {
    /// Attempts per alert and sink before it moves to the dead-letter table.
    pub max_attempts: u32,
    /// An alert still undelivered this long after it was raised moves to the dead-letter table.
    #[serde(with = "humantime_serde")]
    pub max_age: Duration,
    /// Wait before the first retry; doubles with each failure (with jitter) up to `max_backoff`.
    #[serde(with = "humantime_serde")]
    pub initial_backoff: Duration,
    /// Longest wait between two attempts.
    #[serde(with = "humantime_serde")]
    pub max_backoff: Duration,
}

impl Default for DeliveryConfig {
    fn default() -> Self {
        Self {
            max_attempts: 20,
            max_age: Duration::from_secs(24 * 3600),
            initial_backoff: Duration::from_millis(500),
            max_backoff: Duration::from_secs(300),
        }
    }
}

impl DeliveryConfig {
    /// Checks what the types alone cannot. Each error names the key at fault.
    pub fn validate(&self) -> anyhow::Result<()> {
        anyhow::ensure!(
            self.max_attempts > 0,
            "delivery.max_attempts must be at least 1"
        );
        anyhow::ensure!(
            self.initial_backoff <= self.max_backoff,
            "delivery.initial_backoff must not exceed delivery.max_backoff"
        );
        Ok(())
    }
}

/// Alerts read from the outbox per pass.
const ENTRIES_PER_PASS: usize = 64;
/// Longest sleep while nothing is due; new alerts wake the loop earlier.
const IDLE_WAIT: Duration = Duration::from_secs(5);
/// A failing sink is reported at warn level at most this often; retries in between log at debug.
const WARN_EVERY: Duration = Duration::from_secs(60);

/// What each forwarder last saw of its destination, for `/readyz` and the logs.
#[derive(Debug, Clone, Default, serde::Serialize)]
pub struct SinkStatus {
    /// True from a failed attempt until the next successful one.
    pub failing: bool,
    /// The last error, kept after recovery for the record.
    pub last_error: Option<String>,
    /// When it happened (RFC 3339).
    pub last_error_at: Option<String>,
}

/// The status of every sink of one org, shared by its forwarders and the HTTP server.
#[derive(Debug, Clone, Default)]
pub struct SinkHealth {
    statuses: Arc<std::sync::Mutex<std::collections::BTreeMap<String, SinkStatus>>>,
    /// The `[[okta.orgs]]` name the sinks serve (labels their metrics); `None`: the top-level org.
    org: Option<Arc<str>>,
}

impl SinkHealth {
    /// The health of the sinks of `org` (`None`: the top-level org).
    pub fn for_org(org: Option<Arc<str>>) -> Self {
        Self {
            statuses: Arc::default(),
            org,
        }
    }

    /// A copy of every sink's status.
    pub fn snapshot(&self) -> std::collections::BTreeMap<String, SinkStatus> {
        self.statuses
            .lock()
            .expect("sink health lock poisoned")
            .clone()
    }

    /// The labels of `sink`'s metrics: two orgs may each have a sink of the same name.
    fn labels(&self, sink: &str) -> Vec<metrics::Label> {
        crate::telemetry::org_labels(self.org.as_deref(), &[("sink", sink)])
    }

    fn record(&self, sink: &str, error: Option<&DeliveryError>) {
        let mut all = self.statuses.lock().expect("sink health lock poisoned");
        let status = all.entry(sink.to_owned()).or_default();
        status.failing = error.is_some();
        metrics::gauge!(SINK_UP, self.labels(sink)).set(if error.is_some() { 0.0 } else { 1.0 });
        if let Some(error) = error {
            let now = now_ms();
            status.last_error = Some(error.to_string());
            status.last_error_at = Some(crate::clock::rfc3339(now));
            metrics::gauge!(SINK_LAST_ERROR_TIMESTAMP_SECONDS, self.labels(sink))
                .set(now as f64 / 1000.0);
        }
    }
}

/// What to do with an alert after a failed attempt.
#[derive(Debug, PartialEq, Eq)]
pub enum AfterFailure {
    /// Try again at this time (Unix ms).
    RetryAt(u64),
    /// Give up: move to the dead-letter table, with the reason.
    DeadLetter(String),
}

/// The retry policy.
#[derive(Debug, Clone)]
pub struct RetryPolicy(pub DeliveryConfig);

impl RetryPolicy {
    /// Decides the fate of an alert that has now failed `attempts` times.
    pub fn after_failure(
        &self,
        record_created_ms: u64,
        attempts: u32,
        error: &DeliveryError,
        now: u64,
        rng: &mut impl Rng,
    ) -> AfterFailure {
        let policy = &self.0;
        if let DeliveryError::Permanent(_) = error {
            return AfterFailure::DeadLetter("refused by the destination".into());
        }
        if attempts >= policy.max_attempts {
            return AfterFailure::DeadLetter(format!(
                "gave up after {attempts} attempts (delivery.max_attempts)"
            ));
        }
        let delay = self.backoff(attempts, rng);
        if now + delay.as_millis() as u64 > record_created_ms + policy.max_age.as_millis() as u64 {
            return AfterFailure::DeadLetter(format!(
                "undelivered for longer than delivery.max_age ({})",
                humantime::format_duration(policy.max_age)
            ));
        }
        AfterFailure::RetryAt(now + delay.as_millis() as u64)
    }

    /// Exponential backoff with "equal jitter": between half and all of `initial * 2^(n-1)`,
    /// capped at `max_backoff`, so many replicas retrying one broker do not retry in lockstep.
    pub fn backoff(&self, attempts: u32, rng: &mut impl Rng) -> Duration {
        let exponent = attempts.saturating_sub(1).min(30);
        let full = self
            .0
            .initial_backoff
            .saturating_mul(1 << exponent)
            .min(self.0.max_backoff);
        let half = full / 2;
        half + full.saturating_sub(half).mul_f64(rng.random::<f64>())
    }
}

/// The delivery loop of one sink.
pub struct Forwarder {
    /// The destination.
    pub sink: Arc<dyn Sink>,
    /// The document it is sent (`format`).
    pub format: AlertFormat,
    /// Where its outbox lives.
    pub spool: Arc<Spool>,
    /// Retry and dead-letter policy.
    pub policy: RetryPolicy,
    /// Where this sink's status is reported.
    pub health: SinkHealth,
}

impl Forwarder {
    /// Runs until `shutdown`. `wake` is notified when the detector queued new alerts.
    pub async fn run(self, wake: Arc<Notify>, shutdown: CancellationToken) {
        let mut last_warning: Option<Instant> = None;
        while !shutdown.is_cancelled() {
            let wait = match self.pass(&shutdown, &mut last_warning).await {
                Ok(wait) => wait,
                Err(err) => {
                    tracing::error!(sink = self.sink.name(), error = %err, "cannot read the outbox");
                    Duration::from_secs(1)
                }
            };
            if wait.is_zero() {
                continue;
            }
            if !wait_for_work(&wake, wait, &shutdown).await {
                break;
            }
        }
    }

    /// Publishes what is due; returns how long to wait before the next pass.
    async fn pass(
        &self,
        shutdown: &CancellationToken,
        last_warning: &mut Option<Instant>,
    ) -> Result<Duration, crate::spool::SpoolError> {
        let name = self.sink.name();
        let now = now_ms();
        let (due, next_due) = self.spool.due(name, now, ENTRIES_PER_PASS).await?;
        if due.is_empty() {
            return Ok(next_due.map_or(IDLE_WAIT, |at| {
                Duration::from_millis(at.saturating_sub(now)).min(IDLE_WAIT)
            }));
        }
        let mut delivered = Vec::with_capacity(due.len());
        let mut wait = Duration::ZERO;
        let mut due = due.into_iter();
        let batch_limit = self.sink.batch_limit().max(1);
        while !shutdown.is_cancelled() {
            let batch: Vec<OutboxEntry> = due.by_ref().take(batch_limit).collect();
            if batch.is_empty() {
                break;
            }
            let (readable, failures) = self.publish(batch).await;
            delivered.extend(readable);
            let mut stop = false;
            for (mut entry, error) in failures {
                wait = self.failed(&mut entry, &error, last_warning).await?;
                // The destination is probably down: stop this pass instead of trying every
                // queued alert against it.
                stop |= matches!(error, DeliveryError::Transient(_));
            }
            if stop {
                break;
            }
        }
        self.spool.delivered(&delivered).await?;
        if !delivered.is_empty() && last_warning.is_some() {
            tracing::info!(sink = name, "sink is delivering again");
            *last_warning = None;
        }
        Ok(wait)
    }

    /// Publishes `batch` (not empty) in one [`Sink::publish_batch`]. Returns the entries
    /// delivered, and the failed ones with their error: a stored alert that no longer parses
    /// fails alone; when the publish fails, its oldest alert is charged with the attempt and the
    /// rest stay due untouched, as if this pass had stopped before them (with a batch of one,
    /// exactly what happened).
    async fn publish(
        &self,
        batch: Vec<OutboxEntry>,
    ) -> (Vec<OutboxEntry>, Vec<(OutboxEntry, DeliveryError)>) {
        let labels = self.health.labels(self.sink.name());
        metrics::counter!(DELIVERY_ATTEMPTS_TOTAL, labels.clone()).increment(batch.len() as u64);
        let (mut readable, mut failures, outcome) = match self.publish_as_stored(&batch).await {
            Some(outcome) => (batch, Vec::new(), outcome),
            None => self.publish_parsed(batch).await,
        };
        if let Err(error) = outcome {
            failures.push((readable.remove(0), error));
            readable.clear();
        }
        if !failures.is_empty() {
            metrics::counter!(DELIVERY_FAILURES_TOTAL, labels).increment(failures.len() as u64);
        }
        self.health
            .record(self.sink.name(), failures.last().map(|(_, error)| error));
        (readable, failures)
    }

    /// Publishes `batch` as stored when the format is the stored one and the sink reads nothing
    /// else ([`Sink::publish_payloads`]): parsing each alert would be thrown away. `None` when
    /// it is not such a sink.
    async fn publish_as_stored(&self, batch: &[OutboxEntry]) -> Option<Result<(), DeliveryError>> {
        if self.format != AlertFormat::Factorwatch {
            return None;
        }
        let payloads: Vec<&str> = batch.iter().map(|entry| entry.record.alert.get()).collect();
        Some(self.sink.publish_payloads(&payloads)?.await)
    }

    /// Parses, renders and publishes `batch`: the entries it publishes, those whose stored alert
    /// no longer parses, with their error, and the publish's outcome.
    async fn publish_parsed(
        &self,
        batch: Vec<OutboxEntry>,
    ) -> (
        Vec<OutboxEntry>,
        Vec<(OutboxEntry, DeliveryError)>,
        Result<(), DeliveryError>,
    ) {
        let (mut readable, mut failures) = (Vec::with_capacity(batch.len()), Vec::new());
        let mut alerts = Vec::with_capacity(batch.len());
        for entry in batch {
            match serde_json::from_str::<Alert>(entry.record.alert.get()) {
                Ok(alert) => {
                    alerts.push(alert);
                    readable.push(entry);
                }
                Err(err) => {
                    let error = format!("the stored alert is unreadable: {err}");
                    failures.push((entry, DeliveryError::Permanent(error)));
                }
            }
        }
        let payloads: Vec<_> = readable
            .iter()
            .zip(&alerts)
            .map(|(entry, alert)| self.format.render(entry.record.alert.get(), alert))
            .collect();
        let deliveries: Vec<Delivery> = payloads
            .iter()
            .zip(&alerts)
            .map(|(payload, alert)| Delivery { payload, alert })
            .collect();
        let outcome = if deliveries.is_empty() {
            Ok(())
        } else {
            self.sink.publish_batch(&deliveries).await
        };
        (readable, failures, outcome)
    }

    /// Records a failed attempt; returns how long the sink should pause.
    async fn failed(
        &self,
        entry: &mut OutboxEntry,
        error: &DeliveryError,
        last_warning: &mut Option<Instant>,
    ) -> Result<Duration, crate::spool::SpoolError> {
        let name = self.sink.name();
        let now = now_ms();
        let record = &mut entry.record;
        record.attempts += 1;
        record.last_error = Some(error.to_string());
        let decision = self.policy.after_failure(
            record.created_at_ms,
            record.attempts,
            error,
            now,
            &mut rand::rng(),
        );
        match decision {
            AfterFailure::RetryAt(at) => {
                record.next_attempt_at_ms = at;
                self.spool.reschedule(entry).await?;
                if last_warning.is_none_or(|at| at.elapsed() >= WARN_EVERY) {
                    tracing::warn!(sink = name, error = %error, attempts = entry.record.attempts,
                        "delivery failing; alerts wait in the outbox and are retried with backoff");
                    *last_warning = Some(Instant::now());
                } else {
                    tracing::debug!(sink = name, error = %error, "delivery attempt failed");
                }
                Ok(Duration::from_millis(at.saturating_sub(now)))
            }
            AfterFailure::DeadLetter(reason) => {
                record.last_error = Some(format!("{reason}; last error: {error}"));
                self.spool.dead_letter(entry).await?;
                metrics::counter!(DEAD_LETTERS_TOTAL, self.health.labels(name)).increment(1);
                tracing::error!(sink = name, alert_id = %entry.record.alert_id, %reason,
                    "alert moved to the dead-letter table; see `factorwatch dlq list`");
                Ok(Duration::ZERO)
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn policy() -> RetryPolicy {
        RetryPolicy(DeliveryConfig {
            max_attempts: 5,
            max_age: Duration::from_secs(3600),
            initial_backoff: Duration::from_secs(1),
            max_backoff: Duration::from_secs(60),
        })
    }

    #[test]
    fn backoff_grows_with_jitter_and_is_capped() {
        let policy = policy();
        let mut rng = rand::rng();
        for attempts in 1..=12 {
            let full = Duration::from_secs(1 << (attempts - 1)).min(Duration::from_secs(60));
            let delay = policy.backoff(attempts, &mut rng);
            assert!(delay >= full / 2 && delay <= full, "{attempts}: {delay:?}");
        }
    }

    #[test]
    fn gives_up_on_attempts_age_or_refusal() {
        let policy = policy();
        let mut rng = rand::rng();
        let transient = DeliveryError::Transient("down".into());
        assert!(matches!(
            policy.after_failure(0, 1, &transient, 0, &mut rng),
            AfterFailure::RetryAt(_)
        ));
        assert!(matches!(
            policy.after_failure(0, 5, &transient, 0, &mut rng),
            AfterFailure::DeadLetter(reason) if reason.contains("max_attempts")
        ));
        assert!(matches!(
            policy.after_failure(0, 1, &transient, 3_600_000, &mut rng),
            AfterFailure::DeadLetter(reason) if reason.contains("max_age")
        ));
        let permanent = DeliveryError::Permanent("400 bad payload".into());
        assert!(matches!(
            policy.after_failure(0, 1, &permanent, 0, &mut rng),
            AfterFailure::DeadLetter(reason) if reason == "refused by the destination"
        ));
    }
}
