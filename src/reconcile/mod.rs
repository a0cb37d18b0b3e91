//! Reconciliation with the System Log: one poller per org reads Okta's `/api/v1/logs` in polling
//! mode beside the event hook, so that nothing the hook missed (a dropped delivery, a paused hook,
//! the daily cap) or can never deliver (`system.mfa.factor.deactivate`, `event_hook.*`) escapes
//! detection.
//!
//! Each page becomes batches in the org's spool, like a hook delivery, marked as coming from the
//! System Log, and is stored in one transaction with the `next` link after it (the cursor): a
//! crash repeats or skips nothing. Events a hook could deliver wait out `grace` first, so that an
//! event the hook did deliver is claimed by the hook's batch and the poller's copy is dropped as a
//! duplicate (de-duplication on the event uuid, locally and in the cluster); one that is still new
//! afterwards alerts as `system_log` and counts as recovered. In a `[cluster]` one replica polls
//! an org at a time, under a lease that carries the cursor ([`crate::cluster::Lease`]).
//!
//! The poller also watches the hook itself ([`silence`]): hook-eligible events in the System Log
//! that the hook, silent for `silence_after`, never delivered raise one alert per episode, through
//! a `factorwatch.hook.silent` event stored like a page and run through the rules.

pub mod backfill;
mod config;
mod page;
pub mod silence;
mod status;

use std::collections::VecDeque;
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;

use crate::cluster::{Lease, SharedState};
use crate::okta::Envelope;
use crate::okta_api::{LogsRequest, OktaApiError, OktaClient};
use crate::spool::{Spool, SpoolError};
use crate::telemetry::metrics::{
    OKTA_HOOK_LAST_DELIVERY_TIMESTAMP_SECONDS, OKTA_HOOK_SILENT, RECONCILE_EVENTS_READ_TOTAL,
    RECONCILE_LAG_SECONDS, RECONCILE_LAST_SUCCESS_TIMESTAMP_SECONDS, RECONCILE_LEASE_HELD,
};
pub use config::ReconcileConfig;
use silence::{Episode, Silence};
pub use status::{HookView, PollerStatus, PollerView};

/// The start of the event types factorwatch makes itself (such as
/// [`silence::HOOK_SILENT_EVENT_TYPE`]): never in Okta's System Log, so never asked for.
pub const OWN_EVENT_PREFIX: &str = "factorwatch.";

/// The event types read whatever the rules say: a hook cannot report changes to hooks, so the
/// System Log is the only place factorwatch learns that its own hook was deactivated or changed.
pub const ALWAYS_READ_PREFIX: &str = "event_hook.";

/// The current System Log filter of an org (its rules change on SIGHUP); `None` reads every event.
pub type FilterSource = Arc<dyn Fn() -> Option<String> + Send + Sync>;

/// Why one poll did not complete.
#[derive(Debug, thiserror::Error)]
enum PollError {
    #[error(transparent)]
    Okta(#[from] OktaApiError),
    #[error("cannot store the page: {0}")]
    Spool(#[from] SpoolError),
    #[error(
        "Okta's answer had no next link; polling mode always returns one (is org_url an Okta org?)"
    )]
    NoNextLink,
}

/// One org's System Log poller.
pub struct Poller {
    /// The `[[okta.orgs]]` name; `None` for the top-level org.
    pub org: Option<Arc<str>>,
    /// The org's API client.
    pub client: OktaClient,
    /// The org's URL, as `[okta.api] org_url` gives it (named in the stored batches).
    pub org_url: String,
    /// `[okta.reconcile]`.
    pub config: ReconcileConfig,
    /// The org's spool.
    pub spool: Arc<Spool>,
    /// Woken after a page was stored, like intake wakes it.
    pub detector: Arc<Notify>,
    /// What to ask Okta for.
    pub filter: FilterSource,
    /// In cluster mode, where the lease and shared cursor live.
    pub shared: Option<Arc<SharedState>>,
    /// What `/readyz` shows.
    pub status: Arc<PollerStatus>,
}

