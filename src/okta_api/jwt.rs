//! The two JWTs the client signs: the client assertion that authenticates the app at the token
//! endpoint (`private_key_jwt`, with the app's registered key), and the DPoP proof of possession
//! (RFC 9449, with an ephemeral P-256 key of this client's own).

use std::path::Path;

use aws_lc_rs::rand::SystemRandom;
use aws_lc_rs::signature::{ECDSA_P256_SHA256_FIXED_SIGNING, EcdsaKeyPair};
use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use jsonwebtoken::jwk::Jwk;
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use reqwest::Url;
use serde::Serialize;
use sha2::{Digest, Sha256};

use super::OktaApiError;

/// How long a client assertion is valid: Okta accepts at most an hour; five minutes covers the
/// clock skew and the request.
const ASSERTION_LIFETIME_S: u64 = 300;

/// The app's private key, loaded once, with the algorithm its kind signs with.
pub(super) struct ClientKey {
    key: EncodingKey,
    alg: Algorithm,
    kid: Option<String>,
}

impl std::fmt::Debug for ClientKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ClientKey")
            .field("alg", &self.alg)
            .field("kid", &self.kid)
            .finish_non_exhaustive()
    }
}

/// The claims of a client assertion (RFC 7523, as Okta's `private_key_jwt` wants them).
#[derive(Serialize)]
struct AssertionClaims<'a> {
    iss: &'a str,
    sub: &'a str,
    aud: &'a str,
    iat: u64,
    exp: u64,
    jti: String,
}

impl ClientKey {
    /// Reads `path`: an RSA key (PKCS#1 or PKCS#8) signs RS256, an EC P-256 key (PKCS#8) ES256.
    pub(super) fn load(path: &Path, kid: Option<String>) -> Result<Self, OktaApiError> {
        let pem = std::fs::read(path).map_err(|err| {
            OktaApiError::Key(format!(
                "private_key_file {}: cannot read it ({err})",
                path.display()
            ))
        })?;
        Self::from_pem(&pem, kid).ok_or_else(|| {
            OktaApiError::Key(format!(
                "private_key_file {}: not an unencrypted PEM private key of a kind Okta \
                 accepts: RSA (PKCS#1 \"RSA PRIVATE KEY\" or PKCS#8 \"PRIVATE KEY\") or EC \
                 P-256 (PKCS#8 \"PRIVATE KEY\")",
                path.display()
            ))
        })
    }

    /// The key in `pem`, if it is one this client can sign with (tried once, so a public key or
    /// another curve is refused here rather than at the first token request).
    pub(super) fn from_pem(pem: &[u8], kid: Option<String>) -> Option<Self> {
        let (key, alg) = EncodingKey::from_rsa_pem(pem)
            .map(|key| (key, Algorithm::RS256))
            .or_else(|_| EncodingKey::from_ec_pem(pem).map(|key| (key, Algorithm::ES256)))
            .ok()?;
        jsonwebtoken::encode(&Header::new(alg), &serde_json::json!({}), &key).ok()?;
        Some(Self { key, alg, kid })
    }

    /// A fresh client assertion for `client_id` at `token_url`, issued at `now_s` (Unix
    /// seconds), valid five minutes, single use (`jti`).
    pub(super) fn assertion(
        &self,
        client_id: &str,
        token_url: &str,
        now_s: u64,
    ) -> Result<String, OktaApiError> {
        let mut header = Header::new(self.alg);
        header.kid = self.kid.clone();
        let claims = AssertionClaims {
            iss: client_id,
            sub: client_id,
            aud: token_url,
            iat: now_s,
            exp: now_s + ASSERTION_LIFETIME_S,
            jti: uuid::Uuid::new_v4().to_string(),
        };
        sign(&header, &claims, &self.key, "the client assertion")
    }
}

/// The ephemeral key DPoP proofs are signed with: one per client, never the app's key.
pub(super) struct DpopKey {
    key: EncodingKey,
    jwk: Jwk,
}

impl std::fmt::Debug for DpopKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("DpopKey(P-256)")
    }
}

/// The claims of a DPoP proof.
#[derive(Serialize)]
struct ProofClaims<'a> {
    htm: &'a str,
    htu: String,
    iat: u64,
    jti: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    nonce: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    ath: Option<String>,
}

