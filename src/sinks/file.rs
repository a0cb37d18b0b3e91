//! The file sink: one JSON alert per line, appended, flushed and fsynced before it counts as
//! delivered. The file is opened for each alert so that log rotation (move, then a new file) just
//! works; the alert id in each line lets readers drop the duplicates a crash can leave.

use std::path::PathBuf;

use serde::{Deserialize, Serialize};
use tokio::io::AsyncWriteExt;

use super::{Delivery, DeliveryError, PublishFuture, Sink};

/// `type = "file"` keys.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct FileConfig {
    /// The file to append to; created if missing (its directory must exist).
    pub path: PathBuf,
}

/// Appends alerts to a local JSON-lines file.
#[derive(Debug)]
pub struct FileSink {
    name: String,
    path: PathBuf,
}

impl FileSink {
    /// A sink named `name` appending to `path`.
    pub fn new(name: &str, path: &std::path::Path) -> Self {
        Self {
            name: name.to_owned(),
            path: path.to_owned(),
        }
    }

    async fn append(&self, payload: &str) -> std::io::Result<()> {
        let mut file = tokio::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&self.path)
            .await?;
        let mut line = Vec::with_capacity(payload.len() + 1);
        line.extend_from_slice(payload.as_bytes());
        line.push(b'\n');
        file.write_all(&line).await?;
        file.flush().await?;
        file.sync_data().await
    }
}

impl Sink for FileSink {
    fn name(&self) -> &str {
        &self.name
    }

    fn publish<'a>(&'a self, delivery: Delivery<'a>) -> PublishFuture<'a> {
        Box::pin(async move {
            self.append(delivery.payload).await.map_err(|err| {
                DeliveryError::Transient(format!("cannot append to {}: {err}", self.path.display()))
            })
        })
    }
}
