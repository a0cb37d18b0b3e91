//! Detection: turns stored batches into alerts in every sink's outbox.
//!
//! The detector runs after Okta has had its answer. Each pass takes the oldest stored batches,
//! splits them into events, drops events already seen inside the de-duplication window (Okta
//! delivers at least once), runs the rules over the rest and commits, in one transaction, the
//! removal of the batches, the new `seen` keys and one outbox row per alert and sink.

pub mod context;
pub mod fields;
pub mod offline;
pub mod rules;

use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::time::Duration;

use serde_json::Value;
use serde_json::value::RawValue;
use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;

use crate::alert::{Alert, Matched, alert_id};
use crate::clock::{now_ms, rfc3339};
use crate::config::SinkConfig;
use crate::okta::event::{dedup_key, single_line};
use crate::okta::{Envelope, LogEvent};
use crate::spool::{DetectedBatch, OutboxRecord, Spool, SpoolError, StoredBatch};

pub use rules::{RuleSet, SharedRules};

/// Batches taken per pass: bounds memory and the size of one commit.
const BATCHES_PER_PASS: usize = 64;

/// The detection worker.
pub struct Detector {
    /// The rules in force (reloaded on SIGHUP).
    pub rules: SharedRules,
    /// Where batches come from and alerts go.
    pub spool: Arc<Spool>,
    /// The sinks, whose filters decide which alerts each one is queued.
    pub sinks: Arc<[SinkConfig]>,
    /// How long an event key is remembered.
    pub dedup_window: Duration,
    /// Logins or ids of users whose MFA changes rank higher (`[rules] privileged_users`).
    pub privileged_users: Arc<[String]>,
    /// One per forwarder, woken after alerts were queued. `notify_one` keeps a permit for a
    /// forwarder that is busy right then, so no wake-up is lost.
    pub forwarders: Vec<Arc<Notify>>,
}

/// An event parsed out of a batch, with its de-duplication key.
struct ParsedEvent {
    raw: Box<RawValue>,
    value: Value,
    key: String,
}

/// A batch split into events.
struct ParsedBatch {
    batch: StoredBatch,
    envelope_meta: Envelope,
    events: Vec<ParsedEvent>,
}

impl Detector {
    /// Runs until `shutdown`, woken by `intake` after each stored batch (and every second anyway).
    pub async fn run(self, intake: Arc<Notify>, shutdown: CancellationToken) {
        loop {
            match self.pass().await {
                Ok(0) => {}
                Ok(_) => continue,
                Err(err) => {
                    tracing::error!(error = %err, "detection pass failed; retrying in 1 s");
                }
            }
            tokio::select! {
                _ = intake.notified() => {}
                _ = tokio::time::sleep(Duration::from_secs(1)) => {}
                _ = shutdown.cancelled() => return,
            }
        }
    }

    /// Detects the oldest pending batches; returns how many were processed.
    pub async fn pass(&self) -> Result<usize, SpoolError> {
        let batches = self.spool.pending_batches(BATCHES_PER_PASS).await?;
        if batches.is_empty() {
            return Ok(0);
        }
        let count = batches.len();
        let (parsed, unreadable) = tokio::task::spawn_blocking(move || parse_batches(batches))
            .await
            .map_err(|err| SpoolError::Storage(format!("detector parse task failed: {err}")))?;
        for batch in unreadable {
            self.spool.quarantine(batch).await?;
        }
        let keys = parsed
            .iter()
            .flat_map(|p| p.events.iter().map(|e| e.key.clone()))
            .collect();
        let now = now_ms();
        let seen = self.spool.already_seen(keys, now).await?;
        let (rules, sinks, privileged) = (
            self.rules.current(),
            self.sinks.clone(),
            self.privileged_users.clone(),
        );
        let seen_until_ms = now + self.dedup_window.as_millis() as u64;
        let detected = tokio::task::spawn_blocking(move || {
            let pass = Pass {
                rules: &rules,
                sinks: &sinks,
                privileged_users: &privileged,
                now,
                seen_until_ms,
            };
            detect_batches(&pass, parsed, &seen)
        })
        .await
        .map_err(|err| SpoolError::Storage(format!("detector task failed: {err}")))?;
        let queued = detected.iter().any(|d| !d.outbox.is_empty());
        self.spool.complete_batches(detected).await?;
        if queued {
            self.forwarders.iter().for_each(|wake| wake.notify_one());
        }
        Ok(count)
    }
}

