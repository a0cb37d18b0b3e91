//! The `nats-kv` backend: two JetStream key-value buckets.
//!
//! - `<prefix>_seen`: one entry per claimed event key, its value the owner; a claim writes with
//!   "expected revision 0", which JetStream refuses if the key exists, and the bucket's
//!   `max_age` (the de-duplication window, set by the first replica that creates the bucket)
//!   expires the claims.
//! - `<prefix>_correlation`: one entry, `state`, holding the correlation state, its token and
//!   every replica's last step (so that the state and the step are written in one atomic
//!   update); an update names the revision it loaded, and JetStream refuses it if another
//!   replica wrote since.
//! - `<prefix>_incidents`: one entry per target user's incident (key hashed), updated naming the
//!   revision read; the bucket's `max_age` (`[rules] incident_window`, set by the replica that
//!   creates it) expires an incident that long after its last alert.

use std::collections::BTreeMap;
use std::time::Duration;

use async_nats::jetstream::{self, kv, stream};
use futures_util::{StreamExt as _, TryStreamExt as _};
use serde::{Deserialize, Serialize};
use sha2::{Digest as _, Sha256};

use super::{
    APPLIED_STEP_TTL, AppliedStep, Claim, ClusterError, SharedCorrelation, UndecodableValue,
};
use crate::brokers::nats::parse_servers;
use crate::brokers::{BoxError, CONNECT_TIMEOUT, LazyClient, ServerUrl};

/// The correlation bucket's one key.
const STATE_KEY: &str = "state";
/// Longest wait for JetStream's answer to one call; a backend that is down is noticed this soon.
const CALL_TIMEOUT: Duration = Duration::from_secs(3);
/// Claims in flight at once over the one connection.
const CLAIMS_IN_FLIGHT: usize = 256;

/// One replica's connection to the cluster's NATS and its two buckets.
pub(super) struct NatsKvState {
    url: ServerUrl,
    replica: String,
    seen_bucket: String,
    correlation_bucket: String,
    incident_bucket: String,
    context: LazyClient<jetstream::Context>,
    seen: LazyClient<kv::Store>,
    correlation: LazyClient<kv::Store>,
    incidents: LazyClient<kv::Store>,
}

/// What the correlation entry holds before the state: one JSON line.
#[derive(Debug, Default, Serialize, Deserialize)]
struct Header {
    token: String,
    /// Each replica's last step, by replica name.
    steps: BTreeMap<String, RecordedStep>,
}

#[derive(Debug, Serialize, Deserialize)]
struct RecordedStep {
    /// When it was written (ms since the epoch): a replica gone for good is forgotten after
    /// [`APPLIED_STEP_TTL`].
    at_ms: u64,
    step: AppliedStep,
}

impl NatsKvState {
    pub(super) fn new(url: &ServerUrl, prefix: &str, replica: &str) -> Self {
        let base = bucket_base(prefix);
        Self {
            context: LazyClient::new(format!("cluster NATS at {url}")),
            seen: LazyClient::new(format!("bucket {base}_seen on cluster NATS at {url}")),
            correlation: LazyClient::new(format!(
                "bucket {base}_correlation on cluster NATS at {url}"
            )),
            incidents: LazyClient::new(format!("bucket {base}_incidents on cluster NATS at {url}")),
            incident_bucket: format!("{base}_incidents"),
            seen_bucket: format!("{base}_seen"),
            correlation_bucket: format!("{base}_correlation"),
            url: url.clone(),
            replica: replica.to_owned(),
        }
    }

    /// Claims each key for its owner in `owners` unless claimed already; answers each key's
    /// holder. Stops at the first failure (the backend is down: no point waiting for the rest).
    pub(super) async fn claim(
        &self,
        claims: &[Claim],
        owners: &[String],
        window: Duration,
    ) -> Result<Vec<String>, ClusterError> {
        let store = self.seen_store(window).await?;
        // Collected first: a stream over the borrowing iterator would not be `Send` for every
        // lifetime, as the spawned detector needs.
        let claims: Vec<_> = claims
            .iter()
            .zip(owners)
            .map(|(claim, owner)| claim_one(store.clone(), entry_key(&claim.key), owner.clone()))
            .collect();
        futures_util::stream::iter(claims)
            .buffered(CLAIMS_IN_FLIGHT)
            .try_collect()
            .await
            .map_err(|err| self.error(&self.seen_bucket, "claim an event key", err))
    }

