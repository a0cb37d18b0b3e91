//! Detection: turns stored batches into alerts in every sink's outbox.
//!
//! The detector runs after Okta has had its answer. Each pass takes the oldest stored batches,
//! splits them into events, drops events already seen inside the de-duplication window (Okta
//! delivers at least once), adds `factorwatch.*` fields ([`enrich`]), runs the rules over the
//! rest, feeds the events that matched to the correlations ([`correlate`]) and commits, in one
//! transaction, the removal of the batches, one outbox row per alert and sink, and what the pass
//! changed in the correlation state (journal entries, now and then a snapshot; see
//! [`correlation_step`]). The new event keys are claimed in the de-duplication window while the
//! rules run, before that commit. A pass with no batches still runs when a correlation timer
//! has run out. Under a backlog the commit of one pass and the detection of the next overlap
//! ([`pipeline`]).
//!
//! With several replicas (`[cluster] mode = "redis"` or `"nats-kv"`) the correlation state lives
//! in the shared backend: the pass then stores the events that matched as correlation inputs
//! instead, and the correlation step ([`correlation_step`]), in a loop of its own, applies them to the shared
//! state. Single-event alerts never wait for the shared backend, and the inputs wait in the
//! spool while it is down.

pub mod config;
pub mod context;
pub mod correlate;
mod correlation_step;
pub mod enrich;
mod event_head;
pub mod event_types;
pub mod fields;
pub mod incident;
mod incident_store;
pub mod live_context;
pub mod offline;
mod pipeline;
pub mod placeholders;
mod rule_event;
pub mod rules;
mod throttled;
mod ticks;
mod type_dispatch;
mod watched;

use std::borrow::Cow;
use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::time::{Duration, Instant};

use rsigma_eval::EvaluationResult;
use self_cell::self_cell;
use serde_json::Value;
use serde_json::value::RawValue;
use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;
use tracing::Instrument;

use crate::alert::{Alert, Matched, RuleRef, org_alert_id};
use crate::clock::{now_ms, rfc3339, wait_for_work};
use crate::cluster::{Claim, SharedState};
use crate::okta::event::single_line;
use crate::okta::hook_eligible::is_hook_eligible;
use crate::okta::{Delivery, Envelope, EnvelopeError, LogEvent, Origin};
use crate::sinks::{AlertFilter, SinkConfig};
use crate::spool::{DetectionCommit, OutboxRecord, Spool, SpoolError, StoredBatch};
use crate::telemetry::metrics::{
    ALERTS_SUPPRESSED_TOTAL, ALERTS_TOTAL, BATCHES_QUARANTINED_TOTAL,
    CLUSTER_DUPLICATE_EVENTS_TOTAL, CORRELATION_OPEN_STATE, DUPLICATE_EVENTS_TOTAL,
    EVENTS_DETECTED_TOTAL, EVENTS_UNREADABLE_TOTAL, OKTA_EVENTS_RECOVERED_TOTAL,
};
use crate::telemetry::tally::Tallies;
pub use config::RulesConfig;
use correlate::Correlator;
use correlation_step::{CorrelationInput, CorrelationLoop, JournalEntry, LiveCorrelation};
use enrich::{KnownNetworks, NetworkHistory};
use event_head::EventHead;
use incident::{Route, Routes};
use pipeline::{Detected, InFlight, Stage};
pub use rules::{RuleSet, SharedRules};
pub use ticks::EventTime;
use watched::PassTally;

/// Most batches taken per pass. Okta sends up to 50 events a delivery, but a burst of small
/// deliveries would otherwise make many small passes, each paying two commits.
const BATCHES_PER_PASS: usize = 512;
/// Most request bytes taken per pass (passed once a batch is in): bounds the memory of a pass
/// (the requests; each event's whole JSON tree lives only while its rules run) and the size of
/// one commit, whatever the batch size.
const BYTES_PER_PASS: u64 = 1024 * 1024;

/// How long an idle loop waits before it looks again without being woken: a correlation timer
/// may have run out, a failed pass is retried.
const IDLE_PASS_INTERVAL: Duration = Duration::from_secs(1);

