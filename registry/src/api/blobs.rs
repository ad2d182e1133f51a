//! `GET`/`HEAD`/`DELETE /v2/<name>/blobs/<digest>`, with single byte ranges.

use std::ops::Range;

use axum::body::Body;
use axum::extract::Request;
use axum::http::{StatusCode, header};
use axum::response::Response;

use crate::error::{RegistryError, Result};
use crate::events::RequestContext;
use crate::reference::{Digest, RepoName};
use crate::registry::Registry;

pub async fn get(
    reg: &Registry,
    context: &RequestContext,
    name: &RepoName,
    digest: &Digest,
    head: bool,
    req: Request,
) -> Result<Response> {
    let size = if head {
        reg.head_blob(context, name, digest).await?
    } else {
        reg.blob_size(name, digest).await?
    };
    let range = match req
        .headers()
        .get(header::RANGE)
        .and_then(|v| v.to_str().ok())
    {
        Some(spec) => parse_range(spec, size)?,
        None => None,
    };
    // Only after the access gate (before this handler) and the link check
    // above: a redirect hands out the bytes as surely as a body would.
    // `Range` travels with the client to the bucket, which honours it. A
    // HEAD is answered here: a presigned URL is signed for one method, so
    // a HEAD redirected to a GET's URL would be refused by the bucket.
    if !head
        && let Some(url) = reg
            .blob_redirect(context, name, digest, size, range.clone())
            .await?
    {
        return Response::builder()
            .status(StatusCode::TEMPORARY_REDIRECT)
            .header(header::LOCATION, url)
            .header(header::CACHE_CONTROL, "no-store")
            .header("docker-content-digest", digest.to_string())
            .body(Body::empty())
            .map_err(|e| RegistryError::BlobUploadInvalid(e.to_string()));
    }
    let mut resp = Response::builder()
        .header(header::CONTENT_TYPE, "application/octet-stream")
        .header(header::ACCEPT_RANGES, "bytes")
        .header("docker-content-digest", digest.to_string())
        .header(header::ETAG, format!("\"{digest}\""));
    let length = match &range {
        Some(r) => {
            resp = resp.status(StatusCode::PARTIAL_CONTENT).header(
                header::CONTENT_RANGE,
                format!("bytes {}-{}/{size}", r.start, r.end - 1),
            );
            r.end - r.start
        }
        None => size,
    };
    resp = resp.header(header::CONTENT_LENGTH, length);
    let body = if head {
        Body::empty()
    } else {
        Body::from_stream(reg.pull_blob(context, name, digest, size, range).await?)
    };
    resp.body(body)
        .map_err(|e| RegistryError::BlobUploadInvalid(e.to_string()))
}

pub async fn delete(
    reg: &Registry,
    context: &RequestContext,
    name: &RepoName,
    digest: &Digest,
) -> Result<Response> {
    reg.delete_blob(context, name, digest).await?;
    super::empty(StatusCode::ACCEPTED, &[])
}

/// Parses a `Range` header against a blob of `size` bytes. One range is
/// served as 206; a syntactically odd or multi-range header is ignored (the
/// whole blob is sent, as RFC 9110 allows); a range starting past the end
/// is 416.
fn parse_range(spec: &str, size: u64) -> Result<Option<Range<u64>>> {
    let Some(set) = spec.trim().strip_prefix("bytes=") else {
        return Ok(None);
    };
    if set.contains(',') {
        return Ok(None);
    }
    let Some((first, last)) = set.trim().split_once('-') else {
        return Ok(None);
    };
    let unsatisfiable = || RegistryError::RangeInvalid {
        message: format!("range `{spec}` is outside the blob's {size} bytes"),
        size: Some(size),
        upload_end: None,
    };
    let range = match (first.parse::<u64>(), last.parse::<u64>()) {
        (Ok(start), Ok(end)) if start <= end => {
            if start >= size {
                return Err(unsatisfiable());
            }
            start..end.saturating_add(1).min(size)
        }
        (Ok(start), Err(_)) if last.is_empty() => {
            if start >= size {
                return Err(unsatisfiable());
            }
            start..size
        }
        (Err(_), Ok(suffix)) if first.is_empty() => {
            if suffix == 0 {
                return Err(unsatisfiable());
            }
            if size == 0 {
                // Satisfiable (RFC 9110, 14.1.1), yet no Content-Range can
                // name zero bytes: the whole, empty, blob is served.
                return Ok(None);
            }
            size.saturating_sub(suffix)..size
        }
        _ => return Ok(None),
    };
    Ok(Some(range))
}

#[cfg(test)]
mod tests {
    use super::parse_range;

    #[test]
    fn ranges() {
        assert_eq!(parse_range("bytes=0-9", 100).unwrap(), Some(0..10));
        assert_eq!(parse_range("bytes=90-", 100).unwrap(), Some(90..100));
        assert_eq!(parse_range("bytes=-10", 100).unwrap(), Some(90..100));
        assert_eq!(parse_range("bytes=50-1000", 100).unwrap(), Some(50..100));
        assert!(parse_range("bytes=100-", 100).is_err());
        assert!(parse_range("bytes=200-300", 100).is_err());
        assert_eq!(parse_range("bytes=0-1,5-6", 100).unwrap(), None);
        assert_eq!(parse_range("items=0-1", 100).unwrap(), None);
        assert_eq!(parse_range("bytes=9-1", 100).unwrap(), None);
        assert_eq!(parse_range("bytes=-5", 0).unwrap(), None);
    }
}
