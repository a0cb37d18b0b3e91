//! The alert as an OCSF Detection Finding (class 2004, OCSF 1.7.0), for sinks with
//! `format = "ocsf"`: what AWS Security Lake, Splunk and other OCSF consumers ingest.
//!
//! The rule is the finding's analytic, its MITRE ATT&CK tags its `attacks`, the actor and the
//! targets users in the evidence, the request's source its `src_endpoint`, the Okta event the
//! evidence's `data` and the finding's `raw_data`, the incident its `metadata.correlation_uid`.
//! What OCSF has no place for (the level, the context, the incident's steps) is kept under
//! `unmapped.factorwatch`. The finding's `uid` is the alert id, so consumers de-duplicate on it.

use serde_json::{Value, json};

use super::attack::{AttackMapping, parent_technique};
use super::format::Place;
use super::{Alert, Level, Principal};
use crate::clock::parse_rfc3339_ms;

/// The OCSF version the findings follow (`metadata.version`).
pub const OCSF_VERSION: &str = "1.7.0";

/// Detection Finding's class, in the Findings category; activity 1 is Create.
const CLASS_UID: u64 = 2004;
const CATEGORY_UID: u64 = 2;
const ACTIVITY_CREATE: u64 = 1;

/// The finding for `alert`.
pub fn detection_finding(alert: &Alert) -> Value {
    let (severity_id, severity) = severity(alert.level);
    let raw: Value = serde_json::from_str(alert.raw_event.get()).unwrap_or(Value::Null);
    let received = parse_rfc3339_ms(&alert.received_at);
    let time = alert
        .event
        .published
        .as_deref()
        .and_then(parse_rfc3339_ms)
        .or(received)
        .unwrap_or_default();
    let mut finding = json!({
        "class_uid": CLASS_UID,
        "class_name": "Detection Finding",
        "category_uid": CATEGORY_UID,
        "category_name": "Findings",
        "activity_id": ACTIVITY_CREATE,
        "activity_name": "Create",
        "type_uid": CLASS_UID * 100 + ACTIVITY_CREATE,
        "type_name": "Detection Finding: Create",
        "severity_id": severity_id,
        "severity": severity,
        "status_id": 1,
        "status": "New",
        "is_alert": true,
        "time": time,
        "message": alert.summary(),
        "metadata": metadata(alert, received),
        "finding_info": finding_info(alert, received),
        "evidences": [evidence(alert, &raw)],
        "resources": alert.targets.iter().map(resource).collect::<Vec<_>>(),
        "raw_data": alert.raw_event.get(),
        "unmapped": {"factorwatch": super::format::kept_whole(alert)},
    });
    if let Some(uuid) = &alert.event.uuid {
        finding["metadata"]["original_event_uid"] = uuid.as_str().into();
    }
    finding
}

/// OCSF's `severity_id` and `severity` for a level.
fn severity(level: Level) -> (u64, &'static str) {
    match level {
        Level::Informational => (1, "Informational"),
        Level::Low => (2, "Low"),
        Level::Medium => (3, "Medium"),
        Level::High => (4, "High"),
        Level::Critical => (5, "Critical"),
    }
}

/// Who made the finding, its version and uid, and the incident that groups it.
fn metadata(alert: &Alert, received: Option<i64>) -> Value {
    let mut metadata = json!({
        "version": OCSF_VERSION,
        "product": {
            "name": "factorwatch",
            "vendor_name": "factorwatch",
            "version": env!("CARGO_PKG_VERSION"),
        },
        "uid": alert.id,
        "log_provider": "Okta",
        // `event_hook` or `system_log`: how the event reached factorwatch.
        "log_name": serde_json::to_value(alert.source).unwrap_or_default(),
    });
    if let Some(received) = received {
        metadata["logged_time"] = received.into();
    }
    if let Some(org) = alert.org.as_ref().or(alert.okta.org.as_ref()) {
        metadata["tenant_uid"] = org.as_str().into();
    }
    if let Some(incident) = &alert.incident {
        metadata["correlation_uid"] = incident.id.as_str().into();
    }
    metadata
}

