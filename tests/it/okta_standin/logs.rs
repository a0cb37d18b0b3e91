//! `GET /api/v1/logs` (`listLogEvents`, scope `okta.logs.read`), README §c.
//!
//! Polling mode (no `until`, `sortOrder` ASCENDING): events in persistence order after the cursor,
//! a `next` link always, even on an empty page. Bounded mode (`until`, or DESCENDING): events by
//! `published` in [`since`, `until`), the last page without `next`. `since` and `after` are
//! mutually exclusive; the cursor in `after` is opaque (`<ms>_<seq>`, like Okta's
//! `1627500044869_1`) and carries what the next page needs.

use axum::extract::State;
use axum::http::header::{HeaderMap, LINK};
use axum::http::{StatusCode, Uri};
use axum::response::Response;
use serde_json::Value;
use std::sync::Arc;
use std::time::SystemTime;
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;

use super::api::{self, Family, Operation};
use super::filter::{Filter, FilterError};
use super::spec::Spec;
use super::{Answer, Quota, Shared, decode_pairs, encode_pairs, unix_ms};

/// The operation's path.
pub(super) const PATH: &str = "/api/v1/logs";
/// `listLogEvents`, scope `okta.logs.read`.
const LIST: Operation = Operation {
    id: "listLogEvents",
    template: PATH,
    method: "GET",
    scope: "okta.logs.read",
    family: Family::Logs,
    unlisted: &[],
};
/// The query parameters the stand-in reads, with the spec `type` it reads them as.
pub(super) const ACCEPTED: [(&str, &str); 7] = [
    ("since", "string"),
    ("until", "string"),
    ("after", "string"),
    ("filter", "string"),
    ("q", "string"),
    ("limit", "integer"),
    ("sortOrder", "string"),
];
/// `limit` bounds ("Integer between 0 and 1000") and default.
const MAX_LIMIT: usize = 1000;
const DEFAULT_LIMIT: usize = 100;
/// `since` defaults to 7 days before `until`.
const DEFAULT_SPAN_MS: i64 = 7 * 24 * 3600 * 1000;
/// `q`: at most 10 keywords of at most 40 characters.
const MAX_KEYWORDS: usize = 10;
const MAX_KEYWORD_CHARS: usize = 40;

/// A persisted System Log event.
pub(super) struct Stored {
    /// Persistence order, from 1.
    pub(super) seq: u64,
    /// Persistence time, epoch ms (never decreasing with `seq`).
    pub(super) persisted: i64,
    /// `published`, epoch ms, when the event has a valid one.
    pub(super) published: Option<i64>,
    /// The event as JSON text, lowercased, for `q`.
    pub(super) text: String,
    pub(super) event: Value,
}

/// The handler.
pub(super) async fn list(
    State(shared): State<Arc<Shared>>,
    uri: Uri,
    headers: HeaderMap,
) -> Response {
    let index = shared.record("GET", &uri, Vec::new(), &headers);
    let delay = shared.lock().take_delay();
    if let Some(delay) = delay {
        tokio::time::sleep(delay).await;
    }
    let quota = LIST.take_quota(&shared);
    let answer = answer(&shared, &uri, &headers, quota);
    LIST.finish(&shared, index, answer, quota)
}

fn answer(shared: &Shared, uri: &Uri, headers: &HeaderMap, quota: Quota) -> Answer {
    let query = decode_pairs(uri.query().unwrap_or_default());
    check_parameters(shared, &query);
    // An injected failure comes after the quota check (it counts against the bucket) and before
    // authentication, like an outage of the whole endpoint.
    let failure = quota
        .allowed
        .then(|| shared.lock().take_failure())
        .flatten();
    if let Some(status) = failure {
        return injected(status);
    }
    if let Err(answer) = LIST.authorize(shared, headers, PATH, quota) {
        return answer;
    }
    let request = match LogQuery::parse(&query, unix_ms(SystemTime::now())) {
        Ok(request) => request,
        Err(answer) => return answer,
    };
    let page = request.run(&shared.lock().log);
    let link = |query: &str| match query {
        "" => format!("{}{PATH}", shared.org_url),
        _ => format!("{}{PATH}?{query}", shared.org_url),
    };
    let mut answer = Answer::json(StatusCode::OK, Value::Array(page.events)).header(
        LINK,
        format!("<{}>; rel=\"self\"", link(uri.query().unwrap_or_default())),
    );
    if let Some(cursor) = page.next {
        let mut next = request.kept;
        next.push(("after".to_owned(), cursor));
        answer = answer.header(
            LINK,
            format!("<{}>; rel=\"next\"", link(&encode_pairs(&next))),
        );
    }
    answer
}

