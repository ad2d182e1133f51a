//! Blob upload sessions: monolithic, chunked and streamed pushes all go
//! through one. The bytes are hashed as they arrive, so finishing an upload
//! costs one commit (a rename on disk, completing a multipart upload on
//! S3), not a second read of the blob.
//!
//! Nothing about a session lives only in a process: its record
//! (`uploads/<id>/info`) holds the owner, the backend's
//! [`UploadParts`] and the SHA-256 state over exactly the bytes received,
//! serialised (`sha2`'s `SerializableState`: 104 bytes). It is rewritten
//! after each PATCH, and every request reads it afresh, so a chunked
//! upload started on one node can be continued and finished on another.
//! Serialising the state rather than hashing again on takeover is what
//! makes S3 work: the parts of an unfinished multipart upload cannot be
//! read back. Requests on one session are serialised within a process by
//! a lock; across processes, clients send a session's chunks one after the
//! other (as the spec has them do), and the `Content-Range` check refuses
//! a chunk that does not start where the recorded upload ends.

use std::collections::HashMap;
use std::io;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use chrono::{DateTime, Utc};
use futures_util::StreamExt;
use serde::{Deserialize, Serialize};
use sha2::Digest as _;
use sha2::digest::common::hazmat::{SerializableState, SerializedState};

use crate::error::{RegistryError, Result};
use crate::events::{Action, Event, RequestContext, Target};
use crate::layout;
use crate::reference::{Algorithm, Digest, Hasher, RepoName};
use crate::registry::Registry;
use crate::storage::{self, ByteStream, StorageError, UploadParts};

/// What is persisted about a session: everything needed to go on with it.
#[derive(Debug, Serialize, Deserialize)]
struct SessionInfo {
    repository: String,
    started_at: DateTime<Utc>,
    /// Where the backend's upload stands.
    #[serde(default)]
    upload: UploadParts,
    /// The serialised SHA-256 state over exactly `upload.size` bytes, in
    /// hex; absent when unknown (then the digest is checked by reading
    /// the committed bytes back).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    sha256: Option<String>,
}

impl SessionInfo {
    fn hasher(&self) -> Option<sha2::Sha256> {
        let raw = hex::decode(self.sha256.as_deref()?).ok()?;
        let state = SerializedState::<sha2::Sha256>::try_from(&raw[..]).ok()?;
        sha2::Sha256::deserialize(&state).ok()
    }

    fn set_hasher(&mut self, hasher: Option<&sha2::Sha256>) {
        self.sha256 = hasher.map(|h| hex::encode(h.serialize()));
    }
}

/// What this process knows of a session: only whether it was closed, under
/// the lock that serialises its requests here. Requests that queued on
/// the lock while the session was finished, cancelled or purged must find
/// it gone, not write into its deleted objects.
#[derive(Debug, Default)]
struct SessionState {
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

    /// Forgets the sessions that are not in `existing` and that no request
    /// here is using: finished or cancelled through another node, they
    /// would otherwise count against this node's cap for good.
    fn forget_all_but(&self, existing: &std::collections::HashSet<String>) {
        self.live
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .retain(|id, session| existing.contains(id) || session.try_lock().is_err());
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
        // The session counts from here, so that racing starts cannot
        // overshoot the cap; nobody knows its id before it is returned.
        let cap = self.config.max_upload_sessions;
        if !self.uploads.insert_new(&id, Session::default(), cap) {
            return Err(RegistryError::Busy(format!(
                "{cap} upload sessions are open; finish or cancel one, or retry later"
            )));
        }
        let mut info = SessionInfo {
            repository: repo.to_string(),
            started_at: Utc::now(),
            upload: UploadParts::default(),
            sha256: None,
        };
        info.set_hasher(Some(&sha2::Sha256::new()));
        if let Err(e) = self.record(&id, &info).await {
            self.uploads.remove(&id);
            return Err(e);
        }
        Ok(UploadStatus { id, size: 0 })
    }

