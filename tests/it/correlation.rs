//! The default correlation rules, each positive and negative, on events built like Okta's
//! (self-service, admin, API token and Okta Support; Classic and Identity Engine shapes), through
//! the same detection code the service runs. Then the service itself: correlation state and
//! timers survive a restart, and an absence timer fires on the clock, not on an event.

use std::time::Duration;

use factorwatch::Config;
use factorwatch::alert::Alert;
use factorwatch::clock::{now_ms, rfc3339};
use factorwatch::config::RulesConfig;
use factorwatch::detect::RuleSet;
use factorwatch::detect::offline::{OfflineDetection, detect_events};
use factorwatch::okta::samples::{self, Initiator, SampleUser};
use serde_json::{Value, json};
use tempfile::TempDir;

use crate::helpers::{
    bare_event, config_with, read_alert_lines, spawn_app_with, wait_for_alert_lines,
};

const MANY_USERS: &str = "9a4f1c7e-2b6d-4f0a-8e3c-1d5b7a9c2e41";
const THEN_PASSWORD: &str = "3e8b2d61-7c4a-4f95-a0d2-6b1e9f3c5a72";
const THEN_NEW_NETWORK: &str = "7d2c9e14-5a3b-4e6f-8c1d-0a9b2f4e6d13";
const NOT_REPLACED: &str = "c1e5a7b3-6d4f-4a28-9e0b-7f3c2d5a8b64";

const MINUTE_MS: u64 = 60_000;
/// A fixed start, so event times are what the test says.
const T0: u64 = 1_790_000_000_000;

pub(crate) fn users() -> Vec<SampleUser> {
    samples::users().into_iter().take(3).collect()
}

/// `event` published at `T0 + minutes`.
pub(crate) fn at(minutes: u64, mut event: Value) -> Value {
    event["published"] = json!(rfc3339(T0 + minutes * MINUTE_MS));
    event
}

pub(crate) fn detect(events: Vec<Value>) -> OfflineDetection {
    let rules = RuleSet::load(&RulesConfig::default()).unwrap();
    detect_events(&rules, &[], events)
}

pub(crate) fn of_rule<'a>(alerts: &'a [Alert], rule_id: &str) -> Vec<&'a Alert> {
    alerts.iter().filter(|a| a.rule.id == rule_id).collect()
}

pub(crate) fn deactivate(user: &SampleUser, initiator: Initiator) -> Value {
    let tx = uuid::Uuid::new_v4().simple().to_string();
    samples::mfa_factor_deactivate(user, "OKTA_VERIFY_PUSH", initiator, &tx)
}

// --- one actor resets the MFA of several users ---------------------------------------------

#[test]
fn an_admin_resetting_three_users_within_the_hour_is_one_high_alert() {
    let events = users()
        .iter()
        .enumerate()
        .map(|(n, user)| at(n as u64 * 10, deactivate(user, Initiator::Admin)))
        .collect();
    let found = detect(events);
    let alerts = of_rule(&found.alerts, MANY_USERS);
    assert_eq!(alerts.len(), 1, "{:#?}", found.alerts);
    let correlation = alerts[0].correlation.as_ref().unwrap();
    assert_eq!(correlation.kind, "value_count");
    assert_eq!(correlation.value, 3.0);
    assert_eq!(
        correlation.group["actor.alternateId"],
        alerts[0]
            .actor
            .as_ref()
            .unwrap()
            .alternate_id
            .clone()
            .unwrap()
    );
    assert!(alerts[0].level >= factorwatch::alert::Level::High);
    // The three resets still raise their own alerts.
    assert_eq!(found.alerts.len(), 4);
}

#[test]
fn api_token_and_okta_support_bulk_resets_are_caught_too() {
    for initiator in [Initiator::ApiToken, Initiator::OktaSupport] {
        let events = users()
            .iter()
            .enumerate()
            .map(|(n, user)| at(n as u64, samples::mfa_factor_reset_all(user, initiator)))
            .collect();
        let found = detect(events);
        assert_eq!(
            of_rule(&found.alerts, MANY_USERS).len(),
            1,
            "{initiator:?}: {:#?}",
            found.alerts
        );
    }
}

