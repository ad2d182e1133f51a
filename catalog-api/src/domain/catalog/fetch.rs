//! Reading registry content into the catalog's types, checking it as
//! untrusted input: at most [`MAX_PLATFORMS`] manifests per release, no
//! platform twice, file names that are plain names. Documents larger than
//! [`INLINE_PARSE_BYTES`] are parsed on the blocking pool, so that a 4 MiB
//! index does not stall the async threads (and `/ready` with them).
//!
//! Each function takes its inputs by value: it runs on its own task (see
//! [`crate::domain::cache`]).

use bytes::Bytes;
use futures_util::{StreamExt, TryStreamExt};
use rbee_schemas::oci::{ImageIndex, ImageManifest};
use rbee_schemas::{CatalogIndex, Platform, WorkerMetadata, annotations as ann, media_types as mt};

use super::{PlatformBuild, Release};
use crate::domain::referrers;
use crate::domain::source::RegistryRead;
use crate::domain::upstream::UpstreamError;

/// The registry a fetch reads from; owned, since a fetch runs on its own
/// task.
type Source = std::sync::Arc<dyn RegistryRead>;

/// Largest metadata document, catalog index or PKGBUILD read.
pub const SMALL_BLOB_LIMIT: usize = 4 << 20;

/// Most manifests one release's image index may list. rbee knows a
/// handful of platforms; each entry costs an upstream read.
pub const MAX_PLATFORMS: usize = 64;

/// Platform manifests read at once for one release.
const MANIFEST_CONCURRENCY: usize = 4;

/// Documents up to this size are parsed where they arrive; larger ones on
/// the blocking pool.
pub const INLINE_PARSE_BYTES: usize = 64 << 10;

/// Longest file name taken from a title annotation.
const MAX_FILENAME_BYTES: usize = 255;

fn invalid(e: impl std::fmt::Display) -> UpstreamError {
    UpstreamError::Invalid(e.to_string())
}

/// Runs `parse` over `bytes`, on the blocking pool when they are large.
async fn parse_off_thread<T: Send + 'static>(
    bytes: Bytes,
    parse: impl FnOnce(&[u8]) -> Result<T, UpstreamError> + Send + 'static,
) -> Result<T, UpstreamError> {
    if bytes.len() <= INLINE_PARSE_BYTES {
        return parse(&bytes);
    }
    tokio::task::spawn_blocking(move || parse(&bytes))
        .await
        .map_err(|e| UpstreamError::Unavailable(format!("parsing failed: {e}")))?
}

/// The catalog index `<repo>:latest`; an empty one when there is none yet.
pub async fn index(source: Source, repo: String) -> Result<CatalogIndex, UpstreamError> {
    Ok(index_with_digest(source, repo).await?.0)
}

/// The catalog index `<repo>:latest` and its manifest's digest; an empty
/// one and `None` when there is none yet.
pub async fn index_with_digest(
    source: Source,
    repo: String,
) -> Result<(CatalogIndex, Option<String>), UpstreamError> {
    let (bytes, digest) = match source.manifest(&repo, "latest").await {
        Ok(m) => m,
        // No catalog yet: an empty registry has no workers.
        Err(UpstreamError::NotFound) => return Ok((CatalogIndex::default(), None)),
        Err(e) => return Err(e),
    };
    let manifest: ImageManifest =
        parse_off_thread(bytes, |b| serde_json::from_slice(b).map_err(invalid)).await?;
    let layer = manifest
        .layers
        .first()
        .ok_or_else(|| invalid(format!("{repo}:latest has no layer")))?;
    let doc = source
        .small_blob(&repo, &layer.digest, SMALL_BLOB_LIMIT)
        .await?;
    let index = parse_off_thread(doc, |b| {
        let text = std::str::from_utf8(b).map_err(invalid)?;
        CatalogIndex::from_json(text).map_err(invalid)
    })
    .await?;
    Ok((index, Some(digest)))
}

