//! State shared by a fleet of replicas behind a load balancer (`[cluster]`).
//!
//! Okta's retry of a batch can land on another replica than the first try. Each replica keeps
//! its own spool, and its own window of event keys it has seen; in a shared mode (`redis` or
//! `nats-kv`) the keys are also claimed in the backend, so the replica that claims an event first
//! is the only one to alert on it. A claim is atomic in the backend (`SET key owner NX PX window`
//! in Redis, a create that fails if the key exists in a JetStream key-value bucket whose entries
//! expire after the window); the owner names the replica and the batch, so a replica that
//! crashed after claiming and detects the same batch again after its restart finds its own claim
//! and goes on, instead of dropping its own events.
//!
//! When the backend cannot be reached, detection does not wait: de-duplication falls back to the
//! replica's own window, the failure shows in `/readyz` and `factorwatch_cluster_backend_up`,
//! and the next pass tries the backend again. Intake never waits on the network.
//!
//! Correlation state lives in the backend too, so the events of one attacker spread over every
//! replica fall into one window. It is one value (the state the correlator exports) with a token
//! that changes on every write; a replica loads it, applies the events it detected, and writes it
//! back only if the token is still the one it loaded (compare-and-set: a Lua script in Redis, the
//! entry's revision in JetStream), else it loads again and retries. The same atomic write records
//! the replica's step (the token and the alerts it raised), so a replica that crashes after the
//! write and before its own commit finds them at restart and queues them, instead of counting its
//! events twice or losing the alerts. While the backend is down, detected events wait in the
//! replica's spool and correlation resumes from them.
//!
//! The System Log poller's lease lives there as well ([`lease`]): one replica polls an org at a
//! time, and the cursor moves with the lease. So does the event hook's last delivery
//! ([`hook_delivery`]): the polling replica judges the hook's silence on the fleet's deliveries,
//! not only on those that reached it.
//!
//! [`SharedState`] is what the detector sees; `redis` and `nats_kv` hold each backend's calls.
//! Each backend is built with its Cargo feature (`redis`, `nats`); a mode whose feature is off is
//! refused by [`ClusterConfig::validate`].

// Without either backend no `SharedState` is ever made: its calls compile to an empty match,
// which leaves their arguments unused and the code after it unreachable.
#![cfg_attr(
    not(any(feature = "redis", feature = "nats")),
    allow(unused_variables, unreachable_code)
)]

mod error;
mod hook_delivery;
mod incidents;
mod lease;
#[cfg(feature = "nats")]
mod nats_kv;
#[cfg(feature = "redis")]
mod redis;

use std::collections::HashSet;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::brokers::ServerUrl;
use crate::telemetry::metrics::CLUSTER_BACKEND_UP;

pub use error::{ClusterError, UndecodableValue};
pub use lease::Lease;

/// The `key_prefix` when none is configured.
pub const DEFAULT_KEY_PREFIX: &str = "factorwatch:";

/// `[cluster]`: where replicas share state.
#[derive(Debug, Clone, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct ClusterConfig {
    /// `standalone` (the default: everything in this replica's spool), `redis` or `nats-kv`
    /// (event keys claimed in the backend as well, so a batch replayed to another replica
    /// alerts once, and the correlation state in the backend, so a pattern spread over replicas
    /// fires once).
    pub mode: ClusterMode,
    /// The backend's URL: in `redis` mode such as `redis://redis.internal:6379` (`rediss://`
    /// for TLS; one server or a primary; Redis Cluster (sharded) is not supported, as a claim
    /// touches many keys in one script); in `nats-kv` mode such as `nats://nats.internal:4222`
    /// (`tls://` for TLS, several servers of one cluster separated by commas, `user:password@`
    /// accepted). Env: `FACTORWATCH_CLUSTER_URL` (which also sets the mode from the scheme).
    pub url: Option<ServerUrl>,
    /// Prefix of every key factorwatch writes, so that several deployments can share a server.
    /// Default `factorwatch:`. In `nats-kv` mode it names the buckets instead: each character
    /// a bucket name cannot hold becomes `_`, so the default makes `factorwatch_seen` and
    /// `factorwatch_correlation`.
    pub key_prefix: Option<String>,
}

