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
    /// The hook routes, `/healthz`, `/readyz` and `/metrics`.
    pub(super) app: Router,
    /// How the hook listener accepts connections.
    pub(super) options: ServeOptions,
    /// Set when shutdown starts, so `/readyz` answers 503.
    pub(super) shutting_down: Arc<AtomicBool>,
    /// The admin API's listener and routes, when enabled.
    pub(super) admin: Option<(TcpListener, Router)>,
    /// `server.shutdown_drain_delay`.
    pub(super) drain_delay: Duration,
    /// `server.shutdown_grace`.
    pub(super) grace: Duration,
}

impl Serving {
    /// Serves both listeners until `shutdown` resolves, then closes them and waits for the
    /// requests in flight, at most `grace`. Returns the admin API's task, which still holds the
    /// spools.
    pub(super) async fn until(
        self,
        shutdown: impl Future<Output = ()> + Send + 'static,
    ) -> Option<JoinHandle<()>> {
        let Serving {
            listener,
            app,
            options,
            shutting_down,
            admin,
            drain_delay,
            grace,
        } = self;
        let http_done = CancellationToken::new();
        let signal = close_listeners(shutdown, shutting_down, drain_delay, http_done.clone());
        let admin_task = admin.map(|(listener, router)| spawn_admin(listener, router, &http_done));
        let server = serve(listener, app, options, signal);
        tokio::select! {
            () = server => {}
            _ = async { http_done.cancelled().await; tokio::time::sleep(grace).await } => {
                tracing::warn!(grace = ?grace, "requests still in flight after server.shutdown_grace; closing anyway");
            }
        }
        admin_task
    }
}

/// Resolves once `shutdown` did and the load balancer had `drain_delay` to notice `/readyz`
/// failing; then cancels `http_done`, which closes the admin listener too.
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

/// Serves the admin API on `listener` until `http_done` is cancelled.
fn spawn_admin(
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
            tracing::error!(error = %err, "admin API failed");
        }
    })
}

/// Stops the workers and waits for them, then for the admin API: once this returns, every
/// spool is closed.
pub(super) async fn stop(workers: Workers, admin_task: Option<JoinHandle<()>>, grace: Duration) {
    workers.stop().await;
    // The admin API holds the spools too: wait for it (within the grace), so that every
    // spool is closed, and can be opened again by a restart on the same data_dir, once this
    // returns. The router, holding the hooks' spools, was dropped when the server stopped.
    if let Some(admin_task) = admin_task {
        let _ = tokio::time::timeout(grace, admin_task).await;
    }
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
