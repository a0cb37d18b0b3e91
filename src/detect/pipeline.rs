//! The detection loop, in two stages that overlap while intake is idle: while one pass is
//! committed (its live context, its incidents, its outbox rows and the spool transaction), the
//! next one is detected (parsed, de-duplicated, run through the rules and the correlations).
//! Detection runs on the blocking pool, the commit in a task of its own and on the spool's
//! writer, so a backlog drains on both cores; a pass alone used one. While batches keep
//! arriving, the stages take turns and intake keeps the second core.
//!
//! At most one pass is in flight. The pass detected meanwhile leaves out the batches in flight
//! and sees the known networks they changed (the spool holds them only once committed). Their
//! de-duplication claims are already durable: a pass claims its keys before its detection ends.
//! Correlations go on from the in-memory state; when that state has to be restored from the
//! spool (at start, after a reload), the pass waits for the one in flight to be stored first.
//! Should a commit fail, the pass detected meanwhile is dropped and the correlation state
//! restored from the spool: both passes' batches are detected again, as after a crash.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::time::Instant;

use tokio::sync::Notify;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;
use tracing::Instrument;

use crate::alert::Alert;
use crate::clock::wait_for_work;
use crate::spool::{DetectionCommit, SpoolError};
use crate::telemetry::metrics::DETECTION_STAGE_SECONDS;

use super::correlation_step::CorrelationLoop;
use super::watched::PassTally;
use super::{Detector, IDLE_PASS_INTERVAL, queue_alerts};

/// A pass detected and not yet committed.
pub(super) struct Detected {
    /// How many batches it took.
    pub batches: usize,
    /// When it started, in Unix milliseconds: its incidents expire by it.
    pub now: u64,
    /// What its spool transaction stores, less the incidents and outbox rows its commit adds.
    pub commit: DetectionCommit,
    /// Its alerts, before live context and incidents.
    pub alerts: Vec<Alert>,
    /// Its deliveries watched through detection, counted once it is committed.
    pub tally: PassTally,
}

/// A stage of a detection pass, timed in `factorwatch_detection_stage_seconds`: where a pass
/// spends its time, and what the detection of one pass waits for (docs/operations.md).
#[derive(Clone, Copy)]
pub(super) enum Stage {
    /// Taking the oldest batches, splitting them into events, the de-duplication lookups and
    /// the known networks.
    Read,
    /// The rules and the correlations.
    Rules,
    /// Storing the pass's new event keys (beside the rules).
    Claim,
    /// Live context, incidents and outbox rows.
    Prepare,
    /// The spool transaction that queues the alerts and removes the batches.
    Store,
}

impl Stage {
    fn label(self) -> &'static str {
        match self {
            Stage::Read => "read",
            Stage::Rules => "rules",
            Stage::Claim => "claim",
            Stage::Prepare => "prepare",
            Stage::Store => "store",
        }
    }

    /// Records the time since `started` as this stage's.
    pub fn record(self, started: Instant) {
        metrics::histogram!(DETECTION_STAGE_SECONDS, "stage" => self.label())
            .record(started.elapsed().as_secs_f64());
    }

    /// Awaits `work`, timed as this stage.
    pub async fn time<T>(self, work: impl Future<Output = T>) -> T {
        let started = Instant::now();
        let outcome = work.await;
        self.record(started);
        outcome
    }
}

/// What the pass detected while another is committed must know of that one.
#[derive(Default)]
pub(super) struct InFlight {
    /// Whether a pass is being committed (perhaps one without batches, which only fired
    /// correlation timers).
    committing: bool,
    /// Its batches, not to be taken again.
    pub batches: HashSet<u64>,
    /// The known networks it changed, by user.
    pub networks: HashMap<String, Vec<u8>>,
}

impl InFlight {
    /// What `committing` (if any) leaves the next pass to know.
    fn of(committing: Option<&Detected>) -> Self {
        let Some(detected) = committing else {
            return Self::default();
        };
        Self {
            committing: true,
            batches: detected.commit.batches.iter().map(|b| b.id).collect(),
            networks: detected.commit.known_networks.iter().cloned().collect(),
        }
    }

    /// True when no pass is being committed.
    pub fn is_empty(&self) -> bool {
        !self.committing
    }

    /// Replaces what `stored` holds of `users` by what the pass in flight changed.
    pub fn overlay_networks(&self, users: &HashSet<String>, stored: &mut HashMap<String, Vec<u8>>) {
        for (user, networks) in &self.networks {
            if users.contains(user) {
                stored.insert(user.clone(), networks.clone());
            }
        }
    }
}

