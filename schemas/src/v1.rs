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
    /// The price of a license (premium workers), from the metadata.
    /// Read as `null` from catalogs that predate it.
    #[cfg_attr(feature = "openapi", schema(required = true))]
    #[serde(default)]
    pub pricing: Option<Price>,
    /// Only when the request carried a license key: whether it unlocks
    /// the latest version (always true for free workers).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub unlocked: Option<bool>,
    /// The OCI repository, e.g. `rbee/llm-worker-rbee-cpu`.
    pub repository: String,
    /// The latest version's worker metadata document.
    #[cfg_attr(
        feature = "openapi",
        schema(value_type = crate::openapi::WorkerMetadataSchema)
    )]
    pub metadata: WorkerMetadata,
}

/// The price of a premium worker's license.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Price {
    /// Price in units of `currency`, for display (the purchase page owns
    /// the exact amount).
    pub amount: f64,
    /// ISO 4217 code, e.g. `EUR`.
    pub currency: String,
    /// Where a license is bought.
    pub purchase_url: String,
}

/// `POST /v1/licenses/verify`. Written only (no client reads it yet):
/// `expires_at` is absent, `null` or a time, which a plain `Option` could
/// not read back apart.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
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
    #[cfg_attr(feature = "openapi", schema(value_type = Option<String>))]
    pub expires_at: Option<Option<String>>,
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
    /// The version is yanked (listed only with `?include_yanked=true`).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub yanked: bool,
    /// Why it was yanked, when it is.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub yank_reason: Option<String>,
    /// The publisher's signature of the release, when it is signed
    /// (absent when not).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub signature: Option<SignatureInfo>,
}

/// Who signed a release (`Version.signature`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct SignatureInfo {
    /// The minisign key id of the signing key (16 upper-case hex digits,
    /// as `minisign` prints it).
    pub key_id: String,
}

/// A build's signature (`Download.signature`): what `rbee-worker`
/// verifies against the publisher keys it trusts, and what
/// `minisign -V` reads.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct DownloadSignature {
    /// The minisign key id of the signing key.
    pub key_id: String,
    /// The whole `.minisig` text (four lines).
    pub minisig: String,
    /// The signed statement, the signature's trusted comment: JSON naming
    /// the worker, version, platform and digest.
    pub trusted_comment: String,
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
    /// Where to GET the tar.gz with no credentials. For a premium worker a
    /// signed URL of the catalog, valid for `expires_in` seconds.
    pub download_url: String,
    /// `sha256:<hex>` of the tar.gz.
    pub checksum: String,
    /// Size of the tar.gz in bytes.
    pub size: u64,
    /// File name of the tar.gz, e.g. `llm-worker-rbee-cpu-0.1.0-linux-x86_64.tar.gz`.
    pub filename: String,
    /// Seconds the URL stays valid (3600 for a premium build); `null`
    /// when it does not expire.
    #[cfg_attr(feature = "openapi", schema(required = true))]
    pub expires_in: Option<u64>,
    /// `registry/repo@sha256:…` of the platform manifest, for OCI clients.
    pub oci_reference: String,
    /// The publisher's signature of this build, when the release is
    /// signed (absent when not).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub signature: Option<DownloadSignature>,
    /// A delta from the build named by `?from=` to this one, when the
    /// publisher attached one; absent otherwise (and without `?from=`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub delta: Option<DownloadDelta>,
}

/// A delta of a download (`?from=`): what to GET instead of the whole
/// archive when the build `from` is at hand (`rbee_schemas::delta`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct DownloadDelta {
    /// Where to GET the delta, with no credentials (a signed URL of the
    /// catalog for a premium build, valid as long as `download_url`).
    pub url: String,
    /// `sha256:<hex>` of the delta blob.
    pub digest: String,
    /// Size of the delta blob in bytes.
    pub size: u64,
    /// `sha256:<hex>` of the archive it applies to (the `from` asked for).
    pub from: String,
    /// How the rebuilt tar is compressed again to give the archive
    /// (`zstd:LEVEL`); the result must hash to `checksum`.
    pub recompress: String,
    /// log2 of the zstd window decoding needs (a memory budget).
    pub window_log: u32,
}

/// Downloads and attempts of one group in the stats (`/v1/.../stats`,
/// `/v1/stats/overview`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct DownloadCount {
    /// What is counted: a version, a platform name, a source, a client
    /// family or a worker id.
    pub key: String,
    /// Complete downloads (the whole layer was sent).
    pub downloads: u64,
    /// Transfers abandoned before the end (not downloads).
    pub incomplete: u64,
}

/// One day of a worker's downloads.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct DailyDownloads {
    /// The UTC date, `YYYY-MM-DD`.
    pub day: String,
    /// Complete downloads that day.
    pub downloads: u64,
    /// Transfers abandoned that day.
    pub incomplete: u64,
    /// Distinct clients that day (counted by a keyed hash of their address
    /// whose key changes daily; neither is ever shown).
    pub unique_clients: u64,
}

/// `/v1/workers/:id/stats`: one worker's downloads over the last `days`
/// days (today included).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct WorkerStats {
    /// Worker id.
    pub worker_id: String,
    /// The number of days covered, today included.
    pub days: u32,
    /// Complete downloads over those days.
    pub total: u64,
    /// Transfers abandoned over those days.
    pub incomplete: u64,
    /// Complete downloads over attempts, from 0 to 1 (a transfer resumed
    /// with `Range` is one attempt); `null` when there was none.
    #[cfg_attr(feature = "openapi", schema(required = true))]
    pub completion_rate: Option<f64>,
    /// Per version, most downloaded first.
    pub by_version: Vec<DownloadCount>,
    /// Per rbee platform, most downloaded first.
    pub by_platform: Vec<DownloadCount>,
    /// Every day of the range, oldest first (days without downloads too).
    pub per_day: Vec<DailyDownloads>,
}

/// One download of the overview's recent list: no client data.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct RecentDownload {
    /// Worker id.
    pub worker_id: String,
    /// The version.
    pub version: String,
    /// The rbee platform name.
    pub platform: String,
    /// When it completed (RFC 3339).
    pub at: String,
}

/// `/v1/stats/overview`: every worker's downloads over the last `days`
/// days.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct StatsOverview {
    /// The number of days covered, today included.
    pub days: u32,
    /// Complete downloads of all workers over those days.
    pub total: u64,
    /// The most downloaded workers (key: worker id), most first.
    pub top_workers: Vec<DownloadCount>,
    /// The newest complete downloads, newest first.
    pub recent_downloads: Vec<RecentDownload>,
    /// Per rbee platform.
    pub by_platform: Vec<DownloadCount>,
    /// Per source: `v1` (the catalog's download route) or `registry` (a
    /// direct OCI pull of a worker layer).
    pub by_source: Vec<DownloadCount>,
    /// Per client family: `rbee-hive`, `rbee-worker`, `oras`, `skopeo`,
    /// `crane`, `curl` or `other`.
    pub by_client_family: Vec<DownloadCount>,
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
            pricing: None,
            unlocked: None,
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
