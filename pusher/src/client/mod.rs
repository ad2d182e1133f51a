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
mod retry;
mod stream;
mod token;
mod transport;
mod upload;

pub use retry::RetryPolicy;
pub use stream::{PieceWriter, RESTARTS, STREAM_PIECE, StreamedBlob};
pub use transport::{ERROR_BODY_CAP, Timeouts};
pub use upload::{CHUNK_SIZE, CHUNKED_THRESHOLD, SmallBlob};

use http::status_error;
use retry::Failure;

use std::collections::HashMap;
use std::sync::Mutex;

use std::future::Future;

use bytes::Bytes;
use reqwest::header::{self, HeaderValue};
use reqwest::{Method, RequestBuilder, Response, StatusCode, Url};

/// The largest manifest, tag list page or referrers index read back
/// (the registry's own manifest limit).
pub const DOCUMENT_MAX_BYTES: usize = 4 << 20;

use crate::auth::Credentials;
use crate::error::PushError;

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
    /// The token service to ask instead of the challenge's realm
    /// ([`RegistryClient::with_token_service`]).
    token_service: Option<Url>,
    /// Blobs above this size are uploaded in chunks of `chunk_size`.
    chunked_threshold: u64,
    chunk_size: u64,
    /// Streamed blobs are sent in pieces of this size (see `stream.rs`).
    stream_piece: u64,
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
            token_service: None,
            chunked_threshold: CHUNKED_THRESHOLD,
            chunk_size: CHUNK_SIZE,
            stream_piece: STREAM_PIECE,
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

    /// Asks the token service at `url` for tokens instead of the realm a
    /// challenge names, and trusts it with the credentials: the caller
    /// chose it. For a publisher that reaches the registry by another
    /// address than its public one (`rbee-catalog serve --demo` publishes
    /// into its embedded registry over loopback, while the challenge names
    /// `--public-url`, which this host may not reach).
    pub fn with_token_service(mut self, url: Url) -> Self {
        self.token_service = Some(url);
        self
    }

    /// Uploads files larger than `threshold` in chunks of `chunk_size`
    /// bytes (defaults: [`CHUNKED_THRESHOLD`], [`CHUNK_SIZE`]), and
    /// streamed blobs in pieces of `chunk_size` (default [`STREAM_PIECE`]).
    /// Smaller chunks cost more requests but less to resend after a
    /// failure.
    pub fn with_chunking(mut self, threshold: u64, chunk_size: u64) -> Self {
        self.chunked_threshold = threshold;
        self.chunk_size = chunk_size.max(1);
        self.stream_piece = chunk_size.max(1);
        self
    }

    /// The timeouts requests run under.
    pub fn timeouts(&self) -> Timeouts {
        self.timeouts
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

    /// One attempt at a body-less (or small-bodied) request, with auth:
    /// a 401 from the registry's origin is answered (see `token.rs`) and
    /// the request sent again, once; a 401 from anywhere else is returned
    /// as it is. An answer with a retryable status is a retryable
    /// [`Failure`]; any other answer is the caller's to judge. `build` is
    /// called once per request sent.
    async fn send_once(
        &self,
        scope: &str,
        build: &impl Fn(&reqwest::Client) -> RequestBuilder,
    ) -> Result<Response, Failure> {
        let request = || {
            build(&self.http)
                .build()
                .map_err(|e| PushError::Registry(format!("bad request: {e}")))
        };
        let mut resp = self
            .dispatch(request()?, scope)
            .await
            .map_err(|e| Failure::send(e, "request failed"))?;
        if resp.status() == StatusCode::UNAUTHORIZED && self.is_registry_origin(resp.url()) {
            let challenge = resp.headers().get(header::WWW_AUTHENTICATE).cloned();
            self.authenticate(scope, challenge.as_ref()).await?;
            resp = self
                .dispatch(request()?, scope)
                .await
                .map_err(|e| Failure::send(e, "request failed"))?;
        }
        if retry::retryable_status(resp.status()) {
            return Err(self.unexpected(resp).await);
        }
        Ok(resp)
    }

    /// A request that is safe to repeat, sent as one retried step whose
    /// answer `judge` reads (its body included, so that an answer cut off
    /// midway is asked for again).
    async fn idempotent<T, Fut>(
        &self,
        step: &str,
        repo: &str,
        push: bool,
        build: impl Fn(&reqwest::Client) -> RequestBuilder,
        judge: impl Fn(Response) -> Fut,
    ) -> Result<T, PushError>
    where
        Fut: Future<Output = Result<T, Failure>>,
    {
        let scope = &scope(repo, push);
        let (build, judge) = (&build, &judge);
        self.retrying(step, || async move {
            let resp = self.send_once(scope, build).await?;
            judge(resp).await
        })
        .await
    }

    fn authorization(&self, scope: &str) -> Option<HeaderValue> {
        self.auth
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .get(scope)
            .cloned()
    }

    /// Checks that the registry answers `GET /v2/` and accepts the
    /// credentials for pushing to `repo`, before anything is packaged: a
    /// wrong `--registry` or password is found in a second, not after
    /// minutes of compression.
    pub async fn check(&self, repo: &str) -> Result<(), PushError> {
        let url = self.url("/v2/")?;
        let shown = url.clone();
        let build = |c: &reqwest::Client| c.get(url.clone());
        self.idempotent("checking the registry", repo, true, build, |resp| {
            let shown = shown.clone();
            async move {
                match resp.status() {
                    s if s.is_success() => Ok(()),
                    StatusCode::NOT_FOUND => Err(Failure::fatal(PushError::Registry(format!(
                        "GET {shown} answered 404: not an OCI registry (check --registry)"
                    )))),
                    s => Err(Failure::fatal(status_error(
                        &format!("checking the registry (GET {shown})"),
                        s,
                    ))),
                }
            }
        })
        .await
    }

    /// True when `repo` already has `digest`.
    pub async fn blob_exists(&self, repo: &str, digest: &str) -> Result<bool, PushError> {
        let url = self.url(&format!("/v2/{repo}/blobs/{digest}"))?;
        let build = |c: &reqwest::Client| c.head(url.clone());
        self.idempotent("checking a blob", repo, true, build, |resp| async move {
            match resp.status() {
                s if s.is_success() => Ok(true),
                StatusCode::NOT_FOUND => Ok(false),
                s => Err(Failure::fatal(status_error("checking blob", s))),
            }
        })
        .await
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
        let build = |c: &reqwest::Client| c.get(url.clone()).header(header::ACCEPT, &accept);
        self.idempotent("reading a manifest", repo, push, build, |resp| async move {
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
                        .read_limited(resp, DOCUMENT_MAX_BYTES, "a manifest")
                        .await?;
                    Ok(Some(FetchedManifest { media_type, bytes }))
                }
                s => Err(Failure::fatal(status_error("reading a manifest", s))),
            }
        })
        .await
    }

    /// Writes a manifest under `reference` (a tag or its digest). The PUT
    /// is idempotent: the same bytes under the same reference.
    pub async fn put_manifest(
        &self,
        repo: &str,
        reference: &str,
        media_type: &str,
        bytes: Bytes,
    ) -> Result<PutManifest, PushError> {
        let url = self.url(&format!("/v2/{repo}/manifests/{reference}"))?;
        let build = |c: &reqwest::Client| {
            c.put(url.clone())
                .header(header::CONTENT_TYPE, media_type)
                .body(bytes.clone())
        };
        let bytes = &bytes;
        self.idempotent("writing a manifest", repo, true, build, |resp| async move {
            if resp.status() != StatusCode::CREATED {
                return Err(Failure::fatal(self.refusal(resp).await));
            }
            let digest = resp
                .headers()
                .get("docker-content-digest")
                .and_then(|v| v.to_str().ok())
                .map(str::to_owned)
                .unwrap_or_else(|| rbee_schemas::oci::sha256_digest(bytes));
            let subject_indexed = resp.headers().contains_key("oci-subject");
            Ok(PutManifest {
                digest,
                subject_indexed,
            })
        })
        .await
    }

    /// Reads a small blob (a config or the catalog document).
    pub async fn get_blob(
        &self,
        repo: &str,
        digest: &str,
        limit: usize,
    ) -> Result<Bytes, PushError> {
        let url = self.url(&format!("/v2/{repo}/blobs/{digest}"))?;
        let build = |c: &reqwest::Client| c.get(url.clone());
        let what = &format!("blob {digest}");
        self.idempotent("reading a blob", repo, true, build, |resp| async move {
            if !resp.status().is_success() {
                return Err(Failure::fatal(status_error(
                    "reading a blob",
                    resp.status(),
                )));
            }
            self.read_limited(resp, limit, what).await
        })
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
        let build = |c: &reqwest::Client| c.get(url.clone());
        let bytes = self
            .idempotent("listing referrers", repo, false, build, |resp| async move {
                let is_index = resp
                    .headers()
                    .get(header::CONTENT_TYPE)
                    .and_then(|v| v.to_str().ok())
                    .is_some_and(|c| c.starts_with(rbee_schemas::media_types::OCI_INDEX));
                if !resp.status().is_success() || !is_index {
                    return Ok(None);
                }
                self.read_limited(resp, DOCUMENT_MAX_BYTES, "the referrers index")
                    .await
                    .map(Some)
            })
            .await?;
        bytes
            .map(|bytes| serde_json::from_slice(&bytes))
            .transpose()
            .map_err(|e| PushError::Registry(format!("the referrers answer is not an index: {e}")))
    }

    /// Deletes a manifest by digest.
    pub async fn delete_manifest(&self, repo: &str, digest: &str) -> Result<(), PushError> {
        let url = self.url(&format!("/v2/{repo}/manifests/{digest}"))?;
        let build = |c: &reqwest::Client| c.delete(url.clone());
        self.idempotent(
            "deleting a manifest",
            repo,
            true,
            build,
            |resp| async move {
                if resp.status().is_success() {
                    Ok(())
                } else {
                    Err(Failure::fatal(status_error(
                        "deleting a manifest",
                        resp.status(),
                    )))
                }
            },
        )
        .await
    }

    /// Sends any request with auth (for callers needing more), retried
    /// when its method is idempotent; the caller reads the answer.
    pub async fn request(
        &self,
        repo: &str,
        method: Method,
        path: &str,
    ) -> Result<Response, PushError> {
        let url = self.url(path)?;
        let push = method != Method::GET && method != Method::HEAD;
        let build = |c: &reqwest::Client| c.request(method.clone(), url.clone());
        if method.is_idempotent() {
            self.idempotent("sending a request", repo, push, build, |resp| async move {
                Ok(resp)
            })
            .await
        } else {
            self.send_once(&scope(repo, push), &build)
                .await
                .map_err(Failure::into_error)
        }
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
