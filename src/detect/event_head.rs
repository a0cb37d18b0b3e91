//! What a detection pass must know of every event before it runs the rules, read without
//! building the event's whole JSON tree.
//!
//! Before the rules run, a pass looks up every event's de-duplication key in the window and the
//! stored networks of every user who signed in, both for all its batches at once (one spool read
//! each). Both come from five top-level fields. A pass holds up to 1 MiB of requests, and as
//! `serde_json::Value` trees that is many times as much; so the pass reads only these fields up
//! front and builds each event's whole tree later, when the rules run, one event at a time
//! (BENCHMARKS.md, "Latest changes", 5.).

use serde::Deserialize;
use serde_json::value::RawValue;
use serde_json::{Map, Value};

use super::enrich;
use crate::okta::LogEvent;
use crate::okta::event::{FromObject, dedup_key};

/// The top-level fields [`dedup_key`] and [`enrich::session_user`] read; every other field is
/// skipped without being built. A field that is `null` reads as absent, as it does in a tree.
/// `actor` and `target` stay raw JSON, borrowed from the event: only a successful sign-in reads
/// them, and most events are something else.
#[derive(Deserialize)]
struct HeadFields<'a> {
    uuid: Option<Value>,
    #[serde(rename = "eventType")]
    event_type: Option<Value>,
    outcome: Option<Value>,
    #[serde(borrow)]
    actor: Option<&'a RawValue>,
    #[serde(borrow)]
    target: Option<&'a RawValue>,
}

impl HeadFields<'_> {
    /// The fields as a small tree, so the same [`LogEvent`] accessors read them: `actor` and
    /// `target` built only for a successful sign-in. `None` when one of them cannot be built as
    /// a tree (see [`whole_tree`]).
    fn into_tree(self) -> Option<Value> {
        let fields = [
            ("uuid", self.uuid),
            ("eventType", self.event_type),
            ("outcome", self.outcome),
        ];
        let map: Map<String, Value> = fields
            .into_iter()
            .filter_map(|(name, value)| Some((name.to_owned(), value?)))
            .collect();
        let mut tree = Value::Object(map);
        if enrich::is_successful_sign_in(&LogEvent(&tree)) {
            for (name, raw) in [("actor", self.actor), ("target", self.target)] {
                if let Some(raw) = raw {
                    tree[name] = serde_json::from_str(raw.get()).ok()?;
                }
            }
        }
        Some(tree)
    }
}

/// What the pass knows of one event before the rules run.
#[derive(Debug, PartialEq, Eq)]
pub(super) struct EventHead {
    /// The de-duplication key ([`dedup_key`]).
    pub key: String,
    /// The user whose networks the event teaches, for a successful sign-in.
    pub session_user: Option<String>,
    /// `eventType`, when it is a string (what the rules are dispatched on).
    pub event_type: Option<String>,
}

impl EventHead {
    /// Reads the head of the event `raw` (one JSON value, on one line or not).
    pub fn read(raw: &str) -> Self {
        let tree = head_tree(raw).unwrap_or_else(|| whole_tree(raw));
        Self::of(&tree, raw)
    }

    /// The head of the event `raw`, read from `tree` (its head fields or its whole tree).
    fn of(tree: &Value, raw: &str) -> Self {
        let event = LogEvent(tree);
        Self {
            key: dedup_key(&event, raw),
            session_user: enrich::session_user(&event),
            event_type: tree
                .get("eventType")
                .and_then(Value::as_str)
                .map(str::to_owned),
        }
    }
}

/// The head fields of `raw` as a tree; `None` where reading them alone could differ from
/// reading the whole tree: a value that is not an object ([`FromObject`]) or a repeated key (a
/// tree keeps the last, a struct refuses). Those read the whole tree.
fn head_tree(raw: &str) -> Option<Value> {
    let FromObject(fields) = serde_json::from_str::<FromObject<HeadFields>>(raw).ok()?;
    fields.into_tree()
}