/// The rule as the analytic, its ATT&CK mapping, and the incident's time span.
fn finding_info(alert: &Alert, received: Option<i64>) -> Value {
    let rule = &alert.rule;
    let mut info = json!({
        "uid": alert.id,
        "title": rule.title,
        "desc": alert.summary(),
        "analytic": {
            "uid": rule.id,
            "name": rule.title,
            "type_id": 1,
            "type": "Rule",
        },
        "attacks": attacks(&rule.tags),
        "types": alert.event.event_type.iter().collect::<Vec<_>>(),
        "tags": rule.tags.iter().map(|tag| json!({"name": "tag", "value": tag})).collect::<Vec<_>>(),
    });
    if let Some(received) = received {
        info["created_time"] = received.into();
    }
    if let Some(incident) = &alert.incident {
        let seen = |at: &str| parse_rfc3339_ms(at).map(Value::from);
        if let Some(first) = seen(&incident.first_seen) {
            info["first_seen_time"] = first;
        }
        if let Some(last) = seen(&incident.last_seen) {
            info["last_seen_time"] = last;
        }
    }
    if let Some(reference) = rule.references.first() {
        info["src_url"] = reference.as_str().into();
    }
    info
}

/// The rule's ATT&CK mapping as OCSF attacks: one per technique, each with every tactic the
/// rule names (one attack with the tactics alone when the rule names no technique).
fn attacks(tags: &[String]) -> Vec<Value> {
    let mapping = AttackMapping::from_tags(tags);
    if mapping.is_empty() {
        return Vec::new();
    }
    let tactics: Vec<Value> = mapping
        .tactics
        .iter()
        .map(|tactic| json!({"uid": tactic.id, "name": tactic.name}))
        .collect();
    if mapping.techniques.is_empty() {
        return vec![json!({"tactics": tactics})];
    }
    mapping
        .techniques
        .iter()
        .map(|id| {
            let mut attack =
                json!({"tactics": tactics, "technique": {"uid": parent_technique(id)}});
            if id.contains('.') {
                attack["sub_technique"] = json!({"uid": id});
            }
            attack
        })
        .collect()
}

/// An Okta principal as an OCSF user.
fn user(principal: &Principal) -> Value {
    let (type_id, kind) = match principal.kind.as_deref() {
        Some("User") => (1, "User"),
        Some("SystemPrincipal") => (3, "System"),
        Some(other) => (99, other),
        None => (0, "Unknown"),
    };
    let mut user = json!({"type_id": type_id, "type": kind});
    let fields = [
        ("uid", &principal.id),
        ("name", &principal.alternate_id),
        ("display_name", &principal.display_name),
    ];
    for (key, value) in fields {
        if let Some(value) = value {
            user[key] = value.as_str().into();
        }
    }
    user
}

/// A target as a resource of the finding.
fn resource(principal: &Principal) -> Value {
    let mut resource = json!({"type": principal.kind.as_deref().unwrap_or("User")});
    if let Some(id) = &principal.id {
        resource["uid"] = id.as_str().into();
    }
    resource["name"] = principal.label().into();
    resource
}

/// The evidence: who acted on whom, from where, and the Okta event itself.
fn evidence(alert: &Alert, raw: &Value) -> Value {
    let mut evidence = json!({"data": raw});
    if let Some(actor) = &alert.actor {
        evidence["actor"] = json!({"user": user(actor)});
    }
    if let Some(target) = alert.targets.first() {
        evidence["user"] = user(target);
    }
    if let Some(endpoint) = src_endpoint(alert, raw) {
        evidence["src_endpoint"] = endpoint;
    }
    if let Some(agent) = &alert.client.user_agent {
        evidence["http_request"] = json!({"user_agent": agent});
    }
    evidence
}

/// The request's source: its IP, where it was (Okta's `client.geographicalContext`) and its
/// network (Okta's `securityContext`: the ASN, its organisation, the ISP).
fn src_endpoint(alert: &Alert, raw: &Value) -> Option<Value> {
    let ip = alert.client.ip_address.as_deref()?;
    let mut endpoint = json!({"ip": ip});
    if let Some(place) = Place::of(raw) {
        endpoint["location"] = location(&place);
    }
    let security = &raw["securityContext"];
    if let Some(number) = security["asNumber"].as_u64() {
        let mut system = json!({"number": number});
        if let Some(name) = security["asOrg"].as_str() {
            system["name"] = name.into();
        }
        endpoint["autonomous_system"] = system;
    }
    if let Some(isp) = security["isp"].as_str() {
        endpoint["isp"] = isp.into();
    }
    Some(endpoint)
}

/// The request's place as an OCSF location.
fn location(place: &Place) -> Value {
    let mut location = place.named(|okta| match okta {
        "state" => "region",
        "postalCode" => "postal_code",
        "city" => "city",
        _ => "country",
    });
    if let Some((lat, long)) = place.point {
        location.insert("lat".into(), lat.into());
        location.insert("long".into(), long.into());
    }
    location.into()
}
