//! Wiring: builds every part from a [`Config`], runs them, and shuts them down in order.
//!
//! Shutdown order matters for durability: first readiness turns false and the listener stops
//! accepting; requests in flight finish (their batches are committed); then the detector and the
//! forwarders stop between two units of work; last the spool's writer commits what is queued.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use anyhow::Context;
use tokio::net::TcpListener;
use tokio::sync::Notify;
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;
use tracing::Instrument;

use crate::admin::AdminOrg;
use crate::cluster::SharedState;
use crate::config::{Config, PipelineConfig, RulesConfig};
use crate::detect::{Detector, RuleSet, SharedRules};
use crate::forward::{Forwarder, RetryPolicy, SinkHealth};
use crate::http::guard::{Guard, RateLimit};
use crate::http::serve::{ServeOptions, serve};
use crate::http::tls::ReloadingTls;
use crate::http::{AppState, HookState, OrgStatus, router};
use crate::secret::SecretSet;
use crate::sinks::{self, Sink};
use crate::spool::Spool;
use crate::telemetry::metrics::{RULE_RELOAD_FAILURES_TOTAL, RULES_LOADED};

/// How often expired de-duplication keys are pruned (also the spool's write heartbeat).
const MAINTENANCE_EVERY: Duration = Duration::from_secs(10);

/// A built, not yet running, factorwatch.
pub struct Application {
    config: Config,
    listener: TcpListener,
    admin_listener: Option<TcpListener>,
    tls: Option<ReloadingTls>,
    /// One per org served: the top-level org's first (when served), then each `[[okta.orgs]]`.
    pipelines: Vec<Pipeline>,
    hangups: Hangups,
}

/// One org's pipeline, built and not yet running: its spool, rules and sinks. The top-level org
/// and every `[[okta.orgs]]` org are built and run by the same code; they share nothing but the
/// listener, the guard and the process.
struct Pipeline {
    config: PipelineConfig,
    /// The org's name, as alerts, logs and metric labels carry it.
    org: Option<Arc<str>>,
    /// Where its batches, outbox and dead letters live.
    spool: Arc<Spool>,
    /// Its rules in force (reloaded on SIGHUP).
    rules: SharedRules,
    /// Its destinations, one forwarder each.
    sinks: Vec<Arc<dyn Sink>>,
}

/// What a running pipeline hands to the HTTP server, the admin API and the shared workers.
struct Started {
    /// Its hook route's state.
    hook: HookState,
    /// What `/readyz` and `/metrics` report of it.
    status: OrgStatus,
    /// Its dead letters, for the admin API.
    admin: AdminOrg,
    /// Its rules, for SIGHUP.
    reload: RulesReload,
}

/// What every pipeline's workers share.
struct Shared<'a> {
    /// `[server]` and `[delivery]` are the same for every org.
    config: &'a Config,
    /// This process's name in the cluster (one per data directory).
    replica: &'a str,
    /// Stops every detector and forwarder at shutdown.
    stop_workers: &'a CancellationToken,
}

/// One org's rules, for reloading on SIGHUP.
struct RulesReload {
    /// Names the org in the reload's log line and metrics.
    org: Option<Arc<str>>,
    /// The set in force, swapped on a successful reload.
    rules: SharedRules,
    /// What to load again.
    config: RulesConfig,
}

/// SIGHUP, caught from the moment the application starts building: SIGHUP's default action
/// ends the process, so one sent while the spool opens or the rules compile must find a handler.
#[cfg(unix)]
type Hangups = Option<tokio::signal::unix::Signal>;
#[cfg(not(unix))]
type Hangups = ();

fn catch_hangups() -> Hangups {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{SignalKind, signal};
        signal(SignalKind::hangup())
            .inspect_err(|err| {
                tracing::warn!(error = %err, "cannot listen for SIGHUP; rules reload needs a restart")
            })
            .ok()
    }
}

/// What `serve` checks and builds before it opens a spool or a port: every org's rules loaded,
/// every sink built (connecting to nothing yet), the TLS certificate read. `check-config` runs
/// exactly this, so it accepts what `serve` accepts; `serve` runs it once.
pub struct Preflight {
    /// Each org's rules and sinks, in [`Config::pipelines`] order.
    pipelines: Vec<PreparedPipeline>,
    /// The listener's certificate, when `[server.tls]` is set.
    tls: Option<ReloadingTls>,
}

/// One org's configuration with its rules loaded and its sinks built.
struct PreparedPipeline {
    config: PipelineConfig,
    rules: RuleSet,
    sinks: Vec<Arc<dyn Sink>>,
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
    Ok(Preflight { pipelines, tls })
}

