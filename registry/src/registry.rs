//! The registry's domain logic, independent of HTTP: which blobs and
//! manifests a repository holds, what a manifest may reference, tags,
//! referrers and listings. The HTTP handlers in `api/` are thin over this.

use std::ops::Range;
use std::sync::Arc;

use bytes::Bytes;

use crate::cache::{ManifestBodies, ManifestCache, ManifestInfo};
use crate::config::RegistryConfig;
use crate::error::{RegistryError, Result};
use crate::events::{
    Action, BlobMediaTypes, ByteRange, Event, EventBus, RequestContext, Target, Transfer, announced,
};
use crate::layout;
use crate::manifest::{self, Descriptor, MAX_MANIFEST_BYTES};
use crate::reference::{Algorithm, Digest, Hasher, Reference, RepoName, Tag};
use crate::repo_lock::RepoLocks;
use crate::storage::{self, ByteStream, Storage};
use crate::uploads::UploadSessions;

/// A registry over one storage backend.
#[derive(Debug)]
pub struct Registry {
    pub(crate) storage: Arc<dyn Storage>,
    pub(crate) config: RegistryConfig,
    pub(crate) events: EventBus,
    pub(crate) uploads: UploadSessions,
    pub(crate) cache: ManifestCache,
    bodies: ManifestBodies,
    /// What manifests say each blob is, for pull events.
    blob_types: BlobMediaTypes,
    /// Orders removals against everything else, per repository.
    pub(crate) writes: RepoLocks,
    /// Held shared by whatever makes content reachable (a blob link, a
    /// manifest record), exclusively by garbage collection's sweep: see
    /// `gc.rs` for why that keeps pushes in flight safe.
    pub(crate) sweep: tokio::sync::RwLock<()>,
}

/// The result of storing a manifest.
#[derive(Debug)]
pub struct StoredManifest {
    /// Its digest.
    pub digest: Digest,
    /// The subject it refers to, if any (answered as `OCI-Subject`).
    pub subject: Option<Digest>,
}

impl Registry {
    /// A registry over `storage`.
    pub fn new(storage: Arc<dyn Storage>, config: RegistryConfig) -> Self {
        Registry {
            cache: ManifestCache::new(config.manifest_cache_ttl),
            bodies: ManifestBodies::default(),
            blob_types: BlobMediaTypes::default(),
            writes: RepoLocks::default(),
            sweep: tokio::sync::RwLock::new(()),
            uploads: UploadSessions::default(),
            events: EventBus::default(),
            storage,
            config,
        }
    }

    /// The events: subscribe, or add a sink, to see pushes, pulls, HEADs
    /// and deletes.
    pub fn events(&self) -> &EventBus {
        &self.events
    }

    /// Forgets the manifest lookups cached for `repo` (all repositories
    /// when `None`): another process changed it in the shared storage.
    /// Without this, this process answers what it cached for up to
    /// [`manifest_cache_ttl`](crate::RegistryConfig::manifest_cache_ttl).
    pub fn forget_cached(&self, repo: Option<&RepoName>) {
        match repo {
            Some(repo) => self.cache.invalidate(repo),
            None => self.cache.invalidate_all(),
        }
    }

    /// The settings in force.
    pub fn config(&self) -> &RegistryConfig {
        &self.config
    }

    /// Whether what `context` does is announced: everything, except the
    /// process's own reads, which are no downloads and change nothing.
    fn announces(context: &RequestContext, action: Action) -> bool {
        !(context.internal && matches!(action, Action::Pull | Action::Head))
    }

    /// Publishes `event`. Every event leaves the registry here, or (for a
    /// blob pull, once its body is over) through [`announced`], which
    /// [`Self::pull_blob`] sets up by the same rule.
    pub(crate) fn announce(&self, event: Event) {
        if Self::announces(&event.context, event.action) {
            self.events.publish(event);
        }
    }

    pub(crate) fn ensure_delete_enabled(&self) -> Result<()> {
        if self.config.delete_enabled {
            Ok(())
        } else {
            Err(RegistryError::Unsupported(
                "deletes are disabled on this registry".into(),
            ))
        }
    }

