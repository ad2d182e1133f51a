//! `/admin`: licenses, publisher keys and the audit log over HTTP, for the
//! operator's tools. Every request needs the admin key (`Authorization:
//! Bearer rbee_adm_...`), checked before the body is read; every request is
//! written to the audit log under the admin key's id; no answer is cached
//! (`Cache-Control: no-store`: creations carry a key). The same operations
//! exist as `rbee-catalog license|publisher-key|audit` commands
//! ([`crate::admin`]), which print the same JSON with `--json`.
//!
//! | Method and path | Does |
//! |---|---|
//! | `GET /admin/licenses` | every license |
//! | `POST /admin/licenses` | issue one: `{"owner", "grants", "expires_at"?, "perpetual_fallback"?}` → 201 with `key` |
//! | `GET /admin/licenses/{id}` | one license |
//! | `POST /admin/licenses/{id}/revoke` | revoke it |
//! | `GET /admin/publisher-keys` | every publisher key |
//! | `POST /admin/publisher-keys` | issue one: `{"owner", "grants"}` → 201 with `key` |
//! | `POST /admin/publisher-keys/{id}/revoke` | revoke it |
//! | `GET /admin/audit?limit=&before=` | the audit log, newest first |

use std::sync::Arc;

use axum::extract::{FromRequest, FromRequestParts, Request, State};
use axum::http::request::Parts;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use chrono::{DateTime, Utc};
use rbee_registry::limits::{BodyBudget, BufferError, declared_length};
use rbee_store::{Credential, CredentialKind, Grant, NewLicense, NewPublisherKey, StoreError};
use serde::Deserialize;
use serde::de::DeserializeOwned;

use crate::admin::{AuditEntryView, Created, LicenseView, PublisherKeyView};
use crate::error::ApiError;
use crate::extract::{Path, Query};
use crate::state::AppState;

/// The largest admin request body: a license with many grants fits.
pub const MAX_ADMIN_BODY_BYTES: usize = 256 << 10;

/// Entries `GET /admin/audit` returns without `limit`.
const DEFAULT_AUDIT_LIMIT: u32 = 100;

/// The `/admin` routes (nested under `/admin` by the server).
pub fn routes() -> Router<Arc<AppState>> {
    Router::new()
        .route("/licenses", get(list_licenses).post(create_license))
        .route("/licenses/{id}", get(show_license))
        .route("/licenses/{id}/revoke", post(revoke_license))
        .route(
            "/publisher-keys",
            get(list_publisher_keys).post(create_publisher_key),
        )
        .route("/publisher-keys/{id}/revoke", post(revoke_publisher_key))
        .route("/audit", get(audit))
        .layer(axum::middleware::map_response(no_store))
}

async fn no_store(mut response: Response) -> Response {
    response
        .headers_mut()
        .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    response
}

/// The caller, proven to hold the admin key.
#[derive(Debug)]
pub struct Admin(pub Credential);

impl Admin {
    /// The audit log's actor: the admin key's id, never the key.
    fn actor(&self) -> &str {
        &self.0.id
    }
}

impl FromRequestParts<Arc<AppState>> for Admin {
    type Rejection = ApiError;

    async fn from_request_parts(
        parts: &mut Parts,
        state: &Arc<AppState>,
    ) -> Result<Self, ApiError> {
        let presented = parts
            .headers
            .get(header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.strip_prefix("Bearer "))
            .map(str::trim);
        let credential = match presented {
            Some(key) => state.store.authenticate(key).await?,
            None => None,
        };
        match credential {
            Some(credential) if credential.kind == CredentialKind::Admin => Ok(Admin(credential)),
            // One answer for a missing, malformed, unknown, revoked or
            // non-admin key: the caller learns nothing about the key.
            _ => Err(ApiError::Unauthorized(
                "the admin API needs the admin key: Authorization: Bearer rbee_adm_...".into(),
            )),
        }
    }
}

/// A JSON body read within the server's memory budget, with errors as
/// the catalog's JSON errors (axum's `Json` answers in plain text).
#[derive(Debug)]
pub struct JsonBody<T>(pub T);

impl<S, T> FromRequest<S> for JsonBody<T>
where
    T: DeserializeOwned,
    S: Send + Sync,
{
    type Rejection = ApiError;

    async fn from_request(request: Request, _state: &S) -> Result<Self, ApiError> {
        let declared = declared_length(request.headers());
        let budget = BodyBudget::of(request.extensions());
        let body = budget
            .buffer(request.into_body(), declared, MAX_ADMIN_BODY_BYTES)
            .await
            .map_err(|e| match e {
                BufferError::TooLarge { limit } => {
                    ApiError::TooLarge(format!("admin request bodies are limited to {limit} bytes"))
                }
                BufferError::Busy => ApiError::Busy(e.to_string()),
                BufferError::Body(_) => ApiError::BadRequest(e.to_string()),
            })?;
        serde_json::from_slice(&body.bytes)
            .map(JsonBody)
            .map_err(|e| ApiError::BadRequest(format!("not a valid request body: {e}")))
    }
}

