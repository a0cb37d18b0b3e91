//! What the poller reports of itself: `/readyz` shows it per org, beside the metrics.

use std::sync::Mutex;

use serde::Serialize;

use super::silence::Episode;

/// The poller's state, shared with `/readyz`.
#[derive(Debug, Default)]
pub struct PollerStatus {
    state: Mutex<PollerView>,
    hook: Mutex<HookView>,
}

/// The event hook as the poller sees it, as `/readyz` shows it.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct HookView {
    /// When the hook last delivered a batch (RFC 3339; in a cluster, to any replica).
    pub last_delivery: Option<String>,
    /// Whether the hook is silent; `null` until the first poll, on a replica that does not poll
    /// (another one judges), while a cluster's backend cannot say what the fleet received, and
    /// with `silence_after = "0s"`.
    pub silent: Option<bool>,
    /// While silent: events it should have delivered and did not.
    pub missed_events: Option<u64>,
    /// While silent: the `published` of the first of those (RFC 3339).
    pub first_missed: Option<String>,
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

    /// A copy of the hook's view for `/readyz`.
    pub fn hook_view(&self) -> HookView {
        lock(&self.hook).clone()
    }

    /// The hook's last delivery is `at_ms`; `judged`: whether this replica judges its silence
    /// (it polls, and knows the fleet's deliveries).
    pub fn delivered(&self, at_ms: Option<u64>, judged: bool) {
        let mut view = lock(&self.hook);
        view.last_delivery = at_ms.map(crate::clock::rfc3339);
        if !judged {
            *view = HookView {
                last_delivery: view.last_delivery.take(),
                ..HookView::default()
            };
        }
    }

    /// The silence check found `episode` (`None`: the hook delivers); answers whether the hook
    /// was silent before.
    pub fn judged(&self, episode: Option<&Episode>) -> bool {
        let mut view = lock(&self.hook);
        let was_silent = view.silent == Some(true);
        view.silent = Some(episode.is_some());
        view.missed_events = episode.map(|episode| episode.missed);
        view.first_missed = episode.map(|episode| crate::clock::rfc3339(episode.first_missed_ms));
        was_silent
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, PollerView> {
        lock(&self.state)
    }
}

fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    // A panic while holding this lock leaves a consistent view (every write is one field
    // assignment), so a poisoned lock is still read.
    mutex
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}
