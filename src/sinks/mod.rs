//! Sinks: where alerts are delivered. Each sink only knows how to publish one alert and say
//! whether the destination acknowledged it; retries, backoff, dead-lettering and the outbox are the
//! shared delivery loop's job ([`crate::forward`]).

/// Stands in for the module of a sink kind left out of this build (its Cargo feature is off):
/// its configuration type has no value, and reading a block of that `type` fails with the
/// feature to build with, rather than serde's "unknown variant".
macro_rules! not_built {
    ($module:ident :: $config:ident, $feature:literal) => {
        #[cfg(not(feature = $feature))]
        #[doc = concat!("`type = \"", $feature, "\"`: left out of this build.")]
        pub mod $module {
            #[doc = concat!("Never built: this build lacks the `", $feature, "` feature.")]
            #[derive(Debug, Clone)]
            pub enum $config {}

            impl<'de> serde::Deserialize<'de> for $config {
                fn deserialize<D: serde::Deserializer<'de>>(_: D) -> Result<Self, D::Error> {
                    Err(serde::de::Error::custom($crate::brokers::NotBuilt {
                        key: "type",
                        value: $feature,
                        feature: $feature,
                    }))
                }
            }

            impl $config {
                /// Nothing to check: no block of this type reads.
                pub fn validate(&self) -> anyhow::Result<()> {
                    match *self {}
                }
            }

            impl serde::Serialize for $config {
                fn serialize<S: serde::Serializer>(&self, _: S) -> Result<S::Ok, S::Error> {
                    match *self {}
                }
            }
        }
    };
}

pub mod alertmanager;
#[cfg(feature = "amqp")]
pub mod amqp;
pub mod config;
pub mod file;
mod http;
#[cfg(feature = "kafka")]
pub mod kafka;
#[cfg(feature = "mqtt")]
pub mod mqtt;
#[cfg(feature = "nats")]
pub mod nats;
pub mod pagerduty;
#[cfg(feature = "redis")]
pub mod redis;
pub mod slack;
#[cfg(feature = "sqs")]
pub mod sqs;
pub mod template;
pub mod webhook;

not_built!(amqp::AmqpConfig, "amqp");
not_built!(kafka::KafkaConfig, "kafka");
not_built!(mqtt::MqttConfig, "mqtt");
not_built!(nats::NatsConfig, "nats");
not_built!(redis::RedisConfig, "redis");
not_built!(sqs::SqsConfig, "sqs");

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;

use crate::alert::Alert;
use crate::brokers::ConnectError;

#[cfg(feature = "amqp")]
pub use amqp::AmqpSink;
pub use config::{AlertFilter, NotifyPolicy, SinkConfig, SinkKind, check_sinks};
pub use file::FileSink;
#[cfg(feature = "kafka")]
pub use kafka::KafkaSink;
#[cfg(feature = "mqtt")]
pub use mqtt::MqttSink;
#[cfg(feature = "sqs")]
pub use sqs::SqsSink;

/// One alert handed to a sink.
#[derive(Debug, Clone, Copy)]
pub struct Delivery<'a> {
    /// The alert as JSON (the schema in docs/alerts.md): what message bodies carry.
    pub payload: &'a str,
    /// The same alert, parsed, for sinks that format a message or route on its fields. Its `id`
    /// is every sink's idempotency key.
    pub alert: &'a Alert,
}

/// Why a publish did not succeed.
#[derive(Debug, Clone, thiserror::Error)]
pub enum DeliveryError {
    /// Worth retrying: the destination is unreachable, busy or failed for a passing reason.
    #[error("{0}")]
    Transient(String),
    /// Retrying cannot help (the destination rejected this alert); it goes to the dead letters.
    #[error("{0}")]
    Permanent(String),
}

impl From<ConnectError> for DeliveryError {
    /// A broker that cannot be reached now may be reachable later.
    fn from(err: ConnectError) -> Self {
        DeliveryError::Transient(format!("{:#}", anyhow::Error::from(err)))
    }
}

/// The future a publish returns.
pub type PublishFuture<'a> = Pin<Box<dyn Future<Output = Result<(), DeliveryError>> + Send + 'a>>;

/// A destination for alerts.
pub trait Sink: Send + Sync {
    /// The sink's configured name.
    fn name(&self) -> &str;

    /// Delivers one alert. Resolves `Ok` only once the destination acknowledged it durably
    /// (what that means per sink is in docs/sinks.md).
    fn publish<'a>(&'a self, delivery: Delivery<'a>) -> PublishFuture<'a>;

    /// How many alerts the delivery loop may hand to one [`Sink::publish_batch`]: 1 unless the
    /// destination can acknowledge several at once for about the price of one.
    fn batch_limit(&self) -> usize {
        1
    }

