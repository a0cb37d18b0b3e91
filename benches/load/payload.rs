//! Okta-shaped request bodies, cheap enough to send 50,000 events a second from the same two cores.
//!
//! Building a `serde_json::Value` and serialising it for every request would cost the generator
//! more CPU than the server spends on it. So a pool of envelopes is built once with
//! `factorwatch::okta::samples` (about one event in ten an MFA reset, the rest sessions, SSO,
//! policy and membership events with full LogEvent bodies), serialised once, and every request
//! copies one of them and overwrites, in place and at the same length, each value that must be
//! unique per delivery: the envelope's `eventId`, every event `uuid`, and every `transaction.id` /
//! `debugContext.debugData.requestId`. Fresh uuids keep the detector's de-duplication honest (a
//! repeated uuid would be dropped before the rules run); fresh transaction ids keep Identity
//! Engine grouping from folding unrelated resets into one alert.

use hyper::body::Bytes;
use rand::rngs::{SmallRng, StdRng};
use rand::{Rng, SeedableRng};
use serde_json::Value;

use factorwatch::okta::samples::{self, SIMULATED_HOOK_ID, SIMULATED_ORG, is_mfa_reset};

/// How a unique value is rewritten: keeping its shape keeps the body a valid LogEvent.
#[derive(Clone, Copy)]
enum Shape {
    /// A v4 uuid: every hex digit but the version and variant digits is redrawn.
    Uuid,
    /// Okta's request ids: letters and digits.
    Alphanumeric,
}

/// One unique value of a template and every byte offset it occurs at (a web request's
/// `transaction.id` is also its `requestId`, so both occurrences get the same new value).
struct Slot {
    shape: Shape,
    len: usize,
    offsets: Vec<usize>,
}

/// One serialised envelope and where its unique values sit.
struct Template {
    bytes: Vec<u8>,
    events: usize,
    slots: Vec<Slot>,
    /// Indices into `slots` of the `uuid`s of the events the built-in rules alert on.
    alerting: Vec<usize>,
}

/// One request body, ready to send.
pub struct Body {
    /// The envelope.
    pub bytes: Bytes,
    /// Events in it.
    pub events: usize,
    /// uuids of its events that raise an alert (filled only when asked for).
    pub alerting_uuids: Vec<String>,
}

/// The pool of envelopes of one batch size.
pub struct Payloads {
    templates: Vec<Template>,
}

/// Events in the pool of each batch size: enough variety that no one body dominates.
const POOL_EVENTS: usize = 2_000;

impl Payloads {
    /// Envelopes of `batch` events each, drawn from a seeded generator so every run sends the
    /// same mix.
    pub fn new(batch: usize, seed: u64) -> Self {
        let mut rng = StdRng::seed_from_u64(seed);
        let count = (POOL_EVENTS / batch).max(20);
        let templates = (0..count)
            .map(|_| template(samples::mixed_batch(&mut rng, batch)))
            .collect();
        Self { templates }
    }

    /// Mean body size in bytes.
    pub fn mean_bytes(&self) -> usize {
        self.templates.iter().map(|t| t.bytes.len()).sum::<usize>() / self.templates.len()
    }

    /// Share of events that raise an alert.
    pub fn alerting_share(&self) -> f64 {
        let alerting: usize = self.templates.iter().map(|t| t.alerting.len()).sum();
        let events: usize = self.templates.iter().map(|t| t.events).sum();
        alerting as f64 / events as f64
    }

    /// The `n`-th body: template `n` modulo the pool, with fresh unique values from `rng`.
    pub fn body(&self, n: u64, rng: &mut SmallRng, want_uuids: bool) -> Body {
        let template = &self.templates[(n % self.templates.len() as u64) as usize];
        let mut bytes = template.bytes.clone();
        let mut fresh = Vec::new();
        for slot in &template.slots {
            fresh.clear();
            fresh.extend(std::iter::repeat_n(0u8, slot.len));
            redraw(slot.shape, &mut fresh, rng);
            for &at in &slot.offsets {
                bytes[at..at + slot.len].copy_from_slice(&fresh);
            }
        }
        let alerting_uuids = if want_uuids {
            template
                .alerting
                .iter()
                .map(|&slot| {
                    let at = template.slots[slot].offsets[0];
                    String::from_utf8_lossy(&bytes[at..at + template.slots[slot].len]).into_owned()
                })
                .collect()
        } else {
            Vec::new()
        };
        Body {
            bytes: Bytes::from(bytes),
            events: template.events,
            alerting_uuids,
        }
    }
}

/// Serialises an envelope of `events` and finds its unique values.
fn template(events: Vec<Value>) -> Template {
    let mut unique: Vec<(Shape, String, bool)> = Vec::new();
    for event in &events {
        if let Some(uuid) = event["uuid"].as_str() {
            unique.push((Shape::Uuid, uuid.to_owned(), is_mfa_reset(event)));
        }
        for id in [
            &event["transaction"]["id"],
            &event["debugContext"]["debugData"]["requestId"],
        ] {
            if let Some(id) = id.as_str()
                && id != "unknown"
                && !unique.iter().any(|(_, seen, _)| seen == id)
            {
                unique.push((Shape::Alphanumeric, id.to_owned(), false));
            }
        }
    }
    let count = events.len();
    let envelope = samples::envelope(SIMULATED_ORG, SIMULATED_HOOK_ID, events);
    if let Some(id) = envelope["eventId"].as_str() {
        unique.push((Shape::Uuid, id.to_owned(), false));
    }
    let bytes = serde_json::to_vec(&envelope).expect("an envelope serialises");
    let mut slots = Vec::with_capacity(unique.len());
    let mut alerting = Vec::new();
    for (shape, value, alerts) in unique {
        let quoted = format!("\"{value}\"");
        let offsets: Vec<usize> = bytes
            .windows(quoted.len())
            .enumerate()
            .filter(|(_, window)| *window == quoted.as_bytes())
            .map(|(at, _)| at + 1)
            .collect();
        assert!(!offsets.is_empty(), "{value} is in the envelope");
        if alerts {
            alerting.push(slots.len());
        }
        slots.push(Slot {
            shape,
            len: value.len(),
            offsets,
        });
    }
    Template {
        bytes,
        events: count,
        slots,
        alerting,
    }
}

/// Overwrites `out` with a random value of `shape` and the same length.
fn redraw(shape: Shape, out: &mut [u8], rng: &mut SmallRng) {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    const ALNUM: &[u8; 62] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789";
    match shape {
        Shape::Uuid => {
            // 8-4-4-4-12, version 4 at index 14, variant 8..b at index 19.
            for (at, byte) in out.iter_mut().enumerate() {
                *byte = match at {
                    8 | 13 | 18 | 23 => b'-',
                    14 => b'4',
                    19 => b"89ab"[rng.random_range(0..4)],
                    _ => HEX[rng.random_range(0..16)],
                };
            }
        }
        Shape::Alphanumeric => {
            for byte in out.iter_mut() {
                *byte = ALNUM[rng.random_range(0..ALNUM.len())];
            }
        }
    }
}
