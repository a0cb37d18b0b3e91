//! State shared by a fleet of replicas behind a load balancer (`[cluster]`).
//!
//! Okta's retry of a batch can land on another replica than the first try. Each replica keeps
//! its own spool, and its own window of event keys it has seen; in `redis` mode the keys are
//! also claimed in Redis, so the replica that claims an event first is the only one to alert on
//! it. A claim is `SET key owner NX PX window`, atomic in Redis; the owner names the replica and
//! the batch, so a replica that crashed after claiming and detects the same batch again after
//! its restart finds its own claim and goes on, instead of dropping its own events.
//!
//! When Redis cannot be reached, detection does not wait: de-duplication falls back to the
//! replica's own window, the failure shows in `/readyz` and `factorwatch_cluster_backend_up`,
//! and the next pass tries Redis again. Intake never waits on the network.
//!
//! Correlation state is not shared yet: each replica correlates the events it received.

use std::collections::HashSet;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use redis::aio::ConnectionManager;
use serde::{Deserialize, Serialize};

use crate::config::ServerUrl;
use crate::sinks::lazy::LazyClient;

/// The `key_prefix` when none is configured.
pub const DEFAULT_KEY_PREFIX: &str = "factorwatch:";

/// `[cluster]`: where replicas share state.
#[derive(Debug, Clone, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct ClusterConfig {
    /// `standalone` (the default: everything in this replica's spool) or `redis` (event keys
    /// claimed in Redis as well, so a batch replayed to another replica alerts once).
    pub mode: ClusterMode,
    /// The Redis URL in `redis` mode, such as `redis://redis.internal:6379` (`rediss://` for
    /// TLS): one server or a primary; Redis Cluster (sharded) is not supported, as a claim
    /// touches many keys in one script. Env: `FACTORWATCH_CLUSTER_URL` (which also sets
    /// `mode = "redis"`).
    pub url: Option<ServerUrl>,
    /// Prefix of every key factorwatch writes, so that several deployments can share a server.
    /// Default `factorwatch:`.
    pub key_prefix: Option<String>,
}

/// Where replicas share state.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum ClusterMode {
    /// One replica, or replicas that share nothing.
    #[default]
    Standalone,
    /// Event keys claimed in Redis.
    Redis,
}

impl ClusterConfig {
    /// Checks the block without connecting.
    pub fn validate(&self) -> anyhow::Result<()> {
        match (self.mode, &self.url) {
            (ClusterMode::Standalone, _) => Ok(()),
            (ClusterMode::Redis, None) => {
                anyhow::bail!("cluster.mode = \"redis\" needs cluster.url (redis://host:6379)")
            }
            (ClusterMode::Redis, Some(url)) => redis::Client::open(url.expose())
                .map(drop)
                .map_err(|err| anyhow::anyhow!("cluster.url = {:?}: {err}", url.redacted())),
        }
    }
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

    fn record(&self, outcome: Result<(), &str>) {
        metrics::gauge!("factorwatch_cluster_backend_up").set(if outcome.is_ok() {
            1.0
        } else {
            0.0
        });
        *self.last_error.lock().expect("status lock poisoned") = outcome.err().map(str::to_owned);
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

/// Claims event keys in Redis for this replica.
pub struct SharedDedup {
    url: ServerUrl,
    prefix: String,
    replica: String,
    connection: LazyClient<ConnectionManager>,
    /// What `/readyz` reports.
    pub status: Arc<BackendStatus>,
}

impl std::fmt::Debug for SharedDedup {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SharedDedup")
            .field("url", &self.url)
            .field("replica", &self.replica)
            .finish_non_exhaustive()
    }
}

/// Claims each key unless another owner holds it; answers each key's owner.
const CLAIM_SCRIPT: &str = r"
local owners = {}
for i, key in ipairs(KEYS) do
  local owner = ARGV[i + 1]
  if redis.call('SET', key, owner, 'NX', 'PX', ARGV[1]) then
    owners[i] = owner
  else
    owners[i] = redis.call('GET', key) or owner
  end
end
return owners
";

impl SharedDedup {
    /// The shared window of `config` for the replica `replica` (stable across its restarts),
    /// or `None` in standalone mode.
    pub fn new(config: &ClusterConfig, replica: &str) -> Option<Self> {
        let url = match config.mode {
            ClusterMode::Standalone => return None,
            ClusterMode::Redis => config.url.clone()?,
        };
        Some(Self {
            connection: LazyClient::new(format!("cluster Redis at {url}")),
            url,
            prefix: config
                .key_prefix
                .clone()
                .unwrap_or_else(|| DEFAULT_KEY_PREFIX.into()),
            replica: replica.to_owned(),
            status: Arc::default(),
        })
    }

    /// The keys of `claims` another replica (or an earlier batch) already claimed; the others
    /// are now claimed by this replica for `window`. An error means Redis could not answer: the
    /// caller falls back to its own window.
    pub async fn duplicates(
        &self,
        claims: &[Claim],
        window: Duration,
    ) -> Result<HashSet<String>, String> {
        if claims.is_empty() {
            return Ok(HashSet::new());
        }
        let outcome = self.claim(claims, window).await;
        self.status
            .record(outcome.as_ref().map(drop).map_err(String::as_str));
        if outcome.is_err() {
            self.connection.reset().await;
        }
        outcome
    }

    async fn claim(&self, claims: &[Claim], window: Duration) -> Result<HashSet<String>, String> {
        let mut connection = self
            .connection
            .get(|| crate::sinks::redis::connect(&self.url))
            .await
            .map_err(|err| err.to_string())?;
        let owners: Vec<String> = claims.iter().map(|c| self.owner(c)).collect();
        // EVAL with the script's text: it is small, and EVALSHA would need the script cache.
        let mut eval = redis::cmd("EVAL");
        eval.arg(CLAIM_SCRIPT).arg(claims.len());
        for claim in claims {
            eval.arg(format!("{}seen:{}", self.prefix, claim.key));
        }
        eval.arg(window.as_millis() as u64).arg(&owners);
        let answered: Vec<String> = eval
            .query_async(&mut connection)
            .await
            .map_err(|err| format!("cluster Redis at {}: {err}", self.url))?;
        Ok(claims
            .iter()
            .zip(owners.iter().zip(&answered))
            .filter(|(_, (ours, holder))| ours != holder)
            .map(|(claim, _)| claim.key.clone())
            .collect())
    }

    fn owner(&self, claim: &Claim) -> String {
        format!("{}/{}", self.replica, claim.batch_id)
    }
}