    /// Delivers `batch` (at most [`Sink::batch_limit`] alerts, oldest first). Resolves `Ok` only
    /// once every alert of it was acknowledged; after an error the whole batch is retried, which
    /// at-least-once delivery allows (each alert keeps its id). The delivery loop charges a
    /// failed batch to its oldest alert (attempts, backoff, dead-lettering), so a destination
    /// that can refuse one alert of a batch for its content should keep `batch_limit` at 1. The
    /// default publishes them one by one and stops at the first error.
    fn publish_batch<'a>(&'a self, batch: &'a [Delivery<'a>]) -> PublishFuture<'a> {
        Box::pin(async move {
            for delivery in batch {
                self.publish(*delivery).await?;
            }
            Ok(())
        })
    }

    /// For a sink that sends the alert's JSON as it is and reads nothing of the parsed alert:
    /// delivers `payloads` (at most [`Sink::batch_limit`], oldest first) as
    /// [`Sink::publish_batch`] would deliver them. The delivery loop then does not parse each
    /// stored alert only to throw it away. `None` (the default): the sink reads
    /// [`Delivery::alert`], and gets its deliveries through [`Sink::publish_batch`].
    fn publish_payloads<'a>(&'a self, _payloads: &'a [&'a str]) -> Option<PublishFuture<'a>> {
        None
    }
}

/// Builds the sink a `[[sinks]]` block describes.
pub fn build(config: &SinkConfig) -> anyhow::Result<Arc<dyn Sink>> {
    Ok(match &config.kind {
        SinkKind::File(file) => Arc::new(FileSink::new(&config.name, &file.path)),
        #[cfg(feature = "amqp")]
        SinkKind::Amqp(amqp) => Arc::new(AmqpSink::new(&config.name, amqp)?),
        #[cfg(not(feature = "amqp"))]
        SinkKind::Amqp(never) => match *never {},
        #[cfg(feature = "mqtt")]
        SinkKind::Mqtt(mqtt) => Arc::new(MqttSink::new(&config.name, mqtt)?),
        #[cfg(not(feature = "mqtt"))]
        SinkKind::Mqtt(never) => match *never {},
        SinkKind::Webhook(webhook) => Arc::new(webhook::WebhookSink::new(&config.name, webhook)?),
        SinkKind::Slack(slack) => Arc::new(slack::SlackSink::new(&config.name, slack)?),
        SinkKind::PagerDuty(pd) => Arc::new(pagerduty::PagerDutySink::new(&config.name, pd)?),
        #[cfg(feature = "nats")]
        SinkKind::Nats(nats) => Arc::new(nats::NatsSink::new(&config.name, nats)?),
        #[cfg(not(feature = "nats"))]
        SinkKind::Nats(never) => match *never {},
        #[cfg(feature = "redis")]
        SinkKind::Redis(redis) => Arc::new(redis::RedisSink::new(&config.name, redis)?),
        #[cfg(not(feature = "redis"))]
        SinkKind::Redis(never) => match *never {},
        #[cfg(feature = "kafka")]
        SinkKind::Kafka(kafka) => Arc::new(KafkaSink::new(&config.name, kafka)?),
        #[cfg(not(feature = "kafka"))]
        SinkKind::Kafka(never) => match *never {},
        #[cfg(feature = "sqs")]
        SinkKind::Sqs(sqs) => Arc::new(SqsSink::new(&config.name, sqs)?),
        #[cfg(not(feature = "sqs"))]
        SinkKind::Sqs(never) => match *never {},
        SinkKind::Alertmanager(alertmanager) => Arc::new(alertmanager::AlertmanagerSink::new(
            &config.name,
            alertmanager,
        )?),
    })
}

/// Creates what the sink `config` describes needs on this host before its first delivery: the
/// file sink's directory. `serve` ([`prepare_all`]) and `sinks test` do, `check-config` does not.
pub fn prepare(config: &SinkConfig) -> anyhow::Result<()> {
    match &config.kind {
        SinkKind::File(file) => file.create_directory(),
        _ => Ok(()),
    }
}

/// [`prepare`] for each of `sinks`; a failure is logged and left to the delivery loop, which
/// retries and reports it like any delivery error.
pub fn prepare_all(sinks: &[SinkConfig]) {
    for sink in sinks {
        if let Err(err) = prepare(sink) {
            tracing::warn!(
                sink = sink.name(),
                error = format!("{err:#}"),
                "cannot prepare the sink; its deliveries will fail until this is fixed"
            );
        }
    }
}

/// Sends one alert (for `factorwatch sinks test`, a clearly marked test alert) straight to the
/// destination `config` describes, through a sink built for this one call rather than the delivery
/// loop. Returns how long the destination took to acknowledge it.
pub async fn send_test_alert(
    config: &SinkConfig,
    delivery: Delivery<'_>,
) -> Result<std::time::Duration, DeliveryError> {
    let started = std::time::Instant::now();
    prepare(config).map_err(|err| DeliveryError::Transient(format!("{err:#}")))?;
    let sink = build(config).map_err(|err| DeliveryError::Permanent(format!("{err:#}")))?;
    sink.publish(delivery).await?;
    Ok(started.elapsed())
}
