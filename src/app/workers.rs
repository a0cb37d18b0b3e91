//! The tasks that run until shutdown: [`Workers`] holds them all (each org's detector and
//! forwarders too); here are the ones the orgs share, the periodic maintenance and the reload
//! of rules and secrets on SIGHUP.

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;

use crate::config::RulesConfig;
use crate::detect::SharedRules;
use crate::http::OrgStatus;
use crate::http::guard::RateLimit;
use crate::secret::HookSecrets;
use crate::telemetry::metrics::{RULE_RELOAD_FAILURES_TOTAL, RULES_LOADED};

/// How often expired de-duplication keys are pruned (also the spool's write heartbeat).
const MAINTENANCE_EVERY: Duration = Duration::from_secs(10);

/// Every task that runs until shutdown, and the token that stops them.
#[derive(Default)]
pub(super) struct Workers {
    tasks: JoinSet<()>,
    stop: CancellationToken,
}

impl Workers {
    /// Spawns the task `start` makes of the stop token.
    pub(super) fn spawn<F>(&mut self, start: impl FnOnce(CancellationToken) -> F)
    where
        F: Future<Output = ()> + Send + 'static,
    {
        self.tasks.spawn(start(self.stop.clone()));
    }

    /// Stops every task between two units of work, and waits for them.
    pub(super) async fn stop(mut self) {
        self.stop.cancel();
        while self.tasks.join_next().await.is_some() {}
    }
}

/// One org's rules and secrets, for reloading on SIGHUP.
pub(super) struct OrgReload {
    /// Names the org in the reload's log line and metrics.
    pub(super) org: Option<Arc<str>>,
    /// The set in force, swapped on a successful reload.
    pub(super) rules: SharedRules,
    /// What to load again.
    pub(super) config: RulesConfig,
    /// The secrets its hook accepts, read again from their sources.
    pub(super) secrets: Arc<HookSecrets>,
}

/// SIGHUP, caught from the moment the application starts building: SIGHUP's default action
/// ends the process, so one sent while the spool opens or the rules compile must find a handler.
#[cfg(unix)]
pub(super) type Hangups = Option<tokio::signal::unix::Signal>;
#[cfg(not(unix))]
pub(super) type Hangups = ();

pub(super) fn catch_hangups() -> Hangups {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{SignalKind, signal};
        signal(SignalKind::hangup())
            .inspect_err(|err| {
                tracing::warn!(error = %err, "cannot listen for SIGHUP; reloading rules and secrets needs a restart or the admin API")
            })
            .ok()
    }
}

/// The [`RULES_LOADED`] gauge of `org`.
pub(super) fn record_rules_loaded(org: Option<&str>, count: usize) {
    metrics::gauge!(RULES_LOADED, crate::telemetry::org_labels(org, &[])).set(count as f64);
}

/// Reloads every org's secrets and rules on SIGHUP, without stopping intake or detection. A
/// reload that fails keeps that org's secrets or rules in force and logs why; the other reloads
/// go on.
pub(super) async fn reload_on_sighup(
    reloads: Vec<OrgReload>,
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
                // Logged by the reload itself, success or refusal.
                let _ = reload.secrets.reload("SIGHUP").await;
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
async fn reload_rules(reload: &OrgReload) {
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

/// Periodic housekeeping: forgets expired de-duplication keys (in every org's spool) and idle
/// rate-limit buckets, and refreshes the backlog gauges.
pub(super) async fn maintenance(
    orgs: Vec<OrgStatus>,
    rate_limit: Option<Arc<RateLimit>>,
    shutdown: CancellationToken,
) {
    loop {
        tokio::select! {
            _ = tokio::time::sleep(MAINTENANCE_EVERY) => {}
            _ = shutdown.cancelled() => return,
        }
        for status in &orgs {
            maintain(status).await;
        }
        if let Some(rate_limit) = &rate_limit {
            rate_limit.forget_idle();
        }
        crate::telemetry::metrics_handle().run_upkeep();
    }
}

/// One org's share of [`maintenance`]: prunes its spool's window and sets its gauges.
async fn maintain(OrgStatus { org, spool, .. }: &OrgStatus) {
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
