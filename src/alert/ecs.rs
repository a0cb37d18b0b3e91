//! The alert as an Elastic Common Schema (ECS 9.3) document, for sinks with `format = "ecs"`:
//! the fields Elastic's detection alerts (`event.*`, `rule.*`, `threat.*`) and its Okta
//! integration (`user.*`, `user.target.*`, `source.*`, `okta.*`) use, so the alert lands beside
//! the Okta logs Elastic already holds and its rules and dashboards read it.
//!
//! `okta.*` follows the Okta integration's names; what ECS has no field for is kept under the
//! custom namespace `factorwatch.*`. `event.id` is the alert id, so consumers de-duplicate on it.

use serde_json::{Map, Value, json};

use super::attack::{AttackMapping, parent_technique};
use super::format::Place;
use super::{Alert, Level, Principal};

/// The ECS version the documents follow (`ecs.version`).
pub const ECS_VERSION: &str = "9.3.0";

/// The ECS document for `alert`.
pub fn document(alert: &Alert) -> Value {
    let raw: Value = serde_json::from_str(alert.raw_event.get()).unwrap_or(Value::Null);
    let timestamp = alert
        .event
        .published
        .as_deref()
        .unwrap_or(&alert.received_at);
    let mut document = json!({
        "@timestamp": timestamp,
        "ecs": {"version": ECS_VERSION},
        "message": alert.summary(),
        "event": event(alert, &raw),
        "rule": rule(alert),
        "okta": okta(alert, &raw),
        "factorwatch": super::format::kept_whole(alert),
    });
    let fields = document.as_object_mut().expect("a JSON object");
    if let Some(threat) = threat(&alert.rule.tags) {
        fields.insert("threat".into(), threat);
    }
    if let Some(actor) = &alert.actor {
        fields.insert("user".into(), user(actor));
    }
    if let Some(target) = alert.targets.first() {
        let user = fields.entry("user").or_insert_with(|| json!({}));
        user["target"] = self::user(target);
    }
    if let Some(source) = source(alert, &raw) {
        fields.insert("source".into(), source);
    }
    if let Some(agent) = &alert.client.user_agent {
        fields.insert("user_agent".into(), json!({"original": agent}));
    }
    fields.insert("related".into(), related(alert));
    document
}

/// Elastic's severity scale for a level (as its detection rules use it).
fn severity(level: Level) -> u64 {
    match level {
        Level::Informational => 1,
        Level::Low => 21,
        Level::Medium => 47,
        Level::High => 73,
        Level::Critical => 99,
    }
}

/// `event.*`: an alert about an identity change, with Okta's action and outcome.
fn event(alert: &Alert, raw: &Value) -> Value {
    let outcome = match alert.event.outcome.result.as_deref() {
        Some("SUCCESS") => "success",
        Some("FAILURE" | "DENY") => "failure",
        _ => "unknown",
    };
    let mut event = json!({
        "kind": "alert",
        "category": ["iam"],
        "type": ["change", "user"],
        "outcome": outcome,
        "id": alert.id,
        "created": alert.received_at,
        "module": "okta",
        "dataset": "okta.system",
        "provider": "okta",
        "severity": severity(alert.level),
        "risk_score": severity(alert.level) as f64,
        "original": alert.raw_event.get(),
    });
    if let Some(action) = &alert.event.event_type {
        event["action"] = action.as_str().into();
    }
    if let Some(reason) = raw["outcome"]["reason"].as_str() {
        event["reason"] = reason.into();
    }
    if let Some(incident) = &alert.incident {
        event["start"] = incident.first_seen.as_str().into();
        event["end"] = incident.last_seen.as_str().into();
    }
    event
}

/// `rule.*`: the Sigma rule that matched.
fn rule(alert: &Alert) -> Value {
    let rule = &alert.rule;
    let mut fields = json!({
        "id": rule.id,
        "uuid": rule.id,
        "name": rule.title,
        "ruleset": "factorwatch",
        "category": "Okta MFA tampering",
    });
    if let Some(reference) = rule.references.first() {
        fields["reference"] = reference.as_str().into();
    }
    if let Some(author) = &rule.author {
        fields["author"] = json!([author]);
    }
    fields
}

