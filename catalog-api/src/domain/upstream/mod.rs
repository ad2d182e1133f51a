//! Reading artifacts from any OCI registry over HTTP (CNCF Distribution,
//! ghcr.io, zot, or another rbee registry), with failures sorted into what
//! the catalog needs to know: missing, rate-limited, down, or sending
//! invalid data. The embedded registry is read in process instead
//! ([`crate::domain::in_process`]); both implement
//! [`crate::domain::source::RegistryRead`].
//!
//! The catalog talks HTTP itself (reqwest) rather than through
//! `oci-client`, because a registry is untrusted input and `oci-client`
//! reads whole bodies with no size limit, has no total deadline (a body
//! dribbled one byte every 20 s never timed out), hides a 429's
//! `Retry-After`, and sends `GET /v2/` before every request of an
//! anonymous client. Here:
//!
//! - every read of a manifest, small blob, referrers list or token has a
//!   total deadline ([`UpstreamOptions::deadline`]);
//! - manifests and indexes are capped at [`MAX_MANIFEST_BYTES`], checked
//!   against `Content-Length` first and counted while reading;
//! - every digest is verified (blobs while they stream: see `body.rs`);
//! - auth answers a 401 challenge once per registry and scope and reuses
//!   the token (`auth.rs`): an anonymous registry sees one request per read.

mod auth;
mod body;

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use bytes::Bytes;
use futures_util::stream::BoxStream;
use rbee_schemas::media_types::MANIFEST_MEDIA_TYPES;
use rbee_schemas::oci::ImageIndex;
use reqwest::header::{self, HeaderMap};
use reqwest::{StatusCode, Url};

use crate::domain::source::{BlobStream, RegistryRead};
pub use body::{Algorithm, Digest, verify_stream};

/// How an upstream read failed.
#[derive(Debug, Clone, thiserror::Error)]
pub enum UpstreamError {
    /// The manifest, blob or repository does not exist.
    #[error("not found in the registry")]
    NotFound,
    /// The registry answered 429; do not ask again before `retry_after`.
    #[error("the registry is rate-limiting us")]
    RateLimited {
        /// How long to leave it alone.
        retry_after: Duration,
    },
    /// The registry is unreachable, failing or too slow.
    #[error("the registry is unavailable: {0}")]
    Unavailable(String),
    /// The registry sent something that is not what rbee publishes.
    #[error("the registry holds invalid data: {0}")]
    Invalid(String),
}

/// How long a rate-limited registry is left alone when its 429 carries no
/// usable `Retry-After`.
pub const RATE_LIMIT_BACKOFF: Duration = Duration::from_secs(60);

/// A `Retry-After` is honoured within these bounds: a registry cannot make
/// the catalog hammer it (0) or give up on it for a day.
const RETRY_AFTER_BOUNDS: (Duration, Duration) =
    (Duration::from_secs(1), Duration::from_secs(3600));

/// Largest manifest, image index or referrers list read, as for pushes.
pub const MAX_MANIFEST_BYTES: usize = 4 << 20;

/// Largest token-service answer read.
const MAX_TOKEN_BYTES: usize = 64 << 10;

/// Timeouts of upstream reads.
#[derive(Debug, Clone)]
pub struct UpstreamOptions {
    /// Total time one read (a manifest, a small blob, a referrers list, a
    /// token), body included, may take; also the deadline of one cache
    /// fetch and of one listing.
    pub deadline: Duration,
    /// Time to open a connection.
    pub connect_timeout: Duration,
    /// Longest pause between two reads of a proxied blob download (which
    /// has no total deadline: it may be gigabytes).
    pub stream_idle_timeout: Duration,
}

impl Default for UpstreamOptions {
    fn default() -> Self {
        UpstreamOptions {
            deadline: Duration::from_secs(10),
            connect_timeout: Duration::from_secs(5),
            stream_idle_timeout: Duration::from_secs(30),
        }
    }
}

