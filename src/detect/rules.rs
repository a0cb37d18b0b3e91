//! Loading Sigma rules (through `rsigma-parser`) and evaluating them (through `rsigma-eval`).
//!
//! Loading is all or nothing: one rule that fails to parse or compile fails the whole set with the
//! file and the reason, so a service never runs with half its detections.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::path::{Path, PathBuf};
use std::sync::{Arc, RwLock};

use anyhow::{Context, bail};
use rsigma_eval::{CompiledRule, EvaluationResult};
use rsigma_parser::{CorrelationCondition, CorrelationRule, Level as SigmaLevel, SigmaRule};
use serde_json::Value;

use super::RulesConfig;
use super::correlate::{self, Correlator, LoadedCorrelation};
use super::throttled::CorrelationWarnings;
use super::type_dispatch::{TypeDispatch, TypedRule};
use super::{fields, placeholders};
use crate::alert::{Level, RuleRef};

/// The rules shipped inside the binary, as (name, YAML): the two MFA rules of a user; MFA
/// turned off or an authenticator weakened for the whole org; a factor suspended; an MFA
/// bypass attempted; a factor updated, enrolled for a user by someone else or promoted; MFA
/// reset by Okta Support, a service app or an API token; a policy rule downgraded to one
/// factor, a policy or rule deactivated or deleted; an impersonation session; a user reporting
/// suspicious activity; factorwatch's own event hook tampered with, another hook
/// created, a log stream tampered with (which only the System Log carries), and Okta's warning
/// that the org nears a rate limit, the event hooks' daily cap among them.
pub const BUILTIN_RULES: &[(&str, &str)] = &[
    (
        "builtin:rules/mfa_factor_deactivated.yml",
        include_str!("../../rules/mfa_factor_deactivated.yml"),
    ),
    (
        "builtin:rules/mfa_factors_reset_all.yml",
        include_str!("../../rules/mfa_factors_reset_all.yml"),
    ),
    (
        "builtin:rules/mfa_factor_disabled_org_wide.yml",
        include_str!("../../rules/mfa_factor_disabled_org_wide.yml"),
    ),
    (
        "builtin:rules/authenticator_weakened_org_wide.yml",
        include_str!("../../rules/authenticator_weakened_org_wide.yml"),
    ),
    (
        "builtin:rules/mfa_factor_suspended.yml",
        include_str!("../../rules/mfa_factor_suspended.yml"),
    ),
    (
        "builtin:rules/mfa_bypass_attempt.yml",
        include_str!("../../rules/mfa_bypass_attempt.yml"),
    ),
    (
        "builtin:rules/mfa_factor_updated.yml",
        include_str!("../../rules/mfa_factor_updated.yml"),
    ),
    (
        "builtin:rules/mfa_factor_enrolled_by_other.yml",
        include_str!("../../rules/mfa_factor_enrolled_by_other.yml"),
    ),
    (
        "builtin:rules/mfa_promote_enrollment.yml",
        include_str!("../../rules/mfa_promote_enrollment.yml"),
    ),
    (
        "builtin:rules/mfa_reset_by_support_or_api.yml",
        include_str!("../../rules/mfa_reset_by_support_or_api.yml"),
    ),
    (
        "builtin:rules/sign_on_policy_downgraded.yml",
        include_str!("../../rules/sign_on_policy_downgraded.yml"),
    ),
    (
        "builtin:rules/policy_deactivated_or_deleted.yml",
        include_str!("../../rules/policy_deactivated_or_deleted.yml"),
    ),
    (
        "builtin:rules/impersonation_session.yml",
        include_str!("../../rules/impersonation_session.yml"),
    ),
    (
        "builtin:rules/user_reported_suspicious_activity.yml",
        include_str!("../../rules/user_reported_suspicious_activity.yml"),
    ),
    (
        "builtin:rules/okta_user_risk_detected.yml",
        include_str!("../../rules/okta_user_risk_detected.yml"),
    ),
    (
        "builtin:rules/mfa_fastpass_phishing_declined.yml",
        include_str!("../../rules/mfa_fastpass_phishing_declined.yml"),
    ),
    (
        "builtin:rules/identity_provider_created.yml",
        include_str!("../../rules/identity_provider_created.yml"),
    ),
    (
        "builtin:rules/okta_event_hook_tampered.yml",
        include_str!("../../rules/okta_event_hook_tampered.yml"),
    ),
    (
        "builtin:rules/okta_event_hook_created.yml",
        include_str!("../../rules/okta_event_hook_created.yml"),
    ),
    (
        "builtin:rules/okta_event_hook_daily_cap.yml",
        include_str!("../../rules/okta_event_hook_daily_cap.yml"),
    ),
    (
        "builtin:rules/okta_log_stream_changed.yml",
        include_str!("../../rules/okta_log_stream_changed.yml"),
    ),
    (
        "builtin:rules/factorwatch_hook_silent.yml",
        include_str!("../../rules/factorwatch_hook_silent.yml"),
    ),
];

/// The default correlation rules shipped inside the binary, with the detection rules that feed
/// them, as (name, YAML).
pub const BUILTIN_CORRELATIONS: &[(&str, &str)] = &[
    (
        "builtin:rules/okta_mfa_removed.yml",
        include_str!("../../rules/okta_mfa_removed.yml"),
    ),
    (
        "builtin:rules/correlation/mfa_reset_many_users.yml",
        include_str!("../../rules/correlation/mfa_reset_many_users.yml"),
    ),
    (
        "builtin:rules/correlation/mfa_reset_then_password_reset.yml",
        include_str!("../../rules/correlation/mfa_reset_then_password_reset.yml"),
    ),
    (
        "builtin:rules/correlation/mfa_reset_then_new_network_session.yml",
        include_str!("../../rules/correlation/mfa_reset_then_new_network_session.yml"),
    ),
    (
        "builtin:rules/correlation/mfa_removed_not_replaced.yml",
        include_str!("../../rules/correlation/mfa_removed_not_replaced.yml"),
    ),
    (
        "builtin:rules/correlation/mfa_phone_shared_by_users.yml",
        include_str!("../../rules/correlation/mfa_phone_shared_by_users.yml"),
    ),
    (
        "builtin:rules/correlation/mfa_push_fatigue.yml",
        include_str!("../../rules/correlation/mfa_push_fatigue.yml"),
    ),
    (
        "builtin:rules/correlation/mfa_push_denials_flood.yml",
        include_str!("../../rules/correlation/mfa_push_denials_flood.yml"),
    ),
    (
        "builtin:rules/correlation/mfa_reset_then_idp_created.yml",
        include_str!("../../rules/correlation/mfa_reset_then_idp_created.yml"),
    ),
    (
        "builtin:rules/correlation/mfa_reset_then_privilege_grant.yml",
        include_str!("../../rules/correlation/mfa_reset_then_privilege_grant.yml"),
    ),
    (
        "builtin:rules/correlation/temporary_password_then_mfa_reset.yml",
        include_str!("../../rules/correlation/temporary_password_then_mfa_reset.yml"),
    ),
    (
        "builtin:rules/correlation/mfa_reset_then_admin_app_access.yml",
        include_str!("../../rules/correlation/mfa_reset_then_admin_app_access.yml"),
    ),
];

/// The rules in force, swapped whole on reload: a pass uses the set it started with, and a reload
/// that fails leaves the old set in place.
#[derive(Debug, Clone)]
pub struct SharedRules(Arc<RwLock<Arc<RuleSet>>>);

