//! Rule evaluation dispatched on the event's type: each event meets only the rules that can match
//! its `eventType`.
//!
//! Before it evaluates a single rule, rsigma's candidate index looks up the event's value of every
//! field some rule of its engine tests. With the whole MFA-tampering pack that is dozens of field
//! lookups per event, most of them for rules about other event types, and it cost more than the
//! rules themselves (BENCHMARKS.md, "Detection alone"). Nearly every Okta rule pins `eventType`
//! ([`super::event_types`] reads which types, as the System Log poller's filter does), so the set
//! is split by type once, when it loads: one engine per exact type a rule names (with the rules
//! pinned to a prefix of it), one for the prefix-pinned rules, one for the rules that pin no type.
//! An event costs one hash lookup on its type, then an engine holding a rule or two.
//!
//! The split never changes what matches: an engine holds every rule that could match the types
//! it serves, and an event whose `eventType` is not a string (absent, or hostile) meets every rule.

use std::collections::{HashMap, HashSet};

use rsigma_eval::{CompiledRule, Engine, EvaluationResult};
use serde_json::Value;

use super::event_types::{EventTypes, TypePattern};
use super::rule_event::{FieldProbe, RuleEvent};

/// One compiled detection rule, with what dispatching it needs.
pub(super) struct TypedRule<'a> {
    /// The rule as rsigma evaluates it.
    pub compiled: &'a CompiledRule,
    /// The event types it can match.
    pub types: EventTypes,
    /// The fields it tests (which decide each engine's [`FieldProbe`]).
    pub fields: &'a [String],
}

/// An engine over some of the rules, and the probe that suits its fields.
struct Slot {
    engine: Engine,
    probe: FieldProbe,
}

impl Slot {
    /// An engine over `rules`, kept in load order (the order results come in).
    fn of<'a>(rules: impl IntoIterator<Item = &'a TypedRule<'a>>) -> Self {
        let mut engine = Engine::new();
        let mut fields = HashSet::new();
        engine.extend_compiled_rules(rules.into_iter().map(|rule| {
            fields.extend(rule.fields.iter().map(String::as_str));
            rule.compiled.clone()
        }));
        Self {
            engine,
            probe: FieldProbe::for_field_count(fields.len()),
        }
    }

    fn is_empty(&self) -> bool {
        self.engine.rule_count() == 0
    }

    fn evaluate(&self, event: &Value, probe: Option<FieldProbe>) -> Vec<EvaluationResult> {
        if self.is_empty() {
            return Vec::new();
        }
        self.engine
            .evaluate(&RuleEvent::new(event, probe.unwrap_or(self.probe)))
    }
}

/// The rule set split by the event types its rules can match.
pub(super) struct TypeDispatch {
    /// By lower-case type: the rules naming it exactly and those pinned to a prefix of it.
    exact: HashMap<String, Slot>,
    /// The (lower-case) prefixes rules are pinned to.
    prefixes: Vec<String>,
    /// Every prefix-pinned rule: for a type no rule names exactly but a prefix covers.
    prefixed: Slot,
    /// The rules that pin no type: every event meets them.
    untyped: Slot,
    /// Every rule: for an event whose `eventType` is not a string.
    all: Slot,
    /// Each rule's load position, by the key its results carry: merged results keep load order.
    position: HashMap<String, usize>,
}

impl Default for TypeDispatch {
    fn default() -> Self {
        Self::build(&[])
    }
}