/// `POST /admin/licenses`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct CreateLicense {
    owner: String,
    grants: Vec<Grant>,
    #[serde(default)]
    expires_at: Option<DateTime<Utc>>,
    #[serde(default)]
    perpetual_fallback: bool,
}

/// `POST /admin/publisher-keys`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct CreatePublisherKey {
    owner: String,
    grants: Vec<Grant>,
}

/// `GET /admin/audit`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct AuditQuery {
    limit: Option<u32>,
    before: Option<i64>,
}

async fn list_licenses(
    State(state): State<Arc<AppState>>,
    admin: Admin,
) -> Result<Response, ApiError> {
    state
        .store
        .record_audit(admin.actor(), "license.list", None, "")
        .await?;
    let licenses: Vec<LicenseView> = state
        .store
        .list_licenses()
        .await?
        .into_iter()
        .map(LicenseView::from)
        .collect();
    Ok(Json(licenses).into_response())
}

async fn create_license(
    State(state): State<Arc<AppState>>,
    admin: Admin,
    JsonBody(body): JsonBody<CreateLicense>,
) -> Result<Response, ApiError> {
    let new = NewLicense {
        owner: body.owner,
        grants: body.grants,
        expires_at: body.expires_at,
        perpetual_fallback: body.perpetual_fallback,
    };
    let (license, key) = state.store.create_license(admin.actor(), new).await?;
    let created = Created {
        record: LicenseView::from(license),
        key: key.expose().to_owned(),
    };
    Ok((StatusCode::CREATED, Json(created)).into_response())
}

async fn show_license(
    State(state): State<Arc<AppState>>,
    admin: Admin,
    Path(id): Path<String>,
) -> Result<Response, ApiError> {
    state
        .store
        .record_audit(admin.actor(), "license.show", Some(&id), "")
        .await?;
    let license = state
        .store
        .license(&id)
        .await?
        .ok_or(StoreError::NotFound {
            kind: "license",
            id,
        })?;
    Ok(Json(LicenseView::from(license)).into_response())
}

async fn revoke_license(
    State(state): State<Arc<AppState>>,
    admin: Admin,
    Path(id): Path<String>,
) -> Result<Response, ApiError> {
    let license = state.store.revoke_license(admin.actor(), &id).await?;
    Ok(Json(LicenseView::from(license)).into_response())
}

async fn list_publisher_keys(
    State(state): State<Arc<AppState>>,
    admin: Admin,
) -> Result<Response, ApiError> {
    state
        .store
        .record_audit(admin.actor(), "publisher_key.list", None, "")
        .await?;
    let keys: Vec<PublisherKeyView> = state
        .store
        .list_publisher_keys()
        .await?
        .into_iter()
        .map(PublisherKeyView::from)
        .collect();
    Ok(Json(keys).into_response())
}

async fn create_publisher_key(
    State(state): State<Arc<AppState>>,
    admin: Admin,
    JsonBody(body): JsonBody<CreatePublisherKey>,
) -> Result<Response, ApiError> {
    let new = NewPublisherKey {
        owner: body.owner,
        grants: body.grants,
    };
    let (record, key) = state.store.create_publisher_key(admin.actor(), new).await?;
    let created = Created {
        record: PublisherKeyView::from(record),
        key: key.expose().to_owned(),
    };
    Ok((StatusCode::CREATED, Json(created)).into_response())
}

async fn revoke_publisher_key(
    State(state): State<Arc<AppState>>,
    admin: Admin,
    Path(id): Path<String>,
) -> Result<Response, ApiError> {
    let key = state.store.revoke_publisher_key(admin.actor(), &id).await?;
    Ok(Json(PublisherKeyView::from(key)).into_response())
}

async fn audit(
    State(state): State<Arc<AppState>>,
    admin: Admin,
    Query(query): Query<AuditQuery>,
) -> Result<Response, ApiError> {
    state
        .store
        .record_audit(admin.actor(), "audit.list", None, "")
        .await?;
    let entries: Vec<AuditEntryView> = state
        .store
        .audit_log(query.limit.unwrap_or(DEFAULT_AUDIT_LIMIT), query.before)
        .await?
        .into_iter()
        .map(AuditEntryView::from)
        .collect();
    Ok(Json(entries).into_response())
}
