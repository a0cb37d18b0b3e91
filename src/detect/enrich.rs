//! Fields factorwatch adds to each event, under `factorwatch.*`, before the rules see it.
//!
//! Okta names the user an event is about in different places: the `User` entry of `target` when
//! someone acts on a user (an MFA reset, a password reset), the `actor` when users act for
//! themselves (a sign-in). Correlation rules must group both kinds of events by that one user, so
//! `factorwatch.user` says who it is. Whether a sign-in comes from a network new for the user
//! needs history no single event carries, so `factorwatch.new_ip` and `factorwatch.new_asn` say
//! that. Only the copy the rules read is changed; alerts keep the event exactly as Okta sent it.

use std::collections::{HashMap, HashSet};

use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

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

/// The user whose networks a successful `user.session.start` teaches us, if `event` is one.
pub fn session_user(event: &LogEvent<'_>) -> Option<String> {
    let is_session = event.event_type().as_deref() == Some("user.session.start")
        && event.text("outcome.result").as_deref() == Some("SUCCESS");
    is_session.then(|| subject_user(event)).flatten()
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

/// Adds `factorwatch.user` (and, on successful sign-ins, `factorwatch.new_ip` and
/// `factorwatch.new_asn`) to `value`, learning the sign-in's network into `history`.
pub fn enrich(value: &mut Value, history: &mut NetworkHistory) {
    let event = LogEvent(value);
    let user = subject_user(&event);
    let mut added = json!({ "user": user });
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
    fn other_events_get_only_the_user() {
        let mut reset = samples::password_reset(&user(), Initiator::Admin);
        enrich(&mut reset, &mut NetworkHistory::default());
        assert!(reset[NAMESPACE]["user"].is_string());
        assert!(reset[NAMESPACE].get("new_ip").is_none());
    }
}
