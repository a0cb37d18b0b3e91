//! Shared Signals (SSF) transmitter side: factorwatch tells Okta about a user through a signed
//! Security Event Token (SET, RFC 8417) pushed to Okta's SSF receiver.
//!
//! Okta verifies a SET against the JWKS of a registered "security events provider", so this
//! module holds the three things that registration and every push need: the RSA key SETs are
//! signed with ([`SetSigner`]), the public half it publishes ([`SetSigner::jwks`]) with the
//! transmitter metadata that points at it ([`ssf_configuration`]), and the claims of the two
//! events a response sends ([`SetClaims`]). The shapes follow Okta's Management API spec
//! (`SecurityEventTokenRequestJwtHeader`, `SecurityEventTokenRequestJwtBody`,
//! `CaepSessionRevokedEvent`, `OktaUserRiskChangeEvent`, `SecurityEventSubject`) and SSF 1.0.
//!
//! The key is parsed and checked once, with aws-lc-rs, which also signs: one parse gives the size
//! check, the public modulus and exponent for the JWKS, and the signing key, so a bad key is
//! refused at load rather than at the first alert.

use std::path::Path;

use aws_lc_rs::rand::SystemRandom;
use aws_lc_rs::rsa::KeyPair;
use aws_lc_rs::signature::{KeyPair as _, RSA_PKCS1_SHA256};
use base64::Engine as _;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use serde::Serialize;
use serde_json::{Map, Value, json};
use sha2::{Digest as _, Sha256};

/// The CAEP event that tells Okta to end the subject's sessions.
pub const EVENT_SESSION_REVOKED: &str =
    "https://schemas.openid.net/secevent/caep/event-type/session-revoked";

/// Okta's event that sets the subject's user risk level.
pub const EVENT_USER_RISK_CHANGE: &str =
    "https://schemas.okta.com/secevent/okta/event-type/user-risk-change";

/// The `Content-Type` of a pushed SET (RFC 8417 section 7.2), as Okta's receiver requires.
pub const SET_MEDIA_TYPE: &str = "application/secevent+jwt";

/// The push delivery method (RFC 8935), the only one Okta's receiver supports.
pub const DELIVERY_PUSH: &str = "urn:ietf:rfc:8935";

/// The risk levels `user-risk-change` accepts for `current_level` and `previous_level`
/// (`OktaUserRiskChangeEvent`): anything else Okta answers with `invalid_request`.
pub const RISK_LEVELS: [&str; 5] = ["low", "medium", "high", "secure", "none"];

/// The SSF version the metadata claims: the final 1.0 specification.
const SPEC_VERSION: &str = "1_0";

/// The JOSE algorithm: Okta's receiver verifies RS256 only.
const ALG: &str = "RS256";

/// The explicit SET type SSF requires in the header.
const SET_TYP: &str = "secevent+jwt";

/// The smallest RSA key RS256 allows (RFC 7518 section 3.3).
const MIN_RSA_BITS: usize = 2048;

/// What to run for a key factorwatch accepts; every key error ends with it.
const GENERATE: &str = "generate one with `openssl genpkey -algorithm RSA -pkeyopt \
                        rsa_keygen_bits:2048 -out ssf.pem`";

/// Why a SET key could not be loaded or a SET signed. No message holds key material.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SsfError {
    /// The key file could not be read.
    #[error(
        "SSF signing key {path}: cannot read it ({reason}); check the path and its permissions"
    )]
    Read {
        /// The file, as configured.
        path: String,
        /// The I/O error.
        reason: String,
    },
    /// The file holds no key factorwatch can sign SETs with.
    #[error("SSF signing key{}: {problem}", located(.path))]
    Key {
        /// The file, when the key came from one.
        path: Option<String>,
        /// What is wrong with it.
        problem: KeyProblem,
    },
    /// Signing failed (a bug or a broken crypto library rather than a bad key, which load
    /// refuses).
    #[error("cannot sign the Security Event Token: {0}; report this as a bug")]
    Sign(String),
}