/// The detection worker.
pub struct Detector {
    /// The rules in force (reloaded on SIGHUP).
    pub rules: SharedRules,
    /// Where batches come from and alerts go.
    pub spool: Arc<Spool>,
    /// The sinks, whose filters decide which alerts each one is queued.
    pub sinks: Arc<[SinkConfig]>,
    /// The responses (`[[responses]]`): each one's outbox name and its `when`. An alert they
    /// accept is queued for them as for a sink, in the same transaction.
    pub responses: Arc<[(String, AlertFilter)]>,
    /// How long an event key is remembered.
    pub dedup_window: Duration,
    /// Logins or ids of users whose MFA changes rank higher (`[rules] privileged_users`).
    pub privileged_users: Arc<[String]>,
    /// `[okta.context]`: live Okta context added to the pass's MFA alerts, within its timeout.
    pub live_context: Option<Arc<live_context::LiveContext>>,
    /// One per forwarder, woken after alerts were queued. `notify_one` keeps a permit for a
    /// forwarder that is busy right then, so no wake-up is lost.
    pub forwarders: Vec<Arc<Notify>>,
    /// In `[cluster] mode = "redis"`: the event keys other replicas claimed, and the shared
    /// correlation state.
    pub shared: Option<Arc<SharedState>>,
    /// The `[[okta.orgs]]` name this detector's alerts carry; `None` for the top-level org.
    pub org: Option<Arc<str>>,
    /// Deliveries someone watches through detection (`backfill`), counted after each pass.
    pub tallies: Arc<Tallies>,
    /// `[rules] incident_window`: alerts about one user this close belong to one incident;
    /// zero turns incidents off.
    pub incident_window: Duration,
}

/// An event split out of a batch, with what the pass reads of it before the rules run. Its
/// whole tree ([`event_tree`]) is built when its rules run, and only if it needs one
/// ([`ParsedEvent::needs_tree`]).
struct ParsedEvent<'a> {
    /// Its exact JSON, borrowed from the batch's body; copied only to put an event that spans
    /// lines on one ([`single_line`]).
    raw: Cow<'a, RawValue>,
    key: String,
    session_user: Option<String>,
    event_type: Option<String>,
}

impl<'a> ParsedEvent<'a> {
    /// Reads the head of the event `raw`.
    fn read(raw: &'a RawValue) -> Self {
        let raw = single_line(Cow::Borrowed(raw));
        let EventHead {
            key,
            session_user,
            event_type,
        } = EventHead::read(raw.get());
        Self {
            raw,
            key,
            session_user,
            event_type,
        }
    }

    /// Whether the pass must build this event's tree: when some rule can match its type, or when
    /// it is a sign-in, which teaches its user's networks whatever the rules. Any other event
    /// (most of an org's sign-ons, sign-outs and policy evaluations, against the built-in pack)
    /// raises nothing and feeds no correlation, and its tree would be built for nothing.
    fn needs_tree(&self, rules: &RuleSet) -> bool {
        self.session_user.is_some() || rules.can_match(self.event_type.as_deref())
    }
}

/// What a pass reads of one batch's body, borrowing from it.
struct BatchEvents<'a> {
    /// The envelope, its events taken out into `events`.
    envelope: Envelope<'a>,
    events: Vec<ParsedEvent<'a>>,
}

impl<'a> BatchEvents<'a> {
    /// Splits `body` into its envelope and events.
    fn read(body: &'a [u8]) -> Result<Self, EnvelopeError> {
        let mut envelope = Envelope::parse(body)?;
        let events = std::mem::take(&mut envelope.data.events)
            .into_iter()
            .map(ParsedEvent::read)
            .collect();
        Ok(Self { envelope, events })
    }
}

self_cell!(
    /// A stored batch split into events that borrow from its body. One value, so that a pass
    /// moves it between its threads without copying every event out of the body first.
    struct ParsedBatch {
        owner: StoredBatch,
        #[covariant]
        dependent: BatchEvents,
    }
);

impl ParsedBatch {
    /// The batch as the spool stored it.
    fn batch(&self) -> &StoredBatch {
        self.borrow_owner()
    }

    /// Its envelope (without the events).
    fn envelope(&self) -> &Envelope<'_> {
        &self.borrow_dependent().envelope
    }

    /// Its events, in their order in the batch.
    fn events(&self) -> &[ParsedEvent<'_>] {
        &self.borrow_dependent().events
    }

    /// Each event's de-duplication key, with the id of this batch.
    fn keys(&self) -> impl Iterator<Item = (&String, u64)> {
        let id = self.batch().id;
        self.events().iter().map(move |event| (&event.key, id))
    }
}

