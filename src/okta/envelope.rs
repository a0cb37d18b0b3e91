//! The event-hook envelope Okta POSTs: `{eventType, eventId, source, data: {events: [LogEvent...]}}`.
//!
//! Two views of the same bytes:
//! - [`EnvelopeCheck::parse`] runs while Okta waits. It borrows from the body and looks only at what
//!   decides whether the batch is acceptable (`data.events` is an array); every event stays an
//!   unparsed [`RawValue`], which is far cheaper than building a `serde_json::Value` tree.
//! - [`Envelope::parse`] runs later, in the detector, on the stored bytes. It borrows each event's
//!   raw JSON from them verbatim, so alerts can carry it with unknown fields intact, and copies
//!   none.

use serde::Deserialize;
use serde_json::value::RawValue;

use super::event::object_only;

/// Why a body is not an acceptable envelope. The message is meant for the person who sent it.
#[derive(Debug, thiserror::Error)]
pub enum EnvelopeError {
    /// Not valid JSON at all.
    #[error("malformed JSON: {0}")]
    Malformed(String),
    /// Valid JSON, but not shaped like an Okta event-hook envelope.
    #[error(
        "not an Okta event-hook envelope: expected an object with data.events as an array of events ({0})"
    )]
    NotAnEnvelope(String),
}

impl From<serde_json::Error> for EnvelopeError {
    fn from(err: serde_json::Error) -> Self {
        match err.classify() {
            serde_json::error::Category::Data => EnvelopeError::NotAnEnvelope(err.to_string()),
            _ => EnvelopeError::Malformed(err.to_string()),
        }
    }
}

/// What intake learns about a body before it stores it.
///
/// It declares every field [`Envelope`] reads, so that the two agree on every body: whatever intake
/// accepts, the detector can read (a duplicate `source` key, say, fails both or neither).
#[derive(Debug, Deserialize)]
pub struct EnvelopeCheck<'a> {
    #[serde(default, borrow, rename = "eventType")]
    event_type: Option<&'a RawValue>,
    #[serde(default, borrow)]
    source: Option<&'a RawValue>,
    #[serde(default, borrow, rename = "eventId")]
    event_id: Option<&'a RawValue>,
    #[serde(borrow, deserialize_with = "object_only")]
    data: CheckData<'a>,
}

#[derive(Debug, Deserialize)]
struct CheckData<'a> {
    #[serde(borrow)]
    events: Vec<&'a RawValue>,
}

impl<'a> EnvelopeCheck<'a> {
    /// Validates the whole body as JSON and its envelope shape, without building the events.
    pub fn parse(body: &'a [u8]) -> Result<Self, EnvelopeError> {
        let mut deserializer = serde_json::Deserializer::from_slice(body);
        let check = object_only(&mut deserializer)?;
        deserializer.end()?;
        Ok(check)
    }

    /// Number of events in the batch.
    pub fn event_count(&self) -> usize {
        self.data.events.len()
    }
}

/// A stored envelope, parsed for detection; its events borrow from the body.
#[derive(Debug)]
pub struct Envelope<'a> {
    /// `com.okta.event_hook` from Okta; [`SYSTEM_LOG_ENVELOPE`] on a page the System Log poller
    /// stored.
    pub event_type: Option<String>,
    /// `https://{org}/api/v1/eventHooks/{hookId}`: which org and hook sent the batch.
    pub source: Option<String>,
    /// One id per delivery; Okta's retry of a delivery reuses it.
    pub event_id: Option<String>,
    /// The batch.
    pub data: EnvelopeData<'a>,
}

/// `data` of an envelope.
#[derive(Debug)]
pub struct EnvelopeData<'a> {
    /// One System Log `LogEvent` each, the exact JSON Okta sent.
    pub events: Vec<&'a RawValue>,
}

/// Reads any JSON value as optional text, so an odd `source` or `eventId` never loses a batch.
fn lenient_text(raw: Option<&RawValue>) -> Option<String> {
    let value: serde_json::Value = serde_json::from_str(raw?.get()).ok()?;
    crate::okta::event::scalar_text(&value)
}

