//! Configuration: the TOML file, environment overrides, defaults and validation.
//!
//! Every field's `///` doc is user documentation (docs/configuration.md repeats it with examples).
//! Unknown keys are rejected with their name, so a typo never silently falls back to a default.
//!
//! Precedence, lowest first: built-in defaults, the TOML file (`--config` or `FACTORWATCH_CONFIG`),
//! then the `FACTORWATCH_*` environment variables listed on [`Config::apply_env`].

use std::path::{Path, PathBuf};

use anyhow::{Context, bail};
use serde::{Deserialize, Serialize};

pub use crate::brokers::ServerUrl;
pub use crate::cluster::{ClusterConfig, ClusterMode};
pub use crate::detect::RulesConfig;
pub use crate::forward::DeliveryConfig;
pub use crate::http::{RateLimitConfig, ServerConfig, TlsConfig};
pub use crate::sinks::{SinkConfig, SinkKind};
pub use crate::spool::StorageConfig;
pub use crate::telemetry::{LogConfig, LogFormat};

use crate::http::check_hook_path;
use crate::secret::Secret;
use crate::sinks::check_sinks;

/// The whole configuration of one factorwatch process.
#[derive(Debug, Clone, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct Config {
    /// The HTTP listener and the hook endpoint.
    pub server: ServerConfig,
    /// How Okta authenticates to us.
    pub okta: OktaConfig,
    /// Where the durable spool lives and how large its backlog may grow.
    pub storage: StorageConfig,
    /// Which Sigma rules run and how events are de-duplicated.
    pub rules: RulesConfig,
    /// Retry and dead-letter policy shared by every sink.
    pub delivery: DeliveryConfig,
    /// Log format and verbosity.
    pub log: LogConfig,
    /// Where alerts go. Empty means one file sink writing `<data_dir>/alerts.jsonl`.
    pub sinks: Vec<SinkConfig>,
    /// State shared with other replicas behind the same load balancer.
    pub cluster: ClusterConfig,
}

/// `[okta]`: authentication of Okta's requests.
///
/// The keys here are the top-level org's, served on `server.hook_path`. More orgs, each on its
/// own path, are `[[okta.orgs]]` blocks.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct OktaConfig {
    /// The header Okta puts the secret in: Okta's "Authentication field" (usually `Authorization`).
    pub auth_header: String,
    /// Every value accepted as Okta's "Authentication secret". List the old and the new value while
    /// rotating. Env: `FACTORWATCH_OKTA_SECRETS` (comma-separated).
    pub secrets: Vec<Secret>,
    /// A file holding accepted secrets, one per line (blank lines and `#` comments ignored), read at
    /// start; added to `secrets`. Env: `FACTORWATCH_OKTA_SECRETS_FILE`.
    pub secrets_file: Option<PathBuf>,
    /// More Okta orgs, each with its own hook path, secrets, rules, sinks and spool. With orgs
    /// set, the top-level org above is served only when it has secrets.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub orgs: Vec<OrgConfig>,
}

impl Default for OktaConfig {
    fn default() -> Self {
        Self {
            auth_header: default_auth_header(),
            secrets: Vec::new(),
            secrets_file: None,
            orgs: Vec::new(),
        }
    }
}

fn default_auth_header() -> String {
    "Authorization".into()
}

/// One `[[okta.orgs]]` block: an Okta org (a tenant, a customer) served on its own hook path,
/// with its own secrets, rules, sinks and spool. A secret of one org never opens another's path,
/// and its alerts reach only its own sinks.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct OrgConfig {
    /// The org's name: lowercase letters, digits and `-`, unique. Alerts carry it as `org`; its
    /// spool lives in `<data_dir>/orgs/<name>/`.
    pub name: String,
    /// The URL path this org's Event Hook calls (GET to verify, POST to deliver). Unique, and
    /// neither `server.hook_path` nor `/healthz`, `/readyz`, `/metrics`.
    pub hook_path: String,
    /// The header this org's hook puts its secret in (its "Authentication field").
    #[serde(default = "default_auth_header")]
    pub auth_header: String,
    /// Every value accepted as this org's "Authentication secret" (old and new while rotating);
    /// `"${NAME}"` reads the environment variable `NAME`. Accepted on this org's path only.
    #[serde(default)]
    pub secrets: Vec<Secret>,
    /// A file holding more of this org's secrets, one per line (blank lines and `#` comments
    /// ignored), read at start; added to `secrets`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub secrets_file: Option<PathBuf>,
    /// This org's detection, a whole `[okta.orgs.rules]` block (unset keys take the `[rules]`
    /// defaults, not the top-level block's values). Unset: the top-level `[rules]`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rules: Option<RulesConfig>,
    /// Where this org's alerts go (`[[okta.orgs.sinks]]`, the keys of `[[sinks]]`). Empty: one
    /// file sink writing `<data_dir>/orgs/<name>/alerts.jsonl`. The top-level `[[sinks]]` never
    /// receive this org's alerts.
    #[serde(default)]
    pub sinks: Vec<SinkConfig>,
}

