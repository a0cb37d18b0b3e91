//! Broker sinks against the real local servers (NATS JetStream on 127.0.0.1:4222, Redis on
//! 127.0.0.1:6379): every alert is read back from the broker and compared, byte for byte, with
//! the line the file sink wrote for it; alerts raised while a broker is unreachable wait in the
//! outbox and arrive after a restart; JetStream drops a republished alert id.
//!
//! Each test uses its own stream, subject and key names (a fresh uuid), so runs never see each
//! other's messages, and removes them at the end.

use std::collections::HashMap;
use std::time::Duration;

use async_nats::jetstream;
use factorwatch::alert::{Alert, Level};
use factorwatch::config::{ServerUrl, SinkConfig, SinkKind};
use factorwatch::sinks::nats::{NatsConfig, NatsSink};
use factorwatch::sinks::redis::{RedisConfig, RedisSink};
use factorwatch::sinks::template::NameTemplate;
use factorwatch::sinks::{Delivery, DeliveryError, Sink};
use futures_util::StreamExt;
use serde_json::Value;
use tempfile::TempDir;

use crate::helpers::{
    TestApp, batch_with_mfa, config_with, eventually, spawn_app_with, spawn_app_with_sinks, unique,
};

pub(crate) const NATS_URL: &str = "nats://127.0.0.1:4222";
const REDIS_URL: &str = "redis://127.0.0.1:6379";
/// Nothing listens on port 1: connecting is refused at once.
const CLOSED_NATS_URL: &str = "nats://127.0.0.1:1";
const CLOSED_REDIS_URL: &str = "redis://127.0.0.1:1";
const WAIT: Duration = Duration::from_secs(30);

/// The JetStream stream of one test.
pub(crate) fn stream_name(run: &str) -> String {
    format!("FACTORWATCH_TEST_{run}")
}

pub(crate) fn nats_config(url: &str, run: &str) -> NatsConfig {
    NatsConfig {
        url: ServerUrl::new(url),
        subject: NameTemplate::new(&format!("factorwatch.test.{run}.{{level}}.{{rule_id}}")),
        stream: Some(stream_name(run)),
        credentials_file: None,
        token: None,
    }
}

fn redis_config(url: &str, run: &str) -> RedisConfig {
    RedisConfig {
        url: ServerUrl::new(url),
        stream: NameTemplate::new(&format!("factorwatch:test:{run}:{{level}}:{{rule_id}}")),
        maxlen: Some(10_000),
    }
}

/// An alert of rule `rule_id` and `level` with the id `id`, and its JSON.
fn alert(id: &str, rule_id: &str, level: Level) -> (Alert, String) {
    let mut alert = Alert::test_alert();
    alert.id = id.into();
    alert.rule.id = rule_id.into();
    alert.level = level;
    let payload = alert.to_json();
    (alert, payload)
}

/// The alert lines of the file sink, raw, keyed by alert id.
fn file_alerts(app: &TestApp) -> HashMap<String, String> {
    std::fs::read_to_string(app.alerts_path())
        .unwrap()
        .lines()
        .map(|line| {
            let alert: Value = serde_json::from_str(line).unwrap();
            (alert["id"].as_str().unwrap().to_owned(), line.to_owned())
        })
        .collect()
}

/// One message as read back from a broker.
#[derive(Debug)]
pub(crate) struct Received {
    /// Where it was found: the NATS subject or the Redis stream key.
    pub(crate) destination: String,
    /// The idempotency key it carried (`Nats-Msg-Id`, or the `id` field).
    pub(crate) id: String,
    /// The alert JSON as the broker holds it.
    pub(crate) body: String,
}

/// Checks that the broker holds exactly the file sink's alerts, each once, byte for byte, at the
/// destination its rule and level name.
fn assert_same_alerts(
    file: &HashMap<String, String>,
    received: &[Received],
    destination: impl Fn(&Value) -> String,
) {
    assert_eq!(
        received.len(),
        file.len(),
        "broker holds {received:#?}, file {file:#?}"
    );
    for message in received {
        let line = file
            .get(&message.id)
            .unwrap_or_else(|| panic!("{} is not in the alert file", message.id));
        assert_eq!(
            &message.body, line,
            "the broker holds the alert JSON verbatim"
        );
        let alert: Value = serde_json::from_str(&message.body).unwrap();
        assert_eq!(alert["id"], message.id.as_str());
        assert_eq!(message.destination, destination(&alert));
    }
}

