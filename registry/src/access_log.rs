//! The access log every server of this workspace writes: one `info` line
//! per request (target `rbee::access`) with the method, path, matched
//! route, status, time to the response's headers, bytes and request id,
//! and a `request` span carrying the id, so every other line logged while
//! the request is served carries it too. Never the query string (a signed
//! download URL's signature is a credential for an hour) nor any header
//! (`Authorization` carries license keys, tokens and passwords).

use std::time::Duration;

use axum::Router;
use axum::extract::{MatchedPath, Request};
use axum::http::{HeaderName, Response, header};
use tower_http::request_id::{MakeRequestUuid, PropagateRequestIdLayer, SetRequestIdLayer};
use tower_http::trace::{DefaultOnFailure, OnResponse, TraceLayer};
use tracing::Span;

/// The header that carries the request id (kept when the client sends
/// one, else a new UUID), echoed on the response.
pub const REQUEST_ID: HeaderName = HeaderName::from_static("x-request-id");

/// The longest path or client-given request id written to the log: a
/// hostile client does not get to write kilobytes per line.
const MAX_LOGGED: usize = 256;

/// Wraps `app` in the request id and access log layers. Call it last, on
/// the whole router, so that it sees every route and the fallback.
pub fn layer(app: Router) -> Router {
    app.layer(PropagateRequestIdLayer::new(REQUEST_ID))
        .layer(
            TraceLayer::new_for_http()
                .make_span_with(request_span)
                .on_response(AccessLine)
                // Server errors are logged once, with their cause, where
                // they are mapped to HTTP; the access line has the status.
                .on_failure(DefaultOnFailure::new().level(tracing::Level::DEBUG)),
        )
        .layer(SetRequestIdLayer::new(REQUEST_ID, MakeRequestUuid))
}

/// Cuts `text` to [`MAX_LOGGED`] bytes on a character boundary.
fn capped(text: &str) -> &str {
    if text.len() <= MAX_LOGGED {
        return text;
    }
    let mut end = MAX_LOGGED;
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    &text[..end]
}

/// The span of one request, at `info` so that its fields appear on every
/// line at the default level.
fn request_span(req: &Request) -> Span {
    let id = req
        .headers()
        .get(&REQUEST_ID)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    let route = req
        .extensions()
        .get::<MatchedPath>()
        .map_or("", |m| m.as_str());
    tracing::info_span!(
        "request",
        method = %req.method(),
        path = %capped(req.uri().path()),
        route = %route,
        request_id = %capped(id),
    )
}

/// The access log line, in the request's span.
#[derive(Debug, Clone, Copy)]
struct AccessLine;

impl<B: http_body::Body> OnResponse<B> for AccessLine {
    fn on_response(self, resp: &Response<B>, latency: Duration, _span: &Span) {
        // `Content-Length` when the handler set it (blobs), else the
        // body's exact size when it is known (JSON answers); `-` for a
        // stream of unknown length.
        let bytes = resp
            .headers()
            .get(header::CONTENT_LENGTH)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.parse::<u64>().ok())
            .or_else(|| resp.body().size_hint().exact());
        let bytes = bytes.map_or_else(|| "-".to_owned(), |b| b.to_string());
        tracing::info!(
            target: "rbee::access",
            status = resp.status().as_u16(),
            ms = latency.as_millis() as u64,
            bytes = %bytes,
            "served"
        );
    }
}
