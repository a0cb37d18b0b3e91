//! Configuration: the TOML file, environment overrides, defaults and validation.
//!
//! Every field's `///` doc is user documentation (docs/configuration.md repeats it with examples).
//! Unknown keys are rejected with their name, so a typo never silently falls back to a default.
//!
//! Precedence, lowest first: built-in defaults, the TOML file (`--config` or `FACTORWATCH_CONFIG`),
//! then the `FACTORWATCH_*` environment variables listed on [`Config::apply_env`].

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{Context, bail};
use ipnet::IpNet;
use serde::{Deserialize, Serialize};

use crate::alert::{Alert, Level};
use crate::secret::{REDACTED, Secret};

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
    pub cluster: crate::cluster::ClusterConfig,
}

/// `[server]`: the HTTP side.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct ServerConfig {
    /// Address and port to listen on. Env: `FACTORWATCH_LISTEN`.
    pub listen: SocketAddr,
    /// The one URL path Okta calls: GET to verify the hook, POST to deliver events.
    pub hook_path: String,
    /// Largest request body accepted on the hook; larger bodies get 413.
    pub max_body_bytes: usize,
    /// A delivery that takes longer than this to read and store (slow client, stalled disk) is
    /// answered 503 and logged. Okta itself gives up after 3 s.
    #[serde(with = "humantime_serde")]
    pub request_timeout: Duration,
    /// Serve the admin API (dead-letter management for `factorwatch dlq`) on `admin_listen`.
    pub admin_enabled: bool,
    /// Address of the admin API. Keep it on loopback (reach it with `docker exec` or `kubectl
    /// exec`); any other address requires `admin_token`. Env: `FACTORWATCH_ADMIN_LISTEN`.
    pub admin_listen: SocketAddr,
    /// Bearer token the admin API requires, if set. Required when `admin_listen` is not loopback.
    pub admin_token: Option<Secret>,
    /// On SIGTERM, how long to keep serving after `/readyz` turned 503, so a load balancer stops
    /// routing here before the listener closes. Set it above the balancer's health-check interval
    /// (for example 5s on Kubernetes).
    #[serde(with = "humantime_serde")]
    pub shutdown_drain_delay: Duration,
    /// On SIGTERM, how long requests in flight may take to finish before the process exits anyway.
    /// Drain delay plus grace, plus up to 10 s for a forwarder's publish in flight, should stay
    /// under the orchestrator's stop timeout (Docker's default is 10 s: raise it with
    /// `--stop-timeout`, or Kubernetes' `terminationGracePeriodSeconds`).
    #[serde(with = "humantime_serde")]
    pub shutdown_grace: Duration,
    /// How long a client may take to send a request's headers, and on a new connection its first
    /// bytes or its TLS handshake, before the connection is closed without an answer. Stops slow
    /// clients (slowloris) from holding connections open. The body is bounded by `request_timeout`.
    #[serde(with = "humantime_serde")]
    pub header_read_timeout: Duration,
    /// Most connections open at once on `listen`. A connection over the limit is closed as soon as
    /// it is accepted, so a flood of idle connections cannot exhaust memory or file descriptors.
    pub max_connections: usize,
    /// Proxies and load balancers (CIDRs, such as `"10.0.0.0/8"`) whose `X-Forwarded-For` header is
    /// believed. The source of a request is its TCP peer, unless that peer is listed here: then it
    /// is the right-most address of `X-Forwarded-For` that is not listed. Empty: the header is
    /// ignored. The source is what `allowed_sources` and `rate_limit` apply to.
    pub trusted_proxies: Vec<IpNet>,
    /// Sources (CIDRs, such as Okta's published egress ranges) allowed to call the hook; others get
    /// 403. Empty: any source. Applies to `hook_path` only, not to `/healthz`, `/readyz`, `/metrics`.
    pub allowed_sources: Vec<IpNet>,
    /// Per-source rate limit on `hook_path`: over it, 429 with `Retry-After`. Unset: no limit.
    /// Okta does not retry a 4xx, so set it well above Okta's rate.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub rate_limit: Option<RateLimitConfig>,
    /// Serve HTTPS on `listen` (HTTP/2 and HTTP/1.1 by ALPN) with this certificate. Unset: plain
    /// HTTP, for installs where a load balancer terminates TLS.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tls: Option<TlsConfig>,
}

/// `[server.rate_limit]`: a token bucket per source address (an IPv6 source counts as its /64).
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct RateLimitConfig {
    /// Requests per second a source may make on average.
    pub requests_per_second: u32,
    /// Requests a source may make at once, above the average, before it is limited.
    pub burst: u32,
}

