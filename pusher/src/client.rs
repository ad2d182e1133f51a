//! A small OCI Distribution client for publishing: blob existence checks,
//! monolithic and chunked (resumable) blob uploads, manifest reads and
//! writes, with the docker token flow and retries.
//!
//! `oci-client` is what the catalog and the installer use to read. The
//! pusher talks HTTP itself because publishing from CI needs three things
//! that `oci-client` does not expose: the `Retry-After` of a 429, resuming
//! a chunked upload from the offset the registry reports after a failed
//! chunk, and byte-level progress. Auth follows the same docker token spec.

use std::collections::HashMap;
use std::path::Path;
use std::sync::Mutex;
use std::time::Duration;

use bytes::Bytes;
use reqwest::header::{self, HeaderMap, HeaderValue};
use reqwest::{Method, RequestBuilder, Response, StatusCode, Url};
use tokio::io::{AsyncReadExt, AsyncSeekExt};

use crate::auth::Credentials;
use crate::error::PushError;

/// How failed requests are retried.
#[derive(Debug, Clone)]
pub struct RetryPolicy {
    /// Attempts in all, the first included.
    pub attempts: u32,
    /// Delay before the first retry; doubled each time.
    pub base_delay: Duration,
    /// No wait is longer than this, whatever `Retry-After` says.
    pub max_delay: Duration,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        RetryPolicy {
            attempts: 5,
            base_delay: Duration::from_millis(500),
            max_delay: Duration::from_secs(60),
        }
    }
}

/// Blobs larger than this are uploaded in chunks, so that a failure costs
/// one chunk rather than the whole file.
pub const CHUNKED_THRESHOLD: u64 = 128 << 20;
/// Size of each chunk of a chunked upload.
pub const CHUNK_SIZE: u64 = 64 << 20;

/// A client for one registry.
#[derive(Debug)]
pub struct RegistryClient {
    http: reqwest::Client,
    base: Url,
    credentials: Credentials,
    retry: RetryPolicy,
    /// The `Authorization` value to send, by token scope (a Bearer token,
    /// or Basic credentials when the registry asked for those). A std
    /// mutex: it is never held across an await.
    auth: Mutex<HashMap<String, HeaderValue>>,
}

/// A manifest read back from the registry.
#[derive(Debug, Clone)]
pub struct FetchedManifest {
    /// Its media type (`Content-Type`).
    pub media_type: String,
    /// Its bytes.
    pub bytes: Bytes,
}

/// What a manifest PUT answered.
#[derive(Debug, Clone)]
pub struct PutManifest {
    /// `Docker-Content-Digest`, or the digest we computed.
    pub digest: String,
    /// True when the registry answered `OCI-Subject`: it supports the
    /// referrers API and indexed the subject itself.
    pub subject_indexed: bool,
}

/// Told how many bytes were just sent; called from upload streams.
pub type Progress = std::sync::Arc<dyn Fn(u64) + Send + Sync>;

impl RegistryClient {
    /// A client for the registry at `base` (`http://127.0.0.1:5000`,
    /// `https://ghcr.io`).
    pub fn new(base: Url, credentials: Credentials, retry: RetryPolicy) -> Result<Self, PushError> {
        let http = reqwest::Client::builder()
            .user_agent(concat!("rbee-pusher/", env!("CARGO_PKG_VERSION")))
            .connect_timeout(Duration::from_secs(30))
            .build()
            .map_err(|e| PushError::Registry(format!("cannot build HTTP client: {e}")))?;
        Ok(RegistryClient {
            http,
            base,
            credentials,
            retry,
            auth: Mutex::new(HashMap::new()),
        })
    }

    /// The registry's host (and port), as used in references.
    pub fn host(&self) -> String {
        match self.base.port() {
            Some(p) => format!("{}:{p}", self.base.host_str().unwrap_or_default()),
            None => self.base.host_str().unwrap_or_default().to_owned(),
        }
    }

    fn url(&self, path: &str) -> Result<Url, PushError> {
        self.base
            .join(path)
            .map_err(|e| PushError::Registry(format!("bad URL {path}: {e}")))
    }