/// Where replicas share state.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum ClusterMode {
    /// One replica, or replicas that share nothing.
    #[default]
    Standalone,
    /// Event keys claimed, and correlation state kept, in Redis.
    Redis,
    /// Event keys claimed, and correlation state kept, in NATS JetStream key-value buckets.
    NatsKv,
}

impl ClusterMode {
    /// The mode a backend URL names by its scheme: `nats://` and `tls://` are NATS, anything
    /// else Redis (for `FACTORWATCH_CLUSTER_URL`).
    pub fn for_url(url: &str) -> Self {
        if url.starts_with("nats://") || url.starts_with("tls://") {
            Self::NatsKv
        } else {
            Self::Redis
        }
    }
}

impl ClusterConfig {
    /// Checks the block without connecting.
    pub fn validate(&self) -> anyhow::Result<()> {
        match (self.mode, &self.url) {
            (ClusterMode::Standalone, _) => Ok(()),
            #[cfg(not(feature = "redis"))]
            (ClusterMode::Redis, _) => Err(not_built("redis", "redis")),
            #[cfg(not(feature = "nats"))]
            (ClusterMode::NatsKv, _) => Err(not_built("nats-kv", "nats")),
            #[cfg(feature = "redis")]
            (ClusterMode::Redis, None) => {
                anyhow::bail!("cluster.mode = \"redis\" needs cluster.url (redis://host:6379)")
            }
            #[cfg(feature = "nats")]
            (ClusterMode::NatsKv, None) => {
                anyhow::bail!("cluster.mode = \"nats-kv\" needs cluster.url (nats://host:4222)")
            }
            #[cfg(feature = "redis")]
            (ClusterMode::Redis, Some(url)) => ::redis::Client::open(url.expose())
                .map(drop)
                .map_err(|err| anyhow::anyhow!("cluster.url = {:?}: {err}", url.redacted())),
            #[cfg(feature = "nats")]
            (ClusterMode::NatsKv, Some(url)) => crate::brokers::nats::parse_servers(url)
                .map(drop)
                .map_err(|err| anyhow::anyhow!("cluster.{err}")),
        }
    }
}

/// The error for a `cluster.mode` whose backend client this build leaves out.
#[cfg(not(all(feature = "redis", feature = "nats")))]
fn not_built(mode: &'static str, feature: &'static str) -> anyhow::Error {
    crate::brokers::NotBuilt {
        key: "cluster.mode",
        value: mode,
        feature,
    }
    .into()
}

/// How the shared backend is doing, for `/readyz` and the metrics.
#[derive(Debug, Default)]
pub struct BackendStatus {
    last_error: Mutex<Option<String>>,
}

impl BackendStatus {
    /// The last failure, if the last call failed.
    pub fn problem(&self) -> Option<String> {
        self.last_error
            .lock()
            .expect("status lock poisoned")
            .clone()
    }

    fn record(&self, outcome: Result<(), &ClusterError>) {
        metrics::gauge!(CLUSTER_BACKEND_UP).set(if outcome.is_ok() { 1.0 } else { 0.0 });
        *self.last_error.lock().expect("status lock poisoned") =
            outcome.err().map(ClusterError::chain);
    }
}

/// One event key to claim, and the batch it came in.
#[derive(Debug, Clone)]
pub struct Claim {
    /// The event key (uuid or content hash).
    pub key: String,
    /// The id of the batch in this replica's spool.
    pub batch_id: u64,
}

/// This replica's view of the state shared in the backend: event key claims and correlation
/// state.
pub struct SharedState {
    url: ServerUrl,
    replica: String,
    backend: Backend,
    /// What `/readyz` reports.
    pub status: Arc<BackendStatus>,
}

