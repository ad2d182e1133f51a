//! Installing straight from the registry when the catalog is unreachable:
//! the version from the repository's tags, the platform from the image
//! index, the worker's metadata from the platform manifest's config (a
//! premium worker is refused: only the catalog can check a license), and
//! the build from its layer, read through `oci-client`.
//!
//! The registry is trusted no more than the catalog: every digest is
//! parsed before it names a file or a request, the metadata must be the
//! worker and version asked for, the layer's size is capped, its `urls`
//! are dropped (a manifest cannot send the download elsewhere), and the
//! bytes go through the same budgeted, resumable, verified download as
//! the catalog path. The release's signature is read from the index's
//! referrers and checked against the trusted keys in the same place as
//! the catalog's.

use std::future::Future;

use futures_util::StreamExt as _;
use oci_client::client::{BlobResponse, ClientConfig, ClientProtocol};
use oci_client::manifest::{OciDescriptor, OciManifest};
use oci_client::secrets::RegistryAuth;
use oci_client::{Client, Reference};
use rbee_schemas::WorkerMetadata;
use rbee_schemas::media_types as mt;
use rbee_schemas::signature::{
    DOCUMENT_MAX_BYTES as SIGNATURE_DOCUMENT_MAX, Minisig, ReleaseSignature,
    SIGNATURE_ARTIFACT_TYPE, SIGNATURE_DOCUMENT,
};
use rbee_schemas::v1::DownloadSignature;
use sha2::Digest as _;

use crate::api::worker_id;
use crate::checked::{Sha256Digest, WorkerId};
use crate::download::{self, Body, Expected, Opened, Progress};
use crate::error::ClientError;
use crate::install::{Installer, Outcome, pick};
use crate::layout::Dest;
use crate::limits::{MAX_ANSWER_BYTES, MAX_METADATA_BYTES};

/// Signature artifacts read per release (one per signing key).
const MAX_SIGNATURE_ARTIFACTS: usize = 16;

/// Where to find workers in a registry.
#[derive(Debug, Clone)]
pub struct RegistrySource {
    /// `http://host:port` or `https://ghcr.io`.
    pub url: String,
    /// Repository namespace (`rbee`).
    pub namespace: String,
}

/// Sorts oci-client's errors into the client's: a missing repository,
/// tag or blob is "not found" (not a network error), an error status is a
/// server error, and only a failed request is network trouble.
fn oci_error(what: &str, e: oci_client::errors::OciDistributionError) -> ClientError {
    use oci_client::errors::{OciDistributionError as E, OciErrorCode as C};
    match e {
        E::RegistryError { envelope, .. }
            if envelope.errors.iter().any(|e| {
                matches!(
                    e.code,
                    C::NameUnknown | C::ManifestUnknown | C::BlobUnknown | C::NotFound
                )
            }) =>
        {
            ClientError::NotFound(format!("registry: {what}: {envelope}"))
        }
        E::ImageManifestNotFoundError(m) => ClientError::NotFound(format!("registry: {what}: {m}")),
        E::ServerError { code: 404, url, .. } => {
            ClientError::NotFound(format!("registry: {what}: nothing at {url}"))
        }
        E::ServerError { code, message, .. } => ClientError::Server {
            status: code,
            message: format!("registry: {what}: {message}"),
        },
        E::UnauthorizedError { url } => ClientError::Server {
            status: 401,
            message: format!("registry: {what}: not authorized at {url} (a private repository?)"),
        },
        E::RequestError(e) => match ClientError::from(e) {
            ClientError::Network(m) => ClientError::Network(format!("registry: {what}: {m}")),
            ClientError::Timeout(m) => ClientError::Timeout(format!("registry: {what}: {m}")),
            other => other,
        },
        other => ClientError::registry(format!("{what}: {other}")),
    }
}

/// A registry request that must answer within `limit`.
async fn within<T>(
    limit: std::time::Duration,
    what: &str,
    fut: impl Future<Output = Result<T, oci_client::errors::OciDistributionError>>,
) -> Result<T, ClientError> {
    tokio::time::timeout(limit, fut)
        .await
        .map_err(|_| ClientError::Timeout(format!("registry: {what}")))?
        .map_err(|e| oci_error(what, e))
}

/// A descriptor with only what a pull needs: no `urls` (foreign
/// locations oci-client would otherwise try), no annotations.
fn bare(media_type: &str, digest: &Sha256Digest, size: u64) -> OciDescriptor {
    OciDescriptor {
        media_type: media_type.to_owned(),
        digest: digest.to_string(),
        size: size as i64,
        urls: None,
        annotations: None,
        artifact_type: None,
    }
}

