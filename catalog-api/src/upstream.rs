//! Reading artifacts from any OCI registry (the embedded one, CNCF
//! Distribution, ghcr.io, zot) through `oci-client`, with failures sorted
//! into what the catalog needs to know: missing, rate-limited or down.

use std::time::Duration;

use bytes::Bytes;
use futures_util::{StreamExt, stream::BoxStream};
use oci_client::client::{ClientConfig, ClientProtocol};
use oci_client::errors::{OciDistributionError, OciErrorCode};
use oci_client::secrets::RegistryAuth;
use oci_client::{Client, Reference};
use rbee_schemas::media_types::MANIFEST_MEDIA_TYPES;

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
    /// The registry is unreachable or failing.
    #[error("the registry is unavailable: {0}")]
    Unavailable(String),
    /// The registry sent something that is not what rbee publishes.
    #[error("the registry holds invalid data: {0}")]
    Invalid(String),
}

/// `oci-client` hides the `Retry-After` of a 429, so a rate-limited
/// registry is left alone for this long.
pub const RATE_LIMIT_BACKOFF: Duration = Duration::from_secs(60);

impl From<OciDistributionError> for UpstreamError {
    fn from(e: OciDistributionError) -> Self {
        use OciDistributionError as E;
        match &e {
            E::ImageManifestNotFoundError(_) => UpstreamError::NotFound,
            E::ServerError { code: 404, .. } => UpstreamError::NotFound,
            E::ServerError { code: 429, .. } => UpstreamError::RateLimited {
                retry_after: RATE_LIMIT_BACKOFF,
            },
            E::RegistryError { envelope, .. } => {
                let codes: Vec<&OciErrorCode> = envelope.errors.iter().map(|e| &e.code).collect();
                if codes
                    .iter()
                    .any(|c| matches!(c, OciErrorCode::Toomanyrequests))
                {
                    UpstreamError::RateLimited {
                        retry_after: RATE_LIMIT_BACKOFF,
                    }
                } else if codes.iter().any(|c| {
                    matches!(
                        c,
                        OciErrorCode::ManifestUnknown
                            | OciErrorCode::BlobUnknown
                            | OciErrorCode::NameUnknown
                            | OciErrorCode::NotFound
                    )
                }) {
                    UpstreamError::NotFound
                } else {
                    UpstreamError::Unavailable(e.to_string())
                }
            }
            E::ManifestParsingError(m) | E::SpecViolationError(m) => {
                UpstreamError::Invalid(m.clone())
            }
            E::DigestError(_) => UpstreamError::Invalid(e.to_string()),
            _ => UpstreamError::Unavailable(e.to_string()),
        }
    }
}

/// Where the catalog reads artifacts from.
pub struct Upstream {
    client: Client,
    /// `host:port` as used in references.
    registry: String,
    /// Base URL (`http://127.0.0.1:8787`), for download URLs.
    base_url: String,
    auth: RegistryAuth,
}

impl std::fmt::Debug for Upstream {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Upstream")
            .field("registry", &self.registry)
            .finish_non_exhaustive()
    }
}

impl Upstream {
    /// A reader of the registry at `url` (`http://host:port` or
    /// `https://ghcr.io`), anonymous or with `username`/`password`.
    pub fn new(url: &str, credentials: Option<(String, String)>) -> Result<Self, String> {
        let parsed =
            reqwest::Url::parse(url).map_err(|e| format!("bad registry URL `{url}`: {e}"))?;
        let host = parsed
            .host_str()
            .ok_or_else(|| format!("registry URL `{url}` has no host"))?;
        let registry = match parsed.port() {
            Some(p) => format!("{host}:{p}"),
            None => host.to_owned(),
        };
        let protocol = if parsed.scheme() == "http" {
            ClientProtocol::Http
        } else {
            ClientProtocol::Https
        };
        let config = ClientConfig {
            protocol,
            connect_timeout: Some(Duration::from_secs(5)),
            read_timeout: Some(Duration::from_secs(30)),
            ..Default::default()
        };
        let auth = match credentials {
            Some((user, password)) => RegistryAuth::Basic(user, password),
            None => RegistryAuth::Anonymous,
        };
        Ok(Upstream {
            client: Client::new(config),
            registry,
            base_url: url.trim_end_matches('/').to_owned(),
            auth,
        })
    }

