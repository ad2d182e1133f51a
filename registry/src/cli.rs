//! Command-line flags shared by `rbee-registry serve`, `rbee-registry gc`
//! and `rbee-catalog serve`, declared once and flattened into each. Their
//! environment variables are named per binary by `rbee_config`
//! (`RBEE_REGISTRY_MAX_CONNECTIONS`, `RBEE_CATALOG_MAX_CONNECTIONS`;
//! `RBEE_REGISTRY_STORAGE`, `RBEE_CATALOG_STORAGE`).

use std::time::Duration;

use anyhow::Context;

use crate::config::{PRESIGNED_DEFAULT, PRESIGNED_MAX, RegistryConfig};
use crate::limits::ServerLimits;
use crate::storage::S3Options;

/// Where the registry keeps its content: the data directory (the
/// default), or an S3-compatible bucket. Credentials are never flags (they
/// would show in `ps`): `AWS_ACCESS_KEY_ID`, `AWS_SECRET_ACCESS_KEY` and
/// `AWS_SESSION_TOKEN`, as the other standard `AWS_*` variables
/// (`AWS_REGION`, `AWS_ENDPOINT_URL`), are read by `object_store`.
#[derive(Debug, Clone, clap::Args)]
pub struct StorageArgs {
    /// Keep everything in an S3-compatible bucket instead of the data
    /// directory: `s3://BUCKET/PREFIX` (AWS S3, Cloudflare R2, MinIO).
    /// Credentials come from AWS_ACCESS_KEY_ID / AWS_SECRET_ACCESS_KEY (and
    /// AWS_SESSION_TOKEN), never from flags; see docs/operations.md.
    #[arg(long, env)]
    pub storage: Option<String>,
    /// The S3 endpoint, e.g. https://ACCOUNT.r2.cloudflarestorage.com or
    /// http://127.0.0.1:9000 (also AWS_ENDPOINT_URL); AWS when unset.
    #[arg(long, env)]
    pub s3_endpoint: Option<String>,
    /// The S3 region (`auto` for R2; also AWS_REGION).
    #[arg(long, env)]
    pub s3_region: Option<String>,
    /// Path-style S3 addressing (ENDPOINT/BUCKET/KEY), which MinIO and most
    /// self-hosted servers need; virtual-hosted style otherwise.
    #[arg(long, env)]
    pub s3_path_style: bool,
    /// MiB in each part of a multipart upload (all parts but the last have
    /// this size; R2 requires equal parts). Each upload holds about one
    /// part in memory.
    #[arg(long, env, default_value_t = 8,
          value_parser = clap::value_parser!(u32).range(5..=512))]
    pub s3_part_size_mib: u32,
    /// Answer blob GET with 307 to a presigned URL of the bucket (S3 only),
    /// after the same access checks as a direct read (HEAD is answered
    /// directly).
    #[arg(long, env)]
    pub presigned_redirects: bool,
    /// Seconds a presigned URL stays valid (at most 7 days).
    #[arg(long, env, default_value_t = PRESIGNED_DEFAULT.as_secs(),
          value_parser = clap::value_parser!(u64).range(1..=PRESIGNED_MAX.as_secs()))]
    pub presigned_lifetime: u64,
}

impl StorageArgs {
    /// The bucket to use, when `--storage` names one.
    pub fn s3(&self) -> anyhow::Result<Option<S3Options>> {
        let Some(url) = &self.storage else {
            return Ok(None);
        };
        let mut options = S3Options::from_url(url).with_context(|| {
            format!("--storage {url}: expected s3://BUCKET or s3://BUCKET/PREFIX")
        })?;
        options.endpoint = self.s3_endpoint.clone();
        options.region = self.s3_region.clone();
        options.path_style = self.s3_path_style;
        options.part_size = (self.s3_part_size_mib as usize) << 20;
        Ok(Some(options))
    }

    /// How long presigned redirects live, when they are on; an error when
    /// they are asked for without a bucket (the filesystem cannot presign).
    pub fn presigned_redirects(&self) -> anyhow::Result<Option<Duration>> {
        if !self.presigned_redirects {
            return Ok(None);
        }
        anyhow::ensure!(
            self.storage.is_some(),
            "--presigned-redirects needs --storage s3://..."
        );
        Ok(Some(Duration::from_secs(self.presigned_lifetime)))
    }

    /// Sets `config`'s storage from these flags (checked as far as they can
    /// be without opening it).
    pub fn apply(&self, config: &mut RegistryConfig) -> anyhow::Result<()> {
        config.s3 = self.s3()?;
        config.presigned_redirects = self.presigned_redirects()?;
        Ok(())
    }

    /// Where the content is, for messages: the bucket's URL, or `data_dir`.
    pub fn place(&self, data_dir: &std::path::Path) -> String {
        match &self.storage {
            Some(url) => url.clone(),
            None => data_dir.display().to_string(),
        }
    }
}

/// The variables besides the flags' that a server reads, which `config
/// check` of both servers prints (`true`: a secret, shown only as set or
/// not): the standard AWS ones the S3 storage reads, and the log's.
pub const CHECKED_ENVIRONMENT: [(&str, bool); 7] = [
    ("AWS_ACCESS_KEY_ID", true),
    ("AWS_SECRET_ACCESS_KEY", true),
    ("AWS_SESSION_TOKEN", true),
    ("AWS_REGION", false),
    ("AWS_ENDPOINT_URL", false),
    ("RBEE_LOG", false),
    ("RBEE_LOG_FORMAT", false),
];

/// The flags of [`ServerLimits`].
#[derive(Debug, Clone, clap::Args)]
pub struct ServerLimitArgs {
    /// Connections served at once; more wait in the listen queue.
    #[arg(long, env, default_value_t = ServerLimits::default().max_connections as u32,
          value_parser = clap::value_parser!(u32).range(1..))]
    pub max_connections: u32,
    /// Seconds a client has to send a request's headers before the
    /// connection is closed (also the keep-alive idle time).
    #[arg(long, env, default_value_t = ServerLimits::default().header_read_timeout.as_secs(),
          value_parser = clap::value_parser!(u64).range(1..))]
    pub header_timeout: u64,
    /// Seconds a request body may send nothing before it is aborted.
    #[arg(long, env, default_value_t = ServerLimits::default().body_idle_timeout.as_secs(),
          value_parser = clap::value_parser!(u64).range(1..))]
    pub body_idle_timeout: u64,
    /// MiB that request bodies read into memory (manifests, webhook
    /// payloads) may hold in total; past it such requests get 503 with
    /// Retry-After. At least 4 (one manifest).
    #[arg(long, env, default_value_t = (ServerLimits::default().buffered_body_bytes >> 20) as u32,
          value_parser = clap::value_parser!(u32).range(4..))]
    pub body_memory_mib: u32,
    /// Seconds open requests get to finish after SIGTERM or Ctrl-C before
    /// they are dropped.
    #[arg(long, env, default_value_t = ServerLimits::default().shutdown_grace.as_secs())]
    pub shutdown_grace: u64,
}

impl ServerLimitArgs {
    /// The limits these flags ask for.
    pub fn limits(&self) -> ServerLimits {
        ServerLimits {
            max_connections: self.max_connections as usize,
            header_read_timeout: Duration::from_secs(self.header_timeout),
            body_idle_timeout: Duration::from_secs(self.body_idle_timeout),
            buffered_body_bytes: (self.body_memory_mib as usize) << 20,
            shutdown_grace: Duration::from_secs(self.shutdown_grace),
        }
    }
}
