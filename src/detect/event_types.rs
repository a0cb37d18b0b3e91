//! Which Okta event types a rule set can match, read from the rules' `eventType` selections: the
//! filter the System Log poller asks Okta for, so it reads only what a rule could alert on.
//!
//! The reading errs on the side of reading more: a rule that does not pin `eventType` to values
//! or prefixes in every way its condition can be true (a `contains`, a regular expression, a
//! selection under `not`, no `eventType` at all) makes the whole set match [`EventTypes::Any`].

use std::collections::{BTreeSet, HashMap};

use rsigma_parser::{
    ConditionExpr, Detection, DetectionItem, Modifier, Quantifier, SelectorPattern, SigmaRule,
    SigmaValue,
};

/// The event types a set of rules can match.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum EventTypes {
    /// Any type: some rule does not pin `eventType`.
    Any,
    /// Only event types equal to, or starting with, one of these.
    Only(BTreeSet<TypePattern>),
}

/// One `eventType` value a rule matches.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub enum TypePattern {
    /// Exactly this type (lower case: Sigma compares without case, Okta's types are lower case).
    Exact(String),
    /// Every type starting with this.
    Prefix(String),
}

impl EventTypes {
    /// Both must hold: either one bounds the result, the smaller is kept.
    fn and(self, other: Self) -> Self {
        match (self, other) {
            (Self::Any, only) | (only, Self::Any) => only,
            (Self::Only(a), Self::Only(b)) => Self::Only(if a.len() <= b.len() { a } else { b }),
        }
    }

    /// Either may hold: the union.
    fn or(self, other: Self) -> Self {
        match (self, other) {
            (Self::Only(mut a), Self::Only(b)) => {
                a.extend(b);
                Self::Only(a)
            }
            _ => Self::Any,
        }
    }

    /// Adds `patterns` to a bounded set (they are read whatever the rules say).
    pub fn with(self, patterns: impl IntoIterator<Item = TypePattern>) -> Self {
        self.or(Self::Only(patterns.into_iter().collect()))
    }

    /// Without the types starting with `prefix` (events that never come from Okta).
    pub fn without_prefix(self, prefix: &str) -> Self {
        match self {
            Self::Any => Self::Any,
            Self::Only(patterns) => Self::Only(
                patterns
                    .into_iter()
                    .filter(|pattern| {
                        let (TypePattern::Exact(text) | TypePattern::Prefix(text)) = pattern;
                        !text.starts_with(prefix)
                    })
                    .collect(),
            ),
        }
    }

    /// The System Log `filter` expression that selects these types; `None` for any type. A type
    /// a prefix already selects is left out: Okta's filters have a length limit, and the
    /// built-in `event_hook.` prefix covers the hook rules' exact types.
    pub fn system_log_filter(&self) -> Option<String> {
        let Self::Only(patterns) = self else {
            return None;
        };
        let clauses: Vec<String> = patterns
            .iter()
            .filter(|pattern| !covered_by_another(pattern, patterns))
            .map(|pattern| match pattern {
                TypePattern::Exact(name) => format!("eventType eq \"{name}\""),
                TypePattern::Prefix(prefix) => format!("eventType sw \"{prefix}\""),
            })
            .collect();
        Some(clauses.join(" or "))
    }
}

/// Whether a prefix of `patterns` other than `pattern` selects every type `pattern` does.
fn covered_by_another(pattern: &TypePattern, patterns: &BTreeSet<TypePattern>) -> bool {
    let text = match pattern {
        TypePattern::Exact(text) | TypePattern::Prefix(text) => text,
    };
    patterns.iter().any(|other| match other {
        TypePattern::Prefix(prefix) => other != pattern && text.starts_with(prefix.as_str()),
        TypePattern::Exact(_) => false,
    })
}

/// The event types `rules` can match: the union of each rule's.
pub fn of_rules<'a>(rules: impl IntoIterator<Item = &'a SigmaRule>) -> EventTypes {
    rules
        .into_iter()
        .map(of_rule)
        .fold(EventTypes::Only(BTreeSet::new()), EventTypes::or)
}

