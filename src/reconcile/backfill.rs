//! `factorwatch backfill`: one pass over a window of an org's System Log through detection, for
//! the history a hook missed before reconciliation was on (or while it was off).
//!
//! The running service does it, since only it may open the spool: each page read becomes a batch
//! in the spool like a hook delivery, marked as coming from the System Log and named by the
//! backfill's delivery id. De-duplication on the event uuid drops what the hook or an earlier
//! backfill already brought, so a backfill can run any number of times. The service watches its
//! batches through detection ([`Tallies`]) to report how many events were new, how many already
//! seen, and how many alerts they raised.

use std::sync::Arc;
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};
use serde_json::value::RawValue;
use tokio::sync::{Notify, mpsc};

use crate::clock::{now_ms, parse_rfc3339_ms, rfc3339};
use crate::okta::Envelope;
use crate::okta_api::{LogPage, LogsRequest, OktaApiError, OktaClient};
use crate::spool::{Spool, SpoolError};
use crate::telemetry::tally::{Tallies, Tally, Watch};

use super::{FilterSource, ReconcileConfig};

/// How often a backfill waiting for detection reports where detection stands.
const PROGRESS_INTERVAL: Duration = Duration::from_secs(1);
/// How long a backfill waits for room when the spool's backlog is full.
const FULL_BACKLOG_WAIT: Duration = Duration::from_secs(1);

/// The pages of a bounded window of the System Log, read one after the other.
pub struct WindowReader {
    client: OktaClient,
    next: Option<LogsRequest>,
}

impl WindowReader {
    /// Reads `since_ms` to `until_ms` (Unix ms) of `client`'s org, `limit` events a page, only
    /// the events `filter` (a SCIM filter) selects.
    pub fn new(client: OktaClient, window: Window, filter: Option<String>, limit: u32) -> Self {
        let first = LogsRequest::Window {
            since: rfc3339(window.since_ms),
            until: rfc3339(window.until_ms),
            filter,
            limit,
        };
        Self {
            client,
            next: Some(first),
        }
    }

    /// The next page; `None` once the window is read (Okta's last page of a bounded query has no
    /// `next` link).
    pub async fn next_page(&mut self) -> Option<Result<LogPage, OktaApiError>> {
        let request = self.next.take()?;
        let page = match self.client.list_logs(&request).await {
            Ok(page) => page,
            Err(err) => return Some(Err(err)),
        };
        if !page.events.is_empty() {
            self.next = page.next.clone().map(LogsRequest::Next);
        }
        Some(Ok(page))
    }
}

/// A window of the System Log, in Unix ms.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Window {
    /// Its start (inclusive).
    pub since_ms: u64,
    /// Its end (exclusive).
    pub until_ms: u64,
}

impl Window {
    /// The window from `since` to `until` (RFC 3339; `None`: now), ending no later than `grace`
    /// ago: an event younger than that may still come from the hook, which then alerts it as
    /// `event_hook` (the poller leaves it the same head start).
    pub fn new(since: &str, until: Option<&str>, grace: Duration) -> Result<Self, BackfillError> {
        let parse = |text: &str| {
            parse_rfc3339_ms(text)
                .map(|ms| ms.max(0) as u64)
                .ok_or_else(|| BackfillError::Window(format!("{text:?} is not an RFC 3339 time")))
        };
        let latest = now_ms().saturating_sub(grace.as_millis() as u64);
        let since_ms = parse(since)?;
        let until_ms = until.map(parse).transpose()?.unwrap_or(latest).min(latest);
        if since_ms >= until_ms {
            return Err(BackfillError::Window(format!(
                "the window is empty: since {} is not before until {} (until is at most now \
                 minus the org's [okta.reconcile] grace, {})",
                rfc3339(since_ms),
                rfc3339(until_ms),
                humantime::format_duration(grace)
            )));
        }
        Ok(Self { since_ms, until_ms })
    }
}

/// Why a backfill stopped.
#[derive(Debug, thiserror::Error)]
pub enum BackfillError {
    /// The window asked for cannot be read.
    #[error("{0}")]
    Window(String),
    /// Okta's API refused or failed.
    #[error(
        "{error}; the {pages} pages read before are stored and will be detected: run the same \
         backfill again to finish (what was already seen is not alerted twice)"
    )]
    Okta {
        /// What failed.
        error: OktaApiError,
        /// Pages stored before.
        pages: u64,
    },
    /// The spool could not store a page.
    #[error("cannot store a page: {0}")]
    Spool(#[from] SpoolError),
    /// Whoever asked stopped listening (the command was interrupted).
    #[error("the backfill was abandoned by its caller")]
    Abandoned,
}

