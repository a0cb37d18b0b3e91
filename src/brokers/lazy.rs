//! A broker client connected on first use and forgotten after a failure, shared by every broker
//! sink and the cluster backends. A broker that is down when factorwatch starts must not stop it:
//! alerts wait in the outbox, each publish tries to connect (bounded by a timeout) and the
//! forwarder's backoff spaces the attempts.

use std::future::Future;

use tokio::sync::Mutex;

use super::{BoxError, CONNECT_TIMEOUT, ConnectError};

/// A cheap-to-clone client handle, created on demand.
pub struct LazyClient<C> {
    what: String,
    slot: Mutex<Option<C>>,
}

impl<C> std::fmt::Debug for LazyClient<C> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LazyClient")
            .field("what", &self.what)
            .finish_non_exhaustive()
    }
}

impl<C: Clone> LazyClient<C> {
    /// A client for `what` (a description for errors, such as `NATS at nats://host:4222`; never
    /// include credentials).
    pub fn new(what: impl Into<String>) -> Self {
        Self {
            what: what.into(),
            slot: Mutex::new(None),
        }
    }

    /// The connected client, connecting with `connect` first if there is none.
    pub async fn get<F, Fut, E>(&self, connect: F) -> Result<C, ConnectError>
    where
        F: FnOnce() -> Fut,
        Fut: Future<Output = Result<C, E>>,
        E: Into<BoxError>,
    {
        let mut slot = self.slot.lock().await;
        if let Some(client) = slot.as_ref() {
            return Ok(client.clone());
        }
        let client = tokio::time::timeout(CONNECT_TIMEOUT, connect())
            .await
            .map_err(|_| ConnectError::TimedOut {
                what: self.what.clone(),
                timeout: CONNECT_TIMEOUT,
            })?
            .map_err(|err| ConnectError::Failed {
                what: self.what.clone(),
                source: err.into(),
            })?;
        *slot = Some(client.clone());
        Ok(client)
    }

    /// Forgets the client after a failed publish, so the next one reconnects.
    pub async fn reset(&self) {
        self.slot.lock().await.take();
    }
}
