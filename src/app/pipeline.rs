//! One org's pipeline, from its configuration to its running workers: [`preflight`] checks and
//! builds what `serve` needs before it opens anything, [`Pipeline::open`] opens the org's spool,
//! [`Pipeline::start`] spawns its detector and forwarders and hands out what the listener, the
//! admin API and the SIGHUP handler need of it.

use std::sync::Arc;

use anyhow::Context;
use axum::http::HeaderName;
use tokio::sync::Notify;
use tracing::Instrument;

use super::workers::{OrgReload, Workers, record_rules_loaded};
use crate::admin::AdminOrg;
use crate::alert::AlertFormat;
use crate::cluster::SharedState;
use crate::config::{Config, PipelineConfig, ServerConfig, SinkConfig};
use crate::detect::event_types::TypePattern;
use crate::detect::live_context::{CONTEXT_SCOPES, LiveContext};
use crate::detect::{Detector, RuleSet, SharedRules};
use crate::forward::{Forwarder, RetryPolicy, SinkHealth};
use crate::http::tls::ReloadingTls;
use crate::http::{HookState, OrgStatus};
use crate::okta_api::OktaClient;
use crate::reconcile::backfill::Backfill;
use crate::reconcile::{ALWAYS_READ_PREFIX, FilterSource, OWN_EVENT_PREFIX, Poller, PollerStatus};
use crate::respond::act::SsfSender;
use crate::respond::ssf::SetSigner;
use crate::respond::{Responder, ResponderParts, ResponseConfig};
use crate::secret::{HookSecrets, SourcedSecret};
use crate::sinks::{self, Sink};
use crate::spool::Spool;
use crate::telemetry::tally::Tallies;

/// What `serve` checks and builds before it opens a spool or a port: every org's rules loaded,
/// every sink built (connecting to nothing yet), the TLS certificate read. `check-config` runs
/// exactly this, so it accepts what `serve` accepts; `serve` runs it once.
pub struct Preflight {
    /// Each org's rules and sinks, in [`Config::pipelines`] order.
    pub(super) pipelines: Vec<PreparedPipeline>,
    /// The listener's certificate, when `[server.tls]` is set.
    pub(super) tls: Option<ReloadingTls>,
    /// The documents the hook listener publishes (path, JSON): with `[ssf]`, the JWKS and the
    /// SSF transmitter metadata Okta's receiver reads.
    pub(super) published: Vec<(String, serde_json::Value)>,
}

/// One org's configuration with its secrets read, its rules loaded, its sinks built, and its Okta
/// API client when `[okta.api]` is set.
pub(super) struct PreparedPipeline {
    config: PipelineConfig,
    secrets: Vec<SourcedSecret>,
    rules: RuleSet,
    sinks: Vec<Arc<dyn Sink>>,
    okta: Option<OktaClient>,
    live_context: Option<Arc<LiveContext>>,
    /// Each response with its own Okta client (asking for the scopes its actions need).
    responses: Vec<(ResponseConfig, OktaClient)>,
    /// The SSF signer, when a response pushes Security Event Tokens.
    ssf: Option<Arc<SsfSender>>,
}

/// Runs every check `serve` runs before it listens, and keeps what they built for it.
pub fn preflight(config: &Config) -> anyhow::Result<Preflight> {
    config.require_secret()?;
    let pipelines = config
        .pipelines()
        .into_iter()
        .map(PreparedPipeline::new)
        .collect::<anyhow::Result<Vec<_>>>()?;
    let tls = config
        .server
        .tls
        .as_ref()
        .map(ReloadingTls::new)
        .transpose()
        .context("server.tls")?;
    let published = ssf_documents(config)?;
    Ok(Preflight {
        pipelines,
        tls,
        published,
    })
}

