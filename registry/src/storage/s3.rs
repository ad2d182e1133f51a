//! The S3 backend: objects in a bucket of AWS S3, Cloudflare R2, MinIO or
//! any S3-compatible store, through the `object_store` crate (which signs
//! requests, retries and pools connections).
//!
//! Keys map to `<prefix>/<key>` in the bucket. `put` is one `PutObject`,
//! atomic by S3's own rules. Uploads are S3 multipart uploads whose parts
//! all have one size ([`S3Options::part_size`], at least 5 MiB: R2 refuses
//! unequal parts): a write gathers at most one part in memory, sends it,
//! and keeps what is left over (less than a part) in a `tail-<size>`
//! object of the session until the next write, so no process holds state
//! between requests. The tail object is named after the size it ends at:
//! a write that lands but whose caller dies before recording the new state
//! leaves the recorded state's tail untouched.
//!
//! **Committed uploads are pointers.** A multipart upload is completed
//! into a key of its own, `<prefix>/_data/<uuid>`, and the committed key
//! (e.g. `blobs/sha256/..`) becomes a small JSON object of content type
//! [`POINTER_TYPE`] naming it. S3 has no rename, and a server-side copy
//! of a blob over 5 GiB needs a multipart copy that R2 refuses; a pointer
//! makes `commit_upload` and `rename` cost one small PUT whatever the size,
//! and the digest key still appears atomically. `head`, `get`, `delete`
//! and `presigned_get` follow pointers; an upload that never reached a
//! whole part is stored as a plain object instead.

use std::io;
use std::ops::Range;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use bytes::{Bytes, BytesMut};
use futures_util::{StreamExt, TryStreamExt};
use object_store::aws::{AmazonS3, AmazonS3Builder};
use object_store::multipart::{MultipartStore, PartId};
use object_store::path::Path;
use object_store::signer::Signer;
use object_store::{
    Attribute, Attributes, ClientOptions, GetOptions, GetRange, ObjectStore, ObjectStoreExt,
    PutOptions, PutPayload, RetryConfig,
};
use serde::{Deserialize, Serialize};

use super::{ByteStream, Key, Multipart, Result, Storage, StorageError, UploadParts};

/// The content type that marks an object as a pointer to a committed
/// upload's data.
pub const POINTER_TYPE: &str = "application/vnd.rbee.storage.pointer.v1+json";
/// The smallest part S3 and R2 accept (but for the last one).
pub const MIN_PART_SIZE: usize = 5 << 20;
/// Where completed multipart uploads live, under the prefix.
const DATA_DIR: &str = "_data";

/// How to reach the bucket. Anything left `None` comes from the standard
/// `AWS_*` environment variables (`AWS_ACCESS_KEY_ID`,
/// `AWS_SECRET_ACCESS_KEY`, `AWS_SESSION_TOKEN`, `AWS_REGION`,
/// `AWS_ENDPOINT_URL`, ...), as `object_store` reads them.
#[derive(Debug, Clone)]
pub struct S3Options {
    /// The bucket.
    pub bucket: String,
    /// The key prefix in the bucket (no leading or trailing `/`; may be
    /// empty), so several registries can share one bucket.
    pub prefix: String,
    /// The endpoint, e.g. `https://<account>.r2.cloudflarestorage.com` or
    /// `http://127.0.0.1:9000`; AWS when unset.
    pub endpoint: Option<String>,
    /// The region (`auto` for R2).
    pub region: Option<String>,
    /// Credentials, when not from the environment.
    pub access_key_id: Option<String>,
    /// The secret of `access_key_id`.
    pub secret_access_key: Option<String>,
    /// Path-style addressing (`endpoint/bucket/key`) instead of virtual
    /// hosts (`bucket.endpoint/key`); MinIO and most local servers need it.
    pub path_style: bool,
    /// The size of every part of a multipart upload but the last.
    pub part_size: usize,
}

