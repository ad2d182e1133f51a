//! Downloading a build with resume, within budgets: bytes go to
//! `sha256-<hex>.partial`; a later attempt asks for the rest from an
//! offset and hashes what it already has first, so the checksum always
//! covers the whole file. Nothing leaves the download folder before the
//! sha256 matches.
//!
//! Budgets: an announced size above the maximum is refused before any
//! request, and so is one the disk has no room for; the download stops at
//! the announced size whatever the server sends; every read waits at most
//! the read-idle timeout and the whole download at most the total one.
//! The partial file is kept only when the transfer was interrupted (the
//! network broke or timed out), so that the next attempt resumes; any
//! other failure removes it.
//!
//! The catalog path (reqwest) and the registry path (`oci-client`) both
//! come through [`fetch`], each with its own way to open the body.

use std::future::Future;
use std::path::{Path, PathBuf};

use bytes::Bytes;
use futures_util::StreamExt as _;
use futures_util::stream::BoxStream;
use sha2::Digest as _;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::time::Instant;

use crate::checked::Sha256Digest;
use crate::error::ClientError;
use crate::limits::Timeouts;

/// Told `(bytes so far, total)` as a download advances.
pub type Progress<'a> = &'a (dyn Fn(u64, u64) + Send + Sync);

/// A verified download.
#[derive(Debug, Clone)]
pub struct Downloaded {
    /// The file, named after its digest.
    pub path: PathBuf,
    /// Bytes that came over the network in this attempt (less than the
    /// size when it resumed).
    pub fetched: u64,
}

/// A body stream, whichever client opened it.
pub(crate) type Body = BoxStream<'static, Result<Bytes, ClientError>>;

/// What the server sent when asked for the bytes from an offset.
pub(crate) enum Opened {
    /// The whole file, from byte 0 (it ignored the offset).
    Full(Body),
    /// The bytes from the offset asked for.
    Partial(Body),
}

/// What a download must be, and the budgets it runs under.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Expected<'a> {
    /// The sha256 it must hash to; it also names the file.
    pub digest: &'a Sha256Digest,
    /// The size announced.
    pub size: u64,
    /// The largest size accepted.
    pub max_size: u64,
    /// How long to wait.
    pub timeouts: Timeouts,
}

async fn hash_existing(path: &Path, hasher: &mut sha2::Sha256) -> std::io::Result<u64> {
    let mut file = match tokio::fs::File::open(path).await {
        Ok(f) => f,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(0),
        Err(e) => return Err(e),
    };
    let mut buf = vec![0u8; 1 << 20];
    let mut total = 0u64;
    loop {
        let n = file.read(&mut buf).await?;
        if n == 0 {
            return Ok(total);
        }
        hasher.update(&buf[..n]);
        total += n as u64;
    }
}

/// Refuses a download the file system holding `dir` has no room for
/// (`needed` more bytes).
fn check_room(dir: &Path, needed: u64) -> Result<(), ClientError> {
    let available = fs4::available_space(dir)?;
    if needed > available {
        return Err(ClientError::NoSpace { needed, available });
    }
    Ok(())
}

/// Downloads into `dir` through `open` (called with the offset to start
/// from), resuming a partial file, and checks the result against
/// `expected`. The caller holds the destination's lock, so no other
/// process writes the same partial file.
pub(crate) async fn fetch<F, Fut>(
    open: F,
    expected: Expected<'_>,
    dir: &Path,
    progress: Progress<'_>,
) -> Result<Downloaded, ClientError>
where
    F: FnOnce(u64) -> Fut,
    Fut: Future<Output = Result<Opened, ClientError>>,
{
    let size = expected.size;
    if size > expected.max_size {
        return Err(ClientError::TooLarge {
            size,
            max: expected.max_size,
        });
    }
    tokio::fs::create_dir_all(dir).await?;
    let hex = expected.digest.hex();
    let done = dir.join(format!("sha256-{hex}"));
    if tokio::fs::metadata(&done)
        .await
        .is_ok_and(|m| m.len() == size)
    {
        progress(size, size);
        return Ok(Downloaded {
            path: done,
            fetched: 0,
        });
    }
    let mut partial = Partial::resume(dir.join(format!("sha256-{hex}.partial")), size).await?;
    let mut fetched = 0u64;
    if partial.have < size {
        check_room(dir, size - partial.have)?;
        fetched = partial.download(open, expected, progress).await?;
    }
    partial.verify_into(&done, expected).await?;
    Ok(Downloaded {
        path: done,
        fetched,
    })
}

