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
//! Correlation state lives in Redis too, so the events of one attacker spread over every replica
//! fall into one window. It is one value (the state the correlator exports) with a token that
//! changes on every write; a replica loads it, applies the events it detected, and writes it back
//! only if the token is still the one it loaded (compare-and-set in a Lua script), else it loads
//! again and retries. The same script records, per replica, the step it applied and the alerts it
//! raised, so a replica that crashes after the write and before its own commit finds them at
//! restart and queues them, instead of counting its events twice or losing the alerts. While
//! Redis is down, detected events wait in the replica's spool and correlation resumes from them.

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
    /// claimed in Redis as well, so a batch replayed to another replica alerts once, and the
    /// correlation state in Redis, so a pattern spread over replicas fires once).
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
    /// Event keys claimed, and correlation state kept, in Redis.
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

/// This replica's view of the state shared in Redis: event key claims and correlation state.
pub struct SharedState {
    url: ServerUrl,
    prefix: String,
    replica: String,
    connection: LazyClient<ConnectionManager>,
    /// What `/readyz` reports.
    pub status: Arc<BackendStatus>,
}

impl std::fmt::Debug for SharedState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SharedState")
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

/// Key of the shared correlation state's token (a uuid, new with every write).
const CORRELATION_TOKEN: &str = "correlation:token";
/// Key of the shared correlation state (what [`crate::detect::correlate::Correlator::save`] makes).
const CORRELATION_STATE: &str = "correlation:state";
/// How long a replica's last step is kept: long enough for any restart; a replica gone for good
/// leaves nothing behind.
const APPLIED_STEP_TTL: Duration = Duration::from_secs(7 * 24 * 3600);

/// Writes the state if its token is still the expected one (`''` for none yet), with this
/// replica's step; answers 1 when written, 0 when another replica wrote first.
const PUBLISH_SCRIPT: &str = r"
local current = redis.call('GET', KEYS[1]) or ''
if current ~= ARGV[1] then
  return 0
end
redis.call('SET', KEYS[1], ARGV[2])
redis.call('SET', KEYS[2], ARGV[3])
redis.call('SET', KEYS[3], ARGV[4], 'PX', ARGV[5])
return 1
";

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

impl SharedState {
    /// The shared state of `config` for the replica `replica` (stable across its restarts), or
    /// `None` in standalone mode.
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
        self.observe(outcome).await
    }

    /// Records how a call went, for `/readyz`; a failed call drops the connection, so the next
    /// one reconnects.
    async fn observe<T>(&self, outcome: Result<T, String>) -> Result<T, String> {
        self.status
            .record(outcome.as_ref().map(drop).map_err(String::as_str));
        if outcome.is_err() {
            self.connection.reset().await;
        }
        outcome
    }

    async fn connection(&self) -> Result<ConnectionManager, String> {
        self.connection
            .get(|| crate::sinks::redis::connect(&self.url))
            .await
            .map_err(|err| err.to_string())
    }

    fn key(&self, name: &str) -> String {
        format!("{}{name}", self.prefix)
    }

    /// The shared correlation state's token, this replica's last step, and the state itself
    /// unless its token is `known` (the caller holds that state already).
    pub async fn load_correlation(&self, known: Option<&str>) -> Result<SharedCorrelation, String> {
        let outcome = self.fetch_correlation(known).await;
        self.observe(outcome).await
    }

    async fn fetch_correlation(&self, known: Option<&str>) -> Result<SharedCorrelation, String> {
        let mut connection = self.connection().await?;
        let (token, last_step): (Option<String>, Option<Vec<u8>>) = redis::cmd("MGET")
            .arg(self.key(CORRELATION_TOKEN))
            .arg(self.applied_key())
            .query_async(&mut connection)
            .await
            .map_err(|err| self.error(err))?;
        let state = match &token {
            Some(token) if Some(token.as_str()) != known => redis::cmd("GET")
                .arg(self.key(CORRELATION_STATE))
                .query_async(&mut connection)
                .await
                .map_err(|err| self.error(err))?,
            _ => None,
        };
        Ok(SharedCorrelation {
            token,
            state,
            last_step,
        })
    }

    /// Writes `state` under the new token `step.token` if the shared state still has the token
    /// `expected` (`None`: no state yet), with `step` as this replica's last step. `Ok(false)`:
    /// another replica wrote first; load again and retry.
    pub async fn publish_correlation(
        &self,
        expected: Option<&str>,
        state: &[u8],
        step: &AppliedStep,
    ) -> Result<bool, String> {
        let outcome = self.write_correlation(expected, state, step).await;
        self.observe(outcome).await
    }

    async fn write_correlation(
        &self,
        expected: Option<&str>,
        state: &[u8],
        step: &AppliedStep,
    ) -> Result<bool, String> {
        let mut connection = self.connection().await?;
        let step_json = serde_json::to_vec(step).map_err(|err| err.to_string())?;
        let written: i64 = redis::cmd("EVAL")
            .arg(PUBLISH_SCRIPT)
            .arg(3)
            .arg(self.key(CORRELATION_TOKEN))
            .arg(self.key(CORRELATION_STATE))
            .arg(self.applied_key())
            .arg(expected.unwrap_or(""))
            .arg(&step.token)
            .arg(state)
            .arg(step_json)
            .arg(APPLIED_STEP_TTL.as_millis() as u64)
            .query_async(&mut connection)
            .await
            .map_err(|err| self.error(err))?;
        Ok(written == 1)
    }

    fn applied_key(&self) -> String {
        self.key(&format!("correlation:applied:{}", self.replica))
    }

    fn error(&self, err: redis::RedisError) -> String {
        format!("cluster Redis at {}: {err}", self.url)
    }

    async fn claim(&self, claims: &[Claim], window: Duration) -> Result<HashSet<String>, String> {
        let mut connection = self.connection().await?;
        let owners: Vec<String> = claims.iter().map(|c| self.owner(c)).collect();
        // EVAL with the script's text: it is small, and EVALSHA would need the script cache.
        let mut eval = redis::cmd("EVAL");
        eval.arg(CLAIM_SCRIPT).arg(claims.len());
        for claim in claims {
            eval.arg(self.key(&format!("seen:{}", claim.key)));
        }
        eval.arg(window.as_millis() as u64).arg(&owners);
        let answered: Vec<String> = eval
            .query_async(&mut connection)
            .await
            .map_err(|err| self.error(err))?;
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
