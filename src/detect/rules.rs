//! Loading Sigma rules (through `rsigma-parser`) and evaluating them (through `rsigma-eval`).
//!
//! Loading is all or nothing: one rule that fails to parse or compile fails the whole set with the
//! file and the reason, so a service never runs with half its detections.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, RwLock};

use anyhow::{Context, bail};
use rsigma_eval::Engine;
use rsigma_eval::event::JsonEvent;
use rsigma_parser::{Level as SigmaLevel, SigmaRule};
use serde_json::Value;

use super::fields;
use crate::alert::{Level, RuleRef};
use crate::config::RulesConfig;

/// The rules shipped inside the binary, as (name, YAML).
pub const BUILTIN_RULES: &[(&str, &str)] = &[
    (
        "builtin:rules/mfa_factor_deactivated.yml",
        include_str!("../../rules/mfa_factor_deactivated.yml"),
    ),
    (
        "builtin:rules/mfa_factors_reset_all.yml",
        include_str!("../../rules/mfa_factors_reset_all.yml"),
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

/// A compiled set of detection rules.
pub struct RuleSet {
    engine: Engine,
    rules: HashMap<String, RuleRef>,
    described: Vec<RuleDescription>,
}

/// What `rules check` shows of one loaded rule.
#[derive(Debug, Clone)]
pub struct RuleDescription {
    /// The rule as alerts name it.
    pub rule: RuleRef,
    /// The file it came from.
    pub origin: String,
    /// The Okta fields it tests (after lower-case names were resolved).
    pub fields: Vec<String>,
}

impl std::fmt::Debug for RuleSet {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RuleSet")
            .field("rules", &self.rules.len())
            .field(
                "files",
                &self.described.iter().map(|d| &d.origin).collect::<Vec<_>>(),
            )
            .finish()
    }
}

impl RuleSet {
    /// Loads the built-in rules (unless disabled) and every file or folder in `config.paths`.
    pub fn load(config: &RulesConfig) -> anyhow::Result<Self> {
        let mut sources: Vec<(String, String)> = Vec::new();
        if config.builtin {
            sources.extend(
                BUILTIN_RULES
                    .iter()
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
        Self::from_sources(&sources)
    }

    /// Compiles rules from (origin, YAML) pairs; the origin names the rule in errors.
    pub fn from_sources(sources: &[(String, String)]) -> anyhow::Result<Self> {
        let mut engine = Engine::new();
        let mut rules: HashMap<String, RuleRef> = HashMap::new();
        let mut described = Vec::new();
        for (origin, yaml) in sources {
            let collection = rsigma_parser::parse_sigma_yaml(yaml)
                .with_context(|| format!("rule file {origin}: cannot parse"))?;
            if let Some(error) = collection.errors.first() {
                bail!("rule file {origin}: {error}");
            }
            // Refuse what would otherwise be silently ignored or silently wrong.
            if let Some(correlation) = collection.correlations.first() {
                bail!(
                    "rule file {origin}: correlation rule {:?} is not supported yet; remove it or \
                     move it to a file factorwatch does not load",
                    correlation.title
                );
            }
            if let Some(filter) = collection.filters.first() {
                bail!(
                    "rule file {origin}: filter rule {:?} is not supported yet",
                    filter.title
                );
            }
            for rule in &collection.rules {
                if let Some(product) = &rule.logsource.product
                    && !product.eq_ignore_ascii_case("okta")
                {
                    bail!(
                        "rule file {origin}: rule {:?} is for logsource product {product:?}; \
                         factorwatch runs rules for product okta",
                        rule.title
                    );
                }
                let mut rule = rule.clone();
                fields::canonicalize_rule(&mut rule);
                let rule = &rule;
                let reference = rule_ref(rule);
                if rules.contains_key(&reference.id) {
                    bail!(
                        "rule file {origin}: rule id {} is defined twice",
                        reference.id
                    );
                }
                engine
                    .add_rule(rule)
                    .with_context(|| format!("rule file {origin}: rule {:?}", rule.title))?;
                described.push(RuleDescription {
                    rule: reference.clone(),
                    origin: origin.clone(),
                    fields: fields::field_names(rule),
                });
                rules.insert(reference.id.clone(), reference);
            }
        }
        if rules.is_empty() {
            bail!(
                "no detection rules loaded: enable [rules] builtin or list rule files in [rules] paths"
            );
        }
        Ok(Self {
            engine,
            rules,
            described,
        })
    }

    /// Number of detection rules.
    pub fn len(&self) -> usize {
        self.rules.len()
    }

    /// True when no rule is loaded (never the case for a set built by [`RuleSet::load`]).
    pub fn is_empty(&self) -> bool {
        self.rules.is_empty()
    }

    /// Every rule in load order, with its file and the fields it tests.
    pub fn describe(&self) -> &[RuleDescription] {
        &self.described
    }

    /// The rules that match `event`.
    pub fn matching(&self, event: &Value) -> Vec<&RuleRef> {
        self.engine
            .evaluate(&JsonEvent::borrow(event))
            .iter()
            .filter_map(|result| {
                let header = &result.header;
                let key = header.rule_id.as_deref().unwrap_or(&header.rule_title);
                self.rules.get(key)
            })
            .collect()
    }
}

/// The alert's view of a rule; a rule without `id` is identified by its title.
fn rule_ref(rule: &SigmaRule) -> RuleRef {
    RuleRef {
        id: rule.id.clone().unwrap_or_else(|| rule.title.clone()),
        title: rule.title.clone(),
        level: rule
            .level
            .as_ref()
            .map_or(Level::Medium, |level| match level {
                SigmaLevel::Informational => Level::Informational,
                SigmaLevel::Low => Level::Low,
                SigmaLevel::Medium => Level::Medium,
                SigmaLevel::High => Level::High,
                SigmaLevel::Critical => Level::Critical,
            }),
        author: rule.author.clone(),
        tags: rule.tags.clone(),
        references: rule.references.clone(),
        falsepositives: rule.falsepositives.clone(),
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
    use super::*;
    use serde_json::json;

    fn builtin() -> RuleSet {
        RuleSet::load(&RulesConfig::default()).unwrap()
    }

    #[test]
    fn builtin_rules_load_with_their_metadata() {
        let rules = builtin();
        assert_eq!(rules.len(), 2);
        for rule in rules.describe().iter().map(|d| &d.rule) {
            assert_eq!(rule.level, Level::Medium);
            assert!(rule.author.is_some());
        }
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
            "{}\n---\ntitle: Many\ncorrelation:\n  type: event_count\n  rules: [6f1e2b9c-3a0d-4e57-9a61-2d4c8b7f0a11]\n  group-by: [actor.alternateId]\n  timespan: 1h\n  condition: {{gte: 3}}\nlevel: high\n",
            BUILTIN_RULES[0].1
        );
        let err = format!(
            "{:#}",
            RuleSet::from_sources(&[("c.yml".into(), correlation)]).unwrap_err()
        );
        assert!(
            err.contains("correlation rule") && err.contains("not supported yet"),
            "{err}"
        );
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
        assert!(err.contains("broken.yml"), "{err}");
    }
}
