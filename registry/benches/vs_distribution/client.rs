//! The HTTP client, the same code for every server: blob pushes (POST, then
//! PUT `?digest=`), pulls, HEAD checks, and the small image whose manifest
//! the HEAD load asks for.

use std::time::{Duration, Instant};

use anyhow::{Context, Result, ensure};
use reqwest::header::{ACCEPT, CONTENT_LENGTH, CONTENT_TYPE, LOCATION};
use sha2::{Digest as _, Sha256};

use crate::data::{Blob, sha256_digest};
use crate::{MIB, OCI_MANIFEST, REPO, TAG};

fn upload_url(base: &str, location: &str, digest: &str) -> String {
    let url = if location.starts_with("http://") || location.starts_with("https://") {
        location.to_owned()
    } else {
        format!("{base}{location}")
    };
    let sep = if url.contains('?') { '&' } else { '?' };
    format!("{url}{sep}digest={digest}")
}

/// POST /blobs/uploads/, then PUT `?digest=` with the whole body.
async fn push(
    client: &reqwest::Client,
    base: &str,
    digest: &str,
    size: u64,
    body: reqwest::Body,
) -> Result<()> {
    let resp = client
        .post(format!("{base}/v2/{REPO}/blobs/uploads/"))
        .header(CONTENT_LENGTH, 0)
        .send()
        .await?;
    ensure!(
        resp.status().as_u16() == 202,
        "POST upload answered {}: {}",
        resp.status(),
        resp.text().await?
    );
    let location = resp
        .headers()
        .get(LOCATION)
        .and_then(|v| v.to_str().ok())
        .context("no Location on 202")?
        .to_owned();
    let resp = client
        .put(upload_url(base, &location, digest))
        .header(CONTENT_TYPE, "application/octet-stream")
        .header(CONTENT_LENGTH, size)
        .body(body)
        .send()
        .await?;
    let status = resp.status();
    let echoed = resp
        .headers()
        .get("docker-content-digest")
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned);
    ensure!(
        status.as_u16() == 201,
        "PUT upload answered {status}: {}",
        resp.text().await?
    );
    ensure!(
        echoed.as_deref() == Some(digest),
        "PUT answered digest {echoed:?}, expected {digest}"
    );
    Ok(())
}

/// Pushes a file, its body streamed from disk; returns the elapsed time.
pub(crate) async fn push_file(
    client: &reqwest::Client,
    base: &str,
    blob: &Blob,
) -> Result<Duration> {
    let start = Instant::now();
    let file = tokio::fs::File::open(&blob.path).await?;
    let stream = tokio_util::io::ReaderStream::with_capacity(file, MIB as usize);
    push(
        client,
        base,
        &blob.digest,
        blob.size,
        reqwest::Body::wrap_stream(stream),
    )
    .await?;
    Ok(start.elapsed())
}

async fn push_bytes(client: &reqwest::Client, base: &str, bytes: &[u8]) -> Result<String> {
    let digest = sha256_digest(bytes);
    push(
        client,
        base,
        &digest,
        bytes.len() as u64,
        reqwest::Body::from(bytes.to_vec()),
    )
    .await?;
    Ok(digest)
}

/// GETs `url`, discarding the bytes (hashing them when `verify`); returns
/// the byte count and, when verifying, the digest.
pub(crate) async fn pull(
    client: reqwest::Client,
    url: String,
    verify: bool,
) -> Result<(u64, Option<String>)> {
    let mut resp = client.get(&url).send().await?;
    ensure!(
        resp.status().as_u16() == 200,
        "GET {url} answered {}",
        resp.status()
    );
    let mut hasher = verify.then(Sha256::new);
    let mut n = 0u64;
    while let Some(chunk) = resp.chunk().await? {
        n += chunk.len() as u64;
        if let Some(h) = hasher.as_mut() {
            h.update(&chunk);
        }
    }
    Ok((
        n,
        hasher.map(|h| format!("sha256:{}", hex::encode(h.finalize()))),
    ))
}

pub(crate) async fn check_blob(client: &reqwest::Client, base: &str, blob: &Blob) -> Result<()> {
    let resp = client
        .head(format!("{base}/v2/{REPO}/blobs/{}", blob.digest))
        .send()
        .await?;
    let len = resp
        .headers()
        .get(CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok()?.parse::<u64>().ok());
    ensure!(
        resp.status().as_u16() == 200,
        "HEAD blob answered {}",
        resp.status()
    );
    ensure!(
        len == Some(blob.size),
        "HEAD blob Content-Length {len:?}, expected {}",
        blob.size
    );
    Ok(())
}

/// Pushes a config blob, a small layer and an OCI manifest tagged `TAG`.
pub(crate) async fn push_small_image(client: &reqwest::Client, base: &str) -> Result<String> {
    let config =
        br#"{"architecture":"amd64","os":"linux","rootfs":{"type":"layers","diff_ids":[]}}"#;
    let layer = b"rbee benchmark layer\n";
    let config_digest = push_bytes(client, base, config).await?;
    let layer_digest = push_bytes(client, base, layer).await?;
    let manifest = serde_json::to_vec(&serde_json::json!({
        "schemaVersion": 2,
        "mediaType": OCI_MANIFEST,
        "config": {
            "mediaType": "application/vnd.oci.image.config.v1+json",
            "digest": config_digest,
            "size": config.len(),
        },
        "layers": [{
            "mediaType": "application/vnd.oci.image.layer.v1.tar",
            "digest": layer_digest,
            "size": layer.len(),
        }],
        "annotations": { "org.opencontainers.image.title": "rbee benchmark" },
    }))?;
    let url = format!("{base}/v2/{REPO}/manifests/{TAG}");
    let resp = client
        .put(&url)
        .header(CONTENT_TYPE, OCI_MANIFEST)
        .body(manifest.clone())
        .send()
        .await?;
    ensure!(
        resp.status().as_u16() == 201,
        "PUT manifest answered {}: {}",
        resp.status(),
        resp.text().await?
    );
    let digest = sha256_digest(&manifest);
    let resp = client
        .head(&url)
        .header(ACCEPT, OCI_MANIFEST)
        .send()
        .await?;
    let echoed = resp
        .headers()
        .get("docker-content-digest")
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned);
    ensure!(
        resp.status().as_u16() == 200,
        "HEAD manifest answered {}",
        resp.status()
    );
    ensure!(
        echoed.as_deref() == Some(digest.as_str()),
        "HEAD manifest digest {echoed:?}, expected {digest}"
    );
    Ok(url)
}