/// Splits batches into events; batches that cannot be read go apart for quarantine.
fn parse_batches(batches: Vec<StoredBatch>) -> (Vec<ParsedBatch>, Vec<StoredBatch>) {
    let mut parsed = Vec::with_capacity(batches.len());
    let mut unreadable = Vec::new();
    for batch in batches {
        match Envelope::parse(&batch.body) {
            Ok(mut envelope) => {
                let events = std::mem::take(&mut envelope.data.events)
                    .into_iter()
                    .map(parse_event)
                    .collect();
                parsed.push(ParsedBatch {
                    batch,
                    envelope_meta: envelope,
                    events,
                });
            }
            Err(err) => {
                tracing::error!(batch = batch.id, error = %err, "stored batch is unreadable; quarantined");
                unreadable.push(batch);
            }
        }
    }
    (parsed, unreadable)
}

fn parse_event(raw: Box<RawValue>) -> ParsedEvent {
    let raw = single_line(raw);
    // The raw text already passed JSON validation at intake, so this parse cannot fail.
    let value: Value = serde_json::from_str(raw.get()).unwrap_or(Value::Null);
    let key = dedup_key(&LogEvent(&value), raw.get());
    ParsedEvent { raw, value, key }
}

/// What one detection pass needs besides the batches.
struct Pass<'a> {
    rules: &'a RuleSet,
    sinks: &'a [SinkConfig],
    privileged_users: &'a [String],
    now: u64,
    seen_until_ms: u64,
}

impl Pass<'_> {
    /// The alert for `rule` matching an event, with MFA context and its risk level.
    fn alert(&self, rule: &crate::alert::RuleRef, matched: &Matched<'_>) -> Alert {
        let mut alert = Alert::build(rule, matched);
        if let Some(mut context) = context::mfa_context(&matched.event, self.privileged_users) {
            alert.level = context::risk_level(rule.level, &mut context);
            alert.context = Some(context);
        }
        alert
    }
}

/// Runs the rules over every event not seen before and builds the outbox rows.
fn detect_batches(
    pass: &Pass<'_>,
    parsed: Vec<ParsedBatch>,
    seen: &HashSet<String>,
) -> Vec<DetectedBatch> {
    // Keys new in this pass: a uuid repeated within or across these batches counts once.
    let mut fresh: HashSet<String> = HashSet::new();
    let mut detected = Vec::with_capacity(parsed.len());
    let mut alerts: Vec<(usize, Alert)> = Vec::new();
    for (
        index,
        ParsedBatch {
            batch,
            envelope_meta,
            events,
        },
    ) in parsed.into_iter().enumerate()
    {
        let origin = envelope_meta.origin();
        let delivery_id = envelope_meta.event_id.as_deref();
        let received_at = rfc3339(batch.received_at_ms);
        let mut seen_keys = Vec::new();
        for event in &events {
            if seen.contains(&event.key) || !fresh.insert(event.key.clone()) {
                metrics::counter!("factorwatch_duplicate_events_total").increment(1);
                continue;
            }
            seen_keys.push(event.key.clone());
            let matched = Matched {
                event: LogEvent(&event.value),
                raw: &event.raw,
                key: &event.key,
                origin: &origin,
                delivery_id,
                received_at: &received_at,
            };
            for rule in pass.rules.matching(&event.value) {
                alerts.push((index, pass.alert(rule, &matched)));
            }
        }
        metrics::counter!("factorwatch_events_detected_total").increment(events.len() as u64);
        detected.push(DetectedBatch {
            batch,
            seen_keys,
            seen_until_ms: pass.seen_until_ms,
            outbox: Vec::new(),
        });
    }
    for (index, alert) in group_factor_resets(alerts) {
        log_alert(&alert);
        detected[index]
            .outbox
            .extend(outbox_rows(&alert, pass.sinks, pass.now));
    }
    detected
}

