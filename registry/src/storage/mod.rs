//! Where the registry keeps bytes: one small trait, [`Storage`], with a
//! filesystem backend ([`FsStorage`]) and, later, an S3-compatible one.
//!
//! The trait is deliberately close to an object store (`head`, `get`, `put`,
//! `delete`, `list`) plus the two operations an upload needs: `append` to a
//! staging object and `promote` it atomically into place. The registry layer
//! above decides *what* keys mean (content addressing, links, tags); the
//! backends only decide *how* bytes are kept durable. Every backend runs the
//! shared behaviour suite in [`suite`].

mod fs;
mod key;
#[cfg(any(test, feature = "test-suite"))]
pub mod suite;

use std::io;
use std::ops::Range;
use std::pin::Pin;

use async_trait::async_trait;
use bytes::Bytes;
use futures_util::Stream;

pub use fs::{FsStorage, LOCK_FILE};
pub use key::Key;

/// A stream of bytes read from or written to storage.
pub type ByteStream = Pin<Box<dyn Stream<Item = io::Result<Bytes>> + Send>>;

/// What a storage operation can fail with, by meaning rather than by cause.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum StorageError {
    /// The object does not exist.
    #[error("object not found: {0}")]
    NotFound(String),
    /// An append did not start where the staged object ends.
    #[error("append to {key} at offset {offset}, but it holds {actual} bytes")]
    OffsetMismatch {
        /// The staging key.
        key: String,
        /// Where the caller wanted to write.
        offset: u64,
        /// Where the object actually ends.
        actual: u64,
    },
    /// The byte stream handed to `append` failed (usually: the client went away).
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
/// (see [`Key`]). Objects written by `put` and `promote` are durable when
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

    /// Appends `data` to the staging object `key`, which must currently hold
    /// exactly `offset` bytes (0 creates it). Returns the new size. When the
    /// input fails part-way, what was received may stay appended; the caller
    /// learns the true size from `head`.
    async fn append(&self, key: &Key, offset: u64, data: ByteStream) -> Result<u64>;

    /// Moves the staging object `from` to `to`, durably and atomically. If
    /// `to` already exists it is replaced, which is safe because callers only
    /// promote content-addressed objects whose content they verified.
    async fn promote(&self, from: &Key, to: &Key) -> Result<()>;
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