/// The platforms an image index lists, each with its manifest digest
/// ([`ImageIndex::platform_builds`]). Entries that name no rbee platform
/// (attestations, unknown systems) are passed over; too many entries, or a
/// platform twice, make the release invalid.
fn platform_entries(
    index: &ImageIndex,
    what: &str,
) -> Result<Vec<(Platform, String)>, UpstreamError> {
    if index.manifests.len() > MAX_PLATFORMS {
        return Err(invalid(format!(
            "{what} lists {} manifests; at most {MAX_PLATFORMS} are read",
            index.manifests.len()
        )));
    }
    let mut entries: Vec<(Platform, String)> = Vec::new();
    for (platform, d) in index.platform_builds() {
        if entries.iter().any(|(p, _)| *p == platform) {
            return Err(invalid(format!("{what} lists {platform} twice")));
        }
        entries.push((platform, d.digest.clone()));
    }
    Ok(entries)
}

/// A layer's title as a download file name: a plain name, with no control
/// characters (a CR/LF would split the `Content-Disposition` header), no
/// path separators, not `.` or `..`, at most [`MAX_FILENAME_BYTES`].
fn check_filename(title: &str, what: &str) -> Result<(), UpstreamError> {
    let plain = !title.is_empty()
        && title.len() <= MAX_FILENAME_BYTES
        && title != "."
        && title != ".."
        && !title
            .chars()
            .any(|c| c.is_control() || c == '/' || c == '\\');
    if plain {
        Ok(())
    } else {
        Err(invalid(format!(
            "{what}: the layer title `{}` is not a plain file name",
            title.escape_debug().take(80).collect::<String>()
        )))
    }
}

/// One release: image index -> platform manifests -> metadata config.
pub async fn release(
    source: Source,
    repo: String,
    version: String,
) -> Result<Release, UpstreamError> {
    let what = format!("{repo}:{version}");
    let (bytes, index_digest) = source.manifest(&repo, &version).await?;
    let index: ImageIndex = {
        let what = what.clone();
        parse_off_thread(bytes, move |b| {
            serde_json::from_slice(b)
                .map_err(|e| invalid(format!("{what} is not an image index: {e}")))
        })
        .await?
    };
    let published_at = index
        .annotations
        .as_ref()
        .and_then(|a| a.get(ann::CREATED).cloned());
    let entries = platform_entries(&index, &what)?;
    let manifests: Vec<(Platform, String, ImageManifest)> = futures_util::stream::iter(entries)
        .map(|(platform, digest)| {
            let (source, repo) = (&source, &repo);
            async move {
                let (bytes, _) = source.manifest(repo, &digest).await?;
                let what = format!("{repo}@{digest}");
                let m: ImageManifest = parse_off_thread(bytes, move |b| {
                    serde_json::from_slice(b).map_err(|e| invalid(format!("{what}: {e}")))
                })
                .await?;
                Ok::<_, UpstreamError>((platform, digest, m))
            }
        })
        .buffer_unordered(MANIFEST_CONCURRENCY)
        .try_collect()
        .await?;
    let config = manifests
        .first()
        .map(|(_, _, m)| m.config.digest.clone())
        .ok_or_else(|| invalid(format!("{what} has no platform build")))?;
    let doc = source.small_blob(&repo, &config, SMALL_BLOB_LIMIT).await?;
    let metadata = {
        let what = what.clone();
        parse_off_thread(doc, move |b| {
            let text = std::str::from_utf8(b).map_err(invalid)?;
            WorkerMetadata::from_json(text).map_err(|e| invalid(format!("{what} metadata: {e}")))
        })
        .await?
    };
    let mut builds = Vec::new();
    for (platform, manifest_digest, m) in manifests {
        let Some(layer) = m
            .layers
            .into_iter()
            .find(|l| mt::is_worker_layer(&l.media_type))
        else {
            continue;
        };
        let filename = match layer.annotations.as_ref().and_then(|a| a.get(ann::TITLE)) {
            Some(title) => {
                check_filename(title, &what)?;
                title.clone()
            }
            None => format!(
                "{}-{}-{platform}.{}",
                metadata.id,
                metadata.version,
                if layer.media_type == mt::WORKER_LAYER_ZSTD {
                    "tar.zst"
                } else {
                    "tar.gz"
                }
            ),
        };
        builds.push(PlatformBuild {
            platform,
            manifest_digest,
            layer_digest: layer.digest,
            size: layer.size,
            filename,
            media_type: layer.media_type,
        });
    }
    builds.sort_by_key(|b| b.platform);
    let version = semver::Version::parse(&version).map_err(invalid)?;
    // Its referrer records (CONTRACTS F, L), through the one reader.
    let yank = referrers::yank::in_force(&*source, &repo, &index_digest).await?;
    let signature = crate::domain::signature::read(
        &*source,
        &repo,
        &index_digest,
        &metadata.id,
        &version.to_string(),
    )
    .await?;
    Ok(Release {
        repository: repo,
        version,
        index_digest,
        published_at,
        metadata,
        builds,
        yank,
        signature,
    })
}