impl Detector {
    /// Runs until `shutdown`: the detection loop, woken by `intake` after each stored batch (and
    /// every second anyway, which is also how often correlation timers are checked). In cluster
    /// mode the correlation loop runs beside it, woken after each detection pass (and every
    /// second): apart, a slow shared backend never slows single-event detection.
    pub async fn run(self, intake: Arc<Notify>, shutdown: CancellationToken) {
        let detector = Arc::new(self);
        if detector.shared.is_none() {
            return detector.detect_loop(intake, None, shutdown).await;
        }
        let detected = Arc::new(Notify::new());
        let correlation = tokio::spawn(
            detector
                .clone()
                .correlate_loop(detected.clone(), shutdown.clone())
                .in_current_span(),
        );
        detector.detect_loop(intake, Some(detected), shutdown).await;
        let _ = correlation.await;
    }

    async fn correlate_loop(self: Arc<Self>, detected: Arc<Notify>, shutdown: CancellationToken) {
        let mut state = CorrelationLoop::default();
        loop {
            match self.correlate(&mut state).await {
                Ok(0) => {}
                Ok(_) => continue,
                Err(err) => {
                    tracing::error!(error = %err, "correlation step failed; retrying in 1 s")
                }
            }
            if !wait_for_work(&detected, IDLE_PASS_INTERVAL, &shutdown).await {
                return;
            }
        }
    }

    /// Detects the oldest pending batches not `in_flight`: parses them, claims their new keys,
    /// runs the rules and (standalone) the correlations; [`Detector::commit_pass`] stores the
    /// outcome. `None` when there is nothing to do, or when the correlation state must be
    /// restored from the spool while a pass is in flight (it waits for that commit).
    /// Standalone, `inline` holds the correlator between passes; it is left empty when a pass
    /// fails, so the next one starts again from the state the spool holds.
    async fn detect_pass(
        &self,
        inline: &mut CorrelationLoop,
        in_flight: &InFlight,
    ) -> Result<Option<Detected>, SpoolError> {
        let started = Instant::now();
        let batches = self
            .spool
            .pending_batches_except(BATCHES_PER_PASS, BYTES_PER_PASS, in_flight.batches.clone())
            .await?;
        let rules = self.rules.current();
        let now = now_ms();
        let correlation = match self.shared {
            None => match self.inline_correlation(&rules, inline, in_flight).await? {
                Some(live) => Some(live),
                None => return Ok(None),
            },
            Some(_) => None,
        };
        let timers_due = correlation
            .as_ref()
            .is_some_and(|live| live.correlator.has_expired(secs(now)));
        if batches.is_empty() && !timers_due {
            inline.keep(correlation);
            return Ok(None);
        }
        let count = batches.len();
        let (parsed, unreadable) = tokio::task::spawn_blocking(move || parse_batches(batches))
            .await
            .map_err(|err| {
                SpoolError::storage(format!("detector parse task failed: {err}"), err)
            })?;
        for batch in unreadable {
            self.spool.quarantine(batch).await?;
            metrics::counter!(BATCHES_QUARANTINED_TOTAL).increment(1);
        }
        let keys = parsed
            .iter()
            .flat_map(ParsedBatch::keys)
            .map(|(key, id)| (key.clone(), id))
            .collect();
        let mut seen = self.spool.already_seen(keys, now).await?;
        seen.extend(self.claimed_elsewhere(&parsed, &seen).await);
        let history = self.network_history(&parsed, in_flight).await?;
        let privileged = self.privileged_users.clone();
        let org = self.org.clone();
        let claims = fresh_keys(&parsed, &seen);
        let watching = self.tallies.is_watching();
        let mut tally = match watching {
            true => PassTally::batches(&parsed, &claims),
            false => PassTally::default(),
        };
        let seen_until_ms = now + self.dedup_window.as_millis() as u64;
        Stage::Read.record(started);
        let detection = tokio::task::spawn_blocking(move || {
            let mut correlation = correlation;
            let pass = Pass {
                rules: &rules,
                privileged_users: &privileged,
                org: org.as_deref(),
                now,
            };
            let counted = watching.then_some(&mut tally);
            let (commit, alerts) =
                detect_batches(&pass, parsed, &seen, history, correlation.as_mut(), counted);
            (commit, alerts, correlation, tally)
        });
        // The keys are claimed while the rules run; the claim is durable before the batches
        // leave the spool, so a crash in between finds them claimed by the same batches.
        let (claimed, detected) = tokio::join!(
            Stage::Claim.time(self.spool.claim_seen(claims, seen_until_ms)),
            Stage::Rules.time(detection)
        );
        claimed?;
        let (commit, alerts, correlation, tally) = detected
            .map_err(|err| SpoolError::storage(format!("detector task failed: {err}"), err))?;
        if let Some(live) = &correlation {
            metrics::gauge!(CORRELATION_OPEN_STATE).set(live.correlator.open_state() as f64);
        }
        inline.keep(correlation);
        Ok(Some(Detected {
            batches: count,
            now,
            commit,
            alerts,
            tally,
        }))
    }

