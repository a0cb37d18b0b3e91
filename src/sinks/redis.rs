//! The Redis Streams sink: each alert becomes one stream entry (`XADD key [MAXLEN ~ n] * id <alert
//! id> alert <alert JSON>`), delivered once Redis answered with the entry id.
//!
//! Redis Streams have no server-side de-duplication: a retry after a lost answer, or a restart
//! between the `XADD` and the outbox removal, adds a second entry with the same `id` field, which
//! consumers drop (docs/sinks.md shows how).
//!
//! The connection is made on the first publish, not at start (through [`LazyClient`]), so a server
//! that is down when the service starts only delays this sink. Once connected, the connection
//! manager reconnects by itself.

use anyhow::{Context as _, bail};
use redis::aio::ConnectionManager;
use serde::{Deserialize, Serialize};

use super::template::NameTemplate;
use super::{Delivery, DeliveryError, PublishFuture, Sink};
use crate::brokers::redis::connect;
use crate::brokers::{LazyClient, ServerUrl};

/// `type = "redis"` keys: Redis Streams.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct RedisConfig {
    /// The Redis server: `redis://[user:password@]host:port[/db]`, or `rediss://` for TLS
    /// (certificates checked against the system's roots). The password is never printed.
    #[serde(default = "default_url")]
    pub url: ServerUrl,
    /// The stream key alerts are added to. `{rule_id}` and `{level}` are replaced by the alert's
    /// rule id and level.
    pub stream: NameTemplate,
    /// Trims the stream to about this many entries on each add (`XADD MAXLEN ~ n`). Unset: no trimming.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub maxlen: Option<u64>,
}

impl RedisConfig {
    /// Checks the block without connecting: the URL parses, `maxlen` keeps something.
    pub fn validate(&self) -> anyhow::Result<()> {
        redis::Client::open(self.url.expose())
            .with_context(|| format!("url = {:?}", self.url.redacted()))?;
        if self.maxlen == Some(0) {
            bail!("maxlen = 0 would trim every alert away; leave it unset for no trimming");
        }
        Ok(())
    }
}

fn default_url() -> ServerUrl {
    ServerUrl::new("redis://127.0.0.1:6379")
}

/// Adds alerts to a Redis stream. `Debug` shows no credential: the URL redacts itself.
#[derive(Debug)]
pub struct RedisSink {
    name: String,
    url: ServerUrl,
    stream: NameTemplate,
    maxlen: Option<u64>,
    /// The connection, once made.
    connection: LazyClient<ConnectionManager>,
}

impl RedisSink {
    /// A sink named `name` configured by `config`; checks the block without connecting and
    /// connects on the first publish.
    pub fn new(name: &str, config: &RedisConfig) -> anyhow::Result<Self> {
        config.validate()?;
        Ok(Self {
            name: name.to_owned(),
            url: config.url.clone(),
            stream: config.stream.clone(),
            maxlen: config.maxlen,
            connection: LazyClient::new(format!("Redis at {}", config.url)),
        })
    }

    /// The stream key an alert is added to (the rule id and level as they are).
    pub fn stream_for(&self, delivery: &Delivery<'_>) -> String {
        self.stream.render_with(delivery.alert, str::to_owned)
    }

    async fn send(&self, delivery: Delivery<'_>) -> Result<(), DeliveryError> {
        let mut connection = self.connection.get(|| connect(&self.url)).await?;
        let key = self.stream_for(&delivery);
        let mut xadd = redis::cmd("XADD");
        xadd.arg(&key);
        if let Some(maxlen) = self.maxlen {
            xadd.arg("MAXLEN").arg("~").arg(maxlen);
        }
        xadd.arg("*")
            .arg("id")
            .arg(&delivery.alert.id)
            .arg("alert")
            .arg(delivery.payload);
        // Every failure is transient: a wrong key type or a missing permission is fixed by an
        // operator, after which the alerts waiting in the outbox go out in order.
        let entry: Option<String> = xadd
            .query_async(&mut connection)
            .await
            .map_err(|err| DeliveryError::Transient(format!("Redis XADD to {key:?}: {err}")))?;
        match entry {
            Some(_) => Ok(()),
            None => Err(DeliveryError::Transient(format!(
                "Redis XADD to {key:?} returned no entry id"
            ))),
        }
    }
}

impl Sink for RedisSink {
    fn name(&self) -> &str {
        &self.name
    }

    fn publish<'a>(&'a self, delivery: Delivery<'a>) -> PublishFuture<'a> {
        Box::pin(self.send(delivery))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::alert::Alert;

    fn config(url: &str, stream: &str) -> RedisConfig {
        RedisConfig {
            url: ServerUrl::new(url),
            stream: NameTemplate::new(stream),
            maxlen: None,
        }
    }

    #[test]
    fn stream_keys_fill_placeholders() {
        let sink = RedisSink::new(
            "redis",
            &config("redis://127.0.0.1:6379", "alerts:{level}:{rule_id}"),
        )
        .unwrap();
        let mut alert = Alert::test_alert();
        alert.rule.id = "r-1.x".into();
        let payload = alert.to_json();
        let delivery = Delivery {
            payload: &payload,
            alert: &alert,
        };
        assert_eq!(sink.stream_for(&delivery), "alerts:informational:r-1.x");
    }

    #[test]
    fn bad_blocks_are_refused_without_showing_the_password() {
        let err = format!(
            "{:#}",
            RedisSink::new("r", &config("http://:hunter2@example", "s")).unwrap_err()
        );
        assert!(err.contains("url") && !err.contains("hunter2"), "{err}");
        let mut zero = config("redis://127.0.0.1", "s");
        zero.maxlen = Some(0);
        assert!(RedisSink::new("r", &zero).is_err());
        assert!(RedisSink::new("r", &config("rediss://127.0.0.1", "s")).is_ok());
    }
}