impl Detector {
    /// Detects and commits until `shutdown`, one pass committed while the next is detected.
    /// `detected` (cluster) is woken after each commit that took batches.
    pub(super) async fn detect_loop(
        self: &Arc<Self>,
        intake: Arc<Notify>,
        detected: Option<Arc<Notify>>,
        shutdown: CancellationToken,
    ) {
        let mut inline = CorrelationLoop::default();
        let mut committing: Option<Detected> = None;
        let mut last_appended = self.spool.batches_appended();
        loop {
            if shutdown.is_cancelled() {
                // Only the pass in flight is finished; what is left waits in the spool.
                if let Err(err) = self.finish(self.start_commit(committing.take())).await {
                    tracing::error!(error = %err, "detection pass failed to commit at shutdown; \
                        its batches are detected again at the next start");
                }
                return;
            }
            let was_committing = committing.is_some();
            let appended = self.spool.batches_appended();
            let intake_idle = appended == last_appended;
            last_appended = appended;
            let (committed, next) = self.step(&mut inline, committing.take(), intake_idle).await;
            let busy = match (committed, next) {
                (Err(err), _) => {
                    tracing::error!(error = %err, "detection pass failed to commit; its batches \
                        are detected again in 1 s");
                    // The pass detected meanwhile built on this one: both start again from
                    // what the spool holds.
                    inline.keep(None);
                    false
                }
                (Ok(batches), next) => {
                    if batches > 0 {
                        detected.iter().for_each(|wake| wake.notify_one());
                    }
                    let next = next.unwrap_or_else(|err| {
                        tracing::error!(error = %err, "detection pass failed; retrying in 1 s");
                        None
                    });
                    committing = next;
                    // After a commit, look again at once: the pass detected meanwhile may
                    // have waited for it.
                    was_committing || committing.is_some()
                }
            };
            if !busy && !wait_for_work(&intake, IDLE_PASS_INTERVAL, &shutdown).await {
                return;
            }
        }
    }

    /// Commits `committing` (if any) and detects the next pass: side by side when `overlap`,
    /// else one after the other. While batches keep arriving the passes take turns, as they
    /// did before the pipeline, and intake keeps the second core: side by side, detection took
    /// it and intake acknowledged about half as many events at saturation (BENCHMARKS.md).
    async fn step(
        self: &Arc<Self>,
        inline: &mut CorrelationLoop,
        committing: Option<Detected>,
        overlap: bool,
    ) -> (
        Result<usize, SpoolError>,
        Result<Option<Detected>, SpoolError>,
    ) {
        if overlap {
            let in_flight = InFlight::of(committing.as_ref());
            let commit = self.start_commit(committing);
            return tokio::join!(self.finish(commit), self.detect_pass(inline, &in_flight));
        }
        let committed = self.finish(self.start_commit(committing)).await;
        let next = match committed {
            Ok(_) => self.detect_pass(inline, &InFlight::default()).await,
            Err(_) => Ok(None),
        };
        (committed, next)
    }

    /// Starts the commit of `committing`, if any, in a task of its own: its incidents and
    /// outbox rows take CPU time the detection of the next pass, in this task, must not wait
    /// for.
    fn start_commit(
        self: &Arc<Self>,
        committing: Option<Detected>,
    ) -> Option<JoinHandle<Result<usize, SpoolError>>> {
        let pass = committing?;
        Some(tokio::spawn(
            self.clone().commit_pass(pass).in_current_span(),
        ))
    }

    /// Waits for the commit `started`; how many batches it took (0: there was none).
    async fn finish(
        &self,
        started: Option<JoinHandle<Result<usize, SpoolError>>>,
    ) -> Result<usize, SpoolError> {
        let Some(commit) = started else {
            return Ok(0);
        };
        commit.await.map_err(|err| {
            SpoolError::storage(format!("detector commit task failed: {err}"), err)
        })?
    }

