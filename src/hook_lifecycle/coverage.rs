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
