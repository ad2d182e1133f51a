//! The `/v2/` HTTP surface. Repository names contain `/`, so one catch-all
//! route hands the path to [`route::parse`], which reads it from the right;
//! [`dispatch`] asks the access gate ([`crate::gate`]) about the access
//! [`route::access`] says the request needs, then picks the handler by
//! route and method.

mod blobs;
mod listing;
mod manifests;
mod route;
mod uploads;

use std::sync::Arc;

use axum::Router;
use axum::body::Body;
use axum::extract::{Request, State};
use axum::http::{HeaderName, HeaderValue, Method, StatusCode, header};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{any, get};

use rbee_auth::Access;

use crate::error::{RegistryError, Result};
use crate::events::{AuthenticatedSubject, RequestContext};
use crate::gate;
use crate::registry::Registry;
use route::Route;

/// The registry as a whole server: `/v2/` plus a 404 for anything else,
/// with request ids and the access log ([`crate::access_log`]).
pub fn router(registry: Arc<Registry>) -> Router {
    crate::access_log::layer(routes(registry).fallback(|| async { RegistryError::NotFound }))
}

/// Just the `/v2/` routes, to merge into a larger server (the catalog
/// embeds the registry this way); the host server owns the fallback and
/// the tracing layer.
pub fn routes(registry: Arc<Registry>) -> Router {
    Router::new()
        .route("/v2", get(base))
        .route("/v2/", get(base))
        .route("/v2/{*path}", any(dispatch))
        // `/v2/` is GET-only; other methods get an OCI body, not axum's empty 405.
        .method_not_allowed_fallback(|| async { RegistryError::MethodNotAllowed })
        .route_layer(middleware::from_fn(api_version_header))
        .with_state(registry)
}

/// `GET /v2/`: the API version check every client starts with. With a
/// token service configured it needs a token (any valid one), as with
/// CNCF Distribution: the 401 is how clients learn where to get tokens.
async fn base(State(registry): State<Arc<Registry>>, req: Request) -> Result<Response> {
    gate::check(&registry.config().access, &Access::Base, &req)?;
    Ok((
        StatusCode::OK,
        [(header::CONTENT_TYPE, "application/json")],
        "{}",
    )
        .into_response())
}

async fn api_version_header(req: Request, next: Next) -> Response {
    let mut resp = next.run(req).await;
    resp.headers_mut().insert(
        HeaderName::from_static("docker-distribution-api-version"),
        HeaderValue::from_static("registry/2.0"),
    );
    resp
}

async fn dispatch(State(registry): State<Arc<Registry>>, mut req: Request) -> Result<Response> {
    let route = route::parse(req.uri().path())?;
    let method = req.method().clone();
    let access = route::access(&route, &method)?;
    let caller = gate::check(&registry.config().access, &access, &req)?;
    // Who asked, for the events this request causes: the subject the gate
    // verified.
    if let Some(subject) = caller.subject() {
        req.extensions_mut()
            .insert(AuthenticatedSubject(subject.to_owned()));
    }
    let ctx = RequestContext::of(&req);
    let reg = &*registry;
    match (route, method) {
        (Route::Catalog, Method::GET) => listing::catalog(reg, &caller, req).await,
        (Route::Tags(name), Method::GET) => listing::tags(reg, &name, req).await,
        (Route::Referrers(name, digest), Method::GET) => {
            listing::referrers(reg, &name, &digest, req).await
        }
        (Route::Manifest(name, reference), m) if m == Method::GET || m == Method::HEAD => {
            manifests::get(reg, &ctx, &name, &reference, m == Method::HEAD).await
        }
        (Route::Manifest(name, reference), Method::PUT) => {
            manifests::put(&registry, &ctx, &name, &reference, req).await
        }
        (Route::Manifest(name, reference), Method::DELETE) => {
            manifests::delete(&registry, &ctx, &name, &reference).await
        }
        (Route::ImpossibleManifest(_, reference), m) => manifests::impossible(reg, &reference, &m),
        (Route::Blob(name, digest), m) if m == Method::GET || m == Method::HEAD => {
            blobs::get(reg, &ctx, &name, &digest, m == Method::HEAD, req).await
        }
        (Route::Blob(name, digest), Method::DELETE) => {
            blobs::delete(reg, &ctx, &name, &digest).await
        }
        (Route::UploadStart(name), Method::POST) => {
            uploads::start(reg, &ctx, &name, &caller, req).await
        }
        (Route::Upload(name, id), Method::GET) => uploads::status(reg, &name, &id).await,
        (Route::Upload(name, id), Method::PATCH) => uploads::patch(reg, &name, &id, req).await,
        (Route::Upload(name, id), Method::PUT) => uploads::put(reg, &ctx, &name, &id, req).await,
        (Route::Upload(name, id), Method::DELETE) => uploads::cancel(reg, &name, &id).await,
        _ => Err(RegistryError::MethodNotAllowed),
    }
}

/// A body-less response with the given status and headers.
fn empty(status: StatusCode, headers: &[(&str, String)]) -> Result<Response> {
    let mut resp = Response::builder().status(status);
    for (name, value) in headers {
        resp = resp.header(*name, value);
    }
    resp.header(header::CONTENT_LENGTH, "0")
        .body(Body::empty())
        .map_err(|e| RegistryError::BlobUploadInvalid(e.to_string()))
}

/// The query string as key/value pairs; a malformed one is a client error.
fn query(req: &Request) -> Result<std::collections::HashMap<String, String>> {
    axum::extract::Query::try_from_uri(req.uri())
        .map(|q| q.0)
        .map_err(|e| RegistryError::PaginationInvalid(e.body_text()))
}
