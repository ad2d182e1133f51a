//! `rbee-catalog serve`: the catalog API and, unless `--registry-url`
//! points elsewhere, the embedded registry under `/v2/`; `--demo`
//! publishes the example worker once the server listens.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use anyhow::Context;
use rbee_catalog::CatalogConfig;
use rbee_catalog::catalog::CacheTtls;
use rbee_catalog::rate_limit::RateLimit;
use rbee_registry::limits::ServerLimits;

/// Flags of `serve` (each also an environment variable).
#[derive(clap::Args)]
pub struct Args {
    /// Address to listen on (rbee-hive's default catalog address).
    #[arg(long, env = "RBEE_CATALOG_LISTEN", default_value = "127.0.0.1:8787")]
    pub listen: SocketAddr,
    /// Folder for the embedded registry's data and the catalog's database.
    #[arg(long, env = "RBEE_CATALOG_DATA_DIR", default_value = "rbee-data")]
    data_dir: PathBuf,
    /// Read from this registry instead of the embedded one (e.g. https://ghcr.io).
    #[arg(long, env = "RBEE_CATALOG_REGISTRY_URL")]
    registry_url: Option<String>,
    /// User name for the external registry.
    #[arg(
        long,
        env = "RBEE_CATALOG_REGISTRY_USERNAME",
        requires = "registry_password"
    )]
    registry_username: Option<String>,
    /// Password or token for the external registry.
    #[arg(long, env = "RBEE_CATALOG_REGISTRY_PASSWORD", hide_env_values = true)]
    registry_password: Option<String>,
    /// Public base URL of this server, used in download URLs.
    #[arg(long, env = "RBEE_CATALOG_PUBLIC_URL")]
    public_url: Option<String>,
    /// Repository of the catalog index artifact.
    #[arg(long, env = "RBEE_CATALOG_REPOSITORY", default_value = "rbee/catalog")]
    catalog_repository: String,
    /// Seconds the worker list is cached.
    #[arg(long, env = "RBEE_CATALOG_INDEX_TTL", default_value_t = 300)]
    index_ttl: u64,
    /// Seconds worker metadata and releases are cached.
    #[arg(long, env = "RBEE_CATALOG_METADATA_TTL", default_value_t = 600)]
    metadata_ttl: u64,
    /// Seconds one read from the registry (a manifest, a small blob, a
    /// token) may take in all; also the deadline of one list.
    #[arg(long, env = "RBEE_CATALOG_UPSTREAM_TIMEOUT", default_value_t = 10)]
    upstream_timeout: u64,
    /// Origins allowed by CORS, comma-separated (e.g. https://rbee.dev);
    /// the default lets rbee's local UIs in; `none` allows no origin.
    #[arg(long, env = "RBEE_CATALOG_CORS_ORIGINS", value_delimiter = ',',
          default_values_t = rbee_catalog::config::DEFAULT_CORS_ORIGINS.map(String::from))]
    cors_origins: Vec<String>,
    /// Shared secret of POST /v1/webhooks/registry (disabled when unset).
    #[arg(long, env = "RBEE_CATALOG_WEBHOOK_SECRET", hide_env_values = true)]
    webhook_secret: Option<String>,
    /// The catalog's database (licenses, keys, audit log): sqlite://PATH or
    /// postgres://USER:PASSWORD@HOST/DB. Default: SQLite in
    /// <data dir>/catalog.db.
    #[arg(long, env = "RBEE_CATALOG_DATABASE_URL", hide_env_values = true)]
    database_url: Option<String>,
    /// Publish the example worker on first start.
    #[arg(long, env = "RBEE_CATALOG_DEMO")]
    pub demo: bool,
    /// Connections served at once; more wait in the listen queue.
    #[arg(long, env = "RBEE_CATALOG_MAX_CONNECTIONS", default_value_t = ServerLimits::default().max_connections as u32,
          value_parser = clap::value_parser!(u32).range(1..))]
    max_connections: u32,
    /// Seconds a client has to send a request's headers before the
    /// connection is closed (also the keep-alive idle time).
    #[arg(long, env = "RBEE_CATALOG_HEADER_TIMEOUT", default_value_t = ServerLimits::default().header_read_timeout.as_secs(),
          value_parser = clap::value_parser!(u64).range(1..))]
    header_timeout: u64,
    /// Seconds a request body may send nothing before it is aborted.
    #[arg(long, env = "RBEE_CATALOG_BODY_IDLE_TIMEOUT", default_value_t = ServerLimits::default().body_idle_timeout.as_secs(),
          value_parser = clap::value_parser!(u64).range(1..))]
    body_idle_timeout: u64,
    /// MiB that request bodies read into memory may hold in total; past it
    /// such requests get 503 with Retry-After. At least 4 (one manifest).
    #[arg(long, env = "RBEE_CATALOG_BODY_MEMORY_MIB", default_value_t = (ServerLimits::default().buffered_body_bytes >> 20) as u32,
          value_parser = clap::value_parser!(u32).range(4..))]
    body_memory_mib: u32,
    /// Seconds open requests get to finish after SIGTERM or Ctrl-C before
    /// they are dropped.
    #[arg(long, env = "RBEE_CATALOG_SHUTDOWN_GRACE", default_value_t = ServerLimits::default().shutdown_grace.as_secs())]
    shutdown_grace: u64,
    /// Requests per second one client address may make to /token, license
    /// verification, downloads and /admin (refilled continuously); 0 turns
    /// rate limiting off.
    #[arg(long, env = "RBEE_CATALOG_RATE_LIMIT_PER_SECOND", default_value_t = RateLimit::default().per_second)]
    rate_limit_per_second: u32,
    /// Requests one client address may make at once to those routes
    /// before it gets 429 with Retry-After.
    #[arg(long, env = "RBEE_CATALOG_RATE_LIMIT_BURST", default_value_t = RateLimit::default().burst,
          value_parser = clap::value_parser!(u32).range(1..))]
    rate_limit_burst: u32,
    /// Token signing key (PKCS#8 Ed25519, PEM or DER); default: generated
    /// into <data-dir>/tokens/signing-key.pk8 on first start.
    #[arg(long, env = "RBEE_CATALOG_TOKEN_SIGNING_KEY")]
    token_signing_key: Option<PathBuf>,
    /// The signing key being rotated out: still published and accepted,
    /// never used to sign; default: <data-dir>/tokens/previous-signing-key.pk8
    /// when it exists.
    #[arg(long, env = "RBEE_CATALOG_TOKEN_PREVIOUS_KEY")]
    token_previous_key: Option<PathBuf>,
    /// Registry service name (tokens' aud, challenges' service).
    #[arg(long, env = "RBEE_CATALOG_TOKEN_SERVICE", default_value = rbee_auth::token::DEFAULT_SERVICE)]
    token_service: String,
    /// Token issuer name (tokens' iss).
    #[arg(long, env = "RBEE_CATALOG_TOKEN_ISSUER", default_value = rbee_auth::token::DEFAULT_ISSUER)]
    token_issuer: String,
    /// Namespaces anyone may pull from, comma-separated.
    #[arg(
        long,
        env = "RBEE_CATALOG_PUBLIC_NAMESPACES",
        value_delimiter = ',',
        default_value = "rbee"
    )]
    public_namespaces: Vec<String>,
    /// Refuse registry reads without a token, public namespaces included.
    #[arg(long, env = "RBEE_CATALOG_NO_ANONYMOUS_PULL")]
    no_anonymous_pull: bool,
    /// DEVELOPMENT ONLY: loopback callers may pull, push and delete
    /// anything on the embedded registry without a token.
    #[arg(long, env = "RBEE_CATALOG_DEV_OPEN_LOOPBACK")]
    dev_open_loopback: bool,
}