/// What is wrong with a SET signing key, each with what to do about it.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum KeyProblem {
    /// No PEM private key block; the labels of the PEM blocks that were there.
    #[error("no PEM private key in it{}; {GENERATE}", found_labels(.0))]
    NoPrivateKey(Vec<String>),
    /// A passphrase-protected key.
    #[error(
        "the key is encrypted and factorwatch cannot ask for a passphrase: decrypt it with \
         `openssl pkey -in encrypted.pem -out ssf.pem` (and keep that file readable only by \
         factorwatch)"
    )]
    Encrypted,
    /// A key of another kind (`what` names it: EC, Ed25519...).
    #[error("{0} key, but Okta verifies Security Event Tokens with RS256 (RSA) only; {GENERATE}")]
    NotRsa(&'static str),
    /// An RSA key under 2048 bits.
    #[error("an RSA key under {MIN_RSA_BITS} bits, too small for RS256; {GENERATE}")]
    TooSmall,
    /// An RSA key over 8192 bits, which aws-lc-rs refuses to sign with.
    #[error("an RSA key over 8192 bits, more than the signer supports; {GENERATE}")]
    TooLarge,
    /// Not a well-formed key (`0` says where it broke, never what it held).
    #[error("not a valid RSA private key ({0}); {GENERATE}")]
    Invalid(&'static str),
}

/// ` <path>` for an error about a file, nothing for a key given in memory.
fn located(path: &Option<String>) -> String {
    path.as_deref()
        .map(|path| format!(" {path}"))
        .unwrap_or_default()
}

/// ` (found: A, B)` when the file held other PEM blocks, so the operator sees what they gave.
fn found_labels(labels: &[String]) -> String {
    if labels.is_empty() {
        String::new()
    } else {
        format!(" (found: {})", labels.join(", "))
    }
}

/// The RSA key factorwatch signs Security Event Tokens with, and its public half as a JWK.
pub struct SetSigner {
    key: KeyPair,
    kid: String,
    /// base64url of the public modulus, big-endian without leading zeros (RFC 7518 6.3.1.1).
    n: String,
    /// base64url of the public exponent, same encoding.
    e: String,
}

impl std::fmt::Debug for SetSigner {
    /// The kid and algorithm only: enough to match a log line to the JWKS, nothing of the key.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SetSigner")
            .field("kid", &self.kid)
            .field("alg", &ALG)
            .finish_non_exhaustive()
    }
}

impl SetSigner {
    /// Reads the unencrypted RSA private key PEM at `path` (PKCS#1 `RSA PRIVATE KEY` or PKCS#8
    /// `PRIVATE KEY`, at least 2048 bits). `kid` names the key in the JWKS and SET headers; when
    /// absent or blank it is the key's RFC 7638 thumbprint, stable across restarts and rotations.
    pub fn load(path: &Path, kid: Option<String>) -> Result<Self, SsfError> {
        let pem = std::fs::read(path).map_err(|err| SsfError::Read {
            path: path.display().to_string(),
            reason: err.to_string(),
        })?;
        Self::from_pem(&pem, kid).map_err(|err| match err {
            SsfError::Key { problem, .. } => SsfError::Key {
                path: Some(path.display().to_string()),
                problem,
            },
            other => other,
        })
    }

    /// The key in `pem` (see [`SetSigner::load`]); for tests and keys not kept in a file.
    pub fn from_pem(pem: &[u8], kid: Option<String>) -> Result<Self, SsfError> {
        let key = parse_private_key(pem).map_err(|problem| SsfError::Key {
            path: None,
            problem,
        })?;
        let public = key.public_key();
        let n = URL_SAFE_NO_PAD.encode(public.modulus().big_endian_without_leading_zero());
        let e = URL_SAFE_NO_PAD.encode(public.exponent().big_endian_without_leading_zero());
        let kid = kid
            .filter(|kid| !kid.trim().is_empty())
            .unwrap_or_else(|| jwk_thumbprint(&n, &e));
        Ok(Self { key, kid, n, e })
    }

    /// The key id SETs carry in their header and the JWKS publishes.
    pub fn kid(&self) -> &str {
        &self.kid
    }

    /// The JWKS to serve at the metadata's `jwks_uri`: this key's public half only.
    pub fn jwks(&self) -> Value {
        json!({
            "keys": [{
                "kty": "RSA",
                "use": "sig",
                "alg": ALG,
                "kid": self.kid,
                "n": self.n,
                "e": self.e,
            }]
        })
    }

    /// `claims` as a compact JWS, header `{"alg":"RS256","kid":..,"typ":"secevent+jwt"}`
    /// (`SecurityEventTokenRequestJwtHeader`), ready to push with [`SET_MEDIA_TYPE`].
    pub fn sign(&self, claims: &SetClaims) -> Result<String, SsfError> {
        let header = SetHeader {
            alg: ALG,
            kid: &self.kid,
            typ: SET_TYP,
        };
        let signing_input = format!("{}.{}", encode_part(&header)?, encode_part(claims)?);
        let signature = self.rs256(signing_input.as_bytes())?;
        Ok(format!(
            "{signing_input}.{}",
            URL_SAFE_NO_PAD.encode(signature)
        ))
    }

    /// RSASSA-PKCS1-v1_5 with SHA-256 over `message` (RFC 7518 section 3.3).
    fn rs256(&self, message: &[u8]) -> Result<Vec<u8>, SsfError> {
        let mut signature = vec![0; self.key.public_modulus_len()];
        self.key
            .sign(
                &RSA_PKCS1_SHA256,
                &SystemRandom::new(),
                message,
                &mut signature,
            )
            .map_err(|_| SsfError::Sign("the RSA signature failed".into()))?;
        Ok(signature)
    }
}

/// The JOSE header of a SET, in the member order Okta's spec lists.
#[derive(Serialize)]
struct SetHeader<'a> {
    alg: &'a str,
    kid: &'a str,
    typ: &'a str,
}