    // ---- blobs -------------------------------------------------------

    /// The size of a blob linked into `repo`; `BLOB_UNKNOWN` otherwise.
    pub async fn blob_size(&self, repo: &RepoName, digest: &Digest) -> Result<u64> {
        let unknown = || RegistryError::BlobUnknown(digest.to_string());
        if self
            .storage
            .head(&layout::blob_link(repo, digest))
            .await?
            .is_none()
        {
            return Err(unknown());
        }
        self.storage
            .head(&layout::blob(digest))
            .await?
            .ok_or_else(unknown)
    }

    /// `HEAD` of a blob: [`Self::blob_size`], announced.
    pub async fn head_blob(
        &self,
        context: &RequestContext,
        repo: &RepoName,
        digest: &Digest,
    ) -> Result<u64> {
        let size = self.blob_size(repo, digest).await?;
        let mut event = Event::new(Action::Head, Target::Blob, repo, digest, context);
        event.media_type = self.blob_types.get(digest);
        event.size = Some(size);
        self.announce(event);
        Ok(size)
    }

    /// Streams blob `digest` of `repo`, whose size [`Self::blob_size`]
    /// found to be `size`, whole or `range` of it, to whoever `context`
    /// names. The pull is announced when the stream has yielded its last
    /// byte, or fails or is dropped before, with the bytes it yielded and
    /// whether that was all of them.
    pub async fn pull_blob(
        &self,
        context: &RequestContext,
        repo: &RepoName,
        digest: &Digest,
        size: u64,
        range: Option<Range<u64>>,
    ) -> Result<ByteStream> {
        let stream = self.read_blob(digest, range.clone()).await?;
        if !Self::announces(context, Action::Pull) {
            return Ok(stream);
        }
        let mut event = Event::new(Action::Pull, Target::Blob, repo, digest, context);
        event.media_type = self.blob_types.get(digest);
        event.size = Some(size);
        let range = range.map(ByteRange::from);
        let expected = range.map_or(size, |r| r.len());
        Ok(Box::pin(announced(
            stream,
            event,
            self.events.clone(),
            range,
            expected,
        )))
    }

    /// A presigned URL of the bucket for blob `digest` of `repo`, whose
    /// size [`Self::blob_size`] found to be `size` (so the access checks
    /// and the link check are done), when presigned redirects are on and
    /// the storage can make one, for a `GET`. A `GET` answered this way is
    /// announced as a pull handed out whole (of `range`, when the request
    /// asked for one), marked `redirected`: the registry does not see the
    /// transfer itself.
    pub async fn blob_redirect(
        &self,
        context: &RequestContext,
        repo: &RepoName,
        digest: &Digest,
        size: u64,
        range: Option<Range<u64>>,
    ) -> Result<Option<String>> {
        let Some(lifetime) = self.config.presigned_redirects else {
            return Ok(None);
        };
        let url = match self
            .storage
            .presigned_get(&layout::blob(digest), lifetime)
            .await
        {
            Err(storage::StorageError::NotFound(_)) => {
                return Err(RegistryError::BlobUnknown(digest.to_string()));
            }
            other => other?,
        };
        if url.is_some() {
            let mut event = Event::new(Action::Pull, Target::Blob, repo, digest, context);
            event.media_type = self.blob_types.get(digest);
            event.size = Some(size);
            event.transfer = Some(Transfer {
                bytes_sent: 0,
                completed: true,
                range: range.map(ByteRange::from),
                redirected: true,
            });
            self.announce(event);
        }
        Ok(url)
    }

    /// A presigned URL of the bucket for blob `digest` of `repo`, valid for
    /// `lifetime`, when the storage can make one (S3); `None` otherwise.
    /// For callers that checked access themselves (the catalog, after a
    /// license check); nothing is announced, as the URL is only offered.
    pub async fn presigned_blob_url(
        &self,
        repo: &RepoName,
        digest: &Digest,
        lifetime: std::time::Duration,
    ) -> Result<Option<String>> {
        if !self.storage.can_presign() {
            return Ok(None);
        }
        self.blob_size(repo, digest).await?;
        match self
            .storage
            .presigned_get(&layout::blob(digest), lifetime)
            .await
        {
            Err(storage::StorageError::NotFound(_)) => {
                Err(RegistryError::BlobUnknown(digest.to_string()))
            }
            other => Ok(other?),
        }
    }

