//! `/v1` routes: workers, versions and downloads, snake_case JSON.

use std::sync::Arc;

use axum::body::Body;
use axum::extract::State;
use axum::http::{HeaderMap, HeaderValue, header};
use axum::response::Response;
use percent_encoding::{AsciiSet, NON_ALPHANUMERIC, utf8_percent_encode};
use rbee_schemas::{Backend, Platform};
use serde::Deserialize;
use serde_json::json;

use crate::domain::CatalogError;
use crate::domain::catalog::{PlatformBuild, Release};
use crate::domain::upstream::UpstreamError;
use crate::error::{ApiError, check_worker_id};
use crate::extract::{Path, Query};
use crate::respond::{self, Caching};
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

/// `?platform=` of a download.
#[derive(Debug, Deserialize)]
pub struct PlatformQuery {
    /// The rbee platform name.
    pub platform: Option<String>,
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
    let workers: Vec<Worker> = latest
        .iter()
        .filter(|(_, r)| backend.is_none_or(|b| r.metadata.backend == b))
        .filter(|(_, r)| platform.is_none_or(|p| r.builds.iter().any(|b| b.platform == p)))
        .map(|(entry, r)| wire::worker(r, entry.versions.clone()))
        .collect();
    Ok(respond::json(
        &headers,
        &json!({ "workers": workers }),
        stale,
        Caching::Public(300),
    ))
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
    params(crate::openapi::WorkerIdPath),
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
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    check_worker_id(&id)?;
    let ((entry, releases), stale) = state.catalog.releases(&id).await?;
    let body = Versions {
        versions: releases.iter().map(|r| wire::version(r)).collect(),
        latest: entry.latest,
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

/// Premium builds need a verified license, and license verification is
/// not built yet: until it is, premium downloads are refused (403 with the
/// purchase URL) rather than handed out unchecked.
fn require_license(release: &Release) -> Result<(), ApiError> {
    if release.metadata.distribution.requires_license {
        return Err(ApiError::LicenseRequired {
            purchase_url: release
                .metadata
                .pricing
                .as_ref()
                .map(|p| p.purchase_url.clone()),
        });
    }
    Ok(())
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
        (status = 400, description = "`Invalid worker id`, `Bad request` (bad version, no platform) or `Unknown platform` (with `valid_platforms`)", body = crate::error::ErrorBody),
        (status = 404, description = "`Worker not found`, `Version not found` or `Platform not available` (with `available_platforms`)", body = crate::error::ErrorBody),
        (status = 403, description = "`License required` (premium worker; with `purchase_url`)", body = crate::error::ErrorBody),
        (status = 502, description = "`Registry unavailable` or `Registry data invalid`, with nothing cached to stand in", body = crate::error::ErrorBody),
        (status = 503, description = "`Registry rate-limited`, with nothing cached to stand in; see `Retry-After`", body = crate::error::ErrorBody),
    ),
)]
pub async fn download(
    State(state): State<Arc<AppState>>,
    Path((id, version)): Path<(String, String)>,
    Query(q): Query<PlatformQuery>,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    check_worker_id(&id)?;
    check_version_param(&version)?;
    let platform = parse_platform(q.platform.as_deref())?;
    let (release, stale) = state.catalog.release(&id, &version).await?;
    require_license(&release)?;
    let build = build_for(&release, platform)?;
    let source = state.catalog.source();
    let download_url = if source.needs_auth() {
        // Clients should not need the registry's credentials: stream it.
        format!(
            "{}/v1/workers/{id}/{}/blob?platform={platform}",
            state.public_url, release.version
        )
    } else {
        format!(
            "{}/v2/{}/blobs/{}",
            state.download_base(),
            release.repository,
            build.layer_digest
        )
    };
    let body = Download {
        worker_id: id.clone(),
        version: release.version.to_string(),
        platform,
        download_url,
        checksum: build.layer_digest.clone(),
        size: build.size,
        filename: build.filename.clone(),
        expires_in: None,
        oci_reference: format!(
            "{}/{}@{}",
            source.registry(),
            release.repository,
            build.manifest_digest
        ),
    };
    let caching = if version == "latest" {
        Caching::Public(300)
    } else {
        Caching::Public(3600)
    };
    Ok(respond::json(&headers, &body, stale, caching))
}

/// `GET /v1/workers/:id/:version/blob?platform=…`: the tar.gz streamed
/// through the catalog, for registries that need credentials to read.
#[utoipa::path(
    get,
    path = "/v1/workers/{id}/{version}/blob",
    tag = "v1",
    operation_id = "get_blob",
    summary = "The tar.gz of one platform build, streamed through the catalog",
    description = "The `download_url` of a download when the registry needs credentials the client does not have. The `Docker-Content-Digest` header carries the sha256.",
    params(crate::openapi::ReleasePath, crate::openapi::PlatformQuery),
    responses(
        (status = 200, description = "The tar.gz", body = inline(crate::openapi::GzipFile), content_type = "application/gzip"),
        (status = 400, description = "`Invalid worker id`, `Bad request` or `Unknown platform`", body = crate::error::ErrorBody),
        (status = 404, description = "`Worker not found`, `Version not found` or `Platform not available`", body = crate::error::ErrorBody),
        (status = 403, description = "`License required` (premium worker; with `purchase_url`)", body = crate::error::ErrorBody),
        (status = 502, description = "`Registry unavailable` or `Registry data invalid`, with nothing cached to stand in", body = crate::error::ErrorBody),
        (status = 503, description = "`Registry rate-limited`, with nothing cached to stand in; see `Retry-After`", body = crate::error::ErrorBody),
    ),
)]
pub async fn blob(
    State(state): State<Arc<AppState>>,
    Path((id, version)): Path<(String, String)>,
    Query(q): Query<PlatformQuery>,
) -> Result<Response, ApiError> {
    check_worker_id(&id)?;
    check_version_param(&version)?;
    let platform = parse_platform(q.platform.as_deref())?;
    let (release, _) = state.catalog.release(&id, &version).await?;
    require_license(&release)?;
    let build = build_for(&release, platform)?;
    let stream = state
        .catalog
        .source()
        .blob_stream(&release.repository, &build.layer_digest, build.size)
        .await?;
    let digest = HeaderValue::from_str(&build.layer_digest)
        .map_err(|_| UpstreamError::Invalid("a layer digest is not a header value".into()))?;
    let mut resp = Response::new(Body::from_stream(stream));
    let headers = resp.headers_mut();
    headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/gzip"),
    );
    headers.insert(header::CONTENT_LENGTH, HeaderValue::from(build.size));
    headers.insert(
        header::CONTENT_DISPOSITION,
        content_disposition(&build.filename),
    );
    headers.insert("docker-content-digest", digest);
    Ok(resp)
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
