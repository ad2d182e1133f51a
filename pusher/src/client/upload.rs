//! Blob uploads: monolithic for small files, resumable chunks for large
//! ones, and small in-memory blobs (configs, the catalog document).

use std::path::Path;
use std::sync::Mutex;

use bytes::Bytes;
use reqwest::header::{self, HeaderMap};
use reqwest::{StatusCode, Url};
use tokio::io::{AsyncReadExt, AsyncSeekExt};

use super::http::status_error;
use super::retry::Failure;
use super::transport::Activity;
use super::{Progress, RegistryClient, scope};
use crate::error::PushError;

/// Blobs larger than this are uploaded in chunks, so that a failure costs
/// one chunk rather than the whole file.
pub const CHUNKED_THRESHOLD: u64 = 128 << 20;
/// Size of each chunk of a chunked upload.
pub const CHUNK_SIZE: u64 = 64 << 20;

impl RegistryClient {
    /// Uploads the file at `path` as blob `digest` of `size` bytes: one
    /// request for small files, resumable chunks for large ones.
    pub async fn upload_file(
        &self,
        repo: &str,
        path: &Path,
        digest: &str,
        size: u64,
        progress: Progress,
    ) -> Result<(), PushError> {
        if size > self.chunked_threshold {
            self.upload_chunked(repo, path, digest, size, &progress)
                .await
        } else {
            self.retrying("uploading a blob", || {
                self.upload_monolithic(repo, path, digest, size, &progress)
            })
            .await
        }
    }

    /// Opens an upload session; its URL. Sent once per attempt of the
    /// step it is part of: a session left behind by a failed attempt
    /// expires on the registry.
    pub(super) async fn start_upload(&self, repo: &str) -> Result<Url, Failure> {
        let url = self.url(&format!("/v2/{repo}/blobs/uploads/"))?;
        let build = |c: &reqwest::Client| c.post(url.clone()).header(header::CONTENT_LENGTH, "0");
        let resp = self.send_once(&scope(repo, true), &build).await?;
        if resp.status() != StatusCode::ACCEPTED {
            return Err(self.unexpected(resp).await);
        }
        Ok(self.location(resp.headers(), &url)?)
    }

    pub(super) fn location(&self, headers: &HeaderMap, base: &Url) -> Result<Url, PushError> {
        let loc = headers
            .get(header::LOCATION)
            .and_then(|v| v.to_str().ok())
            .ok_or_else(|| PushError::Registry("upload answer has no Location".into()))?;
        base.join(loc)
            .map_err(|e| PushError::Registry(format!("bad upload Location {loc}: {e}")))
    }

    /// One attempt at a monolithic upload: a new session, and the whole
    /// file in one PUT.
    async fn upload_monolithic(
        &self,
        repo: &str,
        path: &Path,
        digest: &str,
        size: u64,
        progress: &Progress,
    ) -> Result<(), Failure> {
        let location = self.start_upload(repo).await?;
        let mut url = location.clone();
        url.query_pairs_mut().append_pair("digest", digest);
        let file = tokio::fs::File::open(path).await?;
        let activity = Activity::default();
        let body = reqwest::Body::wrap_stream(counted(file, progress.clone(), activity.clone()));
        let mut req = self
            .http
            .put(url)
            .header(header::CONTENT_TYPE, "application/octet-stream")
            .header(header::CONTENT_LENGTH, size)
            .body(body)
            .build()
            .map_err(|e| PushError::Registry(format!("bad upload request: {e}")))?;
        // The upload location may be on another host (a storage
        // frontend): it gets the registry's credentials only when it is
        // the registry's origin.
        self.authorize(&mut req, &scope(repo, true));
        let resp = self
            .execute(req, Some(&activity))
            .await
            .map_err(|e| Failure::send(e, "upload failed"))?;
        if resp.status() != StatusCode::CREATED {
            return Err(self.unexpected(resp).await);
        }
        Ok(())
    }

