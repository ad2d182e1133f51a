//! License keys at the HTTP edge: reading the one a request presents,
//! deciding what it unlocks, and `POST /v1/licenses/verify`.
//!
//! A key is a secret: it is never logged, never echoed and never part of
//! an error message; only the license's id (`lic_...`) is logged.

use std::sync::Arc;

use axum::Json;
use axum::extract::{Request, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use chrono::{SecondsFormat, Utc};
use rbee_registry::limits::{BodyBudget, BufferError, declared_length};
use serde::Deserialize;
use utoipa::ToSchema;

use crate::domain::catalog::Release;
use crate::domain::license::{Grant, License, published_at};
use crate::error::{ApiError, ErrorBody};
use crate::state::AppState;
use crate::wire::LicenseVerification;

/// The largest verify body accepted: a key is well under 100 bytes.
pub const MAX_VERIFY_BYTES: usize = 4096;

/// The key of `Authorization: Bearer <key>`, if the request has one.
pub fn presented_key(headers: &HeaderMap) -> Option<&str> {
    let value = headers.get(header::AUTHORIZATION)?.to_str().ok()?;
    let (scheme, key) = value.split_once(' ')?;
    let key = key.trim();
    (scheme.eq_ignore_ascii_case("bearer") && !key.is_empty()).then_some(key)
}

/// The license of the request's key: `None` when it sent none, or one
/// that is malformed, unknown or revoked.
pub async fn license_of(
    state: &AppState,
    headers: &HeaderMap,
) -> Result<Option<License>, ApiError> {
    let Some(key) = presented_key(headers) else {
        return Ok(None);
    };
    Ok(state.licenses.license(key).await?)
}

/// Whether `license` unlocks `release` now.
pub fn unlocks(license: &License, release: &Release) -> bool {
    license.unlocks(
        &release.metadata.id,
        &release.repository,
        published_at(release.published_at.as_deref()),
        Utc::now(),
    )
}

/// Lets a premium release through only for a license that unlocks it:
/// 403 with the purchase URL otherwise. Free releases pass. Returns the
/// id of the license that unlocked it (for download analytics).
pub async fn require_license(
    state: &AppState,
    headers: &HeaderMap,
    release: &Release,
) -> Result<Option<String>, ApiError> {
    if !release.metadata.distribution.requires_license {
        return Ok(None);
    }
    let purchase_url = release
        .metadata
        .pricing
        .as_ref()
        .map(|p| p.purchase_url.clone());
    if presented_key(headers).is_none() {
        return Err(ApiError::LicenseRequired { purchase_url });
    }
    match license_of(state, headers).await? {
        Some(license) if unlocks(&license, release) => {
            tracing::debug!(license = %license.id, worker = %release.metadata.id,
                version = %release.version, "licensed download");
            Ok(Some(license.id))
        }
        _ => Err(ApiError::LicenseNotAccepted { purchase_url }),
    }
}

/// `POST /v1/licenses/verify`.
#[derive(Debug, Deserialize, ToSchema)]
pub struct VerifyRequest {
    /// The license key, `rbee_lic_...`.
    pub token: String,
}

/// Whether a license key is valid, and what it unlocks.
///
/// Malformed, unknown, revoked and expired keys all answer
/// `{"valid": false}`, with nothing that tells them apart. Rate-limited
/// per client address.
#[utoipa::path(
    post,
    path = "/v1/licenses/verify",
    tag = "v1",
    operation_id = "verify_license",
    request_body(content = VerifyRequest, content_type = "application/json"),
    responses(
        (status = 200, description = "The verdict", body = LicenseVerification),
        (status = 400, description = "`Bad request`: not `{\"token\": \"...\"}`", body = ErrorBody),
        (status = 413, description = "`Payload too large`: over 4 KiB", body = ErrorBody),
        (status = 429, description = "`Too many requests`; see `Retry-After`", body = ErrorBody),
        (status = 503, description = "`License check unavailable` or `Server busy`", body = ErrorBody),
    ),
)]
pub async fn verify(
    State(state): State<Arc<AppState>>,
    request: Request,
) -> Result<Response, ApiError> {
    let declared = declared_length(request.headers());
    let budget = BodyBudget::of(request.extensions());
    let body = budget
        .buffer(request.into_body(), declared, MAX_VERIFY_BYTES)
        .await
        .map_err(|e| match e {
            BufferError::TooLarge { limit } => {
                ApiError::TooLarge(format!("verify bodies are limited to {limit} bytes"))
            }
            BufferError::Busy => ApiError::Busy(e.to_string()),
            BufferError::Body(_) => ApiError::BadRequest(e.to_string()),
        })?;
    // serde's message could quote the body, and so the key: not sent back.
    let asked: VerifyRequest = serde_json::from_slice(&body.bytes).map_err(|_| {
        ApiError::BadRequest("the body must be {\"token\": \"<license key>\"}".into())
    })?;
    let license = state
        .licenses
        .license(&asked.token)
        .await?
        .filter(|l| l.is_current(Utc::now()));
    let answer = match license {
        None => LicenseVerification {
            valid: false,
            worker_ids: None,
            namespaces: None,
            expires_at: None,
        },
        Some(l) => LicenseVerification {
            valid: true,
            worker_ids: Some(l.worker_ids()),
            namespaces: Some(
                l.grants
                    .iter()
                    .filter_map(|g| match g {
                        Grant::Namespace(ns) => Some(ns.clone()),
                        Grant::Worker(_) => None,
                    })
                    .collect(),
            ),
            expires_at: Some(
                l.expires_at
                    .map(|t| t.to_rfc3339_opts(SecondsFormat::Secs, true)),
            ),
        },
    };
    let mut resp = (StatusCode::OK, Json(answer)).into_response();
    resp.headers_mut().insert(
        header::CACHE_CONTROL,
        header::HeaderValue::from_static("private, no-store"),
    );
    Ok(resp)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(value: &str) -> HeaderMap {
        let mut h = HeaderMap::new();
        h.insert(header::AUTHORIZATION, value.parse().unwrap());
        h
    }

    #[test]
    fn only_a_bearer_key_is_presented() {
        assert_eq!(
            presented_key(&headers("Bearer rbee_lic_x")),
            Some("rbee_lic_x")
        );
        assert_eq!(
            presented_key(&headers("bearer  rbee_lic_x ")),
            Some("rbee_lic_x")
        );
        assert_eq!(presented_key(&headers("Basic dXNlcjpwYXNz")), None);
        assert_eq!(presented_key(&headers("Bearer ")), None);
        assert_eq!(presented_key(&HeaderMap::new()), None);
    }
}
