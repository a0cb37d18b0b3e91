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
    /// The placeholder users of a population mix, one per event that names one (empty for the
    /// pools of [`Payloads::new`]).
    users: Vec<UserSlot>,
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
    /// The users the placeholders are rewritten to (none for [`Payloads::new`]).
    population: Option<Population>,
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
        Self {
            templates,
            population: None,
        }
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
        if let Some(population) = &self.population {
            population.rewrite(&mut bytes, &template.users, rng);
        }
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
        users: Vec::new(),
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

// Population mixes (issue 23): the same envelopes, but each event's user is one of a population
// of up to ten million distinct users, rewritten per request in place like the uuids above.
//
// The templates are built with a placeholder user per event position `j` (user number
// `PLACEHOLDER + j`); every user `k` has values of the same widths, so a rewrite is a copy of a
// few digits: id `00u` + 17 digits, login `u` + 7 digits + `@example.com`, display name `User `
// + 7 digits, and a client IP of four three-digit octets from 100 to 199.

/// The user number of the placeholder of event position 0 (position `j` is this plus `j`).
const PLACEHOLDER: u64 = 9_999_900;

/// Okta user id of user `k`: `00u` and 17 digits (20 characters, as Okta's ids).
pub fn user_id(k: u64) -> String {
    format!("00u{k:017}")
}

/// Login of user `k`: `u` and 7 digits at example.com.
pub fn user_login(k: u64) -> String {
    format!("u{k:07}@example.com")
}

/// Display name of user `k`.
fn user_name(k: u64) -> String {
    format!("User {k:07}")
}

/// Client IP of user `k`: four octets from 100 to 199, each user its own address (and its own
/// /24 up to 1,000,000 users).
pub fn user_ip(k: u64) -> String {
    let [a, b, c, d] = ip_octets(k);
    format!("{a}.{b}.{c}.{d}")
}

fn ip_octets(k: u64) -> [u64; 4] {
    [
        100 + (k / 1_000_000) % 100,
        100 + (k / 10_000) % 100,
        100 + (k / 100) % 100,
        100 + k % 100,
    ]
}

/// Where one event's user sits in a template.
struct UserSlot {
    /// Offsets of the user id (also inside request URIs).
    id: Vec<usize>,
    /// Offsets of the login.
    login: Vec<usize>,
    /// Offsets of the display name.
    name: Vec<usize>,
    /// Offsets of the user's client IP (empty when the user is not the actor).
    ip: Vec<usize>,
}

/// How a population mix picks each event's user.
#[derive(Clone, Copy)]
pub enum Order {
    /// User 0, 1, 2, ... in turn over every connection: every user appears once per
    /// `population` events.
    RoundRobin,
    /// Uniformly at random.
    Random,
}

/// The users of a population mix.
struct Population {
    users: u64,
    order: Order,
    next: std::sync::atomic::AtomicU64,
}

impl Population {
    fn pick(&self, rng: &mut SmallRng, count: usize) -> u64 {
        match self.order {
            Order::RoundRobin => self
                .next
                .fetch_add(count as u64, std::sync::atomic::Ordering::Relaxed),
            Order::Random => rng.random_range(0..self.users),
        }
    }

    fn rewrite(&self, bytes: &mut [u8], slots: &[UserSlot], rng: &mut SmallRng) {
        let base = self.pick(rng, slots.len());
        for (j, slot) in slots.iter().enumerate() {
            let k = match self.order {
                Order::RoundRobin => (base + j as u64) % self.users,
                Order::Random if j == 0 => base,
                Order::Random => rng.random_range(0..self.users),
            };
            for &at in &slot.id {
                digits(&mut bytes[at + 3..at + 20], k);
            }
            for &at in &slot.login {
                digits(&mut bytes[at + 1..at + 8], k);
            }
            for &at in &slot.name {
                digits(&mut bytes[at + 5..at + 12], k);
            }
            let octets = ip_octets(k);
            for &at in &slot.ip {
                for (i, octet) in octets.iter().enumerate() {
                    digits(&mut bytes[at + 4 * i..at + 4 * i + 3], *octet);
                }
            }
        }
    }
}

/// Writes `value` into `out` as zero-padded decimal digits (its low digits if it is too wide).
fn digits(out: &mut [u8], mut value: u64) {
    for byte in out.iter_mut().rev() {
        *byte = b'0' + (value % 10) as u8;
        value /= 10;
    }
}

/// Every offset of `needle` in `bytes`.
fn offsets_of(bytes: &[u8], needle: &str) -> Vec<usize> {
    bytes
        .windows(needle.len())
        .enumerate()
        .filter(|(_, window)| *window == needle.as_bytes())
        .map(|(at, _)| at)
        .collect()
}