    /// Streams a blob (or a range of it) that `blob_size` found.
    async fn read_blob(&self, digest: &Digest, range: Option<Range<u64>>) -> Result<ByteStream> {
        match self.storage.get(&layout::blob(digest), range).await {
            Err(storage::StorageError::NotFound(_)) => {
                Err(RegistryError::BlobUnknown(digest.to_string()))
            }
            other => Ok(other?),
        }
    }

    /// Makes an existing blob readable through `repo`.
    ///
    /// Under the sweep lock, the content is checked to be there after the
    /// link is written: a garbage collection that removed it just before
    /// (it was garbage until this link) makes this fail instead of
    /// acknowledging a blob that is gone.
    pub(crate) async fn link_blob(&self, repo: &RepoName, digest: &Digest) -> Result<()> {
        let _linking = self.sweep.read().await;
        let link = layout::blob_link(repo, digest);
        self.storage.put(&link, Bytes::new()).await?;
        if self.storage.head(&layout::blob(digest)).await?.is_none() {
            self.storage.delete(&link).await?;
            return Err(RegistryError::Busy(format!(
                "{digest} was garbage-collected while it was being linked; upload it again"
            )));
        }
        self.mark_repository(repo).await
    }

    async fn mark_repository(&self, repo: &RepoName) -> Result<()> {
        let marker = layout::repository_marker(repo);
        if self.storage.head(&marker).await?.is_none() {
            self.storage.put(&marker, Bytes::new()).await?;
        }
        Ok(())
    }

    /// Mounts `digest` from `from` into `repo` if `from` links it. Returns
    /// whether it did; the caller opens a normal upload otherwise.
    pub async fn mount_blob(
        &self,
        context: &RequestContext,
        repo: &RepoName,
        digest: &Digest,
        from: &RepoName,
    ) -> Result<bool> {
        let size = match self.blob_size(from, digest).await {
            Ok(size) => size,
            Err(RegistryError::BlobUnknown(_)) => return Ok(false),
            Err(e) => return Err(e),
        };
        self.link_blob(repo, digest).await?;
        let mut event = Event::new(Action::Push, Target::Blob, repo, digest, context);
        event.media_type = self.blob_types.get(digest);
        event.size = Some(size);
        self.announce(event);
        Ok(true)
    }

    /// Unlinks a blob from `repo`. The bytes stay while other repositories
    /// may link them; reclaiming them is garbage collection's job.
    pub async fn delete_blob(
        &self,
        context: &RequestContext,
        repo: &RepoName,
        digest: &Digest,
    ) -> Result<()> {
        self.ensure_delete_enabled()?;
        // A manifest PUT checks the blobs it names under this lock too.
        let _writing = self.writes.lock(repo).await;
        self.blob_size(repo, digest).await?;
        self.storage
            .delete(&layout::blob_link(repo, digest))
            .await?;
        self.announce(Event::new(
            Action::Delete,
            Target::Blob,
            repo,
            digest,
            context,
        ));
        Ok(())
    }

    // ---- manifests ---------------------------------------------------

    /// Looks up a manifest by tag or digest.
    pub async fn manifest_info(
        &self,
        repo: &RepoName,
        reference: &Reference,
    ) -> Result<ManifestInfo> {
        let cache_key = reference.to_string();
        if let Some(info) = self.cache.get(repo, &cache_key) {
            return Ok(info);
        }
        // Taken before storage is read: a change that lands meanwhile
        // keeps this lookup out of the cache.
        let seen = self.cache.generation(repo);
        let unknown = || RegistryError::ManifestUnknown(reference.to_string());
        let digest = match reference {
            Reference::Digest(d) => d.clone(),
            Reference::Tag(t) => {
                let raw = storage::read_small(&*self.storage, &layout::tag(repo, t), 1024)
                    .await?
                    .ok_or_else(unknown)?;
                let text = std::str::from_utf8(&raw).map_err(|_| unknown())?;
                Digest::parse(text.trim()).map_err(|_| unknown())?
            }
        };
        let media_type =
            storage::read_small(&*self.storage, &layout::manifest_link(repo, &digest), 1024)
                .await?
                .ok_or_else(unknown)?;
        let size = self
            .storage
            .head(&layout::blob(&digest))
            .await?
            .ok_or_else(unknown)?;
        let info = ManifestInfo {
            digest,
            media_type: String::from_utf8_lossy(&media_type).into_owned(),
            size,
        };
        self.cache.insert(repo, seen, cache_key, info.clone());
        Ok(info)
    }