    /// Chunked upload: PATCH `chunk_size` pieces with `Content-Range`, each
    /// chunk a retried step; when a chunk fails, the next attempt asks the
    /// registry where the upload stands and goes on from there.
    async fn upload_chunked(
        &self,
        repo: &str,
        path: &Path,
        digest: &str,
        size: u64,
        progress: &Progress,
    ) -> Result<(), PushError> {
        let location = self
            .retrying("starting an upload", || self.start_upload(repo))
            .await?;
        let cursor = Mutex::new(Cursor {
            location,
            offset: 0,
            unsure: false,
        });
        let chunk = ChunkedUpload {
            repo,
            path,
            size,
            progress,
            cursor: &cursor,
        };
        // Every step sends at least one chunk the registry accepts; a
        // registry that keeps forgetting them cannot keep us forever.
        let chunks = size.div_ceil(self.chunk_size);
        let most_steps = chunks.saturating_mul(u64::from(self.retry.attempts.max(1)));
        let mut steps = 0u64;
        while chunk.offset() < size {
            steps += 1;
            if steps > most_steps {
                return Err(PushError::Registry(format!(
                    "the registry keeps losing the chunks of blob {digest}; gave up after \
                     {most_steps} chunks for {chunks}"
                )));
            }
            self.retrying("uploading a chunk", || self.send_next_chunk(&chunk))
                .await?;
        }
        let mut url = chunk.location();
        url.query_pairs_mut().append_pair("digest", digest);
        let build = |c: &reqwest::Client| c.put(url.clone()).header(header::CONTENT_LENGTH, "0");
        self.idempotent(
            "finishing an upload",
            repo,
            true,
            build,
            |resp| async move {
                if resp.status() != StatusCode::CREATED {
                    return Err(Failure::fatal(self.refusal(resp).await));
                }
                Ok(())
            },
        )
        .await
    }

    /// One attempt at the next chunk: first, after a failed attempt, ask
    /// the registry where the upload stands; then PATCH the chunk from
    /// there.
    async fn send_next_chunk(&self, upload: &ChunkedUpload<'_>) -> Result<(), Failure> {
        let (mut location, mut offset, unsure) = upload.state();
        if unsure {
            match self.upload_offset(upload.repo, &location).await? {
                Some(at) => offset = at,
                None => {
                    // The registry forgot the session (it expired, or the
                    // registry lost it): start over in a new one.
                    location = self.start_upload(upload.repo).await?;
                    offset = 0;
                }
            }
            upload.update(|c| {
                c.location = location.clone();
                c.offset = offset;
                c.unsure = false;
            });
        }
        if offset >= upload.size {
            return Ok(());
        }
        let len = self.chunk_size.min(upload.size - offset);
        let mut file = tokio::fs::File::open(upload.path).await?;
        file.seek(std::io::SeekFrom::Start(offset)).await?;
        let activity = Activity::default();
        let body = reqwest::Body::wrap_stream(counted(
            file.take(len),
            upload.progress.clone(),
            activity.clone(),
        ));
        let mut req = self
            .http
            .patch(location.clone())
            .header(header::CONTENT_TYPE, "application/octet-stream")
            .header(header::CONTENT_LENGTH, len)
            .header(
                header::CONTENT_RANGE,
                format!("{}-{}", offset, offset + len - 1),
            )
            .body(body)
            .build()
            .map_err(|e| PushError::Registry(format!("bad chunk request: {e}")))?;
        self.authorize(&mut req, &scope(upload.repo, true));
        // From here on, a failure leaves the registry's offset unknown.
        upload.update(|c| c.unsure = true);
        let resp = self
            .execute(req, Some(&activity))
            .await
            .map_err(|e| Failure::send(e, "chunk upload failed"))?;
        if resp.status() != StatusCode::ACCEPTED {
            return Err(self.unexpected(resp).await);
        }
        let next = self.location(resp.headers(), &location)?;
        upload.update(|c| {
            c.location = next;
            c.offset = offset + len;
            c.unsure = false;
        });
        Ok(())
    }

