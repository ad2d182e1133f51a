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

pub use rbee_schemas::v1::{
    Download, DownloadDelta, LicenseVerification, PlatformBuild, Price, Version, Versions, Worker,
    Workers,
};

use crate::domain::catalog::{self, Release};
use crate::openapi::{BackendName, LegacyArch, LegacyBuildSystem, LegacyImplementation, LegacyOs};

/// rbee-hive compares these to `std::env::consts::OS`.
fn os_name(p: Platform) -> &'static str {
    p.name().split('-').next().unwrap_or("")
}

/// rbee-hive compares these to `std::env::consts::ARCH`.
fn arch_name(p: Platform) -> &'static str {
    p.name().split('-').nth(1).unwrap_or("")
}

/// A worker as `/workers` and `/workers/:id` serve it: one superset that
/// every catalog reader rbee ships accepts (docs/api.md, "Legacy routes").
///
/// rbee-hive's installer reads `id`, `name`, `version`, `platforms`,
/// `architectures`, `depends`; its CLI and web UI read snake_case fields;
/// rbee-keeper's marketplace SDK decodes rbee's strict camelCase
/// `WorkerCatalogEntry` (a required `build`, closed enums); the marketplace
/// site reads a worker family with `variants` and `capabilities`. Where
/// two readers spell a field differently, both spellings are served.
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
    /// SPDX license expression.
    pub license: String,
    /// OS names (`linux`, `macos`, `windows`), which rbee-hive compares to
    /// `std::env::consts::OS`.
    #[schema(value_type = Vec<LegacyOs>)]
    pub platforms: Vec<&'static str>,
    /// CPU architectures (`x86_64`, `aarch64`), which rbee-hive compares to
    /// `std::env::consts::ARCH`.
    #[schema(value_type = Vec<LegacyArch>)]
    pub architectures: Vec<&'static str>,
    /// Runtime dependencies (Arch package names).
    pub depends: Vec<String>,
    /// Build dependencies (Arch package names).
    pub makedepends: Vec<String>,
    /// The backend, as rbee-hive's CLI and web UI read it.
    #[schema(value_type = BackendName)]
    pub worker_type: &'static str,
    /// The backend, as rbee's `WorkerCatalogEntry` reads it.
    #[serde(rename = "workerType")]
    #[schema(value_type = BackendName)]
    pub worker_type_camel: &'static str,
    /// Implementation language: `rust`, `python` or `cpp`.
    #[schema(value_type = LegacyImplementation)]
    pub implementation: String,
    /// Build system, as rbee-hive's web UI reads it.
    #[schema(value_type = LegacyBuildSystem)]
    pub build_system: String,
    /// Build system, as rbee's `WorkerCatalogEntry` reads it.
    #[serde(rename = "buildSystem")]
    #[schema(value_type = LegacyBuildSystem)]
    pub build_system_camel: String,
    /// Path of the PKGBUILD route on this server.
    #[serde(rename = "pkgbuildUrl")]
    pub pkgbuild_url: String,
    /// Where the source lives: the metadata document's `source` object
    /// (`type`, `url`, and `tag` or `branch`).
    #[schema(value_type = Object)]
    pub source: serde_json::Value,
    /// rbee's `BuildConfig` (`features`, `profile`, `flags`, all optional),
    /// which `WorkerCatalogEntry` requires. Always empty: the PKGBUILD says
    /// how to build.
    pub build: LegacyBuild,
    /// File name of the binary inside the release archive.
    #[serde(rename = "binaryName")]
    pub binary_name: String,
    /// Where the binary is installed.
    #[serde(rename = "installPath")]
    pub install_path: String,
    /// Model formats the worker loads, e.g. `gguf` (rbee's contract type).
    #[serde(rename = "supportedFormats")]
    pub supported_formats_camel: Vec<String>,
    /// The same, as rbee-hive's web UI reads it.
    pub supported_formats: Vec<String>,
    /// Longest context the worker supports, when it says (rbee's contract
    /// type reads a `u32`).
    #[serde(rename = "maxContextLength")]
    #[schema(value_type = Option<u64>, required = true, maximum = 4294967295_u64)]
    pub max_context_length_camel: Option<u32>,
    /// The same, as rbee-hive's web UI reads it.
    #[schema(value_type = Option<u64>, required = true, maximum = 4294967295_u64)]
    pub max_context_length: Option<u32>,
    /// Whether the worker streams tokens (rbee's contract type).
    #[serde(rename = "supportsStreaming")]
    pub supports_streaming_camel: bool,
    /// The same, as rbee-hive's web UI reads it.
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
    /// The marketplace site's view: this worker as a family with one
    /// variant, its own backend.
    pub variants: Vec<LegacyVariant>,
    /// The marketplace site's view of the capabilities.
    pub capabilities: LegacyCapabilities,
}

/// rbee's `BuildConfig`: every field optional, none served.
#[derive(Debug, Serialize, ToSchema)]
pub struct LegacyBuild {}

