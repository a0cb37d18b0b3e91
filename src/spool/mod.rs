//! The durable spool: batches waiting for detection, alerts waiting for delivery, dead letters,
//! and the de-duplication window, in one embedded [redb] database (`<data_dir>/spool.redb`).
//!
//! # On-disk layout
//! | table | key | value | meaning |
//! |---|---|---|---|
//! | `batches` | batch id (u64, increasing) | 8-byte LE receive time (Unix ms) + the request body verbatim | acknowledged to Okta, not yet detected |
//! | `quarantine` | batch id | as `batches` | a stored batch the detector could not read; kept for a person to look at |
//! | `seen` | event key (uuid or `sha256:` hash) | expiry (Unix ms) | de-duplication window |
//! | `seen_by_expiry` | (expiry, event key) | () | index to prune `seen` in expiry order |
//! | `outbox` | (sink name, sequence) | [`OutboxRecord`] as JSON | alert not yet delivered to that sink |
//! | `correlation_inputs` | sequence | an event that matched a rule, as the correlation step reads it | detected, not yet correlated |
//! | `correlation` | `state` / `applied` | the correlation state (standalone) / the last shared step committed here (cluster) | correlation |
//! | `dead_letters` | (sink name, sequence) | [`OutboxRecord`] as JSON | alert the sink refused or that ran out of attempts |
//!
//! # Invariants
//! - A batch is answered 2xx only after the commit holding it returned (redb's default durability
//!   fsyncs on commit); see [`writer`] for how concurrent requests share one fsync.
//! - Detection of a batch commits its removal, its `seen` keys and its alerts (one outbox row per
//!   sink) in one transaction: a crash leaves either the batch or its alerts, never neither.
//! - Detection of a batch also stores, in that transaction, the events the correlation step
//!   still has to see; the step removes them in the transaction that queues its alerts.
//! - An outbox row is removed only once its sink acknowledged it, or when it moves to `dead_letters`
//!   in the same transaction.

mod backlog;
mod handle;
mod writer;

use handle::DbHandle;

use std::collections::{HashMap, HashSet};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::thread::JoinHandle;

use redb::{Database, ReadableDatabase, ReadableTable, TableDefinition};
use serde::{Deserialize, Serialize};
use serde_json::value::RawValue;
use tokio::sync::{mpsc, oneshot};

use backlog::Backlog;
pub use backlog::{BacklogSnapshot, SinkBacklog};
use writer::Job;

const BATCHES: TableDefinition<u64, &[u8]> = TableDefinition::new("batches");
const QUARANTINE: TableDefinition<u64, &[u8]> = TableDefinition::new("quarantine");
const SEEN: TableDefinition<&str, u64> = TableDefinition::new("seen");
const SEEN_BY_EXPIRY: TableDefinition<(u64, &str), ()> = TableDefinition::new("seen_by_expiry");
const OUTBOX: TableDefinition<(&str, u64), &[u8]> = TableDefinition::new("outbox");
const DEAD_LETTERS: TableDefinition<(&str, u64), &[u8]> = TableDefinition::new("dead_letters");
/// [`CORRELATION_STATE_KEY`]: the correlation windows and timers (standalone);
/// [`CORRELATION_APPLIED_KEY`]: the token of the last shared correlation step committed here.
const CORRELATION: TableDefinition<&str, &[u8]> = TableDefinition::new("correlation");
const CORRELATION_STATE_KEY: &str = "state";
const CORRELATION_APPLIED_KEY: &str = "applied";
/// Events detected but not yet correlated, in detection order.
const CORRELATION_INPUTS: TableDefinition<u64, &[u8]> = TableDefinition::new("correlation_inputs");
/// User login to the networks they signed in from, as the detector saves them.
const KNOWN_NETWORKS: TableDefinition<&str, &[u8]> = TableDefinition::new("known_networks");

/// File name of the database inside `data_dir`.
pub const SPOOL_FILE: &str = "spool.redb";

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
    /// The disk or database failed (disk full, I/O error).
    #[error("spool storage error: {0}")]
    Storage(String),
    /// The spool is shutting down.
    #[error("spool is closed")]
    Closed,
}