    pub(super) async fn load(
        &self,
        known: Option<&str>,
    ) -> Result<SharedCorrelation, ClusterError> {
        let (_, header, state) = self.read_correlation().await?;
        let token = (!header.token.is_empty()).then(|| header.token.clone());
        let last_step = header.steps.get(&self.replica).map(|recorded| {
            serde_json::to_vec(&recorded.step).expect("a correlation step serializes")
        });
        let state = (token.is_some() && token.as_deref() != known).then_some(state);
        Ok(SharedCorrelation {
            token,
            state,
            last_step,
        })
    }

    pub(super) async fn publish(
        &self,
        expected: Option<&str>,
        state: &[u8],
        step: &AppliedStep,
    ) -> Result<bool, ClusterError> {
        // The revision the update names is read here, not kept from the caller's load: the
        // token comparison tells whether the state is still the one the caller loaded.
        let (revision, header, _) = self.read_correlation().await?;
        if header.token != expected.unwrap_or("") {
            return Ok(false);
        }
        let now = crate::clock::now_ms();
        let mut steps = header.steps;
        steps.retain(|_, recorded| {
            now.saturating_sub(recorded.at_ms) < APPLIED_STEP_TTL.as_millis() as u64
        });
        steps.insert(
            self.replica.clone(),
            RecordedStep {
                at_ms: now,
                step: step.clone(),
            },
        );
        let header = Header {
            token: step.token.clone(),
            steps,
        };
        let value = encode(&header, state);
        match self
            .correlation_store()
            .await?
            .update(STATE_KEY, value.into(), revision)
            .await
        {
            Ok(_) => Ok(true),
            Err(err) if err.kind() == kv::UpdateErrorKind::WrongLastRevision => Ok(false),
            Err(err) => {
                Err(self.error(&self.correlation_bucket, "write the correlation entry", err))
            }
        }
    }

    /// The correlation entry: its revision (0 when there is none), header and state.
    async fn read_correlation(&self) -> Result<(u64, Header, Vec<u8>), ClusterError> {
        let store = self.correlation_store().await?;
        let entry = store.entry(STATE_KEY).await.map_err(|err| {
            self.error(&self.correlation_bucket, "read the correlation entry", err)
        })?;
        Ok(match entry {
            Some(entry) if entry.operation == kv::Operation::Put => {
                let (header, state) =
                    decode(&entry.value).map_err(|source| ClusterError::Undecodable {
                        url: self.url.clone(),
                        bucket: self.correlation_bucket.clone(),
                        key: STATE_KEY,
                        source,
                    })?;
                (entry.revision, header, state)
            }
            Some(entry) => (entry.revision, Header::default(), Vec::new()),
            None => (0, Header::default(), Vec::new()),
        })
    }

    /// The value of the entry `name` of the correlation bucket, and its revision (0: none).
    async fn read_entry(&self, name: &str) -> Result<(u64, Option<Vec<u8>>), ClusterError> {
        let store = self.correlation_store().await?;
        let entry = store
            .entry(name)
            .await
            .map_err(|err| self.error(&self.correlation_bucket, "read a shared record", err))?;
        Ok(match entry {
            Some(entry) if entry.operation == kv::Operation::Put => {
                (entry.revision, Some(entry.value.to_vec()))
            }
            Some(entry) => (entry.revision, None),
            None => (0, None),
        })
    }

    /// The value of the entry `name`, if it has one.
    pub(super) async fn read(&self, name: &str) -> Result<Option<Vec<u8>>, ClusterError> {
        Ok(self.read_entry(name).await?.1)
    }

    /// Writes `new` to the entry `name` if it still holds `expected` (`None`: no value): an
    /// update naming the revision read, which JetStream refuses if another replica wrote since.
    pub(super) async fn swap(
        &self,
        name: &str,
        expected: Option<&[u8]>,
        new: &[u8],
    ) -> Result<bool, ClusterError> {
        let (revision, current) = self.read_entry(name).await?;
        if current.as_deref() != expected {
            return Ok(false);
        }
        let store = self.correlation_store().await?;
        match store.update(name, new.to_vec().into(), revision).await {
            Ok(_) => Ok(true),
            Err(err) if err.kind() == kv::UpdateErrorKind::WrongLastRevision => Ok(false),
            Err(err) => Err(self.error(&self.correlation_bucket, "write a shared record", err)),
        }
    }

