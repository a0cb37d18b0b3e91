//! Live Okta context on MFA alerts (`[okta.context]`): what the analyst would look up next in
//! the Admin Console, read from Okta's API when the alert is raised, and the level raised for a
//! target or an actor holding an admin role (the dynamic privileged list, beside the static
//! `privileged_users` of [`super::context`]).
//!
//! Which alerts: those on a `user.mfa.*` event (the alerts that carry an MFA `context`) with a
//! target user that has an id. For each, the target's user (status, type), factors, admin roles
//! and groups, and the actor's admin roles when the actor is a user. The lookups of a detection
//! pass run at once, each user's once, and all end by `timeout` after the pass asked: an alert
//! never waits longer, and says in `okta_context.failed` which lookups it lacks and why.
//! Answers are kept `ttl` for later alerts about the same user ([`cache`]).

mod cache;
mod config;
mod lookup;

use std::collections::{HashMap, HashSet};

use futures_util::future::join_all;
use tokio::time::Instant;

use crate::alert::{ActorContext, Alert, FactorLeft, OktaContext, TargetContext};
use crate::okta_api::{AssignedRole, OktaClient, scopes};
use cache::Cache;
pub use config::OktaContextConfig;
use lookup::{Answer, Lookup, LookupKind, Missing};

/// The OAuth scopes the lookups need: users (with factors and groups) and their roles.
pub const CONTEXT_SCOPES: &[&str] = &[scopes::USERS_READ, scopes::ROLES_READ];

/// The lookups of a target user, in the order `failed` lists them.
const TARGET_LOOKUPS: [LookupKind; 4] = [
    LookupKind::User,
    LookupKind::Factors,
    LookupKind::Roles,
    LookupKind::Groups,
];

/// One org's live context: its API client, settings and cache.
#[derive(Debug)]
pub struct LiveContext {
    client: OktaClient,
    config: OktaContextConfig,
    cache: Cache,
}

/// Who an alert's context is about.
struct Subjects {
    target: String,
    /// The actor's id and `type`.
    actor: Option<(String, String)>,
}

/// The outcome of each lookup of a pass.
type Outcomes = HashMap<Lookup, Result<Answer, Missing>>;

impl LiveContext {
    /// The context of an org, looked up with `client` (asking for [`CONTEXT_SCOPES`]).
    pub fn new(client: OktaClient, config: &OktaContextConfig) -> Self {
        Self {
            client,
            cache: Cache::new(config.ttl, config.max_entries),
            config: config.clone(),
        }
    }

    /// Adds `okta_context` to every MFA alert of `alerts` and raises the level of those whose
    /// target or actor holds an admin role. Returns within `timeout`.
    pub async fn add_to(&self, alerts: &mut [Alert]) {
        let subjects: Vec<Option<Subjects>> = alerts.iter().map(subjects_of).collect();
        let wanted: HashSet<Lookup> = subjects
            .iter()
            .flatten()
            .flat_map(|s| s.lookups())
            .collect();
        if wanted.is_empty() {
            return;
        }
        let outcomes = self.resolve(wanted).await;
        for (alert, subjects) in alerts.iter_mut().zip(subjects) {
            if let Some(subjects) = subjects {
                self.apply(alert, &subjects, &outcomes);
            }
        }
    }

    /// Answers every lookup from the cache or from Okta, each call cut off at the deadline.
    async fn resolve(&self, wanted: HashSet<Lookup>) -> Outcomes {
        let now = Instant::now();
        let deadline = now + self.config.timeout;
        let mut outcomes = Outcomes::new();
        let mut calls = Vec::new();
        for lookup in wanted {
            match self.cache.get(&lookup, now) {
                Some(answer) => {
                    outcomes.insert(lookup, Ok(answer));
                }
                None => calls.push(self.call(lookup, deadline)),
            }
        }
        outcomes.extend(join_all(calls).await);
        outcomes
    }

    /// One call to Okta, abandoned at `deadline`; its answer is cached.
    async fn call(&self, lookup: Lookup, deadline: Instant) -> (Lookup, Result<Answer, Missing>) {
        let result = match tokio::time::timeout_at(deadline, lookup.run(&self.client)).await {
            Ok(Ok(answer)) => {
                self.cache
                    .put(lookup.clone(), answer.clone(), Instant::now());
                Ok(answer)
            }
            Ok(Err(error)) => {
                tracing::debug!(%error, ?lookup, "an Okta context lookup failed");
                Err(Missing::of(&error))
            }
            Err(_) => Err(Missing::Deadline),
        };
        (lookup, result)
    }

