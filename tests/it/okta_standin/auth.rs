//! The org authorization server's token endpoint and the authentication of API calls.
//!
//! Token requests (README §a): client credentials, `private_key_jwt` client assertion (RS256/384/
//! 512 or ES256/384 with the app's registered key, `iss` = `sub` = client_id, `aud` = the token
//! URL, `exp` in the future and at most 1 h ahead, `iat` not in the future, a `jti` used once),
//! the scopes granted to the app; DPoP for apps that require it (RFC 9449 with Okta's nonce
//! flow). API calls: `SSWS`, `Bearer` or `DPoP` (+ proof with `ath`).

use std::collections::HashSet;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use axum::body::Bytes;
use axum::extract::State;
use axum::http::header::{
    CACHE_CONTROL, CONTENT_TYPE, HeaderMap, HeaderName, PRAGMA, WWW_AUTHENTICATE,
};
use axum::http::{StatusCode, Uri};
use axum::response::Response;
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use factorwatch::okta::samples::SampleUser;
use jsonwebtoken::jwk::ThumbprintHash;
use jsonwebtoken::{Algorithm, DecodingKey, Validation};
use serde::Deserialize;
use serde_json::{Value, json};
use sha2::{Digest, Sha256};

use super::{Answer, Shared, State as OrgState, decode_pairs, digest, random_token, unix_secs};

/// Access tokens live one hour, fixed (README §a).
const TOKEN_LIFETIME: Duration = Duration::from_secs(3600);
/// A client assertion's `exp` may be at most this far ahead.
const MAX_ASSERTION_LIFETIME: i64 = 3600;
/// A DPoP proof's `iat` may be at most this far from now, either way.
const PROOF_MAX_AGE: i64 = 300;
/// The `client_assertion_type` of `private_key_jwt`.
const JWT_BEARER: &str = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer";
/// Signature algorithms Okta accepts for client assertions (and the stand-in for DPoP proofs).
const ASYMMETRIC: [Algorithm; 5] = [
    Algorithm::RS256,
    Algorithm::RS384,
    Algorithm::RS512,
    Algorithm::ES256,
    Algorithm::ES384,
];
/// Form fields of a client-credentials token request.
const TOKEN_FIELDS: [&str; 5] = [
    "grant_type",
    "scope",
    "client_assertion_type",
    "client_assertion",
    "client_id",
];
/// The `dpop-nonce` response header.
const DPOP_NONCE: HeaderName = HeaderName::from_static("dpop-nonce");

/// A registered API Services app.
pub(super) struct ServiceApp {
    pub(super) key: DecodingKey,
    pub(super) kid: Option<String>,
    pub(super) scopes: HashSet<String>,
    pub(super) dpop: bool,
}

/// What an issued access token grants.
pub(super) struct AccessToken {
    /// The service app it was issued to.
    client_id: String,
    scopes: HashSet<String>,
    /// SHA-256 thumbprint of the DPoP key the token is bound to (`cnf.jkt`).
    jkt: Option<String>,
    expires: SystemTime,
}

/// The claims of a client assertion that the endpoint reads beyond what [`Validation`] checks.
#[derive(Deserialize)]
struct AssertionClaims {
    iss: String,
    exp: i64,
    iat: Option<i64>,
    jti: Option<String>,
}

/// The claims of a DPoP proof.
#[derive(Deserialize)]
struct ProofClaims {
    htm: String,
    htu: String,
    iat: i64,
    jti: String,
    nonce: Option<String>,
    ath: Option<String>,
}

/// What a DPoP proof must say.
struct ProofExpected<'a> {
    htm: &'a str,
    htu: String,
    /// The nonce the token endpoint requires; `None` on API calls ("isn't currently required").
    nonce: Option<&'a str>,
    /// The access token's hash on API calls.
    ath: Option<String>,
}

/// Why a DPoP proof is refused.
enum ProofError {
    Invalid(String),
    NonceNeeded,
}