impl SharedRules {
    /// Shares `rules`.
    pub fn new(rules: RuleSet) -> Self {
        Self(Arc::new(RwLock::new(Arc::new(rules))))
    }

    /// The current set.
    pub fn current(&self) -> Arc<RuleSet> {
        self.0.read().expect("rules lock poisoned").clone()
    }

    /// Loads the rules `config` names again; on success they replace the current set, on failure
    /// the current set stays and the error says why.
    pub fn reload(&self, config: &RulesConfig) -> anyhow::Result<usize> {
        let rules = RuleSet::load(config)?;
        let count = rules.len();
        *self.0.write().expect("rules lock poisoned") = Arc::new(rules);
        Ok(count)
    }
}

/// A compiled set of detection and correlation rules.
pub struct RuleSet {
    /// The detection rules split by the event types they can match (built once all are loaded).
    dispatch: TypeDispatch,
    /// The detection rules compiled, in load order (beside `sigma_rules`).
    compiled: Vec<CompiledRule>,
    rules: HashMap<String, RuleRef>,
    /// Detection rules that feed correlations and raise no alert of their own.
    correlation_only: HashSet<String>,
    /// Detection rules a correlation with `generate: true` refers to: they alert on their own.
    generated: HashSet<String>,
    /// The parsed detection rules, which a [`Correlator`] registers to resolve rule names.
    sigma_rules: Vec<SigmaRule>,
    correlations: Vec<LoadedCorrelation>,
    described: Vec<RuleDescription>,
    /// The correlations' repeating warnings, shared by every [`Correlator`] of this set.
    warnings: Arc<CorrelationWarnings>,
}

/// What `rules check` shows of one loaded rule.
#[derive(Debug, Clone)]
pub struct RuleDescription {
    /// The rule as alerts name it.
    pub rule: RuleRef,
    /// The file it came from.
    pub origin: String,
    /// The Okta fields it tests (after lower-case names were resolved); for a correlation, the
    /// fields it groups and counts by.
    pub fields: Vec<String>,
    /// For a correlation rule, what it correlates ("temporal_ordered of a, b within 1800 s").
    pub correlates: Option<String>,
    /// True for a detection rule that only feeds correlations (`generate: false`).
    pub correlation_only: bool,
}

impl std::fmt::Debug for RuleSet {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RuleSet")
            .field("rules", &self.rules.len())
            .field("correlations", &self.correlations.len())
            .field(
                "files",
                &self.described.iter().map(|d| &d.origin).collect::<Vec<_>>(),
            )
            .finish()
    }
}

/// Rules parsed from their files, before they are checked as a whole.
#[derive(Default)]
struct Parsed {
    rules: Vec<(String, SigmaRule)>,
    correlations: Vec<(String, CorrelationRule)>,
}

impl RuleSet {
    /// Loads the built-in rules (unless disabled) and every file or folder in `config.paths`.
    pub fn load(config: &RulesConfig) -> anyhow::Result<Self> {
        let mut sources: Vec<(String, String)> = Vec::new();
        if config.builtin {
            let correlations = match config.builtin_correlations {
                true => BUILTIN_CORRELATIONS,
                false => &[],
            };
            sources.extend(
                BUILTIN_RULES
                    .iter()
                    .chain(correlations)
                    .map(|(name, yaml)| (name.to_string(), yaml.to_string())),
            );
        }
        for path in &config.paths {
            for file in rule_files(path)? {
                let yaml = std::fs::read_to_string(&file)
                    .with_context(|| format!("cannot read rule file {}", file.display()))?;
                sources.push((file.display().to_string(), yaml));
            }
        }
        Self::build(&sources, &config.placeholders)
    }

    /// Compiles rules from (origin, YAML) pairs; the origin names the rule in errors.
    pub fn from_sources(sources: &[(String, String)]) -> anyhow::Result<Self> {
        Self::build(sources, &BTreeMap::new())
    }

    /// Compiles rules from (origin, YAML) pairs, filling `|expand` placeholders from
    /// `placeholders` (as `[rules.placeholders]` does).
    pub fn build(
        sources: &[(String, String)],
        placeholders: &BTreeMap<String, Vec<String>>,
    ) -> anyhow::Result<Self> {
        let mut parsed = Parsed::default();
        let located = |origin: &str, err: anyhow::Error| {
            let yaml = sources.iter().find(|(o, _)| o == origin).map(|(_, y)| y);
            locate(origin, yaml.map_or("", String::as_str), err)
        };
        for (origin, yaml) in sources {
            parse_source(origin, yaml, placeholders, &mut parsed)
                .map_err(|err| located(origin, err))?;
        }
        let mut set = Self {
            dispatch: TypeDispatch::default(),
            compiled: Vec::new(),
            rules: HashMap::new(),
            correlation_only: HashSet::new(),
            generated: HashSet::new(),
            sigma_rules: Vec::new(),
            correlations: Vec::new(),
            described: Vec::new(),
            warnings: Arc::default(),
        };
        for (origin, rule) in parsed.rules {
            set.add_detection(origin.clone(), rule)
                .map_err(|err| located(&origin, err))?;
        }
        for (origin, rule) in parsed.correlations {
            set.add_correlation(origin.clone(), rule)
                .map_err(|err| located(&origin, err))?;
        }
        if set.rules.is_empty() {
            bail!(
                "no detection rules loaded: enable [rules] builtin or list rule files in [rules] paths"
            );
        }
        // Compile the correlations once now, so a rule rsigma refuses fails the load, not the
        // first detection pass.
        set.try_correlator()?;
        set.dispatch = set.split_by_event_type();
        Ok(set)
    }

    fn add_detection(&mut self, origin: String, rule: SigmaRule) -> anyhow::Result<()> {
        let reference = rule_ref(&RuleMeta::of_rule(&rule));
        if self.rules.contains_key(&reference.id) {
            bail!("rule id {} is defined twice", reference.id);
        }
        let compiled =
            rsigma_eval::compile_rule(&rule).with_context(|| format!("rule {:?}", rule.title))?;
        self.described.push(RuleDescription {
            rule: reference.clone(),
            origin,
            fields: fields::field_names(&rule),
            correlates: None,
            correlation_only: false,
        });
        self.rules.insert(reference.id.clone(), reference);
        self.sigma_rules.push(rule);
        self.compiled.push(compiled);
        Ok(())
    }

    /// The detection rules split by the event types each can match.
    fn split_by_event_type(&self) -> TypeDispatch {
        let typed: Vec<TypedRule> = self
            .compiled
            .iter()
            .zip(&self.sigma_rules)
            .zip(self.described.iter().filter(|d| d.correlates.is_none()))
            .map(|((compiled, rule), described)| TypedRule {
                compiled,
                types: super::event_types::of_rule(rule),
                fields: &described.fields,
            })
            .collect();
        TypeDispatch::build(&typed)
    }

