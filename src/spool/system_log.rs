//! The System Log poller's side of the spool: each page it reads, stored with the cursor that
//! follows it in one transaction (so a crash repeats or skips nothing), and the events a hook
//! could have delivered, held for a grace period before detection (so the hook, when it works,
//! gets there first and the alert says `event_hook`).
//!
//! Tables: `held_batches`, keyed (due time in Unix ms, sequence), valued like `batches`;
//! `reconcile`, one row `cursor` holding the `next` link that continues after the last page stored,
//! and one row `hook_last_delivery` holding when the event hook last delivered a batch (Unix ms,
//! 8 bytes little-endian), written with that batch, for the poller's silence check.

use std::sync::atomic::Ordering;

use redb::{ReadableDatabase, ReadableTable};

use super::{BATCHES, HELD_BATCHES, RECONCILE, Spool, SpoolError, batch_format};

/// The `reconcile` row holding the cursor.
const CURSOR_KEY: &str = "cursor";
/// The `reconcile` row holding the hook's last delivery.
const LAST_DELIVERY_KEY: &str = "hook_last_delivery";

/// Records a hook delivery at `at_ms` in `txn`, unless a later one is recorded already (two
/// deliveries may commit in either order).
pub(super) fn record_delivery(txn: &redb::WriteTransaction, at_ms: u64) -> Result<(), redb::Error> {
    let mut table = txn.open_table(RECONCILE)?;
    let recorded = table
        .get(LAST_DELIVERY_KEY)?
        .and_then(|v| decode_ms(v.value()));
    if recorded.is_none_or(|recorded| recorded < at_ms) {
        table.insert(LAST_DELIVERY_KEY, at_ms.to_le_bytes().as_slice())?;
    }
    Ok(())
}

/// The hook's last delivery recorded in `db` (read once, at open); 0 when there was none.
pub(super) fn recorded_delivery(db: &redb::Database) -> Result<u64, SpoolError> {
    let txn = db.begin_read()?;
    let table = txn.open_table(RECONCILE)?;
    let recorded = table.get(LAST_DELIVERY_KEY)?;
    Ok(recorded.and_then(|v| decode_ms(v.value())).unwrap_or(0))
}

fn decode_ms(bytes: &[u8]) -> Option<u64> {
    Some(u64::from_le_bytes(bytes.try_into().ok()?))
}

/// One page of the System Log, as the poller stores it.
#[derive(Debug, Clone)]
pub struct LogPageCommit {
    /// When it was read (Unix ms): the batches' receive time.
    pub received_at_ms: u64,
    /// A body of the page's events that no hook can deliver: detected at once.
    pub due_now: Option<Vec<u8>>,
    /// A body of the page's events a hook could deliver: detected from `hold_until_ms`.
    pub held: Option<Vec<u8>>,
    /// When the held events become due.
    pub hold_until_ms: u64,
    /// The `next` link that continues after this page.
    pub cursor: String,
}

impl Spool {
    /// When the event hook last delivered a batch to this spool (Unix ms), across restarts;
    /// `None` if it never did.
    pub fn last_delivery_ms(&self) -> Option<u64> {
        Some(self.last_delivery_ms.load(Ordering::Relaxed)).filter(|ms| *ms > 0)
    }

    /// Stores a page and its cursor in one commit. Refuses with [`SpoolError::Full`] when the
    /// backlog is at its limit, like a hook delivery: the poller tries the same page again later.
    pub async fn append_log_page(&self, page: LogPageCommit) -> Result<(), SpoolError> {
        self.backlog.check_room()?;
        let now_id = page
            .due_now
            .as_ref()
            .map(|_| self.next_batch_id.fetch_add(1, Ordering::Relaxed));
        let now_value = page
            .due_now
            .map(|body| batch_format::encode(page.received_at_ms, &body));
        let held_key = (
            page.hold_until_ms,
            self.next_seq.fetch_add(1, Ordering::Relaxed),
        );
        let held_value = page
            .held
            .map(|body| batch_format::encode(page.received_at_ms, &body));
        let now_len = now_value.as_ref().map(|value| value.len() as u64);
        let cursor = page.cursor;
        self.write(move |txn| {
            if let (Some(id), Some(value)) = (now_id, &now_value) {
                txn.open_table(BATCHES)?.insert(id, value.as_slice())?;
            }
            if let Some(value) = &held_value {
                txn.open_table(HELD_BATCHES)?
                    .insert(held_key, value.as_slice())?;
            }
            txn.open_table(RECONCILE)?
                .insert(CURSOR_KEY, cursor.as_bytes())?;
            Ok(())
        })
        .await?;
        if let Some(len) = now_len {
            self.backlog.batch_added(len);
        }
        Ok(())
    }

    /// The cursor stored with the last page, if any page was stored.
    pub async fn log_cursor(&self) -> Result<Option<String>, SpoolError> {
        self.read(|txn| {
            let table = txn.open_table(RECONCILE)?;
            let cursor = table.get(CURSOR_KEY)?;
            Ok(cursor.map(|value| String::from_utf8_lossy(value.value()).into_owned()))
        })
        .await
    }

