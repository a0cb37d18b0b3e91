//! Wiring: builds every part from a [`Config`], runs them, and shuts them down in order.
//!
//! Shutdown order matters for durability: first readiness turns false and the listener stops
//! accepting; requests in flight finish (their batches are committed); then the detector and the
//! forwarders stop between two units of work; last the spool's writer commits what is queued.
//!
//! [`pipeline`] builds and starts each org's pipeline (and its System Log poller), [`probe`]
//! checks each org's Okta API access for `check-config`, [`workers`] holds the tasks the orgs share
//! (maintenance, rules and secrets reload on SIGHUP), [`shutdown`] the HTTP phase and the order it stops in.

mod pipeline;
mod probe;
mod shutdown;
mod workers;

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::AtomicBool;

use anyhow::Context;
use tokio::net::TcpListener;

use crate::admin::{AdminOrg, AdminState};
use crate::config::{Config, ServerConfig};
use crate::http::guard::Guard;
use crate::http::serve::ServeOptions;
use crate::http::tls::ReloadingTls;
use crate::http::{AppState, OrgStatus, ops, router};
use crate::secret::SecretSet;
use pipeline::{Pipeline, Shared};
pub use pipeline::{Preflight, RECONCILE_SCOPES, preflight, system_log_filter};
pub use probe::{OktaProbe, ScopeProbe, probe_okta, probe_scopes};
use shutdown::Serving;
pub use shutdown::shutdown_signal;
use workers::{Hangups, Workers, catch_hangups, maintenance, reload_on_sighup};

/// A built, not yet running, factorwatch.
pub struct Application {
    config: Config,
    listener: TcpListener,
    ops_listener: TcpListener,
    admin_listener: Option<TcpListener>,
    tls: Option<ReloadingTls>,
    /// One per org served: the top-level org's first (when served), then each `[[okta.orgs]]`.
    pipelines: Vec<Pipeline>,
    /// The JSON documents the hook listener publishes (`[ssf]`'s JWKS).
    published: Vec<(String, serde_json::Value)>,
    hangups: Hangups,
}

impl Application {
    /// Opens every org's spool, loads its rules, builds its sinks and binds the listener. Fails
    /// before anything runs if any part is misconfigured.
    pub async fn build(config: Config) -> anyhow::Result<Self> {
        let hangups = catch_hangups();
        let Preflight {
            pipelines,
            tls,
            published,
        } = preflight(&config)?;
        let pipelines = pipelines
            .into_iter()
            .map(|prepared| Pipeline::open(prepared, config.storage.max_backlog_bytes))
            .collect::<anyhow::Result<Vec<_>>>()?;
        let Listeners {
            hook: listener,
            ops: ops_listener,
            admin: admin_listener,
        } = bind_listeners(&config.server).await?;
        pipelines.iter().for_each(Pipeline::log_ready);
        tracing::info!(
            listen = %listener.local_addr()?,
            ops_listen = %ops_listener.local_addr()?,
            tls = tls.is_some(),
            orgs = pipelines.len(),
            "factorwatch ready"
        );
        Ok(Self {
            config,
            listener,
            ops_listener,
            admin_listener,
            tls,
            pipelines,
            published,
            hangups,
        })
    }

    /// The address actually bound (useful with port 0).
    pub fn local_addr(&self) -> SocketAddr {
        self.listener
            .local_addr()
            .expect("a bound listener has an address")
    }

    /// The operational listener's address (`/metrics`, the detailed `/readyz`).
    pub fn ops_addr(&self) -> SocketAddr {
        self.ops_listener
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
        let mut workers = Workers::default();
        let grace = self.config.server.shutdown_grace;
        let serving = self.start(&mut workers)?;
        let side_tasks = serving.until(shutdown).await;
        shutdown::stop(workers, side_tasks, grace).await;
        Ok(())
    }

