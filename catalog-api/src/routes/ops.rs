//! Operational routes: `/health` (the process answers) and `/ready` (the
//! registry behind it answers too).

use std::sync::Arc;

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde_json::json;

use crate::state::AppState;

/// `GET /health`: liveness; never touches the registry.
pub async fn health() -> Response {
    Json(json!({ "status": "ok", "version": env!("CARGO_PKG_VERSION") })).into_response()
}

/// `GET /ready`: 200 when the catalog index can be read (fresh or cached),
/// 503 otherwise.
pub async fn ready(State(state): State<Arc<AppState>>) -> Response {
    match state.catalog.index().await {
        Ok(index) => Json(json!({ "status": "ready", "stale": index.stale })).into_response(),
        Err(e) => (
            StatusCode::SERVICE_UNAVAILABLE,
            Json(json!({ "error": "Not ready", "message": e.to_string() })),
        )
            .into_response(),
    }
}
