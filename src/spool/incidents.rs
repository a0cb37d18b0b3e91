//! `incidents`: standalone, each target user's incident as the detector folds it. Read before
//! the alerts of a pass are queued, written in that pass's transaction, so an incident and the
//! alerts that carry it are on disk together (a crash re-detects both). In a `[cluster]` the
//! backend keeps them instead (`cluster::incidents`).

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
