//! `incidents`: standalone, each target user's incident as the detector folds it. Read before
//! the alerts of a pass are queued, written in that pass's transaction, so an incident and the
//! alerts that carry it are on disk together (a crash re-detects both). Rows whose window ended
//! leave in a later pass's transaction: each pass checks the next few rows
//! ([`Spool::incidents_to_sweep`]), so the table holds about the users alerted on within
//! `incident_window`. In a `[cluster]` the backend keeps them instead (`cluster::incidents`),
//! each record expiring by itself.

use redb::ReadableTable;

use super::{INCIDENTS, Spool, SpoolError};

impl Spool {
    /// The stored incidents of `keys` (those with one), by key.
    pub async fn incidents(&self, keys: Vec<String>) -> Result<Vec<(String, Vec<u8>)>, SpoolError> {
        self.read(move |txn| {
            let table = txn.open_table(INCIDENTS)?;
            let mut found = Vec::new();
            for key in keys {
                if let Some(value) = table.get(key.as_str())? {
                    found.push((key, value.value().to_vec()));
                }
            }
            Ok(found)
        })
        .await
    }

    /// The next at most `limit` stored incidents, by key, for the expiry sweep: each call goes on
    /// after the last key the previous one returned, and starts again from the first key once
    /// the table is through, so every row is checked in turn however large the table.
    pub async fn incidents_to_sweep(
        &self,
        limit: usize,
    ) -> Result<Vec<(String, Vec<u8>)>, SpoolError> {
        let after = self.sweep_cursor().clone();
        let page = self
            .read(move |txn| {
                let table = txn.open_table(INCIDENTS)?;
                let rows = match &after {
                    Some(after) => table.range::<&str>((
                        std::ops::Bound::Excluded(after.as_str()),
                        std::ops::Bound::Unbounded,
                    ))?,
                    None => table.iter()?,
                };
                let mut page = Vec::new();
                for row in rows.take(limit) {
                    let (key, value) = row?;
                    page.push((key.value().to_owned(), value.value().to_vec()));
                }
                Ok(page)
            })
            .await?;
        *self.sweep_cursor() = match page.len() < limit {
            true => None,
            false => page.last().map(|(key, _)| key.clone()),
        };
        Ok(page)
    }

    /// Where the expiry sweep goes on from (a poisoned lock still holds a usable key).
    fn sweep_cursor(&self) -> std::sync::MutexGuard<'_, Option<String>> {
        self.incident_sweep_after
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

/// Removes the incidents `keys` (those whose window ended).
pub(super) fn remove_incidents(
    txn: &redb::WriteTransaction,
    keys: &[String],
) -> Result<(), redb::Error> {
    let mut table = txn.open_table(INCIDENTS)?;
    for key in keys {
        table.remove(key.as_str())?;
    }
    Ok(())
}

/// Stores each changed incident.
pub(super) fn insert_incidents(
    txn: &redb::WriteTransaction,
    incidents: &[(String, Vec<u8>)],
) -> Result<(), redb::Error> {
    let mut table = txn.open_table(INCIDENTS)?;
    for (key, value) in incidents {
        table.insert(key.as_str(), value.as_slice())?;
    }
    Ok(())
}
