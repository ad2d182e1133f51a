//! Deltas for upgrades (`--deltas K`): once a version is tagged, for each
//! of its platforms and each of the K highest earlier versions, a zstd
//! frame that rebuilds the new archive's tar from the old one's
//! (`rbee_schemas::delta`), attached as a referrer of the new release's
//! index (referrers API, or the fallback tag on registries without it).
//!
//! It reads only the registry, never the build files, so `push` and the
//! staged `release` (whose job has no builds) run the same code after
//! the version tag is written. Nothing here can fail a release: a delta
//! that cannot be made is reported and left out, and a rerun makes only
//! the ones still missing.
//!
//! Why a delta over the unpacked tar and recompression, not over the
//! compressed bytes: `docs/artifact-format.md`, "Deltas". Before a delta
//! is published the pusher recompresses the new tar and checks that the
//! result is the layer, byte for byte; the level that reproduces it is
//! recorded for the client, which checks the same sha256.

use std::collections::HashSet;
use std::io::{self, Read, Write};
use std::path::Path;
use std::time::Duration;

use bytes::Bytes;
use futures_util::StreamExt as _;
use rbee_schemas::Platform;
use rbee_schemas::delta::{self as deltas, DELTA_ARTIFACT_TYPE, DeltaInfo, Recompress};
use rbee_schemas::media_types as mt;
use rbee_schemas::oci::{self as documents, Descriptor, ImageIndex, ImageManifest};
use serde::Serialize;
use sha2::Digest as _;

use crate::client::RegistryClient;
use crate::error::PushError;
use crate::package::{self, Hashing, ZSTD_DEFAULT_LEVEL};
use crate::progress::Reporter;
use crate::publish::semver_tags;
use crate::referrers;

/// Deltas made by default: from each of the two highest earlier versions.
pub const DEFAULT_DELTAS: usize = 2;
/// The largest unpacked tar a delta is made for (old or new). Both are
/// held in memory while the delta is computed (zstd's reference prefix is
/// one buffer), and the client needs as much to apply it.
pub const DEFAULT_MAX_UNPACKED: u64 = 1 << 30;
/// zstd level of the delta itself, with long-distance matching, for new
/// tars up to [`HIGH_LEVEL_MAX`]; larger ones get [`DELTA_LEVEL_LARGE`].
/// On a 265 MB pair level 19 took 375 s against 23 s for level 9, for a
/// delta 21% smaller (`docs/benchmarks.md`, "Delta upgrades").
pub const DELTA_LEVEL: i32 = 19;
/// zstd level of deltas of tars over [`HIGH_LEVEL_MAX`].
pub const DELTA_LEVEL_LARGE: i32 = 9;
/// The largest new tar whose delta is made at [`DELTA_LEVEL`].
pub const HIGH_LEVEL_MAX: u64 = 32 << 20;

/// The zstd level of a delta whose new tar is `len` bytes.
pub fn delta_level(len: u64) -> i32 {
    if len <= HIGH_LEVEL_MAX {
        DELTA_LEVEL
    } else {
        DELTA_LEVEL_LARGE
    }
}
/// A delta at least this fraction of the full layer is not published.
const MAX_FRACTION: f64 = 0.5;
/// Silence after which reading a layer from the registry fails.
const READ_IDLE: Duration = Duration::from_secs(60);

/// How deltas are made.
#[derive(Debug, Clone)]
pub struct DeltaOptions {
    /// From how many earlier versions (0: none).
    pub count: usize,
    /// The largest unpacked tar, old or new.
    pub max_unpacked: u64,
    /// The zstd level the layers were probably made with (`--compression`
    /// of `push`); tried first when reproducing a layer.
    pub level_hint: Option<i32>,
}

impl Default for DeltaOptions {
    fn default() -> Self {
        DeltaOptions {
            count: DEFAULT_DELTAS,
            max_unpacked: DEFAULT_MAX_UNPACKED,
            level_hint: None,
        }
    }
}

/// One delta considered, printed by `--json`.
#[derive(Debug, Clone, Serialize)]
pub struct DeltaSummary {
    /// The platform.
    pub platform: String,
    /// The earlier version it starts from.
    pub from_version: String,
    /// `attached`, `present` (attached before), or `skipped`.
    pub status: &'static str,
    /// Why it was skipped.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    /// Size of the delta.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub size: Option<u64>,
    /// Size of the full layer.
    pub full_size: u64,
}

