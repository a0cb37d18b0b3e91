//! The correlation step of a fleet (`[cluster] mode = "redis"`): feeds the events detection
//! stored as correlation inputs, in order, to the correlations, and fires the absence timers
//! that ran out. Standalone, the detector correlates inside its pass instead, with the state in
//! the spool; [`LiveCorrelation`] and [`CorrelationLoop`] serve both.
//!
//! Standalone, a pass does not store the whole state (with a window per user it is tens of MiB,
//! and there is a pass every few milliseconds): it appends what it fed the correlations to a
//! journal ([`JournalEntry`]), one compressed row per pass, in the commit that consumes its
//! batches, and stores a new snapshot of the state (compressed too), emptying the journal, once
//! the journal since the last one outweighs it [`JOURNAL_PER_SNAPSHOT`] times or holds
//! [`MAX_JOURNAL_ENTRIES`]. So the state costs at most that many times the snapshot's bytes on
//! disk, plus the snapshot, and a restart restores the snapshot and
//! replays the journal onto it, timers included: nothing is counted twice and no timer fires
//! twice. A pass's entries compress far better together than the state does (they are events
//! of a kind), which is what makes snapshots rare under a mass reset.
//!
//! The state lives in Redis ([`SharedState`]), so that the events of one attacker spread over
//! every replica meet in one window and exactly one replica raises the alert. The step loads the
//! state, applies its inputs, and writes the state back only if no other replica wrote since
//! (else it loads again and retries). The write carries the step's alerts as this replica's
//! [`AppliedStep`]; the spool commit that follows records the step's token. A replica that died
//! between the two finds, at restart, a step in Redis its spool never recorded, and commits that
//! step's alerts and input removal instead of applying its inputs a second time. While Redis
//! cannot be reached the inputs wait in the spool, and `/readyz` says so.

use std::sync::Arc;
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};
use serde_json::Value;
use serde_json::value::RawValue;

use super::correlate::Correlator;
use super::enrich::NAMESPACE;
use super::ticks::EventTime;
use super::{Detector, Pass, RuleSet, queue_alerts, secs};
use crate::alert::{Alert, Matched};
use crate::clock::now_ms;
use crate::cluster::{AppliedStep, ClusterError, SharedCorrelation, SharedState};
use crate::okta::LogEvent;
use crate::okta::envelope::Origin;
use crate::spool::{CorrelationCommit, SpoolError, StoredCorrelation, compressed};
use crate::telemetry::metrics::{CLUSTER_CORRELATION_CONFLICTS_TOTAL, CORRELATION_OPEN_STATE};

/// Inputs taken per step: bounds memory and the size of one commit.
const INPUTS_PER_STEP: usize = 512;

/// Times a cluster step loads the state again after another replica wrote first, before it
/// leaves the inputs for the next step.
const MAX_CONFLICTS: usize = 16;

/// Least journal (bytes) a standalone detector keeps before it takes a snapshot, however small
/// the state: a quiet org's state of a few hundred bytes is not rewritten for every reset
/// (256 KiB of compressed journal is a few thousand resets).
const MIN_JOURNAL_BYTES: usize = 256 * 1024;

/// How many times its own size a snapshot's journal grows before the next snapshot. A snapshot
/// serializes every window and open timer the correlations hold and holds up the pass that
/// takes it; the journal holds only what each pass fed them. Taken as soon as the journal
/// outweighed it once, snapshots were among the largest costs of detection under load
/// (BENCHMARKS.md). Four keeps the state at most five snapshots' size on disk, and what a
/// restart replays stays bounded by [`MAX_JOURNAL_ENTRIES`].
const JOURNAL_PER_SNAPSHOT: usize = 4;

/// Most journal entries a standalone detector keeps before it takes a snapshot, however large
/// the state: bounds what a restart replays (each entry is an event run through the rules and
/// the correlations again).
const MAX_JOURNAL_ENTRIES: usize = 100_000;

/// How long correlation waits before trying an unreachable cluster backend again.
const BACKEND_RETRY: Duration = Duration::from_secs(1);

