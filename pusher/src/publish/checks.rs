//! What the registry holds already, compared with this release, before
//! anything is written: the version tag (same content, a conflict, or a
//! replacement), the PKGBUILD attached to it, and the versions the
//! catalog would list.

use bytes::Bytes;
use rbee_schemas::oci::{self as documents, Descriptor, ImageIndex};
use rbee_schemas::{limits, media_types as mt};

use super::PublishOptions;
use crate::client::{DOCUMENT_MAX_BYTES, FetchedManifest, RegistryClient};
use crate::error::PushError;
use crate::progress::Reporter;
use crate::referrers::{self, PkgbuildArtifact};
use crate::release::Release;

/// The index as it is (or will be) tagged.
#[derive(Debug, Clone)]
pub(crate) struct TaggedIndex {
    pub(crate) bytes: Bytes,
    pub(crate) descriptor: Descriptor,
}

/// What the registry holds under the version tag, compared with ours.
#[derive(Debug)]
pub(super) struct Published {
    /// The version was already published.
    pub(super) exists: bool,
    /// ... with the same platform manifests.
    pub(super) unchanged: bool,
    /// The index to tag: the one first published when the content is the
    /// same (its `created` included), ours otherwise.
    pub(super) index: TaggedIndex,
}

/// Decides from what the version tag holds (`existing`): same content
/// (nothing to write), a conflict (different content without `--force`),
/// or a replacement.
pub(super) fn compare_with_published(
    repo: &str,
    version: &str,
    existing: Option<FetchedManifest>,
    ours: ImageIndex,
    opts: &PublishOptions,
    reporter: &Reporter,
) -> Result<Published, PushError> {
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
pub(super) struct PkgbuildPlan {
    pub(super) artifact: Option<PkgbuildArtifact>,
    /// PKGBUILD referrers the index has already.
    pub(super) previous: Vec<Descriptor>,
    /// An unchanged version gets a different PKGBUILD (`--force`).
    pub(super) replaces: bool,
}

/// The PKGBUILD is part of the release: a different one under an existing
/// version is a conflict too, unless `--force`.
pub(super) async fn check_pkgbuild(
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
pub(super) async fn published_versions(
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
pub(crate) fn is_highest_stable(version: &semver::Version, published: &[semver::Version]) -> bool {
    let highest_stable = published.iter().filter(|v| v.pre.is_empty()).max();
    version.pre.is_empty() && highest_stable.is_none_or(|h| h <= version)
}

/// The semver tags of `repo` (others, like `latest`, are ignored),
/// following `Link` pagination to the end.
pub(crate) async fn semver_tags(
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