/// One platform build as the registry holds it.
#[derive(Debug, Clone)]
struct Layer {
    descriptor: Descriptor,
}

/// Makes and attaches the missing deltas of `repo`'s `version` (already
/// tagged). Errors reading the new release itself are returned; a delta
/// that cannot be made is reported and skipped.
pub async fn attach_deltas(
    client: &RegistryClient,
    repo: &str,
    version: &semver::Version,
    opts: &DeltaOptions,
    reporter: &Reporter,
) -> Result<Vec<DeltaSummary>, PushError> {
    let mut summaries = Vec::new();
    if opts.count == 0 {
        return Ok(summaries);
    }
    let Some((index, subject)) = read_index(client, repo, &version.to_string()).await? else {
        return Err(PushError::Registry(format!(
            "{repo}:{version} is not tagged"
        )));
    };
    let mut earlier: Vec<semver::Version> = semver_tags(client, repo)
        .await?
        .into_iter()
        .filter(|v| v < version)
        .collect();
    earlier.sort_by(|a, b| b.cmp(a));
    earlier.truncate(opts.count);
    if earlier.is_empty() {
        return Ok(summaries);
    }
    let present = attached(client, repo, &subject.digest).await?;
    let mut old_indexes = Vec::new();
    for v in &earlier {
        if let Some((old, _)) = read_index(client, repo, &v.to_string()).await? {
            old_indexes.push((v.clone(), old));
        }
    }
    let work = tempfile::tempdir()?;
    for (platform, entry) in index.platform_builds() {
        let new = layer_of(client, repo, &entry.digest).await?;
        let mut new_tar: Option<(std::path::PathBuf, Recompress)> = None;
        for (v, old_index) in &old_indexes {
            let mut summary = DeltaSummary {
                platform: platform.to_string(),
                from_version: v.to_string(),
                status: "skipped",
                reason: None,
                size: None,
                full_size: new.descriptor.size,
            };
            let result = one_delta(
                client,
                repo,
                platform,
                &new,
                old_index,
                &subject,
                &present,
                &mut new_tar,
                work.path(),
                opts,
            )
            .await;
            match result {
                Ok(Made::Attached(size)) => {
                    summary.status = "attached";
                    summary.size = Some(size);
                    reporter.line(&format!(
                        "  delta {platform} from {v}: {size} bytes ({:.1}% of {})",
                        size as f64 * 100.0 / new.descriptor.size.max(1) as f64,
                        new.descriptor.size
                    ));
                }
                Ok(Made::Present) => summary.status = "present",
                Ok(Made::Skipped(why)) => {
                    reporter.line(&format!("  no delta {platform} from {v}: {why}"));
                    summary.reason = Some(why);
                }
                Err(e) => {
                    reporter.line(&format!("  no delta {platform} from {v}: {e}"));
                    summary.reason = Some(e.to_string());
                }
            }
            summaries.push(summary);
        }
    }
    Ok(summaries)
}

/// What became of one delta.
enum Made {
    Attached(u64),
    Present,
    Skipped(String),
}

