//! Publishing a release: package, upload blobs, write manifests, the index
//! under the version tag, `latest`, the PKGBUILD referrer and the catalog
//! index, in an order that never lets a reader see a tag before everything
//! it references exists.

use std::collections::BTreeMap;
use std::sync::Arc;

use bytes::Bytes;
use futures_util::{StreamExt, TryStreamExt};
use rbee_schemas::{
    CatalogEntry, CatalogIndex, Platform, annotations as ann, limits, media_types as mt,
};
use serde::Serialize;

use crate::client::{DOCUMENT_MAX_BYTES, RegistryClient};
use crate::error::PushError;
use crate::package::{self, Entry, EntrySource};
use crate::progress::Reporter;
use crate::referrers::{self, PkgbuildArtifact};
use crate::release::Release;
use rbee_schemas::oci::{self as documents, Annotations, Descriptor, ImageIndex, ImageManifest};

/// How to publish.
#[derive(Debug, Clone)]
pub struct PublishOptions {
    /// Repository namespace; default `rbee`, or `rbee-premium` for workers
    /// that require a license.
    pub namespace: Option<String>,
    /// Repository of the catalog index artifact.
    pub catalog_repository: String,
    /// Replace an existing version with different content.
    pub force: bool,
    /// Compute and check everything, write nothing.
    pub dry_run: bool,
    /// gzip level of the archives (0-9).
    pub compression: u32,
    /// `org.opencontainers.image.created` of the index (RFC 3339).
    pub created: String,
}

/// What was published, printed by `--json`.
#[derive(Debug, Clone, Serialize)]
pub struct PublishSummary {
    /// `published`, `unchanged` (same content already there) or `dry-run`.
    pub status: &'static str,
    /// e.g. `127.0.0.1:5000/rbee/llm-worker-rbee-cpu:0.1.0`.
    pub reference: String,
    /// The repository.
    pub repository: String,
    /// The version tag.
    pub version: String,
    /// Digest of the image index.
    pub index_digest: String,
    /// Whether `latest` now points at this version.
    pub latest: bool,
    /// One entry per platform.
    pub platforms: Vec<PlatformSummary>,
    /// Digest of the PKGBUILD referrer manifest.
    pub pkgbuild_digest: Option<String>,
    /// Bytes actually uploaded (0 for a re-push of the same release).
    pub uploaded_bytes: u64,
}

/// One platform of a published release.
#[derive(Debug, Clone, Serialize)]
pub struct PlatformSummary {
    /// rbee platform name.
    pub platform: String,
    /// Digest of its manifest.
    pub manifest_digest: String,
    /// Digest of its tar.gz: the checksum users verify.
    pub layer_digest: String,
    /// Size of the tar.gz.
    pub size: u64,
    /// The tar.gz file name.
    pub filename: String,
}

/// A blob to be uploaded.
#[derive(Debug, Clone)]
enum Blob {
    File {
        path: std::path::PathBuf,
        digest: String,
        size: u64,
        label: String,
    },
    Memory {
        bytes: Bytes,
    },
}

fn descriptor(media_type: &str, digest: &str, size: u64) -> Descriptor {
    Descriptor {
        media_type: media_type.to_owned(),
        digest: digest.to_owned(),
        size,
        platform: None,
        artifact_type: None,
        annotations: None,
    }
}

/// The annotations every release document carries.
fn base_annotations(release: &Release) -> Annotations {
    let m = &release.metadata;
    let mut a = Annotations::new();
    a.insert(ann::VERSION.into(), m.version.to_string());
    a.insert(ann::LICENSES.into(), m.license.clone());
    a.insert(ann::DESCRIPTION.into(), m.description.clone());
    a.insert(ann::SOURCE.into(), m.source.url.clone());
    a.insert(ann::WORKER_ID.into(), m.id.clone());
    a.insert(ann::WORKER_FAMILY.into(), m.family.clone());
    a.insert(ann::WORKER_BACKEND.into(), m.backend.to_string());
    a.insert(
        ann::WORKER_REQUIRES_LICENSE.into(),
        m.distribution.requires_license.to_string(),
    );
    a
}

/// The repository a release goes to.
pub fn repository(release: &Release, opts: &PublishOptions) -> String {
    let ns = opts.namespace.clone().unwrap_or_else(|| {
        if release.metadata.distribution.requires_license {
            "rbee-premium".into()
        } else {
            "rbee".into()
        }
    });
    format!("{ns}/{}", release.metadata.id)
}