impl PreparedPipeline {
    /// Loads the org's rules and builds its sinks; errors name the org.
    fn new(config: PipelineConfig) -> anyhow::Result<Self> {
        let scope = |err| config.scoped(err);
        let rules = RuleSet::load(&config.rules).map_err(scope)?;
        let sinks = config
            .sinks
            .iter()
            .map(|sink| {
                sinks::build(sink).with_context(|| format!("sinks: sink {:?}", sink.name()))
            })
            .collect::<anyhow::Result<Vec<_>>>()
            .map_err(scope)?;
        Ok(Self {
            config,
            rules,
            sinks,
        })
    }
}

impl Pipeline {
    /// Opens the spool of a prepared org.
    fn open(prepared: PreparedPipeline, max_backlog_bytes: u64) -> anyhow::Result<Self> {
        let PreparedPipeline {
            config,
            rules,
            sinks,
        } = prepared;
        let org: Option<Arc<str>> = config.org.as_deref().map(Arc::from);
        let scope = |err| config.scoped(err);
        record_rules_loaded(org.as_deref(), rules.len());
        let spool = Spool::open(&config.data_dir, max_backlog_bytes)
            .context("cannot open the spool")
            .map_err(scope)?;
        sinks::prepare_all(&config.sinks);
        warn_about_stranded_alerts(&spool, &config.sinks);
        Ok(Self {
            org,
            spool: Arc::new(spool),
            rules: SharedRules::new(rules),
            sinks,
            config,
        })
    }

    /// Logs what this org serves.
    fn log_ready(&self) {
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
    fn start(self, shared: &Shared<'_>, workers: &mut JoinSet<()>) -> anyhow::Result<Started> {
        let Pipeline {
            config,
            org,
            spool,
            rules,
            sinks,
        } = self;
        let auth_header = config.auth_header.parse().with_context(|| {
            format!("{}: auth_header is not a valid header name", config.label())
        })?;
        // Every log line of this org's workers names the org; the top-level org's stay as they were.
        let span = match &org {
            Some(name) => tracing::info_span!("org", org = %name),
            None => tracing::Span::none(),
        };
        let detector_wake = Arc::new(Notify::new());
        let forwarder_wakes: Vec<Arc<Notify>> =
            sinks.iter().map(|_| Arc::new(Notify::new())).collect();
        let shared_state = SharedState::new(&config.cluster, shared.replica).map(Arc::new);
        let cluster_status = shared_state.as_ref().map(|state| state.status.clone());
        let detector = Detector {
            rules: rules.clone(),
            spool: spool.clone(),
            sinks: config.sinks.clone().into(),
            dedup_window: config.rules.dedup_window,
            privileged_users: config.rules.privileged_users.clone().into(),
            forwarders: forwarder_wakes.clone(),
            shared: shared_state,
            org: org.clone(),
        };
        let stop = shared.stop_workers;
        workers.spawn(
            detector
                .run(detector_wake.clone(), stop.clone())
                .instrument(span.clone()),
        );
        let admin_sinks = sinks
            .iter()
            .map(|s| s.name().to_owned())
            .zip(forwarder_wakes.iter().cloned())
            .collect();
        let health = SinkHealth::for_org(org.clone());
        for (sink, wake) in sinks.into_iter().zip(forwarder_wakes) {
            let forwarder = Forwarder {
                sink,
                spool: spool.clone(),
                policy: RetryPolicy(shared.config.delivery.clone()),
                health: health.clone(),
            };
            workers.spawn(forwarder.run(wake, stop.clone()).instrument(span.clone()));
        }
        let server = &shared.config.server;
        Ok(Started {
            hook: HookState {
                org: org.clone(),
                path: config.hook_path.clone(),
                spool: spool.clone(),
                secrets: Arc::new(SecretSet::new(&config.secrets)),
                auth_header,
                max_body_bytes: server.max_body_bytes,
                request_timeout: server.request_timeout,
                detector: detector_wake,
            },
            status: OrgStatus {
                org: org.clone(),
                spool: spool.clone(),
                sink_health: health,
                cluster: cluster_status,
            },
            admin: AdminOrg {
                org: config.org.clone(),
                spool,
                sinks: admin_sinks,
            },
            reload: RulesReload {
                org,
                rules,
                config: config.rules,
            },
        })
    }
}

impl Application {
    /// Opens every org's spool, loads its rules, builds its sinks and binds the listener. Fails
    /// before anything runs if any part is misconfigured.
    pub async fn build(config: Config) -> anyhow::Result<Self> {
        let hangups = catch_hangups();
        let Preflight { pipelines, tls } = preflight(&config)?;
        let pipelines = pipelines
            .into_iter()
            .map(|prepared| Pipeline::open(prepared, config.storage.max_backlog_bytes))
            .collect::<anyhow::Result<Vec<_>>>()?;
        let listener = TcpListener::bind(config.server.listen)
            .await
            .with_context(|| {
                format!("cannot listen on {} (server.listen)", config.server.listen)
            })?;
        let admin_listener = match config.server.admin_enabled {
            true => Some(TcpListener::bind(config.server.admin_listen).await.with_context(|| {
                format!(
                    "cannot listen on {} (server.admin_listen; another factorwatch on this host? \
                     give each its own admin port, or set server.admin_enabled = false)",
                    config.server.admin_listen
                )
            })?),
            false => None,
        };
        pipelines.iter().for_each(Pipeline::log_ready);
        tracing::info!(
            listen = %listener.local_addr()?,
            tls = tls.is_some(),
            orgs = pipelines.len(),
            "factorwatch ready"
        );
        Ok(Self {
            config,
            listener,
            admin_listener,
            tls,
            pipelines,
            hangups,
        })
    }

