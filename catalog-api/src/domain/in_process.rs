//! Reading the embedded registry in process, through
//! [`rbee_registry::Registry`]'s own API rather than over loopback HTTP:
//! no socket to itself, no token to issue to itself once `/v2` requires
//! them, and no pull events: every read names
//! [`RequestContext::internal`], which the registry never announces, so
//! the catalog's own reads never count as downloads.
//!
//! The content is checked as the HTTP reader checks it (caps, digests,
//! deadline), so that the catalog behaves the same whichever registry
//! sits behind it.

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use bytes::{Bytes, BytesMut};
use futures_util::StreamExt;
use rbee_registry::reference::{Digest as RegistryDigest, Reference, RepoName};
use rbee_registry::{Registry, RegistryError, RequestContext};

use crate::domain::source::{BlobStream, MAX_MANIFEST_BYTES, RegistryRead};
use crate::domain::upstream::{Digest, UpstreamError, verify_stream};

/// The embedded registry, read in process.
#[derive(Debug, Clone)]
pub struct InProcess {
    registry: Arc<Registry>,
    /// `host:port` of the server that serves it, for OCI references.
    reference_host: String,
    deadline: Duration,
}

impl InProcess {
    /// A reader of `registry`, which clients reach at `reference_host`
    /// (`127.0.0.1:8787`), each read taking at most `deadline`.
    pub fn new(registry: Arc<Registry>, reference_host: String, deadline: Duration) -> Self {
        InProcess {
            registry,
            reference_host,
            deadline,
        }
    }

    async fn within_deadline<T>(
        &self,
        what: &str,
        read: impl Future<Output = Result<T, UpstreamError>>,
    ) -> Result<T, UpstreamError> {
        let deadline = self.deadline;
        tokio::time::timeout(deadline, read)
            .await
            .unwrap_or_else(|_| {
                Err(UpstreamError::Unavailable(format!(
                    "{what} took longer than {deadline:?}"
                )))
            })
    }
}

/// Sorts a registry failure as the HTTP reader sorts the registry's
/// answers: missing content is `NotFound`, a storage failure is the
/// registry being unavailable, anything else is invalid data.
fn sort(what: &str, e: RegistryError) -> UpstreamError {
    match e {
        RegistryError::NameUnknown(_)
        | RegistryError::ManifestUnknown(_)
        | RegistryError::BlobUnknown(_) => UpstreamError::NotFound,
        e @ RegistryError::Storage(_) => UpstreamError::Unavailable(format!("{what}: {e}")),
        e => UpstreamError::Invalid(format!("{what}: {e}")),
    }
}

fn repo_name(repo: &str) -> Result<RepoName, UpstreamError> {
    RepoName::parse(repo).map_err(|e| UpstreamError::Invalid(e.to_string()))
}

fn registry_digest(digest: &str) -> Result<RegistryDigest, UpstreamError> {
    RegistryDigest::parse(digest).map_err(|e| UpstreamError::Invalid(e.to_string()))
}

#[async_trait]
impl RegistryRead for InProcess {
    async fn manifest(
        &self,
        repo: &str,
        reference: &str,
    ) -> Result<(Bytes, String), UpstreamError> {
        let name = repo_name(repo)?;
        let parsed =
            Reference::parse(reference).map_err(|e| UpstreamError::Invalid(e.to_string()))?;
        let what = format!("manifest {repo}:{reference}");
        self.within_deadline(&what, async {
            let info = self
                .registry
                .manifest_info(&name, &parsed)
                .await
                .map_err(|e| sort(&what, e))?;
            if info.size > MAX_MANIFEST_BYTES as u64 {
                return Err(UpstreamError::Invalid(format!(
                    "{what} is larger than {MAX_MANIFEST_BYTES} bytes"
                )));
            }
            let (info, bytes) = self
                .registry
                .pull_manifest(&RequestContext::internal(), &name, &parsed)
                .await
                .map_err(|e| sort(&what, e))?;
            let expected = info.digest.to_string();
            let actual = Digest::parse(&expected)?.algorithm().of(&bytes);
            if actual != expected {
                return Err(UpstreamError::Invalid(format!(
                    "{what} has digest {actual}, not {expected}"
                )));
            }
            Ok((bytes, actual))
        })
        .await
    }

