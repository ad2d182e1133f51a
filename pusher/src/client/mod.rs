//! A small OCI Distribution client for publishing: blob existence checks,
//! monolithic and chunked (resumable) blob uploads, manifest reads and
//! writes, with the docker token flow and retries.
//!
//! The installer's registry fallback reads through `oci-client`; the
//! catalog reads with its own capped client (`catalog-api`'s
//! `domain/upstream`). The pusher talks HTTP itself because publishing from CI needs three things
//! that `oci-client` does not expose: the `Retry-After` of a 429, resuming
//! a chunked upload from the offset the registry reports after a failed
//! chunk, and byte-level progress. Auth follows the same docker token spec.
//! Uploads live in `upload.rs`, header parsing and error shaping in
//! `http.rs`, token auth in `token.rs`, and how a request travels (where
//! credentials go, redirects, timeouts, capped bodies) in `transport.rs`.

mod http;
mod token;
mod transport;
mod upload;

pub use transport::{ERROR_BODY_CAP, Timeouts};
pub use upload::{CHUNK_SIZE, CHUNKED_THRESHOLD, SmallBlob};

use http::{retry_after, status_error};

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::Duration;

use bytes::Bytes;
use reqwest::header::{self, HeaderValue};
use reqwest::{Method, RequestBuilder, Response, StatusCode, Url};

/// The largest manifest, tag list page or referrers index read back
/// (the registry's own manifest limit).
pub const DOCUMENT_MAX_BYTES: usize = 4 << 20;

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

/// `host[:port]` of a registry URL, as references and docker's
/// `config.json` name registries.
pub fn host_of(url: &Url) -> String {
    match url.port() {
        Some(p) => format!("{}:{p}", url.host_str().unwrap_or_default()),
        None => url.host_str().unwrap_or_default().to_owned(),
    }
}

/// A client for one registry.
#[derive(Debug)]
pub struct RegistryClient {
    http: reqwest::Client,
    /// The registry's URL; its origin is the only one that gets the
    /// credentials and tokens.
    base: Url,
    credentials: Credentials,
    retry: RetryPolicy,
    timeouts: Timeouts,
    /// Hosts (`host` or `host:port`) of token services on other origins
    /// that may receive the credentials.
    trusted_realms: Vec<String>,
    /// Blobs above this size are uploaded in chunks of `chunk_size`.
    chunked_threshold: u64,
    chunk_size: u64,
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
    /// Default [`Timeouts`]; see [`with_timeouts`](Self::with_timeouts).
    pub fn new(base: Url, credentials: Credentials, retry: RetryPolicy) -> Result<Self, PushError> {
        let timeouts = Timeouts::default();
        Ok(RegistryClient {
            http: http_client(&timeouts)?,
            base,
            credentials,
            retry,
            timeouts,
            trusted_realms: Vec::new(),
            chunked_threshold: CHUNKED_THRESHOLD,
            chunk_size: CHUNK_SIZE,
            auth: Mutex::new(HashMap::new()),
        })
    }

    /// Uses `timeouts` instead of the defaults.
    pub fn with_timeouts(mut self, timeouts: Timeouts) -> Result<Self, PushError> {
        self.http = http_client(&timeouts)?;
        self.timeouts = timeouts;
        Ok(self)
    }

    /// Lets the token services on `hosts` (`host` or `host:port`) receive
    /// the credentials although they are not on the registry's origin,
    /// e.g. `auth.docker.io` for Docker Hub. See `token.rs` for the rule.
    pub fn trust_token_realms(mut self, hosts: impl IntoIterator<Item = String>) -> Self {
        self.trusted_realms.extend(hosts);
        self
    }

    /// Uploads blobs larger than `threshold` in chunks of `chunk_size`
    /// bytes (defaults: [`CHUNKED_THRESHOLD`], [`CHUNK_SIZE`]). Smaller
    /// chunks cost more requests but less to resend after a failure.
    pub fn with_chunking(mut self, threshold: u64, chunk_size: u64) -> Self {
        self.chunked_threshold = threshold;
        self.chunk_size = chunk_size.max(1);
        self
    }

    /// The registry's host (and port), as used in references.
    pub fn host(&self) -> String {
        host_of(&self.base)
    }

    fn url(&self, path: &str) -> Result<Url, PushError> {
        self.base
            .join(path)
            .map_err(|e| PushError::Registry(format!("bad URL {path}: {e}")))
    }

    /// Sends a body-less (or small-bodied) request with auth and retries.
    /// `build` is called once per attempt. A 401 from the registry's
    /// origin is answered once (see `token.rs`); a 401 from anywhere else
    /// is returned as it is.
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
            let req = build(&self.http)
                .build()
                .map_err(|e| PushError::Registry(format!("bad request: {e}")))?;
            let result = self.dispatch(req, &scope).await;
            let retry_in = match &result {
                Ok(resp)
                    if resp.status() == StatusCode::UNAUTHORIZED
                        && !authed_once
                        && self.is_registry_origin(resp.url()) =>
                {
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
                Err(e) if e.retryable() => Some(self.backoff(attempt)),
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
                _ => return result.map_err(|e| e.into_push("request failed")),
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
                let bytes = self
                    .read_document(resp, DOCUMENT_MAX_BYTES, "a manifest")
                    .await?;
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
            return Err(self.refusal(resp).await);
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
        self.read_document(resp, limit, &format!("blob {digest}"))
            .await
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
        url.query_pairs_mut()
            .append_pair("artifactType", artifact_type);
        let resp = self.send(repo, false, |c| c.get(url.clone())).await?;
        let is_index = resp
            .headers()
            .get(header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .is_some_and(|c| c.starts_with(rbee_schemas::media_types::OCI_INDEX));
        if !resp.status().is_success() || !is_index {
            return Ok(None);
        }
        let bytes = self
            .read_document(resp, DOCUMENT_MAX_BYTES, "the referrers index")
            .await?;
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

/// The HTTP client behind a [`RegistryClient`]: `timeouts.connect`, and no
/// redirects followed by reqwest, since `dispatch` follows them itself,
/// without credentials.
fn http_client(timeouts: &Timeouts) -> Result<reqwest::Client, PushError> {
    reqwest::Client::builder()
        .user_agent(concat!("rbee-pusher/", env!("CARGO_PKG_VERSION")))
        .connect_timeout(timeouts.connect)
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .map_err(|e| PushError::Registry(format!("cannot build HTTP client: {e}")))
}