/// Secrets (the registry password, the webhook secret) stay out of logs.
impl std::fmt::Debug for Args {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Args")
            .field("listen", &self.listen)
            .field("data_dir", &self.data_dir)
            .field("registry_url", &self.registry_url)
            .field("catalog_repository", &self.catalog_repository)
            .field("demo", &self.demo)
            .finish_non_exhaustive()
    }
}

impl Args {
    fn limits(&self) -> ServerLimits {
        ServerLimits {
            max_connections: self.max_connections as usize,
            header_read_timeout: Duration::from_secs(self.header_timeout),
            body_idle_timeout: Duration::from_secs(self.body_idle_timeout),
            buffered_body_bytes: (self.body_memory_mib as usize) << 20,
            shutdown_grace: Duration::from_secs(self.shutdown_grace),
        }
    }
}

/// Serves until Ctrl-C or SIGTERM.
pub async fn run(args: Args) -> anyhow::Result<()> {
    let mut config = CatalogConfig::new(&args.data_dir);
    config.limits = args.limits();
    config.listen = args.listen;
    config.registry_url = args.registry_url;
    config.registry_credentials = args.registry_username.zip(args.registry_password);
    config.public_url = args.public_url;
    config.catalog_repository = args.catalog_repository;
    config.ttls = CacheTtls {
        index: Duration::from_secs(args.index_ttl),
        metadata: Duration::from_secs(args.metadata_ttl),
    };
    config.upstream.deadline = Duration::from_secs(args.upstream_timeout.max(1));
    config.cors_origins = args.cors_origins;
    config.webhook_secret = args.webhook_secret;
    config.rate_limit = RateLimit {
        per_second: args.rate_limit_per_second,
        burst: args.rate_limit_burst,
    };
    config.tokens.signing_key = args.token_signing_key;
    config.tokens.previous_key = args.token_previous_key;
    config.tokens.service = args.token_service;
    config.tokens.issuer = args.token_issuer;
    config.tokens.public = rbee_auth::PublicNamespaces::new(
        args.public_namespaces.into_iter().filter(|n| !n.is_empty()),
    );
    config.tokens.anonymous_pull = !args.no_anonymous_pull;
    config.tokens.dev_open_loopback = args.dev_open_loopback;
    config.database_url = args.database_url;
    let listener = tokio::net::TcpListener::bind(config.listen)
        .await
        .with_context(|| format!("binding {}", config.listen))?;
    let demo = args.demo;
    let data_dir = config.data_dir.clone();
    let catalog_repository = config.catalog_repository.clone();
    let running = rbee_catalog::start(config, listener)
        .await
        .context("starting the catalog")?;
    let url = running.url();
    tracing::info!(%url, embedded_registry = running.registry.is_some(), "catalog listening");
    if demo {
        let registry_url = running.state.registry_public_url.clone();
        let published = crate::demo::publish_with_demo_key(
            &running.state.store,
            &data_dir,
            &registry_url,
            &catalog_repository,
        );
        match published.await {
            Ok(true) => tracing::info!("published the example worker: try {url}/v1/workers"),
            Ok(false) => tracing::info!("the example worker is already published"),
            Err(e) => tracing::warn!(error = %e, "could not publish the example worker"),
        }
    }
    running
        .wait(rbee_registry::server::shutdown_signal())
        .await?;
    Ok(())
}
