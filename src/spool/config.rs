//! `[storage]`: where the spool lives and how large its backlog may grow.

use std::path::PathBuf;

use serde::{Deserialize, Serialize};

/// `[storage]`: the embedded durable spool.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct StorageConfig {
    /// Directory of the spool database (`spool.redb`) and of the default alert file.
    /// Env: `FACTORWATCH_DATA_DIR`.
    pub data_dir: PathBuf,
    /// Once batches waiting for detection plus alerts waiting for delivery take this many bytes,
    /// new batches are answered 503 (Okta retries once) and `/readyz` turns false, so a load
    /// balancer sends traffic to another replica instead of filling this disk.
    pub max_backlog_bytes: u64,
}

impl Default for StorageConfig {
    fn default() -> Self {
        Self {
            data_dir: PathBuf::from("./data"),
            max_backlog_bytes: 1024 * 1024 * 1024,
        }
    }
}

impl StorageConfig {
    /// Checks what the types alone cannot. Each error names the key at fault.
    pub fn validate(&self) -> anyhow::Result<()> {
        anyhow::ensure!(
            self.max_backlog_bytes > 0,
            "storage.max_backlog_bytes must be greater than 0"
        );
        Ok(())
    }
}
