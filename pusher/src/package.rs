//! Packaging one platform build as a reproducible tar.gz: entries sorted by
//! name, fixed mtime, uid, gid and modes, a gzip header without time or
//! name. The same inputs always give the same bytes, hence the same digest,
//! which is what makes a re-push a no-op.

use std::fs::File;
use std::io::{self, BufWriter, Write};
use std::path::{Path, PathBuf};

use flate2::{Compression, GzBuilder};
use sha2::Digest as _;

/// One file to put in the archive.
#[derive(Debug, Clone)]
pub struct Entry {
    /// Name inside the archive.
    pub name: String,
    /// Where its bytes come from.
    pub source: EntrySource,
    /// Unix mode (0o755 for the binary, 0o644 for the rest).
    pub mode: u32,
}

/// The bytes of an entry.
#[derive(Debug, Clone)]
pub enum EntrySource {
    /// A file on disk, streamed.
    File(PathBuf),
    /// Small generated content (metadata.json).
    Bytes(Vec<u8>),
}

/// A finished archive.
#[derive(Debug, Clone)]
pub struct Package {
    /// Where the archive was written.
    pub path: PathBuf,
    /// `sha256:<hex>` of the archive: the checksum users verify.
    pub digest: String,
    /// Size in bytes.
    pub size: u64,
}

/// A writer that hashes and counts what passes through it.
struct Hashing<W> {
    inner: W,
    hasher: sha2::Sha256,
    written: u64,
}

impl<W: Write> Write for Hashing<W> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let n = self.inner.write(buf)?;
        self.hasher.update(&buf[..n]);
        self.written += n as u64;
        Ok(n)
    }

    fn flush(&mut self) -> io::Result<()> {
        self.inner.flush()
    }
}

/// How much of the largest file is test-compressed, and the saving below
/// which compressing is not worth its CPU (already compressed payloads).
const SAMPLE: u64 = 4 << 20;
const MIN_SAVING: f64 = 0.05;

/// Whether the largest file entry shrinks by at least [`MIN_SAVING`] at
/// `level`, judged on a sample from its middle. Archives of data that
/// does not compress are stored with gzip level 0, which costs a fraction
/// of the CPU for the same size. The choice depends only on the content,
/// so the archive stays reproducible.
fn compresses(entries: &[Entry], level: u32) -> io::Result<bool> {
    use std::io::{Read, Seek};
    let largest = entries
        .iter()
        .filter_map(|e| match &e.source {
            EntrySource::File(p) => std::fs::metadata(p).ok().map(|m| (m.len(), p)),
            EntrySource::Bytes(_) => None,
        })
        .max_by_key(|(len, _)| *len);
    let Some((len, path)) = largest else {
        return Ok(true);
    };
    if len < SAMPLE {
        return Ok(true);
    }
    let mut f = File::open(path)?;
    f.seek(io::SeekFrom::Start((len - SAMPLE) / 2))?;
    let mut sample = Vec::with_capacity(SAMPLE as usize);
    f.take(SAMPLE).read_to_end(&mut sample)?;
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), Compression::new(level));
    gz.write_all(&sample)?;
    let packed = gz.finish()?.len() as f64;
    Ok(packed < sample.len() as f64 * (1.0 - MIN_SAVING))
}

