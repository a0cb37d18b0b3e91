//! Correlation over time: Sigma correlation rules, and the state that makes them survive restarts.
//!
//! `event_count`, `value_count`, `temporal` and `temporal_ordered` rules are evaluated by
//! rsigma's `CorrelationEngine`, one engine per rule, fed with the detections of factorwatch's
//! own rule engine, on a clock of ticks that puts every event after the ones fed before it in
//! the same millisecond ([`ticks`](super::ticks)). Sigma has no rule type for "this did not
//! happen", so factorwatch adds one: a `temporal_ordered` rule with `factorwatch.absence: true`
//! opens a timer when its first rule matches and fires when the timespan runs out before the
//! next rule matched for the same group. An event without a value for every field a rule groups
//! by opens no group of that rule.
//!
//! Both kinds of state (rsigma's windows and the open timers) are committed with the removal of
//! the inputs they came from: in Redis for a fleet, exported after every correlation step; in the
//! spool standalone, as a journal of what each pass fed them and a snapshot now and then (see
//! `correlation_step`). A restart resumes every open window, and a crash before the commit
//! replays the inputs against the state they started from: nothing is counted twice.

use std::collections::btree_map::Entry;
use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

use anyhow::{Context, bail};
use rsigma_eval::correlation::compile_correlation;
use rsigma_eval::event::JsonEvent;
use rsigma_eval::{
    CorrelationAction, CorrelationConfig, CorrelationEngine, CorrelationSnapshot, EvaluationResult,
    Event, EventValue, GroupByField, GroupKey, ResultBody,
};
use rsigma_parser::{CorrelationRule, CorrelationType, SigmaRule};
use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::throttled::{CorrelationWarnings, Throttled};
use super::ticks::{EventTime, Ties, engine_suppress_ticks, in_ticks};
use crate::alert::{Alert, CorrelationInfo, RuleRef};

/// The custom attribute that makes a `temporal_ordered` rule fire on absence.
pub const ABSENCE_ATTRIBUTE: &str = "factorwatch.absence";

/// Most entries one group's window keeps (rsigma's `max_group_entries`; its default is no
/// limit). A window keeps an entry per event in its timespan until the correlation fires, and the
/// whole state is saved in snapshots (then, with every pass), so a bulk reset (one admin resetting
/// hundreds of factors a second, in the load benchmark) made every pass slower than the last. Past the limit the
/// oldest entries go, which can only under-count, and only for a group with more events than
/// this within one timespan; a rule counting higher sets `rsigma.max_group_entries` itself.
const MAX_GROUP_ENTRIES: usize = 1_000;

/// Most groups (users, actors, phones: whatever it groups by) one correlation remembers
/// (rsigma's `max_state_entries`; its default is 100,000). Each group's window is in memory and
/// in every snapshot, so with a window per user the state grew with the users seen within the
/// longest timespan: about 500 MiB after a million users (BENCHMARKS.md). At the cap, rsigma
/// first drops what has left its timespan, then the least recently active tenth of the groups:
/// a correlation can then miss a sequence that began in a group quiet for longest, never raise
/// one that did not happen. Single-event alerts are never affected.
pub const MAX_GROUPS_PER_CORRELATION: usize = 20_000;

/// Most absence timers open at once. Each holds the alert it will raise (a few KiB), and the
/// whole state is saved in every snapshot, so a flood of distinct users (a mass reset) must not
/// grow it without bound; past this, new timers are refused and counted ([`Throttled`]).
const MAX_OPEN_TIMERS: usize = 10_000;

/// Bumped when the stored state changes shape; older state is then discarded with a warning.
/// Version 1 kept rsigma's windows in seconds: its timers are kept, its windows dropped.
const STATE_VERSION: u32 = 2;

/// A correlation rule as loaded: what alerts name it, and how it is evaluated.
#[derive(Debug, Clone)]
pub struct LoadedCorrelation {
    /// The rule as alerts name it.
    pub rule: RuleRef,
    /// The parsed rule (field names already in Okta's spelling).
    pub parsed: CorrelationRule,
    /// For absence rules: the rule keys (see [`RuleRef::id`]) of the rule that opens the timer
    /// and of the rules that close it.
    pub absence: Option<AbsenceRefs>,
}

