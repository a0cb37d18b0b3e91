//! The `batches` table, from intake to detection: a batch is stored when Okta delivers it, read
//! back by the detector, and leaves in the transaction that commits its detection
//! ([`DetectionCommit`]), or to `quarantine` when it cannot be read. The detector's known networks
//! (`known_networks`) are read here and written with that commit.

use std::collections::{HashMap, HashSet};
use std::sync::atomic::Ordering;

use redb::ReadableTable;

use super::correlation::StagedCorrelation;
use super::outbox::{OutboxRecord, insert_outbox, staged_sizes};
use super::system_log::record_delivery;
use super::{BATCHES, KNOWN_NETWORKS, QUARANTINE, Spool, SpoolError, batch_format};

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
    /// Standalone: the incidents the pass's alerts changed, by key, with their new value.
    pub incidents: Vec<(String, Vec<u8>)>,
    /// Standalone: the keys of incidents whose window ended, removed before `incidents` are
    /// stored (so one the pass wrote again stays).
    pub expired_incidents: Vec<String>,
}

impl Spool {
    /// Stores a batch durably. `Ok` means it is on disk; refuses with [`SpoolError::Full`] when the
    /// backlog is at its limit.
    pub async fn append_batch(&self, received_at_ms: u64, body: &[u8]) -> Result<u64, SpoolError> {
        self.append(received_at_ms, body, false).await
    }

    /// Stores a batch the event hook delivered, as [`Spool::append_batch`] does, and records its
    /// arrival as the hook's last delivery in the same commit ([`Spool::last_delivery_ms`]).
    pub async fn append_delivery(
        &self,
        received_at_ms: u64,
        body: &[u8],
    ) -> Result<u64, SpoolError> {
        self.append(received_at_ms, body, true).await
    }

    async fn append(
        &self,
        received_at_ms: u64,
        body: &[u8],
        hook: bool,
    ) -> Result<u64, SpoolError> {
        self.backlog.check_room()?;
        let id = self.next_batch_id.fetch_add(1, Ordering::Relaxed);
        let value = batch_format::encode(received_at_ms, body);
        let len = value.len() as u64;
        self.write(move |txn| {
            txn.open_table(BATCHES)?.insert(id, value.as_slice())?;
            if hook {
                record_delivery(txn, received_at_ms)?;
            }
            Ok(())
        })
        .await?;
        self.backlog.batch_added(len);
        if hook {
            self.last_delivery_ms
                .fetch_max(received_at_ms, Ordering::Relaxed);
        }
        Ok(id)
    }

    /// The oldest batches not yet detected: at most `limit`, and no more once their bodies hold
    /// `max_bytes` uncompressed (always at least one).
    pub async fn pending_batches(
        &self,
        limit: usize,
        max_bytes: u64,
    ) -> Result<Vec<StoredBatch>, SpoolError> {
        self.pending_batches_except(limit, max_bytes, HashSet::new())
            .await
    }

    /// The oldest batches not yet detected, as [`Spool::pending_batches`], leaving out
    /// `in_flight`: those of a pass being committed while the next one is detected. A set, not a
    /// cursor: ids are handed out before their batch is written, so a lower id can appear after a
    /// higher one.
    pub async fn pending_batches_except(
        &self,
        limit: usize,
        max_bytes: u64,
        in_flight: HashSet<u64>,
    ) -> Result<Vec<StoredBatch>, SpoolError> {
        self.read(move |txn| {
            let table = txn.open_table(BATCHES)?;
            let (mut batches, mut bytes) = (Vec::new(), 0);
            let rows = table.iter()?.filter(|row| {
                row.as_ref()
                    .map_or(true, |(id, _)| !in_flight.contains(&id.value()))
            });
            for row in rows.take(limit) {
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

    /// Commits the outcome of a detection pass: its batches and expired incidents leave and their
    /// alerts, correlation inputs, known networks and incidents arrive, in one transaction.
    pub async fn complete_batches(&self, commit: DetectionCommit) -> Result<(), SpoolError> {
        let DetectionCommit {
            batches: detected,
            outbox: rows,
            correlation_inputs,
            correlation_state,
            correlation_journal,
            known_networks,
            incidents,
            expired_incidents,
        } = commit;
        let removed_bytes: Vec<u64> = detected.iter().map(|batch| batch.stored_len).collect();
        let batch_ids: Vec<u64> = detected.iter().map(|batch| batch.id).collect();
        let staged = self.stage_outbox(rows);
        let correlation = StagedCorrelation {
            inputs: self.sequenced(correlation_inputs),
            state: correlation_state,
            journal: self.sequenced(correlation_journal),
        };
        let added = staged_sizes(&staged);
        self.write(move |txn| {
            remove_batches(txn, &batch_ids)?;
            insert_outbox(txn, &staged)?;
            correlation.insert(txn)?;
            insert_known_networks(txn, &known_networks)?;
            super::incidents::remove_incidents(txn, &expired_incidents)?;
            super::incidents::insert_incidents(txn, &incidents)
        })
        .await?;
        for len in removed_bytes {
            self.backlog.batch_removed(len);
        }
        self.count_outbox_added(added);
        Ok(())
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
}

/// Removes the batches `ids` from `batches`.
fn remove_batches(txn: &redb::WriteTransaction, ids: &[u64]) -> Result<(), redb::Error> {
    let mut batches = txn.open_table(BATCHES)?;
    for id in ids {
        batches.remove(*id)?;
    }
    Ok(())
}

/// Stores each user's new known networks.
fn insert_known_networks(
    txn: &redb::WriteTransaction,
    known_networks: &[(String, Vec<u8>)],
) -> Result<(), redb::Error> {
    let mut networks = txn.open_table(KNOWN_NETWORKS)?;
    for (user, value) in known_networks {
        networks.insert(user.as_str(), value.as_slice())?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_pass_in_flight_is_left_out_and_the_batches_after_it_are_taken_in_order() {
        let dir = tempfile::TempDir::new().unwrap();
        let spool = Spool::open(dir.path(), u64::MAX).unwrap();
        let mut ids = Vec::new();
        for n in 0..5u64 {
            ids.push(spool.append_batch(n, b"{}").await.unwrap());
        }
        let in_flight: HashSet<u64> = [ids[0], ids[2]].into();
        let next = spool.pending_batches_except(2, u64::MAX, in_flight).await;
        let next: Vec<u64> = next.unwrap().iter().map(|batch| batch.id).collect();
        assert_eq!(next, [ids[1], ids[3]], "the oldest two not in flight");
        let all = spool.pending_batches(10, u64::MAX).await.unwrap();
        assert_eq!(all.len(), 5, "leaving a batch out does not remove it");
    }
}
