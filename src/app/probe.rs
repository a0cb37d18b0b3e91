//! `check-config`'s live check of each org's Okta API access: what `serve` only learns at its
//! first poll or its first MFA alert (credentials Okta refuses, a scope not granted, an
//! `org_url` that is no Okta org).

use crate::config::Config;
use crate::okta_api::{LogsRequest, OktaApiError, OktaClient};

use super::pipeline::{RECONCILE_SCOPES, system_log_filter};
use crate::detect::RuleSet;
use crate::detect::live_context::CONTEXT_SCOPES;

/// What the live check found for one org that reconciles.
#[derive(Debug)]
pub struct OktaProbe {
    /// `the top-level org` or `okta.orgs "acme"`.
    pub org: String,
    /// The org URL called.
    pub org_url: String,
    /// The System Log filter its rules make (`None`: every event).
    pub filter: Option<String>,
    /// Whether one page of the System Log could be read.
    pub outcome: Result<(), OktaApiError>,
}

/// Reads one event of the System Log for each org with `[okta.reconcile] enabled`, as its poller
/// would: a token (or the API token), the scope, the org. Run after [`super::preflight`], so the
/// rules and keys are known to load.
pub async fn probe_okta(config: &Config) -> anyhow::Result<Vec<OktaProbe>> {
    let mut probes = Vec::new();
    for pipeline in config.pipelines() {
        let Some(api) = pipeline.api.as_ref().filter(|_| pipeline.reconcile.enabled) else {
            continue;
        };
        let filter = system_log_filter(&RuleSet::load(&pipeline.rules)?);
        let org = pipeline.org.as_deref().unwrap_or_default();
        let outcome = match OktaClient::new(api, RECONCILE_SCOPES, org) {
            Ok(client) => read_one(&client, filter.clone()).await,
            Err(err) => Err(err),
        };
        probes.push(OktaProbe {
            org: pipeline.label(),
            org_url: api.org_url.clone(),
            filter,
            outcome,
        });
    }
    Ok(probes)
}

/// What the live check found for one use of the API beyond reconciliation: live context, or a
/// response, each asking for its own scopes.
#[derive(Debug)]
pub struct ScopeProbe {
    /// `the top-level org` or `okta.orgs "acme"`.
    pub org: String,
    /// The org URL.
    pub org_url: String,
    /// What needs the scopes: `live context`, `response "contain-takeover"`.
    pub purpose: String,
    /// The scopes it asks for.
    pub scopes: Vec<&'static str>,
    /// Whether Okta grants the app a token with those scopes; `None` for an API token, whose
    /// admin's role decides (there is no scope to ask for).
    pub outcome: Option<Result<(), OktaApiError>>,
}

/// Asks Okta for a token with the scopes of each use beyond reconciliation, as the service
/// would at its first alert: live context (`okta.users.read`, `okta.roles.read`) for each org
/// with `[okta.context] enabled`, and each response's (`ResponseConfig::scopes`).
pub async fn probe_scopes(config: &Config) -> Vec<ScopeProbe> {
    let mut probes = Vec::new();
    for pipeline in config.pipelines() {
        let Some(api) = pipeline.api.as_ref() else {
            continue;
        };
        let context = pipeline
            .context
            .enabled
            .then(|| ("live context".to_owned(), CONTEXT_SCOPES.to_vec()));
        let responses = pipeline
            .responses
            .iter()
            .map(|r| (format!("response {:?}", r.name), r.scopes()));
        for (purpose, scopes) in context.into_iter().chain(responses) {
            let org = pipeline.org.as_deref().unwrap_or_default();
            let outcome = match OktaClient::new(api, &scopes, org) {
                Ok(client) if client.uses_oauth() => Some(client.check_credentials().await),
                Ok(_) => None,
                Err(err) => Some(Err(err)),
            };
            probes.push(ScopeProbe {
                org: pipeline.label(),
                org_url: api.org_url.clone(),
                purpose,
                scopes,
                outcome,
            });
        }
    }
    probes
}

async fn read_one(client: &OktaClient, filter: Option<String>) -> Result<(), OktaApiError> {
    let since = crate::clock::rfc3339(crate::clock::now_ms().saturating_sub(60_000));
    let request = LogsRequest::Poll {
        since,
        filter,
        limit: 1,
    };
    client.list_logs(&request).await.map(drop)
}