#[test]
fn resets_that_are_not_one_actor_over_three_users_within_the_hour_are_not() {
    let [a, b, c] = <[SampleUser; 3]>::try_from(users()).unwrap();
    // Two users only.
    let two = vec![
        at(0, deactivate(&a, Initiator::Admin)),
        at(1, deactivate(&b, Initiator::Admin)),
    ];
    // One user's three factors (Identity Engine reset all): one distinct user.
    let tx = "txOneUserThreeFactors";
    let one_user = ["OKTA_VERIFY_PUSH", "SMS", "FIDO_WEBAUTHN"]
        .iter()
        .map(|factor| {
            at(
                0,
                samples::mfa_factor_deactivate(&a, factor, Initiator::Admin, tx),
            )
        })
        .collect();
    // Three users over two hours.
    let slow = vec![
        at(0, deactivate(&a, Initiator::Admin)),
        at(61, deactivate(&b, Initiator::Admin)),
        at(122, deactivate(&c, Initiator::Admin)),
    ];
    // Three users each resetting their own factor: three actors.
    let own = vec![
        at(0, deactivate(&a, Initiator::SelfService)),
        at(1, deactivate(&b, Initiator::SelfService)),
        at(2, deactivate(&c, Initiator::SelfService)),
    ];
    for (case, events) in [
        ("two", two),
        ("one user", one_user),
        ("slow", slow),
        ("own", own),
    ] {
        let found = detect(events);
        assert!(
            of_rule(&found.alerts, MANY_USERS).is_empty(),
            "{case}: {:#?}",
            found.alerts
        );
    }
}

// --- MFA reset, then a password reset of the same user --------------------------------------

#[test]
fn an_mfa_reset_then_a_password_reset_of_that_user_is_an_alert_classic_and_identity_engine() {
    let user = &users()[0];
    let classic = samples::mfa_factor_reset_all(user, Initiator::Admin);
    let identity_engine = deactivate(user, Initiator::Admin);
    for mfa in [classic, identity_engine] {
        let found = detect(vec![
            at(0, mfa),
            at(12, samples::password_reset(user, Initiator::Admin)),
        ]);
        let alerts = of_rule(&found.alerts, THEN_PASSWORD);
        assert_eq!(alerts.len(), 1, "{:#?}", found.alerts);
        let correlation = alerts[0].correlation.as_ref().unwrap();
        assert_eq!(correlation.kind, "temporal_ordered");
        assert_eq!(correlation.group["factorwatch.user"], user.login);
        assert_eq!(
            alerts[0].event.event_type.as_deref(),
            Some("user.account.reset_password"),
            "the alert carries the event that completed the pattern"
        );
        assert!(
            alerts[0].raw_event.get().find("factorwatch").is_none(),
            "the raw event stays as Okta sent it"
        );
    }
}

#[test]
fn a_password_reset_of_another_user_too_late_or_before_the_mfa_reset_is_not() {
    let [a, b, _] = <[SampleUser; 3]>::try_from(users()).unwrap();
    let cases = [
        (
            "another user",
            vec![
                at(0, deactivate(&a, Initiator::Admin)),
                at(5, samples::password_reset(&b, Initiator::Admin)),
            ],
        ),
        (
            "too late",
            vec![
                at(0, deactivate(&a, Initiator::Admin)),
                at(31, samples::password_reset(&a, Initiator::Admin)),
            ],
        ),
        (
            "wrong order",
            vec![
                at(0, samples::password_reset(&a, Initiator::SelfService)),
                at(5, deactivate(&a, Initiator::SelfService)),
            ],
        ),
    ];
    for (case, events) in cases {
        let found = detect(events);
        assert!(
            of_rule(&found.alerts, THEN_PASSWORD).is_empty(),
            "{case}: {:#?}",
            found.alerts
        );
        assert!(
            found
                .alerts
                .iter()
                .all(|a| a.event.event_type.as_deref() != Some("user.account.reset_password")),
            "a password reset alone raises nothing: {case}"
        );
    }
}

// --- MFA reset, then a sign-in from a new network -------------------------------------------