/// Publishes `release` through `client`.
pub async fn publish(
    client: &RegistryClient,
    release: &Release,
    opts: &PublishOptions,
    reporter: &Reporter,
) -> Result<PublishSummary, PushError> {
    let repo = repository(release, opts);
    let version = release.metadata.version.to_string();
    let workdir = tempfile::tempdir()?;

    // 1. Package every build (in parallel, on blocking threads).
    reporter.step(&format!(
        "packaging {} build(s) of {repo}:{version}",
        release.builds.len()
    ));
    let mut packages = BTreeMap::new();
    let mut tasks = Vec::new();
    for (platform, path) in &release.builds {
        let entries = vec![
            Entry {
                name: release.metadata.binary_name.clone(),
                source: EntrySource::File(path.clone()),
                mode: 0o755,
            },
            Entry {
                name: "LICENSE".into(),
                source: EntrySource::File(release.license.clone()),
                mode: 0o644,
            },
            Entry {
                name: "README.md".into(),
                source: EntrySource::File(release.readme.clone()),
                mode: 0o644,
            },
            Entry {
                name: "metadata.json".into(),
                source: EntrySource::Bytes(release.metadata_json.clone()),
                mode: 0o644,
            },
        ];
        let out = workdir.path().join(release.archive_name(*platform));
        let level = opts.compression;
        let platform = *platform;
        tasks.push(tokio::task::spawn_blocking(move || {
            package::build(entries, &out, level).map(|p| (platform, p))
        }));
    }
    for task in tasks {
        let (platform, pkg) = task
            .await
            .map_err(|e| PushError::Io(std::io::Error::other(e)))??;
        reporter.line(&format!(
            "  {platform}: {} ({} bytes)",
            pkg.digest, pkg.size
        ));
        packages.insert(platform, pkg);
    }

    // 2. Documents: config, one manifest per platform, the index.
    let config = Bytes::from(release.metadata_json.clone());
    let config_desc = documents::describe(mt::WORKER_METADATA, &config);
    let base = base_annotations(release);
    let mut manifests: Vec<(Platform, Bytes, Descriptor)> = Vec::new();
    for (platform, pkg) in &packages {
        let mut layer = descriptor(mt::WORKER_LAYER, &pkg.digest, pkg.size);
        layer.annotations = Some(Annotations::from([(
            ann::TITLE.into(),
            release.archive_name(*platform),
        )]));
        let mut annotations = base.clone();
        annotations.insert(ann::WORKER_PLATFORM.into(), platform.to_string());
        let manifest = ImageManifest {
            schema_version: 2,
            media_type: mt::OCI_MANIFEST.into(),
            artifact_type: Some(mt::WORKER_ARTIFACT_TYPE.into()),
            config: config_desc.clone(),
            layers: vec![layer],
            subject: None,
            annotations: Some(annotations),
        };
        let bytes = Bytes::from(documents::to_bytes(&manifest));
        let mut desc = documents::describe(mt::OCI_MANIFEST, &bytes);
        let oci = platform.oci();
        desc.platform = Some(documents::Platform {
            architecture: oci.architecture.into(),
            os: oci.os.into(),
        });
        desc.artifact_type = Some(mt::WORKER_ARTIFACT_TYPE.into());
        desc.annotations = Some(Annotations::from([(
            ann::WORKER_PLATFORM.into(),
            platform.to_string(),
        )]));
        manifests.push((*platform, bytes, desc));
    }
    let mut index_annotations = base.clone();
    index_annotations.insert(ann::CREATED.into(), opts.created.clone());
    let mut index = ImageIndex {
        schema_version: 2,
        media_type: mt::OCI_INDEX.into(),
        artifact_type: Some(mt::WORKER_ARTIFACT_TYPE.into()),
        manifests: manifests.iter().map(|(_, _, d)| d.clone()).collect(),
        annotations: Some(index_annotations),
    };

    // 3. Is this version already there?
    let existing = client.get_manifest(&repo, &version, true).await?;
    let mut unchanged = false;
    if let Some(found) = &existing {
        let theirs: Option<ImageIndex> = serde_json::from_slice(&found.bytes).ok();
        let same = theirs.as_ref().is_some_and(|t| {
            let mut a: Vec<&str> = t.manifests.iter().map(|d| d.digest.as_str()).collect();
            let mut b: Vec<&str> = index.manifests.iter().map(|d| d.digest.as_str()).collect();
            a.sort();
            b.sort();
            a == b
        });
        if same {
            // Keep the index as first published (its `created` included).
            index = theirs.unwrap_or(index);
            unchanged = true;
            reporter.line(&format!(
                "{repo}:{version} is already published with the same content"
            ));
        } else if !opts.force {
            return Err(PushError::Conflict(format!(
                "{repo}:{version} already exists with different content; versions are immutable \
                 (publish a new version, or pass --force to replace it)"
            )));
        } else {
            reporter.line(&format!("replacing {repo}:{version} (--force)"));
        }
    }
    let index_bytes = match (&existing, unchanged) {
        (Some(found), true) => found.bytes.clone(),
        _ => Bytes::from(documents::to_bytes(&index)),
    };
    let index_desc = documents::describe(mt::OCI_INDEX, &index_bytes);

    // The PKGBUILD is part of the release: a different one under an
    // existing version is a conflict too.
    let pkgbuild = release
        .pkgbuild
        .as_ref()
        .map(|(p, srcinfo)| PkgbuildArtifact::new(&index_desc, &p.text, srcinfo));
    let mut previous_pkgbuilds = Vec::new();
    if let (Some(artifact), Some(_)) = (&pkgbuild, &existing) {
        previous_pkgbuilds = referrers::attached(client, &repo, &index_desc.digest).await?;
        let differs = !previous_pkgbuilds.is_empty()
            && !previous_pkgbuilds
                .iter()
                .any(|d| d.digest == artifact.descriptor.digest);
        if differs && unchanged {
            if !opts.force {
                return Err(PushError::Conflict(format!(
                    "{repo}:{version} already exists with a different PKGBUILD; versions are immutable \
                     (publish a new version, or pass --force to replace it)"
                )));
            }
            reporter.line(&format!(
                "replacing the PKGBUILD of {repo}:{version} (--force)"
            ));
            unchanged = false;
        }
    }

    let mut summary = PublishSummary {
        status: if opts.dry_run {
            "dry-run"
        } else if unchanged {
            "unchanged"
        } else {
            "published"
        },
        reference: format!("{}/{repo}:{version}", client.host()),
        repository: repo.clone(),
        version: version.clone(),
        index_digest: index_desc.digest.clone(),
        latest: false,
        platforms: manifests
            .iter()
            .map(|(p, _, d)| {
                let pkg = &packages[p];
                PlatformSummary {
                    platform: p.to_string(),
                    manifest_digest: d.digest.clone(),
                    layer_digest: pkg.digest.clone(),
                    size: pkg.size,
                    filename: release.archive_name(*p),
                }
            })
            .collect(),
        pkgbuild_digest: pkgbuild.as_ref().map(|a| a.descriptor.digest.clone()),
        uploaded_bytes: 0,
    };
    let versions = semver_tags(client, &repo).await?;
    // The catalog refuses an index listing more versions of one worker
    // than its limit: refuse before anything is written, not after.
    let known = versions
        .iter()
        .chain([&release.metadata.version])
        .collect::<std::collections::HashSet<_>>()
        .len();
    if known > limits::CATALOG_MAX_VERSIONS {
        return Err(PushError::Invalid(format!(
            "{repo} would have {known} versions; the catalog index lists at most {} per worker \
             (delete old versions first)",
            limits::CATALOG_MAX_VERSIONS
        )));
    }
    let highest_stable = versions.iter().filter(|v| v.pre.is_empty()).max();
    summary.latest = release.metadata.version.pre.is_empty()
        && highest_stable.is_none_or(|h| *h <= release.metadata.version);
    if opts.dry_run {
        reporter.line("dry run: nothing was pushed");
        return Ok(summary);
    }

    // 4. Blobs first, in parallel, skipping what the registry has.
    if !unchanged {
        let mut blobs = vec![Blob::Memory {
            bytes: config.clone(),
        }];
        for (platform, pkg) in &packages {
            blobs.push(Blob::File {
                path: pkg.path.clone(),
                digest: pkg.digest.clone(),
                size: pkg.size,
                label: platform.to_string(),
            });
        }
        let uploaded: Vec<u64> = futures_util::stream::iter(blobs)
            .map(|blob| upload_blob(client, &repo, blob, reporter))
            .buffer_unordered(4)
            .try_collect()
            .await?;
        summary.uploaded_bytes = uploaded.iter().sum();

        // 5. Platform manifests by digest, then the index under the tag.
        for (platform, bytes, desc) in &manifests {
            client
                .put_manifest(&repo, &desc.digest, mt::OCI_MANIFEST, bytes.clone())
                .await?;
            reporter.line(&format!("  manifest {platform}: {}", desc.digest));
        }
        client
            .put_manifest(&repo, &version, mt::OCI_INDEX, index_bytes.clone())
            .await?;
        reporter.line(&format!("tagged {repo}:{version} -> {}", index_desc.digest));
    }

    // 6. `latest`, when this is the highest stable version.
    if summary.latest {
        let current = client.get_manifest(&repo, "latest", true).await?;
        if current.as_ref().map(|c| documents::sha256_digest(&c.bytes))
            != Some(index_desc.digest.clone())
        {
            client
                .put_manifest(&repo, "latest", mt::OCI_INDEX, index_bytes.clone())
                .await?;
            reporter.line(&format!("tagged {repo}:latest"));
        }
    }

    // 7. The PKGBUILD as a referrer of the index.
    if let Some(artifact) = &pkgbuild {
        referrers::attach(
            client,
            &repo,
            &index_desc.digest,
            artifact,
            &previous_pkgbuilds,
        )
        .await?;
        reporter.line(&format!(
            "attached PKGBUILD: {}",
            artifact.descriptor.digest
        ));
    }

    // 8. The catalog index.
    update_catalog(client, &opts.catalog_repository, release, &repo, &versions).await?;
    reporter.line(&format!(
        "updated catalog {}:latest",
        opts.catalog_repository
    ));
    Ok(summary)
}

