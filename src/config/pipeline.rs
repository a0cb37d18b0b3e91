//! Each org served, with every default resolved: what the application builds a pipeline from.

use std::path::{Path, PathBuf};

use super::{ClusterConfig, Config, RulesConfig, SinkConfig};
use crate::detect::live_context::OktaContextConfig;
use crate::detect::placeholders::{
    self, API_CLIENTS, DEFAULT_HOOK_NAME, HOOK_NAMES, NO_API_CLIENT,
};
use crate::okta_api::OktaApiConfig;
use crate::reconcile::ReconcileConfig;
use crate::respond::{ResponseConfig, SsfConfig};
use crate::secret::{SecretSource, SecretSources};

/// One org's pipeline with every default resolved: what the application builds a hook, a spool,
/// a detector and forwarders from. [`Config::pipelines`] lists them.
#[derive(Debug, Clone)]
pub struct PipelineConfig {
    /// The `[[okta.orgs]]` name; `None` for the top-level org (`[okta]`, `[rules]`, `[[sinks]]`
    /// on `server.hook_path`).
    pub org: Option<String>,
    /// The path its hook is served on.
    pub hook_path: String,
    /// The header its secret comes in.
    pub auth_header: String,
    /// Where the secrets its path accepts come from (read when the pipeline is prepared, and
    /// again on reload).
    pub secrets: SecretSources,
    /// The name of its event hook in Okta: `hook_name`, or `factorwatch` for the top-level org
    /// and `factorwatch-<org>` for a named org.
    pub hook_name: String,
    /// Its rules, with the placeholders naming this deployment (`%factorwatch_hook_names%`,
    /// `%factorwatch_api_clients%`) filled from its settings unless `[rules.placeholders]`
    /// defines them.
    pub rules: RulesConfig,
    /// Its sinks, the default alert file when none is configured.
    pub sinks: Vec<SinkConfig>,
    /// The directory of its spool (and default alert file).
    pub data_dir: PathBuf,
    /// `[cluster]`, with a key prefix of its own for a named org, so that two orgs never
    /// de-duplicate each other's events.
    pub cluster: ClusterConfig,
    /// Its Management API, if configured.
    pub api: Option<OktaApiConfig>,
    /// Its System Log reconciliation.
    pub reconcile: ReconcileConfig,
    /// Its live Okta context on MFA alerts.
    pub context: OktaContextConfig,
    /// What it does in Okta about its alerts.
    pub responses: Vec<ResponseConfig>,
    /// `[ssf]`, shared by every org: the key of the `ssf_*` actions.
    pub ssf: Option<SsfConfig>,
}

impl PipelineConfig {
    /// How messages name this org: `okta.orgs "acme"`, or `the top-level org`.
    pub fn label(&self) -> String {
        match &self.org {
            Some(name) => format!("okta.orgs {name:?}"),
            None => "the top-level org".to_owned(),
        }
    }

    /// `err` with the org it is about, for a named org; the top-level org's errors read as they
    /// did before `[[okta.orgs]]` existed.
    pub fn scoped(&self, err: anyhow::Error) -> anyhow::Error {
        match &self.org {
            Some(_) => err.context(self.label()),
            None => err,
        }
    }
}

impl Config {
    /// The top-level org's sinks in effect: the configured ones, or the default alert file.
    pub fn effective_sinks(&self) -> Vec<SinkConfig> {
        sinks_or_default(&self.sinks, &self.storage.data_dir)
    }

    /// The top-level org's `[rules]` as its pipeline runs them: with the deployment placeholders
    /// filled from `[okta]` (what `rules check` and `rules test` apply with `--config`).
    pub fn top_level_rules(&self) -> RulesConfig {
        deployment_rules(
            &self.rules,
            &self.top_level_hook_name(),
            self.okta.api.as_ref(),
        )
    }

    /// `[okta] hook_name`, or `factorwatch`.
    fn top_level_hook_name(&self) -> String {
        self.okta
            .hook_name
            .clone()
            .unwrap_or_else(|| DEFAULT_HOOK_NAME.into())
    }

    /// The directory of the spool (and default alert file) of the org named `org`.
    pub fn org_data_dir(&self, org: &str) -> PathBuf {
        self.storage.data_dir.join("orgs").join(org)
    }

