//! The de-duplication window on disk: which batch claimed each event key, and until when, in
//! files that are only ever appended to, written once, or deleted whole.
//!
//! It was a redb B-tree keyed by event uuid. A uuid is random, so each claim landed on a random
//! leaf, and once the tree outgrew redb's cache every pass rewrote leaves and the branches above
//! them: millions of keys in, the disk writes dwarfed the events' own and detection fell behind
//! with the machine idle (BENCHMARKS.md, "What the profiles showed", 4.). Here the disk sees
//! sequential writes only:
//! - a claim is appended to the active log, `<dir>/<n>.log` (one `fdatasync` per call), and kept
//!   in memory;
//! - the active log is sealed once it holds [`SEAL_AT`] keys, or an hour after its first claim: its
//!   keys are written sorted to `<n>.seg` (a temporary file, fsynced, then renamed), and the log is
//!   deleted;
//! - memory keeps, for each sealed segment, a Bloom filter and every [`INDEX_EVERY`]th key, so a
//!   lookup reads the disk only when the filter lets the key through (about 1 in 100 keys that are
//!   not there), and then one block of [`INDEX_EVERY`] records;
//! - a segment whose claims have all ended is deleted whole. Nothing is rewritten.
//!
//! Keys are the first 16 bytes of the SHA-256 of the event key, so a uuid and a `sha256:` content
//! key take the same room, and two different keys share one only with probability 2^-128.
//!
//! A sealed segment that fails its checksum at open is renamed `<n>.seg.corrupt` and skipped: its
//! events could then alert a second time if Okta delivered them again, with the same alert id,
//! which consumers de-duplicate. A torn record at the end of the log (a crash during an append
//! that was never acknowledged) is cut off.

use std::collections::HashMap;
use std::fs::{self, File, OpenOptions};
use std::io::{self, BufReader, BufWriter, Read, Write};
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};

use sha2::{Digest, Sha256};

/// Keys in the active log before it is sealed: bounds the memory the log's map takes (about
/// 3 MiB) and the size of one seal.
pub const SEAL_AT: usize = 65_536;
/// Age of the active log's first claim after which it is sealed anyway, so that a quiet window
/// still becomes segments that can be deleted when their claims end.
const SEAL_AFTER_MS: u64 = 3_600_000;
/// One key in this many is kept in memory for each sealed segment.
pub const INDEX_EVERY: usize = 64;
/// Bloom filter size: 10 bits per key gives about one false positive in a hundred lookups.
const BLOOM_BITS_PER_KEY: usize = 10;
/// Bits per Bloom block: one cache line, so a lookup touches one line per segment.
const BLOOM_BLOCK_BITS: usize = 512;
/// Bits set per key, all in one block.
const BLOOM_PROBES: usize = 7;
/// A record: key hash (16 bytes), claimed until (Unix ms, u64 LE), batch id (u64 LE).
const RECORD: usize = 32;
/// A log record: a record and its CRC-32 (u32 LE), so a torn append is found.
const LOG_RECORD: usize = RECORD + 4;
/// First bytes of a sealed segment.
const SEGMENT_MAGIC: &[u8; 8] = b"fwseen01";
/// A segment's footer: record count, latest claim end, highest batch id (u64 LE each), CRC-32 of
/// everything before the footer (u32 LE).
const FOOTER: usize = 3 * 8 + 4;

/// An event key as the window stores it.
pub type KeyHash = [u8; 16];

/// The window's hash of an event key.
pub fn key_hash(key: &str) -> KeyHash {
    let digest = Sha256::digest(key.as_bytes());
    let mut hash = KeyHash::default();
    hash.copy_from_slice(&digest[..16]);
    hash
}

/// A batch's claim on an event key.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Claim {
    /// The end of the window for this key (Unix ms).
    pub until_ms: u64,
    /// The batch that claimed it.
    pub batch_id: u64,
}

/// The window: the active log and the sealed segments, oldest first.
pub struct Window {
    dir: PathBuf,
    active: ActiveLog,
    sealed: Vec<Segment>,
}

