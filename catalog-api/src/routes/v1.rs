//! `/v1` routes: workers, versions and downloads, snake_case JSON.

use std::sync::Arc;

use axum::body::Body;
use axum::extract::State;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::Response;
use percent_encoding::{AsciiSet, NON_ALPHANUMERIC, utf8_percent_encode};
use rbee_schemas::{Backend, Platform, media_types as mt};
use serde::Deserialize;

use crate::analytics::{self, ClientContext};
use crate::domain::CatalogError;
use crate::domain::catalog::{PlatformBuild, Release};
use crate::domain::upstream::UpstreamError;
use crate::error::{ApiError, check_worker_id};
use crate::extract::{Path, Query};
use crate::respond::{self, Caching};
use crate::routes::licenses::{license_of, presented_key, require_license, unlocks};
use crate::routes::range::{self, Wanted};
use crate::signed_url::{SignatureError, URL_LIFETIME_SECS};
use crate::state::AppState;
use crate::wire::{self, Download, Versions, Worker};

/// Filters of `GET /v1/workers`.
#[derive(Debug, Deserialize)]
pub struct ListFilter {
    /// Only workers of this backend (`cpu`, `cuda`, `metal`, `rocm`).
    pub backend: Option<String>,
    /// Only workers built for this rbee platform (`linux-x86_64`, ...).
    pub platform: Option<String>,
}

/// `?include_yanked=` of a versions listing.
#[derive(Debug, Deserialize)]
pub struct YankFilter {
    /// List yanked versions too (with `yanked` and `yank_reason`).
    #[serde(default)]
    pub include_yanked: bool,
}

/// `?platform=` of a download, and the signature of a premium build's
/// `/blob` URL.
#[derive(Debug, Deserialize)]
pub struct PlatformQuery {
    /// The rbee platform name.
    pub platform: Option<String>,
    /// Unix seconds after which a signed URL is refused. Text, so that a
    /// tampered value is a 403 like any other bad signature (a 400 on a
    /// free build, see [`check_expires`]).
    pub expires: Option<String>,
    /// Hex HMAC of the blob's digest, repository and `expires`.
    pub signature: Option<String>,
    /// `sha256:<hex>` of the archive the client has (an upgrade): the
    /// download answer then names a delta from it when one is attached,
    /// and `/blob` serves that delta.
    pub from: Option<String>,
}

/// `?from=` as a checked layer digest: `sha256:` and 64 lower-case hex
/// digits, or a 400.
fn parse_from(raw: Option<&str>) -> Result<Option<&str>, ApiError> {
    match raw {
        None => Ok(None),
        Some(d) if rbee_schemas::delta::is_sha256_digest(d) => Ok(Some(d)),
        Some(d) => Err(ApiError::BadRequest(format!(
            "`from` must be the digest of an archive, sha256:<64 lower-case hex digits>; got `{}`",
            d.chars().take(80).collect::<String>().escape_debug()
        ))),
    }
}

/// A free build's `/blob` ignores `?expires=`, but a value that is not
/// Unix seconds is still a 400, as the document types it, so a client's
/// bug shows at once. (On a premium build it is a bad signature: 403.)
fn check_expires(raw: Option<&str>) -> Result<(), ApiError> {
    match raw {
        Some(s) if s.parse::<u64>().is_err() => Err(ApiError::BadRequest(format!(
            "`expires` must be Unix seconds; got `{}`",
            s.chars().take(40).collect::<String>().escape_debug()
        ))),
        _ => Ok(()),
    }
}

fn parse_platform(raw: Option<&str>) -> Result<Platform, ApiError> {
    let raw = raw.ok_or_else(|| {
        ApiError::BadRequest(format!(
            "the `platform` query parameter is required; one of {}",
            Platform::names().join(", ")
        ))
    })?;
    raw.parse::<Platform>()
        .map_err(|e| ApiError::UnknownPlatform(e.to_string()))
}

