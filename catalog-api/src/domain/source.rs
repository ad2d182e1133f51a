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

    /// The referrers of `digest` of one artifact type: `(digest,
    /// artifact type)` of each.
    async fn referrers(
        &self,
        repo: &str,
        digest: &str,
        artifact_type: &str,
    ) -> Result<Vec<(String, Option<String>)>, UpstreamError>;

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
