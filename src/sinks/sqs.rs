//! The SQS sink: one `SendMessage` per alert, delivered once SQS answered it (the message is then
//! stored redundantly by SQS). The body is the alert JSON; the message attribute `alert_id` carries
//! the alert id. FIFO queues (a queue URL ending in `.fifo`) also get `MessageDeduplicationId` = alert
//! id, so a resend within SQS's five-minute de-duplication interval (a crash between the send and
//! the outbox removal) is accepted but not delivered twice, and `MessageGroupId` from
//! `message_group_id`.
//!
//! The SDK's own retries are off: the forwarder ([`crate::forward`]) retries with backoff and
//! decides when to dead-letter, from the classification in [`classify`].

use std::time::Duration;

use aws_sdk_sqs::config::http::HttpResponse;
use aws_sdk_sqs::config::retry::RetryConfig;
use aws_sdk_sqs::config::timeout::TimeoutConfig;
use aws_sdk_sqs::config::{BehaviorVersion, Credentials, Region};
use aws_sdk_sqs::error::{DisplayErrorContext, ProvideErrorMetadata, SdkError};
use aws_sdk_sqs::operation::send_message::SendMessageError;
use aws_sdk_sqs::types::MessageAttributeValue;
use serde::{Deserialize, Serialize};

use super::template::NameTemplate;
use super::{Delivery, DeliveryError, PublishFuture, Sink};
use crate::brokers::{CONNECT_TIMEOUT, LazyClient};
use crate::secret::Secret;

/// How long one `SendMessage` may take, connection included.
const SEND_TIMEOUT: Duration = Duration::from_secs(20);

/// `type = "sqs"` keys.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct SqsConfig {
    /// The queue's URL, as SQS shows it (`https://sqs.eu-west-1.amazonaws.com/123456789012/alerts`).
    /// A URL ending in `.fifo` is a FIFO queue: messages then carry a `MessageGroupId` and the alert
    /// id as `MessageDeduplicationId`.
    pub queue_url: String,
    /// The AWS region of the queue.
    #[serde(default = "default_region")]
    pub region: String,
    /// Another SQS endpoint than AWS's own, such as a local moto or LocalStack
    /// (`http://127.0.0.1:4566`) or a VPC endpoint.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub endpoint_url: Option<String>,
    /// Access key id. With `secret_access_key`, used instead of the standard AWS credential chain
    /// (`AWS_ACCESS_KEY_ID`/`AWS_SECRET_ACCESS_KEY`, `~/.aws`, web identity, ECS and EC2 roles),
    /// which is used when both are absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub access_key_id: Option<Secret>,
    /// Secret access key that goes with `access_key_id`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub secret_access_key: Option<Secret>,
    /// FIFO queues only: the `MessageGroupId`, which may use `{rule_id}` and `{level}`. SQS keeps
    /// messages of one group in order.
    #[serde(default = "default_message_group_id")]
    pub message_group_id: NameTemplate,
}

fn default_region() -> String {
    "us-east-1".into()
}

fn default_message_group_id() -> NameTemplate {
    NameTemplate::new("factorwatch")
}

impl SqsConfig {
    /// A config for `queue_url` with every other key at its default.
    pub fn new(queue_url: &str) -> Self {
        Self {
            queue_url: queue_url.to_owned(),
            region: default_region(),
            endpoint_url: None,
            access_key_id: None,
            secret_access_key: None,
            message_group_id: default_message_group_id(),
        }
    }

    /// True for a FIFO queue (its name ends in `.fifo`).
    pub fn is_fifo(&self) -> bool {
        self.queue_url.trim_end_matches('/').ends_with(".fifo")
    }

    /// Checks what the types alone cannot.
    pub fn validate(&self) -> anyhow::Result<()> {
        if !(self.queue_url.starts_with("https://") || self.queue_url.starts_with("http://")) {
            anyhow::bail!(
                "queue_url = {:?}: expected the queue's URL, such as \
                 https://sqs.us-east-1.amazonaws.com/123456789012/alerts",
                self.queue_url
            );
        }
        if self.access_key_id.is_some() != self.secret_access_key.is_some() {
            anyhow::bail!("access_key_id and secret_access_key go together: set both or neither");
        }
        Ok(())
    }
}

/// Sends alerts to an SQS queue.
#[derive(Debug)]
pub struct SqsSink {
    name: String,
    config: SqsConfig,
    fifo: bool,
    client: LazyClient<aws_sdk_sqs::Client>,
}

impl SqsSink {
    /// A sink named `name`; nothing is contacted until the first alert.
    pub fn new(name: &str, config: &SqsConfig) -> anyhow::Result<Self> {
        config.validate()?;
        Ok(Self {
            name: name.to_owned(),
            fifo: config.is_fifo(),
            client: LazyClient::new(format!("SQS queue {}", config.queue_url)),
            config: config.clone(),
        })
    }