/// One build variant, as the marketplace site's `BuildVariant` reads it.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct LegacyVariant {
    /// The backend of this variant.
    #[schema(value_type = BackendName)]
    pub backend: &'static str,
    /// OS names.
    #[schema(value_type = Vec<LegacyOs>)]
    pub platforms: Vec<&'static str>,
    /// CPU architectures.
    #[schema(value_type = Vec<LegacyArch>)]
    pub architectures: Vec<&'static str>,
    /// Path of the PKGBUILD route on this server.
    pub pkgbuild_url: String,
    /// The same PKGBUILD: it builds from git.
    pub pkgbuild_url_git: String,
    /// rbee's `BuildConfig`, empty.
    pub build: LegacyBuild,
    /// Runtime dependencies.
    pub depends: Vec<String>,
    /// Build dependencies.
    pub makedepends: Vec<String>,
    /// File name of the binary inside the release archive.
    pub binary_name: String,
    /// Where the binary is installed.
    pub install_path: String,
}

/// Capabilities, as the marketplace site's `WorkerCapabilities` reads them.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct LegacyCapabilities {
    /// Model formats the worker loads.
    pub supported_formats: Vec<String>,
    /// Longest context, when the worker says.
    #[schema(value_type = Option<u64>, required = true, maximum = 4294967295_u64)]
    pub max_context_length: Option<u32>,
    /// Whether the worker streams tokens.
    pub supports_streaming: bool,
    /// Whether the worker batches requests.
    pub supports_batching: bool,
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
        let platforms: Vec<&'static str> = m
            .platforms
            .iter()
            .map(|p| os_name(*p))
            .collect::<BTreeSet<_>>()
            .into_iter()
            .collect();
        let architectures: Vec<&'static str> = m
            .platforms
            .iter()
            .map(|p| arch_name(*p))
            .collect::<BTreeSet<_>>()
            .into_iter()
            .collect();
        let pkgbuild_url = format!("/workers/{}/PKGBUILD", m.id);
        let caps = &m.capabilities;
        // The metadata schema caps it at `u32::MAX`, so this never drops a
        // value of a valid document.
        let max_context_length = caps.max_context_length.and_then(|n| u32::try_from(n).ok());
        LegacyWorker {
            id: m.id.clone(),
            name: m.name.clone(),
            version: m.version.to_string(),
            description: m.description.clone(),
            license: m.license.clone(),
            platforms: platforms.clone(),
            architectures: architectures.clone(),
            depends: m.depends.clone(),
            makedepends: m.makedepends.clone(),
            worker_type: m.backend.as_str(),
            worker_type_camel: m.backend.as_str(),
            implementation: m.implementation.clone(),
            build_system: m.build_system.clone(),
            build_system_camel: m.build_system.clone(),
            pkgbuild_url: pkgbuild_url.clone(),
            source: serde_json::to_value(&m.source).unwrap_or_default(),
            build: LegacyBuild {},
            binary_name: m.binary_name.clone(),
            install_path: m.install_path.clone(),
            supported_formats_camel: caps.supported_formats.clone(),
            supported_formats: caps.supported_formats.clone(),
            max_context_length_camel: max_context_length,
            max_context_length,
            supports_streaming_camel: caps.streaming,
            supports_streaming: caps.streaming,
            supports_batching: caps.batching,
            requires_license: m.distribution.requires_license,
            pricing: m.pricing.as_ref().map(price),
            unlocked: None,
            variants: vec![LegacyVariant {
                backend: m.backend.as_str(),
                platforms,
                architectures,
                pkgbuild_url_git: pkgbuild_url.clone(),
                pkgbuild_url,
                build: LegacyBuild {},
                depends: m.depends.clone(),
                makedepends: m.makedepends.clone(),
                binary_name: m.binary_name.clone(),
                install_path: m.install_path.clone(),
            }],
            capabilities: LegacyCapabilities {
                supported_formats: caps.supported_formats.clone(),
                max_context_length,
                supports_streaming: caps.streaming,
                supports_batching: caps.batching,
            },
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
        pricing: m.pricing.as_ref().map(price),
        unlocked: None,
        repository: release.repository.clone(),
        metadata: m.clone(),
    }
}

/// The v1 view of a worker's price.
pub fn price(p: &rbee_schemas::Pricing) -> Price {
    Price {
        amount: p.amount,
        currency: p.currency.clone(),
        purchase_url: p.purchase_url.clone(),
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
        yanked: release.yank.is_some(),
        yank_reason: release.yank.as_ref().map(|y| y.reason.clone()),
        signature: release
            .signature
            .as_ref()
            .map(|s| rbee_schemas::v1::SignatureInfo {
                key_id: s.key_id.clone(),
            }),
    }
}

/// The signature of one build of a signed release, as `/v1/.../download`
/// hands it to installers: only one that names this build's digest (an
/// older signature of a replaced build is not passed on).
pub fn download_signature(
    release: &Release,
    build: &catalog::PlatformBuild,
) -> Option<rbee_schemas::v1::DownloadSignature> {
    let doc = release.signature.as_ref()?;
    let entry = doc
        .signatures
        .iter()
        .find(|s| s.platform == build.platform && s.digest == build.layer_digest)?;
    let sig = rbee_schemas::signature::Minisig::parse(&entry.minisig).ok()?;
    Some(rbee_schemas::v1::DownloadSignature {
        key_id: sig.key_id,
        minisig: sig.text,
        trusted_comment: sig.trusted_comment,
    })
}

/// `GET /health`, the shape of rbee's catalog.
#[derive(Debug, Serialize, ToSchema)]
pub struct Health {
    /// Always `ok`: the process answers.
    #[schema(example = "ok")]
    pub status: &'static str,
    /// Always `worker-catalog`, the name rbee's own catalog answers with.
    #[schema(example = "worker-catalog")]
    pub service: &'static str,
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