async fn upload_blob(
    client: &RegistryClient,
    repo: &str,
    blob: Blob,
    reporter: &Reporter,
) -> Result<u64, PushError> {
    match blob {
        Blob::Memory { bytes } => {
            let size = bytes.len() as u64;
            let blob = client.ensure_small_blob(repo, bytes).await?;
            Ok(if blob.uploaded { size } else { 0 })
        }
        Blob::File {
            path,
            digest,
            size,
            label,
        } => {
            if client.blob_exists(repo, &digest).await? {
                reporter.line(&format!("  {label}: already in the registry"));
                return Ok(0);
            }
            let bar = reporter.bar(&label, size);
            let progress: crate::client::Progress = {
                let bar = bar.clone();
                Arc::new(move |n| bar.inc(n))
            };
            client
                .upload_file(repo, &path, &digest, size, progress)
                .await?;
            bar.finish();
            Ok(size)
        }
    }
}

/// The semver tags of `repo` (others, like `latest`, are ignored),
/// following `Link` pagination to the end.
async fn semver_tags(
    client: &RegistryClient,
    repo: &str,
) -> Result<Vec<semver::Version>, PushError> {
    let mut versions = Vec::new();
    let mut path = format!("/v2/{repo}/tags/list?n=1000");
    // A bound on pages, so a registry that links in a circle cannot hang us.
    for _ in 0..1000 {
        let resp = client.request(repo, reqwest::Method::GET, &path).await?;
        if resp.status() == reqwest::StatusCode::NOT_FOUND {
            break;
        }
        if !resp.status().is_success() {
            return Err(PushError::Registry(format!(
                "listing tags of {repo}: {}",
                resp.status()
            )));
        }
        let next = resp
            .headers()
            .get(reqwest::header::LINK)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| {
                v.split_once('<')
                    .and_then(|(_, rest)| rest.split_once('>'))
                    .map(|(url, _)| url.to_owned())
            });
        let body = client
            .read_document(resp, DOCUMENT_MAX_BYTES, "a tag list")
            .await?;
        let body: serde_json::Value = serde_json::from_slice(&body)
            .map_err(|e| PushError::Registry(format!("tag list is not JSON: {e}")))?;
        let tags = body
            .get("tags")
            .and_then(|t| t.as_array())
            .cloned()
            .unwrap_or_default();
        versions.extend(
            tags.iter()
                .filter_map(|t| t.as_str())
                .filter_map(|t| semver::Version::parse(t).ok()),
        );
        // Past the catalog's limit the push is refused anyway: reading
        // the remaining pages would only cost time.
        if versions.len() > limits::CATALOG_MAX_VERSIONS {
            break;
        }
        match next {
            // The link may be absolute; only its path and query are ours to follow.
            Some(url) => {
                path = match reqwest::Url::parse(&url) {
                    Ok(u) => format!("{}?{}", u.path(), u.query().unwrap_or("")),
                    Err(_) => url,
                }
            }
            None => break,
        }
    }
    Ok(versions)
}

