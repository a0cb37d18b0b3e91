//! [`SpoolError`]: what every spool operation can fail with.

use std::sync::Arc;

/// Why the spool could not do what was asked.
#[derive(Debug, Clone, thiserror::Error)]
pub enum SpoolError {
    /// The backlog reached `storage.max_backlog_bytes`; new batches wait until sinks catch up.
    #[error("spool backlog is full ({backlog_bytes} of {limit_bytes} bytes); sinks are behind")]
    Full {
        /// Current backlog.
        backlog_bytes: u64,
        /// Configured limit.
        limit_bytes: u64,
    },
    /// The disk, the database or a spool worker failed (disk full, I/O error, a task that
    /// died). The message names the cause too, because a log line prints only the outer error;
    /// `source` keeps the cause itself (redb's or the system's error) for callers that look.
    #[error("spool storage error: {message}")]
    Storage {
        /// What failed, cause included.
        message: String,
        /// The error underneath, when there is one.
        #[source]
        source: Option<Arc<dyn std::error::Error + Send + Sync>>,
    },
    /// The spool is shutting down.
    #[error("spool is closed")]
    Closed,
}

impl SpoolError {
    /// A storage failure caused by `source`; `message` says what failed and names the cause.
    pub fn storage(
        message: impl Into<String>,
        source: impl Into<Box<dyn std::error::Error + Send + Sync>>,
    ) -> Self {
        SpoolError::Storage {
            message: message.into(),
            source: Some(Arc::from(source.into())),
        }
    }

    /// A storage failure with no error underneath (a lock poisoned, a reopen postponed).
    pub fn unavailable(message: impl Into<String>) -> Self {
        SpoolError::Storage {
            message: message.into(),
            source: None,
        }
    }
}

impl<E: Into<redb::Error>> From<E> for SpoolError {
    fn from(err: E) -> Self {
        let err = err.into();
        SpoolError::storage(err.to_string(), err)
    }
}
