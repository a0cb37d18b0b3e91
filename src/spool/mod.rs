//! The durable spool: batches waiting for detection, alerts waiting for delivery, dead letters,
//! and the de-duplication window, in `<data_dir>`: the first three in an embedded [redb] database,
//! `spool.redb`, with its group-commit writer thread ([`store`]); the window in append-only files
//! of its own, `seen/` ([`window`]).
//!
//! # On-disk layout: `spool.redb`
//! | table | key | value | meaning |
//! |---|---|---|---|
//! | `batches` | batch id (u64, increasing) | 8-byte LE receive time (Unix ms) + the request body, LZ4-compressed ([`batch_format`]) | acknowledged to Okta, not yet detected |
//! | `quarantine` | batch id | as `batches` | a stored batch the detector could not read; kept for a person to look at |
//! | `outbox` | (sink name, sequence) | [`OutboxRecord`] as JSON | alert not yet delivered to that sink |
//! | `correlation_inputs` | sequence | an event that matched a rule, as the correlation step reads it | detected, not yet correlated |
//! | `correlation` | `state` / `applied` | the correlation state as of its last snapshot (standalone) / the last shared step committed here (cluster) | correlation |
//! | `correlation_journal` | sequence | what a detection pass fed the correlations since that snapshot (standalone) | replayed onto the snapshot at start |
//! | `known_networks` | user login | the networks they signed in from | `factorwatch.new_ip` / `new_asn` |
//!
//! | `dead_letters` | (sink name, sequence) | [`OutboxRecord`] as JSON | alert the sink refused or that ran out of attempts |
//!
//! # On-disk layout: `seen/`
//! Each event key (its hash), the batch that claimed it, and until when: an active log and
//! sealed, sorted segments, described in [`window`]. A `seen.redb` from an earlier version is
//! read into it at open, then deleted.
//!
//! # Invariants
//! - A batch is answered 2xx only after the commit holding it returned (redb's default durability
//!   fsyncs on commit); see [`writer`] for how concurrent requests share one fsync.
//! - Detection of a batch first records its event keys in `seen/`, each claimed by the batch,
//!   then its removal and its alerts (one outbox row per sink) in one `spool.redb` transaction:
//!   a crash leaves either the batch or its alerts, never neither. A batch detected again after
//!   a crash between the two commits finds its own claims, which do not make its events
//!   duplicates; batch ids are not given again while a claim of theirs is on record, so no other
//!   batch can pass for it.
//! - Detection of a batch also stores, in that transaction, the events the correlation step
//!   still has to see; the step removes them in the transaction that queues its alerts.
//! - An outbox row is removed only once its sink acknowledged it, or when it moves to `dead_letters`
//!   in the same transaction.

mod backlog;
mod batch_format;
mod config;
mod gauges;
mod handle;
mod store;
mod window;
mod writer;

use std::collections::{HashMap, HashSet};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use redb::{Database, ReadableDatabase, ReadableTable, TableDefinition};
use serde::{Deserialize, Serialize};
use serde_json::value::RawValue;

use backlog::Backlog;
pub use backlog::{BacklogSnapshot, SinkBacklog};
pub use config::StorageConfig;
use store::Store;
pub use window::WindowSize;
use window::{Claim, Window, key_hash};

const BATCHES: TableDefinition<u64, &[u8]> = TableDefinition::new("batches");
const QUARANTINE: TableDefinition<u64, &[u8]> = TableDefinition::new("quarantine");
/// Where the previous version kept the window, in `seen.redb`: event key to (expiry, batch id).
/// Read into `seen/` at open.
const SEEN_REDB_CLAIMS: TableDefinition<&str, (u64, u64)> = TableDefinition::new("seen");
/// Where spools before `seen.redb` kept the window; dropped at open.
const LEGACY_SEEN: TableDefinition<&str, u64> = TableDefinition::new("seen");
const LEGACY_SEEN_BY_EXPIRY: TableDefinition<(u64, &str), ()> =
    TableDefinition::new("seen_by_expiry");