    /// The address actually bound (useful with port 0).
    pub fn local_addr(&self) -> SocketAddr {
        self.listener
            .local_addr()
            .expect("a bound listener has an address")
    }

    /// The admin API's address, when enabled.
    pub fn admin_addr(&self) -> Option<SocketAddr> {
        self.admin_listener
            .as_ref()
            .map(|l| l.local_addr().expect("a bound listener has an address"))
    }

    /// Runs until `shutdown` resolves, then stops gracefully.
    pub async fn run_until(
        self,
        shutdown: impl std::future::Future<Output = ()> + Send + 'static,
    ) -> anyhow::Result<()> {
        let Application {
            config,
            listener,
            admin_listener,
            tls,
            pipelines,
            hangups,
        } = self;
        let stop_workers = CancellationToken::new();
        let mut workers = JoinSet::new();
        let replica = replica_id(&config.storage.data_dir)?;
        let shared = Shared {
            config: &config,
            replica: &replica,
            stop_workers: &stop_workers,
        };
        let started = pipelines
            .into_iter()
            .map(|pipeline| pipeline.start(&shared, &mut workers))
            .collect::<anyhow::Result<Vec<_>>>()?;
        let (mut hooks, mut statuses, mut admin_orgs, mut reloads) =
            (Vec::new(), Vec::new(), Vec::new(), Vec::new());
        for one in started {
            hooks.push(one.hook);
            statuses.push(one.status);
            admin_orgs.push(one.admin);
            reloads.push(one.reload);
        }
        workers.spawn(reload_rules_on_sighup(
            reloads,
            hangups,
            stop_workers.clone(),
        ));
        let guard = Guard::new(&config.server);
        workers.spawn(maintenance(
            statuses.clone(),
            guard.rate_limit(),
            stop_workers.clone(),
        ));
        let options = ServeOptions {
            header_read_timeout: config.server.header_read_timeout,
            max_connections: config.server.max_connections,
            tls: tls.as_ref().map(ReloadingTls::acceptor),
        };
        if let Some(tls) = tls {
            workers.spawn(tls.watch(stop_workers.clone()));
        }

        let shutting_down = Arc::new(AtomicBool::new(false));
        let state = AppState {
            orgs: statuses.into(),
            metrics: crate::telemetry::metrics_handle(),
            shutting_down: shutting_down.clone(),
        };
        let app = router(state, hooks, config.server.request_timeout, guard);

        let http_done = CancellationToken::new();
        let drain_delay = config.server.shutdown_drain_delay;
        let signal = {
            let http_done = http_done.clone();
            async move {
                shutdown.await;
                shutting_down.store(true, Ordering::Relaxed);
                if !drain_delay.is_zero() {
                    tracing::info!(delay = ?drain_delay, "shutting down: /readyz answers 503, still serving while the load balancer drains");
                    tokio::time::sleep(drain_delay).await;
                }
                tracing::info!("shutting down: listener closed, finishing requests in flight");
                http_done.cancel();
            }
        };
        let mut admin_task = None;
        if let Some(admin_listener) = admin_listener {
            let admin = crate::admin::router(crate::admin::AdminState {
                orgs: admin_orgs.into(),
                token: config
                    .server
                    .admin_token
                    .as_ref()
                    .map(|token| Arc::new(SecretSet::new([token]))),
                data_dir: config.storage.data_dir.clone(),
            });
            let stop = http_done.clone().cancelled_owned();
            admin_task = Some(tokio::spawn(async move {
                if let Err(err) = axum::serve(admin_listener, admin)
                    .with_graceful_shutdown(stop)
                    .await
                {
                    tracing::error!(error = %err, "admin API failed");
                }
            }));
        }
        let server = serve(listener, app, options, signal);
        let grace = config.server.shutdown_grace;
        tokio::select! {
            () = server => {}
            _ = async { http_done.cancelled().await; tokio::time::sleep(grace).await } => {
                tracing::warn!(grace = ?grace, "requests still in flight after server.shutdown_grace; closing anyway");
            }
        }

        stop_workers.cancel();
        while workers.join_next().await.is_some() {}
        // The admin API holds the spools too: wait for it (within the grace), so that every
        // spool is closed, and can be opened again by a restart on the same data_dir, once this
        // returns. The router, holding the hooks' spools, was dropped when the server stopped.
        if let Some(admin_task) = admin_task {
            let _ = tokio::time::timeout(grace, admin_task).await;
        }
        tracing::info!("stopped cleanly");
        Ok(())
    }
}

/// The [`RULES_LOADED`] gauge of `org`.
fn record_rules_loaded(org: Option<&str>, count: usize) {
    metrics::gauge!(RULES_LOADED, crate::telemetry::org_labels(org, &[])).set(count as f64);
}

/// Reloads every org's rules on SIGHUP, without stopping intake or detection. A reload that
/// fails keeps that org's rules in force and logs why; the other orgs' reloads go on.
async fn reload_rules_on_sighup(
    reloads: Vec<RulesReload>,
    hangups: Hangups,
    shutdown: CancellationToken,
) {
    #[cfg(unix)]
    {
        let Some(mut hangups) = hangups else {
            return;
        };
        loop {
            tokio::select! {
                _ = hangups.recv() => {}
                _ = shutdown.cancelled() => return,
            }
            for reload in &reloads {
                reload_rules(reload).await;
            }
        }
    }
    #[cfg(not(unix))]
    {
        let _ = (reloads, hangups);
        shutdown.cancelled().await;
    }
}

/// Reloads one org's rules, off the async threads (compiling rules takes a while).
#[cfg(unix)]
async fn reload_rules(reload: &RulesReload) {
    let org = reload.org.as_deref();
    let (shared, config) = (reload.rules.clone(), reload.config.clone());
    let outcome = tokio::task::spawn_blocking(move || shared.reload(&config)).await;
    match outcome {
        Ok(Ok(count)) => {
            record_rules_loaded(org, count);
            tracing::info!(org, rules = count, "rules reloaded on SIGHUP");
        }
        Ok(Err(err)) => {
            metrics::counter!(
                RULE_RELOAD_FAILURES_TOTAL,
                crate::telemetry::org_labels(org, &[])
            )
            .increment(1);
            tracing::error!(
                org,
                error = format!("{err:#}"),
                kept = reload.rules.current().len(),
                "rules reload failed; the previous rules stay in force"
            );
        }
        Err(err) => tracing::error!(org, error = %err, "rules reload task failed"),
    }
}

/// Alerts queued for a sink that is no longer configured would wait forever: say so at start.
fn warn_about_stranded_alerts(spool: &Spool, configured: &[crate::config::SinkConfig]) {
    for (sink, counts) in spool.backlog().sinks {
        if counts.pending > 0 && !configured.iter().any(|s| s.name() == sink) {
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

/// This replica's name in the cluster: a uuid made at its first start and kept in
/// `<data_dir>/replica-id`, so it stays the same across restarts and goes with a lost disk.
fn replica_id(data_dir: &std::path::Path) -> anyhow::Result<String> {
    let path = data_dir.join("replica-id");
    if let Ok(id) = std::fs::read_to_string(&path)
        && !id.trim().is_empty()
    {
        return Ok(id.trim().to_owned());
    }
    let id = uuid::Uuid::new_v4().to_string();
    std::fs::write(&path, &id).with_context(|| format!("cannot write {}", path.display()))?;
    Ok(id)
}

/// Periodic housekeeping: forgets expired de-duplication keys (in every org's spool) and idle
/// rate-limit buckets, and refreshes the backlog gauges.
async fn maintenance(
    orgs: Vec<OrgStatus>,
    rate_limit: Option<Arc<RateLimit>>,
    shutdown: CancellationToken,
) {
    loop {
        tokio::select! {
            _ = tokio::time::sleep(MAINTENANCE_EVERY) => {}
            _ = shutdown.cancelled() => return,
        }
        for OrgStatus { org, spool, .. } in &orgs {
            let org = org.as_deref();
            match spool.prune_seen(crate::clock::now_ms()).await {
                Ok(0) => {}
                Ok(forgotten) => {
                    tracing::debug!(org, forgotten, "pruned expired de-duplication keys")
                }
                Err(err) => tracing::error!(org, error = %err, "spool maintenance failed"),
            }
            spool.record_gauges(org);
        }
        if let Some(rate_limit) = &rate_limit {
            rate_limit.forget_idle();
        }
        crate::telemetry::metrics_handle().run_upkeep();
    }
}

/// Resolves on SIGTERM or Ctrl-C.
pub async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut signal) => {
                signal.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let terminate = std::future::pending::<()>();
    tokio::select! {
        _ = ctrl_c => {}
        _ = terminate => {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;

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
