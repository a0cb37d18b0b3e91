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

use hmac::{Hmac, Mac};
use serde::{Deserialize, Deserializer, Serialize, Serializer};
use sha2::Sha256;
use subtle::{Choice, ConstantTimeEq};

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

/// The set of secrets currently accepted on the hook, kept only as keyed digests.
pub struct SecretSet {
    key: [u8; 32],
    digests: Vec<[u8; 32]>,
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
        let key: [u8; 32] = rand::random();
        let digests = secrets
            .into_iter()
            .map(|secret| digest(&key, secret.expose().as_bytes()))
            .collect();
        Self { key, digests }
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
        let presented = digest(&self.key, presented);
        let mut matched = Choice::from(0);
        for accepted in &self.digests {
            matched |= accepted.ct_eq(&presented);
        }
        matched.into()
    }
}

fn digest(key: &[u8; 32], value: &[u8]) -> [u8; 32] {
    let mut mac = HmacSha256::new_from_slice(key).expect("HMAC takes keys of any length");
    mac.update(value);
    mac.finalize().into_bytes().into()
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
