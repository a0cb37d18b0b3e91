//! A folder of Okta rules written the way SigmaHQ publishes them (lower-case field names, every
//! modifier and condition form the issue names), each checked against events built like Okta's.

use std::collections::BTreeSet;

use factorwatch::config::RulesConfig;
use factorwatch::detect::RuleSet;
use factorwatch::okta::samples::{self, Initiator};
use serde_json::{Value, json};

const ADMIN_API: &str = "0a1b2c3d-0001-4000-8000-000000000001";
const PROXY: &str = "0a1b2c3d-0002-4000-8000-000000000002";
const SUPPORT: &str = "0a1b2c3d-0003-4000-8000-000000000003";
const OFF_NETWORK: &str = "0a1b2c3d-0004-4000-8000-000000000004";
const SECURITY_KEY: &str = "0a1b2c3d-0005-4000-8000-000000000005";
const WEBAUTHN_REASON: &str = "0a1b2c3d-0006-4000-8000-000000000006";
const ASN: &str = "0a1b2c3d-0007-4000-8000-000000000007";
const RESET_ALL_OR_SUPPORT: &str = "0a1b2c3d-0008-4000-8000-000000000008";
const UNLISTED_ACCOUNT: &str = "0a1b2c3d-0009-4000-8000-000000000009";
const FOLDER: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/rules/sigmahq_style");

/// The help desk list that fills `%helpdesk_accounts%`: the sample admin and one more.
fn helpdesk_accounts() -> Vec<String> {
    vec![
        samples::users()[3].login.clone(),
        "helpdesk-2@example.com".into(),
    ]
}

fn rules() -> RuleSet {
    RuleSet::load(&RulesConfig {
        builtin: false,
        paths: vec![FOLDER.into()],
        placeholders: [("helpdesk_accounts".to_string(), helpdesk_accounts())].into(),
        ..RulesConfig::default()
    })
    .expect("the SigmaHQ-style folder loads")
}

#[test]
fn expand_placeholders_come_from_the_config_and_a_missing_one_is_refused() {
    let users = samples::users();
    let rules = rules();
    let by_helpdesk = samples::mfa_factor_reset_all(&users[0], Initiator::Admin);
    assert!(!matched(&rules, &by_helpdesk).contains(UNLISTED_ACCOUNT));
    let by_support = samples::mfa_factor_reset_all(&users[0], Initiator::OktaSupport);
    assert!(matched(&rules, &by_support).contains(UNLISTED_ACCOUNT));
    let by_other = with(
        by_helpdesk,
        &["actor", "alternateId"],
        json!("helpdesk-3@example.com"),
    );
    assert!(matched(&rules, &by_other).contains(UNLISTED_ACCOUNT));

    let err = RuleSet::load(&RulesConfig {
        builtin: false,
        paths: vec![FOLDER.into()],
        ..RulesConfig::default()
    })
    .unwrap_err();
    let err = format!("{err:#}");
    assert!(
        err.contains("okta_mfa_reset_by_unlisted_account.yml")
            && err.contains("line 14")
            && err.contains("%helpdesk_accounts%"),
        "{err}"
    );
}

fn matched(rules: &RuleSet, event: &Value) -> BTreeSet<String> {
    rules
        .matching(event)
        .into_iter()
        .map(|r| r.id.clone())
        .collect()
}

fn set(ids: &[&str]) -> BTreeSet<String> {
    ids.iter().map(|id| id.to_string()).collect()
}

fn with(mut event: Value, path: &[&str], value: Value) -> Value {
    let (last, parents) = path.split_last().unwrap();
    let mut at = &mut event;
    for key in parents {
        at = &mut at[*key];
    }
    at[*last] = value;
    event
}

#[test]
fn the_whole_folder_loads_with_metadata() {
    let rules = rules();
    assert_eq!(rules.len(), 9);
    for described in rules.describe() {
        assert_eq!(described.rule.author.as_deref(), Some("factorwatch tests"));
        assert!(
            described.fields.iter().all(|f| !f.contains("eventtype")),
            "{:?}",
            described.fields
        );
    }
}

#[test]
fn self_service_webauthn_removal_on_the_corporate_network() {
    let users = samples::users();
    let event =
        samples::mfa_factor_deactivate(&users[0], "FIDO_WEBAUTHN", Initiator::SelfService, "tx");
    let event = with(event, &["securityContext", "asNumber"], json!(64496));
    let event = with(event, &["client", "ipAddress"], json!("198.51.100.20"));
    // contains|all + re (1 of selection*), array any-element + case-insensitive value, lt.
    assert_eq!(
        matched(&rules(), &event),
        set(&[SECURITY_KEY, WEBAUTHN_REASON, ASN])
    );
}

#[test]
fn admin_reset_through_the_api_from_outside() {
    let users = samples::users();
    let event = samples::mfa_factor_reset_all(&users[1], Initiator::ApiToken);
    let event = with(event, &["securityContext", "asNumber"], json!(64505));
    let event = with(event, &["client", "ipAddress"], json!("203.0.113.240"));
    // startswith + endswith list + not fieldref; exists and not cidr; `1 of them`; between the ASN bounds.
    assert_eq!(
        matched(&rules(), &event),
        set(&[ADMIN_API, OFF_NETWORK, RESET_ALL_OR_SUPPORT])
    );
    // gte: the same event from AS 64511 matches the ASN rule too.
    let high_asn = with(event, &["securityContext", "asNumber"], json!(64511));
    assert!(matched(&rules(), &high_asn).contains(ASN));
}

#[test]
fn fieldref_filters_a_user_resetting_their_own_factors() {
    let users = samples::users();
    let event = samples::mfa_factor_reset_all(&users[1], Initiator::Admin);
    let own = with(
        event.clone(),
        &["actor", "alternateId"],
        json!(users[1].login),
    );
    assert!(matched(&rules(), &event).contains(ADMIN_API));
    assert!(!matched(&rules(), &own).contains(ADMIN_API));
}

#[test]
fn a_proxy_flag_written_as_the_string_true_matches_the_json_boolean() {
    let users = samples::users();
    let event = samples::mfa_factor_deactivate(&users[0], "SMS", Initiator::Admin, "tx");
    let proxied = with(event.clone(), &["securityContext", "isProxy"], json!(true));
    assert!(matched(&rules(), &proxied).contains(PROXY));
    let direct = with(event, &["securityContext", "isProxy"], json!(false));
    assert!(!matched(&rules(), &direct).contains(PROXY));
}

#[test]
fn okta_support_without_a_user_agent() {
    let users = samples::users();
    let event = samples::mfa_factor_deactivate(&users[2], "SMS", Initiator::OktaSupport, "tx");
    let found = matched(&rules(), &event);
    assert!(
        found.contains(SUPPORT),
        "null matches Okta Support's missing user agent: {found:?}"
    );
    assert!(
        found.contains(RESET_ALL_OR_SUPPORT),
        "`1 of them` via the support selection"
    );
    let with_agent = with(
        event,
        &["client", "userAgent"],
        json!({"rawUserAgent": "curl/8.0"}),
    );
    assert!(!matched(&rules(), &with_agent).contains(SUPPORT));
}

#[test]
fn ordinary_events_match_nothing() {
    let users = samples::users();
    let session = samples::session_start(&users[0], "203.0.113.9");
    assert!(matched(&rules(), &session).is_empty());
    let activate = samples::mfa_factor_activate(&users[0], "FIDO_WEBAUTHN");
    let found = matched(&rules(), &activate);
    assert!(
        !found.contains(SECURITY_KEY) && !found.contains(ADMIN_API),
        "{found:?}"
    );
}
