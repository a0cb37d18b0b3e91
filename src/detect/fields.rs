//! Field names in rules resolve to Okta's JSON paths whatever their case.
//!
//! Okta's LogEvent is camelCase (`eventType`, `actor.alternateId`), but older published Sigma
//! rules for Okta (SigmaHQ's among them) write the same fields in lower case (`eventtype`,
//! `actor.alternateid`, `securitycontext.isproxy`). Rather than look fields up case-insensitively
//! for every event, each rule's field names are rewritten once, at load: every all-lower-case path
//! segment that names a LogEvent property is replaced by Okta's spelling. Rules keep working
//! unchanged and evaluation stays an exact, fast lookup.

use rsigma_parser::{
    CorrelationCondition, CorrelationRule, Detection, DetectionItem, FieldSpec, Modifier,
    SigmaRule, SigmaValue,
};

/// Every LogEvent property name with a capital letter (from Okta's LogEvent schema, plus the
/// `debugData` keys rules commonly use). Lower-case names need no mapping.
const CAMEL_CASE_SEGMENTS: &[&str] = &[
    "alternateId",
    "asNumber",
    "asOrg",
    "authenticationContext",
    "authenticationProvider",
    "authenticationStep",
    "botProtection",
    "changeDetails",
    "credentialProvider",
    "credentialType",
    "debugContext",
    "debugData",
    "detailEntry",
    "detectionName",
    "displayMessage",
    "displayName",
    "eventType",
    "externalSessionId",
    "geographicalContext",
    "ipAddress",
    "ipChain",
    "ipDetails",
    "isProxy",
    "legacyEventType",
    "logOnlySecurityData",
    "postalCode",
    "previousLevel",
    "rawUserAgent",
    "requestApiTokenId",
    "requestId",
    "requestUri",
    "securityContext",
    "threatSuspected",
    "userAgent",
    "userBehaviors",
    "behaviors",
    "dtHash",
];

/// `name` with every known all-lower-case segment in Okta's spelling.
pub fn canonical_field(name: &str) -> String {
    name.split('.')
        .map(|segment| {
            CAMEL_CASE_SEGMENTS
                .iter()
                .find(|known| known.to_ascii_lowercase() == segment)
                .copied()
                .unwrap_or(segment)
        })
        .collect::<Vec<_>>()
        .join(".")
}

/// Rewrites every field name of `rule` (and field references in `|fieldref` values).
pub fn canonicalize_rule(rule: &mut SigmaRule) {
    visit_field_names(rule, &mut |name| *name = canonical_field(name));
}

/// Rewrites the field names of a correlation rule: `group-by`, the `value_count` field and the
/// per-rule field names of `aliases`.
pub fn canonicalize_correlation(rule: &mut CorrelationRule) {
    for field in &mut rule.group_by {
        *field = canonical_field(field);
    }
    if let CorrelationCondition::Threshold {
        field: Some(fields),
        ..
    } = &mut rule.condition
    {
        for field in fields {
            *field = canonical_field(field);
        }
    }
    for alias in &mut rule.aliases {
        for field in alias.mapping.values_mut() {
            *field = canonical_field(field);
        }
    }
}

/// The distinct field names `rule` tests, in first-use order (for `rules check`).
pub fn field_names(rule: &SigmaRule) -> Vec<String> {
    let mut names = Vec::new();
    visit_field_names(&mut rule.clone(), &mut |name| {
        if !names.contains(name) {
            names.push(name.clone());
        }
    });
    // The detections are a map without an order: sorted, the list reads the same every run.
    names.sort();
    names
}

/// Calls `visit` on every field name in `rule`'s detections, including `|fieldref` values.
fn visit_field_names(rule: &mut SigmaRule, visit: &mut impl FnMut(&mut String)) {
    for_each_item(rule, &mut |item| visit_item(item, visit));
}

/// Calls `visit` on every detection item of `rule`, however deeply nested.
pub fn for_each_item(rule: &mut SigmaRule, visit: &mut impl FnMut(&mut DetectionItem)) {
    for detection in rule.detection.named.values_mut() {
        visit_detection(detection, visit);
    }
}

fn visit_detection(detection: &mut Detection, visit: &mut impl FnMut(&mut DetectionItem)) {
    match detection {
        Detection::AllOf(items) => items.iter_mut().for_each(&mut *visit),
        Detection::AnyOf(parts) | Detection::And(parts) => parts
            .iter_mut()
            .for_each(|part| visit_detection(part, visit)),
        Detection::ArrayMatch { field, body, .. } => {
            // The array's own path is a field name too: visit it as an item without values.
            let mut path = DetectionItem {
                field: FieldSpec::new(Some(std::mem::take(field)), Vec::new()),
                values: Vec::new(),
            };
            visit(&mut path);
            *field = path.field.name.unwrap_or_default();
            visit_detection(body, visit);
        }
        Detection::Conditional { named, .. } => named
            .values_mut()
            .for_each(|part| visit_detection(part, visit)),
        Detection::Keywords(_) => {}
    }
}

fn visit_item(item: &mut DetectionItem, visit: &mut impl FnMut(&mut String)) {
    if let Some(name) = &mut item.field.name {
        visit(name);
    }
    if item.field.has_modifier(Modifier::FieldRef) {
        for value in &mut item.values {
            if let SigmaValue::String(text) = value
                && let Some(mut plain) = text.as_plain()
            {
                visit(&mut plain);
                *value = SigmaValue::String(rsigma_parser::SigmaString::new(&plain));
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::canonical_field;

    #[test]
    fn lower_case_paths_become_okta_paths() {
        assert_eq!(canonical_field("eventtype"), "eventType");
        assert_eq!(canonical_field("actor.alternateid"), "actor.alternateId");
        assert_eq!(
            canonical_field("securitycontext.isproxy"),
            "securityContext.isProxy"
        );
        assert_eq!(
            canonical_field("debugcontext.debugdata.requesturi"),
            "debugContext.debugData.requestUri"
        );
        assert_eq!(canonical_field("eventType"), "eventType");
        assert_eq!(canonical_field("outcome.result"), "outcome.result");
        assert_eq!(canonical_field("someCustom.field"), "someCustom.field");
    }
}
