//! Operational routes: `/health` (the process answers), `/ready` (the
//! registry behind it answers too), `/metrics` (Prometheus) and
//! `/openapi.json` (this API's description).

use std::sync::Arc;

use axum::Json;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};

use crate::error::ErrorBody;
use crate::respond::{self, Caching};
use crate::state::AppState;
use crate::wire::{Health, Readiness};

/// Liveness: the process answers, as `{status, service, version}` like
/// rbee's own catalog.
///
/// It never touches the registry, so that a registry outage does not get
/// the catalog restarted by its supervisor.
#[utoipa::path(
    get,
    path = "/health",
    tag = "ops",
    operation_id = "health",
    responses((status = 200, description = "The process answers", body = Health)),
)]
pub async fn health() -> Response {
    Json(Health {
        status: "ok",
        service: "worker-catalog",
        version: env!("CARGO_PKG_VERSION"),
    })
    .into_response()
}

/// Readiness: the worker list can be served.
///
/// 200 when the catalog index can be read, fresh or from the cache (then
/// `stale` is true); 503 when the registry fails and nothing is cached, so
/// that a load balancer sends traffic elsewhere.
#[utoipa::path(
    get,
    path = "/ready",
    tag = "ops",
    operation_id = "ready",
    responses(
        (status = 200, description = "The worker list can be served", body = Readiness),
        (status = 503, description = "The registry fails and nothing is cached", body = ErrorBody),
    ),
)]
pub async fn ready(State(state): State<Arc<AppState>>) -> Response {
    match state.catalog.index().await {
        Ok(index) => Json(Readiness {
            status: "ready",
            stale: index.stale,
        })
        .into_response(),
        Err(e) => {
            // The upstream's words may name internal hosts: log them, and
            // tell the prober only that the registry is not answering.
            tracing::warn!(error = %e, "not ready");
            (
                StatusCode::SERVICE_UNAVAILABLE,
                Json(ErrorBody::new(
                    "Not ready",
                    "the registry behind the catalog is not answering",
                )),
            )
                .into_response()
        }
    }
}

/// Prometheus metrics of this server.
///
/// In the OpenMetrics text format: requests by route template, method and
/// status class, request durations by route template, upstream cache
/// lookups by outcome, and releases left out of lists by reason.
#[utoipa::path(
    get,
    path = "/metrics",
    tag = "ops",
    operation_id = "metrics",
    responses((
        status = 200,
        description = "Request counts and durations by route template, and cache lookups by outcome",
        body = String,
        content_type = "application/openmetrics-text; version=1.0.0; charset=utf-8",
    )),
)]
pub async fn metrics(State(state): State<Arc<AppState>>) -> Response {
    (
        [
            (header::CONTENT_TYPE, crate::metrics::CONTENT_TYPE),
            // Every scrape must see current numbers.
            (header::CACHE_CONTROL, "no-store"),
        ],
        state.metrics.encode(),
    )
        .into_response()
}

/// This document: the OpenAPI 3.1 description of the catalog routes.
///
/// Generated from the code; the embedded registry's `/v2` routes follow the
/// OCI Distribution Spec and are not in it.
#[utoipa::path(
    get,
    path = "/openapi.json",
    tag = "ops",
    operation_id = "openapi",
    responses(
        (status = 200, description = "The OpenAPI 3.1 document", body = Object),
        (status = 304, description = "Not modified: the `If-None-Match` ETag still matches"),
    ),
)]
pub async fn openapi(headers: HeaderMap) -> Response {
    respond::respond(
        &headers,
        crate::openapi::document_bytes().to_vec(),
        "application/json",
        false,
        Caching::Public(300),
    )
}