    /// The standalone correlator for `rules`: the previous pass's, or one restored from the
    /// spool (at start, after a reload, after a failed pass).
    async fn inline_correlation(
        &self,
        rules: &Arc<RuleSet>,
        inline: &mut CorrelationLoop,
        in_flight: &InFlight,
    ) -> Result<Option<LiveCorrelation>, SpoolError> {
        if let Some(live) = inline.take_for(rules) {
            return Ok(Some(live));
        }
        if !in_flight.is_empty() {
            // The spool does not hold the pass in flight yet: restore once it does.
            return Ok(None);
        }
        let stored = self.spool.correlation_state().await?;
        let (rules, privileged, org) = (
            rules.clone(),
            self.privileged_users.clone(),
            self.org.clone(),
        );
        tokio::task::spawn_blocking(move || {
            let pass = Pass {
                rules: &rules,
                privileged_users: &privileged,
                org: org.as_deref(),
                now: now_ms(),
            };
            Some(LiveCorrelation::replayed(&pass, rules.clone(), stored))
        })
        .await
        .map_err(|err| SpoolError::storage(format!("correlation replay task failed: {err}"), err))
    }

    /// Tells every forwarder that alerts are waiting.
    fn wake_forwarders(&self) {
        self.forwarders.iter().for_each(|wake| wake.notify_one());
    }

    /// The keys of `parsed` (not already `seen` here) that another replica claimed first; none
    /// when standalone, or when the shared backend cannot answer (this replica's own window
    /// then decides alone, and `/readyz` says the backend is down).
    async fn claimed_elsewhere(
        &self,
        parsed: &[ParsedBatch],
        seen: &HashSet<String>,
    ) -> HashSet<String> {
        let Some(shared) = &self.shared else {
            return HashSet::new();
        };
        let claims: Vec<Claim> = fresh_keys(parsed, seen)
            .into_iter()
            .map(|(key, batch_id)| Claim { key, batch_id })
            .collect();
        match shared.duplicates(&claims, self.dedup_window).await {
            Ok(duplicates) => {
                metrics::counter!(CLUSTER_DUPLICATE_EVENTS_TOTAL)
                    .increment(duplicates.len() as u64);
                duplicates
            }
            Err(err) => {
                tracing::warn!(
                    error = err.chain(),
                    "shared de-duplication unavailable; this replica's own window decides"
                );
                HashSet::new()
            }
        }
    }

    /// The known networks of the users who sign in in `parsed`: those stored, and those the
    /// pass `in_flight` changed.
    async fn network_history(
        &self,
        parsed: &[ParsedBatch],
        in_flight: &InFlight,
    ) -> Result<NetworkHistory, SpoolError> {
        let users: HashSet<String> = parsed
            .iter()
            .flat_map(ParsedBatch::events)
            .filter_map(|event| event.session_user.clone())
            .collect();
        if users.is_empty() {
            return Ok(NetworkHistory::default());
        }
        let mut stored = self
            .spool
            .known_networks(users.iter().cloned().collect())
            .await?;
        in_flight.overlay_networks(&users, &mut stored);
        let known = stored
            .into_iter()
            .filter_map(|(user, bytes)| {
                serde_json::from_slice::<KnownNetworks>(&bytes)
                    .ok()
                    .map(|networks| (user, networks))
            })
            .collect();
        Ok(NetworkHistory::new(known))
    }
}