    async fn connect(config: &SqsConfig) -> Result<aws_sdk_sqs::Client, std::convert::Infallible> {
        let mut loader = aws_config::defaults(BehaviorVersion::latest())
            .region(Region::new(config.region.clone()))
            .retry_config(RetryConfig::disabled())
            .timeout_config(
                TimeoutConfig::builder()
                    .connect_timeout(CONNECT_TIMEOUT)
                    .operation_timeout(SEND_TIMEOUT)
                    .build(),
            );
        if let Some(endpoint) = &config.endpoint_url {
            loader = loader.endpoint_url(endpoint);
        }
        if let (Some(key), Some(secret)) = (&config.access_key_id, &config.secret_access_key) {
            loader = loader.credentials_provider(Credentials::new(
                key.expose(),
                secret.expose(),
                None,
                None,
                "factorwatch-config",
            ));
        }
        Ok(aws_sdk_sqs::Client::new(&loader.load().await))
    }

    async fn send(&self, delivery: Delivery<'_>) -> Result<(), DeliveryError> {
        let client = self.client.get(|| Self::connect(&self.config)).await?;
        let alert_id = &delivery.alert.id;
        let attribute = MessageAttributeValue::builder()
            .data_type("String")
            .string_value(alert_id)
            .build()
            .map_err(|err| DeliveryError::Permanent(format!("invalid message attribute: {err}")))?;
        let mut request = client
            .send_message()
            .queue_url(&self.config.queue_url)
            .message_body(delivery.payload)
            .message_attributes("alert_id", attribute);
        if self.fifo {
            request = request
                .message_deduplication_id(alert_id)
                .message_group_id(self.config.message_group_id.render(delivery.alert));
        }
        match request.send().await {
            Ok(_) => Ok(()),
            Err(err) => {
                let error = classify(&err, &self.config.queue_url);
                if matches!(error, DeliveryError::Transient(_)) {
                    self.client.reset().await;
                }
                Err(error)
            }
        }
    }
}

/// Error codes that mean "not now" rather than "never": throttling, and credentials that may be
/// fixed or refreshed without touching the alert.
const TRANSIENT_CODES: &[&str] = &[
    "RequestThrottled",
    "ThrottlingException",
    "Throttling",
    "TooManyRequestsException",
    "KmsThrottled",
    "RequestTimeout",
    "ServiceUnavailable",
    "InternalError",
    "InternalFailure",
    "AccessDenied",
    "AccessDeniedException",
    "InvalidClientTokenId",
    "UnrecognizedClientException",
    "ExpiredToken",
    "ExpiredTokenException",
    "SignatureDoesNotMatch",
    "InvalidSecurity",
];

/// Sorts a failed `SendMessage` into retry or dead-letter: network failures, timeouts, throttling,
/// 5xx and credential errors are transient; any other answer of SQS (4xx: the queue does not
/// exist, the message is invalid) is permanent.
pub fn classify(err: &SdkError<SendMessageError, HttpResponse>, queue_url: &str) -> DeliveryError {
    match err {
        SdkError::ServiceError(context) => {
            let status = context.raw().status().as_u16();
            let code = context.err().code().unwrap_or("");
            let message = context.err().message().unwrap_or("");
            let text =
                format!("SQS refused SendMessage to {queue_url}: {status} {code}: {message}");
            if status >= 500 || status == 429 || TRANSIENT_CODES.contains(&code) {
                DeliveryError::Transient(text)
            } else {
                DeliveryError::Permanent(text)
            }
        }
        _ => DeliveryError::Transient(format!(
            "SendMessage to {queue_url} failed: {}",
            DisplayErrorContext(err)
        )),
    }
}

impl Sink for SqsSink {
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

    #[test]
    fn fifo_is_told_by_the_queue_name() {
        assert!(SqsConfig::new("http://127.0.0.1:15000/123456789012/alerts.fifo").is_fifo());
        assert!(!SqsConfig::new("http://127.0.0.1:15000/123456789012/alerts").is_fifo());
    }

    #[test]
    fn keys_go_together_and_urls_are_urls() {
        let mut config = SqsConfig::new("alerts");
        assert!(config.validate().is_err());
        config.queue_url = "https://sqs.us-east-1.amazonaws.com/123456789012/alerts".into();
        config.validate().unwrap();
        config.access_key_id = Some(Secret::new("AKIA"));
        assert!(config.validate().is_err());
        config.secret_access_key = Some(Secret::new("s3cr3t"));
        config.validate().unwrap();
        assert!(!format!("{config:?}").contains("s3cr3t"));
    }
}
