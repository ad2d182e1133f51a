//! Upgrading an installed worker to its latest version, with a delta when
//! one is published from the installed build and that build's archive is
//! still in the cache (`cache.rs`).
//!
//! A delta (`rbee_schemas::delta`) is a zstd frame whose reference prefix
//! is the installed archive's unpacked tar: decoded, it gives the new tar,
//! which compressed again as the answer says gives the new archive. That
//! file's sha256 must be the archive's published checksum before it goes
//! on: it then takes the same one way into the destination as a download
//! (`Installer::put_in_place`), so a delta can install nothing but the
//! bytes the publisher published. Anything that goes wrong on the way (no
//! cached archive, a delta from another build or for another platform, a
//! corrupt delta, a result that does not hash right, a memory budget
//! exceeded) falls back to downloading the whole archive.

use std::io::{self, Read, Write};
use std::path::{Path, PathBuf};

use rbee_schemas::delta::{Recompress, WINDOW_LOG_MAX};
use sha2::Digest as _;

use crate::api::{DownloadInfo, check_download, worker_id};
use crate::cache;
use crate::checked::{Sha256Digest, WorkerId, parse_version};
use crate::download::{self, Expected, Progress};
use crate::error::ClientError;
use crate::install::{Installer, Outcome};
use crate::layout::Dest;
use crate::records::Records;

/// The memory a delta may take to apply: the installed archive's
/// unpacked tar (zstd's reference prefix is one buffer) plus the delta's
/// window. Over it, the upgrade downloads the whole archive.
pub const DEFAULT_MAX_DELTA_MEMORY: u64 = 3 << 30;

/// What `upgrade` did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Upgrade {
    /// The version installed before.
    pub from_version: String,
    /// The install's outcome (`AlreadyInstalled` when it was the latest).
    pub outcome: Outcome,
    /// How the new archive came.
    pub via: Via,
}

/// How an upgrade got the new archive.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Via {
    /// Nothing was needed: the latest version was installed.
    Nothing,
    /// A delta of this many bytes, applied to the cached archive.
    Delta {
        /// Bytes of the delta.
        size: u64,
    },
    /// The whole archive, and why no delta was used.
    Full {
        /// Why (no delta published, no cached archive, a failed delta).
        reason: String,
    },
}

impl Installer {
    /// Upgrades `worker` (installed for this platform) to its latest
    /// version; see the module documentation for how.
    pub async fn upgrade(
        &self,
        worker: &str,
        progress: Progress<'_>,
    ) -> Result<Upgrade, ClientError> {
        let id = worker_id(worker)?;
        let installed = Records::read(self.dest_dir())?
            .workers
            .into_iter()
            .filter(|r| r.worker_id == id.as_str() && r.platform == self.platform().name())
            .filter_map(|r| parse_version(&r.version).ok().map(|v| (v, r)))
            .max_by(|a, b| a.0.cmp(&b.0))
            .ok_or_else(|| {
                ClientError::NotFound(format!(
                    "{id} is not installed for {}; install it first",
                    self.platform()
                ))
            })?;
        let (from_version, record) = installed;
        let from = Sha256Digest::parse(&record.digest).map_err(ClientError::Invalid)?;
        let version = self.resolve_latest(&id).await?;
        let dest = Dest::create(self.dest_dir())?;
        let has_cache = cache::cached(&dest, &id, &from).is_some();
        let info = self
            .catalog
            .download_info_from(
                id.as_str(),
                &version.to_string(),
                self.platform(),
                has_cache.then_some(&from),
            )
            .await?;
        let download = check_download(&info, self.catalog.base(), &id, &version, self.platform())?;
        if download.size > self.max_download {
            return Err(ClientError::TooLarge {
                size: download.size,
                max: self.max_download,
            });
        }
        let _lock = dest.lock_async().await?;
        if let Some(existing) = self.already_installed(&dest, &id, &version, &download.digest)? {
            return Ok(Upgrade {
                from_version: from_version.to_string(),
                outcome: Outcome::AlreadyInstalled(existing),
                via: Via::Nothing,
            });
        }
        let rebuilt = match (&info.delta, cache::cached(&dest, &id, &from)) {
            (None, _) if !has_cache => Err("the installed archive is not in the cache".to_owned()),
            (None, _) => Err("no delta from the installed build is published".to_owned()),
            (Some(_), None) => Err("the installed archive is not in the cache".to_owned()),
            (Some(_), Some(cached)) => self
                .apply_delta(
                    &dest,
                    &info,
                    &from,
                    &download.digest,
                    download.size,
                    &cached,
                    progress,
                )
                .await
                .map_err(|e| format!("the delta failed ({e}); downloading the whole archive")),
        };
        let (file, via) = match rebuilt {
            Ok((file, size)) => (file, Via::Delta { size }),
            Err(reason) => {
                tracing::info!(worker = %id, %reason, "upgrading with the whole archive");
                let file = self.fetch_archive(&dest, &download, progress).await?;
                (file.path, Via::Full { reason })
            }
        };
        let outcome = self
            .put_in_place(
                &dest,
                &id,
                &download.version,
                &download.digest,
                &file,
                // The rebuilt archive is checked like a downloaded one: a
                // delta can never install what the publisher did not sign.
                info.signature.as_ref(),
            )
            .await?;
        Ok(Upgrade {
            from_version: from_version.to_string(),
            outcome,
            via,
        })
    }

