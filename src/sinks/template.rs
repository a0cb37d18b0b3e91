//! Destination names (subjects, streams, topics, routing keys, queues) that depend on the alert:
//! `alerts.{level}`, `factorwatch-{rule_id}` or `alerts.{org}`. Placeholders are checked when the configuration
//! loads, so a typo fails `check-config` instead of the first delivery.

use serde::{Deserialize, Serialize};

use crate::alert::Alert;

/// The placeholders a template may use.
const PLACEHOLDERS: &[&str] = &["rule_id", "level", "org"];

/// What `{org}` becomes on alerts of the top-level org, which have no `[[okta.orgs]]` name.
pub const DEFAULT_ORG: &str = "default";

/// A destination name with optional `{rule_id}`, `{level}` and `{org}` placeholders.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct NameTemplate(String);

/// Why a destination name is not a valid template.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TemplateError {
    /// The name is empty.
    #[error("a destination name cannot be empty")]
    Empty,
    /// A `{` has no `}`.
    #[error("{0:?}: unclosed '{{'")]
    Unclosed(String),
    /// A placeholder other than `{rule_id}`, `{level}` and `{org}`.
    #[error("{text:?}: unknown placeholder {{{name}}}; use {{rule_id}}, {{level}} or {{org}}")]
    UnknownPlaceholder {
        /// The whole name.
        text: String,
        /// The placeholder, without braces.
        name: String,
    },
}

impl TryFrom<String> for NameTemplate {
    type Error = TemplateError;

    fn try_from(text: String) -> Result<Self, Self::Error> {
        if text.is_empty() {
            return Err(TemplateError::Empty);
        }
        let mut rest = text.as_str();
        while let Some(open) = rest.find('{') {
            let after = &rest[open + 1..];
            let close = after
                .find('}')
                .ok_or_else(|| TemplateError::Unclosed(text.clone()))?;
            let name = &after[..close];
            if !PLACEHOLDERS.contains(&name) {
                return Err(TemplateError::UnknownPlaceholder {
                    name: name.to_owned(),
                    text: text.clone(),
                });
            }
            rest = &after[close + 1..];
        }
        Ok(Self(text))
    }
}

impl From<NameTemplate> for String {
    fn from(template: NameTemplate) -> Self {
        template.0
    }
}

impl NameTemplate {
    /// A template from a literal known to be valid.
    pub fn new(text: &str) -> Self {
        Self::parse(text).expect("a valid template")
    }

    /// Checks `text`; the error says which placeholder is unknown or which brace is unclosed.
    pub fn parse(text: &str) -> Result<Self, TemplateError> {
        Self::try_from(text.to_owned())
    }

    /// The template as written.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// True when the name has no placeholder: every alert goes to the same place.
    pub fn is_static(&self) -> bool {
        !PLACEHOLDERS
            .iter()
            .any(|p| self.0.contains(&format!("{{{p}}}")))
    }

    /// The name for `alert`. The values are reduced to `[A-Za-z0-9_-]` (other characters become
    /// `_`) so they are safe in any broker's names.
    pub fn render(&self, alert: &Alert) -> String {
        self.render_with(alert, safe_value)
    }

    /// The name for `alert`, with `clean` adapting the substituted values to a destination's rules.
    pub fn render_with(&self, alert: &Alert, clean: impl Fn(&str) -> String) -> String {
        self.0
            .replace("{rule_id}", &clean(&alert.rule.id))
            .replace("{level}", &clean(alert.level.as_str()))
            .replace("{org}", &clean(alert.org.as_deref().unwrap_or(DEFAULT_ORG)))
    }
}

/// `value` reduced to `[A-Za-z0-9_-]`: every other character becomes `_`.
pub fn safe_value(value: &str) -> String {
    value
        .chars()
        .map(|c| match c {
            'a'..='z' | 'A'..='Z' | '0'..='9' | '-' | '_' => c,
            _ => '_',
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rejects_unknown_placeholders() {
        assert!(
            NameTemplate::try_from("alerts.{levle}".to_owned())
                .unwrap_err()
                .to_string()
                .contains("levle")
        );
        assert!(NameTemplate::try_from("alerts.{level".to_owned()).is_err());
        assert!(NameTemplate::try_from(String::new()).is_err());
        assert!(NameTemplate::try_from("plain".to_owned()).is_ok());
    }

    #[test]
    fn renders_level_and_a_safe_rule_id() {
        let mut alert = Alert::test_alert();
        alert.rule.id = "My rule/1".into();
        alert.level = crate::alert::Level::High;
        let template = NameTemplate::new("factorwatch.{level}.{rule_id}");
        assert!(!template.is_static());
        assert_eq!(template.render(&alert), "factorwatch.high.My_rule_1");
        assert_eq!(
            template.render_with(&alert, str::to_owned),
            "factorwatch.high.My rule/1"
        );
        assert!(NameTemplate::new("alerts").is_static());
    }

    #[test]
    fn renders_the_org_or_default() {
        let mut alert = Alert::test_alert();
        let template = NameTemplate::new("alerts.{org}");
        assert!(!template.is_static());
        assert_eq!(template.render(&alert), "alerts.default");
        alert.org = Some("acme".into());
        assert_eq!(template.render(&alert), "alerts.acme");
    }
}
