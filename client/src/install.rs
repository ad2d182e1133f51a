//! Installing workers: resolve a version, check the catalog's answer
//! against what was asked, then, holding the destination's lock, download
//! and verify the build, unpack it into a staging folder, move it into
//! place in one rename and record it. See [`crate::layout`] for the
//! folder's layout and its crash rules.

use std::path::{Path, PathBuf};

use rbee_schemas::Platform;
use rbee_schemas::v1::DownloadSignature;

use crate::api::{CatalogClient, CheckedDownload, check_download, worker_id};
use crate::cache;
use crate::checked::{Sha256Digest, WorkerId, parse_version};
use crate::download::{self, Expected, Progress};
use crate::error::ClientError;
use crate::layout::{Dest, fingerprint, sync_dir, sync_tree};
use crate::limits::DEFAULT_MAX_DOWNLOAD;
pub use crate::records::Installed;
use crate::records::Records;
use crate::trust::{self, TrustStore};
use crate::unpack;

/// What `install` did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// Downloaded, verified and installed.
    Installed(Installed),
    /// The same build (same digest, its folder intact) was already
    /// installed; nothing done.
    AlreadyInstalled(Installed),
}

impl Outcome {
    /// The installed build either way.
    pub fn installed(&self) -> &Installed {
        match self {
            Outcome::Installed(i) | Outcome::AlreadyInstalled(i) => i,
        }
    }
}

/// Told `(archive bytes read, archive size)` while a verified build is
/// unpacked (the slow step after the download for a large build).
#[derive(Clone)]
pub struct UnpackProgress(pub std::sync::Arc<dyn Fn(u64, u64) + Send + Sync>);

impl std::fmt::Debug for UnpackProgress {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("UnpackProgress")
    }
}

/// Installs workers into one destination folder.
#[derive(Debug, Clone)]
pub struct Installer {
    pub(crate) catalog: CatalogClient,
    dest: PathBuf,
    platform: Platform,
    max_unpacked: u64,
    pub(crate) max_download: u64,
    trust: TrustStore,
    /// Archives up to this size are kept for the next upgrade's delta.
    max_cached_archive: u64,
    /// The memory a delta may take to apply.
    pub(crate) max_delta_memory: u64,
    unpack_progress: Option<UnpackProgress>,
}

impl Installer {
    /// An installer for this machine's platform.
    pub fn new(catalog: CatalogClient, dest: impl Into<PathBuf>) -> Result<Self, ClientError> {
        let platform = Platform::current().ok_or_else(|| {
            ClientError::Invalid(format!(
                "rbee has no builds for {}-{}",
                std::env::consts::OS,
                std::env::consts::ARCH
            ))
        })?;
        Ok(Installer {
            catalog,
            dest: dest.into(),
            platform,
            max_unpacked: unpack::DEFAULT_MAX_UNPACKED,
            max_download: DEFAULT_MAX_DOWNLOAD,
            trust: TrustStore::empty(),
            max_cached_archive: cache::DEFAULT_MAX_CACHED_ARCHIVE,
            max_delta_memory: crate::upgrade::DEFAULT_MAX_DELTA_MEMORY,
            unpack_progress: None,
        })
    }

    /// Verifies publisher signatures against `trust` (the trust file,
    /// `TrustStore::load(&TrustStore::default_path())`, plus any keys
    /// added): a pinned worker installs only when its signature verifies.
    /// Without it nothing is pinned and only digests are checked.
    pub fn with_trust(mut self, trust: TrustStore) -> Self {
        self.trust = trust;
        self
    }

    /// Keeps the last installed archive of each worker up to `bytes`
    /// (default [`cache::DEFAULT_MAX_CACHED_ARCHIVE`]; 0 keeps none), so
    /// that the next upgrade can use a delta.
    pub fn with_max_cached_archive(mut self, bytes: u64) -> Self {
        self.max_cached_archive = bytes;
        self
    }

    /// Applies a delta only when it takes at most `bytes` of memory (the
    /// installed build's unpacked tar and the delta's window; default
    /// [`crate::upgrade::DEFAULT_MAX_DELTA_MEMORY`]); otherwise an upgrade
    /// downloads the whole archive.
    pub fn with_max_delta_memory(mut self, bytes: u64) -> Self {
        self.max_delta_memory = bytes;
        self
    }

    /// Reports unpacking to `progress` (the download has its own callback,
    /// given to each install).
    pub fn with_unpack_progress(mut self, progress: UnpackProgress) -> Self {
        self.unpack_progress = Some(progress);
        self
    }

