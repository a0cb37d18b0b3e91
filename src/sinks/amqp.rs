//! The AMQP 0-9-1 sink (RabbitMQ): each alert is published as a persistent, mandatory message on a
//! channel in publisher-confirm mode, and counts as delivered only when the broker acked it and did
//! not return it as unroutable. `message_id` carries the alert id, the idempotency key consumers
//! de-duplicate on.

use std::collections::HashSet;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use lapin::options::{
    BasicPublishOptions, ConfirmSelectOptions, QueueBindOptions, QueueDeclareOptions,
};
use lapin::types::FieldTable;
use lapin::uri::{AMQPScheme, AMQPUri};
use lapin::{BasicProperties, Channel, Confirmation, Connection, ConnectionProperties};
use serde::{Deserialize, Serialize};

use super::template::NameTemplate;
use super::{Delivery, DeliveryError, PublishFuture, Sink};
use crate::brokers::LazyClient;
use crate::secret::Secret;

/// How long the broker may take to confirm one message.
const CONFIRM_TIMEOUT: Duration = Duration::from_secs(10);
/// AMQP delivery mode 2: the broker writes the message to disk (in a durable queue).
const PERSISTENT: u8 = 2;

/// `type = "amqp"` keys.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct AmqpConfig {
    /// The broker, as `amqp://host:port/vhost` (the vhost URL-encoded: `%2f` is `/`), or
    /// `amqps://host:port/vhost` for TLS (rustls, certificates checked against the system's
    /// roots). Put no credentials here: use `username` and `password`.
    #[serde(default = "default_url")]
    pub url: String,
    /// User name; with neither `username` nor `password` the broker's default `guest` is used.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub username: Option<String>,
    /// Password; never logged nor shown by `check-config`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub password: Option<Secret>,
    /// The exchange to publish to. Empty (the default) is the default exchange, which routes a
    /// message to the queue named like its routing key.
    #[serde(default)]
    pub exchange: String,
    /// The routing key; may use `{rule_id}` and `{level}`, such as `factorwatch.{level}`.
    pub routing_key: NameTemplate,
    /// A queue to declare (durable) and bind to `exchange` with each routing key used, so that
    /// messages have somewhere to go without setting up the broker first. Optional.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub declare_queue: Option<String>,
}

fn default_url() -> String {
    "amqp://127.0.0.1:5672/%2f".into()
}

impl AmqpConfig {
    /// The broker URI with the credentials merged in, and its description without them.
    pub fn broker(&self) -> anyhow::Result<(AMQPUri, String)> {
        let authority = self
            .url
            .split_once("://")
            .map_or("", |(_, rest)| rest.split('/').next().unwrap_or(""));
        if authority.contains('@') {
            anyhow::bail!(
                "url: put no credentials in the URL (it is shown in logs and by check-config); \
                 use the username and password keys"
            );
        }
        let mut uri: AMQPUri = self
            .url
            .parse()
            .map_err(|err| anyhow::anyhow!("url = {:?}: {err}", self.url))?;
        if let Some(username) = &self.username {
            uri.authority.userinfo.username = username.clone();
        }
        if let Some(password) = &self.password {
            uri.authority.userinfo.password = password.expose().to_owned();
        }
        let scheme = match uri.scheme {
            AMQPScheme::AMQP => "amqp",
            AMQPScheme::AMQPS => "amqps",
        };
        let what = format!(
            "RabbitMQ at {scheme}://{}:{} vhost {:?}",
            uri.authority.host, uri.authority.port, uri.vhost
        );
        Ok((uri, what))
    }

    /// Checks what the types alone cannot.
    pub fn validate(&self) -> anyhow::Result<()> {
        self.broker()?;
        if let Some(queue) = &self.declare_queue
            && queue.is_empty()
        {
            anyhow::bail!("declare_queue: a queue name cannot be empty");
        }
        Ok(())
    }
}

/// One connection and its confirm-mode channel.
#[derive(Clone)]
struct AmqpClient {
    /// Kept so the connection lives as long as the channel (dropping it closes the connection).
    _connection: Arc<Connection>,
    channel: Channel,
    /// Routing keys `declare_queue` is already bound with on this connection.
    bound: Arc<Mutex<HashSet<String>>>,
}

impl AmqpClient {
    /// The routing keys bound so far, locked. Holders only test or insert a key, which cannot
    /// panic, so the lock is never poisoned.
    fn bound(&self) -> std::sync::MutexGuard<'_, HashSet<String>> {
        self.bound
            .lock()
            .expect("the bound-keys lock is held only to test or insert a key")
    }
}

/// Publishes alerts to a RabbitMQ exchange with publisher confirms.
pub struct AmqpSink {
    name: String,
    uri: AMQPUri,
    exchange: String,
    routing_key: NameTemplate,
    declare_queue: Option<String>,
    client: LazyClient<AmqpClient>,
}

impl std::fmt::Debug for AmqpSink {
    // By hand: the URI holds the password.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AmqpSink")
            .field("name", &self.name)
            .field("client", &self.client)
            .field("exchange", &self.exchange)
            .field("routing_key", &self.routing_key)
            .field("declare_queue", &self.declare_queue)
            .finish_non_exhaustive()
    }
}

impl AmqpSink {
    /// A sink named `name` configured by `config`.
    pub fn new(name: &str, config: &AmqpConfig) -> anyhow::Result<Self> {
        config.validate()?;
        let (uri, what) = config.broker()?;
        Ok(Self {
            name: name.to_owned(),
            uri,
            exchange: config.exchange.clone(),
            routing_key: config.routing_key.clone(),
            declare_queue: config.declare_queue.clone(),
            client: LazyClient::new(what),
        })
    }