#[test]
fn an_mfa_reset_then_a_sign_in_from_a_new_network_is_an_alert() {
    let user = &users()[0];
    let found = detect(vec![
        at(0, samples::session_start(user, "198.51.100.7")),
        at(
            60,
            samples::mfa_factor_reset_all(user, Initiator::OktaSupport),
        ),
        at(70, samples::session_start(user, "192.0.2.99")),
    ]);
    let alerts = of_rule(&found.alerts, THEN_NEW_NETWORK);
    assert_eq!(alerts.len(), 1, "{:#?}", found.alerts);
    assert_eq!(alerts[0].client.ip_address.as_deref(), Some("192.0.2.99"));
}

#[test]
fn a_sign_in_from_a_known_network_or_after_the_window_is_not() {
    let user = &users()[0];
    let known = detect(vec![
        at(0, samples::session_start(user, "198.51.100.7")),
        at(60, deactivate(user, Initiator::SelfService)),
        at(65, samples::session_start(user, "198.51.100.7")),
    ]);
    assert!(of_rule(&known.alerts, THEN_NEW_NETWORK).is_empty());
    let late = detect(vec![
        at(0, deactivate(user, Initiator::Admin)),
        at(45, samples::session_start(user, "192.0.2.99")),
    ]);
    assert!(of_rule(&late.alerts, THEN_NEW_NETWORK).is_empty());
    let other_user = detect(vec![
        at(0, deactivate(&users()[0], Initiator::Admin)),
        at(5, samples::session_start(&users()[1], "192.0.2.99")),
    ]);
    assert!(of_rule(&other_user.alerts, THEN_NEW_NETWORK).is_empty());
}

// --- ties: events logged in the same millisecond (or second) --------------------------------

/// `event` published at `T0 + ms` milliseconds.
fn at_ms(ms: u64, mut event: Value) -> Value {
    event["published"] = json!(rfc3339(T0 + ms));
    event
}

#[test]
fn a_sign_in_logged_before_the_reset_at_the_same_time_does_not_follow_it() {
    let user = &users()[0];
    // The same millisecond, and the same second 400 ms apart: the System Log's order decides.
    for reset_ms in [0, 400] {
        let before = detect(vec![
            at_ms(0, samples::session_start(user, "192.0.2.99")),
            at_ms(reset_ms, deactivate(user, Initiator::Admin)),
        ]);
        assert!(
            of_rule(&before.alerts, THEN_NEW_NETWORK).is_empty(),
            "sign-in, then a reset {reset_ms} ms later: {:#?}",
            before.alerts
        );
        let password_first = detect(vec![
            at_ms(0, samples::password_reset(user, Initiator::Admin)),
            at_ms(reset_ms, deactivate(user, Initiator::Admin)),
        ]);
        assert!(of_rule(&password_first.alerts, THEN_PASSWORD).is_empty());
    }
    // Logged after the reset in the same millisecond: it follows.
    let after = detect(vec![
        at_ms(0, deactivate(user, Initiator::Admin)),
        at_ms(0, samples::session_start(user, "192.0.2.99")),
    ]);
    let alerts = of_rule(&after.alerts, THEN_NEW_NETWORK);
    assert_eq!(alerts.len(), 1, "{:#?}", after.alerts);
    assert_eq!(
        alerts[0].event.event_type.as_deref(),
        Some("user.session.start")
    );
}

// --- MFA removed and not replaced within 12 hours -------------------------------------------

#[test]
fn a_factor_removed_and_none_enrolled_within_12_hours_fires_when_the_time_is_up() {
    let [a, b, _] = <[SampleUser; 3]>::try_from(users()).unwrap();
    let found = detect(vec![
        at(0, deactivate(&a, Initiator::ApiToken)),
        // Any later event moves offline time on; the service uses the clock.
        at(12 * 60 + 1, samples::session_start(&b, "198.51.100.8")),
    ]);
    let alerts = of_rule(&found.alerts, NOT_REPLACED);
    assert_eq!(alerts.len(), 1, "{:#?}", found.alerts);
    assert_eq!(alerts[0].correlation.as_ref().unwrap().kind, "absence");
    assert_eq!(
        alerts[0].level,
        factorwatch::alert::Level::High,
        "medium, raised: API token"
    );
    assert_eq!(
        alerts[0].targets[0].alternate_id.as_deref(),
        Some(a.login.as_str())
    );

    let early = detect(vec![at(0, deactivate(&a, Initiator::ApiToken))]);
    assert!(of_rule(&early.alerts, NOT_REPLACED).is_empty());
    assert_eq!(
        early.pending.len(),
        1,
        "still waiting: {:#?}",
        early.pending
    );
}

