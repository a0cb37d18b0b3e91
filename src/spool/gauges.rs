//! The spool's gauges, set from its in-memory counters at every scrape of `/metrics` and by the
//! maintenance task.

use super::{BacklogSnapshot, Spool, WindowSize};
use crate::telemetry::metrics::{
    DEAD_LETTER_PENDING, DEDUP_WINDOW_KEYS, DEDUP_WINDOW_SEGMENTS, OUTBOX_PENDING,
    SPOOL_BACKLOG_BYTES, SPOOL_BACKLOG_LIMIT_BYTES, SPOOL_PENDING_BATCHES, SPOOL_WRITABLE,
};
use crate::telemetry::org_labels;

impl Spool {
    /// Publishes this spool's gauges, as `org`'s: its backlog and its de-duplication window.
    pub fn record_gauges(&self, org: Option<&str>) {
        record_backlog(&self.backlog(), org);
        record_window(self.window_size(), org);
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
