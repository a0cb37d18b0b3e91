//! The durability baseline: how many `write` + `fdatasync` pairs a second the disk takes with the
//! write sizes of the load (one request body per write), appending to a file in the directory the
//! spools live in. One fsync per request is what a receiver without group commit could do at best.

use std::io::Write;
use std::time::{Duration, Instant};

use crate::server::scratch_root;

/// What the disk did with one write size.
pub struct FsyncRate {
    /// Bytes per write.
    pub write_bytes: usize,
    /// write + fdatasync pairs per second.
    pub per_second: f64,
}

/// Appends `write_bytes` and fdatasyncs, again and again for `duration`.
pub fn fsync_rate(write_bytes: usize, duration: Duration) -> anyhow::Result<FsyncRate> {
    let dir = tempfile::Builder::new()
        .prefix("fsync-probe-")
        .tempdir_in(scratch_root())?;
    let mut file = std::fs::File::create(dir.path().join("probe"))?;
    let buffer = vec![b'x'; write_bytes];
    let started = Instant::now();
    let mut count = 0u64;
    while started.elapsed() < duration {
        file.write_all(&buffer)?;
        file.sync_data()?;
        count += 1;
    }
    Ok(FsyncRate {
        write_bytes,
        per_second: count as f64 / started.elapsed().as_secs_f64(),
    })
}
