//! The spool's gauges, set from its in-memory counters at every scrape of `/metrics` and by the
//! maintenance task.

use super::{BacklogSnapshot, Spool, WindowSize};
use crate::telemetry::metrics::{
    DEAD_LETTER_PENDING, DEDUP_WINDOW_KEYS, DEDUP_WINDOW_SEGMENTS, OUTBOX_PENDING,
    SPOOL_BACKLOG_BYTES, SPOOL_BACKLOG_LIMIT_BYTES, SPOOL_PENDING_BATCHES, SPOOL_WRITABLE,
    STORAGE_AVAILABLE_BYTES, STORAGE_CAPACITY_BYTES,
};
use crate::telemetry::org_labels;

impl Spool {
    /// Publishes this spool's gauges, as `org`'s: its backlog, its de-duplication window and
    /// the room left on its disk.
    pub fn record_gauges(&self, org: Option<&str>) {
        record_backlog(&self.backlog(), org);
        record_window(self.window_size(), org);
        record_disk(&self.path, org);
    }
}

/// Publishes the free and total bytes of the filesystem holding `path`. The backlog limit
/// guards against a dead sink, not against other files filling the disk: this shows both.
fn record_disk(path: &std::path::Path, org: Option<&str>) {
    match fs4::statvfs(path) {
        Ok(stats) => {
            let labels = org_labels(org, &[]);
            metrics::gauge!(STORAGE_AVAILABLE_BYTES, labels.clone())
                .set(stats.available_space() as f64);
            metrics::gauge!(STORAGE_CAPACITY_BYTES, labels).set(stats.total_space() as f64);
        }
        // Not worth a warning every 10 s: the spool's own writes report a failing disk.
        Err(err) => tracing::debug!(org, error = %err, "cannot read the spool's filesystem size"),
    }
}

/// Publishes the size of `org`'s de-duplication window as gauges.
fn record_window(size: WindowSize, org: Option<&str>) {
    let labels = org_labels(org, &[]);
    metrics::gauge!(DEDUP_WINDOW_KEYS, labels.clone()).set(size.keys as f64);
    metrics::gauge!(DEDUP_WINDOW_SEGMENTS, labels).set(size.segments as f64);
}

/// Publishes the counters of `org`'s spool as gauges.
fn record_backlog(backlog: &BacklogSnapshot, org: Option<&str>) {
    let labels = org_labels(org, &[]);
    metrics::gauge!(SPOOL_BACKLOG_BYTES, labels.clone()).set(backlog.bytes as f64);
    metrics::gauge!(SPOOL_BACKLOG_LIMIT_BYTES, labels.clone()).set(backlog.limit_bytes as f64);
    metrics::gauge!(SPOOL_PENDING_BATCHES, labels.clone()).set(backlog.batches as f64);
    metrics::gauge!(SPOOL_WRITABLE, labels).set(if backlog.writable { 1.0 } else { 0.0 });
    for (sink, counts) in &backlog.sinks {
        let labels = org_labels(org, &[("sink", sink)]);
        metrics::gauge!(OUTBOX_PENDING, labels.clone()).set(counts.pending as f64);
        metrics::gauge!(DEAD_LETTER_PENDING, labels).set(counts.dead as f64);
    }
}
