//! The writes of a publication after the blobs: platform manifests by
//! digest, the index under the version tag, `latest`, the PKGBUILD
//! referrer; each only once everything it references is there.

use rbee_schemas::media_types as mt;
use rbee_schemas::oci::{self as documents, Descriptor};

use super::checks::TaggedIndex;
use super::documents::PlatformManifest;
use crate::client::RegistryClient;
use crate::error::PushError;
use crate::progress::Reporter;
use crate::referrers::{self, PkgbuildArtifact};

/// Writes each platform manifest by its digest (its blobs are there).
pub(super) async fn write_platform_manifests(
    client: &RegistryClient,
    repo: &str,
    manifests: &[PlatformManifest],
    reporter: &Reporter,
) -> Result<(), PushError> {
    for m in manifests {
        client
            .put_manifest(
                repo,
                &m.descriptor.digest,
                mt::OCI_MANIFEST,
                m.bytes.clone(),
            )
            .await?;
        reporter.line(&format!(
            "  manifest {}: {}",
            m.platform, m.descriptor.digest
        ));
    }
    Ok(())
}

/// Writes the index under the version tag (its manifests are there).
pub(super) async fn write_index(
    client: &RegistryClient,
    repo: &str,
    version: &str,
    index: &TaggedIndex,
    reporter: &Reporter,
) -> Result<(), PushError> {
    client
        .put_manifest(repo, version, mt::OCI_INDEX, index.bytes.clone())
        .await?;
    reporter.line(&format!(
        "tagged {repo}:{version} -> {}",
        index.descriptor.digest
    ));
    Ok(())
}

/// Points `latest` at the index, unless it points there already.
pub(crate) async fn tag_latest(
    client: &RegistryClient,
    repo: &str,
    index: &TaggedIndex,
    reporter: &Reporter,
) -> Result<(), PushError> {
    let current = client.get_manifest(repo, "latest", true).await?;
    if current.as_ref().map(|c| documents::sha256_digest(&c.bytes))
        != Some(index.descriptor.digest.clone())
    {
        client
            .put_manifest(repo, "latest", mt::OCI_INDEX, index.bytes.clone())
            .await?;
        reporter.line(&format!("tagged {repo}:latest"));
    }
    Ok(())
}

/// Attaches the PKGBUILD as a referrer of the index, replacing `previous`.
pub(super) async fn attach_pkgbuild(
    client: &RegistryClient,
    repo: &str,
    index: &TaggedIndex,
    artifact: &PkgbuildArtifact,
    previous: &[Descriptor],
    reporter: &Reporter,
) -> Result<(), PushError> {
    referrers::attach(client, repo, &index.descriptor.digest, artifact, previous).await?;
    reporter.line(&format!(
        "attached PKGBUILD: {}",
        artifact.descriptor.digest
    ));
    Ok(())
}