const OUTBOX: TableDefinition<(&str, u64), &[u8]> = TableDefinition::new("outbox");
const DEAD_LETTERS: TableDefinition<(&str, u64), &[u8]> = TableDefinition::new("dead_letters");
/// [`CORRELATION_STATE_KEY`]: the correlation windows and timers (standalone);
/// [`CORRELATION_APPLIED_KEY`]: the token of the last shared correlation step committed here.
const CORRELATION: TableDefinition<&str, &[u8]> = TableDefinition::new("correlation");
const CORRELATION_STATE_KEY: &str = "state";
const CORRELATION_APPLIED_KEY: &str = "applied";
/// Standalone: what the detection passes since the stored state's snapshot fed the
/// correlations, in order; emptied by the next snapshot.
const CORRELATION_JOURNAL: TableDefinition<u64, &[u8]> =
    TableDefinition::new("correlation_journal");
/// Events detected but not yet correlated, in detection order.
const CORRELATION_INPUTS: TableDefinition<u64, &[u8]> = TableDefinition::new("correlation_inputs");
/// User login to the networks they signed in from, as the detector saves them.
const KNOWN_NETWORKS: TableDefinition<&str, &[u8]> = TableDefinition::new("known_networks");

/// File name of the database inside `data_dir`.
pub const SPOOL_FILE: &str = "spool.redb";
/// Directory of the de-duplication window inside `data_dir`.
pub const WINDOW_DIR: &str = "seen";
/// The previous version's de-duplication window inside `data_dir`, imported at open.
const SEEN_REDB_FILE: &str = "seen.redb";

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

/// A batch read back for detection.
#[derive(Debug, Clone)]
pub struct StoredBatch {
    /// Its id in the `batches` table.
    pub id: u64,
    /// When it was stored (Unix ms).
    pub received_at_ms: u64,
    /// The request body exactly as received.
    pub body: Vec<u8>,
    /// Bytes its row takes in `batches` (the body compressed): what the backlog counts.
    pub stored_len: u64,
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

/// Everything one detection pass changes, committed in one transaction.
#[derive(Default)]
pub struct DetectionCommit {
    /// The batches processed, which leave the spool (their keys were claimed first, with
    /// [`Spool::claim_seen`]).
    pub batches: Vec<StoredBatch>,
    /// One record per (sink, alert), for the alerts of the batches and of timers that ran out.
    pub outbox: Vec<(String, OutboxRecord)>,
    /// Events of these batches that matched a rule, for the correlation step of a fleet
    /// (encoded by the detector), in order; empty standalone.
    pub correlation_inputs: Vec<Vec<u8>>,
    /// Standalone: a new snapshot of the correlation state, which replaces the stored one and
    /// empties the journal.
    pub correlation_state: Option<Vec<u8>>,
    /// Standalone: what the pass fed the correlations (encoded by the detector), appended to the
    /// journal after any new snapshot.
    pub correlation_journal: Vec<Vec<u8>>,
    /// Users whose known networks changed, with their new value.
    pub known_networks: Vec<(String, Vec<u8>)>,
}

/// The standalone correlation state as stored: the last snapshot, and what detection fed the
/// correlations since, oldest first.
#[derive(Debug, Default)]
pub struct StoredCorrelation {
    /// The state as of the last snapshot, if one was taken.
    pub snapshot: Option<Vec<u8>>,
    /// The journal entries since, to replay onto it.
    pub journal: Vec<Vec<u8>>,
}

/// Everything one correlation step changes, committed in one transaction.
#[derive(Default)]
pub struct CorrelationCommit {
    /// Inputs up to and including this sequence number were correlated, and leave the spool.
    pub consumed_through: Option<u64>,
    /// One record per (sink, alert) for the correlation alerts of the step.
    pub outbox: Vec<(String, OutboxRecord)>,
    /// The token of the shared step this commit completes.
    pub applied_token: Option<String>,
}

/// An outbox row ready to insert, with its encoded value.
type StagedRow = (OutboxEntry, Vec<u8>);

/// The embedded spool. Cheap to share behind an `Arc`; dropping the last one stops the writers
/// after they committed everything already queued.
pub struct Spool {
    store: Store,
    window: Arc<Mutex<Window>>,
    /// The window's size after its last change, for `/metrics` without waiting on its lock.
    window_size: Arc<Mutex<WindowSize>>,
    path: PathBuf,
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
    /// Opens (or creates) `<dir>/spool.redb`, repairing it after a crash, and starts the writer;
    /// opens the de-duplication window in `<dir>/seen/`, importing a `seen.redb` once.
    pub fn open(dir: &Path, max_backlog_bytes: u64) -> Result<Self, SpoolError> {
        std::fs::create_dir_all(dir).map_err(|err| {
            let advice = handle::permission_problem(&err).map(|advice| format!(". {advice}"));
            SpoolError::storage(
                format!(
                    "cannot create data directory {}: {err}{}",
                    dir.display(),
                    advice.unwrap_or_default()
                ),
                err,
            )
        })?;
        let path = dir.join(SPOOL_FILE);
        let store = Store::open(&path, "spool-writer", create_tables)?;
        let scan = backlog::scan(&*store.database()?)?;
        let now_ms = crate::clock::now_ms();
        let window_dir = dir.join(WINDOW_DIR);
        let mut window = Window::open(&window_dir, now_ms).map_err(|err| {
            SpoolError::storage(
                format!(
                    "cannot open the de-duplication window in {}: {err}",
                    window_dir.display()
                ),
                err,
            )
        })?;
        import_seen_redb(dir, &mut window, now_ms)?;
        let last_claimed = window.highest_batch_id();
        Ok(Self {
            store,
            window_size: Arc::new(Mutex::new(window.size())),
            window: Arc::new(Mutex::new(window)),
            path,
            next_batch_id: AtomicU64::new(scan.next_batch_id.max(last_claimed + 1)),
            next_seq: AtomicU64::new(scan.next_seq),
            backlog: Backlog::new(max_backlog_bytes, scan.totals),
        })
    }

