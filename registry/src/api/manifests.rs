//! `GET`/`HEAD`/`PUT`/`DELETE /v2/<name>/manifests/<reference>`.

use std::sync::Arc;

use axum::body::Body;
use axum::extract::Request;
use axum::http::{Method, StatusCode, header};
use axum::response::Response;

use crate::error::{RegistryError, Result};
use crate::events::RequestContext;
use crate::limits::{BodyBudget, BufferError, declared_length};
use crate::manifest::MAX_MANIFEST_BYTES;
use crate::reference::{Reference, RepoName};
use crate::registry::Registry;

pub async fn get(
    reg: &Registry,
    context: &RequestContext,
    name: &RepoName,
    reference: &Reference,
    head: bool,
) -> Result<Response> {
    let (info, body) = if head {
        let info = reg.head_manifest(context, name, reference).await?;
        (info, Body::empty())
    } else {
        let (info, bytes) = reg.pull_manifest(context, name, reference).await?;
        (info, Body::from(bytes))
    };
    let resp = Response::builder()
        .header(header::CONTENT_TYPE, &info.media_type)
        .header(header::CONTENT_LENGTH, info.size)
        .header("docker-content-digest", info.digest.to_string())
        .header(header::ETAG, format!("\"{}\"", info.digest));
    resp.body(body)
        .map_err(|e| RegistryError::ManifestInvalid(e.to_string()))
}

pub async fn put(
    reg: &Arc<Registry>,
    context: &RequestContext,
    name: &RepoName,
    reference: &Reference,
    req: Request,
) -> Result<Response> {
    let content_type = req
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned);
    let declared = declared_length(req.headers());
    let budget = BodyBudget::of(req.extensions());
    // The body is held against the server-wide budget until this request
    // is answered; reading stops one chunk past the limit.
    let body = budget
        .buffer(req.into_body(), declared, MAX_MANIFEST_BYTES)
        .await
        .map_err(|e| match e {
            BufferError::TooLarge { limit } => {
                RegistryError::TooLarge(format!("manifests are limited to {limit} bytes"))
            }
            BufferError::Busy => RegistryError::Busy(e.to_string()),
            BufferError::Body(_) => RegistryError::ManifestInvalid(e.to_string()),
        })?;
    let stored = reg
        .put_manifest(
            context,
            name,
            reference,
            content_type.as_deref(),
            body.bytes.clone(),
        )
        .await?;
    let mut headers = vec![
        (
            "location",
            format!("/v2/{name}/manifests/{}", stored.digest),
        ),
        ("docker-content-digest", stored.digest.to_string()),
    ];
    if let Some(subject) = stored.subject {
        headers.push(("oci-subject", subject.to_string()));
    }
    super::empty(StatusCode::CREATED, &headers)
}

pub async fn delete(
    reg: &Arc<Registry>,
    context: &RequestContext,
    name: &RepoName,
    reference: &Reference,
) -> Result<Response> {
    reg.delete_manifest(context, name, reference).await?;
    super::empty(StatusCode::ACCEPTED, &[])
}

/// A request for a reference that is neither a tag nor a digest: reads and
/// deletes find no such manifest; a PUT is refused for the reason the
/// reference does not parse (`TAG_INVALID`, `DIGEST_INVALID`).
pub fn impossible(reg: &Registry, reference: &str, method: &Method) -> Result<Response> {
    let unknown = || {
        // Echoed in the error's detail: bounded, like a tag.
        let shown: String = reference.chars().take(128).collect();
        RegistryError::ManifestUnknown(shown)
    };
    match *method {
        Method::GET | Method::HEAD => Err(unknown()),
        Method::DELETE => {
            reg.ensure_delete_enabled()?;
            Err(unknown())
        }
        Method::PUT => match Reference::parse(reference) {
            Err(e) => Err(e),
            // Not reached: the route holds only references that fail to parse.
            Ok(_) => Err(unknown()),
        },
        _ => Err(RegistryError::MethodNotAllowed),
    }
}
