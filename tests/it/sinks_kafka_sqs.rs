//! The Kafka and SQS sinks against real servers: tansu (Kafka API) on 127.0.0.1:19092 and moto
//! (SQS API) on 127.0.0.1:15000, both started by `scripts/test-services.sh`. Every test uses its
//! own topic or queue, so the suite can run again on the same servers.

use std::time::{Duration, Instant};

use aws_sdk_sqs::config::{BehaviorVersion, Credentials, Region};
use aws_sdk_sqs::types::{MessageSystemAttributeName, QueueAttributeName};
use factorwatch::alert::Alert;
use factorwatch::config::{SinkConfig, SinkKind};
use factorwatch::sinks::kafka::{ALERT_ID_HEADER, CreateTopic, KafkaConfig, partition_for};
use factorwatch::sinks::sqs::SqsConfig;
use factorwatch::sinks::{self, Delivery};
use rskafka::client::ClientBuilder;
use rskafka::client::partition::UnknownTopicHandling;
use serde_json::Value;

use crate::helpers::{
    alert_by_id, batch_with_mfa, config_with, eventually, spawn_app_with, spawn_app_with_sinks,
    unique,
};

const KAFKA: &str = "127.0.0.1:19092";
const SQS_ENDPOINT: &str = "http://127.0.0.1:15000";
/// A port nothing listens on: the broker "is down".
const CLOSED: &str = "127.0.0.1:1";
const PARTITIONS: i32 = 3;

fn kafka_config(broker: &str, topic: &str) -> KafkaConfig {
    let mut config = KafkaConfig::new(&[broker], topic);
    config.create_topic = Some(CreateTopic {
        partitions: PARTITIONS,
        replication: 1,
    });
    config
}

/// One record read back from Kafka.
#[derive(Debug)]
struct KafkaRecord {
    partition: i32,
    key: String,
    header: String,
    value: Value,
}

/// Reads every record of `topic` from offset 0 until there are at least `count` (or fails).
async fn read_kafka(topic: &str, count: usize) -> Vec<KafkaRecord> {
    let client = ClientBuilder::new(vec![KAFKA.to_owned()])
        .backoff_config(rskafka::BackoffConfig {
            deadline: Some(Duration::from_secs(10)),
            ..Default::default()
        })
        .build()
        .await
        .expect("the Kafka test broker answers (run scripts/test-services.sh)");
    let awaited = format!("{count} records in Kafka topic {topic}");
    eventually(Duration::from_secs(30), &awaited, async || {
        let mut records = Vec::new();
        for partition in 0..PARTITIONS {
            let Ok(partition_client) = client
                .partition_client(topic, partition, UnknownTopicHandling::Error)
                .await
            else {
                continue;
            };
            let (batch, _high_watermark) = partition_client
                .fetch_records(0, 1..10_000_000, 500)
                .await
                .unwrap();
            for record in batch {
                let record = record.record;
                records.push(KafkaRecord {
                    partition,
                    key: String::from_utf8(record.key.unwrap()).unwrap(),
                    header: String::from_utf8(record.headers[ALERT_ID_HEADER].clone()).unwrap(),
                    value: serde_json::from_slice(&record.value.unwrap()).unwrap(),
                });
            }
        }
        if records.len() >= count {
            Ok(records)
        } else {
            Err(format!("only {}", records.len()))
        }
    })
    .await
}

/// Each Kafka record is the file sink's alert with the same id: key, header and JSON.
fn assert_kafka_matches(records: &[KafkaRecord], alerts: &[Value]) {
    assert_eq!(
        records.len(),
        alerts.len(),
        "one record per alert: {records:?}"
    );
    for record in records {
        let alert = alert_by_id(alerts, &record.key);
        assert_eq!(&record.value, alert, "the record value is the alert JSON");
        assert_eq!(record.header, record.key, "the alert-id header");
        assert_eq!(
            record.partition,
            partition_for(record.key.as_bytes(), PARTITIONS),
            "the key's murmur2 partition"
        );
    }
}