/// Unix seconds of Unix milliseconds.
fn secs(ms: u64) -> i64 {
    (ms / 1000) as i64
}

/// Splits batches into events; batches that cannot be read go apart for quarantine.
fn parse_batches(batches: Vec<StoredBatch>) -> (Vec<ParsedBatch>, Vec<StoredBatch>) {
    let mut parsed = Vec::with_capacity(batches.len());
    let mut unreadable = Vec::new();
    for batch in batches {
        match ParsedBatch::try_new_or_recover(batch, |batch| BatchEvents::read(&batch.body)) {
            Ok(batch) => parsed.push(batch),
            Err((batch, err)) => {
                tracing::error!(batch = batch.id, error = %err, "stored batch is unreadable; quarantined");
                unreadable.push(batch);
            }
        }
    }
    (parsed, unreadable)
}

/// The whole JSON tree of one event, for the rules. The raw text passed JSON validation at
/// intake, but building a tree is stricter: nesting deeper than serde_json's limit (128) or a
/// lone surrogate escape fails here. Okta sends neither; such an event is stored and
/// de-duplicated like any other, never matched, and counted.
fn event_tree(raw: &RawValue) -> Value {
    serde_json::from_str(raw.get()).unwrap_or_else(|err| {
        metrics::counter!(EVENTS_UNREADABLE_TOTAL).increment(1);
        tracing::warn!(error = %err, "an event cannot be read as a JSON tree; no rule can match it");
        Value::Null
    })
}

/// What one detection pass needs besides the batches.
struct Pass<'a> {
    rules: &'a RuleSet,
    privileged_users: &'a [String],
    org: Option<&'a str>,
    now: u64,
}

impl Pass<'_> {
    /// The alert for `rule` matching an event, with MFA context and its risk level.
    fn alert(&self, rule: &RuleRef, matched: &Matched<'_>) -> Alert {
        let mut alert = Alert::build(rule, matched);
        if let Some(org) = self.org {
            alert.in_org(org, matched.key);
        }
        if let Some(mut context) = context::mfa_context(&matched.event, self.privileged_users) {
            alert.level = context::risk_level(rule.level, &mut context);
            alert.context = Some(context);
        }
        alert
    }

    /// The alerts of the rules one (enriched) event matches, and its detections, which are
    /// what the correlations take in.
    fn match_event(&self, matched: &Matched<'_>) -> (Vec<Alert>, Vec<EvaluationResult>) {
        let detections = self.rules.detect(matched.event.0);
        let alerts = self
            .rules
            .alerting(&detections)
            .into_iter()
            .map(|rule| self.alert(rule, matched))
            .collect();
        (alerts, detections)
    }

    /// The correlation alerts an event (with its `detections`, at `time`) completes.
    fn correlate_event(
        &self,
        matched: &Matched<'_>,
        detections: &[EvaluationResult],
        time: EventTime,
        correlator: &mut Correlator,
    ) -> Vec<Alert> {
        if detections.is_empty() || !self.rules.has_correlations() {
            return Vec::new();
        }
        correlator.observe(matched.event.0, detections, time, &|rule| {
            self.alert(rule, matched)
        })
    }

    /// The alerts of one (enriched) event received at `received_ms`: its own rules', then the
    /// correlations it completes (`rules test`, which correlates as it goes).
    fn detect_event(
        &self,
        matched: &Matched<'_>,
        received_ms: i64,
        correlator: &mut Correlator,
    ) -> Vec<Alert> {
        let (mut alerts, detections) = self.match_event(matched);
        let time = event_time(matched, received_ms);
        alerts.extend(self.correlate_event(matched, &detections, time, correlator));
        alerts
    }
}

/// Where correlations place an event received at `received_ms`: when Okta published it, else
/// when it arrived.
fn event_time(matched: &Matched<'_>, received_ms: i64) -> EventTime {
    EventTime {
        published_ms: matched.event.published_ms().unwrap_or(received_ms),
        received_ms,
    }
}

