//! `GET`/`HEAD`/`PUT`/`DELETE /v2/<name>/manifests/<reference>`.

use axum::body::Body;
use axum::extract::Request;
use axum::http::{StatusCode, header};
use axum::response::Response;

use crate::error::{RegistryError, Result};
use crate::events::{Action, Target};
use crate::manifest::MAX_MANIFEST_BYTES;
use crate::reference::{Reference, RepoName};
use crate::registry::Registry;

pub async fn get(
    reg: &Registry,
    name: &RepoName,
    reference: &Reference,
    head: bool,
) -> Result<Response> {
    let info = reg.manifest_info(name, reference).await?;
    let resp = Response::builder()
        .header(header::CONTENT_TYPE, &info.media_type)
        .header(header::CONTENT_LENGTH, info.size)
        .header("docker-content-digest", info.digest.to_string())
        .header(header::ETAG, format!("\"{}\"", info.digest));
    let body = if head {
        Body::empty()
    } else {
        let bytes = reg.manifest_bytes(&info).await?;
        let mut event = reg.emit(Action::Pull, Target::Manifest, name, &info.digest);
        if let Reference::Tag(t) = reference {
            event.tag = Some(t.to_string());
        }
        event.media_type = Some(info.media_type.clone());
        event.size = Some(info.size);
        reg.events.publish(event);
        Body::from(bytes)
    };
    resp.body(body)
        .map_err(|e| RegistryError::ManifestInvalid(e.to_string()))
}

pub async fn put(
    reg: &Registry,
    name: &RepoName,
    reference: &Reference,
    req: Request,
) -> Result<Response> {
    let too_large = || {
        RegistryError::TooLarge(format!(
            "manifests are limited to {MAX_MANIFEST_BYTES} bytes"
        ))
    };
    let declared = req
        .headers()
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    if declared.is_some_and(|n| n > MAX_MANIFEST_BYTES as u64) {
        return Err(too_large());
    }
    let content_type = req
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned);
    // Reading stops one byte past the limit, so an oversized chunked body
    // costs at most 4 MiB of memory before it is refused.
    let body = axum::body::to_bytes(req.into_body(), MAX_MANIFEST_BYTES)
        .await
        .map_err(|_| too_large())?;
    let stored = reg
        .put_manifest(name, reference, content_type.as_deref(), body)
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

pub async fn delete(reg: &Registry, name: &RepoName, reference: &Reference) -> Result<Response> {
    reg.delete_manifest(name, reference).await?;
    super::empty(StatusCode::ACCEPTED, &[])
}
