//! `POST /v1/webhooks/registry`: push notifications from an external
//! registry, in CNCF Distribution's envelope (`{"events": [{"action",
//! "target": {"repository", ...}}]}`), so that its cache is invalidated at
//! once. Distribution is configured with the shared secret as a header:
//!
//! ```yaml
//! notifications:
//!   endpoints:
//!     - name: rbee-catalog
//!       url: http://catalog:8787/v1/webhooks/registry
//!       headers: { Authorization: [Bearer <secret>] }
//! ```

use std::sync::Arc;

use axum::Json;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::Deserialize;
use serde_json::json;

use crate::error::ApiError;
use crate::state::AppState;

#[derive(Debug, Deserialize)]
struct Envelope {
    #[serde(default)]
    events: Vec<Notification>,
}

#[derive(Debug, Deserialize)]
struct Notification {
    #[serde(default)]
    action: String,
    target: Option<NotificationTarget>,
}

#[derive(Debug, Deserialize)]
struct NotificationTarget {
    #[serde(default)]
    repository: String,
}

/// Compares secrets in time independent of where they differ.
fn same_secret(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// Handles one notification envelope.
pub async fn registry_events(
    State(state): State<Arc<AppState>>,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Response, ApiError> {
    let Some(secret) = &state.webhook_secret else {
        return Err(ApiError::NotFound);
    };
    let given = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .unwrap_or("");
    if !same_secret(given.as_bytes(), secret.as_bytes()) {
        return Err(ApiError::Unauthorized(
            "missing or wrong webhook secret".into(),
        ));
    }
    let envelope: Envelope = serde_json::from_slice(&body)
        .map_err(|e| ApiError::BadRequest(format!("not a notification envelope: {e}")))?;
    let mut invalidated = 0;
    for event in envelope.events {
        if matches!(event.action.as_str(), "push" | "delete")
            && let Some(target) = event.target
        {
            state.catalog.invalidate_repository(&target.repository);
            invalidated += 1;
        }
    }
    Ok((StatusCode::OK, Json(json!({ "invalidated": invalidated }))).into_response())
}
