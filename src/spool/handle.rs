//! The open database, which the writer replaces after a failed commit.
//!
//! redb latches an I/O failure (a full disk, say): every later operation answers `PreviousIo`
//! until the database is closed and opened again, which also repairs it back to its last
//! commit. So the database sits behind this handle: a reader takes the current one for the
//! length of one transaction, and the writer reopens it after a failed commit, once the readers
//! let go. Nothing committed is lost by a reopen; what failed to commit was never acknowledged.

use std::path::{Path, PathBuf};
use std::sync::{Arc, RwLock};
use std::time::{Duration, Instant};

use redb::Database;

use super::SpoolError;

/// Memory redb may use for its page cache and write buffer. redb's default is 1 GiB, and it fills
/// it: a backlog of batches or a large `seen` table made the process grow to about that size in
/// the load benchmark. The spool is read mostly just after it was written, so the operating
/// system's page cache serves what redb no longer keeps. 2 MiB still holds a commit's pages (a
/// detection pass reads and deletes at most about 1 MiB of batches); a larger cache added to the
/// RSS under load, not to the throughput (BENCHMARKS.md, "Latest changes", 4.).
pub(super) const CACHE_BYTES: usize = 2 * 1024 * 1024;

/// How long a reopen waits for readers to finish their transactions.
const READERS_GRACE: Duration = Duration::from_secs(5);

/// The spool's database, reopened in place after a storage error.
pub(super) struct DbHandle {
    path: PathBuf,
    current: RwLock<Option<Arc<Database>>>,
}

impl DbHandle {
    /// Opens `path` (creating or repairing it).
    pub fn open(path: &Path) -> Result<Self, SpoolError> {
        Ok(Self {
            path: path.to_owned(),
            current: RwLock::new(Some(Arc::new(open_database(path)?))),
        })
    }

    /// The database to run one transaction on.
    pub fn get(&self) -> Result<Arc<Database>, SpoolError> {
        self.current
            .read()
            .expect("spool handle lock poisoned")
            .clone()
            .ok_or_else(|| {
                SpoolError::unavailable(format!(
                    "spool {} could not be reopened after a storage error; it is retried with \
                     every write (free disk space, check the disk)",
                    self.path.display()
                ))
            })
    }

    /// Closes the database and opens it again; on failure the next call tries again.
    pub fn reopen(&self) -> Result<(), SpoolError> {
        let taken = self
            .current
            .write()
            .expect("spool handle lock poisoned")
            .take();
        if let Some(old) = taken {
            let closed = close_when_unused(old);
            if let Err(old) = closed {
                *self.current.write().expect("spool handle lock poisoned") = Some(old);
                return Err(SpoolError::unavailable(
                    "spool readers did not finish within 5 s; reopen postponed",
                ));
            }
        }
        let db = open_database(&self.path)?;
        tracing::warn!(spool = %self.path.display(), "spool reopened after a storage error");
        *self.current.write().expect("spool handle lock poisoned") = Some(Arc::new(db));
        Ok(())
    }
}

/// Drops `db` once no reader holds it (it must be closed before it can be opened again), or
/// hands it back after [`READERS_GRACE`].
fn close_when_unused(mut db: Arc<Database>) -> Result<(), Arc<Database>> {
    let started = Instant::now();
    loop {
        match Arc::try_unwrap(db) {
            Ok(db) => {
                drop(db);
                return Ok(());
            }
            Err(shared) if started.elapsed() < READERS_GRACE => {
                db = shared;
                std::thread::sleep(Duration::from_millis(10));
            }
            Err(shared) => return Err(shared),
        }
    }
}

/// Opens (or creates) the database at `path`, repairing it after a crash.
pub(super) fn open_database(path: &Path) -> Result<Database, SpoolError> {
    warn_if_emptied(path);
    Database::builder()
        .set_cache_size(CACHE_BYTES)
        .set_repair_callback(|session| {
            tracing::warn!(
                progress = format!("{:.0}%", session.progress() * 100.0),
                "repairing the spool after an unclean shutdown"
            );
        })
        .create(path)
        .map_err(|err| match err {
            redb::DatabaseError::DatabaseAlreadyOpen => SpoolError::unavailable(format!(
                "spool {} is in use by another factorwatch process; each replica needs its \
                 own storage.data_dir",
                path.display()
            )),
            err => SpoolError::storage(
                format!(
                    "cannot open spool {}: {err}. If the file is damaged beyond repair, move it \
                 aside and start again; events Okta already delivered can be read back \
                 from the System Log API",
                    path.display()
                ),
                err,
            ),
        })
}

/// redb starts a new database in an empty file without a word; an emptied spool (a botched
/// copy or restore) may have held acknowledged batches, so say so.
fn warn_if_emptied(path: &Path) {
    if std::fs::metadata(path).is_ok_and(|meta| meta.len() == 0) {
        tracing::warn!(
            spool = %path.display(),
            "the spool file is empty and starts anew; if it held data (a copy or restore that \
             went wrong), restore it from a backup, or read the missing events back from the \
             System Log API"
        );
    }
}
