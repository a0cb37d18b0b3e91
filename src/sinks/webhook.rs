//! The webhook sink: POSTs the alert JSON to any HTTPS endpoint, signed the Standard Webhooks way
//! (<https://www.standardwebhooks.com/>), so receivers verify it with an existing library:
//! - `webhook-id`: the alert id (receivers de-duplicate on it);
//! - `webhook-timestamp`: Unix seconds of this attempt;
//! - `webhook-signature`: `v1,` + base64 of HMAC-SHA256 over `{id}.{timestamp}.{body}`, keyed with
//!   the base64-decoded secret (`whsec_` prefix optional).

use base64::Engine;
use base64::engine::general_purpose::STANDARD as BASE64;
use hmac::{Hmac, Mac};
use serde::{Deserialize, Serialize};
use sha2::Sha256;

use super::{Delivery, PublishFuture, Sink, http};
use crate::secret::Secret;

/// `type = "webhook"` keys.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct WebhookConfig {
    /// The endpoint, `https://...` (plain `http://` only for local testing).
    pub url: String,
    /// The signing secret, `whsec_` followed by base64 (as Standard Webhooks libraries generate),
    /// or plain base64. Env-friendly: put the config in a secret store, never in a repository.
    pub secret: Secret,
}

impl WebhookConfig {
    /// The signing key `secret` encodes; an error says what is wrong with it (never the value).
    pub fn signing_key(&self) -> anyhow::Result<Vec<u8>> {
        let encoded = self.secret.expose();
        let key = BASE64
            .decode(encoded.strip_prefix("whsec_").unwrap_or(encoded))
            .map_err(|_| anyhow::anyhow!("secret must be base64, optionally prefixed whsec_"))?;
        anyhow::ensure!(!key.is_empty(), "secret is empty");
        Ok(key)
    }
}

/// Delivers signed webhooks.
pub struct WebhookSink {
    name: String,
    url: String,
    key: Vec<u8>,
    client: reqwest::Client,
}

impl std::fmt::Debug for WebhookSink {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("WebhookSink")
            .field("name", &self.name)
            .field("url", &self.url)
            .finish_non_exhaustive()
    }
}

impl WebhookSink {
    /// Builds the sink; fails when the secret is not base64.
    pub fn new(name: &str, config: &WebhookConfig) -> anyhow::Result<Self> {
        Ok(Self {
            name: name.to_owned(),
            url: config.url.clone(),
            key: config.signing_key()?,
            client: http::client()?,
        })
    }

    /// The `webhook-signature` value for one message.
    pub fn signature(&self, id: &str, timestamp: i64, body: &str) -> String {
        let mut mac = Hmac::<Sha256>::new_from_slice(&self.key).expect("HMAC takes any key length");
        mac.update(format!("{id}.{timestamp}.{body}").as_bytes());
        format!("v1,{}", BASE64.encode(mac.finalize().into_bytes()))
    }
}

impl Sink for WebhookSink {
    fn name(&self) -> &str {
        &self.name
    }

    fn publish<'a>(&'a self, delivery: Delivery<'a>) -> PublishFuture<'a> {
        Box::pin(async move {
            let id = &delivery.alert.id;
            let timestamp = time::OffsetDateTime::now_utc().unix_timestamp();
            let request = self
                .client
                .post(&self.url)
                .header("content-type", "application/json")
                .header("webhook-id", id)
                .header("webhook-timestamp", timestamp.to_string())
                .header(
                    "webhook-signature",
                    self.signature(id, timestamp, delivery.payload),
                )
                .body(delivery.payload.to_owned());
            http::send(request, &format!("webhook {}", self.url)).await
        })
    }
}
