//! Packaging one platform build as a reproducible, compressed tar: entries
//! sorted by name, fixed mtime, uid, gid and modes, a gzip header without
//! time or name (or a zstd frame without content size). The same inputs
//! and the same [`Compression`] always give the same bytes, hence the same
//! digest, which is what makes a re-push a no-op.
//!
//! The archive is written into any [`Write`] (an upload, or a hasher for a
//! first pass): it is never held whole in memory nor written to a file.
//! Compression uses every core: gzip in blocks of [`GZIP_BLOCK`] deflated
//! independently and joined into one gzip member (pigz's `--independent`
//! format, via `gzp`), zstd with its own worker threads. Neither output
//! depends on the number of threads, so the digest is the same on any
//! machine.

use std::fmt;
use std::fs::File;
use std::io::{self, Write};
use std::path::PathBuf;

use rbee_schemas::media_types as mt;
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

/// How archives are compressed: the format and its level.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Compression {
    /// tar+gzip, level 0-9 (0 stores).
    Gzip(u32),
    /// tar+zstd, level 1-19.
    Zstd(i32),
}

impl Default for Compression {
    /// zstd level 3: on worker-like binaries it is smaller than gzip -6,
    /// several times cheaper to make and to unpack (the measurements are
    /// in `docs/benchmarks.md`, "Publishing speed and download size").
    fn default() -> Self {
        Compression::Zstd(ZSTD_DEFAULT_LEVEL)
    }
}

/// gzip's level when `--compression gzip` names none.
pub const GZIP_DEFAULT_LEVEL: u32 = 6;
/// zstd's level when `--compression zstd` names none.
pub const ZSTD_DEFAULT_LEVEL: i32 = 3;

impl Compression {
    /// Parses `gzip`, `zstd`, `gzip:LEVEL`, `zstd:LEVEL`, or a bare gzip
    /// level `0`-`9` (the form of earlier releases).
    pub fn parse(text: &str) -> Result<Self, String> {
        let (format, level) = match text.split_once(':') {
            Some((f, l)) => (f, Some(l)),
            None if text.bytes().all(|b| b.is_ascii_digit()) && !text.is_empty() => {
                ("gzip", Some(text))
            }
            None => (text, None),
        };
        let bad = || format!("`{text}`: expected gzip[:0-9] or zstd[:1-19]");
        match format {
            "gzip" => {
                let level =
                    level.map_or(Ok(GZIP_DEFAULT_LEVEL), |l| l.parse().map_err(|_| bad()))?;
                (level <= 9)
                    .then_some(Compression::Gzip(level))
                    .ok_or_else(bad)
            }
            "zstd" => {
                let level =
                    level.map_or(Ok(ZSTD_DEFAULT_LEVEL), |l| l.parse().map_err(|_| bad()))?;
                (1..=19)
                    .contains(&level)
                    .then_some(Compression::Zstd(level))
                    .ok_or_else(bad)
            }
            _ => Err(bad()),
        }
    }

    /// The layer's media type.
    pub fn media_type(self) -> &'static str {
        match self {
            Compression::Gzip(_) => mt::WORKER_LAYER,
            Compression::Zstd(_) => mt::WORKER_LAYER_ZSTD,
        }
    }

    /// The archive's file name extension, without the dot.
    pub fn extension(self) -> &'static str {
        match self {
            Compression::Gzip(_) => "tar.gz",
            Compression::Zstd(_) => "tar.zst",
        }
    }

    /// The same format at the level used for a build that does not
    /// compress: gzip stores it; zstd takes its fastest level.
    fn for_incompressible(self) -> Self {
        match self {
            Compression::Gzip(_) => Compression::Gzip(0),
            Compression::Zstd(_) => Compression::Zstd(1),
        }
    }
}

impl fmt::Display for Compression {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Compression::Gzip(level) => write!(f, "gzip:{level}"),
            Compression::Zstd(level) => write!(f, "zstd:{level}"),
        }
    }
}