/// The two sides of an absence rule, as rule keys.
#[derive(Debug, Clone)]
pub struct AbsenceRefs {
    /// The rule whose match opens a timer.
    pub opens: String,
    /// The rules whose match closes it.
    pub closes: Vec<String>,
}

/// A timer of an absence rule: the alert it raises unless closed before the deadline.
#[derive(Debug, Clone, Serialize, Deserialize)]
struct OpenTimer {
    rule_id: String,
    group: Vec<(String, String)>,
    deadline_secs: i64,
    /// The tick of the event that opened it: only a later event closes it.
    #[serde(default)]
    opened_tick: i64,
    alert: Alert,
}

/// A timer's identity: the absence rule's id and the values of its group-by fields.
type TimerKey = (String, Vec<Option<String>>);

/// Everything stored between passes. `Timers` is `Vec<OpenTimer>` as read, and the live timers
/// by reference as saved: each holds a whole alert, and a mass reset keeps thousands open, so a
/// snapshot does not copy them first.
#[derive(Serialize, Deserialize)]
struct StoredState<Timers = Vec<OpenTimer>> {
    version: u32,
    windows: CorrelationSnapshot,
    timers: Timers,
    #[serde(default)]
    ties: Ties,
}

/// One rsigma correlation with its own engine, so that each event can be fed to the
/// correlations whose groups it has a value for, and to no other.
struct Windowed {
    loaded: LoadedCorrelation,
    engine: CorrelationEngine,
    group_by: Vec<GroupByField>,
    /// Each detection rule it refers to, by id: the names it may be referred to by (id, name).
    inputs: HashMap<String, Vec<String>>,
}

/// The live correlation state of one detector.
pub struct Correlator {
    windowed: Vec<Windowed>,
    absences: Vec<LoadedCorrelation>,
    /// Open timers.
    timers: BTreeMap<TimerKey, OpenTimer>,
    ties: Ties,
    /// The longest timespan of the correlations, in milliseconds.
    horizon_ms: i64,
    /// Refused timers and correlations at their cap, warned of at most once a minute by every
    /// correlator of the rule set together.
    warnings: Arc<CorrelationWarnings>,
}

impl std::fmt::Debug for Correlator {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Correlator")
            .field("correlations", &(self.windowed.len() + self.absences.len()))
            .field("open_timers", &self.timers.len())
            .finish_non_exhaustive()
    }
}

impl Windowed {
    /// The engine of `loaded`, which refers to some of `detection_rules`.
    fn new(detection_rules: &[SigmaRule], loaded: &LoadedCorrelation) -> anyhow::Result<Self> {
        let referred = |rule: &&SigmaRule| {
            let names = [rule.id.as_deref(), rule.name.as_deref()];
            loaded
                .parsed
                .rules
                .iter()
                .any(|name| names.contains(&Some(name.as_str())))
        };
        let inputs: Vec<&SigmaRule> = detection_rules.iter().filter(referred).collect();
        let mut engine = CorrelationEngine::new(CorrelationConfig {
            timestamp_fields: vec!["published".into()],
            // After firing, a group starts counting again from nothing: three more resets by
            // the same admin raise a second alert, not every reset after the third.
            action_on_match: CorrelationAction::Reset,
            max_group_entries: Some(MAX_GROUP_ENTRIES),
            max_state_entries: MAX_GROUPS_PER_CORRELATION,
            suppress: engine_suppress_ticks(&inputs),
            ..CorrelationConfig::default()
        });
        // Registered so that the correlation can name the rules it refers to; their detections
        // come from the rule set's own engine.
        for rule in &inputs {
            engine.add_rule(rule)?;
        }
        let in_ticks = in_ticks(&loaded.parsed);
        engine
            .add_correlation(&in_ticks)
            .with_context(|| format!("correlation rule {:?}", loaded.rule.title))?;
        Ok(Self {
            loaded: loaded.clone(),
            engine,
            group_by: compile_correlation(&in_ticks)?.group_by,
            inputs: inputs
                .iter()
                .filter_map(|rule| {
                    let names = rule.id.iter().chain(&rule.name).cloned().collect();
                    Some((rule.id.clone()?, names))
                })
                .collect(),
        })
    }

