//! Okta as a Shared Signals receiver: register a transmitter (a security events provider) and
//! push Security Event Tokens (SETs, RFC 8417) to the org.
//!
//! Source: Okta's Management API spec, tags SSFReceiver and SSFSecurityEventToken, and Okta's
//! guide "Configure an SSF receiver", gathered in `../shared/okta/api/README.md` §f. The push
//! carries no Okta credentials (the spec's `security: []`): Okta checks the SET's signature with
//! the keys at the provider's `jwks_url`, its `iss` against the provider's issuer and its `aud`
//! against the org URL, and answers 202, or 400 with `{"err", "description"}`. A repeated `jti`
//! is accepted and ignored, so a push is retried like a read; a provider's create is not.

use reqwest::Method;
use serde::Deserialize;

use super::transport::{Answer, Call, Endpoint};
use super::{Failure, OktaApiError, OktaClient};

/// The providers' collection, below `org_url`.
const PROVIDERS_PATH: &str = "api/v1/security-events-providers";
/// Where transmitters push SETs, below `org_url`.
const EVENTS_PATH: &str = "security/api/v1/security-events";
/// The provider `type` every example of the spec and Okta's Terraform provider use.
const PROVIDER_TYPE: &str = "okta";
/// What to check when Okta refuses a provider.
const PROVIDERS_ADVICE: &str = "check the name (at most 100 characters), the issuer and the JWKS URL; \
     the org needs Identity Threat Protection";

/// A security events provider as Okta answers it (`SecurityEventsProviderResponse`).
#[derive(Debug, Clone, Deserialize, PartialEq, Eq)]
pub struct SecurityEventsProvider {
    /// Okta's id (`sse…`).
    pub id: String,
    /// The provider's name.
    pub name: String,
    /// `ACTIVE` or `INACTIVE`: only an active provider's SETs are taken.
    pub status: String,
    /// Where Okta finds the transmitter's issuer and keys.
    pub settings: ProviderSettings,
}

/// `settings` of a provider (`SecurityEventsProviderSettingsResponse`: none of it required).
#[derive(Debug, Clone, Default, Deserialize, PartialEq, Eq)]
pub struct ProviderSettings {
    /// The `iss` its SETs must carry.
    #[serde(default)]
    pub issuer: Option<String>,
    /// The public URL of its JWKS (the keys its SETs are signed with).
    #[serde(default)]
    pub jwks_url: Option<String>,
    /// Its SSF well-known document, when it was registered by one.
    #[serde(default)]
    pub well_known_url: Option<String>,
}

impl OktaClient {
    /// `POST /security/api/v1/security-events`: pushes one signed SET (compact JWT) to the org,
    /// without credentials. Okta answers 202 once the SET is verified; a refused SET is
    /// [`OktaApiError::BadRequest`] naming Okta's `err`, its description and what to check.
    /// 429 and server errors are retried (Okta ignores a `jti` it has already taken).
    pub async fn push_security_event_token(&self, set: &str) -> Result<(), OktaApiError> {
        let url = self.api_url(EVENTS_PATH, &[])?;
        let call = Call::new(
            Endpoint::SecurityEvents,
            Method::POST,
            url,
            Some(set.as_bytes().to_vec()),
            "check the SET",
        );
        self.call(&call, |_, _| Ok(())).await
    }

    /// `POST /api/v1/security-events-providers`: registers a transmitter whose SETs carry `iss`
    /// = `issuer` and are signed with the keys at `jwks_url` (public, HTTPS). Not retried once
    /// it may have reached Okta: a second try could register a second provider. Needs
    /// `okta.securityEventsProviders.manage`.
    pub async fn create_security_events_provider(
        &self,
        name: &str,
        issuer: &str,
        jwks_url: &str,
    ) -> Result<SecurityEventsProvider, OktaApiError> {
        let body = serde_json::json!({
            "name": name,
            "type": PROVIDER_TYPE,
            "settings": {"issuer": issuer, "jwks_url": jwks_url},
        });
        let body = serde_json::to_vec(&body).expect("a JSON value serializes");
        let url = self.api_url(PROVIDERS_PATH, &[])?;
        let mut call = Call::new(
            Endpoint::SecurityEventsProviders,
            Method::POST,
            url,
            Some(body),
            PROVIDERS_ADVICE,
        );
        call.repeatable = false;
        self.call(&call, read_json).await
    }