/// With `[ssf]`: the public keys at `jwks_path` and the transmitter metadata at
/// `/.well-known/ssf-configuration`, which Okta's SSF receiver fetches.
fn ssf_documents(config: &Config) -> anyhow::Result<Vec<(String, serde_json::Value)>> {
    let Some(ssf) = &config.ssf else {
        return Ok(Vec::new());
    };
    let signer = SetSigner::load(&ssf.signing_key_file, ssf.key_id.clone()).context("ssf")?;
    let metadata = crate::respond::ssf::ssf_configuration(&ssf.issuer, &ssf.jwks_url());
    Ok(vec![
        (ssf.jwks_path.clone(), signer.jwks()),
        (SSF_CONFIGURATION_PATH.to_owned(), metadata),
    ])
}

/// Where an SSF transmitter publishes its metadata (the SSF specification's well-known path).
pub const SSF_CONFIGURATION_PATH: &str = "/.well-known/ssf-configuration";

impl PreparedPipeline {
    /// Reads the org's secrets, loads its rules and builds its sinks; errors name the org.
    fn new(config: PipelineConfig) -> anyhow::Result<Self> {
        let scope = |err| config.scoped(err);
        let secrets = config.secrets.read().map_err(|err| scope(err.into()))?;
        let rules = RuleSet::load(&config.rules).map_err(scope)?;
        let sinks = config
            .sinks
            .iter()
            .map(|sink| {
                sinks::build(sink).with_context(|| format!("sinks: sink {:?}", sink.name()))
            })
            .collect::<anyhow::Result<Vec<_>>>()
            .map_err(scope)?;
        let okta = api_client(&config).map_err(scope)?;
        let live_context = live_context(&config).map_err(scope)?;
        let responses = response_clients(&config).map_err(scope)?;
        let ssf = ssf_sender(&config).map_err(scope)?;
        Ok(Self {
            config,
            secrets,
            rules,
            sinks,
            okta,
            live_context,
            responses,
            ssf,
        })
    }
}

/// Each response of an org with a client of its own, whose token asks for that response's
/// scopes only: a scope granted for reconciliation but not for acting costs nothing else.
fn response_clients(config: &PipelineConfig) -> anyhow::Result<Vec<(ResponseConfig, OktaClient)>> {
    let org = config.org.as_deref().unwrap_or_default();
    config
        .responses
        .iter()
        .map(|response| {
            let api = config.api.as_ref().context("responses need [okta.api]")?;
            let client = OktaClient::new(api, &response.scopes(), org)
                .with_context(|| format!("responses: {:?}: okta.api", response.name))?;
            Ok((response.clone(), client))
        })
        .collect()
}

/// The SSF sender of an org whose responses push Security Event Tokens: `[ssf]`'s key (read
/// now, so a bad key fails `check-config`), its issuer, the org's URL as the audience.
fn ssf_sender(config: &PipelineConfig) -> anyhow::Result<Option<Arc<SsfSender>>> {
    let (Some(ssf), Some(api)) = (&config.ssf, &config.api) else {
        return Ok(None);
    };
    if !config.responses.iter().any(ResponseConfig::uses_ssf) {
        return Ok(None);
    }
    let signer = SetSigner::load(&ssf.signing_key_file, ssf.key_id.clone()).context("ssf")?;
    Ok(Some(Arc::new(SsfSender {
        signer,
        issuer: ssf.issuer.clone(),
        audience: api.org_url.clone(),
    })))
}

/// The Okta API client of an org with `[okta.api]`, for its System Log poller and `backfill`
/// (reading the private key now, so a bad key fails `check-config` and the start).
fn api_client(config: &PipelineConfig) -> anyhow::Result<Option<OktaClient>> {
    let Some(api) = config.api.as_ref() else {
        return Ok(None);
    };
    let org = config.org.as_deref().unwrap_or_default();
    let client = OktaClient::new(api, RECONCILE_SCOPES, org).context("okta.api")?;
    Ok(Some(client))
}

