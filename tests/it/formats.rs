//! Alert formats: the same alert delivered as factorwatch's document, as an OCSF Detection
//! Finding and as an ECS document, to the file sink and to NATS JetStream, each validated against
//! the official definitions of its schema and version (`tests/schemas/`, where their sources are
//! named): OCSF's JSON schema, ECS's field definitions.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use factorwatch::alert::AlertFormat;
use factorwatch::config::{SinkConfig, SinkKind};
use factorwatch::okta::samples::{self, Initiator};
use serde_json::Value;
use tempfile::TempDir;

use crate::helpers::{config_with, envelope, read_alert_lines, spawn_app_with, unique};
use crate::sinks_brokers::{NATS_URL, delete_stream, nats_config, read_stream, stream_name};

/// OCSF 1.7.0's Detection Finding (class 2004), as JSON Schema 2020-12.
const OCSF_SCHEMA: &str = "tests/schemas/ocsf-1.7.0-detection_finding.json";
/// ECS 9.3.0's field definitions.
const ECS_FIELDS: &str = "tests/schemas/ecs-9.3.0-fields.csv";

fn schema_file(path: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join(path)
}

/// A validator of the OCSF schema.
fn ocsf_validator() -> jsonschema::Validator {
    let text = std::fs::read_to_string(schema_file(OCSF_SCHEMA)).unwrap();
    let schema: Value = serde_json::from_str(&text).unwrap();
    jsonschema::validator_for(&schema).expect("the OCSF schema compiles")
}

/// One ECS field's definition.
struct EcsField {
    /// `keyword`, `long`, `date`, `ip`, `geo_point`, ...
    kind: String,
    /// ECS normalises it to a list.
    array: bool,
    /// Its allowed values; empty: any.
    allowed: Vec<String>,
}

/// ECS's fields by their dotted name.
fn ecs_fields() -> HashMap<String, EcsField> {
    let text = std::fs::read_to_string(schema_file(ECS_FIELDS)).unwrap();
    text.lines()
        .skip(1)
        .map(|line| {
            let columns: Vec<&str> = line.split(',').collect();
            let field = EcsField {
                kind: columns[1].to_owned(),
                array: columns[2].split('|').any(|n| n == "array"),
                allowed: columns[3]
                    .split('|')
                    .filter(|v| !v.is_empty())
                    .map(String::from)
                    .collect(),
            };
            (columns[0].to_owned(), field)
        })
        .collect()
}

/// Namespaces ECS leaves to the producer: Elastic's Okta integration's `okta.*`, and ours.
const CUSTOM_NAMESPACES: [&str; 2] = ["okta", "factorwatch"];

/// Why `value` is not what the ECS field `name` holds, if it is not.
fn ecs_type_error(name: &str, field: &EcsField, value: &Value) -> Option<String> {
    let fits = match field.kind.as_str() {
        "keyword" | "constant_keyword" | "wildcard" | "text" | "match_only_text" => {
            value.is_string()
        }
        "long" | "integer" | "short" | "byte" | "unsigned_long" => value.is_i64() || value.is_u64(),
        "float" | "double" | "scaled_float" | "half_float" => value.is_number(),
        "boolean" => value.is_boolean(),
        "date" => value
            .as_str()
            .is_some_and(|text| factorwatch::clock::parse_rfc3339_ms(text).is_some()),
        "ip" => value
            .as_str()
            .is_some_and(|text| text.parse::<std::net::IpAddr>().is_ok()),
        "geo_point" => value["lat"].is_number() && value["lon"].is_number(),
        _ => value.is_object(),
    };
    if !fits {
        return Some(format!("{name}: {value} is not a {}", field.kind));
    }
    let text = value.as_str().unwrap_or_default();
    (!field.allowed.is_empty() && !field.allowed.iter().any(|allowed| allowed == text))
        .then(|| format!("{name}: {value} is not one of {:?}", field.allowed))
}

/// Every way `value`, at the dotted path `name`, breaks ECS's definitions.
fn ecs_violations(fields: &HashMap<String, EcsField>, name: &str, value: &Value) -> Vec<String> {
    if CUSTOM_NAMESPACES.contains(&name.split('.').next().unwrap_or_default()) {
        return Vec::new();
    }
    let field = fields.get(name);
    let leaf_object = field
        .is_some_and(|f| ["geo_point", "object", "flattened", "nested"].contains(&f.kind.as_str()));
    if let (Some(object), false) = (value.as_object(), leaf_object) {
        return object
            .iter()
            .flat_map(|(key, inner)| {
                let path = if name.is_empty() {
                    key.clone()
                } else {
                    format!("{name}.{key}")
                };
                ecs_violations(fields, &path, inner)
            })
            .collect();
    }
    let Some(field) = field else {
        return vec![format!("{name} is not an ECS field")];
    };
    match (field.array, value.as_array()) {
        (true, Some(items)) => items
            .iter()
            .filter_map(|item| ecs_type_error(name, field, item))
            .collect(),
        (true, None) => vec![format!("{name}: ECS holds a list here, not {value}")],
        (false, Some(_)) => vec![format!(
            "{name}: ECS holds one value here, not the list {value}"
        )],
        (false, None) => ecs_type_error(name, field, value).into_iter().collect(),
    }
}