impl Window {
    /// Opens (or creates) the window in `dir`: loads the sealed segments whose claims have not
    /// all ended by `now_ms` (deleting the others), and replays the active log.
    pub fn open(dir: &Path, now_ms: u64) -> io::Result<Self> {
        fs::create_dir_all(dir)?;
        let files = WindowFiles::list(dir)?;
        let mut sealed = Vec::new();
        for number in &files.segments {
            let path = segment_path(dir, *number);
            match Segment::load(&path) {
                Ok(segment) if segment.max_until_ms <= now_ms => fs::remove_file(&path)?,
                Ok(segment) => sealed.push(segment),
                Err(err) if err.kind() == io::ErrorKind::InvalidData => set_aside(&path, &err)?,
                Err(err) => return Err(err),
            }
        }
        let mut logs = Vec::new();
        for number in &files.logs {
            if files.segments.contains(number) {
                // Sealed before a crash stopped the log's deletion.
                fs::remove_file(log_path(dir, *number))?;
            } else {
                logs.push(ActiveLog::open(dir, *number, now_ms)?);
            }
        }
        let next = files.highest().map_or(0, |n| n + 1);
        let active = match logs.pop() {
            Some(log) => log,
            None => ActiveLog::create(dir, next)?,
        };
        // Only a crash while sealing leaves two: the older one is sealed now.
        for older in logs {
            sealed.push(older.write_segment(dir)?);
            fs::remove_file(log_path(dir, older.number))?;
        }
        sealed.sort_by_key(|segment| segment.number);
        Ok(Self {
            dir: dir.to_owned(),
            active,
            sealed,
        })
    }

    /// The newest claim on `key`, if any is still on record.
    pub fn claim(&self, key: &KeyHash) -> io::Result<Option<Claim>> {
        if let Some(claim) = self.active.claims.get(key) {
            return Ok(Some(*claim));
        }
        for segment in self.sealed.iter().rev() {
            if let Some(claim) = segment.find(key)? {
                return Ok(Some(claim));
            }
        }
        Ok(None)
    }

    /// Records `claims` durably (the call returns after `fdatasync`), sealing the active log
    /// when it is full. `now_ms` starts the log's age.
    pub fn record(&mut self, claims: &[(KeyHash, Claim)], now_ms: u64) -> io::Result<()> {
        for chunk in claims.chunks(SEAL_AT) {
            self.active.append(chunk, now_ms)?;
            if self.active.claims.len() >= SEAL_AT {
                self.seal_active()?;
            }
        }
        Ok(())
    }

    /// Deletes the segments whose claims all ended by `now_ms`, and seals an active log older
    /// than an hour. Returns how many keys were forgotten.
    pub fn prune(&mut self, now_ms: u64) -> io::Result<usize> {
        let first_claim = self.active.first_claim_ms;
        if first_claim.is_some_and(|at| now_ms.saturating_sub(at) >= SEAL_AFTER_MS) {
            self.seal_active()?;
        }
        let mut forgotten = 0;
        let (ended, live) = std::mem::take(&mut self.sealed)
            .into_iter()
            .partition(|segment| segment.max_until_ms <= now_ms);
        self.sealed = live;
        for segment in ended {
            fs::remove_file(&segment.path)?;
            forgotten += segment.count;
        }
        Ok(forgotten)
    }

    /// The keys and sealed segments on record.
    pub fn size(&self) -> WindowSize {
        let sealed_keys: usize = self.sealed.iter().map(|segment| segment.count).sum();
        WindowSize {
            keys: self.active.claims.len() + sealed_keys,
            segments: self.sealed.len(),
        }
    }

    /// The highest batch id with a claim on record (0 for none), so batch ids are not given
    /// again while a claim of theirs could still count.
    pub fn highest_batch_id(&self) -> u64 {
        let sealed = self.sealed.iter().map(|segment| segment.max_batch_id);
        let active = self.active.claims.values().map(|claim| claim.batch_id);
        sealed.chain(active).max().unwrap_or(0)
    }

    /// Seals the active log and starts the next. The next log exists before the segment does,
    /// so claims never go to a log whose segment is on disk (a later open would delete that log);
    /// if the segment cannot be written, the active log stays active.
    fn seal_active(&mut self) -> io::Result<()> {
        let next = ActiveLog::create(&self.dir, self.active.number + 1)?;
        let segment = match self.active.write_segment(&self.dir) {
            Ok(segment) => segment,
            Err(err) => {
                let _ = fs::remove_file(log_path(&self.dir, next.number));
                return Err(err);
            }
        };
        let full = std::mem::replace(&mut self.active, next);
        self.sealed.push(segment);
        fs::remove_file(log_path(&self.dir, full.number))
    }
}

/// How much the window holds, for metrics.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct WindowSize {
    /// Keys on record: a key claimed twice counts twice until its older segment goes.
    pub keys: usize,
    /// Sealed segments on disk, each one filter check per lookup.
    pub segments: usize,
}