/// Pages whose held events are not detected yet, oldest first: when each becomes due, and the
/// cursor before it (see [`cursor_to_share`]).
type Holds = VecDeque<(u64, Option<String>)>;

/// What the poller carries from one turn to the next.
struct Memory {
    holds: Holds,
    silence: Silence,
}

/// The hook's last delivery as one turn found it.
enum Delivered {
    /// When it was (Unix ms; `None`: never), to this replica or, in a cluster, to any.
    Known(Option<u64>),
    /// The cluster's backend could not say what the other replicas received.
    Unknown,
}

/// A page read and stored: what comes next, and its hook-eligible events (`published`, uuid).
struct Polled {
    turn: Turn,
    eligible: Vec<(u64, String)>,
}

/// What one turn of the loop did, which decides how long it waits before the next.
enum Turn {
    /// A full page: more is waiting, poll again at once.
    More,
    /// Caught up, or another replica polls: wait an interval.
    Idle,
    /// Failed: wait this long.
    Retry(Duration),
}

impl Poller {
    /// Polls until `shutdown`.
    pub async fn run(self, shutdown: CancellationToken) {
        tracing::info!(
            org_url = %self.org_url,
            interval = %humantime::format_duration(self.config.interval),
            "System Log reconciliation started"
        );
        let mut memory = Memory {
            holds: Holds::new(),
            silence: Silence::new(self.config.silence_after, crate::clock::now_ms()),
        };
        loop {
            let wait = match self.turn(&mut memory).await {
                Turn::More => Duration::ZERO,
                Turn::Idle => self.config.interval,
                Turn::Retry(wait) => wait,
            };
            if !crate::clock::sleep_unless_cancelled(wait, &shutdown).await {
                return;
            }
        }
    }

    /// One poll: the held events that are due (stored by this replica, whoever polls now), the
    /// hook's last delivery (shared, in a cluster), the lease (in a cluster), one page, then the
    /// hook's silence.
    async fn turn(&self, memory: &mut Memory) -> Turn {
        match self.spool.release_held(crate::clock::now_ms()).await {
            Ok(0) => {}
            Ok(_) => self.detector.notify_one(),
            Err(err) => return self.failed(err.into()),
        }
        let delivered = self.last_delivery().await;
        let shared_cursor = match self.lease(None).await {
            Ok(Some(cursor)) => cursor,
            Ok(None) => {
                self.not_judging(&delivered);
                return Turn::Idle;
            }
            Err(wait) => return Turn::Retry(wait),
        };
        match self.poll(shared_cursor, &mut memory.holds).await {
            Ok(polled) => {
                match delivered {
                    Delivered::Known(at) if !self.config.silence_after.is_zero() => {
                        let silence = &mut memory.silence;
                        self.judge_silence(silence, at, polled.eligible).await;
                    }
                    _ => self.not_judging(&delivered),
                }
                polled.turn
            }
            Err(err) => self.failed(err),
        }
    }

    /// The hook's last delivery: to this replica's spool, or in a cluster to any replica (this
    /// one's shared first). Unknown when the cluster's backend cannot say (logged): judging on
    /// this replica's deliveries alone would find every fleet silent.
    async fn last_delivery(&self) -> Delivered {
        let local = self.spool.last_delivery_ms();
        let delivered = match &self.shared {
            None => Delivered::Known(local),
            Some(shared) => match shared.share_last_delivery(local).await {
                Ok(fleet) => Delivered::Known(fleet),
                Err(err) => {
                    tracing::warn!(
                        error = %err.chain(),
                        "cannot share the event hook's last delivery in the cluster backend; its silence is not judged until it answers"
                    );
                    Delivered::Unknown
                }
            },
        };
        if let Some(at) = delivered.known_or(local) {
            metrics::gauge!(OKTA_HOOK_LAST_DELIVERY_TIMESTAMP_SECONDS, self.labels())
                .set(at as f64 / 1000.0);
        }
        delivered
    }

    /// This replica does not judge the hook's silence now (another one polls, or the fleet's
    /// deliveries are unknown); `/readyz` shows the last delivery it knows of.
    fn not_judging(&self, delivered: &Delivered) {
        metrics::gauge!(OKTA_HOOK_SILENT, self.labels()).set(0.0);
        let at = delivered.known_or(self.spool.last_delivery_ms());
        self.status.delivered(at, false);
    }