/// A descriptor's size, refused when negative or above `max`.
fn size_of(descriptor: &OciDescriptor, max: u64) -> Result<u64, ClientError> {
    let size = u64::try_from(descriptor.size)
        .map_err(|_| ClientError::registry(format!("a negative size {}", descriptor.size)))?;
    if size > max {
        return Err(ClientError::TooLarge { size, max });
    }
    Ok(size)
}

impl Installer {
    /// Installs `worker` from the registry directly, bypassing the catalog.
    pub async fn install_from_registry(
        &self,
        source: &RegistrySource,
        worker: &str,
        requirement: Option<&str>,
    ) -> Result<Outcome, ClientError> {
        self.install_from_registry_with_progress(source, worker, requirement, &|_, _| {})
            .await
    }

    /// [`Installer::install_from_registry`], telling `progress` how the
    /// download advances.
    pub async fn install_from_registry_with_progress(
        &self,
        source: &RegistrySource,
        worker: &str,
        requirement: Option<&str>,
        progress: Progress<'_>,
    ) -> Result<Outcome, ClientError> {
        let id = worker_id(worker)?;
        if !rbee_schemas::is_repository_name_component(&source.namespace) {
            return Err(ClientError::Invalid(format!(
                "`{}` is not a repository namespace",
                source.namespace
            )));
        }
        let url =
            reqwest::Url::parse(&source.url).map_err(|e| ClientError::Invalid(e.to_string()))?;
        let host = match (url.host_str(), url.port()) {
            (Some(h), Some(p)) => format!("{h}:{p}"),
            (Some(h), None) => h.to_owned(),
            (None, _) => {
                return Err(ClientError::Invalid(format!(
                    "registry URL `{url}` has no host"
                )));
            }
        };
        let protocol = match url.scheme() {
            "http" => ClientProtocol::Http,
            "https" => ClientProtocol::Https,
            other => {
                return Err(ClientError::Invalid(format!(
                    "registry URL scheme `{other}` is not http(s)"
                )));
            }
        };
        let timeouts = self.catalog.timeouts();
        let client = Client::new(ClientConfig {
            protocol,
            connect_timeout: Some(timeouts.connect),
            read_timeout: Some(timeouts.read_idle),
            ..Default::default()
        });
        let auth = RegistryAuth::Anonymous;
        let repo = format!("{}/{id}", source.namespace);
        let answer = timeouts.answer();
        let at = |tag: &str| Reference::with_tag(host.clone(), repo.clone(), tag.to_owned());

        let tags = within(
            answer,
            "listing tags",
            client.list_tags(&at("latest"), &auth, None, None),
        )
        .await?
        .tags;
        let version = pick(id.as_str(), requirement.unwrap_or("*"), &tags)?;
        let (index_bytes, _) = within(
            answer,
            "reading the image index",
            client.pull_manifest_raw(&at(&version.to_string()), &auth, &[mt::OCI_INDEX]),
        )
        .await?;
        if index_bytes.len() > MAX_ANSWER_BYTES {
            return Err(ClientError::registry("an image index over the size cap"));
        }
        let index: rbee_schemas::oci::ImageIndex =
            serde_json::from_slice(&index_bytes).map_err(|e| {
                ClientError::registry(format!("{repo}:{version} is not an image index: {e}"))
            })?;
        let entry = index.find_platform(self.platform()).ok_or_else(|| {
            ClientError::NoBuildForPlatform {
                platform: self.platform().to_string(),
                available: index
                    .platform_builds()
                    .map(|(p, _)| p.to_string())
                    .collect(),
            }
        })?;
        let manifest_digest = Sha256Digest::parse(&entry.digest).map_err(ClientError::registry)?;
        let by_digest =
            Reference::with_digest(host.clone(), repo.clone(), manifest_digest.to_string());
        let (manifest, _) = within(
            answer,
            "reading the platform manifest",
            client.pull_manifest(&by_digest, &auth),
        )
        .await?;
        let OciManifest::Image(manifest) = manifest else {
            return Err(ClientError::registry(format!(
                "{repo}@{manifest_digest} is not an image manifest"
            )));
        };

        let layer = manifest
            .layers
            .iter()
            .find(|l| mt::is_worker_layer(&l.media_type))
            .ok_or_else(|| {
                ClientError::registry(format!("{repo}@{manifest_digest} has no worker layer"))
            })?;
        let layer_digest = Sha256Digest::parse(&layer.digest).map_err(ClientError::registry)?;
        let size = size_of(layer, self.max_download)?;

        let dest = Dest::create(self.dest_dir())?;
        let _lock = dest.lock_async().await?;
        if let Some(existing) = self.already_installed(&dest, &id, &version, &layer_digest)? {
            return Ok(Outcome::AlreadyInstalled(existing));
        }
        // Before a byte of the build is read, and not for a build already
        // installed (which needs no request at all).
        self.check_metadata(&client, &by_digest, &manifest.config, &id, &version)
            .await?;
        // The signature, as the catalog would have handed it over.
        let index_ref = Reference::with_digest(
            host.clone(),
            repo.clone(),
            format!("sha256:{}", hex::encode(sha2::Sha256::digest(&index_bytes))),
        );
        let signature = self
            .registry_signature(&client, &index_ref, &id, &version, &layer_digest)
            .await?;
        let descriptor = bare(&layer.media_type, &layer_digest, size);
        let (client, by_digest, descriptor) = (&client, &by_digest, &descriptor);
        let open = |offset: u64| async move {
            let opened = if offset == 0 {
                BlobResponse::Full(
                    within(
                        timeouts.total,
                        "opening the layer",
                        client.pull_blob_stream(by_digest, descriptor),
                    )
                    .await?,
                )
            } else {
                within(
                    timeouts.total,
                    "opening the layer",
                    client.pull_blob_stream_partial(by_digest, descriptor, offset, None),
                )
                .await?
            };
            let body = |s: oci_client::client::SizedStream| -> Body {
                s.stream
                    .map(|c| c.map_err(|e| ClientError::Network(format!("registry: {e}"))))
                    .boxed()
            };
            Ok(match opened {
                BlobResponse::Full(s) => Opened::Full(body(s)),
                BlobResponse::Partial(s) => Opened::Partial(body(s)),
            })
        };
        let expected = Expected {
            digest: &layer_digest,
            size,
            max_size: self.max_download,
            timeouts,
        };
        let file = download::fetch(open, expected, &dest.downloads(), progress).await?;
        self.put_in_place(
            &dest,
            &id,
            &version,
            &layer_digest,
            &file.path,
            signature.as_ref(),
        )
        .await
    }

