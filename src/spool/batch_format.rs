//! How a batch is stored in `batches` (and `quarantine`): its arrival time, then its body,
//! compressed.
//!
//! A value is the arrival time (Unix ms, 8 bytes little-endian), then the body as
//! [`compressed`] stores it. Okta's JSON repeats its keys and much of its values from event to
//! event, so a body is stored in a fraction of its size, which redb keeps in a smaller page. The
//! spool writer's page writes and fdatasyncs shrink with it (they were most of its CPU at
//! saturation), for little CPU spent compressing each request and less decompressing it when it
//! is detected; and a backlog limit holds that many more events (BENCHMARKS.md, "Latest
//! changes", 6.).
//!
//! An earlier version stored the body as it came (intake stores only bodies that parse as JSON),
//! and such a value reads back as it is.

use super::StoredBatch;
use super::compressed;

/// Bytes before the body: the arrival time.
const TIME_BYTES: usize = 8;

/// The stored value of a body received at `received_at_ms`.
pub(super) fn encode(received_at_ms: u64, body: &[u8]) -> Vec<u8> {
    let mut value = received_at_ms.to_le_bytes().to_vec();
    compressed::append(&mut value, body);
    value
}

/// Reads a stored value back. A body that does not decompress is kept as it was stored: it does
/// not parse as an envelope either, so the detector moves it to `quarantine`, bytes intact.
pub(super) fn decode(id: u64, value: &[u8]) -> StoredBatch {
    let (time, stored) = value.split_at(TIME_BYTES.min(value.len()));
    let body = compressed::decode(stored).map_or_else(|| stored.to_vec(), |body| body.into_owned());
    StoredBatch {
        id,
        received_at_ms: u64::from_le_bytes(time.try_into().unwrap_or_default()),
        body,
        stored_len: value.len() as u64,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const BODY: &[u8] = br#"{"eventType":"com.okta.event_hook","data":{"events":[{"uuid":"a","eventType":"user.mfa.factor.deactivate"},{"uuid":"b","eventType":"user.mfa.factor.deactivate"}]}}"#;

    #[test]
    fn a_body_reads_back_byte_for_byte_with_its_time_and_stored_size() {
        let value = encode(1_700_000_000_123, BODY);
        let batch = decode(7, &value);
        assert_eq!((batch.id, batch.received_at_ms), (7, 1_700_000_000_123));
        assert_eq!(batch.body, BODY);
        assert_eq!(batch.stored_len, value.len() as u64);
    }

    #[test]
    fn a_body_an_earlier_version_stored_as_it_came_reads_back_as_it_is() {
        let mut value = 42u64.to_le_bytes().to_vec();
        value.extend_from_slice(BODY);
        let batch = decode(1, &value);
        assert_eq!((batch.received_at_ms, batch.body.as_slice()), (42, BODY));
    }

    #[test]
    fn a_damaged_body_is_kept_as_stored_and_never_allocates_its_stated_length() {
        let mut value = encode(42, BODY);
        let stored = value[TIME_BYTES..].to_vec();
        value.truncate(TIME_BYTES + 5);
        assert_eq!(decode(1, &value).body, stored[..5]);
        let mut huge = 42u64.to_le_bytes().to_vec();
        huge.push(compressed::LZ4);
        huge.extend_from_slice(&u32::MAX.to_le_bytes());
        huge.extend_from_slice(b"\x00\x01");
        assert_eq!(decode(1, &huge).body, huge[TIME_BYTES..]);
    }
}
