//! Responses (`[[responses]]`): acting on an alert through Okta's own controls (raise the
//! user's risk, end their sessions, suspend them, push a Shared Signals event), with the guards
//! a security team needs before a machine acts on its identity provider.
//!
//! Each response is a [`Sink`] to the shared delivery loop ([`crate::forward`]): the detector
//! queues the alerts its `when` accepts in its outbox (`response:<name>`), so it inherits the
//! outbox's durability, retries with backoff on transient errors and dead letters on permanent
//! ones. For each alert and action, in order:
//! 1. the ledger (spool table `responses`): an action settled before (same alert, response,
//!    action; [`action_id`]) is not tried again, nor one already done to the same user within the
//!    hour;
//! 2. the guards ([`guard`]), against the user as Okta knows it now;
//! 3. `mode = "dry-run"` (the default) stops here and records what it would have called;
//! 4. the cap ([`cap`]): past `max_per_hour`, the action is held for a person
//!    (`factorwatch responses approve ID`);
//! 5. the call ([`act`]).
//!
//! Every outcome is recorded in the ledger and reported, in the same transaction, to the sinks
//! that took the alert (as a copy of it with `response` set), except PagerDuty and
//! Alertmanager, which page rather than inform.

pub mod act;
pub mod cap;
pub mod config;
pub mod guard;
pub mod recent;
pub mod ssf;

use std::sync::Arc;

use tokio::sync::OnceCell;

use crate::alert::{ActionOutcome, ActionRecord, Alert, action_id};
use crate::clock::{now_ms, parse_rfc3339_ms, rfc3339};
use crate::cluster::{Claim, SharedState};
use crate::okta_api::{OktaApiError, OktaClient};
use crate::sinks::{Delivery, DeliveryError, PublishFuture, Sink, SinkConfig, SinkKind};
use crate::spool::{OutboxRecord, Spool, SpoolError};

use act::{Effect, SsfSender};
pub use config::{Action, Mode, ResponseConfig, SsfConfig, check_responses};
use guard::Profile;

/// How long, in a `[cluster]`, an action's claim keeps other replicas from taking it again.
const CLAIM_WINDOW: std::time::Duration = std::time::Duration::from_secs(7 * 24 * 3600);
/// How long the ledger keeps an action's record: `responses list` and `undo` reach back this
/// far, and an alert replayed after it (a dead letter kept a month) would act again.
const LEDGER_RETENTION_MS: u64 = 30 * 24 * 3600 * 1000;

/// One response, running: its config, its Okta client, its cap, where it records and reports.
pub struct Responder {
    config: ResponseConfig,
    outbox: String,
    okta: OktaClient,
    /// The org's URL (a dry run's SSF call names it).
    org_url: String,
    ssf: Option<Arc<SsfSender>>,
    spool: Arc<Spool>,
    /// The org's sinks: those that took an alert are told what was done about it.
    sinks: Arc<[SinkConfig]>,
    cluster: Option<Arc<SharedState>>,
    cap: cap::Cap,
    /// What it executed within the hour, by action and user.
    recent: recent::Recent,
    /// The cap and `recent` were filled from the ledger, once after the start.
    seeded: OnceCell<()>,
    /// When the ledger was last pruned (Unix ms).
    pruned_at: std::sync::atomic::AtomicU64,
    /// The user factorwatch's API token acts as (none for an OAuth app), looked up once.
    own_id: OnceCell<Option<String>>,
}

/// What a responder is built from, besides its config.
pub struct ResponderParts {
    /// The org's Okta client, asking for [`ResponseConfig::scopes`].
    pub okta: OktaClient,
    /// The org's URL.
    pub org_url: String,
    /// The signer and issuer, when `[ssf]` is set.
    pub ssf: Option<Arc<SsfSender>>,
    /// The org's spool.
    pub spool: Arc<Spool>,
    /// The org's sinks.
    pub sinks: Arc<[SinkConfig]>,
    /// The shared backend, in a `[cluster]`.
    pub cluster: Option<Arc<SharedState>>,
}

