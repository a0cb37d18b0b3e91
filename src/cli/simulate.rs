//! Plays Okta against a running receiver: the verification GET, then event batches, reporting each
//! answer. Used by `factorwatch simulate` (point it at your deployment before registering the hook
//! in Okta) and by `factorwatch demo`.

use std::io::Write;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use rand::SeedableRng;
use serde_json::Value;

use crate::okta::export::read_events;
use crate::okta::samples::{self, Initiator, SIMULATED_HOOK_ID, SIMULATED_ORG, is_mfa_reset};
use crate::secret::Secret;

/// What to play.
#[derive(Debug, Clone)]
pub struct SimulateOptions {
    /// The hook URL, such as `http://127.0.0.1:8080/okta/events`.
    pub url: String,
    /// The secret Okta would send.
    pub secret: Secret,
    /// The header Okta would send it in.
    pub header: String,
    /// Events to send instead of the built-in ones: a JSON array (as `/api/v1/logs` returns it),
    /// JSON lines, or an event-hook envelope.
    pub events: Option<PathBuf>,
    /// How many batches to send.
    pub batches: usize,
    /// Events per batch.
    pub batch_size: usize,
}

/// What happened.
#[derive(Debug, Default)]
pub struct SimulateReport {
    /// Batches answered 2xx.
    pub accepted: usize,
    /// Batches answered otherwise.
    pub refused: usize,
    /// uuids of the MFA reset events inside accepted batches.
    pub mfa_event_uuids: Vec<String>,
    /// The accepted envelopes, in order (the demo replays one).
    pub envelopes: Vec<Value>,
}

/// A client that speaks like Okta to one hook URL.
pub struct OktaPlayer {
    client: reqwest::Client,
    options: SimulateOptions,
}

impl OktaPlayer {
    /// A player for `options`.
    pub fn new(options: SimulateOptions) -> anyhow::Result<Self> {
        // Okta gives up on a receiver after 3 s; so do we.
        let client = reqwest::Client::builder()
            .timeout(Duration::from_secs(3))
            .build()?;
        Ok(Self { client, options })
    }

    /// Sends the verification GET and checks the echo.
    pub async fn verify(&self, out: &mut impl Write) -> anyhow::Result<()> {
        let challenge = uuid::Uuid::new_v4().to_string();
        let response = self
            .client
            .get(&self.options.url)
            .header(self.options.header.as_str(), self.options.secret.expose())
            .header("X-Okta-Verification-Challenge", &challenge)
            .send()
            .await
            .with_context(|| format!("cannot reach {}", self.options.url))?;
        let status = response.status();
        let body: Value = response.json().await.unwrap_or(Value::Null);
        if status.is_success() && body["verification"] == challenge.as_str() {
            writeln!(out, "verify: {status}, challenge echoed")?;
            Ok(())
        } else {
            writeln!(out, "verify: {status}, answer {body}")?;
            Err(self.verification_failure(status, &body))
        }
    }

    /// What to fix after a failed verification: the path on a 404 (the receiver names the path
    /// it serves when the secret is right), else the secret and header.
    fn verification_failure(&self, status: reqwest::StatusCode, body: &Value) -> anyhow::Error {
        let url = &self.options.url;
        if status != reqwest::StatusCode::NOT_FOUND {
            return anyhow::anyhow!(
                "verification failed: Okta would refuse this hook ({status}). Check that the secret \
                 and header match [okta] secrets and auth_header of the receiver"
            );
        }
        let served: Vec<&str> = body["hook_paths"]
            .as_array()
            .map(|paths| paths.iter().filter_map(Value::as_str).collect())
            .unwrap_or_default();
        match served.as_slice() {
            [] => anyhow::anyhow!(
                "verification failed: the receiver serves no hook at {url} ({status}); fix the \
                 path in --url (server.hook_path of the receiver, /okta/events by default)"
            ),
            paths => anyhow::anyhow!(
                "verification failed: the receiver serves no hook at {url} ({status}); it serves \
                 this secret's hook at {}: fix the path in --url",
                paths.join(", ")
            ),
        }
    }