/// Where the catalog reads artifacts from. Cheap to clone (shared inside),
/// so fetches can run on their own tasks.
#[derive(Clone)]
pub struct Upstream {
    inner: Arc<Inner>,
}

struct Inner {
    http: reqwest::Client,
    /// Base URL (`http://127.0.0.1:8787`), ending without `/`.
    base_url: String,
    base: Url,
    /// `host:port` as used in references.
    registry: String,
    auth: auth::Auth,
    options: UpstreamOptions,
}

impl std::fmt::Debug for Upstream {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Upstream")
            .field("registry", &self.inner.registry)
            .field("options", &self.inner.options)
            .finish_non_exhaustive()
    }
}

impl Upstream {
    /// A reader of the registry at `url` (`http://host:port` or
    /// `https://ghcr.io`), anonymous or with `username`/`password`.
    pub fn new(
        url: &str,
        credentials: Option<(String, String)>,
        options: UpstreamOptions,
    ) -> Result<Self, String> {
        let base = Url::parse(url).map_err(|e| format!("bad registry URL `{url}`: {e}"))?;
        let registry = registry_host(url)?;
        let http = reqwest::Client::builder()
            .user_agent(concat!("rbee-catalog/", env!("CARGO_PKG_VERSION")))
            .connect_timeout(options.connect_timeout)
            .read_timeout(options.stream_idle_timeout)
            .build()
            .map_err(|e| format!("cannot build the HTTP client: {e}"))?;
        Ok(Upstream {
            inner: Arc::new(Inner {
                http,
                base_url: url.trim_end_matches('/').to_owned(),
                base,
                auth: auth::Auth::new(credentials),
                registry,
                options,
            }),
        })
    }

    /// True when reads need credentials (downloads are then streamed
    /// through the catalog rather than pointed at the registry).
    pub fn needs_auth(&self) -> bool {
        self.inner.auth.has_credentials()
    }

    /// The registry's base URL.
    pub fn base_url(&self) -> &str {
        &self.inner.base_url
    }

    /// The registry's `host[:port]`.
    pub fn registry(&self) -> &str {
        &self.inner.registry
    }

    /// The timeouts in force.
    pub fn options(&self) -> &UpstreamOptions {
        &self.inner.options
    }

    /// Runs one read under the total deadline.
    async fn within_deadline<T>(
        &self,
        what: &str,
        read: impl Future<Output = Result<T, UpstreamError>>,
    ) -> Result<T, UpstreamError> {
        let deadline = self.inner.options.deadline;
        tokio::time::timeout(deadline, read)
            .await
            .unwrap_or_else(|_| {
                Err(UpstreamError::Unavailable(format!(
                    "{what} took longer than {deadline:?}"
                )))
            })
    }

    /// A manifest by tag or digest: its bytes and digest (verified against
    /// a digest reference; computed for a tag).
    pub async fn manifest(
        &self,
        repo: &str,
        reference: &str,
    ) -> Result<(Bytes, String), UpstreamError> {
        check_repository(repo)?;
        let by_digest = if reference.contains(':') {
            Some(Digest::parse(reference)?)
        } else {
            check_tag(reference)?;
            None
        };
        let what = format!("manifest {repo}:{reference}");
        self.within_deadline(&what, async {
            let url = self.url(&format!("/v2/{repo}/manifests/{reference}"))?;
            let resp = self
                .get(repo, url, Some(&MANIFEST_MEDIA_TYPES.join(", ")))
                .await?;
            let header_digest = resp
                .headers()
                .get("docker-content-digest")
                .and_then(|v| v.to_str().ok())
                .map(str::to_owned);
            let bytes = body::read_capped(resp, MAX_MANIFEST_BYTES, &what).await?;
            // A digest reference is what the bytes must hash to; for a tag,
            // the registry's `Docker-Content-Digest` when it sends one.
            let (algorithm, expected) = match by_digest {
                Some(d) => (d.algorithm(), Some(reference.to_owned())),
                None => match header_digest.as_deref().map(Digest::parse) {
                    Some(Ok(d)) => (d.algorithm(), header_digest),
                    _ => (Algorithm::Sha256, None),
                },
            };
            let actual = algorithm.of(&bytes);
            if let Some(expected) = expected
                && actual != expected
            {
                return Err(UpstreamError::Invalid(format!(
                    "{what} has digest {actual}, not {expected}"
                )));
            }
            Ok((bytes, actual))
        })
        .await
    }