/// Records what in the query the spec does not allow: unknown or repeated parameters, values not
/// of the parameter's type or enum, `limit` outside 0..=1000, `since` with `after`.
fn check_parameters(shared: &Shared, query: &[(String, String)]) {
    let listed = Spec::get().query_parameters(PATH, "get");
    for (i, (name, value)) in query.iter().enumerate() {
        let Some(parameter) = listed.iter().find(|p| &p.name == name) else {
            shared.violation(format!("listLogEvents has no parameter {name}"));
            continue;
        };
        if query[..i].iter().any(|(earlier, _)| earlier == name) {
            shared.violation(format!("parameter {name} given twice"));
        }
        let typed = match parameter.kind.as_str() {
            "integer" => value.parse::<i64>().is_ok(),
            _ => true,
        };
        let allowed = parameter
            .allowed
            .as_ref()
            .is_none_or(|values| values.contains(value));
        if !typed || !allowed {
            shared.violation(format!(
                "{name}={value:?} is not a valid {}",
                parameter.kind
            ));
        }
    }
    let has = |name: &str| query.iter().any(|(n, _)| n == name);
    if has("since") && has("after") {
        shared.violation("since and after are mutually exclusive".to_owned());
    }
    if let Some((_, limit)) = query.iter().find(|(n, _)| n == "limit")
        && limit
            .parse::<i64>()
            .is_ok_and(|l| usize::try_from(l).map_or(true, |l| l > MAX_LIMIT))
    {
        shared.violation(format!("limit {limit} is outside 0..={MAX_LIMIT}"));
    }
}

/// The answer `fail_next` asked for, with Okta's body for that status.
pub(super) fn injected(status: u16) -> Answer {
    let code = StatusCode::from_u16(status).expect("fail_next status is an HTTP status");
    match status {
        429 => api::too_many_requests(),
        401 => Answer::okta_error(code, "E0000011", "Invalid token provided"),
        403 => Answer::okta_error(
            code,
            "E0000006",
            "You do not have permission to perform the requested action",
        ),
        404 => Answer::okta_error(code, "E0000007", "Not found: Resource not found"),
        500..=599 => Answer::okta_error(code, "E0000009", "Internal Server Error"),
        _ => Answer::okta_error(code, "E0000001", "Api validation failed"),
    }
}

/// A parsed `/api/v1/logs` request.
struct LogQuery {
    /// Lower bound, epoch ms: of persistence time when polling, of `published` when bounded.
    since: i64,
    /// Upper bound (exclusive) of `published`; `None` when polling.
    until: Option<i64>,
    /// Where the previous page ended: (key ms, seq).
    after: Option<(i64, u64)>,
    filter: Option<Filter>,
    /// `q` keywords, lowercased.
    keywords: Vec<String>,
    limit: usize,
    descending: bool,
    /// The parameters the `next` link repeats (all but `since` and `after`, which the cursor
    /// replaces).
    kept: Vec<(String, String)>,
}

/// One page of events and the cursor of the next one.
struct Page {
    events: Vec<Value>,
    next: Option<String>,
}

fn bad_request(what: &str) -> Answer {
    Answer::okta_error(
        StatusCode::BAD_REQUEST,
        "E0000001",
        &format!("Api validation failed: {what}"),
    )
}

impl LogQuery {
    fn parse(query: &[(String, String)], now: i64) -> Result<LogQuery, Answer> {
        let get = |name: &str| {
            query
                .iter()
                .find(|(n, _)| n == name)
                .map(|(_, v)| v.as_str())
        };
        let time = |name: &str| match get(name) {
            None => Ok(None),
            Some(text) => OffsetDateTime::parse(text, &Rfc3339)
                .map(|at| Some((at.unix_timestamp_nanos() / 1_000_000) as i64))
                .map_err(|_| bad_request(&format!("{name} is not an ISO 8601 timestamp"))),
        };
        let descending = match get("sortOrder").unwrap_or("ASCENDING") {
            "ASCENDING" => false,
            "DESCENDING" => true,
            _ => return Err(bad_request("sortOrder")),
        };
        let mut until = time("until")?;
        if descending && until.is_none() {
            // Only an ascending query without `until` polls; a descending one ends now.
            until = Some(now);
        }
        let limit = match get("limit") {
            None => DEFAULT_LIMIT,
            Some(text) => text
                .parse::<usize>()
                .ok()
                .filter(|&l| l <= MAX_LIMIT)
                .ok_or_else(|| bad_request("limit must be between 0 and 1000"))?,
        };
        let (since, after) = match (time("since")?, get("after")) {
            (Some(_), Some(_)) => {
                return Err(bad_request("since and after are mutually exclusive"));
            }
            (since, None) => (
                since.unwrap_or(until.unwrap_or(now) - DEFAULT_SPAN_MS),
                None,
            ),
            (None, Some(cursor)) => {
                let (key, seq, since) = parse_cursor(cursor).ok_or_else(|| bad_request("after"))?;
                (since, Some((key, seq)))
            }
        };
        Ok(LogQuery {
            since,
            until,
            after,
            filter: get("filter").map(parse_filter).transpose()?,
            keywords: keywords(get("q").unwrap_or_default())?,
            limit,
            descending,
            kept: query
                .iter()
                .filter(|(name, _)| name != "since" && name != "after")
                .cloned()
                .collect(),
        })
    }

