//! [`HookSecrets`]: one org's accepted secrets as its hook checks them, swapped whole on reload,
//! with when each was last used on this replica.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, RwLock};
use std::time::{SystemTime, UNIX_EPOCH};

use super::{
    Digest, Fingerprint, SecretSet, SecretSource, SecretSources, SecretsError, SourcedSecret,
};

/// What an accepted secret was used for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Use {
    /// An event delivery (`POST`).
    Delivery,
    /// A verification challenge (`GET`).
    Verification,
}

/// One org's accepted secrets: the set the hook checks, reloaded from its [`SecretSources`]
/// without a restart, and the last use of each secret.
///
/// The set in force is an `Arc` behind a lock held only to clone or replace it (the pattern of
/// the rules' `SharedRules`): a request checks the set it took, whole, and a reload swaps in a
/// complete new one or nothing.
pub struct HookSecrets {
    /// The `[[okta.orgs]]` name, in log lines; `None`: the top-level org.
    org: Option<Arc<str>>,
    /// Where the secrets are read from again.
    sources: SecretSources,
    /// The set in force.
    current: RwLock<Arc<Accepted>>,
    /// When each secret (by digest, so kept across reloads) was last used.
    usage: Mutex<Usage>,
    /// Held by a reload from reading the sources to the swap, so that of two reloads at once
    /// (SIGHUP and the admin API) the later read is the one left in force.
    reloading: Mutex<()>,
}

impl std::fmt::Debug for HookSecrets {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("HookSecrets")
            .field("org", &self.org)
            .field("accepted", &self.current().set.len())
            .finish_non_exhaustive()
    }
}

/// One generation of accepted secrets: the digests and, in the same order, their sources.
struct Accepted {
    set: SecretSet,
    sources: Vec<SecretSource>,
}

/// The last uses this replica saw, in Unix milliseconds.
#[derive(Default)]
struct Usage {
    each: HashMap<Digest, LastUse>,
    last_delivery: Option<(Digest, u64)>,
}

#[derive(Default, Clone, Copy)]
struct LastUse {
    delivery_ms: Option<u64>,
    verification_ms: Option<u64>,
}

/// What [`HookSecrets::report`] says of one accepted secret.
#[derive(Debug, Clone)]
pub struct SecretUse {
    /// Its fingerprint.
    pub fingerprint: Fingerprint,
    /// Where it came from.
    pub source: SecretSource,
    /// The last delivery authenticated with it (Unix ms), on this replica since it started.
    pub last_delivery_ms: Option<u64>,
    /// The last verification challenge authenticated with it (Unix ms).
    pub last_verification_ms: Option<u64>,
}

/// The secret the last delivery was authenticated with.
#[derive(Debug, Clone)]
pub struct LastDelivery {
    /// Its fingerprint.
    pub fingerprint: Fingerprint,
    /// When (Unix ms).
    pub at_ms: u64,
    /// Whether it is still accepted (false once a reload dropped it).
    pub accepted: bool,
}

/// An org's accepted secrets and their last uses.
#[derive(Debug, Clone)]
pub struct SecretsReport {
    /// Each accepted secret, in the order of its sources.
    pub secrets: Vec<SecretUse>,
    /// The secret of the last delivery, if one was seen.
    pub last_delivery: Option<LastDelivery>,
}

/// What a successful reload changed.
#[derive(Debug, Clone)]
pub struct Reloaded {
    /// How many secrets are accepted now.
    pub accepted: usize,
    /// The secrets accepted now and not before.
    pub added: Vec<Fingerprint>,
    /// The secrets accepted before and not now.
    pub removed: Vec<Fingerprint>,
}

impl HookSecrets {
    /// The org's secrets, `initial` being what `sources` read at start.
    pub fn new(org: Option<Arc<str>>, sources: SecretSources, initial: &[SourcedSecret]) -> Self {
        Self {
            org,
            sources,
            current: RwLock::new(Arc::new(Accepted::new(initial))),
            usage: Mutex::default(),
            reloading: Mutex::default(),
        }
    }

    fn current(&self) -> Arc<Accepted> {
        self.current.read().expect("secrets lock poisoned").clone()
    }

    /// True when `presented` is an accepted secret; records nothing (a probe, not a use).
    pub fn accepts(&self, presented: &[u8]) -> bool {
        self.current().set.accepts(presented)
    }