    /// The de-duplication window's size after its last change.
    pub fn window_size(&self) -> WindowSize {
        self.window_size
            .lock()
            .map(|size| *size)
            .unwrap_or_default()
    }

    /// The database file.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Current backlog and health, for `/readyz` and `/metrics`.
    pub fn backlog(&self) -> BacklogSnapshot {
        self.backlog.snapshot(self.store.writable())
    }

    /// Runs `apply` in the next group commit of `spool.redb` and waits until it is durable.
    async fn write(
        &self,
        apply: impl FnOnce(&redb::WriteTransaction) -> Result<(), redb::Error> + Send + 'static,
    ) -> Result<(), SpoolError> {
        self.store.write(apply).await
    }

    /// Runs a read-only closure on `spool.redb`, on a blocking thread.
    async fn read<T: Send + 'static>(
        &self,
        read: impl FnOnce(&redb::ReadTransaction) -> Result<T, SpoolError> + Send + 'static,
    ) -> Result<T, SpoolError> {
        self.store.read(read).await
    }

    /// Stores a batch durably. `Ok` means it is on disk; refuses with [`SpoolError::Full`] when the
    /// backlog is at its limit.
    pub async fn append_batch(&self, received_at_ms: u64, body: &[u8]) -> Result<u64, SpoolError> {
        self.backlog.check_room()?;
        let id = self.next_batch_id.fetch_add(1, Ordering::Relaxed);
        let value = batch_format::encode(received_at_ms, body);
        let len = value.len() as u64;
        self.write(move |txn| {
            txn.open_table(BATCHES)?.insert(id, value.as_slice())?;
            Ok(())
        })
        .await?;
        self.backlog.batch_added(len);
        Ok(id)
    }

    /// The oldest batches not yet detected: at most `limit`, and no more once their bodies hold
    /// `max_bytes` uncompressed (always at least one).
    pub async fn pending_batches(
        &self,
        limit: usize,
        max_bytes: u64,
    ) -> Result<Vec<StoredBatch>, SpoolError> {
        self.read(move |txn| {
            let table = txn.open_table(BATCHES)?;
            let (mut batches, mut bytes) = (Vec::new(), 0);
            for row in table.iter()?.take(limit) {
                if bytes >= max_bytes {
                    break;
                }
                let (id, value) = row?;
                let batch = batch_format::decode(id.value(), value.value());
                bytes += batch.body.len() as u64;
                batches.push(batch);
            }
            Ok(batches)
        })
        .await
    }

    /// Which of `keys` (each with the batch it is in) another batch claimed inside the
    /// de-duplication window at `now_ms`. A batch's own claims (left by a detection that crashed
    /// before its commit) do not count.
    pub async fn already_seen(
        &self,
        keys: Vec<(String, u64)>,
        now_ms: u64,
    ) -> Result<HashSet<String>, SpoolError> {
        self.with_window(move |window| {
            let mut seen = HashSet::new();
            for (key, batch_id) in keys {
                let claimed = window.claim(&key_hash(&key))?;
                if claimed.is_some_and(|c| c.until_ms > now_ms && c.batch_id != batch_id) {
                    seen.insert(key);
                }
            }
            Ok(seen)
        })
        .await
    }