    fn add_correlation(&mut self, origin: String, rule: CorrelationRule) -> anyhow::Result<()> {
        let reference = rule_ref(&RuleMeta::of_correlation(&rule));
        if self.rules.contains_key(&reference.id)
            || self.correlations.iter().any(|c| c.rule.id == reference.id)
        {
            bail!("rule id {} is defined twice", reference.id);
        }
        let absence = correlate::check_correlation(&rule, &|name| self.rule_key(name))?;
        // Sigma: the rules a correlation refers to raise no alert of their own unless one of
        // the correlations that use them says `generate: true`.
        let used: Vec<String> = rule
            .rules
            .iter()
            .filter_map(|name| self.rule_key(name))
            .collect();
        for key in used {
            if rule.generate {
                self.correlation_only.remove(&key);
                self.generated.insert(key);
            } else if !self.generated.contains(&key) {
                self.correlation_only.insert(key);
            }
        }
        let mut fields = rule.group_by.clone();
        if let CorrelationCondition::Threshold {
            field: Some(counted),
            ..
        } = &rule.condition
        {
            fields.extend(counted.iter().cloned());
        }
        let kind = match absence {
            Some(_) => "absence (factorwatch extension)",
            None => rule.correlation_type.as_str(),
        };
        self.described.push(RuleDescription {
            rule: reference.clone(),
            origin,
            fields,
            correlates: Some(format!(
                "{kind} of {} within {} s",
                rule.rules.join(", "),
                rule.timespan.seconds
            )),
            correlation_only: false,
        });
        self.correlations.push(LoadedCorrelation {
            rule: reference,
            parsed: rule,
            absence,
        });
        Ok(())
    }

    /// The key (id) of the loaded detection rule that `reference` (an id or a name) names.
    fn rule_key(&self, reference: &str) -> Option<String> {
        self.sigma_rules
            .iter()
            .find(|rule| {
                rule.id.as_deref() == Some(reference) || rule.name.as_deref() == Some(reference)
            })
            .and_then(|rule| rule.id.clone())
    }

    /// Number of rules, detection and correlation.
    pub fn len(&self) -> usize {
        self.rules.len() + self.correlations.len()
    }

    /// True when no rule is loaded (never the case for a set built by [`RuleSet::load`]).
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Every rule in load order (detection rules first), with its file and the fields it tests.
    pub fn describe(&self) -> Vec<RuleDescription> {
        self.described
            .iter()
            .map(|d| RuleDescription {
                correlation_only: self.correlation_only.contains(&d.rule.id),
                ..d.clone()
            })
            .collect()
    }

    /// A correlator with empty state for this set's correlation rules.
    pub fn correlator(&self) -> Correlator {
        self.try_correlator()
            .expect("correlations compiled when the rule set was loaded")
    }

    fn try_correlator(&self) -> anyhow::Result<Correlator> {
        Correlator::new(
            &self.sigma_rules,
            &self.correlations,
            Arc::clone(&self.warnings),
        )
    }

    /// The event types these rules can match, correlations' inputs included: what the System Log
    /// poller asks Okta for.
    pub fn event_types(&self) -> super::event_types::EventTypes {
        super::event_types::of_rules(&self.sigma_rules)
    }

    /// Each detection rule (correlations' inputs included) with the event types it can match:
    /// what an event hook must deliver, or the System Log must bring, for it to fire.
    pub fn event_types_by_rule(&self) -> Vec<(RuleRef, super::event_types::EventTypes)> {
        self.described
            .iter()
            .filter(|d| d.correlates.is_none())
            .filter_map(|d| {
                let rule = self
                    .sigma_rules
                    .iter()
                    .find(|rule| rule.id.as_deref() == Some(d.rule.id.as_str()))?;
                Some((d.rule.clone(), super::event_types::of_rule(rule)))
            })
            .collect()
    }

    /// True when the set holds correlation rules (and the detector must keep their state).
    pub fn has_correlations(&self) -> bool {
        !self.correlations.is_empty()
    }

    /// Whether some detection rule can match an event whose `eventType` is `event_type` (`None`
    /// when it is absent or not a string). An event none can match raises no alert and feeds no
    /// correlation, so the detector does not build its tree (BENCHMARKS.md, "Events no rule can
    /// match").
    pub fn can_match(&self, event_type: Option<&str>) -> bool {
        self.dispatch.can_match(event_type)
    }

    /// Every detection rule that matches `event`, correlation inputs included.
    pub fn detect(&self, event: &Value) -> Vec<EvaluationResult> {
        self.dispatch.evaluate(event, None)
    }

    /// The rules among `detections` that raise alerts of their own.
    pub fn alerting(&self, detections: &[EvaluationResult]) -> Vec<&RuleRef> {
        detections
            .iter()
            .filter_map(|result| {
                let header = &result.header;
                let key = header.rule_id.as_deref().unwrap_or(&header.rule_title);
                self.rules.get(key)
            })
            .filter(|rule| !self.correlation_only.contains(&rule.id))
            .collect()
    }

    /// The rules that match `event` and raise alerts of their own.
    pub fn matching(&self, event: &Value) -> Vec<&RuleRef> {
        self.alerting(&self.detect(event))
    }
}

/// Parses one file into `parsed`, refusing what would otherwise be silently ignored or wrong.
fn parse_source(
    origin: &str,
    yaml: &str,
    placeholders: &BTreeMap<String, Vec<String>>,
    parsed: &mut Parsed,
) -> anyhow::Result<()> {
    let collection = rsigma_parser::parse_sigma_yaml(yaml).context("cannot parse")?;
    if let Some(error) = collection.errors.first() {
        bail!("{error}");
    }
    if let Some(filter) = collection.filters.first() {
        bail!("filter rule {:?} is not supported yet", filter.title);
    }
    for rule in &collection.rules {
        if let Some(product) = &rule.logsource.product
            && !product.eq_ignore_ascii_case("okta")
        {
            bail!(
                "rule {:?} is for logsource product {product:?}; \
                 factorwatch runs rules for product okta",
                rule.title
            );
        }
        let mut rule = rule.clone();
        fields::canonicalize_rule(&mut rule);
        placeholders::expand(&mut rule, placeholders, yaml)?;
        parsed.rules.push((origin.to_owned(), rule));
    }
    for correlation in &collection.correlations {
        let mut correlation = correlation.clone();
        fields::canonicalize_correlation(&mut correlation);
        parsed.correlations.push((origin.to_owned(), correlation));
    }
    Ok(())
}

/// `err` as "rule file ORIGIN, line N: ...". YAML errors carry their own line; for the others
/// (an unknown modifier, a broken condition, a missing placeholder) the line is the first one
/// holding what the error names, or the `condition:` line for condition errors.
fn locate(origin: &str, yaml: &str, err: anyhow::Error) -> anyhow::Error {
    let message = format!("{err:#}");
    let message = message
        .strip_prefix(origin)
        .map_or(message.as_str(), |rest| rest.trim_start_matches(": "));
    match guess_line(yaml, message) {
        Some(line) if !message.contains("line ") => {
            anyhow::anyhow!("rule file {origin}, line {line}: {message}")
        }
        _ => anyhow::anyhow!("rule file {origin}: {message}"),
    }
}

/// The 1-based line of `yaml` that `message` is most likely about.
fn guess_line(yaml: &str, message: &str) -> Option<usize> {
    let find = |needle: &str| {
        yaml.lines()
            .position(|line| line.contains(needle) && !line.trim_start().starts_with("title:"))
            .map(|at| at + 1)
    };
    // Quoted tokens, except rule titles (`rule "..."`), which name the rule, not the fault.
    let parts: Vec<&str> = message.split(['\'', '"']).collect();
    let quoted = parts
        .iter()
        .enumerate()
        .skip(1)
        .step_by(2)
        .filter(|(at, token)| !token.is_empty() && !parts[at - 1].ends_with("rule "))
        .map(|(_, token)| *token);
    for token in quoted {
        if let Some(line) = find(&format!("|{token}")).or_else(|| find(token)) {
            return Some(line);
        }
    }
    let about_condition = message.contains("ondition") || message.contains("detection identifier");
    about_condition.then(|| find("condition:")).flatten()
}