/// Why `responses undo` or `responses approve` could not do what it was asked.
#[derive(Debug, thiserror::Error)]
pub enum ResponseError {
    /// No action of this org has this id.
    #[error("no recorded action has the id {0}: `factorwatch responses list` shows them")]
    NotFound(String),
    /// The action is not in a state that allows the request.
    #[error("{0}")]
    Refused(String),
    /// Okta refused or failed.
    #[error("Okta: {0}")]
    Okta(#[from] OktaApiError),
    /// The ledger could not be read or written.
    #[error(transparent)]
    Spool(#[from] SpoolError),
}

impl Responder {
    /// The running response `config` of an org.
    pub fn new(config: ResponseConfig, parts: ResponderParts) -> Self {
        Self {
            outbox: config.outbox(),
            cap: cap::Cap::new(&config.name, config.max_per_hour, parts.cluster.clone()),
            config,
            okta: parts.okta,
            org_url: parts.org_url,
            ssf: parts.ssf,
            spool: parts.spool,
            sinks: parts.sinks,
            cluster: parts.cluster,
            recent: recent::Recent::default(),
            seeded: OnceCell::new(),
            pruned_at: std::sync::atomic::AtomicU64::new(0),
            own_id: OnceCell::new(),
        }
    }

    /// Its config.
    pub fn config(&self) -> &ResponseConfig {
        &self.config
    }

    /// Acts on one alert: each action in order. A transient error (Okta busy or down) stops
    /// here and the delivery loop retries the alert (settled actions are not repeated); a
    /// permanent failure is recorded, the other actions still run, and the alert then goes to
    /// the dead letters with the reason.
    async fn respond(&self, alert: &Alert) -> Result<(), DeliveryError> {
        if alert.response.is_some() {
            return Ok(());
        }
        self.seed().await?;
        self.prune_hourly().await?;
        let mut profile = None;
        let mut failures = Vec::new();
        for &action in &self.config.actions {
            let id = action_id(&alert.id, &self.config.name, action.as_str());
            if self.settled(&id).await? {
                continue;
            }
            let record = self.decide(alert, action, &id, &mut profile).await?;
            if record.outcome == ActionOutcome::Failed {
                failures.push(format!("{}: {}", action.as_str(), record.reason));
            }
            self.record(alert, &record).await?;
        }
        match failures.is_empty() {
            true => Ok(()),
            false => Err(DeliveryError::Permanent(failures.join("; "))),
        }
    }

    /// True when the ledger already holds a final outcome of the action `id`.
    async fn settled(&self, id: &str) -> Result<bool, DeliveryError> {
        Ok(self
            .ledger_record(id)
            .await
            .map_err(spool_error)?
            .is_some_and(|record| record.outcome.is_final()))
    }

    /// Runs the guards, the mode, the cap and the call of one action; the record of what came
    /// of it. `Err` only for what a retry may cure.
    async fn decide(
        &self,
        alert: &Alert,
        action: Action,
        id: &str,
        profile: &mut Option<Profile>,
    ) -> Result<ActionRecord, DeliveryError> {
        let mut record = self.blank_record(alert, action, id);
        let Some(target) = alert.targets.first().and_then(|t| t.id.clone()) else {
            return Ok(record.settle(ActionOutcome::Skipped, "the alert names no target user"));
        };
        record.target_id = Some(target.clone());
        if profile.is_none() {
            match Profile::read(&self.okta, &target).await {
                Ok(read) => *profile = Some(read),
                Err(err @ OktaApiError::NotFound { .. }) => {
                    return Ok(record.settle(ActionOutcome::Skipped, &err.to_string()));
                }
                Err(err) => return self.failed(record, err),
            }
        }
        let profile = profile.as_ref().expect("read above");
        record.target_login = profile.login.clone();
        let own_id = self.own_id().await?;
        if let Some(reason) = guard::refusal(&self.config, profile, own_id.as_deref()) {
            return Ok(record.settle(ActionOutcome::Skipped, &reason));
        }
        if let Some(earlier) = self.recent.earlier(action.as_str(), &profile.id, now_ms()) {
            let reason = format!("already done to this user within the hour (action {earlier})");
            return Ok(record.settle(ActionOutcome::Skipped, &reason));
        }
        if !self.claim(id).await? {
            return Ok(record.settle(
                ActionOutcome::Skipped,
                "another replica took this action for this alert",
            ));
        }
        record.call = Some(act::call_of(action, profile, &self.org_url));
        if self.config.mode == Mode::DryRun {
            let reason = format!(
                "dry-run: would {}; set mode = \"enforce\" to act",
                act::describe(action)
            );
            return Ok(record.settle(ActionOutcome::DryRun, &reason));
        }
        if !self.cap.take(id, now_ms()).await? {
            let reason = format!(
                "max_per_hour ({}) reached: waits for a person; `factorwatch responses approve \
                 {id}` acts now",
                self.config.max_per_hour
            );
            return Ok(record.settle(ActionOutcome::Held, &reason));
        }
        self.run(record, action, profile, alert).await
    }

    /// Makes the Okta call of `action`: the record of its effect, or of a permanent failure.
    async fn run(
        &self,
        record: ActionRecord,
        action: Action,
        profile: &Profile,
        alert: &Alert,
    ) -> Result<ActionRecord, DeliveryError> {
        let id = record.id.clone();
        let ssf = self.ssf.as_deref();
        let why = format!("factorwatch alert {}, {}", alert.rule.title, alert.id);
        match act::execute(&self.okta, ssf, action, profile, &why, &id).await {
            Ok(Effect::Changed { before, note }) => {
                let mut record = record.settle(ActionOutcome::Executed, &note);
                record.before = before;
                self.remember(&record);
                Ok(record)
            }
            Ok(Effect::Unchanged(note)) => Ok(record.settle(ActionOutcome::Skipped, &note)),
            Err(err) => self.failed(record, err),
        }
    }

    /// Notes an executed action in `recent`.
    fn remember(&self, record: &ActionRecord) {
        if let Some(user) = &record.target_id {
            self.recent.note(&record.action, user, &record.id, now_ms());
        }
    }

    /// A failed Okta call: `Err` (retry the alert) when it may pass, else a failed record.
    fn failed(
        &self,
        record: ActionRecord,
        err: OktaApiError,
    ) -> Result<ActionRecord, DeliveryError> {
        if err.is_transient() {
            return Err(DeliveryError::Transient(format!(
                "response {:?}: {err}",
                self.config.name
            )));
        }
        Ok(record.settle(ActionOutcome::Failed, &err.to_string()))
    }

    /// In a `[cluster]`: claims the action for this replica; false when another holds it.
    async fn claim(&self, id: &str) -> Result<bool, DeliveryError> {
        let Some(cluster) = &self.cluster else {
            return Ok(true);
        };
        let claim = Claim {
            key: format!("response-action:{id}"),
            batch_id: cap::owner_number(id),
        };
        let held = cluster
            .duplicates(std::slice::from_ref(&claim), CLAIM_WINDOW)
            .await
            .map_err(|err| {
                DeliveryError::Transient(format!(
                    "the cluster backend cannot claim the action ({err}); retrying"
                ))
            })?;
        Ok(held.is_empty())
    }

    /// The user factorwatch's API token acts as: never acted on.
    async fn own_id(&self) -> Result<Option<String>, DeliveryError> {
        let found = self
            .own_id
            .get_or_try_init(|| async {
                if self.okta.uses_oauth() {
                    return Ok(None);
                }
                self.okta.current_user().await.map(|user| Some(user.id))
            })
            .await;
        found.cloned().map_err(|err| {
            DeliveryError::Transient(format!(
                "cannot tell which admin the API token acts as ({err}); retrying"
            ))
        })
    }

    /// Fills the cap and `recent` from this response's records in the ledger (once per start).
    async fn seed(&self) -> Result<(), DeliveryError> {
        self.seeded
            .get_or_try_init(|| async {
                let records = self.records().await?;
                let own: Vec<&ActionRecord> = records
                    .iter()
                    .filter(|r| r.response == self.config.name)
                    .collect();
                let since = now_ms().saturating_sub(cap::HOUR.as_millis() as u64);
                let taken = own
                    .iter()
                    .filter(|r| r.outcome == ActionOutcome::Executed)
                    .filter_map(|r| Some((r.id.clone(), parse_rfc3339_ms(&r.at)? as u64)))
                    .filter(|(_, at)| *at > since);
                self.cap.seed(taken);
                self.recent.seed(own);
                Ok::<(), SpoolError>(())
            })
            .await
            .map(drop)
            .map_err(spool_error)
    }

    /// At most once an hour, removes this response's records older than the retention.
    async fn prune_hourly(&self) -> Result<(), DeliveryError> {
        use std::sync::atomic::Ordering;
        let now = now_ms();
        let last = self.pruned_at.load(Ordering::Relaxed);
        if now.saturating_sub(last) < cap::HOUR.as_millis() as u64 {
            return Ok(());
        }
        self.pruned_at.store(now, Ordering::Relaxed);
        let cutoff = now.saturating_sub(LEDGER_RETENTION_MS) as i64;
        let old: Vec<String> = self
            .records()
            .await
            .map_err(spool_error)?
            .into_iter()
            .filter(|r| r.response == self.config.name)
            .filter(|r| parse_rfc3339_ms(&r.at).is_some_and(|at| at < cutoff))
            .map(|r| r.id)
            .collect();
        if !old.is_empty() {
            tracing::info!(response = %self.config.name, removed = old.len(), "response ledger pruned");
            self.spool
                .remove_response_actions(old)
                .await
                .map_err(spool_error)?;
        }
        Ok(())
    }

    fn blank_record(&self, alert: &Alert, action: Action, id: &str) -> ActionRecord {
        ActionRecord {
            id: id.to_owned(),
            answers: alert.id.clone(),
            response: self.config.name.clone(),
            action: action.as_str().to_owned(),
            mode: self.config.mode.as_str().to_owned(),
            outcome: ActionOutcome::Failed,
            reason: String::new(),
            target_id: None,
            target_login: alert.targets.first().and_then(|t| t.alternate_id.clone()),
            before: None,
            call: None,
            at: String::new(),
            undone_at: None,
        }
    }

    /// Records `record` in the ledger and reports it to the sinks that took `alert`, in one
    /// transaction; logs it.
    async fn record(&self, alert: &Alert, record: &ActionRecord) -> Result<(), DeliveryError> {
        tracing::info!(
            response = %record.response,
            action = %record.action,
            outcome = record.outcome.as_str(),
            alert_id = %record.answers,
            target = record.target_login.as_deref().or(record.target_id.as_deref()).unwrap_or("-"),
            reason = %record.reason,
            "response"
        );
        metrics::counter!(
            crate::telemetry::metrics::RESPONSE_ACTIONS_TOTAL,
            "response" => record.response.clone(),
            "action" => record.action.clone(),
            "outcome" => record.outcome.as_str()
        )
        .increment(1);
        let json = serde_json::to_vec(record).expect("an action record serializes");
        let reports = self.reports(alert, record);
        self.spool
            .record_response_action(record.id.clone(), json, reports)
            .await
            .map_err(spool_error)
    }

    /// The outbox rows telling each sink that took `alert` what came of `record`.
    fn reports(&self, alert: &Alert, record: &ActionRecord) -> Vec<(String, OutboxRecord)> {
        let undone = if record.undone_at.is_some() {
            "undone"
        } else {
            ""
        };
        let report = Alert {
            id: action_id(&record.id, record.outcome.as_str(), undone),
            response: Some(record.clone()),
            suppressed: None,
            ..alert.clone()
        };
        let json = report.to_raw_json();
        let now = now_ms();
        self.sinks
            .iter()
            .filter(|sink| sink.accepts(alert))
            .filter(|sink| {
                !matches!(
                    sink.kind,
                    SinkKind::PagerDuty(_) | SinkKind::Alertmanager(_)
                )
            })
            .map(|sink| {
                let row = OutboxRecord::new(&report.id, now, json.clone());
                (sink.name.clone(), row)
            })
            .collect()
    }

    /// The ledger's record of the action `id`.
    async fn ledger_record(&self, id: &str) -> Result<Option<ActionRecord>, SpoolError> {
        let row = self.spool.response_action(id.to_owned()).await?;
        Ok(row.and_then(|bytes| decode(&bytes)))
    }

    /// Every action of this org's ledger (all responses), oldest first.
    pub async fn records(&self) -> Result<Vec<ActionRecord>, SpoolError> {
        ledger(&self.spool).await
    }

    /// `responses undo ID`: reverses an executed action of this response (the risk level it
    /// had, unsuspend) and records and reports that it was undone.
    pub async fn undo(&self, id: &str) -> Result<ActionRecord, ResponseError> {
        let mut record = self.owned_record(id).await?;
        let refuse = |why: String| Err(ResponseError::Refused(why));
        if record.outcome != ActionOutcome::Executed {
            return refuse(format!(
                "action {id} was {}, not executed: nothing to undo",
                record.outcome.as_str()
            ));
        }
        if let Some(at) = &record.undone_at {
            return refuse(format!("action {id} was already undone at {at}"));
        }
        let action = Action::from_name(&record.action)
            .ok_or_else(|| ResponseError::Refused(format!("unknown action {:?}", record.action)))?;
        if let Some(why) = act::irreversible(action) {
            return refuse(format!("{} cannot be undone: {why}", record.action));
        }
        let user = record.target_id.clone().unwrap_or_default();
        let note = act::undo(&self.okta, action, &user, record.before.as_deref()).await?;
        record.undone_at = Some(rfc3339(now_ms()));
        record.reason = format!("{}; undone: {note}", record.reason);
        self.recent.forget(&record.id);
        self.record_alone(&record).await?;
        Ok(record)
    }

    /// `responses approve ID`: a person lets a held action run now, past the cap. The guards
    /// run again against the user as Okta knows it now.
    pub async fn approve(&self, id: &str) -> Result<ActionRecord, ResponseError> {
        let held = self.owned_record(id).await?;
        if held.outcome != ActionOutcome::Held {
            return Err(ResponseError::Refused(format!(
                "action {id} was {}, not held: only a held action waits for approval",
                held.outcome.as_str()
            )));
        }
        let action = Action::from_name(&held.action)
            .ok_or_else(|| ResponseError::Refused(format!("unknown action {:?}", held.action)))?;
        let user = held.target_id.clone().unwrap_or_default();
        let profile = Profile::read(&self.okta, &user).await?;
        let own_id = self
            .own_id()
            .await
            .map_err(|e| ResponseError::Refused(e.to_string()))?;
        let mut record = held.clone();
        if let Some(reason) = guard::refusal(&self.config, &profile, own_id.as_deref()) {
            record = record.settle(ActionOutcome::Skipped, &reason);
        } else {
            let why = format!("factorwatch alert {}, approved by a person", held.answers);
            let ssf = self.ssf.as_deref();
            record = match act::execute(&self.okta, ssf, action, &profile, &why, id).await? {
                Effect::Changed { before, note } => {
                    let mut done = record.settle(
                        ActionOutcome::Executed,
                        &format!("approved by a person past max_per_hour; {note}"),
                    );
                    done.before = before;
                    self.remember(&done);
                    done
                }
                Effect::Unchanged(note) => record.settle(ActionOutcome::Skipped, &note),
            };
        }
        self.record_alone(&record).await?;
        Ok(record)
    }

    /// The record `id`, if it is this response's.
    async fn owned_record(&self, id: &str) -> Result<ActionRecord, ResponseError> {
        self.ledger_record(id)
            .await?
            .filter(|record| record.response == self.config.name)
            .ok_or_else(|| ResponseError::NotFound(id.to_owned()))
    }

    /// Records a change made outside the delivery loop (undo, approve), reported to no sink:
    /// the alert it answers has left the outbox; the ledger and the log have it.
    async fn record_alone(&self, record: &ActionRecord) -> Result<(), SpoolError> {
        tracing::info!(
            response = %record.response,
            action = %record.action,
            outcome = record.outcome.as_str(),
            undone = record.undone_at.is_some(),
            reason = %record.reason,
            "response changed by a person"
        );
        let json = serde_json::to_vec(record).expect("an action record serializes");
        self.spool
            .record_response_action(record.id.clone(), json, Vec::new())
            .await
    }
}

impl ActionRecord {
    /// The record with its outcome, reason and time set.
    fn settle(mut self, outcome: ActionOutcome, reason: &str) -> Self {
        self.outcome = outcome;
        self.reason = reason.to_owned();
        self.at = rfc3339(now_ms());
        self
    }
}

/// Every action record of a spool's ledger, oldest first.
pub async fn ledger(spool: &Spool) -> Result<Vec<ActionRecord>, SpoolError> {
    let mut records: Vec<ActionRecord> = spool
        .response_actions()
        .await?
        .into_iter()
        .filter_map(|(_, bytes)| decode(&bytes))
        .collect();
    records.sort_by(|a, b| a.at.cmp(&b.at).then_with(|| a.id.cmp(&b.id)));
    Ok(records)
}

/// A ledger row; one that does not read (a newer version's) is left out with a warning.
fn decode(bytes: &[u8]) -> Option<ActionRecord> {
    serde_json::from_slice(bytes)
        .inspect_err(|err| tracing::warn!(error = %err, "a response ledger row does not read"))
        .ok()
}

fn spool_error(err: SpoolError) -> DeliveryError {
    DeliveryError::Transient(format!("the response ledger: {err}"))
}

impl Sink for Responder {
    fn name(&self) -> &str {
        &self.outbox
    }

    fn publish<'a>(&'a self, delivery: Delivery<'a>) -> PublishFuture<'a> {
        Box::pin(self.respond(delivery.alert))
    }
}