    /// Writes the record of session `id`.
    async fn record(&self, id: &str, info: &SessionInfo) -> Result<()> {
        let json = serde_json::to_vec(info).map_err(|e| StorageError::Io(e.into()))?;
        self.storage
            .put(&layout::upload_info(id), json.into())
            .await?;
        Ok(())
    }

    /// The record of session `id`, which must belong to `repo`.
    async fn load_session(&self, repo: &RepoName, id: &str) -> Result<SessionInfo> {
        if !is_session_id(id) {
            return Err(RegistryError::BlobUploadUnknown);
        }
        let raw = storage::read_small(&*self.storage, &layout::upload_info(id), 4096)
            .await?
            .ok_or(RegistryError::BlobUploadUnknown)?;
        let info: SessionInfo =
            serde_json::from_slice(&raw).map_err(|_| RegistryError::BlobUploadUnknown)?;
        // Another repository's session is indistinguishable from a missing
        // one: ids do not leak across repositories.
        if info.repository != repo.as_str() {
            return Err(RegistryError::BlobUploadUnknown);
        }
        Ok(info)
    }

    /// Locks session `id` (in this process), then reads its record; it
    /// must belong to `repo`. A session another process started, or one
    /// from before a restart, is found through its record.
    async fn session(&self, repo: &RepoName, id: &str) -> Result<(LockedSession, SessionInfo)> {
        if !is_session_id(id) {
            return Err(RegistryError::BlobUploadUnknown);
        }
        let session = match self.uploads.get(id) {
            Some(s) => s,
            None => {
                // Only sessions that exist take room in the map.
                self.load_session(repo, id).await?;
                self.uploads.insert(id, Session::default())
            }
        };
        let state = session.lock_owned().await;
        if state.closed {
            return Err(RegistryError::BlobUploadUnknown);
        }
        let info = match self.load_session(repo, id).await {
            Ok(info) => info,
            Err(e) => {
                if matches!(e, RegistryError::BlobUploadUnknown) {
                    // Finished or cancelled elsewhere: forget it here too.
                    self.uploads.remove(id);
                }
                return Err(e);
            }
        };
        Ok((state, info))
    }