/// `POST /oauth2/v1/token`.
pub(super) async fn token(
    State(shared): State<Arc<Shared>>,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let form = decode_pairs(&String::from_utf8_lossy(&body));
    let shown = form
        .iter()
        .filter(|(name, _)| name != "client_assertion")
        .cloned()
        .collect();
    let index = shared.record("POST", &uri, shown, &headers);
    let answer = issue(&shared, &headers, &form);
    shared.answered(index, answer.status);
    answer
        .header(CACHE_CONTROL, "no-store")
        .header(PRAGMA, "no-cache")
        .into_response()
}

fn issue(shared: &Shared, headers: &HeaderMap, form: &[(String, String)]) -> Answer {
    if let Err(problem) = check_token_request(headers, form) {
        shared.violation(format!("token request: {problem}"));
        return Answer::oauth_error(StatusCode::BAD_REQUEST, "invalid_request", &problem);
    }
    let field = |name| super::first(form, name).unwrap_or_default();
    if field("grant_type") != "client_credentials" {
        return Answer::oauth_error(
            StatusCode::BAD_REQUEST,
            "unsupported_grant_type",
            "The authorization grant type is not supported by the authorization server.",
        );
    }
    let token_url = format!("{}/oauth2/v1/token", shared.org_url);
    let now = SystemTime::now();
    let mut state = shared.lock();
    let client_id =
        match authenticate_client(&mut state, field("client_assertion"), &token_url, now) {
            Ok(client_id) => client_id,
            Err(description) => {
                return Answer::oauth_error(
                    StatusCode::UNAUTHORIZED,
                    "invalid_client",
                    &description,
                );
            }
        };
    let jkt = match dpop_for_token(&mut state, &client_id, headers, &token_url, now) {
        Ok(jkt) => jkt,
        Err(answer) => return answer,
    };
    let requested: Vec<&str> = field("scope").split_whitespace().collect();
    let granted = &state.apps[&client_id].scopes;
    if requested.is_empty() || requested.iter().any(|s| !granted.contains(*s)) {
        return Answer::oauth_error(
            StatusCode::BAD_REQUEST,
            "invalid_scope",
            "One or more scopes are not configured for the authorization server resource.",
        );
    }
    let access_token = random_token();
    let token_type = if jkt.is_some() { "DPoP" } else { "Bearer" };
    state.access_tokens.insert(
        digest(&access_token),
        AccessToken {
            client_id: client_id.clone(),
            scopes: requested.iter().map(|&s| s.to_owned()).collect(),
            jkt,
            expires: now + TOKEN_LIFETIME,
        },
    );
    Answer::json(
        StatusCode::OK,
        json!({
            "token_type": token_type,
            "expires_in": TOKEN_LIFETIME.as_secs(),
            "access_token": access_token,
            "scope": requested.join(" "),
        }),
    )
}

