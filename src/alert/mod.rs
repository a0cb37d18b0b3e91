//! The alert: the one schema every sink delivers (documented field by field in docs/alerts.md).
//!
//! Fields copied from Okta keep Okta's camelCase names (`eventType`, `alternateId`, `ipAddress`), so
//! they read the same as in the System Log; fields factorwatch adds are snake_case.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use serde_json::value::RawValue;
use serde_json::{Map, Value};
use uuid::Uuid;

use crate::okta::event::{LogEvent, scalar_text};
use crate::okta::{Delivery, Origin};

mod attack;
mod context;
pub mod ecs;
mod format;
mod incident;
pub mod ocsf;
mod okta_context;
mod response;

pub use context::{InitiatedBy, MfaContext};
pub use format::AlertFormat;
pub use incident::{Incident, IncidentAlert, IncidentStep, MAX_ALSO, MAX_STEPS, incident_id};
pub use okta_context::{ActorContext, FactorLeft, FailedLookup, OktaContext, TargetContext};
pub use response::{ActionOutcome, ActionRecord, action_id};

/// Namespace of alert ids (UUIDv5): fixed forever, so ids stay stable across versions and replicas.
const ALERT_ID_NAMESPACE: Uuid = Uuid::from_u128(0x7d3c_8f52_1a4e_4b0c_9e2f_6a1d_5c8b_3f70);

/// The alert id: a pure function of the rule and the event, so a redelivered or replayed event
/// yields the same id and every sink can de-duplicate on it.
pub fn alert_id(rule_id: &str, event_key: &str) -> String {
    Uuid::new_v5(
        &ALERT_ID_NAMESPACE,
        format!("{rule_id}\n{event_key}").as_bytes(),
    )
    .to_string()
}

/// The alert id of `rule_id` on `event_key` as raised in `org`. Without an org (a single-org
/// install) it is [`alert_id`] itself, so existing ids stay the same; with one, the org is part
/// of the key, so the same event uuid in two orgs never yields the same id at a shared sink.
pub fn org_alert_id(org: Option<&str>, rule_id: &str, event_key: &str) -> String {
    match org {
        None => alert_id(rule_id, event_key),
        Some(org) => alert_id(rule_id, &format!("org:{org}\n{event_key}")),
    }
}

/// One alert: a rule matched an Okta event.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Alert {
    /// Deterministic id, see [`org_alert_id`]. Sinks use it as their idempotency key.
    pub id: String,
    /// The `[[okta.orgs]]` name of the org whose hook received the event; absent on the
    /// top-level org of a single-org install, so its alerts read as they always did.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub org: Option<String>,
    /// The rule that matched.
    pub rule: RuleRef,
    /// The alert's level: the rule's, raised when the context shows more risk (see `context`).
    /// Sink filters and `{level}` use this one.
    pub level: Level,
    /// The essentials of the event that matched.
    pub event: EventSummary,
    /// Who did it (`actor` of the LogEvent).
    pub actor: Option<Principal>,
    /// The users acted on (the `target` entries of type `User`).
    pub targets: Vec<Principal>,
    /// Where the request came from.
    pub client: ClientInfo,
    /// Which Okta org and hook delivered the event.
    pub okta: OktaRef,
    /// Who-did-what context, on alerts about `user.mfa.*` events.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub context: Option<MfaContext>,
    /// Live Okta context (the target's factors left, roles, groups and status; the actor's
    /// roles), on MFA alerts of an org with `[okta.context] enabled`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub okta_context: Option<OktaContext>,
    /// On alerts of correlation rules: what was correlated, over which window.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub correlation: Option<CorrelationInfo>,
    /// The incident of the target user this alert belongs to, as it stood once this alert was
    /// folded in; absent on alerts about no user, with `incident_window = "0s"`, or when the
    /// incident store could not be reached.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub incident: Option<Incident>,
    /// For a sink with `notify = "first"`: how many alerts of this incident were not delivered
    /// to it since its last delivery (repeats of a rule it was already sent).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub suppressed: Option<u64>,
    /// On the copy of an alert that reports a response's action (`[[responses]]`): what was
    /// done about the alert, or why nothing was. Absent on alerts themselves.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub response: Option<ActionRecord>,
    /// When factorwatch stored the batch (RFC 3339, UTC).
    pub received_at: String,
    /// How the event came: `event_hook` (pushed by Okta) or `system_log` (read from the System
    /// Log by reconciliation or `backfill`, because the hook never brought it).
    #[serde(default)]
    pub source: Delivery,
    /// Milliseconds from Okta's `published` to `received_at`: how late the event reached
    /// factorwatch. Absent when the event has no readable `published`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub arrival_delay_ms: Option<u64>,
    /// The LogEvent exactly as Okta sent it, unknown fields included.
    pub raw_event: Box<RawValue>,
}

