//! Blob uploads: monolithic for small files, resumable chunks for large
//! ones, and small in-memory blobs (configs, the catalog document).

use std::path::Path;

use bytes::Bytes;
use reqwest::header::{self, HeaderMap};
use reqwest::{StatusCode, Url};
use tokio::io::{AsyncReadExt, AsyncSeekExt};

use super::http::{retry_after, status_error};
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
        let mut attempt = 0;
        loop {
            attempt += 1;
            let result = if size > self.chunked_threshold {
                self.upload_chunked(repo, path, digest, size, &progress)
                    .await
            } else {
                self.upload_monolithic(repo, path, digest, size, &progress)
                    .await
            };
            match result {
                Err(PushError::Registry(msg)) if attempt < self.retry.attempts => {
                    tracing::warn!(attempt, error = %msg, "blob upload failed; starting it again");
                    tokio::time::sleep(self.backoff(attempt)).await;
                }
                other => return other,
            }
        }
    }

    async fn start_upload(&self, repo: &str) -> Result<Url, PushError> {
        let url = self.url(&format!("/v2/{repo}/blobs/uploads/"))?;
        let resp = self
            .send(repo, true, |c| {
                c.post(url.clone()).header(header::CONTENT_LENGTH, "0")
            })
            .await?;
        if resp.status() != StatusCode::ACCEPTED {
            return Err(self.refusal(resp).await);
        }
        self.location(resp.headers(), &url)
    }

    fn location(&self, headers: &HeaderMap, base: &Url) -> Result<Url, PushError> {
        let loc = headers
            .get(header::LOCATION)
            .and_then(|v| v.to_str().ok())
            .ok_or_else(|| PushError::Registry("upload answer has no Location".into()))?;
        base.join(loc)
            .map_err(|e| PushError::Registry(format!("bad upload Location {loc}: {e}")))
    }

    async fn upload_monolithic(
        &self,
        repo: &str,
        path: &Path,
        digest: &str,
        size: u64,
        progress: &Progress,
    ) -> Result<(), PushError> {
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
            .map_err(|e| e.into_push("upload failed"))?;
        if resp.status() != StatusCode::CREATED {
            return Err(self.refusal(resp).await);
        }
        Ok(())
    }

    /// Chunked upload: PATCH `chunk_size` pieces with `Content-Range`; when a
    /// chunk fails, ask the registry where the upload stands and go on from
    /// there.
    async fn upload_chunked(
        &self,
        repo: &str,
        path: &Path,
        digest: &str,
        size: u64,
        progress: &Progress,
    ) -> Result<(), PushError> {
        let mut location = self.start_upload(repo).await?;
        let mut offset = 0u64;
        let mut failures = 0;
        while offset < size {
            let len = self.chunk_size.min(size - offset);
            let mut file = tokio::fs::File::open(path).await?;
            file.seek(std::io::SeekFrom::Start(offset)).await?;
            let activity = Activity::default();
            let body = reqwest::Body::wrap_stream(counted(
                file.take(len),
                progress.clone(),
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
            self.authorize(&mut req, &scope(repo, true));
            match self.execute(req, Some(&activity)).await {
                Ok(resp) if resp.status() == StatusCode::ACCEPTED => {
                    location = self.location(resp.headers(), &location)?;
                    offset += len;
                }
                other => {
                    failures += 1;
                    if failures >= self.retry.attempts {
                        return Err(match other {
                            Ok(resp) => self.refusal(resp).await,
                            Err(e) => e.into_push("chunk upload failed"),
                        });
                    }
                    if let Ok(resp) = &other
                        && let Some(wait) = retry_after(resp.headers())
                    {
                        tokio::time::sleep(wait.min(self.retry.max_delay)).await;
                    } else {
                        tokio::time::sleep(self.backoff(failures)).await;
                    }
                    offset = self.upload_offset(repo, &location).await?;
                }
            }
        }
        let mut url = location.clone();
        url.query_pairs_mut().append_pair("digest", digest);
        let resp = self
            .send(repo, true, |c| {
                c.put(url.clone()).header(header::CONTENT_LENGTH, "0")
            })
            .await?;
        if resp.status() != StatusCode::CREATED {
            return Err(self.refusal(resp).await);
        }
        Ok(())
    }

    /// Where an upload stands: the end of the `Range` the registry reports.
    async fn upload_offset(&self, repo: &str, location: &Url) -> Result<u64, PushError> {
        let resp = self.send(repo, true, |c| c.get(location.clone())).await?;
        if resp.status() != StatusCode::NO_CONTENT {
            return Err(status_error(
                "asking where the upload stands",
                resp.status(),
            ));
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
        Ok(if end == 0 { 0 } else { end + 1 })
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
        let location = self.start_upload(repo).await?;
        let mut url = location.clone();
        url.query_pairs_mut().append_pair("digest", &digest);
        let resp = self
            .send(repo, true, |c| {
                c.put(url.clone())
                    .header(header::CONTENT_TYPE, "application/octet-stream")
                    .body(bytes.clone())
            })
            .await?;
        if resp.status() != StatusCode::CREATED {
            return Err(self.refusal(resp).await);
        }
        Ok(SmallBlob {
            digest,
            uploaded: true,
        })
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