/// The metadata detection and correlation rules share, which alerts carry.
struct RuleMeta<'a> {
    id: Option<&'a String>,
    title: &'a String,
    level: Option<&'a SigmaLevel>,
    author: Option<&'a String>,
    tags: &'a [String],
    references: &'a [String],
    falsepositives: &'a [String],
}

impl<'a> RuleMeta<'a> {
    fn of_rule(rule: &'a SigmaRule) -> Self {
        Self {
            id: rule.id.as_ref(),
            title: &rule.title,
            level: rule.level.as_ref(),
            author: rule.author.as_ref(),
            tags: &rule.tags,
            references: &rule.references,
            falsepositives: &rule.falsepositives,
        }
    }

    fn of_correlation(rule: &'a CorrelationRule) -> Self {
        Self {
            id: rule.id.as_ref(),
            title: &rule.title,
            level: rule.level.as_ref(),
            author: rule.author.as_ref(),
            tags: &rule.tags,
            references: &rule.references,
            falsepositives: &rule.falsepositives,
        }
    }
}

/// The alert's view of a rule; a rule without `id` is identified by its title.
fn rule_ref(rule: &RuleMeta<'_>) -> RuleRef {
    RuleRef {
        id: rule.id.unwrap_or(rule.title).clone(),
        title: rule.title.clone(),
        level: rule.level.map_or(Level::Medium, |level| match level {
            SigmaLevel::Informational => Level::Informational,
            SigmaLevel::Low => Level::Low,
            SigmaLevel::Medium => Level::Medium,
            SigmaLevel::High => Level::High,
            SigmaLevel::Critical => Level::Critical,
        }),
        author: rule.author.cloned(),
        tags: rule.tags.to_vec(),
        references: rule.references.to_vec(),
        falsepositives: rule.falsepositives.to_vec(),
    }
}

/// `path` itself, or the `*.yml` / `*.yaml` files below it, sorted.
fn rule_files(path: &Path) -> anyhow::Result<Vec<PathBuf>> {
    let meta = std::fs::metadata(path)
        .with_context(|| format!("rules.paths: {} does not exist", path.display()))?;
    if meta.is_file() {
        return Ok(vec![path.to_owned()]);
    }
    let mut files = Vec::new();
    for entry in std::fs::read_dir(path)
        .with_context(|| format!("rules.paths: cannot list {}", path.display()))?
    {
        let entry_path = entry?.path();
        if entry_path.is_dir() {
            files.extend(rule_files(&entry_path)?);
        } else if entry_path
            .extension()
            .is_some_and(|ext| ext == "yml" || ext == "yaml")
        {
            files.push(entry_path);
        }
    }
    files.sort();
    Ok(files)
}

#[cfg(test)]
mod tests {
    use super::super::rule_event::FieldProbe;
    use super::*;
    use serde_json::json;

    fn builtin() -> RuleSet {
        RuleSet::load(&RulesConfig::default()).unwrap()
    }

    #[test]
    fn builtin_rules_load_with_their_metadata() {
        let rules = builtin();
        let described = rules.describe();
        let alerting: Vec<_> = described
            .iter()
            .filter(|d| d.correlates.is_none() && !d.correlation_only)
            .collect();
        let levels: Vec<Level> = alerting.iter().map(|d| d.rule.level).collect();
        assert_eq!(
            levels,
            [
                Level::Medium,
                Level::Medium,
                Level::High,
                Level::High,
                Level::Medium,
                Level::High,
                Level::Medium,
                Level::High,
                Level::Medium,
                Level::High,
                Level::High,
                Level::Medium,
                Level::High,
                Level::High,
                Level::High,
                Level::High,
                Level::High,
                Level::Critical,
                Level::High,
                Level::High,
                Level::High,
                Level::High
            ],
            "the two MFA rules of a user, MFA off for the whole org, an authenticator weakened \
             for the whole org, a factor suspended, an MFA bypass, a factor updated, enrolled by \
             someone else, promoted, MFA reset by support or API, a policy rule downgraded, a \
             policy deactivated, an impersonation, a user's report, a high user risk, FastPass \
             declining a phishing attempt, an identity provider added, factorwatch's hook tampered \
             with, another hook \
             created, the daily cap near, a log stream tampered with, the hook silent: each \
             alerts on its own"
        );
        let correlations: Vec<_> = described
            .iter()
            .filter(|d| d.correlates.is_some())
            .collect();
        assert_eq!(correlations.len(), 11);
        assert!(described.iter().all(|d| d.rule.author.is_some()));
    }

    #[test]
    fn builtin_rules_match_only_their_event_types() {
        let rules = builtin();
        let deactivate = json!({"eventType": "user.mfa.factor.deactivate"});
        let reset_all = json!({"eventType": "user.mfa.factor.reset_all"});
        let activate = json!({"eventType": "user.mfa.factor.activate"});
        assert_eq!(rules.matching(&deactivate).len(), 1);
        assert_eq!(rules.matching(&reset_all).len(), 1);
        assert_ne!(
            rules.matching(&deactivate)[0].id,
            rules.matching(&reset_all)[0].id
        );
        assert!(rules.matching(&activate).is_empty());
        assert!(rules.matching(&json!("not an object")).is_empty());
        let org_wide = json!({"eventType": "system.mfa.factor.deactivate"});
        assert_eq!(rules.matching(&org_wide)[0].level, Level::High);
        for event_type in [
            "system.log_stream.lifecycle.create",
            "system.log_stream.lifecycle.delete",
            "factorwatch.hook.silent",
        ] {
            let matched = rules.matching(&json!({ "eventType": event_type }));
            assert_eq!(matched.len(), 1, "{event_type}");
            assert_eq!(matched[0].level, Level::High, "{event_type}");
        }
    }

    /// factorwatch's API Services app, as `[okta.api] client_id` names it.
    const OWN_CLIENT: &str = "0oafactorwatch01";

    /// The built-in rules of a deployment calling Okta as `OWN_CLIENT`, as `Config::pipelines`
    /// fills the placeholders; the hook keeps its default name.
    fn builtin_with_own_client() -> RuleSet {
        let placeholders = [(
            placeholders::API_CLIENTS.to_owned(),
            vec![OWN_CLIENT.to_owned()],
        )];
        RuleSet::load(&RulesConfig {
            placeholders: placeholders.into(),
            ..RulesConfig::default()
        })
        .unwrap()
    }

    /// An admin in the Admin Console, as the System Log names them.
    fn admin() -> Value {
        json!({"id": "00u1adm1nXq2Yb3Zc1d7", "type": "User",
            "alternateId": "dana.admin@example.com", "displayName": "Dana Admin"})
    }

    /// An OAuth service app acting as itself: its client id is the actor's id.
    fn client_app(client_id: &str) -> Value {
        json!({"id": client_id, "type": "PublicClientApp", "alternateId": client_id,
            "displayName": client_id})
    }

