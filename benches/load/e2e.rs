//! End-to-end latency: from the intended send time of a POST to the moment its alert can be read
//! back from a sink: a line in the file sink's JSON-lines file, or a message in the JetStream
//! stream of the `nats` sink (read with an ordered pull consumer, so a message counts once the
//! stream stored it).

use std::collections::HashMap;
use std::io::{Read, Seek, SeekFrom};
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::Context as _;
use async_nats::jetstream;
use futures_util::StreamExt;
use hdrhistogram::Histogram;
use serde_json::Value;

use crate::client::histogram;

/// The NATS server the `nats` sink and the reader use.
pub const NATS_URL: &str = "nats://127.0.0.1:4222";

/// When each alerting event was (meant to be) sent, by event uuid, and how many of them a
/// reader has seen alerted so far.
#[derive(Clone, Default)]
pub struct Sent {
    sent: Arc<Mutex<HashMap<String, Instant>>>,
    alerted: Arc<AtomicUsize>,
}

impl Sent {
    /// Records the uuids of one body, intended at `at`.
    pub fn record(&self, at: Instant, uuids: Vec<String>) {
        let mut sent = self.sent.lock().expect("sent map");
        for uuid in uuids {
            sent.insert(uuid, at);
        }
    }

    /// Alerting events sent so far.
    pub fn len(&self) -> usize {
        self.sent.lock().expect("sent map").len()
    }

    /// When the event `uuid` was sent, if this run sent it.
    pub fn when(&self, uuid: &str) -> Option<Instant> {
        self.sent.lock().expect("sent map").get(uuid).copied()
    }

    /// Alerts seen so far about events of this run, by every reader together (one per event
    /// uuid named; a reader of two sinks counts each alert twice).
    pub fn alerted(&self) -> usize {
        self.alerted.load(Ordering::Relaxed)
    }
}

/// What one reader saw.
pub struct Seen {
    /// Latency in microseconds of every alert whose event this run sent.
    pub latency: Histogram<u64>,
}

/// The uuids of the events behind one alert (several for a grouped Identity Engine reset).
pub fn event_uuids(alert: &Value) -> Vec<String> {
    match alert["context"]["event_uuids"].as_array() {
        Some(uuids) if !uuids.is_empty() => uuids
            .iter()
            .filter_map(|uuid| uuid.as_str().map(str::to_owned))
            .collect(),
        _ => alert["event"]["uuid"]
            .as_str()
            .map(|uuid| vec![uuid.to_owned()])
            .unwrap_or_default(),
    }
}

fn record(latency: &mut Histogram<u64>, sent: &Sent, payload: &[u8], arrived: Instant) {
    let Ok(alert) = serde_json::from_slice::<Value>(payload) else {
        return;
    };
    // A correlation alert (the mix's admins reset several users) is not one event's alert.
    if alert.get("correlation").is_some() {
        return;
    }
    for uuid in event_uuids(&alert) {
        if let Some(at) = sent.when(&uuid) {
            let micros = arrived.saturating_duration_since(at).as_micros() as u64;
            latency.saturating_record(micros.max(1));
            sent.alerted.fetch_add(1, Ordering::Relaxed);
        }
    }
}

/// Follows the file sink's file from a thread, polling every millisecond, until `stop`.
pub fn tail_file(
    path: PathBuf,
    sent: Sent,
    stop: Arc<AtomicBool>,
) -> std::thread::JoinHandle<Seen> {
    std::thread::spawn(move || {
        let mut latency = histogram();
        let mut offset = 0u64;
        let mut partial = Vec::new();
        let mut chunk = Vec::new();
        while !stop.load(Ordering::Relaxed) {
            let grown = std::fs::metadata(&path).map(|m| m.len() > offset);
            if let Ok(true) = grown
                && let Ok(mut file) = std::fs::File::open(&path)
                && file.seek(SeekFrom::Start(offset)).is_ok()
            {
                chunk.clear();
                if let Ok(read) = file.read_to_end(&mut chunk) {
                    let arrived = Instant::now();
                    offset += read as u64;
                    partial.extend_from_slice(&chunk);
                    // One pass over what was read, then one drain: draining line by line moves
                    // the rest of the chunk each time, quadratic in a chunk of thousands of
                    // alerts (a reader behind a fast writer), which slowed the reader to minutes.
                    let mut start = 0;
                    while let Some(len) = partial[start..].iter().position(|&b| b == b'\n') {
                        record(&mut latency, &sent, &partial[start..start + len], arrived);
                        start += len + 1;
                    }
                    partial.drain(..start);
                }
            }
            std::thread::sleep(Duration::from_millis(1));
        }
        Seen { latency }
    })
}

/// Creates the stream the `nats` sink publishes into (so the reader can attach before the first
/// alert), capturing `capture`.
pub async fn create_stream(name: &str, capture: &str) -> anyhow::Result<()> {
    let context = jetstream::new(
        async_nats::connect(NATS_URL)
            .await
            .context("NATS on 127.0.0.1:4222")?,
    );
    context
        .create_stream(jetstream::stream::Config {
            name: name.to_owned(),
            subjects: vec![capture.to_owned()],
            ..Default::default()
        })
        .await
        .with_context(|| format!("cannot create stream {name}"))?;
    Ok(())
}

/// Deletes the stream of a run.
pub async fn delete_stream(name: &str) {
    if let Ok(client) = async_nats::connect(NATS_URL).await {
        let _ = jetstream::new(client).delete_stream(name).await;
    }
}

/// Reads the stream `name` with an ordered consumer until `stop`.
pub async fn read_stream(name: String, sent: Sent, stop: Arc<AtomicBool>) -> anyhow::Result<Seen> {
    let context = jetstream::new(async_nats::connect(NATS_URL).await?);
    let stream = context.get_stream(&name).await?;
    let mut messages = stream
        .create_consumer(jetstream::consumer::pull::OrderedConfig::default())
        .await?
        .messages()
        .await?;
    let mut latency = histogram();
    while !stop.load(Ordering::Relaxed) {
        match tokio::time::timeout(Duration::from_millis(100), messages.next()).await {
            Ok(Some(Ok(message))) => {
                record(&mut latency, &sent, &message.payload, Instant::now());
            }
            Ok(Some(Err(err))) => anyhow::bail!("reading {name}: {err}"),
            Ok(None) => break,
            Err(_) => {}
        }
    }
    Ok(Seen { latency })
}