    /// POSTs one envelope; returns the status and how long the answer took.
    pub async fn post(&self, envelope: &Value) -> anyhow::Result<(reqwest::StatusCode, Duration)> {
        let started = Instant::now();
        let response = self
            .client
            .post(&self.options.url)
            .header(self.options.header.as_str(), self.options.secret.expose())
            .header("Accept", "application/json")
            .json(envelope)
            .send()
            .await
            .with_context(|| format!("cannot reach {}", self.options.url))?;
        Ok((response.status(), started.elapsed()))
    }

    /// Verifies, then sends every batch, writing one line per answer to `out`.
    pub async fn run(&self, out: &mut impl Write) -> anyhow::Result<SimulateReport> {
        self.verify(out).await?;
        let batches = self.batches()?;
        let total = batches.len();
        let mut report = SimulateReport::default();
        for (index, events) in batches.into_iter().enumerate() {
            let mfa = mfa_uuids(&events);
            let count = events.len();
            let envelope = samples::envelope(SIMULATED_ORG, SIMULATED_HOOK_ID, events);
            let (status, took) = self.post(&envelope).await?;
            writeln!(
                out,
                "batch {}/{total}: {count} events ({} MFA resets) -> {status} in {:.1} ms",
                index + 1,
                mfa.len(),
                took.as_secs_f64() * 1000.0
            )?;
            if status.is_success() {
                report.accepted += 1;
                report.mfa_event_uuids.extend(mfa);
                report.envelopes.push(envelope);
            } else {
                report.refused += 1;
            }
        }
        Ok(report)
    }

    fn batches(&self) -> anyhow::Result<Vec<Vec<Value>>> {
        let size = self.options.batch_size.max(1);
        match &self.options.events {
            Some(path) => {
                let events = read_events(path)?;
                Ok(events
                    .chunks(size)
                    .take(self.options.batches)
                    .map(<[Value]>::to_vec)
                    .collect())
            }
            None => {
                let mut rng = rand::rngs::StdRng::from_os_rng();
                Ok((0..self.options.batches)
                    .map(|index| builtin_batch(&mut rng, index, size))
                    .collect())
            }
        }
    }
}

/// `factorwatch simulate`: runs a simulation and prints its report; fails when any batch was
/// refused.
pub async fn run(options: SimulateOptions) -> anyhow::Result<()> {
    let mut out = std::io::stdout();
    let report = OktaPlayer::new(options)?.run(&mut out).await?;
    writeln!(
        out,
        "{} batches accepted, {} refused, {} MFA reset events delivered",
        report.accepted,
        report.refused,
        report.mfa_event_uuids.len()
    )?;
    if report.refused > 0 {
        bail!(
            "{} batches were refused; the receiver's log says why",
            report.refused
        );
    }
    Ok(())
}

/// A realistic batch: two MFA resets (one factor deactivated, one reset of all factors, by
/// rotating initiators) among ordinary events.
fn builtin_batch(rng: &mut impl rand::Rng, index: usize, size: usize) -> Vec<Value> {
    let users = samples::users();
    let target = &users[index % (users.len() - 1)];
    let initiators = [
        Initiator::SelfService,
        Initiator::Admin,
        Initiator::ApiToken,
        Initiator::OktaSupport,
    ];
    let initiator = initiators[index % initiators.len()];
    let mut events = vec![
        samples::session_start(target, "198.51.100.23"),
        samples::mfa_factor_deactivate(
            target,
            "FIDO_WEBAUTHN",
            initiator,
            &uuid::Uuid::new_v4().to_string(),
        ),
        samples::mfa_factor_reset_all(target, Initiator::Admin),
    ];
    let filler = size.saturating_sub(events.len());
    events.extend(
        samples::mixed_batch(rng, filler * 2)
            .into_iter()
            .filter(|e| !is_mfa_reset(e))
            .take(filler),
    );
    events
}

fn mfa_uuids(events: &[Value]) -> Vec<String> {
    events
        .iter()
        .filter(|e| is_mfa_reset(e))
        .filter_map(|e| e["uuid"].as_str().map(str::to_owned))
        .collect()
}
