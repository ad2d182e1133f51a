//! Installing workers: resolve a version, download and verify the build,
//! unpack it into a staging folder and move it into place in one rename,
//! then record what is installed.
//!
//! Layout under the destination folder:
//!
//! ```text
//! <dest>/installed.json              what is installed (worker, version, platform, digest)
//! <dest>/<worker>/<version>/         the unpacked build
//! <dest>/.downloads/                 partial and verified downloads
//! <dest>/.staging-<random>/          unpacking in progress (removed on failure)
//! ```

use std::path::{Path, PathBuf};

use rbee_schemas::Platform;
use serde::{Deserialize, Serialize};

use crate::api::CatalogClient;
use crate::download::{self, Progress};
use crate::error::ClientError;
use crate::unpack;

/// One installed worker build.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Installed {
    /// Worker id.
    pub worker_id: String,
    /// Exact version.
    pub version: String,
    /// rbee platform name.
    pub platform: String,
    /// `sha256:` of the archive it came from.
    pub digest: String,
    /// Where it is unpacked.
    pub path: PathBuf,
    /// When it was installed (RFC 3339).
    pub installed_at: String,
}

/// What `install` did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// Downloaded, verified and installed.
    Installed(Installed),
    /// The same build (same digest) was already installed; nothing done.
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

#[derive(Debug, Default, Serialize, Deserialize)]
struct Records {
    workers: Vec<Installed>,
}

/// Installs workers into one destination folder.
#[derive(Debug, Clone)]
pub struct Installer {
    catalog: CatalogClient,
    dest: PathBuf,
    platform: Platform,
    max_unpacked: u64,
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

    /// The platform installed for.
    pub fn platform(&self) -> Platform {
        self.platform
    }

    /// The destination folder.
    pub fn dest_dir(&self) -> &Path {
        &self.dest
    }

    fn records_path(&self) -> PathBuf {
        self.dest.join("installed.json")
    }

    fn read_records(&self) -> Result<Records, ClientError> {
        match std::fs::read(self.records_path()) {
            Ok(bytes) => serde_json::from_slice(&bytes).map_err(|e| {
                ClientError::Invalid(format!("{} is corrupt: {e}", self.records_path().display()))
            }),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(Records::default()),
            Err(e) => Err(e.into()),
        }
    }

    fn write_records(&self, records: &Records) -> Result<(), ClientError> {
        std::fs::create_dir_all(&self.dest)?;
        let tmp = self.dest.join(".installed.json.tmp");
        let json =
            serde_json::to_vec_pretty(records).map_err(|e| ClientError::Invalid(e.to_string()))?;
        std::fs::write(&tmp, json)?;
        std::fs::File::open(&tmp)?.sync_all()?;
        std::fs::rename(&tmp, self.records_path())?;
        Ok(())
    }

    /// What is installed.
    pub fn list(&self) -> Result<Vec<Installed>, ClientError> {
        Ok(self.read_records()?.workers)
    }

    /// Picks the highest published version matching `requirement`
    /// (`None`: the latest stable).
    pub async fn resolve(
        &self,
        worker: &str,
        requirement: Option<&str>,
    ) -> Result<String, ClientError> {
        let versions = self.catalog.versions(worker).await?;
        let published: Vec<String> = versions
            .versions
            .iter()
            .map(|v| v.version.clone())
            .collect();
        let Some(req) = requirement else {
            return versions
                .latest
                .ok_or_else(|| ClientError::NoMatchingVersion {
                    worker: worker.to_owned(),
                    requirement: "latest".into(),
                    published: published.clone(),
                });
        };
        pick_version(worker, req, &published)
    }

    /// Installs `worker` at the highest version matching `requirement`.
    pub async fn install(
        &self,
        worker: &str,
        requirement: Option<&str>,
        progress: Progress<'_>,
    ) -> Result<Outcome, ClientError> {
        let version = self.resolve(worker, requirement).await?;
        let info = self
            .catalog
            .download_info(worker, &version, self.platform)
            .await?;
        if let Some(existing) = self.already_installed(worker, &info.version, &info.checksum)? {
            return Ok(Outcome::AlreadyInstalled(existing));
        }
        let downloads = self.dest.join(".downloads");
        let catalog = self.catalog.clone();
        let file = download::fetch(
            &self.catalog.http,
            move |r| catalog.authorize(r),
            &info.download_url,
            &info.checksum,
            info.size,
            &downloads,
            progress,
        )
        .await?;
        self.put_in_place(worker, &info.version, &info.checksum, &file.path)
            .await
    }

