//! Values stored compressed: the byte [`LZ4`], the value's length (4 bytes little-endian) and the
//! value as one LZ4 block. Batch bodies, correlation journal rows and correlation snapshots are
//! JSON that repeats its keys and much of its values, so each is stored in a fraction of its
//! size, and the spool writer's page writes shrink with it (BENCHMARKS.md).
//!
//! A value stored as it came by an earlier version still reads back: JSON never starts with the
//! [`LZ4`] byte.

use std::borrow::Cow;

/// Marks a value stored as an LZ4 block.
pub const LZ4: u8 = 0x01;
/// LZ4 cannot expand a block more than 255 times; a stated length beyond that is damage, and is
/// never allocated.
const LZ4_MAX_RATIO: usize = 255;

/// `value` as stored: the marker, its length, the block.
pub fn encode(value: &[u8]) -> Vec<u8> {
    let mut stored = Vec::new();
    append(&mut stored, value);
    stored
}

/// Appends `value` as stored to `out`, after what a caller put first (a batch's arrival time),
/// without a copy of its own.
pub fn append(out: &mut Vec<u8>, value: &[u8]) {
    out.push(LZ4);
    out.extend_from_slice(&lz4_flex::compress_prepend_size(value));
}

/// A stored value read back: decompressed when it is marked, as it is when it is not (an earlier
/// version's). `None` when a marked value does not decompress (it is damaged).
pub fn decode(stored: &[u8]) -> Option<Cow<'_, [u8]>> {
    match stored.split_first() {
        Some((&LZ4, block)) => decompress(block).map(Cow::Owned),
        _ => Some(Cow::Borrowed(stored)),
    }
}

/// The value of an LZ4 block preceded by its length; `None` if it is damaged.
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

    const JSON: &[u8] =
        br#"{"eventType":"user.mfa.factor.deactivate","eventType2":"user.mfa.factor.deactivate"}"#;

    #[test]
    fn a_value_reads_back_byte_for_byte_and_is_stored_smaller() {
        let long = JSON.repeat(20);
        let stored = encode(&long);
        assert!(stored.len() < long.len() / 4, "{} bytes", stored.len());
        assert_eq!(decode(&stored).unwrap(), long.as_slice());
    }

    #[test]
    fn a_value_stored_as_it_came_reads_back_as_it_is() {
        assert!(matches!(decode(JSON), Some(Cow::Borrowed(JSON))));
    }

    #[test]
    fn a_damaged_value_is_none_and_never_allocates_its_stated_length() {
        let mut stored = encode(JSON);
        stored.truncate(6);
        assert_eq!(decode(&stored), None);
        let mut huge = vec![LZ4];
        huge.extend_from_slice(&u32::MAX.to_le_bytes());
        huge.extend_from_slice(b"\x00\x01");
        assert_eq!(decode(&huge), None);
    }
}