/// The numbered files of a window directory (temporary files are deleted on the way).
struct WindowFiles {
    segments: Vec<u64>,
    logs: Vec<u64>,
}

impl WindowFiles {
    fn list(dir: &Path) -> io::Result<Self> {
        let (mut segments, mut logs) = (Vec::new(), Vec::new());
        for entry in fs::read_dir(dir)? {
            let path = entry?.path();
            let name = path.file_name().and_then(|n| n.to_str()).unwrap_or("");
            if name.ends_with(".tmp") {
                fs::remove_file(&path)?;
                continue;
            }
            let Some((number, kind)) = name.split_once('.') else {
                continue;
            };
            let Ok(number) = number.parse::<u64>() else {
                continue;
            };
            match kind {
                "seg" => segments.push(number),
                "log" => logs.push(number),
                _ => {}
            }
        }
        segments.sort_unstable();
        logs.sort_unstable();
        Ok(Self { segments, logs })
    }

    fn highest(&self) -> Option<u64> {
        self.segments.iter().chain(&self.logs).copied().max()
    }
}

fn segment_path(dir: &Path, number: u64) -> PathBuf {
    dir.join(format!("{number:020}.seg"))
}

fn log_path(dir: &Path, number: u64) -> PathBuf {
    dir.join(format!("{number:020}.log"))
}

/// Moves a damaged segment out of the way, keeping it for a person to look at.
fn set_aside(path: &Path, err: &io::Error) -> io::Result<()> {
    let aside = path.with_extension("seg.corrupt");
    tracing::error!(
        segment = %path.display(),
        moved_to = %aside.display(),
        error = %err,
        "a de-duplication window segment is damaged and was set aside; events in it that Okta \
         delivers again will alert again, with the same alert id"
    );
    fs::rename(path, aside)
}

fn sync_dir(dir: &Path) -> io::Result<()> {
    File::open(dir)?.sync_all()
}

fn encode(key: &KeyHash, claim: Claim) -> [u8; RECORD] {
    let mut record = [0; RECORD];
    record[..16].copy_from_slice(key);
    record[16..24].copy_from_slice(&claim.until_ms.to_le_bytes());
    record[24..].copy_from_slice(&claim.batch_id.to_le_bytes());
    record
}

fn decode(record: &[u8]) -> (KeyHash, Claim) {
    let word = |at: usize| u64::from_le_bytes(record[at..at + 8].try_into().expect("8 bytes"));
    let mut key = KeyHash::default();
    key.copy_from_slice(&record[..16]);
    let claim = Claim {
        until_ms: word(16),
        batch_id: word(24),
    };
    (key, claim)
}

fn invalid(what: String) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, what)
}

/// The log that takes new claims, and its claims in memory.
struct ActiveLog {
    number: u64,
    file: File,
    /// Bytes of whole, acknowledged records: a failed append is cut back to this.
    len: u64,
    claims: HashMap<KeyHash, Claim>,
    first_claim_ms: Option<u64>,
}

impl ActiveLog {
    /// Starts log `number`, empty (a leftover of a failed seal is emptied).
    fn create(dir: &Path, number: u64) -> io::Result<Self> {
        let path = log_path(dir, number);
        let file = OpenOptions::new().create(true).append(true).open(&path)?;
        file.set_len(0)?;
        sync_dir(dir)?;
        Ok(Self {
            number,
            file,
            len: 0,
            claims: HashMap::new(),
            first_claim_ms: None,
        })
    }

    /// Replays a log, cutting off a torn record at its end. Its age starts again at `now_ms`.
    fn open(dir: &Path, number: u64, now_ms: u64) -> io::Result<Self> {
        let path = log_path(dir, number);
        let mut bytes = Vec::new();
        File::open(&path)?.read_to_end(&mut bytes)?;
        let mut claims = HashMap::new();
        let mut len = 0;
        for record in bytes.chunks_exact(LOG_RECORD) {
            let (body, crc) = record.split_at(RECORD);
            if crc32fast::hash(body).to_le_bytes() != crc {
                break;
            }
            let (key, claim) = decode(body);
            claims.insert(key, claim);
            len += LOG_RECORD as u64;
        }
        let file = OpenOptions::new().append(true).open(&path)?;
        if len < bytes.len() as u64 {
            tracing::warn!(
                log = %path.display(),
                cut_bytes = bytes.len() as u64 - len,
                "cut a torn record off the de-duplication log (a crash during a claim that was \
                 never acknowledged)"
            );
            file.set_len(len)?;
            file.sync_all()?;
        }
        let first_claim_ms = (!claims.is_empty()).then_some(now_ms);
        Ok(Self {
            number,
            file,
            len,
            claims,
            first_claim_ms,
        })
    }

