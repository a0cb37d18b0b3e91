//! The file sink: one JSON alert per line, appended, flushed and fsynced before it counts as
//! delivered. The alerts of a delivery pass are appended together and share one `fdatasync`: one
//! per alert capped a burst of alerts at the disk's fsync rate and competed with the spool's
//! commits for the disk. The file is opened for each append so that log rotation (move, then a
//! new file) just works; the alert id in each line lets readers drop the duplicates a crash can
//! leave. A line cut short (a full disk, a crash mid-write) was never delivered: it is cut off
//! before the next write, so every line in the file is a whole alert.

use std::fs::File;
use std::io::Write;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};

use anyhow::Context;
use serde::{Deserialize, Serialize};

use super::{Delivery, DeliveryError, PublishFuture, Sink};

/// `type = "file"` keys.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct FileConfig {
    /// The file to append to; created if missing (its directory by `serve` and `sinks test`).
    pub path: PathBuf,
}

impl FileConfig {
    /// Creates the file's directory if it is missing, as a fresh install has no data directory
    /// yet. Done once before the first append ([`super::prepare`]): a directory that goes missing
    /// later (moved away by log rotation) is a delivery error, not created again.
    pub fn create_directory(&self) -> anyhow::Result<()> {
        match self.path.parent() {
            Some(dir) if !dir.as_os_str().is_empty() => std::fs::create_dir_all(dir)
                .with_context(|| format!("cannot create the directory {}", dir.display())),
            _ => Ok(()),
        }
    }
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

    /// Appends one line per payload, durably, as one write.
    async fn append<'a>(
        &self,
        payloads: impl Iterator<Item = &'a str> + Clone,
    ) -> Result<(), DeliveryError> {
        let size = payloads.clone().map(|payload| payload.len() + 1).sum();
        let mut lines = Vec::with_capacity(size);
        for payload in payloads {
            lines.extend_from_slice(payload.as_bytes());
            lines.push(b'\n');
        }
        let path = self.path.clone();
        tokio::task::spawn_blocking(move || append_lines(&path, &lines))
            .await
            .map_err(std::io::Error::other)
            .flatten()
            .map_err(|err| {
                DeliveryError::Transient(format!("cannot append to {}: {err}", self.path.display()))
            })
    }
}

/// Appends `lines` durably; on failure, cuts the file back so no partial line stays.
fn append_lines(path: &Path, lines: &[u8]) -> std::io::Result<()> {
    let mut file = std::fs::OpenOptions::new()
        .create(true)
        .read(true)
        .append(true)
        .open(path)?;
    let len = file.metadata()?.len();
    let end = end_of_last_line(&file, len)?;
    if end < len {
        file.set_len(end)?;
    }
    let written = file.write_all(lines).and_then(|()| file.sync_data());
    if written.is_err() {
        let _ = file.set_len(end);
    }
    written
}

/// The offset just past the last newline of the first `len` bytes of `file` (0 if none).
fn end_of_last_line(file: &File, len: u64) -> std::io::Result<u64> {
    let mut end = len;
    let mut chunk = [0u8; 4096];
    while end > 0 {
        let start = end.saturating_sub(chunk.len() as u64);
        let part = &mut chunk[..(end - start) as usize];
        file.read_exact_at(part, start)?;
        if let Some(at) = part.iter().rposition(|b| *b == b'\n') {
            return Ok(start + at as u64 + 1);
        }
        end = start;
    }
    Ok(0)
}

impl Sink for FileSink {
    fn name(&self) -> &str {
        &self.name
    }

    fn publish<'a>(&'a self, delivery: Delivery<'a>) -> PublishFuture<'a> {
        Box::pin(self.append(std::iter::once(delivery.payload)))
    }

    /// Every alert of a delivery pass: they share one write and one `fdatasync`.
    fn batch_limit(&self) -> usize {
        usize::MAX
    }

    fn publish_batch<'a>(&'a self, batch: &'a [Delivery<'a>]) -> PublishFuture<'a> {
        Box::pin(self.append(batch.iter().map(|delivery| delivery.payload)))
    }

    /// A line is the payload: the parsed alert is not read.
    fn publish_payloads<'a>(&'a self, payloads: &'a [&'a str]) -> Option<PublishFuture<'a>> {
        Some(Box::pin(self.append(payloads.iter().copied())))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_line_cut_short_is_cut_off_before_the_next_alert() {
        let dir = tempfile::TempDir::new().unwrap();
        let path = dir.path().join("alerts.jsonl");
        std::fs::write(&path, "{\"id\":\"1\"}\n{\"id\":\"2\",\"rul").unwrap();
        append_lines(&path, b"{\"id\":\"2\"}\n").unwrap();
        assert_eq!(
            std::fs::read_to_string(&path).unwrap(),
            "{\"id\":\"1\"}\n{\"id\":\"2\"}\n"
        );
        std::fs::write(&path, "no newline at all").unwrap();
        append_lines(&path, b"x\n").unwrap();
        assert_eq!(std::fs::read_to_string(&path).unwrap(), "x\n");
    }

    #[test]
    fn the_directory_is_created_when_missing() {
        let dir = tempfile::TempDir::new().unwrap();
        let path = dir.path().join("fresh").join("data").join("alerts.jsonl");
        FileConfig { path: path.clone() }
            .create_directory()
            .unwrap();
        assert!(path.parent().unwrap().is_dir());
        let relative = FileConfig {
            path: "alerts.jsonl".into(),
        };
        relative.create_directory().unwrap();
    }

    #[tokio::test]
    async fn a_batch_lands_as_whole_lines_in_order_or_not_at_all() {
        let dir = tempfile::TempDir::new().unwrap();
        let path = dir.path().join("alerts.jsonl");
        std::fs::write(&path, "{\"id\":\"0\"}\n{\"id\":\"1\",\"rul").unwrap();
        let alert = crate::alert::Alert::test_alert();
        let payloads = ["{\"id\":\"1\"}", "{\"id\":\"2\"}", "{\"id\":\"3\"}"];
        let batch: Vec<Delivery> = payloads
            .iter()
            .map(|payload| Delivery {
                payload,
                alert: &alert,
            })
            .collect();
        FileSink::new("file", &path)
            .publish_batch(&batch)
            .await
            .unwrap();
        assert_eq!(
            std::fs::read_to_string(&path).unwrap(),
            "{\"id\":\"0\"}\n{\"id\":\"1\"}\n{\"id\":\"2\"}\n{\"id\":\"3\"}\n"
        );
        // The delivery loop hands over the stored JSON alone: the same lines.
        let sink = FileSink::new("file", &path);
        let stored = ["{\"id\":\"4\"}", "{\"id\":\"5\"}"];
        let publishing = sink.publish_payloads(&stored);
        publishing.expect("it reads payloads only").await.unwrap();
        let written = std::fs::read_to_string(&path).unwrap();
        assert!(written.ends_with("{\"id\":\"3\"}\n{\"id\":\"4\"}\n{\"id\":\"5\"}\n"));
        let missing = dir.path().join("rotated-away").join("alerts.jsonl");
        let refused = FileSink::new("file", &missing).publish_batch(&batch).await;
        assert!(
            matches!(&refused, Err(DeliveryError::Transient(reason)) if reason.contains("rotated-away")),
            "{refused:?}"
        );
    }
}