    /// A small blob (config, catalog document, PKGBUILD), refused above
    /// `limit` bytes; its digest is checked.
    pub async fn small_blob(
        &self,
        repo: &str,
        digest: &str,
        limit: usize,
    ) -> Result<Bytes, UpstreamError> {
        check_repository(repo)?;
        let parsed = Digest::parse(digest)?;
        let what = format!("blob {repo}@{digest}");
        self.within_deadline(&what, async {
            let url = self.url(&format!("/v2/{repo}/blobs/{digest}"))?;
            let resp = self.get(repo, url, None).await?;
            let bytes = body::read_capped(resp, limit, &what).await?;
            parsed.check(&what, &bytes)?;
            Ok(bytes)
        })
        .await
    }

    /// A blob of `size` bytes as a stream, for proxied downloads. The
    /// stream fails (before its last bytes) when the blob is longer,
    /// shorter or not what `digest` says, so a client never sees a
    /// complete transfer of wrong bytes.
    pub async fn blob_stream(
        &self,
        repo: &str,
        digest: &str,
        size: u64,
    ) -> Result<BoxStream<'static, std::io::Result<Bytes>>, UpstreamError> {
        check_repository(repo)?;
        let parsed = Digest::parse(digest)?;
        let what = format!("blob {repo}@{digest}");
        let resp = self
            .within_deadline(&what, async {
                let url = self.url(&format!("/v2/{repo}/blobs/{digest}"))?;
                self.get(repo, url, None).await
            })
            .await?;
        if let Some(len) = resp.content_length()
            && len != size
        {
            return Err(UpstreamError::Invalid(format!(
                "{what} is {len} bytes, its manifest says {size}"
            )));
        }
        Ok(body::verified_stream(resp, parsed, size, what))
    }

    /// The referrers of `digest` of one artifact type: through the
    /// referrers API, or the `<alg>-<hex>` tag on registries without it.
    pub async fn referrers(
        &self,
        repo: &str,
        digest: &str,
        artifact_type: &str,
    ) -> Result<Vec<(String, Option<String>)>, UpstreamError> {
        check_repository(repo)?;
        let parsed = Digest::parse(digest)?;
        let what = format!("referrers of {repo}@{digest}");
        let bytes = self
            .within_deadline(&what, async {
                let mut url = self.url(&format!("/v2/{repo}/referrers/{digest}"))?;
                url.query_pairs_mut()
                    .append_pair("artifactType", artifact_type);
                match self
                    .get(repo, url, Some(rbee_schemas::media_types::OCI_INDEX))
                    .await
                {
                    Ok(resp) => body::read_capped(resp, MAX_MANIFEST_BYTES, &what)
                        .await
                        .map(Some),
                    Err(UpstreamError::NotFound) => Ok(None),
                    Err(e) => Err(e),
                }
            })
            .await?;
        let bytes = match bytes {
            Some(b) => b,
            None => match self.manifest(repo, &parsed.fallback_tag()).await {
                Ok((b, _)) => b,
                Err(UpstreamError::NotFound) => return Ok(Vec::new()),
                Err(e) => return Err(e),
            },
        };
        let index: ImageIndex = serde_json::from_slice(&bytes)
            .map_err(|e| UpstreamError::Invalid(format!("{what}: {e}")))?;
        Ok(index
            .manifests
            .into_iter()
            .filter(|m| m.artifact_type.as_deref() == Some(artifact_type))
            .map(|m| (m.digest, m.artifact_type))
            .collect())
    }

    fn url(&self, path: &str) -> Result<Url, UpstreamError> {
        self.inner
            .base
            .join(path)
            .map_err(|e| UpstreamError::Invalid(format!("bad URL path {path}: {e}")))
    }

    /// `GET url` with the auth of `repo`'s pull scope, answering a 401
    /// challenge once; any answer but a success becomes an error.
    async fn get(
        &self,
        repo: &str,
        url: Url,
        accept: Option<&str>,
    ) -> Result<reqwest::Response, UpstreamError> {
        let scope = format!("repository:{repo}:pull");
        let mut challenged = false;
        loop {
            let sent = self.inner.auth.header_for(&scope);
            let mut req = self.inner.http.get(url.clone());
            if let Some(accept) = accept {
                req = req.header(header::ACCEPT, accept);
            }
            if let Some(value) = &sent {
                req = req.header(header::AUTHORIZATION, value.clone());
            }
            let resp = req.send().await.map_err(transport_error)?;
            if resp.status() == StatusCode::UNAUTHORIZED && !challenged {
                challenged = true;
                let challenge = resp.headers().get(header::WWW_AUTHENTICATE).cloned();
                self.inner
                    .auth
                    .answer(&self.inner.http, &self.inner.base, &scope, challenge, sent)
                    .await?;
                continue;
            }
            return check_status(resp);
        }
    }
}