pub(crate) async fn jetstream() -> jetstream::Context {
    jetstream::new(
        async_nats::connect(NATS_URL)
            .await
            .expect("NATS runs on 4222"),
    )
}

/// Reads every message of `stream` with a pull consumer, waiting until there are `count`.
pub(crate) async fn read_stream(stream_name: &str, count: usize) -> Vec<Received> {
    let context = jetstream().await;
    let appeared = format!("stream {stream_name} to appear");
    let stream = eventually(WAIT, &appeared, async || {
        context.get_stream(stream_name).await
    })
    .await;
    let consumer = read_from_the_start(&stream).await;
    let mut received = Vec::new();
    let awaited = format!("{count} messages in {stream_name}");
    eventually(WAIT, &awaited, async || {
        let mut batch = consumer
            .fetch()
            .max_messages(count)
            .expires(Duration::from_millis(500))
            .messages()
            .await
            .unwrap();
        while let Some(message) = batch.next().await {
            let message = message.unwrap();
            let id = message
                .headers
                .as_ref()
                .and_then(|h| h.get("Nats-Msg-Id"))
                .map(|v| v.as_str().to_owned())
                .expect("Nats-Msg-Id header");
            received.push(Received {
                destination: message.subject.to_string(),
                id,
                body: String::from_utf8(message.payload.to_vec()).unwrap(),
            });
            message.ack().await.unwrap();
        }
        if received.len() >= count {
            Ok(())
        } else {
            Err(format!("{received:#?}"))
        }
    })
    .await;
    // Anything more would be a duplicate: wait a little for it to show.
    let extra = consumer
        .fetch()
        .max_messages(10)
        .expires(Duration::from_millis(300))
        .messages()
        .await
        .unwrap()
        .count()
        .await;
    assert_eq!(extra, 0, "{stream_name} holds more than {count} messages");
    received
}

/// A pull consumer that reads `stream` from its first message.
pub(crate) async fn read_from_the_start(
    stream: &jetstream::stream::Stream,
) -> jetstream::consumer::PullConsumer {
    stream
        .create_consumer(jetstream::consumer::pull::Config {
            deliver_policy: jetstream::consumer::DeliverPolicy::All,
            ..Default::default()
        })
        .await
        .unwrap()
}

pub(crate) async fn delete_stream(stream_name: &str) {
    let _ = jetstream().await.delete_stream(stream_name).await;
}

async fn redis() -> redis::aio::MultiplexedConnection {
    redis::Client::open(REDIS_URL)
        .unwrap()
        .get_multiplexed_async_connection()
        .await
        .expect("Redis runs on 6379")
}

/// Every entry of every stream key in `keys` (`XRANGE key - +`), waiting until there are `count`.
pub(crate) async fn read_redis(keys: &[String], count: usize) -> Vec<Received> {
    let mut connection = redis().await;
    let awaited = format!("{count} entries in {keys:?}");
    eventually(WAIT, &awaited, async || {
        let mut received = Vec::new();
        for key in keys {
            let entries: Vec<(String, HashMap<String, String>)> = redis::cmd("XRANGE")
                .arg(key)
                .arg("-")
                .arg("+")
                .query_async(&mut connection)
                .await
                .unwrap();
            for (_entry_id, mut fields) in entries {
                received.push(Received {
                    destination: key.clone(),
                    id: fields.remove("id").expect("id field"),
                    body: fields.remove("alert").expect("alert field"),
                });
            }
        }
        if received.len() >= count {
            Ok(received)
        } else {
            Err(format!("only {}", received.len()))
        }
    })
    .await
}

async fn delete_keys(keys: &[String]) {
    let mut connection = redis().await;
    let _: Result<i64, _> = redis::cmd("DEL")
        .arg(keys)
        .query_async(&mut connection)
        .await;
}

