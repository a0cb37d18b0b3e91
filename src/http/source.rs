//! Who sent a request: the TCP peer, or, behind a configured proxy, the client it forwarded for.
//!
//! `X-Forwarded-For` is only believed when the TCP peer is one of `server.trusted_proxies`: anyone
//! else could write any address into it. Each proxy appends the address it received the request
//! from, so the list is read from the right, skipping trusted proxies; the first address that is not
//! trusted is the source. Addresses further left were written by that untrusted party, and are
//! never looked at. Nothing is guessed: with no trusted proxy configured the header is ignored.

use std::net::{IpAddr, SocketAddr};

use axum::http::HeaderMap;
use ipnet::IpNet;

/// The header proxies append the client address to.
pub const FORWARDED_FOR: &str = "x-forwarded-for";

/// The source address of a request, as the guard determined it (see the module doc).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ClientSource(pub IpAddr);

/// The proxies whose `X-Forwarded-For` is believed.
#[derive(Debug, Clone, Default)]
pub struct TrustedProxies(Vec<IpNet>);

impl TrustedProxies {
    /// Trusts the proxies in these networks.
    pub fn new(networks: Vec<IpNet>) -> Self {
        Self(networks)
    }

    fn trusts(&self, ip: IpAddr) -> bool {
        self.0.iter().any(|net| net.contains(&ip))
    }

    /// The source of a request from TCP peer `peer` carrying `headers`.
    pub fn source(&self, peer: IpAddr, headers: &HeaderMap) -> IpAddr {
        let mut source = peer.to_canonical();
        if !self.trusts(source) {
            return source;
        }
        // Several headers count as one list, in order (RFC 9110, 5.3).
        let hops: Vec<&str> = headers
            .get_all(FORWARDED_FOR)
            .iter()
            .flat_map(|value| value.to_str().unwrap_or("").split(','))
            .collect();
        for hop in hops.into_iter().rev() {
            // A value that is not an address was not written by a proxy we trust: stop at the
            // last address that was.
            let Some(ip) = parse_hop(hop) else {
                break;
            };
            source = ip;
            if !self.trusts(ip) {
                break;
            }
        }
        source
    }
}

/// One `X-Forwarded-For` entry: an address, possibly with a port (`1.2.3.4:5`, `[::1]:5`).
fn parse_hop(hop: &str) -> Option<IpAddr> {
    let hop = hop.trim();
    hop.parse::<IpAddr>()
        .or_else(|_| hop.parse::<SocketAddr>().map(|addr| addr.ip()))
        .ok()
        .map(|ip| ip.to_canonical())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(values: &[&str]) -> HeaderMap {
        let mut headers = HeaderMap::new();
        for value in values {
            headers.append(FORWARDED_FOR, value.parse().unwrap());
        }
        headers
    }

    fn proxies() -> TrustedProxies {
        TrustedProxies::new(vec![
            "10.0.0.0/8".parse().unwrap(),
            "::1/128".parse().unwrap(),
        ])
    }

    fn ip(text: &str) -> IpAddr {
        text.parse().unwrap()
    }

    #[test]
    fn an_untrusted_peer_is_the_source_whatever_it_forwards() {
        let source = proxies().source(ip("203.0.113.9"), &headers(&["198.51.100.1"]));
        assert_eq!(source, ip("203.0.113.9"));
        let no_proxies = TrustedProxies::default();
        assert_eq!(
            no_proxies.source(ip("10.1.1.1"), &headers(&["198.51.100.1"])),
            ip("10.1.1.1")
        );
    }

    #[test]
    fn the_right_most_untrusted_address_behind_trusted_proxies_is_the_source() {
        // The client forged the left-most entry; the proxies appended the rest.
        let forwarded = headers(&["1.1.1.1, 198.51.100.7", "10.2.2.2"]);
        assert_eq!(
            proxies().source(ip("10.0.0.1"), &forwarded),
            ip("198.51.100.7")
        );
    }

    #[test]
    fn only_trusted_hops_or_garbage_leave_the_last_trusted_address() {
        let source = proxies().source(ip("10.0.0.1"), &headers(&["10.3.3.3"]));
        assert_eq!(source, ip("10.3.3.3"));
        let source = proxies().source(ip("10.0.0.1"), &headers(&["not-an-ip, 10.3.3.3"]));
        assert_eq!(source, ip("10.3.3.3"));
        let source = proxies().source(ip("10.0.0.1"), &HeaderMap::new());
        assert_eq!(source, ip("10.0.0.1"));
    }

    #[test]
    fn ports_and_mapped_addresses_are_understood() {
        let forwarded = headers(&["[2001:db8::1]:443, 198.51.100.7:8080"]);
        assert_eq!(
            proxies().source(ip("::ffff:10.0.0.1"), &forwarded),
            ip("198.51.100.7")
        );
    }
}
