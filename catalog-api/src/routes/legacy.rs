//! `/workers`, `/workers/:id`, `/workers/:id/PKGBUILD`: the routes today's
//! rbee-hive and the marketplace use.

use std::sync::Arc;

use axum::extract::{Path, State};
use axum::http::HeaderMap;
use axum::response::Response;
use futures_util::{StreamExt, TryStreamExt};
use serde_json::json;

use crate::error::{ApiError, check_worker_id};
use crate::respond::{self, Caching};
use crate::state::AppState;
use crate::wire::LegacyWorker;

/// `GET /workers`
pub async fn list(
    State(state): State<Arc<AppState>>,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    let index = state.catalog.index().await?;
    let ids: Vec<String> = index
        .value
        .workers
        .iter()
        .filter(|w| w.latest.is_some())
        .map(|w| w.id.clone())
        .collect();
    let catalog = &state.catalog;
    let fetched: Vec<_> = futures_util::stream::iter(ids)
        .map(|id| async move { catalog.release(&id, "latest").await })
        .buffered(8)
        .try_collect()
        .await?;
    let stale = index.stale || fetched.iter().any(|(_, s)| *s);
    let workers: Vec<LegacyWorker> = fetched
        .iter()
        .map(|(r, _)| LegacyWorker::new(&r.metadata))
        .collect();
    Ok(respond::json(
        &headers,
        &json!({ "workers": workers }),
        stale,
        Caching::Public(300),
    ))
}

/// `GET /workers/:id`
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
            ApiError::VersionNotFound(_) => ApiError::WorkerNotFound,
            other => other,
        })?;
    Ok(respond::json(
        &headers,
        &LegacyWorker::new(&release.metadata),
        stale,
        Caching::Public(600),
    ))
}

/// `GET /workers/:id/PKGBUILD`
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
