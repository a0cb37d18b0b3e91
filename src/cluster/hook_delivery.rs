//! The event hook's last delivery, as the whole fleet saw it: Okta's deliveries land on any
//! replica behind the load balancer, while one replica polls the System Log and judges whether
//! the hook went silent. Each replica raises the shared record to its own last delivery once per
//! poll, and the polling replica reads the fleet's from it.
//!
//! One record per org, the Unix ms of the latest delivery any replica stored, only ever raised,
//! by a compare-and-set on the value read before (two replicas raising it at once: the later
//! write reads again).

use super::{ClusterError, SharedState};

/// The record's key (under the org's key prefix).
const LAST_DELIVERY_KEY: &str = "hook-last-delivery";

/// Compare-and-set attempts before giving up for this poll (another replica kept writing).
const ATTEMPTS: usize = 5;

impl SharedState {
    /// Raises the fleet's last hook delivery to `local` (this replica's, if any) and answers the
    /// fleet's: the latest delivery any replica stored, `None` if none ever did.
    pub async fn share_last_delivery(
        &self,
        local: Option<u64>,
    ) -> Result<Option<u64>, ClusterError> {
        let outcome = self.raise_last_delivery(local).await;
        self.observe(outcome).await
    }

    async fn raise_last_delivery(&self, local: Option<u64>) -> Result<Option<u64>, ClusterError> {
        let mut shared = None;
        for _ in 0..ATTEMPTS {
            let stored = self.read_record(LAST_DELIVERY_KEY).await?;
            shared = stored.as_deref().and_then(decode);
            let Some(local) = local.filter(|local| shared < Some(*local)) else {
                return Ok(shared);
            };
            let value = local.to_string();
            if self
                .swap_record(LAST_DELIVERY_KEY, stored.as_deref(), value.as_bytes())
                .await?
            {
                return Ok(Some(local));
            }
        }
        // Others kept raising it: theirs are later than what was read, and this replica's
        // goes in at its next poll.
        Ok(shared.max(local))
    }
}

/// The record's value: the Unix ms as decimal text (readable with `redis-cli GET`).
fn decode(bytes: &[u8]) -> Option<u64> {
    std::str::from_utf8(bytes).ok()?.trim().parse().ok()
}