/// Posts a batch with `mfa` MFA events and waits for their alerts in the file sink.
async fn raise_alerts(app: &TestApp, mfa: usize) -> HashMap<String, String> {
    let (batch, _uuids) = batch_with_mfa(12, mfa);
    assert!(app.post(&batch).await.status().is_success());
    app.wait_for_alerts(mfa).await;
    let file = file_alerts(app);
    assert_eq!(file.len(), mfa);
    file
}

/// The two brokers, for the end-to-end tests they share.
#[derive(Debug, Clone, Copy)]
enum Broker {
    Nats,
    Redis,
}

impl Broker {
    fn label(self) -> &'static str {
        match self {
            Broker::Nats => "nats",
            Broker::Redis => "redis",
        }
    }

    /// A `[[sinks]]` block for this broker: the running server when `up`, else a closed port.
    fn sink(self, name: &str, up: bool, run: &str) -> SinkConfig {
        let kind = match (self, up) {
            (Broker::Nats, true) => SinkKind::Nats(nats_config(NATS_URL, run)),
            (Broker::Nats, false) => SinkKind::Nats(nats_config(CLOSED_NATS_URL, run)),
            (Broker::Redis, true) => SinkKind::Redis(redis_config(REDIS_URL, run)),
            (Broker::Redis, false) => SinkKind::Redis(redis_config(CLOSED_REDIS_URL, run)),
        };
        SinkConfig::new(name, kind)
    }

    /// Where an alert goes: the NATS subject or the Redis stream key its rule and level name.
    fn destination(self, run: &str, alert: &Value) -> String {
        let level = alert["level"].as_str().unwrap();
        let rule_id = alert["rule"]["id"].as_str().unwrap();
        match self {
            Broker::Nats => format!("factorwatch.test.{run}.{level}.{rule_id}"),
            Broker::Redis => format!("factorwatch:test:{run}:{level}:{rule_id}"),
        }
    }

    /// Checks that the broker holds exactly the file sink's alerts (see [`assert_same_alerts`]).
    async fn assert_holds(self, run: &str, file: &HashMap<String, String>) {
        let received = match self {
            Broker::Nats => read_stream(&stream_name(run), file.len()).await,
            Broker::Redis => read_redis(&redis_keys(run, file), file.len()).await,
        };
        assert_same_alerts(file, &received, |alert| self.destination(run, alert));
    }

    /// Removes what one test wrote.
    async fn clean(self, run: &str, file: &HashMap<String, String>) {
        match self {
            Broker::Nats => delete_stream(&stream_name(run)).await,
            Broker::Redis => delete_keys(&redis_keys(run, file)).await,
        }
    }
}

/// Every alert the service raises reaches `broker` once, as the file sink wrote it.
async fn delivers_every_alert(broker: Broker) {
    let run = unique("run");
    let name = format!("{}-{run}", broker.label());
    let app = spawn_app_with_sinks(vec![broker.sink(&name, true, &run)]).await;

    let file = raise_alerts(&app, 3).await;
    broker.assert_holds(&run, &file).await;
    app.wait_until_drained().await;
    // Nothing more arrives once the outbox is empty.
    broker.assert_holds(&run, &file).await;

    app.stop().await;
    broker.clean(&run, &file).await;
}

