//! The pages' stylesheet and script, embedded in the binary and served
//! under names that carry a hash of their content
//! (`/assets/catalog-<hash>.css`), so that they can be cached for a year:
//! a new build with other content has other names. No file is read from
//! disk and nothing is fetched from elsewhere.

use std::sync::LazyLock;

use axum::extract::Path;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use sha2::Digest as _;

/// The stylesheet: layout, light and dark themes (`prefers-color-scheme`).
const CSS: &str = include_str!("../../assets/catalog.css");
/// The script: adds "copy" buttons to install commands. The pages work
/// the same without it.
const JS: &str = include_str!("../../assets/catalog.js");

/// One embedded file under its hashed name.
#[derive(Debug)]
pub struct Asset {
    /// `/assets/catalog-<hash>.<ext>`, what pages link to.
    pub path: String,
    /// Its ETag, `"<hash>"`.
    etag: String,
    content_type: &'static str,
    body: &'static str,
}

impl Asset {
    fn new(stem: &str, ext: &str, content_type: &'static str, body: &'static str) -> Asset {
        let hash = hex::encode(&sha2::Sha256::digest(body.as_bytes())[..8]);
        Asset {
            path: format!("/assets/{stem}-{hash}.{ext}"),
            etag: format!("\"{hash}\""),
            content_type,
            body,
        }
    }
}

/// The stylesheet under its hashed name.
pub static STYLESHEET: LazyLock<Asset> =
    LazyLock::new(|| Asset::new("catalog", "css", "text/css; charset=utf-8", CSS));
/// The script under its hashed name.
pub static SCRIPT: LazyLock<Asset> =
    LazyLock::new(|| Asset::new("catalog", "js", "text/javascript; charset=utf-8", JS));

/// `GET /assets/{file}`: the current stylesheet or script; any other name
/// (an old hash included) is 404, so a stale page never gets a mismatched
/// file under a year-long cache.
pub async fn serve(Path(file): Path<String>, headers: HeaderMap) -> Response {
    let asset = [&*STYLESHEET, &*SCRIPT]
        .into_iter()
        .find(|a| a.path.strip_prefix("/assets/") == Some(file.as_str()));
    let Some(asset) = asset else {
        return super::PageError::not_found().into_response();
    };
    let cache = HeaderValue::from_static("public, max-age=31536000, immutable");
    let etag = HeaderValue::from_str(&asset.etag).unwrap_or(HeaderValue::from_static("\"\""));
    let matches = headers
        .get(header::IF_NONE_MATCH)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| {
            v.split(',')
                .any(|t| t.trim() == asset.etag || t.trim() == "*")
        });
    if matches {
        return (
            StatusCode::NOT_MODIFIED,
            [(header::ETAG, etag), (header::CACHE_CONTROL, cache)],
        )
            .into_response();
    }
    (
        [
            (
                header::CONTENT_TYPE,
                HeaderValue::from_static(asset.content_type),
            ),
            (header::ETAG, etag),
            (header::CACHE_CONTROL, cache),
        ],
        asset.body,
    )
        .into_response()
}
