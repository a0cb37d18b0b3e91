//! Fields factorwatch adds to each event, under `factorwatch.*`, before the rules see it.
//!
//! Okta names the user an event is about in different places: the `User` entry of `target` when
//! someone acts on a user (an MFA reset, a password reset), the `actor` when users act for
//! themselves (a sign-in). Correlation rules must group both kinds of events by that one user, so
//! `factorwatch.user` says who it is. Whether a sign-in comes from a network new for the user
//! needs history no single event carries, so `factorwatch.new_ip` and `factorwatch.new_asn` say
//! that. Who initiated an event takes several of Okta's fields to tell (the actor's type and login,
//! the transaction, the API token), so `factorwatch.initiated_by` says it in one word; and the
//! phone number of an MFA event, written in whatever format Okta used, becomes
//! `factorwatch.phone` in one format, so rules can count users per number. Only the copy the
//! rules read is changed; alerts keep the event exactly as Okta sent it.
//!
//! This runs on every event before every rule: each field costs a few lookups, no allocation
//! beyond the values added, and nothing adds a top-level key (see `rule_event`).

use std::collections::{HashMap, HashSet};

use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use crate::alert::InitiatedBy;
use crate::okta::LogEvent;
use crate::okta::event::scalar_text;

/// The object factorwatch adds to every event the rules read.
pub const NAMESPACE: &str = "factorwatch";

/// How many IP addresses and ASNs are remembered per user: enough for home, office, phone and
/// travel, small enough that a user who roams through many networks costs a bounded row.
const NETWORKS_PER_USER: usize = 32;

/// The login of the user `event` is about: the first `target` of type `User`, else the actor
/// when the actor is a user.
pub fn subject_user(event: &LogEvent<'_>) -> Option<String> {
    let user_target = event
        .targets()
        .iter()
        .find(|target| target["type"] == "User")
        .and_then(|target| scalar_text(&target["alternateId"]));
    user_target.or_else(|| {
        (event.text("actor.type").as_deref() == Some("User"))
            .then(|| event.text("actor.alternateId"))
            .flatten()
    })
}

/// The actor Okta uses for its own support staff.
const OKTA_SUPPORT: &str = "system@okta.com";

/// Who initiated `event`, told from its actor and transaction; `user_targets` are its `User`
/// targets. The first case that holds wins: Okta Support, an API token, a service app, Okta's
/// own processes, then (with a `User` target and an actor id) the user themselves or another
/// user.
pub fn initiated_by(event: &LogEvent<'_>, user_targets: &[&Value]) -> InitiatedBy {
    let actor_type = event.get("actor.type").and_then(Value::as_str);
    let actor_login = event
        .get("actor.alternateId")
        .and_then(Value::as_str)
        .unwrap_or_default();
    let is_system = actor_type == Some("SystemPrincipal");
    let unknown_transaction =
        event.get("transaction.id").and_then(Value::as_str) == Some("unknown");
    if actor_login.eq_ignore_ascii_case(OKTA_SUPPORT) || (is_system && unknown_transaction) {
        return InitiatedBy::OktaSupport;
    }
    if event.get("transaction.detail.requestApiTokenId").is_some() {
        return InitiatedBy::ApiToken;
    }
    match actor_type {
        Some("PublicClientApp" | "AppInstance") => return InitiatedBy::ServiceApp,
        Some("SystemPrincipal") => return InitiatedBy::System,
        _ => {}
    }
    let actor_id = event.get("actor.id").and_then(scalar_text);
    if user_targets.is_empty() || actor_id.is_none() {
        return InitiatedBy::Unknown;
    }
    let is_actor = |target: &&Value| {
        target.get("id").and_then(scalar_text) == actor_id
            || target
                .get("alternateId")
                .and_then(Value::as_str)
                .is_some_and(|login| login.eq_ignore_ascii_case(actor_login))
    };
    if user_targets.iter().any(is_actor) {
        InitiatedBy::SelfService
    } else {
        InitiatedBy::Admin
    }
}

