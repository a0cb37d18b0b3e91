//! The de-duplication window as the spool's callers see it: which event keys another batch
//! claimed, claiming keys, pruning, all on a blocking thread over the [`Window`] in `seen/`; and
//! at open, the import of a `seen.redb`, where the previous version kept the window.

use std::collections::HashSet;
use std::path::Path;

use redb::{Database, ReadableDatabase, ReadableTable, TableDefinition};

use super::window::{self, Claim, Window, key_hash};
use super::{Spool, SpoolError, WINDOW_DIR, handle};

/// Where the previous version kept the window, in `seen.redb`: event key to (expiry, batch id).
/// Read into `seen/` at open.
const SEEN_REDB_CLAIMS: TableDefinition<&str, (u64, u64)> = TableDefinition::new("seen");
/// The previous version's de-duplication window inside `data_dir`, imported at open.
const SEEN_REDB_FILE: &str = "seen.redb";

impl Spool {
    /// Which of `keys` (each with the batch it is in) another batch claimed inside the
    /// de-duplication window at `now_ms`. A batch's own claims (left by a detection that crashed
    /// before its commit) do not count.
    pub async fn already_seen(
        &self,
        keys: Vec<(String, u64)>,
        now_ms: u64,
    ) -> Result<HashSet<String>, SpoolError> {
        self.with_window(move |window| {
            let mut seen = HashSet::new();
            for (key, batch_id) in keys {
                let claimed = window.claim(&key_hash(&key))?;
                if claimed.is_some_and(|c| c.until_ms > now_ms && c.batch_id != batch_id) {
                    seen.insert(key);
                }
            }
            Ok(seen)
        })
        .await
    }

    /// Claims `keys` (each with the batch it is in) until `until_ms`, durably, in `seen/`.
    /// The detector does this before it commits the batches' detection
    /// ([`Spool::complete_batches`]), while it evaluates them.
    pub async fn claim_seen(
        &self,
        keys: Vec<(String, u64)>,
        until_ms: u64,
    ) -> Result<(), SpoolError> {
        if keys.is_empty() {
            return Ok(());
        }
        let claims: Vec<_> = keys
            .iter()
            .map(|(key, batch_id)| {
                let claim = Claim {
                    until_ms,
                    batch_id: *batch_id,
                };
                (key_hash(key), claim)
            })
            .collect();
        self.with_window(move |window| window.record(&claims, crate::clock::now_ms()))
            .await
    }

    /// Runs `work` on the de-duplication window, on a blocking thread (it reads and syncs files).
    async fn with_window<T: Send + 'static>(
        &self,
        work: impl FnOnce(&mut Window) -> std::io::Result<T> + Send + 'static,
    ) -> Result<T, SpoolError> {
        let (window, size) = (self.window.clone(), self.window_size.clone());
        tokio::task::spawn_blocking(move || {
            let mut window = window.lock().map_err(|_| {
                SpoolError::unavailable("the de-duplication window's lock was poisoned")
            })?;
            let done = work(&mut window)
                .map_err(|err| SpoolError::storage(format!("de-duplication window: {err}"), err));
            if let Ok(mut size) = size.lock() {
                *size = window.size();
            }
            done
        })
        .await
        .map_err(|err| {
            SpoolError::storage(format!("de-duplication window task failed: {err}"), err)
        })?
    }

    /// Forgets de-duplication keys whose window ended by `now_ms` (whole segments of them), and
    /// seals an hour-old log. Returns how many keys were forgotten.
    pub async fn prune_seen(&self, now_ms: u64) -> Result<usize, SpoolError> {
        // Also a heartbeat: an empty write tells readiness whether the disk still takes commits,
        // and is what reopens a spool whose disk failed, even when no request comes.
        let heartbeat = self.write(|_| Ok(())).await;
        let forgotten = self.with_window(move |window| window.prune(now_ms)).await?;
        heartbeat.map(|()| forgotten)
    }
}

/// Opens the window in `<dir>/seen/`, importing a `seen.redb` once.
pub(super) fn open_window(dir: &Path, now_ms: u64) -> Result<Window, SpoolError> {
    let window_dir = dir.join(WINDOW_DIR);
    let mut window = Window::open(&window_dir, now_ms).map_err(|err| {
        SpoolError::storage(
            format!(
                "cannot open the de-duplication window in {}: {err}",
                window_dir.display()
            ),
            err,
        )
    })?;
    import_seen_redb(dir, &mut window, now_ms)?;
    Ok(window)
}

