//! Annotation keys written on release indexes and platform manifests: the
//! standard `org.opencontainers.image.*` ones and rbee's `dev.rbee.worker.*`.

/// File name of a layer, e.g. `llm-worker-rbee-cpu-0.1.0-linux-x86_64.tar.gz`;
/// `oras pull` saves the layer under this name.
pub const TITLE: &str = "org.opencontainers.image.title";
/// Release version, the semver of the worker (`0.1.0`).
pub const VERSION: &str = "org.opencontainers.image.version";
/// When the release was built, RFC 3339.
pub const CREATED: &str = "org.opencontainers.image.created";
/// URL of the worker's source code.
pub const SOURCE: &str = "org.opencontainers.image.source";
/// SPDX license expression of the worker.
pub const LICENSES: &str = "org.opencontainers.image.licenses";
/// Human-readable description of the worker.
pub const DESCRIPTION: &str = "org.opencontainers.image.description";
/// Source revision (commit or tag) the release was built from.
pub const REVISION: &str = "org.opencontainers.image.revision";
/// URL of a page about the worker.
pub const URL: &str = "org.opencontainers.image.url";

/// Worker id, e.g. `llm-worker-rbee-cpu`.
pub const WORKER_ID: &str = "dev.rbee.worker.id";
/// Worker family, e.g. `llm-worker-rbee`.
pub const WORKER_FAMILY: &str = "dev.rbee.worker.family";
/// Backend, one of `cpu`, `cuda`, `metal`, `rocm`.
pub const WORKER_BACKEND: &str = "dev.rbee.worker.backend";
/// `"true"` or `"false"`: whether downloading needs a license key.
/// Annotation values are strings, so the boolean is spelled out.
pub const WORKER_REQUIRES_LICENSE: &str = "dev.rbee.worker.requires-license";
/// rbee platform name of a platform manifest, e.g. `linux-x86_64`; the OCI
/// `platform` field carries the OCI pair, this one saves readers the mapping.
pub const WORKER_PLATFORM: &str = "dev.rbee.worker.platform";