impl<'a> Envelope<'a> {
    /// Parses a stored body: the same check intake ran, then what the detector reads, so it
    /// fails only on a spool written by an incompatible version.
    pub fn parse(body: &'a [u8]) -> Result<Self, EnvelopeError> {
        let check = EnvelopeCheck::parse(body)?;
        Ok(Self {
            event_type: lenient_text(check.event_type),
            source: lenient_text(check.source),
            event_id: lenient_text(check.event_id),
            data: EnvelopeData {
                events: check.data.events,
            },
        })
    }

    /// The Okta org and hook id named by `source`, and how the batch came.
    pub fn origin(&self) -> Origin {
        let mut origin = self
            .source
            .as_deref()
            .map(Origin::from_source)
            .unwrap_or_default();
        if self.event_type.as_deref() == Some(SYSTEM_LOG_ENVELOPE) {
            origin.via = Delivery::SystemLog;
        }
        origin
    }

    /// The body the System Log poller stores for `events` read from `org_url`'s `/api/v1/logs`:
    /// an envelope like a hook's, so the detector reads both alike, marked with
    /// [`SYSTEM_LOG_ENVELOPE`] so its alerts say where their events came from. `delivery_id`
    /// becomes its `eventId`, which alerts carry as `okta.delivery_id` (`backfill` names its
    /// pages so, to count what detection made of them).
    pub fn system_log_body(
        org_url: &str,
        events: &[&RawValue],
        delivery_id: Option<&str>,
    ) -> Vec<u8> {
        #[derive(serde::Serialize)]
        struct Page<'a> {
            #[serde(rename = "eventType")]
            event_type: &'static str,
            #[serde(rename = "eventId", skip_serializing_if = "Option::is_none")]
            event_id: Option<&'a str>,
            source: String,
            data: PageData<'a>,
        }
        #[derive(serde::Serialize)]
        struct PageData<'a> {
            events: &'a [&'a RawValue],
        }
        let page = Page {
            event_type: SYSTEM_LOG_ENVELOPE,
            event_id: delivery_id,
            source: format!("{}/api/v1/logs", org_url.trim_end_matches('/')),
            data: PageData { events },
        };
        serde_json::to_vec(&page).expect("events that are JSON already serialize")
    }
}

/// `eventType` of the envelope of a page read from the System Log (Okta's hook deliveries say
/// `com.okta.event_hook`). Only an authenticated caller can store a batch, so a hook delivery
/// claiming it changes nothing but the `source` its alerts show.
pub const SYSTEM_LOG_ENVELOPE: &str = "factorwatch.system_log";

/// How an event reached factorwatch.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Delivery {
    /// Pushed by Okta to the event hook.
    #[default]
    EventHook,
    /// Read from the System Log API by reconciliation (`[okta.reconcile]`) or `backfill`.
    SystemLog,
}

/// Which Okta org and hook a batch came from.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Origin {
    /// The org's host name, such as `acme.okta.com`.
    pub org: Option<String>,
    /// The event hook id (starts with `who`).
    pub hook_id: Option<String>,
    /// Whether the hook or the System Log brought the batch.
    #[serde(default)]
    pub via: Delivery,
}

