//! An Okta event as the rule engine reads it, with the cheaper of rsigma's two ways of picking the
//! rules worth evaluating.
//!
//! Before it evaluates a single rule, rsigma's candidate index looks up the event's values of
//! every field some rule tests. It can find those fields in two ways: walk the event's top-level
//! keys and hash each one against its index, or look each indexed field up in the event. The
//! first is rsigma's choice whenever the event can name its keys, and it wins on sparse events
//! and large rule sets. An Okta LogEvent is neither sparse nor small (17 top-level properties in
//! Okta's own sample, most of them objects), against a handful of fields in a typical rule set.
//! Profiled with the default rules, hashing those keys took most of rule evaluation (BENCHMARKS.md,
//! "Detection alone"). So while the rules test fewer fields than a LogEvent has top-level
//! properties, the event does not name its keys, and rsigma looks up only the fields the rules
//! test (each engine of the split by event type, `type_dispatch.rs`, chooses for its own rules).
//! Both ways find the same candidates;
//! only the cost differs.

use std::borrow::Cow;

use rsigma_eval::event::{Event, EventValue, JsonEvent};
use serde_json::Value;

/// Top-level properties of an Okta LogEvent (`uuid`, `published`, `eventType`, `actor`, `client`,
/// `outcome`, `target`, `debugContext`, …: 17 in Okta's sample envelope). A rule set testing fewer
/// distinct fields than this is cheaper to probe field by field.
pub(super) const LOG_EVENT_TOP_LEVEL_KEYS: usize = 17;

/// How the candidate index should find the fields rules test in an event.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum FieldProbe {
    /// Look up each field the rules test (few fields).
    ByRuleField,
    /// Walk the event's top-level keys (many fields: rsigma's own default).
    ByEventKey,
}

impl FieldProbe {
    /// The cheaper probe for a rule set testing `distinct_fields` fields.
    pub(super) fn for_field_count(distinct_fields: usize) -> Self {
        if distinct_fields < LOG_EVENT_TOP_LEVEL_KEYS {
            Self::ByRuleField
        } else {
            Self::ByEventKey
        }
    }
}

/// A borrowed event handed to the engine.
pub(super) struct RuleEvent<'a> {
    json: JsonEvent<'a>,
    probe: FieldProbe,
}

impl<'a> RuleEvent<'a> {
    /// Wraps `event` for evaluation with `probe`.
    pub(super) fn new(event: &'a Value, probe: FieldProbe) -> Self {
        Self {
            json: JsonEvent::borrow(event),
            probe,
        }
    }
}

impl Event for RuleEvent<'_> {
    fn get_field(&self, path: &str) -> Option<EventValue<'_>> {
        self.json.get_field(path)
    }

    fn any_string_value(&self, pred: &dyn Fn(&str) -> bool) -> bool {
        self.json.any_string_value(pred)
    }

    fn all_string_values(&self) -> Vec<Cow<'_, str>> {
        self.json.all_string_values()
    }

    fn visit_string_values(&self, visit: &mut dyn FnMut(&str)) {
        self.json.visit_string_values(visit)
    }

    fn to_json(&self) -> Value {
        self.json.to_json()
    }

    fn field_keys(&self) -> Vec<Cow<'_, str>> {
        self.json.field_keys()
    }

    fn top_level_keys(&self) -> Option<Vec<Cow<'_, str>>> {
        match self.probe {
            FieldProbe::ByRuleField => None,
            FieldProbe::ByEventKey => self.json.top_level_keys(),
        }
    }

    fn visit_top_level_keys(&self, visit: &mut dyn FnMut(&str)) -> bool {
        match self.probe {
            FieldProbe::ByRuleField => false,
            FieldProbe::ByEventKey => self.json.visit_top_level_keys(visit),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_small_rule_set_probes_its_fields_and_a_large_one_the_event_keys() {
        assert_eq!(FieldProbe::for_field_count(3), FieldProbe::ByRuleField);
        assert_eq!(FieldProbe::for_field_count(60), FieldProbe::ByEventKey);
    }

    #[test]
    fn probing_by_rule_field_hides_the_keys_and_nothing_else() {
        let event =
            serde_json::json!({"eventType": "user.mfa.factor.deactivate", "actor": {"id": "a"}});
        let by_field = RuleEvent::new(&event, FieldProbe::ByRuleField);
        let by_key = RuleEvent::new(&event, FieldProbe::ByEventKey);
        assert!(!by_field.visit_top_level_keys(&mut |_| {}));
        let mut keys = Vec::new();
        assert!(by_key.visit_top_level_keys(&mut |key| keys.push(key.to_string())));
        assert_eq!(keys.len(), 2);
        assert_eq!(
            by_field
                .get_field("actor.id")
                .and_then(|v| v.as_str().map(|s| s.into_owned())),
            Some("a".to_string())
        );
    }
}