    /// Takes in the last delivery and the hook-eligible events of the page just stored; raises
    /// the alert of a silence that started.
    async fn judge_silence(
        &self,
        silence: &mut Silence,
        delivered: Option<u64>,
        read: Vec<(u64, String)>,
    ) {
        let now = crate::clock::now_ms();
        silence.delivered(delivered);
        silence.read(read);
        let check = silence.check(now);
        self.status.delivered(delivered, true);
        let was_silent = self.status.judged(check.episode.as_ref());
        let silent = f64::from(u8::from(check.episode.is_some()));
        metrics::gauge!(OKTA_HOOK_SILENT, self.labels()).set(silent);
        match (&check.episode, was_silent) {
            (None, true) => {
                tracing::info!(org_url = %self.org_url, "the event hook delivers again")
            }
            (Some(episode), _) if check.needs_alert => match self.raise(episode, now).await {
                Ok(()) => silence.alerted(episode),
                Err(err) => {
                    tracing::error!(error = %err, "cannot store the event hook's silence alert; tried again at the next poll")
                }
            },
            _ => {}
        }
    }

    /// Stores the event of a silence that started, for the detector and its rule.
    async fn raise(&self, episode: &Episode, now: u64) -> Result<(), SpoolError> {
        tracing::warn!(
            org_url = %self.org_url,
            missed_events = episode.missed,
            last_delivery = episode.last_delivery_ms.map(crate::clock::rfc3339).as_deref().unwrap_or("none on record"),
            silence_after = %humantime::format_duration(self.config.silence_after),
            "the event hook is silent: the System Log shows events it should have delivered"
        );
        let event = episode.event(&self.org_url, self.config.silence_after, now);
        let raw = serde_json::value::to_raw_value(&event).expect("a JSON value serializes");
        let body = Envelope::system_log_body(&self.org_url, &[&*raw], None);
        self.spool.append_batch(now, &body).await?;
        self.detector.notify_one();
        Ok(())
    }

    /// Takes or renews the lease; `Ok(Some(cursor))` to poll from `cursor` (the shared one, if
    /// any), `Ok(None)` when another replica polls. Standalone, always polls.
    async fn lease(&self, cursor: Option<&str>) -> Result<Option<Option<String>>, Duration> {
        let labels = self.labels();
        let Some(shared) = &self.shared else {
            metrics::gauge!(RECONCILE_LEASE_HELD, labels).set(1.0);
            return Ok(Some(None));
        };
        match shared.hold_poller_lease(self.config.lease, cursor).await {
            Ok(Lease::Held { cursor }) => {
                metrics::gauge!(RECONCILE_LEASE_HELD, labels).set(1.0);
                Ok(Some(cursor))
            }
            Ok(Lease::Elsewhere { holder }) => {
                metrics::gauge!(RECONCILE_LEASE_HELD, labels).set(0.0);
                self.status.standby(holder);
                Ok(None)
            }
            Err(err) => {
                metrics::gauge!(RECONCILE_LEASE_HELD, labels).set(0.0);
                let message = format!(
                    "cannot take the polling lease in the cluster backend: {}; no replica polls until it answers",
                    err.chain()
                );
                tracing::warn!(error = %message, "System Log poll skipped");
                self.status.failed(message);
                Err(self.config.interval)
            }
        }
    }