    /// Feeds the `detections` of `event` that this correlation groups to its engine, at `tick`;
    /// returns the alerts that fire.
    fn observe(
        &mut self,
        event: &JsonEvent<'_>,
        detections: &[EvaluationResult],
        tick: i64,
        build: &dyn Fn(&RuleRef) -> Alert,
        at_cap: &Throttled,
    ) -> Vec<Alert> {
        let grouped: Vec<EvaluationResult> = detections
            .iter()
            .filter(|detection| self.groups(event, detection))
            .cloned()
            .collect();
        if grouped.is_empty() {
            return Vec::new();
        }
        let full = self.engine.state_count() >= MAX_GROUPS_PER_CORRELATION;
        let results = self.engine.process_with_detections(event, grouped, tick);
        if full {
            self.reached_cap(at_cap);
        }
        let parsed = &self.loaded.parsed;
        results
            .iter()
            .filter_map(|result| match &result.body {
                ResultBody::Correlation(body) => Some(body),
                _ => None,
            })
            .map(|body| {
                let mut alert = build(&self.loaded.rule);
                alert.correlation = Some(CorrelationInfo {
                    kind: parsed.correlation_type.as_str().to_owned(),
                    group: body.group_key.iter().cloned().collect(),
                    value: body.aggregated_value,
                    timespan_secs: parsed.timespan.seconds,
                    rules: parsed.rules.clone(),
                });
                alert
            })
            .collect()
    }

    /// Counts, and now and then logs, that this correlation was fed at its cap of groups: rsigma
    /// then dropped the groups past their timespan and, were it still at the cap, the tenth quiet
    /// longest. rsigma's own warning, at every such drop, is filtered out (`telemetry`).
    fn reached_cap(&self, at_cap: &Throttled) {
        if let Some(times) = at_cap.warning_due() {
            tracing::warn!(
                rule = self.loaded.rule.title,
                cap = MAX_GROUPS_PER_CORRELATION,
                times,
                "a correlation reached the most groups it remembers; the groups past its \
                 timespan, then the tenth quiet longest, were dropped, and a sequence that began \
                 in one of them cannot complete (single-event alerts are unaffected); `times` \
                 counts this since the last such warning, \
                 factorwatch_correlation_group_cap_reached_total all of them"
            );
        }
    }

    /// True when `detection` is of a rule this correlation refers to and `event` has a value
    /// for every field it groups by (aliases resolved for that rule). rsigma would put an event
    /// without them in a group of its own, which alerts show as `"group": {}`.
    fn groups(&self, event: &JsonEvent<'_>, detection: &EvaluationResult) -> bool {
        let Some(names) = (detection.header.rule_id.as_ref()).and_then(|id| self.inputs.get(id))
        else {
            return false;
        };
        let names: Vec<&str> = names.iter().map(String::as_str).collect();
        let key = GroupKey::extract(event, &self.group_by, &names);
        key.0.iter().all(Option::is_some)
    }
}

impl Correlator {
    /// A correlator with empty state for `correlations`, which refer to `detection_rules`; it
    /// warns through `warnings`, which the other correlators of the same rules share.
    pub(super) fn new(
        detection_rules: &[SigmaRule],
        correlations: &[LoadedCorrelation],
        warnings: Arc<CorrelationWarnings>,
    ) -> anyhow::Result<Self> {
        let (absences, windowed): (Vec<_>, Vec<_>) = correlations
            .iter()
            .cloned()
            .partition(|loaded| loaded.absence.is_some());
        let horizon_secs = correlations
            .iter()
            .map(|loaded| loaded.parsed.timespan.seconds)
            .max()
            .unwrap_or(0);
        Ok(Self {
            windowed: windowed
                .iter()
                .map(|loaded| Windowed::new(detection_rules, loaded))
                .collect::<anyhow::Result<_>>()?,
            absences,
            timers: BTreeMap::new(),
            ties: Ties::default(),
            horizon_ms: i64::try_from(horizon_secs.saturating_mul(1000)).unwrap_or(i64::MAX),
            warnings,
        })
    }

