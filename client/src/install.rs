//! Installing workers: resolve a version, check the catalog's answer
//! against what was asked, then, holding the destination's lock, download
//! and verify the build, unpack it into a staging folder, move it into
//! place in one rename and record it. See [`crate::layout`] for the
//! folder's layout and its crash rules.

use std::path::{Path, PathBuf};

use rbee_schemas::Platform;

use crate::api::{CatalogClient, check_download, worker_id};
use crate::checked::{Sha256Digest, WorkerId, parse_version};
use crate::download::{self, Expected, Progress};
use crate::error::ClientError;
use crate::layout::{Dest, fingerprint, sync_dir, sync_tree};
use crate::limits::DEFAULT_MAX_DOWNLOAD;
pub use crate::records::Installed;
use crate::records::Records;
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

/// Installs workers into one destination folder.
#[derive(Debug, Clone)]
pub struct Installer {
    pub(crate) catalog: CatalogClient,
    dest: PathBuf,
    platform: Platform,
    max_unpacked: u64,
    pub(crate) max_download: u64,
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
        })
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
    /// (`None`: the latest stable).
    pub async fn resolve(
        &self,
        worker: &str,
        requirement: Option<&str>,
    ) -> Result<String, ClientError> {
        let id = worker_id(worker)?;
        Ok(self.resolve_checked(&id, requirement).await?.to_string())
    }

    async fn resolve_checked(
        &self,
        worker: &WorkerId,
        requirement: Option<&str>,
    ) -> Result<semver::Version, ClientError> {
        let versions = self.catalog.versions(worker.as_str()).await?;
        let published: Vec<String> = versions
            .versions
            .iter()
            .map(|v| v.version.clone())
            .collect();
        let Some(req) = requirement else {
            let latest = versions
                .latest
                .ok_or_else(|| ClientError::NoMatchingVersion {
                    worker: worker.to_string(),
                    requirement: "latest".into(),
                    published: published.clone(),
                })?;
            return parse_version(&latest).map_err(ClientError::catalog);
        };
        pick(worker.as_str(), req, &published)
    }

    /// Installs `worker` at the highest version matching `requirement`.
    pub async fn install(
        &self,
        worker: &str,
        requirement: Option<&str>,
        progress: Progress<'_>,
    ) -> Result<Outcome, ClientError> {
        let id = worker_id(worker)?;
        let version = self.resolve_checked(&id, requirement).await?;
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
        let expected = Expected {
            digest: &download.digest,
            size: download.size,
            max_size: self.max_download,
            timeouts: self.catalog.timeouts(),
        };
        let url = download.url.clone();
        let file = download::fetch(
            |offset| download::open_http(&self.catalog, url, offset),
            expected,
            &dest.downloads(),
            progress,
        )
        .await?;
        self.put_in_place(&dest, &id, &download.version, &download.digest, &file.path)
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

    /// Unpacks a verified archive into place and records it. The caller
    /// holds the destination's lock.
    pub(crate) async fn put_in_place(
        &self,
        dest: &Dest,
        worker: &WorkerId,
        version: &semver::Version,
        digest: &Sha256Digest,
        archive: &Path,
    ) -> Result<Outcome, ClientError> {
        let (dest_c, worker_c, version_c, archive_c, max) = (
            dest.clone(),
            worker.clone(),
            version.clone(),
            archive.to_owned(),
            self.max_unpacked,
        );
        let moved = tokio::task::spawn_blocking(move || {
            move_into_place(&dest_c, &worker_c, &version_c, &archive_c, max)
        })
        .await
        .map_err(|e| ClientError::Io(std::io::Error::other(e)))?;
        let (files_digest, old) = match moved {
            Ok(moved) => moved,
            Err(e) => {
                // A refused archive can never be installed: keeping it would
                // only leave hostile bytes on disk. Other failures (a full
                // disk) keep the verified download for the next attempt.
                if matches!(e, ClientError::UnsafeArchive(_)) {
                    let _ = std::fs::remove_file(archive);
                }
                return Err(e);
            }
        };
        let _ = std::fs::remove_file(archive);
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
) -> Result<(String, Option<PathBuf>), ClientError> {
    // Removed when dropped, on any failure before the rename.
    let staging = tempfile::Builder::new()
        .prefix(".staging-")
        .tempdir_in(dest.root())?;
    unpack::unpack(archive, staging.path(), max_unpacked)?;
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
    let parsed = semver::VersionReq::parse(req)
        .map_err(|e| ClientError::Invalid(format!("bad version requirement `{req}`: {e}")))?;
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
}