/// What a correlation alert correlated. The alert's event is the one that completed the
/// pattern (for `absence`, the one that opened the timer that ran out).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CorrelationInfo {
    /// `event_count`, `value_count`, `temporal`, `temporal_ordered`, or `absence`.
    pub kind: String,
    /// The `group-by` fields and their values, such as `factorwatch.user`.
    pub group: BTreeMap<String, String>,
    /// The figure that met the condition: events, distinct values, or rules seen (0 for absence).
    pub value: f64,
    /// The window, in seconds.
    pub timespan_secs: u64,
    /// The rules correlated, as the correlation rule names them.
    pub rules: Vec<String>,
}

/// Sigma rule levels, in increasing order of severity.
#[derive(
    Debug, Clone, Copy, Default, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize,
)]
#[serde(rename_all = "lowercase")]
pub enum Level {
    /// Of interest, no action expected.
    Informational,
    /// Low.
    Low,
    /// Medium: the level of the built-in rules, and of rules that set none.
    #[default]
    Medium,
    /// High.
    High,
    /// Critical.
    Critical,
}

impl Level {
    /// The lower-case name used in rules, alerts and configuration.
    pub fn as_str(self) -> &'static str {
        match self {
            Level::Informational => "informational",
            Level::Low => "low",
            Level::Medium => "medium",
            Level::High => "high",
            Level::Critical => "critical",
        }
    }
}

impl std::fmt::Display for Level {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The rule behind an alert.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct RuleRef {
    /// Sigma rule id.
    pub id: String,
    /// Sigma rule title.
    pub title: String,
    /// Sigma level: informational, low, medium, high or critical.
    pub level: Level,
    /// Sigma rule author.
    pub author: Option<String>,
    /// Sigma tags, such as `attack.t1556.006`.
    pub tags: Vec<String>,
    /// Where to read more about what the rule detects.
    #[serde(default)]
    pub references: Vec<String>,
    /// Known benign causes, for the responder's triage.
    #[serde(default)]
    pub falsepositives: Vec<String>,
}

/// The fields of the matched event a person reads first.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct EventSummary {
    /// Okta's event uuid (absent when Okta sent none).
    pub uuid: Option<String>,
    /// Okta event type.
    #[serde(rename = "eventType")]
    pub event_type: Option<String>,
    /// When Okta recorded the event.
    pub published: Option<String>,
    /// Okta's human-readable description.
    #[serde(rename = "displayMessage")]
    pub display_message: Option<String>,
    /// Result and reason.
    pub outcome: Outcome,
}

/// `outcome` of a LogEvent.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct Outcome {
    /// `SUCCESS`, `FAILURE`, ... as Okta sent it (case preserved).
    pub result: Option<String>,
    /// Such as "User reset FIDO_WEBAUTHN factor".
    pub reason: Option<String>,
}

/// An actor or a target.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Principal {
    /// Okta id (`00u...` for users).
    pub id: Option<String>,
    /// `User`, `SystemPrincipal`, `PublicClientApp`, ...
    #[serde(rename = "type")]
    pub kind: Option<String>,
    /// Login or e-mail.
    #[serde(rename = "alternateId")]
    pub alternate_id: Option<String>,
    /// Display name.
    #[serde(rename = "displayName")]
    pub display_name: Option<String>,
}

impl Principal {
    /// The login, else the display name, else the id.
    pub fn label(&self) -> &str {
        self.alternate_id
            .as_deref()
            .or(self.display_name.as_deref())
            .or(self.id.as_deref())
            .unwrap_or("unknown")
    }
}

/// `client` of a LogEvent, flattened to what a responder needs.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct ClientInfo {
    /// Source IP address as Okta saw it.
    #[serde(rename = "ipAddress")]
    pub ip_address: Option<String>,
    /// Raw user agent string.
    #[serde(rename = "userAgent")]
    pub user_agent: Option<String>,
    /// City, state, country and postal code, when Okta resolved them.
    pub geo: Option<Map<String, Value>>,
}

/// Origin of the batch, from the envelope.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct OktaRef {
    /// Okta org host, such as `acme.okta.com`.
    pub org: Option<String>,
    /// Event hook id.
    pub hook_id: Option<String>,
    /// Envelope `eventId` of the delivery that carried the event.
    pub delivery_id: Option<String>,
}