#[expect(clippy::too_many_arguments, reason = "one step's whole context")]
async fn one_delta(
    client: &RegistryClient,
    repo: &str,
    platform: Platform,
    new: &Layer,
    old_index: &ImageIndex,
    subject: &Descriptor,
    present: &HashSet<(String, String)>,
    new_tar: &mut Option<(std::path::PathBuf, Recompress)>,
    work: &Path,
    opts: &DeltaOptions,
) -> Result<Made, PushError> {
    if new.descriptor.media_type != mt::WORKER_LAYER_ZSTD {
        return Ok(Made::Skipped("only tar+zstd layers get deltas".into()));
    }
    let Some(entry) = old_index.find_platform(platform) else {
        return Ok(Made::Skipped(
            "the earlier version has no such build".into(),
        ));
    };
    let old = layer_of(client, repo, &entry.digest).await?;
    if old.descriptor.media_type != mt::WORKER_LAYER_ZSTD {
        return Ok(Made::Skipped("the earlier build is not tar+zstd".into()));
    }
    if old.descriptor.digest == new.descriptor.digest {
        return Ok(Made::Skipped("the same build".into()));
    }
    let pair = (old.descriptor.digest.clone(), new.descriptor.digest.clone());
    if present.contains(&pair) {
        return Ok(Made::Present);
    }
    for layer in [&old, new] {
        if layer.descriptor.size > opts.max_unpacked {
            return Ok(Made::Skipped(format!(
                "layer of {} bytes, over the {} byte cap",
                layer.descriptor.size, opts.max_unpacked
            )));
        }
    }
    if new_tar.is_none() {
        let layer_file = work.join(format!("new-{}", platform));
        fetch_blob(client, repo, &new.descriptor, &layer_file).await?;
        let tar_file = work.join(format!("new-{}.tar", platform));
        let (max, hint, target) = (
            opts.max_unpacked,
            opts.level_hint,
            new.descriptor.digest.clone(),
        );
        let (layer_c, tar_c) = (layer_file.clone(), tar_file.clone());
        let level = blocking(move || {
            unpack_to_file(&layer_c, &tar_c, max)?;
            reproducing_level(&tar_c, &target, hint)
        })
        .await?;
        let _ = std::fs::remove_file(&layer_file);
        match level {
            Some(level) => *new_tar = Some((tar_file, level)),
            None => {
                return Ok(Made::Skipped(
                    "recompressing the tar does not reproduce the layer (made with another \
                     level or zstd version)"
                        .into(),
                ));
            }
        }
    }
    let Some((tar_file, recompress)) = new_tar.clone() else {
        return Ok(Made::Skipped("no tar".into()));
    };
    let old_file = work.join("old");
    fetch_blob(client, repo, &old.descriptor, &old_file).await?;
    let delta_file = work.join("delta");
    let (old_c, delta_c, max) = (old_file.clone(), delta_file.clone(), opts.max_unpacked);
    let made = blocking(move || encode(&old_c, &tar_file, &delta_c, max)).await;
    let _ = std::fs::remove_file(&old_file);
    let (packed, window_log) = made?;
    if packed.size as f64 >= new.descriptor.size as f64 * MAX_FRACTION {
        let _ = std::fs::remove_file(&delta_file);
        return Ok(Made::Skipped(format!(
            "{} bytes, not under half the layer's {}",
            packed.size, new.descriptor.size
        )));
    }
    let info = DeltaInfo {
        platform,
        source: old.descriptor.digest.clone(),
        target: new.descriptor.digest.clone(),
        recompress,
        window_log,
        encoder: format!("libzstd {}", zstd::zstd_safe::version_string()),
        blob: documents::Descriptor {
            media_type: deltas::DELTA_LAYER.into(),
            digest: packed.digest.clone(),
            size: packed.size,
            platform: None,
            artifact_type: None,
            annotations: None,
        },
    };
    if !client.blob_exists(repo, &packed.digest).await? {
        client
            .upload_file(
                repo,
                &delta_file,
                &packed.digest,
                packed.size,
                std::sync::Arc::new(|_: u64| {}),
            )
            .await?;
    }
    let _ = std::fs::remove_file(&delta_file);
    let artifact = info.artifact(subject);
    client
        .ensure_small_blob(repo, Bytes::from(artifact.config.clone()))
        .await?;
    let put = client
        .put_manifest(
            repo,
            &artifact.descriptor.digest,
            mt::OCI_MANIFEST,
            Bytes::from(artifact.manifest.clone()),
        )
        .await?;
    if !put.subject_indexed {
        referrers::add_to_fallback(client, repo, &subject.digest, &artifact.descriptor).await?;
    }
    Ok(Made::Attached(packed.size))
}

/// The image index tagged `tag`, and its descriptor; `None` when the tag
/// does not exist.
async fn read_index(
    client: &RegistryClient,
    repo: &str,
    tag: &str,
) -> Result<Option<(ImageIndex, Descriptor)>, PushError> {
    let Some(found) = client.get_manifest(repo, tag, false).await? else {
        return Ok(None);
    };
    let index: ImageIndex = serde_json::from_slice(&found.bytes)
        .map_err(|e| PushError::Registry(format!("{repo}:{tag} is not an image index: {e}")))?;
    Ok(Some((
        index,
        documents::describe(mt::OCI_INDEX, &found.bytes),
    )))
}

/// The worker layer of the platform manifest `digest`.
async fn layer_of(client: &RegistryClient, repo: &str, digest: &str) -> Result<Layer, PushError> {
    let found = client
        .get_manifest(repo, digest, false)
        .await?
        .ok_or_else(|| PushError::Registry(format!("{repo}@{digest} is missing")))?;
    let manifest: ImageManifest = serde_json::from_slice(&found.bytes)
        .map_err(|e| PushError::Registry(format!("{repo}@{digest}: {e}")))?;
    let descriptor = manifest
        .layers
        .into_iter()
        .find(|l| mt::is_worker_layer(&l.media_type))
        .ok_or_else(|| PushError::Registry(format!("{repo}@{digest} has no worker layer")))?;
    if !deltas::is_sha256_digest(&descriptor.digest) {
        return Err(PushError::Registry(format!(
            "{repo}@{digest}: the layer digest is not sha256"
        )));
    }
    Ok(Layer { descriptor })
}