    async fn resolve_latest(&self, id: &WorkerId) -> Result<semver::Version, ClientError> {
        let versions = self.catalog.versions(id.as_str()).await?;
        let latest = versions
            .latest
            .ok_or_else(|| ClientError::NoMatchingVersion {
                worker: id.to_string(),
                requirement: "latest".into(),
                published: versions
                    .versions
                    .iter()
                    .map(|v| v.version.clone())
                    .collect(),
            })?;
        parse_version(&latest).map_err(ClientError::catalog)
    }

    /// Downloads the delta of `info`, applies it to the cached archive
    /// `cached` (whose digest must be `from`) and leaves the result,
    /// verified to be `target` of `size` bytes, where a download of it
    /// would be. The caller holds the destination's lock. Returns the
    /// file and the delta's size.
    #[expect(clippy::too_many_arguments, reason = "one step's whole context")]
    async fn apply_delta(
        &self,
        dest: &Dest,
        info: &DownloadInfo,
        from: &Sha256Digest,
        target: &Sha256Digest,
        size: u64,
        cached: &Path,
        progress: Progress<'_>,
    ) -> Result<(PathBuf, u64), ClientError> {
        let bad = ClientError::catalog;
        let Some(delta) = &info.delta else {
            return Err(bad("no delta".to_owned()));
        };
        if delta.from != from.as_str() {
            return Err(bad(format!(
                "the delta starts from {}, not from the installed {from}",
                delta.from.escape_debug()
            )));
        }
        let digest = Sha256Digest::parse(&delta.digest).map_err(bad)?;
        let recompress = Recompress::parse(&delta.recompress).map_err(|e| bad(e.to_string()))?;
        if delta.window_log > WINDOW_LOG_MAX {
            return Err(bad(format!("a window of 2^{} bytes", delta.window_log)));
        }
        if delta.size >= size {
            return Err(bad("the delta is not smaller than the archive".to_owned()));
        }
        let url = self
            .catalog
            .base()
            .join(&delta.url)
            .map_err(|e| bad(format!("bad delta url: {e}")))?;
        if !matches!(url.scheme(), "http" | "https") {
            return Err(bad(format!("delta url `{url}` is not http(s)")));
        }
        let expected = Expected {
            digest: &digest,
            size: delta.size,
            max_size: self.max_download,
            timeouts: self.catalog.timeouts(),
        };
        let fetched = download::fetch(
            |offset| download::open_http(&self.catalog, url, offset),
            expected,
            &dest.downloads(),
            progress,
        )
        .await?;
        let out = dest.downloads().join(format!("sha256-{}", target.hex()));
        let job = Rebuild {
            cached: cached.to_owned(),
            from: from.clone(),
            delta: fetched.path.clone(),
            window_log: delta.window_log,
            recompress,
            target: target.clone(),
            size,
            out: out.clone(),
            max_memory: self.max_delta_memory,
        };
        let rebuilt = tokio::task::spawn_blocking(move || job.run())
            .await
            .map_err(|e| ClientError::Io(io::Error::other(e)))?;
        let _ = std::fs::remove_file(&fetched.path);
        rebuilt?;
        Ok((out, delta.size))
    }
}

