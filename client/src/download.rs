//! Downloading a build with resume: bytes go to `<name>.partial`; a later
//! attempt asks for the rest with `Range` and hashes what it already has
//! first, so the checksum always covers the whole file. Nothing leaves the
//! download folder before the sha256 matches.

use std::path::{Path, PathBuf};

use futures_util::StreamExt;
use reqwest::{StatusCode, header};
use sha2::Digest as _;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use crate::error::ClientError;

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

/// Downloads `url` into `dir`, resuming a partial file, and checks it is
/// `size` bytes hashing to `checksum` (`sha256:<hex>`). On a mismatch the
/// partial file is deleted, so the next attempt starts clean.
pub async fn fetch(
    http: &reqwest::Client,
    auth: impl Fn(reqwest::RequestBuilder) -> reqwest::RequestBuilder,
    url: &str,
    checksum: &str,
    size: u64,
    dir: &Path,
    progress: Progress<'_>,
) -> Result<Downloaded, ClientError> {
    let hex = checksum
        .strip_prefix("sha256:")
        .filter(|h| h.len() == 64 && h.bytes().all(|b| b.is_ascii_hexdigit()))
        .ok_or_else(|| ClientError::Invalid(format!("unsupported checksum `{checksum}`")))?;
    tokio::fs::create_dir_all(dir).await?;
    let done = dir.join(format!("sha256-{hex}"));
    let partial = dir.join(format!("sha256-{hex}.partial"));
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
    let mut hasher = sha2::Sha256::new();
    let mut have = hash_existing(&partial, &mut hasher).await?;
    if have > size {
        tokio::fs::remove_file(&partial).await?;
        hasher = sha2::Sha256::new();
        have = 0;
    }
    let mut fetched = 0u64;
    if have < size {
        let mut req = auth(http.get(url));
        if have > 0 {
            req = req.header(header::RANGE, format!("bytes={have}-"));
        }
        let resp = req.send().await?;
        let status = resp.status();
        let mut file = match status {
            StatusCode::PARTIAL_CONTENT if have > 0 => {
                tokio::fs::OpenOptions::new()
                    .append(true)
                    .open(&partial)
                    .await?
            }
            s if s.is_success() => {
                // The server sent the whole file (no Range support): start over.
                hasher = sha2::Sha256::new();
                have = 0;
                tokio::fs::File::create(&partial).await?
            }
            StatusCode::UNAUTHORIZED | StatusCode::FORBIDDEN => {
                return Err(ClientError::LicenseRequired { purchase_url: None });
            }
            s => {
                return Err(ClientError::Server {
                    status: s.as_u16(),
                    message: format!("downloading {url}"),
                });
            }
        };
        let mut body = resp.bytes_stream();
        while let Some(chunk) = body.next().await {
            let chunk = match chunk {
                Ok(chunk) => chunk,
                Err(e) => {
                    // Keep what arrived for the next attempt. A tokio file
                    // hands each write to a background thread, so without
                    // this flush the last write could land after the next
                    // attempt measured the partial file, and its `Range`
                    // would then skip or repeat bytes.
                    file.flush().await?;
                    return Err(e.into());
                }
            };
            if have + chunk.len() as u64 > size {
                drop(file);
                let _ = tokio::fs::remove_file(&partial).await;
                return Err(ClientError::Checksum {
                    expected: checksum.to_owned(),
                    actual: format!("more than the published {size} bytes"),
                });
            }
            hasher.update(&chunk);
            file.write_all(&chunk).await?;
            have += chunk.len() as u64;
            fetched += chunk.len() as u64;
            progress(have, size);
        }
        file.flush().await?;
        file.sync_all().await?;
    }
    if have < size {
        return Err(ClientError::Network(format!(
            "download stopped at {have} of {size} bytes; run again to resume"
        )));
    }
    let actual = format!("sha256:{}", hex::encode(hasher.finalize()));
    if actual != checksum {
        let _ = tokio::fs::remove_file(&partial).await;
        return Err(ClientError::Checksum {
            expected: checksum.to_owned(),
            actual,
        });
    }
    tokio::fs::rename(&partial, &done).await?;
    Ok(Downloaded {
        path: done,
        fetched,
    })
}
