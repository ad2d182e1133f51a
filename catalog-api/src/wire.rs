//! The JSON shapes the catalog answers with. Legacy shapes keep the field
//! names today's rbee-hive and marketplace read (both snake_case and the
//! camelCase of rbee's contract type); `/v1` shapes are snake_case.

use std::collections::BTreeSet;

use rbee_schemas::{Platform, WorkerMetadata};
use serde::Serialize;

use crate::catalog::{PlatformBuild, Release};

/// rbee-hive compares these to `std::env::consts::OS`.
fn os_name(p: Platform) -> &'static str {
    p.name().split('-').next().unwrap_or("")
}

/// rbee-hive compares these to `std::env::consts::ARCH`.
fn arch_name(p: Platform) -> &'static str {
    p.name().split('-').nth(1).unwrap_or("")
}

/// A worker as `/workers` and `/workers/:id` serve it.
#[derive(Debug, Serialize)]
pub struct LegacyWorker {
    pub id: String,
    pub name: String,
    pub version: String,
    pub description: String,
    /// OS names: `linux`, `macos`, `windows`.
    pub platforms: Vec<String>,
    /// CPU architectures: `x86_64`, `aarch64`.
    pub architectures: Vec<String>,
    pub depends: Vec<String>,
    pub makedepends: Vec<String>,
    /// The backend, as the list view reads it.
    pub worker_type: String,
    /// The backend, as rbee's contract type reads it.
    #[serde(rename = "workerType")]
    pub worker_type_camel: String,
    pub license: String,
    pub implementation: String,
    #[serde(rename = "buildSystem")]
    pub build_system: String,
    #[serde(rename = "pkgbuildUrl")]
    pub pkgbuild_url: String,
    #[serde(rename = "binaryName")]
    pub binary_name: String,
    #[serde(rename = "installPath")]
    pub install_path: String,
    #[serde(rename = "supportedFormats")]
    pub supported_formats: Vec<String>,
    #[serde(rename = "maxContextLength")]
    pub max_context_length: Option<u64>,
    #[serde(rename = "supportsStreaming")]
    pub supports_streaming: bool,
    #[serde(rename = "supportsBatching")]
    pub supports_batching: bool,
    #[serde(rename = "requiresLicense")]
    pub requires_license: bool,
    pub source: serde_json::Value,
}

impl LegacyWorker {
    /// The legacy view of a release's metadata.
    pub fn new(m: &WorkerMetadata) -> Self {
        let os: BTreeSet<&str> = m.platforms.iter().map(|p| os_name(*p)).collect();
        let arch: BTreeSet<&str> = m.platforms.iter().map(|p| arch_name(*p)).collect();
        LegacyWorker {
            id: m.id.clone(),
            name: m.name.clone(),
            version: m.version.to_string(),
            description: m.description.clone(),
            platforms: os.into_iter().map(str::to_owned).collect(),
            architectures: arch.into_iter().map(str::to_owned).collect(),
            depends: m.depends.clone(),
            makedepends: m.makedepends.clone(),
            worker_type: m.backend.to_string(),
            worker_type_camel: m.backend.to_string(),
            license: m.license.clone(),
            implementation: m.implementation.clone(),
            build_system: m.build_system.clone(),
            pkgbuild_url: format!("/workers/{}/PKGBUILD", m.id),
            binary_name: m.binary_name.clone(),
            install_path: m.install_path.clone(),
            supported_formats: m.capabilities.supported_formats.clone(),
            max_context_length: m.capabilities.max_context_length,
            supports_streaming: m.capabilities.streaming,
            supports_batching: m.capabilities.batching,
            requires_license: m.distribution.requires_license,
            source: serde_json::to_value(&m.source).unwrap_or_default(),
        }
    }
}

/// A worker as `/v1/workers` and `/v1/workers/:id` serve it.
#[derive(Debug, Serialize)]
pub struct Worker {
    pub id: String,
    pub name: String,
    pub family: String,
    pub backend: String,
    pub description: String,
    pub license: String,
    pub latest_version: String,
    pub versions: Vec<String>,
    /// rbee platform names the latest version declares.
    pub platforms: Vec<Platform>,
    pub requires_license: bool,
    pub repository: String,
    pub metadata: WorkerMetadata,
}

impl Worker {
    /// The v1 view of a worker's latest release.
    pub fn new(release: &Release, versions: Vec<String>) -> Self {
        let m = &release.metadata;
        Worker {
            id: m.id.clone(),
            name: m.name.clone(),
            family: m.family.clone(),
            backend: m.backend.to_string(),
            description: m.description.clone(),
            license: m.license.clone(),
            latest_version: m.version.to_string(),
            versions,
            platforms: m.platforms.clone(),
            requires_license: m.distribution.requires_license,
            repository: release.repository.clone(),
            metadata: m.clone(),
        }
    }
}

/// One version in `/v1/workers/:id/versions`.
#[derive(Debug, Serialize)]
pub struct Version {
    pub version: String,
    pub published_at: Option<String>,
    pub index_digest: String,
    pub platforms: Vec<PlatformBuild>,
}

impl Version {
    /// The v1 view of a release.
    pub fn new(release: &Release) -> Self {
        Version {
            version: release.version.to_string(),
            published_at: release.published_at.clone(),
            index_digest: release.index_digest.clone(),
            platforms: release.builds.clone(),
        }
    }
}

/// `/v1/workers/:id/versions`.
#[derive(Debug, Serialize)]
pub struct Versions {
    pub versions: Vec<Version>,
    pub latest: Option<String>,
}

/// `/v1/workers/:id/:version/download`.
#[derive(Debug, Serialize)]
pub struct Download {
    pub worker_id: String,
    pub version: String,
    pub platform: Platform,
    /// Where to GET the tar.gz (plain HTTP, no auth needed unless premium).
    pub download_url: String,
    /// `sha256:<hex>` of the tar.gz.
    pub checksum: String,
    pub size: u64,
    pub filename: String,
    /// Seconds the URL stays valid; `null` when it does not expire.
    pub expires_in: Option<u64>,
    /// `registry/repo@sha256:…` of the platform manifest, for OCI clients.
    pub oci_reference: String,
}
