//! `[[responses]]` (and each org's `[[okta.orgs.responses]]`): which alerts a response acts on,
//! what it does, and the guards around it; `[ssf]`: the key and public address of
//! factorwatch as a Shared Signals transmitter.

use std::path::PathBuf;

use anyhow::{bail, ensure};
use serde::{Deserialize, Serialize};

use crate::okta_api::scopes;
use crate::sinks::AlertFilter;

/// The most actions a response may take in an hour unless `max_per_hour` says otherwise.
const DEFAULT_MAX_PER_HOUR: u32 = 10;
/// The prefix of a `never` entry naming an Okta group.
pub const GROUP_PREFIX: &str = "group:";
/// Paths the hook listener serves itself, which the JWKS cannot take.
const RESERVED_PATHS: [&str; 3] = ["/healthz", "/readyz", "/.well-known/ssf-configuration"];
/// The prefix of a response's outbox: apart from every sink's.
pub const OUTBOX_PREFIX: &str = "response:";

/// One `[[responses]]` block: act on the alerts `when` accepts, through Okta, behind guards.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct ResponseConfig {
    /// Unique name: labels its outbox (`response:<name>`), its dead letters and its records.
    pub name: String,
    /// Which alerts it acts on: `min_level`, `levels`, `rules`, `tags`, as a sink's filter. An
    /// empty filter is refused in enforce mode (it would act on every alert).
    #[serde(default)]
    pub when: AlertFilter,
    /// What it does, in order, to the alert's target user: `raise_risk`, `clear_sessions`,
    /// `suspend_user`, `ssf_session_revoked`, `ssf_user_risk_change`.
    pub actions: Vec<Action>,
    /// `dry-run` (the default): record and report what would be done, call nothing that
    /// changes Okta. `enforce`: act.
    #[serde(default)]
    pub mode: Mode,
    /// Users (login or id) and groups (`group:<name>`) never acted on; checked against the
    /// user's live Okta profile and groups before each action.
    #[serde(default)]
    pub never: Vec<String>,
    /// At most this many actions an hour (a sliding hour, across replicas in a `[cluster]`);
    /// the ones after wait for a person (`factorwatch responses approve ID`).
    #[serde(default = "default_max_per_hour")]
    pub max_per_hour: u32,
    /// Okta admins (login or id) this response may act on. Any other user holding an admin
    /// role is skipped: an attacker's forged alert must not lock out the admins who respond.
    #[serde(default)]
    pub act_on_admins: Vec<String>,
}

fn default_max_per_hour() -> u32 {
    DEFAULT_MAX_PER_HOUR
}

/// What a response does to the alert's target user.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Deserialize, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Action {
    /// Set the user's risk to HIGH (User Risk API; Identity Threat Protection policies act on
    /// it). Undo sets the level it had.
    RaiseRisk,
    /// End every Okta session of the user and revoke their OAuth tokens. Cannot be undone.
    ClearSessions,
    /// Suspend the user (only from ACTIVE). Undo unsuspends.
    SuspendUser,
    /// Push a CAEP session-revoked Security Event Token to Okta's SSF receiver (needs `[ssf]`).
    SsfSessionRevoked,
    /// Push an Okta user-risk-change Security Event Token (its risk to high) to Okta's SSF
    /// receiver, whose Identity Threat Protection policies act on it (needs `[ssf]`).
    SsfUserRiskChange,
}

impl Action {
    /// The name configured and recorded (`raise_risk`, ...).
    pub fn as_str(self) -> &'static str {
        match self {
            Self::RaiseRisk => "raise_risk",
            Self::ClearSessions => "clear_sessions",
            Self::SuspendUser => "suspend_user",
            Self::SsfSessionRevoked => "ssf_session_revoked",
            Self::SsfUserRiskChange => "ssf_user_risk_change",
        }
    }

    /// The action recorded as `name`, if there is one.
    pub fn from_name(name: &str) -> Option<Self> {
        [
            Self::RaiseRisk,
            Self::ClearSessions,
            Self::SuspendUser,
            Self::SsfSessionRevoked,
            Self::SsfUserRiskChange,
        ]
        .into_iter()
        .find(|action| action.as_str() == name)
    }

    /// The OAuth scopes it needs beyond reading the user (`okta.users.read`, `okta.roles.read`,
    /// which every response needs for its guards).
    pub fn scopes(self) -> &'static [&'static str] {
        match self {
            Self::RaiseRisk => &[scopes::USER_RISK_READ, scopes::USER_RISK_MANAGE],
            Self::ClearSessions | Self::SuspendUser => &[scopes::USERS_MANAGE],
            // A SET is pushed without Okta credentials; the risk change names the level before.
            Self::SsfSessionRevoked => &[],
            Self::SsfUserRiskChange => &[scopes::USER_RISK_READ],
        }
    }
}