impl Origin {
    /// Reads `https://{org}/api/v1/eventHooks/{hookId}`; tolerates anything else by leaving parts unknown.
    pub fn from_source(source: &str) -> Self {
        let without_scheme = source.split_once("://").map_or(source, |(_, rest)| rest);
        let (host, path) = without_scheme
            .split_once('/')
            .unwrap_or((without_scheme, ""));
        let hook_id = path
            .strip_prefix("api/v1/eventHooks/")
            .map(|id| id.trim_end_matches('/'))
            .filter(|id| !id.is_empty() && !id.contains('/'));
        Self {
            org: Some(host).filter(|h| !h.is_empty()).map(str::to_owned),
            hook_id: hook_id.map(str::to_owned),
            via: Delivery::EventHook,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_events_without_parsing_them() {
        let body = br#"{"eventType":"com.okta.event_hook","data":{"events":[{"uuid":"a","x":{"deep":[1,2]}},{}]}}"#;
        assert_eq!(EnvelopeCheck::parse(body).unwrap().event_count(), 2);
    }

    #[test]
    fn tells_malformed_json_from_wrong_shape() {
        assert!(matches!(
            EnvelopeCheck::parse(b"{\"data\":").unwrap_err(),
            EnvelopeError::Malformed(_)
        ));
        for body in [
            &b"[]"[..],
            b"{}",
            b"{\"data\":{}}",
            b"{\"data\":{\"events\":null}}",
            b"{\"data\":{\"events\":{}}}",
        ] {
            let err = EnvelopeCheck::parse(body).unwrap_err();
            assert!(matches!(err, EnvelopeError::NotAnEnvelope(_)), "{err}");
            assert!(err.to_string().contains("data.events"));
        }
    }

    #[test]
    fn arrays_never_pass_for_an_envelope() {
        // A derived struct also reads an array of its fields in order; ours must not.
        for body in [&b"[[[]]]"[..], b"[null, null, [[]]]", b"{\"data\":[[]]}"] {
            let err = EnvelopeCheck::parse(body).unwrap_err();
            assert!(matches!(err, EnvelopeError::NotAnEnvelope(_)), "{err}");
        }
    }

    #[test]
    fn whatever_intake_accepts_the_detector_reads() {
        let deep = format!("{}1{}", "[".repeat(5000), "]".repeat(5000));
        for body in [
            format!(r#"{{"source":{deep},"eventId":"\ud800","data":{{"events":[{deep}]}}}}"#),
            r#"{"source":"https://acme.okta.com/api/v1/eventHooks/who1","eventId":7,"data":{"events":[]}}"#.to_owned(),
        ] {
            EnvelopeCheck::parse(body.as_bytes()).unwrap();
            Envelope::parse(body.as_bytes()).unwrap();
        }
        let envelope = Envelope::parse(
            br#"{"source":"https://acme.okta.com/api/v1/eventHooks/who1","eventId":7,"data":{"events":[{}]}}"#,
        )
        .unwrap();
        assert_eq!(envelope.event_id.as_deref(), Some("7"));
        assert_eq!(envelope.origin().hook_id.as_deref(), Some("who1"));
        for body in [
            &br#"{"source":1,"source":2,"data":{"events":[]}}"#[..],
            br#"{"data":{"events":[]}} trailing"#,
        ] {
            assert!(EnvelopeCheck::parse(body).is_err());
            assert!(Envelope::parse(body).is_err());
        }
    }

    #[test]
    fn origin_from_source() {
        let origin = Origin::from_source("https://acme.okta.com/api/v1/eventHooks/whoabc123");
        assert_eq!(origin.org.as_deref(), Some("acme.okta.com"));
        assert_eq!(origin.hook_id.as_deref(), Some("whoabc123"));
        assert_eq!(Origin::from_source("garbage").hook_id, None);
    }

    #[test]
    fn a_system_log_page_reads_back_as_coming_from_the_log() {
        let event = RawValue::from_string(r#"{"uuid":"a"}"#.into()).unwrap();
        let body = Envelope::system_log_body("https://acme.okta.com/", &[&event], None);
        EnvelopeCheck::parse(&body).unwrap();
        let envelope = Envelope::parse(&body).unwrap();
        assert_eq!(envelope.data.events[0].get(), r#"{"uuid":"a"}"#);
        let origin = envelope.origin();
        assert_eq!(origin.via, Delivery::SystemLog);
        assert_eq!(
            (origin.org.as_deref(), origin.hook_id),
            (Some("acme.okta.com"), None)
        );
        let hook = Envelope::parse(br#"{"eventType":"com.okta.event_hook","data":{"events":[]}}"#);
        assert_eq!(hook.unwrap().origin().via, Delivery::EventHook);
    }
}