/// `(source, target)` of the deltas attached to `subject` already.
async fn attached(
    client: &RegistryClient,
    repo: &str,
    subject: &str,
) -> Result<HashSet<(String, String)>, PushError> {
    let listed = referrers::listed(client, repo, subject, DELTA_ARTIFACT_TYPE).await?;
    Ok(listed
        .iter()
        .filter_map(|d| {
            let a = d.annotations.as_ref()?;
            Some((
                a.get(deltas::ANNOTATION_SOURCE)?.clone(),
                a.get(deltas::ANNOTATION_TARGET)?.clone(),
            ))
        })
        .collect())
}

/// Streams blob `layer` of `repo` into `path`, checking its size and
/// sha256; never more than its size is written.
async fn fetch_blob(
    client: &RegistryClient,
    repo: &str,
    layer: &Descriptor,
    path: &Path,
) -> Result<(), PushError> {
    use tokio::io::AsyncWriteExt as _;
    let resp = client
        .request(
            repo,
            reqwest::Method::GET,
            &format!("/v2/{repo}/blobs/{}", layer.digest),
        )
        .await?;
    if !resp.status().is_success() {
        return Err(PushError::Registry(format!(
            "reading {repo}@{}: {}",
            layer.digest,
            resp.status()
        )));
    }
    let mut file = tokio::fs::File::create(path).await?;
    let mut hasher = sha2::Sha256::new();
    let mut got = 0u64;
    let mut body = resp.bytes_stream();
    loop {
        let chunk = tokio::time::timeout(READ_IDLE, body.next())
            .await
            .map_err(|_| PushError::Registry(format!("reading {}: timed out", layer.digest)))?;
        let Some(chunk) = chunk else { break };
        let chunk = chunk.map_err(|e| PushError::Registry(format!("reading a layer: {e}")))?;
        got += chunk.len() as u64;
        if got > layer.size {
            return Err(PushError::Registry(format!(
                "{} is larger than its {} bytes",
                layer.digest, layer.size
            )));
        }
        hasher.update(&chunk);
        file.write_all(&chunk).await?;
    }
    file.flush().await?;
    let digest = format!("sha256:{}", hex::encode(hasher.finalize()));
    if got != layer.size || digest != layer.digest {
        return Err(PushError::Registry(format!(
            "{repo}@{}: the registry sent other bytes",
            layer.digest
        )));
    }
    Ok(())
}

async fn blocking<T: Send + 'static>(
    f: impl FnOnce() -> io::Result<T> + Send + 'static,
) -> Result<T, PushError> {
    tokio::task::spawn_blocking(f)
        .await
        .map_err(|e| PushError::Io(io::Error::other(e)))?
        .map_err(PushError::Io)
}

/// Unpacks the zstd layer at `layer` into `tar`, refusing more than `max`
/// bytes.
fn unpack_to_file(layer: &Path, tar: &Path, max: u64) -> io::Result<u64> {
    let decoder = zstd::stream::read::Decoder::new(std::fs::File::open(layer)?)?;
    let mut out = io::BufWriter::new(std::fs::File::create(tar)?);
    let n = io::copy(&mut decoder.take(max + 1), &mut out)?;
    out.flush()?;
    if n > max {
        return Err(io::Error::other(format!(
            "the layer unpacks to more than {max} bytes"
        )));
    }
    Ok(n)
}

/// The zstd level whose recompression of `tar` is exactly the layer
/// `target`: `hint`, then the pusher's default and its level for builds
/// that do not compress; `None` when none is.
fn reproducing_level(
    tar: &Path,
    target: &str,
    hint: Option<i32>,
) -> io::Result<Option<Recompress>> {
    let mut tried = Vec::new();
    for level in hint.into_iter().chain([ZSTD_DEFAULT_LEVEL, 1]) {
        if tried.contains(&level) {
            continue;
        }
        tried.push(level);
        let mut input = std::fs::File::open(tar)?;
        let out = package::zstd_layer_writer(Hashing::new(io::sink()), level)?;
        let mut out = out;
        io::copy(&mut input, &mut out)?;
        let (packed, _) = out.finish()?.finish();
        if packed.digest == target {
            return Ok(Some(Recompress { level }));
        }
    }
    Ok(None)
}

