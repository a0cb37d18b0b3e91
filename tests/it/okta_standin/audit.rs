//! The System Log events of changes to event hooks, appended to the stand-in's log so that a
//! poller of `/api/v1/logs` sees them.
//!
//! Event types: `event_hook.created`, `.activated`, `.deactivated`, `.updated`, `.deleted`,
//! `.verified`, the names of Okta's Event Types catalog (README §g, [CAT]); none is hook-eligible,
//! so only the System Log has them. The catalog lists each type, not the values of its events:
//! `displayMessage`, the target's `type` (`EventHook`) and the shape below follow the `LogEvent`
//! schema and the samples of `factorwatch::okta::samples`, not a captured event (none is public).

use factorwatch::okta::samples::SampleUser;
use serde_json::{Value, json};
use time::OffsetDateTime;

use super::auth::Principal;

/// The stand-in listens on 127.0.0.1 only, so that is every caller's address.
const CALLER_IP: &str = "127.0.0.1";

/// Who did something, as a System Log `actor` names them.
#[derive(Debug, Clone, PartialEq)]
pub struct Actor {
    /// `actor.id`: a user id (`00u…`) or an app's client id (`0oa…`).
    pub id: String,
    /// `actor.type`: `User` or `PublicClientApp`.
    pub kind: String,
    /// `actor.alternateId`: a login, or the client id.
    pub alternate_id: String,
    /// `actor.displayName`.
    pub display_name: String,
    /// `transaction.detail.requestApiTokenId` when an SSWS token was used.
    token_id: Option<String>,
}

impl Actor {
    /// An admin acting in the Admin Console (as an attacker with an admin session would).
    pub fn admin(user: &SampleUser) -> Self {
        Actor {
            id: user.id.clone(),
            kind: "User".to_owned(),
            alternate_id: user.login.clone(),
            display_name: user.display_name.clone(),
            token_id: None,
        }
    }

    /// An OAuth service app acting as itself. `PublicClientApp` is the actor type factorwatch's
    /// docs (alerts.md, rules.md) show for API clients; shared/okta is silent on it.
    pub fn client_app(client_id: &str) -> Self {
        Actor {
            id: client_id.to_owned(),
            kind: "PublicClientApp".to_owned(),
            alternate_id: client_id.to_owned(),
            display_name: client_id.to_owned(),
            token_id: None,
        }
    }

    /// The actor of an authenticated API call: an SSWS token's admin, or the service app.
    pub(super) fn of(principal: &Principal) -> Self {
        match principal {
            Principal::Admin { user, token_id } => Actor {
                token_id: Some(token_id.clone()),
                ..Actor::admin(user)
            },
            Principal::Client { client_id } => Actor::client_app(client_id),
        }
    }

    fn to_json(&self) -> Value {
        json!({
            "id": self.id, "type": self.kind, "alternateId": self.alternate_id,
            "displayName": self.display_name, "detailEntry": null,
        })
    }
}

/// A change to a hook: what happened, to which hook, by whom, through which request.
pub(super) struct Change<'a> {
    /// `event_hook.<verb>`: `created`, `activated`, `deactivated`, `updated`, `deleted`,
    /// `verified`.
    pub(super) verb: &'a str,
    pub(super) hook_id: &'a str,
    pub(super) hook_name: &'a str,
    pub(super) actor: &'a Actor,
    /// The API path and query of the request, `None` for an Admin Console change.
    pub(super) request_uri: Option<&'a str>,
    /// `outcome.result`: `SUCCESS`, or `FAILURE` for a failed verification.
    pub(super) success: bool,
}

impl Change<'_> {
    /// The `LogEvent` of the change, published now.
    pub(super) fn event(&self) -> Value {
        let request_id = uuid::Uuid::new_v4().simple().to_string();
        let detail = match &self.actor.token_id {
            Some(token_id) => json!({"requestApiTokenId": token_id}),
            None => json!({}),
        };
        json!({
            "uuid": uuid::Uuid::new_v4().to_string(),
            "published": now(),
            "eventType": format!("event_hook.{}", self.verb),
            "version": "0",
            "severity": "INFO",
            "displayMessage": display_message(self.verb),
            "actor": self.actor.to_json(),
            "client": {
                "ipAddress": CALLER_IP, "zone": "null", "device": "Unknown", "id": null,
                "userAgent": null, "geographicalContext": null,
            },
            "outcome": {
                "result": if self.success { "SUCCESS" } else { "FAILURE" }, "reason": null,
            },
            "target": [{
                "id": self.hook_id, "type": "EventHook", "alternateId": self.hook_name,
                "displayName": self.hook_name, "detailEntry": null,
            }],
            "transaction": {"type": "WEB", "id": request_id, "detail": detail},
            "debugContext": {"debugData": {
                "requestId": request_id, "requestUri": self.request_uri.map(without_query),
                "url": self.request_uri,
            }},
            "authenticationContext": {"externalSessionId": "unknown"},
            "securityContext": {},
            "request": {"ipChain": [{"ip": CALLER_IP}]},
        })
    }
}

/// "Create event hook", ... (the Admin Console's wording is not documented; plain verbs).
fn display_message(verb: &str) -> String {
    let action = match verb {
        "created" => "Create",
        "activated" => "Activate",
        "deactivated" => "Deactivate",
        "updated" => "Update",
        "deleted" => "Delete",
        _ => "Verify",
    };
    format!("{action} event hook")
}

fn without_query(uri: &str) -> &str {
    uri.split('?').next().unwrap_or_default()
}

/// Now, RFC 3339 with milliseconds and `Z`, like Okta's timestamps (`2023-07-07T13:41:56.000Z`).
pub(super) fn now() -> String {
    let format = time::macros::format_description!(
        "[year]-[month]-[day]T[hour]:[minute]:[second].[subsecond digits:3]Z"
    );
    OffsetDateTime::now_utc()
        .format(&format)
        .expect("now formats")
}
