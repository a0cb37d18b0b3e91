//! The `outbox` table: each alert waiting for one sink, read by that sink's forwarder, removed
//! once the sink acknowledged it, or moved to `dead_letters` ([`super::dead_letters`]).

use std::sync::atomic::Ordering;

use serde::{Deserialize, Serialize};
use serde_json::value::RawValue;

use super::{DEAD_LETTERS, OUTBOX, Spool, SpoolError};

/// An alert waiting for one sink (or dead-lettered by it).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct OutboxRecord {
    /// The alert's id (the sink's idempotency key).
    pub alert_id: String,
    /// When the alert was raised (Unix ms); `delivery.max_age` counts from here.
    pub created_at_ms: u64,
    /// Delivery attempts made so far.
    pub attempts: u32,
    /// Not to be tried before this time (Unix ms).
    pub next_attempt_at_ms: u64,
    /// What the last failed attempt said.
    pub last_error: Option<String>,
    /// The alert, as the JSON every sink sends.
    pub alert: Box<RawValue>,
}

impl OutboxRecord {
    /// A new row for the alert `alert_id` (its document `alert`) raised at `now_ms`: no attempt
    /// yet, due at once.
    pub fn new(alert_id: &str, now_ms: u64, alert: Box<RawValue>) -> Self {
        Self {
            alert_id: alert_id.to_owned(),
            created_at_ms: now_ms,
            attempts: 0,
            next_attempt_at_ms: now_ms,
            last_error: None,
            alert,
        }
    }
}

/// An outbox or dead-letter row with its key.
#[derive(Debug, Clone)]
pub struct OutboxEntry {
    /// The sink it is for.
    pub sink: String,
    /// Its position in that sink's queue.
    pub seq: u64,
    /// The record.
    pub record: OutboxRecord,
    /// Bytes the row took when last stored; keeps the backlog counters exact when it changes.
    pub stored_len: u64,
}

impl OutboxEntry {
    pub(super) fn encode(&self) -> Vec<u8> {
        serde_json::to_vec(&self.record).expect("an outbox record always serializes")
    }

    pub(super) fn decode(sink: &str, seq: u64, value: &[u8]) -> Result<Self, SpoolError> {
        let record = serde_json::from_slice(value).map_err(|err| {
            SpoolError::storage(
                format!("outbox row ({sink}, {seq}) is unreadable: {err}"),
                err,
            )
        })?;
        Ok(Self {
            sink: sink.to_owned(),
            seq,
            record,
            stored_len: value.len() as u64,
        })
    }
}

/// An outbox row ready to insert, with its encoded value.
pub(super) type StagedRow = (OutboxEntry, Vec<u8>);

impl Spool {
    /// Up to `limit` alerts for `sink` that are due at `now_ms`, oldest first, and the time the
    /// earliest not-yet-due one becomes due.
    pub async fn due(
        &self,
        sink: &str,
        now_ms: u64,
        limit: usize,
    ) -> Result<(Vec<OutboxEntry>, Option<u64>), SpoolError> {
        let sink = sink.to_owned();
        self.read(move |txn| {
            let table = txn.open_table(OUTBOX)?;
            let mut due = Vec::new();
            let mut next_due: Option<u64> = None;
            for row in table.range((sink.as_str(), 0)..=(sink.as_str(), u64::MAX))? {
                let (key, value) = row?;
                let entry = OutboxEntry::decode(&sink, key.value().1, value.value())?;
                if entry.record.next_attempt_at_ms <= now_ms {
                    due.push(entry);
                    if due.len() == limit {
                        break;
                    }
                } else {
                    let at = entry.record.next_attempt_at_ms;
                    next_due = Some(next_due.map_or(at, |n| n.min(at)));
                }
            }
            Ok((due, next_due))
        })
        .await
    }

    /// Removes alerts their sink acknowledged.
    pub async fn delivered(&self, entries: &[OutboxEntry]) -> Result<(), SpoolError> {
        if entries.is_empty() {
            return Ok(());
        }
        let removed: Vec<(String, u64, u64)> = entries
            .iter()
            .map(|e| (e.sink.clone(), e.seq, e.stored_len))
            .collect();
        let keys = removed.clone();
        self.write(move |txn| {
            let mut outbox = txn.open_table(OUTBOX)?;
            for (sink, seq, _) in &keys {
                outbox.remove((sink.as_str(), *seq))?;
            }
            Ok(())
        })
        .await?;
        for (sink, _, len) in removed {
            self.backlog.outbox_removed(&sink, len);
        }
        Ok(())
    }

    /// Stores an entry's updated attempt count, error and next attempt time.
    pub async fn reschedule(&self, entry: &mut OutboxEntry) -> Result<(), SpoolError> {
        let (sink, seq, value) = (entry.sink.clone(), entry.seq, entry.encode());
        let new_len = value.len() as u64;
        self.write(move |txn| {
            txn.open_table(OUTBOX)?
                .insert((sink.as_str(), seq), value.as_slice())?;
            Ok(())
        })
        .await?;
        self.backlog.outbox_resized(entry.stored_len, new_len);
        entry.stored_len = new_len;
        Ok(())
    }

    /// Moves an entry from the outbox to the dead-letter table in one transaction.
    pub async fn dead_letter(&self, entry: &OutboxEntry) -> Result<(), SpoolError> {
        let (sink, seq, value) = (entry.sink.clone(), entry.seq, entry.encode());
        let len = entry.stored_len;
        let sink_name = sink.clone();
        self.write(move |txn| {
            txn.open_table(OUTBOX)?.remove((sink.as_str(), seq))?;
            txn.open_table(DEAD_LETTERS)?
                .insert((sink.as_str(), seq), value.as_slice())?;
            Ok(())
        })
        .await?;
        self.backlog.outbox_removed(&sink_name, len);
        self.backlog.dead_lettered(&sink_name);
        Ok(())
    }

    /// Gives each new outbox row its sequence number and encoded value.
    pub(super) fn stage_outbox(&self, rows: Vec<(String, OutboxRecord)>) -> Vec<StagedRow> {
        rows.into_iter()
            .map(|(sink, record)| {
                let seq = self.next_seq.fetch_add(1, Ordering::Relaxed);
                let mut entry = OutboxEntry {
                    sink,
                    seq,
                    record,
                    stored_len: 0,
                };
                let value = entry.encode();
                entry.stored_len = value.len() as u64;
                (entry, value)
            })
            .collect()
    }

    /// Counts committed outbox rows into the backlog.
    pub(super) fn count_outbox_added(&self, added: Vec<(String, u64)>) {
        for (sink, len) in added {
            self.backlog.outbox_added(&sink, len);
        }
    }
}

/// Each staged row's sink and size, for the backlog once committed.
pub(super) fn staged_sizes(staged: &[StagedRow]) -> Vec<(String, u64)> {
    staged
        .iter()
        .map(|(entry, value)| (entry.sink.clone(), value.len() as u64))
        .collect()
}

/// Inserts staged rows into the outbox.
pub(super) fn insert_outbox(
    txn: &redb::WriteTransaction,
    staged: &[StagedRow],
) -> Result<(), redb::Error> {
    let mut outbox = txn.open_table(OUTBOX)?;
    for (entry, value) in staged {
        outbox.insert((entry.sink.as_str(), entry.seq), value.as_slice())?;
    }
    Ok(())
}