/// How long after Okta published `event` it was stored at `received_at` (0 when the clocks put it
/// earlier).
fn arrival_delay_ms(event: LogEvent<'_>, received_at: &str) -> Option<u64> {
    let published = event.published_ms()?;
    let received = crate::clock::parse_rfc3339_ms(received_at)?;
    Some(received.saturating_sub(published).max(0) as u64)
}

/// Everything needed to build an alert besides the rule.
pub struct Matched<'a> {
    /// The parsed event.
    pub event: LogEvent<'a>,
    /// Its exact JSON.
    pub raw: &'a RawValue,
    /// What it is de-duplicated on (uuid or content hash).
    pub key: &'a str,
    /// Org and hook.
    pub origin: &'a Origin,
    /// Envelope `eventId`.
    pub delivery_id: Option<&'a str>,
    /// When the batch was stored.
    pub received_at: &'a str,
}

impl Alert {
    /// Builds the alert for `rule` matching `matched`.
    pub fn build(rule: &RuleRef, matched: &Matched<'_>) -> Self {
        let event = matched.event;
        Alert {
            id: alert_id(&rule.id, matched.key),
            org: None,
            rule: rule.clone(),
            level: rule.level,
            event: EventSummary {
                uuid: event.uuid(),
                event_type: event.event_type(),
                published: event.text("published"),
                display_message: event.text("displayMessage"),
                outcome: Outcome {
                    result: event.text("outcome.result"),
                    reason: event.text("outcome.reason"),
                },
            },
            actor: event.get("actor").map(principal),
            targets: event
                .targets()
                .iter()
                .filter(|t| t.get("type").and_then(Value::as_str) == Some("User"))
                .map(principal)
                .collect(),
            client: ClientInfo {
                ip_address: event.text("client.ipAddress"),
                user_agent: event.text("client.userAgent.rawUserAgent"),
                geo: event.get("client.geographicalContext").map(geography),
            },
            context: None,
            okta_context: None,
            correlation: None,
            incident: None,
            suppressed: None,
            response: None,
            okta: OktaRef {
                org: matched.origin.org.clone(),
                hook_id: matched.origin.hook_id.clone(),
                delivery_id: matched.delivery_id.map(str::to_owned),
            },
            received_at: matched.received_at.to_owned(),
            source: matched.origin.via,
            arrival_delay_ms: arrival_delay_ms(event, matched.received_at),
            raw_event: matched.raw.to_owned(),
        }
    }

    /// A clearly marked test alert (`factorwatch sinks test`), with a fresh id each time so
    /// de-duplicating destinations still show it.
    pub fn test_alert() -> Self {
        let rule = RuleRef {
            id: "factorwatch-sinks-test".into(),
            title: "factorwatch sinks test: not a real alert, ignore".into(),
            level: Level::Informational,
            author: Some("factorwatch".into()),
            tags: vec!["factorwatch.test".into()],
            ..Default::default()
        };
        let event_uuid = Uuid::new_v4().to_string();
        let now = crate::clock::rfc3339(crate::clock::now_ms());
        let raw = serde_json::json!({"uuid": event_uuid, "eventType": "factorwatch.sinks.test",
            "displayMessage": "Test alert sent by `factorwatch sinks test`", "published": now});
        Alert {
            id: alert_id(&rule.id, &event_uuid),
            org: None,
            level: rule.level,
            rule,
            event: EventSummary {
                uuid: Some(event_uuid),
                event_type: Some("factorwatch.sinks.test".into()),
                published: Some(now.clone()),
                display_message: Some("Test alert sent by `factorwatch sinks test`".into()),
                outcome: Outcome::default(),
            },
            actor: None,
            targets: Vec::new(),
            client: ClientInfo::default(),
            okta: OktaRef::default(),
            context: None,
            okta_context: None,
            correlation: None,
            incident: None,
            suppressed: None,
            response: None,
            received_at: now,
            source: Delivery::EventHook,
            arrival_delay_ms: None,
            raw_event: serde_json::value::to_raw_value(&raw).expect("JSON value serializes"),
        }
    }

