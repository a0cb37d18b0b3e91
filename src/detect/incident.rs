//! The incident fold: alerts about one target user within `[rules] incident_window` of the
//! incident's last alert become one incident, each alert on an event a step in words ("factor
//! removed (push) by admin@example.com from 192.0.2.7"): a correlation's alert is the step of the
//! event that completed it. An alert on an event that is a step already (another rule on it, an
//! absence timer that ran out on the event that opened it) is one of `also`. The fold is a pure function of the stored state and the alert, so each
//! replica computes the same incident from the same record; where the record is kept is
//! [`super::incident_store`]'s concern.
//!
//! It also decides what the `notify = "first"` sinks get: inside one incident, the first alert
//! of each rule is sent, a repeat is held back and counted, and the next alert sent to that sink
//! carries the count.

use std::collections::BTreeMap;
use std::time::Duration;

use serde::{Deserialize, Serialize};
use serde_json::value::RawValue;
use serde_json::{Value, json};

use crate::alert::{
    Alert, Incident, IncidentAlert, IncidentStep, InitiatedBy, MAX_ALSO, MAX_STEPS, incident_id,
};
use crate::clock::{parse_rfc3339_ms, rfc3339};
use crate::okta::LogEvent;
use crate::okta::event::{FromObject, scalar_text};

use super::enrich::subject_user;

/// The `group-by` field of correlations that group by the target user.
const USER_FIELD: &str = "factorwatch.user";

/// One target user's incident as stored: what alerts show, plus what the fold needs.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct IncidentState {
    /// The incident the alerts carry.
    pub incident: Incident,
    /// `last_seen` in Unix ms: the window runs from it.
    last_seen_ms: u64,
    /// `notify = "first"` sinks: by sink, each rule already sent and the alert it was sent as.
    #[serde(default)]
    sent: BTreeMap<String, BTreeMap<String, String>>,
    /// By `notify = "first"` sink: the repeats held back since its last delivery.
    #[serde(default)]
    held: BTreeMap<String, u64>,
}

/// What one `notify = "first"` sink gets of an alert.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Route {
    /// Deliver it, saying how many of the incident's alerts were held back before it.
    Send {
        /// Repeats held back since this sink's last delivery in the incident.
        suppressed: u64,
    },
    /// A repeat of a rule this sink was already sent in this incident: not delivered.
    Hold,
}

/// The routes of one alert, by `notify = "first"` sink name (other sinks get every alert).
pub type Routes = BTreeMap<String, Route>;

/// Who an alert is about, and where its incident is kept.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct IncidentKey {
    /// The Okta org (host) of the alert, else its `[[okta.orgs]]` name.
    pub org: String,
    /// The target user's login.
    pub user: String,
}

impl IncidentKey {
    /// The key of `alert`'s incident; `None` for an alert about no single user (an org-wide
    /// change, or a correlation grouped by something else than `factorwatch.user`).
    pub fn of(alert: &Alert, event: &Value) -> Option<Self> {
        let user = match &alert.correlation {
            Some(correlation) => correlation.group.get(USER_FIELD).cloned(),
            None => subject_user(&LogEvent(event)),
        }?;
        let org = alert
            .okta
            .org
            .clone()
            .or_else(|| alert.org.clone())
            .unwrap_or_default();
        Some(Self { org, user })
    }

    /// The record's key: `<okta org>:<login>`.
    pub fn record(&self) -> String {
        format!("{}:{}", self.org, self.user)
    }
}

/// The parts of an event the incident reads ([`IncidentKey::of`] and the step's words): the
/// actor, the targets, the network, the client's address and city, the debug factor. Parsed from
/// `raw` into a tree of their own with the rest skipped unparsed: a whole tree of every alert's
/// event was most of the fold's time under a mass reset (BENCHMARKS.md, "Where a pass spends its
/// time"). An event that does not have Okta's shape (a part that is not an object, a repeated
/// key) is parsed whole, so it reads the same.
pub fn incident_view(raw: &RawValue) -> Value {
    match serde_json::from_str::<FromObject<ViewedEvent>>(raw.get()) {
        Ok(FromObject(viewed)) => viewed.into_tree(),
        Err(_) => serde_json::from_str(raw.get()).unwrap_or(Value::Null),
    }
}