    /// The incident under `key`, if there is one.
    pub(super) async fn read_incident(
        &self,
        key: &str,
        keep: Duration,
    ) -> Result<Option<Vec<u8>>, ClusterError> {
        let store = self.incident_store(keep).await?;
        let entry = store
            .entry(entry_key(key))
            .await
            .map_err(|err| self.error(&self.incident_bucket, "read an incident", err))?;
        Ok(entry
            .filter(|entry| entry.operation == kv::Operation::Put)
            .map(|entry| entry.value.to_vec()))
    }

    /// Writes the incident under `key` if it still holds `expected` (`None`: none), naming the
    /// revision read, which JetStream refuses if another replica wrote since.
    pub(super) async fn swap_incident(
        &self,
        key: &str,
        expected: Option<&[u8]>,
        new: &[u8],
        keep: Duration,
    ) -> Result<bool, ClusterError> {
        let store = self.incident_store(keep).await?;
        let key = entry_key(key);
        let entry = store
            .entry(&key)
            .await
            .map_err(|err| self.error(&self.incident_bucket, "read an incident", err))?;
        let (revision, current) = match entry {
            Some(entry) if entry.operation == kv::Operation::Put => {
                (entry.revision, Some(entry.value.to_vec()))
            }
            Some(entry) => (entry.revision, None),
            None => (0, None),
        };
        if current.as_deref() != expected {
            return Ok(false);
        }
        match store.update(&key, new.to_vec().into(), revision).await {
            Ok(_) => Ok(true),
            Err(err) if err.kind() == kv::UpdateErrorKind::WrongLastRevision => Ok(false),
            Err(err) => Err(self.error(&self.incident_bucket, "write an incident", err)),
        }
    }

    /// Drops the connection after a failed call, so the next one reconnects.
    pub(super) async fn reset(&self) {
        self.seen.reset().await;
        self.correlation.reset().await;
        self.incidents.reset().await;
        self.context.reset().await;
    }

    async fn context(&self) -> Result<jetstream::Context, ClusterError> {
        let context = self
            .context
            .get(|| async {
                let client = async_nats::ConnectOptions::new()
                    .name(format!("factorwatch cluster ({})", self.replica))
                    .connection_timeout(CONNECT_TIMEOUT)
                    .connect(parse_servers(&self.url)?)
                    .await?;
                let mut context = jetstream::new(client);
                context.set_timeout(CALL_TIMEOUT);
                anyhow::Ok(context)
            })
            .await?;
        Ok(context)
    }

    /// The claims bucket, created with `window` as its `max_age` if it does not exist yet.
    async fn seen_store(&self, window: Duration) -> Result<kv::Store, ClusterError> {
        let context = self.context().await?;
        let open = || open_bucket(&context, &self.seen_bucket, window);
        Ok(self.seen.get(open).await?)
    }

    /// The correlation bucket, created if it does not exist yet (its entry never expires).
    async fn correlation_store(&self) -> Result<kv::Store, ClusterError> {
        let context = self.context().await?;
        let open = || open_bucket(&context, &self.correlation_bucket, Duration::ZERO);
        Ok(self.correlation.get(open).await?)
    }

    /// The incidents bucket, created with `keep` as its `max_age` if it does not exist yet.
    async fn incident_store(&self, keep: Duration) -> Result<kv::Store, ClusterError> {
        let context = self.context().await?;
        let open = || open_bucket(&context, &self.incident_bucket, keep);
        Ok(self.incidents.get(open).await?)
    }

    fn error(
        &self,
        bucket: &str,
        operation: &'static str,
        source: impl Into<BoxError>,
    ) -> ClusterError {
        ClusterError::KeyValue {
            url: self.url.clone(),
            bucket: bucket.to_owned(),
            operation,
            source: source.into(),
        }
    }
}

/// Claims `key` for `owner` unless it is claimed; answers its holder.
async fn claim_one(store: kv::Store, key: String, owner: String) -> Result<String, BoxError> {
    match store.update(&key, owner.clone().into(), 0).await {
        Ok(_) => Ok(owner),
        Err(err) if err.kind() == kv::UpdateErrorKind::WrongLastRevision => {
            let holder = store.get(key).await?;
            // Gone since (expired): nobody holds it, and this claim stands.
            Ok(holder.map_or(owner, |h| String::from_utf8_lossy(&h).into_owned()))
        }
        Err(err) => Err(err.into()),
    }
}