/// A transport failure, with the cause chain (reqwest's top message alone
/// says only "error sending request").
fn transport_error(e: reqwest::Error) -> UpstreamError {
    let mut text = e.to_string();
    let mut source = std::error::Error::source(&e);
    while let Some(s) = source {
        text.push_str(": ");
        text.push_str(&s.to_string());
        source = s.source();
    }
    UpstreamError::Unavailable(text)
}

/// The `host[:port]` of the registry at `url` (`http://host:port` or
/// `https://ghcr.io`), as OCI references name it.
pub fn registry_host(url: &str) -> Result<String, String> {
    let base = Url::parse(url).map_err(|e| format!("bad registry URL `{url}`: {e}"))?;
    if !matches!(base.scheme(), "http" | "https") {
        return Err(format!("registry URL `{url}` is not http(s)"));
    }
    let host = base
        .host_str()
        .ok_or_else(|| format!("registry URL `{url}` has no host"))?;
    Ok(match base.port() {
        Some(p) => format!("{host}:{p}"),
        None => host.to_owned(),
    })
}

/// An external registry, read over HTTP.
#[async_trait]
impl RegistryRead for Upstream {
    async fn manifest(
        &self,
        repo: &str,
        reference: &str,
    ) -> Result<(Bytes, String), UpstreamError> {
        Upstream::manifest(self, repo, reference).await
    }

    async fn small_blob(
        &self,
        repo: &str,
        digest: &str,
        limit: usize,
    ) -> Result<Bytes, UpstreamError> {
        Upstream::small_blob(self, repo, digest, limit).await
    }

    async fn blob_stream(
        &self,
        repo: &str,
        digest: &str,
        size: u64,
    ) -> Result<BlobStream, UpstreamError> {
        Upstream::blob_stream(self, repo, digest, size).await
    }

    async fn referrers(
        &self,
        repo: &str,
        digest: &str,
        artifact_type: &str,
    ) -> Result<Vec<(String, Option<String>)>, UpstreamError> {
        Upstream::referrers(self, repo, digest, artifact_type).await
    }

    fn needs_auth(&self) -> bool {
        Upstream::needs_auth(self)
    }

    fn registry(&self) -> &str {
        Upstream::registry(self)
    }

    fn deadline(&self) -> Duration {
        self.inner.options.deadline
    }
}

