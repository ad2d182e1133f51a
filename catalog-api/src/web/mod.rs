//! The catalog's web pages (`/`, `/worker/{id}`, `/stats`, `/assets/...`):
//! the workers with filters and search, one worker's versions, install
//! commands, PKGBUILD and download charts, and the download overview.
//!
//! Part of the HTTP edge, like `routes/`: the pages read the same domain
//! calls as the JSON routes (`Catalog::latest_releases`, `releases`,
//! `pkgbuild`, `domain::stats` through the shared stats cache), never the
//! registry or the database directly. HTML comes only from the askama
//! templates in `catalog-api/templates/`, checked at compile time and
//! escaped by default; the view models here hold plain values (numbers of
//! SVG geometry included), so a template never decides anything that
//! needs a test of its own. Charts are SVG drawn by the server; the one
//! stylesheet and the one small script (a "copy" button, progressive
//! enhancement) are embedded in the binary and served under a content
//! hash, so the strict [`CSP`] allows nothing but this origin's own files.

mod assets;
mod chart;
mod error;
mod install;
mod layout;
mod list;
mod overview;
mod query;
mod worker;

use std::sync::Arc;

use axum::Router;
use axum::http::{HeaderMap, HeaderValue, header};
use axum::response::Response;
use axum::routing::get;

use crate::respond::{self, Caching};
use crate::state::AppState;

pub use error::PageError;

/// The Content-Security-Policy of every HTML answer: this origin's
/// stylesheet, script and images only, no inline script or style, forms
/// posted nowhere else, never framed.
pub const CSP: &str = "default-src 'none'; style-src 'self'; script-src 'self'; img-src 'self'; \
     form-action 'self'; base-uri 'none'; frame-ancestors 'none'";

/// The HTML routes, merged into the catalog's router by `server.rs`.
pub fn routes() -> Router<Arc<AppState>> {
    Router::new()
        .route("/", get(list::page))
        .route("/worker/{id}", get(worker::page))
        .route("/stats", get(overview::page))
        .route("/assets/{file}", get(assets::serve))
}

/// An HTML answer with the caching headers of the JSON routes (a strong
/// ETag, 304 on `If-None-Match`, `Cache-Control`, `Warning` when stale)
/// and the page [`CSP`] (the server's default CSP forbids everything).
fn html(request: &HeaderMap, body: String, stale: bool, caching: Caching) -> Response {
    let mut resp = respond::respond(
        request,
        body.into_bytes(),
        "text/html; charset=utf-8",
        stale,
        caching,
    );
    resp.headers_mut().insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(CSP),
    );
    resp
}

/// Seconds of `Cache-Control` for a page that shows download figures:
/// no longer than the stats cache keeps them.
fn stats_max_age(state: &AppState, at_most: u32) -> u32 {
    u32::try_from(state.analytics.cache.ttl().as_secs())
        .unwrap_or(u32::MAX)
        .min(at_most)
}