    /// The record of `worker` `version` for this platform when that exact
    /// build (`digest`) is installed and its folder is still there.
    pub(crate) fn already_installed(
        &self,
        worker: &str,
        version: &str,
        digest: &str,
    ) -> Result<Option<Installed>, ClientError> {
        let target = self.dest.join(worker).join(version);
        Ok(self.read_records()?.workers.into_iter().find(|r| {
            r.worker_id == worker
                && r.version == version
                && r.platform == self.platform.name()
                && r.digest == digest
                && target.is_dir()
        }))
    }

    /// Unpacks a verified archive into place and records it.
    pub(crate) async fn put_in_place(
        &self,
        worker: &str,
        version: &str,
        digest: &str,
        archive: &Path,
    ) -> Result<Outcome, ClientError> {
        let target = self.dest.join(worker).join(version);
        let staging = self.dest.join(format!(".staging-{}", random_suffix()));
        let old = self.dest.join(format!(".old-{}", random_suffix()));
        let (archive_c, staging_c, target_c, old_c, max) = (
            archive.to_owned(),
            staging.clone(),
            target.clone(),
            old.clone(),
            self.max_unpacked,
        );
        let result = tokio::task::spawn_blocking(move || -> Result<(), ClientError> {
            std::fs::create_dir_all(&staging_c)?;
            unpack::unpack(&archive_c, &staging_c, max)?;
            if let Some(parent) = target_c.parent() {
                std::fs::create_dir_all(parent)?;
            }
            // Replace an older build of the same version in two renames;
            // the window where neither is in place is as short as it gets.
            if target_c.exists() {
                std::fs::rename(&target_c, &old_c)?;
            }
            std::fs::rename(&staging_c, &target_c)?;
            let _ = std::fs::remove_dir_all(&old_c);
            Ok(())
        })
        .await
        .map_err(|e| ClientError::Io(std::io::Error::other(e)))?;
        if let Err(e) = result {
            let _ = std::fs::remove_dir_all(&staging);
            // A refused archive can never be installed: keeping it would
            // only leave hostile bytes on disk. Other failures (a full
            // disk) keep the verified download for the next attempt.
            if matches!(e, ClientError::UnsafeArchive(_)) {
                let _ = std::fs::remove_file(archive);
            }
            return Err(e);
        }
        let _ = std::fs::remove_file(archive);
        let installed = Installed {
            worker_id: worker.to_owned(),
            version: version.to_owned(),
            platform: self.platform.name().to_owned(),
            digest: digest.to_owned(),
            path: target,
            installed_at: now_rfc3339(),
        };
        let mut records = self.read_records()?;
        records.workers.retain(|r| {
            !(r.worker_id == worker && r.version == version && r.platform == installed.platform)
        });
        records.workers.push(installed.clone());
        records
            .workers
            .sort_by(|a, b| (&a.worker_id, &a.version).cmp(&(&b.worker_id, &b.version)));
        self.write_records(&records)?;
        Ok(Outcome::Installed(installed))
    }

    /// Removes `worker` (every version, or just `version`). Returns what
    /// was removed.
    pub fn uninstall(
        &self,
        worker: &str,
        version: Option<&str>,
    ) -> Result<Vec<Installed>, ClientError> {
        let mut records = self.read_records()?;
        let (gone, kept): (Vec<Installed>, Vec<Installed>) = records
            .workers
            .into_iter()
            .partition(|r| r.worker_id == worker && version.is_none_or(|v| r.version == v));
        if gone.is_empty() {
            return Err(ClientError::NotFound(format!("{worker} is not installed")));
        }
        for r in &gone {
            // Only ever delete inside the destination, whatever the record says.
            let dir = self.dest.join(&r.worker_id).join(&r.version);
            if dir.starts_with(&self.dest) {
                let _ = std::fs::remove_dir_all(&dir);
            }
        }
        let worker_dir = self.dest.join(worker);
        if std::fs::read_dir(&worker_dir).is_ok_and(|mut d| d.next().is_none()) {
            let _ = std::fs::remove_dir(&worker_dir);
        }
        records.workers = kept;
        self.write_records(&records)?;
        Ok(gone)
    }
}

/// The highest of `published` matching the semver requirement `req`.
pub fn pick_version(worker: &str, req: &str, published: &[String]) -> Result<String, ClientError> {
    let parsed = semver::VersionReq::parse(req)
        .map_err(|e| ClientError::Invalid(format!("bad version requirement `{req}`: {e}")))?;
    published
        .iter()
        .filter_map(|v| semver::Version::parse(v).ok())
        .filter(|v| parsed.matches(v))
        .max()
        .map(|v| v.to_string())
        .ok_or_else(|| ClientError::NoMatchingVersion {
            worker: worker.to_owned(),
            requirement: req.to_owned(),
            published: published.to_vec(),
        })
}

fn random_suffix() -> String {
    use std::time::{SystemTime, UNIX_EPOCH};
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_nanos())
        .unwrap_or(0);
    format!("{}-{nanos}", std::process::id())
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
