//! Blob upload sessions: monolithic, chunked and streamed pushes all go
//! through one. The bytes are hashed as they arrive, so finishing an upload
//! costs one `fsync` and one rename, not a second read of the blob.
//!
//! A session is a staging object (`uploads/<id>/data`) plus a small record
//! of its owner (`uploads/<id>/info`), so it survives a restart; the running
//! hash lives only in memory, and a session that lost it (restart, failed
//! append) is hashed again from storage when it is finished.

use std::collections::HashMap;
use std::io;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use chrono::{DateTime, Utc};
use futures_util::{StreamExt, TryStreamExt};
use serde::{Deserialize, Serialize};
use sha2::Digest as _;

use crate::error::{RegistryError, Result};
use crate::events::{Action, Event, RequestContext, Target};
use crate::layout;
use crate::reference::{Algorithm, Digest, Hasher, RepoName};
use crate::registry::Registry;
use crate::storage::{self, ByteStream, StorageError};

/// What is persisted about a session.
#[derive(Debug, Serialize, Deserialize)]
struct SessionInfo {
    repository: String,
    started_at: DateTime<Utc>,
}

/// The live state of one session. Requests on the same session are
/// serialised by the Tokio mutex around it, which is held across the
/// append: two PATCHes racing for the same offset cannot both win.
#[derive(Debug)]
struct SessionState {
    repo: RepoName,
    size: u64,
    /// SHA-256 of exactly the first `size` bytes, when known.
    hasher: Option<sha2::Sha256>,
    /// Set when the session is finished, cancelled or purged. Requests that
    /// queued on the mutex meanwhile must find the session gone, not write
    /// into its deleted files.
    closed: bool,
}

type Session = Arc<tokio::sync::Mutex<SessionState>>;
type LockedSession = tokio::sync::OwnedMutexGuard<SessionState>;

/// The open sessions this process has seen.
#[derive(Debug, Default)]
pub struct UploadSessions {
    // A std mutex: held only to look up or insert, never across an await.
    live: Mutex<HashMap<String, Session>>,
}

impl UploadSessions {
    fn get(&self, id: &str) -> Option<Session> {
        self.live
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .get(id)
            .cloned()
    }

    /// Registers a new session unless `cap` sessions are open already.
    fn insert_new(&self, id: &str, session: Session, cap: usize) -> bool {
        let mut live = self.live.lock().unwrap_or_else(|e| e.into_inner());
        if live.len() >= cap {
            return false;
        }
        live.insert(id.to_owned(), session);
        true
    }

    fn insert(&self, id: &str, session: Session) -> Session {
        self.live
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .entry(id.to_owned())
            .or_insert(session)
            .clone()
    }

    fn remove(&self, id: &str) {
        self.live
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .remove(id);
    }
}

/// Session ids are UUIDv4 in simple form: 122 random bits, 32 hex digits.
fn is_session_id(id: &str) -> bool {
    id.len() == 32
        && id
            .bytes()
            .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
}

/// Where an upload stands, for `Range` and `Location` headers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UploadStatus {
    /// The session id.
    pub id: String,
    /// Bytes received so far.
    pub size: u64,
}

impl Registry {
    /// Opens an upload session in `repo`, unless
    /// [`max_upload_sessions`](crate::RegistryConfig::max_upload_sessions)
    /// are open already (then `UNAVAILABLE`, 503 with `Retry-After`).
    pub async fn start_upload(&self, repo: &RepoName) -> Result<UploadStatus> {
        let id = uuid::Uuid::new_v4().simple().to_string();
        let state = SessionState {
            repo: repo.clone(),
            size: 0,
            hasher: Some(sha2::Sha256::new()),
            closed: false,
        };
        // The session counts from here, so that racing starts cannot
        // overshoot the cap; nobody knows its id before it is returned.
        let cap = self.config.max_upload_sessions;
        if !self
            .uploads
            .insert_new(&id, Arc::new(tokio::sync::Mutex::new(state)), cap)
        {
            return Err(RegistryError::Busy(format!(
                "{cap} upload sessions are open; finish or cancel one, or retry later"
            )));
        }
        let info = SessionInfo {
            repository: repo.to_string(),
            started_at: Utc::now(),
        };
        let recorded = match serde_json::to_vec(&info) {
            Ok(json) => self
                .storage
                .put(&layout::upload_info(&id), json.into())
                .await
                .map_err(RegistryError::from),
            Err(e) => Err(StorageError::Io(e.into()).into()),
        };
        if let Err(e) = recorded {
            self.uploads.remove(&id);
            return Err(e);
        }
        Ok(UploadStatus { id, size: 0 })
    }