    /// `HEAD` of a manifest: [`Self::manifest_info`], announced.
    pub async fn head_manifest(
        &self,
        context: &RequestContext,
        repo: &RepoName,
        reference: &Reference,
    ) -> Result<ManifestInfo> {
        let info = self.manifest_info(repo, reference).await?;
        self.announce(self.manifest_event(Action::Head, context, repo, reference, &info));
        Ok(info)
    }

    /// A manifest by tag or digest, with its bytes, for whoever `context`
    /// names; announced as a pull. The media types it gives its blobs are
    /// noted for the pulls of those blobs.
    pub async fn pull_manifest(
        &self,
        context: &RequestContext,
        repo: &RepoName,
        reference: &Reference,
    ) -> Result<(ManifestInfo, Bytes)> {
        let info = self.manifest_info(repo, reference).await?;
        let body = self.manifest_bytes(&info).await?;
        if !self.blob_types.knows_manifest(&info.digest)
            && let Ok(parsed) = manifest::parse(Some(&info.media_type), &body)
        {
            self.blob_types.note(&info.digest, &parsed);
        }
        self.announce(self.manifest_event(Action::Pull, context, repo, reference, &info));
        Ok((info, body))
    }

    fn manifest_event(
        &self,
        action: Action,
        context: &RequestContext,
        repo: &RepoName,
        reference: &Reference,
        info: &ManifestInfo,
    ) -> Event {
        let mut event = Event::new(action, Target::Manifest, repo, &info.digest, context);
        if let Reference::Tag(t) = reference {
            event.tag = Some(t.to_string());
        }
        event.media_type = Some(info.media_type.clone());
        event.size = Some(info.size);
        event
    }

    /// The bytes of a manifest found by `manifest_info`.
    async fn manifest_bytes(&self, info: &ManifestInfo) -> Result<Bytes> {
        if let Some(body) = self.bodies.get(&info.digest) {
            return Ok(body);
        }
        let body = storage::read_small(
            &*self.storage,
            &layout::blob(&info.digest),
            MAX_MANIFEST_BYTES as u64,
        )
        .await?
        .ok_or_else(|| RegistryError::ManifestUnknown(info.digest.to_string()))?;
        self.bodies.insert(&info.digest, &body);
        Ok(body)
    }

    /// Validates and stores a manifest under `reference`.
    ///
    /// Order matters for readers: the content, then its records in the
    /// order [`Self::write_manifest_records`] explains, the tag last. A
    /// failure part-way (a full disk) rolls the records back, so a PUT that
    /// was not acknowledged leaves nothing visible.
    ///
    /// The work runs on a task of its own, holding the repository's lock
    /// shared with other additions (see `repo_lock.rs`): dropping the
    /// returned future (a client that disconnects) does not stop it
    /// half-way, so the write, the cache invalidation and the push event
    /// happen together or not at all.
    pub async fn put_manifest(
        self: &Arc<Self>,
        context: &RequestContext,
        repo: &RepoName,
        reference: &Reference,
        content_type: Option<&str>,
        body: Bytes,
    ) -> Result<StoredManifest> {
        let (this, repo, reference) = (self.clone(), repo.clone(), reference.clone());
        let content_type = content_type.map(str::to_owned);
        let context = context.clone();
        run_to_completion(async move {
            let _writing = this.writes.lock(&repo).await;
            // The body it stores or finds, and the records naming it, are
            // written before a garbage collection's sweep can look.
            let _recording = this.sweep.read().await;
            this.store_manifest(&context, &repo, &reference, content_type.as_deref(), body)
                .await
        })
        .await
    }