/// One org's pipeline with every default resolved: what the application builds a hook, a spool,
/// a detector and forwarders from. [`Config::pipelines`] lists them.
#[derive(Debug, Clone)]
pub struct PipelineConfig {
    /// The `[[okta.orgs]]` name; `None` for the top-level org (`[okta]`, `[rules]`, `[[sinks]]`
    /// on `server.hook_path`).
    pub org: Option<String>,
    /// The path its hook is served on.
    pub hook_path: String,
    /// The header its secret comes in.
    pub auth_header: String,
    /// The secrets its path accepts (secret files already read).
    pub secrets: Vec<Secret>,
    /// Its rules.
    pub rules: RulesConfig,
    /// Its sinks, the default alert file when none is configured.
    pub sinks: Vec<SinkConfig>,
    /// The directory of its spool (and default alert file).
    pub data_dir: PathBuf,
    /// `[cluster]`, with a key prefix of its own for a named org, so that two orgs never
    /// de-duplicate each other's events.
    pub cluster: ClusterConfig,
}

impl PipelineConfig {
    /// How messages name this org: `okta.orgs "acme"`, or `the top-level org`.
    pub fn label(&self) -> String {
        match &self.org {
            Some(name) => format!("okta.orgs {name:?}"),
            None => "the top-level org".to_owned(),
        }
    }

    /// `err` with the org it is about, for a named org; the top-level org's errors read as they
    /// did before `[[okta.orgs]]` existed.
    pub fn scoped(&self, err: anyhow::Error) -> anyhow::Error {
        match &self.org {
            Some(_) => err.context(self.label()),
            None => err,
        }
    }
}

/// The value of one environment variable, `None` when unset or empty.
fn env_var(name: &str) -> Option<String> {
    std::env::var(name).ok().filter(|value| !value.is_empty())
}

impl Config {
    /// Reads the file at `path` (if any), applies environment overrides and validates the result.
    pub fn load(path: Option<&Path>) -> anyhow::Result<Self> {
        let mut config = match path {
            Some(path) => Self::from_file(path)?,
            None => Self::default(),
        };
        config.apply_env()?;
        config.load_secrets_file()?;
        config.validate()?;
        Ok(config)
    }

    /// Parses a TOML file. Errors name the file, the key and the line.
    pub fn from_file(path: &Path) -> anyhow::Result<Self> {
        let text = std::fs::read_to_string(path)
            .with_context(|| format!("cannot read config file {}", path.display()))?;
        Self::from_toml(&text).with_context(|| format!("invalid config file {}", path.display()))
    }

    /// Parses TOML text. The error names the key and the line, but never quotes the line: it may
    /// hold a secret.
    pub fn from_toml(text: &str) -> anyhow::Result<Self> {
        toml::from_str(text).map_err(|err| {
            let position = err.span().map(|span| {
                let before = &text[..span.start.min(text.len())];
                let line = before.matches('\n').count() + 1;
                let column = before.len() - before.rfind('\n').map_or(0, |i| i + 1) + 1;
                format!(" (line {line}, column {column})")
            });
            anyhow::anyhow!(
                "{}{}",
                err.message().trim_end(),
                position.unwrap_or_default()
            )
        })
    }