    async fn presigned_blob_url(
        &self,
        repo: &str,
        digest: &str,
        lifetime: Duration,
    ) -> Result<Option<String>, UpstreamError> {
        let name = repo_name(repo)?;
        let stored = registry_digest(digest)?;
        let what = format!("blob {repo}@{digest}");
        self.within_deadline(&what, async {
            self.registry
                .presigned_blob_url(&name, &stored, lifetime)
                .await
                .map_err(|e| sort(&what, e))
        })
        .await
    }

    async fn small_blob(
        &self,
        repo: &str,
        digest: &str,
        limit: usize,
    ) -> Result<Bytes, UpstreamError> {
        let name = repo_name(repo)?;
        let parsed = Digest::parse(digest)?;
        let stored = registry_digest(digest)?;
        let what = format!("blob {repo}@{digest}");
        self.within_deadline(&what, async {
            let size = self
                .registry
                .blob_size(&name, &stored)
                .await
                .map_err(|e| sort(&what, e))?;
            let too_big = || UpstreamError::Invalid(format!("{what} is larger than {limit} bytes"));
            if size > limit as u64 {
                return Err(too_big());
            }
            let mut stream = self
                .registry
                .pull_blob(&RequestContext::internal(), &name, &stored, size, None)
                .await
                .map_err(|e| sort(&what, e))?;
            let mut out = BytesMut::with_capacity(size as usize);
            while let Some(chunk) = stream.next().await {
                let chunk =
                    chunk.map_err(|e| UpstreamError::Unavailable(format!("{what}: {e}")))?;
                if out.len() + chunk.len() > limit {
                    return Err(too_big());
                }
                out.extend_from_slice(&chunk);
            }
            let bytes = out.freeze();
            parsed.check(&what, &bytes)?;
            Ok(bytes)
        })
        .await
    }

    async fn blob_stream(
        &self,
        repo: &str,
        digest: &str,
        size: u64,
    ) -> Result<BlobStream, UpstreamError> {
        let name = repo_name(repo)?;
        let parsed = Digest::parse(digest)?;
        let stored = registry_digest(digest)?;
        let what = format!("blob {repo}@{digest}");
        let stream = self
            .within_deadline(&what, async {
                let len = self
                    .registry
                    .blob_size(&name, &stored)
                    .await
                    .map_err(|e| sort(&what, e))?;
                if len != size {
                    return Err(UpstreamError::Invalid(format!(
                        "{what} is {len} bytes, its manifest says {size}"
                    )));
                }
                self.registry
                    .pull_blob(&RequestContext::internal(), &name, &stored, len, None)
                    .await
                    .map_err(|e| sort(&what, e))
            })
            .await?;
        Ok(verify_stream(stream, parsed, size, what))
    }

    async fn blob_range_stream(
        &self,
        repo: &str,
        digest: &str,
        size: u64,
        range: std::ops::Range<u64>,
    ) -> Result<BlobStream, UpstreamError> {
        let name = repo_name(repo)?;
        Digest::parse(digest)?;
        let stored = registry_digest(digest)?;
        let what = format!("blob {repo}@{digest}");
        let len = range.end - range.start;
        let stream = self
            .within_deadline(&what, async {
                let stored_len = self
                    .registry
                    .blob_size(&name, &stored)
                    .await
                    .map_err(|e| sort(&what, e))?;
                if stored_len != size {
                    return Err(UpstreamError::Invalid(format!(
                        "{what} is {stored_len} bytes, its manifest says {size}"
                    )));
                }
                // The registry checked the digest when the blob was pushed;
                // a part cannot be checked again (the client hashes the
                // whole file), its length can.
                self.registry
                    .pull_blob(
                        &RequestContext::internal(),
                        &name,
                        &stored,
                        size,
                        Some(range),
                    )
                    .await
                    .map_err(|e| sort(&what, e))
            })
            .await?;
        Ok(crate::domain::source::exactly(stream, len, what))
    }

