//! `/workers`, `/workers/:id`, `/workers/:id/PKGBUILD`: the routes today's
//! rbee-hive and the marketplace use.

use std::sync::Arc;

use axum::extract::State;
use axum::http::HeaderMap;
use axum::response::Response;

use crate::domain::CatalogError;
use crate::error::{ApiError, ErrorBody, check_worker_id};
use crate::extract::Path;
use crate::openapi::WorkerIdPath;
use crate::respond::{self, Caching};
use crate::state::AppState;
use crate::wire::{LegacyWorker, LegacyWorkers};

/// Every published worker, latest version, in the legacy shape.
///
/// One answer for every reader rbee ships: rbee-hive's CLI and web UI,
/// rbee-keeper's marketplace SDK and the marketplace site (the superset
/// of `LegacyWorker`, docs/api.md).
#[utoipa::path(
    get,
    path = "/workers",
    tag = "legacy",
    operation_id = "legacy_list_workers",
    responses(
        (status = 200, description = "Every worker; cached 5 minutes", body = LegacyWorkers),
        (status = 304, description = "Not modified: the `If-None-Match` ETag still matches"),
        (status = 502, description = "The registry failed and nothing cached could stand in", body = ErrorBody),
        (status = 503, description = "The registry rate-limits and nothing cached could stand in; see `Retry-After`", body = ErrorBody),
    ),
)]
pub async fn list(
    State(state): State<Arc<AppState>>,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    let (latest, stale) = state.catalog.latest_releases().await?;
    let workers: Vec<LegacyWorker> = latest
        .iter()
        .map(|(_, r)| LegacyWorker::new(&r.metadata))
        .collect();
    Ok(respond::json(
        &headers,
        &LegacyWorkers { workers },
        stale,
        Caching::Public(300),
    ))
}

/// One worker, latest version, in the legacy shape.
///
/// rbee-hive's installer deserialises it strictly into `{id, name, version,
/// platforms, architectures, depends}`, so those fields never change;
/// rbee-keeper's SDK reads it as one `WorkerCatalogEntry`.
#[utoipa::path(
    get,
    path = "/workers/{id}",
    tag = "legacy",
    operation_id = "legacy_get_worker",
    params(WorkerIdPath),
    responses(
        (status = 200, description = "The worker; cached 10 minutes", body = LegacyWorker),
        (status = 304, description = "Not modified: the `If-None-Match` ETag still matches"),
        (status = 400, description = "`Invalid worker id`", body = ErrorBody),
        (status = 404, description = "`Worker not found`", body = ErrorBody),
        (status = 502, description = "The registry failed and nothing cached could stand in", body = ErrorBody),
        (status = 503, description = "The registry rate-limits and nothing cached could stand in; see `Retry-After`", body = ErrorBody),
    ),
)]
pub async fn get(
    State(state): State<Arc<AppState>>,
    Path(id): Path<String>,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    check_worker_id(&id)?;
    let (release, stale) = state
        .catalog
        .release(&id, "latest")
        .await
        .map_err(|e| match e {
            CatalogError::VersionNotFound(_) => ApiError::WorkerNotFound,
            other => other.into(),
        })?;
    Ok(respond::json(
        &headers,
        &LegacyWorker::new(&release.metadata),
        stale,
        Caching::Public(600),
    ))
}

/// The PKGBUILD attached to the worker's latest release.
#[utoipa::path(
    get,
    path = "/workers/{id}/PKGBUILD",
    tag = "legacy",
    operation_id = "legacy_get_pkgbuild",
    params(WorkerIdPath),
    responses(
        (status = 200, description = "The PKGBUILD; cached 10 minutes", body = String, content_type = "text/plain; charset=utf-8"),
        (status = 304, description = "Not modified: the `If-None-Match` ETag still matches"),
        (status = 400, description = "`Invalid worker id`", body = ErrorBody),
        (status = 404, description = "`Worker not found`, or `PKGBUILD not found` when the release has none", body = ErrorBody),
        (status = 502, description = "The registry failed and nothing cached could stand in", body = ErrorBody),
        (status = 503, description = "The registry rate-limits and nothing cached could stand in; see `Retry-After`", body = ErrorBody),
    ),
)]
pub async fn pkgbuild(
    State(state): State<Arc<AppState>>,
    Path(id): Path<String>,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    check_worker_id(&id)?;
    let (text, stale) = state.catalog.pkgbuild(&id).await?;
    let text = text.ok_or(ApiError::PkgbuildNotFound)?;
    Ok(respond::respond(
        &headers,
        text.into_bytes(),
        "text/plain; charset=utf-8",
        stale,
        Caching::Public(600),
    ))
}