impl<E: Into<redb::Error>> From<E> for SpoolError {
    fn from(err: E) -> Self {
        SpoolError::Storage(err.into().to_string())
    }
}

/// A batch read back for detection.
#[derive(Debug, Clone)]
pub struct StoredBatch {
    /// Its id in the `batches` table.
    pub id: u64,
    /// When it was stored (Unix ms).
    pub received_at_ms: u64,
    /// The request body exactly as received.
    pub body: Vec<u8>,
}

impl StoredBatch {
    fn decode(id: u64, value: &[u8]) -> Self {
        let (time, body) = value.split_at(8.min(value.len()));
        let received_at_ms = u64::from_le_bytes(time.try_into().unwrap_or_default());
        Self {
            id,
            received_at_ms,
            body: body.to_vec(),
        }
    }

    fn encoded_len(&self) -> u64 {
        8 + self.body.len() as u64
    }
}

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
    fn encode(&self) -> Vec<u8> {
        serde_json::to_vec(&self.record).expect("an outbox record always serializes")
    }

    fn decode(sink: &str, seq: u64, value: &[u8]) -> Result<Self, SpoolError> {
        let record = serde_json::from_slice(value).map_err(|err| {
            SpoolError::Storage(format!("outbox row ({sink}, {seq}) is unreadable: {err}"))
        })?;
        Ok(Self {
            sink: sink.to_owned(),
            seq,
            record,
            stored_len: value.len() as u64,
        })
    }
}

/// What the detector hands back for one batch.
pub struct DetectedBatch {
    /// The batch that was processed.
    pub batch: StoredBatch,
    /// Event keys to remember for the de-duplication window.
    pub seen_keys: Vec<String>,
    /// When those keys may be forgotten (Unix ms).
    pub seen_until_ms: u64,
}

/// Everything one detection pass changes, committed in one transaction.
#[derive(Default)]
pub struct DetectionCommit {
    /// The batches processed, which leave the spool.
    pub batches: Vec<DetectedBatch>,
    /// One record per (sink, alert), for the alerts of the batches and of timers that ran out.
    pub outbox: Vec<(String, OutboxRecord)>,
    /// Events of these batches that matched a rule, for the correlation step (encoded by the
    /// detector), in order; empty when no correlation rule is loaded.
    pub correlation_inputs: Vec<Vec<u8>>,
    /// Users whose known networks changed, with their new value.
    pub known_networks: Vec<(String, Vec<u8>)>,
}

/// Everything one correlation step changes, committed in one transaction.
#[derive(Default)]
pub struct CorrelationCommit {
    /// Inputs up to and including this sequence number were correlated, and leave the spool.
    pub consumed_through: Option<u64>,
    /// One record per (sink, alert) for the correlation alerts of the step.
    pub outbox: Vec<(String, OutboxRecord)>,
    /// The state after the step, when this spool is where it lives (standalone).
    pub state: Option<Vec<u8>>,
    /// In cluster mode, the token of the shared step this commit completes.
    pub applied_token: Option<String>,
}

/// An outbox row ready to insert, with its encoded value.
type StagedRow = (OutboxEntry, Vec<u8>);

/// The embedded spool. Cheap to share behind an `Arc`; dropping the last one stops the writer
/// after it committed everything already queued.
pub struct Spool {
    db: Arc<DbHandle>,
    path: PathBuf,
    jobs: Option<mpsc::Sender<Job>>,
    writer: Option<JoinHandle<()>>,
    writable: Arc<AtomicBool>,
    next_batch_id: AtomicU64,
    next_seq: AtomicU64,
    backlog: Backlog,
}

impl std::fmt::Debug for Spool {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Spool")
            .field("path", &self.path)
            .finish_non_exhaustive()
    }
}