/// What [`incident_view`] parses of a LogEvent; a missing or `null` field reads as absent.
#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct ViewedEvent {
    actor: Option<Value>,
    target: Option<Value>,
    security_context: Option<FromObject<ViewedNetwork>>,
    client: Option<FromObject<ViewedClient>>,
    debug_context: Option<FromObject<ViewedDebug>>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct ViewedNetwork {
    as_number: Option<Value>,
    as_org: Option<Value>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct ViewedClient {
    ip_address: Option<Value>,
    geographical_context: Option<FromObject<ViewedPlace>>,
}

#[derive(Deserialize)]
struct ViewedPlace {
    city: Option<Value>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct ViewedDebug {
    debug_data: Option<FromObject<ViewedDebugData>>,
}

#[derive(Deserialize)]
struct ViewedDebugData {
    factor: Option<Value>,
}

impl ViewedEvent {
    /// The parsed parts at their LogEvent paths (absent ones as `null`, which reads the same).
    fn into_tree(self) -> Value {
        let (as_number, as_org) =
            (self.security_context).map_or((None, None), |FromObject(n)| (n.as_number, n.as_org));
        let (ip_address, place) = (self.client).map_or((None, None), |FromObject(c)| {
            (c.ip_address, c.geographical_context)
        });
        let city = place.and_then(|FromObject(place)| place.city);
        let factor = (self.debug_context)
            .and_then(|FromObject(debug)| debug.debug_data)
            .and_then(|FromObject(data)| data.factor);
        json!({
            "actor": self.actor,
            "target": self.target,
            "securityContext": { "asNumber": as_number, "asOrg": as_org },
            "client": { "ipAddress": ip_address, "geographicalContext": { "city": city } },
            "debugContext": { "debugData": { "factor": factor } },
        })
    }
}

/// When `alert`'s event happened (Unix ms): its `published`, else when it was received.
pub fn alert_time_ms(alert: &Alert) -> u64 {
    let published = alert.event.published.as_deref().and_then(parse_rfc3339_ms);
    published
        .or_else(|| parse_rfc3339_ms(&alert.received_at))
        .map_or(0, |ms| ms.max(0) as u64)
}

/// Folds `alert` (its event parsed as `event`) into `state`, the stored incident of `key` if
/// any, and decides its routes to `first_sinks` (the `notify = "first"` sinks that accept it).
/// An incident whose last alert is more than `window` before this one is over: a new one starts.
/// Folding an alert the incident already holds (a pass detected again after a crash) changes
/// nothing and routes it as the first time.
pub fn fold(
    state: Option<IncidentState>,
    key: &IncidentKey,
    alert: &Alert,
    event: &Value,
    window: Duration,
    first_sinks: &[&str],
) -> (IncidentState, Routes) {
    let at_ms = alert_time_ms(alert);
    let open = state.filter(|state| at_ms <= state.last_seen_ms + window.as_millis() as u64);
    let mut state = open.unwrap_or_else(|| IncidentState::open(key, alert, at_ms));
    if state.incident.holds(&alert.id) {
        let routes = state.replayed_routes(alert, first_sinks);
        return (state, routes);
    }
    state.add(alert, event, at_ms);
    let routes = first_sinks
        .iter()
        .map(|sink| (sink.to_string(), state.route(sink, alert)))
        .collect();
    (state, routes)
}

impl IncidentState {
    /// A new incident, opened by `alert`.
    fn open(key: &IncidentKey, alert: &Alert, at_ms: u64) -> Self {
        let at = rfc3339(at_ms);
        Self {
            incident: Incident {
                id: incident_id(&key.org, &key.user, &alert.id),
                user: key.user.clone(),
                first_seen: at.clone(),
                last_seen: at,
                steps: Vec::new(),
                steps_omitted: 0,
                also: Vec::new(),
                also_omitted: 0,
            },
            last_seen_ms: at_ms,
            sent: BTreeMap::new(),
            held: BTreeMap::new(),
        }
    }

    /// Whether the incident's window ended by `now_ms`: any alert from then on opens a new
    /// incident, so the stored state is of no more use.
    pub fn ended_by(&self, now_ms: u64, window: Duration) -> bool {
        now_ms > self.last_seen_ms.saturating_add(window.as_millis() as u64)
    }

    /// Adds `alert` as a step, or to `also` when its event is a step already; moves
    /// `first_seen` and `last_seen`.
    fn add(&mut self, alert: &Alert, event: &Value, at_ms: u64) {
        let incident = &mut self.incident;
        let at = rfc3339(at_ms);
        if parse_rfc3339_ms(&incident.first_seen).is_some_and(|first| (at_ms as i64) < first) {
            incident.first_seen = at.clone();
        }
        if at_ms > self.last_seen_ms {
            self.last_seen_ms = at_ms;
            incident.last_seen = at.clone();
        }
        let event_is_a_step = alert.event.uuid.is_some()
            && incident
                .steps
                .iter()
                .any(|step| step.event_uuid == alert.event.uuid);
        if event_is_a_step {
            let other = IncidentAlert {
                at,
                alert_id: alert.id.clone(),
                rule_id: alert.rule.id.clone(),
                rule: alert.rule.title.clone(),
            };
            capped_insert(
                &mut incident.also,
                other,
                MAX_ALSO,
                &mut incident.also_omitted,
            );
            return;
        }
        let step = IncidentStep {
            what: step_words(alert, event, incident),
            at,
            alert_id: alert.id.clone(),
            rule_id: alert.rule.id.clone(),
            rule: alert.rule.title.clone(),
            event_uuid: alert.event.uuid.clone(),
            event_type: alert.event.event_type.clone(),
        };
        capped_insert(
            &mut incident.steps,
            step,
            MAX_STEPS,
            &mut incident.steps_omitted,
        );
    }

    /// Whether `sink` gets `alert`, recording the decision.
    fn route(&mut self, sink: &str, alert: &Alert) -> Route {
        let sent = self.sent.entry(sink.to_owned()).or_default();
        if sent.contains_key(&alert.rule.id) {
            *self.held.entry(sink.to_owned()).or_default() += 1;
            return Route::Hold;
        }
        sent.insert(alert.rule.id.clone(), alert.id.clone());
        Route::Send {
            suppressed: self.held.remove(sink).unwrap_or(0),
        }
    }

    /// The routes of an alert folded in before: sent where it was the one sent.
    fn replayed_routes(&self, alert: &Alert, first_sinks: &[&str]) -> Routes {
        first_sinks
            .iter()
            .map(|sink| {
                let sent_as = self.sent.get(*sink).and_then(|s| s.get(&alert.rule.id));
                let route = match sent_as {
                    Some(id) if *id != alert.id => Route::Hold,
                    _ => Route::Send { suppressed: 0 },
                };
                (sink.to_string(), route)
            })
            .collect()
    }
}

/// Inserts `item` in time order (by its `at`, stable for equal times), keeping at most `cap`:
/// what falls off the end (the latest) is counted in `omitted`.
fn capped_insert<T: Timed>(list: &mut Vec<T>, item: T, cap: usize, omitted: &mut u64) {
    let at = parse_rfc3339_ms(item.at()).unwrap_or(0);
    let place = list.partition_point(|other| parse_rfc3339_ms(other.at()).unwrap_or(0) <= at);
    list.insert(place, item);
    if list.len() > cap {
        list.truncate(cap);
        *omitted += 1;
    }
}

/// An entry of an incident placed in time.
trait Timed {
    fn at(&self) -> &str;
}

impl Timed for IncidentStep {
    fn at(&self) -> &str {
        &self.at
    }
}

impl Timed for IncidentAlert {
    fn at(&self) -> &str {
        &self.at
    }
}

/// A step in words: what happened, by whom, from where.
fn step_words(alert: &Alert, event: &Value, incident: &Incident) -> String {
    let event = LogEvent(event);
    let event_type = alert.event.event_type.as_deref().unwrap_or_default();
    let factors = factor_names(alert, &event);
    let listed = match factors.is_empty() {
        true => String::new(),
        false => format!(" ({factors})"),
    };
    let what = match event_type {
        "user.mfa.factor.deactivate" => format!("factor removed{listed}"),
        "user.mfa.factor.reset_all" => format!("all factors reset{listed}"),
        "user.mfa.factor.activate" | "user.mfa.factor.enroll" if !factors.is_empty() => {
            format!("new enrolment of {factors}")
        }
        "user.mfa.factor.activate" | "user.mfa.factor.enroll" => "new enrolment".to_owned(),
        "user.mfa.factor.suspend" => format!("factor suspended{listed}"),
        "user.mfa.factor.update" => format!("factor updated{listed}"),
        "user.session.start" => {
            let earlier = incident
                .steps
                .iter()
                .any(|step| step.event_type.as_deref() == Some(event_type));
            let session = if earlier { "session" } else { "first session" };
            return format!("{session} {}", from(&event));
        }
        "user.account.update_password" => "password changed".to_owned(),
        "user.account.reset_password" => "password reset".to_owned(),
        "user.account.privilege.grant" => "admin privilege granted".to_owned(),
        _ => alert.rule.title.clone(),
    };
    let by = by(alert, &event, &incident.user);
    format!("{what} by {by} {}", from(&event))
}

/// `push, sms`: the factors an MFA alert names, else the event's factor; empty when neither.
fn factor_names(alert: &Alert, event: &LogEvent<'_>) -> String {
    let mut listed = alert
        .context
        .as_ref()
        .map(|context| context.factors.clone())
        .unwrap_or_default();
    if listed.is_empty() {
        listed.extend(event.text("debugContext.debugData.factor"));
    }
    let names: Vec<String> = listed.iter().map(|factor| factor_name(factor)).collect();
    names.join(", ")
}

/// A factor type as people say it: `OKTA_VERIFY_PUSH` is "push", `FIDO_WEBAUTHN` "webauthn",
/// `GOOGLE_OTP` "google otp".
fn factor_name(factor: &str) -> String {
    let upper = factor.to_uppercase();
    let short = ["OKTA_VERIFY_", "FIDO_"]
        .iter()
        .find_map(|prefix| upper.strip_prefix(prefix))
        .unwrap_or(&upper);
    short.replace('_', " ").to_lowercase()
}

/// Who did it: "the user" when the actor is the incident's user, else the actor's login, or
/// what the MFA context tells of an API token or Okta Support.
fn by(alert: &Alert, event: &LogEvent<'_>, user: &str) -> String {
    let initiated = alert.context.as_ref().and_then(|c| c.initiated_by);
    match initiated {
        Some(InitiatedBy::ApiToken) => return "an API token".to_owned(),
        Some(InitiatedBy::OktaSupport) => return "Okta Support".to_owned(),
        _ => {}
    }
    match event.text("actor.alternateId") {
        Some(actor) if actor.eq_ignore_ascii_case(user) => "the user".to_owned(),
        Some(actor) => actor,
        None => "an unknown actor".to_owned(),
    }
}

/// Where from: "from AS1234 Example Net, Lisbon" when Okta resolved the network, else
/// "from <ip>", else "from an unknown network".
fn from(event: &LogEvent<'_>) -> String {
    let asn = event.get("securityContext.asNumber").and_then(scalar_text);
    let as_org = event.text("securityContext.asOrg");
    let city = event.text("client.geographicalContext.city");
    let network = match (asn, as_org) {
        (Some(asn), Some(org)) => Some(format!("AS{asn} {org}")),
        (Some(asn), None) => Some(format!("AS{asn}")),
        (None, _) => event.text("client.ipAddress"),
    };
    match (network, city) {
        (Some(network), Some(city)) => format!("from {network}, {city}"),
        (Some(network), None) => format!("from {network}"),
        (None, _) => "from an unknown network".to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use serde_json::value::RawValue;

    use super::*;
    use crate::alert::{CorrelationInfo, Matched, RuleRef};
    use crate::okta::Origin;
    use crate::okta::samples::{self, Initiator};

    const HOUR_MS: u64 = 3600 * 1000;
    const WINDOW: Duration = Duration::from_secs(24 * 3600);
    /// 2026-12-01T00:00:00Z.
    const START_MS: u64 = 1_764_547_200_000;

    /// The alert of `rule` on `event` published at `at_ms`, with the MFA context the detector
    /// adds, and the event as the fold reads it.
    fn alert(rule: &str, mut event: Value, at_ms: u64) -> (Alert, Value) {
        event["published"] = rfc3339(at_ms).into();
        let raw = RawValue::from_string(event.to_string()).unwrap();
        let rule = RuleRef {
            id: rule.into(),
            title: format!("rule {rule}"),
            ..Default::default()
        };
        let key = event["uuid"].as_str().unwrap().to_owned();
        let origin = Origin {
            org: Some("acme.okta.com".into()),
            ..Default::default()
        };
        let matched = Matched {
            event: LogEvent(&event),
            raw: &raw,
            key: &key,
            origin: &origin,
            delivery_id: None,
            received_at: "2026-12-01T00:00:00Z",
        };
        let mut alert = Alert::build(&rule, &matched);
        alert.context = crate::detect::context::mfa_context(&LogEvent(&event), &[]);
        (alert, event)
    }

    fn reset(at_ms: u64) -> (Alert, Value) {
        let bob = &samples::users()[1];
        let event = samples::mfa_factor_deactivate(bob, "OKTA_VERIFY_PUSH", Initiator::Admin, "tx");
        alert("reset", event, at_ms)
    }

    /// Folds `alerts` in the order given, as the store does, with `first_sinks`.
    fn fold_all(
        alerts: &[(Alert, Value)],
        first_sinks: &[&str],
    ) -> (IncidentState, Vec<(Incident, Routes)>) {
        let mut state = None;
        let mut each = Vec::new();
        for (alert, event) in alerts {
            let key = IncidentKey::of(alert, event).unwrap();
            let (next, routes) = fold(state.take(), &key, alert, event, WINDOW, first_sinks);
            each.push((next.incident.clone(), routes));
            state = Some(next);
        }
        (state.unwrap(), each)
    }

    #[test]
    fn the_attack_story_reads_as_steps_in_time_order_under_one_id() {
        let users = samples::users();
        let bob = &users[1];
        let mut enrol = samples::mfa_factor_activate(bob, "SMS");
        enrol["securityContext"] = serde_json::json!({"asNumber": 64500, "asOrg": "Example Net"});
        enrol["client"]["geographicalContext"]["city"] = "Lisbon".into();
        let story = [
            reset(START_MS),
            alert("enrol", enrol, START_MS + HOUR_MS),
            // Arrives before the session that happened before it.
            alert(
                "password",
                samples::password_reset(bob, Initiator::SelfService),
                START_MS + 3 * HOUR_MS,
            ),
            alert(
                "session",
                samples::session_start(bob, "198.51.100.9"),
                START_MS + 2 * HOUR_MS,
            ),
            alert(
                "session",
                samples::session_start(bob, "198.51.100.10"),
                START_MS + 4 * HOUR_MS,
            ),
        ];
        let (state, each) = fold_all(&story, &[]);
        let incident = &state.incident;
        assert!(each.iter().all(|(seen, _)| seen.id == incident.id));
        assert_eq!(incident.user, "bob@example.com");
        assert_eq!(incident.first_seen, rfc3339(START_MS));
        assert_eq!(incident.last_seen, rfc3339(START_MS + 4 * HOUR_MS));
        let steps: Vec<&str> = incident.steps.iter().map(|s| s.what.as_str()).collect();
        assert!(
            steps[0].starts_with("factor removed (push) by dana.admin@example.com from "),
            "{steps:?}"
        );
        assert!(
            steps[1]
                .starts_with("new enrolment of phone by the user from AS64500 Example Net, Lisbon"),
            "{steps:?}"
        );
        assert!(steps[2].starts_with("first session from "), "{steps:?}");
        assert!(
            steps[3].starts_with("password reset by the user"),
            "{steps:?}"
        );
        let rules: Vec<&str> = incident.steps.iter().map(|s| s.rule_id.as_str()).collect();
        assert_eq!(rules, ["reset", "enrol", "session", "password", "session"]);
        assert!(steps[4].starts_with("session from "), "{steps:?}");
        assert_eq!(incident.steps[0].alert_id, story[0].0.id);
        // Each alert carries the incident as it stood when it came.
        assert_eq!(each[0].0.steps.len(), 1);
        assert_eq!(each[4].0.steps.len(), 5);
    }

    #[test]
    fn an_incident_quiet_for_longer_than_the_window_is_over() {
        let story = [
            reset(START_MS),
            reset(START_MS + 20 * HOUR_MS),
            // 24 h after the last alert, not the first: still the same incident.
            reset(START_MS + 44 * HOUR_MS),
            reset(START_MS + 68 * HOUR_MS + 1),
        ];
        let (state, each) = fold_all(&story, &[]);
        assert_eq!(each[0].0.id, each[2].0.id);
        assert_ne!(each[2].0.id, each[3].0.id);
        assert_eq!(state.incident.steps.len(), 1);
        assert_eq!(
            state.incident.first_seen,
            rfc3339(START_MS + 68 * HOUR_MS + 1)
        );
        // The new incident's id comes from the alert that opened it.
        let key = IncidentKey::of(&story[3].0, &story[3].1).unwrap();
        assert_eq!(
            each[3].0.id,
            incident_id(&key.org, &key.user, &story[3].0.id)
        );
    }

    #[test]
    fn steps_and_also_are_capped_and_say_how_many_were_left_out() {
        let mut story: Vec<_> = (0..MAX_STEPS as u64 + 8)
            .map(|n| reset(START_MS + n * 60_000))
            .collect();
        // A correlation over the same user ending on an event that is a step: one of `also`.
        for n in 0..MAX_ALSO + 3 {
            let (mut alert, event) = story[n % MAX_STEPS].clone();
            alert.id = format!("correlation-{n}");
            alert.correlation = Some(CorrelationInfo {
                kind: "temporal".into(),
                group: [(USER_FIELD.to_owned(), "bob@example.com".to_owned())].into(),
                value: 2.0,
                timespan_secs: 3600,
                rules: vec!["reset".into()],
            });
            story.push((alert, event));
        }
        let (state, _) = fold_all(&story, &[]);
        let incident = &state.incident;
        assert_eq!(incident.steps.len(), MAX_STEPS);
        assert_eq!(incident.steps_omitted, 8);
        assert_eq!(
            incident.steps[0].alert_id, story[0].0.id,
            "the start is kept"
        );
        assert_eq!(incident.also.len(), MAX_ALSO);
        assert_eq!(incident.also_omitted, 3);
        assert_eq!(
            incident.last_seen,
            rfc3339(START_MS + (MAX_STEPS as u64 + 7) * 60_000)
        );
    }

    #[test]
    fn a_first_sink_gets_each_rule_once_and_then_hears_what_was_held() {
        let bob = &samples::users()[1];
        let grant = alert(
            "grant",
            samples::password_reset(bob, Initiator::Admin),
            START_MS + 3 * HOUR_MS,
        );
        let story = [
            reset(START_MS),
            reset(START_MS + HOUR_MS),
            reset(START_MS + 2 * HOUR_MS),
            grant,
        ];
        let (state, each) = fold_all(&story, &["pager"]);
        let routes: Vec<Route> = each.iter().map(|(_, r)| r["pager"]).collect();
        assert_eq!(
            routes,
            [
                Route::Send { suppressed: 0 },
                Route::Hold,
                Route::Hold,
                Route::Send { suppressed: 2 },
            ]
        );
        // Detected again after a crash: the same alert, routed as the first time, folded once.
        let key = IncidentKey::of(&story[1].0, &story[1].1).unwrap();
        let (again, replayed) = fold(
            Some(state.clone()),
            &key,
            &story[0].0,
            &story[0].1,
            WINDOW,
            &["pager"],
        );
        assert_eq!(again, state);
        assert_eq!(replayed["pager"], Route::Send { suppressed: 0 });
        let (_, replayed) = fold(
            Some(state.clone()),
            &key,
            &story[2].0,
            &story[2].1,
            WINDOW,
            &["pager"],
        );
        assert_eq!(replayed["pager"], Route::Hold);
    }

    #[test]
    fn an_alert_about_no_single_user_has_no_incident() {
        let (mut by_actor, event) = reset(START_MS);
        by_actor.correlation = Some(CorrelationInfo {
            kind: "value_count".into(),
            group: [(
                "actor.alternateId".to_owned(),
                "dana.admin@example.com".to_owned(),
            )]
            .into(),
            value: 5.0,
            timespan_secs: 600,
            rules: vec!["reset".into()],
        });
        assert_eq!(IncidentKey::of(&by_actor, &event), None);
        let (org_wide, event) = alert("cap", samples::event_hook_cap_warning(300_000), START_MS);
        assert_eq!(IncidentKey::of(&org_wide, &event), None);
    }

    #[test]
    fn the_incident_reads_the_same_from_its_view_of_an_event_as_from_the_whole_event() {
        let mut rng = <rand::rngs::StdRng as rand::SeedableRng>::seed_from_u64(23);
        let mut events = samples::mixed_batch(&mut rng, 300);
        // Shapes Okta does not send fall back to the whole event.
        events.push(
            json!({"uuid": "odd-1", "client": "somewhere", "actor": {"type": "User",
            "alternateId": "odd@example.com"}}),
        );
        events.push(
            json!({"uuid": "odd-2", "securityContext": [1], "target": [{"type": "User",
            "alternateId": 42}], "client": {"ipAddress": 7}}),
        );
        // Arrays where objects are expected: a struct would read them by position.
        events.push(
            json!({"uuid": "odd-3", "securityContext": [64496, "Example Net"], "target":
            [{"type": "User", "alternateId": "odd@example.com"}], "client": ["192.0.2.9",
            ["Lisbon"]], "debugContext": [["SMS"]]}),
        );
        for (n, event) in events.into_iter().enumerate() {
            let (alert, whole) = alert("any", event, START_MS + n as u64);
            let view = incident_view(&alert.raw_event);
            let key = IncidentKey::of(&alert, &whole);
            assert_eq!(IncidentKey::of(&alert, &view), key, "{whole}");
            let Some(key) = key else { continue };
            let from_whole = fold(None, &key, &alert, &whole, WINDOW, &["pager"]);
            let from_view = fold(None, &key, &alert, &view, WINDOW, &["pager"]);
            assert_eq!(from_view.0, from_whole.0, "{whole}");
        }
    }
}