/// The `.partial` file of a download, and the hash of what it holds.
struct Partial {
    path: PathBuf,
    hasher: sha2::Sha256,
    /// Bytes it holds.
    have: u64,
}

impl Partial {
    /// What an earlier attempt left at `path`, hashed; a file longer than
    /// `size` cannot be the start of the download and is dropped.
    async fn resume(path: PathBuf, size: u64) -> Result<Partial, ClientError> {
        let mut hasher = sha2::Sha256::new();
        let mut have = hash_existing(&path, &mut hasher).await?;
        if have > size {
            tokio::fs::remove_file(&path).await?;
            hasher = sha2::Sha256::new();
            have = 0;
        }
        Ok(Partial { path, hasher, have })
    }

    /// Asks `open` for the rest and appends it, within the total deadline;
    /// returns the bytes that came over the network.
    async fn download<F, Fut>(
        &mut self,
        open: F,
        expected: Expected<'_>,
        progress: Progress<'_>,
    ) -> Result<u64, ClientError>
    where
        F: FnOnce(u64) -> Fut,
        Fut: Future<Output = Result<Opened, ClientError>>,
    {
        let deadline = Instant::now() + expected.timeouts.total;
        let opened = tokio::time::timeout_at(deadline, open(self.have))
            .await
            .map_err(|_| ClientError::Timeout("no answer to the download request".into()))??;
        let (body, file) = self.writer_for(opened).await?;
        let (fetched, mut file) = self
            .append_body(body, file, expected, deadline, progress)
            .await?;
        let synced = async {
            file.flush().await?;
            file.sync_all().await
        }
        .await;
        if let Err(e) = synced {
            drop(file);
            let _ = tokio::fs::remove_file(&self.path).await;
            return Err(e.into());
        }
        Ok(fetched)
    }

    /// The file to write `opened` to: appended to for the rest of the
    /// file, started over when the server sent the whole file (no Range
    /// support).
    async fn writer_for(&mut self, opened: Opened) -> Result<(Body, tokio::fs::File), ClientError> {
        Ok(match opened {
            Opened::Partial(body) => {
                let file = tokio::fs::OpenOptions::new()
                    .create(true)
                    .append(true)
                    .open(&self.path)
                    .await?;
                (body, file)
            }
            Opened::Full(body) => {
                self.hasher = sha2::Sha256::new();
                self.have = 0;
                (body, tokio::fs::File::create(&self.path).await?)
            }
        })
    }

    /// Copies `body` to `file` up to the announced size, hashing as it
    /// goes; returns the bytes written and the file. An interruption
    /// keeps what arrived for the next attempt; a local failure removes
    /// the file.
    async fn append_body(
        &mut self,
        mut body: Body,
        mut file: tokio::fs::File,
        expected: Expected<'_>,
        deadline: Instant,
        progress: Progress<'_>,
    ) -> Result<(u64, tokio::fs::File), ClientError> {
        let size = expected.size;
        let read_idle = expected.timeouts.read_idle;
        let mut fetched = 0u64;
        while self.have < size {
            let wait = deadline
                .saturating_duration_since(Instant::now())
                .min(read_idle);
            let next = match tokio::time::timeout(wait, body.next()).await {
                Ok(Some(Ok(chunk))) => chunk,
                Ok(None) => break,
                // An interruption: keep what arrived for the next attempt.
                // A tokio file hands each write to a background thread, so
                // without this flush the last write could land after the
                // next attempt measured the partial file, and its offset
                // would then skip or repeat bytes.
                Ok(Some(Err(e))) => {
                    file.flush().await?;
                    return Err(e);
                }
                Err(_) => {
                    file.flush().await?;
                    return Err(ClientError::Timeout(format!(
                        "the download stalled at {} of {size} bytes; run again to resume",
                        self.have
                    )));
                }
            };
            // Stop at the announced size, whatever the server sends.
            let take = next.len().min((size - self.have) as usize);
            let chunk = &next[..take];
            if let Err(e) = file.write_all(chunk).await {
                // A local failure (a full disk): nothing to resume.
                drop(file);
                let _ = tokio::fs::remove_file(&self.path).await;
                return Err(e.into());
            }
            self.hasher.update(chunk);
            self.have += take as u64;
            fetched += take as u64;
            progress(self.have, size);
        }
        Ok((fetched, file))
    }