    /// Installs builds of another platform (for tests and cross installs).
    pub fn with_platform(mut self, platform: Platform) -> Self {
        self.platform = platform;
        self
    }

    /// Refuses archives that unpack to more than `bytes`.
    pub fn with_max_unpacked(mut self, bytes: u64) -> Self {
        self.max_unpacked = bytes;
        self
    }

    /// Refuses builds larger than `bytes` (default
    /// [`DEFAULT_MAX_DOWNLOAD`]) before downloading anything.
    pub fn with_max_download(mut self, bytes: u64) -> Self {
        self.max_download = bytes;
        self
    }

    /// The platform installed for.
    pub fn platform(&self) -> Platform {
        self.platform
    }

    /// The destination folder.
    pub fn dest_dir(&self) -> &Path {
        &self.dest
    }

    /// What is installed.
    pub fn list(&self) -> Result<Vec<Installed>, ClientError> {
        Ok(Records::read(&self.dest)?.workers)
    }

    /// Picks the highest published version matching `requirement`
    /// (`None`: the latest stable); see [`Installer::resolve_release`].
    pub async fn resolve(
        &self,
        worker: &str,
        requirement: Option<&str>,
    ) -> Result<String, ClientError> {
        Ok(self
            .resolve_release(worker, requirement)
            .await?
            .version
            .to_string())
    }

    /// The version [`Installer::install`] installs for `requirement`, and
    /// whether it is yanked: a range or "latest" never picks a yanked
    /// version, an exactly named one (`1.2.3`, `=1.2.3`) is taken even
    /// when yanked (as cargo does), with the reason here so the caller
    /// can warn.
    pub async fn resolve_release(
        &self,
        worker: &str,
        requirement: Option<&str>,
    ) -> Result<Resolved, ClientError> {
        let id = worker_id(worker)?;
        let versions = self.catalog.versions_with_yanked(id.as_str()).await?;
        choose(id.as_str(), requirement, &versions)
    }

    /// Installs `worker` at the highest version matching `requirement`.
    pub async fn install(
        &self,
        worker: &str,
        requirement: Option<&str>,
        progress: Progress<'_>,
    ) -> Result<Outcome, ClientError> {
        let resolved = self.resolve_release(worker, requirement).await?;
        self.install_resolved(worker, &resolved, progress).await
    }

    /// Installs the version [`Installer::resolve_release`] chose.
    pub async fn install_resolved(
        &self,
        worker: &str,
        resolved: &Resolved,
        progress: Progress<'_>,
    ) -> Result<Outcome, ClientError> {
        let id = worker_id(worker)?;
        let version = resolved.version.clone();
        let info = self
            .catalog
            .download_info(id.as_str(), &version.to_string(), self.platform)
            .await?;
        let download = check_download(&info, self.catalog.base(), &id, &version, self.platform)?;
        if download.size > self.max_download {
            return Err(ClientError::TooLarge {
                size: download.size,
                max: self.max_download,
            });
        }
        let dest = Dest::create(&self.dest)?;
        let _lock = dest.lock_async().await?;
        if let Some(existing) = self.already_installed(&dest, &id, &version, &download.digest)? {
            return Ok(Outcome::AlreadyInstalled(existing));
        }
        let file = self.fetch_archive(&dest, &download, progress).await?;
        self.put_in_place(
            &dest,
            &id,
            &download.version,
            &download.digest,
            &file.path,
            info.signature.as_ref(),
        )
        .await
    }

    /// Downloads the whole archive `download` names into `dest`'s
    /// downloads folder: resumable, at most `--max-download` bytes, checked
    /// against the announced size and digest.
    pub(crate) async fn fetch_archive(
        &self,
        dest: &Dest,
        download: &CheckedDownload,
        progress: Progress<'_>,
    ) -> Result<download::Downloaded, ClientError> {
        let expected = Expected {
            digest: &download.digest,
            size: download.size,
            max_size: self.max_download,
            timeouts: self.catalog.timeouts(),
        };
        let url = download.url.clone();
        download::fetch(
            |offset| download::open_http(&self.catalog, url, offset),
            expected,
            &dest.downloads(),
            progress,
        )
        .await
    }