/// `GET /v1/workers`
#[utoipa::path(
    get,
    path = "/v1/workers",
    tag = "v1",
    operation_id = "list_workers",
    summary = "Every published worker, latest version",
    params(crate::openapi::ListQuery),
    security((), ("license_key" = [])),
    responses(
        (status = 200, description = "The workers that pass the filters; cached 5 minutes", body = crate::wire::Workers),
        (status = 304, description = "Not modified: the `If-None-Match` ETag still matches"),
        (status = 400, description = "`Bad request` (unknown backend) or `Unknown platform`", body = crate::error::ErrorBody),
        (status = 502, description = "`Registry unavailable` or `Registry data invalid`, with nothing cached to stand in", body = crate::error::ErrorBody),
        (status = 503, description = "`Registry rate-limited`, with nothing cached to stand in; see `Retry-After`", body = crate::error::ErrorBody),
    ),
)]
pub async fn list(
    State(state): State<Arc<AppState>>,
    Query(filter): Query<ListFilter>,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    let backend = match &filter.backend {
        Some(b) => Some(
            Backend::ALL
                .into_iter()
                .find(|x| x.as_str() == b)
                .ok_or_else(|| {
                    ApiError::BadRequest(format!(
                        "unknown backend `{b}`; one of cpu, cuda, metal, rocm"
                    ))
                })?,
        ),
        None => None,
    };
    let platform = match &filter.platform {
        Some(p) => Some(parse_platform(Some(p))?),
        None => None,
    };
    let (latest, stale) = state.catalog.latest_releases().await?;
    let license = license_of(&state, &headers).await?;
    let workers: Vec<Worker> = latest
        .iter()
        .filter(|(_, r)| backend.is_none_or(|b| r.metadata.backend == b))
        .filter(|(_, r)| platform.is_none_or(|p| r.builds.iter().any(|b| b.platform == p)))
        .map(|(entry, r)| {
            let mut worker = wire::worker(r, entry.versions.clone());
            if presented_key(&headers).is_some() {
                worker.unlocked = Some(
                    !r.metadata.distribution.requires_license
                        || license.as_ref().is_some_and(|l| unlocks(l, r)),
                );
            }
            worker
        })
        .collect();
    Ok(per_caller(respond::json(
        &headers,
        &wire::Workers { workers },
        stale,
        listing_caching(&headers, Caching::Public(300)),
    )))
}

/// `GET /v1/workers/:id`
#[utoipa::path(
    get,
    path = "/v1/workers/{id}",
    tag = "v1",
    operation_id = "get_worker",
    summary = "One worker: its latest version's metadata and every version",
    params(crate::openapi::WorkerIdPath),
    responses(
        (status = 200, description = "The worker; cached 10 minutes", body = crate::wire::Worker),
        (status = 304, description = "Not modified: the `If-None-Match` ETag still matches"),
        (status = 400, description = "`Invalid worker id`", body = crate::error::ErrorBody),
        (status = 404, description = "`Worker not found`", body = crate::error::ErrorBody),
        (status = 502, description = "`Registry unavailable` or `Registry data invalid`, with nothing cached to stand in", body = crate::error::ErrorBody),
        (status = 503, description = "`Registry rate-limited`, with nothing cached to stand in; see `Retry-After`", body = crate::error::ErrorBody),
    ),
)]
pub async fn get(
    State(state): State<Arc<AppState>>,
    Path(id): Path<String>,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    check_worker_id(&id)?;
    let (entry, entry_stale) = state.catalog.entry(&id).await?;
    let (release, stale) =
        state
            .catalog
            .release_of(&entry, "latest")
            .await
            .map_err(|e| match e {
                CatalogError::VersionNotFound(_) => ApiError::WorkerNotFound,
                other => other.into(),
            })?;
    let worker = wire::worker(&release, entry.versions);
    Ok(respond::json(
        &headers,
        &worker,
        stale || entry_stale,
        Caching::Public(600),
    ))
}