    /// True when reads need credentials (downloads are then streamed
    /// through the catalog rather than pointed at the registry).
    pub fn needs_auth(&self) -> bool {
        !matches!(self.auth, RegistryAuth::Anonymous)
    }

    /// The registry's base URL.
    pub fn base_url(&self) -> &str {
        &self.base_url
    }

    /// The registry's `host[:port]`.
    pub fn registry(&self) -> &str {
        &self.registry
    }

    fn tag_ref(&self, repo: &str, tag: &str) -> Reference {
        Reference::with_tag(self.registry.clone(), repo.to_owned(), tag.to_owned())
    }

    fn digest_ref(&self, repo: &str, digest: &str) -> Reference {
        Reference::with_digest(self.registry.clone(), repo.to_owned(), digest.to_owned())
    }

    /// A manifest by tag or digest: its bytes and digest.
    pub async fn manifest(
        &self,
        repo: &str,
        reference: &str,
    ) -> Result<(Bytes, String), UpstreamError> {
        let r = if reference.contains(':') {
            self.digest_ref(repo, reference)
        } else {
            self.tag_ref(repo, reference)
        };
        Ok(self
            .client
            .pull_manifest_raw(&r, &self.auth, &MANIFEST_MEDIA_TYPES)
            .await?)
    }

    /// A small blob (config, catalog document, PKGBUILD), refused above
    /// `limit` bytes; its digest is checked.
    pub async fn small_blob(
        &self,
        repo: &str,
        digest: &str,
        limit: usize,
    ) -> Result<Bytes, UpstreamError> {
        let mut stream = self.blob_stream(repo, digest).await?;
        let mut out = Vec::new();
        while let Some(chunk) = stream.next().await {
            let chunk = chunk.map_err(|e| UpstreamError::Unavailable(e.to_string()))?;
            if out.len() + chunk.len() > limit {
                return Err(UpstreamError::Invalid(format!(
                    "blob {digest} is larger than {limit} bytes"
                )));
            }
            out.extend_from_slice(&chunk);
        }
        let actual = format!(
            "sha256:{}",
            hex::encode(<sha2::Sha256 as sha2::Digest>::digest(&out))
        );
        if digest.starts_with("sha256:") && actual != digest {
            return Err(UpstreamError::Invalid(format!(
                "blob {digest} has digest {actual}"
            )));
        }
        Ok(Bytes::from(out))
    }

    /// A blob as a stream, for proxied downloads.
    pub async fn blob_stream(
        &self,
        repo: &str,
        digest: &str,
    ) -> Result<BoxStream<'static, std::io::Result<Bytes>>, UpstreamError> {
        let r = self.digest_ref(repo, digest);
        self.client
            .store_auth_if_needed(&self.registry, &self.auth)
            .await;
        let sized = self.client.pull_blob_stream(&r, digest).await?;
        Ok(sized.stream)
    }

    /// The referrers of `digest` of one artifact type (through the
    /// referrers API, or the tag fallback on registries without it).
    pub async fn referrers(
        &self,
        repo: &str,
        digest: &str,
        artifact_type: &str,
    ) -> Result<Vec<(String, Option<String>)>, UpstreamError> {
        let r = self.digest_ref(repo, digest);
        self.client
            .store_auth_if_needed(&self.registry, &self.auth)
            .await;
        let index = self.client.pull_referrers(&r, Some(artifact_type)).await?;
        Ok(index
            .manifests
            .into_iter()
            .map(|m| (m.digest, m.artifact_type))
            .collect())
    }
}