    fn append(&mut self, claims: &[(KeyHash, Claim)], now_ms: u64) -> io::Result<()> {
        let mut bytes = Vec::with_capacity(claims.len() * LOG_RECORD);
        for (key, claim) in claims {
            let record = encode(key, *claim);
            bytes.extend_from_slice(&record);
            bytes.extend_from_slice(&crc32fast::hash(&record).to_le_bytes());
        }
        if let Err(err) = self.write_durably(&bytes) {
            // Cut a partial append off, so the records after it are not lost behind a torn one
            // at the next replay. If that fails too, the next append tries again first.
            let _ = self.file.set_len(self.len);
            return Err(err);
        }
        self.len += bytes.len() as u64;
        self.claims.extend(claims.iter().copied());
        self.first_claim_ms.get_or_insert(now_ms);
        Ok(())
    }

    fn write_durably(&mut self, bytes: &[u8]) -> io::Result<()> {
        if self.file.metadata()?.len() != self.len {
            self.file.set_len(self.len)?;
        }
        self.file.write_all(bytes)?;
        self.file.sync_data()
    }

    /// Writes the claims as a sorted segment, durably; the caller deletes the log.
    fn write_segment(&self, dir: &Path) -> io::Result<Segment> {
        let mut records: Vec<[u8; RECORD]> = self
            .claims
            .iter()
            .map(|(key, claim)| encode(key, *claim))
            .collect();
        records.sort_unstable();
        let path = segment_path(dir, self.number);
        let temporary = path.with_extension("seg.tmp");
        let mut out = BufWriter::new(File::create(&temporary)?);
        let mut builder = SegmentBuilder::new(self.number, path.clone(), records.len());
        out.write_all(SEGMENT_MAGIC)?;
        for record in &records {
            out.write_all(record)?;
            builder.add(record);
        }
        out.write_all(&builder.footer())?;
        out.into_inner()
            .map_err(io::IntoInnerError::into_error)?
            .sync_all()?;
        fs::rename(&temporary, &path)?;
        sync_dir(dir)?;
        Ok(builder.finish())
    }
}

/// A sealed segment: on disk, sorted by key; in memory, its filter and sparse index.
struct Segment {
    number: u64,
    path: PathBuf,
    count: usize,
    max_until_ms: u64,
    max_batch_id: u64,
    bloom: Bloom,
    /// The key of every [`INDEX_EVERY`]th record.
    sparse: Vec<KeyHash>,
}

impl Segment {
    /// Reads a segment back, checking its length, order and checksum.
    fn load(path: &Path) -> io::Result<Self> {
        let number = path
            .file_stem()
            .and_then(|stem| stem.to_str()?.parse().ok())
            .unwrap_or_default();
        let len = fs::metadata(path)?.len() as usize;
        let body = len
            .checked_sub(SEGMENT_MAGIC.len() + FOOTER)
            .filter(|body| body.is_multiple_of(RECORD))
            .ok_or_else(|| invalid(format!("{len} bytes is not a whole segment")))?;
        let mut input = BufReader::new(File::open(path)?);
        let mut magic = [0; 8];
        input.read_exact(&mut magic)?;
        if &magic != SEGMENT_MAGIC {
            return Err(invalid("not a de-duplication segment".into()));
        }
        let mut builder = SegmentBuilder::new(number, path.to_owned(), body / RECORD);
        let mut record = [0; RECORD];
        let mut previous: Option<[u8; RECORD]> = None;
        for _ in 0..body / RECORD {
            input.read_exact(&mut record)?;
            if previous.is_some_and(|p| p[..16] >= record[..16]) {
                return Err(invalid("keys out of order".into()));
            }
            builder.add(&record);
            previous = Some(record);
        }
        let mut footer = [0; FOOTER];
        input.read_exact(&mut footer)?;
        if footer != builder.footer() {
            return Err(invalid(
                "footer or checksum does not match the records".into(),
            ));
        }
        Ok(builder.finish())
    }