/// Rebuilding an archive from the cached one and a delta, on a blocking
/// thread.
struct Rebuild {
    cached: PathBuf,
    from: Sha256Digest,
    delta: PathBuf,
    window_log: u32,
    recompress: Recompress,
    target: Sha256Digest,
    size: u64,
    out: PathBuf,
    max_memory: u64,
}

impl Rebuild {
    fn run(self) -> Result<(), ClientError> {
        // The cached file is checked again: a delta applied to other
        // bytes would fail anyway, later and more expensively.
        let actual = sha256_file(&self.cached)?;
        if actual != self.from.as_str() {
            return Err(ClientError::Checksum {
                expected: self.from.to_string(),
                actual,
            });
        }
        let window = 1u64 << self.window_log;
        let budget = self.max_memory.saturating_sub(window);
        let mut reference = Vec::new();
        zstd::stream::read::Decoder::new(std::fs::File::open(&self.cached)?)?
            .take(budget.saturating_add(1))
            .read_to_end(&mut reference)?;
        if reference.len() as u64 > budget {
            return Err(ClientError::TooLarge {
                size: reference.len() as u64 + window,
                max: self.max_memory,
            });
        }
        let partial = self.out.with_extension("rebuild");
        let written = self.decode_into(&reference, &partial);
        let actual = match written {
            Ok(actual) => actual,
            Err(e) => {
                let _ = std::fs::remove_file(&partial);
                return Err(e);
            }
        };
        if actual != self.target.as_str() {
            let _ = std::fs::remove_file(&partial);
            return Err(ClientError::Checksum {
                expected: self.target.to_string(),
                actual,
            });
        }
        std::fs::rename(&partial, &self.out)?;
        Ok(())
    }

    /// Decodes the delta against `reference` and compresses the result
    /// into `path` as the layer was; the sha256 of what was written. Never
    /// more than the archive's size is written.
    fn decode_into(&self, reference: &[u8], path: &Path) -> Result<String, ClientError> {
        let mut decoder = zstd::stream::read::Decoder::with_ref_prefix(
            io::BufReader::new(std::fs::File::open(&self.delta)?),
            reference,
        )?;
        decoder.window_log_max(self.window_log)?;
        let file = std::fs::File::create(path)?;
        let capped = Capped {
            inner: io::BufWriter::new(file),
            hasher: sha2::Sha256::new(),
            left: self.size,
        };
        let mut encoder = layer_encoder(capped, self.recompress.level)?;
        io::copy(&mut decoder, &mut encoder)?;
        let mut capped = encoder.finish()?;
        capped.inner.flush()?;
        capped.inner.get_ref().sync_all()?;
        Ok(format!("sha256:{}", hex::encode(capped.hasher.finalize())))
    }
}

/// The pusher's layer format (`rbee_pusher::package::zstd_layer_writer`):
/// zstd's multi-threaded frame format at `level`, with a checksum and no
/// content size; its output does not depend on the number of threads.
fn layer_encoder<W: Write>(
    out: W,
    level: i32,
) -> io::Result<zstd::stream::write::Encoder<'static, W>> {
    let threads = std::thread::available_parallelism().map_or(1, |n| n.get());
    let mut encoder = zstd::stream::write::Encoder::new(out, level)?;
    encoder.multithread(threads as u32)?;
    encoder.include_checksum(true)?;
    Ok(encoder)
}

/// A writer that hashes what passes and refuses more than `left` bytes.
struct Capped<W> {
    inner: W,
    hasher: sha2::Sha256,
    left: u64,
}

impl<W: Write> Write for Capped<W> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        if buf.len() as u64 > self.left {
            return Err(io::Error::other(
                "the rebuilt archive is larger than the published one",
            ));
        }
        let n = self.inner.write(buf)?;
        self.hasher.update(&buf[..n]);
        self.left -= n as u64;
        Ok(n)
    }

    fn flush(&mut self) -> io::Result<()> {
        self.inner.flush()
    }
}

fn sha256_file(path: &Path) -> io::Result<String> {
    let mut hasher = sha2::Sha256::new();
    let mut file = std::fs::File::open(path)?;
    let mut buf = vec![0u8; 1 << 20];
    loop {
        let n = file.read(&mut buf)?;
        if n == 0 {
            break;
        }
        hasher.update(&buf[..n]);
    }
    Ok(format!("sha256:{}", hex::encode(hasher.finalize())))
}