/// The keys of `parsed` not `seen` before, each with the batch it first appears in: what the
/// pass claims in the de-duplication window.
fn fresh_keys(parsed: &[ParsedBatch], seen: &HashSet<String>) -> Vec<(String, u64)> {
    let mut fresh = HashSet::new();
    parsed
        .iter()
        .flat_map(ParsedBatch::keys)
        .filter(|(key, _)| !seen.contains(*key) && fresh.insert(*key))
        .map(|(key, id)| (key.clone(), id))
        .collect()
}

/// Runs the rules over every event not seen before and builds what the pass commits, and the
/// alerts, which the caller completes (live context, if any, then incidents) and queues. With a
/// `correlation` (standalone) the events that matched go through the correlations now, and its
/// timers that ran out fire; without (cluster) they become the correlation step's inputs. With
/// `tally`, the alerts are also counted for the deliveries watched.
fn detect_batches(
    pass: &Pass<'_>,
    parsed: Vec<ParsedBatch>,
    seen: &HashSet<String>,
    mut history: NetworkHistory,
    mut correlation: Option<&mut LiveCorrelation>,
    tally: Option<&mut PassTally>,
) -> (DetectionCommit, Vec<Alert>) {
    let mut found = Found::default();
    let mut batches = Vec::with_capacity(parsed.len());
    for batch in parsed {
        found.batch(pass, &batch, seen, &mut history, correlation.as_deref_mut());
        metrics::counter!(EVENTS_DETECTED_TOTAL).increment(batch.events().len() as u64);
        batches.push(batch.into_owner());
    }
    report_recovered(pass.org, found.recovered);
    let (correlation_state, correlation_journal) = found.fire_timers(pass, correlation);
    let alerts = group_factor_resets(found.alerts);
    if let Some(tally) = tally {
        tally.alerts(&alerts);
    }
    let commit = DetectionCommit {
        batches,
        outbox: Vec::new(),
        correlation_inputs: found.correlation_inputs,
        correlation_state,
        correlation_journal,
        known_networks: history
            .into_changed()
            .into_iter()
            .map(|(user, networks)| {
                let bytes = serde_json::to_vec(&networks).expect("networks serialize");
                (user, bytes)
            })
            .collect(),
        incidents: Vec::new(),
        expired_incidents: Vec::new(),
    };
    (commit, alerts)
}

/// Counts and logs the events of a pass that only reconciliation brought, though a hook could
/// have: deliveries Okta dropped, a hook paused or over its daily cap.
fn report_recovered(org: Option<&str>, recovered: u64) {
    if recovered == 0 {
        return;
    }
    metrics::counter!(
        OKTA_EVENTS_RECOVERED_TOTAL,
        crate::telemetry::org_labels(org, &[])
    )
    .increment(recovered);
    tracing::warn!(
        org = org.unwrap_or_default(),
        recovered,
        "the System Log held events the event hook never delivered; they were detected from the \
         log (check the hook's status with the Admin Console: Workflow > Event Hooks)"
    );
}

/// What a detection pass gathers from its events.
#[derive(Default)]
struct Found {
    /// Keys new in this pass: a uuid repeated within or across its batches counts once.
    fresh: HashSet<String>,
    alerts: Vec<Alert>,
    /// Cluster: the events that matched, for the correlation step.
    correlation_inputs: Vec<Vec<u8>>,
    /// Standalone: what this pass changed in the correlation state.
    journal: Vec<Vec<u8>>,
    /// Events the System Log brought that the hook should have delivered.
    recovered: u64,
}

impl Found {
    /// Runs the rules over the events of `parsed` not seen before, in their order in the batch
    /// (the order correlations take them in, see [`ticks`]).
    fn batch(
        &mut self,
        pass: &Pass<'_>,
        parsed: &ParsedBatch,
        seen: &HashSet<String>,
        history: &mut NetworkHistory,
        mut correlation: Option<&mut LiveCorrelation>,
    ) {
        let origin = parsed.envelope().origin();
        let received_ms = parsed.batch().received_at_ms as i64;
        let received_at = rfc3339(parsed.batch().received_at_ms);
        for event in parsed.events() {
            if seen.contains(&event.key) || !self.fresh.insert(event.key.clone()) {
                metrics::counter!(DUPLICATE_EVENTS_TOTAL).increment(1);
                continue;
            }
            self.count_recovered(&origin, event.event_type.as_deref());
            if !event.needs_tree(pass.rules) {
                continue;
            }
            // Built here, one event at a time, and dropped after its rules ran (event_head).
            let mut tree = event_tree(&event.raw);
            enrich::enrich(&mut tree, history);
            let matched = Matched {
                event: LogEvent(&tree),
                raw: &event.raw,
                key: &event.key,
                origin: &origin,
                delivery_id: parsed.envelope().event_id.as_deref(),
                received_at: &received_at,
            };
            let time = event_time(&matched, received_ms);
            self.event(pass, &matched, time, correlation.as_deref_mut());
        }
    }