/// An event that matched a rule, as detection saw it, stored for the correlation step.
#[derive(Clone, Serialize, Deserialize)]
pub(super) struct CorrelationInput {
    /// What enrichment added to the event (its `factorwatch` object): the event the rules saw is
    /// `raw` with it. Only that part is stored beside `raw`, not the whole event again, which
    /// halves what a mass reset journals and how often it takes a snapshot.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    added: Option<Box<RawValue>>,
    /// As earlier versions stored it: the whole event with its `factorwatch.*` fields.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    event: Option<Box<RawValue>>,
    /// Its exact JSON as Okta sent it.
    raw: Box<RawValue>,
    /// Its de-duplication key.
    key: String,
    /// Org and hook of its batch.
    origin: Origin,
    /// Envelope `eventId` of its batch.
    delivery_id: Option<String>,
    /// When its batch was stored.
    received_at: String,
    /// Where correlations place it in time.
    #[serde(flatten)]
    time: InputTime,
}

/// When an input happened and arrived.
#[derive(Clone, Serialize, Deserialize)]
#[serde(untagged)]
enum InputTime {
    /// Published and received, in milliseconds.
    Placed { time: EventTime },
    /// As older versions stored it: Unix seconds, taken as its arrival too.
    Seconds { at_secs: i64 },
}

impl InputTime {
    fn event_time(&self) -> EventTime {
        match *self {
            InputTime::Placed { time } => time,
            InputTime::Seconds { at_secs } => EventTime {
                published_ms: at_secs.saturating_mul(1000),
                received_ms: at_secs.saturating_mul(1000),
            },
        }
    }
}

impl CorrelationInput {
    /// `matched`, placed at `time`.
    fn new(matched: &Matched<'_>, time: EventTime) -> Self {
        let added =
            matched.event.0.get(NAMESPACE).map(|added| {
                serde_json::value::to_raw_value(added).expect("a JSON value serializes")
            });
        CorrelationInput {
            added,
            event: None,
            raw: matched.raw.to_owned(),
            key: matched.key.to_owned(),
            origin: matched.origin.clone(),
            delivery_id: matched.delivery_id.map(str::to_owned),
            received_at: matched.received_at.to_owned(),
            time: InputTime::Placed { time },
        }
    }

    /// The stored form of `matched`, placed at `time`.
    pub(super) fn encode(matched: &Matched<'_>, time: EventTime) -> Vec<u8> {
        let input = Self::new(matched, time);
        serde_json::to_vec(&input).expect("a correlation input serializes")
    }

    /// The event as the rules saw it: `raw` with what enrichment added (`Null` if unreadable).
    fn tree(&self) -> Value {
        let stored = self.event.as_deref().unwrap_or(&self.raw);
        let mut tree: Value = serde_json::from_str(stored.get()).unwrap_or(Value::Null);
        if let (Some(added), Value::Object(map)) = (&self.added, &mut tree) {
            let added = serde_json::from_str(added.get()).unwrap_or(Value::Null);
            map.insert(NAMESPACE.to_owned(), added);
        }
        tree
    }

    fn decode(seq: u64, bytes: &[u8]) -> Option<Self> {
        serde_json::from_slice(bytes)
            .inspect_err(|err| {
                tracing::error!(seq, error = %err, "a stored correlation input is unreadable; skipped");
            })
            .ok()
    }
}

/// One change a standalone detection pass made to the correlation state, as its journal keeps
/// it: replayed in order onto the last snapshot, the entries rebuild the state the pass left.
#[derive(Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub(super) enum JournalEntry {
    /// An event fed to the correlations (its detections are computed again on replay).
    Input(CorrelationInput),
    /// The timers due at this time fired (their alerts were queued by the same pass).
    TimersFired {
        /// The pass's clock, in Unix seconds.
        now_secs: i64,
    },
}

impl JournalEntry {
    /// The journal entry of `matched`, fed to the correlations at `time`.
    pub(super) fn input(matched: &Matched<'_>, time: EventTime) -> Vec<u8> {
        Self::Input(CorrelationInput::new(matched, time)).encode()
    }

    /// The journal entry of the timers that fired at `now_secs`.
    pub(super) fn timers_fired(now_secs: i64) -> Vec<u8> {
        Self::TimersFired { now_secs }.encode()
    }

    fn encode(&self) -> Vec<u8> {
        serde_json::to_vec(self).expect("a journal entry serializes")
    }
}

/// The correlator in use, the rule set it was built for, and the token of the shared state it
/// holds (cluster mode).
pub(super) struct LiveCorrelation {
    rules: Arc<RuleSet>,
    /// The live state.
    pub(super) correlator: Correlator,
    token: Option<String>,
    /// Standalone: bytes of journal stored since the last snapshot.
    journal_bytes: usize,
    /// Standalone: journal entries stored since the last snapshot.
    journal_entries: usize,
    /// Standalone: the size of the last snapshot.
    snapshot_bytes: usize,
}