    /// Claims `keys` (each with the batch it is in) until `until_ms`, durably, in `seen/`.
    /// The detector does this before it commits the batches' detection
    /// ([`Spool::complete_batches`]), while it evaluates them.
    pub async fn claim_seen(
        &self,
        keys: Vec<(String, u64)>,
        until_ms: u64,
    ) -> Result<(), SpoolError> {
        if keys.is_empty() {
            return Ok(());
        }
        let claims: Vec<_> = keys
            .iter()
            .map(|(key, batch_id)| {
                let claim = Claim {
                    until_ms,
                    batch_id: *batch_id,
                };
                (key_hash(key), claim)
            })
            .collect();
        self.with_window(move |window| window.record(&claims, crate::clock::now_ms()))
            .await
    }

    /// Runs `work` on the de-duplication window, on a blocking thread (it reads and syncs files).
    async fn with_window<T: Send + 'static>(
        &self,
        work: impl FnOnce(&mut Window) -> std::io::Result<T> + Send + 'static,
    ) -> Result<T, SpoolError> {
        let (window, size) = (self.window.clone(), self.window_size.clone());
        tokio::task::spawn_blocking(move || {
            let mut window = window.lock().map_err(|_| {
                SpoolError::unavailable("the de-duplication window's lock was poisoned")
            })?;
            let done = work(&mut window)
                .map_err(|err| SpoolError::storage(format!("de-duplication window: {err}"), err));
            if let Ok(mut size) = size.lock() {
                *size = window.size();
            }
            done
        })
        .await
        .map_err(|err| {
            SpoolError::storage(format!("de-duplication window task failed: {err}"), err)
        })?
    }

    /// The standalone correlation state: the last snapshot and the journal since.
    pub async fn correlation_state(&self) -> Result<StoredCorrelation, SpoolError> {
        self.read(|txn| {
            let snapshot = txn
                .open_table(CORRELATION)?
                .get(CORRELATION_STATE_KEY)?
                .map(|value| value.value().to_vec());
            let mut journal = Vec::new();
            for row in txn.open_table(CORRELATION_JOURNAL)?.iter()? {
                journal.push(row?.1.value().to_vec());
            }
            Ok(StoredCorrelation { snapshot, journal })
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

    /// Commits the outcome of a detection pass: its batches leave and their alerts, correlation
    /// inputs and known networks arrive, in one transaction.
    pub async fn complete_batches(&self, commit: DetectionCommit) -> Result<(), SpoolError> {
        let DetectionCommit {
            batches: detected,
            outbox: rows,
            correlation_inputs,
            correlation_state,
            correlation_journal,
            known_networks,
        } = commit;
        let removed_bytes: Vec<u64> = detected.iter().map(|batch| batch.stored_len).collect();
        let batch_ids: Vec<u64> = detected.iter().map(|batch| batch.id).collect();
        let staged = self.stage_outbox(rows);
        let inputs = self.sequenced(correlation_inputs);
        let journal = self.sequenced(correlation_journal);
        let added = staged_sizes(&staged);
        self.write(move |txn| {
            let mut batches = txn.open_table(BATCHES)?;
            for id in &batch_ids {
                batches.remove(*id)?;
            }
            insert_outbox(txn, &staged)?;
            insert_sequenced(txn, CORRELATION_INPUTS, &inputs)?;
            if let Some(state) = &correlation_state {
                txn.open_table(CORRELATION)?
                    .insert(CORRELATION_STATE_KEY, state.as_slice())?;
                // The snapshot holds everything the journal did.
                txn.open_table(CORRELATION_JOURNAL)?.retain(|_, _| false)?;
            }
            insert_sequenced(txn, CORRELATION_JOURNAL, &journal)?;
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

    /// Commits the outcome of a shared correlation step: its inputs leave, its alerts and the
    /// step's token arrive, in one transaction.
    pub async fn complete_correlation(&self, commit: CorrelationCommit) -> Result<(), SpoolError> {
        let CorrelationCommit {
            consumed_through,
            outbox: rows,
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
            if let Some(token) = &applied_token {
                txn.open_table(CORRELATION)?
                    .insert(CORRELATION_APPLIED_KEY, token.as_bytes())?;
            }
            Ok(())
        })
        .await?;
        self.count_outbox_added(added);
        Ok(())
    }

    /// Gives each of `values` the next sequence number.
    fn sequenced(&self, values: Vec<Vec<u8>>) -> Vec<(u64, Vec<u8>)> {
        values
            .into_iter()
            .map(|value| (self.next_seq.fetch_add(1, Ordering::Relaxed), value))
            .collect()
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

    /// Moves a batch the detector cannot read out of the way, its stored bytes intact for a
    /// person.
    pub async fn quarantine(&self, batch: StoredBatch) -> Result<(), SpoolError> {
        let id = batch.id;
        self.write(move |txn| {
            let mut batches = txn.open_table(BATCHES)?;
            if let Some(value) = batches.remove(id)? {
                txn.open_table(QUARANTINE)?.insert(id, value.value())?;
            }
            Ok(())
        })
        .await?;
        self.backlog.batch_removed(batch.stored_len);
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

    /// Forgets de-duplication keys whose window ended by `now_ms` (whole segments of them), and
    /// seals an hour-old log. Returns how many keys were forgotten.
    pub async fn prune_seen(&self, now_ms: u64) -> Result<usize, SpoolError> {
        // Also a heartbeat: an empty write tells readiness whether the disk still takes commits,
        // and is what reopens a spool whose disk failed, even when no request comes.
        let heartbeat = self.write(|_| Ok(())).await;
        let forgotten = self.with_window(move |window| window.prune(now_ms)).await?;
        heartbeat.map(|()| forgotten)
    }
}

fn create_tables(db: &Database) -> Result<(), SpoolError> {
    let txn = db.begin_write()?;
    txn.open_table(BATCHES)?;
    txn.open_table(QUARANTINE)?;
    txn.open_table(OUTBOX)?;
    txn.open_table(DEAD_LETTERS)?;
    txn.open_table(CORRELATION)?;
    txn.open_table(CORRELATION_INPUTS)?;
    txn.open_table(CORRELATION_JOURNAL)?;
    txn.open_table(KNOWN_NETWORKS)?;
    // The window moved to seen.redb; an older spool's copy only takes space. Dropping it means a
    // redelivery straddling the upgrade alerts again, with the same alert id.
    if txn.delete_table(LEGACY_SEEN)? | txn.delete_table(LEGACY_SEEN_BY_EXPIRY)? {
        tracing::info!(
            "the de-duplication window moved to seen.redb; the spool's old copy was dropped"
        );
    }
    txn.commit()?;
    Ok(())
}

/// Reads a `seen.redb` (where the previous version kept the window) into `window`, then deletes
/// it, so an upgrade forgets no claim still in force.
fn import_seen_redb(dir: &Path, window: &mut Window, now_ms: u64) -> Result<(), SpoolError> {
    let path = dir.join(SEEN_REDB_FILE);
    if !path.exists() {
        return Ok(());
    }
    let cannot = |err: String| {
        SpoolError::storage(
            format!(
                "cannot import the de-duplication window from {}: {err}; moving that file away \
             starts without it (events Okta delivers again may alert again, with the same alert id)",
                path.display()
            ),
            err,
        )
    };
    let claims = seen_redb_claims(&path, now_ms).map_err(|err| cannot(err.to_string()))?;
    window
        .record(&claims, now_ms)
        .and_then(|()| std::fs::remove_file(&path))
        .map_err(|err| cannot(err.to_string()))?;
    tracing::info!(
        claims = claims.len(),
        "the de-duplication window moved from seen.redb to seen/; its claims in force were copied"
    );
    Ok(())
}

/// The claims of a `seen.redb` still in force at `now_ms`.
fn seen_redb_claims(
    path: &Path,
    now_ms: u64,
) -> Result<Vec<(window::KeyHash, Claim)>, redb::Error> {
    // The spool's small cache: the file can be gigabytes, and it is read once, in order.
    let db = Database::builder()
        .set_cache_size(handle::CACHE_BYTES)
        .open(path)?;
    let txn = db.begin_read()?;
    let mut claims = Vec::new();
    for row in txn.open_table(SEEN_REDB_CLAIMS)?.iter()? {
        let (key, claim) = row?;
        let (until_ms, batch_id) = claim.value();
        if until_ms > now_ms {
            claims.push((key_hash(key.value()), Claim { until_ms, batch_id }));
        }
    }
    Ok(claims)
}

/// Each staged row's sink and size, for the backlog once committed.
fn staged_sizes(staged: &[StagedRow]) -> Vec<(String, u64)> {
    staged
        .iter()
        .map(|(entry, value)| (entry.sink.clone(), value.len() as u64))
        .collect()
}

/// Inserts staged rows into the outbox.
/// Inserts `rows` (sequence number, value) into `table`; leaves it unopened when there are none.
fn insert_sequenced(
    txn: &redb::WriteTransaction,
    table: TableDefinition<u64, &[u8]>,
    rows: &[(u64, Vec<u8>)],
) -> Result<(), redb::Error> {
    if rows.is_empty() {
        return Ok(());
    }
    let mut table = txn.open_table(table)?;
    for (seq, value) in rows {
        table.insert(*seq, value.as_slice())?;
    }
    Ok(())
}

fn insert_outbox(txn: &redb::WriteTransaction, staged: &[StagedRow]) -> Result<(), redb::Error> {
    let mut outbox = txn.open_table(OUTBOX)?;
    for (entry, value) in staged {
        outbox.insert((entry.sink.as_str(), entry.seq), value.as_slice())?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_batch_detected_again_is_no_duplicate_of_itself_but_another_batch_is() {
        let dir = tempfile::TempDir::new().unwrap();
        let spool = Spool::open(dir.path(), u64::MAX).unwrap();
        let id = spool.append_batch(1, b"{}").await.unwrap();
        let batch = spool.pending_batches(1, u64::MAX).await.unwrap().remove(0);
        // Detection claimed the key, then stopped before its spool commit.
        spool
            .claim_seen(vec![("uuid-1".to_owned(), batch.id)], 10_000)
            .await
            .unwrap();
        let seen_by = |batch_id: u64, now_ms: u64| {
            let spool = &spool;
            async move {
                spool
                    .already_seen(vec![("uuid-1".to_owned(), batch_id)], now_ms)
                    .await
                    .unwrap()
            }
        };
        assert!(seen_by(id, 5_000).await.is_empty(), "its own claim");
        assert!(seen_by(id + 1, 5_000).await.contains("uuid-1"));
        assert!(seen_by(id + 1, 10_001).await.is_empty(), "the window ended");
    }

    #[tokio::test]
    async fn batch_ids_are_not_reused_once_the_spool_is_empty() {
        let dir = tempfile::TempDir::new().unwrap();
        let first = {
            let spool = Spool::open(dir.path(), u64::MAX).unwrap();
            let id = spool.append_batch(1, b"{}").await.unwrap();
            let batch = spool.pending_batches(1, u64::MAX).await.unwrap().remove(0);
            spool
                .claim_seen(vec![("uuid-1".to_owned(), id)], u64::MAX)
                .await
                .unwrap();
            let commit = DetectionCommit {
                batches: vec![batch],
                ..DetectionCommit::default()
            };
            spool.complete_batches(commit).await.unwrap();
            assert_eq!(spool.backlog().batches, 0);
            id
        };
        let spool = Spool::open(dir.path(), u64::MAX).unwrap();
        let next = spool.append_batch(2, b"{}").await.unwrap();
        assert!(next > first, "batch id {first} was given again");
        let seen = spool
            .already_seen(vec![("uuid-1".to_owned(), next)], 3)
            .await
            .unwrap();
        assert!(seen.contains("uuid-1"), "the window survives the restart");
    }

    #[tokio::test]
    async fn an_earlier_versions_seen_redb_is_imported_and_deleted() {
        let dir = tempfile::TempDir::new().unwrap();
        let now = crate::clock::now_ms();
        {
            let db = Database::create(dir.path().join(SEEN_REDB_FILE)).unwrap();
            let txn = db.begin_write().unwrap();
            {
                let mut claims = txn.open_table(SEEN_REDB_CLAIMS).unwrap();
                claims.insert("uuid-live", (now + 60_000, 41)).unwrap();
                claims.insert("uuid-ended", (now - 1, 40)).unwrap();
            }
            txn.commit().unwrap();
        }
        let spool = Spool::open(dir.path(), u64::MAX).unwrap();
        assert!(!dir.path().join(SEEN_REDB_FILE).exists());
        let next = spool.append_batch(now, b"{}").await.unwrap();
        assert!(
            next > 41,
            "batch id {next} could pass for the claim of batch 41"
        );
        let keys = ["uuid-live", "uuid-ended"].map(|key| (key.to_owned(), next));
        let seen = spool.already_seen(keys.to_vec(), now).await.unwrap();
        assert_eq!(seen, HashSet::from(["uuid-live".to_owned()]));
    }
}
