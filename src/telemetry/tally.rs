//! What detection made of chosen deliveries: `backfill` watches its own batches through detection
//! here, to report how many of the events it read were new, how many already seen, and how many
//! alerts they raised. Only watched deliveries are counted; the registry is empty otherwise.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use serde::{Deserialize, Serialize};

/// Counts of one delivery id's batches, as detection committed them.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Tally {
    /// Batches detected.
    pub batches: u64,
    /// Events detected for the first time.
    pub new: u64,
    /// Events dropped as already seen (by this replica's window or another replica's claim).
    pub already_seen: u64,
    /// Alerts raised for its events.
    pub alerts: u64,
}

impl std::ops::AddAssign for Tally {
    fn add_assign(&mut self, other: Self) {
        self.batches += other.batches;
        self.new += other.new;
        self.already_seen += other.already_seen;
        self.alerts += other.alerts;
    }
}

/// The deliveries being watched, by delivery id (the envelope's `eventId`). Shared by an org's
/// detector, which adds, and whoever watches.
#[derive(Debug, Default)]
pub struct Tallies {
    watched: Mutex<HashMap<String, Tally>>,
}

impl Tallies {
    /// Counts the batches of `delivery_id` from now until the returned guard is dropped.
    pub fn watch(self: &Arc<Self>, delivery_id: &str) -> Watch {
        self.lock().insert(delivery_id.to_owned(), Tally::default());
        Watch {
            tallies: self.clone(),
            delivery_id: delivery_id.to_owned(),
        }
    }

    /// Adds what a detection pass committed for `delivery_id`; ignored when nobody watches it.
    pub fn add(&self, delivery_id: &str, tally: Tally) {
        if let Some(counted) = self.lock().get_mut(delivery_id) {
            *counted += tally;
        }
    }

    /// Whether anything is watched at all (a detection pass skips its counting when not).
    pub fn is_watching(&self) -> bool {
        !self.lock().is_empty()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, Tally>> {
        // A panic while holding this lock cannot leave the counts half-updated.
        self.watched
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

/// Watching one delivery id; dropping it stops the counting.
#[derive(Debug)]
pub struct Watch {
    tallies: Arc<Tallies>,
    delivery_id: String,
}

impl Watch {
    /// The delivery id watched.
    pub fn delivery_id(&self) -> &str {
        &self.delivery_id
    }

    /// What detection made of it so far.
    pub fn tally(&self) -> Tally {
        self.tallies
            .lock()
            .get(&self.delivery_id)
            .copied()
            .unwrap_or_default()
    }
}

impl Drop for Watch {
    fn drop(&mut self) {
        self.tallies.lock().remove(&self.delivery_id);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_watched_deliveries_are_counted_and_only_while_watched() {
        let tallies = Arc::new(Tallies::default());
        let one = Tally {
            batches: 1,
            new: 3,
            already_seen: 2,
            alerts: 1,
        };
        tallies.add("backfill-a", one);
        assert!(!tallies.is_watching());
        let watch = tallies.watch("backfill-a");
        tallies.add("backfill-a", one);
        tallies.add("backfill-a", one);
        tallies.add("other", one);
        assert_eq!(
            watch.tally(),
            Tally {
                batches: 2,
                new: 6,
                already_seen: 4,
                alerts: 2
            }
        );
        drop(watch);
        assert!(!tallies.is_watching());
    }
}