impl S3Options {
    /// Options for `s3://bucket/prefix`, everything else from the
    /// environment; `None` when `url` is not of that form.
    pub fn from_url(url: &str) -> Option<S3Options> {
        let rest = url.strip_prefix("s3://")?;
        let (bucket, prefix) = rest.split_once('/').unwrap_or((rest, ""));
        if bucket.is_empty() {
            return None;
        }
        Some(S3Options {
            bucket: bucket.to_owned(),
            prefix: prefix.trim_matches('/').to_owned(),
            endpoint: None,
            region: None,
            access_key_id: None,
            secret_access_key: None,
            path_style: false,
            part_size: 8 << 20,
        })
    }
}

/// Objects in an S3 bucket.
#[derive(Debug, Clone)]
pub struct S3Storage {
    store: Arc<AmazonS3>,
    prefix: Arc<str>,
    part_size: usize,
    /// `s3://bucket/prefix`, for messages.
    name: Arc<str>,
}

/// What a pointer object holds.
#[derive(Debug, Serialize, Deserialize)]
struct Pointer {
    /// The full path of the data in the bucket.
    target: String,
    size: u64,
}

fn unavailable(e: object_store::Error) -> StorageError {
    match e {
        object_store::Error::NotFound { path, .. } => StorageError::NotFound(path),
        other => StorageError::Unavailable(other.to_string()),
    }
}

fn corrupt(what: String) -> StorageError {
    StorageError::Io(io::Error::new(io::ErrorKind::InvalidData, what))
}

impl S3Storage {
    /// A client for the bucket `options` name. Nothing is sent yet; see
    /// [`Self::check`].
    pub fn new(options: &S3Options) -> Result<S3Storage> {
        if options.part_size < MIN_PART_SIZE {
            return Err(corrupt(format!(
                "the part size must be at least {MIN_PART_SIZE} bytes"
            )));
        }
        let mut builder = AmazonS3Builder::from_env().with_bucket_name(&options.bucket);
        if let Some(endpoint) = &options.endpoint {
            builder = builder.with_endpoint(endpoint);
        }
        // Plain HTTP only when the endpoint says so (a local MinIO or test
        // server), whether it came from the options or the environment.
        let allow_http = options
            .endpoint
            .clone()
            .or_else(|| std::env::var("AWS_ENDPOINT_URL").ok())
            .or_else(|| std::env::var("AWS_ENDPOINT").ok())
            .is_some_and(|e| e.starts_with("http://"));
        if let Some(region) = &options.region {
            builder = builder.with_region(region);
        }
        if let Some(id) = &options.access_key_id {
            builder = builder.with_access_key_id(id);
        }
        if let Some(secret) = &options.secret_access_key {
            builder = builder.with_secret_access_key(secret);
        }
        if options.path_style {
            builder = builder.with_virtual_hosted_style_request(false);
        }
        // Every read has a timeout, but a whole transfer does not: a 1 GiB
        // blob to a slow client may take minutes. Retries are bounded so a
        // dead bucket surfaces as a 503 within seconds, not minutes.
        let client = ClientOptions::new()
            .with_allow_http(allow_http)
            .with_connect_timeout(Duration::from_secs(10))
            .with_read_timeout(Duration::from_secs(60))
            .with_timeout_disabled();
        let retry = RetryConfig {
            max_retries: 3,
            retry_timeout: Duration::from_secs(15),
            ..RetryConfig::default()
        };
        let store = builder
            .with_client_options(client)
            .with_retry(retry)
            .build()
            .map_err(|e| StorageError::Unavailable(e.to_string()))?;
        let name = match options.prefix.as_str() {
            "" => format!("s3://{}", options.bucket),
            p => format!("s3://{}/{p}", options.bucket),
        };
        Ok(S3Storage {
            store: Arc::new(store),
            prefix: options.prefix.clone().into(),
            part_size: options.part_size,
            name: name.into(),
        })
    }

    /// Checks that the bucket answers and the credentials may list it, so
    /// a misconfiguration stops the process at start with a clear message.
    pub async fn check(&self) -> Result<()> {
        self.store
            .list_with_delimiter(Some(&self.path_str(DATA_DIR)?))
            .await
            .map(|_| ())
            .map_err(|e| StorageError::Unavailable(format!("{}: {e}", self.name)))
    }