/// One JWS part: base64url (no padding) of the JSON of `value`.
fn encode_part(value: &impl Serialize) -> Result<String, SsfError> {
    let json = serde_json::to_vec(value)
        .map_err(|err| SsfError::Sign(format!("cannot serialize the token: {err}")))?;
    Ok(URL_SAFE_NO_PAD.encode(json))
}

/// The RFC 7638 thumbprint of the RSA public JWK with base64url members `n` and `e`: SHA-256
/// of the required members in lexicographic order, without whitespace, base64url-encoded.
/// base64url never needs JSON escaping, so the canonical form is written out directly.
fn jwk_thumbprint(n: &str, e: &str) -> String {
    let canonical = format!(r#"{{"e":"{e}","kty":"RSA","n":"{n}"}}"#);
    URL_SAFE_NO_PAD.encode(Sha256::digest(canonical.as_bytes()))
}

/// The RSA key in the first PEM private key block of `pem`.
fn parse_private_key(pem: &[u8]) -> Result<KeyPair, KeyProblem> {
    let text = std::str::from_utf8(pem).map_err(|_| KeyProblem::NoPrivateKey(Vec::new()))?;
    let blocks = pem_blocks(text);
    let Some(block) = blocks.iter().find(|block| block.is_private_key()) else {
        let labels = blocks.into_iter().map(|block| block.label).collect();
        return Err(KeyProblem::NoPrivateKey(labels));
    };
    if block.encrypted {
        return Err(KeyProblem::Encrypted);
    }
    match block.label.as_str() {
        "RSA PRIVATE KEY" => {
            let der = block.der()?;
            rsa_key(KeyPair::from_der(&der), &der)
        }
        "PRIVATE KEY" => {
            let der = block.der()?;
            rsa_key(KeyPair::from_pkcs8(&der), &der)
        }
        "ENCRYPTED PRIVATE KEY" => Err(KeyProblem::Encrypted),
        "EC PRIVATE KEY" => Err(KeyProblem::NotRsa("an EC")),
        "OPENSSH PRIVATE KEY" => Err(KeyProblem::NotRsa("an OpenSSH-format")),
        _ => Err(KeyProblem::NotRsa("a non-RSA")),
    }
}

/// aws-lc-rs's verdict on a key, as what the operator should do about it. `der` (PKCS#8) names
/// the algorithm when the key is not RSA.
fn rsa_key(
    parsed: Result<KeyPair, aws_lc_rs::error::KeyRejected>,
    der: &[u8],
) -> Result<KeyPair, KeyProblem> {
    parsed.map_err(|rejected| match rejected.description_() {
        "TooSmall" => KeyProblem::TooSmall,
        "TooLarge" => KeyProblem::TooLarge,
        "WrongAlgorithm" | "Unspecified" => KeyProblem::NotRsa(pkcs8_algorithm(der)),
        _ => KeyProblem::Invalid("aws-lc-rs rejects its encoding"),
    })
}

/// What kind of key a non-RSA PKCS#8 holds, from its algorithm OID, for the error message.
fn pkcs8_algorithm(der: &[u8]) -> &'static str {
    // DER of the OIDs id-ecPublicKey (1.2.840.10045.2.1), Ed25519 (1.3.101.112) and Ed448.
    const EC: &[u8] = &[0x06, 0x07, 0x2a, 0x86, 0x48, 0xce, 0x3d, 0x02, 0x01];
    const ED25519: &[u8] = &[0x06, 0x03, 0x2b, 0x65, 0x70];
    const ED448: &[u8] = &[0x06, 0x03, 0x2b, 0x65, 0x71];
    let holds = |oid: &[u8]| der.windows(oid.len()).any(|window| window == oid);
    if holds(EC) {
        "an EC"
    } else if holds(ED25519) {
        "an Ed25519"
    } else if holds(ED448) {
        "an Ed448"
    } else {
        "a non-RSA"
    }
}

/// One `-----BEGIN <label>-----` block of a PEM file.
struct PemBlock {
    label: String,
    /// The base64 body, whitespace removed.
    body: String,
    /// Legacy OpenSSL encryption (`Proc-Type: 4,ENCRYPTED` header in a PKCS#1 block).
    encrypted: bool,
}

impl PemBlock {
    fn is_private_key(&self) -> bool {
        self.label.ends_with("PRIVATE KEY")
    }

    /// The block's DER bytes.
    fn der(&self) -> Result<Vec<u8>, KeyProblem> {
        STANDARD
            .decode(&self.body)
            .map_err(|_| KeyProblem::Invalid("its PEM body is not valid base64"))
    }
}

/// Every complete PEM block in `text`, in order (a file may hold parameters or a certificate
/// around the key). Text outside blocks is ignored, as OpenSSL does.
fn pem_blocks(text: &str) -> Vec<PemBlock> {
    let mut blocks = Vec::new();
    let mut open: Option<PemBlock> = None;
    for line in text.lines().map(str::trim) {
        match open.take() {
            None => {
                open = pem_label(line, "BEGIN").map(|label| PemBlock {
                    label: label.to_owned(),
                    body: String::new(),
                    encrypted: false,
                });
            }
            Some(block) if pem_label(line, "END") == Some(block.label.as_str()) => {
                blocks.push(block);
            }
            Some(mut block) => {
                if let Some((name, value)) = line.split_once(':') {
                    // An RFC 1421 header line, not base64.
                    block.encrypted |= name.trim() == "Proc-Type" && value.contains("ENCRYPTED");
                } else {
                    block
                        .body
                        .extend(line.chars().filter(|c| !c.is_whitespace()));
                }
                open = Some(block);
            }
        }
    }
    blocks
}