/// The backend's own calls. Matched by place (`match self.backend`), so that a build with
/// neither backend, where it has no variant, still compiles.
enum Backend {
    #[cfg(feature = "redis")]
    Redis(redis::RedisState),
    /// Boxed: its bucket handles are large, and there is one per org.
    #[cfg(feature = "nats")]
    NatsKv(Box<nats_kv::NatsKvState>),
}

impl std::fmt::Debug for SharedState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SharedState")
            .field("url", &self.url)
            .field("replica", &self.replica)
            .finish_non_exhaustive()
    }
}

/// The shared correlation state as one load found it.
#[derive(Debug, Default)]
pub struct SharedCorrelation {
    /// The state's token; `None` before any replica wrote state.
    pub token: Option<String>,
    /// The state, unless the caller already held the state of this token.
    pub state: Option<Vec<u8>>,
    /// This replica's last step ([`AppliedStep`] as JSON), if any.
    pub last_step: Option<Vec<u8>>,
}

/// What a replica's correlation step did to the shared state, written with it: what a restart
/// needs to finish the step in its own spool.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct AppliedStep {
    /// The token the step wrote; the spool records it when it commits the step.
    pub token: String,
    /// The last correlation input (its spool sequence number) the step consumed.
    pub consumed_through: Option<u64>,
    /// The alerts the step raised.
    pub alerts: Vec<crate::alert::Alert>,
}

/// How long a replica's last correlation step is kept: long enough for any restart; a replica
/// gone for good leaves nothing behind.
#[cfg(any(feature = "redis", feature = "nats"))]
const APPLIED_STEP_TTL: Duration = Duration::from_secs(7 * 24 * 3600);

impl SharedState {
    /// The shared state of `config` for the replica `replica` (stable across its restarts), or
    /// `None` in standalone mode.
    pub fn new(config: &ClusterConfig, replica: &str) -> Option<Self> {
        let url = config.url.clone()?;
        let prefix = config
            .key_prefix
            .clone()
            .unwrap_or_else(|| DEFAULT_KEY_PREFIX.into());
        let backend = match config.mode {
            ClusterMode::Standalone => return None,
            #[cfg(feature = "redis")]
            ClusterMode::Redis => Backend::Redis(redis::RedisState::new(&url, prefix, replica)),
            #[cfg(feature = "nats")]
            ClusterMode::NatsKv => {
                Backend::NatsKv(Box::new(nats_kv::NatsKvState::new(&url, &prefix, replica)))
            }
            #[cfg(not(all(feature = "redis", feature = "nats")))]
            mode => panic!("cluster mode {mode:?} is not in this build; validate refuses it"),
        };
        Some(Self {
            url,
            replica: replica.to_owned(),
            backend,
            status: Arc::default(),
        })
    }

    /// The keys of `claims` another replica (or an earlier batch) already claimed; the others
    /// are now claimed by this replica for `window`. An error means the backend could not
    /// answer: the caller falls back to its own window.
    pub async fn duplicates(
        &self,
        claims: &[Claim],
        window: Duration,
    ) -> Result<HashSet<String>, ClusterError> {
        if claims.is_empty() {
            return Ok(HashSet::new());
        }
        let owners: Vec<String> = claims.iter().map(|c| self.owner(c)).collect();
        let holders: Result<Vec<String>, _> = match self.backend {
            #[cfg(feature = "redis")]
            Backend::Redis(ref redis) => redis.claim(claims, &owners, window).await,
            #[cfg(feature = "nats")]
            Backend::NatsKv(ref kv) => kv.claim(claims, &owners, window).await,
        };
        let holders = self.observe(holders).await?;
        Ok(claims
            .iter()
            .zip(owners.iter().zip(&holders))
            .filter(|(_, (ours, holder))| ours != holder)
            .map(|(claim, _)| claim.key.clone())
            .collect())
    }

    /// The shared correlation state's token, this replica's last step, and the state itself
    /// unless its token is `known` (the caller holds that state already).
    pub async fn load_correlation(
        &self,
        known: Option<&str>,
    ) -> Result<SharedCorrelation, ClusterError> {
        let loaded: Result<SharedCorrelation, _> = match self.backend {
            #[cfg(feature = "redis")]
            Backend::Redis(ref redis) => redis.load(known).await,
            #[cfg(feature = "nats")]
            Backend::NatsKv(ref kv) => kv.load(known).await,
        };
        self.observe(loaded).await
    }