    /// Applies `FACTORWATCH_LISTEN`, `FACTORWATCH_ADMIN_LISTEN`, `FACTORWATCH_DATA_DIR`, `FACTORWATCH_OKTA_SECRETS`,
    /// `FACTORWATCH_OKTA_SECRETS_FILE`, `FACTORWATCH_LOG_FORMAT` and `FACTORWATCH_CLUSTER_URL` (which
    /// also sets `cluster.mode`: `nats-kv` for a `nats://` or `tls://` URL, else `redis`).
    pub fn apply_env(&mut self) -> anyhow::Result<()> {
        if let Some(listen) = env_var("FACTORWATCH_LISTEN") {
            self.server.listen = listen.parse().with_context(|| {
                format!("FACTORWATCH_LISTEN={listen:?} is not an address like 0.0.0.0:8080")
            })?;
        }
        if let Some(admin) = env_var("FACTORWATCH_ADMIN_LISTEN") {
            self.server.admin_listen = admin.parse().with_context(|| {
                format!("FACTORWATCH_ADMIN_LISTEN={admin:?} is not an address like 127.0.0.1:8081")
            })?;
        }
        if let Some(dir) = env_var("FACTORWATCH_DATA_DIR") {
            self.storage.data_dir = PathBuf::from(dir);
        }
        if let Some(secrets) = env_var("FACTORWATCH_OKTA_SECRETS") {
            self.okta.secrets = split_secrets(&secrets, ',');
        }
        if let Some(file) = env_var("FACTORWATCH_OKTA_SECRETS_FILE") {
            self.okta.secrets_file = Some(PathBuf::from(file));
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

    /// Adds the secrets of `okta.secrets_file` and of each org's `secrets_file`.
    fn load_secrets_file(&mut self) -> anyhow::Result<()> {
        let okta = &mut self.okta;
        if let Some(path) = &okta.secrets_file {
            okta.secrets
                .extend(read_secrets_file(path, "okta.secrets_file")?);
        }
        for org in &mut okta.orgs {
            if let Some(path) = &org.secrets_file {
                let key = format!("okta.orgs {:?}: secrets_file", org.name);
                org.secrets.extend(read_secrets_file(path, &key)?);
            }
        }
        Ok(())
    }

    /// Checks what the types alone cannot, each part by the component that owns it, without
    /// touching the disk or the network (that is [`crate::app::preflight`]'s job, which `serve`
    /// and `check-config` both run). Each error names the key at fault.
    pub fn validate(&self) -> anyhow::Result<()> {
        self.cluster.validate()?;
        self.server.validate()?;
        check_auth("okta", &self.okta.auth_header, &self.okta.secrets)?;
        self.delivery.validate()?;
        self.storage.validate()?;
        self.log.validate()?;
        check_sinks("sinks", &self.sinks)?;
        self.validate_orgs()
    }

    /// The `[[okta.orgs]]` blocks: names, paths, auth and sinks. Each error names the org.
    fn validate_orgs(&self) -> anyhow::Result<()> {
        let mut names = std::collections::HashSet::new();
        let mut paths = std::collections::HashMap::new();
        for org in &self.okta.orgs {
            let name = &org.name;
            let valid_name = !name.is_empty()
                && name
                    .bytes()
                    .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-');
            if !valid_name {
                bail!("okta.orgs: name {name:?} must be lowercase letters, digits and '-'");
            }
            if !names.insert(name.as_str()) {
                bail!("okta.orgs: two orgs are named {name:?}; names must be unique");
            }
            let key = format!("okta.orgs {name:?}");
            check_hook_path(&format!("{key}: hook_path"), &org.hook_path)?;
            if org.hook_path == self.server.hook_path {
                bail!(
                    "{key}: hook_path {:?} is server.hook_path, the top-level org's path; give \
                     each org its own",
                    org.hook_path
                );
            }
            if let Some(other) = paths.insert(org.hook_path.as_str(), name) {
                bail!(
                    "{key}: hook_path {:?} is also okta.orgs {other:?}'s; paths must be unique",
                    org.hook_path
                );
            }
            check_auth(&key, &org.auth_header, &org.secrets)?;
            check_sinks(&format!("{key}: sinks"), &org.sinks)?;
        }
        Ok(())
    }

    /// Fails with instructions when no secret is configured: `serve` must not run open. With
    /// `[[okta.orgs]]`, every org needs a secret, and the top-level org may have none (it is then
    /// not served).
    pub fn require_secret(&self) -> anyhow::Result<()> {
        if let Some(org) = self.okta.orgs.iter().find(|org| org.secrets.is_empty()) {
            bail!(
                "okta.orgs {:?}: no secret is configured, so its hook would refuse every request. \
                 Set the \"Authentication secret\" of this org's Event Hook as its secrets \
                 (\"${{ENV_VAR}}\" reads a variable) or secrets_file",
                org.name
            );
        }
        if self.okta.secrets.is_empty() && self.okta.orgs.is_empty() {
            bail!(
                "no Okta secret is configured, so every request would be refused.\n\
                 Set the value you entered as the hook's \"Authentication secret\" in Okta, one of:\n  \
                 [okta] secrets = [\"...\"] in the config file\n  \
                 FACTORWATCH_OKTA_SECRETS=... (comma-separated while rotating)\n  \
                 FACTORWATCH_OKTA_SECRETS_FILE=/path/to/file (one secret per line)"
            );
        }
        Ok(())
    }

    /// The top-level org's sinks in effect: the configured ones, or the default alert file.
    pub fn effective_sinks(&self) -> Vec<SinkConfig> {
        sinks_or_default(&self.sinks, &self.storage.data_dir)
    }

    /// The directory of the spool (and default alert file) of the org named `org`.
    pub fn org_data_dir(&self, org: &str) -> PathBuf {
        self.storage.data_dir.join("orgs").join(org)
    }

    /// Every org to serve, defaults resolved: the top-level org first (unless `[[okta.orgs]]`
    /// are configured and it has no secret), then each `[[okta.orgs]]` in order.
    pub fn pipelines(&self) -> Vec<PipelineConfig> {
        let top_level =
            (self.okta.orgs.is_empty() || !self.okta.secrets.is_empty()).then(|| PipelineConfig {
                org: None,
                hook_path: self.server.hook_path.clone(),
                auth_header: self.okta.auth_header.clone(),
                secrets: self.okta.secrets.clone(),
                rules: self.rules.clone(),
                sinks: self.effective_sinks(),
                data_dir: self.storage.data_dir.clone(),
                cluster: self.cluster.clone(),
            });
        let orgs = self.okta.orgs.iter().map(|org| {
            let data_dir = self.org_data_dir(&org.name);
            let mut cluster = self.cluster.clone();
            let prefix = cluster
                .key_prefix
                .as_deref()
                .unwrap_or(crate::cluster::DEFAULT_KEY_PREFIX);
            cluster.key_prefix = Some(format!("{prefix}org:{}:", org.name));
            PipelineConfig {
                org: Some(org.name.clone()),
                hook_path: org.hook_path.clone(),
                auth_header: org.auth_header.clone(),
                secrets: org.secrets.clone(),
                rules: org.rules.clone().unwrap_or_else(|| self.rules.clone()),
                sinks: sinks_or_default(&org.sinks, &data_dir),
                data_dir,
                cluster,
            }
        });
        top_level.into_iter().chain(orgs).collect()
    }

    /// The pipeline of the org named `org` (`None`: the top-level org), if it is served.
    pub fn pipeline(&self, org: Option<&str>) -> anyhow::Result<PipelineConfig> {
        self.pipelines()
            .into_iter()
            .find(|pipeline| pipeline.org.as_deref() == org)
            .ok_or_else(|| match org {
                Some(org) => anyhow::anyhow!("no [[okta.orgs]] org is named {org:?}"),
                None => anyhow::anyhow!(
                    "the top-level org is not served ([[okta.orgs]] are set and [okta] has no \
                     secret); name an org"
                ),
            })
    }

    /// The configuration as TOML with every secret replaced by `<redacted>`, and the default
    /// alert files shown where no sink is configured.
    pub fn to_redacted_toml(&self) -> anyhow::Result<String> {
        let mut effective = self.clone();
        effective.sinks = self.effective_sinks();
        for org in &mut effective.okta.orgs {
            org.sinks = sinks_or_default(&org.sinks, &self.org_data_dir(&org.name));
        }
        Ok(toml::to_string_pretty(&effective)?)
    }
}

/// `sinks`, or when there are none the default alert file in `data_dir`.
fn sinks_or_default(sinks: &[SinkConfig], data_dir: &Path) -> Vec<SinkConfig> {
    if sinks.is_empty() {
        vec![SinkConfig::file(
            "alerts-file",
            data_dir.join("alerts.jsonl"),
        )]
    } else {
        sinks.to_vec()
    }
}

/// Checks an org's auth header and secrets; `key` (`okta`, `okta.orgs "acme"`) prefixes errors.
fn check_auth(key: &str, auth_header: &str, secrets: &[Secret]) -> anyhow::Result<()> {
    if auth_header.parse::<axum::http::HeaderName>().is_err() {
        bail!("{key}.auth_header = {auth_header:?}: not a valid HTTP header name");
    }
    if secrets.iter().any(|s| s.expose().is_empty()) {
        bail!("{key}.secrets: an empty secret would let anyone in; remove it");
    }
    Ok(())
}

/// The secrets in the file at `path`, one per line (blank lines and `#` comments ignored).
/// `key` names the setting in the error.
fn read_secrets_file(path: &Path, key: &str) -> anyhow::Result<Vec<Secret>> {
    let text = std::fs::read_to_string(path)
        .with_context(|| format!("{key}: cannot read {}", path.display()))?;
    Ok(text
        .lines()
        .map(str::trim)
        .filter(|line| !line.is_empty() && !line.starts_with('#'))
        .map(Secret::new)
        .collect())
}

fn split_secrets(list: &str, separator: char) -> Vec<Secret> {
    list.split(separator)
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(Secret::new)
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::alert::{Alert, Level};

    #[test]
    fn the_documented_example_parses() {
        let config = Config::from_toml(
            r#"
            [server]
            listen = "127.0.0.1:8080"
            hook_path = "/okta/events"
            max_body_bytes = 5242880
            [okta]
            auth_header = "Authorization"
            secrets = ["Basic ZXhhbXBsZTpzZWNyZXQ="]
            [storage]
            data_dir = "./data"
            [[sinks]]
            name = "alerts-file"
            type = "file"
            path = "./data/alerts.jsonl"
            "#,
        )
        .unwrap();
        config.validate().unwrap();
        assert_eq!(config.okta.secrets.len(), 1);
        assert_eq!(config.sinks[0].name(), "alerts-file");
    }

    #[test]
    fn unknown_keys_are_named() {
        let err = Config::from_toml("[server]\nlisen = \"0.0.0.0:1\"\n").unwrap_err();
        assert!(err.to_string().contains("lisen"), "{err}");
        let err = Config::from_toml("[[sinks]]\nname='x'\ntype='carrier-pigeon'\n").unwrap_err();
        assert!(err.to_string().contains("carrier-pigeon"), "{err}");
        let err = Config::from_toml("[server]\nlisten = \"x\"\n").unwrap_err();
        assert!(err.to_string().contains("line 2"), "{err}");
    }

    #[test]
    fn errors_never_quote_the_offending_line() {
        let err = Config::from_toml("[okta]\nsecret = [\"hunter2-value\"]\n").unwrap_err();
        let message = format!("{err:#}");
        assert!(message.contains("secret"), "{message}");
        assert!(!message.contains("hunter2-value"), "{message}");
    }

    #[test]
    fn redacted_toml_has_no_secret() {
        let mut config = Config::default();
        config.okta.secrets = vec![Secret::new("s3cr3t-value")];
        let text = config.to_redacted_toml().unwrap();
        assert!(!text.contains("s3cr3t-value"));
        assert!(text.contains("<redacted>"));
        assert!(
            text.contains("alerts.jsonl"),
            "default sink is shown: {text}"
        );
    }

    #[test]
    fn missing_secret_explains_how_to_set_one() {
        let err = Config::default().require_secret().unwrap_err().to_string();
        assert!(err.contains("FACTORWATCH_OKTA_SECRETS"), "{err}");
    }

    #[test]
    fn sink_blocks_reject_unknown_keys_and_filter_alerts() {
        let err =
            Config::from_toml("[[sinks]]\nname='a'\ntype='file'\npath='x'\npth='y'\n").unwrap_err();
        assert!(err.to_string().contains("pth"), "{err}");
        let config = Config::from_toml(
            "[[sinks]]\nname='pd'\ntype='file'\npath='x'\nmin_level='high'\ntags=['attack.t1556.006']\n",
        )
        .unwrap();
        let mut alert = Alert::test_alert();
        alert.rule.tags = vec!["attack.t1556.006".into()];
        alert.level = Level::Medium;
        assert!(!config.sinks[0].accepts(&alert), "medium is below high");
        alert.level = Level::Critical;
        assert!(config.sinks[0].accepts(&alert));
        alert.rule.tags.clear();
        assert!(!config.sinks[0].accepts(&alert), "tag filter");
    }

    #[test]
    fn broker_sinks_parse_validate_and_redact() {
        let config = Config::from_toml(
            r#"
            [[sinks]]
            name = "rabbitmq"
            type = "amqp"
            username = "fw"
            password = "amqp-pa55"
            exchange = "amq.topic"
            routing_key = "factorwatch.{level}"
            [[sinks]]
            name = "mosquitto"
            type = "mqtt"
            topic = "factorwatch/{rule_id}"
            username = "fw"
            password = "mqtt-pa55"
            "#,
        )
        .unwrap();
        config.validate().unwrap();
        let text = config.to_redacted_toml().unwrap();
        assert!(!text.contains("pa55"), "{text}");
        let err = Config::from_toml(
            "[[sinks]]\nname='r'\ntype='amqp'\nurl='amqp://u:pw@h/%2f'\nrouting_key='k'\n",
        )
        .unwrap()
        .validate()
        .unwrap_err();
        assert!(format!("{err:#}").contains("\"r\""), "{err:#}");
        assert!(!format!("{err:#}").contains("pw@"), "{err:#}");
        let err =
            Config::from_toml("[[sinks]]\nname='m'\ntype='mqtt'\ntopic='t'\nqos=2\n").unwrap_err();
        assert!(err.to_string().contains("qos"), "{err}");
    }

    #[test]
    fn kafka_and_sqs_blocks_parse_with_defaults_and_are_checked() {
        let config = Config::from_toml(
            r#"
            [[sinks]]
            name = "kafka"
            type = "kafka"
            topic = "factorwatch.{level}"
            create_topic = { partitions = 3 }
            [[sinks]]
            name = "sqs"
            type = "sqs"
            queue_url = "https://sqs.eu-west-1.amazonaws.com/123456789012/alerts.fifo"
            secret_access_key = "s3cr3t-key"
            "#,
        )
        .unwrap();
        let SinkKind::Kafka(kafka) = &config.sinks[0].kind else {
            panic!("kafka block")
        };
        assert_eq!(kafka.brokers, ["127.0.0.1:9092"]);
        assert_eq!(kafka.create_topic.unwrap().replication, 1);
        let SinkKind::Sqs(sqs) = &config.sinks[1].kind else {
            panic!("sqs block")
        };
        assert_eq!(sqs.region, "us-east-1");
        assert!(sqs.is_fifo());
        let err = config.validate().unwrap_err();
        assert!(format!("{err:#}").contains("access_key_id"), "{err:#}");
        assert!(!config.to_redacted_toml().unwrap().contains("s3cr3t-key"));
        let err =
            Config::from_toml("[[sinks]]\nname='k'\ntype='kafka'\ntopic='t'\nbroker=['x:1']\n")
                .unwrap_err();
        assert!(err.to_string().contains("broker"), "{err}");
        let err =
            Config::from_toml("[[sinks]]\nname='k'\ntype='kafka'\ntopic='t.{lvl}'\n").unwrap_err();
        assert!(err.to_string().contains("lvl"), "{err}");
    }

    #[test]
    fn edge_keys_parse_print_and_are_checked() {
        let config = Config::from_toml(
            r#"
            [server]
            header_read_timeout = "2s"
            max_connections = 64
            trusted_proxies = ["10.0.0.0/8", "2001:db8::/32"]
            allowed_sources = ["192.0.2.0/24"]
            [server.rate_limit]
            requests_per_second = 20
            burst = 40
            "#,
        )
        .unwrap();
        config.validate().unwrap();
        assert_eq!(config.server.trusted_proxies.len(), 2);
        let text = config.to_redacted_toml().unwrap();
        assert!(text.contains("\"10.0.0.0/8\""), "{text}");
        assert!(text.contains("[server.rate_limit]"), "{text}");
        let err = Config::from_toml("[server]\ntrusted_proxies = [\"10.0.0.0/33\"]\n").unwrap_err();
        assert!(err.to_string().contains("line 2"), "{err}");
        let err = Config::from_toml("[server.rate_limit]\nrequests_per_second = 0\nburst = 1\n")
            .unwrap()
            .validate()
            .unwrap_err();
        assert!(err.to_string().contains("server.rate_limit"), "{err}");
    }

    #[test]
    fn duplicate_sink_names_are_rejected() {
        let config = Config::from_toml(
            "[[sinks]]\nname='a'\ntype='file'\npath='x'\n[[sinks]]\nname='a'\ntype='file'\npath='y'\n",
        )
        .unwrap();
        assert!(config.validate().unwrap_err().to_string().contains("\"a\""));
    }

    #[test]
    fn nats_and_redis_blocks_parse_with_defaults() {
        let config = Config::from_toml(
            r#"
            [[sinks]]
            name = "jetstream"
            type = "nats"
            subject = "factorwatch.alerts.{level}"
            stream = "FACTORWATCH_ALERTS"
            [[sinks]]
            name = "redis-stream"
            type = "redis"
            stream = "factorwatch:alerts"
            maxlen = 100000
            "#,
        )
        .unwrap();
        config.validate().unwrap();
        let SinkKind::Nats(nats) = &config.sinks[0].kind else {
            panic!("not nats: {:?}", config.sinks[0]);
        };
        assert_eq!(nats.url.expose(), "nats://127.0.0.1:4222");
        assert_eq!(nats.subject.as_str(), "factorwatch.alerts.{level}");
        assert_eq!(nats.stream.as_deref(), Some("FACTORWATCH_ALERTS"));
        let SinkKind::Redis(redis) = &config.sinks[1].kind else {
            panic!("not redis: {:?}", config.sinks[1]);
        };
        assert_eq!(redis.url.expose(), "redis://127.0.0.1:6379");
        assert_eq!(redis.maxlen, Some(100_000));
        assert_eq!(config.sinks[1].name(), "redis-stream");
    }

    #[test]
    fn broker_blocks_reject_unknown_keys_and_bad_values() {
        let err = Config::from_toml("[[sinks]]\nname='n'\ntype='nats'\nsubject='a'\nsubjekt='b'\n")
            .unwrap_err();
        assert!(err.to_string().contains("subjekt"), "{err}");
        let err = Config::from_toml("[[sinks]]\nname='r'\ntype='redis'\nstream='a'\nmax_len=1\n")
            .unwrap_err();
        assert!(err.to_string().contains("max_len"), "{err}");
        let err = Config::from_toml("[[sinks]]\nname='n'\ntype='nats'\nsubject='a.{rule}'\n")
            .unwrap_err();
        assert!(err.to_string().contains("{rule}"), "{err}");
        let config =
            Config::from_toml("[[sinks]]\nname='n'\ntype='nats'\nsubject='a.*'\n").unwrap();
        let err = format!("{:#}", config.validate().unwrap_err());
        assert!(err.contains("\"n\"") && err.contains("subject"), "{err}");
        let config =
            Config::from_toml("[[sinks]]\nname='r'\ntype='redis'\nstream='s'\nmaxlen=0\n").unwrap();
        let err = format!("{:#}", config.validate().unwrap_err());
        assert!(err.contains("\"r\"") && err.contains("maxlen"), "{err}");
    }

    #[test]
    fn broker_credentials_never_print() {
        let config = Config::from_toml(
            r#"
            [[sinks]]
            name = "n"
            type = "nats"
            url = "nats://alice:nats-pass@127.0.0.1:4222,nats://tok3n@127.0.0.2:4222"
            subject = "a"
            token = "nats-token"
            [[sinks]]
            name = "r"
            type = "redis"
            url = "rediss://:redis-pass@127.0.0.1:6380/2"
            stream = "s"
            "#,
        )
        .unwrap();
        config.validate().unwrap();
        let shown = format!("{config:?}\n{}", config.to_redacted_toml().unwrap());
        for secret in ["nats-pass", "tok3n", "nats-token", "redis-pass"] {
            assert!(!shown.contains(secret), "{secret} shown in {shown}");
        }
        assert!(
            shown.contains("nats://alice:<redacted>@127.0.0.1:4222"),
            "{shown}"
        );
        assert!(
            shown.contains("rediss://:<redacted>@127.0.0.1:6380/2"),
            "{shown}"
        );
        let SinkKind::Redis(redis) = &config.sinks[1].kind else {
            panic!("not redis");
        };
        assert_eq!(redis.url.expose(), "rediss://:redis-pass@127.0.0.1:6380/2");
    }

    const TWO_ORGS: &str = r#"
        [okta]
        [[okta.orgs]]
        name = "acme"
        hook_path = "/okta/acme"
        secrets = ["acme-s3cret"]
        [okta.orgs.rules]
        builtin_correlations = false
        [[okta.orgs]]
        name = "globex"
        hook_path = "/okta/globex"
        auth_header = "X-Okta-Auth"
        secrets = ["globex-s3cret"]
        [[okta.orgs.sinks]]
        name = "globex-file"
        type = "file"
        path = "/tmp/globex.jsonl"
        [cluster]
        mode = "redis"
        url = "redis://127.0.0.1:6379"
        "#;

    #[test]
    fn orgs_resolve_to_one_pipeline_each() {
        let config = Config::from_toml(TWO_ORGS).unwrap();
        config.validate().unwrap();
        config.require_secret().unwrap();
        let pipelines = config.pipelines();
        let names: Vec<_> = pipelines.iter().map(|p| p.org.as_deref()).collect();
        assert_eq!(
            names,
            [Some("acme"), Some("globex")],
            "no top-level secret: not served"
        );
        let (acme, globex) = (&pipelines[0], &pipelines[1]);
        assert_eq!(acme.data_dir, Path::new("./data/orgs/acme"));
        assert_eq!(acme.auth_header, "Authorization");
        assert!(!acme.rules.builtin_correlations, "its own rules");
        assert!(globex.rules.builtin_correlations, "the top-level rules");
        assert_eq!(acme.sinks[0].name(), "alerts-file");
        let SinkKind::File(file) = &acme.sinks[0].kind else {
            panic!("default sink is a file")
        };
        assert_eq!(file.path, Path::new("./data/orgs/acme/alerts.jsonl"));
        assert_eq!(globex.sinks[0].name(), "globex-file");
        assert_eq!(globex.auth_header, "X-Okta-Auth");
        assert_eq!(
            globex.cluster.key_prefix.as_deref(),
            Some("factorwatch:org:globex:")
        );

        let mut with_top_level = config.clone();
        with_top_level.okta.secrets = vec![Secret::new("top-s3cret")];
        let pipelines = with_top_level.pipelines();
        assert_eq!(pipelines.len(), 3);
        assert_eq!(pipelines[0].org, None);
        assert_eq!(pipelines[0].cluster.key_prefix, None, "unchanged");
        assert!(with_top_level.pipeline(Some("globex")).is_ok());
        assert!(config.pipeline(None).is_err());
    }

    #[test]
    fn duplicate_org_names_and_paths_are_refused_by_name() {
        let twice = TWO_ORGS.replace("\"globex\"", "\"acme\"");
        let err = Config::from_toml(&twice).unwrap().validate().unwrap_err();
        assert!(
            err.to_string().contains("two orgs are named \"acme\""),
            "{err}"
        );
        let same_path = TWO_ORGS.replace("/okta/globex", "/okta/acme");
        let err = Config::from_toml(&same_path)
            .unwrap()
            .validate()
            .unwrap_err();
        let message = err.to_string();
        assert!(
            message.contains("\"globex\"") && message.contains("\"acme\""),
            "{message}"
        );
        assert!(message.contains("/okta/acme"), "{message}");
        let top_path = TWO_ORGS.replace("/okta/globex", "/okta/events");
        let err = Config::from_toml(&top_path)
            .unwrap()
            .validate()
            .unwrap_err();
        assert!(err.to_string().contains("server.hook_path"), "{err}");
        let builtin = TWO_ORGS.replace("/okta/globex", "/metrics");
        let err = Config::from_toml(&builtin).unwrap().validate().unwrap_err();
        assert!(err.to_string().contains("built-in endpoint"), "{err}");
        let bad_name = TWO_ORGS.replace("\"globex\"", "\"Globex Corp\"");
        let err = Config::from_toml(&bad_name)
            .unwrap()
            .validate()
            .unwrap_err();
        assert!(err.to_string().contains("Globex Corp"), "{err}");
        let bad_sink = TWO_ORGS.replace(
            "type = \"file\"\n        path = \"/tmp/globex.jsonl\"",
            "type = \"nats\"\nsubject = \"a.*\"",
        );
        let err = format!(
            "{:#}",
            Config::from_toml(&bad_sink)
                .unwrap()
                .validate()
                .unwrap_err()
        );
        assert!(
            err.contains("okta.orgs \"globex\"") && err.contains("globex-file"),
            "{err}"
        );
        let err = Config::from_toml(&TWO_ORGS.replace("auth_header", "auth_headr")).unwrap_err();
        assert!(err.to_string().contains("auth_headr"), "{err}");
    }

    #[test]
    fn every_org_needs_a_secret_and_none_prints() {
        let config = Config::from_toml(TWO_ORGS).unwrap();
        let shown = format!("{config:?}\n{}", config.to_redacted_toml().unwrap());
        assert!(!shown.contains("s3cret"), "{shown}");
        assert!(shown.contains("[[okta.orgs]]"), "{shown}");
        assert!(
            shown.contains("orgs/acme/alerts.jsonl"),
            "default sink shown: {shown}"
        );
        let reparsed = Config::from_toml(&config.to_redacted_toml().unwrap()).unwrap();
        assert_eq!(reparsed.okta.orgs.len(), 2);
        let mut no_secret = config.clone();
        no_secret.okta.orgs[1].secrets.clear();
        let err = no_secret.require_secret().unwrap_err().to_string();
        assert!(err.contains("\"globex\""), "{err}");
        let empty = TWO_ORGS.replace("\"globex-s3cret\"", "\"\"");
        let err = Config::from_toml(&empty).unwrap().validate().unwrap_err();
        assert!(
            err.to_string().contains("okta.orgs \"globex\".secrets"),
            "{err}"
        );
    }
}