/// Whether a response acts.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize, Serialize)]
pub enum Mode {
    /// Record and report what would be done; change nothing in Okta.
    #[default]
    #[serde(rename = "dry-run")]
    DryRun,
    /// Act.
    #[serde(rename = "enforce")]
    Enforce,
}

impl Mode {
    /// `dry-run` or `enforce`.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::DryRun => "dry-run",
            Self::Enforce => "enforce",
        }
    }
}

impl ResponseConfig {
    /// The outbox the detector queues this response's alerts in.
    pub fn outbox(&self) -> String {
        format!("{OUTBOX_PREFIX}{}", self.name)
    }

    /// The scopes its Okta client asks for: reading users and roles (the guards), and what
    /// each action needs.
    pub fn scopes(&self) -> Vec<&'static str> {
        let mut wanted = vec![scopes::USERS_READ, scopes::ROLES_READ];
        for scope in self.actions.iter().flat_map(|action| action.scopes()) {
            if !wanted.contains(scope) {
                wanted.push(scope);
            }
        }
        wanted
    }

    /// True when one of its actions pushes a Shared Signals event.
    pub fn uses_ssf(&self) -> bool {
        self.actions
            .iter()
            .any(|a| matches!(a, Action::SsfSessionRevoked | Action::SsfUserRiskChange))
    }

    /// Checks the block without calling anything; errors name the key at fault.
    pub fn validate(&self) -> anyhow::Result<()> {
        let name_ok = !self.name.is_empty()
            && self
                .name
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || "-_.".contains(c));
        ensure!(
            name_ok,
            "name {:?}: use letters, digits, '-', '_' or '.' (it names an outbox and records)",
            self.name
        );
        ensure!(
            !self.actions.is_empty(),
            "actions is empty: list what to do (raise_risk, clear_sessions, suspend_user, \
             ssf_session_revoked, ssf_user_risk_change)"
        );
        for (at, action) in self.actions.iter().enumerate() {
            ensure!(
                !self.actions[..at].contains(action),
                "actions lists {} twice",
                action.as_str()
            );
        }
        ensure!(
            self.max_per_hour >= 1,
            "max_per_hour must be at least 1 (a response that may never act is dry-run mode)"
        );
        if self.mode == Mode::Enforce && self.when.is_empty() {
            bail!(
                "mode = \"enforce\" with an empty `when` would act on every alert: narrow it \
                 (levels = [\"critical\"], rules = [...] or tags = [...])"
            );
        }
        for entry in &self.never {
            let group = entry.strip_prefix(GROUP_PREFIX);
            ensure!(
                !entry.trim().is_empty() && group.is_none_or(|g| !g.trim().is_empty()),
                "never: {entry:?} is empty; list logins, user ids or \"group:<name>\""
            );
        }
        Ok(())
    }
}

/// Checks a list of responses (`key` names it in errors): unique names, each block's keys, and
/// what they need of the org (`has_api`: `[okta.api]` is set; `has_ssf`: `[ssf]` is).
pub fn check_responses(
    key: &str,
    responses: &[ResponseConfig],
    has_api: bool,
    has_ssf: bool,
) -> anyhow::Result<()> {
    for (at, response) in responses.iter().enumerate() {
        let scope = |err: anyhow::Error| err.context(format!("{key}: {:?}", response.name));
        response.validate().map_err(scope)?;
        if responses[..at].iter().any(|r| r.name == response.name) {
            bail!("{key}: two responses are named {:?}", response.name);
        }
        if !has_api {
            return Err(scope(anyhow::anyhow!(
                "a response acts and checks its guards through Okta's API: set [okta.api] \
                 (docs/responses.md lists the scopes each action needs)"
            )));
        }
        if response.uses_ssf() && !has_ssf {
            return Err(scope(anyhow::anyhow!(
                "the ssf_* actions sign Security Event Tokens: set [ssf] issuer and \
                 signing_key_file"
            )));
        }
    }
    Ok(())
}

/// `[ssf]`: factorwatch as a Shared Signals transmitter. Okta's SSF receiver fetches the JWKS
/// from `issuer` + `jwks_path` (a public HTTPS address) to verify each token it is pushed.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct SsfConfig {
    /// The issuer (`iss`) of the tokens: factorwatch's public base URL, such as
    /// `https://factorwatch.acme.example`. Registered with Okta by `okta register-ssf`.
    pub issuer: String,
    /// The RSA private key (PEM, at least 2048 bits) that signs the tokens. Generate one with
    /// `openssl genpkey -algorithm RSA -pkeyopt rsa_keygen_bits:2048 -out ssf.pem`.
    pub signing_key_file: PathBuf,
    /// The key's `kid`; default: its RFC 7638 thumbprint.
    #[serde(default)]
    pub key_id: Option<String>,
    /// Where the hook listener serves the public keys (JWKS).
    #[serde(default = "default_jwks_path")]
    pub jwks_path: String,
}

