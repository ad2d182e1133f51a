//! The registry's one error type and the only place it becomes HTTP: every
//! failure leaves as an OCI error body (`{"errors":[{code,message,detail}]}`)
//! with the status code the distribution spec gives that code.

use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde_json::json;

use crate::storage::StorageError;

/// Everything that can go wrong while serving `/v2/`.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum RegistryError {
    /// The repository name breaks the name grammar.
    #[error("invalid repository name {0}")]
    NameInvalid(String),
    /// The repository has nothing in it.
    #[error("repository `{0}` is not known to the registry")]
    NameUnknown(String),
    /// The tag breaks the tag grammar.
    #[error("invalid tag {0}")]
    TagInvalid(String),
    /// A digest is malformed, uses an unknown algorithm, or does not match
    /// the uploaded content.
    #[error("invalid digest {0}")]
    DigestInvalid(String),
    /// The blob is not linked into this repository.
    #[error("blob unknown to this repository")]
    BlobUnknown(String),
    /// The upload session does not exist (or belongs to another repository).
    #[error("blob upload unknown to registry")]
    BlobUploadUnknown,
    /// The upload request itself is malformed.
    #[error("blob upload invalid: {0}")]
    BlobUploadInvalid(String),
    /// A chunk does not start where the upload currently ends, or a blob
    /// range cannot be served.
    #[error("requested range not satisfiable: {message}")]
    RangeInvalid {
        /// What was wrong.
        message: String,
        /// For blob GETs, the blob size (sent as `Content-Range: bytes */size`).
        size: Option<u64>,
        /// For uploads, the bytes received so far (sent as `Range`).
        upload_end: Option<u64>,
    },
    /// The manifest is not in this repository.
    #[error("manifest unknown to this repository")]
    ManifestUnknown(String),
    /// The manifest body is not a valid manifest of its media type.
    #[error("manifest invalid: {0}")]
    ManifestInvalid(String),
    /// The manifest references a blob or manifest this repository lacks.
    #[error("manifest references unknown content")]
    ManifestBlobUnknown(String),
    /// A body is larger than the registry accepts.
    #[error("payload too large: {0}")]
    TooLarge(String),
    /// `Content-Length` or a size field disagrees with the content.
    #[error("size invalid: {0}")]
    SizeInvalid(String),
    /// `n` is not a non-negative integer.
    #[error("invalid pagination number: {0}")]
    PaginationInvalid(String),
    /// The operation is switched off on this registry (e.g. deletes).
    #[error("operation unsupported: {0}")]
    Unsupported(String),
    /// The server holds as much as its limits allow (e.g. the memory for
    /// buffered manifests); the client should retry after `Retry-After`.
    #[error("the registry is busy: {0}")]
    Busy(String),
    /// The request needs a token it does not carry (or carries one that
    /// does not grant it); `challenge` is the `WWW-Authenticate` value.
    #[error("authentication required")]
    Unauthorized {
        /// `Bearer realm="...",service="...",scope="..."[,error="..."]`.
        challenge: String,
    },
    /// The request can never be allowed on this registry as configured.
    #[error("access denied: {0}")]
    Denied(String),
    /// The route does not exist.
    #[error("not found")]
    NotFound,
    /// The method is not allowed on this route.
    #[error("method not allowed")]
    MethodNotAllowed,
    /// The storage failed; the detail goes to the log, never to the client.
    #[error("storage failure: {0}")]
    Storage(#[from] StorageError),
}