/// `GET /v1/workers/:id/versions`
#[utoipa::path(
    get,
    path = "/v1/workers/{id}/versions",
    tag = "v1",
    operation_id = "list_versions",
    summary = "Every version of a worker, newest first, with its platform builds",
    params(crate::openapi::WorkerIdPath, crate::openapi::VersionsQuery),
    responses(
        (status = 200, description = "The versions; cached 10 minutes", body = crate::wire::Versions),
        (status = 304, description = "Not modified: the `If-None-Match` ETag still matches"),
        (status = 400, description = "`Invalid worker id`", body = crate::error::ErrorBody),
        (status = 404, description = "`Worker not found`", body = crate::error::ErrorBody),
        (status = 502, description = "`Registry unavailable` or `Registry data invalid`, with nothing cached to stand in", body = crate::error::ErrorBody),
        (status = 503, description = "`Registry rate-limited`, with nothing cached to stand in; see `Retry-After`", body = crate::error::ErrorBody),
    ),
)]
pub async fn versions(
    State(state): State<Arc<AppState>>,
    Path(id): Path<String>,
    Query(filter): Query<YankFilter>,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    check_worker_id(&id)?;
    let ((entry, releases), stale) = state.catalog.releases(&id).await?;
    // `latest` skips yanked versions: the highest stable one that is not,
    // when the catalog index's own latest is yanked.
    let latest_yanked = releases
        .iter()
        .any(|r| r.yank.is_some() && Some(r.version.to_string()) == entry.latest);
    let latest = if latest_yanked {
        releases
            .iter()
            .find(|r| r.yank.is_none() && r.version.pre.is_empty())
            .map(|r| r.version.to_string())
    } else {
        entry.latest
    };
    let body = Versions {
        versions: releases
            .iter()
            .filter(|r| filter.include_yanked || r.yank.is_none())
            .map(|r| wire::version(r))
            .collect(),
        latest,
    };
    Ok(respond::json(&headers, &body, stale, Caching::Public(600)))
}

/// Finds the build of `platform` in `release`.
fn build_for(release: &Release, platform: Platform) -> Result<&PlatformBuild, ApiError> {
    release
        .builds
        .iter()
        .find(|b| b.platform == platform)
        .ok_or_else(|| ApiError::PlatformNotBuilt {
            platform: platform.to_string(),
            available: release
                .builds
                .iter()
                .map(|b| b.platform.to_string())
                .collect(),
        })
}

/// An answer that depends on the caller's license is kept by no cache.
pub(crate) fn listing_caching(headers: &HeaderMap, public: Caching) -> Caching {
    if presented_key(headers).is_some() {
        Caching::Private
    } else {
        public
    }
}

/// Shared caches must not answer a licensed request with an anonymous
/// answer (or the other way round).
pub(crate) fn per_caller(mut resp: Response) -> Response {
    resp.headers_mut()
        .insert(header::VARY, HeaderValue::from_static("authorization"));
    resp
}

fn check_version_param(version: &str) -> Result<(), ApiError> {
    if version == "latest" || (version.len() <= 128 && semver::Version::parse(version).is_ok()) {
        Ok(())
    } else {
        Err(ApiError::BadRequest(format!(
            "`{}` is not a version; use a semver version such as 0.1.0, or `latest`",
            version.chars().take(64).collect::<String>()
        )))
    }
}