    async fn store_manifest(
        &self,
        context: &RequestContext,
        repo: &RepoName,
        reference: &Reference,
        content_type: Option<&str>,
        body: Bytes,
    ) -> Result<StoredManifest> {
        if body.len() > MAX_MANIFEST_BYTES {
            return Err(RegistryError::TooLarge(format!(
                "manifests are limited to {MAX_MANIFEST_BYTES} bytes"
            )));
        }
        let algorithm = match reference {
            Reference::Digest(d) => d.algorithm(),
            Reference::Tag(_) => Algorithm::Sha256,
        };
        let digest = Hasher::digest(algorithm, &body);
        if let Reference::Digest(expected) = reference
            && *expected != digest
        {
            return Err(RegistryError::DigestInvalid(format!(
                "manifest content has digest {digest}, not {expected}"
            )));
        }
        let parsed = manifest::parse(content_type, &body)?;
        self.check_references(repo, &parsed).await?;

        let size = body.len() as u64;
        // The repository is marked first: a marker for content that then
        // failed to arrive lists an empty repository, which is harmless.
        self.mark_repository(repo).await?;
        // Content is addressed by digest, so what is there is what we have:
        // re-tagging an existing manifest writes only the tag.
        let blob = layout::blob(&digest);
        if self.storage.head(&blob).await? != Some(size) {
            self.storage.put(&blob, body).await?;
        }
        let mut written = Vec::new();
        let indexed = self
            .write_manifest_records(repo, reference, &digest, &parsed, size, &mut written)
            .await;
        if let Err(e) = indexed {
            self.roll_back(&written).await;
            self.cache.invalidate(repo);
            return Err(e);
        }
        let tag = match reference {
            Reference::Tag(t) => Some(t.to_string()),
            Reference::Digest(_) => None,
        };
        self.cache.invalidate(repo);
        self.blob_types.note(&digest, &parsed);

        let mut event = Event::new(Action::Push, Target::Manifest, repo, &digest, context);
        event.tag = tag;
        event.media_type = Some(parsed.media_type);
        event.size = Some(size);
        self.announce(event);
        Ok(StoredManifest {
            digest,
            subject: parsed.subject.map(|s| s.digest),
        })
    }

    /// Writes the records that make a stored manifest body part of `repo`,
    /// in the order that keeps every crash and failure invisible: the
    /// referrer record (ignored by [`Self::referrers`] until the manifest
    /// record exists), the manifest record (from then on it is readable by
    /// digest, with its referrer listed), and the tag last (so a tag never
    /// names what is not there). Each record this call created is pushed
    /// on `written`, for [`Self::roll_back`] should a later one fail.
    async fn write_manifest_records(
        &self,
        repo: &RepoName,
        reference: &Reference,
        digest: &Digest,
        parsed: &manifest::Manifest,
        size: u64,
        written: &mut Vec<storage::Key>,
    ) -> Result<()> {
        if let Some(subject) = &parsed.subject {
            let key = layout::referrer(repo, &subject.digest, digest);
            if self.storage.head(&key).await?.is_none() {
                let record = Descriptor {
                    media_type: parsed.media_type.clone(),
                    digest: digest.clone(),
                    size,
                    artifact_type: parsed.artifact_type.clone(),
                    annotations: parsed.annotations.clone(),
                    urls: None,
                    platform: None,
                };
                let json =
                    serde_json::to_vec(&record).map_err(|e| storage::StorageError::Io(e.into()))?;
                self.storage.put(&key, json.into()).await?;
                written.push(key);
            }
        }
        let link = layout::manifest_link(repo, digest);
        if self.storage.head(&link).await?.is_none() {
            self.storage
                .put(&link, Bytes::from(parsed.media_type.clone()))
                .await?;
            written.push(link);
        }
        if let Reference::Tag(t) = reference {
            // A put replaces the old tag atomically: when it fails, the tag
            // still names what it named before.
            self.storage
                .put(&layout::tag(repo, t), Bytes::from(digest.to_string()))
                .await?;
        }
        Ok(())
    }

