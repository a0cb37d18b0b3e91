//! The Kafka sink: one record per alert, produced with `acks=all` (rskafka always asks for it), so
//! an alert counts as delivered once the partition leader answered with the record's offset, after
//! every in-sync replica stored it.
//!
//! Record layout: key = alert id, value = the alert JSON, header `alert-id` = alert id, timestamp =
//! the time of the produce (create time). The partition is chosen like Kafka's own default
//! partitioner for keyed records: `murmur2(key) & 0x7fffffff % partitions`, so a retried alert
//! always lands in the same partition as its first copy (a compacted topic keeps one, and a consumer
//! that de-duplicates per partition sees both), and Java clients agree on where a key lives.
//!
//! The client is [`LazyClient`]: a broker that is down at start does not stop factorwatch. Each
//! topic's partition count is looked up on its first alert (and created first when `create_topic`
//! is set), then cached until a failure resets the connection.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;
use std::time::Duration;

use rskafka::client::error::{Error as KafkaError, ProtocolError};
use rskafka::client::partition::{Compression, PartitionClient, UnknownTopicHandling};
use rskafka::client::{Client, ClientBuilder, Credentials, SaslConfig};
use rskafka::record::Record;
use serde::{Deserialize, Serialize};
use tokio::sync::Mutex;

use super::template::NameTemplate;
use super::{Delivery, DeliveryError, PublishFuture, Sink};
use crate::brokers::{CONNECT_TIMEOUT, LazyClient};
use crate::clock::now_ms;
use crate::secret::Secret;

/// How long one produce may take (leader lookup included) before the attempt counts as failed.
const PRODUCE_TIMEOUT: Duration = Duration::from_secs(30);

/// The header carrying the alert id.
pub const ALERT_ID_HEADER: &str = "alert-id";

/// `type = "kafka"` keys.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct KafkaConfig {
    /// Bootstrap brokers, `host:port`; the client learns the rest of the cluster from them.
    #[serde(default = "default_brokers")]
    pub brokers: Vec<String>,
    /// The topic, which may use `{rule_id}` and `{level}` (such as `factorwatch.{level}`).
    pub topic: NameTemplate,
    /// SASL PLAIN user name. With `password`, the client authenticates with SASL PLAIN; TLS is not
    /// supported, so use it only on a trusted network.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub username: Option<Secret>,
    /// SASL PLAIN password that goes with `username`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub password: Option<Secret>,
    /// Create each topic on its first alert if it does not exist, with these settings. For simple
    /// setups and tests; production topics are usually created by whoever runs the cluster.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub create_topic: Option<CreateTopic>,
}

/// `create_topic = { partitions = 3, replication = 1 }`.
#[derive(Debug, Clone, Copy, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct CreateTopic {
    /// Number of partitions of a created topic.
    #[serde(default = "default_partitions")]
    pub partitions: i32,
    /// Replication factor of a created topic (at most the number of brokers).
    #[serde(default = "default_replication")]
    pub replication: i16,
}

fn default_brokers() -> Vec<String> {
    vec!["127.0.0.1:9092".into()]
}

fn default_partitions() -> i32 {
    1
}

fn default_replication() -> i16 {
    1
}

impl KafkaConfig {
    /// A config producing to `topic` on `brokers`, every other key at its default.
    pub fn new(brokers: &[&str], topic: &str) -> Self {
        Self {
            brokers: brokers.iter().map(|b| (*b).to_owned()).collect(),
            topic: NameTemplate::new(topic),
            username: None,
            password: None,
            create_topic: None,
        }
    }

    /// Checks what the types alone cannot.
    pub fn validate(&self) -> anyhow::Result<()> {
        if self.brokers.is_empty() {
            anyhow::bail!("brokers: list at least one broker, such as [\"127.0.0.1:9092\"]");
        }
        if let Some(broker) = self.brokers.iter().find(|b| b.rsplit_once(':').is_none()) {
            anyhow::bail!("brokers: {broker:?} is not host:port");
        }
        if self.username.is_some() != self.password.is_some() {
            anyhow::bail!("username and password go together: set both or neither");
        }
        if let Some(create) = &self.create_topic
            && (create.partitions < 1 || create.replication < 1)
        {
            anyhow::bail!("create_topic: partitions and replication must be at least 1");
        }
        Ok(())
    }
}

