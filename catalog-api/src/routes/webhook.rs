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
use axum::extract::{Request, State};
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use rbee_registry::limits::{BodyBudget, BufferError, declared_length};
use serde::Deserialize;
use utoipa::ToSchema;

use crate::error::{ApiError, ErrorBody};
use crate::state::AppState;
use crate::wire::WebhookAck;

/// A CNCF Distribution notification envelope; only the fields the catalog
/// reads are described, and any others are ignored.
#[derive(Debug, Deserialize, ToSchema)]
#[schema(as = RegistryNotifications)]
struct Envelope {
    /// The events, in the order the registry saw them. Required: a body
    /// without it is not an envelope (400), not an empty one.
    events: Vec<Notification>,
}

/// One registry event.
#[derive(Debug, Deserialize, ToSchema)]
#[schema(as = RegistryEvent)]
struct Notification {
    /// `push`, `pull`, `mount` or `delete`; `push` and `delete` invalidate.
    #[serde(default)]
    action: String,
    /// What the event is about.
    target: Option<NotificationTarget>,
}

/// The target of a registry event.
#[derive(Debug, Deserialize, ToSchema)]
#[schema(as = RegistryEventTarget)]
struct NotificationTarget {
    /// The repository, e.g. `rbee/llm-worker-rbee-cpu`.
    #[serde(default)]
    repository: String,
}

/// The largest notification envelope accepted. CNCF Distribution sends a
/// few events per request (its default threshold is 10), a few KiB.
pub const MAX_WEBHOOK_BYTES: usize = 1 << 20;

/// Compares secrets in time independent of where they differ.
fn same_secret(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// Push notifications from an external registry.
///
/// Every `push` or `delete` event drops what is cached about its
/// repository, and the worker list, so that a new release is visible at
/// once instead of after the cache lifetime.
#[utoipa::path(
    post,
    path = "/v1/webhooks/registry",
    tag = "ops",
    operation_id = "registry_webhook",
    security(("webhook_secret" = [])),
    request_body(
        content = Envelope,
        content_type = "application/json",
        description = "CNCF Distribution's notification envelope",
    ),
    responses(
        (status = 200, description = "The events were applied", body = WebhookAck),
        (status = 400, description = "`Bad request`: not a notification envelope", body = ErrorBody),
        (status = 401, description = "`Unauthorized`: no `Authorization: Bearer` (whether or not the webhook is on), or the wrong secret", body = ErrorBody),
        (status = 404, description = "`Not found`: a secret was sent but the webhook is disabled (no secret configured)", body = ErrorBody),
        (status = 413, description = "`Payload too large`: the body is over 1 MiB", body = ErrorBody),
        (status = 503, description = "`Server busy`: buffered request bodies hold the server's whole memory budget; retry after `Retry-After` seconds", body = ErrorBody),
    ),
)]
pub async fn registry_events(
    State(state): State<Arc<AppState>>,
    request: Request,
) -> Result<Response, ApiError> {
    let given = request
        .headers()
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "));
    // No credential is 401 whether or not the webhook is on, as the
    // document's security scheme says; a sender with a credential learns
    // that the webhook is off.
    let Some(given) = given else {
        return Err(ApiError::Unauthorized(
            "missing webhook secret (Authorization: Bearer ...)".into(),
        ));
    };
    let Some(secret) = &state.webhook_secret else {
        return Err(ApiError::NotFound);
    };
    if !same_secret(given.as_bytes(), secret.as_bytes()) {
        return Err(ApiError::Unauthorized(
            "missing or wrong webhook secret".into(),
        ));
    }
    // Only an authenticated sender gets to hold memory, and only within the
    // server's budget.
    let declared = declared_length(request.headers());
    let budget = BodyBudget::of(request.extensions());
    let body = budget
        .buffer(request.into_body(), declared, MAX_WEBHOOK_BYTES)
        .await
        .map_err(|e| match e {
            BufferError::TooLarge { limit } => {
                ApiError::TooLarge(format!("webhook bodies are limited to {limit} bytes"))
            }
            BufferError::Busy => ApiError::Busy(e.to_string()),
            BufferError::Body(_) => ApiError::BadRequest(e.to_string()),
        })?;
    let envelope: Envelope = serde_json::from_slice(&body.bytes)
        .map_err(|e| ApiError::BadRequest(format!("not a notification envelope: {e}")))?;
    let mut heard: Vec<String> = Vec::new();
    for event in envelope.events {
        if matches!(event.action.as_str(), "push" | "delete")
            && let Some(target) = event.target
        {
            state.catalog.heard(&target.repository);
            heard.push(target.repository);
        }
    }
    let invalidated = heard.len();
    // CNCF Distribution sends a tagged push's notification before it
    // writes the tag, so the reread above may still find the old one: the
    // same repositories are heard once more when the tag is surely there.
    heard.sort();
    heard.dedup();
    if !heard.is_empty() {
        let state = state.clone();
        tokio::spawn(async move {
            tokio::time::sleep(SETTLE).await;
            for repository in &heard {
                state.catalog.heard(repository);
            }
        });
    }
    Ok((StatusCode::OK, Json(WebhookAck { invalidated })).into_response())
}

/// How long after a notification its repositories are reread once more.
const SETTLE: std::time::Duration = std::time::Duration::from_millis(500);
