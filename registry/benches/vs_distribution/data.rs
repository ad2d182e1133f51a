//! The test data: pseudo-random blobs written to disk with their digests,
//! and the disk's own speed for a durable copy, as context.

use std::fs;
use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::time::Instant;

use anyhow::{Context, Result};
use sha2::{Digest as _, Sha256};

use crate::MIB;
use crate::report::mb_per_s;

pub(crate) struct Blob {
    pub(crate) path: PathBuf,
    pub(crate) size: u64,
    pub(crate) digest: String,
}

fn splitmix64(state: &mut u64) -> u64 {
    *state = state.wrapping_add(0x9E37_79B9_7F4A_7C15);
    let mut z = *state;
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

/// Writes `size` pseudo-random (incompressible) bytes, flushed to disk so
/// that their write-back does not disturb the measurements.
pub(crate) fn write_random(path: &Path, size: u64, seed: u64) -> Result<Blob> {
    let mut state = seed;
    let mut state = splitmix64(&mut state);
    let mut file =
        fs::File::create(path).with_context(|| format!("creating {}", path.display()))?;
    let mut buf = vec![0u8; MIB as usize];
    let mut hasher = Sha256::new();
    let mut left = size;
    while left > 0 {
        let n = left.min(MIB) as usize;
        for word in buf[..n].chunks_mut(8) {
            let bytes = splitmix64(&mut state).to_le_bytes();
            word.copy_from_slice(&bytes[..word.len()]);
        }
        hasher.update(&buf[..n]);
        file.write_all(&buf[..n])?;
        left -= n as u64;
    }
    file.sync_all()?;
    Ok(Blob {
        path: path.to_owned(),
        size,
        digest: format!("sha256:{}", hex::encode(hasher.finalize())),
    })
}

/// Copies `blob` to a new file in `dir` through a 1 MiB buffer, then fsyncs
/// it once: how fast this disk takes a durable 256 MiB file written the
/// simple way (a server that starts write-back while receiving can beat it).
/// Returns MB/s.
pub(crate) fn disk_ceiling(blob: &Blob, dir: &Path) -> Result<f64> {
    use std::io::Read as _;
    let dst = dir.join("disk-ceiling.bin");
    let start = Instant::now();
    let mut src = fs::File::open(&blob.path)?;
    let mut out = fs::File::create(&dst)?;
    let mut buf = vec![0u8; MIB as usize];
    loop {
        let n = src.read(&mut buf)?;
        if n == 0 {
            break;
        }
        out.write_all(&buf[..n])?;
    }
    out.sync_all()?;
    let elapsed = start.elapsed();
    drop(out);
    fs::remove_file(&dst)?;
    Ok(mb_per_s(blob.size, elapsed))
}

pub(crate) fn sha256_digest(bytes: &[u8]) -> String {
    format!("sha256:{}", hex::encode(Sha256::digest(bytes)))
}