/// On Okta Identity Engine a "reset all factors" arrives as one `user.mfa.factor.deactivate` per
/// factor, sharing a `transaction.id`. Alerts of one rule on such events become one alert listing
/// every factor, with an id derived from the transaction. Okta sends them in one delivery; were
/// they split across detection passes, each part would alert on its own.
fn group_factor_resets(alerts: Vec<(usize, Alert)>) -> Vec<(usize, Alert)> {
    let mut grouped: Vec<(usize, Alert)> = Vec::with_capacity(alerts.len());
    let mut groups: HashMap<(String, String), usize> = HashMap::new();
    for (batch, alert) in alerts {
        let key = alert
            .context
            .as_ref()
            .and_then(|c| c.transaction_id.clone())
            .filter(|tx| tx != "unknown")
            .filter(|_| alert.event.event_type.as_deref() == Some("user.mfa.factor.deactivate"))
            .map(|tx| (alert.rule.id.clone(), tx));
        match key.as_ref().and_then(|key| groups.get(key)) {
            Some(&at) => merge_reset(&mut grouped[at].1, alert),
            None => {
                if let Some(key) = key {
                    groups.insert(key, grouped.len());
                }
                grouped.push((batch, alert));
            }
        }
    }
    grouped
}

/// Folds `other` (same rule, same transaction) into `group`.
fn merge_reset(group: &mut Alert, other: Alert) {
    let (Some(context), Some(other_context)) = (group.context.as_mut(), other.context) else {
        return;
    };
    if let Some(tx) = &context.transaction_id {
        group.id = alert_id(&group.rule.id, &format!("transaction:{tx}"));
    }
    for factor in other_context.factors {
        if !context.factors.contains(&factor) {
            context.factors.push(factor);
        }
    }
    context.event_uuids.extend(other_context.event_uuids);
    // The group's level is the highest of its events', so its reasons are all of theirs.
    for reason in other_context.level_reasons {
        if !context.level_reasons.contains(&reason) {
            context.level_reasons.push(reason);
        }
    }
    context.privileged_target |= other_context.privileged_target;
    if other_context.is_proxy == Some(true) {
        context.is_proxy = Some(true);
    }
    group.level = group.level.max(other.level);
}

/// One outbox row for each sink whose filter accepts `alert`.
fn outbox_rows(alert: &Alert, sinks: &[SinkConfig], now: u64) -> Vec<(String, OutboxRecord)> {
    let json = RawValue::from_string(alert.to_json()).expect("an alert serializes to valid JSON");
    sinks
        .iter()
        .filter(|sink| sink.accepts(alert))
        .map(|sink| {
            let record = OutboxRecord {
                alert_id: alert.id.clone(),
                created_at_ms: now,
                attempts: 0,
                next_attempt_at_ms: now,
                last_error: None,
                alert: json.clone(),
            };
            (sink.name.clone(), record)
        })
        .collect()
}

fn log_alert(alert: &Alert) {
    metrics::counter!(
        "factorwatch_alerts_total",
        "rule_id" => alert.rule.id.clone(),
        "level" => alert.level.as_str()
    )
    .increment(1);
    let login = |p: Option<&crate::alert::Principal>| {
        p.and_then(|p| p.alternate_id.clone())
            .unwrap_or_else(|| "unknown".into())
    };
    tracing::info!(
        alert_id = %alert.id,
        rule = %alert.rule.title,
        alert_level = %alert.level,
        event_uuid = alert.event.uuid.as_deref().unwrap_or("-"),
        actor = %login(alert.actor.as_ref()),
        target_user = %login(alert.targets.first()),
        ip = alert.client.ip_address.as_deref().unwrap_or("-"),
        "alert"
    );
}
