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
//! the catalog path.

use std::future::Future;

use futures_util::StreamExt as _;
use oci_client::client::{BlobResponse, ClientConfig, ClientProtocol};
use oci_client::manifest::{OciDescriptor, OciManifest};
use oci_client::secrets::RegistryAuth;
use oci_client::{Client, Reference};
use rbee_schemas::WorkerMetadata;
use rbee_schemas::media_types as mt;
use sha2::Digest as _;

use crate::api::worker_id;
use crate::checked::{Sha256Digest, WorkerId};
use crate::download::{self, Body, Expected, Opened, Progress};
use crate::error::ClientError;
use crate::install::{Installer, Outcome, pick};
use crate::layout::Dest;
use crate::limits::{MAX_ANSWER_BYTES, MAX_METADATA_BYTES};

/// Where to find workers in a registry.
#[derive(Debug, Clone)]
pub struct RegistrySource {
    /// `http://host:port` or `https://ghcr.io`.
    pub url: String,
    /// Repository namespace (`rbee`).
    pub namespace: String,
}

fn oci_error(e: oci_client::errors::OciDistributionError) -> ClientError {
    ClientError::Network(format!("registry: {e}"))
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
        .map_err(oci_error)
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
            .find(|l| l.media_type == mt::WORKER_LAYER)
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
        let descriptor = bare(mt::WORKER_LAYER, &layer_digest, size);
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
        self.put_in_place(&dest, &id, &version, &layer_digest, &file.path)
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
        let timeouts = self.catalog.timeouts();
        let mut stream = within(
            timeouts.answer(),
            "opening the worker metadata",
            client.pull_blob_stream(reference, &bare(mt::WORKER_METADATA, &digest, size)),
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
            .map_err(|_| ClientError::Timeout("registry: reading the worker metadata".into()))??;
        let actual = format!("sha256:{}", hex::encode(sha2::Sha256::digest(&bytes)));
        if actual != digest.as_str() {
            return Err(ClientError::Checksum {
                expected: digest.to_string(),
                actual,
            });
        }
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
