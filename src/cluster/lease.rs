//! The System Log poller's lease: one replica polls an org's System Log at a time, and the
//! cursor it reached travels with the lease, so the replica that takes over goes on from there.
//!
//! One record per org in the shared backend, `{holder, expires_ms, cursor}`, changed only by a
//! compare-and-set on the value read before: two replicas that both find it free cannot both
//! take it. The holder renews it with every page it stores (and every interval when there are
//! none); a holder that stops renewing loses it when `expires_ms` passes. Expiry compares the
//! replicas' clocks, which must agree within a small part of the lease period (NTP does).

use std::time::Duration;

use serde::{Deserialize, Serialize};

// A build without Redis and NATS has no backend kind to match on.
#[cfg(any(feature = "redis", feature = "nats"))]
use super::Backend;
use super::{ClusterError, SharedState};

/// The record's key (under the org's key prefix).
const LEASE_KEY: &str = "reconcile-lease";

/// The shared lease record.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
struct LeaseRecord {
    /// The replica id of the holder.
    holder: String,
    /// When the lease ends unless renewed (Unix ms, the holder's clock).
    expires_ms: u64,
    /// The last System Log cursor (`next` link) whose page the holder stored.
    cursor: Option<String>,
}

/// What a call to [`SharedState::hold_poller_lease`] found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Lease {
    /// This replica holds the lease until `ttl` from now; `cursor` is the shared cursor.
    Held {
        /// The cursor stored with the lease: where polling goes on.
        cursor: Option<String>,
    },
    /// Another replica holds it.
    Elsewhere {
        /// Its replica id.
        holder: String,
    },
}

impl SharedState {
    /// Takes, or renews, this org's polling lease for `ttl`, storing `cursor` with it when given
    /// (the one stored stays otherwise). Call it only after the page that cursor ends is durable
    /// in this replica's spool: a cursor shared too early could skip events, one shared late
    /// only repeats some, which de-duplication drops.
    pub async fn hold_poller_lease(
        &self,
        ttl: Duration,
        cursor: Option<&str>,
    ) -> Result<Lease, ClusterError> {
        let outcome = self.try_hold(ttl, cursor).await;
        self.observe(outcome).await
    }

    async fn try_hold(&self, ttl: Duration, cursor: Option<&str>) -> Result<Lease, ClusterError> {
        let stored = self.read_record(LEASE_KEY).await?;
        // A record that does not decode (written by another version) is taken over.
        let current: Option<LeaseRecord> = stored
            .as_deref()
            .and_then(|bytes| serde_json::from_slice(bytes).ok());
        let now = crate::clock::now_ms();
        if let Some(other) = current
            .as_ref()
            .filter(|record| record.holder != self.replica && record.expires_ms > now)
        {
            return Ok(Lease::Elsewhere {
                holder: other.holder.clone(),
            });
        }
        let record = LeaseRecord {
            holder: self.replica.clone(),
            expires_ms: now + ttl.as_millis() as u64,
            cursor: cursor
                .map(str::to_owned)
                .or_else(|| current.and_then(|record| record.cursor)),
        };
        let value = serde_json::to_vec(&record).expect("a lease record serializes");
        Ok(
            match self
                .swap_record(LEASE_KEY, stored.as_deref(), &value)
                .await?
            {
                true => Lease::Held {
                    cursor: record.cursor,
                },
                false => Lease::Elsewhere {
                    holder: "another replica (it took the lease a moment ago)".into(),
                },
            },
        )
    }

    pub(super) async fn read_record(&self, name: &str) -> Result<Option<Vec<u8>>, ClusterError> {
        match self.backend {
            #[cfg(feature = "redis")]
            Backend::Redis(ref redis) => redis.read(name).await,
            #[cfg(feature = "nats")]
            Backend::NatsKv(ref kv) => kv.read(name).await,
        }
    }

    pub(super) async fn swap_record(
        &self,
        name: &str,
        expected: Option<&[u8]>,
        new: &[u8],
    ) -> Result<bool, ClusterError> {
        match self.backend {
            #[cfg(feature = "redis")]
            Backend::Redis(ref redis) => redis.swap(name, expected, new).await,
            #[cfg(feature = "nats")]
            Backend::NatsKv(ref kv) => kv.swap(name, expected, new).await,
        }
    }
}