/// The label of a `-----<marker> <label>-----` line.
fn pem_label<'a>(line: &'a str, marker: &str) -> Option<&'a str> {
    line.strip_prefix("-----")?
        .strip_suffix("-----")?
        .strip_prefix(marker)?
        .strip_prefix(' ')
}

/// The subject of an event (`SecurityEventSubject`): whom Okta applies it to.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct SetSubject {
    user: SubjectId,
}

/// An SSF subject identifier (RFC 9493), tagged by `format`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "format", rename_all = "snake_case")]
enum SubjectId {
    Email { email: String },
}

impl SetSubject {
    /// The Okta user with primary email `email`: `{"user":{"format":"email","email":..}}`.
    /// Okta accepts an unknown email and silently ignores the event, so the caller should
    /// pass the user's Okta login email, not an alias.
    pub fn email(email: impl Into<String>) -> Self {
        Self {
            user: SubjectId::Email {
                email: email.into(),
            },
        }
    }
}

/// The claims of a SET (`SecurityEventTokenRequestJwtBody`): exactly `iss`, `aud`, `iat`,
/// `jti` and `events`. SSF forbids `sub` and `exp`, and Okta's schema lists no `txn`.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct SetClaims {
    iss: String,
    aud: String,
    iat: i64,
    jti: String,
    events: Map<String, Value>,
}

impl SetClaims {
    /// A CAEP `session-revoked` event (`CaepSessionRevokedEvent`): Okta ends `subject`'s
    /// sessions. `issuer` is the registered provider's issuer, `audience` the Okta org URL,
    /// `event_timestamp` (Unix seconds) when factorwatch decided, `reason_admin` the reason
    /// shown to admins in Okta's System Log.
    pub fn session_revoked(
        issuer: &str,
        audience: &str,
        subject: &SetSubject,
        event_timestamp: i64,
        reason_admin: &str,
    ) -> Self {
        let event = json!({
            "subject": subject,
            "event_timestamp": event_timestamp,
            "initiating_entity": "policy",
            "reason_admin": { "en": reason_admin },
        });
        Self::new(issuer, audience, EVENT_SESSION_REVOKED, event)
    }

    /// Okta's `user-risk-change` event (`OktaUserRiskChangeEvent`): `subject`'s risk goes from
    /// `previous` to `current`, each one of [`RISK_LEVELS`] (lower-cased here, since the Users
    /// risk API spells them upper-case). Other parameters as in [`SetClaims::session_revoked`].
    pub fn user_risk_change(
        issuer: &str,
        audience: &str,
        subject: &SetSubject,
        event_timestamp: i64,
        previous: &str,
        current: &str,
        reason_admin: &str,
    ) -> Self {
        let event = json!({
            "subject": subject,
            "event_timestamp": event_timestamp,
            "current_level": current.to_ascii_lowercase(),
            "previous_level": previous.to_ascii_lowercase(),
            "initiating_entity": "policy",
            "reason_admin": { "en": reason_admin },
        });
        Self::new(issuer, audience, EVENT_USER_RISK_CHANGE, event)
    }

    /// One event of `event_type`, issued now, with a fresh `jti`.
    fn new(issuer: &str, audience: &str, event_type: &str, event: Value) -> Self {
        let mut events = Map::new();
        events.insert(event_type.to_owned(), event);
        Self {
            iss: issuer.to_owned(),
            aud: audience.to_owned(),
            iat: unix_now_s(),
            jti: uuid::Uuid::new_v4().to_string(),
            events,
        }
    }

    /// The same SET with `jti` instead of a random one: a retry that reuses its `jti` is
    /// ignored by Okta, so a response retried after a lost answer acts once.
    pub fn with_jti(mut self, jti: String) -> Self {
        self.jti = jti;
        self
    }

    /// The same SET issued at `iat` (Unix seconds) rather than now.
    pub fn with_iat(mut self, iat: i64) -> Self {
        self.iat = iat;
        self
    }

    /// The token id, for logs and the response's record.
    pub fn jti(&self) -> &str {
        &self.jti
    }
}

/// Seconds since the Unix epoch, now.
fn unix_now_s() -> i64 {
    i64::try_from(crate::clock::now_ms() / 1000).unwrap_or(i64::MAX)
}