    async fn referrers(
        &self,
        repo: &str,
        digest: &str,
        artifact_type: &str,
    ) -> Result<Vec<(String, Option<String>)>, UpstreamError> {
        let name = repo_name(repo)?;
        let subject = registry_digest(digest)?;
        let what = format!("referrers of {repo}@{digest}");
        let found = self
            .within_deadline(&what, async {
                match self
                    .registry
                    .referrers(&name, &subject, Some(artifact_type))
                    .await
                {
                    Ok(found) => Ok(found),
                    Err(e) => match sort(&what, e) {
                        UpstreamError::NotFound => Ok(Vec::new()),
                        e => Err(e),
                    },
                }
            })
            .await?;
        Ok(found
            .into_iter()
            .filter(|d| d.artifact_type.as_deref() == Some(artifact_type))
            .map(|d| (d.digest.to_string(), d.artifact_type))
            .collect())
    }

    fn forget(&self, repository: Option<&str>) {
        match repository {
            Some(repository) => {
                // A name that does not parse was never cached.
                if let Ok(name) = RepoName::parse(repository) {
                    self.registry.forget_cached(Some(&name));
                }
            }
            None => self.registry.forget_cached(None),
        }
    }

    fn needs_auth(&self) -> bool {
        false
    }

    fn registry(&self) -> &str {
        &self.reference_host
    }