    /// The state to store with a detection pass.
    pub fn save(&self) -> Vec<u8> {
        let state = StoredState {
            version: STATE_VERSION,
            windows: self.windows(),
            timers: self.timers.values().collect::<Vec<_>>(),
            ties: self.ties.clone(),
        };
        serde_json::to_vec(&state).expect("correlation state serializes")
    }

    /// The windows of every engine, as one snapshot (keyed by correlation id), each one's
    /// groups in order, so that a state and its replay compare equal.
    fn windows(&self) -> CorrelationSnapshot {
        let mut all = CorrelationEngine::new(CorrelationConfig::default()).export_state();
        for windowed in &self.windowed {
            let one = windowed.engine.export_state();
            all.windows.extend(by_group(one.windows));
            all.last_alert.extend(by_group(one.last_alert));
            all.event_buffers.extend(by_group(one.event_buffers));
            all.event_ref_buffers
                .extend(by_group(one.event_ref_buffers));
        }
        all
    }

    /// Continues from stored state. State of rules no longer loaded is dropped.
    pub fn restore(&mut self, stored: &[u8]) -> anyhow::Result<()> {
        let state: StoredState =
            serde_json::from_slice(stored).context("stored correlation state is unreadable")?;
        if state.version == STATE_VERSION {
            for windowed in &mut self.windowed {
                if !windowed.engine.import_state(state.windows.clone()) {
                    bail!("stored correlation state has an older format");
                }
            }
            self.ties = state.ties;
        } else {
            tracing::warn!(
                "correlation windows saved by an older factorwatch start empty; absence timers carry on"
            );
        }
        for timer in state.timers {
            if self.absences.iter().any(|a| a.rule.id == timer.rule_id) {
                let key = (
                    timer.rule_id.clone(),
                    timer.group.iter().map(|(_, v)| Some(v.clone())).collect(),
                );
                self.timers.insert(key, timer);
            }
        }
        Ok(())
    }

    /// Number of open windows and timers.
    pub fn open_state(&self) -> usize {
        let windows: usize = self.windowed.iter().map(|w| w.engine.state_count()).sum();
        windows + self.timers.len()
    }

    /// Feeds one event (its detections, its time) to every correlation and returns the alerts
    /// that fire. `build` makes an alert of a rule for this event.
    pub fn observe(
        &mut self,
        event: &Value,
        detections: &[EvaluationResult],
        time: EventTime,
        build: &dyn Fn(&RuleRef) -> Alert,
    ) -> Vec<Alert> {
        let json = JsonEvent::borrow(event);
        let tick = self.ties.tick(time.published_ms, self.horizon_ms);
        let at_cap = &self.warnings.at_cap;
        let alerts = self
            .windowed
            .iter_mut()
            .flat_map(|windowed| windowed.observe(&json, detections, tick, build, at_cap))
            .collect();
        self.observe_absences(&json, detections, Opening { tick, time }, build);
        alerts
    }

    /// Opens and closes absence timers for one event.
    fn observe_absences(
        &mut self,
        event: &JsonEvent<'_>,
        detections: &[EvaluationResult],
        at: Opening,
        build: &dyn Fn(&RuleRef) -> Alert,
    ) {
        let matched = |key: &str| {
            detections
                .iter()
                .any(|d| d.header.rule_id.as_deref() == Some(key))
        };
        for loaded in &self.absences {
            let refs = loaded.absence.as_ref().expect("absence rules have refs");
            let opens = matched(&refs.opens);
            let closes = refs.closes.iter().any(|key| matched(key));
            let group: Vec<Option<String>> = loaded
                .parsed
                .group_by
                .iter()
                .map(|field| event.get_field(field).and_then(|v| group_value(&v)))
                .collect();
            // An event without the group's values opens (or closes) no timer.
            if !opens && !closes || group.iter().any(Option::is_none) {
                continue;
            }
            let key = (loaded.rule.id.clone(), group);
            if closes {
                // Only an event logged after the one that opened the timer closes it.
                if self
                    .timers
                    .get(&key)
                    .is_some_and(|t| t.opened_tick < at.tick)
                {
                    self.timers.remove(&key);
                }
                continue;
            }
            if !open_unless_open(&mut self.timers, key, loaded, at, build) {
                self.refused_timer(loaded);
            }
        }
    }

