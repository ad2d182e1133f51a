//! The PKGBUILD artifact: an OCI manifest whose `subject` is the release
//! index, attached through the referrers API, or through the fallback tag
//! `sha256-<hex>` (distribution-spec "referrers tag schema") on
//! registries without it.

use bytes::Bytes;
use rbee_schemas::oci::{self as documents, Annotations, Descriptor, ImageIndex, ImageManifest};
use rbee_schemas::{annotations as ann, media_types as mt};

use crate::client::RegistryClient;
use crate::error::PushError;

/// A PKGBUILD artifact ready to push.
#[derive(Debug, Clone)]
pub struct PkgbuildArtifact {
    /// The manifest bytes.
    pub manifest: Bytes,
    /// Its descriptor (with `artifactType`), as referrer lists show it.
    pub descriptor: Descriptor,
    /// The blobs it references: `{}`, the PKGBUILD, the `.SRCINFO`.
    blobs: [Bytes; 3],
}

impl PkgbuildArtifact {
    /// The artifact for `pkgbuild` and `srcinfo`, referring to `index`.
    /// It carries no time, so the same files give the same digest.
    pub fn new(index: &Descriptor, pkgbuild: &str, srcinfo: &str) -> Self {
        let empty = Bytes::from_static(b"{}");
        let pkgbuild = Bytes::from(pkgbuild.to_owned());
        let srcinfo = Bytes::from(srcinfo.to_owned());
        let mut pkg_desc = documents::describe(mt::PKGBUILD, &pkgbuild);
        pkg_desc.annotations = Some(Annotations::from([(ann::TITLE.into(), "PKGBUILD".into())]));
        let mut src_desc = documents::describe(mt::SRCINFO, &srcinfo);
        src_desc.annotations = Some(Annotations::from([(ann::TITLE.into(), ".SRCINFO".into())]));
        let mut subject = index.clone();
        subject.annotations = None;
        let manifest = ImageManifest {
            schema_version: 2,
            media_type: mt::OCI_MANIFEST.into(),
            artifact_type: Some(mt::PKGBUILD_ARTIFACT_TYPE.into()),
            config: documents::describe(mt::OCI_EMPTY, &empty),
            layers: vec![pkg_desc, src_desc],
            subject: Some(subject),
            annotations: None,
        };
        let manifest = Bytes::from(documents::to_bytes(&manifest));
        let mut descriptor = documents::describe(mt::OCI_MANIFEST, &manifest);
        descriptor.artifact_type = Some(mt::PKGBUILD_ARTIFACT_TYPE.into());
        PkgbuildArtifact {
            manifest,
            descriptor,
            blobs: [empty, pkgbuild, srcinfo],
        }
    }
}

fn fallback_tag(subject: &str) -> String {
    subject.replace(':', "-")
}

fn empty_index() -> ImageIndex {
    ImageIndex {
        schema_version: 2,
        media_type: mt::OCI_INDEX.into(),
        artifact_type: None,
        manifests: Vec::new(),
        annotations: None,
    }
}

/// The referrers of `subject` as the fallback tag lists them.
async fn fallback_index(
    client: &RegistryClient,
    repo: &str,
    subject: &str,
) -> Result<ImageIndex, PushError> {
    let tag = fallback_tag(subject);
    match client.get_manifest(repo, &tag, true).await? {
        Some(found) => serde_json::from_slice(&found.bytes).map_err(|e| {
            PushError::Registry(format!(
                "the referrers tag {tag} holds something that is not an index: {e}"
            ))
        }),
        None => Ok(empty_index()),
    }
}

/// The PKGBUILD artifacts already attached to `subject`.
pub async fn attached(
    client: &RegistryClient,
    repo: &str,
    subject: &str,
) -> Result<Vec<Descriptor>, PushError> {
    let listed = match client
        .referrers(repo, subject, mt::PKGBUILD_ARTIFACT_TYPE)
        .await?
    {
        Some(index) => index.manifests,
        None => fallback_index(client, repo, subject).await?.manifests,
    };
    Ok(listed
        .into_iter()
        .filter(|d| d.artifact_type.as_deref() == Some(mt::PKGBUILD_ARTIFACT_TYPE))
        .collect())
}

