//! In-memory counters of what the spool holds, so readiness and metrics never scan the database.
//! They are rebuilt from the tables at open and updated after each commit.

use std::collections::BTreeMap;
use std::sync::Mutex;

use redb::{Database, ReadableDatabase, ReadableTable};

use super::{
    BATCHES, CORRELATION_INPUTS, CORRELATION_JOURNAL, DEAD_LETTERS, HELD_BATCHES, OUTBOX,
    QUARANTINE, SpoolError,
};

/// Counts per sink.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct SinkBacklog {
    /// Alerts waiting in the outbox.
    pub pending: u64,
    /// Alerts in the dead-letter table.
    pub dead: u64,
}

/// Totals kept by [`Backlog`].
#[derive(Debug, Clone, Default)]
pub struct Totals {
    bytes: u64,
    batches: u64,
    sinks: BTreeMap<String, SinkBacklog>,
}

/// A consistent copy of the counters.
#[derive(Debug, Clone)]
pub struct BacklogSnapshot {
    /// Bytes of batches waiting for detection plus alerts waiting for delivery.
    pub bytes: u64,
    /// The configured limit of `bytes`.
    pub limit_bytes: u64,
    /// Batches waiting for detection.
    pub batches: u64,
    /// Per sink: alerts pending and dead-lettered.
    pub sinks: BTreeMap<String, SinkBacklog>,
    /// Whether the last commit succeeded.
    pub writable: bool,
}

impl BacklogSnapshot {
    /// What keeps the spool from taking new batches, if anything.
    pub fn refusal(&self) -> Option<String> {
        if !self.writable {
            Some("the spool's last write failed (disk full or I/O error)".into())
        } else if self.bytes >= self.limit_bytes {
            Some(format!(
                "backlog {} bytes reached storage.max_backlog_bytes = {}",
                self.bytes, self.limit_bytes
            ))
        } else {
            None
        }
    }
}

/// Shared counters.
pub(super) struct Backlog {
    limit_bytes: u64,
    totals: Mutex<Totals>,
}

impl Backlog {
    pub fn new(limit_bytes: u64, totals: Totals) -> Self {
        Self {
            limit_bytes,
            totals: Mutex::new(totals),
        }
    }

    fn update(&self, change: impl FnOnce(&mut Totals)) {
        change(&mut self.totals.lock().expect("backlog lock poisoned"));
    }

    pub fn snapshot(&self, writable: bool) -> BacklogSnapshot {
        let totals = self.totals.lock().expect("backlog lock poisoned").clone();
        BacklogSnapshot {
            bytes: totals.bytes,
            limit_bytes: self.limit_bytes,
            batches: totals.batches,
            sinks: totals.sinks,
            writable,
        }
    }

    pub fn check_room(&self) -> Result<(), SpoolError> {
        let bytes = self.totals.lock().expect("backlog lock poisoned").bytes;
        if bytes >= self.limit_bytes {
            return Err(SpoolError::Full {
                backlog_bytes: bytes,
                limit_bytes: self.limit_bytes,
            });
        }
        Ok(())
    }

    pub fn batch_added(&self, len: u64) {
        self.update(|t| {
            t.bytes += len;
            t.batches += 1;
        });
    }

    pub fn batch_removed(&self, len: u64) {
        self.update(|t| {
            t.bytes = t.bytes.saturating_sub(len);
            t.batches = t.batches.saturating_sub(1);
        });
    }

    pub fn outbox_added(&self, sink: &str, len: u64) {
        self.update(|t| {
            t.bytes += len;
            t.sinks.entry(sink.to_owned()).or_default().pending += 1;
        });
    }

    pub fn outbox_removed(&self, sink: &str, len: u64) {
        self.update(|t| {
            t.bytes = t.bytes.saturating_sub(len);
            let counts = t.sinks.entry(sink.to_owned()).or_default();
            counts.pending = counts.pending.saturating_sub(1);
        });
    }

    pub fn outbox_resized(&self, old_len: u64, new_len: u64) {
        self.update(|t| t.bytes = (t.bytes + new_len).saturating_sub(old_len));
    }

    pub fn undead(&self, sink: &str) {
        self.update(|t| {
            let counts = t.sinks.entry(sink.to_owned()).or_default();
            counts.dead = counts.dead.saturating_sub(1);
        });
    }

    pub fn dead_lettered(&self, sink: &str) {
        self.update(|t| t.sinks.entry(sink.to_owned()).or_default().dead += 1);
    }
}

/// What a scan of the tables at open finds.
pub(super) struct Scan {
    pub totals: Totals,
    pub next_batch_id: u64,
    pub next_seq: u64,
}

/// Rebuilds the counters and the next free ids from the tables.
pub(super) fn scan(db: &Database) -> Result<Scan, SpoolError> {
    let txn = db.begin_read()?;
    let mut totals = Totals::default();
    let mut next_batch_id = 1;
    for row in txn.open_table(BATCHES)?.iter()? {
        let (id, value) = row?;
        totals.bytes += value.value().len() as u64;
        totals.batches += 1;
        next_batch_id = next_batch_id.max(id.value() + 1);
    }
    for row in txn.open_table(QUARANTINE)?.iter()? {
        next_batch_id = next_batch_id.max(row?.0.value() + 1);
    }
    let mut next_seq = 1;
    for row in txn.open_table(OUTBOX)?.iter()? {
        let (key, value) = row?;
        let (sink, seq) = key.value();
        totals.bytes += value.value().len() as u64;
        totals.sinks.entry(sink.to_owned()).or_default().pending += 1;
        next_seq = next_seq.max(seq + 1);
    }
    for row in txn.open_table(DEAD_LETTERS)?.iter()? {
        let (key, _) = row?;
        let (sink, seq) = key.value();
        totals.sinks.entry(sink.to_owned()).or_default().dead += 1;
        next_seq = next_seq.max(seq + 1);
    }
    // Correlation inputs, the journal and held batches draw from the same sequence, so one
    // counter serves every table.
    for table in [CORRELATION_INPUTS, CORRELATION_JOURNAL] {
        if let Some(last) = txn.open_table(table)?.last()? {
            next_seq = next_seq.max(last.0.value() + 1);
        }
    }
    for row in txn.open_table(HELD_BATCHES)?.iter()? {
        next_seq = next_seq.max(row?.0.value().1 + 1);
    }
    Ok(Scan {
        totals,
        next_batch_id,
        next_seq,
    })
}