/// `GET /v1/workers/:id/:version/download?platform=linux-x86_64`
#[utoipa::path(
    get,
    path = "/v1/workers/{id}/{version}/download",
    tag = "v1",
    operation_id = "get_download",
    summary = "Where to download one platform build, and its sha256",
    params(crate::openapi::ReleasePath, crate::openapi::PlatformQuery),
    responses(
        (status = 200, description = "The download; cached 1 hour (5 minutes for `latest`)", body = crate::wire::Download),
        (status = 304, description = "Not modified: the `If-None-Match` ETag still matches"),
        (status = 400, description = "`Invalid worker id`, `Bad request` (bad version, no platform, a `from` that is not a sha256 digest) or `Unknown platform` (with `valid_platforms`)", body = crate::error::ErrorBody),
        (status = 404, description = "`Worker not found`, `Version not found` or `Platform not available` (with `available_platforms`)", body = crate::error::ErrorBody),
        (status = 403, description = "`License required` (premium worker without a license key that unlocks this version; with `purchase_url`)", body = crate::error::ErrorBody),
        (status = 429, description = "`Too many requests` from this address; see `Retry-After`", body = crate::error::ErrorBody),
        (status = 502, description = "`Registry unavailable` or `Registry data invalid`, with nothing cached to stand in", body = crate::error::ErrorBody),
        (status = 503, description = "`Registry rate-limited`, with nothing cached to stand in; see `Retry-After`; or `License check unavailable`", body = crate::error::ErrorBody),
    ),
    security((), ("license_key" = [])),
)]
pub async fn download(
    State(state): State<Arc<AppState>>,
    Path((id, version)): Path<(String, String)>,
    Query(q): Query<PlatformQuery>,
    ClientContext(client): ClientContext,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    check_worker_id(&id)?;
    check_version_param(&version)?;
    let platform = parse_platform(q.platform.as_deref())?;
    let from = parse_from(q.from.as_deref())?;
    let (release, stale) = state.catalog.release(&id, &version).await?;
    let license = require_license(&state, &headers, &release).await?;
    let build = build_for(&release, platform)?;
    let source = state.catalog.source();
    let premium = release.metadata.distribution.requires_license;
    let presigned = if premium {
        // Straight from the bucket when the storage can presign (S3):
        // the license was checked above, and the bytes skip the catalog.
        source
            .presigned_blob_url(
                &release.repository,
                &build.layer_digest,
                std::time::Duration::from_secs(URL_LIFETIME_SECS),
            )
            .await
            .unwrap_or_else(|e| {
                tracing::warn!(error = %e, "presigning a download failed; serving it through the catalog");
                None
            })
    } else {
        None
    };
    if presigned.is_some() {
        // The bytes go from the bucket: counted as they are handed out.
        analytics::handed_out(
            &state.analytics,
            &client,
            (
                release.metadata.id.clone(),
                release.version.to_string(),
                platform.name().to_owned(),
            ),
            license,
        );
    } else {
        // The client's pull of this layer, next, counts as a `/v1` download.
        state
            .analytics
            .note_v1_answer(&client, &build.layer_digest, license);
    }
    let download_url = blob_url(
        &state,
        &release,
        &id,
        platform,
        &build.layer_digest,
        None,
        presigned,
    );
    let delta = match from {
        Some(from) => match state.catalog.delta(&release, build, from).await {
            Some(delta) => {
                let presigned = if premium {
                    source
                        .presigned_blob_url(
                            &release.repository,
                            &delta.blob.digest,
                            std::time::Duration::from_secs(URL_LIFETIME_SECS),
                        )
                        .await
                        .unwrap_or(None)
                } else {
                    None
                };
                Some(wire::DownloadDelta {
                    url: blob_url(
                        &state,
                        &release,
                        &id,
                        platform,
                        &delta.blob.digest,
                        Some(from),
                        presigned,
                    ),
                    digest: delta.blob.digest.clone(),
                    size: delta.blob.size,
                    from: delta.source.clone(),
                    recompress: delta.recompress.to_string(),
                    window_log: delta.window_log,
                })
            }
            None => None,
        },
        None => None,
    };
    let body = Download {
        worker_id: id.clone(),
        version: release.version.to_string(),
        platform,
        download_url,
        checksum: build.layer_digest.clone(),
        size: build.size,
        filename: build.filename.clone(),
        expires_in: premium.then_some(URL_LIFETIME_SECS),
        oci_reference: format!(
            "{}/{}@{}",
            source.registry(),
            release.repository,
            build.manifest_digest
        ),
        signature: wire::download_signature(&release, build),
        delta,
    };
    let caching = if premium {
        Caching::Private
    } else if version == "latest" {
        Caching::Public(300)
    } else {
        Caching::Public(3600)
    };
    Ok(per_caller(respond::json(&headers, &body, stale, caching)))
}

/// Where a client GETs blob `digest` of `release` (the layer, or with
/// `from` the delta from that build): `presigned` when storage made one;
/// for a premium build a URL of this catalog signed for that very blob
/// (the license was checked by the caller; the URL carries the proof, so
/// that any downloader can fetch it with no header); through the catalog
/// when the registry needs credentials clients lack; else the registry.
fn blob_url(
    state: &AppState,
    release: &Release,
    id: &str,
    platform: Platform,
    digest: &str,
    from: Option<&str>,
    presigned: Option<String>,
) -> String {
    let from = from.map(|f| format!("&from={f}")).unwrap_or_default();
    let through_catalog = format!(
        "{}/v1/workers/{id}/{}/blob?platform={platform}{from}",
        state.public_url, release.version
    );
    if let Some(url) = presigned {
        url
    } else if release.metadata.distribution.requires_license {
        let expires = unix_now() + URL_LIFETIME_SECS;
        let signature = state.signer.sign(&release.repository, digest, expires);
        format!("{through_catalog}&expires={expires}&signature={signature}")
    } else if state.catalog.source().needs_auth() {
        // Clients should not need the registry's credentials: stream it.
        through_catalog
    } else {
        format!(
            "{}/v2/{}/blobs/{digest}",
            state.download_base(),
            release.repository,
        )
    }
}