impl DpopKey {
    /// A new P-256 key pair.
    pub(super) fn generate() -> Result<Self, OktaApiError> {
        let pkcs8 =
            EcdsaKeyPair::generate_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, &SystemRandom::new())
                .map_err(|_| OktaApiError::Key("cannot generate the DPoP key (P-256)".into()))?;
        let key = EncodingKey::from_ec_der(pkcs8.as_ref());
        let jwk = Jwk::from_encoding_key(&key, Algorithm::ES256)
            .map_err(|err| OktaApiError::Key(format!("the DPoP key has no public JWK: {err}")))?;
        Ok(Self { key, jwk })
    }

    /// A proof for one request: `method` on `url` (its query and fragment left out of `htu`),
    /// with the server's `nonce` once it asked for one, and `ath` when the request carries
    /// `access_token`.
    pub(super) fn proof(
        &self,
        method: &str,
        url: &Url,
        nonce: Option<&str>,
        access_token: Option<&str>,
        now_s: u64,
    ) -> Result<String, OktaApiError> {
        let mut header = Header::new(Algorithm::ES256);
        header.typ = Some("dpop+jwt".into());
        header.jwk = Some(self.jwk.clone());
        let claims = ProofClaims {
            htm: method,
            htu: htu(url),
            iat: now_s,
            jti: uuid::Uuid::new_v4().to_string(),
            nonce,
            ath: access_token.map(access_token_hash),
        };
        sign(&header, &claims, &self.key, "the DPoP proof")
    }
}

/// The request URL as a DPoP proof names it: without query and fragment (RFC 9449, 4.2).
fn htu(url: &Url) -> String {
    let mut url = url.clone();
    url.set_query(None);
    url.set_fragment(None);
    url.into()
}

/// `ath`: base64url(SHA-256(access token)), binding a proof to the token it travels with.
fn access_token_hash(access_token: &str) -> String {
    URL_SAFE_NO_PAD.encode(Sha256::digest(access_token.as_bytes()))
}

fn sign(
    header: &Header,
    claims: &impl Serialize,
    key: &EncodingKey,
    what: &str,
) -> Result<String, OktaApiError> {
    jsonwebtoken::encode(header, claims, key)
        .map_err(|err| OktaApiError::Key(format!("cannot sign {what}: {err}")))
}

#[cfg(test)]
pub(super) mod tests {
    use aws_lc_rs::encoding::AsDer;
    use aws_lc_rs::rsa::{KeyPair, KeySize};
    use aws_lc_rs::signature::ECDSA_P384_SHA384_FIXED_SIGNING;
    use jsonwebtoken::{DecodingKey, Validation};
    use serde_json::Value;

    use super::*;

    /// `der` as a PEM block labelled `label`.
    pub(crate) fn pem(label: &str, der: &[u8]) -> String {
        let body = base64::engine::general_purpose::STANDARD.encode(der);
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

    /// A new RSA 2048 key as PKCS#8 DER.
    pub(crate) fn rsa_pkcs8() -> Vec<u8> {
        let pair = KeyPair::generate(KeySize::Rsa2048).expect("RSA key generation");
        AsDer::<aws_lc_rs::encoding::Pkcs8V1Der>::as_der(&pair)
            .expect("PKCS#8")
            .as_ref()
            .to_vec()
    }

    /// A new EC key on `alg`'s curve as PKCS#8 DER.
    pub(crate) fn ec_pkcs8(alg: &'static aws_lc_rs::signature::EcdsaSigningAlgorithm) -> Vec<u8> {
        EcdsaKeyPair::generate_pkcs8(alg, &SystemRandom::new())
            .expect("EC key generation")
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
            "an octet string of two length bytes"
        );
        &pkcs8[26..]
    }

    /// The public half of a signing key, for verification.
    fn decoding_key(key: &EncodingKey, alg: Algorithm) -> DecodingKey {
        DecodingKey::from_jwk(&Jwk::from_encoding_key(key, alg).expect("a JWK")).expect("a key")
    }

    /// Header and claims of `jwt`, after checking its signature with `key`.
    pub(crate) fn verified(jwt: &str, key: &DecodingKey, alg: Algorithm) -> (Value, Value) {
        let mut validation = Validation::new(alg);
        validation.validate_aud = false;
        validation.required_spec_claims.clear();
        validation.validate_exp = false;
        let data = jsonwebtoken::decode::<Value>(jwt, key, &validation).expect("a valid signature");
        let header = jwt.split('.').next().expect("a header");
        let header = URL_SAFE_NO_PAD.decode(header).expect("base64url");
        (serde_json::from_slice(&header).expect("JSON"), data.claims)
    }

    #[test]
    fn the_client_assertion_is_what_okta_checks() {
        let pkcs8 = rsa_pkcs8();
        let key = ClientKey::from_pem(pem("PRIVATE KEY", &pkcs8).as_bytes(), Some("kid-7".into()))
            .expect("an RSA PKCS#8 key");
        let token_url = "https://acme.okta.com/oauth2/v1/token";
        let jwt = key
            .assertion("0oaclient", token_url, 1_700_000_000)
            .expect("signed");
        let (header, claims) = verified(
            &jwt,
            &decoding_key(&key.key, Algorithm::RS256),
            Algorithm::RS256,
        );
        assert_eq!(header["alg"], "RS256");
        assert_eq!(header["kid"], "kid-7");
        assert_eq!(claims["iss"], "0oaclient");
        assert_eq!(claims["sub"], "0oaclient");
        assert_eq!(claims["aud"], token_url);
        assert_eq!(claims["iat"], 1_700_000_000);
        assert_eq!(claims["exp"], 1_700_000_300);
        let jti = claims["jti"].as_str().expect("a jti");
        assert_eq!(
            uuid::Uuid::parse_str(jti)
                .expect("a uuid")
                .get_version_num(),
            4
        );
        let again = key
            .assertion("0oaclient", token_url, 1_700_000_000)
            .expect("signed");
        let (_, again) = verified(
            &again,
            &decoding_key(&key.key, Algorithm::RS256),
            Algorithm::RS256,
        );
        assert_ne!(again["jti"], claims["jti"], "each assertion is single use");
    }