    /// `GET /api/v1/security-events-providers`: every provider of the org (Okta does not page
    /// it). Needs `okta.securityEventsProviders.read`.
    pub async fn list_security_events_providers(
        &self,
    ) -> Result<Vec<SecurityEventsProvider>, OktaApiError> {
        let url = self.api_url(PROVIDERS_PATH, &[])?;
        let call = Call::get(Endpoint::SecurityEventsProviders, url, PROVIDERS_ADVICE);
        self.call(&call, read_json).await
    }
}

/// A 400 of the SET push: Okta's `err` and `description` (`SecurityEventTokenError`), and what
/// to check for that `err`.
pub(super) fn set_refused(answer: &Answer) -> OktaApiError {
    #[derive(Deserialize)]
    struct SetError {
        #[serde(default)]
        err: Option<String>,
        #[serde(default)]
        description: Option<String>,
    }
    let said: SetError = serde_json::from_slice(&answer.body).unwrap_or(SetError {
        err: None,
        description: None,
    });
    let err = said.err.unwrap_or_else(|| "no err".to_owned());
    let description = said.description.unwrap_or_else(|| {
        String::from_utf8_lossy(&answer.body)
            .chars()
            .take(200)
            .collect()
    });
    let advice = match err.as_str() {
        "invalid_issuer" => {
            "the SET's iss must equal the issuer of an active security events provider"
        }
        "invalid_key" | "authentication_failed" => {
            "the SET's kid must name a key of the provider's JWKS (jwks_url), and the SET must be \
             signed (RS256) with that key"
        }
        "invalid_audience" => "the SET's aud must be the org URL (org_url)",
        "invalid_request" => {
            "check the SET's header (alg RS256, kid, typ secevent+jwt), its claims (iat, jti, \
             events) and that Okta accepts its event type"
        }
        _ => "check the SET",
    };
    OktaApiError::BadRequest(format!(
        "Okta refused the security event token ({err}: {description}): {advice}"
    ))
}

/// A 2xx answer read as `T`.
fn read_json<T: serde::de::DeserializeOwned>(
    _url: &reqwest::Url,
    answer: &Answer,
) -> Result<T, Failure> {
    serde_json::from_slice(&answer.body).map_err(|err| {
        Failure::Final(OktaApiError::BadResponse(format!(
            "the SSF Receiver answer is not what the API documents ({err})"
        )))
    })
}

#[cfg(test)]
mod tests {
    use reqwest::StatusCode;
    use reqwest::header::HeaderMap;
    use tokio::time::Instant;

    use super::*;

    fn answer(body: &str) -> Answer {
        Answer {
            status: StatusCode::BAD_REQUEST,
            headers: HeaderMap::new(),
            body: body.as_bytes().to_vec(),
            received: Instant::now(),
        }
    }

    #[test]
    fn a_refused_set_names_okta_s_err_and_what_to_check() {
        let error = set_refused(&answer(
            r#"{"err":"invalid_issuer","description":"Invalid issuer 'https://x.example'."}"#,
        ));
        let text = error.to_string();
        assert!(matches!(error, OktaApiError::BadRequest(_)), "{error:?}");
        assert!(
            text.contains("invalid_issuer: Invalid issuer 'https://x.example'."),
            "{text}"
        );
        assert!(
            text.contains("issuer of an active security events provider"),
            "{text}"
        );
        let audience = set_refused(&answer(r#"{"err":"invalid_audience","description":"x"}"#));
        assert!(audience.to_string().contains("org_url"), "{audience}");
        let key = set_refused(&answer(r#"{"err":"invalid_key","description":"x"}"#));
        assert!(key.to_string().contains("jwks_url"), "{key}");
        let garbled = set_refused(&answer("<html>bad gateway</html>"));
        assert!(
            garbled.to_string().contains("<html>bad gateway"),
            "{garbled}"
        );
    }
}
