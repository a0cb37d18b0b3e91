//! `factorwatch okta …`: the event hook through Okta's API. `register` creates or updates the
//! hook and has Okta verify it; `doctor` says whether the org is covered and what to do where it
//! is not; `rotate-secret` changes the hook's secret without losing a delivery.

pub mod doctor;
pub mod register;
pub mod register_ssf;
pub mod rotate;

use std::path::Path;

use anyhow::Context;
use clap::Subcommand;

use crate::config::{Config, PipelineConfig};
use crate::detect::rules::RuleSet;
use crate::hook_lifecycle::coverage::{Route, RuleCoverage};
use crate::okta_api::{OktaApiConfig, OktaClient};

/// The `okta` subcommands.
#[derive(Subcommand)]
pub enum OktaCommand {
    /// Create or update this deployment's event hook in Okta, subscribed to exactly the
    /// hook-eligible event types the loaded rules can match; activate it and have Okta verify it
    /// against the running service.
    Register {
        /// The public URL Okta calls: https://HOST/HOOK_PATH (the org's hook path).
        #[arg(long)]
        url: String,
        /// The `[[okta.orgs]]` org (default: the top-level org).
        #[arg(long)]
        org: Option<String>,
        /// The hook's name in Okta (default: `hook_name` of the org, `factorwatch`).
        #[arg(long)]
        name: Option<String>,
        /// Print what would change, change nothing.
        #[arg(long)]
        dry_run: bool,
    },
    /// Say whether the org is covered: the hook's state, each rule's event types and how they
    /// arrive, the API credentials, the poller. Exit status 1 when something needs doing.
    Doctor {
        /// The `[[okta.orgs]]` org (default: the top-level org).
        #[arg(long)]
        org: Option<String>,
        /// Print the report as JSON.
        #[arg(long)]
        json: bool,
    },
    /// Rotate the hook's secret without downtime: a new secret added to the org's secrets file
    /// and reloaded, the hook updated to send it and verified, the old one removed once a
    /// delivery with the new one was seen (on this replica).
    RotateSecret {
        /// The `[[okta.orgs]]` org (default: the top-level org).
        #[arg(long)]
        org: Option<String>,
        /// The hook's name in Okta (default: `hook_name` of the org).
        #[arg(long)]
        name: Option<String>,
        /// How long to wait for a delivery with the new secret (10m, 90s).
        #[arg(long, default_value = "10m", value_parser = humantime::parse_duration)]
        wait: std::time::Duration,
        /// Only drop the old secrets, once a delivery with the newest one was seen (after a
        /// rotation that stopped waiting).
        #[arg(long)]
        finish: bool,
    },
    /// Register factorwatch with the org's Shared Signals receiver as a Security Events
    /// Provider (`[ssf]` issuer and JWKS address), for the `ssf_*` response actions. Prints
    /// the plan; registers only with --apply.
    RegisterSsf {
        /// The `[[okta.orgs]]` org (default: the top-level org).
        #[arg(long)]
        org: Option<String>,
        /// The provider's name in Okta.
        #[arg(long, default_value = "factorwatch")]
        name: String,
        /// Register it (without: print what would be done).
        #[arg(long)]
        apply: bool,
    },
}

/// Runs an `okta` subcommand with the configuration at `config`.
pub async fn run(config: Option<&Path>, command: OktaCommand) -> anyhow::Result<()> {
    match command {
        OktaCommand::Register {
            url,
            org,
            name,
            dry_run,
        } => {
            let target = Target::load(config, org.as_deref())?;
            let options = register::Options { url, name, dry_run };
            register::run(&target, options).await
        }
        OktaCommand::Doctor { org, json } => {
            let target = Target::load(config, org.as_deref())?;
            doctor::run(&target, json).await
        }
        OktaCommand::RotateSecret {
            org,
            name,
            wait,
            finish,
        } => {
            let target = Target::load(config, org.as_deref())?;
            let options = rotate::Options { name, wait, finish };
            rotate::run(&target, options).await
        }
        OktaCommand::RegisterSsf { org, name, apply } => {
            let target = Target::load(config, org.as_deref())?;
            register_ssf::run(&target, register_ssf::Options { name, apply }).await
        }
    }
}

/// The org a command works on: its configuration and its loaded rules.
pub struct Target {
    /// The whole configuration (the listener's address, the admin API).
    pub config: Config,
    /// The org's pipeline.
    pub pipeline: PipelineConfig,
    /// Its rules, as the service loads them.
    pub rules: RuleSet,
}

impl Target {
    /// Loads the configuration and the org's rules.
    fn load(path: Option<&Path>, org: Option<&str>) -> anyhow::Result<Self> {
        let config = Config::load(path)?;
        let pipeline = config.pipeline(org)?;
        let rules = RuleSet::load(&pipeline.rules).context("rules")?;
        Ok(Self {
            config,
            pipeline,
            rules,
        })
    }

    /// The org's `[okta.api]`, required.
    fn api(&self) -> anyhow::Result<&OktaApiConfig> {
        self.pipeline.api.as_ref().with_context(|| {
            format!(
                "{} has no [okta.api]: the okta commands talk to Okta's Management API; \
                 configure an API Services app as docs/okta-setup.md shows",
                self.pipeline.label()
            )
        })
    }

    /// A client of the org's API with `scopes`.
    fn client(&self, scopes: &[&str]) -> anyhow::Result<OktaClient> {
        let org = self.pipeline.org.as_deref().unwrap_or_default();
        OktaClient::new(self.api()?, scopes, org).context("okta.api")
    }

    /// The org as messages name it.
    fn org_name(&self) -> &str {
        self.pipeline.org.as_deref().unwrap_or("(top-level)")
    }

    /// Whether the System Log poller runs for this org.
    fn reconciling(&self) -> bool {
        self.pipeline.api.is_some() && self.pipeline.reconcile.enabled
    }
}

/// The types of `coverage` that arrive by `route`, each with the titles of the rules needing
/// it, sorted.
fn types_by_route(coverage: &[RuleCoverage], route: Route) -> Vec<(String, Vec<String>)> {
    let mut types: std::collections::BTreeMap<String, Vec<String>> = Default::default();
    for rule in coverage {
        for needed in rule.types.iter().filter(|t| t.route == route) {
            types
                .entry(needed.event_type.clone())
                .or_default()
                .push(rule.title.clone());
        }
    }
    types.into_iter().collect()
}
