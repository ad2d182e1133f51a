//! The catalog's error type and the one place it becomes HTTP: a status
//! and a JSON body `{"error": <short title>, "message": <detail>}`.

use axum::Json;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::Serialize;
use utoipa::ToSchema;

use rbee_store::StoreError;

use crate::domain::CatalogError;
use crate::domain::upstream::UpstreamError;

/// The body of every catalog error. Clients branch on the status and on
/// `error`; `message` is for people.
#[derive(Debug, Serialize, ToSchema)]
pub struct ErrorBody {
    /// A short, stable title, e.g. `Worker not found`. No rbee reader
    /// reads error bodies today (they branch on the status code only); the
    /// legacy titles keep the words of rbee's catalog all the same.
    #[schema(example = "Worker not found")]
    pub error: String,
    /// What went wrong, in a sentence.
    #[schema(example = "no worker with this id is published")]
    pub message: String,
    /// With `Platform not available`: the platforms the version was built for.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub available_platforms: Option<Vec<String>>,
    /// With `Unknown platform`: every valid rbee platform name.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub valid_platforms: Option<Vec<&'static str>>,
    /// With `License required`: where to buy one.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub purchase_url: Option<String>,
}

impl ErrorBody {
    /// A body with only a title and a message.
    pub fn new(error: impl Into<String>, message: impl Into<String>) -> Self {
        ErrorBody {
            error: error.into(),
            message: message.into(),
            available_platforms: None,
            valid_platforms: None,
            purchase_url: None,
        }
    }
}