    /// Reads the worker metadata (the manifest's config) and checks it is
    /// the worker and version asked for, and free: a premium worker needs
    /// a license only the catalog can check.
    async fn check_metadata(
        &self,
        client: &Client,
        reference: &Reference,
        config: &OciDescriptor,
        worker: &WorkerId,
        version: &semver::Version,
    ) -> Result<(), ClientError> {
        if config.media_type != mt::WORKER_METADATA {
            return Err(ClientError::registry(format!(
                "the manifest's config is `{}`, not rbee worker metadata",
                config.media_type
            )));
        }
        let digest = Sha256Digest::parse(&config.digest).map_err(ClientError::registry)?;
        let size = size_of(config, MAX_METADATA_BYTES)?;
        let bytes = self
            .small_blob(client, reference, mt::WORKER_METADATA, &digest, size)
            .await?;
        let text = std::str::from_utf8(&bytes)
            .map_err(|_| ClientError::registry("the worker metadata is not UTF-8"))?;
        let metadata = WorkerMetadata::from_json(text)
            .map_err(|e| ClientError::registry(format!("bad worker metadata: {e}")))?;
        if metadata.id != worker.as_str() || metadata.version != *version {
            return Err(ClientError::registry(format!(
                "asked for {worker} {version}, the metadata is for {} {}",
                metadata.id.escape_debug(),
                metadata.version
            )));
        }
        if metadata.distribution.requires_license {
            return Err(ClientError::LicenseRequired {
                purchase_url: metadata.pricing.map(|p| p.purchase_url),
            });
        }
        Ok(())
    }
}