impl LiveCorrelation {
    /// A correlator for `rules` continuing from `stored` state (empty when there is none, or
    /// when it cannot be read, with a warning).
    pub(super) fn restored(
        rules: Arc<RuleSet>,
        stored: Option<&[u8]>,
        token: Option<String>,
    ) -> Self {
        let mut correlator = rules.correlator();
        if let Some(stored) = stored
            && let Err(err) = restore(&mut correlator, stored)
        {
            tracing::warn!(
                error = format!("{err:#}"),
                "correlation windows start empty; single-event detection is unaffected"
            );
        }
        Self {
            rules,
            correlator,
            token,
            journal_bytes: 0,
            journal_entries: 0,
            snapshot_bytes: stored.map_or(0, <[u8]>::len),
        }
    }

    /// The standalone correlator for `pass.rules`: the stored snapshot with the journal replayed
    /// onto it. Replayed alerts are dropped: the passes that journaled them queued them.
    pub(super) fn replayed(
        pass: &Pass<'_>,
        rules: Arc<RuleSet>,
        stored: StoredCorrelation,
    ) -> Self {
        let mut live = Self::restored(rules, stored.snapshot.as_deref(), None);
        if stored.journal.is_empty() {
            return live;
        }
        // Up to MAX_JOURNAL_ENTRIES events through the rules again: say why detection waits.
        let started = Instant::now();
        tracing::info!(
            rows = stored.journal.len(),
            "replaying the correlation journal onto the last snapshot before detection resumes"
        );
        for (row, stored) in stored.journal.iter().enumerate() {
            live.journal_bytes += stored.len();
            let Some(entries) = compressed::decode(stored) else {
                tracing::error!(row, "a correlation journal row is damaged; skipped");
                continue;
            };
            for entry in entries.split(|&byte| byte == b'\n') {
                live.journal_entries += 1;
                live.replay(pass, row, entry);
            }
        }
        tracing::info!(
            entries = live.journal_entries,
            elapsed_ms = started.elapsed().as_millis() as u64,
            "correlation state restored"
        );
        live
    }

    /// Applies one journal entry (of journal row `row`) to the state.
    fn replay(&mut self, pass: &Pass<'_>, row: usize, entry: &[u8]) {
        match serde_json::from_slice(entry) {
            Ok(JournalEntry::Input(input)) => {
                correlate_input(pass, input, &mut self.correlator);
            }
            Ok(JournalEntry::TimersFired { now_secs }) => {
                self.correlator.expired(now_secs);
            }
            Err(err) => {
                tracing::error!(row, error = %err, "a correlation journal entry is unreadable; skipped");
            }
        }
    }

    /// What a standalone pass that made the changes `journal` stores: `(None, [row])`, its
    /// entries in one compressed row, or, once the journal since the last snapshot would outweigh
    /// that snapshot [`JOURNAL_PER_SNAPSHOT`] times (and [`MIN_JOURNAL_BYTES`]) or hold
    /// [`MAX_JOURNAL_ENTRIES`],
    /// `(Some(snapshot), [])`, the snapshot compressed.
    pub(super) fn record(&mut self, journal: Vec<Vec<u8>>) -> (Option<Vec<u8>>, Vec<Vec<u8>>) {
        if journal.is_empty() {
            return (None, journal);
        }
        let row = compressed::encode(&journal.join(&b'\n'));
        self.journal_bytes += row.len();
        self.journal_entries += journal.len();
        if self.journal_bytes < journal_allowance(self.snapshot_bytes)
            && self.journal_entries < MAX_JOURNAL_ENTRIES
        {
            return (None, vec![row]);
        }
        let snapshot = compressed::encode(&self.correlator.save());
        self.journal_bytes = 0;
        self.journal_entries = 0;
        self.snapshot_bytes = snapshot.len();
        (Some(snapshot), Vec::new())
    }
}

/// How many bytes of journal may follow a snapshot of `snapshot_bytes` before the next one.
fn journal_allowance(snapshot_bytes: usize) -> usize {
    (JOURNAL_PER_SNAPSHOT * snapshot_bytes).max(MIN_JOURNAL_BYTES)
}

/// What the correlation keeps between two steps (or two detection passes, standalone).
#[derive(Default)]
pub(super) struct CorrelationLoop {
    /// The state after the last step; empty after a failure, so the next step starts again
    /// from the stored state.
    live: Option<LiveCorrelation>,
    /// While the cluster backend is unreachable: when to try again.
    retry_at: Option<Instant>,
}