/// Kafka's default partitioner hash (murmur2, seed 0x9747b28c), as in the Java client's
/// `Utils.murmur2`.
pub fn murmur2(data: &[u8]) -> i32 {
    const SEED: u32 = 0x9747_b28c;
    const M: u32 = 0x5bd1_e995;
    const R: u32 = 24;
    let length = data.len();
    let mut h: u32 = SEED ^ (length as u32);
    let mut chunks = data.chunks_exact(4);
    for chunk in &mut chunks {
        let mut k = u32::from_le_bytes([chunk[0], chunk[1], chunk[2], chunk[3]]);
        k = k.wrapping_mul(M);
        k ^= k >> R;
        k = k.wrapping_mul(M);
        h = h.wrapping_mul(M);
        h ^= k;
    }
    let rest = chunks.remainder();
    if rest.len() >= 3 {
        h ^= u32::from(rest[2]) << 16;
    }
    if rest.len() >= 2 {
        h ^= u32::from(rest[1]) << 8;
    }
    if !rest.is_empty() {
        h ^= u32::from(rest[0]);
        h = h.wrapping_mul(M);
    }
    h ^= h >> 13;
    h = h.wrapping_mul(M);
    h ^= h >> 15;
    h as i32
}

/// The partition of a record with `key` in a topic of `partitions` partitions.
pub fn partition_for(key: &[u8], partitions: i32) -> i32 {
    (murmur2(key) & 0x7fff_ffff) % partitions.max(1)
}

/// A connected client and what it learned about each topic.
struct Connection {
    client: Client,
    topics: Mutex<HashMap<String, Arc<Vec<Arc<PartitionClient>>>>>,
}

/// Produces alerts to a Kafka topic.
pub struct KafkaSink {
    name: String,
    config: KafkaConfig,
    connection: LazyClient<Arc<Connection>>,
}

impl std::fmt::Debug for KafkaSink {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("KafkaSink")
            .field("name", &self.name)
            .field("config", &self.config)
            .finish_non_exhaustive()
    }
}

impl KafkaSink {
    /// A sink named `name`; no broker is contacted until the first alert.
    pub fn new(name: &str, config: &KafkaConfig) -> anyhow::Result<Self> {
        config.validate()?;
        Ok(Self {
            name: name.to_owned(),
            connection: LazyClient::new(format!("Kafka at {}", config.brokers.join(","))),
            config: config.clone(),
        })
    }

    async fn connect(config: &KafkaConfig) -> Result<Arc<Connection>, KafkaError> {
        let mut builder = ClientBuilder::new(config.brokers.clone())
            .client_id("factorwatch")
            .backoff_config(backoff());
        if let (Some(username), Some(password)) = (&config.username, &config.password) {
            builder = builder.sasl_config(SaslConfig::Plain(Credentials::new(
                username.expose().to_owned(),
                password.expose().to_owned(),
            )));
        }
        let client = builder.build().await?;
        Ok(Arc::new(Connection {
            client,
            topics: Mutex::new(HashMap::new()),
        }))
    }

    /// The partition clients of `topic`, creating the topic first when configured to.
    async fn partitions(
        &self,
        connection: &Connection,
        topic: &str,
    ) -> Result<Arc<Vec<Arc<PartitionClient>>>, DeliveryError> {
        let mut topics = connection.topics.lock().await;
        if let Some(partitions) = topics.get(topic) {
            return Ok(partitions.clone());
        }
        let mut count = self.partition_count(connection, topic).await?;
        if count.is_none()
            && let Some(create) = &self.config.create_topic
        {
            let controller = connection
                .client
                .controller_client()
                .map_err(|err| transient(topic, "cannot reach the controller", &err))?;
            match controller
                .create_topic(topic, create.partitions, create.replication, 5_000)
                .await
            {
                Ok(()) => tracing::info!(sink = %self.name, topic, partitions = create.partitions,
                    "created Kafka topic"),
                Err(KafkaError::ServerError {
                    protocol_error: ProtocolError::TopicAlreadyExists,
                    ..
                }) => {}
                Err(err) => return Err(classify(topic, "cannot create the topic", err)),
            }
            count = self.partition_count(connection, topic).await?;
        }
        let Some(count) = count else {
            return Err(DeliveryError::Transient(format!(
                "Kafka topic {topic:?} does not exist (create it, or set create_topic)"
            )));
        };
        let mut clients = Vec::with_capacity(count as usize);
        for partition in 0..count {
            let client = connection
                .client
                .partition_client(topic, partition, UnknownTopicHandling::Retry)
                .await
                .map_err(|err| classify(topic, "cannot find the partition leader", err))?;
            clients.push(Arc::new(client));
        }
        let clients = Arc::new(clients);
        topics.insert(topic.to_owned(), clients.clone());
        Ok(clients)
    }

    /// How many partitions `topic` has, `None` when it does not exist.
    async fn partition_count(
        &self,
        connection: &Connection,
        topic: &str,
    ) -> Result<Option<i32>, DeliveryError> {
        let topics = connection
            .client
            .list_topics()
            .await
            .map_err(|err| transient(topic, "cannot read the cluster metadata", &err))?;
        Ok(topics
            .into_iter()
            .find(|t| t.name == topic)
            .map(|t| t.partitions.len() as i32)
            .filter(|&count| count > 0))
    }

