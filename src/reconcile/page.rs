//! Turning a page of the System Log into what the spool stores: the events no hook can deliver,
//! due at once, apart from those a hook could, held for the hook's grace.

use serde::Deserialize;
use serde_json::value::RawValue;

use crate::okta::Envelope;
use crate::okta::hook_eligible::is_hook_eligible;
use crate::spool::LogPageCommit;

/// What the poller reads of each event before storing it.
#[derive(Deserialize)]
struct EventHead {
    uuid: Option<String>,
    #[serde(rename = "eventType")]
    event_type: Option<String>,
    published: Option<String>,
}

/// A page read, split for the spool.
pub(super) struct SplitPage {
    /// What the spool stores, in one commit.
    pub commit: LogPageCommit,
    /// The newest `published` of the page (Unix ms), for the lag.
    pub newest_published_ms: Option<i64>,
    /// Each event a hook could have delivered, for the silence check: its `published` (Unix ms)
    /// and its uuid (its text, if it has none).
    pub eligible: Vec<(u64, String)>,
}

/// Splits `events` read from `org_url` at `now_ms` into a commit ending at `cursor`.
pub(super) fn split(
    org_url: &str,
    events: &[Box<RawValue>],
    cursor: String,
    now_ms: u64,
    grace_ms: u64,
) -> SplitPage {
    let mut due_now: Vec<&RawValue> = Vec::new();
    let mut held: Vec<&RawValue> = Vec::new();
    let mut newest_published_ms = None;
    let mut eligible_events = Vec::new();
    for event in events {
        let head: Option<EventHead> = serde_json::from_str(event.get()).ok();
        let published = head
            .as_ref()
            .and_then(|head| head.published.as_deref())
            .and_then(crate::clock::parse_rfc3339_ms);
        newest_published_ms = newest_published_ms.max(published);
        let (uuid, event_type) = head.map_or((None, None), |head| (head.uuid, head.event_type));
        let eligible = event_type.is_some_and(|event_type| is_hook_eligible(&event_type));
        match eligible {
            true => held.push(event),
            false => due_now.push(event),
        }
        if let Some(at) = published.filter(|_| eligible) {
            let key = uuid.unwrap_or_else(|| event.get().to_owned());
            eligible_events.push((at.max(0) as u64, key));
        }
    }
    let body = |events: Vec<&RawValue>| {
        (!events.is_empty()).then(|| Envelope::system_log_body(org_url, &events, None))
    };
    SplitPage {
        commit: LogPageCommit {
            received_at_ms: now_ms,
            due_now: body(due_now),
            held: body(held),
            hold_until_ms: now_ms + grace_ms,
            cursor,
        },
        newest_published_ms,
        eligible: eligible_events,
    }
}

/// `link` (a `next` link Okta returned) with its `filter` set to `filter`: rules reloaded since
/// the link was made change what the poller asks for from the same place on.
pub(super) fn with_filter(link: &str, filter: Option<&str>) -> String {
    let Ok(mut url) = reqwest::Url::parse(link) else {
        return link.to_owned();
    };
    let kept: Vec<(String, String)> = url
        .query_pairs()
        .filter(|(key, _)| key != "filter")
        .map(|(key, value)| (key.into_owned(), value.into_owned()))
        .collect();
    {
        let mut query = url.query_pairs_mut();
        query.clear().extend_pairs(kept);
        if let Some(filter) = filter {
            query.append_pair("filter", filter);
        }
    }
    url.to_string()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::okta::{Delivery, Envelope};

    fn raw(text: &str) -> Box<RawValue> {
        RawValue::from_string(text.to_owned()).unwrap()
    }

    #[test]
    fn events_no_hook_can_deliver_are_due_now_the_others_wait_for_the_hook() {
        let events = [
            raw(
                r#"{"uuid":"1","eventType":"system.mfa.factor.deactivate","published":"2026-12-04T10:00:00.000Z"}"#,
            ),
            raw(
                r#"{"uuid":"2","eventType":"user.mfa.factor.deactivate","published":"2026-12-04T10:00:05.000Z"}"#,
            ),
            raw(r#"{"uuid":"3","eventType":"event_hook.deactivated"}"#),
        ];
        let page = split(
            "https://acme.okta.com",
            &events,
            "next".into(),
            1_000,
            120_000,
        );
        let now = Envelope::parse(page.commit.due_now.as_deref().unwrap()).unwrap();
        let held = Envelope::parse(page.commit.held.as_deref().unwrap()).unwrap();
        let uuids = |envelope: &Envelope<'_>| -> Vec<String> {
            envelope
                .data
                .events
                .iter()
                .map(|e| e.get()[9..10].to_owned())
                .collect()
        };
        assert_eq!(uuids(&now), ["1", "3"]);
        assert_eq!(uuids(&held), ["2"]);
        assert_eq!(held.origin().via, Delivery::SystemLog);
        assert_eq!(page.commit.hold_until_ms, 121_000);
        assert_eq!(
            page.newest_published_ms,
            crate::clock::parse_rfc3339_ms("2026-12-04T10:00:05.000Z")
        );
        let eligible = crate::clock::parse_rfc3339_ms("2026-12-04T10:00:05.000Z").unwrap();
        assert_eq!(page.eligible, [(eligible as u64, "2".to_owned())]);
    }

    #[test]
    fn an_empty_page_stores_only_its_cursor() {
        let page = split("https://acme.okta.com", &[], "next".into(), 1_000, 0);
        assert!(page.commit.due_now.is_none() && page.commit.held.is_none());
        assert_eq!(page.commit.cursor, "next");
    }

    #[test]
    fn a_next_link_takes_the_current_filter_and_keeps_its_cursor() {
        let link = "https://acme.okta.com/api/v1/logs?limit=1000&after=1627500044869_1&filter=eventType+eq+%22a%22";
        let changed = with_filter(link, Some(r#"eventType eq "b""#));
        let url = reqwest::Url::parse(&changed).unwrap();
        let pairs: Vec<(String, String)> = url
            .query_pairs()
            .map(|(k, v)| (k.into(), v.into()))
            .collect();
        assert_eq!(
            pairs,
            [
                ("limit".into(), "1000".into()),
                ("after".into(), "1627500044869_1".into()),
                ("filter".into(), r#"eventType eq "b""#.into()),
            ]
        );
        assert!(!with_filter(link, None).contains("filter"));
    }
}
