//! The JSON shapes the catalog answers with. Legacy shapes keep the field
//! names today's rbee-hive and marketplace read (both snake_case and the
//! camelCase of rbee's contract type). The `/v1` shapes are defined once in
//! [`rbee_schemas::v1`], which the client reads with; this module builds
//! them from the domain's releases.
//!
//! Each type derives `ToSchema` (the `/v1` ones through rbee-schemas'
//! `openapi` feature), so `/openapi.json` describes exactly what
//! is serialised; the doc comments become the schema descriptions. An
//! `Option` field that is always serialised (as `null` when empty) is marked
//! `required`, since clients may rely on the key being there.

use std::collections::BTreeSet;

use rbee_schemas::{Platform, WorkerMetadata};
use serde::Serialize;
use utoipa::ToSchema;

pub use rbee_schemas::v1::{Download, PlatformBuild, Version, Versions, Worker, Workers};

use crate::domain::catalog::{self, Release};

/// rbee-hive compares these to `std::env::consts::OS`.
fn os_name(p: Platform) -> &'static str {
    p.name().split('-').next().unwrap_or("")
}

/// rbee-hive compares these to `std::env::consts::ARCH`.
fn arch_name(p: Platform) -> &'static str {
    p.name().split('-').nth(1).unwrap_or("")
}

/// A worker as `/workers` and `/workers/:id` serve it.
#[derive(Debug, Serialize, ToSchema)]
pub struct LegacyWorker {
    /// Worker id, e.g. `llm-worker-rbee-cpu`.
    pub id: String,
    /// Human-readable name.
    pub name: String,
    /// The latest version.
    pub version: String,
    /// One-line description.
    pub description: String,
    /// OS names: `linux`, `macos`, `windows`.
    pub platforms: Vec<String>,
    /// CPU architectures: `x86_64`, `aarch64`.
    pub architectures: Vec<String>,
    /// Runtime dependencies (Arch package names).
    pub depends: Vec<String>,
    /// Build dependencies (Arch package names).
    pub makedepends: Vec<String>,
    /// The backend, as the list view reads it.
    pub worker_type: String,
    /// The backend, as rbee's contract type reads it.
    #[serde(rename = "workerType")]
    pub worker_type_camel: String,
    /// SPDX license expression.
    pub license: String,
    /// Implementation language, e.g. `rust`.
    pub implementation: String,
    /// Build system, e.g. `cargo`.
    #[serde(rename = "buildSystem")]
    pub build_system: String,
    /// Path of the PKGBUILD route on this server.
    #[serde(rename = "pkgbuildUrl")]
    pub pkgbuild_url: String,
    /// File name of the installed binary.
    #[serde(rename = "binaryName")]
    pub binary_name: String,
    /// Where the binary is installed.
    #[serde(rename = "installPath")]
    pub install_path: String,
    /// Model formats the worker loads, e.g. `gguf`.
    #[serde(rename = "supportedFormats")]
    pub supported_formats: Vec<String>,
    /// Longest context the worker supports, when it says.
    #[serde(rename = "maxContextLength")]
    #[schema(required = true)]
    pub max_context_length: Option<u64>,
    /// Whether the worker streams tokens.
    #[serde(rename = "supportsStreaming")]
    pub supports_streaming: bool,
    /// Whether the worker batches requests.
    #[serde(rename = "supportsBatching")]
    pub supports_batching: bool,
    /// Whether downloads need a license key (premium workers).
    #[serde(rename = "requiresLicense")]
    pub requires_license: bool,
    /// Where the source lives: the metadata document's `source` object.
    #[schema(value_type = Object)]
    pub source: serde_json::Value,
}

/// `GET /workers`.
#[derive(Debug, Serialize, ToSchema)]
pub struct LegacyWorkers {
    /// The latest version of every published worker.
    pub workers: Vec<LegacyWorker>,
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

/// The v1 view of a worker's latest release.
pub fn worker(release: &Release, versions: Vec<String>) -> Worker {
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

/// The v1 view of one platform build.
pub fn platform_build(b: &catalog::PlatformBuild) -> PlatformBuild {
    PlatformBuild {
        platform: b.platform,
        manifest_digest: b.manifest_digest.clone(),
        layer_digest: b.layer_digest.clone(),
        size: b.size,
        filename: b.filename.clone(),
    }
}

/// The v1 view of a release.
pub fn version(release: &Release) -> Version {
    Version {
        version: release.version.to_string(),
        published_at: release.published_at.clone(),
        index_digest: release.index_digest.clone(),
        platforms: release.builds.iter().map(platform_build).collect(),
    }
}

/// `GET /health`.
#[derive(Debug, Serialize, ToSchema)]
pub struct Health {
    /// Always `ok`: the process answers.
    #[schema(example = "ok")]
    pub status: &'static str,
    /// The catalog's version.
    pub version: &'static str,
}

/// `GET /ready` when the catalog can answer.
#[derive(Debug, Serialize, ToSchema)]
pub struct Readiness {
    /// Always `ready`.
    #[schema(example = "ready")]
    pub status: &'static str,
    /// True when the worker list comes from the cache because the registry
    /// failed.
    pub stale: bool,
}

/// `POST /v1/webhooks/registry`.
#[derive(Debug, Serialize, ToSchema)]
pub struct WebhookAck {
    /// How many push or delete events invalidated cached data.
    pub invalidated: usize,
}