    fn path_str(&self, key: &str) -> Result<Path> {
        let full = match &*self.prefix {
            "" => key.to_owned(),
            p => format!("{p}/{key}"),
        };
        Path::parse(full).map_err(|e| corrupt(format!("storage key {key}: {e}")))
    }

    fn path(&self, key: &Key) -> Result<Path> {
        self.path_str(key.as_str())
    }

    fn tail_key(session: &Key, size: u64) -> Key {
        session.child(&format!("tail-{size}"))
    }

    /// The object at `path`, resolved through a pointer when it is one:
    /// the path that holds the bytes and their size; `None` if absent.
    async fn resolve(&self, path: &Path) -> Result<Option<(Path, u64)>> {
        let head = match self
            .store
            .get_opts(
                path,
                GetOptions {
                    head: true,
                    ..GetOptions::default()
                },
            )
            .await
        {
            Ok(h) => h,
            Err(object_store::Error::NotFound { .. }) => return Ok(None),
            Err(e) => return Err(unavailable(e)),
        };
        if !is_pointer(&head.attributes) {
            return Ok(Some((path.clone(), head.meta.size)));
        }
        match self.read_pointer(path).await? {
            Some(p) => Ok(Some((
                Path::parse(&p.target).map_err(|e| corrupt(e.to_string()))?,
                p.size,
            ))),
            None => Ok(None),
        }
    }

    async fn read_pointer(&self, path: &Path) -> Result<Option<Pointer>> {
        let bytes = match self.store.get(path).await {
            Ok(r) => r.bytes().await.map_err(unavailable)?,
            Err(object_store::Error::NotFound { .. }) => return Ok(None),
            Err(e) => return Err(unavailable(e)),
        };
        serde_json::from_slice(&bytes)
            .map(Some)
            .map_err(|e| corrupt(format!("pointer {path}: {e}")))
    }

    async fn put_pointer(&self, to: &Key, pointer: &Pointer) -> Result<()> {
        let json = serde_json::to_vec(pointer).map_err(|e| corrupt(e.to_string()))?;
        let mut attributes = Attributes::new();
        attributes.insert(Attribute::ContentType, POINTER_TYPE.into());
        self.store
            .put_opts(
                &self.path(to)?,
                PutPayload::from(json),
                PutOptions {
                    attributes,
                    ..PutOptions::default()
                },
            )
            .await
            .map_err(unavailable)?;
        Ok(())
    }

    /// Reads the tail the upload left, checking its length.
    async fn read_tail(&self, session: &Key, upload: &UploadParts) -> Result<Bytes> {
        if upload.tail == 0 {
            return Ok(Bytes::new());
        }
        let key = Self::tail_key(session, upload.size);
        let bytes = self
            .store
            .get(&self.path(&key)?)
            .await
            .map_err(unavailable)?
            .bytes()
            .await
            .map_err(unavailable)?;
        if bytes.len() as u64 != upload.tail {
            return Err(corrupt(format!(
                "{key} holds {} bytes, the upload record says {}",
                bytes.len(),
                upload.tail
            )));
        }
        Ok(bytes)
    }

    /// Sends one part, starting the multipart upload first if need be.
    async fn send_part(&self, upload: &mut UploadParts, part: Bytes) -> Result<()> {
        let multipart = match &upload.multipart {
            Some(m) => m.clone(),
            None => {
                let target =
                    self.path_str(&format!("{DATA_DIR}/{}", uuid::Uuid::new_v4().simple()))?;
                let id = self
                    .store
                    .create_multipart(&target)
                    .await
                    .map_err(unavailable)?;
                let m = Multipart {
                    target: target.to_string(),
                    id,
                };
                upload.multipart = Some(m.clone());
                m
            }
        };
        let target = Path::parse(&multipart.target).map_err(|e| corrupt(e.to_string()))?;
        let PartId { content_id } = self
            .store
            .put_part(&target, &multipart.id, upload.parts.len(), part.into())
            .await
            .map_err(unavailable)?;
        upload.parts.push(content_id);
        Ok(())
    }

