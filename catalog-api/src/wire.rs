//! The JSON shapes the catalog answers with. Legacy shapes keep the field
//! names today's rbee-hive and marketplace read (both snake_case and the
//! camelCase of rbee's contract type); `/v1` shapes are snake_case.
//!
//! Each type derives `ToSchema`, so `/openapi.json` describes exactly what
//! is serialised; the doc comments become the schema descriptions. An
//! `Option` field that is always serialised (as `null` when empty) is marked
//! `required`, since clients may rely on the key being there.

use std::collections::BTreeSet;

use rbee_schemas::{Platform, WorkerMetadata};
use serde::Serialize;
use utoipa::ToSchema;

use crate::domain::catalog::{self, Release};
use crate::openapi::{PlatformName, WorkerMetadataSchema};

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
    /// The price of a license, for premium workers.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub pricing: Option<Price>,
    /// Only when the request carried a license key: whether it unlocks
    /// the latest version (always true for free workers).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub unlocked: Option<bool>,
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
            pricing: m.pricing.as_ref().map(Price::from),
            unlocked: None,
            source: serde_json::to_value(&m.source).unwrap_or_default(),
        }
    }
}

/// A worker as `/v1/workers` and `/v1/workers/:id` serve it.
#[derive(Debug, Serialize, ToSchema)]
pub struct Worker {
    /// Worker id, e.g. `llm-worker-rbee-cpu`.
    pub id: String,
    /// Human-readable name.
    pub name: String,
    /// The worker family the backends share, e.g. `llm-worker-rbee`.
    pub family: String,
    /// `cpu`, `cuda`, `metal` or `rocm`.
    pub backend: String,
    /// One-line description.
    pub description: String,
    /// SPDX license expression.
    pub license: String,
    /// The highest stable version.
    pub latest_version: String,
    /// Every published version.
    pub versions: Vec<String>,
    /// rbee platform names the latest version declares.
    #[schema(value_type = Vec<PlatformName>)]
    pub platforms: Vec<Platform>,
    /// Whether downloads need a license key (premium workers).
    pub requires_license: bool,
    /// The price of a license (premium workers), from the metadata.
    #[schema(required = true)]
    pub pricing: Option<Price>,
    /// Only when the request carried a license key: whether it unlocks
    /// the latest version (always true for free workers).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub unlocked: Option<bool>,
    /// The OCI repository, e.g. `rbee/llm-worker-rbee-cpu`.
    pub repository: String,
    /// The latest version's worker metadata document.
    #[schema(value_type = WorkerMetadataSchema)]
    pub metadata: WorkerMetadata,
}

/// `GET /v1/workers`.
#[derive(Debug, Serialize, ToSchema)]
pub struct Workers {
    /// The latest version of every published worker that passes the filters.
    pub workers: Vec<Worker>,
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
            pricing: m.pricing.as_ref().map(Price::from),
            unlocked: None,
            repository: release.repository.clone(),
            metadata: m.clone(),
        }
    }
}

/// The price of a premium worker's license.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct Price {
    /// Price in units of `currency`, for display (the purchase page owns
    /// the exact amount).
    pub amount: f64,
    /// ISO 4217 code, e.g. `EUR`.
    pub currency: String,
    /// Where a license is bought.
    pub purchase_url: String,
}

impl From<&rbee_schemas::Pricing> for Price {
    fn from(p: &rbee_schemas::Pricing) -> Self {
        Price {
            amount: p.amount,
            currency: p.currency.clone(),
            purchase_url: p.purchase_url.clone(),
        }
    }
}

/// `POST /v1/licenses/verify`.
#[derive(Debug, Serialize, ToSchema)]
pub struct LicenseVerification {
    /// Whether the key is a current license. Malformed, unknown, revoked
    /// and expired keys all answer `false` and nothing else.
    pub valid: bool,
    /// The worker ids it unlocks (only when valid).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub worker_ids: Option<Vec<String>>,
    /// The namespaces whose every worker it unlocks (only when valid).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub namespaces: Option<Vec<String>>,
    /// When it expires, RFC 3339; `null` for a license that does not
    /// (only when valid).
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<String>)]
    pub expires_at: Option<Option<String>>,
}

/// One platform build of a release.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct PlatformBuild {
    /// rbee platform name.
    #[schema(value_type = PlatformName)]
    pub platform: Platform,
    /// Digest of the platform manifest.
    pub manifest_digest: String,
    /// Digest of the tar.gz: the checksum to verify.
    pub layer_digest: String,
    /// Size of the tar.gz in bytes.
    pub size: u64,
    /// File name of the tar.gz.
    pub filename: String,
}

impl From<&catalog::PlatformBuild> for PlatformBuild {
    fn from(b: &catalog::PlatformBuild) -> Self {
        PlatformBuild {
            platform: b.platform,
            manifest_digest: b.manifest_digest.clone(),
            layer_digest: b.layer_digest.clone(),
            size: b.size,
            filename: b.filename.clone(),
        }
    }
}

/// One version in `/v1/workers/:id/versions`.
#[derive(Debug, Serialize, ToSchema)]
pub struct Version {
    /// The semver version.
    pub version: String,
    /// When it was published (`org.opencontainers.image.created`, RFC 3339).
    #[schema(required = true)]
    pub published_at: Option<String>,
    /// Digest of the release's OCI image index.
    pub index_digest: String,
    /// One entry per platform build.
    pub platforms: Vec<PlatformBuild>,
}

impl Version {
    /// The v1 view of a release.
    pub fn new(release: &Release) -> Self {
        Version {
            version: release.version.to_string(),
            published_at: release.published_at.clone(),
            index_digest: release.index_digest.clone(),
            platforms: release.builds.iter().map(PlatformBuild::from).collect(),
        }
    }
}

/// `/v1/workers/:id/versions`.
#[derive(Debug, Serialize, ToSchema)]
pub struct Versions {
    /// Newest first, by semver.
    pub versions: Vec<Version>,
    /// The highest stable version, if there is one.
    #[schema(required = true)]
    pub latest: Option<String>,
}

/// `/v1/workers/:id/:version/download`.
#[derive(Debug, Serialize, ToSchema)]
pub struct Download {
    /// Worker id.
    pub worker_id: String,
    /// The resolved version (never `latest`).
    pub version: String,
    /// The rbee platform of this build.
    #[schema(value_type = PlatformName)]
    pub platform: Platform,
    /// Where to GET the tar.gz with no credentials. For a premium worker a
    /// signed URL of this catalog, valid for `expires_in` seconds.
    pub download_url: String,
    /// `sha256:<hex>` of the tar.gz.
    pub checksum: String,
    /// Size of the tar.gz in bytes.
    pub size: u64,
    /// File name of the tar.gz, e.g. `llm-worker-rbee-cpu-0.1.0-linux-x86_64.tar.gz`.
    pub filename: String,
    /// Seconds the URL stays valid (3600 for a premium build); `null`
    /// when it does not expire.
    #[schema(required = true)]
    pub expires_in: Option<u64>,
    /// `registry/repo@sha256:…` of the platform manifest, for OCI clients.
    pub oci_reference: String,
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