    /// Where session `id` stands, after any request of it this process is
    /// serving: a client whose PATCH failed must see what that PATCH kept.
    pub async fn upload_status(&self, repo: &RepoName, id: &str) -> Result<UploadStatus> {
        // The record, read without the session's lock: a client asks
        // exactly when its PATCH seems stuck, and must not wait for it. A
        // PATCH still streaming counts once it has ended and is recorded.
        let info = self.load_session(repo, id).await?;
        Ok(UploadStatus {
            id: id.to_owned(),
            size: info.upload.size,
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
        let (mut state, mut info) = self.session(repo, id).await?;
        let before = info.upload.clone();
        let appended = self.append_locked(id, &mut info, start, body).await;
        // Recorded when it succeeded, and when its body failed after some
        // bytes were stored: the client resumes after those.
        let appended = if appended.is_ok() || info.upload != before {
            appended.and(self.record(id, &info).await)
        } else {
            appended
        };
        self.discard_if_full(id, &mut state, &info, appended)
            .await?;
        Ok(UploadStatus {
            id: id.to_owned(),
            size: info.upload.size,
        })
    }

    /// Writes `body` on to the upload `info` describes, hashing it on the
    /// way, and updates `info` (not its record) when that succeeded.
    async fn append_locked(
        &self,
        id: &str,
        info: &mut SessionInfo,
        start: Option<u64>,
        body: ByteStream,
    ) -> Result<()> {
        let size = info.upload.size;
        if let Some(start) = start
            && start != size
        {
            return Err(RegistryError::RangeInvalid {
                message: format!("chunk starts at {start}, but the upload holds {size} bytes"),
                size: None,
                upload_end: Some(size),
            });
        }
        // The hasher travels with the stream and comes back through the
        // shared slot; it is only trusted again if the write succeeded.
        let slot = Arc::new(Mutex::new(info.hasher()));
        // A body that fails (the client went away, or went quiet past the
        // idle timeout) ends the stream for the storage instead, so what
        // arrived before is stored and hashed, and the session goes on from
        // there; the failure is reported once that is done.
        let failure = Arc::new(Mutex::new(None));
        let hashing = {
            let (slot, failure) = (slot.clone(), failure.clone());
            body.scan((), move |(), item| {
                futures_util::future::ready(match item {
                    Ok(chunk) => {
                        if let Some(h) = slot.lock().unwrap_or_else(|e| e.into_inner()).as_mut() {
                            h.update(&chunk);
                        }
                        Some(Ok(chunk))
                    }
                    Err(e) => {
                        *failure.lock().unwrap_or_else(|e| e.into_inner()) = Some(e);
                        None
                    }
                })
            })
        };
        match self
            .storage
            .write_upload(&layout::upload_dir(id), &info.upload, Box::pin(hashing))
            .await
        {
            Ok(upload) => {
                info.upload = upload;
                let hasher = slot.lock().unwrap_or_else(|e| e.into_inner()).take();
                info.set_hasher(hasher.as_ref());
                match failure.lock().unwrap_or_else(|e| e.into_inner()).take() {
                    Some(e) => Err(RegistryError::BlobUploadInvalid(format!(
                        "upload body failed: {e}"
                    ))),
                    None => Ok(()),
                }
            }
            // Not reached with the stream above; kept for backends that
            // report their own input failures.
            Err(StorageError::Input(e)) => Err(RegistryError::BlobUploadInvalid(format!(
                "upload body failed: {e}"
            ))),
            Err(e) => Err(e.into()),
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
        let (mut state, mut info) = self.session(repo, id).await?;
        let finished = self
            .finish_locked(repo, id, &mut state, &mut info, digest, start, body)
            .await;
        let size = self
            .discard_if_full(id, &mut state, &info, finished)
            .await?;
        let mut event = Event::new(Action::Push, Target::Blob, repo, digest, context);
        event.size = Some(size);
        self.announce(event);
        Ok(size)
    }

    #[expect(
        clippy::too_many_arguments,
        reason = "one call site, all of it the session"
    )]
    async fn finish_locked(
        &self,
        repo: &RepoName,
        id: &str,
        state: &mut SessionState,
        info: &mut SessionInfo,
        digest: &Digest,
        start: Option<u64>,
        body: Option<ByteStream>,
    ) -> Result<u64> {
        if let Some(body) = body {
            self.append_locked(id, info, start, body).await?;
        }
        let session = layout::upload_dir(id);
        let size = info.upload.size;
        let blob = layout::blob(digest);
        let known = match (digest.algorithm(), info.hasher()) {
            (Algorithm::Sha256, Some(h)) => {
                Some(Digest::from_bytes(Algorithm::Sha256, &h.finalize()))
            }
            _ => None,
        };
        match known {
            Some(actual) if actual != *digest => {
                self.close_session(id, state, Some(&info.upload)).await?;
                return Err(digest_mismatch(&actual, digest));
            }
            Some(_) => {
                if self.storage.head(&blob).await? == Some(size) {
                    // Someone stored the same content first; keep one copy.
                    self.storage.abort_upload(&session, &info.upload).await?;
                } else {
                    self.storage
                        .commit_upload(&session, &info.upload, &blob)
                        .await?;
                }
            }
            None => {
                // Committed aside, read back and checked, then moved in.
                let verify = layout::upload_verify(id);
                self.storage
                    .commit_upload(&session, &info.upload, &verify)
                    .await?;
                let actual = self.hash_stored(&verify, digest.algorithm(), size).await?;
                if actual != *digest || self.storage.head(&blob).await? == Some(size) {
                    self.storage.delete(&verify).await?;
                } else {
                    self.storage.rename(&verify, &blob).await?;
                }
                if actual != *digest {
                    self.close_session(id, state, None).await?;
                    return Err(digest_mismatch(&actual, digest));
                }
            }
        }
        self.close_session(id, state, None).await?;
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
        info: &SessionInfo,
        result: Result<T>,
    ) -> Result<T> {
        if matches!(result, Err(RegistryError::Storage(StorageError::Full(_))))
            && !state.closed
            && let Err(e) = self.close_session(id, state, Some(&info.upload)).await
        {
            tracing::warn!(upload = id, error = %e, "could not discard a failed upload");
        }
        result
    }

    /// Deletes session `id` of `repo`.
    pub async fn cancel_upload(&self, repo: &RepoName, id: &str) -> Result<()> {
        let (mut state, info) = self.session(repo, id).await?;
        self.close_session(id, &mut state, Some(&info.upload)).await
    }

    /// Marks the locked session closed, then forgets it and its objects
    /// (aborting its `upload` first, when it was not committed).
    async fn close_session(
        &self,
        id: &str,
        state: &mut SessionState,
        upload: Option<&UploadParts>,
    ) -> Result<()> {
        state.closed = true;
        self.discard_session(id, upload).await
    }

    async fn discard_session(&self, id: &str, upload: Option<&UploadParts>) -> Result<()> {
        self.uploads.remove(id);
        let session = layout::upload_dir(id);
        if let Some(upload) = upload {
            self.storage.abort_upload(&session, upload).await?;
        }
        self.storage.delete_prefix(&session).await?;
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

    /// The sessions older than the configured TTL, and those whose record
    /// is missing or unreadable (cut off while opening), by id. A record
    /// that cannot be read because the storage failed is not counted:
    /// a storage hiccup must not discard live uploads.
    pub async fn expired_uploads(&self) -> Result<Vec<String>> {
        Ok(self
            .expired_sessions()
            .await?
            .into_iter()
            .map(|(id, _)| id)
            .collect())
    }

    async fn expired_sessions(&self) -> Result<Vec<(String, Option<SessionInfo>)>> {
        let ttl =
            chrono::Duration::from_std(self.config.upload_ttl).unwrap_or(chrono::Duration::MAX);
        let now = Utc::now();
        let listed = self.storage.list(&layout::uploads()).await?;
        self.uploads
            .forget_all_but(&listed.iter().cloned().collect());
        let mut expired = Vec::new();
        for id in listed {
            if !is_session_id(&id) {
                continue;
            }
            let raw = match storage::read_small(&*self.storage, &layout::upload_info(&id), 4096)
                .await
            {
                Ok(raw) => raw,
                Err(StorageError::Unavailable(e)) => {
                    tracing::debug!(upload = %id, error = %e, "skipping a session whose record cannot be read now");
                    continue;
                }
                Err(_) => None,
            };
            let info = raw.and_then(|raw| serde_json::from_slice::<SessionInfo>(&raw).ok());
            let is_expired = match &info {
                Some(info) => now.signed_duration_since(info.started_at) > ttl,
                // A session without a record was cut off while opening.
                None => true,
            };
            if is_expired {
                expired.push((id, info));
            }
        }
        Ok(expired)
    }

    /// Deletes sessions older than the configured TTL, and any session
    /// whose record is unreadable, aborting their multipart uploads (so no
    /// part of an abandoned upload stays in a bucket). Returns how many
    /// were purged.
    ///
    /// A session busy with a request here is skipped, not waited for: one
    /// stalled PATCH would otherwise stop the purge for good. The next
    /// purge finds it idle (the server's body timeout ends the request).
    pub async fn purge_expired_uploads(&self) -> Result<usize> {
        let mut purged = 0;
        for (id, info) in self.expired_sessions().await? {
            let upload = info.as_ref().map(|i| &i.upload);
            match self.uploads.get(&id) {
                // A live session is closed under its lock, so that no
                // request still holding it writes into deleted files.
                Some(session) => match session.try_lock() {
                    Ok(mut state) => self.close_session(&id, &mut state, upload).await?,
                    Err(_) => continue,
                },
                None => self.discard_session(&id, upload).await?,
            }
            purged += 1;
        }
        Ok(purged)
    }
}

fn digest_mismatch(actual: &Digest, claimed: &Digest) -> RegistryError {
    RegistryError::DigestInvalid(format!(
        "uploaded content has digest {actual}, not {claimed}"
    ))
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