    async fn write_parts(
        &self,
        session: &Key,
        upload: &mut UploadParts,
        mut data: ByteStream,
    ) -> Result<()> {
        let mut buffer = BytesMut::with_capacity(self.part_size);
        buffer.extend_from_slice(&self.read_tail(session, upload).await?);
        let mut received = 0u64;
        while let Some(chunk) = data.next().await {
            let mut chunk = chunk.map_err(StorageError::Input)?;
            received += chunk.len() as u64;
            // Never more than one part (plus the chunk being split) in
            // memory: a full part is sent before more is read.
            while !chunk.is_empty() {
                let take = (self.part_size - buffer.len()).min(chunk.len());
                buffer.extend_from_slice(&chunk.split_to(take));
                if buffer.len() == self.part_size {
                    let part =
                        std::mem::replace(&mut buffer, BytesMut::with_capacity(self.part_size));
                    self.send_part(upload, part.freeze()).await?;
                }
            }
        }
        upload.size += received;
        upload.tail = buffer.len() as u64;
        if !buffer.is_empty() {
            self.store
                .put(
                    &self.path(&Self::tail_key(session, upload.size))?,
                    buffer.freeze().into(),
                )
                .await
                .map_err(unavailable)?;
        }
        Ok(())
    }
}

fn is_pointer(attributes: &Attributes) -> bool {
    attributes
        .get(&Attribute::ContentType)
        .is_some_and(|v| v.as_ref() == POINTER_TYPE)
}

#[async_trait]
impl Storage for S3Storage {
    async fn head(&self, key: &Key) -> Result<Option<u64>> {
        Ok(self.resolve(&self.path(key)?).await?.map(|(_, size)| size))
    }

    async fn modified(&self, key: &Key) -> Result<Option<std::time::SystemTime>> {
        match self.store.head(&self.path(key)?).await {
            Ok(meta) => Ok(Some(meta.last_modified.into())),
            Err(object_store::Error::NotFound { .. }) => Ok(None),
            Err(e) => Err(unavailable(e)),
        }
    }

    fn modified_resolution(&self) -> Duration {
        // `Last-Modified` is an HTTP date: whole seconds.
        Duration::from_secs(1)
    }

    async fn get(&self, key: &Key, range: Option<Range<u64>>) -> Result<ByteStream> {
        let (path, size) = self
            .resolve(&self.path(key)?)
            .await?
            .ok_or_else(|| StorageError::NotFound(key.to_string()))?;
        let range = range.unwrap_or(0..size);
        if range.start >= range.end {
            // S3 has no empty ranges; nothing to fetch.
            return Ok(Box::pin(futures_util::stream::empty()));
        }
        let result = self
            .store
            .get_opts(
                &path,
                GetOptions {
                    range: Some(GetRange::Bounded(range)),
                    ..GetOptions::default()
                },
            )
            .await
            .map_err(unavailable)?;
        Ok(Box::pin(
            result
                .into_stream()
                .map_err(|e| io::Error::other(e.to_string())),
        ))
    }

    async fn put(&self, key: &Key, data: Bytes) -> Result<()> {
        self.store
            .put(&self.path(key)?, data.into())
            .await
            .map_err(unavailable)?;
        Ok(())
    }

    async fn delete(&self, key: &Key) -> Result<()> {
        let path = self.path(key)?;
        // A pointer's data goes with it (deleted first: a pointer to
        // nothing would be worse than data nothing points to).
        if let Some((data, _)) = self.resolve(&path).await?
            && data != path
        {
            self.store.delete(&data).await.map_err(unavailable)?;
        }
        match self.store.delete(&path).await {
            Ok(()) | Err(object_store::Error::NotFound { .. }) => Ok(()),
            Err(e) => Err(unavailable(e)),
        }
    }

    async fn delete_prefix(&self, prefix: &Key) -> Result<()> {
        let base = self.path(prefix)?;
        let paths = self
            .store
            .list(Some(&base))
            .map_ok(|meta| meta.location)
            .boxed();
        let mut failed = self.store.delete_stream(paths);
        while let Some(result) = failed.next().await {
            match result {
                Ok(_) | Err(object_store::Error::NotFound { .. }) => {}
                Err(e) => return Err(unavailable(e)),
            }
        }
        Ok(())
    }

