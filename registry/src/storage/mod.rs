//! Where the registry keeps bytes: one small trait, [`Storage`], with a
//! filesystem backend ([`FsStorage`]) and an S3-compatible one
//! ([`S3Storage`]: AWS S3, Cloudflare R2, MinIO).
//!
//! The trait is deliberately close to an object store (`head`, `get`, `put`,
//! `delete`, `list`) plus what an upload needs: an upload made of parts
//! (`write_upload`, an S3 multipart upload on S3), whose progress is a
//! plain value ([`UploadParts`]) the caller keeps in storage, so that any
//! process can continue it; `commit_upload` makes it an object, and
//! `rename` moves such an object. The registry layer above decides *what*
//! keys mean (content addressing, links, tags) and hashes the bytes as they
//! stream; the backends only decide *how* bytes are kept durable. Every
//! backend runs the shared behaviour suite in [`suite`].

mod fs;
mod key;
mod s3;
#[cfg(any(test, feature = "test-suite"))]
pub mod s3_server;
#[cfg(any(test, feature = "test-suite"))]
pub mod suite;

use std::io;
use std::ops::Range;
use std::pin::Pin;
use std::time::Duration;

use async_trait::async_trait;
use bytes::Bytes;
use futures_util::Stream;

pub use fs::{FsStorage, LOCK_FILE};
pub use key::Key;
pub use s3::{MIN_PART_SIZE, POINTER_TYPE, S3Options, S3Storage};

/// How far an upload has come, as its backend left it. The caller keeps
/// this value (in a small object next to the session) between requests and
/// hands it back: nothing about an upload lives only in a process, so
/// another process can continue it.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct UploadParts {
    /// Bytes written so far.
    pub size: u64,
    /// The backend's multipart upload, once it started one (S3).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub multipart: Option<Multipart>,
    /// The parts uploaded so far, in order: each one's id (S3: its ETag).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub parts: Vec<String>,
    /// How many of the last bytes are not yet in a part: they wait in the
    /// session's `tail` object until a whole part is there (S3, whose parts
    /// must all have one size).
    #[serde(default)]
    pub tail: u64,
}

/// A multipart upload the backend started.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Multipart {
    /// The key the upload becomes when it is completed.
    pub target: String,
    /// The backend's id for it.
    pub id: String,
}

/// A stream of bytes read from or written to storage.
pub type ByteStream = Pin<Box<dyn Stream<Item = io::Result<Bytes>> + Send>>;

/// What a storage operation can fail with, by meaning rather than by cause.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum StorageError {
    /// The object does not exist.
    #[error("object not found: {0}")]
    NotFound(String),
    /// The byte stream handed to `write_upload` failed (usually: the client went away).
    #[error("input stream failed: {0}")]
    Input(io::Error),
    /// The backend has no room left (a full disk or an exhausted quota).
    /// Unlike other failures this one is the operator's to fix, and the
    /// client may retry once they have, so it is reported as itself.
    #[error("storage is full: {0}")]
    Full(io::Error),
    /// The backend itself failed.
    #[error("storage I/O: {0}")]
    Io(io::Error),
    /// The backend could not be reached or answered with a server error
    /// (object storage down, throttling, a network failure). The request
    /// may succeed when retried.
    #[error("storage unavailable: {0}")]
    Unavailable(String),
}

impl From<io::Error> for StorageError {
    /// Sorts an I/O error by meaning: no space (`ENOSPC`) or no quota
    /// (`EDQUOT`) is [`StorageError::Full`], anything else
    /// [`StorageError::Io`].
    fn from(e: io::Error) -> Self {
        if matches!(
            e.kind(),
            io::ErrorKind::StorageFull | io::ErrorKind::QuotaExceeded
        ) {
            StorageError::Full(e)
        } else {
            StorageError::Io(e)
        }
    }
}

/// The result of a storage operation.
pub type Result<T, E = StorageError> = std::result::Result<T, E>;