/// Everything a catalog request can fail with.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ApiError {
    /// The worker id breaks `^[a-z0-9-]+$` or is over 100 characters.
    #[error("{0}")]
    InvalidId(String),
    /// No such worker.
    #[error("no worker with this id is published")]
    WorkerNotFound,
    /// No such version of the worker.
    #[error("version `{0}` of this worker is not published")]
    VersionNotFound(String),
    /// Not an rbee platform name.
    #[error("{0}")]
    UnknownPlatform(String),
    /// The version has no build for this platform.
    #[error("no build for {platform}; available: {}", available.join(", "))]
    PlatformNotBuilt {
        /// The platform asked for.
        platform: String,
        /// The platforms the version was built for.
        available: Vec<String>,
    },
    /// The worker is premium and the request carried no license key.
    #[error("this worker requires a license; send the key as `Authorization: Bearer rbee_lic_...`")]
    LicenseRequired {
        /// Where to buy one, from the worker's pricing.
        purchase_url: Option<String>,
    },
    /// The worker is premium and the key sent does not unlock this
    /// version. Unknown, revoked, expired and other workers' keys get the
    /// same answer, so that it tells a guesser nothing.
    #[error("the license key sent does not unlock this version of this worker")]
    LicenseNotAccepted {
        /// Where to buy one, from the worker's pricing.
        purchase_url: Option<String>,
    },
    /// A signed download URL that is tampered with, expired, or made for
    /// another blob.
    #[error("{0}; ask /v1/workers/<id>/<version>/download for a new URL")]
    DownloadUrlInvalid(#[from] crate::signed_url::SignatureError),
    /// The license database failed; the cause is logged, not sent.
    #[error("licenses cannot be checked right now; try again later")]
    LicensesUnavailable(#[from] crate::domain::license::LicenseLookupError),
    /// The client sent more requests than its rate limit allows.
    #[error("too many requests from this address; retry after {retry_after} s")]
    TooManyRequests {
        /// Seconds until the next request is accepted.
        retry_after: u64,
    },
    /// The worker has no PKGBUILD.
    #[error("this worker has no PKGBUILD")]
    PkgbuildNotFound,
    /// No delta from the build named by `from` to this build is attached.
    #[error("no delta from this build is published; download the whole archive")]
    DeltaNotFound,
    /// A `Range` that starts past the end of the blob.
    #[error("the range asked for is outside the build's {size} bytes")]
    RangeNotSatisfiable {
        /// The blob's size, for `Content-Range: bytes */size`.
        size: u64,
    },
    /// Any other malformed request.
    #[error("{0}")]
    BadRequest(String),
    /// The route does not exist.
    #[error("no such route")]
    NotFound,
    /// The route exists, but not for this method.
    #[error("this route does not accept this method; see the `Allow` header")]
    MethodNotAllowed,
    /// The request body is larger than the route accepts.
    #[error("{0}")]
    TooLarge(String),
    /// The server holds as much as its limits allow; retry after
    /// `Retry-After`.
    #[error("{0}")]
    Busy(String),
    /// The webhook secret is missing or wrong.
    #[error("{0}")]
    Unauthorized(String),
    /// Credentials were presented to the token service and are not valid
    /// (malformed, unknown, revoked or expired: which is not said).
    #[error("the credentials are not valid")]
    BadCredentials,
    /// A service behind the route (the credential store, the signer)
    /// failed; the detail goes to the log only.
    #[error("{0}")]
    Unavailable(String),
    /// The registry failed and nothing cached could stand in.
    #[error(transparent)]
    Upstream(#[from] UpstreamError),
    /// The catalog's database refused the input (400), has no such record
    /// (404), or failed (500, detail in the log only).
    #[error(transparent)]
    Store(#[from] rbee_store::StoreError),
}

impl ApiError {
    fn status_and_title(&self) -> (StatusCode, &'static str) {
        match self {
            ApiError::InvalidId(_) => (StatusCode::BAD_REQUEST, "Invalid worker id"),
            // rbee's catalog answers 404 with these words. rbee's readers
            // look only at the status code; the text is kept for people.
            ApiError::WorkerNotFound => (StatusCode::NOT_FOUND, "Worker not found"),
            ApiError::VersionNotFound(_) => (StatusCode::NOT_FOUND, "Version not found"),
            ApiError::UnknownPlatform(_) => (StatusCode::BAD_REQUEST, "Unknown platform"),
            ApiError::PlatformNotBuilt { .. } => (StatusCode::NOT_FOUND, "Platform not available"),
            ApiError::PkgbuildNotFound => (StatusCode::NOT_FOUND, "PKGBUILD not found"),
            ApiError::DeltaNotFound => (StatusCode::NOT_FOUND, "Delta not found"),
            ApiError::RangeNotSatisfiable { .. } => {
                (StatusCode::RANGE_NOT_SATISFIABLE, "Range not satisfiable")
            }
            ApiError::LicenseRequired { .. } | ApiError::LicenseNotAccepted { .. } => {
                (StatusCode::FORBIDDEN, "License required")
            }
            ApiError::DownloadUrlInvalid(_) => (StatusCode::FORBIDDEN, "Invalid download URL"),
            ApiError::LicensesUnavailable(_) => {
                (StatusCode::SERVICE_UNAVAILABLE, "License check unavailable")
            }
            ApiError::TooManyRequests { .. } => {
                (StatusCode::TOO_MANY_REQUESTS, "Too many requests")
            }
            ApiError::BadRequest(_) => (StatusCode::BAD_REQUEST, "Bad request"),
            ApiError::NotFound => (StatusCode::NOT_FOUND, "Not found"),
            ApiError::MethodNotAllowed => (StatusCode::METHOD_NOT_ALLOWED, "Method not allowed"),
            ApiError::Unauthorized(_) => (StatusCode::UNAUTHORIZED, "Unauthorized"),
            ApiError::BadCredentials => (StatusCode::UNAUTHORIZED, "Unauthorized"),
            ApiError::Unavailable(_) => (StatusCode::SERVICE_UNAVAILABLE, "Service unavailable"),
            ApiError::TooLarge(_) => (StatusCode::PAYLOAD_TOO_LARGE, "Payload too large"),
            ApiError::Busy(_) => (StatusCode::SERVICE_UNAVAILABLE, "Server busy"),
            ApiError::Upstream(UpstreamError::NotFound) => (StatusCode::NOT_FOUND, "Not found"),
            ApiError::Upstream(UpstreamError::RateLimited { .. }) => {
                (StatusCode::SERVICE_UNAVAILABLE, "Registry rate-limited")
            }
            ApiError::Upstream(UpstreamError::Unavailable(_)) => {
                (StatusCode::BAD_GATEWAY, "Registry unavailable")
            }
            ApiError::Upstream(UpstreamError::Invalid(_)) => {
                (StatusCode::BAD_GATEWAY, "Registry data invalid")
            }
            ApiError::Store(StoreError::NotFound { .. }) => (StatusCode::NOT_FOUND, "Not found"),
            ApiError::Store(StoreError::Invalid(_)) => (StatusCode::BAD_REQUEST, "Bad request"),
            ApiError::Store(_) => (StatusCode::INTERNAL_SERVER_ERROR, "Database error"),
        }
    }
}

impl ApiError {
    /// The status, the title and the message for people (logging what
    /// must not reach the client): the JSON body's fields, and what the web
    /// pages show (`crate::web`).
    pub(crate) fn describe(&self) -> (StatusCode, &'static str, String) {
        let (status, title) = self.status_and_title();
        let message = match self {
            // The upstream's own words may carry internal URLs; log them once
            // here and tell the client only what kind of failure it was.
            ApiError::Upstream(e @ (UpstreamError::Unavailable(_) | UpstreamError::Invalid(_))) => {
                tracing::warn!(error = %e, "upstream registry failure");
                "the registry behind the catalog failed; try again later".to_owned()
            }
            ApiError::LicensesUnavailable(e) => {
                tracing::error!(error = %e, "license lookup failed");
                self.to_string()
            }
            ApiError::Unavailable(detail) => {
                tracing::error!(error = %detail, "a service behind the catalog failed");
                "a service behind the catalog failed; try again later".to_owned()
            }
            ApiError::Store(e @ (StoreError::NotFound { .. } | StoreError::Invalid(_))) => {
                e.to_string()
            }
            ApiError::Store(e) => {
                let cause = std::error::Error::source(e).map(ToString::to_string);
                tracing::error!(error = %e, cause = cause.as_deref().unwrap_or(""), "database failure");
                "the catalog's database failed; try again later".to_owned()
            }
            other => other.to_string(),
        };
        (status, title, message)
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let (status, title, message) = self.describe();
        let mut body = ErrorBody::new(title, message);
        if let ApiError::PlatformNotBuilt { available, .. } = &self {
            body.available_platforms = Some(available.clone());
        }
        if let ApiError::UnknownPlatform(_) = &self {
            body.valid_platforms = Some(rbee_schemas::Platform::names());
        }
        if let ApiError::LicenseRequired { purchase_url }
        | ApiError::LicenseNotAccepted { purchase_url } = &self
        {
            body.purchase_url = purchase_url.clone();
        }
        let mut resp = (status, Json(body)).into_response();
        if let ApiError::BadCredentials = &self {
            // Lets `docker login`-style clients know Basic is what to send.
            resp.headers_mut().insert(
                header::WWW_AUTHENTICATE,
                HeaderValue::from_static("Basic realm=\"rbee token service\""),
            );
        }
        if let ApiError::Busy(_) = &self {
            resp.headers_mut().insert(
                header::RETRY_AFTER,
                HeaderValue::from(rbee_registry::limits::RETRY_AFTER_SECS),
            );
        }
        if let ApiError::RangeNotSatisfiable { size } = &self
            && let Ok(v) = HeaderValue::from_str(&format!("bytes */{size}"))
        {
            resp.headers_mut().insert(header::CONTENT_RANGE, v);
        }
        if let ApiError::TooManyRequests { retry_after } = &self {
            resp.headers_mut()
                .insert(header::RETRY_AFTER, HeaderValue::from(*retry_after));
        }
        if let ApiError::Upstream(UpstreamError::RateLimited { retry_after }) = &self
            && let Ok(v) = HeaderValue::from_str(&retry_after.as_secs().to_string())
        {
            resp.headers_mut().insert(header::RETRY_AFTER, v);
        }
        resp
    }
}

/// The one mapping of the domain's failures to the catalog's HTTP errors.
impl From<CatalogError> for ApiError {
    fn from(e: CatalogError) -> Self {
        match e {
            CatalogError::WorkerNotFound => ApiError::WorkerNotFound,
            CatalogError::VersionNotFound(v) => ApiError::VersionNotFound(v),
            e @ CatalogError::BadVersion { .. } => {
                let cause = std::error::Error::source(&e).map(ToString::to_string);
                ApiError::BadRequest(match cause {
                    Some(cause) => format!("{e}: {cause}"),
                    None => e.to_string(),
                })
            }
            CatalogError::Upstream(e) => ApiError::Upstream(e),
        }
    }
}

/// Checks a worker id from a URL.
pub fn check_worker_id(id: &str) -> Result<(), ApiError> {
    rbee_schemas::validate_worker_id(id).map_err(ApiError::InvalidId)
}
