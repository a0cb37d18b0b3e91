//! The guard in front of the hook: determines the request's source ([`super::source`]), refuses
//! sources outside `server.allowed_sources` (403), then sources over `server.rate_limit` (429 with
//! `Retry-After`). Both run before authentication, so neither a stranger's flood nor a guessing
//! attack reaches the secret check, the body or the spool.
//!
//! Refusals here are logged at debug only: a flood must not become a flood of log lines. They are
//! counted in `factorwatch_http_requests_total` by status like every answer.

use std::net::{IpAddr, Ipv6Addr, SocketAddr};
use std::num::NonZeroU32;
use std::sync::Arc;

use axum::extract::{ConnectInfo, Request, State};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use governor::clock::Clock;
use governor::{DefaultKeyedRateLimiter, Quota};
use ipnet::IpNet;

use super::config::{RateLimitConfig, ServerConfig};
use super::error::ApiError;
use super::source::{ClientSource, TrustedProxies};

/// What the guard checks, built once from `[server]`.
#[derive(Clone)]
pub struct Guard {
    proxies: TrustedProxies,
    allowed: Arc<Vec<IpNet>>,
    limiter: Option<Arc<RateLimit>>,
}

impl Guard {
    /// The guard `[server]` describes.
    pub fn new(server: &ServerConfig) -> Self {
        Self {
            proxies: TrustedProxies::new(server.trusted_proxies.clone()),
            allowed: Arc::new(server.allowed_sources.clone()),
            limiter: server
                .rate_limit
                .as_ref()
                .map(|c| Arc::new(RateLimit::new(c))),
        }
    }

    /// The rate limiter, if one is configured (its idle sources are forgotten periodically).
    pub fn rate_limit(&self) -> Option<Arc<RateLimit>> {
        self.limiter.clone()
    }

    fn check(&self, source: IpAddr) -> Result<(), ApiError> {
        if !self.allowed.is_empty() && !self.allowed.iter().any(|net| net.contains(&source)) {
            return Err(ApiError::SourceNotAllowed);
        }
        match &self.limiter {
            Some(limiter) => limiter.check(source),
            None => Ok(()),
        }
    }
}

/// Middleware: sets [`ClientSource`] on the request, or answers 403 / 429.
pub async fn guard(
    State(guard): State<Guard>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    mut request: Request,
    next: Next,
) -> Response {
    let source = guard.proxies.source(peer.ip(), request.headers());
    if let Err(err) = guard.check(source) {
        tracing::debug!(%peer, %source, status = err.status().as_u16(), reason = %err, "request refused");
        return err.into_response();
    }
    request.extensions_mut().insert(ClientSource(source));
    next.run(request).await
}

/// A token bucket per source. An IPv6 source counts as its /64: one host usually holds a whole
/// /64, and could otherwise take a fresh bucket with every address.
pub struct RateLimit {
    limiter: DefaultKeyedRateLimiter<IpAddr>,
}

impl RateLimit {
    fn new(config: &RateLimitConfig) -> Self {
        // Validation refused zeros, so the fallbacks are never used.
        let rate = NonZeroU32::new(config.requests_per_second).unwrap_or(NonZeroU32::MIN);
        let burst = NonZeroU32::new(config.burst).unwrap_or(NonZeroU32::MIN);
        Self {
            limiter: DefaultKeyedRateLimiter::keyed(Quota::per_second(rate).allow_burst(burst)),
        }
    }

    fn check(&self, source: IpAddr) -> Result<(), ApiError> {
        self.limiter
            .check_key(&bucket(source))
            .map_err(|not_until| {
                let wait = not_until.wait_time_from(self.limiter.clock().now());
                // Whole seconds, rounded up: a client retrying after Retry-After must get through.
                ApiError::RateLimited(wait.as_secs() + u64::from(wait.subsec_nanos() > 0))
            })
    }

    /// Forgets sources whose bucket is full again, so memory follows the active sources only.
    pub fn forget_idle(&self) {
        self.limiter.retain_recent();
        self.limiter.shrink_to_fit();
    }
}

fn bucket(source: IpAddr) -> IpAddr {
    match source {
        IpAddr::V4(_) => source,
        IpAddr::V6(v6) => {
            let prefix = u128::from(v6) & !(u128::MAX >> 64);
            IpAddr::V6(Ipv6Addr::from(prefix))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn over_the_burst_a_source_is_told_when_to_come_back() {
        let limit = RateLimit::new(&RateLimitConfig {
            requests_per_second: 1,
            burst: 2,
        });
        let source: IpAddr = "198.51.100.7".parse().unwrap();
        assert!(limit.check(source).is_ok());
        assert!(limit.check(source).is_ok());
        let Err(ApiError::RateLimited(secs)) = limit.check(source) else {
            panic!("the third request in a row is over a burst of 2");
        };
        assert_eq!(secs, 1);
        assert!(limit.check("198.51.100.8".parse().unwrap()).is_ok());
    }

    #[test]
    fn an_ipv6_source_counts_as_its_64() {
        let a: IpAddr = "2001:db8:1:2:aaaa::1".parse().unwrap();
        let b: IpAddr = "2001:db8:1:2:bbbb::2".parse().unwrap();
        let other: IpAddr = "2001:db8:1:3::1".parse().unwrap();
        assert_eq!(bucket(a), bucket(b));
        assert_ne!(bucket(a), bucket(other));
    }
}