    /// Completes and stores `pass`: live context, incidents, outbox rows, in one spool
    /// transaction with its batches' removal; returns how many batches it took.
    async fn commit_pass(self: Arc<Self>, pass: Detected) -> Result<usize, SpoolError> {
        let Detected {
            batches,
            now,
            mut commit,
            mut alerts,
            tally,
        } = pass;
        let started = Instant::now();
        if let Some(live_context) = &self.live_context {
            live_context.add_to(&mut alerts).await;
        }
        let folded = self.fold_incidents(alerts).await?;
        commit.incidents = folded.records;
        commit.expired_incidents = self.expired_incidents(now).await?;
        commit.outbox = queue_alerts(
            folded.alerts,
            &folded.routes,
            &self.sinks,
            &self.responses,
            self.org.as_deref(),
            now,
        );
        let queued = !commit.outbox.is_empty();
        Stage::Prepare.record(started);
        Stage::Store
            .time(self.spool.complete_batches(commit))
            .await?;
        tally.commit(&self.tallies);
        if queued {
            self.wake_forwarders();
        }
        Ok(batches)
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use serde_json::Value;

    use super::*;
    use crate::clock::now_ms;
    use crate::detect::incident_store::tests::standalone_detector;
    use crate::detect::{RuleSet, RulesConfig, SharedRules};
    use crate::okta::samples::{self, Initiator};
    use crate::spool::Spool;

    const RESET: &str = "Okta MFA Factor Deactivated";
    const MANY_USERS: &str = "One Actor Reset the MFA of Several Users";
    const NEW_NETWORK: &str = "MFA Reset Followed by a Sign-In From a New Network";

    async fn deliver(spool: &Spool, events: Vec<Value>) -> u64 {
        let body = samples::envelope("acme.okta.com", samples::SIMULATED_HOOK_ID, events);
        let body = serde_json::to_vec(&body).unwrap();
        spool.append_batch(now_ms(), &body).await.unwrap()
    }

    fn titles(alerts: &[Alert]) -> Vec<&str> {
        alerts
            .iter()
            .map(|alert| alert.rule.title.as_str())
            .collect()
    }

    #[tokio::test]
    async fn a_pass_detected_while_the_last_one_commits_builds_on_it_as_if_it_had_waited() {
        let dir = tempfile::TempDir::new().unwrap();
        let spool = Arc::new(Spool::open(dir.path(), u64::MAX).unwrap());
        let detector = Arc::new(standalone_detector(
            spool.clone(),
            Duration::from_secs(3600),
        ));
        let [alice, bob, carol, ..] = &samples::users()[..] else {
            unreachable!("four sample users")
        };
        let bob_reset = samples::mfa_factor_deactivate(bob, "SMS", Initiator::Admin, "tx-b");
        let first_batch = vec![
            samples::session_start(alice, "198.51.100.7"),
            samples::mfa_factor_deactivate(alice, "SMS", Initiator::Admin, "tx-a"),
            bob_reset.clone(),
        ];
        let second_batch = vec![
            samples::session_start(alice, "198.51.100.7"),
            samples::mfa_factor_deactivate(carol, "SMS", Initiator::Admin, "tx-c"),
            bob_reset,
        ];
        let mut inline = CorrelationLoop::default();
        deliver(&spool, first_batch).await;
        let nothing_in_flight = InFlight::default();
        let first = detector.detect_pass(&mut inline, &nothing_in_flight);
        let first = first.await.unwrap().expect("a pass");
        let second_id = deliver(&spool, second_batch).await;

        // The second pass is detected before the first is stored.
        let in_flight = InFlight::of(Some(&first));
        let second = detector.detect_pass(&mut inline, &in_flight);
        let second = second.await.unwrap().expect("a pass");
        assert_eq!(titles(&first.alerts), [RESET, RESET]);
        let ids: Vec<u64> = second.commit.batches.iter().map(|b| b.id).collect();
        assert_eq!(ids, [second_id], "the batch in flight is not taken again");
        // Carol's reset alerts and completes the three users' correlation begun in the first
        // pass; Bob's repeated reset is a duplicate; Alice's network is the one she signed in
        // from in the first pass, so her sign-in after her reset is from no new network.
        assert_eq!(titles(&second.alerts), [RESET, MANY_USERS]);
        assert!(!titles(&second.alerts).contains(&NEW_NETWORK));

        assert_eq!(detector.clone().commit_pass(first).await.unwrap(), 1);
        assert_eq!(detector.clone().commit_pass(second).await.unwrap(), 1);
        assert!(
            spool
                .pending_batches(10, u64::MAX)
                .await
                .unwrap()
                .is_empty()
        );
        let stored = spool.known_networks(vec![alice.login.clone()]).await;
        assert_eq!(stored.unwrap().len(), 1, "Alice's networks are stored");
    }

    #[tokio::test]
    async fn a_sign_in_no_rule_can_match_still_teaches_its_network() {
        // Only the reset rule: nothing matches a sign-in or a password reset, so the pass builds
        // neither's tree; the sign-in must still teach Alice's network.
        let dir = tempfile::TempDir::new().unwrap();
        let spool = Arc::new(Spool::open(dir.path(), u64::MAX).unwrap());
        let mut detector = standalone_detector(spool.clone(), Duration::from_secs(3600));
        let reset_rule = concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/rules/mfa_factor_deactivated.yml"
        );
        let rules = RuleSet::load(&RulesConfig {
            builtin: false,
            builtin_correlations: false,
            paths: vec![reset_rule.into()],
            ..RulesConfig::default()
        });
        detector.rules = SharedRules::new(rules.unwrap());
        let [alice, bob, carol, ..] = &samples::users()[..] else {
            unreachable!("four sample users")
        };
        let sign_in = samples::session_start(alice, "198.51.100.7");
        let password_reset = samples::password_reset(bob, Initiator::Admin);
        assert!(
            !detector
                .rules
                .current()
                .can_match(Some("user.session.start"))
        );
        deliver(
            &spool,
            vec![
                sign_in,
                password_reset,
                samples::mfa_factor_deactivate(carol, "SMS", Initiator::Admin, "tx-c"),
            ],
        )
        .await;
        let detector = Arc::new(detector);
        let mut inline = CorrelationLoop::default();
        let nothing_in_flight = InFlight::default();
        let pass = detector.detect_pass(&mut inline, &nothing_in_flight);
        let pass = pass.await.unwrap().expect("a pass");
        assert_eq!(titles(&pass.alerts), [RESET]);
        let learned: Vec<&str> = pass
            .commit
            .known_networks
            .iter()
            .map(|(user, _)| user.as_str())
            .collect();
        assert_eq!(learned, [alice.login.as_str()]);
    }
}
