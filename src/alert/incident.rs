//! The incident an alert belongs to: every alert about one target user within
//! `[rules] incident_window` of the last, as one evolving story (docs/alerts.md, "incident").
//! The detector folds alerts into incidents (`detect::incident`); the alert carries a copy of
//! its incident as it stood once the alert was folded in.

use serde::{Deserialize, Serialize};
use uuid::Uuid;

/// Namespace of incident ids (UUIDv5), fixed forever like the alert ids'.
const INCIDENT_ID_NAMESPACE: Uuid = Uuid::from_u128(0x3b9e_61c4_8d27_4f15_a0c8_52e7_19d6_04aa);

/// Most steps an incident keeps; later steps are counted in `steps_omitted`.
pub const MAX_STEPS: usize = 32;
/// Most other alerts an incident lists; later ones are counted in `also_omitted`.
pub const MAX_ALSO: usize = 32;

/// The incident id: stable for one story, the same on every replica, a pure function of the
/// org, the user and the alert that opened the incident.
pub fn incident_id(org: &str, user: &str, first_alert_id: &str) -> String {
    Uuid::new_v5(
        &INCIDENT_ID_NAMESPACE,
        format!("{org}\n{user}\n{first_alert_id}").as_bytes(),
    )
    .to_string()
}

/// Alerts about one target user within the incident window of each other.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Incident {
    /// Stable id (see [`incident_id`]): group or page on it.
    pub id: String,
    /// The login of the user the incident is about (`factorwatch.user`).
    pub user: String,
    /// Time of the earliest event in the incident (RFC 3339).
    pub first_seen: String,
    /// Time of the latest event in the incident (RFC 3339).
    pub last_seen: String,
    /// What happened, in time order: one step per event that raised an alert (a correlation's
    /// alert is the step of the event that completed it).
    pub steps: Vec<IncidentStep>,
    /// Steps left out once `steps` held [`MAX_STEPS`] (the latest in time are left out).
    #[serde(default)]
    pub steps_omitted: u64,
    /// The other alerts folded in: those on an event that is a step already (another rule on
    /// it, an absence correlation that ran out on it).
    pub also: Vec<IncidentAlert>,
    /// Alerts left out of `also` once it held [`MAX_ALSO`].
    #[serde(default)]
    pub also_omitted: u64,
}

/// One step of an incident.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct IncidentStep {
    /// When it happened (the event's `published`, else when it was received; RFC 3339).
    pub at: String,
    /// The step in words, such as "factor removed (push) by admin@example.com from 192.0.2.7".
    pub what: String,
    /// The alert of this step.
    pub alert_id: String,
    /// The rule of that alert.
    pub rule_id: String,
    /// The rule's title.
    pub rule: String,
    /// Okta's uuid of the event.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub event_uuid: Option<String>,
    /// Okta's event type, such as `user.session.start`.
    #[serde(rename = "eventType", default, skip_serializing_if = "Option::is_none")]
    pub event_type: Option<String>,
}

/// An alert folded into an incident that is not a step of its own.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct IncidentAlert {
    /// When (as in [`IncidentStep::at`]).
    pub at: String,
    /// The alert.
    pub alert_id: String,
    /// Its rule.
    pub rule_id: String,
    /// The rule's title.
    pub rule: String,
}

impl Incident {
    /// True when the alert `alert_id` is already in this incident (a step or one of `also`).
    pub fn holds(&self, alert_id: &str) -> bool {
        self.steps.iter().any(|step| step.alert_id == alert_id)
            || self.also.iter().any(|other| other.alert_id == alert_id)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_incident_id_depends_on_org_user_and_first_alert() {
        let id = incident_id("acme.okta.com", "bob@acme.com", "a1");
        assert_eq!(id, incident_id("acme.okta.com", "bob@acme.com", "a1"));
        assert_ne!(id, incident_id("acme.okta.com", "eve@acme.com", "a1"));
        assert_ne!(id, incident_id("globex.okta.com", "bob@acme.com", "a1"));
        assert_ne!(id, incident_id("acme.okta.com", "bob@acme.com", "a2"));
    }
}