    /// The claim on `key` in this segment: a filter check in memory, then, if it passes, one
    /// block read from the file.
    fn find(&self, key: &KeyHash) -> io::Result<Option<Claim>> {
        if !self.bloom.may_contain(key) {
            return Ok(None);
        }
        let Some(block) = self
            .sparse
            .partition_point(|first| first <= key)
            .checked_sub(1)
        else {
            return Ok(None);
        };
        let first = block * INDEX_EVERY;
        let records = INDEX_EVERY.min(self.count - first);
        let mut bytes = vec![0; records * RECORD];
        let offset = (SEGMENT_MAGIC.len() + first * RECORD) as u64;
        File::open(&self.path)?.read_exact_at(&mut bytes, offset)?;
        Ok(bytes
            .chunks_exact(RECORD)
            .map(decode)
            .find(|(found, _)| found == key)
            .map(|(_, claim)| claim))
    }
}

/// Builds a segment's in-memory part and footer from its records in order, whether they are being
/// written or read back.
struct SegmentBuilder {
    segment: Segment,
    crc: crc32fast::Hasher,
}

impl SegmentBuilder {
    fn new(number: u64, path: PathBuf, records: usize) -> Self {
        let mut crc = crc32fast::Hasher::new();
        crc.update(SEGMENT_MAGIC);
        let segment = Segment {
            number,
            path,
            count: 0,
            max_until_ms: 0,
            max_batch_id: 0,
            bloom: Bloom::for_keys(records),
            sparse: Vec::with_capacity(records.div_ceil(INDEX_EVERY)),
        };
        Self { segment, crc }
    }

    fn add(&mut self, record: &[u8; RECORD]) {
        let (key, claim) = decode(record);
        let segment = &mut self.segment;
        if segment.count.is_multiple_of(INDEX_EVERY) {
            segment.sparse.push(key);
        }
        segment.bloom.insert(&key);
        segment.count += 1;
        segment.max_until_ms = segment.max_until_ms.max(claim.until_ms);
        segment.max_batch_id = segment.max_batch_id.max(claim.batch_id);
        self.crc.update(record);
    }

    fn footer(&self) -> [u8; FOOTER] {
        let segment = &self.segment;
        let mut footer = [0; FOOTER];
        footer[..8].copy_from_slice(&(segment.count as u64).to_le_bytes());
        footer[8..16].copy_from_slice(&segment.max_until_ms.to_le_bytes());
        footer[16..24].copy_from_slice(&segment.max_batch_id.to_le_bytes());
        footer[24..].copy_from_slice(&self.crc.clone().finalize().to_le_bytes());
        footer
    }

    fn finish(self) -> Segment {
        self.segment
    }
}

/// A blocked Bloom filter: each key sets [`BLOOM_PROBES`] bits inside one 512-bit block. The keys
/// are already SHA-256 output, so their bytes serve as the hash.
struct Bloom {
    blocks: Vec<[u64; BLOOM_BLOCK_BITS / 64]>,
}

impl Bloom {
    fn for_keys(keys: usize) -> Self {
        let blocks = (keys * BLOOM_BITS_PER_KEY)
            .div_ceil(BLOOM_BLOCK_BITS)
            .max(1);
        Self {
            blocks: vec![[0; BLOOM_BLOCK_BITS / 64]; blocks],
        }
    }

    /// The block, and the bits inside it, that stand for `key`.
    fn positions(&self, key: &KeyHash) -> (usize, impl Iterator<Item = usize> + use<>) {
        let block = u64::from_le_bytes(key[..8].try_into().expect("8 bytes"));
        let bits = u64::from_le_bytes(key[8..].try_into().expect("8 bytes"));
        let block = (block % self.blocks.len() as u64) as usize;
        // 7 probes of 9 bits each use 63 of the 64 bits.
        let probes = (0..BLOOM_PROBES).map(move |i| ((bits >> (9 * i)) & 511) as usize);
        (block, probes)
    }

    fn insert(&mut self, key: &KeyHash) {
        let (block, probes) = self.positions(key);
        let words = &mut self.blocks[block];
        probes.for_each(|bit| words[bit / 64] |= 1 << (bit % 64));
    }

