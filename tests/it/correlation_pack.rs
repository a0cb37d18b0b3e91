//! The MFA-tampering correlations of the rule pack, each with the sequence it exists for and
//! its near misses, on events shaped like Okta's, through the detection code the service runs.

use factorwatch::okta::samples::{self, Initiator, SampleUser};
use serde_json::{Value, json};

use crate::correlation::{at, deactivate, detect, of_rule, users};

const PHONE_SHARED: &str = "b0c39271-9e60-435f-a8a3-cd44bf3111dd";
const PUSH_FATIGUE: &str = "93066c73-7506-43d1-8094-b58368c0e25b";
const PUSH_FLOOD: &str = "dd5f6804-b376-4ecb-b9f8-1d1064c55154";
const THEN_IDP: &str = "e0cad476-60a1-46ef-918c-955fe9ceaeca";
const THEN_PRIVILEGE: &str = "83cb7145-f72f-4f5e-a5ad-fcf74228c990";
const TEMPORARY_PASSWORD_THEN_RESET: &str = "c225f771-83b4-429a-a405-5557ae57d345";
const THEN_ADMIN_APP: &str = "0b2f0885-4ecd-4625-9ffd-e434bb8b9476";

/// How many alerts of `rule_id` the events raise.
fn fired(rule_id: &str, events: Vec<Value>) -> usize {
    let found = detect(events);
    of_rule(&found.alerts, rule_id).len()
}

/// `user`'s own event of `event_type` (the user is actor and target), with `result`.
fn own_event(event_type: &str, user: &SampleUser, result: &str) -> Value {
    let mut event = samples::user_event(
        event_type,
        event_type,
        user,
        Initiator::SelfService,
        Vec::new(),
    );
    event["outcome"]["result"] = json!(result);
    event
}

// --- one phone number enrolled for several users --------------------------------------------

/// `user` enrolling an SMS factor on `phone`, written as Okta's debug data would hold it.
fn sms_enrolment(user: &SampleUser, phone: &str) -> Value {
    let mut event = samples::mfa_factor_activate(user, "SMS");
    event["debugContext"]["debugData"]["phoneNumber"] = json!(phone);
    event
}

#[test]
fn one_phone_number_enrolled_by_two_users_within_a_day_is_an_alert() {
    let [alice, bob, _] = <[SampleUser; 3]>::try_from(users()).unwrap();
    let found = detect(vec![
        at(0, sms_enrolment(&alice, "+1 (555) 010-4477")),
        at(600, sms_enrolment(&bob, "+15550104477")),
    ]);
    let alerts = of_rule(&found.alerts, PHONE_SHARED);
    assert_eq!(alerts.len(), 1, "{:#?}", found.alerts);
    let correlation = alerts[0].correlation.as_ref().unwrap();
    assert_eq!(correlation.kind, "value_count");
    assert_eq!(
        correlation.group["factorwatch.phone"], "+15550104477",
        "both spellings are one number"
    );
}

#[test]
fn one_users_phone_twice_different_phones_masked_or_a_day_apart_are_not() {
    let [alice, bob, _] = <[SampleUser; 3]>::try_from(users()).unwrap();
    let cases = [
        (
            "the same user twice",
            vec![
                at(0, sms_enrolment(&alice, "+15550104477")),
                at(5, sms_enrolment(&alice, "+15550104477")),
            ],
        ),
        (
            "two numbers",
            vec![
                at(0, sms_enrolment(&alice, "+15550104477")),
                at(5, sms_enrolment(&bob, "+15550104478")),
            ],
        ),
        (
            "masked numbers",
            vec![
                at(0, sms_enrolment(&alice, "+1 XXX-XXX-4477")),
                at(5, sms_enrolment(&bob, "+1 XXX-XXX-4477")),
            ],
        ),
        (
            "more than 24 hours apart",
            vec![
                at(0, sms_enrolment(&alice, "+15550104477")),
                at(24 * 60 + 1, sms_enrolment(&bob, "+15550104477")),
            ],
        ),
    ];
    for (case, events) in cases {
        assert_eq!(fired(PHONE_SHARED, events), 0, "{case}");
    }
}

