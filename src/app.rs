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

use crate::cluster::SharedState;
use crate::config::Config;
use crate::detect::{Detector, RuleSet, SharedRules};
use crate::forward::{Forwarder, RetryPolicy, SinkHealth};
use crate::http::guard::{Guard, RateLimit};
use crate::http::serve::{ServeOptions, serve};
use crate::http::tls::ReloadingTls;
use crate::http::{AppState, router};
use crate::secret::SecretSet;
use crate::sinks::{self, Sink};
use crate::spool::Spool;

/// How often expired de-duplication keys are pruned (also the spool's write heartbeat).
const MAINTENANCE_EVERY: Duration = Duration::from_secs(10);

/// A built, not yet running, factorwatch.
pub struct Application {
    config: Config,
    listener: TcpListener,
    admin_listener: Option<TcpListener>,
    tls: Option<ReloadingTls>,
    spool: Arc<Spool>,
    rules: SharedRules,
    sinks: Vec<Arc<dyn Sink>>,
    hangups: Hangups,
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

impl Application {
    /// Opens the spool, loads the rules, builds the sinks and binds the listener. Fails before
    /// anything runs if any part is misconfigured.
    pub async fn build(config: Config) -> anyhow::Result<Self> {
        let hangups = catch_hangups();
        config.require_secret()?;
        let rules = RuleSet::load(&config.rules)?;
        metrics::gauge!("factorwatch_rules_loaded").set(rules.len() as f64);
        let rules = SharedRules::new(rules);
        let sinks = config
            .effective_sinks()
            .iter()
            .map(sinks::build)
            .collect::<anyhow::Result<Vec<_>>>()?;
        let tls = config
            .server
            .tls
            .as_ref()
            .map(ReloadingTls::new)
            .transpose()
            .context("server.tls")?;
        let spool = Arc::new(
            Spool::open(&config.storage.data_dir, config.storage.max_backlog_bytes)
                .context("cannot open the spool")?,
        );
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
        tracing::info!(
            listen = %listener.local_addr()?,
            tls = tls.is_some(),
            hook_path = %config.server.hook_path,
            rules = rules.current().len(),
            sinks = ?sinks.iter().map(|s| s.name()).collect::<Vec<_>>(),
            spool = %spool.path().display(),
            backlog_batches = spool.backlog().batches,
            "factorwatch ready"
        );
        warn_about_stranded_alerts(&spool, &config);
        Ok(Self {
            config,
            listener,
            admin_listener,
            tls,
            spool,
            rules,
            sinks,
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
            spool,
            rules,
            sinks,
            hangups,
        } = self;
        let stop_workers = CancellationToken::new();
        let detector_wake = Arc::new(Notify::new());
        let forwarder_wakes: Vec<Arc<Notify>> =
            sinks.iter().map(|_| Arc::new(Notify::new())).collect();
        let mut workers = JoinSet::new();

        workers.spawn(reload_rules_on_sighup(
            rules.clone(),
            config.rules.clone(),
            hangups,
            stop_workers.clone(),
        ));
        let shared =
            SharedState::new(&config.cluster, &replica_id(&config.storage.data_dir)?).map(Arc::new);
        let cluster_status = shared.as_ref().map(|shared| shared.status.clone());
        let detector = Detector {
            rules,
            spool: spool.clone(),
            sinks: config.effective_sinks().into(),
            dedup_window: config.rules.dedup_window,
            privileged_users: config.rules.privileged_users.clone().into(),
            forwarders: forwarder_wakes.clone(),
            shared,
        };
        workers.spawn(detector.run(detector_wake.clone(), stop_workers.clone()));
        let admin_sinks: Vec<(String, Arc<Notify>)> = sinks
            .iter()
            .map(|s| s.name().to_owned())
            .zip(forwarder_wakes.iter().cloned())
            .collect();
        let health = SinkHealth::default();
        for (sink, wake) in sinks.into_iter().zip(forwarder_wakes) {
            let forwarder = Forwarder {
                sink,
                spool: spool.clone(),
                policy: RetryPolicy(config.delivery.clone()),
                health: health.clone(),
            };
            workers.spawn(forwarder.run(wake, stop_workers.clone()));
        }
        let guard = Guard::new(&config.server);
        workers.spawn(maintenance(
            spool.clone(),
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
            spool: spool.clone(),
            secrets: Arc::new(SecretSet::new(&config.okta.secrets)),
            auth_header: config.okta.auth_header.parse()?,
            max_body_bytes: config.server.max_body_bytes,
            request_timeout: config.server.request_timeout,
            detector: detector_wake,
            metrics: crate::telemetry::metrics_handle(),
            shutting_down: shutting_down.clone(),
            sink_health: health,
            cluster: cluster_status,
        };
        let app = router(
            state,
            &config.server.hook_path,
            config.server.request_timeout,
            guard,
        );

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
                spool: spool.clone(),
                token: config
                    .server
                    .admin_token
                    .as_ref()
                    .map(|token| Arc::new(SecretSet::new([token]))),
                sinks: admin_sinks,
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
        // The admin API holds the spool too: wait for it (within the grace), so that the spool is
        // closed, and can be opened again by a restart on the same data_dir, once this returns.
        if let Some(admin_task) = admin_task {
            let _ = tokio::time::timeout(grace, admin_task).await;
        }
        drop(spool);
        tracing::info!("stopped cleanly");
        Ok(())
    }
}

/// Reloads the rules on SIGHUP, without stopping intake or detection. A reload that fails keeps
/// the rules in force and logs why.
async fn reload_rules_on_sighup(
    rules: SharedRules,
    config: crate::config::RulesConfig,
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
            let (shared, config) = (rules.clone(), config.clone());
            let outcome = tokio::task::spawn_blocking(move || shared.reload(&config)).await;
            match outcome {
                Ok(Ok(count)) => {
                    metrics::gauge!("factorwatch_rules_loaded").set(count as f64);
                    tracing::info!(rules = count, "rules reloaded on SIGHUP");
                }
                Ok(Err(err)) => {
                    metrics::counter!("factorwatch_rule_reload_failures_total").increment(1);
                    tracing::error!(
                        error = format!("{err:#}"),
                        kept = rules.current().len(),
                        "rules reload failed; the previous rules stay in force"
                    );
                }
                Err(err) => tracing::error!(error = %err, "rules reload task failed"),
            }
        }
    }
    #[cfg(not(unix))]
    {
        let _ = (rules, config, hangups);
        shutdown.cancelled().await;
    }
}

/// Alerts queued for a sink that is no longer configured would wait forever: say so at start.
fn warn_about_stranded_alerts(spool: &Spool, config: &Config) {
    let configured: Vec<String> = config
        .effective_sinks()
        .iter()
        .map(|s| s.name().to_owned())
        .collect();
    for (sink, counts) in spool.backlog().sinks {
        if counts.pending > 0 && !configured.contains(&sink) {
            tracing::warn!(
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

/// Periodic housekeeping: forgets expired de-duplication keys and idle rate-limit buckets, and
/// refreshes the backlog gauges.
async fn maintenance(
    spool: Arc<Spool>,
    rate_limit: Option<Arc<RateLimit>>,
    shutdown: CancellationToken,
) {
    loop {
        tokio::select! {
            _ = tokio::time::sleep(MAINTENANCE_EVERY) => {}
            _ = shutdown.cancelled() => return,
        }
        match spool.prune_seen(crate::clock::now_ms(), 10_000).await {
            Ok(0) => {}
            Ok(forgotten) => tracing::debug!(forgotten, "pruned expired de-duplication keys"),
            Err(err) => tracing::error!(error = %err, "spool maintenance failed"),
        }
        if let Some(rate_limit) = &rate_limit {
            rate_limit.forget_idle();
        }
        crate::telemetry::record_backlog(&spool.backlog());
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