    /// Deletes the records a failed manifest PUT wrote, newest first, so
    /// that a failure leaves the repository as it was. (The body stays
    /// under `blobs/`: other repositories may be storing the same content.)
    async fn roll_back(&self, written: &[storage::Key]) {
        for key in written.iter().rev() {
            if let Err(e) = self.storage.delete(key).await {
                tracing::warn!(%key, error = %e, "could not roll back a failed manifest write");
            }
        }
    }

    /// Checks that every descriptor of `parsed` names content of `repo` and
    /// declares its stored size: config and layers must be linked blobs,
    /// index entries manifests of `repo`, and a subject, when it is here,
    /// must have its size too. A wrong size would otherwise be served to
    /// every client that trusts the descriptor (as `Content-Length`, say).
    async fn check_references(&self, repo: &RepoName, parsed: &manifest::Manifest) -> Result<()> {
        // Foreign layers may be elsewhere only where that is allowed.
        let foreign: &[Descriptor] = if self.config.allow_foreign_layers {
            &[]
        } else {
            &parsed.foreign
        };
        for blob in parsed.blobs.iter().chain(foreign) {
            self.check_reference(&layout::blob_link(repo, &blob.digest), blob)
                .await?;
        }
        for child in &parsed.manifests {
            self.check_reference(&layout::manifest_link(repo, &child.digest), child)
                .await?;
        }
        // A subject may be pushed after its referrers; only one that is
        // here can be checked.
        if let Some(subject) = &parsed.subject
            && self
                .storage
                .head(&layout::manifest_link(repo, &subject.digest))
                .await?
                .is_some()
        {
            self.check_size(subject).await?;
        }
        Ok(())
    }

    /// `MANIFEST_BLOB_UNKNOWN` unless `link` exists, then [`Self::check_size`].
    async fn check_reference(&self, link: &storage::Key, descriptor: &Descriptor) -> Result<()> {
        if self.storage.head(link).await?.is_none() {
            return Err(RegistryError::ManifestBlobUnknown(
                descriptor.digest.to_string(),
            ));
        }
        self.check_size(descriptor).await
    }

    /// `SIZE_INVALID` unless the stored content of `descriptor` has the
    /// size it declares.
    async fn check_size(&self, descriptor: &Descriptor) -> Result<()> {
        match self.storage.head(&layout::blob(&descriptor.digest)).await? {
            Some(size) if size == descriptor.size => Ok(()),
            Some(size) => Err(RegistryError::SizeInvalid(format!(
                "descriptor {} declares {} bytes, but the content holds {size}",
                descriptor.digest, descriptor.size
            ))),
            None => Err(RegistryError::ManifestBlobUnknown(
                descriptor.digest.to_string(),
            )),
        }
    }

    /// Deletes a tag (by tag) or a manifest with every tag pointing at it
    /// and its referrer record (by digest). Like [`put_manifest`]
    /// (Self::put_manifest), it runs on a task of its own; it holds the
    /// repository's lock alone, so no PUT checks what it removes.
    pub async fn delete_manifest(
        self: &Arc<Self>,
        context: &RequestContext,
        repo: &RepoName,
        reference: &Reference,
    ) -> Result<()> {
        self.ensure_delete_enabled()?;
        let (this, repo, reference) = (self.clone(), repo.clone(), reference.clone());
        let context = context.clone();
        run_to_completion(async move {
            let _writing = this.writes.lock(&repo).await;
            this.remove_manifest(&context, &repo, &reference).await
        })
        .await
    }