/// Sorts an answer: a success passes, the rest become errors.
fn check_status(resp: reqwest::Response) -> Result<reqwest::Response, UpstreamError> {
    let status = resp.status();
    if status.is_success() {
        return Ok(resp);
    }
    Err(match status {
        StatusCode::NOT_FOUND => UpstreamError::NotFound,
        StatusCode::TOO_MANY_REQUESTS => UpstreamError::RateLimited {
            retry_after: retry_after(resp.headers()),
        },
        StatusCode::UNAUTHORIZED | StatusCode::FORBIDDEN => UpstreamError::Unavailable(format!(
            "the registry refused our credentials ({status}) for {}",
            resp.url().path()
        )),
        _ => UpstreamError::Unavailable(format!(
            "the registry answered {status} for {}",
            resp.url().path()
        )),
    })
}

/// A 429's `Retry-After` in seconds, within [`RETRY_AFTER_BOUNDS`];
/// [`RATE_LIMIT_BACKOFF`] when absent or in the rare HTTP-date form.
fn retry_after(headers: &HeaderMap) -> Duration {
    headers
        .get(header::RETRY_AFTER)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.trim().parse::<u64>().ok())
        .map(Duration::from_secs)
        .unwrap_or(RATE_LIMIT_BACKOFF)
        .clamp(RETRY_AFTER_BOUNDS.0, RETRY_AFTER_BOUNDS.1)
}

/// A repository name from upstream data (the catalog index) must be an OCI
/// name before it becomes part of a URL path.
fn check_repository(repo: &str) -> Result<(), UpstreamError> {
    let component_ok = |c: &str| {
        !c.is_empty()
            && c.bytes().all(|b| {
                b.is_ascii_lowercase() || b.is_ascii_digit() || matches!(b, b'.' | b'_' | b'-')
            })
            && c.bytes().next().is_some_and(|b| b.is_ascii_alphanumeric())
            && c.bytes().last().is_some_and(|b| b.is_ascii_alphanumeric())
    };
    if repo.len() <= 255 && repo.split('/').all(component_ok) {
        Ok(())
    } else {
        Err(UpstreamError::Invalid(format!(
            "`{}` is not a repository name",
            repo.escape_debug().take(80).collect::<String>()
        )))
    }
}

/// A tag from upstream data or a route must match the OCI tag grammar.
fn check_tag(tag: &str) -> Result<(), UpstreamError> {
    let mut bytes = tag.bytes();
    let first_ok = bytes
        .next()
        .is_some_and(|b| b.is_ascii_alphanumeric() || b == b'_');
    if first_ok
        && tag.len() <= 128
        && bytes.all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'.' | b'-'))
    {
        Ok(())
    } else {
        Err(UpstreamError::Invalid(format!(
            "`{}` is not a tag",
            tag.escape_debug().take(80).collect::<String>()
        )))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_from_upstream_data_are_checked_before_they_reach_a_url() {
        for ok in ["rbee/catalog", "a", "rbee/hello-worker-rbee-cpu", "a.b_c/d"] {
            assert!(check_repository(ok).is_ok(), "{ok}");
        }
        for bad in ["", "../x", "a//b", "A/b", "a/b/", "a?b", "a/..", "a%2f"] {
            assert!(check_repository(bad).is_err(), "{bad}");
        }
        for ok in ["latest", "0.1.0", "sha256-abc", "_x"] {
            assert!(check_tag(ok).is_ok(), "{ok}");
        }
        for bad in ["", ".x", "a/b", "a?b", &"a".repeat(129)] {
            assert!(check_tag(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn retry_after_is_bounded() {
        let mut h = HeaderMap::new();
        assert_eq!(retry_after(&h), RATE_LIMIT_BACKOFF);
        h.insert(header::RETRY_AFTER, "7".parse().unwrap());
        assert_eq!(retry_after(&h), Duration::from_secs(7));
        h.insert(header::RETRY_AFTER, "0".parse().unwrap());
        assert_eq!(retry_after(&h), Duration::from_secs(1));
        h.insert(header::RETRY_AFTER, "999999999".parse().unwrap());
        assert_eq!(retry_after(&h), Duration::from_secs(3600));
    }
}
