//! Staying inside Okta's rate limit: the share of the current window this client may use, and
//! the waits between tries.

use std::sync::Mutex;
use std::time::Duration;

use tokio::time::Instant;

use super::headers::RateLimitHeaders;
use super::transport::Endpoint;

/// One budget per rate-limit bucket this client calls: Okta counts each endpoint family
/// apart, so a busy poller must not hold back the hook's registration, nor the reverse.
#[derive(Debug)]
pub(super) struct Budgets {
    logs: RateBudget,
    event_hooks: RateBudget,
    users: RateBudget,
    roles: RateBudget,
    /// A user's lifecycle, sessions and risk (the responder's writes).
    user_actions: RateBudget,
    security_events_providers: RateBudget,
    security_events: RateBudget,
}

impl Budgets {
    /// `share` of each bucket's window.
    pub(super) fn new(share: f64) -> Self {
        Self {
            logs: RateBudget::new(share),
            event_hooks: RateBudget::new(share),
            users: RateBudget::new(share),
            roles: RateBudget::new(share),
            user_actions: RateBudget::new(share),
            security_events_providers: RateBudget::new(share),
            security_events: RateBudget::new(share),
        }
    }

    /// The budget of `endpoint`'s bucket (the token endpoint is not budgeted: one call per
    /// token's lifetime).
    pub(super) fn of(&self, endpoint: Endpoint) -> Option<&RateBudget> {
        match endpoint {
            Endpoint::Token => None,
            Endpoint::Logs => Some(&self.logs),
            Endpoint::EventHooks => Some(&self.event_hooks),
            Endpoint::Users => Some(&self.users),
            Endpoint::Roles => Some(&self.roles),
            Endpoint::UserLifecycle | Endpoint::UserSessions | Endpoint::UserRisk => {
                Some(&self.user_actions)
            }
            Endpoint::SecurityEventsProviders => Some(&self.security_events_providers),
            Endpoint::SecurityEvents => Some(&self.security_events),
        }
    }
}

/// The longest backoff between two tries.
const MAX_BACKOFF: Duration = Duration::from_secs(60);

/// This client's use of one rate-limit bucket: what the last answers said about the current
/// window, and the requests on their way.
#[derive(Debug)]
pub(super) struct RateBudget {
    /// `rate_limit_share`: the part of each window's limit this client uses.
    share: f64,
    state: Mutex<BudgetState>,
}

#[derive(Debug, Default)]
struct BudgetState {
    window: Option<Window>,
    /// Requests sent (or about to be) and not answered yet: the window's numbers do not count
    /// them, whatever order the answers come in.
    in_flight: u32,
}

/// The current window, while it lasts.
#[derive(Debug, Clone, Copy)]
struct Window {
    /// `X-Rate-Limit-Reset`, which tells one window from the next.
    reset: u64,
    limit: u32,
    /// The most requests any answer of this window reported used (`limit - remaining`).
    used: u32,
    /// When it resets, on the local monotonic clock (from the server's `Date`).
    resets_at: Instant,
}

/// A request counted against the budget while it is on its way. Dropping it (answered, failed
/// or abandoned) stops counting it.
#[derive(Debug)]
pub(super) struct InFlight<'a>(&'a RateBudget);

impl InFlight<'_> {
    /// Takes in what the answer, received at `now`, said about the window.
    pub(super) fn answered(self, headers: Option<RateLimitHeaders>, now: Instant) {
        if let Some(headers) = headers {
            self.0.record(headers, now);
        }
    }
}

impl Drop for InFlight<'_> {
    fn drop(&mut self) {
        let mut state = self.0.lock();
        state.in_flight = state.in_flight.saturating_sub(1);
    }
}

