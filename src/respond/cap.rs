//! `max_per_hour`: how many actions a response may take in a sliding hour. Standalone, the
//! actions taken are counted here, seeded from the ledger at the first alert after a start, so a
//! restart does not reset the count. In a `[cluster]`, each action holds one of `max_per_hour`
//! slots in the shared backend for an hour, so the cap holds across every replica: an attacker
//! who resets a hundred users gets `max_per_hour` actions, not that many per replica.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use crate::cluster::{Claim, SharedState};
use crate::sinks::DeliveryError;

/// The cap's window.
pub const HOUR: Duration = Duration::from_secs(3600);

/// The cap of one response.
pub struct Cap {
    /// The response's name (its slots' keys).
    name: String,
    max: u32,
    /// Standalone: each action counted (by action id) and when, in Unix ms.
    taken: Mutex<HashMap<String, u64>>,
    /// In a `[cluster]`: the backend holding the slots.
    cluster: Option<Arc<SharedState>>,
}

impl Cap {
    /// The cap of the response `name`: `max` actions an hour.
    pub fn new(name: &str, max: u32, cluster: Option<Arc<SharedState>>) -> Self {
        Self {
            name: name.to_owned(),
            max,
            taken: Mutex::default(),
            cluster,
        }
    }

    /// Counts actions taken before this process started (from the ledger): `(action id, Unix
    /// ms)`.
    pub fn seed(&self, taken: impl IntoIterator<Item = (String, u64)>) {
        self.counted().extend(taken);
    }

    /// Takes a place for the action `action_id` at `now_ms`: true when it may act. The same
    /// action asking again (a retry) keeps its place rather than taking a second one.
    pub async fn take(&self, action_id: &str, now_ms: u64) -> Result<bool, DeliveryError> {
        match &self.cluster {
            Some(cluster) => self.take_slot(cluster, action_id).await,
            None => Ok(self.take_here(action_id, now_ms)),
        }
    }

    fn counted(&self) -> std::sync::MutexGuard<'_, HashMap<String, u64>> {
        self.taken.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn take_here(&self, action_id: &str, now_ms: u64) -> bool {
        let mut taken = self.counted();
        let since = now_ms.saturating_sub(HOUR.as_millis() as u64);
        taken.retain(|_, at| *at > since);
        if taken.contains_key(action_id) {
            return true;
        }
        if taken.len() >= self.max as usize {
            return false;
        }
        taken.insert(action_id.to_owned(), now_ms);
        true
    }

    /// Claims the first free slot, each for an hour. A slot's owner is this replica and the
    /// action, so the action asking again finds its own slot.
    async fn take_slot(
        &self,
        cluster: &SharedState,
        action_id: &str,
    ) -> Result<bool, DeliveryError> {
        let owner = owner_number(action_id);
        for slot in 0..self.max {
            let claim = Claim {
                key: format!("response-cap:{}:{slot}", self.name),
                batch_id: owner,
            };
            let held = cluster
                .duplicates(std::slice::from_ref(&claim), HOUR)
                .await
                .map_err(|err| {
                    DeliveryError::Transient(format!(
                        "the cluster backend cannot count the response's cap ({err}); retrying"
                    ))
                })?;
            if held.is_empty() {
                return Ok(true);
            }
        }
        Ok(false)
    }
}

/// A number standing for the action in a claim's owner (the first 8 bytes of its id's hash).
pub fn owner_number(action_id: &str) -> u64 {
    use sha2::{Digest, Sha256};
    let digest = Sha256::digest(action_id.as_bytes());
    u64::from_be_bytes(digest[..8].try_into().expect("8 bytes"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn the_cap_holds_for_an_hour_and_a_retry_keeps_its_place() {
        let cap = Cap::new("contain", 2, None);
        let t0 = 1_000_000_000;
        assert!(cap.take("a", t0).await.unwrap());
        assert!(cap.take("b", t0 + 1).await.unwrap());
        assert!(!cap.take("c", t0 + 2).await.unwrap(), "the third waits");
        assert!(
            cap.take("a", t0 + 3).await.unwrap(),
            "a retry of a keeps its place"
        );
        let later = t0 + HOUR.as_millis() as u64 + 1;
        assert!(
            cap.take("c", later).await.unwrap(),
            "an hour on, a place is free"
        );
    }

    #[tokio::test]
    async fn actions_before_a_restart_still_count() {
        let cap = Cap::new("contain", 1, None);
        cap.seed([("before".to_owned(), 5_000)]);
        assert!(!cap.take("after", 6_000).await.unwrap());
    }
}