/// Writes into `delta` a zstd frame of the tar at `new_tar` with the tar
/// of the layer at `old_layer` as its reference prefix. Returns its digest
/// and size, and the window log it needs.
fn encode(
    old_layer: &Path,
    new_tar: &Path,
    delta: &Path,
    max: u64,
) -> io::Result<(package::Packed, u32)> {
    let mut reference = Vec::new();
    zstd::stream::read::Decoder::new(std::fs::File::open(old_layer)?)?
        .take(max + 1)
        .read_to_end(&mut reference)?;
    if reference.len() as u64 > max {
        return Err(io::Error::other(format!(
            "the earlier layer unpacks to more than {max} bytes"
        )));
    }
    let new_len = std::fs::metadata(new_tar)?.len();
    let window_log = window_log_for(reference.len() as u64 + new_len);
    let out = Hashing::new(io::BufWriter::new(std::fs::File::create(delta)?));
    let mut encoder =
        zstd::stream::write::Encoder::with_ref_prefix(out, delta_level(new_len), &reference)?;
    encoder.window_log(window_log)?;
    encoder.long_distance_matching(true)?;
    encoder.include_checksum(true)?;
    encoder.set_pledged_src_size(Some(new_len))?;
    io::copy(&mut std::fs::File::open(new_tar)?, &mut encoder)?;
    let (packed, mut file) = encoder.finish()?.finish();
    file.flush()?;
    Ok((packed, window_log))
}

/// The smallest zstd window log that covers `bytes` (the reference and
/// the new tar), within zstd's bounds.
pub fn window_log_for(bytes: u64) -> u32 {
    let log = 64 - bytes.saturating_sub(1).leading_zeros();
    log.clamp(deltas::WINDOW_LOG_MIN, deltas::WINDOW_LOG_MAX)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_window_covers_reference_and_target() {
        assert_eq!(window_log_for(1), deltas::WINDOW_LOG_MIN);
        assert_eq!(window_log_for(1 << 20), 20);
        assert_eq!(window_log_for((1 << 20) + 1), 21);
        assert_eq!(window_log_for(u64::MAX), deltas::WINDOW_LOG_MAX);
    }

    /// A delta made here, decoded against the old tar and recompressed at
    /// the level found, gives the new layer byte for byte.
    #[test]
    fn a_delta_rebuilds_the_layer_exactly() {
        let dir = tempfile::tempdir().unwrap();
        let mut old = Vec::new();
        let mut x = 7u64;
        for i in 0..(3 << 20) {
            x = x
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            old.push(if i % 3 == 0 {
                (x >> 56) as u8
            } else {
                b'a' + (i % 26) as u8
            });
        }
        let mut new = old.clone();
        new[1 << 20] ^= 0xff;
        new.splice(2 << 20..2 << 20, b"one change".iter().copied());
        let layer = |data: &[u8], name: &str| {
            let path = dir.path().join(name);
            let mut w =
                package::zstd_layer_writer(Hashing::new(std::fs::File::create(&path).unwrap()), 3)
                    .unwrap();
            w.write_all(data).unwrap();
            let (packed, _) = w.finish().unwrap().finish();
            (path, packed)
        };
        let (old_layer, _) = layer(&old, "old.zst");
        let (new_layer, new_packed) = layer(&new, "new.zst");
        let tar = dir.path().join("new.tar");
        unpack_to_file(&new_layer, &tar, 1 << 30).unwrap();
        let level = reproducing_level(&tar, &new_packed.digest, None)
            .unwrap()
            .expect("level 3 reproduces the layer");
        assert_eq!(level, Recompress { level: 3 });
        let delta = dir.path().join("delta");
        let (packed, window_log) = encode(&old_layer, &tar, &delta, 1 << 30).unwrap();
        assert!(
            packed.size < new_packed.size / 10,
            "{packed:?} vs {new_packed:?}"
        );
        let mut rebuilt = Vec::new();
        let mut decoder = zstd::stream::read::Decoder::with_ref_prefix(
            io::BufReader::new(std::fs::File::open(&delta).unwrap()),
            &old,
        )
        .unwrap();
        decoder.window_log_max(window_log).unwrap();
        decoder.read_to_end(&mut rebuilt).unwrap();
        assert!(rebuilt == new);
    }
}