/// The storage every registry backend provides.
///
/// Keys are `/`-separated relative paths built only from validated parts
/// (see [`Key`]). Objects written by `put`, `commit_upload` and `rename` are durable when
/// the call returns and appear atomically: a reader sees the whole object or
/// none of it, even across a crash.
#[async_trait]
pub trait Storage: Send + Sync + std::fmt::Debug + 'static {
    /// The size of an object, or `None` when it does not exist.
    async fn head(&self, key: &Key) -> Result<Option<u64>>;

    /// Streams an object, or the byte `range` of it. The range must lie
    /// within the object (the caller checks it against `head`).
    async fn get(&self, key: &Key, range: Option<Range<u64>>) -> Result<ByteStream>;

    /// Writes a small object atomically and durably, replacing any old one.
    async fn put(&self, key: &Key, data: Bytes) -> Result<()>;

    /// Deletes an object; deleting a missing one is not an error.
    async fn delete(&self, key: &Key) -> Result<()>;

    /// Deletes every object under `prefix`.
    async fn delete_prefix(&self, prefix: &Key) -> Result<()>;

    /// The names directly under `prefix` (objects and sub-prefixes alike),
    /// in no particular order; empty when there are none.
    async fn list(&self, prefix: &Key) -> Result<Vec<String>>;

    /// When the object was last written, or `None` when it does not exist.
    /// Garbage collection spares what is younger than its grace period (a
    /// push in flight), so backends answer their own modification time
    /// (S3: `Last-Modified`).
    async fn modified(&self, key: &Key) -> Result<Option<std::time::SystemTime>>;

    /// How coarse the times [`Storage::modified`] answers are: the true
    /// write time lies in `[modified, modified + resolution)`. Garbage
    /// collection adds it before comparing with its grace, so that an
    /// object written just after a collection started never looks older
    /// than it (S3's `Last-Modified` has whole seconds).
    fn modified_resolution(&self) -> Duration {
        Duration::ZERO
    }

    /// Writes `data` on to the upload of session `session` (a prefix the
    /// caller owns; the backend may keep objects under it), which stands at
    /// `upload` ([`UploadParts::default`] for a new one). Returns where it
    /// stands after: the caller keeps that value and hands it back next
    /// time. When this fails (the input stream too: then
    /// [`StorageError::Input`]), `upload` is still valid and describes the
    /// upload: what was written past it is overwritten by the next write.
    async fn write_upload(
        &self,
        session: &Key,
        upload: &UploadParts,
        data: ByteStream,
    ) -> Result<UploadParts>;

    /// Makes the upload of `session`, standing at `upload`, the object `to`,
    /// durably and atomically (replacing any old one: callers only commit
    /// content-addressed objects whose content they verified). Afterwards
    /// the upload is gone; the caller removes `session`'s other objects.
    async fn commit_upload(&self, session: &Key, upload: &UploadParts, to: &Key) -> Result<()>;

    /// Gives up the upload of `session` (S3: aborts its multipart upload, so
    /// its parts stop costing storage). Aborting twice is not an error.
    async fn abort_upload(&self, session: &Key, upload: &UploadParts) -> Result<()>;

    /// Moves object `from` to `to`, durably and atomically, replacing any
    /// old `to`. Cheap on every backend for committed uploads, whatever
    /// their size (no copy of the bytes).
    async fn rename(&self, from: &Key, to: &Key) -> Result<()>;

    /// A URL that lets whoever holds it `GET` the object `key` (with
    /// `Range`) straight from the backend for `lifetime`, when the backend
    /// can make one (S3 presigning); `None` otherwise (the filesystem).
    async fn presigned_get(&self, key: &Key, lifetime: Duration) -> Result<Option<String>> {
        let _ = (key, lifetime);
        Ok(None)
    }

    /// Whether [`Storage::presigned_get`] can ever answer a URL. Asked
    /// first, so a backend that cannot presign costs no lookup of the
    /// object (a premium download on the filesystem asks on every request).
    fn can_presign(&self) -> bool {
        false
    }
}

/// Reads a whole small object into memory, refusing objects over `limit`
/// bytes. Only for metadata (links, tags, manifests), never for layers.
pub async fn read_small(storage: &dyn Storage, key: &Key, limit: u64) -> Result<Option<Bytes>> {
    use futures_util::TryStreamExt;
    let Some(size) = storage.head(key).await? else {
        return Ok(None);
    };
    if size > limit {
        return Err(StorageError::Io(io::Error::other(format!(
            "{key} holds {size} bytes, more than the {limit} expected"
        ))));
    }
    let stream = match storage.get(key, None).await {
        Ok(s) => s,
        Err(StorageError::NotFound(_)) => return Ok(None),
        Err(e) => return Err(e),
    };
    let chunks: Vec<Bytes> = stream.try_collect().await?;
    Ok(Some(match chunks.len() {
        1 => chunks.into_iter().next().unwrap_or_default(),
        _ => chunks.concat().into(),
    }))
}