    /// The record of `worker` `version` for this platform when that exact
    /// build (`digest`) is recorded and its folder still matches the
    /// record. A folder without a record, or one emptied by a crash, is
    /// not installed.
    pub(crate) fn already_installed(
        &self,
        dest: &Dest,
        worker: &WorkerId,
        version: &semver::Version,
        digest: &Sha256Digest,
    ) -> Result<Option<Installed>, ClientError> {
        let version_text = version.to_string();
        let Some(record) = Records::read(dest.root())?.workers.into_iter().find(|r| {
            r.worker_id == worker.as_str()
                && r.version == version_text
                && r.platform == self.platform.name()
                && r.digest == digest.as_str()
        }) else {
            return Ok(None);
        };
        let on_disk = fingerprint(&dest.build_dir(worker, version)).ok();
        Ok((on_disk.is_some() && on_disk == record.files_digest).then_some(record))
    }

    /// Checks the publisher's signature of an archive whose digest was
    /// verified, then unpacks it into place and records it: the one way
    /// into the destination (CONTRACTS J). `signature` is what the catalog
    /// (or registry) handed over; the trust store decides whether it is
    /// needed and whether it holds, before anything touches the
    /// destination. The caller holds the destination's lock.
    pub(crate) async fn put_in_place(
        &self,
        dest: &Dest,
        worker: &WorkerId,
        version: &semver::Version,
        digest: &Sha256Digest,
        archive: &Path,
        signature: Option<&DownloadSignature>,
    ) -> Result<Outcome, ClientError> {
        let (dest_c, worker_c, version_c, archive_c, max) = (
            dest.clone(),
            worker.clone(),
            version.clone(),
            archive.to_owned(),
            self.max_unpacked,
        );
        let (trust, signature, platform, digest_c) = (
            self.trust.clone(),
            signature.cloned(),
            self.platform,
            digest.to_string(),
        );
        let unpacking = self.unpack_progress.clone();
        let moved = tokio::task::spawn_blocking(move || {
            let expected = trust::Expected {
                worker: worker_c.as_str(),
                version: &version_c.to_string(),
                platform,
                digest: &digest_c,
            };
            trust.verify(&expected, signature.as_ref(), &archive_c)?;
            let report = |done: u64, total: u64| {
                if let Some(UnpackProgress(report)) = &unpacking {
                    report(done, total);
                }
            };
            move_into_place(&dest_c, &worker_c, &version_c, &archive_c, max, &report)
        })
        .await
        .map_err(|e| ClientError::Io(std::io::Error::other(e)))?;
        let (files_digest, old) = match moved {
            Ok(moved) => moved,
            Err(e) => {
                // A refused archive can never be installed: keeping it would
                // only leave hostile bytes on disk. Other failures (a full
                // disk) keep the verified download for the next attempt.
                if matches!(e, ClientError::UnsafeArchive(_) | ClientError::Signature(_)) {
                    let _ = std::fs::remove_file(archive);
                }
                return Err(e);
            }
        };
        // Kept (not deleted) as the worker's last archive: the next
        // upgrade may apply a delta to it (`cache.rs`).
        cache::keep(dest, worker, digest, archive, self.max_cached_archive);
        let installed = Installed {
            worker_id: worker.to_string(),
            version: version.to_string(),
            platform: self.platform.name().to_owned(),
            digest: digest.to_string(),
            files_digest: Some(files_digest),
            path: self.dest.join(worker.as_str()).join(version.to_string()),
            installed_at: now_rfc3339(),
        };
        let mut records = Records::read(dest.root())?;
        records.workers.retain(|r| {
            !(r.worker_id == installed.worker_id
                && r.version == installed.version
                && r.platform == installed.platform)
        });
        records.workers.push(installed.clone());
        records.write(dest.root())?;
        // Only now that the new record is on disk does the old build go.
        if let Some(old) = old {
            let _ = std::fs::remove_dir_all(old);
        }
        Ok(Outcome::Installed(installed))
    }