/// Fails with every violation when `document` is not valid ECS 9.3.
fn assert_valid_ecs(fields: &HashMap<String, EcsField>, document: &Value) {
    let mut errors = ecs_violations(fields, "", document);
    for required in ["@timestamp", "ecs"] {
        if document.get(required).is_none() {
            errors.push(format!("{required} is required"));
        }
    }
    assert!(
        errors.is_empty(),
        "not ECS 9.3.0: {errors:#?}\n{document:#}"
    );
}

/// What a user checks of an ECS document: the alert's facts where Elastic's alerts keep them.
fn assert_ecs_tells_the_alert(document: &Value, alert: &Value) {
    assert_eq!(document["ecs"]["version"], "9.3.0");
    assert_eq!(document["event"]["kind"], "alert");
    assert_eq!(document["event"]["id"], alert["id"], "the alert id");
    assert_eq!(document["event"]["action"], alert["event"]["eventType"]);
    assert_eq!(document["@timestamp"], alert["event"]["published"]);
    assert_eq!(document["rule"]["id"], alert["rule"]["id"]);
    assert_eq!(document["rule"]["name"], alert["rule"]["title"]);
    assert_eq!(document["event"]["severity"], 73, "high");
    assert_eq!(document["threat"]["framework"], "MITRE ATT&CK");
    assert_eq!(document["threat"]["technique"]["id"][0], "T1556");
    assert_eq!(
        document["threat"]["technique"]["subtechnique"]["id"][0],
        "T1556.006"
    );
    assert_eq!(document["user"]["name"], alert["actor"]["alternateId"]);
    assert_eq!(
        document["user"]["target"]["name"],
        alert["targets"][0]["alternateId"]
    );
    let raw = &alert["raw_event"];
    assert_eq!(document["source"]["ip"], alert["client"]["ipAddress"]);
    assert_eq!(
        document["source"]["as"]["number"],
        raw["securityContext"]["asNumber"]
    );
    assert_eq!(document["okta"]["uuid"], raw["uuid"]);
    assert_eq!(
        document["okta"]["transaction"]["id"],
        raw["transaction"]["id"]
    );
    let original: Value =
        serde_json::from_str(document["event"]["original"].as_str().unwrap()).unwrap();
    assert_eq!(&original, raw, "raw kept");
    assert_eq!(document["factorwatch"]["incident"], alert["incident"]);
}

/// Fails with every violation when `finding` is not valid OCSF.
fn assert_valid_ocsf(validator: &jsonschema::Validator, finding: &Value) {
    let errors: Vec<String> = validator
        .iter_errors(finding)
        .map(|error| format!("{} at {}", error, error.instance_path()))
        .collect();
    assert!(
        errors.is_empty(),
        "not OCSF 1.7.0: {errors:#?}\n{finding:#}"
    );
}

/// What a user checks of a finding: the alert's facts in OCSF's places.
fn assert_finding_tells_the_alert(finding: &Value, alert: &Value) {
    assert_eq!(finding["class_uid"], 2004);
    assert_eq!(finding["type_uid"], 200401);
    assert_eq!(finding["metadata"]["version"], "1.7.0");
    assert_eq!(finding["metadata"]["uid"], alert["id"]);
    assert_eq!(finding["finding_info"]["uid"], alert["id"], "stable uid");
    let analytic = &finding["finding_info"]["analytic"];
    assert_eq!(analytic["uid"], alert["rule"]["id"]);
    assert_eq!(analytic["name"], alert["rule"]["title"]);
    assert_eq!(analytic["type"], "Rule");
    let severity = match alert["level"].as_str().unwrap() {
        "high" => (4, "High"),
        "critical" => (5, "Critical"),
        "medium" => (3, "Medium"),
        other => panic!("unexpected level {other}"),
    };
    assert_eq!(finding["severity_id"], severity.0);
    assert_eq!(finding["severity"], severity.1);
    // The rule is tagged attack.t1556.006 (MFA modification) and attack.persistence.
    let attacks = finding["finding_info"]["attacks"].as_array().unwrap();
    let sub_technique = attacks
        .iter()
        .find(|a| a["sub_technique"]["uid"] == "T1556.006")
        .unwrap_or_else(|| panic!("T1556.006 in {attacks:#?}"));
    assert_eq!(sub_technique["technique"]["uid"], "T1556");
    let tactics = sub_technique["tactics"].as_array().unwrap();
    assert!(tactics.iter().any(|t| t["uid"] == "TA0003"), "{tactics:?}");
    let evidence = &finding["evidences"][0];
    assert_eq!(
        evidence["actor"]["user"]["name"],
        alert["actor"]["alternateId"]
    );
    assert_eq!(evidence["user"]["name"], alert["targets"][0]["alternateId"]);
    let raw = &alert["raw_event"];
    assert_eq!(&evidence["data"], raw, "the Okta event is the evidence");
    assert_eq!(evidence["src_endpoint"]["ip"], alert["client"]["ipAddress"]);
    let security = &raw["securityContext"];
    assert_eq!(
        evidence["src_endpoint"]["autonomous_system"]["number"],
        security["asNumber"]
    );
    let place = &raw["client"]["geographicalContext"];
    let location = &evidence["src_endpoint"]["location"];
    assert_eq!(location["city"], place["city"]);
    assert_eq!(location["lat"], place["geolocation"]["lat"]);
    let raw_data: Value = serde_json::from_str(finding["raw_data"].as_str().unwrap()).unwrap();
    assert_eq!(&raw_data, raw, "raw kept");
    assert_eq!(
        finding["metadata"]["correlation_uid"], alert["incident"]["id"],
        "the incident groups the findings"
    );
    assert_eq!(
        finding["unmapped"]["factorwatch"]["incident"],
        alert["incident"]
    );
}