/// Where a `user.mfa.*` event may carry the phone number of an SMS or voice factor. Okta
/// documents none of them: `debugContext.debugData` is free-form, and a factor target's
/// `detailEntry` holds what the factor's resource details have.
const PHONE_PATHS: &[&str] = &[
    "debugContext.debugData.phoneNumber",
    "debugContext.debugData.phone",
];

/// The fewest digits a phone number has (E.164 numbers have up to 15); fewer is not a number.
const PHONE_MIN_DIGITS: usize = 7;

/// The phone number of a `user.mfa.*` event, as `+` and digits; `None` when there is none, or
/// when Okta masked it (`+1 XXX-XXX-4567`, `***4567`): a masked number matches other users'
/// masked numbers by accident, so it is no evidence of a shared phone.
pub fn mfa_phone(event: &LogEvent<'_>) -> Option<String> {
    let from_debug = PHONE_PATHS
        .iter()
        .find_map(|path| event.get(path).and_then(Value::as_str));
    let from_target = || {
        event
            .targets()
            .iter()
            .find_map(|target| target.get("detailEntry")?.get("phoneNumber")?.as_str())
    };
    normalise_phone(from_debug.or_else(from_target)?)
}

/// `raw` as `+` (when it starts with one, or with `00`) and its digits; `None` when masked or
/// too short.
fn normalise_phone(raw: &str) -> Option<String> {
    if raw.contains(['x', 'X', '*', '#']) {
        return None;
    }
    let trimmed = raw.trim();
    let digits: String = trimmed.chars().filter(char::is_ascii_digit).collect();
    if digits.len() < PHONE_MIN_DIGITS {
        return None;
    }
    match digits.strip_prefix("00") {
        Some(rest) if !trimmed.starts_with('+') => Some(format!("+{rest}")),
        _ if trimmed.starts_with('+') => Some(format!("+{digits}")),
        _ => Some(digits),
    }
}

/// The user whose networks a successful `user.session.start` teaches us, if `event` is one.
pub fn session_user(event: &LogEvent<'_>) -> Option<String> {
    is_successful_sign_in(event)
        .then(|| subject_user(event))
        .flatten()
}

/// True for a `user.session.start` whose outcome is `SUCCESS`: the events that teach networks.
pub fn is_successful_sign_in(event: &LogEvent<'_>) -> bool {
    event.event_type().as_deref() == Some("user.session.start")
        && event.text("outcome.result").as_deref() == Some("SUCCESS")
}

/// The networks one user has signed in from, most recent last.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct KnownNetworks {
    /// Client IP addresses.
    pub ips: Vec<String>,
    /// Autonomous system numbers, as text.
    pub asns: Vec<String>,
}

impl KnownNetworks {
    /// Remembers `value`, moving it to the most recent place and forgetting the oldest beyond
    /// the bound. Returns true when it was new.
    fn learn(list: &mut Vec<String>, value: String) -> bool {
        let known = list.iter().position(|v| *v == value);
        if let Some(at) = known {
            list.remove(at);
        }
        list.push(value);
        if list.len() > NETWORKS_PER_USER {
            list.remove(0);
        }
        known.is_none()
    }
}

/// The network history of the users of one detection pass: read from the spool before the pass,
/// updated as sessions go by, and the changed rows written back with the pass.
#[derive(Debug, Default)]
pub struct NetworkHistory {
    users: HashMap<String, KnownNetworks>,
    changed: HashSet<String>,
}

impl NetworkHistory {
    /// History as stored, keyed by user login.
    pub fn new(users: HashMap<String, KnownNetworks>) -> Self {
        Self {
            users,
            changed: HashSet::new(),
        }
    }

    /// Records the network of a session and says which parts of it were new for the user:
    /// `(new_ip, new_asn)`. An absent IP or ASN is never called new.
    fn observe(&mut self, user: &str, ip: Option<String>, asn: Option<String>) -> (bool, bool) {
        let networks = self.users.entry(user.to_owned()).or_default();
        let new_ip = ip.is_some_and(|ip| KnownNetworks::learn(&mut networks.ips, ip));
        let new_asn = asn.is_some_and(|asn| KnownNetworks::learn(&mut networks.asns, asn));
        self.changed.insert(user.to_owned());
        (new_ip, new_asn)
    }