impl Spool {
    /// Opens (or creates) `<dir>/spool.redb`, repairing it after a crash, and starts the writer.
    pub fn open(dir: &Path, max_backlog_bytes: u64) -> Result<Self, SpoolError> {
        std::fs::create_dir_all(dir).map_err(|err| {
            SpoolError::Storage(format!(
                "cannot create data directory {}: {err}",
                dir.display()
            ))
        })?;
        let path = dir.join(SPOOL_FILE);
        let db = DbHandle::open(&path)?;
        create_tables(&*db.get()?)?;
        let scan = backlog::scan(&*db.get()?)?;
        let db = Arc::new(db);
        let (jobs, receiver) = mpsc::channel(4096);
        let writable = Arc::new(AtomicBool::new(true));
        let writer = {
            let (db, writable) = (db.clone(), writable.clone());
            std::thread::Builder::new()
                .name("spool-writer".into())
                .spawn(move || writer::run(db, receiver, writable))
                .map_err(|err| SpoolError::Storage(format!("cannot start spool writer: {err}")))?
        };
        Ok(Self {
            db,
            path,
            jobs: Some(jobs),
            writer: Some(writer),
            writable,
            next_batch_id: AtomicU64::new(scan.next_batch_id),
            next_seq: AtomicU64::new(scan.next_seq),
            backlog: Backlog::new(max_backlog_bytes, scan.totals),
        })
    }

    /// The database file.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Current backlog and health, for `/readyz` and `/metrics`.
    pub fn backlog(&self) -> BacklogSnapshot {
        self.backlog.snapshot(self.writable.load(Ordering::Relaxed))
    }

    /// Runs `apply` in the next group commit and waits until it is durable.
    async fn write(
        &self,
        apply: impl FnOnce(&redb::WriteTransaction) -> Result<(), redb::Error> + Send + 'static,
    ) -> Result<(), SpoolError> {
        let (done, answer) = oneshot::channel();
        let job = Job {
            apply: Box::new(apply),
            done,
        };
        let jobs = self.jobs.as_ref().ok_or(SpoolError::Closed)?;
        jobs.send(job).await.map_err(|_| SpoolError::Closed)?;
        answer.await.map_err(|_| SpoolError::Closed)?
    }