// --- push fatigue ---------------------------------------------------------------------------

#[test]
fn denied_or_unanswered_pushes_then_a_success_within_ten_minutes_is_an_alert() {
    let alice = &users()[0];
    let denied = own_event("user.mfa.okta_verify.deny_push", alice, "SUCCESS");
    let timed_out = own_event("user.authentication.auth_via_mfa", alice, "FAILURE");
    let passed = own_event("user.authentication.auth_via_mfa", alice, "SUCCESS");
    let found = detect(vec![
        at(0, denied.clone()),
        at(1, timed_out),
        at(2, denied),
        at(4, passed),
    ]);
    let alerts = of_rule(&found.alerts, PUSH_FATIGUE);
    assert_eq!(alerts.len(), 1, "{:#?}", found.alerts);
    assert_eq!(
        alerts[0].correlation.as_ref().unwrap().group["factorwatch.user"],
        alice.login
    );
}

#[test]
fn a_success_alone_too_late_or_for_another_user_is_not_push_fatigue() {
    let [alice, bob, _] = <[SampleUser; 3]>::try_from(users()).unwrap();
    let denied = || own_event("user.mfa.okta_verify.deny_push", &alice, "SUCCESS");
    let passed = |user| own_event("user.authentication.auth_via_mfa", user, "SUCCESS");
    let cases = [
        ("a success alone", vec![at(0, passed(&alice))]),
        (
            "the success first",
            vec![at(0, passed(&alice)), at(1, denied())],
        ),
        ("too late", vec![at(0, denied()), at(11, passed(&alice))]),
        (
            "another user's success",
            vec![at(0, denied()), at(1, passed(&bob))],
        ),
    ];
    for (case, events) in cases {
        assert_eq!(fired(PUSH_FATIGUE, events), 0, "{case}");
    }
}

#[test]
fn five_denied_or_failed_pushes_of_one_user_within_ten_minutes_are_a_flood() {
    let alice = &users()[0];
    let denied = || own_event("user.mfa.okta_verify.deny_push", alice, "SUCCESS");
    let timed_out = || own_event("user.authentication.auth_via_mfa", alice, "FAILURE");
    let found = detect(vec![
        at(0, denied()),
        at(1, timed_out()),
        at(2, denied()),
        at(4, denied()),
        at(9, timed_out()),
    ]);
    let alerts = of_rule(&found.alerts, PUSH_FLOOD);
    assert_eq!(alerts.len(), 1, "{:#?}", found.alerts);
    assert_eq!(alerts[0].rule.level, factorwatch::alert::Level::Medium);
    let correlation = alerts[0].correlation.as_ref().unwrap();
    assert_eq!(correlation.kind, "event_count");
    assert_eq!(correlation.group["factorwatch.user"], alice.login);
    assert_eq!(
        of_rule(&found.alerts, PUSH_FATIGUE).len(),
        0,
        "no success: no push fatigue alert"
    );
}

#[test]
fn four_pushes_or_pushes_over_more_than_ten_minutes_or_of_two_users_are_not_a_flood() {
    let [alice, bob, _] = <[SampleUser; 3]>::try_from(users()).unwrap();
    let denied = |user| own_event("user.mfa.okta_verify.deny_push", user, "SUCCESS");
    let passed = || own_event("user.authentication.auth_via_mfa", &alice, "SUCCESS");
    let cases = [
        (
            "four denials",
            (0..4).map(|m| at(m, denied(&alice))).collect(),
        ),
        (
            "five denials over 12 minutes",
            (0..5).map(|m| at(m * 3, denied(&alice))).collect(),
        ),
        (
            "three and two of two users",
            vec![
                at(0, denied(&alice)),
                at(1, denied(&bob)),
                at(2, denied(&alice)),
                at(3, denied(&bob)),
                at(4, denied(&alice)),
            ],
        ),
        (
            "four denials and a success",
            vec![
                at(0, denied(&alice)),
                at(1, denied(&alice)),
                at(2, denied(&alice)),
                at(3, denied(&alice)),
                at(4, passed()),
            ],
        ),
    ];
    for (case, events) in cases {
        assert_eq!(fired(PUSH_FLOOD, events), 0, "{case}");
    }
}