    /// Counts, and now and then logs, that a timer of `loaded` was refused: too many are open.
    fn refused_timer(&self, loaded: &LoadedCorrelation) {
        if let Some(refused) = self.warnings.refused_timers.warning_due() {
            tracing::warn!(
                rule = loaded.rule.title,
                open = self.timers.len(),
                refused,
                "too many absence timers open; new ones are not opened (their single-event \
                 alerts still go out); `refused` counts those since the last such warning, \
                 factorwatch_correlation_timers_refused_total all of them"
            );
        }
    }

    /// True when a timer's deadline is at or before `now_secs`.
    pub fn has_expired(&self, now_secs: i64) -> bool {
        self.timers
            .values()
            .any(|timer| timer.deadline_secs <= now_secs)
    }

    /// Removes and returns the alerts of timers whose deadline is at or before `now_secs`.
    pub fn expired(&mut self, now_secs: i64) -> Vec<Alert> {
        let due: Vec<_> = self
            .timers
            .iter()
            .filter(|(_, timer)| timer.deadline_secs <= now_secs)
            .map(|(key, _)| key.clone())
            .collect();
        due.into_iter()
            .filter_map(|key| self.timers.remove(&key))
            .map(|timer| timer.alert)
            .collect()
    }

    /// The alerts of timers still open (for `rules test`, which reports them as pending).
    pub fn pending(&self) -> Vec<&Alert> {
        self.timers.values().map(|timer| &timer.alert).collect()
    }
}

/// `per_correlation` with each correlation's groups sorted (rsigma lists them in hash order).
fn by_group<T>(
    per_correlation: HashMap<String, Vec<(GroupKey, T)>>,
) -> impl Iterator<Item = (String, Vec<(GroupKey, T)>)> {
    per_correlation.into_iter().map(|(id, mut groups)| {
        groups.sort_by(|(a, _), (b, _)| a.0.cmp(&b.0));
        (id, groups)
    })
}

/// Where an event that opens a timer stands: its tick, and its time.
#[derive(Clone, Copy)]
struct Opening {
    tick: i64,
    time: EventTime,
}

/// Opens the timer `key` of `loaded` unless it is open already, or too many are; false when
/// it was refused for that.
fn open_unless_open(
    timers: &mut BTreeMap<TimerKey, OpenTimer>,
    key: TimerKey,
    loaded: &LoadedCorrelation,
    at: Opening,
    build: &dyn Fn(&RuleRef) -> Alert,
) -> bool {
    let open = timers.len();
    let Entry::Vacant(vacant) = timers.entry(key) else {
        return true;
    };
    if open >= MAX_OPEN_TIMERS {
        return false;
    }
    let timer = open_timer(loaded, &vacant.key().1, at, build);
    vacant.insert(timer);
    true
}

/// A timer for `loaded` and group `group`, opened by an event `at`. It runs from the later of the
/// event's time and its arrival: a late event (an outage, a replay, Okta's "Preview") gets the
/// whole timespan after factorwatch received it for what follows it to arrive too.
fn open_timer(
    loaded: &LoadedCorrelation,
    group: &[Option<String>],
    at: Opening,
    build: &dyn Fn(&RuleRef) -> Alert,
) -> OpenTimer {
    let timespan_secs = loaded.parsed.timespan.seconds;
    let group: Vec<(String, String)> = loaded
        .parsed
        .group_by
        .iter()
        .zip(group)
        .filter_map(|(field, value)| Some((field.clone(), value.clone()?)))
        .collect();
    let mut alert = build(&loaded.rule);
    alert.correlation = Some(CorrelationInfo {
        kind: "absence".to_owned(),
        group: group.iter().cloned().collect(),
        value: 0.0,
        timespan_secs,
        rules: loaded.parsed.rules.clone(),
    });
    let from_secs = at.time.known_ms().div_euclid(1000);
    OpenTimer {
        rule_id: loaded.rule.id.clone(),
        group,
        deadline_secs: from_secs.saturating_add(timespan_secs as i64),
        opened_tick: at.tick,
        alert,
    }
}

