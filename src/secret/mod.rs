//! Secrets: a wrapper that never prints itself, and the constant-time check of Okta's auth header.
//!
//! Okta authenticates each request with one static header whose value is a shared secret (there is no
//! signature). The check therefore has to be careful in two ways:
//! - it must not leak, through timing, how much of a guess was right, nor how long the secret is;
//! - the secret must never reach a log line, an error body, a metric or `Debug` output.
//!
//! [`SecretSet`] keys an HMAC-SHA256 with a random per-process key and stores only the digests of the
//! accepted secrets. A presented value is digested the same way and compared with every accepted digest
//! using [`subtle::ConstantTimeEq`] over the fixed 32 bytes, so neither the content nor the length of a
//! secret influences the time taken, and the loop visits every accepted secret (rotation means several).
//!
//! An org's hook holds its set in [`HookSecrets`], which reloads it from its [`SecretSources`]
//! (the secrets file read again) and records when each secret was last used, by [`Fingerprint`].

pub mod file_edit;
mod hook;
mod sources;

pub use hook::{HookSecrets, LastDelivery, Reloaded, SecretUse, SecretsReport, Use};
pub use sources::{SecretSource, SecretSources, SecretsError, SourcedSecret};

use std::sync::OnceLock;

use hmac::{Hmac, Mac};
use serde::{Deserialize, Deserializer, Serialize, Serializer};
use sha2::{Digest as _, Sha256};
use subtle::{Choice, ConditionallySelectable, ConstantTimeEq};

/// What a secret looks like wherever it would otherwise be printed.
pub const REDACTED: &str = "<redacted>";

/// A secret string that redacts itself in `Debug`, `Display` and serialized output.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(String);

impl Secret {
    /// Wraps a secret value.
    pub fn new(value: impl Into<String>) -> Self {
        Self(value.into())
    }

    /// The secret itself. Call only where the value is really needed (sending it, digesting it).
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Debug for Secret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(REDACTED)
    }
}

impl std::fmt::Display for Secret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(REDACTED)
    }
}

impl Serialize for Secret {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(REDACTED)
    }
}

impl<'de> Deserialize<'de> for Secret {
    /// A value written `${NAME}` is read from the environment variable `NAME`, so a config file
    /// can name every credential without holding it.
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let text = String::deserialize(deserializer)?;
        match text
            .strip_prefix("${")
            .and_then(|rest| rest.strip_suffix('}'))
        {
            Some(name) => std::env::var(name).map(Secret).map_err(|_| {
                serde::de::Error::custom(format!(
                    "the environment variable {name} (named by ${{{name}}}) is not set"
                ))
            }),
            None => Ok(Secret(text)),
        }
    }
}

type HmacSha256 = Hmac<Sha256>;

/// A secret's keyed digest: what [`SecretSet`] keeps and compares instead of the secret.
type Digest = [u8; 32];

/// The set of secrets currently accepted on the hook, kept only as keyed digests.
pub struct SecretSet {
    digests: Vec<Digest>,
}

impl std::fmt::Debug for SecretSet {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SecretSet")
            .field("accepted", &self.digests.len())
            .finish_non_exhaustive()
    }
}

impl SecretSet {
    /// Builds the set from every accepted secret (several during a rotation).
    pub fn new<'a>(secrets: impl IntoIterator<Item = &'a Secret>) -> Self {
        let digests = secrets
            .into_iter()
            .map(|secret| digest(secret.expose().as_bytes()))
            .collect();
        Self { digests }
    }

    /// How many secrets are accepted.
    pub fn len(&self) -> usize {
        self.digests.len()
    }

    /// True when no secret is configured: every request is then refused.
    pub fn is_empty(&self) -> bool {
        self.digests.is_empty()
    }

    /// True when `presented` equals one of the accepted secrets. Runs in time independent of the
    /// presented value and of which secret (if any) matched.
    pub fn accepts(&self, presented: &[u8]) -> bool {
        self.matching(presented).is_some()
    }

    /// The digest of the accepted secret `presented` equals, if any. The comparison visits every
    /// accepted digest and picks the match with [`ConditionallySelectable`], so its time depends
    /// neither on the presented value nor on which secret matched; only the answer branches.
    fn matching(&self, presented: &[u8]) -> Option<Digest> {
        let presented = digest(presented);
        let mut matched = Choice::from(0);
        let mut found = [0u8; 32];
        for accepted in &self.digests {
            let equal = accepted.ct_eq(&presented);
            for (byte, candidate) in found.iter_mut().zip(accepted) {
                byte.conditional_assign(candidate, equal);
            }
            matched |= equal;
        }
        bool::from(matched).then_some(found)
    }

    /// The accepted digests, in the order the secrets were given.
    fn digests(&self) -> &[Digest] {
        &self.digests
    }
}