    /// Runs a read-only closure on a blocking thread.
    async fn read<T: Send + 'static>(
        &self,
        read: impl FnOnce(&redb::ReadTransaction) -> Result<T, SpoolError> + Send + 'static,
    ) -> Result<T, SpoolError> {
        let db = self.db.get()?;
        tokio::task::spawn_blocking(move || read(&db.begin_read()?))
            .await
            .map_err(|err| SpoolError::Storage(format!("spool reader failed: {err}")))?
    }

    /// Stores a batch durably. `Ok` means it is on disk; refuses with [`SpoolError::Full`] when the
    /// backlog is at its limit.
    pub async fn append_batch(&self, received_at_ms: u64, body: &[u8]) -> Result<u64, SpoolError> {
        self.backlog.check_room()?;
        let id = self.next_batch_id.fetch_add(1, Ordering::Relaxed);
        let mut value = Vec::with_capacity(8 + body.len());
        value.extend_from_slice(&received_at_ms.to_le_bytes());
        value.extend_from_slice(body);
        let len = value.len() as u64;
        self.write(move |txn| {
            txn.open_table(BATCHES)?.insert(id, value.as_slice())?;
            Ok(())
        })
        .await?;
        self.backlog.batch_added(len);
        Ok(id)
    }

    /// The oldest batches not yet detected.
    pub async fn pending_batches(&self, limit: usize) -> Result<Vec<StoredBatch>, SpoolError> {
        self.read(move |txn| {
            let table = txn.open_table(BATCHES)?;
            let mut batches = Vec::new();
            for row in table.iter()?.take(limit) {
                let (id, value) = row?;
                batches.push(StoredBatch::decode(id.value(), value.value()));
            }
            Ok(batches)
        })
        .await
    }

    /// Which of `keys` are inside the de-duplication window at `now_ms`.
    pub async fn already_seen(
        &self,
        keys: Vec<String>,
        now_ms: u64,
    ) -> Result<HashSet<String>, SpoolError> {
        self.read(move |txn| {
            let table = txn.open_table(SEEN)?;
            let mut seen = HashSet::new();
            for key in keys {
                if table
                    .get(key.as_str())?
                    .is_some_and(|until| until.value() > now_ms)
                {
                    seen.insert(key);
                }
            }
            Ok(seen)
        })
        .await
    }

    /// The correlation state the last detection pass saved.
    pub async fn correlation_state(&self) -> Result<Option<Vec<u8>>, SpoolError> {
        self.read(|txn| {
            let table = txn.open_table(CORRELATION)?;
            Ok(table
                .get(CORRELATION_STATE_KEY)?
                .map(|value| value.value().to_vec()))
        })
        .await
    }

    /// The stored known networks of `users` (those with any).
    pub async fn known_networks(
        &self,
        users: Vec<String>,
    ) -> Result<HashMap<String, Vec<u8>>, SpoolError> {
        self.read(move |txn| {
            let table = txn.open_table(KNOWN_NETWORKS)?;
            let mut found = HashMap::new();
            for user in users {
                if let Some(value) = table.get(user.as_str())? {
                    found.insert(user, value.value().to_vec());
                }
            }
            Ok(found)
        })
        .await
    }

    /// Commits the outcome of a detection pass: its batches leave, their keys, alerts,
    /// correlation inputs and known networks arrive, all in one transaction.
    pub async fn complete_batches(&self, commit: DetectionCommit) -> Result<(), SpoolError> {
        let DetectionCommit {
            batches: detected,
            outbox: rows,
            correlation_inputs,
            known_networks,
        } = commit;
        let mut removed_bytes = Vec::with_capacity(detected.len());
        let mut batch_ids = Vec::with_capacity(detected.len());
        let mut keys = Vec::new();
        for batch in detected {
            removed_bytes.push(batch.batch.encoded_len());
            batch_ids.push(batch.batch.id);
            keys.extend(
                batch
                    .seen_keys
                    .into_iter()
                    .map(|k| (k, batch.seen_until_ms)),
            );
        }
        let staged = self.stage_outbox(rows);
        let inputs: Vec<(u64, Vec<u8>)> = correlation_inputs
            .into_iter()
            .map(|input| (self.next_seq.fetch_add(1, Ordering::Relaxed), input))
            .collect();
        let added = staged_sizes(&staged);
        self.write(move |txn| {
            let mut batches = txn.open_table(BATCHES)?;
            for id in &batch_ids {
                batches.remove(*id)?;
            }
            let mut seen = txn.open_table(SEEN)?;
            let mut by_expiry = txn.open_table(SEEN_BY_EXPIRY)?;
            for (key, until) in &keys {
                if let Some(old) = seen.insert(key.as_str(), *until)? {
                    by_expiry.remove((old.value(), key.as_str()))?;
                }
                by_expiry.insert((*until, key.as_str()), ())?;
            }
            insert_outbox(txn, &staged)?;
            let mut pending = txn.open_table(CORRELATION_INPUTS)?;
            for (seq, input) in &inputs {
                pending.insert(*seq, input.as_slice())?;
            }
            let mut networks = txn.open_table(KNOWN_NETWORKS)?;
            for (user, value) in &known_networks {
                networks.insert(user.as_str(), value.as_slice())?;
            }
            Ok(())
        })
        .await?;
        for len in removed_bytes {
            self.backlog.batch_removed(len);
        }
        self.count_outbox_added(added);
        Ok(())
    }

    /// The oldest `limit` events waiting for the correlation step, with their sequence numbers.
    pub async fn correlation_inputs(
        &self,
        limit: usize,
    ) -> Result<Vec<(u64, Vec<u8>)>, SpoolError> {
        self.read(move |txn| {
            let table = txn.open_table(CORRELATION_INPUTS)?;
            let mut inputs = Vec::new();
            for row in table.iter()?.take(limit) {
                let (seq, value) = row?;
                inputs.push((seq.value(), value.value().to_vec()));
            }
            Ok(inputs)
        })
        .await
    }

    /// The token of the last shared correlation step this spool committed (cluster mode).
    pub async fn applied_correlation_token(&self) -> Result<Option<String>, SpoolError> {
        self.read(|txn| {
            let table = txn.open_table(CORRELATION)?;
            Ok(table
                .get(CORRELATION_APPLIED_KEY)?
                .map(|value| String::from_utf8_lossy(value.value()).into_owned()))
        })
        .await
    }

    /// Commits the outcome of a correlation step: its inputs leave, its alerts arrive, with the
    /// state (standalone) or the shared step's token (cluster), in one transaction.
    pub async fn complete_correlation(&self, commit: CorrelationCommit) -> Result<(), SpoolError> {
        let CorrelationCommit {
            consumed_through,
            outbox: rows,
            state,
            applied_token,
        } = commit;
        let staged = self.stage_outbox(rows);
        let added = staged_sizes(&staged);
        self.write(move |txn| {
            if let Some(through) = consumed_through {
                txn.open_table(CORRELATION_INPUTS)?
                    .retain_in(..=through, |_, _| false)?;
            }
            insert_outbox(txn, &staged)?;
            let mut correlation = txn.open_table(CORRELATION)?;
            if let Some(state) = &state {
                correlation.insert(CORRELATION_STATE_KEY, state.as_slice())?;
            }
            if let Some(token) = &applied_token {
                correlation.insert(CORRELATION_APPLIED_KEY, token.as_bytes())?;
            }
            Ok(())
        })
        .await?;
        self.count_outbox_added(added);
        Ok(())
    }

    /// Gives each new outbox row its sequence number and encoded value.
    fn stage_outbox(&self, rows: Vec<(String, OutboxRecord)>) -> Vec<StagedRow> {
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
    fn count_outbox_added(&self, added: Vec<(String, u64)>) {
        for (sink, len) in added {
            self.backlog.outbox_added(&sink, len);
        }
    }

    /// Moves a batch the detector cannot read out of the way, keeping its bytes for a person.
    pub async fn quarantine(&self, batch: StoredBatch) -> Result<(), SpoolError> {
        let len = batch.encoded_len();
        self.write(move |txn| {
            let mut value = batch.received_at_ms.to_le_bytes().to_vec();
            value.extend_from_slice(&batch.body);
            txn.open_table(QUARANTINE)?
                .insert(batch.id, value.as_slice())?;
            txn.open_table(BATCHES)?.remove(batch.id)?;
            Ok(())
        })
        .await?;
        self.backlog.batch_removed(len);
        Ok(())
    }

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

    /// Every dead-lettered alert, optionally of one sink.
    pub async fn dead_letters(&self, sink: Option<String>) -> Result<Vec<OutboxEntry>, SpoolError> {
        self.read(move |txn| {
            let table = txn.open_table(DEAD_LETTERS)?;
            let mut entries = Vec::new();
            for row in table.iter()? {
                let (key, value) = row?;
                let (name, seq) = key.value();
                if sink.as_deref().is_none_or(|wanted| wanted == name) {
                    entries.push(OutboxEntry::decode(name, seq, value.value())?);
                }
            }
            Ok(entries)
        })
        .await
    }

    /// Moves dead letters back to their outbox as new (attempts 0, due now), optionally only one
    /// sink's or one alert's. Returns the sinks and how many rows moved.
    pub async fn replay_dead_letters(
        &self,
        sink: Option<String>,
        alert_id: Option<String>,
    ) -> Result<Vec<OutboxEntry>, SpoolError> {
        let now = crate::clock::now_ms();
        let mut entries = self.matching_dead_letters(sink, alert_id).await?;
        for entry in &mut entries {
            let record = &mut entry.record;
            record.last_error = record
                .last_error
                .take()
                .map(|e| format!("replayed after: {e}"));
            record.attempts = 0;
            record.created_at_ms = now;
            record.next_attempt_at_ms = now;
        }
        let rows: Vec<(String, u64, Vec<u8>)> = entries
            .iter()
            .map(|e| (e.sink.clone(), e.seq, e.encode()))
            .collect();
        self.write(move |txn| {
            let mut dead = txn.open_table(DEAD_LETTERS)?;
            let mut outbox = txn.open_table(OUTBOX)?;
            for (sink, seq, value) in &rows {
                // Purged meanwhile by another admin call: leave it gone.
                if dead.remove((sink.as_str(), *seq))?.is_some() {
                    outbox.insert((sink.as_str(), *seq), value.as_slice())?;
                }
            }
            Ok(())
        })
        .await?;
        for entry in &mut entries {
            entry.stored_len = entry.encode().len() as u64;
            self.backlog.undead(&entry.sink);
            self.backlog.outbox_added(&entry.sink, entry.stored_len);
        }
        Ok(entries)
    }

    /// Deletes dead letters for good, optionally only one sink's or one alert's. Returns how many.
    pub async fn purge_dead_letters(
        &self,
        sink: Option<String>,
        alert_id: Option<String>,
    ) -> Result<usize, SpoolError> {
        let entries = self.matching_dead_letters(sink, alert_id).await?;
        let keys: Vec<(String, u64)> = entries.iter().map(|e| (e.sink.clone(), e.seq)).collect();
        let count = keys.len();
        let sinks: Vec<String> = keys.iter().map(|(sink, _)| sink.clone()).collect();
        self.write(move |txn| {
            let mut dead = txn.open_table(DEAD_LETTERS)?;
            for (sink, seq) in &keys {
                dead.remove((sink.as_str(), *seq))?;
            }
            Ok(())
        })
        .await?;
        sinks.iter().for_each(|sink| self.backlog.undead(sink));
        Ok(count)
    }

    async fn matching_dead_letters(
        &self,
        sink: Option<String>,
        alert_id: Option<String>,
    ) -> Result<Vec<OutboxEntry>, SpoolError> {
        let mut entries = self.dead_letters(sink).await?;
        entries.retain(|e| alert_id.as_ref().is_none_or(|id| *id == e.record.alert_id));
        Ok(entries)
    }

    /// Forgets de-duplication keys whose window ended before `now_ms`, at most `max` per call.
    /// Returns how many were forgotten.
    pub async fn prune_seen(&self, now_ms: u64, max: usize) -> Result<usize, SpoolError> {
        let expired: Vec<(u64, String)> = self
            .read(move |txn| {
                let table = txn.open_table(SEEN_BY_EXPIRY)?;
                let mut expired = Vec::new();
                for row in table.range((0, "")..(now_ms, ""))?.take(max) {
                    let (key, _) = row?;
                    let (until, event_key) = key.value();
                    expired.push((until, event_key.to_owned()));
                }
                Ok(expired)
            })
            .await
            // A failed read must not skip the heartbeat below: that write is what reopens a
            // spool whose disk failed, even when no request comes.
            .unwrap_or_default();
        let count = expired.len();
        // Also a heartbeat: an empty write tells readiness whether the disk still takes commits.
        self.write(move |txn| {
            let mut seen = txn.open_table(SEEN)?;
            let mut by_expiry = txn.open_table(SEEN_BY_EXPIRY)?;
            for (until, key) in &expired {
                by_expiry.remove((*until, key.as_str()))?;
                if seen.get(key.as_str())?.is_some_and(|v| v.value() == *until) {
                    seen.remove(key.as_str())?;
                }
            }
            Ok(())
        })
        .await?;
        Ok(count)
    }
}