/// Attaches `artifact` to `subject`, replacing other PKGBUILD artifacts
/// already attached (the caller decided it may). Writes nothing when it is
/// attached already.
pub async fn attach(
    client: &RegistryClient,
    repo: &str,
    subject: &str,
    artifact: &PkgbuildArtifact,
    previous: &[Descriptor],
) -> Result<(), PushError> {
    let digest = &artifact.descriptor.digest;
    for blob in &artifact.blobs {
        client.ensure_small_blob(repo, blob.clone()).await?;
    }
    let subject_indexed = if client.get_manifest(repo, digest, true).await?.is_some() {
        client
            .referrers(repo, subject, mt::PKGBUILD_ARTIFACT_TYPE)
            .await?
            .is_some()
    } else {
        client
            .put_manifest(repo, digest, mt::OCI_MANIFEST, artifact.manifest.clone())
            .await?
            .subject_indexed
    };
    for old in previous.iter().filter(|d| d.digest != *digest) {
        // Best effort: a registry with deletes switched off keeps listing
        // the old one next to the new one.
        if let Err(e) = client.delete_manifest(repo, &old.digest).await {
            tracing::warn!(digest = %old.digest, error = %e, "could not remove the replaced PKGBUILD artifact");
        }
    }
    if !subject_indexed {
        let mut index = fallback_index(client, repo, subject).await?;
        let before = index.manifests.clone();
        index.manifests.retain(|d| {
            d.artifact_type.as_deref() != Some(mt::PKGBUILD_ARTIFACT_TYPE) || d.digest == *digest
        });
        if !index.manifests.iter().any(|d| d.digest == *digest) {
            index.manifests.push(artifact.descriptor.clone());
        }
        if index.manifests != before {
            let bytes = Bytes::from(documents::to_bytes(&index));
            client
                .put_manifest(repo, &fallback_tag(subject), mt::OCI_INDEX, bytes)
                .await?;
        }
    }
    Ok(())
}

/// The referrers of `subject` of `artifact_type`, through the referrers
/// API or, on registries without it, the fallback tag.
pub async fn listed(
    client: &RegistryClient,
    repo: &str,
    subject: &str,
    artifact_type: &str,
) -> Result<Vec<Descriptor>, PushError> {
    let listed = match client.referrers(repo, subject, artifact_type).await? {
        Some(index) => index.manifests,
        None => fallback_index(client, repo, subject).await?.manifests,
    };
    Ok(listed
        .into_iter()
        .filter(|d| d.artifact_type.as_deref() == Some(artifact_type))
        .collect())
}

/// Writes the referrer `manifest` (its blobs uploaded already) and, on a
/// registry that did not index its subject, adds it to the fallback tag
/// next to the referrers listed there (none replaced).
pub async fn add(
    client: &RegistryClient,
    repo: &str,
    subject: &str,
    manifest: Bytes,
    descriptor: &Descriptor,
) -> Result<(), PushError> {
    let put = client
        .put_manifest(repo, &descriptor.digest, mt::OCI_MANIFEST, manifest)
        .await?;
    if !put.subject_indexed {
        add_to_fallback(client, repo, subject, descriptor).await?;
    }
    Ok(())
}

/// Adds `descriptor` to the fallback tag of `subject`, for a registry
/// that did not index the referrer's PUT itself (no `OCI-Subject`).
pub async fn add_to_fallback(
    client: &RegistryClient,
    repo: &str,
    subject: &str,
    descriptor: &Descriptor,
) -> Result<(), PushError> {
    let mut index = fallback_index(client, repo, subject).await?;
    if index
        .manifests
        .iter()
        .any(|d| d.digest == descriptor.digest)
    {
        return Ok(());
    }
    index.manifests.push(descriptor.clone());
    let bytes = Bytes::from(documents::to_bytes(&index));
    client
        .put_manifest(repo, &fallback_tag(subject), mt::OCI_INDEX, bytes)
        .await?;
    Ok(())
}
