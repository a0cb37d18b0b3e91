//! The `redis` backend: claims with one Lua script of `SET NX PX` per pass, the correlation
//! state as two keys (token, state) and each replica's last step as a third, written together
//! by a compare-and-set script.

use std::time::Duration;

use redis::aio::ConnectionManager;

use super::{APPLIED_STEP_TTL, AppliedStep, Claim, ClusterError, SharedCorrelation};
use crate::brokers::LazyClient;
use crate::brokers::ServerUrl;

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

/// Sets a key to a new value if it still holds the value read before (`''` for none); answers 1
/// when written, 0 when another replica changed it first.
const SWAP_SCRIPT: &str = r"
local current = redis.call('GET', KEYS[1]) or ''
if current ~= ARGV[1] then
  return 0
end
redis.call('SET', KEYS[1], ARGV[2])
return 1
";

/// As [`SWAP_SCRIPT`], the new value expiring after `ARGV[3]` ms (an incident's state).
const SWAP_EXPIRING_SCRIPT: &str = r"
local current = redis.call('GET', KEYS[1]) or ''
if current ~= ARGV[1] then
  return 0
end
redis.call('SET', KEYS[1], ARGV[2], 'PX', ARGV[3])
return 1
";

/// One replica's connection to the cluster Redis and the names of its keys.
pub(super) struct RedisState {
    url: ServerUrl,
    prefix: String,
    replica: String,
    connection: LazyClient<ConnectionManager>,
}

impl RedisState {
    pub(super) fn new(url: &ServerUrl, prefix: String, replica: &str) -> Self {
        Self {
            connection: LazyClient::new(format!("cluster Redis at {url}")),
            url: url.clone(),
            prefix,
            replica: replica.to_owned(),
        }
    }

    /// Claims each key for its owner in `owners` unless claimed already; answers each key's
    /// holder.
    pub(super) async fn claim(
        &self,
        claims: &[Claim],
        owners: &[String],
        window: Duration,
    ) -> Result<Vec<String>, ClusterError> {
        let mut connection = self.connection().await?;
        // EVAL with the script's text: it is small, and EVALSHA would need the script cache.
        let mut eval = redis::cmd("EVAL");
        eval.arg(CLAIM_SCRIPT).arg(claims.len());
        for claim in claims {
            eval.arg(self.key(&format!("seen:{}", claim.key)));
        }
        eval.arg(window.as_millis() as u64).arg(owners);
        eval.query_async(&mut connection)
            .await
            .map_err(|err| self.error("claim event keys", err))
    }

    pub(super) async fn load(
        &self,
        known: Option<&str>,
    ) -> Result<SharedCorrelation, ClusterError> {
        let mut connection = self.connection().await?;
        let (token, last_step): (Option<String>, Option<Vec<u8>>) = redis::cmd("MGET")
            .arg(self.key(CORRELATION_TOKEN))
            .arg(self.applied_key())
            .query_async(&mut connection)
            .await
            .map_err(|err| self.error("read the correlation token", err))?;
        let state = match &token {
            Some(token) if Some(token.as_str()) != known => redis::cmd("GET")
                .arg(self.key(CORRELATION_STATE))
                .query_async(&mut connection)
                .await
                .map_err(|err| self.error("read the correlation state", err))?,
            _ => None,
        };
        Ok(SharedCorrelation {
            token,
            state,
            last_step,
        })
    }

    pub(super) async fn publish(
        &self,
        expected: Option<&str>,
        state: &[u8],
        step: &AppliedStep,
    ) -> Result<bool, ClusterError> {
        let mut connection = self.connection().await?;
        let step_json = serde_json::to_vec(step).expect("a correlation step serializes");
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
            .map_err(|err| self.error("write the correlation state", err))?;
        Ok(written == 1)
    }

    /// The value of the key `name`, if it has one.
    pub(super) async fn read(&self, name: &str) -> Result<Option<Vec<u8>>, ClusterError> {
        let mut connection = self.connection().await?;
        redis::cmd("GET")
            .arg(self.key(name))
            .query_async(&mut connection)
            .await
            .map_err(|err| self.error("read a shared record", err))
    }

    /// Writes `new` to the key `name` if it still holds `expected` (`None`: no value).
    pub(super) async fn swap(
        &self,
        name: &str,
        expected: Option<&[u8]>,
        new: &[u8],
    ) -> Result<bool, ClusterError> {
        let mut connection = self.connection().await?;
        let written: i64 = redis::cmd("EVAL")
            .arg(SWAP_SCRIPT)
            .arg(1)
            .arg(self.key(name))
            .arg(expected.unwrap_or_default())
            .arg(new)
            .query_async(&mut connection)
            .await
            .map_err(|err| self.error("write a shared record", err))?;
        Ok(written == 1)
    }

    /// As [`RedisState::swap`], the key expiring `keep` after this write.
    pub(super) async fn swap_expiring(
        &self,
        name: &str,
        expected: Option<&[u8]>,
        new: &[u8],
        keep: Duration,
    ) -> Result<bool, ClusterError> {
        let mut connection = self.connection().await?;
        let written: i64 = redis::cmd("EVAL")
            .arg(SWAP_EXPIRING_SCRIPT)
            .arg(1)
            .arg(self.key(name))
            .arg(expected.unwrap_or_default())
            .arg(new)
            .arg(keep.as_millis().max(1) as u64)
            .query_async(&mut connection)
            .await
            .map_err(|err| self.error("write an incident", err))?;
        Ok(written == 1)
    }

    /// Drops the connection after a failed call, so the next one reconnects.
    pub(super) async fn reset(&self) {
        self.connection.reset().await;
    }

    async fn connection(&self) -> Result<ConnectionManager, ClusterError> {
        let connect = || crate::brokers::redis::connect(&self.url);
        Ok(self.connection.get(connect).await?)
    }

    fn key(&self, name: &str) -> String {
        format!("{}{name}", self.prefix)
    }

    fn applied_key(&self) -> String {
        self.key(&format!("correlation:applied:{}", self.replica))
    }

    fn error(&self, operation: &'static str, source: redis::RedisError) -> ClusterError {
        ClusterError::Redis {
            url: self.url.clone(),
            operation,
            source,
        }
    }
}