    fn matches(&self, stored: &Stored) -> bool {
        self.filter
            .as_ref()
            .is_none_or(|f| f.matches(&stored.event))
            && self.keywords.iter().all(|k| stored.text.contains(k))
    }

    fn run(&self, log: &[Stored]) -> Page {
        match self.until {
            None => self.poll(log),
            Some(until) => self.bounded(log, until),
        }
    }

    /// Persistence order from the cursor (or `since`); the cursor moves past every event looked
    /// at, matching or not, so the next page starts where this one stopped.
    fn poll(&self, log: &[Stored]) -> Page {
        let start = match self.after {
            Some((_, seq)) => seq as usize,
            None => log.partition_point(|e| e.persisted < self.since),
        };
        let mut events = Vec::new();
        let mut position = self.after.unwrap_or((self.since, start as u64));
        for stored in log.iter().skip(start) {
            if events.len() == self.limit {
                break;
            }
            position = (stored.persisted, stored.seq);
            if self.matches(stored) {
                events.push(stored.event.clone());
            }
        }
        Page {
            events,
            next: Some(cursor(position, self.since)),
        }
    }

    /// `published` order within [`since`, `until`), ties by persistence order.
    fn bounded(&self, log: &[Stored], until: i64) -> Page {
        let mut candidates: Vec<(i64, u64, &Stored)> = log
            .iter()
            .filter_map(|s| s.published.map(|p| (p, s.seq, s)))
            .filter(|&(published, _, s)| {
                published >= self.since && published < until && self.matches(s)
            })
            .filter(|&(published, seq, _)| match self.after {
                None => true,
                Some(after) if self.descending => (published, seq) < after,
                Some(after) => (published, seq) > after,
            })
            .collect();
        candidates.sort_by_key(|&(published, seq, _)| (published, seq));
        if self.descending {
            candidates.reverse();
        }
        let more = candidates.len() > self.limit;
        candidates.truncate(self.limit);
        let next = match candidates.last() {
            Some(&(published, seq, _)) if more => Some(cursor((published, seq), self.since)),
            _ => None,
        };
        Page {
            events: candidates
                .into_iter()
                .map(|(_, _, s)| s.event.clone())
                .collect(),
            next,
        }
    }
}

/// The opaque `after` value: `<key ms>_<seq>_<since ms>`.
fn cursor((key, seq): (i64, u64), since: i64) -> String {
    format!("{key}_{seq}_{since}")
}

fn parse_cursor(text: &str) -> Option<(i64, u64, i64)> {
    let mut parts = text.split('_');
    let key = parts.next()?.parse().ok()?;
    let seq = parts.next()?.parse().ok()?;
    let since = parts.next()?.parse().ok()?;
    parts.next().is_none().then_some((key, seq, since))
}

fn parse_filter(text: &str) -> Result<Filter, Answer> {
    Filter::parse(text).map_err(|error| match error {
        FilterError::Invalid(why) => Answer::okta_error(
            StatusCode::BAD_REQUEST,
            "E0000053",
            &format!("Invalid filter: {why}"),
        ),
        FilterError::Refused(why) => Answer::okta_error(
            StatusCode::BAD_REQUEST,
            "E0000031",
            &format!("Invalid search criteria: {why}"),
        ),
    })
}

fn keywords(q: &str) -> Result<Vec<String>, Answer> {
    let keywords: Vec<String> = q.split_whitespace().map(str::to_lowercase).collect();
    if keywords.len() > MAX_KEYWORDS
        || keywords
            .iter()
            .any(|k| k.chars().count() > MAX_KEYWORD_CHARS)
    {
        return Err(bad_request(
            "q takes at most 10 keywords of at most 40 characters",
        ));
    }
    Ok(keywords)
}