    async fn list(&self, prefix: &Key) -> Result<Vec<String>> {
        let listed = self
            .store
            .list_with_delimiter(Some(&self.path(prefix)?))
            .await
            .map_err(unavailable)?;
        Ok(listed
            .common_prefixes
            .iter()
            .chain(listed.objects.iter().map(|o| &o.location))
            .filter_map(|p| p.filename().map(str::to_owned))
            .collect())
    }

    async fn write_upload(
        &self,
        session: &Key,
        upload: &UploadParts,
        data: ByteStream,
    ) -> Result<UploadParts> {
        let mut next = upload.clone();
        let written = self.write_parts(session, &mut next, data).await;
        if let Err(e) = written {
            // A multipart upload started by this very write is not in any
            // record: abort it now rather than leave it to the lifecycle rule.
            if upload.multipart.is_none()
                && let Some(m) = &next.multipart
            {
                let _ = self.abort_upload(session, &next).await;
                tracing::debug!(target = %m.target, "aborted the multipart upload of a failed write");
            }
            return Err(e);
        }
        Ok(next)
    }

    async fn commit_upload(&self, session: &Key, upload: &UploadParts, to: &Key) -> Result<()> {
        let tail = self.read_tail(session, upload).await?;
        let Some(multipart) = upload.multipart.clone() else {
            // Never a whole part: small enough to be stored as itself.
            return self.put(to, tail).await;
        };
        let mut upload = upload.clone();
        if !tail.is_empty() {
            self.send_part(&mut upload, tail).await?;
        }
        let target = Path::parse(&multipart.target).map_err(|e| corrupt(e.to_string()))?;
        let parts = upload
            .parts
            .iter()
            .map(|id| PartId {
                content_id: id.clone(),
            })
            .collect();
        self.store
            .complete_multipart(&target, &multipart.id, parts)
            .await
            .map_err(unavailable)?;
        self.put_pointer(
            to,
            &Pointer {
                target: multipart.target,
                size: upload.size,
            },
        )
        .await
    }

    async fn abort_upload(&self, _session: &Key, upload: &UploadParts) -> Result<()> {
        let Some(m) = &upload.multipart else {
            return Ok(());
        };
        let target = Path::parse(&m.target).map_err(|e| corrupt(e.to_string()))?;
        match self.store.abort_multipart(&target, &m.id).await {
            Ok(()) | Err(object_store::Error::NotFound { .. }) => Ok(()),
            // Some servers answer an unknown upload id with another error;
            // a second abort must not fail, and a forgotten one is what
            // the bucket's lifecycle rule is for.
            Err(e) => {
                tracing::debug!(error = %e, "aborting a multipart upload failed");
                Ok(())
            }
        }
    }

    async fn rename(&self, from: &Key, to: &Key) -> Result<()> {
        let from_path = self.path(from)?;
        let (data, size) = self
            .resolve(&from_path)
            .await?
            .ok_or_else(|| StorageError::NotFound(from.to_string()))?;
        if data == from_path {
            // A plain object: only small ones are plain, so a copy is fine.
            self.store
                .copy(&from_path, &self.path(to)?)
                .await
                .map_err(unavailable)?;
        } else {
            self.put_pointer(
                to,
                &Pointer {
                    target: data.to_string(),
                    size,
                },
            )
            .await?;
        }
        // Only the old name goes, never the data it named.
        match self.store.delete(&from_path).await {
            Ok(()) | Err(object_store::Error::NotFound { .. }) => Ok(()),
            Err(e) => Err(unavailable(e)),
        }
    }

    fn can_presign(&self) -> bool {
        true
    }

    async fn presigned_get(&self, key: &Key, lifetime: Duration) -> Result<Option<String>> {
        let Some((path, _)) = self.resolve(&self.path(key)?).await? else {
            return Err(StorageError::NotFound(key.to_string()));
        };
        let url = self
            .store
            .signed_url(http::Method::GET, &path, lifetime)
            .await
            .map_err(unavailable)?;
        Ok(Some(url.to_string()))
    }
}
