//! What registering the hook would change in Okta: the difference between the hook Okta holds
//! and the one this deployment wants. Okta never shows the secret (write-only), so it is not
//! compared: `okta rotate-secret` changes it.

use serde::Serialize;

use crate::okta_api::{EventHook, HookDefinition};

/// One difference, as `okta register` reports it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "change", rename_all = "snake_case")]
pub enum HookChange {
    /// No hook of that name: create it.
    Create,
    /// The URL differs.
    Url {
        /// Okta's.
        from: String,
        /// This deployment's.
        to: String,
    },
    /// The auth header's name differs (compared without case: Okta echoes it lowercased).
    AuthHeader {
        /// Okta's (none when the hook has no auth scheme).
        from: Option<String>,
        /// This deployment's.
        to: String,
    },
    /// An event type to subscribe.
    Subscribe {
        /// The type.
        event_type: String,
    },
    /// An event type no rule needs any more.
    Unsubscribe {
        /// The type.
        event_type: String,
    },
    /// The hook is inactive: activate it.
    Activate,
}

impl HookChange {
    /// True for the changes that need a replace (`PUT`) of the hook.
    pub fn needs_replace(&self) -> bool {
        !matches!(self, Self::Create | Self::Activate)
    }
}

/// What turns `current` (Okta's hook of this name, if any) into `wanted`.
pub fn hook_changes(current: Option<&EventHook>, wanted: &HookDefinition) -> Vec<HookChange> {
    let Some(current) = current else {
        return vec![HookChange::Create];
    };
    let mut changes = Vec::new();
    let config = &current.channel.config;
    if config.uri != wanted.uri {
        changes.push(HookChange::Url {
            from: config.uri.clone(),
            to: wanted.uri.clone(),
        });
    }
    let header = current.auth_header();
    if !header.is_some_and(|h| h.eq_ignore_ascii_case(&wanted.auth_header)) {
        changes.push(HookChange::AuthHeader {
            from: header.map(str::to_owned),
            to: wanted.auth_header.clone(),
        });
    }
    let subscribed = &current.events.items;
    changes.extend(
        wanted
            .event_types
            .iter()
            .filter(|t| !subscribed.contains(t))
            .map(|t| HookChange::Subscribe {
                event_type: t.clone(),
            }),
    );
    changes.extend(
        subscribed
            .iter()
            .filter(|t| !wanted.event_types.contains(t))
            .map(|t| HookChange::Unsubscribe {
                event_type: t.clone(),
            }),
    );
    if current.status != "ACTIVE" {
        changes.push(HookChange::Activate);
    }
    changes
}

impl std::fmt::Display for HookChange {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Create => write!(f, "create the hook"),
            Self::Url { from, to } => write!(f, "URL: {from} -> {to}"),
            Self::AuthHeader { from, to } => write!(
                f,
                "auth header: {} -> {to}",
                from.as_deref().unwrap_or("(none)")
            ),
            Self::Subscribe { event_type } => write!(f, "+ {event_type}"),
            Self::Unsubscribe { event_type } => write!(f, "- {event_type}"),
            Self::Activate => write!(f, "activate (the hook is INACTIVE)"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::secret::Secret;

    fn wanted(types: &[&str]) -> HookDefinition {
        HookDefinition {
            name: "factorwatch".into(),
            uri: "https://fw.example/okta/events".into(),
            event_types: types.iter().map(|t| t.to_string()).collect(),
            auth_header: "Authorization".into(),
            secret: Secret::new("s3cret-value-for-tests"),
        }
    }

    fn okta_hook(types: &[&str], status: &str) -> EventHook {
        serde_json::from_value(serde_json::json!({
            "id": "who1", "name": "factorwatch", "status": status,
            "verificationStatus": "VERIFIED",
            "events": {"type": "EVENT_TYPE", "items": types},
            "channel": {"type": "HTTP", "version": "1.0.0", "config": {
                "uri": "https://fw.example/okta/events", "method": "POST",
                "authScheme": {"type": "HEADER", "key": "authorization"}}},
        }))
        .expect("an EventHook")
    }

    #[test]
    fn the_same_hook_needs_no_change_whatever_the_header_case() {
        let types = ["user.mfa.factor.deactivate", "user.mfa.factor.reset_all"];
        assert!(hook_changes(Some(&okta_hook(&types, "ACTIVE")), &wanted(&types)).is_empty());
    }

    #[test]
    fn only_what_differs_is_changed() {
        let current = okta_hook(
            &["user.mfa.factor.deactivate", "user.session.start"],
            "INACTIVE",
        );
        let changes = hook_changes(
            Some(&current),
            &wanted(&["user.mfa.factor.deactivate", "user.mfa.factor.reset_all"]),
        );
        assert_eq!(
            changes,
            vec![
                HookChange::Subscribe {
                    event_type: "user.mfa.factor.reset_all".into()
                },
                HookChange::Unsubscribe {
                    event_type: "user.session.start".into()
                },
                HookChange::Activate,
            ]
        );
        assert!(changes[0].needs_replace());
        assert!(!changes[2].needs_replace());
    }

    #[test]
    fn no_hook_means_create() {
        assert_eq!(
            hook_changes(None, &wanted(&["user.mfa.factor.deactivate"])),
            vec![HookChange::Create]
        );
    }
}
