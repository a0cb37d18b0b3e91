//! Who-did-what context for MFA alerts, and the level that reflects its risk.
//!
//! A user resetting their own factor is routine; an admin, an API token or Okta Support resetting
//! someone else's, a reset of a privileged user, or one made through a proxy is how account
//! takeovers look. The context says which case it is, and the alert's level rises with it.

use serde_json::Value;

use super::enrich::initiated_by;
use crate::alert::{InitiatedBy, Level, MfaContext};
use crate::okta::LogEvent;
use crate::okta::event::scalar_text;

/// Context for a `user.mfa.*` event; `None` for any other event.
pub fn mfa_context(event: &LogEvent<'_>, privileged_users: &[String]) -> Option<MfaContext> {
    let event_type = event.event_type()?;
    if !event_type.starts_with("user.mfa.") {
        return None;
    }
    let targets: Vec<&Value> = event
        .targets()
        .iter()
        .filter(|t| t.get("type").and_then(Value::as_str) == Some("User"))
        .collect();
    let ip_chain = ["client.ipChain", "request.ipChain"]
        .iter()
        .filter_map(|path| event.get(path)?.as_array())
        .flatten()
        .filter_map(|hop| hop.get("ip").and_then(scalar_text))
        .collect();
    Some(MfaContext {
        initiated_by: Some(initiated_by(event, &targets)),
        factors: factor(event).into_iter().collect(),
        transaction_id: event.text("transaction.id"),
        api_token_id: event.text("transaction.detail.requestApiTokenId"),
        ip_chain,
        asn: event.text("securityContext.asNumber"),
        as_org: event.text("securityContext.asOrg"),
        isp: event.text("securityContext.isp"),
        is_proxy: event.get("securityContext.isProxy").and_then(as_bool),
        privileged_target: targets.iter().any(|t| is_privileged(t, privileged_users)),
        admin_target: false,
        admin_actor: false,
        event_uuids: event.uuid().into_iter().collect(),
        level_reasons: Vec::new(),
    })
}

/// The factor type from "User reset FIDO_WEBAUTHN factor", else the enrollment target's name.
fn factor(event: &LogEvent<'_>) -> Option<String> {
    let from_reason = event.text("outcome.reason").and_then(|reason| {
        let words: Vec<&str> = reason.split_whitespace().collect();
        words
            .windows(3)
            .find(|w| w[0].eq_ignore_ascii_case("reset") && w[2].eq_ignore_ascii_case("factor"))
            .map(|w| w[1].to_owned())
    });
    from_reason.or_else(|| {
        event
            .targets()
            .iter()
            .find(|t| {
                t.get("type")
                    .and_then(Value::as_str)
                    .is_some_and(|kind| kind.contains("Enrollment") || kind.contains("Factor"))
            })
            .and_then(|t| t.get("displayName").and_then(scalar_text))
    })
}

fn as_bool(value: &Value) -> Option<bool> {
    match value {
        Value::Bool(b) => Some(*b),
        Value::String(s) => s.parse().ok(),
        _ => None,
    }
}

fn is_privileged(target: &Value, privileged_users: &[String]) -> bool {
    ["alternateId", "id"].iter().any(|key| {
        target
            .get(key)
            .and_then(Value::as_str)
            .is_some_and(|value| {
                privileged_users
                    .iter()
                    .any(|p| p.eq_ignore_ascii_case(value))
            })
    })
}

/// The alert's level: the rule's, raised for the risky cases; records why in the context.
pub fn risk_level(rule_level: Level, context: &mut MfaContext) -> Level {
    let mut reasons = Vec::new();
    let by_other = matches!(
        context.initiated_by,
        Some(
            InitiatedBy::Admin
                | InitiatedBy::ApiToken
                | InitiatedBy::OktaSupport
                | InitiatedBy::ServiceApp
                | InitiatedBy::System
        )
    );
    if by_other {
        reasons.push("someone other than the user changed their MFA");
    }
    if context.privileged_target {
        reasons.push("the target is a privileged user");
    }
    if context.admin_target {
        reasons.push("the target holds an Okta admin role");
    }
    if context.admin_actor {
        reasons.push("the actor holds an Okta admin role");
    }
    if context.is_proxy == Some(true) {
        reasons.push("the request came through a proxy");
    }
    let risk = match reasons.len() {
        0 => Level::Informational,
        1 => Level::High,
        _ => Level::Critical,
    };
    context.level_reasons = reasons.into_iter().map(str::to_owned).collect();
    rule_level.max(risk)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::okta::samples::{self, Initiator};

    fn context_of(event: &Value, privileged: &[String]) -> MfaContext {
        mfa_context(&LogEvent(event), privileged).expect("an MFA event")
    }

    #[test]
    fn tells_who_initiated_the_change() {
        let users = samples::users();
        let cases = [
            (Initiator::SelfService, InitiatedBy::SelfService),
            (Initiator::Admin, InitiatedBy::Admin),
            (Initiator::ApiToken, InitiatedBy::ApiToken),
            (Initiator::OktaSupport, InitiatedBy::OktaSupport),
        ];
        for (initiator, expected) in cases {
            let event = samples::mfa_factor_deactivate(&users[0], "SMS", initiator, "tx");
            let context = context_of(&event, &[]);
            assert_eq!(context.initiated_by, Some(expected), "{initiator:?}");
            assert_eq!(context.factors, ["SMS"]);
        }
        let reset_all = samples::mfa_factor_reset_all(&users[1], Initiator::ApiToken);
        let context = context_of(&reset_all, &[]);
        assert_eq!(context.initiated_by, Some(InitiatedBy::ApiToken));
        assert!(context.api_token_id.is_some());
        assert!(!context.ip_chain.is_empty());
    }

    #[test]
    fn levels_rise_with_risk() {
        let users = samples::users();
        let own = samples::mfa_factor_deactivate(&users[0], "SMS", Initiator::SelfService, "t");
        let mut context = context_of(&own, &[]);
        assert_eq!(risk_level(Level::Medium, &mut context), Level::Medium);
        assert!(context.level_reasons.is_empty());

        let by_admin = samples::mfa_factor_deactivate(&users[0], "SMS", Initiator::Admin, "t");
        let mut context = context_of(&by_admin, &[]);
        assert_eq!(risk_level(Level::Medium, &mut context), Level::High);

        let privileged = vec![users[0].login.to_uppercase()];
        let mut context = context_of(&own, &privileged);
        assert!(context.privileged_target);
        assert_eq!(risk_level(Level::Medium, &mut context), Level::High);
        let mut context = context_of(&by_admin, &privileged);
        assert_eq!(risk_level(Level::Medium, &mut context), Level::Critical);
        assert_eq!(context.level_reasons.len(), 2);

        // Okta admin roles (live context) raise it as the static list does.
        let mut context = context_of(&own, &[]);
        context.admin_target = true;
        assert_eq!(risk_level(Level::Medium, &mut context), Level::High);
        assert_eq!(
            context.level_reasons,
            ["the target holds an Okta admin role"]
        );
        let mut context = context_of(&by_admin, &[]);
        context.admin_actor = true;
        assert_eq!(risk_level(Level::Medium, &mut context), Level::Critical);
    }

    #[test]
    fn other_events_get_no_mfa_context() {
        let users = samples::users();
        let session = samples::session_start(&users[0], "198.51.100.1");
        assert!(mfa_context(&LogEvent(&session), &[]).is_none());
    }
}