/// The live context of an org with `[okta.context] enabled`: a client of its own, whose token
/// asks for the context's scopes only, so a scope not granted for it never costs reconciliation
/// its token.
fn live_context(config: &PipelineConfig) -> anyhow::Result<Option<Arc<LiveContext>>> {
    let Some(api) = config.api.as_ref().filter(|_| config.context.enabled) else {
        return Ok(None);
    };
    let org = config.org.as_deref().unwrap_or_default();
    let client = OktaClient::new(api, CONTEXT_SCOPES, org).context("okta.api")?;
    Ok(Some(Arc::new(LiveContext::new(client, &config.context))))
}

/// The OAuth scopes reconciliation and `backfill` need: reading the System Log.
pub const RECONCILE_SCOPES: &[&str] = &["okta.logs.read"];

/// One org's pipeline, built and not yet running: its spool, rules and sinks. The top-level org
/// and every `[[okta.orgs]]` org are built and run by the same code; they share nothing but the
/// listener, the guard and the process.
pub(super) struct Pipeline {
    config: PipelineConfig,
    /// The org's name, as alerts, logs and metric labels carry it.
    org: Option<Arc<str>>,
    /// Where its batches, outbox and dead letters live.
    spool: Arc<Spool>,
    /// Its rules in force (reloaded on SIGHUP).
    rules: SharedRules,
    /// The secrets its hook accepts (reloaded on SIGHUP and through the admin API).
    secrets: Arc<HookSecrets>,
    /// Its destinations, one forwarder each.
    sinks: Vec<Arc<dyn Sink>>,
    /// Its Okta API client, when `[okta.api]` is set.
    okta: Option<OktaClient>,
    /// Its live Okta context on MFA alerts, when `[okta.context] enabled`.
    live_context: Option<Arc<LiveContext>>,
    /// What its detector counts for `backfill`.
    tallies: Arc<Tallies>,
    /// Its responses and their clients, made responders at the start.
    responses: Vec<(ResponseConfig, OktaClient)>,
    /// The SSF signer of its `ssf_*` actions.
    ssf: Option<Arc<SsfSender>>,
}

/// What a running pipeline hands to the HTTP server, the admin API and the shared workers.
struct Started {
    /// Its hook route's state.
    hook: HookState,
    /// What `/readyz` and `/metrics` report of it.
    status: OrgStatus,
    /// Its dead letters, for the admin API.
    admin: AdminOrg,
    /// Its rules and secrets, for SIGHUP.
    reload: OrgReload,
}

/// What every running pipeline handed over, gathered by who takes it, in pipeline order.
#[derive(Default)]
pub(super) struct Orgs {
    /// The hook routes, for the router.
    pub(super) hooks: Vec<HookState>,
    /// For `/readyz`, `/metrics` and the maintenance task.
    pub(super) statuses: Vec<OrgStatus>,
    /// For the admin API.
    pub(super) admin: Vec<AdminOrg>,
    /// For the SIGHUP handler.
    pub(super) reloads: Vec<OrgReload>,
}

impl Orgs {
    fn push(&mut self, started: Started) {
        self.hooks.push(started.hook);
        self.statuses.push(started.status);
        self.admin.push(started.admin);
        self.reloads.push(started.reload);
    }
}

/// What every pipeline's workers share.
pub(super) struct Shared<'a> {
    /// `[server]` and `[delivery]` are the same for every org.
    pub(super) config: &'a Config,
    /// This process's name in the cluster (one per data directory).
    pub(super) replica: &'a str,
}

/// The wake-ups of one org's workers: the detector's (intake rings it) and one per sink, in
/// sink order (the detector and the admin API ring them).
struct Wakes {
    detector: Arc<Notify>,
    forwarders: Vec<Arc<Notify>>,
}

impl Wakes {
    fn new(sinks: usize) -> Self {
        Self {
            detector: Arc::new(Notify::new()),
            forwarders: (0..sinks).map(|_| Arc::new(Notify::new())).collect(),
        }
    }
}