/// A group-by value as rsigma renders it: scalars as text, nothing for objects and nulls.
fn group_value(value: &EventValue<'_>) -> Option<String> {
    match value {
        EventValue::Str(s) => Some(s.to_string()),
        EventValue::Int(n) => Some(n.to_string()),
        EventValue::Float(n) => Some(n.to_string()),
        EventValue::Bool(b) => Some(b.to_string()),
        EventValue::Array(items) => items.first().and_then(group_value),
        _ => None,
    }
}

/// Checks what rsigma would accept silently but factorwatch cannot honour, and resolves the
/// absence extension. `rule_key` maps a rule reference (id or name) to the loaded rule's key.
pub fn check_correlation(
    parsed: &CorrelationRule,
    rule_key: &dyn Fn(&str) -> Option<String>,
) -> anyhow::Result<Option<AbsenceRefs>> {
    let mut keys = Vec::with_capacity(parsed.rules.len());
    for reference in &parsed.rules {
        match rule_key(reference) {
            Some(key) => keys.push(key),
            None => bail!(
                "correlation rule {:?} refers to rule {reference:?}, which is not loaded or has \
                 no id (rules that correlations use need an `id`, and `name` to be referred to \
                 by name)",
                parsed.title
            ),
        }
    }
    let absence = match parsed.custom_attributes.get(ABSENCE_ATTRIBUTE) {
        None => return Ok(None),
        Some(value) => value.as_bool().unwrap_or(false),
    };
    if !absence {
        return Ok(None);
    }
    if parsed.correlation_type != CorrelationType::TemporalOrdered || keys.len() < 2 {
        bail!(
            "correlation rule {:?}: {ABSENCE_ATTRIBUTE} needs type temporal_ordered and at least \
             two rules (the first opens the timer, the others close it)",
            parsed.title
        );
    }
    if !parsed.aliases.is_empty() {
        bail!(
            "correlation rule {:?}: {ABSENCE_ATTRIBUTE} does not support aliases; group by a \
             field every rule's events carry, such as factorwatch.user",
            parsed.title
        );
    }
    let opens = keys.remove(0);
    Ok(Some(AbsenceRefs {
        opens,
        closes: keys,
    }))
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;

    use crate::detect::RulesConfig;
    use crate::detect::enrich::{NetworkHistory, enrich};
    use crate::detect::rules::RuleSet;
    use crate::okta::event::LogEvent;
    use crate::okta::samples::{self, Initiator};

    use super::*;

    /// The built-in "One Actor Reset the MFA of Several Users".
    const RESET_MANY_USERS: &str = "9a4f1c7e-2b6d-4f0a-8e3c-1d5b7a9c2e41";

    /// Feeds `correlator` the `n`th reset (one a millisecond) of `user`'s factor by the admin,
    /// enriched and matched as the detector does; returns the alerts that fire.
    fn admin_resets(
        rules: &RuleSet,
        correlator: &mut Correlator,
        history: &mut NetworkHistory,
        user: &samples::SampleUser,
        n: usize,
    ) -> Vec<Alert> {
        let tx = format!("tx-{n}");
        let mut event =
            samples::mfa_factor_deactivate(user, "OKTA_VERIFY_PUSH", Initiator::Admin, &tx);
        // One event a millisecond, whatever the machine's speed: the tie-breaking clock
        // remembers each millisecond fed, up to its bound, so a state saved after events
        // crowded into fewer milliseconds would be smaller only by chance.
        event["published"] = crate::clock::rfc3339(1_764_000_000_000 + n as u64).into();
        enrich(&mut event, history);
        let detections = rules.detect(&event);
        let published_ms = LogEvent(&event).published_ms().unwrap_or(0);
        let at = EventTime {
            published_ms,
            received_ms: published_ms,
        };
        correlator.observe(&event, &detections, at, &|rule| Alert {
            rule: rule.clone(),
            ..Alert::test_alert()
        })
    }

    #[test]
    fn a_bulk_reset_keeps_the_saved_state_bounded_and_still_correlates() {
        let rules = RuleSet::load(&RulesConfig::default()).unwrap();
        let mut correlator = rules.correlator();
        let mut history = NetworkHistory::new(HashMap::new());
        let users = samples::users();
        let mut observe = |correlator: &mut Correlator, user: &samples::SampleUser, n: usize| {
            admin_resets(&rules, correlator, &mut history, user, n)
        };
        // One admin resets the same user's factor over and over: none of the windows fires.
        let mut saved = Vec::new();
        for n in 0..6 * MAX_GROUP_ENTRIES {
            assert!(observe(&mut correlator, &users[0], n).is_empty());
            if (n + 1) % (2 * MAX_GROUP_ENTRIES) == 0 {
                saved.push(correlator.save().len());
            }
        }
        assert!(
            saved[2] <= saved[0] + saved[0] / 10,
            "the saved state grew with the flood: {saved:?} bytes after 2,000, 4,000, 6,000 resets"
        );
        // Two more users reset by the same admin: the correlation still sees three.
        let fired: Vec<Alert> = [&users[1], &users[2]]
            .into_iter()
            .enumerate()
            .flat_map(|(n, user)| observe(&mut correlator, user, 100_000 + n))
            .collect();
        assert_eq!(fired.len(), 1, "{fired:#?}");
        assert_eq!(fired[0].rule.id, RESET_MANY_USERS);
    }

    #[test]
    fn a_mass_reset_of_more_users_than_a_correlation_remembers_stays_bounded_and_correlates() {
        let rules = RuleSet::load(&RulesConfig::default()).unwrap();
        let mut correlator = rules.correlator();
        let mut history = NetworkHistory::new(HashMap::new());
        let resets = MAX_GROUPS_PER_CORRELATION + MAX_GROUPS_PER_CORRELATION / 4;
        let mut many_users = Vec::new();
        for n in 0..resets {
            let user = samples::SampleUser::new(
                &format!("00u{n:017}"),
                &format!("user{n}@example.com"),
                &format!("User {n}"),
            );
            let fired = admin_resets(&rules, &mut correlator, &mut history, &user, n);
            if fired.iter().any(|alert| alert.rule.id == RESET_MANY_USERS) {
                many_users.push(n);
            }
        }
        let groups: Vec<usize> = correlator
            .windowed
            .iter()
            .map(|windowed| windowed.engine.state_count())
            .collect();
        // The correlations grouped by user were at the cap, and none went past it.
        let most = groups.iter().copied().max().unwrap_or(0);
        assert!(
            (MAX_GROUPS_PER_CORRELATION * 9 / 10..=MAX_GROUPS_PER_CORRELATION).contains(&most),
            "groups per correlation after {resets} users: {groups:?}"
        );
        // The one admin's group is the most active: it is never the one dropped, and the
        // many-users correlation kept firing to the end (every third reset).
        assert!(many_users.len() >= resets / 3 - 1, "{}", many_users.len());
        assert!(many_users.last().is_some_and(|&n| n >= resets - 3));
        // Reaching the cap was warned of once (the test runs within a minute) and counted after.
        let (unlogged, logged) = correlator.warnings.at_cap.unlogged();
        assert!(logged && unlogged > 0);
        // A fleet's correlation step builds a new correlator of the same rules whenever another
        // replica wrote last: it counts on, and does not warn again within the minute.
        let next_step = rules.correlator();
        assert_eq!(next_step.warnings.at_cap.warning_due(), None);
        assert_eq!(correlator.warnings.at_cap.unlogged(), (unlogged + 1, true));
    }
}