    /// Sends a body-less (or small-bodied) request with auth and retries.
    /// `build` is called once per attempt.
    async fn send(
        &self,
        repo: &str,
        push: bool,
        build: impl Fn(&reqwest::Client) -> RequestBuilder,
    ) -> Result<Response, PushError> {
        let scope = scope(repo, push);
        let mut attempt = 0;
        let mut authed_once = false;
        loop {
            attempt += 1;
            let mut req = build(&self.http);
            if let Some(auth) = self.authorization(&scope) {
                req = req.header(header::AUTHORIZATION, auth);
            }
            let result = req.send().await;
            let retry_in = match &result {
                Ok(resp) if resp.status() == StatusCode::UNAUTHORIZED && !authed_once => {
                    authed_once = true;
                    let challenge = resp.headers().get(header::WWW_AUTHENTICATE).cloned();
                    self.authenticate(&scope, challenge.as_ref()).await?;
                    continue;
                }
                Ok(resp) if resp.status() == StatusCode::TOO_MANY_REQUESTS => {
                    Some(retry_after(resp.headers()).unwrap_or_else(|| self.backoff(attempt)))
                }
                Ok(resp) if resp.status().is_server_error() => Some(self.backoff(attempt)),
                Ok(_) => None,
                Err(e) if e.is_connect() || e.is_timeout() || e.is_request() => {
                    Some(self.backoff(attempt))
                }
                Err(_) => None,
            };
            match retry_in {
                Some(wait) if attempt < self.retry.attempts => {
                    tracing::warn!(
                        attempt,
                        wait_ms = wait.as_millis() as u64,
                        "registry busy or failing; retrying"
                    );
                    tokio::time::sleep(wait.min(self.retry.max_delay)).await;
                }
                _ => {
                    return result.map_err(|e| PushError::Registry(format!("request failed: {e}")));
                }
            }
        }
    }

    fn backoff(&self, attempt: u32) -> Duration {
        self.retry
            .base_delay
            .saturating_mul(1 << (attempt - 1).min(10))
    }

    fn authorization(&self, scope: &str) -> Option<HeaderValue> {
        self.auth
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .get(scope)
            .cloned()
    }

    /// Answers a 401 challenge: Basic uses the credentials as they are;
    /// Bearer fetches a token from the realm for `scope`.
    async fn authenticate(
        &self,
        scope: &str,
        challenge: Option<&HeaderValue>,
    ) -> Result<(), PushError> {
        let challenge = challenge.and_then(|c| c.to_str().ok()).ok_or_else(|| {
            PushError::Auth("registry answered 401 without a WWW-Authenticate challenge".into())
        })?;
        let (kind, params) = parse_challenge(challenge);
        let value = if kind.eq_ignore_ascii_case("basic") {
            self.credentials.basic_header().ok_or_else(|| {
                PushError::Auth("the registry needs credentials; none were given".into())
            })?
        } else {
            let realm = params.get("realm").ok_or_else(|| {
                PushError::Auth(format!("Bearer challenge without realm: {challenge}"))
            })?;
            let mut url = Url::parse(realm)
                .map_err(|e| PushError::Auth(format!("bad token realm {realm}: {e}")))?;
            {
                let mut q = url.query_pairs_mut();
                if let Some(service) = params.get("service") {
                    q.append_pair("service", service);
                }
                // Ask for what this request needs, not what the challenge
                // happened to name.
                q.append_pair("scope", scope);
            }
            let mut req = self.http.get(url);
            if let Some(basic) = self.credentials.basic_header() {
                req = req.header(header::AUTHORIZATION, basic);
            }
            let resp = req
                .send()
                .await
                .map_err(|e| PushError::Auth(format!("token request failed: {e}")))?;
            if !resp.status().is_success() {
                return Err(PushError::Auth(format!(
                    "token service refused the credentials ({})",
                    resp.status()
                )));
            }
            let body: serde_json::Value = resp
                .json()
                .await
                .map_err(|e| PushError::Auth(format!("token answer is not JSON: {e}")))?;
            let token = body
                .get("token")
                .or_else(|| body.get("access_token"))
                .and_then(|t| t.as_str())
                .ok_or_else(|| PushError::Auth("token answer has no token".into()))?;
            HeaderValue::from_str(&format!("Bearer {token}")).map_err(|_| {
                PushError::Auth("token has characters not allowed in a header".into())
            })?
        };
        self.auth
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .insert(scope.to_owned(), value);
        Ok(())
    }