    /// The System Log event of `event_hook.<verb>` on the hook `name` by `actor`, shaped as the
    /// LogEvent schema gives it (the hook is the one `EventHook` target).
    fn hook_event(verb: &str, name: &str, actor: Value) -> Value {
        json!({
            "uuid": uuid::Uuid::new_v4().to_string(),
            "published": "2026-12-05T07:41:56.000Z",
            "eventType": format!("event_hook.{verb}"),
            "version": "0", "severity": "INFO",
            "displayMessage": format!("{verb} event hook"),
            "actor": actor,
            "client": {"ipAddress": "198.51.100.23", "zone": "null", "device": "Computer",
                "userAgent": {"rawUserAgent": "Mozilla/5.0"}},
            "outcome": {"result": "SUCCESS", "reason": null},
            "target": [{"id": "whoa1b2c3d4e5f6g7h8i", "type": "EventHook", "alternateId": name,
                "displayName": name, "detailEntry": null}],
            "transaction": {"type": "WEB", "id": "Y2vTq3bNx5Ab", "detail": {}},
            "debugContext": {"debugData": {"requestUri": null}},
            "request": {"ipChain": [{"ip": "198.51.100.23"}]},
        })
    }

    /// The titles of the rules `event` matches.
    fn titles(rules: &RuleSet, event: &Value) -> Vec<(String, Level)> {
        let matched = rules.matching(event);
        matched.iter().map(|r| (r.title.clone(), r.level)).collect()
    }

    const TAMPERED: &str = "Okta Event Hook of factorwatch Deactivated, Deleted or Changed";
    const OTHER_HOOK: &str = "Okta Event Hook Created, Activated or Changed";

    #[test]
    fn factorwatchs_hook_changed_by_anyone_but_factorwatch_is_critical() {
        let rules = builtin_with_own_client();
        for verb in ["deactivated", "deleted", "updated"] {
            let by_admin = hook_event(verb, "factorwatch", admin());
            assert_eq!(
                titles(&rules, &by_admin),
                [(TAMPERED.to_owned(), Level::Critical)],
                "{verb} by an admin"
            );
            let by_other_app = hook_event(verb, "factorwatch", client_app("0oaterraform0001"));
            assert_eq!(
                titles(&rules, &by_other_app).len(),
                1,
                "{verb} by another app"
            );
            let by_factorwatch = hook_event(verb, "factorwatch", client_app(OWN_CLIENT));
            assert!(
                rules.matching(&by_factorwatch).is_empty(),
                "{verb} by factorwatch's own client"
            );
        }
        for verb in ["activated", "verified"] {
            let event = hook_event(verb, "factorwatch", admin());
            assert!(rules.matching(&event).is_empty(), "{verb} blinds nothing");
        }
        let similar = hook_event("deactivated", "factorwatch-staging", admin());
        assert!(
            rules.matching(&similar).is_empty(),
            "another deployment's hook, deactivated"
        );
    }

    #[test]
    fn another_hook_created_activated_or_changed_is_high() {
        let rules = builtin_with_own_client();
        for verb in ["created", "activated", "updated"] {
            let event = hook_event(verb, "SIEM export", admin());
            assert_eq!(
                titles(&rules, &event),
                [(OTHER_HOOK.to_owned(), Level::High)],
                "{verb}"
            );
            let ours = hook_event(verb, "factorwatch", client_app(OWN_CLIENT));
            assert!(rules.matching(&ours).is_empty(), "{verb} by factorwatch");
        }
        let registered = hook_event("created", "factorwatch-test", client_app(OWN_CLIENT));
        assert!(
            rules.matching(&registered).is_empty(),
            "factorwatch's client registering a hook under another name"
        );
        let removed = hook_event("deleted", "SIEM export", admin());
        assert!(rules.matching(&removed).is_empty(), "one hook fewer");
    }

    #[test]
    fn without_configuration_the_hook_rules_guard_a_hook_named_factorwatch() {
        let rules = builtin();
        let deactivated = hook_event("deactivated", "FactorWatch", client_app(OWN_CLIENT));
        assert_eq!(
            titles(&rules, &deactivated),
            [(TAMPERED.to_owned(), Level::Critical)],
            "no client of factorwatch's known: every actor counts, names compare without case"
        );
    }

    /// Okta's sample MFA event of `users[0]`, as `event_type` (the shapes the catalog gives
    /// these types share the factor-reset event's actor, target, client and outcome).
    fn mfa_event_as(event_type: &str) -> Value {
        let users = crate::okta::samples::users();
        let initiator = crate::okta::samples::Initiator::Admin;
        let mut event = crate::okta::samples::mfa_factor_deactivate(
            &users[0],
            "OKTA_VERIFY_PUSH",
            initiator,
            "t1",
        );
        event["eventType"] = json!(event_type);
        event
    }

    #[test]
    fn tampering_with_factors_and_authenticators_alerts_and_near_misses_do_not() {
        let rules = builtin();
        let cases = [
            (
                "user.mfa.factor.suspend",
                "Okta MFA Factor Suspended or Unsuspended",
                Level::Medium,
            ),
            (
                "user.mfa.factor.unsuspend",
                "Okta MFA Factor Suspended or Unsuspended",
                Level::Medium,
            ),
            (
                "user.mfa.attempt_bypass",
                "Okta MFA Bypass Attempted",
                Level::High,
            ),
            (
                "security.authenticator.lifecycle.deactivate",
                "Okta Authenticator Deactivated or Changed for the Whole Org",
                Level::High,
            ),
            (
                "security.authenticator.lifecycle.update",
                "Okta Authenticator Deactivated or Changed for the Whole Org",
                Level::High,
            ),
        ];
        for (event_type, title, level) in cases {
            let found = titles(&rules, &mfa_event_as(event_type));
            assert_eq!(found, [(title.to_owned(), level)], "{event_type}");
        }
        for near in [
            "user.mfa.factor.activate",
            "security.authenticator.lifecycle.activate",
            "security.authenticator.lifecycle.create",
            "user.authentication.auth_via_mfa",
        ] {
            assert!(rules.matching(&mfa_event_as(near)).is_empty(), "{near}");
        }
    }

    use crate::okta::samples::{self, Initiator};

    /// A `policy.rule.update` by the sample admin whose rule target records `from` -> `to`.
    fn policy_rule_change(from: Value, to: Value) -> Value {
        let mut rule = samples::target_entity(
            "0pr3kq2ctchA1lRu01d7",
            "PolicyRule",
            "unknown",
            "Require MFA off-network",
        );
        rule["changeDetails"] = json!({ "from": from, "to": to });
        let policy = samples::target_entity(
            "rst3kq1acsPlcy0a51d7",
            "PolicyEntity",
            "unknown",
            "Okta Admin Console",
        );
        samples::admin_event(
            "policy.rule.update",
            "Update policy rule",
            vec![policy, rule],
        )
    }

    /// `event` as the rules read it: with the `factorwatch.*` fields.
    fn enriched(mut event: Value) -> Value {
        let mut history = super::super::enrich::NetworkHistory::default();
        super::super::enrich::enrich(&mut event, &mut history);
        event
    }

    const FACTOR_UPDATED: &str = "Okta MFA Factor Updated";
    const ENROLLED_BY_OTHER: &str = "Okta MFA Factor Enrolled for a User by Someone Else";
    const PROMOTED: &str = "Okta MFA Enrollment Promoted";
    const RESET_BY_MACHINE: &str = "Okta MFA Reset by Okta Support, a Service App or an API Token";
    const DOWNGRADED: &str = "Okta Sign-On Policy Rule Downgraded to One Factor";
    const POLICY_OFF: &str = "Okta Policy or Policy Rule Deactivated or Deleted";
    const IMPERSONATION: &str = "Okta Impersonation Session Granted or Started";
    const REPORTED: &str = "Okta User Reported Suspicious Activity";

