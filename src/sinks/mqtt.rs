//! The MQTT sink (Mosquitto and any MQTT 3.1.1 broker): each alert is published with QoS 1 and
//! counts as delivered only when the broker's PUBACK for its packet id arrived.
//!
//! rumqttc's `publish()` returns once the message is queued for its event loop, not when the broker
//! acknowledged it. So a task drives the event loop and matches acknowledgements to publishes: the
//! event loop sends queued publishes in order and reports each one's packet id as it goes out
//! (`Outgoing::Publish(pkid)`), so the waiters queued in the same order take those ids, and the
//! `PubAck` with that id completes the waiter. The task ends at the first connection error, failing
//! every waiter; the next publish connects again (through [`LazyClient`]).

use std::collections::{HashMap, VecDeque};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use rumqttc::{AsyncClient, ConnectionError, Event, EventLoop, MqttOptions, Outgoing, Packet, QoS};
use serde::{Deserialize, Serialize};
use tokio::sync::oneshot;

use super::template::NameTemplate;
use super::{Delivery, DeliveryError, PublishFuture, Sink};
use crate::brokers::LazyClient;
use crate::secret::Secret;

/// How long the broker may take to acknowledge one publish.
const PUBACK_TIMEOUT: Duration = Duration::from_secs(10);
/// Keep-alive interval of the connection.
const KEEP_ALIVE: Duration = Duration::from_secs(30);
/// The largest packet MQTT allows; alerts carry the raw event, so rumqttc's 10 KiB default is
/// too small.
const MAX_PACKET: usize = 268_435_455;

/// `type = "mqtt"` keys.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct MqttConfig {
    /// The broker's host name or address.
    #[serde(default = "default_host")]
    pub host: String,
    /// The broker's TCP port (plain MQTT; TLS is not supported yet).
    #[serde(default = "default_port")]
    pub port: u16,
    /// The topic to publish to; may use `{rule_id}` and `{level}`, such as
    /// `factorwatch/alerts/{level}`. Wildcards (`+`, `#`) are not allowed.
    pub topic: NameTemplate,
    /// User name, if the broker requires one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub username: Option<String>,
    /// Password; never logged nor shown by `check-config`. Needs `username`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub password: Option<Secret>,
    /// The MQTT client id. Default: `factorwatch-<sink name>`. Two connections with the same id
    /// disconnect each other, so give each replica its own.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub client_id: Option<String>,
}

fn default_host() -> String {
    "127.0.0.1".into()
}

fn default_port() -> u16 {
    1883
}

impl MqttConfig {
    /// Checks what the types alone cannot.
    pub fn validate(&self) -> anyhow::Result<()> {
        let topic = String::from(self.topic.clone());
        if topic.contains(['+', '#', '\0']) {
            anyhow::bail!("topic = {topic:?}: a publish topic cannot hold '+', '#' or NUL");
        }
        if self.password.is_some() && self.username.is_none() {
            anyhow::bail!("password: MQTT sends a password only with a username; set username");
        }
        if self.host.is_empty() {
            anyhow::bail!("host cannot be empty");
        }
        if self.client_id.as_deref() == Some("") {
            anyhow::bail!("client_id cannot be empty");
        }
        Ok(())
    }
}

/// Waiters for acknowledgements, shared by the sink and the event-loop task.
#[derive(Default)]
struct Waiters {
    /// Publishes queued but not yet sent, in queue order.
    queued: VecDeque<oneshot::Sender<AckOutcome>>,
    /// Publishes sent, by packet id.
    sent: HashMap<u16, oneshot::Sender<AckOutcome>>,
}

/// What a publish's waiter learns: its PUBACK came, or the connection failed first (one error
/// shared by every waiter of that connection).
type AckOutcome = Result<(), Arc<ConnectionError>>;

impl Waiters {
    /// The waiters, locked. Every holder only moves senders between maps and cannot panic, so
    /// the lock is never poisoned.
    fn of(waiters: &Mutex<Waiters>) -> MutexGuard<'_, Waiters> {
        waiters
            .lock()
            .expect("the MQTT waiters lock is held only for map updates that cannot panic")
    }

    fn fail_all(&mut self, error: ConnectionError) {
        let error = Arc::new(error);
        for waiter in self
            .queued
            .drain(..)
            .chain(self.sent.drain().map(|(_, w)| w))
        {
            let _ = waiter.send(Err(error.clone()));
        }
    }
}

/// One connection: the client handle and the task driving its event loop.
struct Connection {
    client: AsyncClient,
    waiters: Arc<Mutex<Waiters>>,
    /// False once the event loop failed.
    alive: Arc<AtomicBool>,
    /// Serializes queueing, so the waiters' order is the publishes' order.
    queueing: tokio::sync::Mutex<()>,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for Connection {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// Publishes alerts to an MQTT broker with QoS 1.
pub struct MqttSink {
    name: String,
    options: MqttOptions,
    topic: NameTemplate,
    client: LazyClient<Arc<Connection>>,
}

impl std::fmt::Debug for MqttSink {
    // By hand: the options hold the password.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MqttSink")
            .field("name", &self.name)
            .field("client", &self.client)
            .field("topic", &self.topic)
            .finish_non_exhaustive()
    }
}

impl MqttSink {
    /// A sink named `name` configured by `config`.
    pub fn new(name: &str, config: &MqttConfig) -> anyhow::Result<Self> {
        config.validate()?;
        let client_id = config
            .client_id
            .clone()
            .unwrap_or_else(|| format!("factorwatch-{name}"));
        let mut options = MqttOptions::new(client_id, config.host.clone(), config.port);
        options
            .set_keep_alive(KEEP_ALIVE)
            .set_clean_session(true)
            .set_max_packet_size(MAX_PACKET, MAX_PACKET);
        if let Some(username) = &config.username {
            let password = config.password.as_ref().map_or("", |p| p.expose());
            options.set_credentials(username.clone(), password);
        }
        Ok(Self {
            name: name.to_owned(),
            options,
            topic: config.topic.clone(),
            client: LazyClient::new(format!("MQTT at {}:{}", config.host, config.port)),
        })
    }

