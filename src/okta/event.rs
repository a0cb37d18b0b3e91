//! Reading fields out of one System Log `LogEvent`, tolerating everything Okta is known to send.
//!
//! Okta's own SDKs have failed on these events with strict types, so there is no strict type here:
//! [`LogEvent`] wraps the parsed JSON and every accessor returns `Option`. Numbers where the schema
//! says string (`version`, `postalCode`) read as their decimal text, `null` and missing are the same,
//! and nothing is ever rejected for a field we did not expect.

use std::borrow::Cow;
use std::marker::PhantomData;

use serde::de::value::MapAccessDeserializer;
use serde::de::{Deserialize, Deserializer, MapAccess, Visitor};
use serde_json::Value;
use serde_json::value::RawValue;
use sha2::{Digest, Sha256};

/// A read-only view of one LogEvent.
#[derive(Debug, Clone, Copy)]
pub struct LogEvent<'a>(pub &'a Value);

impl<'a> LogEvent<'a> {
    /// The value at a dotted path, `None` when missing or `null`.
    pub fn get(&self, path: &str) -> Option<&'a Value> {
        path.split('.')
            .try_fold(self.0, |value, key| value.get(key))
            .filter(|value| !value.is_null())
    }

    /// A scalar at a dotted path as text: strings as they are, numbers and booleans in decimal.
    pub fn text(&self, path: &str) -> Option<String> {
        scalar_text(self.get(path)?)
    }

    /// `uuid`, Okta's unique id of the event.
    pub fn uuid(&self) -> Option<String> {
        self.text("uuid").filter(|uuid| !uuid.is_empty())
    }

    /// `eventType`, such as `user.mfa.factor.deactivate`.
    pub fn event_type(&self) -> Option<String> {
        self.text("eventType")
    }

    /// `published` as Unix milliseconds, when present and in RFC 3339.
    pub fn published_ms(&self) -> Option<i64> {
        crate::clock::parse_rfc3339_ms(self.get("published")?.as_str()?)
    }

    /// `target[]`, or an empty list when Okta sent `null` or nothing.
    pub fn targets(&self) -> &'a [Value] {
        self.get("target")
            .and_then(Value::as_array)
            .map_or(&[], Vec::as_slice)
    }
}

/// `T` read only from a JSON object. serde reads a struct from an array too, by position, where
/// a tree's paths find nothing; so a typed view of a few fields (read without building the whole
/// tree) refuses anything but an object, and its caller reads the whole tree instead.
pub struct FromObject<T>(pub T);

impl<'de, T: Deserialize<'de>> Deserialize<'de> for FromObject<T> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        object_only(deserializer).map(FromObject)
    }
}

/// Deserializes a struct from a JSON object only. serde's derived structs also accept an array of
/// their fields in order (`[[[]]]` would pass as an envelope with no events), which Okta never
/// sends. For `#[serde(deserialize_with)]`; [`FromObject`] wraps it as a type.
pub fn object_only<'de, D: Deserializer<'de>, T: Deserialize<'de>>(
    deserializer: D,
) -> Result<T, D::Error> {
    struct ObjectVisitor<T>(PhantomData<T>);
    impl<'de, T: Deserialize<'de>> Visitor<'de> for ObjectVisitor<T> {
        type Value = T;
        fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
            f.write_str("an object")
        }
        fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<T, A::Error> {
            T::deserialize(MapAccessDeserializer::new(map))
        }
    }
    deserializer.deserialize_map(ObjectVisitor(PhantomData))
}

/// The text of a JSON scalar; `None` for null, arrays and objects.
pub fn scalar_text(value: &Value) -> Option<String> {
    match value {
        Value::String(s) => Some(s.clone()),
        Value::Number(n) => Some(n.to_string()),
        Value::Bool(b) => Some(b.to_string()),
        _ => None,
    }
}

/// The key events are de-duplicated on: the event's `uuid`, or for an event without one a hash of
/// its exact bytes (so a redelivery of the same bytes still de-duplicates).
pub fn dedup_key(event: &LogEvent<'_>, raw: &str) -> String {
    match event.uuid() {
        Some(uuid) => uuid,
        None => {
            let digest = Sha256::digest(raw.as_bytes());
            let hex: String = digest.iter().map(|b| format!("{b:02x}")).collect();
            format!("sha256:{hex}")
        }
    }
}

/// The event's JSON with the line breaks between tokens removed (and the other whitespace between
/// tokens with them), so an alert always fits on one JSON line. Key order, number spelling, string
/// escapes and unknown fields are kept exactly. JSON that has no line break is returned as is,
/// borrowed if it was.
pub fn single_line(raw: Cow<'_, RawValue>) -> Cow<'_, RawValue> {
    // Every event passes here, and nearly all of them are one line already.
    if memchr::memchr2(b'\n', b'\r', raw.get().as_bytes()).is_none() {
        return raw;
    }
    let text = raw.get();
    let mut out = String::with_capacity(text.len());
    let (mut in_string, mut escaped) = (false, false);
    for c in text.chars() {
        if in_string {
            out.push(c);
            match (escaped, c) {
                (true, _) => escaped = false,
                (false, '\\') => escaped = true,
                (false, '"') => in_string = false,
                _ => {}
            }
        } else if !matches!(c, ' ' | '\n' | '\r' | '\t') {
            in_string = c == '"';
            out.push(c);
        }
    }
    let line =
        RawValue::from_string(out).expect("removing whitespace between JSON tokens keeps it valid");
    Cow::Owned(line)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn tolerates_nulls_numbers_and_missing() {
        let value = json!({
            "uuid": "u-1", "version": 0, "target": null,
            "client": {"geographicalContext": {"postalCode": 94105, "city": null}}
        });
        let event = LogEvent(&value);
        assert_eq!(event.text("version").as_deref(), Some("0"));
        assert_eq!(
            event
                .text("client.geographicalContext.postalCode")
                .as_deref(),
            Some("94105")
        );
        assert_eq!(event.text("client.geographicalContext.city"), None);
        assert_eq!(event.text("actor.id"), None);
        assert!(event.targets().is_empty());
    }

    #[test]
    fn pretty_printed_events_become_one_line_and_keep_their_content() {
        let pretty = "{\n  \"b\": \"a \\\" \\n x\",\n  \"a\": [1.50, {\"k\": null}]\n}";
        let raw = RawValue::from_string(pretty.to_owned()).unwrap();
        let line = single_line(Cow::Owned(raw));
        assert_eq!(line.get(), r#"{"b":"a \" \n x","a":[1.50,{"k":null}]}"#);
        let carriage_returns = RawValue::from_string("{\"a\":\r[1,\r2]}".to_owned()).unwrap();
        assert_eq!(
            single_line(Cow::Borrowed(&carriage_returns)).get(),
            r#"{"a":[1,2]}"#
        );
        let compact = RawValue::from_string(r#"{"x": 1}"#.to_owned()).unwrap();
        let kept = single_line(Cow::Borrowed(&compact));
        assert!(matches!(kept, Cow::Borrowed(_)), "a line is not copied");
        assert_eq!(kept.get(), r#"{"x": 1}"#);
    }

    #[test]
    fn dedup_key_falls_back_to_content_hash() {
        let with_uuid = json!({"uuid": "abc"});
        assert_eq!(dedup_key(&LogEvent(&with_uuid), "{}"), "abc");
        let without = json!({"eventType": "x"});
        let a = dedup_key(&LogEvent(&without), r#"{"eventType":"x"}"#);
        let b = dedup_key(&LogEvent(&without), r#"{"eventType":"y"}"#);
        assert!(a.starts_with("sha256:") && a != b);
    }
}
