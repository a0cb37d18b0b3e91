//! The group-commit writer: one thread owns every write to the spool.
//!
//! Callers send a [`Job`] (a closure that writes into a transaction) and wait for its answer. The
//! thread takes the first job, then every job already queued behind it, applies them all to one
//! write transaction and commits once: one fsync answers every waiter. Under load this is what lets
//! many concurrent Okta deliveries share the cost of durability, and it keeps redb's single-writer
//! rule trivially true. A job's answer is sent only after the commit returned, so an `Ok` means the
//! data is on disk.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use redb::{Database, WriteTransaction};
use tokio::sync::{mpsc, oneshot};

use super::SpoolError;
use super::handle::DbHandle;
use crate::telemetry::metrics::SPOOL_COMMIT_GROUP_SIZE;

/// Most jobs folded into one commit; bounds the latency a single commit can add.
const MAX_GROUP: usize = 256;

/// Writes of one job into the group's transaction.
pub(super) type Apply = Box<dyn FnOnce(&WriteTransaction) -> Result<(), redb::Error> + Send>;

/// A unit of work for the writer and the channel its outcome goes to.
pub(super) struct Job {
    pub apply: Apply,
    pub done: oneshot::Sender<Result<(), SpoolError>>,
}

/// Runs until every sender is dropped. `writable` tells readiness whether the last commit worked;
/// after a failed one, the next group first reopens the database (see [`DbHandle`]).
pub(super) fn run(db: Arc<DbHandle>, mut jobs: mpsc::Receiver<Job>, writable: Arc<AtomicBool>) {
    while let Some(first) = jobs.blocking_recv() {
        let mut group = vec![first];
        while group.len() < MAX_GROUP {
            match jobs.try_recv() {
                Ok(job) => group.push(job),
                Err(_) => break,
            }
        }
        metrics::histogram!(SPOOL_COMMIT_GROUP_SIZE).record(group.len() as f64);
        let (applies, answers): (Vec<Apply>, Vec<_>) =
            group.into_iter().map(|job| (job.apply, job.done)).unzip();
        let outcome = reopen_if_failed(&db, &writable).and_then(|()| {
            commit(&*db.get()?, applies).map_err(|err| {
                tracing::error!(error = %err, "spool commit failed; the writes of this group were not stored");
                SpoolError::storage(err.to_string(), err)
            })
        });
        writable.store(outcome.is_ok(), Ordering::Relaxed);
        for answer in answers {
            // A waiter that went away (its request timed out) needs no answer.
            let _ = answer.send(outcome.clone());
        }
    }
}

/// After a failed commit redb answers every operation with an error until it is reopened.
fn reopen_if_failed(db: &DbHandle, writable: &AtomicBool) -> Result<(), SpoolError> {
    if writable.load(Ordering::Relaxed) {
        return Ok(());
    }
    db.reopen().inspect_err(|err| {
        tracing::error!(error = %err, "spool still cannot be reopened; these writes were not stored");
    })
}

/// Applies every job to one transaction and commits it durably; any error aborts all of them.
fn commit(db: &Database, applies: Vec<Apply>) -> Result<(), redb::Error> {
    let txn = db.begin_write()?;
    for apply in applies {
        apply(&txn)?;
    }
    txn.commit()?;
    Ok(())
}
