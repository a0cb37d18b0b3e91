//! The guards a response passes before it acts on a user: the user as Okta knows it now (not as
//! the event said), never factorwatch's own API identity, never a user or group of `never`,
//! never an Okta admin the response does not name in `act_on_admins`.

use crate::okta_api::{OktaApiError, OktaClient};

use super::config::{GROUP_PREFIX, ResponseConfig};

/// The target user as Okta answers for it now.
#[derive(Debug, Clone)]
pub struct Profile {
    /// Okta's id.
    pub id: String,
    /// The login, when the profile has one.
    pub login: Option<String>,
    /// The email (a SET's subject), else the login.
    pub email: Option<String>,
    /// `ACTIVE`, `SUSPENDED`, ...
    pub status: String,
    /// The names of its groups (the first page Okta answers).
    pub groups: Vec<String>,
    /// The admin role types assigned to it (`SUPER_ADMIN`, ...).
    pub roles: Vec<String>,
}

impl Profile {
    /// Reads the user `id`, its groups and roles from Okta.
    pub async fn read(okta: &OktaClient, id: &str) -> Result<Self, OktaApiError> {
        let user = okta.get_user(id).await?;
        let groups = okta.list_user_groups(id).await?;
        let roles = okta.list_user_roles(id).await?;
        let profile = user.profile.unwrap_or(crate::okta_api::UserProfile {
            login: None,
            email: None,
        });
        Ok(Self {
            email: profile.email.or_else(|| profile.login.clone()),
            login: profile.login,
            id: user.id,
            status: user.status,
            groups: groups
                .groups
                .into_iter()
                .filter_map(|group| group.profile.and_then(|p| p.name))
                .collect(),
            roles: roles
                .into_iter()
                .filter(|role| role.status.as_deref() != Some("INACTIVE"))
                .map(|role| role.role_type)
                .collect(),
        })
    }

    /// True when `entry` (a login or an id) names this user; logins compare without case, as
    /// Okta's do.
    fn is(&self, entry: &str) -> bool {
        entry == self.id
            || self
                .login
                .as_deref()
                .is_some_and(|login| login.eq_ignore_ascii_case(entry))
    }
}

/// Why a response must leave `profile` alone, if it must. `own_id`: the user factorwatch's API
/// token acts as (none for an OAuth app, which is no user).
pub fn refusal(config: &ResponseConfig, profile: &Profile, own_id: Option<&str>) -> Option<String> {
    if own_id == Some(profile.id.as_str()) {
        return Some(
            "the user is the admin factorwatch's API token acts as: acting would lock \
             factorwatch out"
                .into(),
        );
    }
    for entry in &config.never {
        match entry.strip_prefix(GROUP_PREFIX) {
            Some(group) => {
                let member = profile
                    .groups
                    .iter()
                    .find(|g| g.eq_ignore_ascii_case(group));
                if let Some(group) = member {
                    return Some(format!("never: the user is in the group {group:?}"));
                }
            }
            None if profile.is(entry) => return Some(format!("never: {entry:?} is listed")),
            None => {}
        }
    }
    let named = config.act_on_admins.iter().any(|entry| profile.is(entry));
    if !profile.roles.is_empty() && !named {
        return Some(format!(
            "the user is an Okta admin ({}): name them in act_on_admins to let this response \
             act on them",
            profile.roles.join(", ")
        ));
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config(never: &[&str], admins: &[&str]) -> ResponseConfig {
        let mut config: ResponseConfig =
            toml::from_str("name = \"t\"\nactions = [\"suspend_user\"]\n").unwrap();
        config.never = never.iter().map(|s| s.to_string()).collect();
        config.act_on_admins = admins.iter().map(|s| s.to_string()).collect();
        config
    }

    fn alice() -> Profile {
        Profile {
            id: "00ualice".into(),
            login: Some("alice@acme.example".into()),
            email: Some("alice@acme.example".into()),
            status: "ACTIVE".into(),
            groups: vec!["Everyone".into(), "Okta-Break-Glass".into()],
            roles: Vec::new(),
        }
    }

    #[test]
    fn a_user_named_in_never_by_login_id_or_group_is_left_alone() {
        let alice = alice();
        assert_eq!(refusal(&config(&[], &[]), &alice, None), None);
        let by_login = refusal(&config(&["ALICE@acme.example"], &[]), &alice, None);
        assert!(by_login.unwrap().contains("is listed"));
        assert!(refusal(&config(&["00ualice"], &[]), &alice, None).is_some());
        let by_group = refusal(&config(&["group:okta-break-glass"], &[]), &alice, None);
        assert!(by_group.unwrap().contains("Okta-Break-Glass"));
        assert_eq!(
            refusal(&config(&["group:Finance"], &[]), &alice, None),
            None
        );
    }

    #[test]
    fn admins_and_factorwatchs_own_identity_need_naming() {
        let mut admin = alice();
        admin.roles = vec!["SUPER_ADMIN".into()];
        let refused = refusal(&config(&[], &[]), &admin, None).unwrap();
        assert!(refused.contains("SUPER_ADMIN") && refused.contains("act_on_admins"));
        assert_eq!(
            refusal(&config(&[], &["alice@acme.example"]), &admin, None),
            None
        );
        let own = refusal(&config(&[], &[]), &alice(), Some("00ualice")).unwrap();
        assert!(own.contains("API token acts as"), "{own}");
    }
}
