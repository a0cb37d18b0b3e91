//! Each action as Okta calls, and how it is undone: what it changes, what it found before (for
//! undo), and what a dry run says it would call.

use crate::okta_api::{OktaApiError, OktaClient, RiskLevel};

use super::config::Action;
use super::guard::Profile;
use super::ssf::{SetClaims, SetSigner, SetSubject};

/// factorwatch as a Shared Signals transmitter to one org: the key, the issuer Okta registered,
/// the org's URL (the tokens' audience).
pub struct SsfSender {
    /// Signs each Security Event Token.
    pub signer: SetSigner,
    /// `iss`: the provider's issuer as registered (`okta register-ssf`).
    pub issuer: String,
    /// `aud`: the org's URL.
    pub audience: String,
}

/// What an action did in Okta.
#[derive(Debug)]
pub enum Effect {
    /// It changed the user; `before` is what undo restores.
    Changed {
        /// The risk level or status before.
        before: Option<String>,
        /// What was done, in words.
        note: String,
    },
    /// Nothing needed changing (the risk was already HIGH, the user not ACTIVE).
    Unchanged(String),
}

/// The Okta call `action` makes on `profile`, as a dry run and the ledger show it.
pub fn call_of(action: Action, profile: &Profile, org_url: &str) -> String {
    let user = &profile.id;
    match action {
        Action::RaiseRisk => {
            format!("PUT /api/v1/users/{user}/risk {{\"riskLevel\":\"HIGH\"}}")
        }
        Action::ClearSessions => {
            format!("DELETE /api/v1/users/{user}/sessions?oauthTokens=true")
        }
        Action::SuspendUser => format!("POST /api/v1/users/{user}/lifecycle/suspend"),
        Action::SsfSessionRevoked | Action::SsfUserRiskChange => format!(
            "POST {}/security/api/v1/security-events ({} for {})",
            org_url.trim_end_matches('/'),
            match action {
                Action::SsfUserRiskChange => "Okta user-risk-change to high",
                _ => "CAEP session-revoked",
            },
            profile.email.as_deref().unwrap_or(user)
        ),
    }
}

/// What `action` does, in words, for a dry run's "would".
pub fn describe(action: Action) -> &'static str {
    match action {
        Action::RaiseRisk => "set the user's risk to HIGH",
        Action::ClearSessions => "end the user's Okta sessions and revoke their OAuth tokens",
        Action::SuspendUser => "suspend the user",
        Action::SsfSessionRevoked => "push a CAEP session-revoked event to Okta's SSF receiver",
        Action::SsfUserRiskChange => {
            "push a user-risk-change event (to high) to Okta's SSF receiver"
        }
    }
}

/// Runs `action` on `profile`; `why` is the reason Okta records (the risk reason, the SET's
/// admin reason); `action_id` is the SET's `jti`, so a retry is one event to Okta.
pub async fn execute(
    okta: &OktaClient,
    ssf: Option<&SsfSender>,
    action: Action,
    profile: &Profile,
    why: &str,
    action_id: &str,
) -> Result<Effect, OktaApiError> {
    let user = profile.id.as_str();
    match action {
        Action::RaiseRisk => {
            let before = okta.get_user_risk(user).await?.risk_level;
            if before == RiskLevel::High.as_str() {
                return Ok(Effect::Unchanged("the user's risk is already HIGH".into()));
            }
            okta.set_user_risk(user, RiskLevel::High, why).await?;
            Ok(Effect::Changed {
                note: format!("risk raised from {before} to HIGH"),
                before: Some(before),
            })
        }
        Action::ClearSessions => {
            okta.clear_user_sessions(user, true).await?;
            Ok(Effect::Changed {
                before: None,
                note: "Okta sessions ended, OAuth tokens revoked".into(),
            })
        }
        Action::SuspendUser => suspend(okta, profile).await,
        Action::SsfSessionRevoked | Action::SsfUserRiskChange => {
            let ssf = ssf
                .ok_or_else(|| OktaApiError::Config(format!("{} needs [ssf]", action.as_str())))?;
            push_signal(okta, ssf, action, profile, why, action_id).await
        }
    }
}

