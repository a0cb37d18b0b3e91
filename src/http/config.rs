//! `[server]`: the listener, the hook endpoint, the operational and admin listeners' addresses
//! and the edge guards.
//! The keys are documented field by field (docs/configuration.md repeats them with examples).

use std::net::{Ipv4Addr, SocketAddr};
use std::path::PathBuf;
use std::time::Duration;

use anyhow::bail;
use ipnet::IpNet;
use serde::{Deserialize, Deserializer, Serialize};

use crate::secret::Secret;

/// `[server]`: the HTTP side.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct ServerConfig {
    /// Address and port to listen on (`localhost:PORT` is 127.0.0.1). Env: `FACTORWATCH_LISTEN`.
    #[serde(deserialize_with = "listen_addr")]
    pub listen: SocketAddr,
    /// The one URL path Okta calls: GET to verify the hook, POST to deliver events.
    pub hook_path: String,
    /// Largest request body accepted on the hook; larger bodies get 413.
    pub max_body_bytes: usize,
    /// A delivery that takes longer than this to read and store (slow client, stalled disk) is
    /// answered 503 and logged. Okta itself gives up after 3 s.
    #[serde(with = "humantime_serde")]
    pub request_timeout: Duration,
    /// Address of the operational listener: `/metrics` and the detailed `/readyz` (backlog, sinks
    /// and their last errors, the cluster backend, the System Log poller). Kept off the hook's
    /// `listen`, which faces the internet and answers only the hook, `/healthz` and a bare
    /// `/readyz`. On loopback by default; for Prometheus in another pod or host, `0.0.0.0:8082`
    /// behind a network policy (docs/security.md). Env: `FACTORWATCH_OPS_LISTEN`.
    #[serde(deserialize_with = "listen_addr")]
    pub ops_listen: SocketAddr,
    /// Serve the admin API (dead-letter management for `factorwatch dlq`) on `admin_listen`.
    pub admin_enabled: bool,
    /// Address of the admin API. Keep it on loopback (reach it with `docker exec` or `kubectl
    /// exec`); any other address requires `admin_token`. Env: `FACTORWATCH_ADMIN_LISTEN`.
    #[serde(deserialize_with = "listen_addr")]
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
    /// 403. Empty: any source. Applies to `hook_path` only, not to `/healthz` and the bare `/readyz`
    /// a load balancer checks.
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
            ops_listen: SocketAddr::from(([127, 0, 0, 1], 8082)),
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

impl ServerConfig {
    /// Checks what the types alone cannot, without touching the disk or the network (the TLS
    /// files are loaded by the application's preflight). Each error names the key at fault.
    pub fn validate(&self) -> anyhow::Result<()> {
        check_hook_path("server.hook_path", &self.hook_path)?;
        if self.admin_enabled && !self.admin_listen.ip().is_loopback() && self.admin_token.is_none()
        {
            bail!(
                "server.admin_listen = {}: the admin API off loopback needs server.admin_token",
                self.admin_listen
            );
        }
        if self.max_body_bytes == 0 {
            bail!("server.max_body_bytes must be greater than 0");
        }
        if self.request_timeout.is_zero() {
            bail!("server.request_timeout must be greater than 0");
        }
        self.validate_edge()
    }

    /// The keys that guard the listener: timeouts, limits, the TLS reload interval.
    fn validate_edge(&self) -> anyhow::Result<()> {
        if self.header_read_timeout.is_zero() {
            bail!("server.header_read_timeout must be greater than 0");
        }
        if self.max_connections == 0 {
            bail!("server.max_connections must be greater than 0");
        }
        if let Some(limit) = &self.rate_limit
            && (limit.requests_per_second == 0 || limit.burst == 0)
        {
            bail!(
                "server.rate_limit: requests_per_second and burst must be greater than 0 \
                 (remove [server.rate_limit] for no limit)"
            );
        }
        if let Some(tls) = &self.tls
            && tls.reload_interval.is_zero()
        {
            bail!("server.tls.reload_interval must be greater than 0");
        }
        Ok(())
    }
}

/// Checks a hook path (`key` names it in the error): a path, and no built-in endpoint's.
pub fn check_hook_path(key: &str, path: &str) -> anyhow::Result<()> {
    if !path.starts_with('/') || path.len() < 2 {
        bail!("{key} = {path:?}: must be a path such as \"/okta/events\"");
    }
    if ["/healthz", "/readyz", "/metrics"].contains(&path) {
        bail!("{key} = {path:?}: collides with a built-in endpoint");
    }
    Ok(())
}

/// Parses an address to listen on: `IP:port`, or `localhost:port` (127.0.0.1). Any other host
/// name is refused with the IP form to give instead: an address to bind is not looked up.
pub fn parse_listen_addr(value: &str) -> anyhow::Result<SocketAddr> {
    let invalid = match value.parse() {
        Ok(addr) => return Ok(addr),
        Err(err) => err,
    };
    let Some((host, Ok(port))) = value
        .rsplit_once(':')
        .map(|(host, port)| (host, port.parse::<u16>()))
    else {
        return Err(invalid.into());
    };
    if host.eq_ignore_ascii_case("localhost") {
        return Ok(SocketAddr::from((Ipv4Addr::LOCALHOST, port)));
    }
    bail!(
        "{host:?} is a host name, and only localhost is accepted: give an IP address, such as \
         127.0.0.1:{port} (this host only) or 0.0.0.0:{port} (every interface)"
    )
}

/// `listen`, `ops_listen` and `admin_listen` as [`parse_listen_addr`] reads them.
fn listen_addr<'de, D: Deserializer<'de>>(deserializer: D) -> Result<SocketAddr, D::Error> {
    let text = String::deserialize(deserializer)?;
    parse_listen_addr(&text).map_err(serde::de::Error::custom)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn localhost_is_loopback_and_other_host_names_get_the_ip_form() {
        let addr = |text| parse_listen_addr(text).map_err(|err| err.to_string());
        assert_eq!(
            addr("localhost:8080"),
            Ok("127.0.0.1:8080".parse().unwrap())
        );
        assert_eq!(addr("LocalHost:1"), Ok("127.0.0.1:1".parse().unwrap()));
        assert_eq!(addr("[::1]:8081"), Ok("[::1]:8081".parse().unwrap()));
        let refused = addr("okta-hooks.example.com:8080").unwrap_err();
        assert!(
            refused.contains("\"okta-hooks.example.com\" is a host name")
                && refused.contains("0.0.0.0:8080"),
            "{refused}"
        );
        assert_eq!(addr("nope").unwrap_err(), "invalid socket address syntax");
        assert_eq!(
            addr("localhost").unwrap_err(),
            "invalid socket address syntax"
        );
    }

    #[test]
    fn the_toml_keys_take_localhost() {
        let server: ServerConfig =
            toml::from_str("listen = \"localhost:9090\"\nadmin_listen = \"localhost:9091\"\n")
                .unwrap();
        assert_eq!(server.listen, "127.0.0.1:9090".parse().unwrap());
        assert_eq!(server.admin_listen, "127.0.0.1:9091".parse().unwrap());
        let refused = toml::from_str::<ServerConfig>("listen = \"example.com:80\"\n").unwrap_err();
        assert!(refused.to_string().contains("127.0.0.1:80"), "{refused}");
    }
}
