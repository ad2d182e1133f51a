//! The upload routes: `POST /blobs/uploads/` (open, monolithic, mount),
//! `PATCH`/`PUT`/`GET`/`DELETE /blobs/uploads/<id>`.

use axum::extract::Request;
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::Response;
use futures_util::TryStreamExt;

use crate::error::{RegistryError, Result};
use crate::events::RequestContext;
use crate::gate::Caller;
use crate::reference::{Digest, RepoName};
use crate::registry::Registry;
use crate::storage::ByteStream;
use crate::uploads::{UploadStatus, body_error};

fn body_stream(req: Request) -> ByteStream {
    Box::pin(req.into_body().into_data_stream().map_err(body_error))
}

/// True when the request carries a body worth appending.
fn has_body(headers: &HeaderMap) -> bool {
    let length = headers
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    match length {
        Some(n) => n > 0,
        None => headers.contains_key(header::TRANSFER_ENCODING),
    }
}

/// `202 Accepted` with the session's location and the bytes it holds.
fn accepted(name: &RepoName, status: &UploadStatus, code: StatusCode) -> Result<Response> {
    super::empty(
        code,
        &[
            (
                "location",
                format!("/v2/{name}/blobs/uploads/{}", status.id),
            ),
            ("range", format!("0-{}", status.size.saturating_sub(1))),
            ("docker-upload-uuid", status.id.clone()),
        ],
    )
}

fn created(name: &RepoName, digest: &Digest) -> Result<Response> {
    super::empty(
        StatusCode::CREATED,
        &[
            ("location", format!("/v2/{name}/blobs/{digest}")),
            ("docker-content-digest", digest.to_string()),
        ],
    )
}

/// The query string of an upload request; one that does not decode makes
/// the upload request invalid.
fn upload_query(req: &Request) -> Result<std::collections::HashMap<String, String>> {
    super::query(req).map_err(|e| match e {
        RegistryError::PaginationInvalid(why) => {
            RegistryError::BlobUploadInvalid(format!("the query string does not decode: {why}"))
        }
        other => other,
    })
}

fn digest_param(q: &std::collections::HashMap<String, String>) -> Result<Option<Digest>> {
    q.get("digest").map(|d| Digest::parse(d)).transpose()
}

/// `POST /blobs/uploads/`. A mount links the blob only when the caller
/// may pull the source repository; otherwise it is a normal upload (202),
/// so that a push right on one repository never reads another.
pub async fn start(
    reg: &Registry,
    context: &RequestContext,
    name: &RepoName,
    caller: &Caller,
    req: Request,
) -> Result<Response> {
    let q = upload_query(&req)?;
    if let Some(mount) = q.get("mount") {
        let digest = Digest::parse(mount)?;
        if let Some(from) = q.get("from") {
            let from = RepoName::parse(from)?;
            if caller.may_pull(from.as_str())
                && reg.mount_blob(context, name, &digest, &from).await?
            {
                return created(name, &digest);
            }
        }
        // Not mountable: fall through to a normal upload, as the spec asks.
        let status = reg.start_upload(name).await?;
        return accepted(name, &status, StatusCode::ACCEPTED);
    }
    let digest = digest_param(&q)?;
    let status = reg.start_upload(name).await?;
    match digest {
        Some(digest) => {
            let body = has_body(req.headers()).then(|| body_stream(req));
            let finished = reg
                .finish_upload(context, name, &status.id, &digest, None, body)
                .await;
            if finished.is_err() {
                // The client never learnt this session's id, so nobody
                // could resume or cancel it: it goes now, not at its TTL.
                let _ = reg.cancel_upload(name, &status.id).await;
            }
            finished?;
            created(name, &digest)
        }
        None => accepted(name, &status, StatusCode::ACCEPTED),
    }
}

pub async fn status(reg: &Registry, name: &RepoName, id: &str) -> Result<Response> {
    let status = reg.upload_status(name, id).await?;
    accepted(name, &status, StatusCode::NO_CONTENT)
}

/// Parses `Content-Range: <start>-<end>` (the spec's form; a `bytes `
/// prefix is tolerated) and checks it against `Content-Length`.
fn chunk_start(headers: &HeaderMap) -> Result<Option<u64>> {
    let Some(value) = headers.get(header::CONTENT_RANGE) else {
        return Ok(None);
    };
    let invalid = || RegistryError::RangeInvalid {
        message: "Content-Range must be `<start>-<end>`".into(),
        size: None,
        upload_end: None,
    };
    let text = value.to_str().map_err(|_| invalid())?.trim();
    let text = text.strip_prefix("bytes ").unwrap_or(text);
    let text = text.split('/').next().unwrap_or(text);
    let (start, end) = text.split_once('-').ok_or_else(invalid)?;
    let (start, end): (u64, u64) = (
        start.parse().map_err(|_| invalid())?,
        end.parse().map_err(|_| invalid())?,
    );
    if end < start {
        return Err(invalid());
    }
    // In u128, because `0-18446744073709551615` covers 2^64 bytes.
    let covered = u128::from(end - start) + 1;
    if let Some(len) = headers
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok())
        && u128::from(len) != covered
    {
        return Err(RegistryError::SizeInvalid(format!(
            "Content-Range covers {covered} bytes but Content-Length is {len}"
        )));
    }
    Ok(Some(start))
}

pub async fn patch(reg: &Registry, name: &RepoName, id: &str, req: Request) -> Result<Response> {
    let start = chunk_start(req.headers())?;
    let status = reg.append_upload(name, id, start, body_stream(req)).await?;
    accepted(name, &status, StatusCode::ACCEPTED)
}

pub async fn put(
    reg: &Registry,
    context: &RequestContext,
    name: &RepoName,
    id: &str,
    req: Request,
) -> Result<Response> {
    let q = upload_query(&req)?;
    let digest = digest_param(&q)?.ok_or_else(|| {
        RegistryError::DigestInvalid("the `digest` query parameter is required".into())
    })?;
    let (start, body) = if has_body(req.headers()) {
        (chunk_start(req.headers())?, Some(body_stream(req)))
    } else {
        (None, None)
    };
    reg.finish_upload(context, name, id, &digest, start, body)
        .await?;
    created(name, &digest)
}

pub async fn cancel(reg: &Registry, name: &RepoName, id: &str) -> Result<Response> {
    reg.cancel_upload(name, id).await?;
    super::empty(StatusCode::NO_CONTENT, &[])
}
