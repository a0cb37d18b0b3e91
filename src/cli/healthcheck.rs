//! `factorwatch healthcheck`: asks the receiver at the configured address whether it is up, for
//! container health checks. Prints nothing; the exit status is the answer.

use std::path::Path;
use std::time::Duration;

use anyhow::Context;

use crate::config::Config;

/// Succeeds if the receiver the configuration at `path` describes answers `/healthz` with 2xx.
pub async fn run(path: Option<&Path>) -> anyhow::Result<()> {
    let config = Config::load(path)?;
    let (url, response) = local_request(&config, Listener::Hook, "/healthz").await?;
    anyhow::ensure!(
        response.status().is_success(),
        "{url} answered {}",
        response.status()
    );
    Ok(())
}

/// Which of the receiver's listeners a request goes to.
#[derive(Debug, Clone, Copy)]
pub enum Listener {
    /// `server.listen`: the hooks, `/healthz`, a bare `/readyz`; HTTPS with `[server.tls]`.
    Hook,
    /// `server.ops_listen`: `/metrics`, the detailed `/readyz`; plain HTTP.
    Ops,
}

/// `GET path` on `listener` of the receiver `config` describes, from this machine; returns the
/// URL and the answer.
pub async fn local_request(
    config: &Config,
    listener: Listener,
    path: &str,
) -> anyhow::Result<(String, reqwest::Response)> {
    let (mut addr, tls) = match listener {
        Listener::Hook => (config.server.listen, config.server.tls.is_some()),
        Listener::Ops => (config.server.ops_listen, false),
    };
    if addr.ip().is_unspecified() {
        // Listening on every interface: loopback reaches it from inside the container.
        addr.set_ip(std::net::Ipv4Addr::LOCALHOST.into());
    }
    // With [server.tls] the hook listener speaks HTTPS. The certificate names the public host,
    // not loopback, so it is not verified: this only asks our own process.
    let url = format!("{}://{addr}{path}", if tls { "https" } else { "http" });
    let response = reqwest::Client::builder()
        .danger_accept_invalid_certs(tls)
        .build()?
        .get(&url)
        .timeout(Duration::from_secs(2))
        .send()
        .await
        .with_context(|| format!("{url} unreachable"))?;
    Ok((url, response))
}
