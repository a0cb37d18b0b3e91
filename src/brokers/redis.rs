//! Redis connections, for the Redis Streams sink and the cluster's `redis` mode.

use std::time::Duration;

use redis::aio::{ConnectionManager, ConnectionManagerConfig};

use super::{CONNECT_TIMEOUT, ServerUrl};

/// Longest wait for the answer to one command (an `XADD`, a claim script).
const RESPONSE_TIMEOUT: Duration = Duration::from_secs(10);

/// A connection manager for `url`, which reconnects by itself once made.
pub async fn connect(url: &ServerUrl) -> redis::RedisResult<ConnectionManager> {
    let config = ConnectionManagerConfig::new()
        .set_connection_timeout(Some(CONNECT_TIMEOUT))
        .set_response_timeout(Some(RESPONSE_TIMEOUT))
        .set_number_of_retries(2);
    redis::Client::open(url.expose())?
        .get_connection_manager_with_config(config)
        .await
}