async fn sqs_client() -> aws_sdk_sqs::Client {
    let config = aws_config::defaults(BehaviorVersion::latest())
        .region(Region::new("us-east-1"))
        .endpoint_url(SQS_ENDPOINT)
        .credentials_provider(Credentials::new("test", "test", None, None, "tests"))
        .load()
        .await;
    aws_sdk_sqs::Client::new(&config)
}

/// Creates a queue (FIFO when the name ends in `.fifo`) and returns its URL.
async fn create_queue(client: &aws_sdk_sqs::Client, name: &str) -> String {
    let mut request = client.create_queue().queue_name(name);
    if name.ends_with(".fifo") {
        request = request.attributes(QueueAttributeName::FifoQueue, "true");
    }
    request
        .send()
        .await
        .expect("the SQS test server answers (run scripts/test-services.sh)")
        .queue_url
        .unwrap()
}

fn sqs_config(queue_url: &str, endpoint: &str) -> SqsConfig {
    let mut config = SqsConfig::new(queue_url);
    config.endpoint_url = Some(endpoint.to_owned());
    config.access_key_id = Some(factorwatch::secret::Secret::new("test"));
    config.secret_access_key = Some(factorwatch::secret::Secret::new("test"));
    config
}

/// One SQS message read back.
#[derive(Debug)]
struct SqsMessage {
    body: Value,
    alert_id: String,
    group_id: Option<String>,
    dedup_id: Option<String>,
}

/// Receives (and deletes) messages until there are `count`, then waits `settle` for extra ones.
async fn read_sqs(
    client: &aws_sdk_sqs::Client,
    queue_url: &str,
    count: usize,
    settle: Duration,
) -> Vec<SqsMessage> {
    let mut messages = Vec::new();
    let mut settled_at: Option<Instant> = None;
    let awaited = format!("{count} messages in {queue_url}, then {settle:?} without more");
    eventually(Duration::from_secs(30) + settle, &awaited, async || {
        let received = client
            .receive_message()
            .queue_url(queue_url)
            .max_number_of_messages(10)
            .wait_time_seconds(1)
            .visibility_timeout(60)
            .message_attribute_names("All")
            .message_system_attribute_names(MessageSystemAttributeName::All)
            .send()
            .await
            .unwrap();
        for message in received.messages() {
            let system = message.attributes();
            messages.push(SqsMessage {
                body: serde_json::from_str(message.body().unwrap()).unwrap(),
                alert_id: message.message_attributes().unwrap()["alert_id"]
                    .string_value()
                    .unwrap()
                    .to_owned(),
                group_id: system
                    .and_then(|a| a.get(&MessageSystemAttributeName::MessageGroupId))
                    .cloned(),
                dedup_id: system
                    .and_then(|a| a.get(&MessageSystemAttributeName::MessageDeduplicationId))
                    .cloned(),
            });
            client
                .delete_message()
                .queue_url(queue_url)
                .receipt_handle(message.receipt_handle().unwrap())
                .send()
                .await
                .unwrap();
        }
        if messages.len() >= count
            && settled_at.get_or_insert_with(Instant::now).elapsed() >= settle
        {
            Ok(())
        } else {
            Err(format!("{} messages", messages.len()))
        }
    })
    .await;
    messages
}

/// Each SQS message is the file sink's alert with the same id.
fn assert_sqs_matches(messages: &[SqsMessage], alerts: &[Value], fifo: bool) {
    assert_eq!(
        messages.len(),
        alerts.len(),
        "one message per alert: {messages:?}"
    );
    for message in messages {
        let alert = alert_by_id(alerts, &message.alert_id);
        assert_eq!(&message.body, alert, "the message body is the alert JSON");
        if fifo {
            assert_eq!(message.dedup_id.as_deref(), Some(message.alert_id.as_str()));
            assert_eq!(message.group_id.as_deref(), Some("factorwatch-high"));
        } else {
            assert_eq!(message.group_id, None);
        }
    }
}

