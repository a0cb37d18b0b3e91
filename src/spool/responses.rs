//! `responses`: the ledger of what the responses did, one row per alert, response and action
//! (keyed by the action's deterministic id), each an opaque JSON document the responder writes.
//! A row and the outbox rows that report it to the sinks are written in one transaction, so an
//! action recorded is an action reported. Each responder removes its rows after their
//! retention (30 days); `responses list` reads the rest.

use redb::ReadableTable;

use super::outbox::{insert_outbox, staged_sizes};
use super::{OutboxRecord, RESPONSES, Spool, SpoolError};

impl Spool {
    /// The ledger row of the action `id`, if it was recorded.
    pub async fn response_action(&self, id: String) -> Result<Option<Vec<u8>>, SpoolError> {
        self.read(move |txn| {
            let table = txn.open_table(RESPONSES)?;
            Ok(table.get(id.as_str())?.map(|value| value.value().to_vec()))
        })
        .await
    }

    /// Every ledger row, by id.
    pub async fn response_actions(&self) -> Result<Vec<(String, Vec<u8>)>, SpoolError> {
        self.read(move |txn| {
            let table = txn.open_table(RESPONSES)?;
            let mut rows = Vec::new();
            for row in table.iter()? {
                let (key, value) = row?;
                rows.push((key.value().to_owned(), value.value().to_vec()));
            }
            Ok(rows)
        })
        .await
    }

    /// Records (or updates) the action `id` and queues `reports` (its report to each sink) in
    /// one durable transaction.
    pub async fn record_response_action(
        &self,
        id: String,
        record: Vec<u8>,
        reports: Vec<(String, OutboxRecord)>,
    ) -> Result<(), SpoolError> {
        let staged = self.stage_outbox(reports);
        let added = staged_sizes(&staged);
        self.write(move |txn| {
            txn.open_table(RESPONSES)?
                .insert(id.as_str(), record.as_slice())?;
            insert_outbox(txn, &staged)
        })
        .await?;
        self.count_outbox_added(added);
        Ok(())
    }

    /// Removes the ledger rows `ids` (pruned past their retention).
    pub async fn remove_response_actions(&self, ids: Vec<String>) -> Result<(), SpoolError> {
        self.write(move |txn| {
            let mut table = txn.open_table(RESPONSES)?;
            for id in &ids {
                table.remove(id.as_str())?;
            }
            Ok(())
        })
        .await
    }
}
