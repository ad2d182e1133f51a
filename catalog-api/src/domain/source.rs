//! The catalog's read interface to a registry: the few reads it makes,
//! behind one trait so that the registry can be reached over HTTP
//! ([`crate::domain::upstream::Upstream`], for an external registry) or in
//! process ([`crate::domain::in_process::InProcess`], for the embedded
//! one, so that the catalog neither opens a socket to itself nor needs a
//! token from itself once `/v2` requires them, and its own reads are not
//! counted as downloads).
//!
//! Every implementation treats content as untrusted in the same way:
//! manifests capped at [`MAX_MANIFEST_BYTES`], small blobs at the caller's
//! limit, every digest verified, every read under a deadline.

use std::time::Duration;

use async_trait::async_trait;
use bytes::Bytes;
use futures_util::stream::BoxStream;

pub use crate::domain::upstream::MAX_MANIFEST_BYTES;
use crate::domain::upstream::UpstreamError;

/// A blob as a stream that fails before its last bytes when the blob is
/// not the size or digest asked for.
pub type BlobStream = BoxStream<'static, std::io::Result<Bytes>>;

/// The reads the catalog makes from a registry.
#[async_trait]
pub trait RegistryRead: Send + Sync + std::fmt::Debug {
    /// A manifest by tag or digest (resolving a tag): its bytes, at most
    /// [`MAX_MANIFEST_BYTES`], and its digest (verified against a digest
    /// reference).
    async fn manifest(&self, repo: &str, reference: &str)
    -> Result<(Bytes, String), UpstreamError>;

    /// A small blob (config, catalog document, PKGBUILD), refused above
    /// `limit` bytes; its digest is checked.
    async fn small_blob(
        &self,
        repo: &str,
        digest: &str,
        limit: usize,
    ) -> Result<Bytes, UpstreamError>;

    /// A blob of `size` bytes as a stream, for proxied downloads.
    async fn blob_stream(
        &self,
        repo: &str,
        digest: &str,
        size: u64,
    ) -> Result<BlobStream, UpstreamError>;

    /// The bytes `range` (within `0..size`, not empty) of a blob of
    /// `size` bytes, for a download that resumes. A part cannot be checked
    /// against the digest (the client hashes the whole file); the stream
    /// fails when it is not exactly the range's length. By default the
    /// blob is read from its start and the bytes before the range are
    /// dropped; a reader that can ask for the range itself overrides it.
    async fn blob_range_stream(
        &self,
        repo: &str,
        digest: &str,
        size: u64,
        range: std::ops::Range<u64>,
    ) -> Result<BlobStream, UpstreamError> {
        let whole = self.blob_stream(repo, digest, size).await?;
        Ok(part_of(whole, range))
    }

    /// The referrers of `digest` of one artifact type: `(digest,
    /// artifact type)` of each.
    async fn referrers(
        &self,
        repo: &str,
        digest: &str,
        artifact_type: &str,
    ) -> Result<Vec<(String, Option<String>)>, UpstreamError>;

    /// A URL that serves the blob straight from the registry's storage for
    /// `lifetime` with no credentials (a presigned S3 URL), when the
    /// registry can make one; `None` otherwise.
    async fn presigned_blob_url(
        &self,
        repo: &str,
        digest: &str,
        lifetime: Duration,
    ) -> Result<Option<String>, UpstreamError> {
        let _ = (repo, digest, lifetime);
        Ok(None)
    }

    /// Another catalog node changed `repository` (all of them when
    /// `None`): the reader forgets what it caches of it, if anything (the
    /// embedded registry's manifest lookups), so that the next read sees
    /// the shared storage as it is now.
    fn forget(&self, repository: Option<&str>) {
        let _ = repository;
    }

    /// True when reads need credentials that clients do not have, so that
    /// downloads are streamed through the catalog rather than pointed at
    /// the registry.
    fn needs_auth(&self) -> bool;

    /// The registry's `host[:port]`, as used in OCI references.
    fn registry(&self) -> &str;

    /// The longest one read may take; also the deadline of one cache
    /// fetch and of one listing.
    fn deadline(&self) -> Duration;
}