    async fn connect(&self) -> Result<AmqpClient, lapin::Error> {
        let connection = Connection::connect_uri(
            self.uri.clone(),
            ConnectionProperties::default().with_connection_name("factorwatch".into()),
        )
        .await?;
        let channel = connection.create_channel().await?;
        channel
            .confirm_select(ConfirmSelectOptions::default())
            .await?;
        if let Some(queue) = &self.declare_queue {
            channel
                .queue_declare(
                    queue.as_str().into(),
                    QueueDeclareOptions {
                        durable: true,
                        ..QueueDeclareOptions::default()
                    },
                    FieldTable::default(),
                )
                .await?;
        }
        Ok(AmqpClient {
            _connection: Arc::new(connection),
            channel,
            bound: Arc::default(),
        })
    }

    /// Binds `declare_queue` to the exchange with `routing_key`, once per connection. The default
    /// exchange cannot be bound to: it routes on the queue name by itself.
    async fn bind(&self, client: &AmqpClient, routing_key: &str) -> Result<(), lapin::Error> {
        let Some(queue) = &self.declare_queue else {
            return Ok(());
        };
        if self.exchange.is_empty() || client.bound().contains(routing_key) {
            return Ok(());
        }
        client
            .channel
            .queue_bind(
                queue.as_str().into(),
                self.exchange.as_str().into(),
                routing_key.into(),
                QueueBindOptions::default(),
                FieldTable::default(),
            )
            .await?;
        client.bound().insert(routing_key.to_owned());
        Ok(())
    }

    async fn try_publish(
        &self,
        client: &AmqpClient,
        delivery: Delivery<'_>,
        routing_key: &str,
    ) -> Result<(), DeliveryError> {
        let transient =
            |err: lapin::Error| DeliveryError::Transient(format!("RabbitMQ publish failed: {err}"));
        self.bind(client, routing_key).await.map_err(transient)?;
        let properties = BasicProperties::default()
            .with_delivery_mode(PERSISTENT)
            .with_content_type("application/json".into())
            .with_message_id(delivery.alert.id.as_str().into())
            .with_app_id("factorwatch".into());
        let confirm = client
            .channel
            .basic_publish(
                self.exchange.as_str().into(),
                routing_key.into(),
                BasicPublishOptions {
                    mandatory: true,
                    ..BasicPublishOptions::default()
                },
                delivery.payload.as_bytes(),
                properties,
            )
            .await
            .map_err(transient)?;
        let confirmation = tokio::time::timeout(CONFIRM_TIMEOUT, confirm)
            .await
            .map_err(|_| {
                DeliveryError::Transient(format!(
                    "RabbitMQ did not confirm the message within {CONFIRM_TIMEOUT:?}"
                ))
            })?
            .map_err(transient)?;
        match confirmation {
            Confirmation::Ack(None) => Ok(()),
            Confirmation::Ack(Some(returned)) | Confirmation::Nack(Some(returned)) => {
                Err(DeliveryError::Permanent(format!(
                    "unroutable: RabbitMQ returned the message ({} {}): no queue is bound to \
                     exchange {:?} with routing key {:?}",
                    returned.reply_code,
                    returned.reply_text.as_str(),
                    self.exchange,
                    routing_key
                )))
            }
            Confirmation::Nack(None) => Err(DeliveryError::Transient(
                "RabbitMQ refused to take the message (nack)".into(),
            )),
            Confirmation::NotRequested => Err(DeliveryError::Transient(
                "the channel is not in confirm mode".into(),
            )),
        }
    }
}

impl Sink for AmqpSink {
    fn name(&self) -> &str {
        &self.name
    }

    fn publish<'a>(&'a self, delivery: Delivery<'a>) -> PublishFuture<'a> {
        Box::pin(async move {
            let client = self.client.get(|| self.connect()).await?;
            let routing_key = self.routing_key.render(delivery.alert);
            let result = self.try_publish(&client, delivery, &routing_key).await;
            if matches!(result, Err(DeliveryError::Transient(_)))
                || !client.channel.status().connected()
            {
                // The connection or channel may be broken (a channel error closes the channel):
                // start over on the next attempt.
                self.client.reset().await;
            }
            result
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config(toml: &str) -> AmqpConfig {
        toml::from_str(toml).unwrap()
    }

    #[test]
    fn credentials_are_merged_but_never_described() {
        let amqp = config(
            "url = 'amqps://broker.example:5671/prod'\nusername = 'fw'\npassword = 'pa55'\nrouting_key = 'k'\n",
        );
        let (uri, what) = amqp.broker().unwrap();
        assert_eq!(uri.authority.userinfo.username, "fw");
        assert_eq!(uri.authority.userinfo.password, "pa55");
        assert_eq!(uri.scheme, AMQPScheme::AMQPS);
        assert!(!what.contains("pa55") && !what.contains("fw"), "{what}");
        assert!(!format!("{amqp:?}").contains("pa55"));
    }

    #[test]
    fn defaults_and_refusals() {
        let amqp = config("routing_key = 'factorwatch.{level}'\n");
        let (uri, _) = amqp.broker().unwrap();
        assert_eq!(uri.authority.port, 5672);
        assert_eq!(uri.vhost, "/");
        assert_eq!(amqp.exchange, "");
        let err = config("url = 'amqp://u:p@h/%2f'\nrouting_key = 'k'\n")
            .validate()
            .unwrap_err();
        assert!(err.to_string().contains("username"), "{err}");
        assert!(!err.to_string().contains("u:p"), "{err}");
        assert!(
            toml::from_str::<AmqpConfig>("routing_key = 'k.{nope}'\n").is_err(),
            "placeholders are checked"
        );
    }
}
