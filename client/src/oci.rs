//! Installing straight from the registry when the catalog is unreachable:
//! the version from the repository's tags, the platform from the image
//! index, the build from the platform manifest's layer, read through
//! `oci-client`, which checks the layer digest as it downloads.

use oci_client::client::{ClientConfig, ClientProtocol};
use oci_client::manifest::OciManifest;
use oci_client::secrets::RegistryAuth;
use oci_client::{Client, Reference};
use rbee_schemas::media_types as mt;
use tokio::io::AsyncWriteExt;

use crate::error::ClientError;
use crate::install::{Installer, Outcome, pick_version};

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

impl Installer {
    /// Installs `worker` from the registry directly, bypassing the catalog.
    pub async fn install_from_registry(
        &self,
        source: &RegistrySource,
        worker: &str,
        requirement: Option<&str>,
    ) -> Result<Outcome, ClientError> {
        let url =
            reqwest::Url::parse(&source.url).map_err(|e| ClientError::Invalid(e.to_string()))?;
        let host = match url.port() {
            Some(p) => format!("{}:{p}", url.host_str().unwrap_or_default()),
            None => url.host_str().unwrap_or_default().to_owned(),
        };
        let protocol = if url.scheme() == "http" {
            ClientProtocol::Http
        } else {
            ClientProtocol::Https
        };
        let client = Client::new(ClientConfig {
            protocol,
            ..Default::default()
        });
        let auth = RegistryAuth::Anonymous;
        let repo = format!("{}/{worker}", source.namespace);
        let at = |tag: &str| Reference::with_tag(host.clone(), repo.clone(), tag.to_owned());

        let tags = client
            .list_tags(&at("latest"), &auth, None, None)
            .await
            .map_err(oci_error)?
            .tags;
        let version = pick_version(worker, requirement.unwrap_or("*"), &tags)?;
        let (index_bytes, _) = client
            .pull_manifest_raw(&at(&version), &auth, &[mt::OCI_INDEX])
            .await
            .map_err(oci_error)?;
        let index: rbee_schemas::oci::ImageIndex =
            serde_json::from_slice(&index_bytes).map_err(|e| {
                ClientError::Invalid(format!("{repo}:{version} is not an image index: {e}"))
            })?;
        let oci = self.platform().oci();
        let entry = index
            .manifests
            .iter()
            .find(|d| {
                d.platform
                    .as_ref()
                    .is_some_and(|p| p.os == oci.os && p.architecture == oci.architecture)
            })
            .ok_or_else(|| ClientError::NoBuildForPlatform {
                platform: self.platform().to_string(),
                available: index
                    .manifests
                    .iter()
                    .filter_map(|d| d.platform.as_ref())
                    .filter_map(|p| rbee_schemas::Platform::from_oci(&p.os, &p.architecture))
                    .map(|p| p.to_string())
                    .collect(),
            })?;
        let by_digest = Reference::with_digest(host.clone(), repo.clone(), entry.digest.clone());
        let (manifest, _) = client
            .pull_manifest(&by_digest, &auth)
            .await
            .map_err(oci_error)?;
        let OciManifest::Image(manifest) = manifest else {
            return Err(ClientError::Invalid(format!(
                "{repo}@{} is not an image manifest",
                entry.digest
            )));
        };
        let layer = manifest
            .layers
            .iter()
            .find(|l| l.media_type == mt::WORKER_LAYER)
            .ok_or_else(|| {
                ClientError::Invalid(format!("{repo}@{} has no worker layer", entry.digest))
            })?;
        if let Some(existing) = self.already_installed(worker, &version, &layer.digest)? {
            return Ok(Outcome::AlreadyInstalled(existing));
        }

        let downloads = self.dest_dir().join(".downloads");
        tokio::fs::create_dir_all(&downloads).await?;
        let path = downloads.join(format!("{}.oci", layer.digest.replace(':', "-")));
        let mut file = tokio::fs::File::create(&path).await?;
        // oci-client hashes the layer as it streams and fails on a digest
        // mismatch; a failed file is removed so nothing unverified stays.
        let pulled = client.pull_blob(&by_digest, layer, &mut file).await;
        let flushed = file.flush().await;
        drop(file);
        if let Err(e) = pulled {
            let _ = tokio::fs::remove_file(&path).await;
            return Err(match e {
                oci_client::errors::OciDistributionError::DigestError(d) => ClientError::Checksum {
                    expected: layer.digest.clone(),
                    actual: d.to_string(),
                },
                other => oci_error(other),
            });
        }
        flushed?;
        self.put_in_place(worker, &version, &layer.digest, &path)
            .await
    }
}
