//! The Event Hooks API (`/api/v1/eventHooks`): list, create, replace, activate and verify.
//!
//! Source: Okta's Management API spec, tag EventHook, gathered in `../shared/okta/api/README.md`
//! §d. A hook answers without its secret (`authScheme.value` is write-only) and echoes the auth
//! header's name lowercased in Okta's examples, which is why [`EventHook::auth_header`] is
//! compared without case. A replace is the whole object: it must carry the secret again.

use reqwest::Method;
use serde::{Deserialize, Serialize};

use super::transport::{Answer, Call, Endpoint};
use super::{Failure, OktaApiError, OktaClient};
use crate::secret::Secret;

/// The collection's path, below `org_url`.
const HOOKS_PATH: &str = "api/v1/eventHooks";
/// What to check when Okta refuses a create or a replace.
const HOOKS_ADVICE: &str = "check the hook's URL (HTTPS), its event types (hook-eligible, at most 300) \
     and the auth header";

/// An event hook as Okta answers it (the members factorwatch reads).
#[derive(Debug, Clone, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct EventHook {
    /// Okta's id (`who…`).
    pub id: String,
    /// The hook's name, unique only by convention.
    pub name: String,
    /// `ACTIVE` or `INACTIVE`.
    pub status: String,
    /// `VERIFIED` or `UNVERIFIED`: only an active, verified hook receives events.
    pub verification_status: String,
    /// The subscribed event types.
    pub events: Subscription,
    /// Where and how Okta delivers.
    pub channel: Channel,
    /// When the hook last changed (RFC 3339).
    #[serde(default)]
    pub last_updated: Option<String>,
    /// Who created it: a user id, or an app's client id.
    #[serde(default)]
    pub created_by: Option<String>,
}

/// `events`: the subscription.
#[derive(Debug, Clone, Deserialize, Serialize, PartialEq, Eq)]
pub struct Subscription {
    /// Always `EVENT_TYPE`.
    #[serde(rename = "type")]
    pub kind: String,
    /// The event types.
    pub items: Vec<String>,
}

/// `channel` as answered.
#[derive(Debug, Clone, Deserialize, PartialEq, Eq)]
pub struct Channel {
    /// The delivery settings.
    pub config: ChannelConfig,
}

/// `channel.config` as answered (no secret).
#[derive(Debug, Clone, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct ChannelConfig {
    /// The hook's URL.
    pub uri: String,
    /// Custom headers (their values are sent back in clear by Okta: no secrets there).
    #[serde(default)]
    pub headers: Option<Vec<Header>>,
    /// The auth header, without its value.
    #[serde(default)]
    pub auth_scheme: Option<AuthScheme>,
}

/// A custom header of a hook.
#[derive(Debug, Clone, Deserialize, Serialize, PartialEq, Eq)]
pub struct Header {
    /// The header's name.
    pub key: String,
    /// Its value.
    pub value: String,
}

/// `authScheme` as answered: the header's name only.
#[derive(Debug, Clone, Deserialize, PartialEq, Eq)]
pub struct AuthScheme {
    /// The header Okta puts the secret in.
    pub key: String,
}

impl EventHook {
    /// Active and verified: the only state in which Okta delivers.
    pub fn delivers(&self) -> bool {
        self.status == "ACTIVE" && self.verification_status == "VERIFIED"
    }

    /// The auth header's name, as Okta echoes it.
    pub fn auth_header(&self) -> Option<&str> {
        self.channel
            .config
            .auth_scheme
            .as_ref()
            .map(|scheme| scheme.key.as_str())
    }
}

/// What factorwatch registers: the whole writable hook, secret included (a replace needs it).
/// `Debug` shows no secret.
#[derive(Debug, Clone)]
pub struct HookDefinition {
    /// The hook's name (`[okta] hook_name`).
    pub name: String,
    /// The public URL of factorwatch's hook path.
    pub uri: String,
    /// The event types, in a stable order.
    pub event_types: Vec<String>,
    /// The auth header's name.
    pub auth_header: String,
    /// The secret Okta will send.
    pub secret: Secret,
}