#[test]
fn a_factor_enrolled_within_12_hours_closes_the_timer() {
    let user = &users()[0];
    let found = detect(vec![
        at(0, deactivate(user, Initiator::SelfService)),
        at(20, samples::mfa_factor_activate(user, "OKTA_VERIFY_PUSH")),
        at(13 * 60, samples::session_start(user, "198.51.100.7")),
    ]);
    assert!(of_rule(&found.alerts, NOT_REPLACED).is_empty());
    assert!(found.pending.is_empty());
    // Identity Engine "reset all": three removals, one timer, one alert.
    let tx = "txResetAllThree";
    let mut events: Vec<Value> = ["OKTA_VERIFY_PUSH", "SMS", "FIDO_WEBAUTHN"]
        .iter()
        .map(|f| {
            at(
                0,
                samples::mfa_factor_deactivate(user, f, Initiator::Admin, tx),
            )
        })
        .collect();
    events.push(at(
        13 * 60,
        samples::session_start(&users()[1], "198.51.100.9"),
    ));
    let found = detect(events);
    assert_eq!(of_rule(&found.alerts, NOT_REPLACED).len(), 1);
}

#[test]
fn an_event_without_the_fields_a_rule_groups_by_opens_no_group() {
    // Like the event Okta's "Preview" sends: no actor, no target, published days ago.
    let mut preview = deactivate(&users()[0], Initiator::Admin);
    preview["actor"] = Value::Null;
    preview["target"] = Value::Null;
    let mut events = vec![at(0, preview.clone())];
    // Three such resets, each of a user nobody can name, are not one actor resetting three.
    for minutes in 1..3 {
        let mut again = at(minutes, preview.clone());
        again["uuid"] = json!(format!("preview-{minutes}"));
        events.push(again);
    }
    events.push(at(
        13 * 60,
        samples::session_start(&users()[1], "198.51.100.9"),
    ));
    let found = detect(events);
    assert!(
        found.alerts.iter().all(|a| a.correlation.is_none()),
        "{:#?}",
        found.alerts
    );
    assert!(found.pending.is_empty(), "{:#?}", found.pending);
}

#[test]
fn an_absence_timer_of_a_late_event_runs_from_when_it_arrived() {
    let user = &users()[0];
    let days = 6 * 24 * 60;
    let found = detect(vec![
        at(days, samples::session_start(&users()[1], "198.51.100.9")),
        // Six days late: its twelve hours start now, not six days ago.
        at(0, deactivate(user, Initiator::Admin)),
        at(
            days + 60,
            samples::session_start(&users()[1], "198.51.100.9"),
        ),
    ]);
    assert!(
        of_rule(&found.alerts, NOT_REPLACED).is_empty(),
        "{:#?}",
        found.alerts
    );
    assert_eq!(found.pending.len(), 1, "{:#?}", found.pending);
    // An enrolment that arrives in those twelve hours closes it.
    let found = detect(vec![
        at(days, samples::session_start(&users()[1], "198.51.100.9")),
        at(0, deactivate(user, Initiator::Admin)),
        at(
            days + 60,
            samples::mfa_factor_activate(user, "OKTA_VERIFY_PUSH"),
        ),
        at(
            days + 13 * 60,
            samples::session_start(&users()[1], "198.51.100.9"),
        ),
    ]);
    assert!(of_rule(&found.alerts, NOT_REPLACED).is_empty());
    assert!(found.pending.is_empty(), "{:#?}", found.pending);
}

// --- the service ------------------------------------------------------------------------------