/// `events` as an envelope template whose position `j` names placeholder user `PLACEHOLDER + j`.
fn population_template(events: Vec<Value>) -> Template {
    let positions = events.len();
    let mut template = template(events);
    for j in 0..positions {
        let k = PLACEHOLDER + j as u64;
        let slot = UserSlot {
            id: offsets_of(&template.bytes, &user_id(k)),
            login: offsets_of(&template.bytes, &user_login(k)),
            name: offsets_of(&template.bytes, &user_name(k)),
            ip: offsets_of(&template.bytes, &user_ip(k)),
        };
        if !slot.id.is_empty() || !slot.login.is_empty() {
            template.users.push(slot);
        }
    }
    template
}

/// Replaces the sample user (alice, bob or carol) of `event` with placeholder user
/// `PLACEHOLDER + j`, and, where that user is the actor, its client IP with the placeholder's.
fn with_placeholder_user(event: Value, j: usize) -> Value {
    let k = PLACEHOLDER + j as u64;
    let mut text = serde_json::to_string(&event).expect("an event serialises");
    let admin = samples::admin();
    for user in samples::users().iter().filter(|u| u.id != admin.id) {
        if !text.contains(&user.id) && !text.contains(&user.login) {
            continue;
        }
        if event["actor"]["id"].as_str() == Some(user.id.as_str())
            && let Some(ip) = event["client"]["ipAddress"].as_str()
        {
            text = text.replace(&format!("\"{ip}\""), &format!("\"{}\"", user_ip(k)));
        }
        text = text
            .replace(&user.id, &user_id(k))
            .replace(&user.login, &user_login(k))
            .replace(&user.display_name, &user_name(k));
    }
    serde_json::from_str(&text).expect("the rewritten event parses")
}

impl Payloads {
    /// The mass-reset mix: every event a `user.mfa.factor.deactivate` by the same admin
    /// (`samples::admin()`, `Initiator::Admin`) of a different user, users 0, 1, 2, ... of
    /// `population` in turn; fresh uuid and transaction id per event.
    pub fn mass_reset(batch: usize, population: u64, seed: u64) -> Self {
        use rand::distr::{Alphanumeric, SampleString};
        const FACTORS: [&str; 4] = ["FIDO_WEBAUTHN", "OKTA_VERIFY_PUSH", "SMS", "GOOGLE_OTP"];
        let mut rng = StdRng::seed_from_u64(seed);
        let count = (POOL_EVENTS / batch).max(20);
        let templates = (0..count)
            .map(|_| {
                let events = (0..batch)
                    .map(|j| {
                        let k = PLACEHOLDER + j as u64;
                        let user =
                            samples::SampleUser::new(&user_id(k), &user_login(k), &user_name(k));
                        let factor = FACTORS[rng.random_range(0..FACTORS.len())];
                        let transaction = Alphanumeric.sample_string(&mut rng, 25);
                        samples::mfa_factor_deactivate(
                            &user,
                            factor,
                            samples::Initiator::Admin,
                            &transaction,
                        )
                    })
                    .collect();
                population_template(events)
            })
            .collect();
        Self::over_population(templates, population, Order::RoundRobin)
    }

    /// A pool of `templates` whose placeholder users are drawn from `users` in `order`.
    fn over_population(templates: Vec<Template>, users: u64, order: Order) -> Self {
        Self {
            templates,
            population: Some(Population {
                users,
                order,
                next: Default::default(),
            }),
        }
    }

    /// The realistic-org mix: the events of [`Payloads::new`] (same seed, same types and
    /// shares), each event's user drawn from `population` distinct users (`order`), each with
    /// its own client IP.
    pub fn org(batch: usize, population: u64, order: Order, seed: u64) -> Self {
        assert!(batch < 100 && population < PLACEHOLDER);
        let mut rng = StdRng::seed_from_u64(seed);
        let count = (POOL_EVENTS / batch).max(20);
        let templates = (0..count)
            .map(|_| {
                let events = samples::mixed_batch(&mut rng, batch)
                    .into_iter()
                    .enumerate()
                    .map(|(j, event)| with_placeholder_user(event, j))
                    .collect();
                population_template(events)
            })
            .collect();
        Self::over_population(templates, population, order)
    }

    /// Events that name a user of the population, per event (1.0 when every event does).
    pub fn user_share(&self) -> f64 {
        let named: usize = self.templates.iter().map(|t| t.users.len()).sum();
        let events: usize = self.templates.iter().map(|t| t.events).sum();
        named as f64 / events as f64
    }
}
