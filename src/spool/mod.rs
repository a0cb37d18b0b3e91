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
//! | `correlation` | `state` / `applied` | the correlation state as of its last snapshot, LZ4-compressed ([`compressed`]) (standalone) / the last shared step committed here (cluster) | correlation |
//! | `correlation_journal` | sequence | what a detection pass fed the correlations since that snapshot, one row per pass: its entries as JSON lines, LZ4-compressed (standalone) | replayed onto the snapshot at start |
//! | `known_networks` | user login | the networks they signed in from | `factorwatch.new_ip` / `new_asn` |
//! | `incidents` | `<okta org>:<user login>` | the user's incident as the detector folds it (JSON) | `incident` on alerts, `notify = "first"` (standalone); deleted by a later pass once `incident_window` passed since its last alert |
//! | `dead_letters` | (sink name, sequence) | [`OutboxRecord`] as JSON | alert the sink refused or that ran out of attempts |
//! | `held_batches` | (due time, Unix ms; sequence) | as `batches` | System Log events a hook could deliver, waiting out the hook's grace before detection |
//! | `reconcile` | `cursor` / `hook_last_delivery` | the System Log `next` link after the last page stored / when the event hook last delivered (Unix ms) | where polling goes on / the silence check |
//! | `responses` | action id (UUIDv5 of alert, response, action) | the action's record (JSON) | what a response did about an alert; written with its reports to the sinks |
//!
//! The tables are defined below; each file holds the reads and writes of its tables:
//! [`batches`] (`batches`, `quarantine`, `known_networks`, and the detection commit),
//! [`outbox`], [`dead_letters`], [`correlation`] (`correlation_inputs`, `correlation`,
//! `correlation_journal`), [`incidents`] (`incidents`), [`system_log`] (`held_batches`, `reconcile`), [`responses`] (`responses`).
//!
//! # On-disk layout: `seen/`
//! Each event key (its hash), the batch that claimed it, and until when: an active log and
//! sealed, sorted segments, described in [`window`]. A `seen.redb` from an earlier version is
//! read into it at open, then deleted. [`dedup`] is the spool's side of it: the claims as
//! detection asks for them, pruning, and that import.
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
//! - A System Log page and the cursor after it are stored in one transaction; its held events
//!   move to `batches` in one transaction too.
//! - An outbox row is removed only once its sink acknowledged it, or when it moves to `dead_letters`
//!   in the same transaction.

mod backlog;
mod batch_format;
mod batches;
pub mod compressed;
mod config;
mod correlation;
mod dead_letters;
mod dedup;
mod error;
mod gauges;
mod handle;
mod incidents;
mod outbox;
mod responses;
mod store;
mod system_log;
mod window;
mod writer;

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use redb::{Database, TableDefinition};

use backlog::Backlog;
pub use backlog::{BacklogSnapshot, SinkBacklog};
pub use batches::{DetectionCommit, StoredBatch};
pub use config::StorageConfig;
pub use correlation::{CorrelationCommit, StoredCorrelation};
pub use error::SpoolError;
pub use outbox::{OutboxEntry, OutboxRecord};
use store::Store;
pub use system_log::LogPageCommit;
use window::Window;
pub use window::WindowSize;

const BATCHES: TableDefinition<u64, &[u8]> = TableDefinition::new("batches");
const QUARANTINE: TableDefinition<u64, &[u8]> = TableDefinition::new("quarantine");
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
/// System Log pages' events a hook could deliver, until their due time (see [`system_log`]).
const HELD_BATCHES: TableDefinition<(u64, u64), &[u8]> = TableDefinition::new("held_batches");
/// The System Log poller's cursor.
const RECONCILE: TableDefinition<&str, &[u8]> = TableDefinition::new("reconcile");
/// User login to the networks they signed in from, as the detector saves them.
const KNOWN_NETWORKS: TableDefinition<&str, &[u8]> = TableDefinition::new("known_networks");
/// Standalone: each target user's incident, as the detector folds it (see [`incidents`]).
const INCIDENTS: TableDefinition<&str, &[u8]> = TableDefinition::new("incidents");

/// The responses' ledger: each action's record by its id (see [`responses`]).
const RESPONSES: TableDefinition<&str, &[u8]> = TableDefinition::new("responses");

/// File name of the database inside `data_dir`.
pub const SPOOL_FILE: &str = "spool.redb";
/// Directory of the de-duplication window inside `data_dir`.
pub const WINDOW_DIR: &str = "seen";

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
    /// When the event hook last delivered a batch (Unix ms; 0: never), see
    /// [`Spool::last_delivery_ms`].
    last_delivery_ms: AtomicU64,
    /// The last `incidents` key the expiry sweep checked; `None`: it starts from the first
    /// ([`Spool::incidents_to_sweep`]).
    incident_sweep_after: Mutex<Option<String>>,
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
        let last_delivery_ms = system_log::recorded_delivery(&*store.database()?)?;
        let window = dedup::open_window(dir, crate::clock::now_ms())?;
        let last_claimed = window.highest_batch_id();
        Ok(Self {
            store,
            window_size: Arc::new(Mutex::new(window.size())),
            window: Arc::new(Mutex::new(window)),
            path,
            next_batch_id: AtomicU64::new(scan.next_batch_id.max(last_claimed + 1)),
            next_seq: AtomicU64::new(scan.next_seq),
            backlog: Backlog::new(max_backlog_bytes, scan.totals),
            last_delivery_ms: AtomicU64::new(last_delivery_ms),
            incident_sweep_after: Mutex::new(None),
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

    /// A number that grows with every batch appended (the next batch id): unchanged between two
    /// looks, nothing arrived in between.
    pub fn batches_appended(&self) -> u64 {
        self.next_batch_id.load(Ordering::Relaxed)
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
    txn.open_table(INCIDENTS)?;
    txn.open_table(HELD_BATCHES)?;
    txn.open_table(RECONCILE)?;
    txn.open_table(RESPONSES)?;
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
