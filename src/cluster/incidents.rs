//! Incidents shared by the fleet: each target user's incident is one record in the backend
//! (Redis key `<prefix>incident:<okta org>:<login>`, or an entry of the `<prefix>_incidents`
//! JetStream key-value bucket), expiring `incident_window` after its last alert. A replica reads
//! it, folds its alerts in and writes it back only if it still holds what was read
//! (compare-and-set), else reads again: two replicas alerting on one user at once both land in
//! the one incident.

use std::time::Duration;

#[cfg(any(feature = "redis", feature = "nats"))]
use super::Backend;
use super::{ClusterError, SharedState};

impl SharedState {
    /// The incident stored under `key` (`<okta org>:<login>`), if any. `keep` is the incident
    /// window (the lifetime of a bucket `nats-kv` creates for incidents).
    pub async fn load_incident(
        &self,
        key: &str,
        keep: Duration,
    ) -> Result<Option<Vec<u8>>, ClusterError> {
        let loaded: Result<Option<Vec<u8>>, _> = match self.backend {
            #[cfg(feature = "redis")]
            Backend::Redis(ref redis) => redis.read(&record_name(key)).await,
            #[cfg(feature = "nats")]
            Backend::NatsKv(ref kv) => kv.read_incident(key, keep).await,
        };
        self.observe(loaded).await
    }

    /// Writes `new` under `key` if it still holds `expected` (`None`: no incident), to expire
    /// `keep` after this write. `Ok(false)`: another replica wrote first; load again and fold.
    pub async fn swap_incident(
        &self,
        key: &str,
        expected: Option<&[u8]>,
        new: &[u8],
        keep: Duration,
    ) -> Result<bool, ClusterError> {
        let written: Result<bool, _> = match self.backend {
            #[cfg(feature = "redis")]
            Backend::Redis(ref redis) => {
                redis
                    .swap_expiring(&record_name(key), expected, new, keep)
                    .await
            }
            #[cfg(feature = "nats")]
            Backend::NatsKv(ref kv) => kv.swap_incident(key, expected, new, keep).await,
        };
        self.observe(written).await
    }
}

/// The Redis key of an incident, under the prefix.
#[cfg(feature = "redis")]
fn record_name(key: &str) -> String {
    format!("incident:{key}")
}
