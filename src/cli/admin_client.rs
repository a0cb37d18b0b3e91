//! A client of the running service's admin API ([`crate::admin`]), which the `dlq` and
//! `backfill` commands call: the spool is one file that only the running service may open.

use std::time::Duration;

use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::admin::{Instance, Selection};
use crate::config::Config;
use crate::secret::Secret;

/// How long a call that answers at once may take.
const CALL_TIMEOUT: Duration = Duration::from_secs(30);

/// A client of the admin API at the configuration's `server.admin_listen`.
pub struct AdminClient {
    base: String,
    token: Option<Secret>,
    http: reqwest::Client,
}

impl AdminClient {
    /// The client of the service `config` describes; refused when its admin API is disabled.
    pub fn new(config: &Config) -> anyhow::Result<Self> {
        anyhow::ensure!(
            config.server.admin_enabled,
            "the admin API is disabled (server.admin_enabled = false); the dlq and backfill \
             commands go through it: enable it"
        );
        let mut addr = config.server.admin_listen;
        if addr.ip().is_unspecified() {
            addr.set_ip(std::net::Ipv4Addr::LOCALHOST.into());
        }
        Ok(Self {
            base: format!("http://{addr}"),
            token: config.server.admin_token.clone(),
            http: reqwest::Client::builder()
                .connect_timeout(Duration::from_secs(10))
                .build()?,
        })
    }

    /// Which instance answers, said on stderr (so that `--json` output stays JSON): a command
    /// that reached another instance than meant is seen at once.
    pub async fn announce_instance(&self) -> anyhow::Result<()> {
        let instance: Instance = self.call(reqwest::Method::GET, "/", None).await?;
        eprintln!("instance: {instance}");
        Ok(())
    }

    /// Calls `path` about `selection` and reads its JSON answer.
    pub async fn call<T: DeserializeOwned>(
        &self,
        method: reqwest::Method,
        path: &str,
        selection: Option<&Selection>,
    ) -> anyhow::Result<T> {
        let request = self.request(method, path, selection).timeout(CALL_TIMEOUT);
        let response = self.send(request).await?;
        Ok(response.json().await?)
    }

    /// Posts `body` to `path` about `selection` and hands back the answer as it starts, to be
    /// read as it comes (no time limit: the caller shows progress).
    pub async fn post_streaming(
        &self,
        path: &str,
        selection: &Selection,
        body: &impl Serialize,
    ) -> anyhow::Result<reqwest::Response> {
        let request = self
            .request(reqwest::Method::POST, path, Some(selection))
            .json(body);
        self.send(request).await
    }

    fn request(
        &self,
        method: reqwest::Method,
        path: &str,
        selection: Option<&Selection>,
    ) -> reqwest::RequestBuilder {
        let url = format!("{}{path}", self.base);
        let mut request = self.http.request(method, &url);
        if let Some(selection) = selection {
            request = request.query(selection);
        }
        if let Some(token) = &self.token {
            request = request.bearer_auth(token.expose());
        }
        request
    }

    /// Sends `request`; an answer other than 2xx becomes the error it carries.
    async fn send(&self, request: reqwest::RequestBuilder) -> anyhow::Result<reqwest::Response> {
        let response = request.send().await.map_err(|_| {
            anyhow::anyhow!(
                "cannot reach the factorwatch admin API at {}: is `factorwatch serve` running with \
                 the same configuration (server.admin_listen)?",
                self.base
            )
        })?;
        let status = response.status();
        if status.is_success() {
            return Ok(response);
        }
        let body: serde_json::Value = response.json().await.unwrap_or_default();
        let error = body["error"].as_str().unwrap_or("no reason given");
        anyhow::bail!("admin API answered {status}: {error}")
    }
}