impl CorrelationLoop {
    /// The cached correlator, if it was built for `rules`.
    pub(super) fn take_for(&mut self, rules: &Arc<RuleSet>) -> Option<LiveCorrelation> {
        self.live
            .take()
            .filter(|live| Arc::ptr_eq(&live.rules, rules))
    }

    /// Keeps `live` for the next step (`None`: start again from the stored state).
    pub(super) fn keep(&mut self, live: Option<LiveCorrelation>) {
        self.live = live;
    }
}

/// How a cluster step went, as far as the backend is concerned.
enum StepOutcome {
    /// The backend answered: the step applied its inputs, finished this replica's earlier step,
    /// had nothing to do, or gave up after conflicts until the next step.
    BackendAnswered,
    /// The backend could not be reached; the inputs wait in the spool.
    BackendDown(ClusterError),
}

/// A step's inputs, decoded, and the last sequence number among them.
struct Inputs {
    events: Vec<CorrelationInput>,
    through: Option<u64>,
}

impl Detector {
    /// Runs one correlation step; returns how many inputs it consumed. Nothing to do standalone.
    pub(super) async fn correlate(&self, state: &mut CorrelationLoop) -> Result<usize, SpoolError> {
        let Some(shared) = &self.shared else {
            return Ok(0);
        };
        if state.retry_at.is_some_and(|at| Instant::now() < at) {
            return Ok(0);
        }
        let rules = self.rules.current();
        let stored = self.spool.correlation_inputs(INPUTS_PER_STEP).await?;
        let consumed = stored.len();
        if consumed == 0 && !rules.has_correlations() {
            return Ok(0);
        }
        let through = stored.last().map(|(seq, _)| *seq);
        let events = stored
            .iter()
            .filter_map(|(seq, bytes)| CorrelationInput::decode(*seq, bytes))
            .collect();
        let inputs = Inputs { events, through };
        match self.correlate_shared(shared, rules, inputs, state).await? {
            StepOutcome::BackendAnswered => state.retry_at = None,
            StepOutcome::BackendDown(err) => {
                tracing::warn!(
                    error = err.chain(),
                    pending = consumed,
                    "correlation paused until the cluster backend answers; its inputs wait in the spool"
                );
                state.retry_at = Some(Instant::now() + BACKEND_RETRY);
                return Ok(0);
            }
        }
        Ok(consumed)
    }

    /// A cluster step. The error is the spool's; a backend that cannot be reached is an
    /// outcome, and the inputs wait.
    async fn correlate_shared(
        &self,
        shared: &SharedState,
        rules: Arc<RuleSet>,
        inputs: Inputs,
        state: &mut CorrelationLoop,
    ) -> Result<StepOutcome, SpoolError> {
        let Inputs { events, through } = inputs;
        for _ in 0..MAX_CONFLICTS {
            let cached = state.take_for(&rules);
            let known = cached.as_ref().and_then(|live| live.token.as_deref());
            let loaded = match shared.load_correlation(known).await {
                Ok(loaded) => loaded,
                Err(err) => return Ok(StepOutcome::BackendDown(err)),
            };
            if let Some(step) = self.unfinished_step(&loaded).await? {
                // The inputs this step consumed are gone from the spool now; the next step
                // reads what is left.
                self.finish_step(step).await?;
                return Ok(StepOutcome::BackendAnswered);
            }
            let live = match (loaded.state, cached) {
                (None, Some(cached)) if cached.token == loaded.token => cached,
                (stored, _) => {
                    LiveCorrelation::restored(rules.clone(), stored.as_deref(), loaded.token)
                }
            };
            let now = now_ms();
            if events.is_empty() && !live.correlator.has_expired(secs(now)) {
                state.live = Some(live);
                return Ok(StepOutcome::BackendAnswered);
            }
            let expected = live.token.clone();
            // Cloned: after a conflict, the same inputs are applied to the other replica's state.
            let (alerts, mut live) = self.apply(live, events.clone(), now).await?;
            let step = AppliedStep {
                token: uuid::Uuid::new_v4().to_string(),
                consumed_through: through,
                alerts,
            };
            let written = shared
                .publish_correlation(expected.as_deref(), &live.correlator.save(), &step)
                .await;
            match written {
                Err(err) => return Ok(StepOutcome::BackendDown(err)),
                Ok(true) => {
                    live.token = Some(step.token.clone());
                    self.finish_step(step).await?;
                    state.live = Some(live);
                    return Ok(StepOutcome::BackendAnswered);
                }
                Ok(false) => {
                    // Another replica wrote first: this correlator is stale (it is dropped), and
                    // the inputs go onto the state that replica wrote.
                    metrics::counter!(CLUSTER_CORRELATION_CONFLICTS_TOTAL).increment(1);
                }
            }
        }
        tracing::warn!(
            attempts = MAX_CONFLICTS,
            "the shared correlation state kept changing under this replica; retrying next step"
        );
        Ok(StepOutcome::BackendAnswered)
    }