    fn deadline(&self) -> Duration {
        self.deadline
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use futures_util::TryStreamExt;
    use rbee_registry::RegistryConfig;

    async fn reader() -> (InProcess, Arc<Registry>, tempfile::TempDir) {
        let dir = tempfile::tempdir().unwrap();
        let registry = Registry::open(RegistryConfig::new(dir.path()))
            .await
            .unwrap();
        let reader = InProcess::new(
            registry.clone(),
            "127.0.0.1:8787".into(),
            Duration::from_secs(5),
        );
        (reader, registry, dir)
    }

    /// Stores `data` as a blob of `repo` through the registry's own API.
    async fn put_blob(registry: &Registry, repo: &str, data: &'static [u8]) -> String {
        let name = RepoName::parse(repo).unwrap();
        let digest = crate::domain::upstream::Algorithm::Sha256.of(data);
        let upload = registry.start_upload(&name).await.unwrap();
        let body: rbee_registry::storage::ByteStream =
            Box::pin(futures_util::stream::iter([Ok(Bytes::from_static(data))]));
        registry
            .finish_upload(
                &RequestContext::internal(),
                &name,
                &upload.id,
                &RegistryDigest::parse(&digest).unwrap(),
                None,
                Some(body),
            )
            .await
            .unwrap();
        digest
    }

    #[tokio::test]
    async fn missing_content_is_not_found_and_bad_names_are_invalid() {
        let (r, _, _dir) = reader().await;
        let absent = format!("sha256:{}", "0".repeat(64));
        assert!(matches!(
            r.manifest("rbee/catalog", "latest").await,
            Err(UpstreamError::NotFound)
        ));
        assert!(matches!(
            r.small_blob("rbee/catalog", &absent, 10).await,
            Err(UpstreamError::NotFound)
        ));
        assert!(matches!(
            r.blob_stream("rbee/catalog", &absent, 10).await,
            Err(UpstreamError::NotFound)
        ));
        assert!(
            r.referrers("rbee/catalog", &absent, "x")
                .await
                .unwrap()
                .is_empty()
        );
        assert!(matches!(
            r.manifest("../x", "latest").await,
            Err(UpstreamError::Invalid(_))
        ));
        assert!(matches!(
            r.small_blob("rbee/catalog", "md5:00", 10).await,
            Err(UpstreamError::Invalid(_))
        ));
        assert!(!r.needs_auth());
        assert_eq!(r.registry(), "127.0.0.1:8787");
    }

    #[tokio::test]
    async fn blobs_are_capped_and_checked_against_their_size() {
        let (r, registry, _dir) = reader().await;
        let data: &'static [u8] = b"twenty bytes of data";
        let digest = put_blob(&registry, "rbee/w", data).await;
        assert_eq!(
            r.small_blob("rbee/w", &digest, 64).await.unwrap(),
            Bytes::from_static(data)
        );
        assert!(matches!(
            r.small_blob("rbee/w", &digest, 10).await,
            Err(UpstreamError::Invalid(_))
        ));
        let streamed: Vec<Bytes> = r
            .blob_stream("rbee/w", &digest, data.len() as u64)
            .await
            .unwrap()
            .try_collect()
            .await
            .unwrap();
        assert_eq!(streamed.concat(), data);
        assert!(matches!(
            r.blob_stream("rbee/w", &digest, 3).await,
            Err(UpstreamError::Invalid(_))
        ));
        // Linked into one repository only.
        assert!(matches!(
            r.small_blob("rbee/other", &digest, 64).await,
            Err(UpstreamError::NotFound)
        ));
    }

    #[tokio::test]
    async fn the_catalogs_own_reads_are_never_announced_as_pulls() {
        let (r, registry, _dir) = reader().await;
        let mut events = registry.events().subscribe();
        let layer: &'static [u8] = b"the worker's tar.gz";
        let config: &'static [u8] = b"{}";
        let layer_digest = put_blob(&registry, "rbee/w", layer).await;
        let config_digest = put_blob(&registry, "rbee/w", config).await;
        let manifest = serde_json::json!({
            "schemaVersion": 2,
            "mediaType": "application/vnd.oci.image.manifest.v1+json",
            "config": {"mediaType": "application/vnd.oci.empty.v1+json",
                       "digest": config_digest, "size": config.len()},
            "layers": [{"mediaType": "application/vnd.oci.image.layer.v1.tar+gzip",
                        "digest": layer_digest, "size": layer.len()}],
        });
        let name = RepoName::parse("rbee/w").unwrap();
        registry
            .put_manifest(
                &RequestContext::internal(),
                &name,
                &Reference::parse("1.0.0").unwrap(),
                Some("application/vnd.oci.image.manifest.v1+json"),
                Bytes::from(serde_json::to_vec(&manifest).unwrap()),
            )
            .await
            .unwrap();
        // The process's own writes are announced (the cache follows them),
        // marked as its own.
        let mut writes = 0;
        while let Ok(event) = events.try_recv() {
            assert_eq!(event.action, rbee_registry::Action::Push);
            assert!(event.context.internal, "{event:?}");
            writes += 1;
        }
        assert_eq!(writes, 3);

        r.manifest("rbee/w", "1.0.0").await.unwrap();
        r.small_blob("rbee/w", &config_digest, 64).await.unwrap();
        let streamed: Vec<Bytes> = r
            .blob_stream("rbee/w", &layer_digest, layer.len() as u64)
            .await
            .unwrap()
            .try_collect()
            .await
            .unwrap();
        assert_eq!(streamed.concat(), layer);
        assert!(
            matches!(
                events.try_recv(),
                Err(tokio::sync::broadcast::error::TryRecvError::Empty)
            ),
            "the catalog's reads were announced"
        );

        // The same read for a client is a download, with the media type the
        // manifest gives the layer.
        let stored = RegistryDigest::parse(&layer_digest).unwrap();
        let client = RequestContext::default();
        let sent: Vec<Bytes> = registry
            .pull_blob(&client, &name, &stored, layer.len() as u64, None)
            .await
            .unwrap()
            .try_collect()
            .await
            .unwrap();
        assert_eq!(sent.concat(), layer);
        let pull = events.try_recv().expect("a client's pull is announced");
        assert!(pull.is_completed_download() && !pull.context.internal);
        assert_eq!(
            pull.media_type.as_deref(),
            Some("application/vnd.oci.image.layer.v1.tar+gzip")
        );
    }
}
