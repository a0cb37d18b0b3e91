//! Sinks: where alerts are delivered. Each sink only knows how to publish one alert and say
//! whether the destination acknowledged it; retries, backoff, dead-lettering and the outbox are the
//! shared delivery loop's job ([`crate::forward`]).

pub mod file;
pub mod kafka;
pub mod lazy;
pub mod sqs;
pub mod template;

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;

use crate::alert::Alert;
use crate::config::{SinkConfig, SinkKind};

pub use file::FileSink;
pub use kafka::KafkaSink;
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

/// The future a publish returns.
pub type PublishFuture<'a> = Pin<Box<dyn Future<Output = Result<(), DeliveryError>> + Send + 'a>>;

/// A destination for alerts.
pub trait Sink: Send + Sync {
    /// The sink's configured name.
    fn name(&self) -> &str;

    /// Delivers one alert. Resolves `Ok` only once the destination acknowledged it durably
    /// (what that means per sink is in docs/sinks.md).
    fn publish<'a>(&'a self, delivery: Delivery<'a>) -> PublishFuture<'a>;
}

/// Builds the sink a `[[sinks]]` block describes.
pub fn build(config: &SinkConfig) -> anyhow::Result<Arc<dyn Sink>> {
    Ok(match &config.kind {
        SinkKind::File(file) => Arc::new(FileSink::new(&config.name, &file.path)),
        SinkKind::Kafka(kafka) => Arc::new(KafkaSink::new(&config.name, kafka)?),
        SinkKind::Sqs(sqs) => Arc::new(SqsSink::new(&config.name, sqs)?),
    })
}
