//! The correlation tables: `correlation_inputs`, the events detection matched that the cluster's
//! correlation step still has to see; `correlation`, the standalone state's snapshot or the last
//! shared step committed here; `correlation_journal`, what detection fed the standalone
//! correlations since that snapshot.

use std::sync::atomic::Ordering;

use redb::{ReadableTable, TableDefinition};

use super::outbox::{OutboxRecord, insert_outbox, staged_sizes};
use super::{
    CORRELATION, CORRELATION_APPLIED_KEY, CORRELATION_INPUTS, CORRELATION_JOURNAL,
    CORRELATION_STATE_KEY, Spool, SpoolError,
};

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

/// What a detection pass writes to the correlation tables, its rows numbered.
pub(super) struct StagedCorrelation {
    /// Rows of `correlation_inputs`.
    pub(super) inputs: Vec<(u64, Vec<u8>)>,
    /// A new snapshot, which empties the journal.
    pub(super) state: Option<Vec<u8>>,
    /// Rows of `correlation_journal`, appended after the snapshot.
    pub(super) journal: Vec<(u64, Vec<u8>)>,
}

impl StagedCorrelation {
    /// Writes it in `txn`.
    pub(super) fn insert(&self, txn: &redb::WriteTransaction) -> Result<(), redb::Error> {
        insert_sequenced(txn, CORRELATION_INPUTS, &self.inputs)?;
        if let Some(state) = &self.state {
            txn.open_table(CORRELATION)?
                .insert(CORRELATION_STATE_KEY, state.as_slice())?;
            // The snapshot holds everything the journal did.
            txn.open_table(CORRELATION_JOURNAL)?.retain(|_, _| false)?;
        }
        insert_sequenced(txn, CORRELATION_JOURNAL, &self.journal)
    }
}

impl Spool {
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
    pub(super) fn sequenced(&self, values: Vec<Vec<u8>>) -> Vec<(u64, Vec<u8>)> {
        values
            .into_iter()
            .map(|value| (self.next_seq.fetch_add(1, Ordering::Relaxed), value))
            .collect()
    }
}

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