#[tokio::test]
async fn kafka_gets_every_alert_keyed_by_its_id() {
    let topic = unique("factorwatch-test");
    let app = spawn_app_with_sinks(vec![SinkConfig::new(
        "kafka",
        SinkKind::Kafka(kafka_config(KAFKA, &topic)),
    )])
    .await;
    let (batch, uuids) = batch_with_mfa(20, 5);
    assert_eq!(app.post(&batch).await.status(), 204);

    let alerts = app.wait_for_alerts(uuids.len()).await;
    let records = read_kafka(&topic, alerts.len()).await;
    assert_kafka_matches(&records, &alerts);
    app.wait_until_drained().await;
}

#[tokio::test]
async fn kafka_topic_names_use_the_level() {
    let base = unique("factorwatch-test");
    let app = spawn_app_with_sinks(vec![SinkConfig::new(
        "kafka",
        SinkKind::Kafka(kafka_config(KAFKA, &format!("{base}.{{level}}"))),
    )])
    .await;
    let (batch, _) = batch_with_mfa(4, 2);
    assert_eq!(app.post(&batch).await.status(), 204);
    let alerts = app.wait_for_alerts(2).await;
    let records = read_kafka(&format!("{base}.high"), 2).await;
    assert_kafka_matches(&records, &alerts);
}

#[tokio::test]
async fn kafka_alerts_wait_for_a_broker_that_is_down() {
    let topic = unique("factorwatch-test");
    let app = spawn_app_with_sinks(vec![SinkConfig::new(
        "kafka-outage",
        SinkKind::Kafka(kafka_config(CLOSED, &topic)),
    )])
    .await;
    let (batch, uuids) = batch_with_mfa(10, 3);
    assert_eq!(app.post(&batch).await.status(), 204);
    // The file sink is not held up by the broker that is down.
    let alerts = app.wait_for_alerts(uuids.len()).await;
    app.assert_waiting_in_outbox("kafka-outage").await;

    let data_dir = app.stop().await;
    let back = config_with(
        data_dir.path(),
        vec![SinkConfig::new(
            "kafka-outage",
            SinkKind::Kafka(kafka_config(KAFKA, &topic)),
        )],
    );
    let app = spawn_app_with(back, data_dir).await;
    let records = read_kafka(&topic, alerts.len()).await;
    assert_kafka_matches(&records, &alerts);
    app.wait_until_drained().await;
    assert_eq!(app.wait_for_alerts(uuids.len()).await.len(), uuids.len());
}

#[tokio::test]
async fn sqs_standard_and_fifo_queues_get_every_alert() {
    let client = sqs_client().await;
    let standard = create_queue(&client, &unique("factorwatch-test")).await;
    let fifo = create_queue(&client, &format!("{}.fifo", unique("factorwatch-test"))).await;
    let mut fifo_config = sqs_config(&fifo, SQS_ENDPOINT);
    fifo_config.message_group_id =
        factorwatch::sinks::template::NameTemplate::new("factorwatch-{level}");
    let app = spawn_app_with_sinks(vec![
        SinkConfig::new("sqs", SinkKind::Sqs(sqs_config(&standard, SQS_ENDPOINT))),
        SinkConfig::new("sqs-fifo", SinkKind::Sqs(fifo_config)),
    ])
    .await;
    let (batch, uuids) = batch_with_mfa(20, 5);
    assert_eq!(app.post(&batch).await.status(), 204);

    let alerts = app.wait_for_alerts(uuids.len()).await;
    let messages = read_sqs(&client, &standard, alerts.len(), Duration::ZERO).await;
    assert_sqs_matches(&messages, &alerts, false);
    let messages = read_sqs(&client, &fifo, alerts.len(), Duration::ZERO).await;
    assert_sqs_matches(&messages, &alerts, true);
    app.wait_until_drained().await;
}