/// The bucket `name`, or a new one keeping one revision per key, its entries expiring after
/// `max_age` (zero: never). Two replicas creating it at once both succeed: JetStream accepts a
/// second create with the same configuration.
async fn open_bucket(
    context: &jetstream::Context,
    name: &str,
    max_age: Duration,
) -> anyhow::Result<kv::Store> {
    if let Ok(store) = context.get_key_value(name).await {
        let configured = store.status().await.map(|s| s.max_age()).ok();
        if configured.is_some_and(|age| age != max_age) {
            tracing::warn!(bucket = name, configured = ?configured, wanted = ?max_age,
                "the bucket exists with another max_age; it keeps its own (delete the bucket to change it)");
        }
        return Ok(store);
    }
    // The stream behind a bucket, as `create_key_value` makes it. That call is not used: it
    // first asks for the account's API level, an answer async-nats cannot read from NATS 2.9.
    context
        .get_or_create_stream(stream::Config {
            name: format!("KV_{name}"),
            subjects: vec![format!("$KV.{name}.>")],
            max_messages_per_subject: 1,
            max_age,
            allow_rollup: true,
            deny_delete: true,
            allow_direct: true,
            discard: stream::DiscardPolicy::New,
            num_replicas: 1,
            ..Default::default()
        })
        .await
        .map_err(|err| anyhow::anyhow!("cannot create JetStream key-value bucket {name}: {err}"))?;
    Ok(context.get_key_value(name).await?)
}

/// A bucket name from `key_prefix`: the characters a bucket name cannot hold become `_`.
fn bucket_base(prefix: &str) -> String {
    let base: String = prefix
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '-' || c == '_' {
                c
            } else {
                '_'
            }
        })
        .collect();
    let base = base.trim_matches('_');
    if base.is_empty() {
        "factorwatch".into()
    } else {
        base.into()
    }
}

/// The bucket key of an event key: a uuid as it is, anything a key cannot hold (the
/// `sha256:` keys of events without a uuid, or an odd uuid) hashed, each in its own namespace
/// so the two never meet.
fn entry_key(event_key: &str) -> String {
    let plain = !event_key.is_empty()
        && event_key
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_' || c == '=');
    if plain {
        format!("e.{event_key}")
    } else {
        let digest = Sha256::digest(event_key.as_bytes());
        let hex: String = digest.iter().map(|b| format!("{b:02x}")).collect();
        format!("h.{hex}")
    }
}

/// The entry's value: the header as one JSON line, then the state's bytes.
fn encode(header: &Header, state: &[u8]) -> Vec<u8> {
    let mut value = serde_json::to_vec(header).expect("a correlation header serializes");
    value.push(b'\n');
    value.extend_from_slice(state);
    value
}

fn decode(value: &[u8]) -> Result<(Header, Vec<u8>), UndecodableValue> {
    let split = value
        .iter()
        .position(|b| *b == b'\n')
        .ok_or(UndecodableValue::NoHeaderLine)?;
    let header = serde_json::from_slice(&value[..split]).map_err(UndecodableValue::Header)?;
    Ok((header, value[split + 1..].to_vec()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bucket_names_and_keys_hold_only_what_jetstream_accepts() {
        assert_eq!(bucket_base("factorwatch:"), "factorwatch");
        assert_eq!(
            bucket_base("factorwatch:org:acme-eu:"),
            "factorwatch_org_acme-eu"
        );
        assert_eq!(bucket_base("::"), "factorwatch");
        assert_eq!(
            entry_key("a2c3e6d0-5f0e-11ef-9b6f-b1c2"),
            "e.a2c3e6d0-5f0e-11ef-9b6f-b1c2"
        );
        let hashed = entry_key("sha256:0a1b");
        assert!(hashed.starts_with("h.") && hashed.len() == 66, "{hashed}");
        assert_ne!(entry_key("x.y"), entry_key("x/y"));
    }

    #[test]
    fn the_correlation_entry_reads_back_as_written() {
        let header = Header {
            token: "t-1".into(),
            steps: BTreeMap::new(),
        };
        let state = b"{\"groups\":\n[1,2]}";
        let (read, read_state) = decode(&encode(&header, state)).unwrap();
        assert_eq!(read.token, "t-1");
        assert_eq!(read_state, state);
        assert!(decode(b"no header line").is_err());
    }
}