/// Adds or refreshes this worker's entry in the catalog index artifact.
/// Two publishers racing may both read the old catalog; each re-reads after
/// writing and tries again if its entry was lost.
async fn update_catalog(
    client: &RegistryClient,
    catalog_repo: &str,
    release: &Release,
    repo: &str,
    versions: &[semver::Version],
) -> Result<(), PushError> {
    let mut entry = CatalogEntry {
        id: release.metadata.id.clone(),
        repository: repo.to_owned(),
        latest: None,
        versions: Vec::new(),
        requires_license: release.metadata.distribution.requires_license,
        updated_at: chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
    };
    entry.insert_versions(versions.iter().chain([&release.metadata.version]));
    let same = |a: &CatalogEntry, b: &CatalogEntry| {
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
    };
    for _ in 0..3 {
        let mut catalog = read_catalog(client, catalog_repo)
            .await?
            .unwrap_or_default();
        if catalog.get(&entry.id).is_some_and(|e| same(e, &entry)) {
            return Ok(());
        }
        catalog.upsert(entry.clone());
        catalog.updated_at = entry.updated_at.clone();
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
        let check = read_catalog(client, catalog_repo)
            .await?
            .unwrap_or_default();
        if check.get(&entry.id).is_some_and(|e| same(e, &entry)) {
            return Ok(());
        }
    }
    Err(PushError::Registry(format!(
        "the catalog {catalog_repo}:latest kept changing underneath; try again"
    )))
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
