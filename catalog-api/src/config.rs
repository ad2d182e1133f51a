//! Catalog settings. Defaults run everything embedded with no
//! configuration; the `rbee-catalog` binary (`catalog-api/cli/`) maps
//! flags and environment variables onto it.

use std::net::SocketAddr;
use std::path::PathBuf;

use rbee_registry::limits::ServerLimits;

use crate::analytics::AnalyticsConfig;
use crate::rate_limit::RateLimit;

use crate::catalog::CacheTtls;
use crate::tokens::TokenConfig;
use crate::upstream::UpstreamOptions;

/// The origins rbee's own catalog lets call it from a browser: rbee's
/// local UIs (hive UI 7845, keeper 7843, queen 7844, commercial site
/// 7822, marketplace 7823), by `localhost` and by `127.0.0.1`. rbee-hive's
/// web UI reads `/workers` from the browser, so without these it sees
/// nothing. They are loopback origins: a remote site cannot use them.
pub const DEFAULT_CORS_ORIGINS: [&str; 10] = [
    "http://localhost:7845",
    "http://localhost:7843",
    "http://localhost:7844",
    "http://localhost:7822",
    "http://localhost:7823",
    "http://127.0.0.1:7845",
    "http://127.0.0.1:7843",
    "http://127.0.0.1:7844",
    "http://127.0.0.1:7822",
    "http://127.0.0.1:7823",
];

/// How the catalog server runs.
#[derive(Debug, Clone)]
pub struct CatalogConfig {
    /// Address to listen on; rbee-hive's default is `127.0.0.1:8787`.
    pub listen: SocketAddr,
    /// Where the embedded registry keeps its data (`<data_dir>/registry`).
    pub data_dir: PathBuf,
    /// An external registry to read from instead of the embedded one.
    pub registry_url: Option<String>,
    /// Credentials for the external registry.
    pub registry_credentials: Option<(String, String)>,
    /// The embedded registry's bucket, when it keeps its content in
    /// S3-compatible storage instead of `<data_dir>/registry` (so several
    /// catalog nodes can serve one registry).
    pub registry_s3: Option<rbee_registry::storage::S3Options>,
    /// Answer the embedded registry's blob GET/HEAD with a 307 to a
    /// presigned URL of the bucket, valid this long (S3 only).
    pub presigned_redirects: Option<std::time::Duration>,
    /// Public base URL of this server, used in download URLs; defaults to
    /// `http://<listen address>`.
    pub public_url: Option<String>,
    /// Repository of the catalog index artifact.
    pub catalog_repository: String,
    /// Cache lifetimes.
    pub ttls: CacheTtls,
    /// Deadlines of reads from the registry.
    pub upstream: UpstreamOptions,
    /// Origins allowed by CORS: [`DEFAULT_CORS_ORIGINS`] unless changed
    /// (e.g. to add the marketplace site). Empty strings and `none` are
    /// left out, so `["none"]` allows no origin.
    pub cors_origins: Vec<String>,
    /// Shared secret for `POST /v1/webhooks/registry`; unset disables it.
    pub webhook_secret: Option<String>,
    /// The catalog's database (licenses, keys, audit log): `sqlite://PATH`
    /// or `postgres://...`; `None`: SQLite in `<data_dir>/catalog.db`.
    pub database_url: Option<String>,
    /// What clients may hold: connections, time to send headers and
    /// bodies, memory for buffered bodies (webhook payloads and the
    /// embedded registry's manifests share one budget).
    pub limits: ServerLimits,
    /// Per-client-address limit of `/token`, license verification,
    /// downloads and `/admin`.
    pub rate_limit: RateLimit,
    /// The token service (`/token`) and the embedded registry's gate.
    pub tokens: TokenConfig,
    /// Download analytics: the queue, batches, retention, stats cache.
    pub analytics: AnalyticsConfig,
    /// Serve listings from the catalog's view in the database (kept fresh
    /// from registry events and the webhook, reconciled with the registry;
    /// `domain/view`). On by default; off (`serve --no-catalog-view`):
    /// walk the registry for every listing, keeping nothing of it in the
    /// database.
    pub catalog_view: bool,
}

impl CatalogConfig {
    /// Embedded defaults with data in `data_dir`.
    pub fn new(data_dir: impl Into<PathBuf>) -> Self {
        CatalogConfig {
            listen: SocketAddr::from(([127, 0, 0, 1], 8787)),
            data_dir: data_dir.into(),
            registry_url: None,
            registry_credentials: None,
            registry_s3: None,
            presigned_redirects: None,
            public_url: None,
            catalog_repository: "rbee/catalog".into(),
            ttls: CacheTtls::default(),
            upstream: UpstreamOptions::default(),
            cors_origins: DEFAULT_CORS_ORIGINS.map(str::to_owned).to_vec(),
            webhook_secret: None,
            database_url: None,
            limits: ServerLimits::default(),
            rate_limit: RateLimit::default(),
            tokens: TokenConfig::default(),
            analytics: AnalyticsConfig::default(),
            catalog_view: true,
        }
    }
}