impl RateBudget {
    /// A budget of `share` of each window, nothing known yet.
    pub(super) fn new(share: f64) -> Self {
        Self {
            share,
            state: Mutex::new(BudgetState::default()),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, BudgetState> {
        self.state
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// A request may go now (counted until the [`InFlight`] is dropped), or the wait until the
    /// window resets: the requests used in it and on their way reached `share` of its limit.
    pub(super) fn take(&self, now: Instant) -> Result<InFlight<'_>, Duration> {
        let mut state = self.lock();
        if state.window.is_some_and(|window| now >= window.resets_at) {
            // A new window, whose numbers the next answer brings.
            state.window = None;
        }
        if let Some(window) = state.window {
            let spent = window.used.saturating_add(state.in_flight);
            if f64::from(spent) >= self.share * f64::from(window.limit) {
                return Err(window.resets_at - now);
            }
        }
        state.in_flight += 1;
        Ok(InFlight(self))
    }

    /// Takes in an answer's numbers. Answers to concurrent requests may arrive out of order:
    /// within one window the most used wins; another window replaces it.
    fn record(&self, headers: RateLimitHeaders, now: Instant) {
        let mut state = self.lock();
        let used = headers.limit.saturating_sub(headers.remaining);
        match state.window.as_mut() {
            Some(current) if current.reset == headers.reset => {
                current.used = current.used.max(used);
            }
            _ => {
                state.window = Some(Window {
                    reset: headers.reset,
                    limit: headers.limit,
                    used,
                    resets_at: now + headers.reset_in,
                });
            }
        }
    }
}

/// The wait before try `try_number + 1` (1-based tries): `base` doubled per try up to a
/// minute, and "equal jitter" (half of it fixed, half random), so that clients failing together
/// do not retry together.
pub(super) fn backoff(try_number: u32, base: Duration) -> Duration {
    let full = base
        .saturating_mul(1 << try_number.saturating_sub(1).min(16))
        .min(MAX_BACKOFF);
    full / 2 + full.mul_f64(rand::random::<f64>() / 2.0)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// An answer in the window that resets at Unix second 1000 + `reset_in`.
    fn answer(limit: u32, remaining: u32, reset_in: u64) -> RateLimitHeaders {
        RateLimitHeaders {
            limit,
            remaining,
            reset: 1000 + reset_in,
            reset_in: Duration::from_secs(reset_in),
        }
    }

    /// The wait `take` asks for (zero: the request went, and is already answered).
    fn wait(budget: &RateBudget, now: Instant) -> Duration {
        budget.take(now).err().unwrap_or(Duration::ZERO)
    }

    #[test]
    fn nothing_known_means_no_wait() {
        let budget = RateBudget::new(0.5);
        let _first = budget.take(Instant::now()).expect("no window known");
        let _second = budget.take(Instant::now()).expect("still none");
    }

    #[test]
    fn waits_for_the_reset_once_the_share_is_used() {
        let budget = RateBudget::new(0.5);
        let start = Instant::now();
        // 10 of 20 left: 10 used, exactly half.
        budget.record(answer(20, 10, 31), start);
        assert_eq!(wait(&budget, start), Duration::from_secs(31));
        let later = start + Duration::from_secs(30);
        assert_eq!(wait(&budget, later), Duration::from_secs(1));
        // The window is over: go, and forget the old numbers.
        let _next = budget
            .take(start + Duration::from_secs(31))
            .expect("a new window");
        assert_eq!(
            wait(&budget, start + Duration::from_secs(31)),
            Duration::ZERO
        );
    }

    #[test]
    fn requests_on_their_way_count_until_answered_or_dropped() {
        let budget = RateBudget::new(0.5);
        let start = Instant::now();
        budget.record(answer(10, 7, 60), start); // 3 used, 5 allowed
        let first = budget.take(start).expect("4th");
        let second = budget.take(start).expect("5th");
        assert_eq!(
            wait(&budget, start),
            Duration::from_secs(60),
            "3 + 2 on their way"
        );
        drop(second); // failed without an answer
        let third = budget.take(start).expect("5th again");
        first.answered(Some(answer(10, 6, 60)), start); // 4 used, 1 on its way
        assert_eq!(wait(&budget, start), Duration::from_secs(60));
        third.answered(None, start);
        assert_eq!(
            wait(&budget, start),
            Duration::ZERO,
            "4 used, none on the way"
        );
    }

    #[test]
    fn answers_arriving_out_of_order_do_not_give_back_used_requests() {
        let budget = RateBudget::new(1.0);
        let start = Instant::now();
        // Two requests in flight; the answer of the second (none left) comes first.
        budget.record(answer(2, 0, 5), start);
        budget.record(answer(2, 1, 5), start);
        assert_eq!(wait(&budget, start), Duration::from_secs(5));
        // Another window replaces it.
        budget.record(answer(2, 1, 65), start);
        assert_eq!(wait(&budget, start), Duration::ZERO);
    }

    #[test]
    fn a_full_share_uses_the_whole_bucket() {
        let budget = RateBudget::new(1.0);
        let start = Instant::now();
        budget.record(answer(120, 1, 10), start);
        let _last = budget.take(start).expect("the 120th");
        assert_eq!(wait(&budget, start), Duration::from_secs(10));
    }

    #[test]
    fn backoff_doubles_with_jitter_up_to_a_minute() {
        let base = Duration::from_secs(2);
        for _ in 0..100 {
            let first = backoff(1, base);
            assert!(
                (Duration::from_secs(1)..=base).contains(&first),
                "{first:?}"
            );
            let third = backoff(3, base);
            assert!(
                (Duration::from_secs(4)..=Duration::from_secs(8)).contains(&third),
                "{third:?}"
            );
            let late = backoff(40, base);
            assert!(
                (Duration::from_secs(30)..=MAX_BACKOFF).contains(&late),
                "{late:?}"
            );
        }
    }
}