impl Drop for Spool {
    fn drop(&mut self) {
        // Closing the channel lets the writer commit what is queued and stop; wait for it so the
        // database is closed cleanly before the process exits.
        drop(self.jobs.take());
        if let Some(writer) = self.writer.take() {
            let _ = writer.join();
        }
    }
}

fn create_tables(db: &Database) -> Result<(), SpoolError> {
    let txn = db.begin_write()?;
    txn.open_table(BATCHES)?;
    txn.open_table(QUARANTINE)?;
    txn.open_table(SEEN)?;
    txn.open_table(SEEN_BY_EXPIRY)?;
    txn.open_table(OUTBOX)?;
    txn.open_table(DEAD_LETTERS)?;
    txn.open_table(CORRELATION)?;
    txn.open_table(CORRELATION_INPUTS)?;
    txn.open_table(KNOWN_NETWORKS)?;
    txn.commit()?;
    Ok(())
}

/// Each staged row's sink and size, for the backlog once committed.
fn staged_sizes(staged: &[StagedRow]) -> Vec<(String, u64)> {
    staged
        .iter()
        .map(|(entry, value)| (entry.sink.clone(), value.len() as u64))
        .collect()
}

/// Inserts staged rows into the outbox.
fn insert_outbox(txn: &redb::WriteTransaction, staged: &[StagedRow]) -> Result<(), redb::Error> {
    let mut outbox = txn.open_table(OUTBOX)?;
    for (entry, value) in staged {
        outbox.insert((entry.sink.as_str(), entry.seq), value.as_slice())?;
    }
    Ok(())
}