    /// Builds one alert's `okta_context` from the outcomes, and raises its level.
    fn apply(&self, alert: &mut Alert, subjects: &Subjects, outcomes: &Outcomes) {
        let mut okta_context = OktaContext::default();
        let timeout = humantime::format_duration(self.config.timeout).to_string();
        let mut target = TargetContext {
            id: subjects.target.clone(),
            ..TargetContext::default()
        };
        for kind in TARGET_LOOKUPS {
            let lookup = Lookup {
                kind,
                user_id: subjects.target.clone(),
            };
            match outcomes.get(&lookup) {
                Some(Ok(answer)) => self.fill_target(&mut target, answer),
                Some(Err(missing)) => {
                    okta_context
                        .failed
                        .push(missing.record("target", kind, &timeout));
                }
                None => {}
            }
        }
        let admin_target = target.admin_roles.as_ref().is_some_and(|r| !r.is_empty());
        okta_context.target = Some(target);
        if let Some((id, kind)) = &subjects.actor {
            let mut actor = ActorContext {
                id: id.clone(),
                kind: kind.clone(),
                admin_roles: None,
            };
            let lookup = Lookup {
                kind: LookupKind::Roles,
                user_id: id.clone(),
            };
            match outcomes.get(&lookup) {
                Some(Ok(Answer::Roles(roles))) => actor.admin_roles = Some(role_names(roles)),
                Some(Err(missing)) => {
                    okta_context
                        .failed
                        .push(missing.record("actor", LookupKind::Roles, &timeout))
                }
                _ => {}
            }
            okta_context.actor = Some(actor);
        }
        let admin_actor = okta_context
            .actor
            .as_ref()
            .and_then(|actor| actor.admin_roles.as_ref())
            .is_some_and(|roles| !roles.is_empty());
        alert.okta_context = Some(okta_context);
        if let Some(context) = alert.context.as_mut() {
            context.admin_target = admin_target;
            context.admin_actor = admin_actor;
            let risk = super::context::risk_level(alert.rule.level, context);
            alert.level = alert.level.max(risk);
        }
    }

    /// Copies one answer about the target into its context.
    fn fill_target(&self, target: &mut TargetContext, answer: &Answer) {
        match answer {
            Answer::User(user) => {
                target.status = Some(user.status.clone());
                target.user_type = user.user_type.as_ref().and_then(|t| t.id.clone());
            }
            Answer::Factors(factors) => {
                let left = factors.iter().map(|factor| FactorLeft {
                    factor_type: factor.factor_type.clone(),
                    provider: factor.provider.clone(),
                    status: factor.status.clone(),
                });
                target.factors_left = Some(left.collect());
            }
            Answer::Roles(roles) => target.admin_roles = Some(role_names(roles)),
            Answer::Groups(page) => {
                let max = self.config.max_groups;
                let names = page.groups.iter().take(max).map(|group| {
                    group
                        .profile
                        .as_ref()
                        .and_then(|p| p.name.clone())
                        .unwrap_or_else(|| group.id.clone())
                });
                target.groups = Some(names.collect());
                target.groups_truncated = page.more || page.groups.len() > max;
            }
        }
    }
}

impl Subjects {
    /// The lookups this alert needs.
    fn lookups(&self) -> Vec<Lookup> {
        let mut lookups: Vec<Lookup> = TARGET_LOOKUPS
            .iter()
            .map(|&kind| Lookup {
                kind,
                user_id: self.target.clone(),
            })
            .collect();
        if let Some((id, kind)) = &self.actor
            && kind == "User"
        {
            lookups.push(Lookup {
                kind: LookupKind::Roles,
                user_id: id.clone(),
            });
        }
        lookups
    }
}

/// Who an MFA alert's context is about; `None` for any other alert, or one without a target
/// user id.
fn subjects_of(alert: &Alert) -> Option<Subjects> {
    alert.context.as_ref()?;
    let target = alert.targets.first()?.id.clone()?;
    let actor = alert.actor.as_ref().and_then(|actor| {
        let id = actor.id.clone()?;
        let kind = actor.kind.clone().unwrap_or_else(|| "unknown".to_owned());
        Some((id, kind))
    });
    Some(Subjects { target, actor })
}

/// The admin roles in force: each role's type, a custom role's label.
fn role_names(roles: &[AssignedRole]) -> Vec<String> {
    roles
        .iter()
        .filter(|role| role.status.as_deref() != Some("INACTIVE"))
        .map(|role| match (&role.label, role.role_type.as_str()) {
            (Some(label), "CUSTOM") => format!("CUSTOM: {label}"),
            (_, role_type) => role_type.to_owned(),
        })
        .collect()
}
