//! Publishing a release: package, upload blobs, write manifests, the index
//! under the version tag, `latest`, the PKGBUILD referrer and the catalog
//! index, in an order that never lets a reader see a tag before everything
//! it references exists.

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::Arc;

use bytes::Bytes;
use futures_util::{StreamExt, TryStreamExt};
use rbee_schemas::{
    CatalogEntry, CatalogIndex, Platform, annotations as ann, limits, media_types as mt,
};
use serde::Serialize;

use crate::client::{DOCUMENT_MAX_BYTES, FetchedManifest, RegistryClient};
use crate::error::PushError;
use crate::package::{self, Entry, EntrySource, Package};
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
///
/// Everything is computed and checked before anything is written: the
/// packages, the documents, whether the version exists (and with what),
/// the PKGBUILD already attached, the version count. Then the writes go in
/// an order that never lets a reader see a tag before what it references.
pub async fn publish(
    client: &RegistryClient,
    release: &Release,
    opts: &PublishOptions,
    reporter: &Reporter,
) -> Result<PublishSummary, PushError> {
    let repo = repository(release, opts);
    let version = release.metadata.version.to_string();
    let workdir = tempfile::tempdir()?;

    let packages = package_builds(release, opts, workdir.path(), &repo, reporter).await?;
    let documents = ReleaseDocuments::new(release, opts, &packages);
    let published = compare_with_published(
        client,
        &repo,
        &version,
        documents.index.clone(),
        opts,
        reporter,
    )
    .await?;
    let pkgbuild =
        check_pkgbuild(client, &repo, &version, release, &published, opts, reporter).await?;
    let versions = published_versions(client, &repo, release).await?;
    let plan = Plan {
        unchanged: published.unchanged && !pkgbuild.replaces,
        repo,
        packages,
        documents,
        published,
        pkgbuild,
    };

    let mut summary = plan.summary(&client.host(), release, opts);
    summary.latest = is_highest_stable(&release.metadata.version, &versions);
    if opts.dry_run {
        reporter.line("dry run: nothing was pushed");
        return Ok(summary);
    }
    let (repo, index) = (&plan.repo, &plan.published.index);
    if !plan.unchanged {
        summary.uploaded_bytes =
            upload_blobs(client, repo, &plan.documents, &plan.packages, reporter).await?;
        write_platform_manifests(client, repo, &plan.documents.manifests, reporter).await?;
        write_index(client, repo, &version, index, reporter).await?;
    }
    if summary.latest {
        tag_latest(client, repo, index, reporter).await?;
    }
    if let Some(artifact) = &plan.pkgbuild.artifact {
        attach_pkgbuild(
            client,
            repo,
            index,
            artifact,
            &plan.pkgbuild.previous,
            reporter,
        )
        .await?;
    }
    update_catalog(client, &opts.catalog_repository, release, repo, &versions).await?;
    reporter.line(&format!(
        "updated catalog {}:latest",
        opts.catalog_repository
    ));
    Ok(summary)
}

/// Packages every build as its tar.gz in `workdir`, in parallel on
/// blocking threads (compression is CPU work).
async fn package_builds(
    release: &Release,
    opts: &PublishOptions,
    workdir: &Path,
    repo: &str,
    reporter: &Reporter,
) -> Result<BTreeMap<Platform, Package>, PushError> {
    reporter.step(&format!(
        "packaging {} build(s) of {repo}:{}",
        release.builds.len(),
        release.metadata.version
    ));
    let mut tasks = Vec::new();
    for (platform, path) in &release.builds {
        let entries = archive_entries(release, path);
        let out = workdir.join(release.archive_name(*platform));
        let level = opts.compression;
        let platform = *platform;
        tasks.push(tokio::task::spawn_blocking(move || {
            package::build(entries, &out, level).map(|p| (platform, p))
        }));
    }
    let mut packages = BTreeMap::new();
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
    Ok(packages)
}