// --- MFA reset, then an identity provider created by the same actor -------------------------

/// The sample admin creating an identity provider.
fn idp_created() -> Value {
    let idp = samples::target_entity(
        "0oa7idpAttackr0001d7",
        "IdentityProvider",
        "unknown",
        "Partner SSO",
    );
    samples::admin_event("system.idp.lifecycle.create", "Create IdP", vec![idp])
}

#[test]
fn an_mfa_reset_then_an_idp_created_by_the_same_admin_within_the_hour_is_an_alert() {
    let alice = &users()[0];
    let found = detect(vec![
        at(0, deactivate(alice, Initiator::Admin)),
        at(40, idp_created()),
    ]);
    let alerts = of_rule(&found.alerts, THEN_IDP);
    assert_eq!(alerts.len(), 1, "{:#?}", found.alerts);
    assert_eq!(
        alerts[0].correlation.as_ref().unwrap().group["actor.alternateId"],
        samples::admin().login
    );
}

#[test]
fn an_idp_created_by_another_actor_too_late_or_first_is_not() {
    let alice = &users()[0];
    let cases = [
        (
            "another actor reset",
            vec![
                at(0, deactivate(alice, Initiator::OktaSupport)),
                at(5, idp_created()),
            ],
        ),
        (
            "too late",
            vec![
                at(0, deactivate(alice, Initiator::Admin)),
                at(61, idp_created()),
            ],
        ),
        (
            "the IdP first",
            vec![
                at(0, idp_created()),
                at(5, deactivate(alice, Initiator::Admin)),
            ],
        ),
    ];
    for (case, events) in cases {
        assert_eq!(fired(THEN_IDP, events), 0, "{case}");
    }
}

// --- MFA reset, then an admin privilege granted -----------------------------------------------

/// A `SUPER_ADMIN` role granted to `user` by the sample admin.
fn role_granted_to(user: &SampleUser) -> Value {
    let role = samples::target_entity("ra1superAdm1n0001d7x", "ROLE", "unknown", "Super Admin");
    samples::user_event(
        "user.account.privilege.grant",
        "Grant user privilege",
        user,
        Initiator::Admin,
        vec![role],
    )
}

/// `actor` granting an admin role to a group: the event names the group, not its members.
fn role_granted_to_group_by(actor: &SampleUser) -> Value {
    let mut event = own_event("group.privilege.grant", actor, "SUCCESS");
    event["target"] = json!([
        samples::target_entity("00g3kq1grpAdm1ns01d7", "UserGroup", "unknown", "IT Admins"),
        samples::target_entity("ra1superAdm1n0001d7x", "ROLE", "unknown", "Super Admin"),
    ]);
    event
}

#[test]
fn an_mfa_reset_then_a_role_for_that_user_or_granted_by_them_is_an_alert() {
    let alice = &users()[0];
    for (case, grant) in [
        ("granted to the user", role_granted_to(alice)),
        ("the user granting a group", role_granted_to_group_by(alice)),
    ] {
        let found = detect(vec![
            at(0, samples::mfa_factor_reset_all(alice, Initiator::Admin)),
            at(20, grant),
        ]);
        let alerts = of_rule(&found.alerts, THEN_PRIVILEGE);
        assert_eq!(alerts.len(), 1, "{case}: {:#?}", found.alerts);
        assert_eq!(
            alerts[0].correlation.as_ref().unwrap().group["factorwatch.user"],
            alice.login,
            "{case}"
        );
    }
}

#[test]
fn a_role_for_another_user_too_late_or_before_the_reset_is_not() {
    let [alice, bob, _] = <[SampleUser; 3]>::try_from(users()).unwrap();
    let cases = [
        (
            "another user",
            vec![
                at(0, deactivate(&alice, Initiator::Admin)),
                at(5, role_granted_to(&bob)),
            ],
        ),
        (
            "too late",
            vec![
                at(0, deactivate(&alice, Initiator::Admin)),
                at(61, role_granted_to(&alice)),
            ],
        ),
        (
            "the role first",
            vec![
                at(0, role_granted_to(&alice)),
                at(5, deactivate(&alice, Initiator::Admin)),
            ],
        ),
    ];
    for (case, events) in cases {
        assert_eq!(fired(THEN_PRIVILEGE, events), 0, "{case}");
    }
}