#[tokio::test]
async fn sqs_alerts_wait_for_an_endpoint_that_is_down() {
    let client = sqs_client().await;
    let queue = create_queue(&client, &unique("factorwatch-test")).await;
    let app = spawn_app_with_sinks(vec![SinkConfig::new(
        "sqs-outage",
        SinkKind::Sqs(sqs_config(&queue, &format!("http://{CLOSED}"))),
    )])
    .await;
    let (batch, uuids) = batch_with_mfa(10, 3);
    assert_eq!(app.post(&batch).await.status(), 204);
    let alerts = app.wait_for_alerts(uuids.len()).await;
    app.assert_waiting_in_outbox("sqs-outage").await;

    let data_dir = app.stop().await;
    let back = config_with(
        data_dir.path(),
        vec![SinkConfig::new(
            "sqs-outage",
            SinkKind::Sqs(sqs_config(&queue, SQS_ENDPOINT)),
        )],
    );
    let app = spawn_app_with(back, data_dir).await;
    let messages = read_sqs(&client, &queue, alerts.len(), Duration::ZERO).await;
    assert_sqs_matches(&messages, &alerts, false);
    app.wait_until_drained().await;
}

#[tokio::test]
async fn a_queue_that_does_not_exist_is_a_permanent_error() {
    let config = SinkConfig::new(
        "sqs-missing",
        SinkKind::Sqs(sqs_config(
            &format!("{SQS_ENDPOINT}/123456789012/{}", unique("no-such-queue")),
            SQS_ENDPOINT,
        )),
    );
    let sink = sinks::build(&config).unwrap();
    let (alert, payload) = sample_alert();
    let err = sink
        .publish(Delivery {
            payload: &payload,
            alert: &alert,
        })
        .await
        .unwrap_err();
    assert!(
        matches!(err, sinks::DeliveryError::Permanent(_)),
        "a missing queue is dead-lettered, not retried: {err:?}"
    );
}

/// An alert as the forwarder hands it to a sink.
fn sample_alert() -> (Alert, String) {
    let alert = Alert::test_alert();
    let payload = alert.to_json();
    (alert, payload)
}

#[tokio::test]
async fn sqs_fifo_delivers_an_alert_published_twice_once() {
    let client = sqs_client().await;
    let fifo = create_queue(&client, &format!("{}.fifo", unique("factorwatch-test"))).await;
    let sink = sinks::build(&SinkConfig::new(
        "sqs-fifo",
        SinkKind::Sqs(sqs_config(&fifo, SQS_ENDPOINT)),
    ))
    .unwrap();
    let (alert, payload) = sample_alert();
    let delivery = Delivery {
        payload: &payload,
        alert: &alert,
    };
    // As after a crash between the publish and the outbox removal: the forwarder sends it again.
    sink.publish(delivery).await.unwrap();
    sink.publish(delivery).await.unwrap();

    let messages = read_sqs(&client, &fifo, 1, Duration::from_secs(3)).await;
    assert_eq!(
        messages.len(),
        1,
        "SQS FIFO de-duplicated the resend: {messages:?}"
    );
    assert_eq!(messages[0].alert_id, alert.id);
    assert_eq!(messages[0].dedup_id.as_deref(), Some(alert.id.as_str()));
    assert_eq!(messages[0].group_id.as_deref(), Some("factorwatch"));
    assert_eq!(messages[0].body, serde_json::to_value(&alert).unwrap());
}

#[tokio::test]
async fn kafka_gives_an_alert_published_twice_the_same_key_and_partition() {
    let topic = unique("factorwatch-test");
    let sink = sinks::build(&SinkConfig::new(
        "kafka",
        SinkKind::Kafka(kafka_config(KAFKA, &topic)),
    ))
    .unwrap();
    let (alert, payload) = sample_alert();
    let delivery = Delivery {
        payload: &payload,
        alert: &alert,
    };
    sink.publish(delivery).await.unwrap();
    sink.publish(delivery).await.unwrap();

    // Kafka keeps both copies (no server-side de-duplication without an idempotent producer
    // session); consumers drop the second by key, which sits in the same partition.
    let records = read_kafka(&topic, 2).await;
    assert_eq!(records.len(), 2);
    for record in &records {
        assert_eq!(record.key, alert.id);
        assert_eq!(record.header, alert.id);
        assert_eq!(
            record.partition,
            partition_for(alert.id.as_bytes(), PARTITIONS)
        );
        assert_eq!(record.value, serde_json::to_value(&alert).unwrap());
    }
}