impl TypeDispatch {
    /// Splits `rules` (in load order) by the types they can match.
    pub(super) fn build(rules: &[TypedRule<'_>]) -> Self {
        let exact_of = |rule: &TypedRule| -> Vec<String> {
            match &rule.types {
                EventTypes::Any => Vec::new(),
                EventTypes::Only(patterns) => patterns
                    .iter()
                    .filter_map(|pattern| match pattern {
                        TypePattern::Exact(name) => Some(name.clone()),
                        TypePattern::Prefix(_) => None,
                    })
                    .collect(),
            }
        };
        let prefixes_of = |rule: &TypedRule| -> Vec<String> {
            match &rule.types {
                EventTypes::Any => Vec::new(),
                EventTypes::Only(patterns) => patterns
                    .iter()
                    .filter_map(|pattern| match pattern {
                        TypePattern::Prefix(prefix) => Some(prefix.clone()),
                        TypePattern::Exact(_) => None,
                    })
                    .collect(),
            }
        };
        let types: HashSet<String> = rules.iter().flat_map(exact_of).collect();
        let exact = types
            .into_iter()
            .map(|name| {
                let serves = |rule: &&TypedRule| {
                    exact_of(rule).contains(&name)
                        || prefixes_of(rule)
                            .iter()
                            .any(|prefix| name.starts_with(prefix.as_str()))
                };
                let slot = Slot::of(rules.iter().filter(serves));
                (name, slot)
            })
            .collect();
        let mut prefixes: Vec<String> = rules.iter().flat_map(prefixes_of).collect();
        prefixes.sort();
        prefixes.dedup();
        Self {
            exact,
            prefixes,
            prefixed: Slot::of(rules.iter().filter(|rule| !prefixes_of(rule).is_empty())),
            untyped: Slot::of(
                rules
                    .iter()
                    .filter(|rule| matches!(rule.types, EventTypes::Any)),
            ),
            all: Slot::of(rules),
            position: rules
                .iter()
                .enumerate()
                .map(|(index, rule)| (result_key_of(rule.compiled), index))
                .collect(),
        }
    }

    /// Every rule that matches `event`, in load order; `probe` overrides each engine's own choice
    /// (the tests compare both).
    pub(super) fn evaluate(
        &self,
        event: &Value,
        probe: Option<FieldProbe>,
    ) -> Vec<EvaluationResult> {
        let Some(event_type) = event.get("eventType").and_then(Value::as_str) else {
            return self.all.evaluate(event, probe);
        };
        let mut results = self.untyped.evaluate(event, probe);
        if let Some(typed) = self.typed_slot(event_type) {
            let matched = typed.evaluate(event, probe);
            if results.is_empty() {
                return matched;
            }
            results.extend(matched);
            results.sort_by_key(|result| self.position.get(result_key(result)).copied());
        }
        results
    }

    /// Whether some rule can match an event whose `eventType` is `event_type` (`None`: absent or
    /// not a string, which every rule meets). False only when none can: a pass then skips the
    /// event's tree and its rules altogether.
    pub(super) fn can_match(&self, event_type: Option<&str>) -> bool {
        match event_type {
            None => !self.all.is_empty(),
            Some(event_type) => !self.untyped.is_empty() || self.typed_slot(event_type).is_some(),
        }
    }

    /// Every rule evaluated in one engine, as before the split (what the tests compare with).
    #[cfg(test)]
    pub(super) fn evaluate_undispatched(&self, event: &Value) -> Vec<EvaluationResult> {
        self.all.evaluate(event, None)
    }

    /// The engine for the pinned rules that can match `event_type`, if any can.
    fn typed_slot(&self, event_type: &str) -> Option<&Slot> {
        // Sigma compares without case; Okta's types are lower case, so this rarely allocates.
        let lower = match event_type.chars().any(char::is_uppercase) {
            true => std::borrow::Cow::Owned(event_type.to_lowercase()),
            false => std::borrow::Cow::Borrowed(event_type),
        };
        if let Some(slot) = self.exact.get(lower.as_ref()) {
            return Some(slot);
        }
        self.prefixes
            .iter()
            .any(|prefix| lower.starts_with(prefix.as_str()))
            .then_some(&self.prefixed)
    }
}

/// The key a rule's results are named by: its id, or its title when it has none.
fn result_key_of(rule: &CompiledRule) -> String {
    rule.id.clone().unwrap_or_else(|| rule.title.clone())
}

fn result_key(result: &EvaluationResult) -> &str {
    result
        .header
        .rule_id
        .as_deref()
        .unwrap_or(&result.header.rule_title)
}