    /// This replica's step found in Redis that its spool has not recorded (it stopped between
    /// the two writes), if any.
    async fn unfinished_step(
        &self,
        loaded: &SharedCorrelation,
    ) -> Result<Option<AppliedStep>, SpoolError> {
        let Some(bytes) = &loaded.last_step else {
            return Ok(None);
        };
        let Ok(step) = serde_json::from_slice::<AppliedStep>(bytes) else {
            tracing::warn!(
                "this replica's last correlation step in the cluster is unreadable; ignored"
            );
            return Ok(None);
        };
        let applied = self.spool.applied_correlation_token().await?;
        if applied.as_deref() == Some(step.token.as_str()) {
            return Ok(None);
        }
        tracing::info!(
            alerts = step.alerts.len(),
            "finishing a correlation step written to the cluster before this replica stopped"
        );
        Ok(Some(step))
    }

    /// Commits a step the shared state already holds: its alerts, its inputs' removal, its token.
    async fn finish_step(&self, step: AppliedStep) -> Result<(), SpoolError> {
        let now = now_ms();
        let folded = self.fold_incidents(step.alerts).await?;
        let org = self.org.as_deref();
        self.commit_step(CorrelationCommit {
            consumed_through: step.consumed_through,
            outbox: queue_alerts(
                folded.alerts,
                &folded.routes,
                &self.sinks,
                &self.responses,
                org,
                now,
            ),
            applied_token: Some(step.token),
        })
        .await
    }

    async fn commit_step(&self, commit: CorrelationCommit) -> Result<(), SpoolError> {
        let queued = !commit.outbox.is_empty();
        self.spool.complete_correlation(commit).await?;
        if queued {
            self.wake_forwarders();
        }
        Ok(())
    }

    /// Feeds `inputs` to `live`'s correlator and fires its timers due at `now`, on a blocking
    /// thread; returns the alerts and the correlator.
    async fn apply(
        &self,
        live: LiveCorrelation,
        inputs: Vec<CorrelationInput>,
        now: u64,
    ) -> Result<(Vec<Alert>, LiveCorrelation), SpoolError> {
        let (privileged, org) = (self.privileged_users.clone(), self.org.clone());
        let (alerts, live) = tokio::task::spawn_blocking(move || {
            let mut live = live;
            let rules = live.rules.clone();
            let pass = Pass {
                rules: &rules,
                privileged_users: &privileged,
                org: org.as_deref(),
                now,
            };
            let alerts = correlate_inputs(&pass, inputs, &mut live.correlator);
            (alerts, live)
        })
        .await
        .map_err(|err| SpoolError::storage(format!("correlation task failed: {err}"), err))?;
        metrics::gauge!(CORRELATION_OPEN_STATE).set(live.correlator.open_state() as f64);
        Ok((alerts, live))
    }
}

/// The correlation alerts of `inputs`, in order, then of the timers due at `pass.now`.
fn correlate_inputs(
    pass: &Pass<'_>,
    inputs: Vec<CorrelationInput>,
    correlator: &mut Correlator,
) -> Vec<Alert> {
    let mut alerts: Vec<Alert> = inputs
        .into_iter()
        .flat_map(|input| correlate_input(pass, input, correlator))
        .collect();
    alerts.extend(correlator.expired(secs(pass.now)));
    alerts
}

/// Continues `correlator` from a stored state: a standalone snapshot (compressed) or the
/// cluster's (as it came).
fn restore(correlator: &mut Correlator, stored: &[u8]) -> anyhow::Result<()> {
    let state = compressed::decode(stored)
        .ok_or_else(|| anyhow::anyhow!("stored correlation state is damaged"))?;
    correlator.restore(&state)
}

/// The correlation alerts of one input.
fn correlate_input(
    pass: &Pass<'_>,
    input: CorrelationInput,
    correlator: &mut Correlator,
) -> Vec<Alert> {
    let event = input.tree();
    // Detections are computed again with the rules in force now: after a reload, the
    // correlations and the rules they refer to agree.
    let detections = pass.rules.detect(&event);
    let matched = Matched {
        event: LogEvent(&event),
        raw: &input.raw,
        key: &input.key,
        origin: &input.origin,
        delivery_id: input.delivery_id.as_deref(),
        received_at: &input.received_at,
    };
    let time = input.time.event_time();
    pass.correlate_event(&matched, &detections, time, correlator)
}