    /// Where an upload stands: the end of the `Range` the registry
    /// reports; `None` when the registry does not know the session.
    pub(super) async fn upload_offset(
        &self,
        repo: &str,
        location: &Url,
    ) -> Result<Option<u64>, Failure> {
        let build = |c: &reqwest::Client| c.get(location.clone());
        let resp = self.send_once(&scope(repo, true), &build).await?;
        if resp.status() == StatusCode::NOT_FOUND {
            return Ok(None);
        }
        if resp.status() != StatusCode::NO_CONTENT {
            return Err(Failure::fatal(status_error(
                "asking where the upload stands",
                resp.status(),
            )));
        }
        let range = resp
            .headers()
            .get(header::RANGE)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("0-0");
        let end: u64 = range
            .rsplit('-')
            .next()
            .and_then(|e| e.parse().ok())
            .unwrap_or(0);
        // `0-0` means either nothing or one byte; a registry that has
        // nothing answers it too, so treat it as nothing.
        Ok(Some(if end == 0 { 0 } else { end + 1 }))
    }

    /// Uploads a small in-memory blob unless the repository has it.
    pub async fn ensure_small_blob(
        &self,
        repo: &str,
        bytes: Bytes,
    ) -> Result<SmallBlob, PushError> {
        let digest = rbee_schemas::oci::sha256_digest(&bytes);
        if self.blob_exists(repo, &digest).await? {
            return Ok(SmallBlob {
                digest,
                uploaded: false,
            });
        }
        self.retrying("uploading a blob", || {
            self.upload_small(repo, &digest, &bytes)
        })
        .await?;
        Ok(SmallBlob {
            digest,
            uploaded: true,
        })
    }

    /// One attempt at uploading a small blob: a new session, one PUT.
    pub(super) async fn upload_small(
        &self,
        repo: &str,
        digest: &str,
        bytes: &Bytes,
    ) -> Result<(), Failure> {
        let location = self.start_upload(repo).await?;
        let mut url = location.clone();
        url.query_pairs_mut().append_pair("digest", digest);
        let build = |c: &reqwest::Client| {
            c.put(url.clone())
                .header(header::CONTENT_TYPE, "application/octet-stream")
                .body(bytes.clone())
        };
        let resp = self.send_once(&scope(repo, true), &build).await?;
        if resp.status() != StatusCode::CREATED {
            return Err(Failure::fatal(self.refusal(resp).await));
        }
        Ok(())
    }
}

/// Where a chunked upload stands, as far as we know.
#[derive(Debug)]
struct Cursor {
    /// The session's URL, as the last answer gave it.
    location: Url,
    /// Bytes the registry has.
    offset: u64,
    /// An attempt failed after sending: the registry may have more (or
    /// less) than `offset`, so ask before sending again.
    unsure: bool,
}

/// A chunked upload in progress. The cursor sits behind a std mutex so
/// that each retried attempt can read and move it; it is never held
/// across an await.
struct ChunkedUpload<'a> {
    repo: &'a str,
    path: &'a Path,
    size: u64,
    progress: &'a Progress,
    cursor: &'a Mutex<Cursor>,
}

impl ChunkedUpload<'_> {
    fn lock(&self) -> std::sync::MutexGuard<'_, Cursor> {
        self.cursor.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn state(&self) -> (Url, u64, bool) {
        let c = self.lock();
        (c.location.clone(), c.offset, c.unsure)
    }

    fn offset(&self) -> u64 {
        self.lock().offset
    }

    fn location(&self) -> Url {
        self.lock().location.clone()
    }

    fn update(&self, change: impl FnOnce(&mut Cursor)) {
        change(&mut self.lock());
    }
}

/// A small blob the registry now holds.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SmallBlob {
    /// Its `sha256:` digest.
    pub digest: String,
    /// False when the registry had it already and nothing was sent.
    pub uploaded: bool,
}

/// Streams `reader` in 1 MiB pieces, reporting each piece to `progress`
/// and to the read-idle watchdog.
fn counted<R>(
    reader: R,
    progress: Progress,
    activity: Activity,
) -> impl futures_util::Stream<Item = std::io::Result<Bytes>> + Send + 'static
where
    R: tokio::io::AsyncRead + Send + Unpin + 'static,
{
    use futures_util::TryStreamExt;
    tokio_util::io::ReaderStream::with_capacity(reader, 1 << 20).inspect_ok(move |b| {
        activity.touch();
        progress(b.len() as u64)
    })
}