/// Starts every pipeline, in order, their workers in `workers`; fails on the first that cannot.
pub(super) fn start_all(
    pipelines: Vec<Pipeline>,
    shared: &Shared<'_>,
    workers: &mut Workers,
) -> anyhow::Result<Orgs> {
    let mut orgs = Orgs::default();
    for pipeline in pipelines {
        orgs.push(pipeline.start(shared, workers)?);
    }
    Ok(orgs)
}

impl Pipeline {
    /// Opens the spool of a prepared org.
    pub(super) fn open(prepared: PreparedPipeline, max_backlog_bytes: u64) -> anyhow::Result<Self> {
        let PreparedPipeline {
            config,
            secrets,
            rules,
            sinks,
            okta,
            live_context,
            responses,
            ssf,
        } = prepared;
        let org: Option<Arc<str>> = config.org.as_deref().map(Arc::from);
        let scope = |err| config.scoped(err);
        record_rules_loaded(org.as_deref(), rules.len());
        let spool = Spool::open(&config.data_dir, max_backlog_bytes)
            .context("cannot open the spool")
            .map_err(scope)?;
        sinks::prepare_all(&config.sinks);
        warn_about_stranded_alerts(&spool, &config.sinks, &config.responses);
        let secrets = HookSecrets::new(org.clone(), config.secrets.clone(), &secrets);
        Ok(Self {
            org,
            spool: Arc::new(spool),
            rules: SharedRules::new(rules),
            secrets: Arc::new(secrets),
            sinks,
            okta,
            live_context,
            config,
            tallies: Arc::default(),
            responses,
            ssf,
        })
    }

    /// Logs what this org serves.
    pub(super) fn log_ready(&self) {
        tracing::info!(
            org = self.org.as_deref(),
            hook_path = %self.config.hook_path,
            rules = self.rules.current().len(),
            sinks = ?self.sinks.iter().map(|s| s.name()).collect::<Vec<_>>(),
            spool = %self.spool.path().display(),
            backlog_batches = self.spool.backlog().batches,
            "org served"
        );
    }

    /// Spawns the org's detector and forwarders into `workers`; returns what the HTTP server,
    /// the admin API and the SIGHUP handler need of this org.
    fn start(self, shared: &Shared<'_>, workers: &mut Workers) -> anyhow::Result<Started> {
        let auth_header = self.auth_header()?;
        let cluster = SharedState::new(&self.config.cluster, shared.replica).map(Arc::new);
        let responders = self.responders(cluster.clone());
        let wakes = Wakes::new(self.sinks.len() + responders.len());
        let cluster_status = cluster.as_ref().map(|state| state.status.clone());
        let health = SinkHealth::for_org(self.org.clone());
        let reconcile = self.spawn_poller(workers, &wakes, cluster.clone());
        self.spawn_workers(shared, workers, &wakes, cluster, &health, &responders);
        Ok(Started {
            hook: self.hook_state(&shared.config.server, auth_header, wakes.detector.clone()),
            status: OrgStatus {
                org: self.org.clone(),
                spool: self.spool.clone(),
                sink_health: health,
                cluster: cluster_status,
                reconcile,
            },
            admin: self.admin_org(wakes, responders),
            reload: OrgReload {
                org: self.org,
                rules: self.rules,
                config: self.config.rules,
                secrets: self.secrets,
            },
        })
    }

    /// The header the org's Okta sends its secret in.
    fn auth_header(&self) -> anyhow::Result<HeaderName> {
        self.config.auth_header.parse().with_context(|| {
            format!(
                "{}: auth_header is not a valid header name",
                self.config.label()
            )
        })
    }

    /// The org's responses, running: each a sink of the delivery loop.
    fn responders(&self, cluster: Option<Arc<SharedState>>) -> Vec<Arc<Responder>> {
        let org_url = self.config.api.as_ref().map(|api| api.org_url.clone());
        let sinks: Arc<[SinkConfig]> = self.config.sinks.clone().into();
        self.responses
            .iter()
            .map(|(config, okta)| {
                let parts = ResponderParts {
                    okta: okta.clone(),
                    org_url: org_url.clone().unwrap_or_default(),
                    ssf: self.ssf.clone(),
                    spool: self.spool.clone(),
                    sinks: sinks.clone(),
                    cluster: cluster.clone(),
                };
                Arc::new(Responder::new(config.clone(), parts))
            })
            .collect()
    }

