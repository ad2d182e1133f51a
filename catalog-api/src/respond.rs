//! JSON responses with the caching headers every catalog route shares:
//! a strong `ETag` (304 on `If-None-Match`), `Cache-Control`, and a
//! `Warning` when the data is stale because the registry failed.

use axum::body::Body;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::Response;
use serde::Serialize;
use sha2::Digest as _;

/// How long clients and CDNs may keep a response.
#[derive(Debug, Clone, Copy)]
pub enum Caching {
    /// Public data, for this many seconds.
    Public(u32),
    /// An answer for one license holder (a signed URL, what their license
    /// unlocks): kept by no cache.
    Private,
}

/// Serialises `value` and answers it with caching headers.
pub fn json<T: Serialize>(
    request: &HeaderMap,
    value: &T,
    stale: bool,
    caching: Caching,
) -> Response {
    let body = serde_json::to_vec(value).unwrap_or_else(|_| b"{}".to_vec());
    respond(request, body, "application/json", stale, caching)
}

/// Answers `body` of `content_type` with caching headers.
pub fn respond(
    request: &HeaderMap,
    body: Vec<u8>,
    content_type: &str,
    stale: bool,
    caching: Caching,
) -> Response {
    let etag = format!("\"{}\"", hex::encode(&sha2::Sha256::digest(&body)[..16]));
    let not_modified = request
        .get(header::IF_NONE_MATCH)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.split(',').any(|t| t.trim() == etag || t.trim() == "*"));
    let mut builder = Response::builder().header(header::ETAG, &etag).header(
        header::CACHE_CONTROL,
        match caching {
            Caching::Public(secs) if !stale => format!("public, max-age={secs}"),
            // Stale data should not be kept downstream for long.
            Caching::Public(_) => "public, max-age=10".to_owned(),
            Caching::Private => "private, no-store".to_owned(),
        },
    );
    if stale {
        builder = builder.header(
            header::WARNING,
            HeaderValue::from_static("110 - \"Response is Stale\""),
        );
    }
    let resp = if not_modified {
        builder.status(StatusCode::NOT_MODIFIED).body(Body::empty())
    } else {
        builder
            .status(StatusCode::OK)
            .header(header::CONTENT_TYPE, content_type)
            .body(Body::from(body))
    };
    resp.unwrap_or_else(|_| Response::new(Body::empty()))
}