    /// Removes `worker` (every version, or just `version`). Returns what
    /// was removed. Only `<dest>/<worker>/<version>` folders are ever
    /// deleted, built from checked values and compared as canonical paths.
    pub fn uninstall(
        &self,
        worker: &str,
        version: Option<&str>,
    ) -> Result<Vec<Installed>, ClientError> {
        let id = worker_id(worker)?;
        let version = version
            .map(parse_version)
            .transpose()
            .map_err(ClientError::Invalid)?;
        let not_installed = || ClientError::NotFound(format!("{id} is not installed"));
        let dest = Dest::existing(&self.dest)?.ok_or_else(not_installed)?;
        let _lock = dest.lock()?;
        let mut records = Records::read(dest.root())?;
        let (gone, kept): (Vec<Installed>, Vec<Installed>) =
            records.workers.into_iter().partition(|r| {
                r.worker_id == id.as_str()
                    && version.as_ref().is_none_or(|v| r.version == v.to_string())
            });
        if gone.is_empty() {
            return Err(not_installed());
        }
        for r in &gone {
            // A record whose version is not a version (written by hand, or
            // by an older installer that trusted the network) names no
            // folder this installer would have made: forget it, delete
            // nothing for it.
            if let Ok(v) = parse_version(&r.version) {
                dest.remove_build(&id, &v)?;
            }
        }
        dest.remove_worker_dir_if_empty(&id);
        if !kept.iter().any(|r| r.worker_id == id.as_str()) {
            cache::forget(&dest, &id);
        }
        records.workers = kept;
        records.write(dest.root())?;
        Ok(gone)
    }
}

/// Unpacks `archive` into a fresh staging folder, syncs it, and renames
/// it to `<dest>/<worker>/<version>`, moving an existing folder there
/// aside first (and back if the rename fails). Returns the build's
/// fingerprint and where the old folder went, to delete once the record
/// is written.
fn move_into_place(
    dest: &Dest,
    worker: &WorkerId,
    version: &semver::Version,
    archive: &Path,
    max_unpacked: u64,
    progress: &dyn Fn(u64, u64),
) -> Result<(String, Option<PathBuf>), ClientError> {
    // Removed when dropped, on any failure before the rename.
    let staging = tempfile::Builder::new()
        .prefix(".staging-")
        .tempdir_in(dest.root())?;
    unpack::unpack_with_progress(archive, staging.path(), max_unpacked, progress)?;
    sync_tree(staging.path())?;
    let files_digest = fingerprint(staging.path())?;
    let worker_dir = dest.worker_dir(worker)?;
    let target = dest.build_dir(worker, version);
    let old = match std::fs::symlink_metadata(&target) {
        Ok(_) => {
            let old = dest.old_name();
            std::fs::rename(&target, &old)?;
            Some(old)
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => None,
        Err(e) => return Err(e.into()),
    };
    if let Err(e) = std::fs::rename(staging.path(), &target) {
        if let Some(old) = &old {
            std::fs::rename(old, &target)?;
        }
        return Err(e.into());
    }
    // The staging path no longer exists; nothing to clean up.
    let _ = staging.keep();
    sync_dir(&worker_dir)?;
    sync_dir(dest.root())?;
    Ok((files_digest, old))
}

/// A version chosen to install.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Resolved {
    /// The version.
    pub version: semver::Version,
    /// `Some(reason)` (possibly empty) when the version is yanked: only
    /// an exactly named version can be.
    pub yanked: Option<String>,
}

/// The version of `listing` that `requirement` names: none, the latest
/// (never yanked); an exact version, among every listed one, yanked or
/// not; a range, among versions that are not yanked.
pub(crate) fn choose(
    worker: &str,
    requirement: Option<&str>,
    listing: &rbee_schemas::v1::Versions,
) -> Result<Resolved, ClientError> {
    let not_yanked: Vec<String> = listing
        .versions
        .iter()
        .filter(|v| !v.yanked)
        .map(|v| v.version.clone())
        .collect();
    let version = match requirement {
        None => {
            let latest =
                listing
                    .latest
                    .as_deref()
                    .ok_or_else(|| ClientError::NoMatchingVersion {
                        worker: worker.to_owned(),
                        requirement: "latest".into(),
                        published: not_yanked.clone(),
                    })?;
            parse_version(latest).map_err(ClientError::catalog)?
        }
        Some(req) => match exact_version(req) {
            Some(exact) => {
                let every: Vec<String> =
                    listing.versions.iter().map(|v| v.version.clone()).collect();
                pick(worker, &format!("={exact}"), &every)?
            }
            None => pick(worker, req, &not_yanked)?,
        },
    };
    let yanked = listing
        .versions
        .iter()
        .find(|v| v.yanked && parse_version(&v.version).ok().as_ref() == Some(&version))
        .map(|v| v.yank_reason.clone().unwrap_or_default());
    Ok(Resolved { version, yanked })
}

/// The version `req` names exactly: a bare version or `=` and a version.
fn exact_version(req: &str) -> Option<semver::Version> {
    let req = req.trim();
    let bare = req.strip_prefix('=').unwrap_or(req).trim();
    semver::Version::parse(bare).ok()
}

