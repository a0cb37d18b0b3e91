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
        .map_err(|err| open_error(path, err))
}

/// Why the spool at `path` did not open, and what to do: only a file that is really damaged is
/// to be moved aside.
fn open_error(path: &Path, err: redb::DatabaseError) -> SpoolError {
    let path = path.display();
    let denied = match &err {
        redb::DatabaseError::DatabaseAlreadyOpen => {
            return SpoolError::unavailable(format!(
                "spool {path} is in use by another factorwatch process; each replica needs its \
                 own storage.data_dir"
            ));
        }
        redb::DatabaseError::Storage(redb::StorageError::Io(io)) => permission_problem(io),
        _ => None,
    };
    let advice = denied.unwrap_or_else(|| {
        "If the file is damaged beyond repair, move it aside and start again; events Okta \
         already delivered can be read back from the System Log API"
            .to_owned()
    });
    SpoolError::storage(format!("cannot open spool {path}: {err}. {advice}"), err)
}

/// For an error the file system's permissions caused, what it is and who may not write: the
/// process's user. `None` for any other error.
pub(super) fn permission_problem(err: &std::io::Error) -> Option<String> {
    match err.kind() {
        std::io::ErrorKind::PermissionDenied => Some(format!(
            "This is a permission problem: factorwatch runs as {}, which may not write \
             there; give that user the data directory (storage.data_dir), or run \
             factorwatch as the user that owns it",
            process_user()
        )),
        std::io::ErrorKind::ReadOnlyFilesystem => Some(
            "The file system is read-only: put storage.data_dir on a writable volume".to_owned(),
        ),
        _ => None,
    }
}

/// The user this process runs as, `uid 999 (factorwatch)`: the owner of `/proc/self`, named from
/// `/etc/passwd` when it is listed there.
fn process_user() -> String {
    use std::os::unix::fs::MetadataExt;
    let Ok(uid) = std::fs::metadata("/proc/self").map(|meta| meta.uid()) else {
        return "a user it cannot tell".to_owned();
    };
    let passwd = std::fs::read_to_string("/etc/passwd").unwrap_or_default();
    let name = passwd.lines().find_map(|line| {
        let mut fields = line.split(':');
        let name = fields.next()?;
        (fields.nth(1)? == uid.to_string()).then_some(name)
    });
    match name {
        Some(name) => format!("uid {uid} ({name})"),
        None => format!("uid {uid}"),
    }
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

#[cfg(test)]
mod tests {
    use super::*;

    fn io_error(kind: std::io::ErrorKind) -> redb::DatabaseError {
        redb::DatabaseError::Storage(redb::StorageError::Io(kind.into()))
    }

    #[test]
    fn a_denied_open_is_a_permission_problem_naming_the_user_not_damage() {
        let path = Path::new("/var/lib/factorwatch/spool.redb");
        let message = open_error(path, io_error(std::io::ErrorKind::PermissionDenied)).to_string();
        let uid = std::os::unix::fs::MetadataExt::uid(&std::fs::metadata("/proc/self").unwrap());
        assert!(
            message.contains("/var/lib/factorwatch/spool.redb")
                && message.contains("permission problem")
                && message.contains(&format!("runs as uid {uid}")),
            "{message}"
        );
        assert!(!message.contains("move it aside"), "{message}");
        let message = open_error(path, io_error(std::io::ErrorKind::ReadOnlyFilesystem));
        assert!(message.to_string().contains("read-only"), "{message}");
    }

    #[test]
    fn only_other_failures_say_to_move_the_file_aside() {
        let path = Path::new("/var/lib/factorwatch/spool.redb");
        let message = open_error(path, io_error(std::io::ErrorKind::InvalidData)).to_string();
        assert!(message.contains("move it aside"), "{message}");
    }
}