    /// True when `repo` already has `digest`.
    pub async fn blob_exists(&self, repo: &str, digest: &str) -> Result<bool, PushError> {
        let url = self.url(&format!("/v2/{repo}/blobs/{digest}"))?;
        let resp = self.send(repo, true, |c| c.head(url.clone())).await?;
        match resp.status() {
            s if s.is_success() => Ok(true),
            StatusCode::NOT_FOUND => Ok(false),
            s => Err(status_error("checking blob", s)),
        }
    }

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
            let result = if size > CHUNKED_THRESHOLD {
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
            return Err(upload_status_error(resp).await);
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
        let body = reqwest::Body::wrap_stream(counted(file, progress.clone()));
        let mut req = self
            .http
            .put(url)
            .header(header::CONTENT_TYPE, "application/octet-stream")
            .header(header::CONTENT_LENGTH, size)
            .body(body);
        if let Some(auth) = self.auth_for(repo) {
            req = req.header(header::AUTHORIZATION, auth);
        }
        let resp = req
            .send()
            .await
            .map_err(|e| PushError::Registry(format!("upload failed: {e}")))?;
        if resp.status() != StatusCode::CREATED {
            return Err(upload_status_error(resp).await);
        }
        Ok(())
    }

    /// Chunked upload: PATCH `CHUNK_SIZE` pieces with `Content-Range`; when a
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
            let len = CHUNK_SIZE.min(size - offset);
            let mut file = tokio::fs::File::open(path).await?;
            file.seek(std::io::SeekFrom::Start(offset)).await?;
            let body = reqwest::Body::wrap_stream(counted(file.take(len), progress.clone()));
            let mut req = self
                .http
                .patch(location.clone())
                .header(header::CONTENT_TYPE, "application/octet-stream")
                .header(header::CONTENT_LENGTH, len)
                .header(
                    header::CONTENT_RANGE,
                    format!("{}-{}", offset, offset + len - 1),
                )
                .body(body);
            if let Some(auth) = self.auth_for(repo) {
                req = req.header(header::AUTHORIZATION, auth);
            }
            match req.send().await {
                Ok(resp) if resp.status() == StatusCode::ACCEPTED => {
                    location = self.location(resp.headers(), &location)?;
                    offset += len;
                }
                other => {
                    failures += 1;
                    if failures >= self.retry.attempts {
                        return Err(match other {
                            Ok(resp) => upload_status_error(resp).await,
                            Err(e) => PushError::Registry(format!("chunk upload failed: {e}")),
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
            return Err(upload_status_error(resp).await);
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

    fn auth_for(&self, repo: &str) -> Option<HeaderValue> {
        self.authorization(&scope(repo, true))
    }

    /// Reads a manifest by tag or digest; `None` when it does not exist.
    pub async fn get_manifest(
        &self,
        repo: &str,
        reference: &str,
        push: bool,
    ) -> Result<Option<FetchedManifest>, PushError> {
        let url = self.url(&format!("/v2/{repo}/manifests/{reference}"))?;
        let accept = rbee_schemas::media_types::MANIFEST_MEDIA_TYPES.join(", ");
        let resp = self
            .send(repo, push, |c| {
                c.get(url.clone()).header(header::ACCEPT, &accept)
            })
            .await?;
        match resp.status() {
            StatusCode::NOT_FOUND => Ok(None),
            s if s.is_success() => {
                let media_type = resp
                    .headers()
                    .get(header::CONTENT_TYPE)
                    .and_then(|v| v.to_str().ok())
                    .unwrap_or_default()
                    .to_owned();
                let bytes = resp
                    .bytes()
                    .await
                    .map_err(|e| PushError::Registry(format!("reading manifest: {e}")))?;
                Ok(Some(FetchedManifest { media_type, bytes }))
            }
            s => Err(status_error("reading a manifest", s)),
        }
    }

    /// Writes a manifest under `reference` (a tag or its digest).
    pub async fn put_manifest(
        &self,
        repo: &str,
        reference: &str,
        media_type: &str,
        bytes: Bytes,
    ) -> Result<PutManifest, PushError> {
        let url = self.url(&format!("/v2/{repo}/manifests/{reference}"))?;
        let resp = self
            .send(repo, true, |c| {
                c.put(url.clone())
                    .header(header::CONTENT_TYPE, media_type)
                    .body(bytes.clone())
            })
            .await?;
        if resp.status() != StatusCode::CREATED {
            return Err(upload_status_error(resp).await);
        }
        let digest = resp
            .headers()
            .get("docker-content-digest")
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned)
            .unwrap_or_else(|| rbee_schemas::oci::sha256_digest(&bytes));
        let subject_indexed = resp.headers().contains_key("oci-subject");
        Ok(PutManifest {
            digest,
            subject_indexed,
        })
    }

    /// Reads a small blob (a config or the catalog document).
    pub async fn get_blob(
        &self,
        repo: &str,
        digest: &str,
        limit: usize,
    ) -> Result<Bytes, PushError> {
        let url = self.url(&format!("/v2/{repo}/blobs/{digest}"))?;
        let resp = self.send(repo, true, |c| c.get(url.clone())).await?;
        if !resp.status().is_success() {
            return Err(status_error("reading a blob", resp.status()));
        }
        let bytes = resp
            .bytes()
            .await
            .map_err(|e| PushError::Registry(format!("reading blob: {e}")))?;
        if bytes.len() > limit {
            return Err(PushError::Registry(format!(
                "blob {digest} is larger than the {limit} bytes expected"
            )));
        }
        Ok(bytes)
    }

    /// Uploads a small in-memory blob unless the repository has it.
    pub async fn ensure_small_blob(&self, repo: &str, bytes: Bytes) -> Result<String, PushError> {
        let digest = rbee_schemas::oci::sha256_digest(&bytes);
        if self.blob_exists(repo, &digest).await? {
            return Ok(digest);
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
            return Err(upload_status_error(resp).await);
        }
        Ok(digest)
    }

    /// The referrers of `subject` of one artifact type, or `None` when
    /// the registry has no referrers API (it answers 404 or not an index).
    pub async fn referrers(
        &self,
        repo: &str,
        subject: &str,
        artifact_type: &str,
    ) -> Result<Option<rbee_schemas::oci::ImageIndex>, PushError> {
        let mut url = self.url(&format!("/v2/{repo}/referrers/{subject}"))?;
        url.query_pairs_mut().append_pair("artifactType", artifact_type);
        let resp = self.send(repo, false, |c| c.get(url.clone())).await?;
        let is_index = resp
            .headers()
            .get(header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .is_some_and(|c| c.starts_with(rbee_schemas::media_types::OCI_INDEX));
        if !resp.status().is_success() || !is_index {
            return Ok(None);
        }
        let bytes = resp.bytes().await.map_err(|e| PushError::Registry(format!("reading referrers: {e}")))?;
        serde_json::from_slice(&bytes)
            .map(Some)
            .map_err(|e| PushError::Registry(format!("the referrers answer is not an index: {e}")))
    }

    /// Deletes a manifest by digest.
    pub async fn delete_manifest(&self, repo: &str, digest: &str) -> Result<(), PushError> {
        let url = self.url(&format!("/v2/{repo}/manifests/{digest}"))?;
        let resp = self.send(repo, true, |c| c.delete(url.clone())).await?;
        if resp.status().is_success() {
            Ok(())
        } else {
            Err(status_error("deleting a manifest", resp.status()))
        }
    }

    /// Sends any request with auth and retries (for callers needing more).
    pub async fn request(
        &self,
        repo: &str,
        method: Method,
        path: &str,
    ) -> Result<Response, PushError> {
        let url = self.url(path)?;
        self.send(repo, method != Method::GET && method != Method::HEAD, |c| {
            c.request(method.clone(), url.clone())
        })
        .await
    }
}

/// The docker token scope for `repo`.
fn scope(repo: &str, push: bool) -> String {
    format!(
        "repository:{repo}:{}",
        if push { "pull,push" } else { "pull" }
    )
}

/// Parses `Bearer realm="...",service="...",scope="..."`.
fn parse_challenge(header: &str) -> (String, HashMap<String, String>) {
    let (kind, rest) = header.trim().split_once(' ').unwrap_or((header.trim(), ""));
    let mut params = HashMap::new();
    let mut rest = rest.trim();
    while !rest.is_empty() {
        let Some((key, after)) = rest.split_once('=') else {
            break;
        };
        let key = key
            .trim()
            .trim_start_matches(',')
            .trim()
            .to_ascii_lowercase();
        let (value, remainder) = if let Some(quoted) = after.strip_prefix('"') {
            match quoted.find('"') {
                Some(end) => (&quoted[..end], &quoted[end + 1..]),
                None => (quoted, ""),
            }
        } else {
            match after.find(',') {
                Some(end) => (&after[..end], &after[end..]),
                None => (after, ""),
            }
        };
        params.insert(key, value.to_owned());
        rest = remainder.trim_start_matches(',').trim();
    }
    (kind.to_owned(), params)
}

/// `Retry-After` in seconds (the HTTP-date form is rare for registries and
/// is treated as absent).
fn retry_after(headers: &HeaderMap) -> Option<Duration> {
    headers
        .get(header::RETRY_AFTER)?
        .to_str()
        .ok()?
        .trim()
        .parse::<u64>()
        .ok()
        .map(Duration::from_secs)
}

fn status_error(what: &str, status: StatusCode) -> PushError {
    match status {
        StatusCode::UNAUTHORIZED | StatusCode::FORBIDDEN => PushError::Auth(format!(
            "{what}: the registry answered {status}; check the credentials"
        )),
        _ => PushError::Registry(format!("{what}: the registry answered {status}")),
    }
}

/// An error from a failed upload or manifest PUT, with the registry's OCI
/// error message when it sent one.
async fn upload_status_error(resp: Response) -> PushError {
    let status = resp.status();
    let text = resp.text().await.unwrap_or_default();
    let detail = serde_json::from_str::<serde_json::Value>(&text)
        .ok()
        .and_then(|v| {
            let e = v.get("errors")?.get(0)?.clone();
            Some(format!(
                "{}: {}",
                e.get("code")?.as_str()?,
                e.get("message").and_then(|m| m.as_str()).unwrap_or("")
            ))
        })
        .unwrap_or_else(|| text.chars().take(200).collect());
    match status {
        StatusCode::UNAUTHORIZED | StatusCode::FORBIDDEN => PushError::Auth(format!(
            "the registry refused the push ({status}): {detail}"
        )),
        s if s.is_client_error() => {
            PushError::Rejected(format!("the registry refused ({status}): {detail}"))
        }
        _ => PushError::Registry(format!("the registry answered {status}: {detail}")),
    }
}

/// Streams `reader` in 1 MiB pieces, reporting each piece to `progress`.
fn counted<R>(
    reader: R,
    progress: Progress,
) -> impl futures_util::Stream<Item = std::io::Result<Bytes>> + Send + 'static
where
    R: tokio::io::AsyncRead + Send + Unpin + 'static,
{
    use futures_util::TryStreamExt;
    tokio_util::io::ReaderStream::with_capacity(reader, 1 << 20)
        .inspect_ok(move |b| progress(b.len() as u64))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_bearer_challenges() {
        let (kind, p) = parse_challenge(
            r#"Bearer realm="https://auth.example/token",service="registry.example",scope="repository:rbee/x:pull,push""#,
        );
        assert_eq!(kind, "Bearer");
        assert_eq!(p["realm"], "https://auth.example/token");
        assert_eq!(p["service"], "registry.example");
        assert_eq!(p["scope"], "repository:rbee/x:pull,push");
    }

    #[test]
    fn retry_after_seconds() {
        let mut h = HeaderMap::new();
        h.insert(header::RETRY_AFTER, HeaderValue::from_static("7"));
        assert_eq!(retry_after(&h), Some(Duration::from_secs(7)));
    }
}
