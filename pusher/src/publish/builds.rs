//! Getting the builds' archives into the registry. A new version is
//! packaged straight into the upload (no temporary file, the digest known
//! when the last byte is sent); when the digests are needed before
//! anything is sent (the version exists already, or a dry run), a first
//! pass packages into a hasher only, and the upload, if any, packages
//! again.

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::Arc;

use futures_util::{StreamExt, TryStreamExt};
use rbee_schemas::Platform;

use super::PublishOptions;
use crate::client::RegistryClient;
use crate::error::PushError;
use crate::package::{self, Compression, Entry, EntrySource, Packed};
use crate::progress::Reporter;
use crate::release::Release;

/// One platform's archive, as its manifest describes it.
#[derive(Debug, Clone)]
pub(super) struct Build {
    /// Digest and size of the archive.
    pub(super) packed: Packed,
    /// Its file name, the layer's title.
    pub(super) filename: String,
    /// Its layer media type.
    pub(super) media_type: &'static str,
}

/// How many builds are packaged and uploaded at once.
const CONCURRENT_BUILDS: usize = 4;

/// The archive name of one platform's build, e.g.
/// `llm-worker-rbee-cpu-0.1.0-linux-x86_64.tar.zst`.
pub(super) fn archive_name(release: &Release, platform: Platform, c: Compression) -> String {
    format!(
        "{}-{}-{platform}.{}",
        release.metadata.id,
        release.metadata.version,
        c.extension()
    )
}

/// What goes into a platform's archive: the binary, LICENSE, README.md
/// and metadata.json.
fn archive_entries(release: &Release, binary: &Path) -> Vec<Entry> {
    vec![
        Entry {
            name: release.metadata.binary_name.clone(),
            source: EntrySource::File(binary.to_path_buf()),
            mode: 0o755,
        },
        Entry {
            name: "LICENSE".into(),
            source: EntrySource::File(release.license.clone()),
            mode: 0o644,
        },
        Entry {
            name: "README.md".into(),
            source: EntrySource::File(release.readme.clone()),
            mode: 0o644,
        },
        Entry {
            name: "metadata.json".into(),
            source: EntrySource::Bytes(release.metadata_json.clone()),
            mode: 0o644,
        },
    ]
}

fn build(release: &Release, platform: Platform, c: Compression, packed: Packed) -> Build {
    Build {
        packed,
        filename: archive_name(release, platform, c),
        media_type: c.media_type(),
    }
}

/// The first pass: every build's digest and size, nothing kept or sent.
pub(super) async fn hash_builds(
    release: &Release,
    opts: &PublishOptions,
    reporter: &Reporter,
) -> Result<BTreeMap<Platform, Build>, PushError> {
    reporter.step(&format!(
        "packaging {} build(s) of {} {} ({}) to compare",
        release.builds.len(),
        release.metadata.id,
        release.metadata.version,
        opts.compression
    ));
    let c = opts.compression;
    let mut tasks = Vec::new();
    for (platform, path) in &release.builds {
        let entries = archive_entries(release, path);
        let platform = *platform;
        let bar = reporter.packaging_bar(&platform.to_string());
        tasks.push(tokio::task::spawn_blocking(move || {
            let counted = package::Hashing::new(Counted(std::io::sink(), bar.clone()));
            let packed = package::write(entries, c, counted).map(|h| h.finish().0);
            bar.finish_and_clear();
            packed.map(|p| (platform, p))
        }));
    }
    let mut builds = BTreeMap::new();
    for task in tasks {
        let (platform, packed) = task
            .await
            .map_err(|e| PushError::Io(std::io::Error::other(e)))??;
        reporter.line(&format!(
            "  {platform}: {} ({} bytes)",
            packed.digest, packed.size
        ));
        builds.insert(platform, build(release, platform, c, packed));
    }
    Ok(builds)
}

/// Packages every build into its upload, [`CONCURRENT_BUILDS`] at a
/// time. With `expected` (the first pass's digests), a build the
/// registry has already is skipped, and one that comes out different
/// (its file changed in between) is an error. Returns the builds and the
/// bytes sent.
pub(super) async fn upload_builds(
    client: &RegistryClient,
    repo: &str,
    release: &Release,
    opts: &PublishOptions,
    expected: Option<&BTreeMap<Platform, Build>>,
    reporter: &Reporter,
) -> Result<(BTreeMap<Platform, Build>, u64), PushError> {
    if expected.is_none() {
        reporter.step(&format!(
            "packaging and uploading {} build(s) to {repo}:{} ({})",
            release.builds.len(),
            release.metadata.version,
            opts.compression
        ));
    }
    let c = opts.compression;
    let done: Vec<(Platform, Build, u64)> = futures_util::stream::iter(&release.builds)
        .map(|(platform, path)| async move {
            let platform = *platform;
            let known = expected.and_then(|e| e.get(&platform));
            if let Some(known) = known
                && client.blob_exists(repo, &known.packed.digest).await?
            {
                reporter.line(&format!("  {platform}: already in the registry"));
                return Ok((platform, known.clone(), 0));
            }
            let entries = archive_entries(release, path);
            let bar = reporter.stream_bar(&platform.to_string());
            let progress: crate::client::Progress = {
                let bar = bar.clone();
                Arc::new(move |n| bar.inc(n))
            };
            let blob = client
                .upload_stream(
                    repo,
                    move |out| package::write(entries.clone(), c, out),
                    progress,
                )
                .await?;
            bar.finish();
            if let Some(known) = known
                && known.packed != blob.packed
            {
                return Err(PushError::Invalid(format!(
                    "the {platform} build changed while it was being published ({} then {}); \
                     publish again",
                    known.packed.digest, blob.packed.digest
                )));
            }
            reporter.line(&format!(
                "  {platform}: {} ({} bytes)",
                blob.packed.digest, blob.packed.size
            ));
            let sent = if blob.uploaded { blob.packed.size } else { 0 };
            Ok::<_, PushError>((platform, build(release, platform, c, blob.packed), sent))
        })
        .buffer_unordered(CONCURRENT_BUILDS)
        .try_collect()
        .await?;
    let uploaded = done.iter().map(|(_, _, n)| n).sum();
    Ok((done.into_iter().map(|(p, b, _)| (p, b)).collect(), uploaded))
}

/// A writer that moves a progress bar by what passes through it.
struct Counted<W>(W, indicatif::ProgressBar);

impl<W: std::io::Write> std::io::Write for Counted<W> {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        let n = self.0.write(buf)?;
        self.1.inc(n as u64);
        Ok(n)
    }

    fn flush(&mut self) -> std::io::Result<()> {
        self.0.flush()
    }
}