/// `GET /v1/workers/:id/:version/blob?platform=…`: the tar.gz streamed
/// through the catalog, for registries that need credentials to read.
#[utoipa::path(
    get,
    path = "/v1/workers/{id}/{version}/blob",
    tag = "v1",
    operation_id = "get_blob",
    summary = "The tar.gz of one platform build, streamed through the catalog",
    description = "The `download_url` of a download when the registry needs credentials the client does not have. The `Docker-Content-Digest` header carries the sha256. One `Range` of bytes is honoured (`Accept-Ranges: bytes`), so an interrupted download resumes.",
    params(crate::openapi::ReleasePath, crate::openapi::BlobQuery),
    responses(
        (status = 200, description = "The archive: `application/gzip` for a tar+gzip layer, `application/zstd` for a tar+zstd one", content(
            (inline(crate::openapi::GzipFile) = "application/gzip"),
            (inline(crate::openapi::ZstdFile) = "application/zstd"),
        )),
        (status = 206, description = "The bytes a `Range` asked for, named by `Content-Range`"),
        (status = 400, description = "`Invalid worker id`, `Bad request` (a `from` that is not a sha256 digest) or `Unknown platform`", body = crate::error::ErrorBody),
        (status = 404, description = "`Worker not found`, `Version not found`, `Platform not available`, or `Delta not found` (with `from`)", body = crate::error::ErrorBody),
        (status = 403, description = "`License required` (premium build, URL not signed; with `purchase_url`) or `Invalid download URL` (tampered, expired or made for another blob)", body = crate::error::ErrorBody),
        (status = 416, description = "`Range not satisfiable`: the range starts past the end (`Content-Range: bytes */SIZE`)", body = crate::error::ErrorBody),
        (status = 429, description = "`Too many requests` from this address; see `Retry-After`", body = crate::error::ErrorBody),
        (status = 502, description = "`Registry unavailable` or `Registry data invalid`, with nothing cached to stand in", body = crate::error::ErrorBody),
        (status = 503, description = "`Registry rate-limited`, with nothing cached to stand in; see `Retry-After`", body = crate::error::ErrorBody),
    ),
)]
pub async fn blob(
    State(state): State<Arc<AppState>>,
    Path((id, version)): Path<(String, String)>,
    Query(q): Query<PlatformQuery>,
    ClientContext(mut client): ClientContext,
    request_headers: HeaderMap,
) -> Result<Response, ApiError> {
    check_worker_id(&id)?;
    check_version_param(&version)?;
    let platform = parse_platform(q.platform.as_deref())?;
    let from = parse_from(q.from.as_deref())?;
    let (release, _) = state.catalog.release(&id, &version).await?;
    let build = build_for(&release, platform)?;
    // The blob served: the layer, or with `from` the delta from that build.
    let (blob_digest, blob_size, is_delta) = match from {
        None => (build.layer_digest.clone(), build.size, false),
        Some(from) => {
            let delta = state
                .catalog
                .delta(&release, build, from)
                .await
                .ok_or(ApiError::DeltaNotFound)?;
            (delta.blob.digest, delta.blob.size, true)
        }
    };
    if release.metadata.distribution.requires_license {
        check_signature(&state, &release, &blob_digest, &q)?;
    } else {
        check_expires(q.expires.as_deref())?;
    }
    let source = state.catalog.source();
    let part = match range::wanted(&request_headers, blob_size) {
        Wanted::Whole => None,
        Wanted::Part(part) => Some(part),
        Wanted::Unsatisfiable => {
            return Err(ApiError::RangeNotSatisfiable { size: blob_size });
        }
    };
    let stream = match &part {
        None => {
            source
                .blob_stream(&release.repository, &blob_digest, blob_size)
                .await?
        }
        Some(part) => {
            source
                .blob_range_stream(&release.repository, &blob_digest, blob_size, part.clone())
                .await?
        }
    };
    let digest = HeaderValue::from_str(&blob_digest)
        .map_err(|_| UpstreamError::Invalid("a layer digest is not a header value".into()))?;
    if client.subject.is_none() {
        // The signed URL of a premium build names no license; the
        // `/download` answer that made it does.
        client.subject = state
            .analytics
            .v1_answer_license(&client, &build.layer_digest);
    }
    let stream = analytics::recorded(
        stream,
        state.analytics.clone(),
        &client,
        (
            release.metadata.id.clone(),
            release.version.to_string(),
            platform.name().to_owned(),
        ),
        blob_size,
        part.clone(),
    );
    let mut resp = Response::new(Body::from_stream(stream));
    let length = match &part {
        None => blob_size,
        Some(part) => {
            *resp.status_mut() = StatusCode::PARTIAL_CONTENT;
            // Digits and punctuation only: always a header value.
            let range = format!("bytes {}-{}/{}", part.start, part.end - 1, blob_size);
            if let Ok(range) = HeaderValue::from_str(&range) {
                resp.headers_mut().insert(header::CONTENT_RANGE, range);
            }
            part.end - part.start
        }
    };
    let headers = resp.headers_mut();
    headers.insert(header::ACCEPT_RANGES, HeaderValue::from_static("bytes"));
    headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static(if is_delta || build.media_type == mt::WORKER_LAYER_ZSTD {
            "application/zstd"
        } else {
            "application/gzip"
        }),
    );
    headers.insert(header::CONTENT_LENGTH, HeaderValue::from(length));
    let filename = if is_delta {
        format!("{}.zst-patch", build.filename)
    } else {
        build.filename.clone()
    };
    headers.insert(header::CONTENT_DISPOSITION, content_disposition(&filename));
    headers.insert("docker-content-digest", digest);
    Ok(resp)
}