#[cfg(test)]
// The cluster tests are built with their backend's feature; without either, their helpers idle.
#[cfg_attr(
    not(any(feature = "redis", feature = "nats")),
    allow(dead_code, unused_imports)
)]
mod tests {
    //! The standalone journal and snapshots, through a real spool; the crash window of a cluster
    //! step, against the machine's Redis on 127.0.0.1:6379 and its NATS on 127.0.0.1:4222.

    use std::time::Duration;

    use super::*;
    use crate::brokers::ServerUrl;
    use crate::cluster::{ClusterConfig, ClusterMode};
    use crate::detect::RulesConfig;
    use crate::detect::SharedRules;
    use crate::detect::enrich::{NetworkHistory, enrich};
    use crate::okta::samples::{self, Initiator};
    use crate::sinks::SinkConfig;
    use crate::spool::{DetectionCommit, Spool};

    fn shared_state(mode: ClusterMode, prefix: &str) -> Arc<SharedState> {
        let url = match mode {
            ClusterMode::NatsKv => "nats://127.0.0.1:4222",
            _ => "redis://127.0.0.1:6379",
        };
        let config = ClusterConfig {
            mode,
            url: Some(ServerUrl::new(url)),
            key_prefix: Some(prefix.to_owned()),
        };
        Arc::new(SharedState::new(&config, "replica-under-test").unwrap())
    }

    fn detector(spool: Arc<Spool>, shared: Arc<SharedState>, dir: &std::path::Path) -> Detector {
        Detector {
            rules: SharedRules::new(RuleSet::load(&RulesConfig::default()).unwrap()),
            spool,
            sinks: vec![SinkConfig::file("file", dir.join("alerts.jsonl"))].into(),
            responses: Vec::new().into(),
            dedup_window: Duration::from_secs(60),
            privileged_users: Arc::new([]),
            live_context: None,
            forwarders: Vec::new(),
            shared: Some(shared),
            org: None,
            tallies: Default::default(),
            incident_window: Duration::ZERO,
        }
    }

    /// `event` encoded as the detector stores a correlation input, with `time`.
    fn encoded_input(event: &Value, time: EventTime) -> Vec<u8> {
        let raw = serde_json::value::to_raw_value(event).unwrap();
        let origin = Origin::default();
        let matched = Matched {
            event: LogEvent(event),
            raw: &raw,
            key: "uuid-1",
            origin: &origin,
            delivery_id: None,
            received_at: "2026-12-01T00:00:00Z",
        };
        CorrelationInput::encode(&matched, time)
    }

    /// An MFA reset stored as a correlation input, and the alert a step raised from it.
    async fn stored_input(spool: &Spool, rules: &RuleSet) -> Alert {
        let event = samples::mfa_factor_deactivate(
            &samples::users()[0],
            "OKTA_VERIFY_PUSH",
            Initiator::Admin,
            "tx-1",
        );
        let time = EventTime {
            published_ms: 1_764_547_200_000,
            received_ms: 1_764_547_200_000,
        };
        let commit = DetectionCommit {
            correlation_inputs: vec![encoded_input(&event, time)],
            ..DetectionCommit::default()
        };
        spool.complete_batches(commit).await.unwrap();
        let alerts = super::super::offline::detect_events(rules, &[], vec![event]).alerts;
        alerts.into_iter().next().unwrap()
    }

    /// Passes of `resets` MFA resets each (by admins of a few users, so the built-in counting
    /// windows fill), stored as the detector stores them; returns the live correlation and how
    /// many passes took a snapshot.
    async fn journaled_passes(
        spool: &Spool,
        pass: &Pass<'_>,
        live: &mut LiveCorrelation,
        passes: usize,
        resets: usize,
    ) -> usize {
        let (origin, users) = (Origin::default(), samples::users());
        let mut snapshots = 0;
        for n in 0..passes {
            let mut journal = Vec::new();
            for i in 0..resets {
                let user = &users[i % 3];
                let tx = format!("tx-{n}-{i}");
                let mut event = samples::mfa_factor_deactivate(user, "SMS", Initiator::Admin, &tx);
                let raw = serde_json::value::to_raw_value(&event).unwrap();
                // As the detector does: the correlations group by `factorwatch.user`.
                enrich(&mut event, &mut NetworkHistory::default());
                let key = format!("uuid-{n}-{i}");
                let matched = Matched {
                    event: LogEvent(&event),
                    raw: &raw,
                    key: &key,
                    origin: &origin,
                    delivery_id: None,
                    received_at: "2026-12-01T00:00:00Z",
                };
                let received_ms = pass.now as i64 + n as i64 * 1000;
                let at = super::super::event_time(&matched, received_ms);
                let detections = pass.rules.detect(&event);
                pass.correlate_event(&matched, &detections, at, &mut live.correlator);
                journal.push(JournalEntry::input(&matched, at));
            }
            let (correlation_state, correlation_journal) = live.record(journal);
            snapshots += usize::from(correlation_state.is_some());
            let commit = DetectionCommit {
                correlation_state,
                correlation_journal,
                ..DetectionCommit::default()
            };
            spool.complete_batches(commit).await.unwrap();
        }
        snapshots
    }

