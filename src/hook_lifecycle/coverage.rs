//! Which event types the loaded rules need, and how each reaches factorwatch: pushed by the
//! event hook, read from the System Log by reconciliation only, or not at all.

use std::collections::BTreeSet;

use serde::Serialize;

use crate::alert::RuleRef;
use crate::detect::event_types::{EventTypes, TypePattern};
use crate::detect::rules::RuleSet;
use crate::okta::hook_eligible::{hook_eligible_types, is_hook_eligible};
use crate::okta_api::EventHook;
use crate::reconcile::OWN_EVENT_PREFIX;

/// Okta's limit of event types per hook (README §d).
pub const MAX_HOOK_EVENT_TYPES: usize = 300;

/// How one event type (or prefix) a rule needs reaches factorwatch.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Route {
    /// The active, verified hook subscribes to it.
    Hook,
    /// No hook can deliver it; the System Log poller reads it.
    ReconciliationOnly,
    /// A hook could deliver it but this one does not (missing, inactive, unverified, or not
    /// subscribed); the poller reads it, later than a push would come. `okta register` fixes it.
    HookMissing,
    /// factorwatch's own event (such as the hook's silence), which the System Log poller makes.
    MadeByPoller,
    /// Neither the hook nor the poller brings it: the rule cannot fire on it.
    NotCovered,
}

/// One event type (or `prefix*`) a rule needs, and its route.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct TypeRoute {
    /// The event type, or a prefix written `prefix*`.
    pub event_type: String,
    /// How it arrives.
    pub route: Route,
}

/// One rule's coverage.
#[derive(Debug, Clone, Serialize)]
pub struct RuleCoverage {
    /// The rule's id.
    pub id: String,
    /// The rule's title.
    pub title: String,
    /// True when the rule does not pin `eventType`: it reads whatever arrives.
    pub any_type: bool,
    /// Its event types and their routes.
    pub types: Vec<TypeRoute>,
}

impl RuleCoverage {
    /// True when some type the rule needs arrives late or not at all.
    pub fn has_gap(&self) -> bool {
        self.types
            .iter()
            .any(|t| matches!(t.route, Route::HookMissing | Route::NotCovered))
    }
}

/// What the hook should subscribe to for `rules`: every hook-eligible type they can match
/// (a prefix expanded over Okta's catalog), sorted.
pub fn wanted_types(rules: &RuleSet) -> BTreeSet<String> {
    rules
        .event_types_by_rule()
        .iter()
        .flat_map(|(_, types)| eligible_types(types))
        .collect()
}

/// The hook-eligible types `types` names.
fn eligible_types(types: &EventTypes) -> Vec<String> {
    let EventTypes::Only(patterns) = types else {
        return Vec::new();
    };
    patterns
        .iter()
        .flat_map(|pattern| match pattern {
            TypePattern::Exact(name) if is_hook_eligible(name) => vec![name.clone()],
            TypePattern::Exact(_) => Vec::new(),
            TypePattern::Prefix(prefix) => hook_eligible_types()
                .filter(|name| name.starts_with(prefix.as_str()))
                .map(str::to_owned)
                .collect(),
        })
        .collect()
}

/// Each rule's event types and how they arrive, given the org's hook (if any) and whether the
/// System Log poller runs.
pub fn rule_coverage(
    rules: &RuleSet,
    hook: Option<&EventHook>,
    reconciling: bool,
) -> Vec<RuleCoverage> {
    let delivered: BTreeSet<&str> = hook
        .filter(|hook| hook.delivers())
        .map(|hook| hook.events.items.iter().map(String::as_str).collect())
        .unwrap_or_default();
    let route = |name: &str, eligible: bool| {
        let own = name.starts_with(OWN_EVENT_PREFIX);
        match (delivered.contains(name), eligible, reconciling) {
            (true, _, _) => Route::Hook,
            (false, _, false) => Route::NotCovered,
            (false, _, true) if own => Route::MadeByPoller,
            (false, true, true) => Route::HookMissing,
            (false, false, true) => Route::ReconciliationOnly,
        }
    };
    rules
        .event_types_by_rule()
        .into_iter()
        .map(|(rule, types)| coverage_of(rule, &types, &route))
        .collect()
}