    /// The fingerprint of the accepted secret `presented` equals, if any, recording its use.
    /// The comparison is `SecretSet::matching`'s, constant-time over every accepted secret;
    /// which secret matched is recorded only after it.
    pub fn authenticate(&self, presented: &[u8], used_for: Use) -> Option<Fingerprint> {
        let digest = self.current().set.matching(presented)?;
        let now = now_ms();
        let mut usage = self.usage.lock().expect("secrets usage lock poisoned");
        let last = usage.each.entry(digest).or_default();
        match used_for {
            Use::Delivery => {
                last.delivery_ms = Some(now);
                usage.last_delivery = Some((digest, now));
            }
            Use::Verification => last.verification_ms = Some(now),
        }
        Some(Fingerprint::of(&digest))
    }

    /// Each accepted secret with its source and last uses, and the secret of the last delivery.
    pub fn report(&self) -> SecretsReport {
        let current = self.current();
        let usage = self.usage.lock().expect("secrets usage lock poisoned");
        let secrets = current
            .set
            .digests()
            .iter()
            .zip(&current.sources)
            .map(|(digest, source)| {
                let last = usage.each.get(digest).copied().unwrap_or_default();
                SecretUse {
                    fingerprint: Fingerprint::of(digest),
                    source: source.clone(),
                    last_delivery_ms: last.delivery_ms,
                    last_verification_ms: last.verification_ms,
                }
            })
            .collect();
        let last_delivery = usage.last_delivery.map(|(digest, at_ms)| LastDelivery {
            fingerprint: Fingerprint::of(&digest),
            at_ms,
            accepted: current.set.digests().contains(&digest),
        });
        SecretsReport {
            secrets,
            last_delivery,
        }
    }

    /// Reads the org's secrets again (the secrets file; the config and environment secrets are
    /// kept) and swaps them in whole. A file that cannot be read, or a reload that would leave
    /// no secret, is refused and the set in force stays. Logged either way, by fingerprint.
    /// `trigger` says what asked (`SIGHUP`, `admin API`).
    pub async fn reload(self: &Arc<Self>, trigger: &'static str) -> Result<Reloaded, SecretsError> {
        let this = self.clone();
        let outcome = tokio::task::spawn_blocking(move || this.swap())
            .await
            .expect("the secrets reload task ran (it cannot panic but on a poisoned lock)");
        let org = self.org.as_deref();
        match &outcome {
            Ok(reloaded) => tracing::info!(
                org,
                trigger,
                accepted = reloaded.accepted,
                added = ?reloaded.added,
                removed = ?reloaded.removed,
                "okta secrets reloaded"
            ),
            Err(err) => tracing::error!(
                org,
                trigger,
                error = %err,
                kept = self.current().set.len(),
                "okta secrets reload refused; the secrets in force stay accepted"
            ),
        }
        outcome
    }

    /// Reads the sources and replaces the set in force; forgets the uses of secrets dropped
    /// (but not which one the last delivery used).
    fn swap(&self) -> Result<Reloaded, SecretsError> {
        let _reloading = self.reloading.lock().expect("secrets reload lock poisoned");
        let next = Arc::new(Accepted::new(&self.sources.read()?));
        let previous = std::mem::replace(
            &mut *self.current.write().expect("secrets lock poisoned"),
            next.clone(),
        );
        self.usage
            .lock()
            .expect("secrets usage lock poisoned")
            .each
            .retain(|digest, _| next.set.digests().contains(digest));
        Ok(Reloaded {
            accepted: next.set.len(),
            added: fingerprints_missing_from(&next, &previous),
            removed: fingerprints_missing_from(&previous, &next),
        })
    }
}

impl Accepted {
    fn new(secrets: &[SourcedSecret]) -> Self {
        Self {
            set: SecretSet::new(secrets.iter().map(|s| &s.secret)),
            sources: secrets.iter().map(|s| s.source.clone()).collect(),
        }
    }
}

/// The fingerprints of the secrets of `these` that `others` does not hold.
fn fingerprints_missing_from(these: &Accepted, others: &Accepted) -> Vec<Fingerprint> {
    these
        .set
        .digests()
        .iter()
        .filter(|digest| !others.set.digests().contains(digest))
        .map(Fingerprint::of)
        .collect()
}