/// `[server.tls]`: the listener's certificate, reloaded when its files change.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct TlsConfig {
    /// PEM file with the certificate chain, leaf first.
    pub cert_path: PathBuf,
    /// PEM file with the private key (PKCS#8, PKCS#1 or SEC1).
    pub key_path: PathBuf,
    /// How often both files are read again; a changed, valid pair replaces the certificate for
    /// new connections. A pair that does not load or does not match keeps the old one (logged).
    #[serde(with = "humantime_serde", default = "default_tls_reload_interval")]
    pub reload_interval: Duration,
}

fn default_tls_reload_interval() -> Duration {
    Duration::from_secs(5)
}

impl Default for ServerConfig {
    fn default() -> Self {
        Self {
            listen: SocketAddr::from(([127, 0, 0, 1], 8080)),
            hook_path: "/okta/events".into(),
            max_body_bytes: 5 * 1024 * 1024,
            request_timeout: Duration::from_secs(10),
            admin_enabled: true,
            admin_listen: SocketAddr::from(([127, 0, 0, 1], 8081)),
            admin_token: None,
            shutdown_drain_delay: Duration::ZERO,
            shutdown_grace: Duration::from_secs(8),
            header_read_timeout: Duration::from_secs(5),
            max_connections: 1024,
            trusted_proxies: Vec::new(),
            allowed_sources: Vec::new(),
            rate_limit: None,
            tls: None,
        }
    }
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
    pub cluster: crate::cluster::ClusterConfig,
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

/// `[storage]`: the embedded durable spool.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct StorageConfig {
    /// Directory of the spool database (`spool.redb`) and of the default alert file.
    /// Env: `FACTORWATCH_DATA_DIR`.
    pub data_dir: PathBuf,
    /// Once batches waiting for detection plus alerts waiting for delivery take this many bytes,
    /// new batches are answered 503 (Okta retries once) and `/readyz` turns false, so a load
    /// balancer sends traffic to another replica instead of filling this disk.
    pub max_backlog_bytes: u64,
}

impl Default for StorageConfig {
    fn default() -> Self {
        Self {
            data_dir: PathBuf::from("./data"),
            max_backlog_bytes: 1024 * 1024 * 1024,
        }
    }
}

/// `[rules]`: detection.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct RulesConfig {
    /// Load the rules shipped inside the binary (MFA factor deactivated, all MFA factors reset).
    pub builtin: bool,
    /// With `builtin`, also load the default correlation rules (one actor resetting many users,
    /// MFA reset then password reset, MFA reset then sign-in from a new network, MFA removed
    /// and not replaced within 12 hours).
    pub builtin_correlations: bool,
    /// Extra Sigma rule files, or folders searched for `*.yml` / `*.yaml`.
    pub paths: Vec<PathBuf>,
    /// Logins (`alternateId`) or Okta user ids of privileged users (admins, executives, break-glass
    /// accounts): an MFA change on one of them raises the alert's level.
    pub privileged_users: Vec<String>,
    /// How long an event uuid is remembered, so that Okta's redelivery of a batch raises no second alert.
    #[serde(with = "humantime_serde")]
    pub dedup_window: Duration,
    /// Values of `|expand` placeholders: `office_networks = ["192.0.2.0/24"]` fills
    /// `%office_networks%`. A rule whose placeholder is not here fails to load.
    pub placeholders: BTreeMap<String, Vec<String>>,
}

impl Default for RulesConfig {
    fn default() -> Self {
        Self {
            builtin: true,
            builtin_correlations: true,
            paths: Vec::new(),
            privileged_users: Vec::new(),
            dedup_window: Duration::from_secs(24 * 3600),
            placeholders: BTreeMap::new(),
        }
    }
}

/// `[delivery]`: how a forwarder retries a sink before giving up on an alert.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct DeliveryConfig {
    /// Attempts per alert and sink before it moves to the dead-letter table.
    pub max_attempts: u32,
    /// An alert still undelivered this long after it was raised moves to the dead-letter table.
    #[serde(with = "humantime_serde")]
    pub max_age: Duration,
    /// Wait before the first retry; doubles with each failure (with jitter) up to `max_backoff`.
    #[serde(with = "humantime_serde")]
    pub initial_backoff: Duration,
    /// Longest wait between two attempts.
    #[serde(with = "humantime_serde")]
    pub max_backoff: Duration,
}

impl Default for DeliveryConfig {
    fn default() -> Self {
        Self {
            max_attempts: 20,
            max_age: Duration::from_secs(24 * 3600),
            initial_backoff: Duration::from_millis(500),
            max_backoff: Duration::from_secs(300),
        }
    }
}

