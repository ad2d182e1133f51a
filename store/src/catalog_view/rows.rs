//! The view's records as the catalog reads and writes them, and the rows
//! the tables hold.

use std::collections::HashMap;

use chrono::{DateTime, Utc};

use crate::StoreError;

/// The view's state: what it was built from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ViewState {
    /// The layout of the rows, as the catalog that wrote them numbers it.
    pub format: i64,
    /// Digest of the catalog index manifest the worker list reflects;
    /// `None` when the registry had no catalog index.
    pub catalog_digest: Option<String>,
    /// When the worker list was last written.
    pub synced_at: DateTime<Utc>,
}

/// One worker, as the catalog index lists it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ViewWorker {
    /// Worker id.
    pub id: String,
    /// The repository of its releases.
    pub repository: String,
    /// The version `latest` names.
    pub latest: Option<String>,
    /// Every listed version.
    pub versions: Vec<String>,
    /// Whether downloads need a license.
    pub requires_license: bool,
    /// When it was last published (RFC 3339, as the index says).
    pub updated_at: String,
}

/// A release whose image index was read whole.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ViewRelease {
    /// Its repository.
    pub repository: String,
    /// Its version (semver text).
    pub version: String,
    /// Digest of its image index.
    pub index_digest: String,
    /// The index's `created` annotation.
    pub published_at: Option<String>,
    /// The worker metadata document (JSON).
    pub metadata: String,
    /// Its newest yank record, if any was ever made.
    pub yank: Option<ViewYank>,
    /// Its signature, once releases are signed (not read yet).
    pub signature: Option<String>,
    /// Its platform builds.
    pub builds: Vec<ViewBuild>,
}

/// The newest yank (or unyank) record of a release.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ViewYank {
    /// True when yanked, false after an unyank.
    pub yanked: bool,
    /// Why, as the publisher wrote it.
    pub reason: Option<String>,
    /// When (RFC 3339, as the record says).
    pub at: String,
}

/// One platform build of a release.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ViewBuild {
    /// rbee platform name (`linux-x86_64`).
    pub platform: String,
    /// Digest of the platform manifest.
    pub manifest_digest: String,
    /// Digest of the tar.gz.
    pub layer_digest: String,
    /// Size of the tar.gz.
    pub size: u64,
    /// File name of the tar.gz.
    pub filename: String,
}

#[derive(Debug, sqlx::FromRow)]
pub(crate) struct WorkerRow {
    id: String,
    repository: String,
    latest: Option<String>,
    versions: String,
    requires_license: bool,
    updated_at: String,
}

impl WorkerRow {
    pub(crate) fn into_worker(self) -> Result<ViewWorker, StoreError> {
        let versions = serde_json::from_str(&self.versions).map_err(|e| StoreError::Corrupt {
            what: "catalog_workers.versions",
            source: Box::new(e),
        })?;
        Ok(ViewWorker {
            id: self.id,
            repository: self.repository,
            latest: self.latest,
            versions,
            requires_license: self.requires_license,
            updated_at: self.updated_at,
        })
    }
}

#[derive(Debug, sqlx::FromRow)]
pub(crate) struct ReleaseRow {
    repository: String,
    version: String,
    index_digest: String,
    published_at: Option<String>,
    metadata: String,
    yanked: bool,
    yank_reason: Option<String>,
    yanked_at: Option<String>,
    signature: Option<String>,
}

#[derive(Debug, sqlx::FromRow)]
pub(crate) struct BuildRow {
    repository: String,
    version: String,
    platform: String,
    manifest_digest: String,
    layer_digest: String,
    size: i64,
    filename: String,
}

/// Releases with their builds (builds sorted by platform name; the
/// catalog orders them its own way).
pub(crate) fn attach_builds(releases: Vec<ReleaseRow>, builds: Vec<BuildRow>) -> Vec<ViewRelease> {
    let mut by_release: HashMap<(String, String), Vec<ViewBuild>> = HashMap::new();
    for b in builds {
        by_release
            .entry((b.repository, b.version))
            .or_default()
            .push(ViewBuild {
                platform: b.platform,
                manifest_digest: b.manifest_digest,
                layer_digest: b.layer_digest,
                size: u64::try_from(b.size).unwrap_or(0),
                filename: b.filename,
            });
    }
    releases
        .into_iter()
        .map(|r| {
            let mut builds = by_release
                .remove(&(r.repository.clone(), r.version.clone()))
                .unwrap_or_default();
            builds.sort_by(|a, b| a.platform.cmp(&b.platform));
            ViewRelease {
                yank: r.yanked_at.map(|at| ViewYank {
                    yanked: r.yanked,
                    reason: r.yank_reason,
                    at,
                }),
                repository: r.repository,
                version: r.version,
                index_digest: r.index_digest,
                published_at: r.published_at,
                metadata: r.metadata,
                signature: r.signature,
                builds,
            }
        })
        .collect()
}