    async fn produce(&self, delivery: Delivery<'_>) -> Result<(), DeliveryError> {
        let connection = self.connection.get(|| Self::connect(&self.config)).await?;
        let topic = self.config.topic.render(delivery.alert);
        let partitions = self.partitions(&connection, &topic).await?;
        let key = delivery.alert.id.as_bytes();
        let partition = partition_for(key, partitions.len() as i32);
        let record = Record {
            key: Some(key.to_vec()),
            value: Some(delivery.payload.as_bytes().to_vec()),
            headers: BTreeMap::from([(ALERT_ID_HEADER.to_owned(), key.to_vec())]),
            timestamp: rskafka::chrono::DateTime::from_timestamp_millis(now_ms() as i64)
                .unwrap_or_default(),
        };
        let produced = tokio::time::timeout(
            PRODUCE_TIMEOUT,
            partitions[partition as usize].produce(vec![record], Compression::NoCompression),
        )
        .await
        .map_err(|_| {
            DeliveryError::Transient(format!(
                "produce to {topic}/{partition}: no answer within {PRODUCE_TIMEOUT:?}"
            ))
        })?
        .map_err(|err| classify(&topic, "produce failed", err))?;
        if produced.is_empty() {
            return Err(DeliveryError::Transient(format!(
                "produce to {topic}/{partition}: the broker returned no offset"
            )));
        }
        Ok(())
    }
}

/// rskafka retries some errors itself (leader moves, connection drops); bound that so a failing
/// attempt returns to the forwarder, whose backoff and dead-lettering apply. Shorter than
/// [`CONNECT_TIMEOUT`] so a broker that refuses connections is reported as such.
fn backoff() -> rskafka::BackoffConfig {
    rskafka::BackoffConfig {
        init_backoff: Duration::from_millis(100),
        max_backoff: Duration::from_secs(1),
        base: 3.,
        deadline: Some(CONNECT_TIMEOUT.saturating_sub(Duration::from_secs(2))),
    }
}

fn transient(topic: &str, what: &str, err: &KafkaError) -> DeliveryError {
    DeliveryError::Transient(format!("Kafka topic {topic:?}: {what}: {err}"))
}

/// Errors that mean this record can never be accepted; everything else (connection, leader,
/// timeouts, authorization that may be granted, unknown topic) is worth retrying.
fn classify(topic: &str, what: &str, err: KafkaError) -> DeliveryError {
    let permanent = matches!(
        &err,
        KafkaError::ServerError {
            protocol_error: ProtocolError::MessageTooLarge
                | ProtocolError::RecordListTooLarge
                | ProtocolError::InvalidRecord
                | ProtocolError::InvalidTopicException
                | ProtocolError::InvalidPartitions
                | ProtocolError::InvalidReplicationFactor,
            ..
        }
    );
    if permanent {
        DeliveryError::Permanent(format!("Kafka topic {topic:?}: {what}: {err}"))
    } else {
        transient(topic, what, &err)
    }
}

impl Sink for KafkaSink {
    fn name(&self) -> &str {
        &self.name
    }

    fn publish<'a>(&'a self, delivery: Delivery<'a>) -> PublishFuture<'a> {
        Box::pin(async move {
            let result = self.produce(delivery).await;
            if matches!(result, Err(DeliveryError::Transient(_))) {
                // Reconnect and re-read the topic's metadata on the next attempt.
                self.connection.reset().await;
            }
            result
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn murmur2_matches_the_java_client() {
        // Test vectors of Kafka's UtilsTest.testMurmur2.
        let cases: &[(&[u8], i32)] = &[
            (b"21", -973932308),
            (b"foobar", -790332482),
            (b"a-little-bit-long-string", -985981536),
            (b"a-little-bit-longer-string", -1486304829),
            (
                b"lkjh234lh9fiuh90y23oiuhsafujhadof229phr9h19h89h8",
                -58897971,
            ),
            (b"abc", 479470107),
        ];
        for (input, expected) in cases {
            assert_eq!(
                murmur2(input),
                *expected,
                "{}",
                String::from_utf8_lossy(input)
            );
        }
    }

    #[test]
    fn partitions_are_stable_and_in_range() {
        let id = b"5f0c2c1e-8f7a-5b0e-9a43-0c6b1a2d3e4f";
        for partitions in 1..=12 {
            let p = partition_for(id, partitions);
            assert!((0..partitions).contains(&p));
            assert_eq!(p, partition_for(id, partitions));
        }
    }

    #[test]
    fn config_is_checked_and_secrets_stay_hidden() {
        let mut config = KafkaConfig::new(&["127.0.0.1:9092"], "alerts");
        config.validate().unwrap();
        config.username = Some(Secret::new("user"));
        assert!(config.validate().is_err());
        config.password = Some(Secret::new("pa55word"));
        config.validate().unwrap();
        assert!(!format!("{config:?}").contains("pa55word"));
        config.brokers = vec!["localhost".into()];
        assert!(config.validate().is_err());
    }
}