/// The SSF Transmitter Configuration Metadata (SSF 1.0 section 7.1) to serve at
/// `/.well-known/ssf-configuration` (inserted after the host when `issuer` has a path). Okta's
/// provider registration reads `issuer` and `jwks_uri` from it; `issuer` must be an https URL
/// without query or fragment and equal to every SET's `iss`; `jwks_uri` must be https. No
/// stream management endpoints: Okta's receiver is configured by registration, not streams.
pub fn ssf_configuration(issuer: &str, jwks_uri: &str) -> Value {
    json!({
        "spec_version": SPEC_VERSION,
        "issuer": issuer,
        "jwks_uri": jwks_uri,
        "delivery_methods_supported": [DELIVERY_PUSH],
    })
}

#[cfg(test)]
mod tests {
    use aws_lc_rs::encoding::{AsDer, Pkcs8V1Der};
    use aws_lc_rs::rsa::KeySize;
    use aws_lc_rs::signature::{ECDSA_P256_SHA256_FIXED_SIGNING, EcdsaKeyPair};
    use jsonwebtoken::jwk::JwkSet;
    use jsonwebtoken::{Algorithm, DecodingKey, Validation};

    use super::*;

    const ISSUER: &str = "https://factorwatch.example.com";
    const OKTA: &str = "https://acme.okta.com";
    const OPENSSL: &str =
        "openssl genpkey -algorithm RSA -pkeyopt rsa_keygen_bits:2048 -out ssf.pem";

    /// A 1024-bit RSA key (PKCS#8 DER, base64), made once with `openssl genpkey -algorithm RSA
    /// -pkeyopt rsa_keygen_bits:1024`: aws-lc-rs will not generate one this small.
    const RSA_1024_PKCS8: &str = "MIICdwIBADANBgkqhkiG9w0BAQEFAASCAmEwggJdAgEAAoGBALXdqobEKpFxgxeEE63bVm9U4JMMpJE9eCgw5BUPfn/gxI6SE11pzYfrYn4fQPp1panS76356BARFPN3m7Tca4QZAIQ4CTc5Z5IbAq+zf7FGPWXqCNIRpJGtXHwEkYi1HcCxn2YW4WwF0JJ78xgygCOhMRqeSqEzRDl53QMHBGINAgMBAAECgYEAioMLL50UNrXXe/+R5WYaTKy+ZgDJDf1dGG80J34ngEm2KkfDC/BbI1v5Jcmz+Y3E4LTQ6xZc0m/QHyZHptYB481EtCq09EYqF+bgPJbARRdnDzmizAeHDC+nGmIupTkJoxm/3mSl4Y+69P1WgZnPbBNjmgF7SodX3nIbfLNGbhkCQQDxrFsLuT0KFcMjPYlplRAd89EcQhUqOwM9zTH+742NpsmsrFBuGVoycLQEq1NfRHSz8LvghEW+R12GxXbR0ur3AkEAwKWrxCPqacFmqcUxfspO+Y2GUQMyu1molDQjuT/BxkeFydHMPiGjZ3Yf2L2lFhuT1Qjo/P8NGxkUO79Japa2GwJAEHgAVFIxOKi2/YXKAWnpCUF+NIDEVHZlCCcdixPj/40oHR449OfBX8KSYecS7WEK2uBCzU/2OLtAQljeefn3jQJAD1LeR9rHgaQFo4lw93HmOEl+nqEPfwGRvEAte0XMBxaXWMdcZLDOS6OEwvvKzuhgqPhtd/pds4MaLep4T4cvcwJBAJMgspkvo+eR0dMMPewNs/HWeVD6YgpJHU8sR8QcHGlRGzgqzksrQv8tWH32Bk0fVVgGjhCgAWxapUREci6GthM=";

    /// `der` as a PEM block labelled `label`, 64 columns.
    fn pem(label: &str, der: &[u8]) -> String {
        let body = STANDARD.encode(der);
        let lines: Vec<&str> = body
            .as_bytes()
            .chunks(64)
            .map(|chunk| std::str::from_utf8(chunk).expect("base64 is ASCII"))
            .collect();
        format!(
            "-----BEGIN {label}-----\n{}\n-----END {label}-----\n",
            lines.join("\n")
        )
    }

    /// A new RSA-2048 key as PKCS#8 DER.
    fn rsa_pkcs8() -> Vec<u8> {
        let pair = KeyPair::generate(KeySize::Rsa2048).expect("RSA key generation");
        AsDer::<Pkcs8V1Der>::as_der(&pair)
            .expect("PKCS#8")
            .as_ref()
            .to_vec()
    }

    /// The PKCS#1 `RSAPrivateKey` inside an RSA-2048 PKCS#8 `PrivateKeyInfo`: after the outer
    /// sequence header (4 bytes), the version (3), the algorithm identifier (15) and the octet
    /// string header (4).
    fn pkcs1_of(pkcs8: &[u8]) -> &[u8] {
        assert_eq!(
            &pkcs8[22..24],
            [0x04, 0x82],
            "an octet string, 2 length bytes"
        );
        &pkcs8[26..]
    }

    fn new_signer() -> SetSigner {
        SetSigner::from_pem(pem("PRIVATE KEY", &rsa_pkcs8()).as_bytes(), None)
            .expect("an RSA-2048 PKCS#8 key")
    }