/// The bytes `range` of `whole`, a stream from the blob's first byte; it
/// stops as soon as the range is sent, and fails when `whole` ends before.
pub fn part_of(whole: BlobStream, range: std::ops::Range<u64>) -> BlobStream {
    use futures_util::StreamExt as _;
    let state = (whole, 0u64, range);
    futures_util::stream::unfold(state, |(mut whole, mut at, range)| async move {
        loop {
            if at >= range.end {
                return None;
            }
            let chunk = match whole.next().await {
                Some(Ok(chunk)) => chunk,
                Some(Err(e)) => return Some((Err(e), (whole, range.end, range))),
                None => {
                    let short = std::io::Error::other(format!(
                        "the blob ended at byte {at}, before the range {}-{} it was read for",
                        range.start, range.end
                    ));
                    return Some((Err(short), (whole, range.end, range)));
                }
            };
            let (from, to) = (at, at + chunk.len() as u64);
            at = to;
            let start = range.start.max(from);
            let end = range.end.min(to);
            if start < end {
                let part = chunk.slice((start - from) as usize..(end - from) as usize);
                return Some((Ok(part), (whole, at, range)));
            }
        }
    })
    .boxed()
}

/// `inner`, which must yield exactly `len` bytes: it fails, without its
/// last chunk, when it is longer or ends short.
pub fn exactly(inner: BlobStream, len: u64, what: String) -> BlobStream {
    use futures_util::StreamExt as _;
    futures_util::stream::unfold((inner, 0u64, false), move |(mut inner, seen, done)| {
        let what = what.clone();
        async move {
            if done {
                return None;
            }
            let wrong = |n: u64| {
                std::io::Error::other(format!("{what}: {n} bytes where {len} were expected"))
            };
            match inner.next().await {
                Some(Ok(chunk)) => {
                    let seen = seen + chunk.len() as u64;
                    if seen > len {
                        return Some((Err(wrong(seen)), (inner, seen, true)));
                    }
                    Some((Ok(chunk), (inner, seen, false)))
                }
                Some(Err(e)) => Some((Err(e), (inner, seen, true))),
                None if seen == len => None,
                None => Some((Err(wrong(seen)), (inner, seen, true))),
            }
        }
    })
    .boxed()
}

#[cfg(test)]
mod tests {
    use bytes::Bytes;
    use futures_util::StreamExt as _;

    use super::{BlobStream, exactly, part_of};

    fn chunks(parts: &[&'static [u8]]) -> BlobStream {
        let items: Vec<std::io::Result<Bytes>> =
            parts.iter().map(|p| Ok(Bytes::from_static(p))).collect();
        futures_util::stream::iter(items).boxed()
    }

    async fn collect(stream: BlobStream) -> std::io::Result<Vec<u8>> {
        let mut out = Vec::new();
        let mut stream = stream;
        while let Some(chunk) = stream.next().await {
            out.extend_from_slice(&chunk?);
        }
        Ok(out)
    }

    #[tokio::test]
    async fn a_part_is_cut_out_of_the_whole_stream() {
        let whole = || chunks(&[b"abc", b"defg", b"hij"]);
        assert_eq!(collect(part_of(whole(), 2..8)).await.unwrap(), b"cdefgh");
        assert_eq!(collect(part_of(whole(), 0..3)).await.unwrap(), b"abc");
        assert_eq!(collect(part_of(whole(), 9..10)).await.unwrap(), b"j");
        assert!(collect(part_of(whole(), 5..20)).await.is_err(), "too short");
    }

    #[tokio::test]
    async fn a_stream_of_the_wrong_length_fails() {
        let what = || "blob".to_owned();
        assert!(
            collect(exactly(chunks(&[b"ab", b"c"]), 3, what()))
                .await
                .is_ok()
        );
        assert!(
            collect(exactly(chunks(&[b"ab", b"cd"]), 3, what()))
                .await
                .is_err()
        );
        assert!(collect(exactly(chunks(&[b"ab"]), 3, what())).await.is_err());
    }
}