    /// Finds and locks session `id`, which must belong to `repo`. A session
    /// from before a restart is recovered from storage.
    async fn session(&self, repo: &RepoName, id: &str) -> Result<LockedSession> {
        if !is_session_id(id) {
            return Err(RegistryError::BlobUploadUnknown);
        }
        let session = match self.uploads.get(id) {
            Some(s) => s,
            None => {
                let raw = storage::read_small(&*self.storage, &layout::upload_info(id), 4096)
                    .await?
                    .ok_or(RegistryError::BlobUploadUnknown)?;
                let info: SessionInfo =
                    serde_json::from_slice(&raw).map_err(|_| RegistryError::BlobUploadUnknown)?;
                let owner = RepoName::parse(&info.repository)
                    .map_err(|_| RegistryError::BlobUploadUnknown)?;
                let size = self
                    .storage
                    .head(&layout::upload_data(id))
                    .await?
                    .unwrap_or(0);
                let hasher = (size == 0).then(sha2::Sha256::new);
                let state = SessionState {
                    repo: owner,
                    size,
                    hasher,
                    closed: false,
                };
                self.uploads
                    .insert(id, Arc::new(tokio::sync::Mutex::new(state)))
            }
        };
        let state = session.lock_owned().await;
        if state.repo != *repo || state.closed {
            // Another repository's session, or one closed while this
            // request waited, is indistinguishable from a missing one: ids
            // do not leak across repositories.
            return Err(RegistryError::BlobUploadUnknown);
        }
        Ok(state)
    }

    /// Where session `id` stands.
    pub async fn upload_status(&self, repo: &RepoName, id: &str) -> Result<UploadStatus> {
        let size = self.session(repo, id).await?.size;
        Ok(UploadStatus {
            id: id.to_owned(),
            size,
        })
    }

    /// Appends `body` to session `id`. With `start`, the chunk must begin
    /// exactly where the upload ends (else 416 with the current `Range`).
    pub async fn append_upload(
        &self,
        repo: &RepoName,
        id: &str,
        start: Option<u64>,
        body: ByteStream,
    ) -> Result<UploadStatus> {
        let mut state = self.session(repo, id).await?;
        let appended = self.append_locked(id, &mut state, start, body).await;
        self.discard_if_full(id, &mut state, appended).await?;
        Ok(UploadStatus {
            id: id.to_owned(),
            size: state.size,
        })
    }

    async fn append_locked(
        &self,
        id: &str,
        state: &mut SessionState,
        start: Option<u64>,
        body: ByteStream,
    ) -> Result<()> {
        if let Some(start) = start
            && start != state.size
        {
            return Err(RegistryError::RangeInvalid {
                message: format!(
                    "chunk starts at {start}, but the upload holds {} bytes",
                    state.size
                ),
                size: None,
                upload_end: Some(state.size),
            });
        }
        // The hasher travels with the stream and comes back through the
        // shared slot; it is only trusted again if the append succeeded.
        let slot = Arc::new(Mutex::new(state.hasher.take()));
        let hashing = {
            let slot = slot.clone();
            body.inspect_ok(move |chunk| {
                if let Some(h) = slot.lock().unwrap_or_else(|e| e.into_inner()).as_mut() {
                    h.update(chunk);
                }
            })
        };
        match self
            .storage
            .append(&layout::upload_data(id), state.size, Box::pin(hashing))
            .await
        {
            Ok(size) => {
                state.size = size;
                state.hasher = slot.lock().unwrap_or_else(|e| e.into_inner()).take();
                Ok(())
            }
            Err(e) => {
                state.size = self
                    .storage
                    .head(&layout::upload_data(id))
                    .await?
                    .unwrap_or(0);
                Err(match e {
                    StorageError::Input(e) => {
                        RegistryError::BlobUploadInvalid(format!("upload body failed: {e}"))
                    }
                    StorageError::OffsetMismatch { actual, .. } => RegistryError::RangeInvalid {
                        message: "upload changed underneath this request".into(),
                        size: None,
                        upload_end: Some(actual),
                    },
                    other => other.into(),
                })
            }
        }
    }

    /// Finishes session `id`: appends the final `body` (which must begin at
    /// `start` when given), checks the content
    /// against `digest`, moves it into place and links it into `repo`. On a
    /// digest mismatch the session and its bytes are gone.
    pub async fn finish_upload(
        &self,
        context: &RequestContext,
        repo: &RepoName,
        id: &str,
        digest: &Digest,
        start: Option<u64>,
        body: Option<ByteStream>,
    ) -> Result<u64> {
        let mut state = self.session(repo, id).await?;
        let finished = self
            .finish_locked(repo, id, &mut state, digest, start, body)
            .await;
        let size = self.discard_if_full(id, &mut state, finished).await?;
        let mut event = Event::new(Action::Push, Target::Blob, repo, digest, context);
        event.size = Some(size);
        self.announce(event);
        Ok(size)
    }