/// `[log]`: logging.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct LogConfig {
    /// `text` for people, `json` for log pipelines. Env: `FACTORWATCH_LOG_FORMAT`.
    pub format: LogFormat,
    /// A tracing filter such as `info` or `factorwatch=debug`. `RUST_LOG` wins when set.
    pub level: String,
}

impl Default for LogConfig {
    fn default() -> Self {
        Self {
            format: LogFormat::Text,
            level: "info".into(),
        }
    }
}

/// Log line format.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    /// Human-readable lines.
    Text,
    /// One JSON object per line.
    Json,
}

/// One `[[sinks]]` block: where alerts go, and which alerts go there. `type` selects the kind;
/// the keys of each kind are documented in docs/sinks.md.
#[derive(Debug, Clone, Deserialize, Serialize)]
pub struct SinkConfig {
    /// Unique name of this sink: labels its metrics, outbox and dead letters.
    pub name: String,
    /// Only alerts of this level or above (`informational`, `low`, `medium`, `high`, `critical`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub min_level: Option<Level>,
    /// Only alerts of these rule ids. Empty: every rule.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub rules: Vec<String>,
    /// Only alerts whose rule has at least one of these tags (such as `attack.t1556.006`). Empty: any.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub tags: Vec<String>,
    /// The destination and its own keys.
    #[serde(flatten)]
    pub kind: SinkKind,
}

/// The kinds of sink. Unknown keys inside a block are rejected with their name.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(tag = "type", rename_all = "lowercase", deny_unknown_fields)]
pub enum SinkKind {
    /// Append each alert as one JSON line to a local file.
    File(crate::sinks::file::FileConfig),
    /// Publish to a RabbitMQ (AMQP 0-9-1) exchange with publisher confirms.
    Amqp(crate::sinks::amqp::AmqpConfig),
    /// Publish to an MQTT broker with QoS 1.
    Mqtt(crate::sinks::mqtt::MqttConfig),
    /// POST each alert, signed the Standard Webhooks way, to an HTTPS endpoint.
    Webhook(crate::sinks::webhook::WebhookConfig),
    /// Post a readable message to a Slack incoming webhook.
    Slack(crate::sinks::slack::SlackConfig),
    /// Trigger a PagerDuty incident (Events API v2).
    PagerDuty(crate::sinks::pagerduty::PagerDutyConfig),
    /// Publish each alert to a NATS JetStream subject; delivered once the stream acknowledged it.
    Nats(crate::sinks::nats::NatsConfig),
    /// Add each alert to a Redis stream (`XADD`); delivered once Redis returned the entry id.
    Redis(crate::sinks::redis::RedisConfig),
    /// Produce each alert as one record to a Kafka topic (acks=all), keyed by the alert id.
    Kafka(crate::sinks::kafka::KafkaConfig),
    /// Send each alert as one message to an Amazon SQS queue (FIFO queues de-duplicate on the alert id).
    Sqs(crate::sinks::sqs::SqsConfig),
}

impl SinkConfig {
    /// The sink's unique name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// A sink of `kind` named `name`, with no filter.
    pub fn new(name: &str, kind: SinkKind) -> Self {
        Self {
            name: name.to_owned(),
            min_level: None,
            rules: Vec::new(),
            tags: Vec::new(),
            kind,
        }
    }

    /// A file sink with no filter (the default sink, and handy in tests).
    pub fn file(name: &str, path: impl Into<PathBuf>) -> Self {
        Self::new(
            name,
            SinkKind::File(crate::sinks::file::FileConfig { path: path.into() }),
        )
    }

    /// True when this sink wants `alert` (its level, after risk adjustment, and its rule).
    pub fn accepts(&self, alert: &Alert) -> bool {
        let rule = &alert.rule;
        self.min_level.is_none_or(|min| alert.level >= min)
            && (self.rules.is_empty() || self.rules.contains(&rule.id))
            && (self.tags.is_empty() || rule.tags.iter().any(|tag| self.tags.contains(tag)))
    }
}

/// A server URL that may carry credentials (`redis://:password@host`, `nats://user:password@host`).
/// `Debug`, `Display` and serialized output show it with the password replaced by `<redacted>`.
#[derive(Clone, PartialEq, Eq, Deserialize)]
#[serde(transparent)]
pub struct ServerUrl(String);

impl ServerUrl {
    /// Wraps a URL (or a comma-separated list of URLs).
    pub fn new(url: impl Into<String>) -> Self {
        Self(url.into())
    }

    /// The URL itself, credentials included. Call only to connect.
    pub fn expose(&self) -> &str {
        &self.0
    }

    /// The URL with every password (or a lone token before `@`) replaced by `<redacted>`.
    pub fn redacted(&self) -> String {
        self.0
            .split(',')
            .map(redact_userinfo)
            .collect::<Vec<_>>()
            .join(",")
    }
}