    fn may_contain(&self, key: &KeyHash) -> bool {
        let (block, mut probes) = self.positions(key);
        let words = &self.blocks[block];
        probes.all(|bit| words[bit / 64] & (1 << (bit % 64)) != 0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn claim(until_ms: u64, batch_id: u64) -> Claim {
        Claim { until_ms, batch_id }
    }

    fn keys(range: std::ops::Range<u64>) -> Vec<KeyHash> {
        range.map(|n| key_hash(&format!("uuid-{n}"))).collect()
    }

    #[test]
    fn claims_are_found_in_the_log_and_in_sealed_segments_and_survive_a_reopen() {
        let dir = tempfile::TempDir::new().unwrap();
        let all = keys(0..SEAL_AT as u64 * 2 + 100);
        {
            let mut window = Window::open(dir.path(), 0).unwrap();
            let claims: Vec<_> = all.iter().map(|k| (*k, claim(1_000, 7))).collect();
            window.record(&claims, 0).unwrap();
            let size = window.size();
            assert_eq!(
                (size.keys, size.segments),
                (all.len(), 2),
                "two sealed, the rest logged"
            );
        }
        let window = Window::open(dir.path(), 0).unwrap();
        let size = window.size();
        assert_eq!((size.keys, size.segments), (all.len(), 2));
        for key in &all {
            assert_eq!(window.claim(key).unwrap(), Some(claim(1_000, 7)));
        }
        let absent = keys(1_000_000..1_010_000);
        let found = absent.iter().filter(|k| window.claim(k).unwrap().is_some());
        assert_eq!(found.count(), 0, "a key never claimed is never found");
        assert_eq!(window.highest_batch_id(), 7);
    }

    #[test]
    fn the_newest_claim_wins_and_ended_segments_are_deleted_whole() {
        const HOUR: u64 = SEAL_AFTER_MS;
        let dir = tempfile::TempDir::new().unwrap();
        let mut window = Window::open(dir.path(), 0).unwrap();
        let key = key_hash("uuid-1");
        window.record(&[(key, claim(10 * HOUR, 1))], 0).unwrap();
        assert_eq!(window.prune(HOUR).unwrap(), 0, "sealed, not ended");
        window.record(&[(key, claim(20 * HOUR, 2))], HOUR).unwrap();
        assert_eq!(window.claim(&key).unwrap(), Some(claim(20 * HOUR, 2)));
        assert_eq!(window.prune(2 * HOUR).unwrap(), 0);
        let both = WindowSize {
            keys: 2,
            segments: 2,
        };
        assert_eq!(window.size(), both, "both claims sealed");
        assert_eq!(window.claim(&key).unwrap(), Some(claim(20 * HOUR, 2)));
        assert_eq!(window.prune(10 * HOUR).unwrap(), 1);
        assert_eq!(window.claim(&key).unwrap(), Some(claim(20 * HOUR, 2)));
        assert_eq!(window.prune(20 * HOUR).unwrap(), 1);
        assert_eq!(window.size(), WindowSize::default());
        assert_eq!(window.claim(&key).unwrap(), None);
        let files = fs::read_dir(dir.path()).unwrap().count();
        assert_eq!(files, 1, "only the active log is left");
    }

    #[test]
    fn a_torn_append_is_cut_off_and_later_claims_are_kept() {
        let dir = tempfile::TempDir::new().unwrap();
        let (first, second) = (key_hash("uuid-1"), key_hash("uuid-2"));
        {
            let mut window = Window::open(dir.path(), 0).unwrap();
            window.record(&[(first, claim(5_000, 1))], 0).unwrap();
        }
        let log = log_path(dir.path(), 0);
        let mut file = OpenOptions::new().append(true).open(&log).unwrap();
        file.write_all(&[0xAB; LOG_RECORD + 5]).unwrap();
        drop(file);
        {
            let mut window = Window::open(dir.path(), 0).unwrap();
            assert_eq!(window.claim(&first).unwrap(), Some(claim(5_000, 1)));
            window.record(&[(second, claim(5_000, 2))], 0).unwrap();
        }
        let window = Window::open(dir.path(), 0).unwrap();
        assert_eq!(window.claim(&second).unwrap(), Some(claim(5_000, 2)));
        assert_eq!(window.size().keys, 2);
    }

    #[test]
    fn a_damaged_segment_is_set_aside_and_the_rest_still_opens() {
        let dir = tempfile::TempDir::new().unwrap();
        let key = key_hash("uuid-1");
        {
            let mut window = Window::open(dir.path(), 0).unwrap();
            window.record(&[(key, claim(u64::MAX, 1))], 0).unwrap();
            window.prune(SEAL_AFTER_MS).unwrap();
        }
        let segment = segment_path(dir.path(), 0);
        let mut bytes = fs::read(&segment).unwrap();
        bytes[SEGMENT_MAGIC.len() + 20] ^= 1;
        fs::write(&segment, bytes).unwrap();
        let window = Window::open(dir.path(), 0).unwrap();
        assert_eq!(window.claim(&key).unwrap(), None);
        assert!(segment.with_extension("seg.corrupt").exists());
    }
}