    async fn remove_manifest(
        &self,
        context: &RequestContext,
        repo: &RepoName,
        reference: &Reference,
    ) -> Result<()> {
        let info = self.manifest_info(repo, reference).await?;
        let mut event = Event::new(
            Action::Delete,
            Target::Manifest,
            repo,
            &info.digest,
            context,
        );
        event.media_type = Some(info.media_type.clone());
        match reference {
            Reference::Tag(tag) => {
                self.storage.delete(&layout::tag(repo, tag)).await?;
                event.tag = Some(tag.to_string());
            }
            Reference::Digest(digest) => {
                for tag in self.tags(repo).await? {
                    let tag = Tag::parse(&tag)?;
                    if self
                        .manifest_info(repo, &Reference::Tag(tag.clone()))
                        .await
                        .ok()
                        .map(|i| i.digest)
                        == Some(digest.clone())
                    {
                        self.storage.delete(&layout::tag(repo, &tag)).await?;
                    }
                }
                // The manifest record goes before the referrer record (the
                // reverse of a PUT), so a crash in between leaves a record
                // that `referrers` ignores, never a listed ghost.
                self.storage
                    .delete(&layout::manifest_link(repo, digest))
                    .await?;
                // The subject is read back from the stored manifest itself.
                if let Ok(body) = self.manifest_bytes(&info).await
                    && let Ok(parsed) = manifest::parse(Some(&info.media_type), &body)
                    && let Some(subject) = parsed.subject
                {
                    self.storage
                        .delete(&layout::referrer(repo, &subject.digest, digest))
                        .await?;
                }
            }
        }
        self.cache.invalidate(repo);
        self.announce(event);
        Ok(())
    }

    // ---- listings ----------------------------------------------------

    /// All tags of `repo`, sorted; `NAME_UNKNOWN` for a repository that
    /// was never pushed to.
    pub async fn tags(&self, repo: &RepoName) -> Result<Vec<String>> {
        if self
            .storage
            .head(&layout::repository_marker(repo))
            .await?
            .is_none()
        {
            return Err(RegistryError::NameUnknown(repo.to_string()));
        }
        let mut tags = self.storage.list(&layout::tags(repo)).await?;
        tags.retain(|t| Tag::parse(t).is_ok());
        tags.sort();
        Ok(tags)
    }

    /// All repositories, sorted.
    pub async fn repositories(&self) -> Result<Vec<String>> {
        let mut names: Vec<String> = self
            .storage
            .list(&layout::repository_index())
            .await?
            .iter()
            .filter_map(|f| layout::repository_from_marker(f))
            .map(|n| n.to_string())
            .collect();
        names.sort();
        Ok(names)
    }

    /// The descriptors of the manifests in `repo` whose subject is
    /// `subject`, sorted by digest, optionally only those of `artifact_type`.
    pub async fn referrers(
        &self,
        repo: &RepoName,
        subject: &Digest,
        artifact_type: Option<&str>,
    ) -> Result<Vec<Descriptor>> {
        let dir = layout::referrers(repo, subject);
        let mut found = Vec::new();
        for file in self.storage.list(&dir).await? {
            let Some(digest) = layout::referrer_digest(&file) else {
                continue;
            };
            // A record is written before its manifest's record, and outlives
            // it on delete, so that no crash leaves a manifest unlisted; until
            // the manifest record exists the referrer is not here.
            if self
                .storage
                .head(&layout::manifest_link(repo, &digest))
                .await?
                .is_none()
            {
                continue;
            }
            let key = layout::referrer(repo, subject, &digest);
            let Some(raw) =
                storage::read_small(&*self.storage, &key, MAX_MANIFEST_BYTES as u64).await?
            else {
                continue;
            };
            match serde_json::from_slice::<Descriptor>(&raw) {
                Ok(d) if artifact_type.is_none_or(|t| d.artifact_type.as_deref() == Some(t)) => {
                    found.push(d)
                }
                Ok(_) => {}
                Err(e) => tracing::warn!(%key, error = %e, "skipping unreadable referrer record"),
            }
        }
        found.sort_by(|a, b| a.digest.cmp(&b.digest));
        Ok(found)
    }
}

/// Runs `work` on a task of its own and waits for it, so that dropping the
/// waiting future does not cancel `work` part-way through.
async fn run_to_completion<T: Send + 'static>(
    work: impl Future<Output = Result<T>> + Send + 'static,
) -> Result<T> {
    match tokio::spawn(work).await {
        Ok(result) => result,
        Err(e) if e.is_panic() => std::panic::resume_unwind(e.into_panic()),
        Err(e) => Err(storage::StorageError::Io(std::io::Error::other(e)).into()),
    }
}
