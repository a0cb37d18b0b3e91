//! How a batch is stored in `batches` (and `quarantine`): its arrival time, then its body,
//! compressed.
//!
//! A value is the arrival time (Unix ms, 8 bytes little-endian), the byte [`LZ4`], the body's
//! length (4 bytes little-endian) and the body as one LZ4 block. Okta's JSON repeats its keys and
//! much of its values from event to event, so a body is stored in a fraction of its size, which
//! redb keeps in a smaller page. The spool writer's page writes and fdatasyncs shrink with it
//! (they were most of its CPU at saturation), for little CPU spent compressing each request and
//! less decompressing it when it is detected; and a backlog limit holds that many more events
//! (BENCHMARKS.md, "Latest changes", 6.).
//!
//! An earlier version stored the body as it came. A JSON body never starts with the [`LZ4`] byte
//! (intake stores only bodies that parse as JSON), so such a value reads back as it is.

use super::StoredBatch;

/// Marks a body stored as an LZ4 block.
const LZ4: u8 = 0x01;
/// Bytes before the body: the arrival time.
const TIME_BYTES: usize = 8;
/// LZ4 cannot expand a block more than 255 times; a stated length beyond that is damage, and is
/// never allocated.
const LZ4_MAX_RATIO: usize = 255;

/// The stored value of a body received at `received_at_ms`.
pub(super) fn encode(received_at_ms: u64, body: &[u8]) -> Vec<u8> {
    let block = lz4_flex::compress_prepend_size(body);
    let mut value = Vec::with_capacity(TIME_BYTES + 1 + block.len());
    value.extend_from_slice(&received_at_ms.to_le_bytes());
    value.push(LZ4);
    value.extend_from_slice(&block);
    value
}

/// Reads a stored value back. A body that does not decompress is kept as it was stored: it does
/// not parse as an envelope either, so the detector moves it to `quarantine`, bytes intact.
pub(super) fn decode(id: u64, value: &[u8]) -> StoredBatch {
    let (time, stored) = value.split_at(TIME_BYTES.min(value.len()));
    let body = match stored.split_first() {
        Some((&LZ4, block)) => decompress(block).unwrap_or_else(|| stored.to_vec()),
        _ => stored.to_vec(),
    };
    StoredBatch {
        id,
        received_at_ms: u64::from_le_bytes(time.try_into().unwrap_or_default()),
        body,
        stored_len: value.len() as u64,
    }
}

/// The body of an LZ4 block preceded by its length; `None` if it is damaged.
fn decompress(block: &[u8]) -> Option<Vec<u8>> {
    let (length, compressed) = block.split_first_chunk::<4>()?;
    let length = u32::from_le_bytes(*length) as usize;
    if length > compressed.len().saturating_mul(LZ4_MAX_RATIO) {
        return None;
    }
    lz4_flex::block::decompress(compressed, length).ok()
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
        huge.push(LZ4);
        huge.extend_from_slice(&u32::MAX.to_le_bytes());
        huge.extend_from_slice(b"\x00\x01");
        assert_eq!(decode(1, &huge).body, huge[TIME_BYTES..]);
    }
}