/// Writes `entries` as a tar.gz at `out`, streaming file contents (never a
/// whole build in memory) and hashing the output as it is written.
/// Blocking: call it from a blocking thread.
pub fn build(mut entries: Vec<Entry>, out: &Path, level: u32) -> io::Result<Package> {
    entries.sort_by(|a, b| a.name.cmp(&b.name));
    let level = if level > 0 && !compresses(&entries, level)? {
        0
    } else {
        level
    };
    let file = File::create(out)?;
    let hashing = Hashing {
        inner: BufWriter::with_capacity(1 << 20, file),
        hasher: sha2::Sha256::new(),
        written: 0,
    };
    let gz = GzBuilder::new()
        .mtime(0)
        .operating_system(255)
        .write(hashing, Compression::new(level));
    let mut tar = tar::Builder::new(gz);
    tar.mode(tar::HeaderMode::Deterministic);
    for entry in &entries {
        let mut header = tar::Header::new_ustar();
        header.set_mode(entry.mode);
        header.set_mtime(0);
        header.set_uid(0);
        header.set_gid(0);
        header.set_entry_type(tar::EntryType::Regular);
        match &entry.source {
            EntrySource::File(path) => {
                let f = File::open(path)
                    .map_err(|e| io::Error::new(e.kind(), format!("{}: {e}", path.display())))?;
                header.set_size(f.metadata()?.len());
                // tar copies through an 8 KiB buffer by default; a 1 MiB
                // reader means 128 times fewer reads of a large build.
                tar.append_data(
                    &mut header,
                    &entry.name,
                    io::BufReader::with_capacity(1 << 20, f),
                )?;
            }
            EntrySource::Bytes(bytes) => {
                header.set_size(bytes.len() as u64);
                tar.append_data(&mut header, &entry.name, bytes.as_slice())?;
            }
        }
    }
    let gz = tar.into_inner()?;
    let mut hashing = gz.finish()?;
    hashing.flush()?;
    hashing
        .inner
        .into_inner()
        .map_err(|e| e.into_error())?
        .sync_all()?;
    Ok(Package {
        path: out.to_owned(),
        digest: format!("sha256:{}", hex::encode(hashing.hasher.finalize())),
        size: hashing.written,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entries(dir: &Path) -> Vec<Entry> {
        let bin = dir.join("worker");
        std::fs::write(&bin, b"#!/bin/sh\necho hi\n").unwrap();
        vec![
            Entry {
                name: "metadata.json".into(),
                source: EntrySource::Bytes(b"{}".to_vec()),
                mode: 0o644,
            },
            Entry {
                name: "worker".into(),
                source: EntrySource::File(bin),
                mode: 0o755,
            },
            Entry {
                name: "LICENSE".into(),
                source: EntrySource::Bytes(b"MIT".to_vec()),
                mode: 0o644,
            },
        ]
    }

    #[test]
    fn incompressible_builds_are_stored_not_squeezed() {
        let dir = tempfile::tempdir().unwrap();
        let bin = dir.path().join("random");
        let mut x = 0x9e37_79b9_7f4a_7c15_u64;
        let data: Vec<u8> = (0..(6 << 20))
            .map(|_| {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                x as u8
            })
            .collect();
        std::fs::write(&bin, &data).unwrap();
        let entry = |name: &str| Entry {
            name: name.into(),
            source: EntrySource::File(bin.clone()),
            mode: 0o755,
        };
        assert!(!compresses(&[entry("w")], 6).unwrap());
        let pkg = build(vec![entry("w")], &dir.path().join("a.tar.gz"), 6).unwrap();
        // Stored: the archive is the data plus headers, a few hundred bytes more.
        assert!(
            pkg.size > data.len() as u64 && pkg.size < data.len() as u64 + 4096,
            "{}",
            pkg.size
        );
        let text = dir.path().join("text");
        std::fs::write(&text, "worker ".repeat(1 << 20)).unwrap();
        let e = Entry {
            name: "t".into(),
            source: EntrySource::File(text),
            mode: 0o644,
        };
        assert!(compresses(&[e], 6).unwrap());
    }

    #[test]
    fn same_input_same_digest_and_sorted_entries() {
        let dir = tempfile::tempdir().unwrap();
        let a = build(entries(dir.path()), &dir.path().join("a.tar.gz"), 6).unwrap();
        // A later mtime on the source must not matter.
        std::thread::sleep(std::time::Duration::from_millis(1100));
        let b = build(entries(dir.path()), &dir.path().join("b.tar.gz"), 6).unwrap();
        assert_eq!(a.digest, b.digest);
        assert_eq!(a.size, std::fs::metadata(&a.path).unwrap().len());
        let bytes = std::fs::read(&a.path).unwrap();
        assert_eq!(
            a.digest,
            format!("sha256:{}", hex::encode(sha2::Sha256::digest(&bytes)))
        );

        let mut archive = tar::Archive::new(flate2::read::GzDecoder::new(bytes.as_slice()));
        let names: Vec<(String, u32, u64)> = archive
            .entries()
            .unwrap()
            .map(|e| {
                let e = e.unwrap();
                (
                    e.path().unwrap().display().to_string(),
                    e.header().mode().unwrap(),
                    e.header().mtime().unwrap(),
                )
            })
            .collect();
        assert_eq!(
            names,
            [
                ("LICENSE".into(), 0o644, 0),
                ("metadata.json".into(), 0o644, 0),
                ("worker".into(), 0o755, 0)
            ]
        );
    }
}