/// The highest of `published` matching the semver requirement `req`.
pub fn pick_version(worker: &str, req: &str, published: &[String]) -> Result<String, ClientError> {
    pick(worker, req, published).map(|v| v.to_string())
}

/// [`pick_version`], as a checked version. Published entries that are not
/// versions are ignored.
pub(crate) fn pick(
    worker: &str,
    req: &str,
    published: &[String],
) -> Result<semver::Version, ClientError> {
    let parsed = requirement(req)?;
    published
        .iter()
        .filter_map(|v| parse_version(v).ok())
        .filter(|v| parsed.matches(v))
        .max()
        .ok_or_else(|| ClientError::NoMatchingVersion {
            worker: worker.to_owned(),
            requirement: req.to_owned(),
            published: published.iter().take(50).cloned().collect(),
        })
}

/// `req` as a semver requirement. A bare version (`1.2.3`) means exactly
/// that version, as `cargo install foo@1.2.3` does, not semver's default
/// caret (`^1.2.3`, which would install 1.2.4 when it exists); ranges take
/// an operator (`^1.2`, `~1.2.3`, `>=1, <2`, `*`).
fn requirement(req: &str) -> Result<semver::VersionReq, ClientError> {
    let bad =
        |e: semver::Error| ClientError::Invalid(format!("bad version requirement `{req}`: {e}"));
    if let Ok(exact) = semver::Version::parse(req.trim()) {
        return semver::VersionReq::parse(&format!("={exact}")).map_err(bad);
    }
    semver::VersionReq::parse(req).map_err(bad)
}

fn now_rfc3339() -> String {
    chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
}

#[cfg(test)]
mod tests {
    use super::pick_version;

    #[test]
    fn picks_the_highest_match() {
        let published = ["0.1.0", "0.2.0", "0.10.0", "1.0.0-rc.1"]
            .map(String::from)
            .to_vec();
        assert_eq!(pick_version("w", "^0.1", &published).unwrap(), "0.1.0");
        assert_eq!(pick_version("w", ">=0.2", &published).unwrap(), "0.10.0");
        assert!(pick_version("w", "^2", &published).is_err());
        assert!(pick_version("w", "not a req", &published).is_err());
    }

    #[test]
    fn ranges_skip_yanked_versions_an_exact_version_takes_them() {
        let version = |v: &str, yanked: bool| rbee_schemas::v1::Version {
            version: v.into(),
            published_at: None,
            index_digest: format!("sha256:{}", "0".repeat(64)),
            platforms: Vec::new(),
            yanked,
            yank_reason: yanked.then(|| "crashes on start".to_owned()),
            signature: None,
        };
        let listing = rbee_schemas::v1::Versions {
            versions: vec![version("1.1.0", true), version("1.0.0", false)],
            latest: Some("1.0.0".into()),
        };
        let chosen = |req: Option<&str>| super::choose("w", req, &listing);
        for range in [Some("^1"), Some("*"), None] {
            let picked = chosen(range);
            assert!(
                picked.as_ref().is_ok_and(|r| r.yanked.is_none()),
                "{range:?}: {picked:?}"
            );
        }
        assert_eq!(chosen(Some("^1")).unwrap().version.to_string(), "1.0.0");
        assert!(chosen(Some(">=1.0.1")).is_err(), "only 1.1.0, yanked");
        for exact in ["1.1.0", "=1.1.0"] {
            let picked = chosen(Some(exact)).unwrap();
            assert_eq!(picked.version.to_string(), "1.1.0");
            assert_eq!(picked.yanked.as_deref(), Some("crashes on start"));
        }
    }

    #[test]
    fn a_bare_version_is_that_version_exactly() {
        let published = ["1.2.3", "1.2.4", "1.3.0"].map(String::from).to_vec();
        assert_eq!(pick_version("w", "1.2.3", &published).unwrap(), "1.2.3");
        assert_eq!(pick_version("w", "=1.2.3", &published).unwrap(), "1.2.3");
        assert_eq!(pick_version("w", "^1.2.3", &published).unwrap(), "1.3.0");
        assert_eq!(pick_version("w", "~1.2.3", &published).unwrap(), "1.2.4");
        assert_eq!(pick_version("w", "1.2", &published).unwrap(), "1.3.0");
        assert!(pick_version("w", "1.2.5", &published).is_err());
    }
}
