//! The catalog index artifact (`rbee/catalog:latest`): reading it, and
//! adding or refreshing a worker's entry after a release.

use bytes::Bytes;
use rbee_schemas::oci::{self as documents, Annotations, ImageManifest};
use rbee_schemas::{CatalogEntry, CatalogIndex, annotations as ann, limits, media_types as mt};

use crate::client::RegistryClient;
use crate::error::PushError;

/// Adds or refreshes this worker's entry in the catalog index artifact.
/// Two publishers racing may both read the old catalog; each re-reads after
/// writing and tries again if its entry was lost.
pub(crate) async fn update_catalog(
    client: &RegistryClient,
    catalog_repo: &str,
    metadata: &rbee_schemas::WorkerMetadata,
    repo: &str,
    versions: &[semver::Version],
) -> Result<(), PushError> {
    let entry = catalog_entry(metadata, repo, versions);
    let listed = |catalog: &CatalogIndex| {
        catalog
            .get(&entry.id)
            .is_some_and(|e| same_catalog_entry(e, &entry))
    };
    for _ in 0..3 {
        let mut catalog = read_catalog(client, catalog_repo)
            .await?
            .unwrap_or_default();
        if listed(&catalog) {
            return Ok(());
        }
        catalog.upsert(entry.clone());
        catalog.updated_at = entry.updated_at.clone();
        write_catalog(client, catalog_repo, &catalog).await?;
        let check = read_catalog(client, catalog_repo)
            .await?
            .unwrap_or_default();
        if listed(&check) {
            return Ok(());
        }
    }
    Err(PushError::Registry(format!(
        "the catalog {catalog_repo}:latest kept changing underneath; try again"
    )))
}

/// This worker's catalog entry: every published version and this one.
fn catalog_entry(
    metadata: &rbee_schemas::WorkerMetadata,
    repo: &str,
    versions: &[semver::Version],
) -> CatalogEntry {
    let mut entry = CatalogEntry {
        id: metadata.id.clone(),
        repository: repo.to_owned(),
        latest: None,
        versions: Vec::new(),
        requires_license: metadata.distribution.requires_license,
        updated_at: chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
    };
    entry.insert_versions(versions.iter().chain([&metadata.version]));
    entry
}

/// Two entries say the same, whenever they were written.
fn same_catalog_entry(a: &CatalogEntry, b: &CatalogEntry) -> bool {
    (
        &a.id,
        &a.repository,
        &a.latest,
        &a.versions,
        a.requires_license,
    ) == (
        &b.id,
        &b.repository,
        &b.latest,
        &b.versions,
        b.requires_license,
    )
}

/// Writes `catalog` as the catalog artifact under `latest`: its document
/// as the one layer, the empty config.
async fn write_catalog(
    client: &RegistryClient,
    catalog_repo: &str,
    catalog: &CatalogIndex,
) -> Result<(), PushError> {
    // Write only what the catalog will read back (its limits on
    // workers, versions and size included).
    catalog.validate().map_err(|e| {
        PushError::Invalid(format!(
            "the catalog index {catalog_repo}:latest would be refused by its readers: {e}"
        ))
    })?;
    let doc = Bytes::from(catalog.to_json_pretty().into_bytes());
    let empty = Bytes::from_static(b"{}");
    client
        .ensure_small_blob(catalog_repo, empty.clone())
        .await?;
    client.ensure_small_blob(catalog_repo, doc.clone()).await?;
    let mut layer = documents::describe(mt::CATALOG_INDEX, &doc);
    layer.annotations = Some(Annotations::from([(
        ann::TITLE.into(),
        "catalog.json".into(),
    )]));
    let manifest = ImageManifest {
        schema_version: 2,
        media_type: mt::OCI_MANIFEST.into(),
        artifact_type: Some(mt::CATALOG_ARTIFACT_TYPE.into()),
        config: documents::describe(mt::OCI_EMPTY, &empty),
        layers: vec![layer],
        subject: None,
        annotations: None,
    };
    client
        .put_manifest(
            catalog_repo,
            "latest",
            mt::OCI_MANIFEST,
            Bytes::from(documents::to_bytes(&manifest)),
        )
        .await?;
    Ok(())
}

/// Reads the catalog index document, if there is one.
pub async fn read_catalog(
    client: &RegistryClient,
    catalog_repo: &str,
) -> Result<Option<CatalogIndex>, PushError> {
    let Some(found) = client.get_manifest(catalog_repo, "latest", true).await? else {
        return Ok(None);
    };
    let manifest: ImageManifest = serde_json::from_slice(&found.bytes).map_err(|e| {
        PushError::Registry(format!(
            "{catalog_repo}:latest is not an image manifest: {e}"
        ))
    })?;
    let layer = manifest
        .layers
        .first()
        .ok_or_else(|| PushError::Registry(format!("{catalog_repo}:latest has no layer")))?;
    let doc = client
        .get_blob(catalog_repo, &layer.digest, limits::CATALOG_MAX_BYTES)
        .await?;
    let text = std::str::from_utf8(&doc)
        .map_err(|e| PushError::Registry(format!("catalog is not UTF-8: {e}")))?;
    CatalogIndex::from_json(text).map(Some).map_err(|e| {
        PushError::Registry(format!(
            "{catalog_repo}:latest holds an invalid catalog: {e}"
        ))
    })
}