    /// Spawns the detector and one forwarder per sink and per response into `workers`.
    fn spawn_workers(
        &self,
        shared: &Shared<'_>,
        workers: &mut Workers,
        wakes: &Wakes,
        cluster: Option<Arc<SharedState>>,
        health: &SinkHealth,
        responders: &[Arc<Responder>],
    ) {
        // Every log line of this org's workers names the org; the top-level org's stay as they were.
        let span = match &self.org {
            Some(name) => tracing::info_span!("org", org = %name),
            None => tracing::Span::none(),
        };
        let detector = self.detector(wakes, cluster);
        workers.spawn(|stop| {
            detector
                .run(wakes.detector.clone(), stop)
                .instrument(span.clone())
        });
        let formats = self.config.sinks.iter().map(|config| config.format);
        // A responder reads the alert itself; it is handed factorwatch's document.
        let responding = responders
            .iter()
            .map(|r| (r.clone() as Arc<dyn Sink>, AlertFormat::Factorwatch));
        let destinations = self.sinks.iter().cloned().zip(formats).chain(responding);
        for ((sink, format), wake) in destinations.zip(&wakes.forwarders) {
            let forwarder = Forwarder {
                sink,
                format,
                spool: self.spool.clone(),
                policy: RetryPolicy(shared.config.delivery.clone()),
                health: health.clone(),
            };
            workers.spawn(|stop| forwarder.run(wake.clone(), stop).instrument(span.clone()));
        }
    }

    /// Spawns the org's System Log poller when it reconciles; returns what `/readyz` shows of it.
    fn spawn_poller(
        &self,
        workers: &mut Workers,
        wakes: &Wakes,
        cluster: Option<Arc<SharedState>>,
    ) -> Option<Arc<PollerStatus>> {
        if !self.config.reconcile.enabled {
            return None;
        }
        let client = self.okta.clone()?;
        let api = self.config.api.as_ref()?;
        let status = Arc::new(PollerStatus::default());
        let poller = Poller {
            org: self.org.clone(),
            client,
            org_url: api.org_url.clone(),
            config: self.config.reconcile.clone(),
            spool: self.spool.clone(),
            detector: wakes.detector.clone(),
            filter: self.filter_source(),
            shared: cluster,
            status: status.clone(),
        };
        let span = match &self.org {
            Some(name) => tracing::info_span!("reconcile", org = %name),
            None => tracing::info_span!("reconcile"),
        };
        workers.spawn(|stop| poller.run(stop).instrument(span));
        Some(status)
    }

    /// The System Log filter of the org's rules in force.
    fn filter_source(&self) -> FilterSource {
        let rules = self.rules.clone();
        Arc::new(move || system_log_filter(&rules.current()))
    }

    /// What `backfill` needs of the org, when it has `[okta.api]`.
    fn backfill(&self, wakes: &Wakes) -> Option<Backfill> {
        Some(Backfill {
            client: self.okta.clone()?,
            org_url: self.config.api.as_ref()?.org_url.clone(),
            spool: self.spool.clone(),
            detector: wakes.detector.clone(),
            tallies: self.tallies.clone(),
            filter: self.filter_source(),
            config: self.config.reconcile.clone(),
        })
    }