    /// One sentence a person reads first: who did what to whom, from where. Used by the chat and
    /// paging sinks and the demo.
    pub fn summary(&self) -> String {
        let what = self
            .event
            .outcome
            .reason
            .as_deref()
            .or(self.event.display_message.as_deref())
            .or(self.event.event_type.as_deref())
            .unwrap_or("matched");
        let mut text = format!(
            "{}: {} -> {}: {what}",
            self.rule.title,
            self.actor
                .as_ref()
                .map_or("unknown actor", Principal::label),
            self.targets
                .first()
                .map_or("unknown user", Principal::label),
        );
        if let Some(ip) = &self.client.ip_address {
            text.push_str(&format!(" from {ip}"));
            let place: Vec<&str> = ["city", "country"]
                .iter()
                .filter_map(|key| self.client.geo.as_ref()?.get(*key)?.as_str())
                .collect();
            if !place.is_empty() {
                text.push_str(&format!(" ({})", place.join(", ")));
            }
        }
        text
    }

    /// Marks the alert as raised in `org` (a `[[okta.orgs]]` name) and derives its id again
    /// from the org, the rule and `event_key` (see [`org_alert_id`]).
    pub fn in_org(&mut self, org: &str, event_key: &str) {
        self.org = Some(org.to_owned());
        self.id = org_alert_id(Some(org), &self.rule.id, event_key);
    }

    /// The alert as one line of JSON.
    pub fn to_json(&self) -> String {
        serde_json::to_string(self).expect("an alert always serializes")
    }

    /// The alert as one line of JSON, ready to store in an outbox row. Serialized once and
    /// wrapped as it is: `RawValue::from_string` would parse the whole alert again to check JSON
    /// that serde_json itself just wrote.
    pub fn to_raw_json(&self) -> Box<RawValue> {
        serde_json::value::to_raw_value(self).expect("an alert always serializes")
    }
}

fn principal(value: &Value) -> Principal {
    let field = |name: &str| value.get(name).and_then(scalar_text);
    Principal {
        id: field("id"),
        kind: field("type"),
        alternate_id: field("alternateId"),
        display_name: field("displayName"),
    }
}

/// Keeps the scalar parts of `geographicalContext` (the nested geolocation stays in `raw_event`).
fn geography(value: &Value) -> Map<String, Value> {
    value
        .as_object()
        .into_iter()
        .flatten()
        .filter(|(_, v)| !v.is_null() && !v.is_object())
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn alert_id_is_a_pure_function_of_rule_and_event() {
        assert_eq!(alert_id("r1", "e1"), alert_id("r1", "e1"));
        assert_ne!(alert_id("r1", "e1"), alert_id("r2", "e1"));
        assert_ne!(alert_id("r1", "e1"), alert_id("r1", "e2"));
        // The separator keeps ("a", "bc") and ("ab", "c") apart.
        assert_ne!(alert_id("a", "bc"), alert_id("ab", "c"));
    }

    #[test]
    fn org_alert_ids_keep_orgs_apart_and_single_org_ids_unchanged() {
        assert_eq!(org_alert_id(None, "r1", "e1"), alert_id("r1", "e1"));
        assert_ne!(
            org_alert_id(Some("acme"), "r1", "e1"),
            org_alert_id(Some("globex"), "r1", "e1")
        );
        assert_ne!(org_alert_id(Some("acme"), "r1", "e1"), alert_id("r1", "e1"));
        let mut alert = Alert::test_alert();
        let single: Value = serde_json::from_str(&alert.to_json()).unwrap();
        assert!(single.get("org").is_none(), "{single}");
        alert.in_org("acme", "e1");
        assert_eq!(alert.id, org_alert_id(Some("acme"), &alert.rule.id, "e1"));
        assert!(alert.to_json().contains(r#""org":"acme""#));
    }

    #[test]
    fn builds_from_a_sparse_event() {
        let raw = RawValue::from_string(
            r#"{"uuid":"u1","eventType":"user.mfa.factor.reset_all","actor":null,"target":[{"type":"User","alternateId":"bob@example.com"},{"type":"AppInstance"}],"newField":{"x":1}}"#.into(),
        )
        .unwrap();
        let value: Value = serde_json::from_str(raw.get()).unwrap();
        let rule = RuleRef {
            id: "r".into(),
            title: "t".into(),
            level: Level::Medium,
            author: None,
            tags: vec![],
            ..Default::default()
        };
        let alert = Alert::build(
            &rule,
            &Matched {
                event: LogEvent(&value),
                raw: &raw,
                key: "u1",
                origin: &Origin::default(),
                delivery_id: None,
                received_at: "2026-01-01T00:00:00Z",
            },
        );
        assert_eq!(alert.actor, None);
        assert_eq!(alert.targets.len(), 1);
        assert_eq!(
            alert.targets[0].alternate_id.as_deref(),
            Some("bob@example.com")
        );
        assert!(alert.to_json().contains(r#""newField":{"x":1}"#));
    }
}
