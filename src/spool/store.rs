//! One redb file and the thread that writes it.
//!
//! The spool keeps `spool.redb` (batches, outbox, correlation) in one, with a group-commit writer:
//! concurrent requests share one commit and its fsync ([`super::writer`]).

use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread::JoinHandle;

use redb::{Database, ReadableDatabase};
use tokio::sync::{mpsc, oneshot};

use super::SpoolError;
use super::handle::DbHandle;
use super::writer::{self, Job};

/// A redb database with its writer thread. Dropping it lets the writer commit what is queued,
/// and waits for it.
pub(super) struct Store {
    db: Arc<DbHandle>,
    jobs: Option<mpsc::Sender<Job>>,
    writer: Option<JoinHandle<()>>,
    writable: Arc<AtomicBool>,
}

impl Store {
    /// Opens (or creates, or repairs) `path`, lets `prepare` create its tables, and starts its
    /// writer thread, named `thread`.
    pub fn open(
        path: &Path,
        thread: &str,
        prepare: impl FnOnce(&Database) -> Result<(), SpoolError>,
    ) -> Result<Self, SpoolError> {
        let db = DbHandle::open(path)?;
        prepare(&*db.get()?)?;
        let db = Arc::new(db);
        let (jobs, receiver) = mpsc::channel(4096);
        let writable = Arc::new(AtomicBool::new(true));
        let writer = {
            let (db, writable) = (db.clone(), writable.clone());
            std::thread::Builder::new()
                .name(thread.into())
                .spawn(move || writer::run(db, receiver, writable))
                .map_err(|err| SpoolError::storage(format!("cannot start {thread}: {err}"), err))?
        };
        Ok(Self {
            db,
            jobs: Some(jobs),
            writer: Some(writer),
            writable,
        })
    }

    /// The database, for work at open that runs before any write.
    pub fn database(&self) -> Result<Arc<Database>, SpoolError> {
        self.db.get()
    }

    /// Whether the last commit succeeded.
    pub fn writable(&self) -> bool {
        self.writable.load(Ordering::Relaxed)
    }

    /// Runs `apply` in the next group commit and waits until it is durable.
    pub async fn write(
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
    pub async fn read<T: Send + 'static>(
        &self,
        read: impl FnOnce(&redb::ReadTransaction) -> Result<T, SpoolError> + Send + 'static,
    ) -> Result<T, SpoolError> {
        let db = self.db.get()?;
        tokio::task::spawn_blocking(move || read(&db.begin_read()?))
            .await
            .map_err(|err| SpoolError::storage(format!("spool reader failed: {err}"), err))?
    }
}

impl Drop for Store {
    fn drop(&mut self) {
        // Closing the channel lets the writer commit what is queued and stop; wait for it so the
        // database is closed cleanly before the process exits.
        drop(self.jobs.take());
        if let Some(writer) = self.writer.take() {
            let _ = writer.join();
        }
    }
}