/// Reads a `seen.redb` (where the previous version kept the window) into `window`, then deletes
/// it, so an upgrade forgets no claim still in force.
fn import_seen_redb(dir: &Path, window: &mut Window, now_ms: u64) -> Result<(), SpoolError> {
    let path = dir.join(SEEN_REDB_FILE);
    if !path.exists() {
        return Ok(());
    }
    let cannot = |err: String| {
        SpoolError::storage(
            format!(
                "cannot import the de-duplication window from {}: {err}; moving that file away \
             starts without it (events Okta delivers again may alert again, with the same alert id)",
                path.display()
            ),
            err,
        )
    };
    let claims = seen_redb_claims(&path, now_ms).map_err(|err| cannot(err.to_string()))?;
    window
        .record(&claims, now_ms)
        .and_then(|()| std::fs::remove_file(&path))
        .map_err(|err| cannot(err.to_string()))?;
    tracing::info!(
        claims = claims.len(),
        "the de-duplication window moved from seen.redb to seen/; its claims in force were copied"
    );
    Ok(())
}

/// The claims of a `seen.redb` still in force at `now_ms`.
fn seen_redb_claims(
    path: &Path,
    now_ms: u64,
) -> Result<Vec<(window::KeyHash, Claim)>, redb::Error> {
    // The spool's small cache: the file can be gigabytes, and it is read once, in order.
    let db = Database::builder()
        .set_cache_size(handle::CACHE_BYTES)
        .open(path)?;
    let txn = db.begin_read()?;
    let mut claims = Vec::new();
    for row in txn.open_table(SEEN_REDB_CLAIMS)?.iter()? {
        let (key, claim) = row?;
        let (until_ms, batch_id) = claim.value();
        if until_ms > now_ms {
            claims.push((key_hash(key.value()), Claim { until_ms, batch_id }));
        }
    }
    Ok(claims)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::spool::DetectionCommit;

    #[tokio::test]
    async fn a_batch_detected_again_is_no_duplicate_of_itself_but_another_batch_is() {
        let dir = tempfile::TempDir::new().unwrap();
        let spool = Spool::open(dir.path(), u64::MAX).unwrap();
        let id = spool.append_batch(1, b"{}").await.unwrap();
        let batch = spool.pending_batches(1, u64::MAX).await.unwrap().remove(0);
        // Detection claimed the key, then stopped before its spool commit.
        spool
            .claim_seen(vec![("uuid-1".to_owned(), batch.id)], 10_000)
            .await
            .unwrap();
        let seen_by = |batch_id: u64, now_ms: u64| {
            let spool = &spool;
            async move {
                spool
                    .already_seen(vec![("uuid-1".to_owned(), batch_id)], now_ms)
                    .await
                    .unwrap()
            }
        };
        assert!(seen_by(id, 5_000).await.is_empty(), "its own claim");
        assert!(seen_by(id + 1, 5_000).await.contains("uuid-1"));
        assert!(seen_by(id + 1, 10_001).await.is_empty(), "the window ended");
    }

    #[tokio::test]
    async fn batch_ids_are_not_reused_once_the_spool_is_empty() {
        let dir = tempfile::TempDir::new().unwrap();
        let first = {
            let spool = Spool::open(dir.path(), u64::MAX).unwrap();
            let id = spool.append_batch(1, b"{}").await.unwrap();
            let batch = spool.pending_batches(1, u64::MAX).await.unwrap().remove(0);
            spool
                .claim_seen(vec![("uuid-1".to_owned(), id)], u64::MAX)
                .await
                .unwrap();
            let commit = DetectionCommit {
                batches: vec![batch],
                ..DetectionCommit::default()
            };
            spool.complete_batches(commit).await.unwrap();
            assert_eq!(spool.backlog().batches, 0);
            id
        };
        let spool = Spool::open(dir.path(), u64::MAX).unwrap();
        let next = spool.append_batch(2, b"{}").await.unwrap();
        assert!(next > first, "batch id {first} was given again");
        let seen = spool
            .already_seen(vec![("uuid-1".to_owned(), next)], 3)
            .await
            .unwrap();
        assert!(seen.contains("uuid-1"), "the window survives the restart");
    }

    #[tokio::test]
    async fn an_earlier_versions_seen_redb_is_imported_and_deleted() {
        let dir = tempfile::TempDir::new().unwrap();
        let now = crate::clock::now_ms();
        {
            let db = Database::create(dir.path().join(SEEN_REDB_FILE)).unwrap();
            let txn = db.begin_write().unwrap();
            {
                let mut claims = txn.open_table(SEEN_REDB_CLAIMS).unwrap();
                claims.insert("uuid-live", (now + 60_000, 41)).unwrap();
                claims.insert("uuid-ended", (now - 1, 40)).unwrap();
            }
            txn.commit().unwrap();
        }
        let spool = Spool::open(dir.path(), u64::MAX).unwrap();
        assert!(!dir.path().join(SEEN_REDB_FILE).exists());
        let next = spool.append_batch(now, b"{}").await.unwrap();
        assert!(
            next > 41,
            "batch id {next} could pass for the claim of batch 41"
        );
        let keys = ["uuid-live", "uuid-ended"].map(|key| (key.to_owned(), next));
        let seen = spool.already_seen(keys.to_vec(), now).await.unwrap();
        assert_eq!(seen, HashSet::from(["uuid-live".to_owned()]));
    }
}