/// What a finished archive is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Packed {
    /// `sha256:<hex>` of the archive: the checksum users verify.
    pub digest: String,
    /// Size in bytes.
    pub size: u64,
}

/// A writer that hashes and counts what passes through it on its way to
/// `inner`.
#[derive(Debug)]
pub struct Hashing<W> {
    inner: W,
    hasher: sha2::Sha256,
    written: u64,
}

impl<W: Write> Hashing<W> {
    /// Hashes what is written to `inner`.
    pub fn new(inner: W) -> Self {
        Hashing {
            inner,
            hasher: sha2::Sha256::new(),
            written: 0,
        }
    }

    /// The digest and size of everything written, and `inner`.
    pub fn finish(self) -> (Packed, W) {
        let packed = Packed {
            digest: format!("sha256:{}", hex::encode(self.hasher.finalize())),
            size: self.written,
        };
        (packed, self.inner)
    }
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

/// Whether the largest file entry shrinks by at least [`MIN_SAVING`] with
/// `compression`, judged on a sample from its middle. Archives of data
/// that does not compress are made with [`Compression::for_incompressible`],
/// which costs a fraction of the CPU for the same size. The choice depends
/// only on the content, so the archive stays reproducible.
fn compresses(entries: &[Entry], compression: Compression) -> io::Result<bool> {
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
    let packed = match compression {
        Compression::Gzip(level) => {
            let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::new(level));
            gz.write_all(&sample)?;
            gz.finish()?.len()
        }
        Compression::Zstd(level) => zstd::bulk::compress(&sample, level)?.len(),
    };
    Ok((packed as f64) < sample.len() as f64 * (1.0 - MIN_SAVING))
}

/// The input size of one gzip block. Part of the format: another size
/// gives other bytes. Larger blocks lose less to their independence
/// (each starts without the previous block's history).
const GZIP_BLOCK: usize = 1 << 20;

/// The compression threads of one archive: every core.
fn threads() -> usize {
    std::thread::available_parallelism().map_or(1, |n| n.get())
}

/// Writes `entries` as a compressed tar into `out`, streaming file
/// contents (never a whole build in memory); returns `out` once the
/// archive is complete. Blocking: call it from a blocking thread.
pub fn write<W: Write + Send>(
    mut entries: Vec<Entry>,
    compression: Compression,
    out: W,
) -> io::Result<W> {
    entries.sort_by(|a, b| a.name.cmp(&b.name));
    let compression = match compression {
        Compression::Gzip(0) => compression,
        c if compresses(&entries, c)? => c,
        c => c.for_incompressible(),
    };
    match compression {
        Compression::Gzip(level) => std::thread::scope(|scope| {
            let gz = gzp::par::compress::ParCompressBuilder::<gzp::deflate::Gzip>::new()
                .num_threads(threads())
                .map_err(io::Error::other)?
                .buffer_size(GZIP_BLOCK)
                .map_err(io::Error::other)?
                .compression_level(flate2::Compression::new(level))
                .from_borrowed_writer(out, scope);
            let gz = append_all(&entries, gz)?;
            finish_gzp(gz)
        }),
        Compression::Zstd(level) => {
            let zst = zstd_layer_writer(out, level)?;
            let zst = append_all(&entries, zst)?;
            zst.finish()
        }
    }
}

/// A zstd encoder writing the layer format into `out`: zstd's
/// multi-threaded frame format, with a checksum and no content size. The
/// delta step (`delta.rs`) recompresses tars through it to check that a
/// layer can be rebuilt byte for byte, and `rbee-worker` mirrors it.
pub fn zstd_layer_writer<W: Write>(
    out: W,
    level: i32,
) -> io::Result<zstd::stream::write::Encoder<'static, W>> {
    let mut zst = zstd::stream::write::Encoder::new(out, level)?;
    // Worker threads > 0 switch zstd to its multi-threaded format, whose
    // output is the same for any number of workers.
    zst.multithread(threads() as u32)?;
    zst.include_checksum(true)?;
    Ok(zst)
}

