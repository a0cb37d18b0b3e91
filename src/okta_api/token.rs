//! OAuth 2.0 client credentials with `private_key_jwt` at the org authorization server, and
//! DPoP when the app demands it (Okta's README §a): the first request goes without a proof; an
//! answer asking for one switches this client to DPoP for good.

use reqwest::header::{ACCEPT, AUTHORIZATION, HeaderMap, HeaderValue};
use reqwest::{Method, Url};
use serde::Deserialize;
use tokio::sync::Mutex;
use tokio::time::{Duration, Instant};

use super::jwt::{ClientKey, DpopKey};
use super::transport::{Answer, Endpoint, Transport};
use super::{Failure, OktaApiError};
use crate::clock;
use crate::secret::Secret;

/// The `client_assertion_type` of a JWT client assertion (RFC 7523).
const JWT_BEARER: &str = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer";
/// Refusals that mean "send a DPoP proof": a bad or missing one.
const DPOP_WANTED: [&str; 2] = ["invalid_dpop_proof", "dpop_proof_required_for_token"];
/// The refusal that carries a `dpop-nonce` to put in the next proof.
const USE_DPOP_NONCE: &str = "use_dpop_nonce";
/// Token requests in one fetch: plain, with a proof, with a proof and the nonce, and one more
/// for a nonce that rotated in between.
const MAX_ROUNDS: usize = 4;
/// What to check when Okta refuses the app's credentials.
pub(super) const APP_ADVICE: &str =
    "check client_id, key_id and the public key registered on the app";
/// What to check when Okta refuses DPoP proofs: their `iat` must be within 5 minutes of its clock.
const CLOCK_ADVICE: &str = "check that this host's clock is right (Okta accepts proofs issued \
                            within 5 minutes)";
/// A token is replaced this long before Okta says it expires.
const EXPIRY_MARGIN: Duration = Duration::from_secs(60);

/// Access tokens for one app, fetched on demand and cached until shortly before they expire.
pub(super) struct TokenSource {
    client_id: String,
    key: ClientKey,
    token_url: Url,
    /// The requested scopes, space-separated.
    scope: String,
    /// This client's proof key, used once the token endpoint asks for DPoP.
    dpop: DpopKey,
    /// Held across a fetch, so concurrent calls wait for one token instead of each fetching.
    state: Mutex<TokenState>,
}

impl std::fmt::Debug for TokenSource {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TokenSource")
            .field("client_id", &self.client_id)
            .field("key", &self.key)
            .field("scope", &self.scope)
            .finish_non_exhaustive()
    }
}

#[derive(Default)]
struct TokenState {
    token: Option<AccessToken>,
    /// Set for good once the token endpoint asked for a DPoP proof.
    use_dpop: bool,
    /// The token endpoint's last `dpop-nonce`.
    nonce: Option<String>,
}

/// A cached access token.
#[derive(Clone)]
pub(super) struct AccessToken {
    value: Secret,
    /// `token_type` DPoP: every call carries a proof bound to it.
    dpop: bool,
    refresh_at: Instant,
}

/// A successful token answer.
#[derive(Deserialize)]
struct Grant {
    token_type: String,
    expires_in: u64,
    access_token: String,
}

/// An OAuth error answer.
#[derive(Deserialize, Default)]
struct Refusal {
    #[serde(default)]
    error: String,
    #[serde(default)]
    error_description: String,
}

impl TokenSource {
    /// A source for `client_id` signing with `key`, asking `org_url`'s org authorization server
    /// for `scopes`.
    pub(super) fn new(
        client_id: &str,
        key: ClientKey,
        org_url: &Url,
        scopes: &[&str],
    ) -> Result<Self, OktaApiError> {
        if scopes.is_empty() {
            return Err(OktaApiError::Config(
                "an OAuth client needs at least one scope to ask for".into(),
            ));
        }
        Ok(Self {
            client_id: client_id.to_owned(),
            key,
            token_url: org_url
                .join("oauth2/v1/token")
                .map_err(super::invalid_org_url)?,
            scope: scopes.join(" "),
            dpop: DpopKey::generate()?,
            state: Mutex::new(TokenState::default()),
        })
    }

    /// The headers that authorize `method` on `url`: `Authorization: Bearer <token>`, or
    /// `Authorization: DPoP <token>` and a `DPoP` proof with `ath`. Also the token used.
    pub(super) async fn authorize(
        &self,
        transport: &Transport,
        method: &Method,
        url: &Url,
    ) -> Result<(HeaderMap, AccessToken), Failure> {
        let token = self.current(transport).await?;
        let mut headers = HeaderMap::new();
        let scheme = if token.dpop { "DPoP" } else { "Bearer" };
        let access = token.value.expose();
        headers.insert(AUTHORIZATION, sensitive(&format!("{scheme} {access}"))?);
        if token.dpop {
            let proof = self
                .dpop
                .proof(method.as_str(), url, None, Some(access), now_s())
                .map_err(Failure::Final)?;
            headers.insert("dpop", sensitive(&proof)?);
        }
        Ok((headers, token))
    }

    /// Drops `used` from the cache (the API refused it), unless another call replaced it.
    pub(super) async fn invalidate(&self, used: &AccessToken) {
        let mut state = self.state.lock().await;
        if state.token.as_ref().is_some_and(|t| t.value == used.value) {
            state.token = None;
        }
    }

    /// The cached token, or a new one.
    async fn current(&self, transport: &Transport) -> Result<AccessToken, Failure> {
        let mut state = self.state.lock().await;
        if let Some(token) = state
            .token
            .as_ref()
            .filter(|t| Instant::now() < t.refresh_at)
        {
            return Ok(token.clone());
        }
        let token = self.fetch(transport, &mut state).await?;
        state.token = Some(token.clone());
        Ok(token)
    }