    /// The rows that changed, to store with the pass.
    pub fn into_changed(mut self) -> Vec<(String, KnownNetworks)> {
        self.changed
            .into_iter()
            .filter_map(|user| self.users.remove_entry(&user))
            .collect()
    }
}

/// Adds `factorwatch.user` and `factorwatch.initiated_by` (and, on successful sign-ins,
/// `factorwatch.new_ip` and `factorwatch.new_asn`; on `user.mfa.*` events with an unmasked
/// phone number, `factorwatch.phone`) to `value`, learning the sign-in's network into `history`.
pub fn enrich(value: &mut Value, history: &mut NetworkHistory) {
    let event = LogEvent(value);
    let user = subject_user(&event);
    let user_targets: Vec<&Value> = event
        .targets()
        .iter()
        .filter(|target| target["type"] == "User")
        .collect();
    let initiator = initiated_by(&event, &user_targets);
    let mut added = json!({ "user": user, "initiated_by": initiator.as_str() });
    let is_mfa = event
        .get("eventType")
        .and_then(Value::as_str)
        .is_some_and(|event_type| event_type.starts_with("user.mfa."));
    if let Some(phone) = is_mfa.then(|| mfa_phone(&event)).flatten() {
        added["phone"] = phone.into();
    }
    if let Some(user) = session_user(&event) {
        let ip = event.text("client.ipAddress");
        let asn = event.get("securityContext.asNumber").and_then(scalar_text);
        let (new_ip, new_asn) = history.observe(&user, ip, asn);
        added["new_ip"] = new_ip.into();
        added["new_asn"] = new_asn.into();
    }
    if let Value::Object(map) = value {
        map.insert(NAMESPACE.to_owned(), added);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::okta::samples::{self, Initiator, SampleUser};

    fn user() -> SampleUser {
        samples::users().remove(0)
    }

    #[test]
    fn the_user_is_the_target_of_an_admin_reset_and_the_actor_of_a_sign_in() {
        let dana = user();
        let reset = samples::mfa_factor_reset_all(&dana, Initiator::Admin);
        let login = samples::session_start(&dana, "198.51.100.7");
        assert_eq!(subject_user(&LogEvent(&reset)), Some(dana.login.clone()));
        assert_ne!(reset["actor"]["alternateId"], dana.login.as_str());
        assert_eq!(subject_user(&LogEvent(&login)), Some(dana.login.clone()));
    }

    #[test]
    fn a_sign_in_is_new_until_its_network_was_seen_for_that_user() {
        let dana = user();
        let mut history = NetworkHistory::default();
        let mut first = samples::session_start(&dana, "198.51.100.7");
        enrich(&mut first, &mut history);
        assert_eq!(first[NAMESPACE]["new_ip"], true);
        let mut again = samples::session_start(&dana, "198.51.100.7");
        enrich(&mut again, &mut history);
        assert_eq!(again[NAMESPACE]["new_ip"], false);
        assert_eq!(again[NAMESPACE]["new_asn"], false);
        let mut elsewhere = samples::session_start(&dana, "203.0.113.50");
        enrich(&mut elsewhere, &mut history);
        assert_eq!(elsewhere[NAMESPACE]["new_ip"], true);
        let changed = history.into_changed();
        assert_eq!(changed.len(), 1);
        assert_eq!(changed[0].1.ips, ["198.51.100.7", "203.0.113.50"]);
    }

    #[test]
    fn history_is_bounded_and_keeps_the_most_recent() {
        let mut networks = KnownNetworks::default();
        for n in 0..NETWORKS_PER_USER + 5 {
            KnownNetworks::learn(&mut networks.ips, format!("10.0.0.{n}"));
        }
        assert!(!KnownNetworks::learn(&mut networks.ips, "10.0.0.6".into()));
        assert_eq!(networks.ips.len(), NETWORKS_PER_USER);
        assert_eq!(networks.ips.last().unwrap(), "10.0.0.6");
        assert!(!networks.ips.contains(&"10.0.0.4".to_string()));
    }

    #[test]
    fn every_event_says_who_initiated_it() {
        let dana = user();
        let cases = [
            (Initiator::SelfService, "self"),
            (Initiator::Admin, "admin"),
            (Initiator::ApiToken, "api_token"),
            (Initiator::OktaSupport, "okta_support"),
            (Initiator::ServiceApp, "service_app"),
        ];
        for (initiator, expected) in cases {
            let mut reset = samples::mfa_factor_reset_all(&dana, initiator);
            enrich(&mut reset, &mut NetworkHistory::default());
            assert_eq!(reset[NAMESPACE]["initiated_by"], expected, "{initiator:?}");
            let context = crate::detect::context::mfa_context(&LogEvent(&reset), &[]).unwrap();
            let serialized = serde_json::to_value(context.initiated_by).unwrap();
            assert_eq!(
                reset[NAMESPACE]["initiated_by"], serialized,
                "the rules' word is the alert's"
            );
        }
        let mut job = samples::event_hook_cap_warning(1);
        job["actor"]["alternateId"] = json!("okta-jobs");
        job["transaction"]["id"] = json!("Wj8rKq1b2c3d");
        enrich(&mut job, &mut NetworkHistory::default());
        assert_eq!(job[NAMESPACE]["initiated_by"], "system");
        let mut no_actor = json!({"eventType": "user.mfa.factor.update", "actor": null});
        enrich(&mut no_actor, &mut NetworkHistory::default());
        assert_eq!(no_actor[NAMESPACE]["initiated_by"], "unknown");
    }

    /// A factor activation for `user` whose `debugData.phoneNumber` is `phone`.
    fn sms_activation(phone: &str) -> Value {
        let mut event = samples::mfa_factor_activate(&user(), "SMS");
        event["debugContext"]["debugData"]["phoneNumber"] = json!(phone);
        event
    }

    #[test]
    fn a_phone_number_is_normalised_and_a_masked_one_skipped() {
        for (raw, expected) in [
            ("+1 (555) 010-4477", Some("+15550104477")),
            ("+44 7700 900123", Some("+447700900123")),
            ("0044 7700 900123", Some("+447700900123")),
            ("555-010-4477", Some("5550104477")),
            ("+1 XXX-XXX-4477", None),
            ("***4477", None),
            ("12", None),
        ] {
            let mut event = sms_activation(raw);
            enrich(&mut event, &mut NetworkHistory::default());
            let phone = event[NAMESPACE].get("phone").and_then(Value::as_str);
            assert_eq!(phone, expected, "{raw}");
        }
        let mut in_target = samples::mfa_factor_activate(&user(), "SMS");
        in_target["target"][1]["detailEntry"] = json!({"phoneNumber": "+1 555 010 4477"});
        enrich(&mut in_target, &mut NetworkHistory::default());
        assert_eq!(in_target[NAMESPACE]["phone"], "+15550104477");
    }

    #[test]
    fn only_mfa_events_get_a_phone() {
        let mut login = samples::session_start(&user(), "198.51.100.7");
        login["debugContext"]["debugData"]["phoneNumber"] = json!("+15550104477");
        enrich(&mut login, &mut NetworkHistory::default());
        assert!(login[NAMESPACE].get("phone").is_none());
    }

    #[test]
    fn other_events_get_the_user_and_initiator_only() {
        let mut reset = samples::password_reset(&user(), Initiator::Admin);
        enrich(&mut reset, &mut NetworkHistory::default());
        assert!(reset[NAMESPACE]["user"].is_string());
        assert_eq!(reset[NAMESPACE]["initiated_by"], "admin");
        assert!(reset[NAMESPACE].get("new_ip").is_none());
    }
}
