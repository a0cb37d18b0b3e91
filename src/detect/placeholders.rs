//! `|expand` placeholders (`%office_networks%`), filled from `[rules.placeholders]` at load.
//!
//! Published Sigma rules leave site-specific values (your office networks, your admin accounts)
//! as placeholders for the deployment to fill. factorwatch fills them from the configuration
//! once, when rules load: each value holding `%name%` becomes one value per configured entry
//! and the `expand` modifier goes, so evaluation is an ordinary match. A placeholder the
//! configuration does not define fails the load: a rule half-filled would silently match
//! nothing (or, under `not`, everything). rsigma's `value_placeholders` pipeline step fills
//! values too, but leaves an unknown placeholder in place and treats any `%` outside `|expand`
//! as one, which is why this small step is ours.
//!
//! Two placeholders name this deployment itself, for the rules that guard factorwatch's own hook:
//! [`HOOK_NAMES`] and [`API_CLIENTS`]. The configuration fills them for each org (from its
//! `hook_name` and its `[okta.api]` `client_id`) unless `[rules.placeholders]` defines them, and
//! without any configuration they take built-in defaults ([`DEFAULT_HOOK_NAME`],
//! [`NO_API_CLIENT`]), so that the built-in rules load anywhere, `factorwatch rules check` on a
//! bare rules folder included.

use std::collections::BTreeMap;

use anyhow::bail;
use rsigma_parser::{DetectionItem, Modifier, SigmaRule, SigmaString, SigmaValue};

use super::fields;

/// `%factorwatch_hook_names%`: the names of this deployment's event hooks in Okta.
pub const HOOK_NAMES: &str = "factorwatch_hook_names";
/// `%factorwatch_api_clients%`: the client ids factorwatch itself calls Okta's API as, whose
/// changes to its own hook are not tampering.
pub const API_CLIENTS: &str = "factorwatch_api_clients";
/// The name of the top-level org's event hook when `[okta] hook_name` is unset.
pub const DEFAULT_HOOK_NAME: &str = "factorwatch";
/// The value of [`API_CLIENTS`] when factorwatch has no OAuth client: no actor id can equal it,
/// since Okta's ids are letters and digits only.
pub const NO_API_CLIENT: &str = "(no OAuth client_id in [okta.api])";
/// The values of the deployment placeholders when nothing else defines them.
const DEPLOYMENT_DEFAULTS: [(&str, &str); 2] = [
    (HOOK_NAMES, DEFAULT_HOOK_NAME),
    (API_CLIENTS, NO_API_CLIENT),
];

/// `text` as a placeholder value that matches only itself: Sigma's wildcards (`*`, `?`) and its
/// escape character (`\`) escaped. For values taken from the configuration (a hook name, a
/// client id) rather than written as Sigma values by the user.
pub fn literal(text: &str) -> String {
    let mut escaped = String::with_capacity(text.len());
    for c in text.chars() {
        if matches!(c, '*' | '?' | '\\') {
            escaped.push('\\');
        }
        escaped.push(c);
    }
    escaped
}

/// Fills every `|expand` value of `rule` from `values`. The error names the first placeholder
/// that has none, and the line of `yaml` (the rule's file) where it is written.
pub fn expand(
    rule: &mut SigmaRule,
    values: &BTreeMap<String, Vec<String>>,
    yaml: &str,
) -> anyhow::Result<()> {
    let values = with_deployment_defaults(values);
    let mut missing: Option<Undefined> = None;
    fields::for_each_item(rule, &mut |item| {
        if missing.is_none() && item.field.has_modifier(Modifier::Expand) {
            missing = expand_item(item, &values).err();
        }
    });
    let Some(Undefined(name)) = missing else {
        return Ok(());
    };
    let token = format!("%{name}%");
    let line = yaml
        .lines()
        .position(|line| line.contains(&token))
        .map_or(String::new(), |at| format!("line {}: ", at + 1));
    bail!(
        "{line}rule {:?} uses placeholder {token}, which [rules.placeholders] does not define; \
         add `{name} = [\"...\"]` there",
        rule.title
    )
}

/// `values`, and [`DEPLOYMENT_DEFAULTS`] for the deployment placeholders it does not define.
fn with_deployment_defaults(
    values: &BTreeMap<String, Vec<String>>,
) -> BTreeMap<String, Vec<String>> {
    let mut all = values.clone();
    for (name, value) in DEPLOYMENT_DEFAULTS {
        all.entry(name.to_owned())
            .or_insert_with(|| vec![value.to_owned()]);
    }
    all
}

/// A placeholder `[rules.placeholders]` does not define: its name, without `%`.
#[derive(Debug, PartialEq, Eq)]
struct Undefined(String);

/// Expands one item's values in place; fails on an undefined placeholder.
fn expand_item(
    item: &mut DetectionItem,
    values: &BTreeMap<String, Vec<String>>,
) -> Result<(), Undefined> {
    let mut expanded = Vec::with_capacity(item.values.len());
    for value in item.values.drain(..) {
        match &value {
            SigmaValue::String(text) => {
                for filled in fill(&text.original, values)? {
                    expanded.push(SigmaValue::String(SigmaString::new(&filled)));
                }
            }
            _ => expanded.push(value),
        }
    }
    item.values = expanded;
    item.field.modifiers.retain(|m| *m != Modifier::Expand);
    Ok(())
}

/// Every string `text` stands for: one per combination of its placeholders' values.
fn fill(text: &str, values: &BTreeMap<String, Vec<String>>) -> Result<Vec<String>, Undefined> {
    let Some(start) = text.find('%') else {
        return Ok(vec![text.to_owned()]);
    };
    let Some(length) = text[start + 1..].find('%') else {
        return Ok(vec![text.to_owned()]);
    };
    let name = &text[start + 1..start + 1 + length];
    let rest = &text[start + 2 + length..];
    let choices = values.get(name).ok_or_else(|| Undefined(name.to_owned()))?;
    let tails = fill(rest, values)?;
    Ok(choices
        .iter()
        .flat_map(|choice| {
            tails
                .iter()
                .map(move |tail| format!("{}{choice}{tail}", &text[..start]))
        })
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn values() -> BTreeMap<String, Vec<String>> {
        BTreeMap::from([
            (
                "office".into(),
                vec!["10.0.0.0/8".into(), "192.0.2.0/24".into()],
            ),
            ("domain".into(), vec!["example.com".into()]),
        ])
    }

    #[test]
    fn each_placeholder_becomes_each_of_its_values() {
        assert_eq!(
            fill("%office%", &values()).unwrap(),
            ["10.0.0.0/8", "192.0.2.0/24"]
        );
        assert_eq!(
            fill("admin@%domain%", &values()).unwrap(),
            ["admin@example.com"]
        );
        assert_eq!(fill("50%", &values()).unwrap(), ["50%"]);
    }

    #[test]
    fn an_undefined_placeholder_is_named() {
        assert_eq!(
            fill("%vpn%", &values()).unwrap_err(),
            Undefined("vpn".into())
        );
    }

    #[test]
    fn literal_values_escape_sigma_wildcards() {
        assert_eq!(literal("factorwatch-acme"), "factorwatch-acme");
        assert_eq!(literal(r"a*b?c\d"), r"a\*b\?c\\d");
        let parsed = SigmaString::new(&literal("hook *"));
        assert!(!parsed.contains_wildcards(), "{parsed:?}");
    }
}