/// A rules folder with the built-ins' inputs plus an absence rule of `seconds`.
fn short_absence_rule(dir: &std::path::Path, seconds: u64) {
    std::fs::write(
        dir.join("short_absence.yml"),
        format!(
            "title: Test Absence\nid: test-absence\nfactorwatch.absence: true\n\
             correlation:\n  type: temporal_ordered\n  rules: [okta_mfa_removed, okta_mfa_factor_activated]\n  \
             group-by: [factorwatch.user]\n  timespan: {seconds}s\nlevel: low\n"
        ),
    )
    .unwrap();
}

/// A service configuration with the built-in correlations and an absence rule of 3 s, and its
/// data and rules folders (which must outlive the service).
fn short_absence_config() -> (Config, TempDir, TempDir) {
    let data_dir = TempDir::new().unwrap();
    let rules_dir = TempDir::new().unwrap();
    short_absence_rule(rules_dir.path(), 3);
    let mut config = config_with(data_dir.path(), vec![]);
    config.rules.builtin_correlations = true;
    config.rules.paths = vec![rules_dir.path().to_owned()];
    (config, data_dir, rules_dir)
}

fn envelope(events: Vec<Value>) -> Value {
    samples::envelope("https://example.okta.com", "who0hook", events)
}

#[tokio::test]
async fn correlation_windows_and_timers_survive_a_restart_and_timers_fire_on_the_clock() {
    let (config, data_dir, _rules_dir) = short_absence_config();
    let user = &users()[0];
    let alerts_path = data_dir.path().join("alerts.jsonl");

    let app = spawn_app_with(config.clone(), data_dir).await;
    let now = rfc3339(now_ms());
    let mut reset = deactivate(user, Initiator::Admin);
    reset["published"] = json!(now);
    assert_eq!(app.post(&envelope(vec![reset])).await.status(), 204);
    wait_for_alert_lines(&alerts_path, 1, Duration::from_secs(10)).await;
    // Later passes that feed no correlation leave the stored state as the reset's pass saved it.
    let quiet = bare_event("user.session.end", "quiet-after-reset");
    assert_eq!(app.post(&envelope(vec![quiet])).await.status(), 204);
    app.wait_until_drained().await;
    let data_dir = app.stop().await;

    // Restarted on the same spool: the open window completes, the open timer fires.
    let app = spawn_app_with(config, data_dir).await;
    let mut password = samples::password_reset(user, Initiator::Admin);
    password["published"] = json!(rfc3339(now_ms()));
    assert_eq!(app.post(&envelope(vec![password])).await.status(), 204);
    let alerts = wait_for_alert_lines(&alerts_path, 3, Duration::from_secs(15)).await;
    let rules: Vec<&str> = alerts
        .iter()
        .map(|a| a["rule"]["id"].as_str().unwrap())
        .collect();
    assert!(rules.contains(&THEN_PASSWORD), "{rules:?}");
    assert!(rules.contains(&"test-absence"), "{rules:?}");
    tokio::time::sleep(Duration::from_secs(1)).await;
    assert_eq!(read_alert_lines(&alerts_path).len(), 3, "each fires once");
    app.stop().await;
}

#[tokio::test]
async fn the_service_starts_the_absence_timer_of_a_late_event_when_it_arrives() {
    let (config, data_dir, _rules_dir) = short_absence_config();
    let alerts_path = data_dir.path().join("alerts.jsonl");
    let app = spawn_app_with(config, data_dir).await;

    let mut late = deactivate(&users()[0], Initiator::Admin);
    late["published"] = json!(rfc3339(now_ms() - 6 * 24 * 3600 * 1000));
    assert_eq!(app.post(&envelope(vec![late])).await.status(), 204);
    let single = wait_for_alert_lines(&alerts_path, 1, Duration::from_secs(10)).await;
    assert_ne!(single[0]["rule"]["id"], "test-absence");
    tokio::time::sleep(Duration::from_millis(1500)).await;
    assert_eq!(
        read_alert_lines(&alerts_path).len(),
        1,
        "the timer waits its timespan from the event's arrival"
    );
    let alerts = wait_for_alert_lines(&alerts_path, 2, Duration::from_secs(10)).await;
    assert_eq!(alerts[1]["rule"]["id"], "test-absence");
    app.stop().await;
}