    /// The org's detector, waking its forwarders; `cluster` in cluster mode.
    fn detector(&self, wakes: &Wakes, cluster: Option<Arc<SharedState>>) -> Detector {
        Detector {
            rules: self.rules.clone(),
            spool: self.spool.clone(),
            sinks: self.config.sinks.clone().into(),
            responses: self
                .config
                .responses
                .iter()
                .map(|response| (response.outbox(), response.when.clone()))
                .collect(),
            dedup_window: self.config.rules.dedup_window,
            privileged_users: self.config.rules.privileged_users.clone().into(),
            live_context: self.live_context.clone(),
            forwarders: wakes.forwarders.clone(),
            shared: cluster,
            org: self.org.clone(),
            tallies: self.tallies.clone(),
            incident_window: self.config.rules.incident_window,
        }
    }

    /// The org's hook route: stores into its spool and wakes `detector`.
    fn hook_state(
        &self,
        server: &ServerConfig,
        auth_header: HeaderName,
        detector: Arc<Notify>,
    ) -> HookState {
        HookState {
            org: self.org.clone(),
            path: self.config.hook_path.clone(),
            spool: self.spool.clone(),
            secrets: self.secrets.clone(),
            auth_header,
            max_body_bytes: server.max_body_bytes,
            request_timeout: server.request_timeout,
            detector,
        }
    }

    /// The org's dead letters and sinks, each with its forwarder's wake-up, its backfill and its
    /// secrets, for the admin API.
    fn admin_org(&self, wakes: Wakes, responders: Vec<Arc<Responder>>) -> AdminOrg {
        AdminOrg {
            org: self.config.org.clone(),
            spool: self.spool.clone(),
            secrets: self.secrets.clone(),
            backfill: self.backfill(&wakes),
            sinks: self
                .sinks
                .iter()
                .map(|s| s.name().to_owned())
                .chain(responders.iter().map(|r| r.name().to_owned()))
                .zip(wakes.forwarders)
                .collect(),
            responders,
        }
    }
}

/// The System Log filter for `rules`: the event types they can match but those factorwatch makes
/// itself, and every `event_hook.*`.
pub fn system_log_filter(rules: &RuleSet) -> Option<String> {
    let always = TypePattern::Prefix(ALWAYS_READ_PREFIX.to_owned());
    let types = rules.event_types().without_prefix(OWN_EVENT_PREFIX);
    types.with([always]).system_log_filter()
}

/// Alerts queued for a sink that is no longer configured would wait forever: say so at start.
fn warn_about_stranded_alerts(
    spool: &Spool,
    configured: &[SinkConfig],
    responses: &[ResponseConfig],
) {
    for (sink, counts) in spool.backlog().sinks {
        let known = configured.iter().any(|s| s.name() == sink)
            || responses.iter().any(|r| r.outbox() == sink);
        if counts.pending > 0 && !known {
            tracing::warn!(
                spool = %spool.path().display(),
                sink = %sink,
                pending = counts.pending,
                "alerts wait in the outbox of a sink that is no longer configured; add the sink \
                 back under its old name to deliver them"
            );
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The rule "Okta Event Hook Silent" matches an event factorwatch makes: Okta is not asked
    /// for it.
    #[test]
    fn the_system_log_filter_leaves_out_factorwatchs_own_events() {
        let rules = RuleSet::load(&crate::detect::RulesConfig::default()).unwrap();
        let filter = system_log_filter(&rules).expect("bounded");
        assert!(!filter.contains(OWN_EVENT_PREFIX), "{filter}");
        assert!(filter.contains("event_hook."), "{filter}");
    }

    /// `check-config` and `serve` share this: a certificate file that cannot be read fails
    /// before anything opens, and the error names the file.
    #[test]
    fn preflight_reads_the_tls_files() {
        let mut config = Config::from_toml(
            "[okta]\nsecrets = [\"s\"]\n[server.tls]\ncert_path = \"/nope.pem\"\nkey_path = \"/nope.key\"\n",
        )
        .unwrap();
        config.storage.data_dir = "/nonexistent/never-opened".into();
        let err = preflight(&config)
            .err()
            .expect("a missing certificate is refused");
        assert!(format!("{err:#}").contains("/nope.pem"), "{err:#}");
        assert!(!config.storage.data_dir.exists());
    }
}
