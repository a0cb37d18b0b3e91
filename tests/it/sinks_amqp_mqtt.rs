//! The AMQP and MQTT sinks against the real local brokers (RabbitMQ on 127.0.0.1:5672 as
//! guest/guest, Mosquitto on 127.0.0.1:1883): every alert the file sink wrote must come back from
//! the broker as the same JSON, an outage must lose nothing, and an unroutable AMQP message must
//! end in the dead letters instead of counting as delivered.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use factorwatch::config::{SinkConfig, SinkKind};
use factorwatch::sinks::amqp::AmqpConfig;
use factorwatch::sinks::mqtt::MqttConfig;
use factorwatch::sinks::template::NameTemplate;
use futures_util::StreamExt;
use lapin::options::{
    BasicAckOptions, BasicConsumeOptions, QueueDeclareOptions, QueueDeleteOptions,
};
use lapin::types::FieldTable;
use lapin::{Channel, Connection, ConnectionProperties};
use serde_json::Value;
use tempfile::TempDir;
use tokio::sync::mpsc;

use crate::helpers::{
    TestApp, batch_with_mfa, config_with, eventually, spawn_app_with, spawn_app_with_sinks, unique,
};

const RABBITMQ: &str = "amqp://127.0.0.1:5672/%2f";
/// Nothing listens there.
const CLOSED_PORT: u16 = 1;
/// How long a message may take to come back.
const WAIT: Duration = Duration::from_secs(20);

fn amqp_sink(
    name: &str,
    url: &str,
    exchange: &str,
    routing_key: &str,
    queue: Option<&str>,
) -> SinkConfig {
    SinkConfig::new(
        name,
        SinkKind::Amqp(AmqpConfig {
            url: url.to_owned(),
            username: None,
            password: None,
            exchange: exchange.to_owned(),
            routing_key: NameTemplate::new(routing_key),
            declare_queue: queue.map(str::to_owned),
        }),
    )
}

fn mqtt_sink(name: &str, port: u16, topic: &str) -> SinkConfig {
    SinkConfig::new(
        name,
        SinkKind::Mqtt(MqttConfig {
            host: "127.0.0.1".into(),
            port,
            topic: NameTemplate::new(topic),
            username: None,
            password: None,
            client_id: Some(unique("factorwatch-test")),
        }),
    )
}

/// Waits until the sink failed at least once and its alerts wait in the outbox, none given up.
async fn assert_waiting_in_outbox(app: &TestApp, sink: &str) {
    app.assert_waiting_in_outbox(sink).await;
    assert_eq!(
        app.sink_counter("factorwatch_dead_letters_total", sink)
            .await,
        0.0,
        "an outage is no reason to give up"
    );
}

/// Checks that `received` (alert id → message body) holds exactly the alerts of the file sink.
fn assert_same_alerts(file_alerts: &[Value], received: &HashMap<String, Value>) {
    assert_eq!(received.len(), file_alerts.len(), "{received:?}");
    for alert in file_alerts {
        let id = alert["id"].as_str().unwrap();
        assert_eq!(received.get(id), Some(alert), "alert {id}");
    }
}

// ---------------------------------------------------------------------------------------------
// AMQP

/// A test queue on the local RabbitMQ, consumed from before anything is posted.
struct AmqpQueue {
    _connection: Connection,
    channel: Channel,
    name: String,
    messages: lapin::Consumer,
}

impl AmqpQueue {
    async fn declare() -> Self {
        let name = unique("factorwatch-test");
        let connection = Connection::connect(RABBITMQ, ConnectionProperties::default())
            .await
            .expect("RabbitMQ runs on 127.0.0.1:5672");
        let channel = connection.create_channel().await.unwrap();
        // Declared as the sink declares it (durable), so either may come first.
        channel
            .queue_declare(
                name.as_str().into(),
                QueueDeclareOptions {
                    durable: true,
                    ..QueueDeclareOptions::default()
                },
                FieldTable::default(),
            )
            .await
            .unwrap();
        let messages = channel
            .basic_consume(
                name.as_str().into(),
                "factorwatch-test".into(),
                BasicConsumeOptions::default(),
                FieldTable::default(),
            )
            .await
            .unwrap();
        Self {
            _connection: connection,
            channel,
            name,
            messages,
        }
    }