    /// Asks the token endpoint, following its DPoP demands.
    async fn fetch(
        &self,
        transport: &Transport,
        state: &mut TokenState,
    ) -> Result<AccessToken, Failure> {
        for _ in 0..MAX_ROUNDS {
            let answer = self.request(transport, state).await?;
            if answer.status.is_success() {
                return granted(&answer);
            }
            if let Some(failure) = Failure::unavailable(&answer, &self.token_url) {
                return Err(failure);
            }
            let refusal: Refusal = serde_json::from_slice(&answer.body).unwrap_or_default();
            if !follow_dpop_demand(&refusal, &answer, state) {
                return Err(Failure::Final(self.refused(&refusal, &answer, state)));
            }
        }
        Err(Failure::Final(OktaApiError::Credentials(format!(
            "the token endpoint kept refusing the DPoP proofs: {CLOCK_ADVICE}"
        ))))
    }

    /// One token request: a fresh client assertion (each is single use) and, in DPoP mode, a
    /// fresh proof with the last nonce.
    async fn request(&self, transport: &Transport, state: &TokenState) -> Result<Answer, Failure> {
        let now = now_s();
        let assertion = self
            .key
            .assertion(&self.client_id, self.token_url.as_str(), now)
            .map_err(Failure::Final)?;
        let form = [
            ("grant_type", "client_credentials"),
            ("scope", self.scope.as_str()),
            ("client_assertion_type", JWT_BEARER),
            ("client_assertion", assertion.as_str()),
        ];
        let mut request = transport
            .http
            .post(self.token_url.clone())
            .header(ACCEPT, "application/json")
            .form(&form);
        if state.use_dpop {
            let proof = self
                .dpop
                .proof("POST", &self.token_url, state.nonce.as_deref(), None, now)
                .map_err(Failure::Final)?;
            request = request.header("dpop", sensitive(&proof)?);
        }
        transport
            .send(Endpoint::Token, request)
            .await
            .map_err(|no_answer| Failure::no_answer(no_answer, &self.token_url))
    }

    /// The error for a refusal that is not a DPoP demand.
    fn refused(&self, refusal: &Refusal, answer: &Answer, state: &TokenState) -> OktaApiError {
        let said = format!(
            "{} {}: {}",
            answer.status.as_u16(),
            refusal.error,
            refusal.error_description
        );
        if refusal.error == "invalid_scope" {
            return OktaApiError::MissingScope {
                scope: self.scope.clone(),
            };
        }
        if state.use_dpop && mentions_dpop(&answer.body) {
            return OktaApiError::Credentials(format!(
                "the token endpoint refused the DPoP proof ({said}): {CLOCK_ADVICE}"
            ));
        }
        OktaApiError::Credentials(format!(
            "the token endpoint refused the app ({said}): {APP_ADVICE}"
        ))
    }
}

/// Switches to DPoP, or takes the nonce, when the refusal asks for it. False when it does not,
/// or when following it would repeat the request just refused.
fn follow_dpop_demand(refusal: &Refusal, answer: &Answer, state: &mut TokenState) -> bool {
    if refusal.error == USE_DPOP_NONCE {
        let nonce = answer
            .headers
            .get("dpop-nonce")
            .and_then(|nonce| nonce.to_str().ok());
        let Some(nonce) = nonce.filter(|n| state.nonce.as_deref() != Some(*n)) else {
            return false;
        };
        state.use_dpop = true;
        state.nonce = Some(nonce.to_owned());
        return true;
    }
    if !state.use_dpop && mentions_dpop(&answer.body) {
        tracing::info!("the Okta app requires DPoP-bound tokens; this client now sends proofs");
        state.use_dpop = true;
        return true;
    }
    false
}

/// Whether a refusal's body names a missing or bad DPoP proof (in `error` or its description,
/// as Okta's own SDK checks).
fn mentions_dpop(body: &[u8]) -> bool {
    let body = String::from_utf8_lossy(body);
    DPOP_WANTED.iter().any(|code| body.contains(code))
}

/// The token of a 2xx answer, cached until a minute before it expires.
fn granted(answer: &Answer) -> Result<AccessToken, Failure> {
    let grant: Grant = serde_json::from_slice(&answer.body).map_err(|err| {
        Failure::Final(OktaApiError::BadResponse(format!(
            "the token endpoint's answer is not a token ({err})"
        )))
    })?;
    let lifetime = Duration::from_secs(grant.expires_in).saturating_sub(EXPIRY_MARGIN);
    Ok(AccessToken {
        value: Secret::new(grant.access_token),
        dpop: grant.token_type.eq_ignore_ascii_case("DPoP"),
        refresh_at: answer.received + lifetime,
    })
}

/// A header value that HTTP libraries leave out of their debug output.
fn sensitive(value: &str) -> Result<HeaderValue, Failure> {
    let mut value = HeaderValue::from_str(value).map_err(|_| {
        Failure::Final(OktaApiError::BadResponse(
            "the access token holds characters an HTTP header cannot carry".into(),
        ))
    })?;
    value.set_sensitive(true);
    Ok(value)
}

fn now_s() -> u64 {
    clock::now_ms() / 1000
}

#[cfg(test)]
impl TokenSource {
    /// Puts `token` in the cache as if Okta had issued it, for tests without a server.
    pub(super) fn cache_for_test(&self, token: &str, dpop: bool) {
        self.state.try_lock().expect("unlocked").token = Some(AccessToken {
            value: Secret::new(token),
            dpop,
            refresh_at: Instant::now() + Duration::from_secs(3600),
        });
    }
}