fn coverage_of(
    rule: RuleRef,
    types: &EventTypes,
    route: &dyn Fn(&str, bool) -> Route,
) -> RuleCoverage {
    let mut routes = Vec::new();
    if let EventTypes::Only(patterns) = types {
        for pattern in patterns {
            match pattern {
                TypePattern::Exact(name) => routes.push(TypeRoute {
                    event_type: name.clone(),
                    route: route(name, is_hook_eligible(name)),
                }),
                TypePattern::Prefix(prefix) => routes.extend(prefix_routes(prefix, route)),
            }
        }
    }
    RuleCoverage {
        id: rule.id,
        title: rule.title,
        any_type: matches!(types, EventTypes::Any),
        types: routes,
    }
}

/// A prefix: each hook-eligible type under it, and `prefix*` for the types no hook delivers.
fn prefix_routes(prefix: &str, route: &dyn Fn(&str, bool) -> Route) -> Vec<TypeRoute> {
    let mut routes: Vec<TypeRoute> = hook_eligible_types()
        .filter(|name| name.starts_with(prefix))
        .map(|name| TypeRoute {
            event_type: name.to_owned(),
            route: route(name, true),
        })
        .collect();
    let rest = format!("{prefix}*");
    routes.push(TypeRoute {
        route: route(&rest, false),
        event_type: rest,
    });
    routes
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A rule whose `eventType` selection is `selection` (a YAML value).
    fn rule(title: &str, selection: &str) -> (String, String) {
        let yaml = format!(
            "title: {title}\nid: {}\nlogsource:\n    product: okta\n    service: okta\n\
             detection:\n    selection:\n        {selection}\n    condition: selection\nlevel: high\n",
            uuid::Uuid::new_v4()
        );
        (format!("{title}.yml"), yaml)
    }

    fn rules() -> RuleSet {
        RuleSet::from_sources(&[
            rule("Reset", "eventType: 'user.mfa.factor.reset_all'"),
            rule("Org wide", "eventType: 'system.mfa.factor.deactivate'"),
            rule("Any MFA", "eventType|startswith: 'user.mfa.factor.'"),
        ])
        .unwrap()
    }

    fn hook(types: &[&str], status: &str) -> EventHook {
        serde_json::from_value(serde_json::json!({
            "id": "who1", "name": "factorwatch", "status": status,
            "verificationStatus": "VERIFIED",
            "events": {"type": "EVENT_TYPE", "items": types},
            "channel": {"config": {"uri": "https://fw.example/okta/events"}},
        }))
        .unwrap()
    }

    fn routes(coverage: &[RuleCoverage], title: &str) -> Vec<(String, Route)> {
        let rule = coverage.iter().find(|r| r.title == title).unwrap();
        (rule.types.iter())
            .map(|t| (t.event_type.clone(), t.route))
            .collect()
    }

    #[test]
    fn the_hook_subscribes_what_it_can_deliver_and_prefixes_expand_over_the_catalog() {
        let wanted = wanted_types(&rules());
        assert!(wanted.contains("user.mfa.factor.reset_all"));
        assert!(
            wanted.contains("user.mfa.factor.deactivate"),
            "from the prefix"
        );
        assert!(wanted.iter().all(|t| is_hook_eligible(t)), "{wanted:?}");
        assert!(!wanted.contains("system.mfa.factor.deactivate"));
    }

    #[test]
    fn each_type_says_how_it_arrives() {
        let rules = rules();
        let active = hook(&["user.mfa.factor.reset_all"], "ACTIVE");
        let coverage = rule_coverage(&rules, Some(&active), true);
        let reset = ("user.mfa.factor.reset_all".to_owned(), Route::Hook);
        assert_eq!(routes(&coverage, "Reset"), [reset]);
        let org_wide = (
            "system.mfa.factor.deactivate".to_owned(),
            Route::ReconciliationOnly,
        );
        assert_eq!(routes(&coverage, "Org wide"), [org_wide]);
        let any = routes(&coverage, "Any MFA");
        assert!(any.contains(&("user.mfa.factor.deactivate".into(), Route::HookMissing)));
        assert!(any.contains(&("user.mfa.factor.*".into(), Route::ReconciliationOnly)));
        assert!(
            coverage
                .iter()
                .find(|r| r.title == "Any MFA")
                .unwrap()
                .has_gap()
        );
        assert!(
            !coverage
                .iter()
                .find(|r| r.title == "Reset")
                .unwrap()
                .has_gap()
        );

        // An inactive hook delivers nothing; without the poller nothing arrives.
        let inactive = hook(&["user.mfa.factor.reset_all"], "INACTIVE");
        let coverage = rule_coverage(&rules, Some(&inactive), false);
        let reset = ("user.mfa.factor.reset_all".to_owned(), Route::NotCovered);
        assert_eq!(routes(&coverage, "Reset"), [reset]);
    }
}