    /// Reads and stores one page from where polling stands (`shared_cursor`, else the cursor
    /// stored here).
    async fn poll(
        &self,
        shared_cursor: Option<String>,
        holds: &mut Holds,
    ) -> Result<Polled, PollError> {
        let now = crate::clock::now_ms();
        let cursor_before = match &shared_cursor {
            Some(cursor) => Some(cursor.clone()),
            None => self.spool.log_cursor().await?,
        };
        let request = self.request(cursor_before.clone());
        let page = self.client.list_logs(&request).await?;
        let next = page.next.ok_or(PollError::NoNextLink)?;
        let read = page.events.len();
        let grace_ms = self.config.grace.as_millis() as u64;
        let split = page::split(&self.org_url, &page.events, next.clone(), now, grace_ms);
        let held = split.commit.held.is_some();
        self.spool.append_log_page(split.commit).await?;
        self.detector.notify_one();
        if held {
            holds.push_back((now + grace_ms, cursor_before));
        }
        let eligible = split.eligible;
        if self.shared.is_some() {
            let shared = cursor_to_share(holds, &next);
            if self.lease(shared.as_deref()).await.ok().flatten().is_none() {
                return Ok(Polled {
                    turn: Turn::Idle,
                    eligible,
                });
            }
        }
        let full = read >= self.config.page_size as usize;
        let lag_ms = match full {
            true => split
                .newest_published_ms
                .map(|at| (now as i64 - at).max(0) as u64),
            false => Some(0),
        };
        self.record_success(read as u64, lag_ms.map(|ms| ms / 1000));
        Ok(Polled {
            turn: if full { Turn::More } else { Turn::Idle },
            eligible,
        })
    }

    /// The request that continues from `cursor` (the `next` link of the last page stored here
    /// or shared), with the filter of the rules in force; the first poll of all starts
    /// `lookback` ago.
    fn request(&self, cursor: Option<String>) -> LogsRequest {
        let filter = (self.filter)();
        match cursor {
            Some(link) => LogsRequest::Next(page::with_filter(&link, filter.as_deref())),
            None => {
                let since_ms =
                    crate::clock::now_ms().saturating_sub(self.config.lookback.as_millis() as u64);
                LogsRequest::Poll {
                    since: crate::clock::rfc3339(since_ms),
                    filter,
                    limit: self.config.page_size,
                }
            }
        }
    }

    /// The labels of this org's metrics.
    fn labels(&self) -> Vec<metrics::Label> {
        crate::telemetry::org_labels(self.org.as_deref(), &[])
    }

    fn record_success(&self, events: u64, lag_seconds: Option<u64>) {
        let labels = self.labels();
        metrics::counter!(RECONCILE_EVENTS_READ_TOTAL, labels.clone()).increment(events);
        metrics::gauge!(RECONCILE_LAST_SUCCESS_TIMESTAMP_SECONDS, labels.clone())
            .set(crate::clock::now_ms() as f64 / 1000.0);
        if let Some(lag) = lag_seconds {
            metrics::gauge!(RECONCILE_LAG_SECONDS, labels).set(lag as f64);
        }
        self.status.polled(events, lag_seconds);
    }

    /// Reports a failed poll and says how long to wait before the next.
    fn failed(&self, err: PollError) -> Turn {
        let message = err.to_string();
        tracing::error!(org_url = %self.org_url, error = %message, "System Log poll failed");
        self.status.failed(message);
        let wait = match &err {
            PollError::Okta(OktaApiError::RateLimited { reset_in }) => *reset_in,
            PollError::Spool(SpoolError::Full { .. }) => Duration::from_secs(5),
            _ => self.config.interval,
        };
        Turn::Retry(wait)
    }
}

impl Delivered {
    /// The delivery known, else `fallback` (this replica's own).
    fn known_or(&self, fallback: Option<u64>) -> Option<u64> {
        match self {
            Self::Known(at) => at.or(fallback),
            Self::Unknown => fallback,
        }
    }
}

/// The cursor other replicas may go on from, once the page ending at `latest` is durable here.
/// Shared only after the page is stored: a cursor shared late repeats events (dropped as
/// duplicates), one shared early would skip them. And not past a page whose held events this
/// replica has not detected yet: were it to stop now, they would wait in its spool until it came
/// back, so the replica taking over reads that page again (what this one did detect is claimed,
/// and dropped there as duplicates). `None` keeps the shared cursor.
fn cursor_to_share(holds: &mut Holds, latest: &str) -> Option<String> {
    let now = crate::clock::now_ms();
    while holds.front().is_some_and(|(due, _)| *due <= now) {
        holds.pop_front();
    }
    match holds.front() {
        Some((_, before)) => before.clone(),
        None => Some(latest.to_owned()),
    }
}