/// What README §a requires of the request itself: a form body with exactly the client-credentials
/// fields, each once. A problem here is a client bug, so it is also a spec violation.
fn check_token_request(headers: &HeaderMap, form: &[(String, String)]) -> Result<(), String> {
    let content_type = headers
        .get(CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default();
    if !content_type.starts_with("application/x-www-form-urlencoded") {
        return Err(format!("Content-Type {content_type:?} is not a form"));
    }
    for (name, _) in form {
        if !TOKEN_FIELDS.contains(&name.as_str()) {
            return Err(format!("unknown form field {name}"));
        }
    }
    for name in TOKEN_FIELDS {
        let count = form.iter().filter(|(n, _)| n == name).count();
        if count > 1 || (count == 0 && name != "client_id") {
            return Err(format!("form field {name} appears {count} times"));
        }
    }
    if super::first(form, "client_assertion_type") != Some(JWT_BEARER) {
        return Err(format!("client_assertion_type must be {JWT_BEARER}"));
    }
    Ok(())
}

/// Verifies the client assertion; returns the client_id, or the `error_description`.
fn authenticate_client(
    state: &mut OrgState,
    assertion: &str,
    token_url: &str,
    now: SystemTime,
) -> Result<String, String> {
    let header = jsonwebtoken::decode_header(assertion)
        .map_err(|e| format!("The client_assertion is not a JWT: {e}"))?;
    if !ASYMMETRIC.contains(&header.alg) {
        return Err(format!(
            "The client_assertion algorithm {:?} is not allowed.",
            header.alg
        ));
    }
    let unverified = jsonwebtoken::dangerous::insecure_decode::<AssertionClaims>(assertion)
        .map_err(|e| format!("The client_assertion claims are invalid: {e}"))?
        .claims;
    let app = state
        .apps
        .get(&unverified.iss)
        .ok_or("Invalid value for 'client_id' parameter.")?;
    if let (Some(registered), Some(sent)) = (&app.kid, &header.kid)
        && registered != sent
    {
        return Err(
            "The client_assertion kid does not match a key registered on the client.".into(),
        );
    }
    let mut validation = Validation::new(header.alg);
    validation.leeway = 0;
    validation.set_audience(&[token_url]);
    validation.set_issuer(&[&unverified.iss]);
    validation.sub = Some(unverified.iss.clone());
    validation.set_required_spec_claims(&["exp", "iss", "sub", "aud"]);
    let claims = jsonwebtoken::decode::<AssertionClaims>(assertion, &app.key, &validation)
        .map_err(|e| format!("The client_assertion token is invalid: {e}"))?
        .claims;
    let now = unix_secs(now);
    if claims.exp > now + MAX_ASSERTION_LIFETIME {
        return Err("The client_assertion token has an expiration too far into the future.".into());
    }
    if claims.iat.is_some_and(|iat| iat > now) {
        return Err("The client_assertion token was issued in the future.".into());
    }
    if let Some(jti) = claims.jti
        && !state.used_jtis.insert(format!("assertion {jti}"))
    {
        return Err("The client_assertion token has already been used.".into());
    }
    Ok(claims.iss)
}

/// DPoP at the token endpoint: required by DPoP apps, honoured when sent. Returns the key's
/// thumbprint to bind the token to, or the error answer.
fn dpop_for_token(
    state: &mut OrgState,
    client_id: &str,
    headers: &HeaderMap,
    token_url: &str,
    now: SystemTime,
) -> Result<Option<String>, Answer> {
    let proof = match single_proof(headers) {
        Ok(None) if !state.apps[client_id].dpop => return Ok(None),
        Ok(None) => Err(ProofError::Invalid(
            "The DPoP proof JWT header is missing.".into(),
        )),
        Ok(Some(proof)) => Ok(proof),
        Err(e) => Err(e),
    };
    let nonce = state.dpop_nonce.clone();
    let expected = ProofExpected {
        htm: "POST",
        htu: token_url.to_owned(),
        nonce: Some(&nonce),
        ath: None,
    };
    match proof.and_then(|proof| verify_proof(state, &proof, &expected, now)) {
        Ok(jkt) => Ok(Some(jkt)),
        Err(ProofError::NonceNeeded) => Err(Answer::oauth_error(
            StatusCode::BAD_REQUEST,
            "use_dpop_nonce",
            "Authorization server requires nonce in DPoP proof.",
        )
        .header(DPOP_NONCE, nonce)),
        Err(ProofError::Invalid(description)) => Err(Answer::oauth_error(
            StatusCode::BAD_REQUEST,
            "invalid_dpop_proof",
            &description,
        )),
    }
}

/// The one `DPoP` header of a request, if any.
fn single_proof(headers: &HeaderMap) -> Result<Option<String>, ProofError> {
    let mut proofs = headers.get_all("dpop").iter();
    match (proofs.next(), proofs.next()) {
        (None, _) => Ok(None),
        (Some(proof), None) => proof
            .to_str()
            .map(|p| Some(p.to_owned()))
            .map_err(|_| ProofError::Invalid("The DPoP proof is not ASCII.".into())),
        (Some(_), Some(_)) => Err(ProofError::Invalid("More than one DPoP header.".into())),
    }
}

/// Checks a DPoP proof (RFC 9449 §4.3); returns its key's SHA-256 thumbprint.
fn verify_proof(
    state: &mut OrgState,
    proof: &str,
    expected: &ProofExpected,
    now: SystemTime,
) -> Result<String, ProofError> {
    let invalid = |what: &str| ProofError::Invalid(format!("Invalid DPoP proof: {what}."));
    let header = jsonwebtoken::decode_header(proof).map_err(|_| invalid("not a JWT"))?;
    if header.typ.as_deref() != Some("dpop+jwt") {
        return Err(invalid("typ is not dpop+jwt"));
    }
    if !ASYMMETRIC.contains(&header.alg) {
        return Err(invalid("the algorithm is not asymmetric"));
    }
    let jwk = header.jwk.ok_or_else(|| invalid("no jwk in the header"))?;
    if carries_private_key(proof) {
        return Err(invalid("the jwk holds a private key"));
    }
    let key = DecodingKey::from_jwk(&jwk).map_err(|_| invalid("unusable jwk"))?;
    let mut validation = Validation::new(header.alg);
    validation.validate_exp = false;
    validation.validate_aud = false;
    validation.set_required_spec_claims::<&str>(&[]);
    let claims = jsonwebtoken::decode::<ProofClaims>(proof, &key, &validation)
        .map_err(|e| ProofError::Invalid(format!("Invalid DPoP proof: {e}.")))?
        .claims;
    if claims.htm != expected.htm {
        return Err(invalid("htm does not match the request method"));
    }
    if without_query(&claims.htu) != expected.htu {
        return Err(invalid("htu does not match the request URL"));
    }
    if (unix_secs(now) - claims.iat).abs() > PROOF_MAX_AGE {
        return Err(invalid("iat is too old or in the future"));
    }
    if claims.ath != expected.ath {
        return Err(invalid("ath does not match the access token"));
    }
    if expected.nonce.is_some() && claims.nonce.as_deref() != expected.nonce {
        return Err(ProofError::NonceNeeded);
    }
    if !state.used_jtis.insert(format!("proof {}", claims.jti)) {
        return Err(invalid("the jti was already used"));
    }
    Ok(jwk.thumbprint(ThumbprintHash::SHA256))
}

/// Whether the proof's header `jwk` has a private member (`d`, or RSA's `p`, `q`, ...).
fn carries_private_key(proof: &str) -> bool {
    let header = proof.split('.').next().unwrap_or_default();
    let Ok(json) = URL_SAFE_NO_PAD.decode(header) else {
        return true;
    };
    let header: Value = serde_json::from_slice(&json).unwrap_or_default();
    ["d", "p", "q", "dp", "dq", "qi"]
        .iter()
        .any(|member| header["jwk"].get(member).is_some())
}

fn without_query(url: &str) -> &str {
    url.split(['?', '#']).next().unwrap_or_default()
}

/// An SSWS API token: its admin's permissions and who it acts as.
pub(super) struct ApiToken {
    /// The permissions of the admin who created it, as the scopes that grant the same.
    pub(super) scopes: HashSet<String>,
    /// Its id (`00T…`), which System Log events of its calls carry.
    pub(super) id: String,
    /// The admin who created it: the actor of what it does.
    pub(super) admin: SampleUser,
}

/// Who is behind an API call, as the System Log names the actor.
#[derive(Debug, Clone)]
pub(super) enum Principal {
    /// An SSWS token: the admin who created it acts (README §a: it carries that admin's
    /// privileges), through the token `token_id`.
    Admin { user: SampleUser, token_id: String },
    /// An OAuth service app acting as itself (client credentials).
    Client { client_id: String },
}

/// Who called an API, once authenticated.
pub(super) struct Caller {
    /// The scopes of an OAuth token, or the permissions of an API token's admin.
    pub(super) scopes: HashSet<String>,
    /// The scheme to name in a `www-authenticate` challenge; `None` for SSWS.
    pub(super) challenge_scheme: Option<&'static str>,
    pub(super) principal: Principal,
}

/// Authenticates an API call `method` (uppercase) to `path`; the error is the answer to give.
pub(super) fn authenticate_call(
    shared: &Shared,
    headers: &HeaderMap,
    method: &str,
    path: &str,
) -> Result<Caller, Answer> {
    let authorization = headers
        .get("authorization")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default();
    let (scheme, credential) = authorization.split_once(' ').unwrap_or((authorization, ""));
    let now = SystemTime::now();
    let mut state = shared.lock();
    let key = digest(credential.trim());
    if scheme.eq_ignore_ascii_case("SSWS") {
        return state
            .api_tokens
            .get(&key)
            .map(|token| Caller {
                scopes: token.scopes.clone(),
                challenge_scheme: None,
                principal: Principal::Admin {
                    user: token.admin.clone(),
                    token_id: token.id.clone(),
                },
            })
            .ok_or_else(invalid_token);
    }
    let challenge_scheme = match scheme {
        _ if scheme.eq_ignore_ascii_case("Bearer") => "Bearer",
        _ if scheme.eq_ignore_ascii_case("DPoP") => "DPoP",
        _ => return Err(invalid_token()),
    };
    let Some(token) = state.access_tokens.get(&key).filter(|t| t.expires > now) else {
        return Err(invalid_token().header(
            WWW_AUTHENTICATE,
            format!("{challenge_scheme} realm=\"IdP\", error=\"invalid_token\", error_description=\"The access token is invalid.\""),
        ));
    };
    let (scopes, jkt) = (token.scopes.clone(), token.jkt.clone());
    let client_id = token.client_id.clone();
    match (challenge_scheme, jkt) {
        ("Bearer", None) => {}
        ("Bearer", Some(_)) => {
            return Err(dpop_error(
                StatusCode::BAD_REQUEST,
                "dpop_authentication_scheme_required",
                "The DPoP-bound access token was sent with the Bearer scheme.",
            ));
        }
        (_, None) => {
            return Err(dpop_error(
                StatusCode::UNAUTHORIZED,
                "invalid_token",
                "The access token is not DPoP-bound (access_token_not_dpop_bound).",
            ));
        }
        (_, Some(jkt)) => {
            let expected = ProofExpected {
                htm: method,
                htu: format!("{}{path}", shared.org_url),
                nonce: None,
                ath: Some(URL_SAFE_NO_PAD.encode(Sha256::digest(credential.trim().as_bytes()))),
            };
            let bound = single_proof(headers)
                .and_then(|p| {
                    p.ok_or_else(|| {
                        ProofError::Invalid("The DPoP proof JWT header is missing.".into())
                    })
                })
                .and_then(|p| verify_proof(&mut state, &p, &expected, now));
            match bound {
                Ok(thumbprint) if thumbprint == jkt => {}
                Ok(_) => {
                    return Err(dpop_error(
                        StatusCode::BAD_REQUEST,
                        "invalid_dpop_proof",
                        "The token is not bound to the proof's key.",
                    ));
                }
                Err(ProofError::Invalid(why)) => {
                    return Err(dpop_error(
                        StatusCode::BAD_REQUEST,
                        "invalid_dpop_proof",
                        &why,
                    ));
                }
                Err(ProofError::NonceNeeded) => unreachable!("API calls require no nonce"),
            }
        }
    }
    Ok(Caller {
        scopes,
        challenge_scheme: Some(challenge_scheme),
        principal: Principal::Client { client_id },
    })
}

/// 401 E0000011, Okta's answer to a missing or unknown token.
fn invalid_token() -> Answer {
    Answer::okta_error(
        StatusCode::UNAUTHORIZED,
        "E0000011",
        "Invalid token provided",
    )
}

/// A DPoP error of an API call: the OAuth error in the body and in a `DPoP` challenge.
fn dpop_error(status: StatusCode, error: &str, description: &str) -> Answer {
    Answer::oauth_error(status, error, description).header(
        WWW_AUTHENTICATE,
        format!(
            "DPoP algs=\"RS256 ES256\", error=\"{error}\", error_description=\"{description}\""
        ),
    )
}

/// 403 for a caller without `scope`: for an OAuth token, E0000006 and the `insufficient_scope`
/// challenge naming the scope, as Okta answers; for an API token, E0000006 alone (the admin's role
/// is too weak: no scope to grant).
pub(super) fn forbidden(shared: &Shared, caller: &Caller, scope: &str, path: &str) -> Answer {
    let answer = Answer::okta_error(
        StatusCode::FORBIDDEN,
        "E0000006",
        "You do not have permission to perform the requested action",
    );
    match caller.challenge_scheme {
        None => answer,
        Some(scheme) => answer.header(
            WWW_AUTHENTICATE,
            format!(
                "{scheme} authorization_uri=\"{}/oauth2/v1/authorize\", realm=\"IdP\", scope=\"{scope}\", error=\"insufficient_scope\", error_description=\"The access token provided does not contain the required scopes.\", resource=\"{path}\"",
                shared.org_url
            ),
        ),
    }
}