    #[test]
    fn an_input_stored_in_seconds_by_an_older_version_still_decodes() {
        let event = samples::session_start(&samples::users()[0], "192.0.2.1");
        let time = EventTime {
            published_ms: 1_764_547_200_123,
            received_ms: 1_764_547_260_000,
        };
        let mut stored: Value = serde_json::from_slice(&encoded_input(&event, time)).unwrap();
        let decoded = CorrelationInput::decode(1, &serde_json::to_vec(&stored).unwrap()).unwrap();
        assert_eq!(decoded.time.event_time(), time);
        let fields = stored.as_object_mut().unwrap();
        fields.remove("time");
        fields.insert("at_secs".into(), 1_764_547_200.into());
        let legacy = CorrelationInput::decode(1, &serde_json::to_vec(&stored).unwrap()).unwrap();
        assert_eq!(
            legacy.time.event_time(),
            EventTime {
                published_ms: 1_764_547_200_000,
                received_ms: 1_764_547_200_000,
            }
        );
    }

    #[test]
    fn an_input_reads_back_as_the_event_the_rules_saw_in_either_stored_form() {
        let mut event = samples::mfa_factor_deactivate(
            &samples::users()[0],
            "OKTA_VERIFY_PUSH",
            Initiator::Admin,
            "tx-1",
        );
        let raw = serde_json::value::to_raw_value(&event).unwrap();
        enrich(&mut event, &mut NetworkHistory::default());
        let origin = Origin::default();
        let matched = Matched {
            event: LogEvent(&event),
            raw: &raw,
            key: "uuid-1",
            origin: &origin,
            delivery_id: None,
            received_at: "2026-12-01T00:00:00Z",
        };
        let time = EventTime {
            published_ms: 1_764_547_200_000,
            received_ms: 1_764_547_200_000,
        };
        let encoded = CorrelationInput::encode(&matched, time);
        assert_eq!(CorrelationInput::decode(1, &encoded).unwrap().tree(), event);

        // Earlier versions stored the whole event instead of what enrichment added.
        let mut stored: Value = serde_json::from_slice(&encoded).unwrap();
        assert_eq!(stored.get("event"), None, "the event is not stored twice");
        let fields = stored.as_object_mut().unwrap();
        fields.remove("added");
        fields.insert("event".into(), event.clone());
        let legacy = CorrelationInput::decode(1, &serde_json::to_vec(&stored).unwrap()).unwrap();
        assert_eq!(legacy.tree(), event);
    }

    /// The state as JSON, to compare two correlators.
    fn state_of(live: &LiveCorrelation) -> Value {
        serde_json::from_slice(&live.correlator.save()).unwrap()
    }

