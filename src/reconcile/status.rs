//! What the poller reports of itself: `/readyz` shows it per org, beside the metrics.

use std::sync::Mutex;

use serde::Serialize;

/// The poller's state, shared with `/readyz`.
#[derive(Debug, Default)]
pub struct PollerStatus {
    state: Mutex<PollerView>,
}

/// A copy of the poller's state, as `/readyz` shows it.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct PollerView {
    /// `polling`; `standby` (another replica holds the lease); `failing` (the last poll failed).
    pub state: &'static str,
    /// When the last poll succeeded (RFC 3339).
    pub last_success: Option<String>,
    /// How far behind now the last poll was: 0 once it caught up (a page that was not full),
    /// else the age of the newest event it read.
    pub lag_seconds: Option<u64>,
    /// Events read since the start.
    pub events_read: u64,
    /// The last poll's error, with what to do; cleared by a successful poll.
    pub last_error: Option<String>,
    /// In a cluster, the replica polling this org when it is not this one.
    pub polled_by: Option<String>,
}

impl PollerStatus {
    /// A copy for `/readyz`.
    pub fn view(&self) -> PollerView {
        self.lock().clone()
    }

    /// A page was read and stored: `events` of them, the newest published `lag_seconds` before
    /// now.
    pub fn polled(&self, events: u64, lag_seconds: Option<u64>) {
        let mut view = self.lock();
        view.state = "polling";
        view.last_success = Some(crate::clock::rfc3339(crate::clock::now_ms()));
        view.events_read += events;
        if lag_seconds.is_some() {
            view.lag_seconds = lag_seconds;
        }
        view.last_error = None;
        view.polled_by = None;
    }

    /// The last poll failed with `error` (its message says what to do).
    pub fn failed(&self, error: String) {
        let mut view = self.lock();
        view.state = "failing";
        view.last_error = Some(error);
    }

    /// Another replica, `holder`, polls this org.
    pub fn standby(&self, holder: String) {
        let mut view = self.lock();
        view.state = "standby";
        view.polled_by = Some(holder);
        view.last_error = None;
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, PollerView> {
        // A panic while holding this lock leaves a consistent view (every write is one field
        // assignment), so a poisoned lock is still read.
        self.state
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}
