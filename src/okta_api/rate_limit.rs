//! Staying inside Okta's rate limit: the share of the current window this client may use, and
//! the waits between tries.

use std::sync::Mutex;
use std::time::Duration;

use tokio::time::Instant;

use super::headers::RateLimitHeaders;

/// The longest backoff between two tries.
const MAX_BACKOFF: Duration = Duration::from_secs(60);

/// This client's use of one rate-limit bucket, as the last answer described it.
#[derive(Debug)]
pub(super) struct RateBudget {
    /// `rate_limit_share`: the part of each window's limit this client uses.
    share: f64,
    window: Mutex<Option<Window>>,
}

/// The current window, while it lasts.
#[derive(Debug, Clone, Copy)]
struct Window {
    /// `X-Rate-Limit-Reset`, which tells one window from the next.
    reset: u64,
    limit: u32,
    /// Requests counted in it: `limit - remaining` of the last answer, plus those sent since.
    used: u32,
    /// When it resets, on the local monotonic clock (from the server's `Date`).
    resets_at: Instant,
}

impl RateBudget {
    /// A budget of `share` of each window, nothing known yet.
    pub(super) fn new(share: f64) -> Self {
        Self {
            share,
            window: Mutex::new(None),
        }
    }

    /// Zero if a request may go now (and counts it), else how long to wait for the window to
    /// reset: the requests used in the window reached `share` of its limit.
    pub(super) fn take(&self, now: Instant) -> Duration {
        let mut window = self
            .window
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        match window.as_mut() {
            Some(current) if now >= current.resets_at => {
                // A new window whose numbers the next answer brings.
                *window = None;
                Duration::ZERO
            }
            Some(current) if f64::from(current.used) >= self.share * f64::from(current.limit) => {
                current.resets_at - now
            }
            Some(current) => {
                current.used += 1;
                Duration::ZERO
            }
            None => Duration::ZERO,
        }
    }

    /// Takes in what an answer received at `now` said about the window. Answers to concurrent
    /// requests may arrive out of order: within one window the most used wins, and an answer
    /// about an earlier window changes nothing.
    pub(super) fn record(&self, headers: RateLimitHeaders, now: Instant) {
        let mut window = self
            .window
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        let used = headers.limit.saturating_sub(headers.remaining);
        match window.as_mut() {
            Some(current) if current.reset > headers.reset => {}
            Some(current) if current.reset == headers.reset => {
                current.used = current.used.max(used);
            }
            _ => {
                *window = Some(Window {
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

    #[test]
    fn nothing_known_means_no_wait() {
        let budget = RateBudget::new(0.5);
        assert_eq!(budget.take(Instant::now()), Duration::ZERO);
    }

    #[test]
    fn waits_for_the_reset_once_the_share_is_used() {
        let budget = RateBudget::new(0.5);
        let start = Instant::now();
        // 10 of 20 left: 10 used, exactly half.
        budget.record(answer(20, 10, 31), start);
        assert_eq!(budget.take(start), Duration::from_secs(31));
        let later = start + Duration::from_secs(30);
        assert_eq!(budget.take(later), Duration::from_secs(1));
        // The window is over: go, and forget the old numbers.
        assert_eq!(budget.take(start + Duration::from_secs(31)), Duration::ZERO);
        assert_eq!(budget.take(start + Duration::from_secs(31)), Duration::ZERO);
    }

    #[test]
    fn requests_sent_since_the_last_answer_count() {
        let budget = RateBudget::new(0.5);
        let start = Instant::now();
        budget.record(answer(10, 7, 60), start); // 3 used, 5 allowed
        assert_eq!(budget.take(start), Duration::ZERO);
        assert_eq!(budget.take(start), Duration::ZERO);
        assert_eq!(
            budget.take(start),
            Duration::from_secs(60),
            "3 + 2 sent = 5"
        );
    }

    #[test]
    fn answers_arriving_out_of_order_do_not_give_back_used_requests() {
        let budget = RateBudget::new(1.0);
        let start = Instant::now();
        // Two requests in flight; the answer of the second (none left) comes first.
        budget.record(answer(2, 0, 5), start);
        budget.record(answer(2, 1, 5), start);
        assert_eq!(budget.take(start), Duration::from_secs(5));
        // An answer about the previous window changes nothing either.
        budget.record(answer(2, 2, 4), start);
        assert_eq!(budget.take(start), Duration::from_secs(5));
        // The next window replaces it.
        budget.record(answer(2, 1, 65), start);
        assert_eq!(budget.take(start), Duration::ZERO);
    }

    #[test]
    fn a_full_share_uses_the_whole_bucket() {
        let budget = RateBudget::new(1.0);
        let start = Instant::now();
        budget.record(answer(120, 1, 10), start);
        assert_eq!(budget.take(start), Duration::ZERO);
        assert_eq!(budget.take(start), Duration::from_secs(10));
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