/// The event types one rule can match: any of its conditions.
pub fn of_rule(rule: &SigmaRule) -> EventTypes {
    let named = &rule.detection.named;
    rule.detection
        .conditions
        .iter()
        .map(|condition| of_condition(condition, named))
        .reduce(EventTypes::or)
        .unwrap_or(EventTypes::Any)
}

fn of_condition(condition: &ConditionExpr, named: &HashMap<String, Detection>) -> EventTypes {
    match condition {
        ConditionExpr::And(parts) => combine(parts, named, EventTypes::and),
        ConditionExpr::Or(parts) => combine(parts, named, EventTypes::or),
        // What a negation matches is everything but a set: no bound on the type.
        ConditionExpr::Not(_) => EventTypes::Any,
        ConditionExpr::Identifier(name) => named.get(name).map_or(EventTypes::Any, of_detection),
        ConditionExpr::Selector {
            quantifier,
            pattern,
        } => {
            let chosen = named
                .iter()
                .filter(|(name, _)| selects(pattern, name))
                .map(|(_, detection)| of_detection(detection));
            match quantifier {
                Quantifier::All => chosen.reduce(EventTypes::and),
                Quantifier::Any | Quantifier::Count(_) => chosen.reduce(EventTypes::or),
            }
            .unwrap_or(EventTypes::Any)
        }
    }
}

fn combine(
    parts: &[ConditionExpr],
    named: &HashMap<String, Detection>,
    op: fn(EventTypes, EventTypes) -> EventTypes,
) -> EventTypes {
    parts
        .iter()
        .map(|part| of_condition(part, named))
        .reduce(op)
        .unwrap_or(EventTypes::Any)
}

/// True when a `1 of` / `all of` pattern names the detection `name`.
fn selects(pattern: &SelectorPattern, name: &str) -> bool {
    match pattern {
        SelectorPattern::Them => !name.starts_with('_'),
        SelectorPattern::Pattern(glob) => rsigma_parser::detection_name_matches(glob, name),
    }
}

fn of_detection(detection: &Detection) -> EventTypes {
    match detection {
        Detection::AllOf(items) => items
            .iter()
            .map(of_item)
            .fold(EventTypes::Any, EventTypes::and),
        Detection::AnyOf(options) => options
            .iter()
            .map(of_detection)
            .reduce(EventTypes::or)
            .unwrap_or(EventTypes::Any),
        Detection::And(parts) => parts
            .iter()
            .map(of_detection)
            .fold(EventTypes::Any, EventTypes::and),
        _ => EventTypes::Any,
    }
}

/// What one `field|modifiers: values` item says of the event type.
fn of_item(item: &DetectionItem) -> EventTypes {
    let is_event_type = item
        .field
        .name
        .as_deref()
        .is_some_and(|name| name.eq_ignore_ascii_case("eventType"));
    let prefix = match item.field.modifiers.as_slice() {
        [] | [Modifier::All] | [Modifier::Cased] => false,
        [Modifier::StartsWith] => true,
        _ => return EventTypes::Any,
    };
    if !is_event_type {
        return EventTypes::Any;
    }
    item.values
        .iter()
        .map(|value| of_value(value, prefix))
        .reduce(EventTypes::or)
        .unwrap_or(EventTypes::Any)
}