impl HookDefinition {
    /// The create or replace body (README §d).
    fn body(&self) -> Vec<u8> {
        let body = serde_json::json!({
            "name": self.name,
            "description": "factorwatch: MFA-tampering alerts (managed by `factorwatch okta register`)",
            "events": {"type": "EVENT_TYPE", "items": self.event_types},
            "channel": {
                "type": "HTTP",
                "version": "1.0.0",
                "config": {
                    "uri": self.uri,
                    "authScheme": {
                        "type": "HEADER",
                        "key": self.auth_header,
                        "value": self.secret.expose(),
                    },
                },
            },
        });
        serde_json::to_vec(&body).expect("a JSON value serializes")
    }
}

impl OktaClient {
    /// Every event hook of the org (`GET /api/v1/eventHooks`; Okta does not page it).
    pub async fn list_event_hooks(&self) -> Result<Vec<EventHook>, OktaApiError> {
        let url = self.api_url(HOOKS_PATH, &[])?;
        let call = Call::get(Endpoint::EventHooks, url, HOOKS_ADVICE);
        self.call(&call, read_json).await
    }

    /// Creates `hook` (Okta creates it `ACTIVE` and `UNVERIFIED`). Not retried once it may have
    /// reached Okta: a second try could create a second hook.
    pub async fn create_event_hook(
        &self,
        hook: &HookDefinition,
    ) -> Result<EventHook, OktaApiError> {
        let call = self.hook_call(Method::POST, &[], Some(hook.body()), false)?;
        self.call(&call, read_json).await
    }

    /// Replaces the hook `id` with `hook` (a change of URL or secret makes it `UNVERIFIED`).
    pub async fn replace_event_hook(
        &self,
        id: &str,
        hook: &HookDefinition,
    ) -> Result<EventHook, OktaApiError> {
        let call = self.hook_call(Method::PUT, &[id], Some(hook.body()), true)?;
        self.call(&call, read_json).await
    }

    /// Activates the hook `id`.
    pub async fn activate_event_hook(&self, id: &str) -> Result<EventHook, OktaApiError> {
        self.lifecycle(id, "activate").await
    }

    /// Asks Okta to verify the hook `id`: Okta sends its challenge to the hook's URL now. Okta
    /// says only that the call failed ("execution failed"); the caller explains why.
    pub async fn verify_event_hook(&self, id: &str) -> Result<EventHook, OktaApiError> {
        self.lifecycle(id, "verify").await
    }

    /// `POST …/{id}/lifecycle/{action}`.
    async fn lifecycle(&self, id: &str, action: &str) -> Result<EventHook, OktaApiError> {
        let call = self.hook_call(Method::POST, &[id, "lifecycle", action], None, true)?;
        self.call(&call, read_json).await
    }

    /// A call below the collection's path.
    fn hook_call(
        &self,
        method: Method,
        segments: &[&str],
        body: Option<Vec<u8>>,
        repeatable: bool,
    ) -> Result<Call, OktaApiError> {
        Ok(Call {
            endpoint: Endpoint::EventHooks,
            method,
            url: self.api_url(HOOKS_PATH, segments)?,
            body,
            repeatable,
            advice: HOOKS_ADVICE,
            not_found: None,
            single_try: false,
        })
    }
}

/// A 2xx answer read as `T`.
fn read_json<T: serde::de::DeserializeOwned>(
    _url: &reqwest::Url,
    answer: &Answer,
) -> Result<T, Failure> {
    serde_json::from_slice(&answer.body).map_err(|err| {
        Failure::Final(OktaApiError::BadResponse(format!(
            "the Event Hooks answer is not what the API documents ({err})"
        )))
    })
}