    /// Writes `state` under the new token `step.token` if the shared state still has the token
    /// `expected` (`None`: no state yet), with `step` as this replica's last step. `Ok(false)`:
    /// another replica wrote first; load again and retry.
    pub async fn publish_correlation(
        &self,
        expected: Option<&str>,
        state: &[u8],
        step: &AppliedStep,
    ) -> Result<bool, ClusterError> {
        let written: Result<bool, _> = match self.backend {
            #[cfg(feature = "redis")]
            Backend::Redis(ref redis) => redis.publish(expected, state, step).await,
            #[cfg(feature = "nats")]
            Backend::NatsKv(ref kv) => kv.publish(expected, state, step).await,
        };
        self.observe(written).await
    }

    /// Records how a call went, for `/readyz`; a failed call drops the connection, so the next
    /// one reconnects.
    async fn observe<T>(&self, outcome: Result<T, ClusterError>) -> Result<T, ClusterError> {
        self.status.record(outcome.as_ref().map(drop));
        if outcome.is_err() {
            match self.backend {
                #[cfg(feature = "redis")]
                Backend::Redis(ref redis) => redis.reset().await,
                #[cfg(feature = "nats")]
                Backend::NatsKv(ref kv) => kv.reset().await,
            }
        }
        outcome
    }

    /// What a claim of this replica for `claim`'s batch holds.
    fn owner(&self, claim: &Claim) -> String {
        format!("{}/{}", self.replica, claim.batch_id)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config(mode: ClusterMode, url: Option<&str>) -> ClusterConfig {
        ClusterConfig {
            mode,
            url: url.map(ServerUrl::new),
            key_prefix: None,
        }
    }

    #[test]
    fn a_mode_left_out_of_the_build_names_its_feature() {
        for (mode, url, value, feature, built) in [
            (
                ClusterMode::Redis,
                "redis://r:6379",
                "redis",
                "redis",
                cfg!(feature = "redis"),
            ),
            (
                ClusterMode::NatsKv,
                "nats://n:4222",
                "nats-kv",
                "nats",
                cfg!(feature = "nats"),
            ),
        ] {
            let checked = config(mode, Some(url)).validate();
            if built {
                checked.unwrap();
            } else {
                assert_eq!(
                    checked.unwrap_err().to_string(),
                    format!("cluster.mode = \"{value}\" needs a build with --features {feature}")
                );
            }
        }
    }

    #[test]
    #[cfg(all(feature = "redis", feature = "nats"))]
    fn a_shared_mode_without_a_url_or_with_a_bad_one_is_refused_with_an_example() {
        let err = config(ClusterMode::NatsKv, None).validate().unwrap_err();
        assert!(err.to_string().contains("nats://host:4222"), "{err}");
        let err = config(ClusterMode::Redis, None).validate().unwrap_err();
        assert!(err.to_string().contains("redis://host:6379"), "{err}");
        let err = config(ClusterMode::NatsKv, Some("nats://user:hunter2@[bad"))
            .validate()
            .unwrap_err();
        assert!(err.to_string().starts_with("cluster.url"), "{err}");
        assert!(!err.to_string().contains("hunter2"), "{err}");
        config(ClusterMode::NatsKv, Some("nats://a:4222, nats://b:4222"))
            .validate()
            .unwrap();
    }

    #[test]
    fn the_url_scheme_names_the_backend() {
        assert_eq!(ClusterMode::for_url("nats://n:4222"), ClusterMode::NatsKv);
        assert_eq!(ClusterMode::for_url("tls://n:4222"), ClusterMode::NatsKv);
        assert_eq!(ClusterMode::for_url("redis://r:6379"), ClusterMode::Redis);
        assert_eq!(ClusterMode::for_url("rediss://r:6379"), ClusterMode::Redis);
    }
}