fn of_value(value: &SigmaValue, prefix: bool) -> EventTypes {
    let SigmaValue::String(text) = value else {
        return EventTypes::Any;
    };
    let pattern = match (text.as_plain(), text.original.strip_suffix('*')) {
        (Some(plain), _) if prefix => TypePattern::Prefix(plain.to_lowercase()),
        (Some(plain), _) => TypePattern::Exact(plain.to_lowercase()),
        // `user.mfa.*`: a prefix, when the only wildcard is the last character.
        (None, Some(head)) if !head.contains(['*', '?', '\\']) => {
            TypePattern::Prefix(head.to_lowercase())
        }
        _ => return EventTypes::Any,
    };
    EventTypes::Only(BTreeSet::from([pattern]))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn types(detection: &str) -> EventTypes {
        let yaml = format!(
            "title: t\nid: 8a0b0c3e-0000-4000-8000-000000000001\nlogsource:\n  product: okta\ndetection:\n{detection}\nlevel: low\n"
        );
        let collection = rsigma_parser::parse_sigma_yaml(&yaml).expect("rule parses");
        of_rules(&collection.rules)
    }

    fn only(patterns: &[TypePattern]) -> EventTypes {
        EventTypes::Only(patterns.iter().cloned().collect())
    }

    fn exact(name: &str) -> TypePattern {
        TypePattern::Exact(name.into())
    }

    #[test]
    fn values_and_prefixes_of_event_type_bound_the_rule() {
        let rule = "  selection:\n    eventType:\n      - user.mfa.factor.deactivate\n      - User.MFA.Factor.Reset_All\n  condition: selection";
        assert_eq!(
            types(rule),
            only(&[
                exact("user.mfa.factor.deactivate"),
                exact("user.mfa.factor.reset_all")
            ])
        );
        let starts = "  selection:\n    eventType|startswith: user.session.impersonation\n    actor.type: User\n  condition: selection";
        assert_eq!(
            types(starts),
            only(&[TypePattern::Prefix("user.session.impersonation".into())])
        );
        let wildcard = "  selection:\n    eventtype: 'event_hook.*'\n  condition: selection";
        assert_eq!(
            types(wildcard),
            only(&[TypePattern::Prefix("event_hook.".into())])
        );
    }

    #[test]
    fn a_rule_that_does_not_pin_the_type_everywhere_reads_everything() {
        for rule in [
            "  selection:\n    actor.alternateId|endswith: '@example.com'\n  condition: selection",
            "  selection:\n    eventType|contains: mfa\n  condition: selection",
            "  selection:\n    eventType: user.mfa.factor.deactivate\n  other:\n    actor.type: User\n  condition: selection or other",
            "  selection:\n    eventType: user.mfa.factor.deactivate\n  condition: not selection",
        ] {
            assert_eq!(types(rule), EventTypes::Any, "{rule}");
        }
    }

    #[test]
    fn a_conjunction_is_bounded_by_the_part_that_pins_the_type() {
        let rule = "  selection:\n    eventType: user.mfa.factor.deactivate\n  filter:\n    actor.type: SystemPrincipal\n  condition: selection and not filter";
        assert_eq!(types(rule), only(&[exact("user.mfa.factor.deactivate")]));
        let selector =
            "  sel_a:\n    eventType: a.b\n  sel_b:\n    eventType: c.d\n  condition: 1 of sel_*";
        assert_eq!(types(selector), only(&[exact("a.b"), exact("c.d")]));
    }

    #[test]
    fn the_filter_names_every_type_okta_should_send() {
        let filter = only(&[exact("user.mfa.factor.deactivate")])
            .with([TypePattern::Prefix("event_hook.".into())])
            .system_log_filter();
        assert_eq!(
            filter.as_deref(),
            Some(r#"eventType eq "user.mfa.factor.deactivate" or eventType sw "event_hook.""#)
        );
        assert_eq!(EventTypes::Any.system_log_filter(), None);
    }

    #[test]
    fn a_type_a_prefix_already_selects_is_not_named_again() {
        let prefix = |text: &str| TypePattern::Prefix(text.into());
        let filter = only(&[exact("event_hook.deleted"), prefix("event_hook.del")])
            .with([prefix("event_hook."), exact("user.mfa.factor.deactivate")])
            .system_log_filter();
        assert_eq!(
            filter.as_deref(),
            Some(r#"eventType eq "user.mfa.factor.deactivate" or eventType sw "event_hook.""#)
        );
    }
}
