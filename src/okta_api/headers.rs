//! Reading Okta's answer headers: `link` (RFC 8288, every value, folded or not), the
//! `X-Rate-Limit-*` trio against the server's `Date`, and the parameters of `WWW-Authenticate`.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use reqwest::Url;
use reqwest::header::{DATE, HeaderMap, LINK};

/// The longest wait for a rate-limit window that a header announces: Okta's windows are a
/// minute, so anything far longer is a wrong clock or header, not a reason to stall for hours.
const MAX_RESET_WAIT: Duration = Duration::from_secs(600);

/// The target of the `rel="next"` link among every `link` header value (one header per
/// relation, or several folded into one comma-separated value), resolved against `base`.
pub(super) fn next_link(headers: &HeaderMap, base: &Url) -> Option<String> {
    headers
        .get_all(LINK)
        .iter()
        .filter_map(|value| value.to_str().ok())
        .flat_map(links)
        .find(|(_, rels)| {
            rels.split_ascii_whitespace()
                .any(|rel| rel.eq_ignore_ascii_case("next"))
        })
        .and_then(|(target, _)| base.join(target).ok())
        .map(String::from)
}

/// The `(target, rel)` pairs of one `link` value: `<target>; param=value; ..., <target>; ...`.
/// A comma inside `<...>` or a quoted string does not separate links.
fn links(value: &str) -> Vec<(&str, &str)> {
    let mut found = Vec::new();
    let mut rest = value;
    loop {
        rest = rest.trim_start_matches(|c: char| c == ',' || c.is_ascii_whitespace());
        let Some(open) = rest.strip_prefix('<') else {
            // Not a link (or the end): skip to the next element.
            match find_outside_quotes(rest, ',') {
                Some(at) => rest = &rest[at..],
                None => return found,
            }
            continue;
        };
        let Some(close) = open.find('>') else {
            return found;
        };
        let target = &open[..close];
        let after = &open[close + 1..];
        let end = find_outside_quotes(after, ',').unwrap_or(after.len());
        let rel = params(&after[..end])
            .find_map(|(name, value)| name.eq_ignore_ascii_case("rel").then_some(value));
        found.push((target, rel.unwrap_or("")));
        rest = &after[end..];
    }
}

/// The `name=value` parameters of `;`-separated text, quotes removed from the values.
fn params(text: &str) -> impl Iterator<Item = (&str, &str)> {
    split_outside_quotes(text, ';').filter_map(|param| {
        let (name, value) = param.split_once('=')?;
        Some((name.trim(), unquote(value.trim())))
    })
}

/// A parameter of a `WWW-Authenticate` value (`Bearer error="insufficient_scope", scope="x"`).
pub(super) fn auth_param<'a>(challenge: &'a str, name: &str) -> Option<&'a str> {
    split_outside_quotes(challenge, ',').find_map(|param| {
        let (key, value) = param.split_once('=')?;
        // The first parameter follows the scheme: `Bearer error` names `error`.
        let key = key.split_ascii_whitespace().last()?;
        key.eq_ignore_ascii_case(name)
            .then(|| unquote(value.trim()))
    })
}

fn unquote(value: &str) -> &str {
    value
        .strip_prefix('"')
        .and_then(|v| v.strip_suffix('"'))
        .unwrap_or(value)
}

/// `text` cut at every `separator` that is not inside a quoted string.
fn split_outside_quotes(text: &str, separator: char) -> impl Iterator<Item = &str> {
    let mut rest = Some(text);
    std::iter::from_fn(move || {
        let current = rest?;
        match find_outside_quotes(current, separator) {
            Some(at) => {
                rest = Some(&current[at + separator.len_utf8()..]);
                Some(&current[..at])
            }
            None => {
                rest = None;
                Some(current)
            }
        }
    })
}

/// The byte offset of the first `separator` outside a quoted string (`\` escapes inside).
fn find_outside_quotes(text: &str, separator: char) -> Option<usize> {
    let (mut quoted, mut escaped) = (false, false);
    for (at, c) in text.char_indices() {
        match c {
            _ if escaped => escaped = false,
            '\\' if quoted => escaped = true,
            '"' => quoted = !quoted,
            c if c == separator && !quoted => return Some(at),
            _ => {}
        }
    }
    None
}

/// What an answer said about its rate-limit bucket.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct RateLimitHeaders {
    /// `X-Rate-Limit-Limit`: requests allowed in the window.
    pub limit: u32,
    /// `X-Rate-Limit-Remaining`: requests left in it.
    pub remaining: u32,
    /// `X-Rate-Limit-Reset`: when the window resets, Unix seconds (names the window).
    pub reset: u64,
    /// From now until then, by the server's clock, plus one second.
    pub reset_in: Duration,
}

impl RateLimitHeaders {
    /// The three headers, if all are there. `local_now` stands in for a missing `Date`.
    pub(super) fn read(headers: &HeaderMap, local_now: SystemTime) -> Option<Self> {
        Some(Self {
            limit: number(headers, "x-rate-limit-limit")?,
            remaining: number(headers, "x-rate-limit-remaining")?,
            reset: number(headers, "x-rate-limit-reset")?,
            reset_in: reset_in(headers, local_now)?,
        })
    }
}

/// How long until the window of `X-Rate-Limit-Reset` (Unix seconds) is over: counted from the
/// answer's `Date` (the server's clock, so a skewed local clock does not matter), plus one
/// second for the rounding of both, at most ten minutes.
pub(super) fn reset_in(headers: &HeaderMap, local_now: SystemTime) -> Option<Duration> {
    let reset = Duration::from_secs(number(headers, "x-rate-limit-reset")?);
    let server_now = headers
        .get(DATE)
        .and_then(|date| date.to_str().ok())
        .and_then(|date| httpdate::parse_http_date(date).ok())
        .unwrap_or(local_now);
    let now = server_now.duration_since(UNIX_EPOCH).unwrap_or_default();
    Some((reset.saturating_sub(now) + Duration::from_secs(1)).min(MAX_RESET_WAIT))
}