    /// Counts an event the System Log brought that a hook could have delivered and did not (it
    /// is new here, and the poller held it for `grace` first, see `reconcile`).
    fn count_recovered(&mut self, origin: &Origin, event_type: Option<&str>) {
        let eligible = event_type.is_some_and(is_hook_eligible);
        if origin.via == Delivery::SystemLog && eligible {
            self.recovered += 1;
        }
    }

    /// The alerts of one event, and what it feeds the correlations.
    fn event(
        &mut self,
        pass: &Pass<'_>,
        matched: &Matched<'_>,
        time: EventTime,
        correlation: Option<&mut LiveCorrelation>,
    ) {
        let (alerts, detections) = pass.match_event(matched);
        self.alerts.extend(alerts);
        if detections.is_empty() || !pass.rules.has_correlations() {
            return;
        }
        match correlation {
            Some(live) => {
                let correlator = &mut live.correlator;
                let fired = pass.correlate_event(matched, &detections, time, correlator);
                self.alerts.extend(fired);
                self.journal.push(JournalEntry::input(matched, time));
            }
            None => self
                .correlation_inputs
                .push(CorrelationInput::encode(matched, time)),
        }
    }

    /// Standalone, fires the timers that ran out and returns what the pass stores of the
    /// correlations. A pass that changed nothing (no event fed the windows, no timer ran out)
    /// stores nothing: most passes, in an org where MFA changes are rare.
    fn fire_timers(
        &mut self,
        pass: &Pass<'_>,
        correlation: Option<&mut LiveCorrelation>,
    ) -> (Option<Vec<u8>>, Vec<Vec<u8>>) {
        let Some(live) = correlation else {
            return (None, Vec::new());
        };
        let now_secs = secs(pass.now);
        let fired = live.correlator.expired(now_secs);
        if !fired.is_empty() {
            self.journal.push(JournalEntry::timers_fired(now_secs));
        }
        self.alerts.extend(fired);
        live.record(std::mem::take(&mut self.journal))
    }
}