impl Installer {
    /// A small blob of `size` bytes (already capped by the caller), read
    /// within the answer deadline and checked against `digest`.
    async fn small_blob(
        &self,
        client: &Client,
        reference: &Reference,
        media_type: &str,
        digest: &Sha256Digest,
        size: u64,
    ) -> Result<Vec<u8>, ClientError> {
        let timeouts = self.catalog.timeouts();
        let mut stream = within(
            timeouts.answer(),
            "opening a small blob",
            client.pull_blob_stream(reference, &bare(media_type, digest, size)),
        )
        .await?
        .stream;
        let mut bytes = Vec::new();
        let read = async {
            while let Some(chunk) = stream.next().await {
                let chunk = chunk.map_err(|e| ClientError::Network(format!("registry: {e}")))?;
                let take = chunk.len().min(size as usize - bytes.len());
                bytes.extend_from_slice(&chunk[..take]);
                if bytes.len() as u64 == size {
                    break;
                }
            }
            Ok::<(), ClientError>(())
        };
        tokio::time::timeout(timeouts.answer(), read)
            .await
            .map_err(|_| ClientError::Timeout(format!("registry: reading {media_type}")))??;
        let actual = format!("sha256:{}", hex::encode(sha2::Sha256::digest(&bytes)));
        if actual != digest.as_str() {
            return Err(ClientError::Checksum {
                expected: digest.to_string(),
                actual,
            });
        }
        Ok(bytes)
    }

    /// The publisher's signature of the build `layer_digest`, read from
    /// the referrers of the release index `index` (the referrers API, or
    /// the `sha256-<hex>` fallback tag) as the catalog reads it: the
    /// newest signature document that reads, names this worker and
    /// version, and covers this build. `None` when there is none: whether
    /// that is acceptable is the trust store's decision, in
    /// `put_in_place`. The registry is not trusted here either: what it
    /// says is only passed on to the verification.
    async fn registry_signature(
        &self,
        client: &Client,
        index: &Reference,
        worker: &WorkerId,
        version: &semver::Version,
        layer_digest: &Sha256Digest,
    ) -> Result<Option<DownloadSignature>, ClientError> {
        let answer = self.catalog.timeouts().answer();
        let listed = match within(
            answer,
            "listing the release's signatures",
            client.pull_referrers(index, Some(SIGNATURE_ARTIFACT_TYPE)),
        )
        .await
        {
            Ok(listed) => listed.manifests,
            Err(ClientError::NotFound(_)) => return Ok(None),
            Err(e) => return Err(e),
        };
        let mut best: Option<(String, ReleaseSignature)> = None;
        for entry in listed.iter().take(MAX_SIGNATURE_ARTIFACTS) {
            let Ok(digest) = Sha256Digest::parse(&entry.digest) else {
                continue;
            };
            let by_digest = Reference::with_digest(
                index.registry().to_owned(),
                index.repository().to_owned(),
                digest.to_string(),
            );
            let (bytes, _) = within(
                answer,
                "reading a signature",
                client.pull_manifest_raw(&by_digest, &RegistryAuth::Anonymous, &[mt::OCI_MANIFEST]),
            )
            .await?;
            let actual = format!("sha256:{}", hex::encode(sha2::Sha256::digest(&bytes)));
            if actual != digest.as_str() || bytes.len() > MAX_ANSWER_BYTES {
                continue;
            }
            let Ok(manifest) = serde_json::from_slice::<rbee_schemas::oci::ImageManifest>(&bytes)
            else {
                continue;
            };
            if manifest.artifact_type.as_deref() != Some(SIGNATURE_ARTIFACT_TYPE) {
                continue;
            }
            let Some(layer) = manifest
                .layers
                .iter()
                .find(|l| l.media_type == SIGNATURE_DOCUMENT)
            else {
                continue;
            };
            let Ok(layer_digest) = Sha256Digest::parse(&layer.digest) else {
                continue;
            };
            if layer.size > SIGNATURE_DOCUMENT_MAX as u64 {
                continue;
            }
            let doc = self
                .small_blob(
                    client,
                    &by_digest,
                    SIGNATURE_DOCUMENT,
                    &layer_digest,
                    layer.size,
                )
                .await?;
            let Ok(doc) = ReleaseSignature::from_json(&doc) else {
                continue;
            };
            if doc.worker_id != worker.as_str() || doc.version != version.to_string() {
                continue;
            }
            let created = manifest
                .annotations
                .as_ref()
                .and_then(|a| a.get(rbee_schemas::annotations::CREATED).cloned())
                .unwrap_or_default();
            if best.as_ref().is_none_or(|(c, _)| created > *c) {
                best = Some((created, doc));
            }
        }
        Ok(best.and_then(|(_, doc)| {
            let entry = doc
                .signatures
                .iter()
                .find(|s| s.platform == self.platform() && s.digest == layer_digest.as_str())?;
            let sig = Minisig::parse(&entry.minisig).ok()?;
            Some(DownloadSignature {
                key_id: sig.key_id,
                minisig: sig.text,
                trusted_comment: sig.trusted_comment,
            })
        }))
    }
}