/// What goes into a platform's archive: the binary, LICENSE, README.md
/// and metadata.json.
fn archive_entries(release: &Release, binary: &Path) -> Vec<Entry> {
    vec![
        Entry {
            name: release.metadata.binary_name.clone(),
            source: EntrySource::File(binary.to_path_buf()),
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
    ]
}

/// One platform's manifest, ready to PUT.
#[derive(Debug, Clone)]
struct PlatformManifest {
    platform: Platform,
    bytes: Bytes,
    /// Its descriptor as the index lists it (platform, artifact type).
    descriptor: Descriptor,
}

/// The documents of a release, computed before anything is sent: the
/// config (the metadata document), one manifest per platform, and the
/// index that lists them.
#[derive(Debug, Clone)]
struct ReleaseDocuments {
    config: Bytes,
    manifests: Vec<PlatformManifest>,
    index: ImageIndex,
}

impl ReleaseDocuments {
    fn new(
        release: &Release,
        opts: &PublishOptions,
        packages: &BTreeMap<Platform, Package>,
    ) -> Self {
        let config = Bytes::from(release.metadata_json.clone());
        let config_desc = documents::describe(mt::WORKER_METADATA, &config);
        let base = base_annotations(release);
        let manifests: Vec<PlatformManifest> = packages
            .iter()
            .map(|(platform, pkg)| platform_manifest(release, &base, &config_desc, *platform, pkg))
            .collect();
        let mut index_annotations = base;
        index_annotations.insert(ann::CREATED.into(), opts.created.clone());
        let index = ImageIndex {
            schema_version: 2,
            media_type: mt::OCI_INDEX.into(),
            artifact_type: Some(mt::WORKER_ARTIFACT_TYPE.into()),
            manifests: manifests.iter().map(|m| m.descriptor.clone()).collect(),
            annotations: Some(index_annotations),
        };
        ReleaseDocuments {
            config,
            manifests,
            index,
        }
    }
}

/// The manifest of one platform's package: the metadata as config, the
/// tar.gz as the one layer.
fn platform_manifest(
    release: &Release,
    base: &Annotations,
    config: &Descriptor,
    platform: Platform,
    pkg: &Package,
) -> PlatformManifest {
    let mut layer = descriptor(mt::WORKER_LAYER, &pkg.digest, pkg.size);
    layer.annotations = Some(Annotations::from([(
        ann::TITLE.into(),
        release.archive_name(platform),
    )]));
    let mut annotations = base.clone();
    annotations.insert(ann::WORKER_PLATFORM.into(), platform.to_string());
    let manifest = ImageManifest {
        schema_version: 2,
        media_type: mt::OCI_MANIFEST.into(),
        artifact_type: Some(mt::WORKER_ARTIFACT_TYPE.into()),
        config: config.clone(),
        layers: vec![layer],
        subject: None,
        annotations: Some(annotations),
    };
    let bytes = Bytes::from(documents::to_bytes(&manifest));
    let mut desc = documents::describe(mt::OCI_MANIFEST, &bytes);
    desc.set_worker_platform(platform);
    desc.artifact_type = Some(mt::WORKER_ARTIFACT_TYPE.into());
    PlatformManifest {
        platform,
        bytes,
        descriptor: desc,
    }
}

/// The index as it is (or will be) tagged.
#[derive(Debug, Clone)]
struct TaggedIndex {
    bytes: Bytes,
    descriptor: Descriptor,
}

/// What the registry holds under the version tag, compared with ours.
#[derive(Debug)]
struct Published {
    /// The version was already published.
    exists: bool,
    /// ... with the same platform manifests.
    unchanged: bool,
    /// The index to tag: the one first published when the content is the
    /// same (its `created` included), ours otherwise.
    index: TaggedIndex,
}

/// Reads what the version tag holds and decides: same content (nothing to
/// write), a conflict (different content without `--force`), or a
/// replacement.
async fn compare_with_published(
    client: &RegistryClient,
    repo: &str,
    version: &str,
    ours: ImageIndex,
    opts: &PublishOptions,
    reporter: &Reporter,
) -> Result<Published, PushError> {
    let existing = client.get_manifest(repo, version, true).await?;
    let mut unchanged = false;
    if let Some(found) = &existing {
        if same_platform_manifests(found, &ours) {
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
    let bytes = match (&existing, unchanged) {
        (Some(found), true) => found.bytes.clone(),
        _ => Bytes::from(documents::to_bytes(&ours)),
    };
    let descriptor = documents::describe(mt::OCI_INDEX, &bytes);
    Ok(Published {
        exists: existing.is_some(),
        unchanged,
        index: TaggedIndex { bytes, descriptor },
    })
}

/// True when `found` is an index of the same platform manifests as `ours`
/// (in any order).
fn same_platform_manifests(found: &FetchedManifest, ours: &ImageIndex) -> bool {
    let Ok(theirs) = serde_json::from_slice::<ImageIndex>(&found.bytes) else {
        return false;
    };
    let mut a: Vec<&str> = theirs.manifests.iter().map(|d| d.digest.as_str()).collect();
    let mut b: Vec<&str> = ours.manifests.iter().map(|d| d.digest.as_str()).collect();
    a.sort();
    b.sort();
    a == b
}

/// The PKGBUILD artifact of a release, and what is attached already.
#[derive(Debug, Default)]
struct PkgbuildPlan {
    artifact: Option<PkgbuildArtifact>,
    /// PKGBUILD referrers the index has already.
    previous: Vec<Descriptor>,
    /// An unchanged version gets a different PKGBUILD (`--force`).
    replaces: bool,
}

/// The PKGBUILD is part of the release: a different one under an existing
/// version is a conflict too, unless `--force`.
async fn check_pkgbuild(
    client: &RegistryClient,
    repo: &str,
    version: &str,
    release: &Release,
    published: &Published,
    opts: &PublishOptions,
    reporter: &Reporter,
) -> Result<PkgbuildPlan, PushError> {
    let Some((pkgbuild, srcinfo)) = &release.pkgbuild else {
        return Ok(PkgbuildPlan::default());
    };
    let artifact = PkgbuildArtifact::new(&published.index.descriptor, &pkgbuild.text, srcinfo);
    let mut plan = PkgbuildPlan {
        artifact: None,
        previous: Vec::new(),
        replaces: false,
    };
    if published.exists {
        plan.previous =
            referrers::attached(client, repo, &published.index.descriptor.digest).await?;
        let differs = !plan.previous.is_empty()
            && !plan
                .previous
                .iter()
                .any(|d| d.digest == artifact.descriptor.digest);
        if differs && published.unchanged {
            if !opts.force {
                return Err(PushError::Conflict(format!(
                    "{repo}:{version} already exists with a different PKGBUILD; versions are immutable \
                     (publish a new version, or pass --force to replace it)"
                )));
            }
            reporter.line(&format!(
                "replacing the PKGBUILD of {repo}:{version} (--force)"
            ));
            plan.replaces = true;
        }
    }
    plan.artifact = Some(artifact);
    Ok(plan)
}

/// The versions `repo` has, refused when adding this one would take the
/// worker past what the catalog lists: refused before anything is written,
/// not after.
async fn published_versions(
    client: &RegistryClient,
    repo: &str,
    release: &Release,
) -> Result<Vec<semver::Version>, PushError> {
    let versions = semver_tags(client, repo).await?;
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
    Ok(versions)
}

/// True when `version` is stable and no published stable version is
/// higher: `latest` then points at it.
fn is_highest_stable(version: &semver::Version, published: &[semver::Version]) -> bool {
    let highest_stable = published.iter().filter(|v| v.pre.is_empty()).max();
    version.pre.is_empty() && highest_stable.is_none_or(|h| h <= version)
}

/// Everything decided before the first write.
#[derive(Debug)]
struct Plan {
    repo: String,
    packages: BTreeMap<Platform, Package>,
    documents: ReleaseDocuments,
    published: Published,
    pkgbuild: PkgbuildPlan,
    /// The registry has this release as it is, PKGBUILD included: only
    /// `latest` and the catalog may still need writing.
    unchanged: bool,
}

impl Plan {
    /// The summary of what this publication does; `latest` and
    /// `uploaded_bytes` are filled in as they become known.
    fn summary(&self, host: &str, release: &Release, opts: &PublishOptions) -> PublishSummary {
        let version = release.metadata.version.to_string();
        PublishSummary {
            status: if opts.dry_run {
                "dry-run"
            } else if self.unchanged {
                "unchanged"
            } else {
                "published"
            },
            reference: format!("{host}/{}:{version}", self.repo),
            repository: self.repo.clone(),
            version,
            index_digest: self.published.index.descriptor.digest.clone(),
            latest: false,
            platforms: self
                .documents
                .manifests
                .iter()
                .map(|m| {
                    let pkg = &self.packages[&m.platform];
                    PlatformSummary {
                        platform: m.platform.to_string(),
                        manifest_digest: m.descriptor.digest.clone(),
                        layer_digest: pkg.digest.clone(),
                        size: pkg.size,
                        filename: release.archive_name(m.platform),
                    }
                })
                .collect(),
            pkgbuild_digest: self
                .pkgbuild
                .artifact
                .as_ref()
                .map(|a| a.descriptor.digest.clone()),
            uploaded_bytes: 0,
        }
    }
}

/// Uploads the config and every package, four at a time, skipping what
/// the registry has; returns the bytes actually sent.
async fn upload_blobs(
    client: &RegistryClient,
    repo: &str,
    documents: &ReleaseDocuments,
    packages: &BTreeMap<Platform, Package>,
    reporter: &Reporter,
) -> Result<u64, PushError> {
    let mut blobs = vec![Blob::Memory {
        bytes: documents.config.clone(),
    }];
    for (platform, pkg) in packages {
        blobs.push(Blob::File {
            path: pkg.path.clone(),
            digest: pkg.digest.clone(),
            size: pkg.size,
            label: platform.to_string(),
        });
    }
    let uploaded: Vec<u64> = futures_util::stream::iter(blobs)
        .map(|blob| upload_blob(client, repo, blob, reporter))
        .buffer_unordered(4)
        .try_collect()
        .await?;
    Ok(uploaded.iter().sum())
}

/// Writes each platform manifest by its digest (its blobs are there).
async fn write_platform_manifests(
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
async fn write_index(
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
async fn tag_latest(
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
async fn attach_pkgbuild(
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
    let entry = catalog_entry(release, repo, versions);
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
fn catalog_entry(release: &Release, repo: &str, versions: &[semver::Version]) -> CatalogEntry {
    let mut entry = CatalogEntry {
        id: release.metadata.id.clone(),
        repository: repo.to_owned(),
        latest: None,
        versions: Vec::new(),
        requires_license: release.metadata.distribution.requires_license,
        updated_at: chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
    };
    entry.insert_versions(versions.iter().chain([&release.metadata.version]));
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
