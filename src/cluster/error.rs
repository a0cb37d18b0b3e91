//! Why a call to the shared backend failed. The caller only needs to know that it failed (it
//! falls back to the replica's own window, or leaves correlation inputs in the spool), but the
//! message and the client's error behind it end up in `/readyz` and the logs.

use crate::brokers::{BoxError, ConnectError, ServerUrl};

/// A failed call to the cluster backend. The message names the backend (never its credentials)
/// and what was asked of it; `source()` is the client's own error.
#[derive(Debug, thiserror::Error)]
pub enum ClusterError {
    /// The connection (or, in `nats-kv` mode, a bucket) could not be opened.
    #[error(transparent)]
    Connect(#[from] ConnectError),
    /// A Redis command failed.
    #[cfg(feature = "redis")]
    #[error("cluster Redis at {url}: cannot {operation}")]
    Redis {
        /// The server.
        url: ServerUrl,
        /// What the command was for, such as `claim event keys`.
        operation: &'static str,
        /// The client's error.
        #[source]
        source: redis::RedisError,
    },
    /// A JetStream key-value operation failed.
    #[error("cluster NATS at {url}: cannot {operation} in bucket {bucket}")]
    KeyValue {
        /// The servers.
        url: ServerUrl,
        /// The bucket.
        bucket: String,
        /// What the operation was for, such as `claim an event key`.
        operation: &'static str,
        /// The client's error (its type differs per operation).
        #[source]
        source: BoxError,
    },
    /// A value stored in the backend does not decode.
    #[error("cluster NATS at {url}: the entry {key} of bucket {bucket} does not decode")]
    Undecodable {
        /// The servers.
        url: ServerUrl,
        /// The bucket.
        bucket: String,
        /// The entry's key.
        key: &'static str,
        /// What is wrong with it.
        #[source]
        source: UndecodableValue,
    },
}

impl ClusterError {
    /// The message and each cause after it, `: `-separated (as `{:#}` shows an
    /// `anyhow::Error`): what `/readyz` and the logs show.
    pub fn chain(&self) -> String {
        let mut text = String::new();
        for err in std::iter::successors(Some(self as &dyn std::error::Error), |err| err.source()) {
            let message = err.to_string();
            // The Redis and NATS clients end their own message with their cause's: once is
            // enough.
            if !text.ends_with(&message) {
                if !text.is_empty() {
                    text.push_str(": ");
                }
                text.push_str(&message);
            }
        }
        text
    }
}

/// What is wrong with a stored value.
#[derive(Debug, thiserror::Error)]
pub enum UndecodableValue {
    /// The correlation entry has no header line before the state.
    #[error("it has no header line")]
    NoHeaderLine,
    /// The correlation entry's header line is not the expected JSON.
    #[error("its header is unreadable")]
    Header(#[source] serde_json::Error),
}

#[cfg(test)]
mod tests {
    use super::*;

    /// An error that repeats its cause in its own message, as the clients' errors do.
    #[derive(Debug, thiserror::Error)]
    #[error("IO error: {0}")]
    struct Repeating(#[source] std::io::Error);

    #[test]
    fn a_cause_the_message_before_it_repeats_shows_once() {
        let refused = || std::io::Error::from(std::io::ErrorKind::ConnectionRefused);
        let err = ClusterError::from(ConnectError::Failed {
            what: "cluster NATS at nats://127.0.0.1:1".into(),
            source: Box::new(Repeating(refused())),
        });
        assert_eq!(
            err.chain(),
            format!(
                "cannot connect to cluster NATS at nats://127.0.0.1:1: IO error: {}",
                refused()
            )
        );
    }

    #[test]
    fn the_chain_names_the_backend_then_the_cause() {
        let err = ClusterError::Undecodable {
            url: ServerUrl::new("nats://user:hunter2@n:4222"),
            bucket: "factorwatch_correlation".into(),
            key: "state",
            source: UndecodableValue::NoHeaderLine,
        };
        assert_eq!(
            err.chain(),
            "cluster NATS at nats://user:<redacted>@n:4222: the entry state of bucket \
             factorwatch_correlation does not decode: it has no header line"
        );
    }
}
