//! The `dead_letters` table: alerts a sink refused or that ran out of attempts, listed, replayed
//! into the outbox or purged through the admin API.

use redb::ReadableTable;

use super::outbox::{OutboxEntry, OutboxRecord};
use super::{DEAD_LETTERS, OUTBOX, Spool, SpoolError};

impl Spool {
    /// Every dead-lettered alert, optionally of one sink.
    pub async fn dead_letters(&self, sink: Option<String>) -> Result<Vec<OutboxEntry>, SpoolError> {
        self.read(move |txn| {
            let table = txn.open_table(DEAD_LETTERS)?;
            let mut entries = Vec::new();
            for row in table.iter()? {
                let (key, value) = row?;
                let (name, seq) = key.value();
                if sink.as_deref().is_none_or(|wanted| wanted == name) {
                    entries.push(OutboxEntry::decode(name, seq, value.value())?);
                }
            }
            Ok(entries)
        })
        .await
    }

    /// Moves dead letters back to their outbox as new (attempts 0, due now), optionally only one
    /// sink's or one alert's. Returns the sinks and how many rows moved.
    pub async fn replay_dead_letters(
        &self,
        sink: Option<String>,
        alert_id: Option<String>,
    ) -> Result<Vec<OutboxEntry>, SpoolError> {
        let now = crate::clock::now_ms();
        let mut entries = self.matching_dead_letters(sink, alert_id).await?;
        for entry in &mut entries {
            entry.record.reset_for_replay(now);
        }
        let rows: Vec<(String, u64, Vec<u8>)> = entries
            .iter()
            .map(|e| (e.sink.clone(), e.seq, e.encode()))
            .collect();
        self.write(move |txn| move_to_outbox(txn, &rows)).await?;
        for entry in &mut entries {
            entry.stored_len = entry.encode().len() as u64;
            self.backlog.undead(&entry.sink);
            self.backlog.outbox_added(&entry.sink, entry.stored_len);
        }
        Ok(entries)
    }

    /// Deletes dead letters for good, optionally only one sink's or one alert's. Returns how many.
    pub async fn purge_dead_letters(
        &self,
        sink: Option<String>,
        alert_id: Option<String>,
    ) -> Result<usize, SpoolError> {
        let entries = self.matching_dead_letters(sink, alert_id).await?;
        let keys: Vec<(String, u64)> = entries.iter().map(|e| (e.sink.clone(), e.seq)).collect();
        let count = keys.len();
        let sinks: Vec<String> = keys.iter().map(|(sink, _)| sink.clone()).collect();
        self.write(move |txn| {
            let mut dead = txn.open_table(DEAD_LETTERS)?;
            for (sink, seq) in &keys {
                dead.remove((sink.as_str(), *seq))?;
            }
            Ok(())
        })
        .await?;
        sinks.iter().for_each(|sink| self.backlog.undead(sink));
        Ok(count)
    }

    async fn matching_dead_letters(
        &self,
        sink: Option<String>,
        alert_id: Option<String>,
    ) -> Result<Vec<OutboxEntry>, SpoolError> {
        let mut entries = self.dead_letters(sink).await?;
        entries.retain(|e| alert_id.as_ref().is_none_or(|id| *id == e.record.alert_id));
        Ok(entries)
    }
}

impl OutboxRecord {
    /// Makes a dead letter a new alert again at `now_ms`: no attempt made, due now, its last
    /// error kept as what it was replayed after.
    fn reset_for_replay(&mut self, now_ms: u64) {
        self.last_error = self
            .last_error
            .take()
            .map(|e| format!("replayed after: {e}"));
        self.attempts = 0;
        self.created_at_ms = now_ms;
        self.next_attempt_at_ms = now_ms;
    }
}

/// Moves `rows` (sink, sequence, value) from `dead_letters` back to `outbox`.
fn move_to_outbox(
    txn: &redb::WriteTransaction,
    rows: &[(String, u64, Vec<u8>)],
) -> Result<(), redb::Error> {
    let mut dead = txn.open_table(DEAD_LETTERS)?;
    let mut outbox = txn.open_table(OUTBOX)?;
    for (sink, seq, value) in rows {
        // Purged meanwhile by another admin call: leave it gone.
        if dead.remove((sink.as_str(), *seq))?.is_some() {
            outbox.insert((sink.as_str(), *seq), value.as_slice())?;
        }
    }
    Ok(())
}