    /// Receives messages until `count` distinct alert ids arrived; checks each message's
    /// properties on the way. Returns alert id → body.
    async fn receive(&mut self, count: usize) -> HashMap<String, Value> {
        let mut received = HashMap::new();
        let started = Instant::now();
        while received.len() < count {
            let left = WAIT.saturating_sub(started.elapsed());
            let delivery = tokio::time::timeout(left, self.messages.next())
                .await
                .unwrap_or_else(|_| panic!("only {} of {count} messages arrived", received.len()))
                .expect("the consumer is open")
                .unwrap();
            let body: Value = serde_json::from_slice(&delivery.data).unwrap();
            let id = body["id"].as_str().unwrap().to_owned();
            let properties = &delivery.properties;
            assert_eq!(
                properties.message_id().as_ref().map(|m| m.as_str()),
                Some(id.as_str()),
                "message_id is the alert id"
            );
            assert_eq!(*properties.delivery_mode(), Some(2), "persistent");
            assert_eq!(
                properties.content_type().as_ref().map(|c| c.as_str()),
                Some("application/json")
            );
            delivery.ack(BasicAckOptions::default()).await.unwrap();
            received.insert(id, body);
        }
        received
    }

    async fn delete(self) {
        self.channel
            .queue_delete(self.name.as_str().into(), QueueDeleteOptions::default())
            .await
            .unwrap();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn amqp_delivers_every_alert_with_its_id() {
    let mut queue = AmqpQueue::declare().await;
    // Through a topic exchange, so the sink's own binding of declare_queue is what routes.
    let routing_key = format!("factorwatch.{{level}}.{}", queue.name);
    let amqp = amqp_sink(
        "amqp-roundtrip",
        RABBITMQ,
        "amq.topic",
        &routing_key,
        Some(&queue.name),
    );
    let app = spawn_app_with_sinks(vec![amqp]).await;

    let (batch, uuids) = batch_with_mfa(10, 3);
    assert!(app.post(&batch).await.status().is_success());
    let alerts = app.wait_for_alerts(uuids.len()).await;
    let received = queue.receive(uuids.len()).await;
    assert_same_alerts(&alerts, &received);
    app.wait_until_drained().await;

    app.stop().await;
    queue.delete().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn amqp_outage_loses_nothing() {
    let mut queue = AmqpQueue::declare().await;
    let name = "amqp-outage";
    let down = amqp_sink(
        name,
        &format!("amqp://127.0.0.1:{CLOSED_PORT}/%2f"),
        "",
        &queue.name,
        Some(&queue.name),
    );
    let app = spawn_app_with_sinks(vec![down]).await;
    let (batch, uuids) = batch_with_mfa(10, 4);
    assert!(app.post(&batch).await.status().is_success());
    let alerts = app.wait_for_alerts(uuids.len()).await;
    assert_waiting_in_outbox(&app, name).await;
    let data_dir = app.stop().await;

    // Back up: the same sink (same outbox) on the right port.
    let up = amqp_sink(name, RABBITMQ, "", &queue.name, Some(&queue.name));
    let app = spawn_app_with(config_with(data_dir.path(), vec![up]), data_dir).await;
    let received = queue.receive(uuids.len()).await;
    assert_same_alerts(&alerts, &received);
    app.wait_until_drained().await;

    app.stop().await;
    queue.delete().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn amqp_unroutable_message_is_dead_lettered_not_delivered() {
    let name = "amqp-unroutable";
    // amq.direct exists on every RabbitMQ; nothing is bound with this key.
    let routing_key = unique("nobody-listens");
    let amqp = amqp_sink(name, RABBITMQ, "amq.direct", &routing_key, None);
    let app = spawn_app_with_sinks(vec![amqp]).await;

    let (batch, uuids) = batch_with_mfa(5, 1);
    assert!(app.post(&batch).await.status().is_success());
    app.wait_for_alerts(uuids.len()).await;
    eventually(WAIT, "the dead letter in /metrics", async || {
        let dead = app
            .sink_counter("factorwatch_dead_letters_total", name)
            .await;
        if dead >= 1.0 { Ok(()) } else { Err(dead) }
    })
    .await;
    assert_eq!(
        app.sink_counter("factorwatch_delivery_attempts_total", name)
            .await,
        1.0,
        "a returned message is not retried"
    );
    app.wait_until_drained().await;
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn amqp_missing_exchange_is_retried_until_it_exists() {
    let mut queue = AmqpQueue::declare().await;
    let name = "amqp-missing-exchange";
    let exchange = unique("factorwatch-test");
    let amqp = amqp_sink(name, RABBITMQ, &exchange, "alerts", Some(&queue.name));
    let app = spawn_app_with_sinks(vec![amqp]).await;
    let (batch, uuids) = batch_with_mfa(5, 2);
    assert!(app.post(&batch).await.status().is_success());
    let alerts = app.wait_for_alerts(uuids.len()).await;
    // RabbitMQ closes the channel (404 NOT_FOUND): a failure worth retrying, not a dead letter.
    assert_waiting_in_outbox(&app, name).await;

    queue
        .channel
        .exchange_declare(
            exchange.as_str().into(),
            lapin::ExchangeKind::Direct,
            lapin::options::ExchangeDeclareOptions::default(),
            FieldTable::default(),
        )
        .await
        .unwrap();
    let received = queue.receive(uuids.len()).await;
    assert_same_alerts(&alerts, &received);
    app.wait_until_drained().await;
    app.stop().await;
    queue
        .channel
        .exchange_delete(
            exchange.as_str().into(),
            lapin::options::ExchangeDeleteOptions::default(),
        )
        .await
        .unwrap();
    queue.delete().await;
}

// ---------------------------------------------------------------------------------------------
// MQTT

/// A subscriber on the local Mosquitto, subscribed before anything is posted.
struct MqttSubscriber {
    messages: mpsc::UnboundedReceiver<Vec<u8>>,
    task: tokio::task::JoinHandle<()>,
}

impl MqttSubscriber {
    async fn subscribe(filter: &str) -> Self {
        let id = unique("factorwatch-test-sub");
        let mut options = rumqttc::MqttOptions::new(id, "127.0.0.1", 1883);
        options.set_max_packet_size(1 << 24, 1 << 24);
        let (client, mut events) = rumqttc::AsyncClient::new(options, 16);
        client
            .subscribe(filter, rumqttc::QoS::AtLeastOnce)
            .await
            .unwrap();
        // Drive the event loop until the broker confirmed the subscription.
        let started = Instant::now();
        loop {
            let event = tokio::time::timeout(WAIT, events.poll())
                .await
                .expect("Mosquitto answers")
                .expect("Mosquitto runs on 127.0.0.1:1883");
            if let rumqttc::Event::Incoming(rumqttc::Packet::SubAck(_)) = event {
                break;
            }
            assert!(started.elapsed() < WAIT, "no SUBACK");
        }
        let (sender, messages) = mpsc::unbounded_channel();
        let task = tokio::spawn(async move {
            let _client = client; // dropping it would end the event loop
            while let Ok(event) = events.poll().await {
                if let rumqttc::Event::Incoming(rumqttc::Packet::Publish(publish)) = event {
                    let _ = sender.send(publish.payload.to_vec());
                }
            }
        });
        Self { messages, task }
    }

    /// Receives until `count` distinct alert ids arrived. Returns alert id → body.
    async fn receive(&mut self, count: usize) -> HashMap<String, Value> {
        let mut received = HashMap::new();
        let started = Instant::now();
        while received.len() < count {
            let left = WAIT.saturating_sub(started.elapsed());
            let payload = tokio::time::timeout(left, self.messages.recv())
                .await
                .unwrap_or_else(|_| panic!("only {} of {count} messages arrived", received.len()))
                .expect("the subscriber is running");
            let body: Value = serde_json::from_slice(&payload).unwrap();
            received.insert(body["id"].as_str().unwrap().to_owned(), body);
        }
        received
    }
}

impl Drop for MqttSubscriber {
    fn drop(&mut self) {
        self.task.abort();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mqtt_delivers_every_alert_with_its_id() {
    let run = uuid::Uuid::new_v4();
    let mut subscriber = MqttSubscriber::subscribe(&format!("factorwatch-test/{run}/#")).await;
    let mqtt = mqtt_sink(
        "mqtt-roundtrip",
        1883,
        &format!("factorwatch-test/{run}/{{level}}"),
    );
    let app = spawn_app_with_sinks(vec![mqtt]).await;

    let (batch, uuids) = batch_with_mfa(10, 3);
    assert!(app.post(&batch).await.status().is_success());
    let alerts = app.wait_for_alerts(uuids.len()).await;
    let received = subscriber.receive(uuids.len()).await;
    assert_same_alerts(&alerts, &received);
    app.wait_until_drained().await;
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mqtt_outage_loses_nothing() {
    let run = uuid::Uuid::new_v4();
    let topic = format!("factorwatch-test/{run}/{{rule_id}}");
    let mut subscriber = MqttSubscriber::subscribe(&format!("factorwatch-test/{run}/#")).await;
    let name = "mqtt-outage";
    let data_dir = TempDir::new().unwrap();
    let app = spawn_app_with(
        config_with(data_dir.path(), vec![mqtt_sink(name, CLOSED_PORT, &topic)]),
        data_dir,
    )
    .await;
    let (batch, uuids) = batch_with_mfa(10, 4);
    assert!(app.post(&batch).await.status().is_success());
    let alerts = app.wait_for_alerts(uuids.len()).await;
    assert_waiting_in_outbox(&app, name).await;
    let data_dir = app.stop().await;

    let app = spawn_app_with(
        config_with(data_dir.path(), vec![mqtt_sink(name, 1883, &topic)]),
        data_dir,
    )
    .await;
    let received = subscriber.receive(uuids.len()).await;
    assert_same_alerts(&alerts, &received);
    app.wait_until_drained().await;
    app.stop().await;
}
