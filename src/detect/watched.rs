//! Counting what a pass made of watched deliveries ([`Tallies`]): per batch, its events new and
//! already seen; per delivery id, the alerts raised. Passes count only while something is
//! watched (a `backfill` running), so an ordinary pass pays one check.

use std::collections::HashMap;

use crate::alert::Alert;
use crate::telemetry::tally::{Tallies, Tally};

use super::ParsedBatch;

/// What one pass counted for watched deliveries, added to the [`Tallies`] once it committed.
#[derive(Debug, Default)]
pub(super) struct PassTally {
    by_delivery: HashMap<String, Tally>,
}

impl PassTally {
    /// The batches of `parsed` with a delivery id: how many of their events are `fresh` (the keys
    /// this pass claims, each with the batch it first appears in), how many not.
    pub(super) fn batches(parsed: &[ParsedBatch], fresh: &[(String, u64)]) -> Self {
        let mut new_per_batch: HashMap<u64, u64> = HashMap::new();
        for (_, batch_id) in fresh {
            *new_per_batch.entry(*batch_id).or_default() += 1;
        }
        let mut tally = Self::default();
        for batch in parsed {
            let Some(delivery_id) = &batch.envelope().event_id else {
                continue;
            };
            let events = batch.events().len() as u64;
            let new = new_per_batch.get(&batch.batch().id).copied().unwrap_or(0);
            *tally.by_delivery.entry(delivery_id.clone()).or_default() += Tally {
                batches: 1,
                new,
                already_seen: events - new,
                alerts: 0,
            };
        }
        tally
    }

    /// Adds the alerts of the pass, each to the delivery that carried its event.
    pub(super) fn alerts(&mut self, alerts: &[Alert]) {
        for alert in alerts {
            if let Some(tally) = alert
                .okta
                .delivery_id
                .as_ref()
                .and_then(|id| self.by_delivery.get_mut(id))
            {
                tally.alerts += 1;
            }
        }
    }

    /// Hands the counts of a committed pass to whoever watches.
    pub(super) fn commit(self, tallies: &Tallies) {
        for (delivery_id, tally) in self.by_delivery {
            tallies.add(&delivery_id, tally);
        }
    }
}