/// The whole tree of `raw`, or `null` when it cannot be built (nested past the parser's limit,
/// say: the rules then never match it, and [`super::event_tree`] counts it).
fn whole_tree(raw: &str) -> Value {
    serde_json::from_str(raw).unwrap_or(Value::Null)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The head read from the five fields, against the head read from the whole tree.
    fn both_ways(raw: &str) -> (EventHead, EventHead) {
        (EventHead::read(raw), EventHead::of(&whole_tree(raw), raw))
    }

    #[test]
    fn agrees_with_the_whole_tree_on_okta_samples_and_odd_shapes() {
        let session = r#"{"uuid":"s-1","eventType":"user.session.start","outcome":{"result":"SUCCESS"},
            "actor":{"type":"User","alternateId":"ann@example.com"},"client":{"ipAddress":"192.0.2.1"},
            "debugContext":{"debugData":{"deep":[{"a":[1,2,{"b":null}]}]}}}"#;
        let reset = r#"{"uuid":"r-1","eventType":"user.mfa.factor.reset_all",
            "actor":{"type":"User","alternateId":"admin@example.com"},
            "target":[{"type":"User","alternateId":"bob@example.com"}]}"#;
        let cases = [
            session,
            reset,
            // A sign-in whose target is a user: the target, not the actor, signed in.
            r#"{"uuid":"s-3","eventType":"user.session.start","outcome":{"result":"SUCCESS"},"actor":{"type":"User","alternateId":"ann"},"target":[{"type":"User","alternateId":"carl@example.com"}]}"#,
            // A sign-in with no actor to name.
            r#"{"uuid":"s-4","eventType":"user.session.start","outcome":{"result":"SUCCESS"},"actor":null}"#,
            // A failed sign-in teaches nothing.
            r#"{"uuid":"s-2","eventType":"user.session.start","outcome":{"result":"FAILURE"},"actor":{"type":"User","alternateId":"x"}}"#,
            // No uuid: the key is the hash of the exact bytes.
            r#"{"eventType":"user.session.start","outcome":null}"#,
            // Numbers where strings are expected, nulls, a target that is not a list.
            r#"{"uuid":42,"eventType":"user.session.start","outcome":{"result":"SUCCESS"},"actor":{"type":"User","alternateId":7},"target":null}"#,
            r#"{"uuid":null,"target":{"type":"User"}}"#,
            r#"{"uuid":"n","eventType":["user.session.start"]}"#,
            // A repeated key: the tree keeps the last one.
            r#"{"uuid":"first","uuid":"second"}"#,
            // Not an object at all.
            r#"["uuid","x"]"#,
            r#""just text""#,
            "{}",
        ];
        for raw in cases {
            let (head, expected) = both_ways(raw);
            assert_eq!(head, expected, "{raw}");
        }
        assert_eq!(
            EventHead::read(session).session_user.as_deref(),
            Some("ann@example.com")
        );
        assert_eq!(EventHead::read(reset).key, "r-1");
        assert_eq!(
            EventHead::read(reset).event_type.as_deref(),
            Some("user.mfa.factor.reset_all")
        );
        // A type that is not a string is none: every rule meets such an event.
        assert_eq!(EventHead::read(r#"{"eventType":7}"#).event_type, None);
        assert_eq!(
            EventHead::read(r#"{"uuid":"first","uuid":"second"}"#).key,
            "second"
        );
    }

    #[test]
    fn nesting_past_the_parsers_limit_still_reads_the_head() {
        // The parser skips what it does not build at any depth, so such an event keeps its
        // uuid as key; its tree cannot be built, and the rules never match it.
        let deep = format!(
            r#"{{"uuid":"u","x":{}1{}}}"#,
            "[".repeat(200),
            "]".repeat(200)
        );
        assert_eq!(EventHead::read(&deep).key, "u");
        assert_eq!(whole_tree(&deep), Value::Null);
        // Nor is an actor built unless the event is a successful sign-in, which needs it.
        let deep_actor = format!(
            r#"{{"uuid":"r","eventType":"user.mfa.factor.deactivate","actor":{}1{}}}"#,
            "[".repeat(200),
            "]".repeat(200)
        );
        assert_eq!(EventHead::read(&deep_actor).key, "r");
        // A sign-in's actor is built: nested as deep, it cannot be, and the event is keyed by
        // its bytes, as its whole tree would be.
        let deep_sign_in = deep_actor
            .replace("user.mfa.factor.deactivate", "user.session.start")
            .replace(r#""actor""#, r#""outcome":{"result":"SUCCESS"},"actor""#);
        let head = EventHead::read(&deep_sign_in);
        assert!(head.key.starts_with("sha256:"), "{head:?}");
        // An array nested as deep has no head to read: keyed by its bytes, as before.
        let array = format!("{}1{}", "[".repeat(200), "]".repeat(200));
        assert!(EventHead::read(&array).key.starts_with("sha256:"));
    }
}