    /// Moves the held batches due by `now_ms` to `batches`, for detection; answers how many.
    /// Only the poller holds and releases batches, so what the read finds is still there when
    /// the write moves it.
    pub async fn release_held(&self, now_ms: u64) -> Result<usize, SpoolError> {
        let due: Vec<((u64, u64), u64)> = self
            .read(move |txn| {
                let table = txn.open_table(HELD_BATCHES)?;
                let mut due = Vec::new();
                for row in table.range(..(now_ms.saturating_add(1), 0))? {
                    let (key, value) = row?;
                    due.push((key.value(), value.value().len() as u64));
                }
                Ok(due)
            })
            .await?;
        if due.is_empty() {
            return Ok(0);
        }
        // Ids come from the counter intake uses, so they never collide with a delivery's.
        let first_id = self
            .next_batch_id
            .fetch_add(due.len() as u64, Ordering::Relaxed);
        let keys: Vec<(u64, u64)> = due.iter().map(|(key, _)| *key).collect();
        self.write(move |txn| {
            let mut held = txn.open_table(HELD_BATCHES)?;
            let mut batches = txn.open_table(BATCHES)?;
            for (id, key) in (first_id..).zip(keys) {
                if let Some(value) = held.remove(key)? {
                    batches.insert(id, value.value())?;
                }
            }
            Ok(())
        })
        .await?;
        for (_, len) in &due {
            self.backlog.batch_added(*len);
        }
        Ok(due.len())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn page(due_now: Option<&[u8]>, held: Option<&[u8]>, cursor: &str) -> LogPageCommit {
        LogPageCommit {
            received_at_ms: 1_000,
            due_now: due_now.map(<[u8]>::to_vec),
            held: held.map(<[u8]>::to_vec),
            hold_until_ms: 121_000,
            cursor: cursor.into(),
        }
    }

    async fn pending_bodies(spool: &Spool) -> Vec<Vec<u8>> {
        let batches = spool.pending_batches(100, u64::MAX).await.unwrap();
        batches.into_iter().map(|batch| batch.body).collect()
    }

    #[tokio::test]
    async fn a_page_and_its_cursor_survive_a_restart_together() {
        let dir = tempfile::TempDir::new().unwrap();
        {
            let spool = Spool::open(dir.path(), u64::MAX).unwrap();
            assert_eq!(spool.log_cursor().await.unwrap(), None);
            spool
                .append_log_page(page(
                    Some(b"{\"a\":1}"),
                    None,
                    "https://o/api/v1/logs?after=1",
                ))
                .await
                .unwrap();
            spool
                .append_log_page(page(None, None, "https://o/api/v1/logs?after=2"))
                .await
                .unwrap();
        }
        let spool = Spool::open(dir.path(), u64::MAX).unwrap();
        assert_eq!(
            spool.log_cursor().await.unwrap().as_deref(),
            Some("https://o/api/v1/logs?after=2")
        );
        assert_eq!(pending_bodies(&spool).await, [b"{\"a\":1}".to_vec()]);
    }

    #[tokio::test]
    async fn held_events_wait_for_their_due_time_then_follow_what_came_before() {
        let dir = tempfile::TempDir::new().unwrap();
        let spool = Spool::open(dir.path(), u64::MAX).unwrap();
        spool
            .append_log_page(page(Some(b"now"), Some(b"held"), "c1"))
            .await
            .unwrap();
        assert_eq!(spool.release_held(120_999).await.unwrap(), 0);
        assert_eq!(pending_bodies(&spool).await, [b"now".to_vec()]);
        spool.append_batch(2_000, b"hook").await.unwrap();
        drop(spool);
        let spool = Spool::open(dir.path(), u64::MAX).unwrap();
        assert_eq!(spool.release_held(121_000).await.unwrap(), 1);
        assert_eq!(spool.release_held(200_000).await.unwrap(), 0, "moved once");
        assert_eq!(
            pending_bodies(&spool).await,
            [b"now".to_vec(), b"hook".to_vec(), b"held".to_vec()]
        );
        assert_eq!(spool.backlog().batches, 3);
    }

    #[tokio::test]
    async fn the_hooks_last_delivery_survives_a_restart_and_never_goes_back() {
        let dir = tempfile::TempDir::new().unwrap();
        {
            let spool = Spool::open(dir.path(), u64::MAX).unwrap();
            assert_eq!(spool.last_delivery_ms(), None);
            spool.append_batch(9_000, b"backfill").await.unwrap();
            assert_eq!(
                spool.last_delivery_ms(),
                None,
                "only the hook's batches count"
            );
            spool.append_delivery(5_000, b"hook").await.unwrap();
            spool
                .append_delivery(4_000, b"hook, committed late")
                .await
                .unwrap();
            assert_eq!(spool.last_delivery_ms(), Some(5_000));
        }
        let spool = Spool::open(dir.path(), u64::MAX).unwrap();
        assert_eq!(spool.last_delivery_ms(), Some(5_000));
    }
}
