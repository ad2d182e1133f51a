//! The catalog's `/v1` JSON answers, one definition for the server that
//! writes them (`rbee-catalog`) and the client that reads them
//! (`rbee-worker-client`). snake_case JSON.
//!
//! With the `openapi` feature (the catalog's, never the client's) each type
//! derives `utoipa::ToSchema`, so `/openapi.json` describes exactly what is
//! serialised; the doc comments become the schema descriptions. An `Option`
//! field that is always serialised (as `null` when empty) is marked
//! `required`, since clients may rely on the key being there.
//!
//! Reading is as strict as the shapes, with one exception for forward
//! compatibility: a version's builds for platforms this crate does not know
//! yet are left out ([`PlatformBuild`]), so that a catalog which adds a
//! platform does not break older clients installing a known one.

use serde::{Deserialize, Deserializer, Serialize};

use crate::{Platform, WorkerMetadata};

/// A worker as `/v1/workers` and `/v1/workers/:id` serve it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
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
    pub platforms: Vec<Platform>,
    /// Whether downloads need a license key (premium workers).
    pub requires_license: bool,
    /// The OCI repository, e.g. `rbee/llm-worker-rbee-cpu`.
    pub repository: String,
    /// The latest version's worker metadata document.
    #[cfg_attr(
        feature = "openapi",
        schema(value_type = crate::openapi::WorkerMetadataSchema)
    )]
    pub metadata: WorkerMetadata,
}

/// `GET /v1/workers`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Workers {
    /// The latest version of every published worker that passes the filters.
    pub workers: Vec<Worker>,
}

/// One platform build of a release.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct PlatformBuild {
    /// rbee platform name.
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

/// One version in `/v1/workers/:id/versions`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Version {
    /// The semver version.
    pub version: String,
    /// When it was published (`org.opencontainers.image.created`, RFC 3339).
    #[cfg_attr(feature = "openapi", schema(required = true))]
    pub published_at: Option<String>,
    /// Digest of the release's OCI image index.
    pub index_digest: String,
    /// One entry per platform build.
    #[serde(deserialize_with = "known_platform_builds")]
    pub platforms: Vec<PlatformBuild>,
}

/// `/v1/workers/:id/versions`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Versions {
    /// Newest first, by semver.
    pub versions: Vec<Version>,
    /// The highest stable version, if there is one.
    #[cfg_attr(feature = "openapi", schema(required = true))]
    pub latest: Option<String>,
}

/// `/v1/workers/:id/:version/download`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Download {
    /// Worker id.
    pub worker_id: String,
    /// The resolved version (never `latest`).
    pub version: String,
    /// The rbee platform of this build.
    pub platform: Platform,
    /// Where to GET the tar.gz (plain HTTP, no auth needed unless premium).
    pub download_url: String,
    /// `sha256:<hex>` of the tar.gz.
    pub checksum: String,
    /// Size of the tar.gz in bytes.
    pub size: u64,
    /// File name of the tar.gz, e.g. `llm-worker-rbee-cpu-0.1.0-linux-x86_64.tar.gz`.
    pub filename: String,
    /// Seconds the URL stays valid; `null` when it does not expire.
    #[cfg_attr(feature = "openapi", schema(required = true))]
    pub expires_in: Option<u64>,
    /// `registry/repo@sha256:…` of the platform manifest, for OCI clients.
    pub oci_reference: String,
}

/// Reads a version's builds, leaving out those for a platform name this
/// crate does not know (a newer catalog's); any other fault in a build is
/// an error.
fn known_platform_builds<'de, D: Deserializer<'de>>(
    deserializer: D,
) -> Result<Vec<PlatformBuild>, D::Error> {
    let builds = Vec::<serde_json::Value>::deserialize(deserializer)?;
    builds
        .into_iter()
        .filter(|b| match b.get("platform").and_then(|p| p.as_str()) {
            Some(name) => name.parse::<Platform>().is_ok(),
            None => true,
        })
        .map(|b| PlatformBuild::deserialize(b).map_err(serde::de::Error::custom))
        .collect()
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn build(platform: &str) -> serde_json::Value {
        json!({
            "platform": platform,
            "manifest_digest": "sha256:aa",
            "layer_digest": "sha256:bb",
            "size": 3,
            "filename": format!("w-0.1.0-{platform}.tar.gz"),
        })
    }

    #[test]
    fn builds_for_unknown_platforms_are_left_out_when_reading_a_version() {
        let v: Version = serde_json::from_value(json!({
            "version": "0.1.0",
            "published_at": null,
            "index_digest": "sha256:cc",
            "platforms": [build("linux-x86_64"), build("plan9-mips"), build("macos-aarch64")],
        }))
        .unwrap();
        let platforms: Vec<Platform> = v.platforms.iter().map(|b| b.platform).collect();
        assert_eq!(platforms, [Platform::LinuxX86_64, Platform::MacosAarch64]);
    }

    #[test]
    fn a_malformed_build_is_still_an_error() {
        let mut bad = build("linux-x86_64");
        bad["size"] = json!("three");
        let read = serde_json::from_value::<Version>(json!({
            "version": "0.1.0",
            "published_at": null,
            "index_digest": "sha256:cc",
            "platforms": [bad],
        }));
        assert!(read.is_err());
    }

    #[test]
    fn a_worker_with_its_metadata_round_trips() {
        let metadata =
            WorkerMetadata::from_json(include_str!("../../examples/hello-worker/metadata.json"))
                .unwrap();
        let worker = Worker {
            id: metadata.id.clone(),
            name: metadata.name.clone(),
            family: metadata.family.clone(),
            backend: metadata.backend.to_string(),
            description: metadata.description.clone(),
            license: metadata.license.clone(),
            latest_version: metadata.version.to_string(),
            versions: vec![metadata.version.to_string()],
            platforms: metadata.platforms.clone(),
            requires_license: false,
            repository: format!("rbee/{}", metadata.id),
            metadata,
        };
        let text = serde_json::to_string(&Workers {
            workers: vec![worker.clone()],
        })
        .unwrap();
        let read: Workers = serde_json::from_str(&text).unwrap();
        assert_eq!(read.workers, [worker]);
    }

    #[test]
    fn a_download_round_trips_with_its_null_expiry() {
        let text = json!({
            "worker_id": "w",
            "version": "0.1.0",
            "platform": "linux-x86_64",
            "download_url": "/v1/blobs/x",
            "checksum": "sha256:bb",
            "size": 3,
            "filename": "w.tar.gz",
            "expires_in": null,
            "oci_reference": "r/w@sha256:aa",
        });
        let d: Download = serde_json::from_value(text.clone()).unwrap();
        assert_eq!(d.platform, Platform::LinuxX86_64);
        assert_eq!(serde_json::to_value(&d).unwrap(), text);
    }
}
