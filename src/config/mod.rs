//! Configuration: the TOML file, environment overrides, defaults and validation.
//!
//! Every field's `///` doc is user documentation (docs/configuration.md repeats it with examples).
//! Unknown keys are rejected with their name, so a typo never silently falls back to a default.
//!
//! Precedence, lowest first: built-in defaults, the TOML file (`--config` or `FACTORWATCH_CONFIG`),
//! then the `FACTORWATCH_*` environment variables listed on [`Config::apply_env`]. Secrets files are
//! read when an org's pipeline is prepared (and again on reload), not here.

use std::path::Path;

use anyhow::Context;
use serde::{Deserialize, Serialize};

mod env;
mod orgs;
mod pipeline;

pub use orgs::{OktaConfig, OrgConfig};
pub use pipeline::PipelineConfig;

pub use crate::brokers::ServerUrl;
pub use crate::cluster::{ClusterConfig, ClusterMode};
pub use crate::detect::RulesConfig;
pub use crate::detect::live_context::OktaContextConfig;
pub use crate::forward::DeliveryConfig;
pub use crate::http::{RateLimitConfig, ServerConfig, TlsConfig};
pub use crate::okta_api::OktaApiConfig;
pub use crate::reconcile::ReconcileConfig;
pub use crate::respond::{ResponseConfig, SsfConfig};
pub use crate::sinks::{NotifyPolicy, SinkConfig, SinkKind};
pub use crate::spool::StorageConfig;
pub use crate::telemetry::{LogConfig, LogFormat};

use crate::respond::check_responses;
use crate::sinks::check_sinks;
use orgs::check_auth;
use pipeline::sinks_or_default;

/// The whole configuration of one factorwatch process.
#[derive(Debug, Clone, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct Config {
    /// The HTTP listener and the hook endpoint.
    pub server: ServerConfig,
    /// How Okta authenticates to us.
    pub okta: OktaConfig,
    /// Where the durable spool lives and how large its backlog may grow.
    pub storage: StorageConfig,
    /// Which Sigma rules run and how events are de-duplicated.
    pub rules: RulesConfig,
    /// Retry and dead-letter policy shared by every sink.
    pub delivery: DeliveryConfig,
    /// Log format and verbosity.
    pub log: LogConfig,
    /// Where alerts go. Empty means one file sink writing `<data_dir>/alerts.jsonl`.
    pub sinks: Vec<SinkConfig>,
    /// State shared with other replicas behind the same load balancer.
    pub cluster: ClusterConfig,
    /// What to do in Okta about the alerts of the top-level org (docs/responses.md). Empty:
    /// nothing; each response is dry-run unless it says `mode = "enforce"`.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub responses: Vec<ResponseConfig>,
    /// factorwatch as a Shared Signals transmitter: the key that signs the Security Event Tokens
    /// of `ssf_*` actions, and where its public keys are served.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ssf: Option<SsfConfig>,
}

impl Config {
    /// Reads the file at `path` (if any), applies environment overrides and validates the result.
    pub fn load(path: Option<&Path>) -> anyhow::Result<Self> {
        let mut config = match path {
            Some(path) => Self::from_file(path)?,
            None => Self::default(),
        };
        config.apply_env()?;
        config.validate()?;
        Ok(config)
    }

    /// Parses a TOML file. Errors name the file, the key and the line.
    pub fn from_file(path: &Path) -> anyhow::Result<Self> {
        let text = std::fs::read_to_string(path)
            .with_context(|| format!("cannot read config file {}", path.display()))?;
        Self::from_toml(&text).with_context(|| format!("invalid config file {}", path.display()))
    }

    /// Parses TOML text. The error names the key and the line, but never quotes the line: it may
    /// hold a secret.
    pub fn from_toml(text: &str) -> anyhow::Result<Self> {
        toml::from_str(text).map_err(|err| {
            let position = err.span().map(|span| {
                let before = &text[..span.start.min(text.len())];
                let line = before.matches('\n').count() + 1;
                let column = before.len() - before.rfind('\n').map_or(0, |i| i + 1) + 1;
                format!(" (line {line}, column {column})")
            });
            anyhow::anyhow!(
                "{}{}",
                err.message().trim_end(),
                position.unwrap_or_default()
            )
        })
    }

    /// Checks what the types alone cannot, each part by the component that owns it, without
    /// touching the disk or the network (that is [`crate::app::preflight`]'s job, which `serve`
    /// and `check-config` both run). Each error names the key at fault.
    pub fn validate(&self) -> anyhow::Result<()> {
        self.cluster.validate()?;
        self.server.validate()?;
        check_auth("okta", &self.okta.auth_header, &self.okta.secrets)?;
        orgs::check_hook_name("okta", self.okta.hook_name.as_deref())?;
        orgs::check_api(
            "okta",
            self.okta.api.as_ref(),
            &self.okta.reconcile,
            &self.okta.context,
        )?;
        self.delivery.validate()?;
        self.storage.validate()?;
        self.log.validate()?;
        check_sinks("sinks", &self.sinks)?;
        if let Some(ssf) = &self.ssf {
            ssf.validate()?;
            let hook_paths = std::iter::once(&self.server.hook_path)
                .chain(self.okta.orgs.iter().map(|org| &org.hook_path));
            for path in hook_paths {
                anyhow::ensure!(
                    *path != ssf.jwks_path,
                    "ssf.jwks_path {:?} is also a hook path; give the keys a path of their own",
                    ssf.jwks_path
                );
            }
        }
        check_responses(
            "responses",
            &self.responses,
            self.okta.api.is_some(),
            self.ssf.is_some(),
        )?;
        self.rules.validate("rules")?;
        self.validate_orgs()
    }

    /// The configuration as TOML with every secret replaced by `<redacted>`, and the default
    /// alert files shown where no sink is configured.
    pub fn to_redacted_toml(&self) -> anyhow::Result<String> {
        let mut effective = self.clone();
        effective.sinks = self.effective_sinks();
        for org in &mut effective.okta.orgs {
            org.sinks = sinks_or_default(&org.sinks, &self.org_data_dir(&org.name));
        }
        Ok(toml::to_string_pretty(&effective)?)
    }
}

#[cfg(test)]
mod tests;