fn default_jwks_path() -> String {
    "/.well-known/jwks.json".into()
}

impl SsfConfig {
    /// The public address of the JWKS: `issuer` + `jwks_path`.
    pub fn jwks_url(&self) -> String {
        format!("{}{}", self.issuer.trim_end_matches('/'), self.jwks_path)
    }

    /// Checks the keys without reading the key file; errors name the key.
    pub fn validate(&self) -> anyhow::Result<()> {
        let issuer = reqwest::Url::parse(&self.issuer)
            .map_err(|err| anyhow::anyhow!("ssf.issuer {:?}: not a URL ({err})", self.issuer))?;
        ensure!(
            matches!(issuer.scheme(), "https" | "http"),
            "ssf.issuer {:?}: an http(s) URL Okta can reach",
            self.issuer
        );
        ensure!(
            self.jwks_path.starts_with('/'),
            "ssf.jwks_path {:?} must start with '/'",
            self.jwks_path
        );
        ensure!(
            !RESERVED_PATHS.contains(&self.jwks_path.as_str()),
            "ssf.jwks_path {:?} is taken by the listener itself; keep the default              /.well-known/jwks.json or pick another",
            self.jwks_path
        );
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn response(toml: &str) -> ResponseConfig {
        toml::from_str(toml).expect("a response block")
    }

    #[test]
    fn a_response_is_dry_run_with_a_cap_unless_told_otherwise() {
        let r = response("name = \"contain\"\nactions = [\"raise_risk\", \"clear_sessions\"]\n");
        assert_eq!(r.mode, Mode::DryRun);
        assert_eq!(r.max_per_hour, DEFAULT_MAX_PER_HOUR);
        assert_eq!(r.outbox(), "response:contain");
        r.validate().unwrap();
        assert_eq!(
            r.scopes(),
            [
                scopes::USERS_READ,
                scopes::ROLES_READ,
                scopes::USER_RISK_READ,
                scopes::USER_RISK_MANAGE,
                scopes::USERS_MANAGE
            ]
        );
    }

    #[test]
    fn enforce_needs_a_filter_and_mistakes_are_named() {
        let wide = response("name = \"x\"\nmode = \"enforce\"\nactions = [\"suspend_user\"]\n");
        let err = wide.validate().unwrap_err().to_string();
        assert!(err.contains("empty `when`"), "{err}");
        let narrow = response(
            "name = \"x\"\nmode = \"enforce\"\nactions = [\"suspend_user\"]\nwhen = { levels = [\"critical\"] }\n",
        );
        narrow.validate().unwrap();
        let twice = response("name = \"x\"\nactions = [\"raise_risk\", \"raise_risk\"]\n");
        assert!(twice.validate().unwrap_err().to_string().contains("twice"));
        let group = response("name = \"x\"\nactions = [\"raise_risk\"]\nnever = [\"group:\"]\n");
        assert!(group.validate().unwrap_err().to_string().contains("never"));
        let unknown: Result<ResponseConfig, _> =
            toml::from_str("name = \"x\"\nactions = [\"delete_user\"]\n");
        assert!(unknown.unwrap_err().to_string().contains("delete_user"));
    }

    #[test]
    fn the_keys_need_a_path_of_their_own() {
        let ssf = |path: &str| SsfConfig {
            issuer: "https://factorwatch.acme.example".into(),
            signing_key_file: "/etc/factorwatch/ssf.pem".into(),
            key_id: None,
            jwks_path: path.into(),
        };
        ssf("/.well-known/jwks.json").validate().unwrap();
        assert_eq!(
            ssf("/.well-known/jwks.json").jwks_url(),
            "https://factorwatch.acme.example/.well-known/jwks.json"
        );
        assert!(ssf("/readyz").validate().is_err());
        assert!(ssf("jwks.json").validate().is_err());
    }

    #[test]
    fn responses_need_the_api_and_ssf_needs_its_key() {
        let risk = response("name = \"a\"\nactions = [\"raise_risk\"]\n");
        let err =
            check_responses("responses", std::slice::from_ref(&risk), false, false).unwrap_err();
        assert!(format!("{err:#}").contains("[okta.api]"), "{err:#}");
        let ssf = response("name = \"b\"\nactions = [\"ssf_session_revoked\"]\n");
        let err = check_responses("responses", &[risk.clone(), ssf], true, false).unwrap_err();
        assert!(format!("{err:#}").contains("[ssf]"), "{err:#}");
        let err = check_responses("responses", &[risk.clone(), risk], true, true).unwrap_err();
        assert!(format!("{err:#}").contains("two responses"), "{err:#}");
    }
}