    #[test]
    fn factor_changes_by_someone_else_alert_and_the_users_own_do_not() {
        let rules = builtin();
        let alice = &samples::users()[0];
        let sms = || vec![samples::enrollment_target("SMS")];
        let event = |event_type: &str, initiator| {
            enriched(samples::user_event(
                event_type,
                "Update factor for user",
                alice,
                initiator,
                sms(),
            ))
        };
        let updated = event("user.mfa.factor.update", Initiator::SelfService);
        assert_eq!(
            titles(&rules, &updated),
            [(FACTOR_UPDATED.to_owned(), Level::Medium)]
        );
        for initiator in [Initiator::Admin, Initiator::ApiToken, Initiator::ServiceApp] {
            let enrolled = event("user.mfa.factor.activate", initiator);
            assert_eq!(
                titles(&rules, &enrolled),
                [(ENROLLED_BY_OTHER.to_owned(), Level::High)],
                "{initiator:?}"
            );
        }
        let own = enriched(samples::mfa_factor_activate(alice, "SMS"));
        assert!(rules.matching(&own).is_empty(), "self-enrolment");
        let mut failed = event("user.mfa.factor.activate", Initiator::Admin);
        failed["outcome"]["result"] = json!("FAILURE");
        assert!(rules.matching(&failed).is_empty(), "a failed enrolment");
        let promoted = event("user.mfa.promote_enrollment", Initiator::SelfService);
        assert_eq!(
            titles(&rules, &promoted),
            [(PROMOTED.to_owned(), Level::Medium)]
        );
        let preregistered = event("system.mfa.preregister.initiate", Initiator::Admin);
        assert!(rules.matching(&preregistered).is_empty(), "{preregistered}");
    }

    #[test]
    fn mfa_resets_by_support_apps_and_tokens_alert_and_an_admins_only_as_a_reset() {
        let rules = builtin();
        let bob = &samples::users()[1];
        for initiator in [
            Initiator::OktaSupport,
            Initiator::ServiceApp,
            Initiator::ApiToken,
        ] {
            let reset_all = enriched(samples::mfa_factor_reset_all(bob, initiator));
            let found = titles(&rules, &reset_all);
            assert!(
                found.contains(&(RESET_BY_MACHINE.to_owned(), Level::High)),
                "{initiator:?}: {found:?}"
            );
            let one = enriched(samples::mfa_factor_deactivate(bob, "SMS", initiator, "t"));
            assert!(
                titles(&rules, &one).contains(&(RESET_BY_MACHINE.to_owned(), Level::High)),
                "{initiator:?}"
            );
        }
        for initiator in [Initiator::Admin, Initiator::SelfService] {
            let reset_all = enriched(samples::mfa_factor_reset_all(bob, initiator));
            assert_eq!(
                titles(&rules, &reset_all),
                [("Okta All MFA Factors Reset".to_owned(), Level::Medium)],
                "{initiator:?}"
            );
        }
    }

    #[test]
    fn a_policy_rule_downgraded_to_one_factor_alerts_and_a_stronger_one_does_not() {
        let rules = builtin();
        let to_one_factor = enriched(policy_rule_change(
            json!({"factorMode": "2FA", "reauthenticateIn": "PT2H"}),
            json!({"factorMode": "1FA", "reauthenticateIn": "PT2H"}),
        ));
        assert_eq!(
            titles(&rules, &to_one_factor),
            [(DOWNGRADED.to_owned(), Level::High)]
        );
        let classic = enriched(policy_rule_change(
            json!({"requireFactor": true, "factorPromptMode": "SESSION"}),
            json!({"requireFactor": false}),
        ));
        assert_eq!(titles(&rules, &classic).len(), 1, "{classic}");
        for (from, to) in [
            (json!({"factorMode": "1FA"}), json!({"factorMode": "2FA"})),
            (
                json!({"requireFactor": false}),
                json!({"requireFactor": true}),
            ),
            (
                json!({"reauthenticateIn": "PT2H"}),
                json!({"reauthenticateIn": "PT12H"}),
            ),
        ] {
            let near = enriched(policy_rule_change(from, to));
            assert!(rules.matching(&near).is_empty(), "{near}");
        }
    }

    #[test]
    fn policies_turned_off_impersonation_and_user_reports_alert_and_their_near_misses_do_not() {
        let rules = builtin();
        let policy = || {
            vec![samples::target_entity(
                "rst3kq1acsPlcy0a51d7",
                "PolicyEntity",
                "unknown",
                "MFA for everyone",
            )]
        };
        for event_type in [
            "policy.lifecycle.deactivate",
            "policy.lifecycle.delete",
            "policy.rule.deactivate",
            "policy.rule.delete",
        ] {
            let event = enriched(samples::admin_event(
                event_type,
                "Deactivate policy",
                policy(),
            ));
            assert_eq!(
                titles(&rules, &event),
                [(POLICY_OFF.to_owned(), Level::Medium)],
                "{event_type}"
            );
        }
        let carol = &samples::users()[2];
        for event_type in [
            "user.session.impersonation.grant",
            "user.session.impersonation.initiate",
            "user.session.impersonation.extend",
        ] {
            let event = enriched(samples::user_event(
                event_type,
                "Grant impersonation",
                carol,
                Initiator::OktaSupport,
                Vec::new(),
            ));
            assert_eq!(
                titles(&rules, &event),
                [(IMPERSONATION.to_owned(), Level::High)],
                "{event_type}"
            );
        }
        let report = enriched(samples::user_event(
            "user.account.report_suspicious_activity_by_enduser",
            "User report suspicious activity",
            carol,
            Initiator::SelfService,
            Vec::new(),
        ));
        assert_eq!(
            titles(&rules, &report),
            [(REPORTED.to_owned(), Level::High)]
        );
        for near in [
            "policy.lifecycle.activate",
            "policy.rule.activate",
            "user.session.impersonation.end",
            "user.session.impersonation.revoke",
            "user.account.update_profile",
        ] {
            let event = enriched(samples::admin_event(near, "near miss", policy()));
            assert!(rules.matching(&event).is_empty(), "{near}");
        }
    }

    const USER_RISK: &str = "Okta High User Risk Detected";
    const FASTPASS: &str = "Okta FastPass Declined a Phishing Attempt";

    /// `user.risk.detect` for `users[2]` as Identity Threat Protection writes it: Okta itself
    /// is the actor and the risk is one string in `debugData`.
    fn user_risk_event(risk: &str) -> Value {
        let mut event = enriched(samples::user_event(
            "user.risk.detect",
            "User risk detected",
            &samples::users()[2],
            Initiator::SelfService,
            Vec::new(),
        ));
        event["actor"] = json!({"id": "0oa1okta0SystemPr1nc", "type": "SystemPrincipal",
            "alternateId": "system@okta.com", "displayName": "Okta System"});
        event["debugContext"]["debugData"]["risk"] = json!(risk);
        event
    }

