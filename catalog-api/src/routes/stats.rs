//! Download stats: `GET /v1/workers/:id/stats` and
//! `GET /v1/stats/overview`, thin layers over `domain::stats`, answered
//! from the stats cache (1 hour by default) with an ETag.

use std::future::Future;
use std::sync::Arc;

use axum::extract::State;
use axum::http::HeaderMap;
use axum::response::Response;
use chrono::NaiveDate;
use rbee_store::StoreError;
use serde::{Deserialize, Serialize};
use utoipa::IntoParams;

use crate::domain::stats::{self, DEFAULT_DAYS, MAX_DAYS};
use crate::error::{ApiError, check_worker_id};
use crate::extract::{Path, Query};
use crate::respond::{self, Caching};
use crate::state::AppState;

/// `?days=` of the stats routes.
#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct DaysQuery {
    /// How many days, today included (UTC): 1 to 365, default 30;
    /// anything else is 400 `Bad request`.
    #[param(minimum = 1, maximum = 365, example = 30)]
    pub days: Option<u32>,
}

fn check_days(days: Option<u32>) -> Result<u32, ApiError> {
    match days.unwrap_or(DEFAULT_DAYS) {
        d @ 1..=MAX_DAYS => Ok(d),
        d => Err(ApiError::BadRequest(format!(
            "`days` must be from 1 to {MAX_DAYS}, not {d}"
        ))),
    }
}

fn answer(state: &AppState, headers: &HeaderMap, body: &[u8]) -> Response {
    let secs = u32::try_from(state.analytics.cache.ttl().as_secs()).unwrap_or(u32::MAX);
    respond::respond(
        headers,
        body.to_vec(),
        "application/json",
        false,
        Caching::Public(secs),
    )
}

/// `GET /v1/workers/:id/stats`
#[utoipa::path(
    get,
    path = "/v1/workers/{id}/stats",
    tag = "v1",
    operation_id = "get_worker_stats",
    summary = "A worker's downloads: total, by version, by platform, per day, unique clients, completion rate",
    description = "Computed from daily rollups; no client address or hash is ever part of it. A worker that was never downloaded has zeros.",
    params(crate::openapi::WorkerIdPath, DaysQuery),
    responses(
        (status = 200, description = "The stats; cached 1 hour by default", body = rbee_schemas::v1::WorkerStats),
        (status = 304, description = "Not modified: the `If-None-Match` ETag still matches"),
        (status = 400, description = "`Invalid worker id` or `Bad request` (`days` out of range)", body = crate::error::ErrorBody),
        (status = 500, description = "`Database error`", body = crate::error::ErrorBody),
    ),
)]
pub async fn worker(
    State(state): State<Arc<AppState>>,
    Path(id): Path<String>,
    Query(q): Query<DaysQuery>,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    check_worker_id(&id)?;
    let days = check_days(q.days)?;
    let body = worker_stats_json(&state, &id, days).await?;
    Ok(answer(&state, &headers, &body))
}

/// Worker `id`'s stats over `days` days as JSON, from the stats cache:
/// what the stats route answers and the worker's web page draws.
pub(crate) async fn worker_stats_json(
    state: &AppState,
    id: &str,
    days: u32,
) -> Result<Arc<Vec<u8>>, ApiError> {
    cached(state, format!("worker/{id}/{days}"), |today| {
        stats::worker_stats(&state.store, id, days, today)
    })
    .await
}

/// What `make` answers for today, as JSON, from the stats cache under
/// `key` and today's date (a new day is a new answer).
async fn cached<T, Fut>(
    state: &AppState,
    key: String,
    make: impl FnOnce(NaiveDate) -> Fut,
) -> Result<Arc<Vec<u8>>, ApiError>
where
    T: Serialize,
    Fut: Future<Output = Result<T, StoreError>>,
{
    let today = chrono::Utc::now().date_naive();
    state
        .analytics
        .cache
        .get_or_make(format!("{key}/{today}"), async move {
            let value = make(today).await?;
            Ok::<_, ApiError>(serde_json::to_vec(&value).unwrap_or_default())
        })
        .await
}

/// `GET /v1/stats/overview`
#[utoipa::path(
    get,
    path = "/v1/stats/overview",
    tag = "v1",
    operation_id = "get_stats_overview",
    summary = "Every worker's downloads: top workers, recent downloads, by platform, source and client family",
    description = "Computed from daily rollups; recent downloads name worker, version, platform and time only.",
    params(DaysQuery),
    responses(
        (status = 200, description = "The overview; cached 1 hour by default", body = rbee_schemas::v1::StatsOverview),
        (status = 304, description = "Not modified: the `If-None-Match` ETag still matches"),
        (status = 400, description = "`Bad request` (`days` out of range)", body = crate::error::ErrorBody),
        (status = 500, description = "`Database error`", body = crate::error::ErrorBody),
    ),
)]
pub async fn overview(
    State(state): State<Arc<AppState>>,
    Query(q): Query<DaysQuery>,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    let days = check_days(q.days)?;
    let body = overview_json(&state, days).await?;
    Ok(answer(&state, &headers, &body))
}

/// The overview over `days` days as JSON, from the stats cache: what the
/// overview route answers and the stats web page draws.
pub(crate) async fn overview_json(state: &AppState, days: u32) -> Result<Arc<Vec<u8>>, ApiError> {
    cached(state, format!("overview/{days}"), |today| {
        stats::overview(&state.store, days, today)
    })
    .await
}

/// Every worker's downloads over `days` days (most first) as JSON, from
/// the stats cache, for the web page's worker list.
pub(crate) async fn worker_totals_json(
    state: &AppState,
    days: u32,
) -> Result<Arc<Vec<u8>>, ApiError> {
    cached(state, format!("totals/{days}"), |today| {
        stats::worker_totals(&state.store, days, today)
    })
    .await
}

/// Every worker's downloads per day over `days` days as JSON, from the
/// stats cache, for the stats web page.
pub(crate) async fn downloads_per_day_json(
    state: &AppState,
    days: u32,
) -> Result<Arc<Vec<u8>>, ApiError> {
    cached(state, format!("daily/{days}"), |today| {
        stats::downloads_per_day(&state.store, days, today)
    })
    .await
}

/// `days` as the stats routes accept it (1 to 365, default 30).
pub(crate) fn days_param(days: Option<u32>) -> Result<u32, ApiError> {
    check_days(days)
}