    #[tokio::test]
    async fn standalone_the_snapshot_and_its_journal_replay_to_the_state_the_passes_left() {
        let dir = tempfile::TempDir::new().unwrap();
        let spool = Spool::open(dir.path(), u64::MAX).unwrap();
        let rules_dir = tempfile::TempDir::new().unwrap();
        std::fs::write(
            rules_dir.path().join("absence.yml"),
            "title: Test Absence\nid: test-absence\nfactorwatch.absence: true\n\
             correlation:\n  type: temporal_ordered\n  rules: [okta_mfa_removed, okta_mfa_factor_activated]\n  \
             group-by: [factorwatch.user]\n  timespan: 60s\nlevel: low\n",
        )
        .unwrap();
        let config = RulesConfig {
            builtin_correlations: true,
            paths: vec![rules_dir.path().to_owned()],
            ..RulesConfig::default()
        };
        let rules = Arc::new(RuleSet::load(&config).unwrap());
        let pass = Pass {
            rules: &rules,
            privileged_users: &[],
            org: None,
            now: now_ms(),
        };
        let mut live = LiveCorrelation::restored(rules.clone(), None, None);

        // Enough passes for the journal to outgrow MIN_JOURNAL_BYTES, then some more.
        let snapshots = journaled_passes(&spool, &pass, &mut live, 60, 50).await;
        assert!(snapshots >= 1, "no snapshot in 60 passes");
        assert!(
            live.correlator.has_expired(i64::MAX),
            "absence timers are open"
        );
        // A pass whose timers ran out journals that they fired.
        let fired = live.correlator.expired(i64::MAX);
        assert!(!fired.is_empty());
        let (snapshot, journal) = live.record(vec![JournalEntry::timers_fired(i64::MAX)]);
        assert!(snapshot.is_none());
        let commit = DetectionCommit {
            correlation_journal: journal,
            ..DetectionCommit::default()
        };
        spool.complete_batches(commit).await.unwrap();

        let stored = spool.correlation_state().await.unwrap();
        let journal_bytes: usize = stored.journal.iter().map(Vec::len).sum();
        let snapshot_bytes = stored.snapshot.as_ref().map_or(0, Vec::len);
        assert!(
            !stored.journal.is_empty(),
            "the last passes are in the journal"
        );
        assert!(
            journal_bytes < journal_allowance(snapshot_bytes),
            "the journal ({journal_bytes} bytes) outgrew the snapshot ({snapshot_bytes} bytes) \
             without a new one"
        );
        // Restarted: the snapshot with the journal replayed is the state the passes left, and
        // the timers that fired before do not fire again.
        let replayed = LiveCorrelation::replayed(&pass, rules.clone(), stored);
        assert_eq!(state_of(&replayed), state_of(&live));
        assert!(!replayed.correlator.has_expired(i64::MAX));
        assert_eq!(replayed.journal_bytes, journal_bytes);
    }

    #[tokio::test]
    #[cfg(feature = "redis")]
    async fn a_step_written_to_redis_but_not_to_the_spool_is_finished_not_applied_again() {
        a_step_written_to_the_backend_but_not_to_the_spool_is_finished(ClusterMode::Redis).await;
    }

    #[tokio::test]
    #[cfg(feature = "nats")]
    async fn a_step_written_to_nats_kv_but_not_to_the_spool_is_finished_not_applied_again() {
        a_step_written_to_the_backend_but_not_to_the_spool_is_finished(ClusterMode::NatsKv).await;
    }

    async fn a_step_written_to_the_backend_but_not_to_the_spool_is_finished(mode: ClusterMode) {
        let dir = tempfile::TempDir::new().unwrap();
        let spool = Arc::new(Spool::open(dir.path(), u64::MAX).unwrap());
        let prefix = format!("factorwatch-test-{}:", uuid::Uuid::new_v4());
        let shared = shared_state(mode, &prefix);
        let detector = detector(spool.clone(), shared.clone(), dir.path());
        let alert = stored_input(&spool, &detector.rules.current()).await;
        let (seq, _) = spool.correlation_inputs(10).await.unwrap()[0].clone();

        // The replica wrote its step to the backend, then died before its spool commit.
        let step = AppliedStep {
            token: "step-before-the-crash".into(),
            consumed_through: Some(seq),
            alerts: vec![alert.clone()],
        };
        let state = detector.rules.current().correlator().save();
        assert!(
            shared
                .publish_correlation(None, &state, &step)
                .await
                .unwrap()
        );

        let mut correlation = CorrelationLoop::default();
        assert_eq!(detector.correlate(&mut correlation).await.unwrap(), 1);
        let (queued, _) = spool.due("file", u64::MAX, 10).await.unwrap();
        assert_eq!(queued.len(), 1, "the step's alert is queued once");
        assert_eq!(queued[0].record.alert_id, alert.id);
        assert!(spool.correlation_inputs(10).await.unwrap().is_empty());
        assert_eq!(
            spool.applied_correlation_token().await.unwrap().as_deref(),
            Some("step-before-the-crash")
        );
        // The input was not applied a second time: the shared state is the one the step wrote.
        let loaded = shared.load_correlation(None).await.unwrap();
        assert_eq!(loaded.token.as_deref(), Some("step-before-the-crash"));

        // The next steps have nothing left to do.
        assert_eq!(detector.correlate(&mut correlation).await.unwrap(), 0);
        assert_eq!(spool.due("file", u64::MAX, 10).await.unwrap().0.len(), 1);
    }
}