    async fn finish_locked(
        &self,
        repo: &RepoName,
        id: &str,
        state: &mut SessionState,
        digest: &Digest,
        start: Option<u64>,
        body: Option<ByteStream>,
    ) -> Result<u64> {
        if let Some(body) = body {
            self.append_locked(id, state, start, body).await?;
        }
        let data = layout::upload_data(id);
        let actual = match (digest.algorithm(), state.hasher.take()) {
            (Algorithm::Sha256, Some(h)) => Digest::from_bytes(Algorithm::Sha256, &h.finalize()),
            _ => {
                self.hash_stored(&data, digest.algorithm(), state.size)
                    .await?
            }
        };
        if actual != *digest {
            self.close_session(id, state).await?;
            return Err(RegistryError::DigestInvalid(format!(
                "uploaded content has digest {actual}, not {digest}"
            )));
        }
        let size = state.size;
        let blob = layout::blob(digest);
        if size == 0 {
            // An empty upload never created its staging object.
            self.storage.put(&blob, Bytes::new()).await?;
        } else if self.storage.head(&blob).await? == Some(size) {
            // Someone stored the same content first; keep one copy.
        } else {
            self.storage.promote(&data, &blob).await?;
        }
        self.close_session(id, state).await?;
        self.link_blob(repo, digest).await?;
        Ok(size)
    }

    /// Passes `result` on, but when it failed because the storage is full,
    /// first drops session `id` and its bytes: kept, they would hold the
    /// disk full for every other client (and survive restarts until the
    /// TTL), while this client has to start over anyway.
    async fn discard_if_full<T>(
        &self,
        id: &str,
        state: &mut SessionState,
        result: Result<T>,
    ) -> Result<T> {
        if matches!(result, Err(RegistryError::Storage(StorageError::Full(_))))
            && !state.closed
            && let Err(e) = self.close_session(id, state).await
        {
            tracing::warn!(upload = id, error = %e, "could not discard a failed upload");
        }
        result
    }

    /// Deletes session `id` of `repo`.
    pub async fn cancel_upload(&self, repo: &RepoName, id: &str) -> Result<()> {
        let mut state = self.session(repo, id).await?;
        self.close_session(id, &mut state).await
    }

    /// Marks the locked session closed, then forgets it and its files.
    async fn close_session(&self, id: &str, state: &mut SessionState) -> Result<()> {
        state.closed = true;
        self.discard_session(id).await
    }

    async fn discard_session(&self, id: &str) -> Result<()> {
        self.uploads.remove(id);
        self.storage.delete_prefix(&layout::upload_dir(id)).await?;
        Ok(())
    }

    async fn hash_stored(
        &self,
        key: &storage::Key,
        algorithm: Algorithm,
        size: u64,
    ) -> Result<Digest> {
        let mut hasher = Hasher::new(algorithm);
        if size > 0 {
            let mut stream = self.storage.get(key, None).await?;
            while let Some(chunk) = stream.next().await {
                let chunk: Bytes = chunk.map_err(StorageError::Io)?;
                hasher.update(&chunk);
            }
        }
        Ok(hasher.finish())
    }

    /// Deletes sessions older than the configured TTL, and any session
    /// whose record is unreadable. Returns how many were purged.
    ///
    /// A session busy with a request is skipped, not waited for: one
    /// stalled PATCH would otherwise stop the purge for good. The next
    /// purge finds it idle (the server's body timeout ends the request).
    pub async fn purge_expired_uploads(&self) -> Result<usize> {
        let ttl =
            chrono::Duration::from_std(self.config.upload_ttl).unwrap_or(chrono::Duration::MAX);
        let now = Utc::now();
        let mut purged = 0;
        for id in self.storage.list(&layout::uploads()).await? {
            if !is_session_id(&id) {
                continue;
            }
            let info = storage::read_small(&*self.storage, &layout::upload_info(&id), 4096)
                .await
                .ok()
                .flatten()
                .and_then(|raw| serde_json::from_slice::<SessionInfo>(&raw).ok());
            let expired = match info {
                Some(info) => now.signed_duration_since(info.started_at) > ttl,
                // A session without a record was cut off while opening.
                None => true,
            };
            if expired {
                match self.uploads.get(&id) {
                    // A live session is closed under its lock, so that no
                    // request still holding it writes into deleted files.
                    Some(session) => match session.try_lock() {
                        Ok(mut state) => self.close_session(&id, &mut state).await?,
                        Err(_) => continue,
                    },
                    None => self.discard_session(&id).await?,
                }
                purged += 1;
            }
        }
        Ok(purged)
    }
}

/// How often the purge runs: often enough that an expired session does not
/// linger for long past its TTL, but not more than once a minute.
pub fn purge_interval(ttl: Duration) -> Duration {
    (ttl / 4).clamp(Duration::from_secs(60), Duration::from_secs(3600))
}

/// Turns an error from a request body into the storage layer's I/O error.
pub fn body_error(e: impl std::fmt::Display) -> io::Error {
    io::Error::other(e.to_string())
}