    fn alice() -> SetSubject {
        SetSubject::email("alice@example.com")
    }

    /// The claims of `jwt` once its signature checks out against the key `jwks` publishes
    /// under the header's kid, as any JOSE library at Okta would check it.
    fn verified_with_jwks(jwt: &str, jwks: &Value) -> Value {
        let header = jsonwebtoken::decode_header(jwt).expect("a JOSE header");
        let set: JwkSet = serde_json::from_value(jwks.clone()).expect("a JWKS");
        let kid = header.kid.as_deref().expect("a kid");
        let jwk = set.find(kid).expect("the kid is in the JWKS");
        let key = DecodingKey::from_jwk(jwk).expect("an RSA public key");
        let mut validation = Validation::new(Algorithm::RS256);
        validation.validate_exp = false;
        validation.required_spec_claims = ["iss", "aud"].map(String::from).into();
        validation.set_issuer(&[ISSUER]);
        validation.set_audience(&[OKTA]);
        jsonwebtoken::decode::<Value>(jwt, &key, &validation)
            .expect("a valid RS256 signature")
            .claims
    }

    /// The JOSE header of `jwt` as raw JSON, to see exactly which members it has.
    fn raw_header(jwt: &str) -> Value {
        let header = jwt.split('.').next().expect("a header");
        serde_json::from_slice(&URL_SAFE_NO_PAD.decode(header).expect("base64url")).expect("JSON")
    }

    #[test]
    fn a_signed_set_verifies_against_the_published_jwks() {
        let signer = new_signer();
        let claims = SetClaims::session_revoked(ISSUER, OKTA, &alice(), 1_702_448_550, "reset");
        let jwt = signer.sign(&claims).expect("signed");

        let verified = verified_with_jwks(&jwt, &signer.jwks());
        assert_eq!(verified, serde_json::to_value(&claims).expect("JSON"));
        assert!(verified.get("exp").is_none(), "SSF forbids exp");
        assert!(verified.get("sub").is_none(), "SSF forbids sub");
        assert_eq!(
            raw_header(&jwt),
            json!({"alg": "RS256", "kid": signer.kid(), "typ": "secevent+jwt"})
        );

        let other = new_signer().jwks();
        let set: JwkSet = serde_json::from_value(other).expect("a JWKS");
        let key = DecodingKey::from_jwk(&set.keys[0]).expect("a key");
        let mut validation = Validation::new(Algorithm::RS256);
        validation.validate_exp = false;
        validation.validate_aud = false;
        validation.required_spec_claims.clear();
        assert!(
            jsonwebtoken::decode::<Value>(&jwt, &key, &validation).is_err(),
            "another key's JWKS does not verify it"
        );
    }

    #[test]
    fn the_jwks_publishes_the_public_half_only() {
        let signer = SetSigner::from_pem(
            pem("PRIVATE KEY", &rsa_pkcs8()).as_bytes(),
            Some("ssf-2026".into()),
        )
        .expect("a key");
        let jwks = signer.jwks();
        let keys = jwks["keys"].as_array().expect("keys");
        assert_eq!(keys.len(), 1);
        let jwk = keys[0].as_object().expect("a JWK");
        let mut members: Vec<&str> = jwk.keys().map(String::as_str).collect();
        members.sort_unstable();
        assert_eq!(members, ["alg", "e", "kid", "kty", "n", "use"]);
        assert_eq!(jwk["kty"], "RSA");
        assert_eq!(jwk["use"], "sig");
        assert_eq!(jwk["alg"], "RS256");
        assert_eq!(jwk["kid"], "ssf-2026");
        assert_eq!(signer.kid(), "ssf-2026");
        assert_eq!(jwk["e"], "AQAB", "65537, big-endian, no leading zero");
        let n = jwk["n"].as_str().expect("n");
        assert!(!n.contains('='), "no padding");
        let n = URL_SAFE_NO_PAD.decode(n).expect("base64url");
        assert_eq!(n.len(), 256, "2048 bits, no leading zero byte");
        assert_ne!(n[0], 0);
    }

    #[test]
    fn the_default_kid_is_the_rfc7638_thumbprint() {
        // RFC 7638 section 3.1: the RFC 7517 appendix A.1 key and its thumbprint.
        let n = "0vx7agoebGcQSuuPiLJXZptN9nndrQmbXEps2aiAFbWhM78LhWx4cbbfAAtVT86zwu1RK7aPFFxuhDR1L6\
                 tSoc_BJECPebWKRXjBZCiFV4n3oknjhMstn64tZ_2W-5JsGY4Hc5n9yBXArwl93lqt7_RN5w6Cf0h4Qy\
                 Q5v-65YGjQR0_FDW2QvzqY368QQMicAtaSqzs8KJZgnYb9c7d0zgdAZHzu6qMQvRL5hajrn1n91CbOpb\
                 ISD08qNLyrdkt-bFTWhAI4vMQFh6WeZu0fM4lFd2NcRwr3XPksINHaQ-G_xBniIqbw0Ls1jF44-csFCu\
                 r-kEgU8awapJzKnqDKgw";
        assert_eq!(
            jwk_thumbprint(n, "AQAB"),
            "NzbLsXh8uDCcd-6MNwXF4W_7noWXFZAfHkxZsRGC9Xs"
        );

        let signer = new_signer();
        let jwks = signer.jwks();
        let jwk = &jwks["keys"][0];
        let expected = jwk_thumbprint(jwk["n"].as_str().expect("n"), jwk["e"].as_str().expect("e"));
        assert_eq!(signer.kid(), expected);
        assert_eq!(signer.kid().len(), 43, "base64url of 32 bytes");
    }

