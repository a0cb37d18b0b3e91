//! Alert formats: the same alert delivered as factorwatch's document and as an OCSF Detection
//! Finding, to the file sink and to NATS JetStream, each finding validated against the official
//! OCSF JSON schema of its class and version (`tests/schemas/`, where its source is named).

use std::path::Path;

use factorwatch::alert::AlertFormat;
use factorwatch::config::{SinkConfig, SinkKind};
use factorwatch::okta::samples::{self, Initiator};
use serde_json::Value;
use tempfile::TempDir;

use crate::helpers::{config_with, envelope, read_alert_lines, spawn_app_with, unique};
use crate::sinks_brokers::{NATS_URL, delete_stream, nats_config, read_stream, stream_name};

/// OCSF 1.7.0's Detection Finding (class 2004), as JSON Schema 2020-12.
const OCSF_SCHEMA: &str = "tests/schemas/ocsf-1.7.0-detection_finding.json";

/// A validator of the OCSF schema.
fn ocsf_validator() -> jsonschema::Validator {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join(OCSF_SCHEMA);
    let schema: Value = serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap();
    jsonschema::validator_for(&schema).expect("the OCSF schema compiles")
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

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_same_alert_as_ocsf_to_the_file_sink_and_nats_is_valid_ocsf() {
    let run = unique("ocsf");
    let data_dir = TempDir::new().unwrap();
    let ocsf_file = data_dir.path().join("findings.jsonl");
    let mut file = SinkConfig::file("ocsf-file", &ocsf_file);
    file.format = AlertFormat::Ocsf;
    let mut nats = SinkConfig::new("ocsf-nats", SinkKind::Nats(nats_config(NATS_URL, &run)));
    nats.format = AlertFormat::Ocsf;
    let config = config_with(data_dir.path(), vec![file, nats]);
    let app = spawn_app_with(config, data_dir).await;

    let users = samples::users();
    let reset =
        samples::mfa_factor_deactivate(&users[1], "OKTA_VERIFY_PUSH", Initiator::Admin, "tx");
    assert_eq!(app.post(&envelope(vec![reset])).await.status(), 204);
    let alerts = app.wait_for_alerts(1).await;
    app.wait_until_drained().await;
    let alert = &alerts[0];

    let validator = ocsf_validator();
    let in_file = read_alert_lines(&ocsf_file);
    assert_eq!(in_file.len(), 1, "one finding per alert");
    let from_nats = read_stream(&stream_name(&run), 1).await;
    assert_eq!(
        from_nats[0].id,
        alert["id"].as_str().unwrap(),
        "Nats-Msg-Id"
    );
    let nats_finding: Value = serde_json::from_str(&from_nats[0].body).unwrap();
    for finding in [&in_file[0], &nats_finding] {
        assert_valid_ocsf(&validator, finding);
        assert_finding_tells_the_alert(finding, alert);
    }
    assert_eq!(in_file[0], nats_finding, "one document, whatever the sink");
    delete_stream(&stream_name(&run)).await;
}

#[test]
fn the_validator_catches_what_is_not_ocsf() {
    let validator = ocsf_validator();
    let not_a_finding = serde_json::json!({"class_uid": 2004, "severity_id": 4, "extra": true});
    assert!(validator.iter_errors(&not_a_finding).count() >= 2);
}