/// What a backfill reports as it goes, one JSON object per line of the admin API's answer.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum Progress {
    /// The window and filter read.
    Started {
        /// RFC 3339 start.
        since: String,
        /// RFC 3339 end (at most now minus the grace).
        until: String,
        /// The SCIM filter asked for (the event types the rules can match).
        filter: Option<String>,
    },
    /// A page was read and stored.
    Read {
        /// Pages read so far.
        pages: u64,
        /// Events read so far.
        events: u64,
        /// The `published` of the last event read: how far into the window the backfill is.
        reached: Option<String>,
    },
    /// The spool's backlog is full: the backfill waits for detection and delivery to make
    /// room (said once each time it starts waiting).
    Waiting {
        /// Why, and what makes it go on.
        reason: String,
    },
    /// Everything is read; detection is going through it.
    Detecting {
        /// Pages stored.
        pages: u64,
        /// What detection made of them so far.
        detected: Tally,
    },
    /// Done.
    Done(Summary),
    /// Stopped; what to do is in the message.
    Failed {
        /// Why, and what to do.
        error: String,
    },
}

/// What a backfill did.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Summary {
    /// Pages read.
    pub pages: u64,
    /// Events read.
    pub events: u64,
    /// Of them, detected for the first time.
    pub new: u64,
    /// Of them, dropped as already seen (brought by the hook, the poller or an earlier backfill).
    pub already_seen: u64,
    /// Alerts raised (and queued for every sink whose filter takes them).
    pub alerts: u64,
    /// How long it took, reading and detection.
    pub seconds: f64,
}

/// What an org needs to backfill (the admin API keeps one per org with `[okta.api]`).
#[derive(Clone)]
pub struct Backfill {
    /// The org's API client.
    pub client: OktaClient,
    /// The org's URL (named in the stored batches).
    pub org_url: String,
    /// The org's spool.
    pub spool: Arc<Spool>,
    /// Woken after each stored page.
    pub detector: Arc<Notify>,
    /// Where the org's detector counts watched deliveries.
    pub tallies: Arc<Tallies>,
    /// The SCIM filter of the rules in force.
    pub filter: FilterSource,
    /// `[okta.reconcile]`: its `grace` ends the window, its `page_size` sizes the pages.
    pub config: ReconcileConfig,
}

impl Backfill {
    /// Reads `window`, stores each page for detection, waits until detection went through them
    /// all, and reports on `progress` as it goes. Stops when `progress` is closed.
    pub async fn run(
        self,
        window: Window,
        progress: &mpsc::Sender<Progress>,
    ) -> Result<Summary, BackfillError> {
        let started = Instant::now();
        let filter = (self.filter)();
        let watch = self
            .tallies
            .watch(&format!("backfill-{}", uuid::Uuid::new_v4()));
        send(
            progress,
            Progress::Started {
                since: rfc3339(window.since_ms),
                until: rfc3339(window.until_ms),
                filter: filter.clone(),
            },
        )
        .await?;
        let reader = WindowReader::new(self.client.clone(), window, filter, self.config.page_size);
        let read = self.read_and_store(reader, &watch, progress).await?;
        let detected = self.await_detection(&watch, read.pages, progress).await?;
        Ok(Summary {
            pages: read.pages,
            events: read.events,
            new: detected.new,
            already_seen: detected.already_seen,
            alerts: detected.alerts,
            seconds: started.elapsed().as_secs_f64(),
        })
    }

    /// Reads every page of `reader` and stores those with events, as deliveries named by
    /// `watch`; answers how many pages were stored and events read.
    async fn read_and_store(
        &self,
        mut reader: WindowReader,
        watch: &Watch,
        progress: &mpsc::Sender<Progress>,
    ) -> Result<Read, BackfillError> {
        let mut read = Read::default();
        while let Some(page) = reader.next_page().await {
            let page = page.map_err(|error| BackfillError::Okta {
                error,
                pages: read.pages,
            })?;
            if page.events.is_empty() {
                continue;
            }
            self.store(&page.events, watch.delivery_id(), progress)
                .await?;
            read.pages += 1;
            read.events += page.events.len() as u64;
            let reached = last_published(&page.events);
            let (pages, events) = (read.pages, read.events);
            send(
                progress,
                Progress::Read {
                    pages,
                    events,
                    reached,
                },
            )
            .await?;
        }
        Ok(read)
    }