/// Unix milliseconds (this layer has no clock module below it).
fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |elapsed| elapsed.as_millis() as u64)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::secret::Secret;

    fn file_secrets(dir: &std::path::Path, lines: &str) -> HookSecrets {
        let path = dir.join("secrets");
        std::fs::write(&path, lines).unwrap();
        let sources = SecretSources::new(&[], &SecretSource::Config, Some(&path));
        let initial = sources.read().unwrap();
        HookSecrets::new(Some("acme".into()), sources, &initial)
    }

    #[tokio::test]
    async fn a_reload_adds_and_drops_file_secrets_and_keeps_the_config_ones() {
        let dir = tempfile::TempDir::new().unwrap();
        let path = dir.path().join("secrets");
        std::fs::write(&path, "secret-a\n").unwrap();
        let sources =
            SecretSources::new(&[Secret::new("fixed")], &SecretSource::Config, Some(&path));
        let secrets = Arc::new(HookSecrets::new(
            None,
            sources.clone(),
            &sources.read().unwrap(),
        ));
        assert!(!secrets.accepts(b"secret-b"));

        std::fs::write(&path, "secret-a\nsecret-b\n").unwrap();
        let reloaded = secrets.reload("test").await.unwrap();
        assert_eq!((reloaded.accepted, reloaded.added.len()), (3, 1));
        assert!(reloaded.removed.is_empty());
        for accepted in ["fixed", "secret-a", "secret-b"] {
            assert!(secrets.accepts(accepted.as_bytes()), "{accepted}");
        }

        std::fs::write(&path, "secret-b\n").unwrap();
        let reloaded = secrets.reload("test").await.unwrap();
        assert_eq!((reloaded.accepted, reloaded.removed.len()), (2, 1));
        assert!(!secrets.accepts(b"secret-a"));
        assert!(secrets.accepts(b"secret-b") && secrets.accepts(b"fixed"));
    }

    #[tokio::test]
    async fn a_reload_that_would_leave_no_secret_keeps_the_set_in_force() {
        let dir = tempfile::TempDir::new().unwrap();
        let secrets = Arc::new(file_secrets(dir.path(), "secret-a\n"));
        std::fs::write(dir.path().join("secrets"), "# emptied by mistake\n").unwrap();
        let err = secrets.reload("test").await.unwrap_err();
        assert!(matches!(err, SecretsError::NoSecret { .. }), "{err}");
        assert!(secrets.accepts(b"secret-a"));
        std::fs::remove_file(dir.path().join("secrets")).unwrap();
        let err = secrets.reload("test").await.unwrap_err();
        assert!(matches!(err, SecretsError::Unreadable { .. }), "{err}");
        assert!(secrets.accepts(b"secret-a"));
    }

    #[test]
    fn each_use_is_recorded_against_the_secret_that_matched() {
        let dir = tempfile::TempDir::new().unwrap();
        let secrets = file_secrets(dir.path(), "secret-a\nsecret-b\n");
        assert!(secrets.authenticate(b"secret-c", Use::Delivery).is_none());
        let report = secrets.report();
        assert!(report.last_delivery.is_none());
        assert!(report.secrets.iter().all(|s| s.last_delivery_ms.is_none()));

        let b = secrets.authenticate(b"secret-b", Use::Delivery).unwrap();
        let a = secrets
            .authenticate(b"secret-a", Use::Verification)
            .unwrap();
        assert_ne!(a, b);
        let report = secrets.report();
        let [first, second] = &report.secrets[..] else {
            panic!("{report:?}")
        };
        assert_eq!((first.fingerprint, second.fingerprint), (a, b));
        let path = dir.path().join("secrets");
        assert_eq!(first.source, SecretSource::File { path, line: 1 });
        assert!(first.last_delivery_ms.is_none() && first.last_verification_ms.is_some());
        assert!(second.last_delivery_ms.is_some() && second.last_verification_ms.is_none());
        let last = report.last_delivery.unwrap();
        assert_eq!((last.fingerprint, last.accepted), (b, true));
    }

    #[test]
    fn nothing_secret_shows_in_debug_or_the_report() {
        let dir = tempfile::TempDir::new().unwrap();
        let secrets = file_secrets(dir.path(), "hunter2-secret\n");
        secrets.authenticate(b"hunter2-secret", Use::Delivery);
        let shown = format!("{secrets:?} {:?}", secrets.report());
        assert!(!shown.contains("hunter2"), "{shown}");
    }
}