async fn suspend(okta: &OktaClient, profile: &Profile) -> Result<Effect, OktaApiError> {
    if profile.status != "ACTIVE" {
        return Ok(Effect::Unchanged(format!(
            "the user is {}, not ACTIVE: nothing to suspend",
            profile.status
        )));
    }
    match okta.suspend_user(&profile.id).await {
        Ok(()) => Ok(Effect::Changed {
            before: Some(profile.status.clone()),
            note: "user suspended".into(),
        }),
        Err(OktaApiError::Conflict(said)) => Ok(Effect::Unchanged(format!(
            "Okta refused to suspend a user that is no longer ACTIVE ({said})"
        ))),
        Err(other) => Err(other),
    }
}

/// Pushes the Security Event Token of `action` about `profile` (named by email) to Okta's SSF
/// receiver. The user-risk change reads the user's risk first, for `previous_level`.
async fn push_signal(
    okta: &OktaClient,
    ssf: &SsfSender,
    action: Action,
    profile: &Profile,
    why: &str,
    action_id: &str,
) -> Result<Effect, OktaApiError> {
    let email = profile.email.as_deref().ok_or_else(|| {
        OktaApiError::BadResponse("the user has no email or login to name in the event".into())
    })?;
    let (subject, now) = (
        SetSubject::email(email),
        (crate::clock::now_ms() / 1000) as i64,
    );
    let (issuer, audience) = (ssf.issuer.as_str(), ssf.audience.as_str());
    let (claims, event) = match action {
        Action::SsfUserRiskChange => {
            let previous = okta.get_user_risk(&profile.id).await?.risk_level;
            let claims = SetClaims::user_risk_change(
                issuer, audience, &subject, now, &previous, "high", why,
            );
            (claims, "user-risk-change (to high)")
        }
        _ => {
            let claims = SetClaims::session_revoked(issuer, audience, &subject, now, why);
            (claims, "session-revoked")
        }
    };
    let token = ssf
        .signer
        .sign(&claims.with_jti(action_id.to_owned()))
        .map_err(|err| OktaApiError::Key(err.to_string()))?;
    okta.push_security_event_token(&token).await?;
    Ok(Effect::Changed {
        before: None,
        note: format!("{event} event for {email} accepted by Okta"),
    })
}

/// Why `action` cannot be undone, if it cannot.
pub fn irreversible(action: Action) -> Option<&'static str> {
    match action {
        Action::RaiseRisk | Action::SuspendUser => None,
        Action::ClearSessions => Some("ended sessions cannot be restored; the user signs in again"),
        Action::SsfSessionRevoked => {
            Some("a session-revoked event cannot be taken back; the user signs in again")
        }
        Action::SsfUserRiskChange => Some(
            "a risk event cannot be taken back; lower the user's risk in the Admin Console (or \
             use raise_risk, whose undo restores the level)",
        ),
    }
}

/// Reverses `action` on the user `user_id`, which found `before`: the risk level it had, or
/// unsuspended. Returns what was done.
pub async fn undo(
    okta: &OktaClient,
    action: Action,
    user_id: &str,
    before: Option<&str>,
) -> Result<String, OktaApiError> {
    match action {
        Action::RaiseRisk => {
            let (level, note) = match before {
                Some("MEDIUM") => (RiskLevel::Medium, "risk set back to MEDIUM"),
                Some("LOW") => (RiskLevel::Low, "risk set back to LOW"),
                // Okta's API cannot set NONE; LOW is the nearest it takes.
                _ => (
                    RiskLevel::Low,
                    "risk set to LOW (it was NONE, which Okta's API cannot set)",
                ),
            };
            okta.set_user_risk(user_id, level, "factorwatch responses undo")
                .await?;
            Ok(note.into())
        }
        Action::SuspendUser => {
            okta.unsuspend_user(user_id).await?;
            Ok("user unsuspended".into())
        }
        Action::ClearSessions | Action::SsfSessionRevoked | Action::SsfUserRiskChange => Err(
            OktaApiError::BadRequest(irreversible(action).unwrap_or_default().into()),
        ),
    }
}