fn number<T: std::str::FromStr>(headers: &HeaderMap, name: &str) -> Option<T> {
    headers.get(name)?.to_str().ok()?.trim().parse().ok()
}

#[cfg(test)]
mod tests {
    use reqwest::header::HeaderValue;

    use super::*;

    fn headers(pairs: &[(&'static str, &str)]) -> HeaderMap {
        let mut map = HeaderMap::new();
        for (name, value) in pairs {
            map.append(*name, HeaderValue::from_str(value).expect("a header value"));
        }
        map
    }

    fn base() -> Url {
        "https://acme.okta.com/api/v1/logs?since=x"
            .parse()
            .expect("a URL")
    }

    #[test]
    fn next_is_found_in_separate_headers() {
        let map = headers(&[
            (
                "link",
                "<https://acme.okta.com/api/v1/logs?limit=20>; rel=\"self\"",
            ),
            (
                "link",
                "<https://acme.okta.com/api/v1/logs?limit=20&after=1627500044869_1>; rel=\"next\"",
            ),
        ]);
        assert_eq!(
            next_link(&map, &base()).as_deref(),
            Some("https://acme.okta.com/api/v1/logs?limit=20&after=1627500044869_1")
        );
    }

    #[test]
    fn next_is_found_in_a_folded_value_with_commas_inside_the_url() {
        let map = headers(&[(
            "link",
            "<https://acme.okta.com/api/v1/logs?filter=a,b&limit=2>; rel=\"self\", \
             <https://acme.okta.com/api/v1/logs?after=c,d&limit=2>; title=\"x, y; z\"; rel=next",
        )]);
        assert_eq!(
            next_link(&map, &base()).as_deref(),
            Some("https://acme.okta.com/api/v1/logs?after=c,d&limit=2")
        );
    }

    #[test]
    fn rel_may_list_several_relations_in_any_case() {
        let map = headers(&[("link", "<https://acme.okta.com/n>; REL=\"prefetch Next\"")]);
        assert_eq!(
            next_link(&map, &base()).as_deref(),
            Some("https://acme.okta.com/n")
        );
    }

    #[test]
    fn no_next_without_a_next_relation() {
        let map = headers(&[
            (
                "link",
                "<https://acme.okta.com/api/v1/logs?limit=20>; rel=\"self\"",
            ),
            ("link", "garbage, <unterminated"),
        ]);
        assert_eq!(next_link(&map, &base()), None);
        assert_eq!(next_link(&HeaderMap::new(), &base()), None);
    }

    #[test]
    fn a_relative_target_is_resolved_against_the_request() {
        let map = headers(&[("link", "</api/v1/logs?after=abc>; rel=\"next\"")]);
        assert_eq!(
            next_link(&map, &base()).as_deref(),
            Some("https://acme.okta.com/api/v1/logs?after=abc")
        );
    }

    #[test]
    fn the_reset_is_counted_from_the_server_date_not_the_local_clock() {
        // Date: 1700000000; reset 30 s later. The local clock is an hour off either way.
        let map = headers(&[
            ("date", "Tue, 14 Nov 2023 22:13:20 GMT"),
            ("x-rate-limit-limit", "120"),
            ("x-rate-limit-remaining", "0"),
            ("x-rate-limit-reset", "1700000030"),
        ]);
        for skew in [0, 3600, -3600] {
            let local = UNIX_EPOCH + Duration::from_secs((1_700_000_000i64 + skew) as u64);
            let read = RateLimitHeaders::read(&map, local).expect("all three headers");
            assert_eq!(
                read,
                RateLimitHeaders {
                    limit: 120,
                    remaining: 0,
                    reset: 1_700_000_030,
                    reset_in: Duration::from_secs(31)
                }
            );
        }
    }

    #[test]
    fn without_date_the_local_clock_is_used_and_waits_are_bounded() {
        let map = headers(&[("x-rate-limit-reset", "1700000010")]);
        let local = UNIX_EPOCH + Duration::from_secs(1_700_000_000);
        assert_eq!(reset_in(&map, local), Some(Duration::from_secs(11)));
        let past = UNIX_EPOCH + Duration::from_secs(1_800_000_000);
        assert_eq!(reset_in(&map, past), Some(Duration::from_secs(1)));
        let early = UNIX_EPOCH + Duration::from_secs(1_600_000_000);
        assert_eq!(reset_in(&map, early), Some(MAX_RESET_WAIT));
        assert_eq!(reset_in(&HeaderMap::new(), local), None);
        assert_eq!(
            RateLimitHeaders::read(&map, local),
            None,
            "limit and remaining missing"
        );
    }

    #[test]
    fn www_authenticate_parameters() {
        let challenge = "Bearer authorization_uri=\"https://acme.okta.com/oauth2/v1/authorize\", \
                         realm=\"IdpMyAccountAPI\", scope=\"okta.logs.read\", \
                         error=\"insufficient_scope\", error_description=\"The access token \
                         provided does not contain the required scopes.\"";
        assert_eq!(auth_param(challenge, "error"), Some("insufficient_scope"));
        assert_eq!(auth_param(challenge, "scope"), Some("okta.logs.read"));
        assert_eq!(
            auth_param("DPoP error=\"invalid_token\"", "error"),
            Some("invalid_token")
        );
        assert_eq!(auth_param(challenge, "nonce"), None);
    }
}
