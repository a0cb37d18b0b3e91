//! `--since` and `--until`: a time as people give it, either how long ago (`7d`, `90m`) or an
//! RFC 3339 time.

use std::str::FromStr;

use crate::clock::{now_ms, parse_rfc3339_ms, rfc3339};

/// A point in time given on the command line, resolved when it is parsed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TimeArg {
    /// Unix ms.
    pub ms: u64,
}

impl TimeArg {
    /// As RFC 3339, what Okta and the admin API take.
    pub fn rfc3339(&self) -> String {
        rfc3339(self.ms)
    }

    fn parse_at(text: &str, now_ms: u64) -> Result<Self, TimeArgError> {
        if let Some(ms) = parse_rfc3339_ms(text) {
            return Ok(Self {
                ms: ms.max(0) as u64,
            });
        }
        match humantime::parse_duration(text) {
            Ok(ago) => Ok(Self {
                ms: now_ms.saturating_sub(ago.as_millis() as u64),
            }),
            Err(_) => Err(TimeArgError {
                text: text.to_owned(),
            }),
        }
    }
}

/// A `--since` or `--until` that is no time.
#[derive(Debug, thiserror::Error)]
#[error(
    "{text:?} is neither how long ago (such as 7d, 12h or 90m) nor an RFC 3339 time (such as \
     2026-12-01T00:00:00Z)"
)]
pub struct TimeArgError {
    text: String,
}

impl FromStr for TimeArg {
    type Err = TimeArgError;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        Self::parse_at(text, now_ms())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_time_is_how_long_ago_or_an_rfc3339_time_and_nothing_else() {
        let now = 1_764_806_400_000; // 2025-12-04T00:00:00Z
        let ago = |text| TimeArg::parse_at(text, now).map(|time| time.rfc3339());
        assert_eq!(ago("7d").unwrap(), "2025-11-27T00:00:00.000Z");
        assert_eq!(ago("90m").unwrap(), "2025-12-03T22:30:00.000Z");
        assert_eq!(
            ago("2026-12-01T10:00:00+01:00").unwrap(),
            "2026-12-01T09:00:00.000Z"
        );
        let err = ago("last tuesday").unwrap_err().to_string();
        assert!(err.contains("neither how long ago"), "{err}");
    }
}