fn finish_gzp<W: Write + Send>(
    mut gz: gzp::par::compress::ParCompress<'_, gzp::deflate::Gzip, W>,
) -> io::Result<W> {
    use gzp::ZWriter;
    gz.finish().map_err(|e| match e {
        gzp::GzpError::Io(e) => e,
        other => io::Error::other(other),
    })
}

/// Appends every entry to a tar written into `out`; `out` once the tar's
/// end is written.
fn append_all<W: Write>(entries: &[Entry], out: W) -> io::Result<W> {
    let mut tar = tar::Builder::new(out);
    tar.mode(tar::HeaderMode::Deterministic);
    for entry in entries {
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
    tar.into_inner()
}

/// The digest and size of the archive of `entries`, without keeping it:
/// the first pass when the digest is needed before uploading.
pub fn digest(entries: Vec<Entry>, compression: Compression) -> io::Result<Packed> {
    let hashing = write(entries, compression, Hashing::new(io::sink()))?;
    Ok(hashing.finish().0)
}

#[cfg(test)]
mod tests {
    use std::io::Read;
    use std::path::Path;

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

    fn random(len: usize) -> Vec<u8> {
        let mut x = 0x9e37_79b9_7f4a_7c15_u64;
        (0..len)
            .map(|_| {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                x as u8
            })
            .collect()
    }

    fn archive(entries: Vec<Entry>, compression: Compression) -> (Packed, Vec<u8>) {
        let (packed, bytes) = write(entries, compression, Hashing::new(Vec::new()))
            .unwrap()
            .finish();
        (packed, bytes)
    }

    fn decompress(bytes: &[u8], compression: Compression) -> Vec<u8> {
        let mut out = Vec::new();
        match compression {
            Compression::Gzip(_) => flate2::read::GzDecoder::new(bytes)
                .read_to_end(&mut out)
                .unwrap(),
            Compression::Zstd(_) => zstd::stream::read::Decoder::new(bytes)
                .unwrap()
                .read_to_end(&mut out)
                .unwrap(),
        };
        out
    }

    #[test]
    fn incompressible_builds_are_stored_not_squeezed() {
        let dir = tempfile::tempdir().unwrap();
        let bin = dir.path().join("random");
        let data = random(6 << 20);
        std::fs::write(&bin, &data).unwrap();
        let entry = |name: &str| Entry {
            name: name.into(),
            source: EntrySource::File(bin.clone()),
            mode: 0o755,
        };
        for c in [Compression::Gzip(6), Compression::Zstd(3)] {
            assert!(!compresses(&[entry("w")], c).unwrap(), "{c}");
            let pkg = digest(vec![entry("w")], c).unwrap();
            // The data plus headers, a few KiB more at most.
            assert!(
                pkg.size > data.len() as u64 && pkg.size < data.len() as u64 + 4096 + 1024,
                "{c}: {}",
                pkg.size
            );
        }
        let text = dir.path().join("text");
        std::fs::write(&text, "worker ".repeat(1 << 20)).unwrap();
        let e = Entry {
            name: "t".into(),
            source: EntrySource::File(text),
            mode: 0o644,
        };
        assert!(compresses(std::slice::from_ref(&e), Compression::Gzip(6)).unwrap());
        assert!(compresses(&[e], Compression::Zstd(3)).unwrap());
    }

    #[test]
    fn same_input_same_digest_and_sorted_entries() {
        for c in [Compression::Gzip(6), Compression::Zstd(3)] {
            let dir = tempfile::tempdir().unwrap();
            let (a, bytes) = archive(entries(dir.path()), c);
            // A later mtime on the source must not matter.
            let later = std::time::SystemTime::now() + std::time::Duration::from_secs(3600);
            File::options()
                .write(true)
                .open(dir.path().join("worker"))
                .unwrap()
                .set_modified(later)
                .unwrap();
            let b = digest(entries(dir.path()), c).unwrap();
            assert_eq!(a, b, "{c}");
            assert_eq!(a.size, bytes.len() as u64);
            assert_eq!(
                a.digest,
                format!("sha256:{}", hex::encode(sha2::Sha256::digest(&bytes)))
            );
            let tar = decompress(&bytes, c);
            let mut archive = tar::Archive::new(tar.as_slice());
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
                ],
                "{c}"
            );
        }
    }

    /// A build large enough for many gzip blocks and zstd jobs round-trips,
    /// and its archive is one gzip member (older readers stop after the
    /// first) and the same bytes whatever the number of threads.
    #[test]
    fn parallel_archives_round_trip_and_do_not_depend_on_threads() {
        let dir = tempfile::tempdir().unwrap();
        let bin = dir.path().join("worker");
        // Half text, half random: compressible, several MiB.
        let mut data = "symbol_name_".repeat(300_000).into_bytes();
        data.extend(random(3 << 20));
        std::fs::write(&bin, &data).unwrap();
        let entry = || {
            vec![Entry {
                name: "worker".into(),
                source: EntrySource::File(bin.clone()),
                mode: 0o755,
            }]
        };
        for c in [Compression::Gzip(6), Compression::Zstd(3)] {
            let (packed, bytes) = archive(entry(), c);
            assert!(packed.size < data.len() as u64, "{c} compresses");
            let tar = decompress(&bytes, c);
            let mut archive = tar::Archive::new(tar.as_slice());
            let mut e = archive.entries().unwrap().next().unwrap().unwrap();
            let mut back = Vec::new();
            e.read_to_end(&mut back).unwrap();
            assert!(back == data, "{c}: the build comes back as it was");
            // One thread instead of all of them: the same bytes.
            let single = match c {
                Compression::Gzip(level) => std::thread::scope(|scope| {
                    let gz = gzp::par::compress::ParCompressBuilder::<gzp::deflate::Gzip>::new()
                        .num_threads(1)
                        .unwrap()
                        .buffer_size(GZIP_BLOCK)
                        .unwrap()
                        .compression_level(flate2::Compression::new(level))
                        .from_borrowed_writer(Vec::new(), scope);
                    finish_gzp(append_all(&entry(), gz).unwrap()).unwrap()
                }),
                Compression::Zstd(level) => {
                    let mut z = zstd::stream::write::Encoder::new(Vec::new(), level).unwrap();
                    z.multithread(1).unwrap();
                    z.include_checksum(true).unwrap();
                    append_all(&entry(), z).unwrap().finish().unwrap()
                }
            };
            assert!(single == bytes, "{c}: output depends on the thread count");
        }
        // One member: a single-member reader sees the whole tar.
        let (_, gz) = archive(entry(), Compression::Gzip(6));
        let mut one = flate2::read::GzDecoder::new(gz.as_slice());
        let mut all = Vec::new();
        one.read_to_end(&mut all).unwrap();
        assert!(all.len() > data.len());
    }

    #[test]
    fn compression_flag_forms() {
        assert_eq!(Compression::parse("zstd"), Ok(Compression::Zstd(3)));
        assert_eq!(Compression::parse("zstd:19"), Ok(Compression::Zstd(19)));
        assert_eq!(Compression::parse("gzip"), Ok(Compression::Gzip(6)));
        assert_eq!(Compression::parse("gzip:1"), Ok(Compression::Gzip(1)));
        assert_eq!(Compression::parse("0"), Ok(Compression::Gzip(0)));
        for bad in ["", "zstd:0", "zstd:20", "gzip:10", "10", "xz", "gzip:"] {
            assert!(Compression::parse(bad).is_err(), "{bad}");
        }
        assert_eq!(Compression::Zstd(3).to_string(), "zstd:3");
    }
}