// --- a temporary password, then the same user's MFA reset -----------------------------------

/// The sample admin expiring `user`'s password with a temporary one.
fn password_expired(user: &SampleUser) -> Value {
    let mut event = samples::user_event(
        "user.account.expire_password",
        "Expire user password",
        user,
        Initiator::Admin,
        Vec::new(),
    );
    event["debugContext"]["debugData"]["url"] = json!(format!(
        "/api/v1/users/{}/lifecycle/expire_password?tempPassword=true",
        user.id
    ));
    event
}

/// A password reset whose request asked for a temporary password.
fn temporary_password_reset(user: &SampleUser) -> Value {
    let mut event = samples::password_reset(user, Initiator::Admin);
    event["debugContext"]["debugData"]["url"] = json!(format!(
        "/api/v1/users/{}/lifecycle/reset_password?tempPassword=true",
        user.id
    ));
    event
}

#[test]
fn a_temporary_password_then_an_mfa_reset_of_that_user_is_an_alert() {
    let alice = &users()[0];
    for first in [password_expired(alice), temporary_password_reset(alice)] {
        let found = detect(vec![
            at(0, first),
            at(10, deactivate(alice, Initiator::Admin)),
        ]);
        let alerts = of_rule(&found.alerts, TEMPORARY_PASSWORD_THEN_RESET);
        assert_eq!(alerts.len(), 1, "{:#?}", found.alerts);
    }
}

#[test]
fn a_reset_password_without_a_temporary_one_another_user_or_the_reset_first_is_not() {
    let [alice, bob, _] = <[SampleUser; 3]>::try_from(users()).unwrap();
    let cases = [
        (
            "an ordinary password reset",
            vec![
                at(0, samples::password_reset(&alice, Initiator::Admin)),
                at(5, deactivate(&alice, Initiator::Admin)),
            ],
        ),
        (
            "another user",
            vec![
                at(0, password_expired(&alice)),
                at(5, deactivate(&bob, Initiator::Admin)),
            ],
        ),
        (
            "the MFA reset first",
            vec![
                at(0, deactivate(&alice, Initiator::Admin)),
                at(5, password_expired(&alice)),
            ],
        ),
    ];
    for (case, events) in cases {
        assert_eq!(fired(TEMPORARY_PASSWORD_THEN_RESET, events), 0, "{case}");
    }
}

// --- MFA reset, then the same user in the Admin Console -------------------------------------

/// `user` opening the Okta Admin Console.
fn admin_console(user: &SampleUser) -> Value {
    let console = samples::target_entity(
        "0oa3kq7xzbAdmnCns1d7",
        "AppInstance",
        "Okta Admin Console",
        "Okta Admin Console",
    );
    samples::user_event(
        "user.session.access_admin_app",
        "User accessing Okta admin app",
        user,
        Initiator::SelfService,
        vec![console],
    )
}

#[test]
fn an_mfa_reset_then_that_user_in_the_admin_console_within_the_hour_is_an_alert() {
    let dana = samples::admin();
    let found = detect(vec![
        at(
            0,
            samples::mfa_factor_reset_all(&dana, Initiator::OktaSupport),
        ),
        at(25, admin_console(&dana)),
    ]);
    let alerts = of_rule(&found.alerts, THEN_ADMIN_APP);
    assert_eq!(alerts.len(), 1, "{:#?}", found.alerts);
}

#[test]
fn another_user_in_the_admin_console_or_an_hour_later_is_not() {
    let [alice, bob, _] = <[SampleUser; 3]>::try_from(users()).unwrap();
    let cases = [
        (
            "another user",
            vec![
                at(0, deactivate(&alice, Initiator::Admin)),
                at(5, admin_console(&bob)),
            ],
        ),
        (
            "too late",
            vec![
                at(0, deactivate(&alice, Initiator::Admin)),
                at(61, admin_console(&alice)),
            ],
        ),
    ];
    for (case, events) in cases {
        assert_eq!(fired(THEN_ADMIN_APP, events), 0, "{case}");
    }
}
