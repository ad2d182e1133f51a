//! Registry settings. Every field has a default that works with no
//! configuration at all; `main.rs` maps flags and environment onto it.

use std::path::PathBuf;
use std::time::Duration;

use crate::gate::AccessConfig;
use crate::limits::ServerLimits;
use crate::storage::S3Options;

/// How the registry behaves.
#[derive(Debug, Clone)]
pub struct RegistryConfig {
    /// Where blobs, manifests and upload sessions are kept (unless `s3`
    /// is set).
    pub data_dir: PathBuf,
    /// Keep everything in an S3-compatible bucket instead of `data_dir`.
    pub s3: Option<S3Options>,
    /// Answer blob GET and HEAD with a 307 to a presigned URL of the
    /// bucket, valid this long, when the storage can make one (S3); `None`
    /// serves the bytes through the registry.
    pub presigned_redirects: Option<Duration>,
    /// Whether DELETE of manifests, tags and blobs is allowed. When off,
    /// those requests get 405 `UNSUPPORTED`.
    pub delete_enabled: bool,
    /// How long an upload session may stay open before it is purged.
    pub upload_ttl: Duration,
    /// How long a manifest lookup (tag -> digest, media type, size) is
    /// served from memory. Writes through this process invalidate at once;
    /// the TTL only matters when another process writes the same storage.
    pub manifest_cache_ttl: Duration,
    /// What clients may hold: connections, time to send headers and
    /// bodies, memory for buffered manifests.
    pub limits: ServerLimits,
    /// How many upload sessions may be open at once. Each holds a staging
    /// file on disk until it is finished, cancelled or purged, so this caps
    /// what clients can leave behind; past it, opening an upload answers
    /// 503 `UNAVAILABLE` with `Retry-After`, like the server's other limits.
    pub max_upload_sessions: usize,
    /// Who may pull, push and delete: the token service trusted, public
    /// namespaces, the development switch. The default accepts no tokens,
    /// so it serves reads of public namespaces and refuses every write.
    pub access: AccessConfig,
    /// Whether a manifest may name non-distributable ("foreign") layers it
    /// does not hold: layers of a non-distributable media type with `urls`
    /// (the OCI `...layer.nondistributable...` types and Docker's
    /// `...rootfs.foreign...`). Off by default: every layer must be in the
    /// repository, `urls` or not, so nothing a manifest names can be
    /// missing when it is pulled.
    pub allow_foreign_layers: bool,
}

impl RegistryConfig {
    /// The defaults, with data kept in `data_dir`.
    pub fn new(data_dir: impl Into<PathBuf>) -> Self {
        RegistryConfig {
            data_dir: data_dir.into(),
            s3: None,
            presigned_redirects: None,
            delete_enabled: true,
            upload_ttl: Duration::from_secs(24 * 3600),
            manifest_cache_ttl: Duration::from_secs(30),
            limits: ServerLimits::default(),
            max_upload_sessions: 1000,
            access: AccessConfig::default(),
            allow_foreign_layers: false,
        }
    }
}

/// The default lifetime of a presigned URL.
pub const PRESIGNED_DEFAULT: Duration = Duration::from_secs(20 * 60);
/// The longest lifetime S3 signatures (SigV4) allow.
pub const PRESIGNED_MAX: Duration = Duration::from_secs(7 * 24 * 3600);