/// The key every digest of this process is made with: random, drawn once, never stored. One key
/// per process (not per set) keeps a secret's digest and [`Fingerprint`] the same across reloads.
fn process_key() -> &'static [u8; 32] {
    static KEY: OnceLock<[u8; 32]> = OnceLock::new();
    KEY.get_or_init(rand::random)
}

fn digest(value: &[u8]) -> Digest {
    let mut mac = HmacSha256::new_from_slice(process_key()).expect("HMAC takes keys of any length");
    mac.update(value);
    mac.finalize().into_bytes().into()
}

/// A short name for an accepted secret that tells secrets apart without revealing them: the first
/// 4 bytes (8 hex digits) of SHA-256 over a label and the secret's [`Digest`].
///
/// Keyed by the process's random key through the digest, on purpose: a fingerprint of a plain
/// hash, or of an HMAC under a constant key, lets anyone who reads it (a ticket, a pasted
/// `GET /secrets` answer) test guesses offline, and a low-entropy secret falls to a dictionary.
/// The price: a fingerprint holds only within one run of one replica (compare sources across
/// replicas and restarts, not fingerprints).
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct Fingerprint([u8; 4]);

/// Keeps fingerprints apart from any other use of the digests.
const FINGERPRINT_LABEL: &[u8] = b"factorwatch okta secret fingerprint\0";

impl Fingerprint {
    /// The fingerprint of the secret whose digest is `digest`.
    fn of(digest: &Digest) -> Self {
        let hash = Sha256::new()
            .chain_update(FINGERPRINT_LABEL)
            .chain_update(digest)
            .finalize();
        Self([hash[0], hash[1], hash[2], hash[3]])
    }
}

impl std::fmt::Display for Fingerprint {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        self.0.iter().try_for_each(|byte| write!(f, "{byte:02x}"))
    }
}

impl std::fmt::Debug for Fingerprint {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        std::fmt::Display::fmt(self, f)
    }
}

impl Serialize for Fingerprint {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_str(self)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accepts_every_configured_secret_and_nothing_else() {
        let set = SecretSet::new(&[Secret::new("old-secret"), Secret::new("new-secret")]);
        assert!(set.accepts(b"old-secret"));
        assert!(set.accepts(b"new-secret"));
        assert!(!set.accepts(b"new-secre"));
        assert!(!set.accepts(b"new-secret "));
        assert!(!set.accepts(b""));
    }

    #[test]
    fn matching_names_the_secret_that_matched_and_fingerprints_tell_them_apart() {
        let set = SecretSet::new(&[Secret::new("old-secret"), Secret::new("new-secret")]);
        let [old, new] = set.digests() else {
            panic!("two digests")
        };
        assert_eq!(set.matching(b"new-secret"), Some(*new));
        assert_eq!(set.matching(b"old-secret"), Some(*old));
        assert_eq!(set.matching(b"other"), None);
        let fingerprint = Fingerprint::of(new);
        assert_ne!(fingerprint, Fingerprint::of(old));
        assert_eq!(fingerprint.to_string().len(), 8);
        // The same secret, digested again (a reload), keeps its fingerprint in this process.
        let again = SecretSet::new(&[Secret::new("new-secret")]);
        assert_eq!(Fingerprint::of(&again.digests()[0]), fingerprint);
    }

    #[test]
    fn empty_set_refuses_everything() {
        let set = SecretSet::new(&[]);
        assert!(set.is_empty());
        assert!(!set.accepts(b""));
    }

    #[test]
    fn secrets_can_come_from_the_environment() {
        let from_env: Secret = serde_json::from_str("\"${PATH}\"").unwrap();
        assert_eq!(from_env.expose(), std::env::var("PATH").unwrap());
        let err =
            serde_json::from_str::<Secret>("\"${FACTORWATCH_SURELY_UNSET_VAR}\"").unwrap_err();
        assert!(
            err.to_string().contains("FACTORWATCH_SURELY_UNSET_VAR"),
            "{err}"
        );
        let literal: Secret = serde_json::from_str("\"$notavar\"").unwrap();
        assert_eq!(literal.expose(), "$notavar");
    }

    #[test]
    fn secret_never_prints_itself() {
        let secret = Secret::new("hunter2");
        assert_eq!(format!("{secret:?} {secret}"), "<redacted> <redacted>");
        assert_eq!(serde_json::to_string(&secret).unwrap(), "\"<redacted>\"");
        let set = SecretSet::new([&secret]);
        assert!(!format!("{set:?}").contains("hunter2"));
    }
}