    /// Connects and waits for the broker's CONNACK, then hands the event loop to a task.
    async fn connect(&self) -> Result<Arc<Connection>, rumqttc::ConnectionError> {
        let (client, mut events) = AsyncClient::new(self.options.clone(), 16);
        loop {
            if let Event::Incoming(Packet::ConnAck(_)) = events.poll().await? {
                break;
            }
        }
        let waiters = Arc::new(Mutex::new(Waiters::default()));
        let alive = Arc::new(AtomicBool::new(true));
        let task = tokio::spawn(drive(
            self.name.clone(),
            events,
            waiters.clone(),
            alive.clone(),
        ));
        Ok(Arc::new(Connection {
            client,
            waiters,
            alive,
            queueing: tokio::sync::Mutex::new(()),
            task,
        }))
    }

    async fn try_publish(
        &self,
        connection: &Connection,
        delivery: Delivery<'_>,
    ) -> Result<(), DeliveryError> {
        if !connection.alive.load(Ordering::SeqCst) {
            return Err(DeliveryError::Transient(
                "the MQTT connection was lost".into(),
            ));
        }
        let topic = self.topic.render(delivery.alert);
        let (acked, ack) = oneshot::channel();
        {
            let _queueing = connection.queueing.lock().await;
            Waiters::of(&connection.waiters).queued.push_back(acked);
            let queued = connection
                .client
                .publish(
                    topic.as_str(),
                    QoS::AtLeastOnce,
                    false,
                    delivery.payload.as_bytes(),
                )
                .await;
            if let Err(err) = queued {
                Waiters::of(&connection.waiters).queued.pop_back();
                return Err(DeliveryError::Transient(format!(
                    "cannot publish to MQTT topic {topic:?}: {err}"
                )));
            }
        }
        match tokio::time::timeout(PUBACK_TIMEOUT, ack).await {
            Ok(Ok(Ok(()))) => Ok(()),
            Ok(Ok(Err(reason))) => Err(DeliveryError::Transient(format!(
                "MQTT connection failed before the PUBACK: {reason}"
            ))),
            Ok(Err(_)) => Err(DeliveryError::Transient(
                "the MQTT connection closed before the PUBACK".into(),
            )),
            Err(_) => Err(DeliveryError::Transient(format!(
                "no PUBACK from the MQTT broker within {PUBACK_TIMEOUT:?}"
            ))),
        }
    }
}

/// Drives the event loop until the first error, matching packet ids to waiters.
async fn drive(
    sink: String,
    mut events: EventLoop,
    waiters: Arc<Mutex<Waiters>>,
    alive: Arc<AtomicBool>,
) {
    loop {
        match events.poll().await {
            Ok(Event::Outgoing(Outgoing::Publish(pkid))) => {
                let mut waiters = Waiters::of(&waiters);
                if let Some(waiter) = waiters.queued.pop_front() {
                    waiters.sent.insert(pkid, waiter);
                }
            }
            Ok(Event::Incoming(Packet::PubAck(ack))) => {
                if let Some(waiter) = Waiters::of(&waiters).sent.remove(&ack.pkid) {
                    let _ = waiter.send(Ok(()));
                }
            }
            Ok(_) => {}
            Err(err) => {
                tracing::debug!(sink, error = %err, "MQTT connection ended");
                alive.store(false, Ordering::SeqCst);
                Waiters::of(&waiters).fail_all(err);
                return;
            }
        }
    }
}

impl Sink for MqttSink {
    fn name(&self) -> &str {
        &self.name
    }

    fn publish<'a>(&'a self, delivery: Delivery<'a>) -> PublishFuture<'a> {
        Box::pin(async move {
            let connection = self.client.get(|| self.connect()).await?;
            let result = self.try_publish(&connection, delivery).await;
            if result.is_err() {
                // A lost connection, or an acknowledgement that never came: start over on a new
                // connection (the alert is published again, with the same id).
                self.client.reset().await;
            }
            result
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config(toml: &str) -> MqttConfig {
        toml::from_str(toml).unwrap()
    }

    #[test]
    fn defaults_and_refusals() {
        let mqtt = config("topic = 'factorwatch/{level}'\n");
        assert_eq!((mqtt.host.as_str(), mqtt.port), ("127.0.0.1", 1883));
        mqtt.validate().unwrap();
        assert!(config("topic = 'a/#'\n").validate().is_err());
        assert!(config("topic = 'a/+/b'\n").validate().is_err());
        assert!(config("topic = 't'\npassword = 'p'\n").validate().is_err());
        assert!(toml::from_str::<MqttConfig>("topic = 't'\nqos = 2\n").is_err());
    }

    #[test]
    fn the_password_never_prints() {
        let mqtt = config("topic = 't'\nusername = 'u'\npassword = 'pa55'\n");
        let sink = MqttSink::new("m", &mqtt).unwrap();
        assert!(!format!("{sink:?} {mqtt:?}").contains("pa55"));
    }
}
