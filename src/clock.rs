//! Time helpers: the spool stores times as Unix milliseconds, alerts show RFC 3339, and the
//! background loops (detection, correlation, forwarding) wait between passes.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;

/// Waits until `wake` is notified or `at_most` has passed: a background loop's wait between
/// passes. False once `shutdown` is cancelled.
pub async fn wait_for_work(wake: &Notify, at_most: Duration, shutdown: &CancellationToken) -> bool {
    tokio::select! {
        _ = wake.notified() => true,
        _ = tokio::time::sleep(at_most) => true,
        _ = shutdown.cancelled() => false,
    }
}

/// Waits `duration`; false if `shutdown` was cancelled first.
pub async fn sleep_unless_cancelled(duration: Duration, shutdown: &CancellationToken) -> bool {
    tokio::select! {
        _ = tokio::time::sleep(duration) => true,
        _ = shutdown.cancelled() => false,
    }
}

/// Milliseconds since the Unix epoch, now.
pub fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or(Duration::ZERO)
        .as_millis() as u64
}

/// `ms` (Unix milliseconds) as RFC 3339 UTC with millisecond precision, like Okta's `published`.
pub fn rfc3339(ms: u64) -> String {
    let nanos = i128::from(ms) * 1_000_000;
    let at = time::OffsetDateTime::from_unix_timestamp_nanos(nanos)
        .unwrap_or(time::OffsetDateTime::UNIX_EPOCH);
    at.format(&time::macros::format_description!(
        "[year]-[month]-[day]T[hour]:[minute]:[second].[subsecond digits:3]Z"
    ))
    .expect("the format only uses fields every timestamp has")
}

/// RFC 3339 text (Okta's `published`, an alert's `received_at`) as Unix milliseconds.
pub fn parse_rfc3339_ms(text: &str) -> Option<i64> {
    time::OffsetDateTime::parse(text, &time::format_description::well_known::Rfc3339)
        .ok()
        .and_then(|at| i64::try_from(at.unix_timestamp_nanos() / 1_000_000).ok())
}

#[cfg(test)]
mod tests {
    #[test]
    fn formats_like_okta() {
        assert_eq!(
            super::rfc3339(1_700_000_000_123),
            "2023-11-14T22:13:20.123Z"
        );
    }
}