fn redact_userinfo(url: &str) -> String {
    let start = url.find("://").map_or(0, |i| i + 3);
    let rest = &url[start..];
    let authority = &rest[..rest.find(['/', '?', '#']).unwrap_or(rest.len())];
    let Some(at) = authority.rfind('@') else {
        return url.to_owned();
    };
    let shown = match authority[..at].split_once(':') {
        Some((user, _)) => format!("{user}:{REDACTED}"),
        None => REDACTED.to_owned(),
    };
    format!("{}{shown}{}", &url[..start], &rest[at..])
}

impl std::fmt::Debug for ServerUrl {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{:?}", self.redacted())
    }
}

impl std::fmt::Display for ServerUrl {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.redacted())
    }
}

impl Serialize for ServerUrl {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(&self.redacted())
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
            self.cluster.mode = crate::cluster::ClusterMode::for_url(&url);
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

    /// Checks what the types alone cannot. Each error names the key at fault.
    pub fn validate(&self) -> anyhow::Result<()> {
        self.cluster.validate()?;
        check_hook_path("server.hook_path", &self.server.hook_path)?;
        if self.server.admin_enabled
            && !self.server.admin_listen.ip().is_loopback()
            && self.server.admin_token.is_none()
        {
            bail!(
                "server.admin_listen = {}: the admin API off loopback needs server.admin_token",
                self.server.admin_listen
            );
        }
        if self.server.max_body_bytes == 0 {
            bail!("server.max_body_bytes must be greater than 0");
        }
        check_auth("okta", &self.okta.auth_header, &self.okta.secrets)?;
        if self.delivery.max_attempts == 0 {
            bail!("delivery.max_attempts must be at least 1");
        }
        if self.delivery.initial_backoff > self.delivery.max_backoff {
            bail!("delivery.initial_backoff must not exceed delivery.max_backoff");
        }
        if self.storage.max_backlog_bytes == 0 {
            bail!("storage.max_backlog_bytes must be greater than 0");
        }
        if self.server.request_timeout.is_zero() {
            bail!("server.request_timeout must be greater than 0");
        }
        self.validate_edge()?;
        if let Err(err) = tracing_subscriber::EnvFilter::try_new(&self.log.level) {
            bail!("log.level = {:?}: {err}", self.log.level);
        }
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

    /// The `[server]` keys that guard the listener: timeouts, limits, TLS files.
    fn validate_edge(&self) -> anyhow::Result<()> {
        let server = &self.server;
        if server.header_read_timeout.is_zero() {
            bail!("server.header_read_timeout must be greater than 0");
        }
        if server.max_connections == 0 {
            bail!("server.max_connections must be greater than 0");
        }
        if let Some(limit) = &server.rate_limit
            && (limit.requests_per_second == 0 || limit.burst == 0)
        {
            bail!(
                "server.rate_limit: requests_per_second and burst must be greater than 0 \
                 (remove [server.rate_limit] for no limit)"
            );
        }
        if let Some(tls) = &server.tls {
            if tls.reload_interval.is_zero() {
                bail!("server.tls.reload_interval must be greater than 0");
            }
            crate::http::tls::load_certificate(tls).context("server.tls")?;
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

/// Checks a hook path (`key` names it in the error): a path, and no built-in endpoint's.
fn check_hook_path(key: &str, path: &str) -> anyhow::Result<()> {
    if !path.starts_with('/') || path.len() < 2 {
        bail!("{key} = {path:?}: must be a path such as \"/okta/events\"");
    }
    if ["/healthz", "/readyz", "/metrics"].contains(&path) {
        bail!("{key} = {path:?}: collides with a built-in endpoint");
    }
    Ok(())
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

/// Checks a list of sinks (`key` names it in errors): unique, non-empty names, and each sink's
/// keys, by building it, which connects to nothing.
fn check_sinks(key: &str, sinks: &[SinkConfig]) -> anyhow::Result<()> {
    let mut names = std::collections::HashSet::new();
    for sink in sinks {
        if sink.name().is_empty() {
            bail!("{key}: a sink has an empty name");
        }
        if !names.insert(sink.name()) {
            bail!(
                "{key}: two sinks are named {:?}; names must be unique",
                sink.name()
            );
        }
    }
    for sink in sinks {
        crate::sinks::build(sink).with_context(|| format!("{key}: sink {:?}", sink.name()))?;
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
        let err = Config::from_toml(
            "[server.tls]\ncert_path = \"/nope.pem\"\nkey_path = \"/nope.key\"\n",
        )
        .unwrap()
        .validate()
        .unwrap_err();
        assert!(format!("{err:#}").contains("/nope.pem"), "{err:#}");
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