    /// Moves the file to `done` once it is complete and hashes to the
    /// expected digest; a complete file with another digest is removed.
    async fn verify_into(self, done: &Path, expected: Expected<'_>) -> Result<(), ClientError> {
        let size = expected.size;
        if self.have < size {
            return Err(ClientError::Network(format!(
                "download stopped at {} of {size} bytes; run again to resume",
                self.have
            )));
        }
        let actual = format!("sha256:{}", hex::encode(self.hasher.finalize()));
        if actual != expected.digest.as_str() {
            let _ = tokio::fs::remove_file(&self.path).await;
            return Err(ClientError::Checksum {
                expected: expected.digest.to_string(),
                actual,
            });
        }
        tokio::fs::rename(&self.path, done).await?;
        Ok(())
    }
}

/// Opens a download through the catalog's client: the status decides
/// whether the body is the whole file or the rest of it.
pub(crate) async fn open_http(
    catalog: &crate::api::CatalogClient,
    url: reqwest::Url,
    offset: u64,
) -> Result<Opened, ClientError> {
    use reqwest::StatusCode;
    let resp = catalog
        .get_url(url.clone(), offset, catalog.timeouts().total)
        .await?;
    let body = |resp: reqwest::Response| -> Body {
        resp.bytes_stream()
            .map(|c| c.map_err(ClientError::from))
            .boxed()
    };
    match resp.status() {
        StatusCode::PARTIAL_CONTENT if offset > 0 => {
            // The rest is appended to what is on disk: it must start at
            // the offset asked for, or the file would be spliced wrong.
            let starts_at = resp
                .headers()
                .get(reqwest::header::CONTENT_RANGE)
                .and_then(|v| v.to_str().ok())
                .and_then(content_range_start);
            if starts_at != Some(offset) {
                return Err(ClientError::BadAnswer {
                    source_name: "download server",
                    message: format!(
                        "asked for the bytes from {offset}, it answered 206 with Content-Range {:?}",
                        resp.headers().get(reqwest::header::CONTENT_RANGE)
                    ),
                });
            }
            Ok(Opened::Partial(body(resp)))
        }
        s if s.is_success() => Ok(Opened::Full(body(resp))),
        StatusCode::UNAUTHORIZED | StatusCode::FORBIDDEN => {
            Err(ClientError::LicenseRequired { purchase_url: None })
        }
        s => Err(ClientError::Server {
            status: s.as_u16(),
            message: format!("downloading {url}"),
        }),
    }
}

/// The first byte of `bytes START-END/SIZE`.
fn content_range_start(value: &str) -> Option<u64> {
    let range = value.trim().strip_prefix("bytes ")?;
    let (start, _) = range.split_once('-')?;
    start.trim().parse().ok()
}

#[cfg(test)]
mod tests {
    use super::content_range_start;

    #[test]
    fn the_start_of_a_content_range_is_read() {
        assert_eq!(content_range_start("bytes 100-199/200"), Some(100));
        assert_eq!(content_range_start("bytes 0-0/1"), Some(0));
        assert_eq!(content_range_start("bytes */200"), None);
        assert_eq!(content_range_start("items 1-2/3"), None);
    }
}
