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
}

impl Default for OktaConfig {
    fn default() -> Self {
        Self {
            auth_header: "Authorization".into(),
            secrets: Vec::new(),
            secrets_file: None,
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
    /// also sets `cluster.mode = "redis"`).
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
            self.cluster.mode = crate::cluster::ClusterMode::Redis;
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

    fn load_secrets_file(&mut self) -> anyhow::Result<()> {
        let Some(path) = &self.okta.secrets_file else {
            return Ok(());
        };
        let text = std::fs::read_to_string(path)
            .with_context(|| format!("okta.secrets_file: cannot read {}", path.display()))?;
        let from_file = text
            .lines()
            .map(str::trim)
            .filter(|line| !line.is_empty() && !line.starts_with('#'))
            .map(Secret::new);
        self.okta.secrets.extend(from_file);
        Ok(())
    }

    /// Checks what the types alone cannot. Each error names the key at fault.
    pub fn validate(&self) -> anyhow::Result<()> {
        self.cluster.validate()?;
        let hook = &self.server.hook_path;
        if !hook.starts_with('/') || hook.len() < 2 {
            bail!("server.hook_path = {hook:?}: must be a path such as \"/okta/events\"");
        }
        if ["/healthz", "/readyz", "/metrics"].contains(&hook.as_str()) {
            bail!("server.hook_path = {hook:?}: collides with a built-in endpoint");
        }
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
        if self
            .okta
            .auth_header
            .parse::<axum::http::HeaderName>()
            .is_err()
        {
            bail!(
                "okta.auth_header = {:?}: not a valid HTTP header name",
                self.okta.auth_header
            );
        }
        if self.okta.secrets.iter().any(|s| s.expose().is_empty()) {
            bail!("okta.secrets: an empty secret would let anyone in; remove it");
        }
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
        let mut names = std::collections::HashSet::new();
        for sink in &self.sinks {
            if sink.name().is_empty() {
                bail!("sinks: a sink has an empty name");
            }
            if !names.insert(sink.name()) {
                bail!(
                    "sinks: two sinks are named {:?}; names must be unique",
                    sink.name()
                );
            }
        }
        // Building a sink checks its keys without connecting to anything.
        for sink in &self.sinks {
            crate::sinks::build(sink).with_context(|| format!("sinks: sink {:?}", sink.name()))?;
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

    /// Fails with instructions when no secret is configured: `serve` must not run open.
    pub fn require_secret(&self) -> anyhow::Result<()> {
        if self.okta.secrets.is_empty() {
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

    /// The sinks in effect: the configured ones, or the default alert file.
    pub fn effective_sinks(&self) -> Vec<SinkConfig> {
        if self.sinks.is_empty() {
            vec![SinkConfig::file(
                "alerts-file",
                self.storage.data_dir.join("alerts.jsonl"),
            )]
        } else {
            self.sinks.clone()
        }
    }

    /// The configuration as TOML with every secret replaced by `<redacted>`.
    pub fn to_redacted_toml(&self) -> anyhow::Result<String> {
        let mut effective = self.clone();
        effective.sinks = self.effective_sinks();
        Ok(toml::to_string_pretty(&effective)?)
    }
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
}