/// A sink of each standard format to a file and to NATS, with the default alert file beside them.
fn sinks_of_each_format(dir: &Path, run: &str) -> Vec<SinkConfig> {
    [(AlertFormat::Ocsf, "ocsf"), (AlertFormat::Ecs, "ecs")]
        .into_iter()
        .flat_map(|(format, name)| {
            let mut file =
                SinkConfig::file(&format!("{name}-file"), dir.join(format!("{name}.jsonl")));
            let nats_kind = SinkKind::Nats(nats_config(NATS_URL, &format!("{run}_{name}")));
            let mut nats = SinkConfig::new(&format!("{name}-nats"), nats_kind);
            file.format = format;
            nats.format = format;
            [file, nats]
        })
        .collect()
}

/// The one document the file sink and the NATS sink of the format `name` delivered, after
/// checking that they are the same and that NATS de-duplicates on the alert id.
async fn delivered(dir: &Path, run: &str, name: &str, alert_id: &str) -> Value {
    let in_file = read_alert_lines(&dir.join(format!("{name}.jsonl")));
    assert_eq!(in_file.len(), 1, "one {name} document per alert");
    let stream = stream_name(&format!("{run}_{name}"));
    let from_nats = read_stream(&stream, 1).await;
    delete_stream(&stream).await;
    assert_eq!(from_nats[0].id, alert_id, "Nats-Msg-Id is the alert id");
    let in_nats: Value = serde_json::from_str(&from_nats[0].body).unwrap();
    assert_eq!(
        in_file[0], in_nats,
        "one {name} document, whatever the sink"
    );
    in_nats
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_same_alert_in_each_format_to_the_file_sink_and_nats_is_valid() {
    let run = unique("formats");
    let data_dir = TempDir::new().unwrap();
    let dir = data_dir.path().to_owned();
    let config = config_with(&dir, sinks_of_each_format(&dir, &run));
    let app = spawn_app_with(config, data_dir).await;

    let users = samples::users();
    let reset =
        samples::mfa_factor_deactivate(&users[1], "OKTA_VERIFY_PUSH", Initiator::Admin, "tx");
    assert_eq!(app.post(&envelope(vec![reset])).await.status(), 204);
    let alerts = app.wait_for_alerts(1).await;
    app.wait_until_drained().await;
    let alert = &alerts[0];
    let id = alert["id"].as_str().unwrap();

    let finding = delivered(&dir, &run, "ocsf", id).await;
    assert_valid_ocsf(&ocsf_validator(), &finding);
    assert_finding_tells_the_alert(&finding, alert);
    let document = delivered(&dir, &run, "ecs", id).await;
    assert_valid_ecs(&ecs_fields(), &document);
    assert_ecs_tells_the_alert(&document, alert);
}

#[test]
fn the_validators_catch_what_is_not_ocsf_or_ecs() {
    let validator = ocsf_validator();
    let not_a_finding = serde_json::json!({"class_uid": 2004, "severity_id": 4, "extra": true});
    assert!(validator.iter_errors(&not_a_finding).count() >= 2);
    let not_ecs = serde_json::json!({
        "@timestamp": "yesterday",
        "event": {"kind": "page", "category": "iam", "severity": "high"},
        "source": {"ip": "not an ip", "geo": {"location": {"lat": 1.0}}},
        "user": {"favourite_colour": "blue"},
        "okta": {"anything": ["goes"]},
    });
    let errors = ecs_violations(&ecs_fields(), "", &not_ecs);
    let expected = [
        "@timestamp: \"yesterday\" is not a date",
        "event.kind: \"page\" is not one of",
        "event.category: ECS holds a list here",
        "event.severity: \"high\" is not a long",
        "source.ip: \"not an ip\" is not a ip",
        "source.geo.location: ",
        "user.favourite_colour is not an ECS field",
    ];
    for error in expected {
        assert!(
            errors.iter().any(|e| e.starts_with(error)),
            "{error} in {errors:#?}"
        );
    }
    assert_eq!(errors.len(), expected.len(), "okta.* is free: {errors:#?}");
}