/// Seconds since the Unix epoch.
fn unix_now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

/// A premium build's `/blob` URL must carry a signature this server made
/// for this very blob and repository, not yet expired. Without one: 403
/// `License required` with the purchase URL; with a bad one: 403 `Invalid
/// download URL`.
fn check_signature(
    state: &AppState,
    release: &Release,
    blob_digest: &str,
    q: &PlatformQuery,
) -> Result<(), ApiError> {
    let (Some(expires), Some(signature)) = (&q.expires, &q.signature) else {
        return Err(ApiError::LicenseRequired {
            purchase_url: release
                .metadata
                .pricing
                .as_ref()
                .map(|p| p.purchase_url.clone()),
        });
    };
    let expires: u64 = expires.parse().map_err(|_| SignatureError::Invalid)?;
    state
        .signer
        .verify(
            &release.repository,
            blob_digest,
            expires,
            signature,
            unix_now(),
        )
        .inspect_err(
            |e| tracing::debug!(worker = %release.metadata.id, error = %e, "signed URL refused"),
        )?;
    Ok(())
}

/// Characters left as they are in an RFC 5987 `ext-value` (`attr-char`).
const ATTR_CHAR_ESCAPES: &AsciiSet = &NON_ALPHANUMERIC
    .remove(b'!')
    .remove(b'#')
    .remove(b'$')
    .remove(b'&')
    .remove(b'+')
    .remove(b'-')
    .remove(b'.')
    .remove(b'^')
    .remove(b'_')
    .remove(b'`')
    .remove(b'|')
    .remove(b'~');

/// `attachment` with the file name per RFC 6266: `filename*=UTF-8''…`
/// percent-encoded (exact, for current clients), and an ASCII `filename=`
/// fallback in which anything but letters, digits and `.-_+()~` became
/// `_`. The name comes from a registry annotation, so neither form can end
/// the parameter early (`x"; filename="evil.sh` stays one name).
pub fn content_disposition(filename: &str) -> HeaderValue {
    let fallback: String = filename
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || ".-_+()~".contains(c) {
                c
            } else {
                '_'
            }
        })
        .collect();
    let encoded = utf8_percent_encode(filename, ATTR_CHAR_ESCAPES);
    HeaderValue::from_str(&format!(
        "attachment; filename=\"{fallback}\"; filename*=UTF-8''{encoded}"
    ))
    // Both forms are visible ASCII by construction.
    .unwrap_or_else(|_| HeaderValue::from_static("attachment"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn content_disposition_keeps_a_hostile_title_one_file_name() {
        let v = content_disposition(r#"x"; filename="evil.sh"#);
        assert_eq!(
            v.to_str().unwrap(),
            r#"attachment; filename="x___filename__evil.sh"; filename*=UTF-8''x%22%3B%20filename%3D%22evil.sh"#
        );
        let v = content_disposition("wörker 1.tar.gz");
        assert_eq!(
            v.to_str().unwrap(),
            r#"attachment; filename="w_rker_1.tar.gz"; filename*=UTF-8''w%C3%B6rker%201.tar.gz"#
        );
    }
}