    /// A user's `user.authentication.auth_via_mfa` with `result` and `reason`.
    fn mfa_attempt(result: &str, reason: &str) -> Value {
        let mut event = enriched(samples::user_event(
            "user.authentication.auth_via_mfa",
            "Authentication of user via MFA",
            &samples::users()[1],
            Initiator::SelfService,
            Vec::new(),
        ));
        event["outcome"] = json!({"result": result, "reason": reason});
        event
    }

    #[test]
    fn a_high_user_risk_and_fastpass_declining_phishing_alert_and_near_misses_do_not() {
        let rules = builtin();
        let hijack = user_risk_event(
            "{previousLevel=LOW, level=HIGH, detectionName=Session Influenced User Risk, \
             reasons=Session hijacking detected, issuer=OKTA_AI}",
        );
        assert_eq!(
            titles(&rules, &hijack),
            [(USER_RISK.to_owned(), Level::High)]
        );
        let medium = user_risk_event(
            "{previousLevel=LOW, level=MEDIUM, detectionName=Entity Risk, \
             reasons=Anomalous location, issuer=OKTA_AI}",
        );
        assert!(rules.matching(&medium).is_empty(), "a medium risk");
        let mut other_type = hijack.clone();
        other_type["eventType"] = json!("user.risk.change");
        assert!(rules.matching(&other_type).is_empty(), "user.risk.change");

        let phished = mfa_attempt("FAILURE", "FastPass declined phishing attempt");
        assert_eq!(
            titles(&rules, &phished),
            [(FASTPASS.to_owned(), Level::High)]
        );
        for (result, reason) in [
            ("FAILURE", "INVALID_CREDENTIALS"),
            ("SUCCESS", "FastPass declined phishing attempt"),
        ] {
            let near = mfa_attempt(result, reason);
            assert!(rules.matching(&near).is_empty(), "{result} {reason}");
        }
    }

    /// `event_type` by the sample admin on an identity provider, with `result`.
    fn idp_event(event_type: &str, result: &str) -> Value {
        let idp = samples::target_entity(
            "0oa7idpAttackr0001d7",
            "IdentityProvider",
            "unknown",
            "Partner SSO",
        );
        let mut event = enriched(samples::admin_event(event_type, "IdP", vec![idp]));
        event["outcome"]["result"] = json!(result);
        event
    }

    #[test]
    fn an_identity_provider_created_or_activated_alerts_and_a_failure_or_an_update_do_not() {
        let rules = builtin();
        let title = "Okta Identity Provider Created or Activated";
        for event_type in [
            "system.idp.lifecycle.create",
            "system.idp.lifecycle.activate",
        ] {
            assert_eq!(
                titles(&rules, &idp_event(event_type, "SUCCESS")),
                [(title.to_owned(), Level::High)],
                "{event_type}"
            );
        }
        let failed = idp_event("system.idp.lifecycle.create", "FAILURE");
        assert!(rules.matching(&failed).is_empty(), "a failed create");
        for near in [
            "system.idp.lifecycle.update",
            "system.idp.lifecycle.deactivate",
        ] {
            assert!(
                rules.matching(&idp_event(near, "SUCCESS")).is_empty(),
                "{near}"
            );
        }
    }

    #[test]
    fn log_streams_created_activated_changed_or_removed_alert_and_an_idp_change_does_not() {
        let rules = builtin();
        let stream = || {
            vec![samples::target_entity(
                "0oa1logstream0ab1d7",
                "LogStream",
                "unknown",
                "Splunk Cloud",
            )]
        };
        let title = "Okta Log Stream Created, Activated, Changed, Deactivated or Deleted";
        for verb in ["create", "activate", "update", "deactivate", "delete"] {
            let event_type = format!("system.log_stream.lifecycle.{verb}");
            let event = enriched(samples::admin_event(&event_type, "Log stream", stream()));
            assert_eq!(
                titles(&rules, &event),
                [(title.to_owned(), Level::High)],
                "{event_type}"
            );
        }
        let read = enriched(samples::admin_event(
            "system.idp.lifecycle.update",
            "Log stream",
            stream(),
        ));
        assert!(rules.matching(&read).is_empty());
    }

    #[test]
    fn the_daily_cap_rule_matches_org_rate_limit_warnings_and_violations() {
        let rules = builtin();
        let warning = crate::okta::samples::event_hook_cap_warning(280_512);
        let cap = "Okta Org Rate Limit Warning or Violation (Event Hook Daily Cap)";
        assert_eq!(titles(&rules, &warning), [(cap.to_owned(), Level::High)]);
        let mut violation = warning.clone();
        violation["eventType"] = json!("system.org.rate_limit.violation");
        assert_eq!(titles(&rules, &violation).len(), 1);
        for near in [
            "system.org.rate_limit.burst",
            "system.operation.rate_limit.warning",
            "system.client.rate_limit.violation",
        ] {
            let mut event = warning.clone();
            event["eventType"] = json!(near);
            assert!(rules.matching(&event).is_empty(), "{near}");
        }
    }

    #[test]
    fn builtin_rules_ask_the_system_log_only_for_their_event_types() {
        let filter = builtin()
            .event_types()
            .system_log_filter()
            .expect("bounded");
        for event_type in [
            "user.mfa.factor.deactivate",
            "user.mfa.factor.reset_all",
            "system.mfa.factor.deactivate",
            "user.account.reset_password",
            "user.session.start",
            "event_hook.deactivated",
            "event_hook.created",
            "system.org.rate_limit.warning",
            "system.org.rate_limit.violation",
            "system.log_stream.lifecycle.delete",
        ] {
            assert!(
                filter.contains(&format!("\"{event_type}\"")),
                "{event_type} in {filter}"
            );
        }
    }

    #[test]
    fn dispatching_on_the_event_type_finds_what_one_engine_finds() {
        // The built-in pack and the SigmaHQ-style folder (prefixes, lists, rules that pin no
        // type): every event, odd types included, matches the same rules in the same order as
        // when one engine holds them all.
        let sigmahq = RulesConfig {
            paths: vec![concat!(env!("CARGO_MANIFEST_DIR"), "/tests/rules/sigmahq_style").into()],
            placeholders: [(
                "helpdesk_accounts".into(),
                vec!["helpdesk@example.com".into()],
            )]
            .into(),
            ..RulesConfig::default()
        };
        let mut rng = <rand::rngs::StdRng as rand::SeedableRng>::seed_from_u64(5);
        let mut events = crate::okta::samples::mixed_batch(&mut rng, 3_000);
        let odd_types = [
            json!("USER.MFA.FACTOR.DEACTIVATE"),
            json!("event_hook.deleted"),
            json!("Event_Hook.Deactivated"),
            json!(["user.mfa.factor.deactivate"]),
            json!(null),
            json!(42),
        ];
        for event_type in odd_types {
            events.push(json!({"eventType": event_type, "actor": {"type": "User"},
                "outcome": {"result": "SUCCESS"}, "target": [{"type": "User"}]}));
        }
        events.push(json!({"actor": {"alternateId": "helpdesk@example.com"}}));
        events.push(json!("not an object"));
        let names = |results: Vec<EvaluationResult>| -> Vec<String> {
            results.into_iter().map(|r| r.header.rule_title).collect()
        };
        // Events of a type no rule pins are skipped only where no rule could have matched them.
        let mut skippable = Vec::new();
        for rules in [builtin(), RuleSet::load(&sigmahq).unwrap()] {
            let (mut matched, mut skipped) = (0, 0);
            for event in &events {
                let dispatched = names(rules.detect(event));
                let undispatched = names(rules.dispatch.evaluate_undispatched(event));
                assert_eq!(dispatched, undispatched, "{event}");
                matched += usize::from(!dispatched.is_empty());
                let event_type = event.get("eventType").and_then(Value::as_str);
                if !rules.can_match(event_type) {
                    assert!(undispatched.is_empty(), "{event} matched {undispatched:?}");
                    skipped += 1;
                }
            }
            assert!(matched > 100, "only {matched} events matched any rule");
            skippable.push(skipped);
        }
        // The built-in pack pins a type in every rule: the everyday sign-ons, sign-outs and
        // policy evaluations of the mix are skipped. The SigmaHQ-style folder has rules that pin
        // no type, which every event meets: nothing is skipped.
        assert!(
            skippable[0] > 1_000,
            "built-in pack skipped {}",
            skippable[0]
        );
        assert_eq!(skippable[1], 0);
    }