    #[test]
    fn rsa_pkcs1_and_ec_p256_keys_sign_and_others_are_refused() {
        let pkcs1 = pem("RSA PRIVATE KEY", pkcs1_of(&rsa_pkcs8()));
        let rsa = ClientKey::from_pem(pkcs1.as_bytes(), None).expect("an RSA PKCS#1 key");
        assert_eq!(rsa.alg, Algorithm::RS256);

        let p256 = pem("PRIVATE KEY", &ec_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING));
        let ec = ClientKey::from_pem(p256.as_bytes(), None).expect("an EC P-256 key");
        assert_eq!(ec.alg, Algorithm::ES256);
        let jwt = ec
            .assertion("0oaclient", "https://a.okta.com/oauth2/v1/token", 1)
            .expect("signed");
        let (header, _) = verified(
            &jwt,
            &decoding_key(&ec.key, Algorithm::ES256),
            Algorithm::ES256,
        );
        assert_eq!(header["alg"], "ES256");
        assert!(header.get("kid").is_none(), "no kid unless key_id is set");

        let p384 = pem("PRIVATE KEY", &ec_pkcs8(&ECDSA_P384_SHA384_FIXED_SIGNING));
        assert!(
            ClientKey::from_pem(p384.as_bytes(), None).is_none(),
            "P-384 is refused"
        );
        assert!(ClientKey::from_pem(b"not a key", None).is_none());
    }

    #[test]
    fn an_unreadable_or_wrong_key_file_names_the_file_not_its_content() {
        let dir = tempfile::tempdir().expect("a temp dir");
        let missing = dir.path().join("missing.pem");
        let err = ClientKey::load(&missing, None)
            .expect_err("no file")
            .to_string();
        assert!(
            err.starts_with(&format!(
                "private_key_file {}: cannot read it",
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
        let err = ClientKey::load(&public, None)
            .expect_err("not a private key")
            .to_string();
        assert!(err.contains("not an unencrypted PEM private key"), "{err}");
        assert!(!err.contains("TUlJQ0lq"), "{err}");
    }

    #[test]
    fn a_dpop_proof_binds_method_url_and_token() {
        let dpop = DpopKey::generate().expect("a key");
        let url: Url =
            "https://acme.okta.com/api/v1/logs?since=2026-01-01T00%3A00%3A00Z&limit=10#x"
                .parse()
                .expect("a URL");
        let proof = dpop
            .proof("GET", &url, None, Some("the-access-token"), 1_700_000_000)
            .expect("signed");
        let public = DecodingKey::from_jwk(&dpop.jwk).expect("the proof's own key");
        let (header, claims) = verified(&proof, &public, Algorithm::ES256);
        assert_eq!(header["typ"], "dpop+jwt");
        assert_eq!(header["alg"], "ES256");
        assert_eq!(header["jwk"]["kty"], "EC");
        assert_eq!(header["jwk"]["crv"], "P-256");
        assert!(
            header["jwk"].get("d").is_none(),
            "the private key never leaves"
        );
        assert_eq!(claims["htm"], "GET");
        assert_eq!(claims["htu"], "https://acme.okta.com/api/v1/logs");
        assert_eq!(claims["iat"], 1_700_000_000);
        assert!(claims.get("nonce").is_none());
        // base64url(SHA-256("the-access-token")), computed independently.
        let expected = URL_SAFE_NO_PAD.encode(Sha256::digest(b"the-access-token"));
        assert_eq!(claims["ath"], expected.as_str());
        assert_eq!(claims["ath"].as_str().map(str::len), Some(43));

        let token_url: Url = "https://acme.okta.com/oauth2/v1/token"
            .parse()
            .expect("a URL");
        let proof = dpop
            .proof("POST", &token_url, Some("n-1"), None, 1)
            .expect("signed");
        let (_, token_claims) = verified(&proof, &public, Algorithm::ES256);
        assert_eq!(token_claims["htm"], "POST");
        assert_eq!(token_claims["htu"], "https://acme.okta.com/oauth2/v1/token");
        assert_eq!(token_claims["nonce"], "n-1");
        assert!(token_claims.get("ath").is_none());
        assert_ne!(token_claims["jti"], claims["jti"]);
    }
}