    /// Every org to serve, defaults resolved: the top-level org first (unless `[[okta.orgs]]`
    /// are configured and it has no secret nor secrets file), then each `[[okta.orgs]]` in order.
    pub fn pipelines(&self) -> Vec<PipelineConfig> {
        let top_level =
            (self.okta.orgs.is_empty() || self.okta.has_secrets()).then(|| PipelineConfig {
                org: None,
                hook_path: self.server.hook_path.clone(),
                auth_header: self.okta.auth_header.clone(),
                secrets: SecretSources::new(
                    &self.okta.secrets,
                    &self.okta.secrets_origin,
                    self.okta.secrets_file.as_deref(),
                ),
                hook_name: self.top_level_hook_name(),
                rules: self.top_level_rules(),
                sinks: self.effective_sinks(),
                data_dir: self.storage.data_dir.clone(),
                cluster: self.cluster.clone(),
                api: self.okta.api.clone(),
                reconcile: self.okta.reconcile.clone(),
                context: self.okta.context.clone(),
                responses: self.responses.clone(),
                ssf: self.ssf.clone(),
            });
        let orgs = self.okta.orgs.iter().map(|org| {
            let data_dir = self.org_data_dir(&org.name);
            let mut cluster = self.cluster.clone();
            let prefix = cluster
                .key_prefix
                .as_deref()
                .unwrap_or(crate::cluster::DEFAULT_KEY_PREFIX);
            cluster.key_prefix = Some(format!("{prefix}org:{}:", org.name));
            let hook_name = org
                .hook_name
                .clone()
                .unwrap_or_else(|| format!("{DEFAULT_HOOK_NAME}-{}", org.name));
            let rules = org.rules.as_ref().unwrap_or(&self.rules);
            PipelineConfig {
                org: Some(org.name.clone()),
                hook_path: org.hook_path.clone(),
                auth_header: org.auth_header.clone(),
                secrets: SecretSources::new(
                    &org.secrets,
                    &SecretSource::Config,
                    org.secrets_file.as_deref(),
                ),
                rules: deployment_rules(rules, &hook_name, org.api.as_ref()),
                hook_name,
                sinks: sinks_or_default(&org.sinks, &data_dir),
                data_dir,
                cluster,
                api: org.api.clone(),
                reconcile: org.reconcile.clone(),
                context: org.context.clone(),
                responses: org.responses.clone(),
                ssf: self.ssf.clone(),
            }
        });
        top_level.into_iter().chain(orgs).collect()
    }

    /// The pipeline of the org named `org` (`None`: the top-level org), if it is served.
    pub fn pipeline(&self, org: Option<&str>) -> anyhow::Result<PipelineConfig> {
        self.pipelines()
            .into_iter()
            .find(|pipeline| pipeline.org.as_deref() == org)
            .ok_or_else(|| match org {
                Some(org) => anyhow::anyhow!("no [[okta.orgs]] org is named {org:?}"),
                None => anyhow::anyhow!(
                    "the top-level org is not served ([[okta.orgs]] are set and [okta] has no \
                     secret); name an org"
                ),
            })
    }
}

/// `rules` with the deployment placeholders filled, unless `[rules.placeholders]` defines them:
/// `%factorwatch_hook_names%` with `hook_name`, and `%factorwatch_api_clients%` with the
/// `client_id` of `api` when factorwatch calls Okta as an OAuth app. With an SSWS token its
/// changes are logged as the token's admin, whom exempting would exempt entirely, so nothing is.
fn deployment_rules(
    rules: &RulesConfig,
    hook_name: &str,
    api: Option<&OktaApiConfig>,
) -> RulesConfig {
    let client_id = api.and_then(|api| api.client_id.as_deref());
    let mut rules = rules.clone();
    for (name, value) in [
        (HOOK_NAMES, hook_name),
        (API_CLIENTS, client_id.unwrap_or(NO_API_CLIENT)),
    ] {
        rules
            .placeholders
            .entry(name.to_owned())
            .or_insert_with(|| vec![placeholders::literal(value)]);
    }
    rules
}

/// `sinks`, or when there are none the default alert file in `data_dir`.
pub(super) fn sinks_or_default(sinks: &[SinkConfig], data_dir: &Path) -> Vec<SinkConfig> {
    if sinks.is_empty() {
        vec![SinkConfig::file(
            "alerts-file",
            data_dir.join("alerts.jsonl"),
        )]
    } else {
        sinks.to_vec()
    }
}