impl RegistryError {
    fn code_and_status(&self) -> (&'static str, StatusCode) {
        use RegistryError::*;
        match self {
            NameInvalid(_) => ("NAME_INVALID", StatusCode::BAD_REQUEST),
            NameUnknown(_) => ("NAME_UNKNOWN", StatusCode::NOT_FOUND),
            TagInvalid(_) => ("TAG_INVALID", StatusCode::BAD_REQUEST),
            DigestInvalid(_) => ("DIGEST_INVALID", StatusCode::BAD_REQUEST),
            BlobUnknown(_) => ("BLOB_UNKNOWN", StatusCode::NOT_FOUND),
            BlobUploadUnknown => ("BLOB_UPLOAD_UNKNOWN", StatusCode::NOT_FOUND),
            BlobUploadInvalid(_) => ("BLOB_UPLOAD_INVALID", StatusCode::BAD_REQUEST),
            // A chunk that does not start where the upload ends: the spec
            // answers 416, and its code for a bad upload request.
            RangeInvalid { size: None, .. } => {
                ("BLOB_UPLOAD_INVALID", StatusCode::RANGE_NOT_SATISFIABLE)
            }
            // A blob range past its end: no code of the spec's table fits;
            // CNCF Distribution's (documented as our extension).
            RangeInvalid { size: Some(_), .. } => {
                ("RANGE_INVALID", StatusCode::RANGE_NOT_SATISFIABLE)
            }
            ManifestUnknown(_) => ("MANIFEST_UNKNOWN", StatusCode::NOT_FOUND),
            ManifestInvalid(_) => ("MANIFEST_INVALID", StatusCode::BAD_REQUEST),
            ManifestBlobUnknown(_) => ("MANIFEST_BLOB_UNKNOWN", StatusCode::BAD_REQUEST),
            TooLarge(_) => ("SIZE_INVALID", StatusCode::PAYLOAD_TOO_LARGE),
            SizeInvalid(_) => ("SIZE_INVALID", StatusCode::BAD_REQUEST),
            // No code of the table fits a bad `n`; CNCF Distribution's,
            // which clients know (a documented extension).
            PaginationInvalid(_) => ("PAGINATION_NUMBER_INVALID", StatusCode::BAD_REQUEST),
            Unsupported(_) => ("UNSUPPORTED", StatusCode::METHOD_NOT_ALLOWED),
            // CNCF Distribution's code for a 503.
            Busy(_) => ("UNAVAILABLE", StatusCode::SERVICE_UNAVAILABLE),
            Unauthorized { .. } => ("UNAUTHORIZED", StatusCode::UNAUTHORIZED),
            Denied(_) => ("DENIED", StatusCode::FORBIDDEN),
            // An endpoint this registry does not have: an unsupported
            // operation (the spec's UNSUPPORTED), with the status that says
            // there is nothing at that path.
            NotFound => ("UNSUPPORTED", StatusCode::NOT_FOUND),
            MethodNotAllowed => ("UNSUPPORTED", StatusCode::METHOD_NOT_ALLOWED),
            // Every lookup maps a missing object to its own code; what is
            // left is content that vanished while a request used it (a
            // concurrent delete, cancel or garbage collection).
            Storage(StorageError::NotFound(_)) => ("BLOB_UNKNOWN", StatusCode::NOT_FOUND),
            // The spec has no code for this; the status says it, and unlike
            // 503 it does not invite clients to retry before someone frees
            // space.
            Storage(StorageError::Full(_)) => ("UNKNOWN", StatusCode::INSUFFICIENT_STORAGE),
            // A backend that failed (object storage down or throttling, a
            // disk error) may well answer the retry: 503 with Retry-After,
            // CNCF Distribution's code for it.
            Storage(_) => ("UNAVAILABLE", StatusCode::SERVICE_UNAVAILABLE),
        }
    }

    /// The `detail` member: what the client sent that we refused.
    fn detail(&self) -> serde_json::Value {
        use RegistryError::*;
        match self {
            NameUnknown(s) | BlobUnknown(s) | ManifestUnknown(s) | ManifestBlobUnknown(s) => {
                json!(s)
            }
            _ => serde_json::Value::Null,
        }
    }
}

/// What a client is told when the storage is full.
pub const STORAGE_FULL_MESSAGE: &str = "the registry's storage is full: the request was not carried out and its data was discarded; retry once space is freed";

impl IntoResponse for RegistryError {
    fn into_response(self) -> Response {
        let (code, status) = self.code_and_status();
        // Server-side failures are logged once, here, where they leave (the
        // HTTP trace layer does not log them again); the client learns
        // nothing internal.
        let message = if status == StatusCode::INTERNAL_SERVER_ERROR {
            tracing::error!(error = %self, "request failed");
            "internal server error".to_owned()
        } else if let RegistryError::Storage(e) = &self
            && status == StatusCode::SERVICE_UNAVAILABLE
        {
            tracing::error!(error = %e, "request failed: storage unavailable");
            "the registry's storage is unavailable; retry later".to_owned()
        } else if status == StatusCode::INSUFFICIENT_STORAGE {
            tracing::error!(error = %self, "request failed: storage is full");
            STORAGE_FULL_MESSAGE.to_owned()
        } else {
            self.to_string()
        };
        let body =
            json!({ "errors": [{ "code": code, "message": message, "detail": self.detail() }] });
        let mut resp = (status, axum::Json(body)).into_response();
        let headers = resp.headers_mut();
        match &self {
            RegistryError::RangeInvalid {
                size: Some(size), ..
            } => {
                if let Ok(v) = HeaderValue::from_str(&format!("bytes */{size}")) {
                    headers.insert(header::CONTENT_RANGE, v);
                }
            }
            RegistryError::RangeInvalid {
                upload_end: Some(end),
                ..
            } => {
                if let Ok(v) = HeaderValue::from_str(&format!("0-{}", end.saturating_sub(1))) {
                    headers.insert(header::RANGE, v);
                }
            }
            RegistryError::Unauthorized { challenge } => {
                if let Ok(v) = HeaderValue::from_str(challenge) {
                    headers.insert(header::WWW_AUTHENTICATE, v);
                }
            }
            RegistryError::Busy(_) | RegistryError::Storage(_)
                if status == StatusCode::SERVICE_UNAVAILABLE =>
            {
                headers.insert(
                    header::RETRY_AFTER,
                    HeaderValue::from(crate::limits::RETRY_AFTER_SECS),
                );
            }
            _ => {}
        }
        resp
    }
}

/// The result type of every handler.
pub type Result<T, E = RegistryError> = std::result::Result<T, E>;