    #[test]
    fn pkcs1_and_pkcs8_files_of_one_key_load_as_the_same_key() {
        let pkcs8 = rsa_pkcs8();
        let dir = tempfile::tempdir().expect("a temp dir");
        let pkcs8_path = dir.path().join("ssf-pkcs8.pem");
        let pkcs1_path = dir.path().join("ssf-pkcs1.pem");
        std::fs::write(&pkcs8_path, pem("PRIVATE KEY", &pkcs8)).expect("written");
        // A certificate before the key, as some bundles have: skipped.
        let bundle = format!(
            "{}{}",
            pem("CERTIFICATE", b"not parsed"),
            pem("RSA PRIVATE KEY", pkcs1_of(&pkcs8))
        );
        std::fs::write(&pkcs1_path, bundle).expect("written");

        let from_pkcs8 = SetSigner::load(&pkcs8_path, None).expect("PKCS#8 loads");
        let from_pkcs1 = SetSigner::load(&pkcs1_path, Some("  ".into())).expect("PKCS#1 loads");
        assert_eq!(from_pkcs8.kid(), from_pkcs1.kid(), "blank kid = thumbprint");
        assert_eq!(from_pkcs8.jwks(), from_pkcs1.jwks());

        let claims = SetClaims::session_revoked(ISSUER, OKTA, &alice(), 1, "r");
        let jwt = from_pkcs1.sign(&claims).expect("signed");
        verified_with_jwks(&jwt, &from_pkcs8.jwks());
    }

    #[test]
    fn session_revoked_claims_follow_okta_schema() {
        let claims = SetClaims::session_revoked(
            ISSUER,
            OKTA,
            &alice(),
            1_702_448_550,
            "MFA factor reset by help desk",
        )
        .with_jti("5c2b8b9e-0f5e-5a8c-9d1e-1f2a3b4c5d6e".into())
        .with_iat(1_702_448_551);
        assert_eq!(
            serde_json::to_value(&claims).expect("JSON"),
            json!({
                "iss": "https://factorwatch.example.com",
                "aud": "https://acme.okta.com",
                "iat": 1_702_448_551,
                "jti": "5c2b8b9e-0f5e-5a8c-9d1e-1f2a3b4c5d6e",
                "events": {
                    "https://schemas.openid.net/secevent/caep/event-type/session-revoked": {
                        "subject": {
                            "user": {"format": "email", "email": "alice@example.com"}
                        },
                        "event_timestamp": 1_702_448_550,
                        "initiating_entity": "policy",
                        "reason_admin": {"en": "MFA factor reset by help desk"}
                    }
                }
            })
        );
    }

    #[test]
    fn user_risk_change_claims_follow_okta_schema() {
        let claims = SetClaims::user_risk_change(
            ISSUER,
            OKTA,
            &alice(),
            1_702_448_550,
            "LOW",
            "high",
            "MFA factor reset by help desk",
        )
        .with_jti("jti-1".into())
        .with_iat(1_702_448_550);
        assert_eq!(
            serde_json::to_value(&claims).expect("JSON"),
            json!({
                "iss": "https://factorwatch.example.com",
                "aud": "https://acme.okta.com",
                "iat": 1_702_448_550,
                "jti": "jti-1",
                "events": {
                    "https://schemas.okta.com/secevent/okta/event-type/user-risk-change": {
                        "subject": {
                            "user": {"format": "email", "email": "alice@example.com"}
                        },
                        "event_timestamp": 1_702_448_550,
                        "current_level": "high",
                        "previous_level": "low",
                        "initiating_entity": "policy",
                        "reason_admin": {"en": "MFA factor reset by help desk"}
                    }
                }
            })
        );
        assert!(RISK_LEVELS.contains(&"secure"));
    }

    #[test]
    fn the_jti_is_a_fresh_uuid_v4_unless_the_caller_fixes_it() {
        let first = SetClaims::session_revoked(ISSUER, OKTA, &alice(), 1, "r");
        let second = SetClaims::session_revoked(ISSUER, OKTA, &alice(), 1, "r");
        let version = |claims: &SetClaims| {
            uuid::Uuid::parse_str(claims.jti())
                .expect("a UUID")
                .get_version_num()
        };
        assert_eq!(version(&first), 4);
        assert_ne!(first.jti(), second.jti());

        let fixed = uuid::Uuid::new_v5(&uuid::Uuid::NAMESPACE_URL, b"alert-1/session-revoked");
        let retry = second.with_jti(fixed.to_string());
        assert_eq!(retry.jti(), fixed.to_string());
        let now = unix_now_s();
        assert!((now - first.iat).abs() <= 5, "issued now");
    }

