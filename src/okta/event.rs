//! Reading fields out of one System Log `LogEvent`, tolerating everything Okta is known to send.
//!
//! Okta's own SDKs have failed on these events with strict types, so there is no strict type here:
//! [`LogEvent`] wraps the parsed JSON and every accessor returns `Option`. Numbers where the schema
//! says string (`version`, `postalCode`) read as their decimal text, `null` and missing are the same,
//! and nothing is ever rejected for a field we did not expect.

use serde_json::Value;
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

    /// `target[]`, or an empty list when Okta sent `null` or nothing.
    pub fn targets(&self) -> &'a [Value] {
        self.get("target")
            .and_then(Value::as_array)
            .map_or(&[], Vec::as_slice)
    }
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
    fn dedup_key_falls_back_to_content_hash() {
        let with_uuid = json!({"uuid": "abc"});
        assert_eq!(dedup_key(&LogEvent(&with_uuid), "{}"), "abc");
        let without = json!({"eventType": "x"});
        let a = dedup_key(&LogEvent(&without), r#"{"eventType":"x"}"#);
        let b = dedup_key(&LogEvent(&without), r#"{"eventType":"y"}"#);
        assert!(a.starts_with("sha256:") && a != b);
    }
}