    /// Starts every org's workers and the tasks they share; returns what the listeners serve.
    fn start(self, workers: &mut Workers) -> anyhow::Result<Serving> {
        let replica = replica_id(&self.config.storage.data_dir)?;
        let shared = Shared {
            config: &self.config,
            replica: &replica,
        };
        let orgs = pipeline::start_all(self.pipelines, &shared, workers)?;
        workers.spawn(|stop| reload_on_sighup(orgs.reloads, self.hangups, stop));
        let server = &self.config.server;
        let guard = Guard::new(server);
        let (statuses, rate_limit) = (orgs.statuses.clone(), guard.rate_limit());
        workers.spawn(|stop| maintenance(statuses, rate_limit, stop));
        let options = serve_options(server, self.tls, workers);
        let shutting_down = Arc::new(AtomicBool::new(false));
        let state = app_state(orgs.statuses, &shutting_down);
        Ok(Serving {
            listener: self.listener,
            app: router(state.clone(), orgs.hooks, server.request_timeout, guard)
                .merge(crate::http::published(self.published)),
            options,
            ops: (self.ops_listener, ops::router(state)),
            shutting_down,
            admin: self
                .admin_listener
                .map(|listener| (listener, admin_router(orgs.admin, &self.config))),
            drain_delay: server.shutdown_drain_delay,
            grace: server.shutdown_grace,
        })
    }
}

/// The bound listeners.
struct Listeners {
    /// `server.listen`: the hooks, `/healthz` and a bare `/readyz`.
    hook: TcpListener,
    /// `server.ops_listen`: `/metrics` and the detailed `/readyz`.
    ops: TcpListener,
    /// `server.admin_listen`, when the admin API is enabled.
    admin: Option<TcpListener>,
}

/// Binds the hook listener, the operational one and, when enabled, the admin API's.
async fn bind_listeners(server: &ServerConfig) -> anyhow::Result<Listeners> {
    let hook = TcpListener::bind(server.listen)
        .await
        .with_context(|| format!("cannot listen on {} (server.listen)", server.listen))?;
    let ops = bind_beside(
        server.ops_listen,
        "ops_listen",
        "give each its own ops port",
    )
    .await?;
    let admin = match server.admin_enabled {
        true => Some(
            bind_beside(
                server.admin_listen,
                "admin_listen",
                "give each its own admin port, or set server.admin_enabled = false",
            )
            .await?,
        ),
        false => None,
    };
    Ok(Listeners { hook, ops, admin })
}

/// Binds a listener beside the hook's (`server.<key>`): taken, it is most often another
/// factorwatch on the host, which `fix` says how to part from this one.
async fn bind_beside(addr: SocketAddr, key: &str, fix: &str) -> anyhow::Result<TcpListener> {
    TcpListener::bind(addr).await.with_context(|| {
        format!("cannot listen on {addr} (server.{key}; another factorwatch on this host? {fix})")
    })
}

/// How the hook listener accepts connections; with TLS, also spawns the certificate watcher.
fn serve_options(
    server: &ServerConfig,
    tls: Option<ReloadingTls>,
    workers: &mut Workers,
) -> ServeOptions {
    let options = ServeOptions {
        header_read_timeout: server.header_read_timeout,
        max_connections: server.max_connections,
        tls: tls.as_ref().map(ReloadingTls::acceptor),
    };
    if let Some(tls) = tls {
        workers.spawn(|stop| tls.watch(stop));
    }
    options
}

/// What `/readyz` and `/metrics` serve: every org, and whether shutdown started.
fn app_state(orgs: Vec<OrgStatus>, shutting_down: &Arc<AtomicBool>) -> AppState {
    AppState {
        orgs: orgs.into(),
        metrics: crate::telemetry::metrics_handle(),
        shutting_down: shutting_down.clone(),
    }
}

/// The admin API over every org's dead letters, behind `server.admin_token` when set.
fn admin_router(orgs: Vec<AdminOrg>, config: &Config) -> axum::Router {
    crate::admin::router(AdminState {
        orgs: orgs.into(),
        token: config
            .server
            .admin_token
            .as_ref()
            .map(|token| Arc::new(SecretSet::new([token]))),
        data_dir: config.storage.data_dir.clone(),
    })
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