    #[test]
    fn ec_keys_are_refused_with_what_to_generate() {
        let p256 =
            EcdsaKeyPair::generate_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, &SystemRandom::new())
                .expect("EC key generation");
        let pkcs8_ec = pem("PRIVATE KEY", p256.as_ref());
        let err = SetSigner::from_pem(pkcs8_ec.as_bytes(), None).expect_err("EC refused");
        assert_eq!(
            err,
            SsfError::Key {
                path: None,
                problem: KeyProblem::NotRsa("an EC")
            }
        );
        let message = err.to_string();
        assert!(message.contains("an EC key"), "{message}");
        assert!(message.contains("RS256"), "{message}");
        assert!(message.contains(OPENSSL), "{message}");

        let sec1 = pem("EC PRIVATE KEY", b"sec1 key bytes");
        let err = SetSigner::from_pem(sec1.as_bytes(), None).expect_err("EC refused");
        assert!(err.to_string().contains("an EC key"), "{err}");
        assert!(err.to_string().contains(OPENSSL), "{err}");
    }

    #[test]
    fn an_rsa_key_under_2048_bits_is_refused() {
        let der = STANDARD.decode(RSA_1024_PKCS8).expect("base64");
        let err = SetSigner::from_pem(pem("PRIVATE KEY", &der).as_bytes(), None)
            .expect_err("1024 bits refused");
        assert_eq!(
            err,
            SsfError::Key {
                path: None,
                problem: KeyProblem::TooSmall
            }
        );
        let message = err.to_string();
        assert!(message.contains("under 2048 bits"), "{message}");
        assert!(message.contains(OPENSSL), "{message}");
    }

    #[test]
    fn unreadable_encrypted_and_keyless_files_are_refused_without_echoing_them() {
        let dir = tempfile::tempdir().expect("a temp dir");
        let missing = dir.path().join("missing.pem");
        let err = SetSigner::load(&missing, None).expect_err("no file");
        assert!(
            err.to_string().starts_with(&format!(
                "SSF signing key {}: cannot read it",
                missing.display()
            )),
            "{err}"
        );

        let public = dir.path().join("public.pem");
        std::fs::write(
            &public,
            "-----BEGIN PUBLIC KEY-----\nTUlJQ0lq\n-----END PUBLIC KEY-----\n",
        )
        .expect("written");
        let err = SetSigner::load(&public, None)
            .expect_err("no private key")
            .to_string();
        assert!(
            err.starts_with(&format!(
                "SSF signing key {}: no PEM private key",
                public.display()
            )),
            "{err}"
        );
        assert!(err.contains("(found: PUBLIC KEY)"), "{err}");
        assert!(!err.contains("TUlJQ0lq"), "{err}");

        let encrypted = pem("ENCRYPTED PRIVATE KEY", b"ciphertext");
        let err = SetSigner::from_pem(encrypted.as_bytes(), None).expect_err("encrypted");
        assert!(err.to_string().contains("openssl pkey -in"), "{err}");
        let legacy = "-----BEGIN RSA PRIVATE KEY-----\nProc-Type: 4,ENCRYPTED\n\
                      DEK-Info: AES-128-CBC,00\n\nTUlJQ0lq\n-----END RSA PRIVATE KEY-----\n";
        assert_eq!(
            SetSigner::from_pem(legacy.as_bytes(), None).expect_err("encrypted"),
            SsfError::Key {
                path: None,
                problem: KeyProblem::Encrypted
            }
        );

        let garbage = pem("PRIVATE KEY", b"\x30\x03\x02\x01\x00 secret-looking bytes");
        let err = SetSigner::from_pem(garbage.as_bytes(), None)
            .expect_err("not a key")
            .to_string();
        assert!(err.contains(OPENSSL), "{err}");
        assert!(!err.contains("secret"), "{err}");
    }

    #[test]
    fn debug_shows_the_kid_and_alg_only() {
        let pkcs8 = rsa_pkcs8();
        let signer = SetSigner::from_pem(pem("PRIVATE KEY", &pkcs8).as_bytes(), Some("k1".into()))
            .expect("a key");
        let debug = format!("{signer:?}");
        assert_eq!(debug, r#"SetSigner { kid: "k1", alg: "RS256", .. }"#);
        let jwks = signer.jwks();
        let n = jwks["keys"][0]["n"].as_str().expect("n");
        assert!(!debug.contains(&n[..16]));
    }

    #[test]
    fn the_ssf_configuration_is_minimal_transmitter_metadata() {
        assert_eq!(
            ssf_configuration(ISSUER, "https://factorwatch.example.com/ssf/jwks"),
            json!({
                "spec_version": "1_0",
                "issuer": "https://factorwatch.example.com",
                "jwks_uri": "https://factorwatch.example.com/ssf/jwks",
                "delivery_methods_supported": ["urn:ietf:rfc:8935"]
            })
        );
    }
}