/// The PKGBUILD attached (as a referrer) to the image index `subject`.
pub async fn pkgbuild(
    source: Source,
    repo: String,
    subject: String,
) -> Result<Option<String>, UpstreamError> {
    let referrers = source
        .referrers(&repo, &subject, mt::PKGBUILD_ARTIFACT_TYPE)
        .await?;
    let Some((digest, _)) = referrers.into_iter().next() else {
        return Ok(None);
    };
    let (bytes, _) = source.manifest(&repo, &digest).await?;
    let m: ImageManifest = serde_json::from_slice(&bytes).map_err(invalid)?;
    let Some(layer) = m.layers.iter().find(|l| l.media_type == mt::PKGBUILD) else {
        return Ok(None);
    };
    let blob = source
        .small_blob(&repo, &layer.digest, SMALL_BLOB_LIMIT)
        .await?;
    Ok(Some(String::from_utf8_lossy(&blob).into_owned()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn titles_must_be_plain_file_names() {
        for ok in [
            "w-0.1.0-linux-x86_64.tar.gz",
            r#"x"; filename="evil.sh"#,
            "ü.tar.gz",
        ] {
            assert!(check_filename(ok, "t").is_ok(), "{ok}");
        }
        let long = "a".repeat(256);
        for bad in [
            "",
            ".",
            "..",
            "a/b",
            "a\\b",
            "a\r\nSet-Cookie: x",
            "a\0",
            &long,
        ] {
            assert!(
                matches!(check_filename(bad, "t"), Err(UpstreamError::Invalid(_))),
                "{bad:?}"
            );
        }
    }

    #[test]
    fn an_index_with_too_many_or_duplicate_platforms_is_invalid() {
        let entry = |platform: &str, n: usize| {
            serde_json::json!({
                "mediaType": mt::OCI_MANIFEST,
                "digest": format!("sha256:{n:064x}"),
                "size": 1,
                "annotations": { ann::WORKER_PLATFORM: platform },
            })
        };
        let index = |manifests: Vec<serde_json::Value>| -> ImageIndex {
            serde_json::from_value(serde_json::json!({
                "schemaVersion": 2,
                "mediaType": mt::OCI_INDEX,
                "manifests": manifests,
            }))
            .unwrap()
        };
        let ok = index(vec![entry("linux-x86_64", 1), entry("linux-aarch64", 2)]);
        assert_eq!(platform_entries(&ok, "t").unwrap().len(), 2);
        let twice = index(vec![entry("linux-x86_64", 1), entry("linux-x86_64", 2)]);
        assert!(platform_entries(&twice, "t").is_err());
        let many = index(
            (0..=MAX_PLATFORMS)
                .map(|n| entry("not-a-platform", n))
                .collect(),
        );
        assert!(platform_entries(&many, "t").is_err());
    }
}