/// On Okta Identity Engine a "reset all factors" arrives as one `user.mfa.factor.deactivate` per
/// factor, sharing a `transaction.id`. Alerts of one rule on such events become one alert listing
/// every factor, with an id derived from the transaction. Okta sends them in one delivery; were
/// they split across detection passes, each part would alert on its own.
fn group_factor_resets(alerts: Vec<Alert>) -> Vec<Alert> {
    let mut grouped: Vec<Alert> = Vec::with_capacity(alerts.len());
    let mut groups: HashMap<(String, String), usize> = HashMap::new();
    for alert in alerts {
        let key = alert
            .context
            .as_ref()
            .and_then(|c| c.transaction_id.clone())
            .filter(|tx| tx != "unknown")
            .filter(|_| alert.event.event_type.as_deref() == Some("user.mfa.factor.deactivate"))
            .map(|tx| (alert.rule.id.clone(), tx));
        match key.as_ref().and_then(|key| groups.get(key)) {
            Some(&at) => merge_reset(&mut grouped[at], alert),
            None => {
                if let Some(key) = key {
                    groups.insert(key, grouped.len());
                }
                grouped.push(alert);
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
        let key = format!("transaction:{tx}");
        group.id = org_alert_id(group.org.as_deref(), &group.rule.id, &key);
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
    context.admin_target |= other_context.admin_target;
    context.admin_actor |= other_context.admin_actor;
    if other_context.is_proxy == Some(true) {
        context.is_proxy = Some(true);
    }
    group.level = group.level.max(other.level);
}

/// Logs and counts `alerts`, and makes their outbox rows; `routes` (by index, possibly
/// shorter) say what the `notify = "first"` sinks get of each.
fn queue_alerts(
    alerts: Vec<Alert>,
    routes: &[Routes],
    sinks: &[SinkConfig],
    responses: &[(String, AlertFilter)],
    org: Option<&str>,
    now: u64,
) -> Vec<(String, OutboxRecord)> {
    let no_routes = Routes::new();
    alerts
        .into_iter()
        .enumerate()
        .flat_map(|(at, alert)| {
            log_alert(&alert);
            outbox_rows(
                &alert,
                routes.get(at).unwrap_or(&no_routes),
                sinks,
                responses,
                org,
                now,
            )
        })
        .collect()
}

/// One outbox row for each sink whose filter accepts `alert`, unless its route holds it back
/// (counted); a sink told of held-back repeats gets the alert with `suppressed`. Then one for
/// each response whose `when` accepts it: a response sees every alert, repeats included (its
/// ledger settles each action once per user and hour).
fn outbox_rows(
    alert: &Alert,
    routes: &Routes,
    sinks: &[SinkConfig],
    responses: &[(String, AlertFilter)],
    org: Option<&str>,
    now: u64,
) -> Vec<(String, OutboxRecord)> {
    let json = alert.to_raw_json();
    let row = |json: Box<RawValue>| OutboxRecord::new(&alert.id, now, json);
    let responded = responses
        .iter()
        .filter(|(_, when)| when.accepts(alert))
        .map(|(outbox, _)| (outbox.clone(), row(json.clone())));
    sinks
        .iter()
        .filter(|sink| sink.accepts(alert))
        .filter_map(|sink| {
            let json = match routes.get(&sink.name) {
                Some(Route::Hold) => {
                    let labels = crate::telemetry::org_labels(org, &[("sink", sink.name.as_str())]);
                    metrics::counter!(ALERTS_SUPPRESSED_TOTAL, labels).increment(1);
                    return None;
                }
                Some(Route::Send { suppressed }) if *suppressed > 0 => {
                    let told = Alert {
                        suppressed: Some(*suppressed),
                        ..alert.clone()
                    };
                    told.to_raw_json()
                }
                _ => json.clone(),
            };
            Some((sink.name.clone(), row(json)))
        })
        .chain(responded)
        .collect()
}

fn log_alert(alert: &Alert) {
    metrics::counter!(
        ALERTS_TOTAL,
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

#[cfg(test)]
mod tests {
    use super::*;

    fn stored(id: u64, body: &str) -> StoredBatch {
        StoredBatch {
            id,
            received_at_ms: 1,
            body: body.as_bytes().to_vec(),
            stored_len: body.len() as u64,
        }
    }

    #[test]
    fn a_batch_splits_into_events_borrowed_from_its_body_and_an_unreadable_one_comes_back_whole() {
        let good = "{\"data\":{\"events\":[{\"uuid\":\"a\",\"eventType\":\"user.session.start\"},\
                    {\n  \"uuid\": \"b\"\n}]}}";
        let broken = r#"{"data":{"events":[{"uuid":"c"}"#;
        let (parsed, unreadable) = parse_batches(vec![stored(1, good), stored(2, broken)]);

        let [unreadable] = &unreadable[..] else {
            panic!("one unreadable batch")
        };
        assert_eq!(
            (unreadable.id, &unreadable.body[..]),
            (2, broken.as_bytes())
        );
        let [batch] = &parsed[..] else {
            panic!("one readable batch")
        };
        let events = batch.events();
        let texts: Vec<&str> = events.iter().map(|event| event.raw.get()).collect();
        let expected = [
            r#"{"uuid":"a","eventType":"user.session.start"}"#,
            r#"{"uuid":"b"}"#,
        ];
        assert_eq!(texts, expected, "each event's text, on one line");
        assert!(
            matches!(events[0].raw, Cow::Borrowed(_)),
            "an event on one line is not copied"
        );
        let keys: Vec<&str> = events.iter().map(|event| event.key.as_str()).collect();
        assert_eq!(keys, ["a", "b"]);
        assert_eq!(events[0].event_type.as_deref(), Some("user.session.start"));

        let batch = parsed.into_iter().next().unwrap().into_owner();
        assert_eq!((batch.id, &batch.body[..]), (1, good.as_bytes()));
    }
}