/// Alerts raised while `broker` is unreachable wait in the outbox and arrive after a restart.
async fn outage_keeps_alerts_until_the_broker_is_back(broker: Broker) {
    let run = unique("run");
    let name = format!("{}-outage-{run}", broker.label());
    let data_dir = TempDir::new().unwrap();

    // The broker is unreachable: the service still starts and takes events.
    let down = config_with(data_dir.path(), vec![broker.sink(&name, false, &run)]);
    let app = spawn_app_with(down, data_dir).await;
    let file = raise_alerts(&app, 3).await;
    app.assert_waiting_in_outbox(&name).await;
    let data_dir = app.stop().await;

    // Same data directory, the right URL: every alert raised during the outage arrives.
    let up = config_with(data_dir.path(), vec![broker.sink(&name, true, &run)]);
    let app = spawn_app_with(up, data_dir).await;
    broker.assert_holds(&run, &file).await;
    app.wait_until_drained().await;

    app.stop().await;
    broker.clean(&run, &file).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nats_sink_delivers_every_alert_to_jetstream() {
    delivers_every_alert(Broker::Nats).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nats_outage_keeps_alerts_in_the_outbox_until_the_broker_is_back() {
    outage_keeps_alerts_until_the_broker_is_back(Broker::Nats).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redis_sink_adds_every_alert_to_the_stream() {
    delivers_every_alert(Broker::Redis).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redis_outage_keeps_alerts_in_the_outbox_until_the_server_is_back() {
    outage_keeps_alerts_until_the_broker_is_back(Broker::Redis).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn jetstream_keeps_one_message_per_alert_id() {
    let run = unique("run");
    let config = nats_config(NATS_URL, &run);
    let stream = config.stream.clone().unwrap();
    let sink = NatsSink::new("dedup", &config).unwrap();
    let (alert, payload) = alert("6f1c2a9e-0000-5000-8000-000000000001", "r1", Level::High);
    let delivery = Delivery {
        payload: &payload,
        alert: &alert,
    };
    // A crash between the publish and the outbox removal publishes the same alert again.
    sink.publish(delivery).await.unwrap();
    sink.publish(delivery).await.unwrap();

    let mut stream_handle = jetstream().await.get_stream(&stream).await.unwrap();
    let info = stream_handle.info().await.unwrap();
    assert_eq!(
        info.state.messages, 1,
        "JetStream de-duplicated on Nats-Msg-Id"
    );
    let received = read_stream(&stream, 1).await;
    assert_eq!(received[0].id, alert.id);
    assert_eq!(received[0].body, payload);
    assert_eq!(
        received[0].destination,
        format!("factorwatch.test.{run}.high.r1")
    );
    delete_stream(&stream).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nats_sink_creates_its_stream_again_after_it_was_deleted() {
    let run = unique("run");
    let config = nats_config(NATS_URL, &run);
    let stream = config.stream.clone().unwrap();
    let sink = NatsSink::new("recreate", &config).unwrap();
    let (first, first_payload) = alert("first", "r1", Level::Low);
    let (second, second_payload) = alert("second", "r1", Level::Low);
    let delivery = |alert, payload| Delivery { payload, alert };
    sink.publish(delivery(&first, &first_payload))
        .await
        .unwrap();
    delete_stream(&stream).await;

    // Nothing captures the subject now: a transient failure, and the stream is made again.
    let err = sink
        .publish(delivery(&second, &second_payload))
        .await
        .unwrap_err();
    assert!(matches!(err, DeliveryError::Transient(_)), "{err:?}");
    // The server can refuse to make a stream again just after deleting it ("error creating store
    // for stream"): a transient failure, which the forwarder would retry like this.
    eventually(WAIT, "the stream made again", async || {
        sink.publish(delivery(&second, &second_payload)).await
    })
    .await;
    let received = read_stream(&stream, 1).await;
    assert_eq!(received[0].id, "second");
    delete_stream(&stream).await;
}

/// The stream keys the file sink's alerts map to.
fn redis_keys(run: &str, file: &HashMap<String, String>) -> Vec<String> {
    let mut keys: Vec<String> = file
        .values()
        .map(|line| Broker::Redis.destination(run, &serde_json::from_str(line).unwrap()))
        .collect();
    keys.sort();
    keys.dedup();
    keys
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redis_republished_alert_carries_the_same_id() {
    let run = unique("run");
    let sink = RedisSink::new("redis-again", &redis_config(REDIS_URL, &run)).unwrap();
    let (alert, payload) = alert("6f1c2a9e-0000-5000-8000-000000000002", "r1", Level::High);
    let delivery = Delivery {
        payload: &payload,
        alert: &alert,
    };
    sink.publish(delivery).await.unwrap();
    sink.publish(delivery).await.unwrap();
    let keys = vec![format!("factorwatch:test:{run}:high:r1")];
    let received = read_redis(&keys, 2).await;
    // Redis has no server-side de-duplication: consumers drop the second entry by its id.
    assert_eq!(received.len(), 2);
    assert!(
        received
            .iter()
            .all(|r| r.id == alert.id && r.body == payload)
    );
    delete_keys(&keys).await;
}
