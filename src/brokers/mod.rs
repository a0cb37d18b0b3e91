//! Connections to the brokers that sinks publish to and the cluster keeps its shared state in:
//! the URL type that hides credentials, clients made on first use, and typed connect errors.
//!
//! Both [`crate::sinks`] and [`crate::cluster`] stand on this module and on neither of each
//! other: a Redis or NATS connection is made the same way for an alert stream and for the
//! shared de-duplication keys.

pub mod lazy;
#[cfg(feature = "nats")]
pub mod nats;
#[cfg(feature = "redis")]
pub mod redis;

use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::secret::REDACTED;

pub use lazy::LazyClient;

/// How long one connection attempt may take.
pub const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);

/// A connection that could not be made. The message names the destination, never its
/// credentials.
#[derive(Debug, thiserror::Error)]
pub enum ConnectError {
    /// The broker did not answer within [`CONNECT_TIMEOUT`].
    #[error("cannot connect to {what}: no answer within {timeout:?}")]
    TimedOut {
        /// The destination, such as `NATS at nats://host:4222`.
        what: String,
        /// How long the attempt waited.
        timeout: Duration,
    },
    /// The broker refused, or the client failed before it could connect.
    #[error("cannot connect to {what}")]
    Failed {
        /// The destination, such as `Redis at redis://host:6379`.
        what: String,
        /// The client's own error.
        #[source]
        source: BoxError,
    },
}

/// A sink `type` or cluster mode whose client this build leaves out: its Cargo feature is off.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("{key} = \"{value}\" needs a build with --features {feature}")]
pub struct NotBuilt {
    /// The key that asks for it, such as `type` or `cluster.mode`.
    pub key: &'static str,
    /// The key's value, such as `kafka` or `nats-kv`.
    pub value: &'static str,
    /// The Cargo feature that brings it.
    pub feature: &'static str,
}

/// A client library's error, kept whole so that its chain of causes still reads.
pub type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// A server URL that may carry credentials (`redis://:password@host`, `nats://user:password@host`).
/// `Debug`, `Display` and serialized output show it with the password replaced by `<redacted>`.
#[derive(Clone, PartialEq, Eq, Deserialize)]
#[serde(transparent)]
pub struct ServerUrl(String);

impl ServerUrl {
    /// Wraps a URL (or a comma-separated list of URLs).
    pub fn new(url: impl Into<String>) -> Self {
        Self(url.into())
    }

    /// The URL itself, credentials included. Call only to connect.
    pub fn expose(&self) -> &str {
        &self.0
    }

    /// The URL with every password (or a lone token before `@`) replaced by `<redacted>`.
    pub fn redacted(&self) -> String {
        self.0
            .split(',')
            .map(redact_userinfo)
            .collect::<Vec<_>>()
            .join(",")
    }
}

fn redact_userinfo(url: &str) -> String {
    let start = url.find("://").map_or(0, |i| i + 3);
    let rest = &url[start..];
    let authority = &rest[..rest.find(['/', '?', '#']).unwrap_or(rest.len())];
    let Some(at) = authority.rfind('@') else {
        return url.to_owned();
    };
    let shown = match authority[..at].split_once(':') {
        Some((user, _)) => format!("{user}:{REDACTED}"),
        None => REDACTED.to_owned(),
    };
    format!("{}{shown}{}", &url[..start], &rest[at..])
}

impl std::fmt::Debug for ServerUrl {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{:?}", self.redacted())
    }
}

impl std::fmt::Display for ServerUrl {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.redacted())
    }
}

impl Serialize for ServerUrl {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(&self.redacted())
    }
}