    #[test]
    fn both_field_probes_find_the_same_matches() {
        // The SigmaHQ-style folder tests many shapes (cidr, lists, nested fields, `|all`,
        // placeholders): any event one probe would skip and the other evaluate shows here.
        let config = RulesConfig {
            paths: vec![concat!(env!("CARGO_MANIFEST_DIR"), "/tests/rules/sigmahq_style").into()],
            placeholders: [(
                "helpdesk_accounts".into(),
                vec!["helpdesk@example.com".into()],
            )]
            .into(),
            ..RulesConfig::default()
        };
        let rules = RuleSet::load(&config).unwrap();
        let mut rng = <rand::rngs::StdRng as rand::SeedableRng>::seed_from_u64(11);
        let mut events = crate::okta::samples::mixed_batch(&mut rng, 2_000);
        events.push(json!({"eventType": "user.mfa.factor.deactivate"}));
        events.push(json!("not an object"));
        // Every detection, correlation inputs included: the probe picks what the engine evaluates.
        let ids = |event: &Value, probe| -> Vec<String> {
            let mut ids: Vec<_> = rules
                .dispatch
                .evaluate(event, Some(probe))
                .iter()
                .map(|result| format!("{:?}/{}", result.header.rule_id, result.header.rule_title))
                .collect();
            ids.sort();
            ids
        };
        let mut matched = 0;
        for event in &events {
            let by_field = ids(event, FieldProbe::ByRuleField);
            assert_eq!(by_field, ids(event, FieldProbe::ByEventKey), "{event}");
            matched += usize::from(!by_field.is_empty());
        }
        assert!(matched > 100, "only {matched} events matched any rule");
    }

    fn one_rule(detection: &str) -> RuleSet {
        let yaml = format!(
            "title: t\nid: t-1\nlogsource: {{product: okta, service: okta}}\ndetection:\n{detection}\nlevel: high\n"
        );
        RuleSet::from_sources(&[("test.yml".into(), yaml)]).unwrap()
    }

    #[test]
    fn lower_case_field_names_of_published_rules_resolve() {
        let rules = one_rule(
            "  selection:\n    eventtype: user.mfa.factor.deactivate\n    actor.alternateid|endswith: '@example.com'\n    securitycontext.isproxy: 'true'\n  condition: selection",
        );
        let event = json!({"eventType": "user.mfa.factor.deactivate",
            "actor": {"alternateId": "dana@example.com"}, "securityContext": {"isProxy": true}});
        assert_eq!(rules.matching(&event).len(), 1, "'true' matches JSON true");
        let not_proxy = json!({"eventType": "user.mfa.factor.deactivate",
            "actor": {"alternateId": "dana@example.com"}, "securityContext": {"isProxy": false}});
        assert!(rules.matching(&not_proxy).is_empty());
    }

    #[test]
    fn arrays_match_on_any_element_and_values_ignore_case() {
        let rules = one_rule(
            "  selection:\n    target.displayname: 'security key or biometric'\n  condition: selection",
        );
        let event = json!({"target": [{"displayName": "Alice"}, {"displayName": "Security Key or Biometric"}]});
        assert_eq!(rules.matching(&event).len(), 1);
    }

    #[test]
    fn null_matches_null_or_missing() {
        let rules = one_rule(
            "  selection:\n    client.useragent.rawuseragent: null\n  condition: selection",
        );
        assert_eq!(
            rules
                .matching(&json!({"client": {"userAgent": null}}))
                .len(),
            1
        );
        assert_eq!(rules.matching(&json!({"client": {}})).len(), 1);
        assert!(
            rules
                .matching(&json!({"client": {"userAgent": {"rawUserAgent": "x"}}}))
                .is_empty()
        );
    }

    #[test]
    fn unsupported_rules_are_refused_not_ignored() {
        let windows = "title: W\nlogsource: {product: windows}\ndetection:\n  sel: {a: b}\n  condition: sel\n";
        let err = format!(
            "{:#}",
            RuleSet::from_sources(&[("w.yml".into(), windows.into())]).unwrap_err()
        );
        assert!(err.contains("w.yml") && err.contains("windows"), "{err}");
        let correlation = format!(
            "{}\n---\ntitle: Many\ncorrelation:\n  type: event_count\n  rules: [no_such_rule]\n  group-by: [actor.alternateId]\n  timespan: 1h\n  condition: {{gte: 3}}\nlevel: high\n",
            BUILTIN_RULES[0].1
        );
        let err = format!(
            "{:#}",
            RuleSet::from_sources(&[("c.yml".into(), correlation)]).unwrap_err()
        );
        assert!(
            err.contains("c.yml") && err.contains("\"no_such_rule\", which is not loaded"),
            "{err}"
        );
    }

    #[test]
    fn expanded_placeholders_keep_the_other_modifiers() {
        let yaml = "title: t\nid: t-1\nlogsource: {product: okta}\ndetection:\n  office:\n    client.ipaddress|cidr|expand: '%office%'\n  condition: office\n";
        let placeholders = BTreeMap::from([(
            "office".to_string(),
            vec!["10.0.0.0/8".to_string(), "192.0.2.0/24".to_string()],
        )]);
        let rules = RuleSet::build(&[("o.yml".into(), yaml.into())], &placeholders).unwrap();
        let from = |ip: &str| json!({"client": {"ipAddress": ip}});
        assert_eq!(rules.matching(&from("192.0.2.77")).len(), 1);
        assert_eq!(rules.matching(&from("10.9.9.9")).len(), 1);
        assert!(rules.matching(&from("198.51.100.1")).is_empty());
    }

    #[test]
    fn a_broken_rule_fails_the_whole_set_naming_its_file() {
        let sources = vec![
            (
                "good.yml".to_string(),
                BUILTIN_RULES[0].1.to_string(),
            ),
            (
                "broken.yml".to_string(),
                "title: x\nlogsource: {product: okta}\ndetection:\n  sel: {a: b}\n  condition: sel and\n".to_string(),
            ),
        ];
        let err = format!("{:#}", RuleSet::from_sources(&sources).unwrap_err());
        assert!(err.starts_with("rule file broken.yml, line 5: "), "{err}");
        let unknown_modifier = "title: m\nlogsource: {product: okta}\ndetection:\n  sel:\n    eventType|nosuch: a\n  condition: sel\n";
        let err = format!(
            "{:#}",
            RuleSet::from_sources(&[("m.yml".into(), unknown_modifier.into())]).unwrap_err()
        );
        assert!(err.starts_with("rule file m.yml, line 5: "), "{err}");
    }
}
