//! The `FACTORWATCH_*` environment variables, applied over the file.

use std::path::PathBuf;

use anyhow::{Context, bail};

use super::{ClusterMode, Config, LogFormat, ServerUrl};
use crate::http::parse_listen_addr;
use crate::secret::{Secret, SecretSource};

/// The value of one environment variable, `None` when unset or empty.
fn env_var(name: &str) -> Option<String> {
    std::env::var(name).ok().filter(|value| !value.is_empty())
}

/// Sets `addr` from the variable `name` when it is set; `example` is the form the error shows.
fn listen_env(name: &str, example: &str, addr: &mut std::net::SocketAddr) -> anyhow::Result<()> {
    if let Some(value) = env_var(name) {
        *addr = parse_listen_addr(&value)
            .with_context(|| format!("{name}={value:?} is not an address like {example}"))?;
    }
    Ok(())
}

impl Config {
    /// Applies `FACTORWATCH_LISTEN`, `FACTORWATCH_OPS_LISTEN`, `FACTORWATCH_ADMIN_LISTEN`,
    /// `FACTORWATCH_DATA_DIR`, `FACTORWATCH_OKTA_SECRETS`, `FACTORWATCH_OKTA_SECRETS_FILE`,
    /// `FACTORWATCH_OKTA_API_TOKEN` (the `api_token` of `[okta.api]`, replacing `client_id`
    /// credentials), `FACTORWATCH_LOG_FORMAT` and `FACTORWATCH_CLUSTER_URL` (which also sets
    /// `cluster.mode`: `nats-kv` for a `nats://` or `tls://` URL, else `redis`).
    pub fn apply_env(&mut self) -> anyhow::Result<()> {
        let server = &mut self.server;
        listen_env("FACTORWATCH_LISTEN", "0.0.0.0:8080", &mut server.listen)?;
        listen_env(
            "FACTORWATCH_OPS_LISTEN",
            "0.0.0.0:8082",
            &mut server.ops_listen,
        )?;
        listen_env(
            "FACTORWATCH_ADMIN_LISTEN",
            "127.0.0.1:8081",
            &mut server.admin_listen,
        )?;
        if let Some(dir) = env_var("FACTORWATCH_DATA_DIR") {
            self.storage.data_dir = PathBuf::from(dir);
        }
        if let Some(secrets) = env_var("FACTORWATCH_OKTA_SECRETS") {
            self.okta.secrets = split_secrets(&secrets, ',');
            self.okta.secrets_origin = SecretSource::Env {
                variable: "FACTORWATCH_OKTA_SECRETS".into(),
            };
        }
        if let Some(file) = env_var("FACTORWATCH_OKTA_SECRETS_FILE") {
            self.okta.secrets_file = Some(PathBuf::from(file));
        }
        if let Some(token) = env_var("FACTORWATCH_OKTA_API_TOKEN") {
            let Some(api) = self.okta.api.as_mut() else {
                anyhow::bail!(
                    "FACTORWATCH_OKTA_API_TOKEN is set, but the config has no [okta.api] to use it \
                     with: add [okta.api] org_url = \"https://<your-org>.okta.com\""
                );
            };
            api.api_token = Some(crate::secret::Secret::new(token));
            api.client_id = None;
            api.private_key_file = None;
        }
        if let Some(url) = env_var("FACTORWATCH_CLUSTER_URL") {
            self.cluster.mode = ClusterMode::for_url(&url);
            self.cluster.url = Some(ServerUrl::new(url));
        }
        if let Some(format) = env_var("FACTORWATCH_LOG_FORMAT") {
            self.log.format = match format.as_str() {
                "json" => LogFormat::Json,
                "text" => LogFormat::Text,
                other => bail!("FACTORWATCH_LOG_FORMAT={other:?}: expected \"text\" or \"json\""),
            };
        }
        Ok(())
    }
}

fn split_secrets(list: &str, separator: char) -> Vec<Secret> {
    list.split(separator)
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(Secret::new)
        .collect()
}
