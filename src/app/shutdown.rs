//! The HTTP phase of a running application and the order it stops in (docs/architecture.md,
//! "Shutdown order"): readiness turns false, the load balancer gets `server.shutdown_drain_delay`
//! to drain, both listeners stop accepting, requests in flight get `server.shutdown_grace` to
//! finish; only then do the workers stop, and the spools close.

use std::future::Future;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use axum::Router;
use tokio::net::TcpListener;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use super::workers::Workers;
use crate::http::serve::{ServeOptions, serve};

/// What the listeners serve once every worker runs.
pub(super) struct Serving {
    /// The hook listener.
    pub(super) listener: TcpListener,
    /// The hook routes, `/healthz` and the bare `/readyz`.
    pub(super) app: Router,
    /// How the hook listener accepts connections.
    pub(super) options: ServeOptions,
    /// Set when shutdown starts, so `/readyz` answers 503.
    pub(super) shutting_down: Arc<AtomicBool>,
    /// The operational listener and its routes (`/metrics`, the detailed `/readyz`).
    pub(super) ops: (TcpListener, Router),
    /// The admin API's listener and routes, when enabled.
    pub(super) admin: Option<(TcpListener, Router)>,
    /// `server.shutdown_drain_delay`.
    pub(super) drain_delay: Duration,
    /// `server.shutdown_grace`.
    pub(super) grace: Duration,
}

impl Serving {
    /// Serves every listener until `shutdown` resolves, then closes them and waits for the
    /// requests in flight, at most `grace`. Returns the tasks of the operational listener and
    /// the admin API, which still hold the spools.
    pub(super) async fn until(
        self,
        shutdown: impl Future<Output = ()> + Send + 'static,
    ) -> Vec<JoinHandle<()>> {
        let Serving {
            listener,
            app,
            options,
            shutting_down,
            ops,
            admin,
            drain_delay,
            grace,
        } = self;
        let http_done = CancellationToken::new();
        let signal = close_listeners(shutdown, shutting_down, drain_delay, http_done.clone());
        // The operational listener serves through the drain, so that Prometheus and the probes
        // see this replica turn unready; it closes with the hook listener.
        let side_tasks = std::iter::once(("operational listener", ops))
            .chain(admin.map(|admin| ("admin API", admin)))
            .map(|(name, (listener, router))| spawn_side(name, listener, router, &http_done))
            .collect();
        let server = serve(listener, app, options, signal);
        tokio::select! {
            () = server => {}
            _ = async { http_done.cancelled().await; tokio::time::sleep(grace).await } => {
                tracing::warn!(grace = ?grace, "requests still in flight after server.shutdown_grace; closing anyway");
            }
        }
        side_tasks
    }
}

/// Resolves once `shutdown` did and the load balancer had `drain_delay` to notice `/readyz`
/// failing; then cancels `http_done`, which closes the operational and admin listeners too.
async fn close_listeners(
    shutdown: impl Future<Output = ()>,
    shutting_down: Arc<AtomicBool>,
    drain_delay: Duration,
    http_done: CancellationToken,
) {
    shutdown.await;
    shutting_down.store(true, Ordering::Relaxed);
    if !drain_delay.is_zero() {
        tracing::info!(delay = ?drain_delay, "shutting down: /readyz answers 503, still serving while the load balancer drains");
        tokio::time::sleep(drain_delay).await;
    }
    tracing::info!("shutting down: listener closed, finishing requests in flight");
    http_done.cancel();
}

/// Serves `router` (the listener called `name` in the log) on `listener` until `http_done` is
/// cancelled.
fn spawn_side(
    name: &'static str,
    listener: TcpListener,
    router: Router,
    http_done: &CancellationToken,
) -> JoinHandle<()> {
    let stop = http_done.clone().cancelled_owned();
    tokio::spawn(async move {
        if let Err(err) = axum::serve(listener, router)
            .with_graceful_shutdown(stop)
            .await
        {
            tracing::error!(error = %err, listener = name, "listener failed");
        }
    })
}

/// Stops the workers and waits for them, then for the operational listener and the admin API:
/// once this returns, every spool is closed.
pub(super) async fn stop(workers: Workers, side_tasks: Vec<JoinHandle<()>>, grace: Duration) {
    workers.stop().await;
    // Those listeners hold the spools too: wait for them (within the grace), so that every
    // spool is closed, and can be opened again by a restart on the same data_dir, once this
    // returns. The router, holding the hooks' spools, was dropped when the server stopped.
    let _ = tokio::time::timeout(grace, futures_util::future::join_all(side_tasks)).await;
    tracing::info!("stopped cleanly");
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