    /// Stores one page as a batch, waiting for room while the backlog is full (detection and
    /// delivery make room as they go).
    async fn store(
        &self,
        events: &[Box<RawValue>],
        delivery_id: &str,
        progress: &mpsc::Sender<Progress>,
    ) -> Result<(), BackfillError> {
        let events: Vec<&RawValue> = events.iter().map(AsRef::as_ref).collect();
        let body = Envelope::system_log_body(&self.org_url, &events, Some(delivery_id));
        let mut said = false;
        loop {
            match self.spool.append_batch(now_ms(), &body).await {
                Ok(_) => break,
                Err(err @ SpoolError::Full { .. }) => {
                    if !said {
                        let reason = format!(
                            "{err}; waiting for detection and delivery to make room (a sink \
                             that is down holds its alerts: see /readyz)"
                        );
                        send(progress, Progress::Waiting { reason }).await?;
                        said = true;
                    }
                    tokio::time::sleep(FULL_BACKLOG_WAIT).await;
                }
                Err(err) => return Err(err.into()),
            }
        }
        self.detector.notify_one();
        Ok(())
    }

    /// Waits until detection has gone through the `pages` stored, reporting every second.
    async fn await_detection(
        &self,
        watch: &Watch,
        pages: u64,
        progress: &mpsc::Sender<Progress>,
    ) -> Result<Tally, BackfillError> {
        let mut next_report = Instant::now();
        loop {
            let detected = watch.tally();
            if detected.batches >= pages {
                return Ok(detected);
            }
            if Instant::now() >= next_report {
                send(progress, Progress::Detecting { pages, detected }).await?;
                next_report += PROGRESS_INTERVAL;
            }
            if progress.is_closed() {
                return Err(BackfillError::Abandoned);
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
}

/// Pages stored and events read.
#[derive(Debug, Default)]
struct Read {
    pages: u64,
    events: u64,
}

/// Sends `progress`, or says the caller went away.
async fn send(progress: &mpsc::Sender<Progress>, update: Progress) -> Result<(), BackfillError> {
    progress
        .send(update)
        .await
        .map_err(|_| BackfillError::Abandoned)
}

/// The `published` of the last event of a page.
fn last_published(events: &[Box<RawValue>]) -> Option<String> {
    #[derive(Deserialize)]
    struct Published {
        published: Option<String>,
    }
    let last = events.last()?;
    serde_json::from_str::<Published>(last.get())
        .ok()?
        .published
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_window_ends_at_most_a_grace_ago_and_must_not_be_empty() {
        let grace = Duration::from_secs(120);
        let window = Window::new("2026-01-01T00:00:00Z", None, grace).unwrap();
        assert_eq!(window.since_ms, 1_767_225_600_000);
        let latest = now_ms() - 120_000;
        assert!(window.until_ms <= latest && window.until_ms + 5_000 > latest);
        let future = Window::new("2026-01-01T00:00:00Z", Some("2999-01-01T00:00:00Z"), grace);
        assert!(future.unwrap().until_ms <= latest + 5_000);
        let bounded =
            Window::new("2026-01-01T00:00:00Z", Some("2026-01-02T00:00:00Z"), grace).unwrap();
        assert_eq!(bounded.until_ms - bounded.since_ms, 86_400_000);
        let empty = Window::new("2026-01-02T00:00:00Z", Some("2026-01-01T00:00:00Z"), grace);
        assert!(
            empty
                .unwrap_err()
                .to_string()
                .contains("the window is empty")
        );
        let garbage = Window::new("yesterday", None, grace);
        assert!(
            garbage
                .unwrap_err()
                .to_string()
                .contains("not an RFC 3339 time")
        );
    }

    #[test]
    fn progress_lines_are_tagged_json() {
        let line = serde_json::to_string(&Progress::Read {
            pages: 2,
            events: 1500,
            reached: Some("2026-12-04T10:00:00.000Z".into()),
        })
        .unwrap();
        assert_eq!(
            line,
            r#"{"type":"read","pages":2,"events":1500,"reached":"2026-12-04T10:00:00.000Z"}"#
        );
        assert_eq!(serde_json::from_str::<Progress>(&line).unwrap(), {
            Progress::Read {
                pages: 2,
                events: 1500,
                reached: Some("2026-12-04T10:00:00.000Z".into()),
            }
        });
    }
}