/// `threat.*` from the rule's ATT&CK mapping: techniques, sub-techniques and tactics.
fn threat(tags: &[String]) -> Option<Value> {
    let mapping = AttackMapping::from_tags(tags);
    if mapping.is_empty() {
        return None;
    }
    let mut threat = json!({"framework": "MITRE ATT&CK"});
    if !mapping.techniques.is_empty() {
        // Each technique once, though several of its sub-techniques are tagged, in any order.
        let mut parents: Vec<&str> = Vec::new();
        for parent in mapping.techniques.iter().map(|id| parent_technique(id)) {
            if !parents.contains(&parent) {
                parents.push(parent);
            }
        }
        threat["technique"] = json!({"id": parents});
        let subtechniques: Vec<&String> = mapping
            .techniques
            .iter()
            .filter(|id| id.contains('.'))
            .collect();
        if !subtechniques.is_empty() {
            threat["technique"]["subtechnique"] = json!({"id": subtechniques});
        }
    }
    if !mapping.tactics.is_empty() {
        threat["tactic"] = json!({
            "id": mapping.tactics.iter().map(|tactic| tactic.id).collect::<Vec<_>>(),
            "name": mapping.tactics.iter().map(|tactic| tactic.name).collect::<Vec<_>>(),
        });
    }
    Some(threat)
}

/// An Okta principal as ECS `user` fields.
fn user(principal: &Principal) -> Value {
    let mut user = Map::new();
    let fields = [
        ("id", &principal.id),
        ("name", &principal.alternate_id),
        ("full_name", &principal.display_name),
    ];
    for (key, value) in fields {
        if let Some(value) = value {
            user.insert(key.into(), value.as_str().into());
        }
    }
    if let Some(email) = principal
        .alternate_id
        .as_deref()
        .filter(|id| id.contains('@'))
    {
        user.insert("email".into(), email.into());
    }
    user.into()
}

/// `source.*`: the request's IP, its network (Okta's `securityContext`) and place.
fn source(alert: &Alert, raw: &Value) -> Option<Value> {
    let ip = alert.client.ip_address.as_deref()?;
    let mut source = json!({"ip": ip});
    let security = &raw["securityContext"];
    if let Some(number) = security["asNumber"].as_u64() {
        source["as"] = json!({"number": number});
        if let Some(name) = security["asOrg"].as_str() {
            source["as"]["organization"] = json!({"name": name});
        }
    }
    if let Some(domain) = security["domain"].as_str() {
        source["domain"] = domain.into();
    }
    if let Some(place) = Place::of(raw) {
        source["geo"] = geo(&place);
    }
    Some(source)
}

/// The request's place as ECS `geo`.
fn geo(place: &Place) -> Value {
    let mut geo = place.named(|okta| match okta {
        "city" => "city_name",
        "state" => "region_name",
        "country" => "country_name",
        _ => "postal_code",
    });
    if let Some((lat, lon)) = place.point {
        geo.insert("location".into(), json!({"lat": lat, "lon": lon}));
    }
    geo.into()
}

/// `related.*`: every user and IP the alert names, for pivoting.
fn related(alert: &Alert) -> Value {
    let mut users: Vec<&str> = alert
        .actor
        .iter()
        .chain(&alert.targets)
        .filter_map(|principal| principal.alternate_id.as_deref())
        .collect();
    users.dedup();
    let ips: Vec<&str> = alert.client.ip_address.iter().map(String::as_str).collect();
    json!({"user": users, "ip": ips})
}

/// `okta.*`, named as Elastic's Okta integration names the System Log's fields.
fn okta(alert: &Alert, raw: &Value) -> Value {
    let principal = |p: &Value| {
        json!({
            "id": p["id"], "type": p["type"],
            "alternate_id": p["alternateId"], "display_name": p["displayName"],
        })
    };
    let targets: Vec<Value> = raw["target"]
        .as_array()
        .into_iter()
        .flatten()
        .map(principal)
        .collect();
    let security = &raw["securityContext"];
    json!({
        "uuid": raw["uuid"],
        "event_type": raw["eventType"],
        "display_message": raw["displayMessage"],
        "outcome": {"result": raw["outcome"]["result"], "reason": raw["outcome"]["reason"]},
        "transaction": {"id": raw["transaction"]["id"], "type": raw["transaction"]["type"]},
        "actor": principal(&raw["actor"]),
        "target": targets,
        "security_context": {
            "as": {"number": security["asNumber"], "organization": {"name": security["asOrg"]}},
            "isp": security["isp"], "domain": security["domain"], "is_proxy": security["isProxy"],
        },
        "org": alert.okta.org,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_technique_is_listed_once_beside_its_sub_techniques() {
        let tags = [
            "attack.t1556.006",
            "attack.t1078.004",
            "attack.t1556.009",
            "attack.t1556",
        ]
        .map(String::from);
        let threat = threat(&tags).unwrap();
        assert_eq!(threat["technique"]["id"], json!(["T1556", "T1078"]));
        assert_eq!(
            threat["technique"]["subtechnique"]["id"],
            json!(["T1556.006", "T1078.004", "T1556.009"])
        );
    }
}
