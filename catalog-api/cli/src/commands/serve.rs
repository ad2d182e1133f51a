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
use rbee_registry::cli::{ServerLimitArgs, StorageArgs};

/// Flags of `serve` (each also an environment variable).
#[derive(clap::Args)]
pub struct Args {
    /// Address to listen on (rbee-hive's default catalog address).
    #[arg(long, env = "RBEE_CATALOG_LISTEN", default_value = "127.0.0.1:8787")]
    pub listen: SocketAddr,
    /// Folder for the embedded registry's data, the SQLite database
    /// (unless --database-url) and the token signing keys; an absolute
    /// path in production (a relative one depends on the working folder).
    #[arg(long, env = "RBEE_CATALOG_DATA_DIR", default_value = "rbee-data")]
    data_dir: PathBuf,
    /// Record no downloads (the stats routes serve what was recorded).
    #[arg(long, env = "RBEE_CATALOG_NO_ANALYTICS")]
    no_analytics: bool,
    /// Days raw download events are kept (the daily rollups stay).
    #[arg(long, env = "RBEE_CATALOG_ANALYTICS_RETENTION_DAYS", default_value_t = 90, value_parser = clap::value_parser!(u32).range(1..))]
    analytics_retention_days: u32,
    /// Seconds a stats answer is served from memory.
    #[arg(long, env = "RBEE_CATALOG_STATS_CACHE_SECS", default_value_t = 3600)]
    stats_cache_secs: u64,
    /// Read from this registry instead of the embedded one (e.g. https://ghcr.io).
    #[arg(long, env = "RBEE_CATALOG_REGISTRY_URL")]
    registry_url: Option<String>,
    /// User name for the external registry.
    #[arg(long, env = "RBEE_CATALOG_REGISTRY_USERNAME")]
    registry_username: Option<String>,
    /// Password or token for the external registry.
    #[arg(long, env = "RBEE_CATALOG_REGISTRY_PASSWORD", hide_env_values = true)]
    registry_password: Option<String>,
    /// Base URL clients reach this server at, used in download URLs and
    /// the token realm (e.g. https://catalog.example.com). Default: the
    /// --listen address, which is refused when it listens on every
    /// interface (0.0.0.0 or [::]): that address is no use to a client.
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
    /// Walk the registry for every listing instead of serving the
    /// catalog's view kept in the database (see docs/api.md).
    #[arg(long, env = "RBEE_CATALOG_NO_CATALOG_VIEW")]
    no_catalog_view: bool,
    /// The catalog's database (licenses, keys, audit log): sqlite://PATH or
    /// postgres://USER:PASSWORD@HOST/DB. Default: SQLite in
    /// <data dir>/catalog.db.
    #[arg(long, env = "RBEE_CATALOG_DATABASE_URL", hide_env_values = true)]
    database_url: Option<String>,
    /// Publish the example worker and rbee's worker set (stand-in builds)
    /// on first start, and print a demo license key for the premium one.
    #[arg(long, env = "RBEE_CATALOG_DEMO")]
    pub demo: bool,
    #[command(flatten)]
    limits: ServerLimitArgs,
    // Where the embedded registry keeps its content (`--storage s3://...`;
    // default: `<data dir>/registry`).
    #[command(flatten)]
    storage: StorageArgs,
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
    /// Seconds a registry token lives, at most 60 (the default): a revoked
    /// license's tokens stop working within this time. Shorter lifetimes
    /// make clients fetch tokens more often.
    #[arg(long, env = "RBEE_CATALOG_TOKEN_TTL", default_value_t = rbee_auth::token::DEFAULT_TTL.as_secs(),
          value_parser = clap::value_parser!(u64).range(1..=rbee_auth::token::MAX_TTL.as_secs()))]
    token_ttl: u64,
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
    /// What `config check` checks beyond each value's grammar: the
    /// settings hang together, and the public URL is one a client can use.
    pub fn check(&self) -> anyhow::Result<()> {
        registry_credentials(
            self.registry_username.clone(),
            self.registry_password.clone(),
        )?;
        public_url(self.public_url.clone(), self.listen)?;
        self.registry_storage()?;
        Ok(())
    }
}

impl Args {
    /// The embedded registry's bucket and presigned redirects; an error
    /// when they are asked for together with `--registry-url` (there is no
    /// embedded registry then).
    fn registry_storage(
        &self,
    ) -> anyhow::Result<(Option<rbee_registry::storage::S3Options>, Option<Duration>)> {
        let s3 = self.storage.s3()?;
        let presigned = self.storage.presigned_redirects()?;
        anyhow::ensure!(
            s3.is_none() || self.registry_url.is_none(),
            "--storage is the embedded registry's storage: it does not go with --registry-url"
        );
        Ok((s3, presigned))
    }
}

/// The external registry's credentials: a user name needs a password
/// (checked here rather than with clap's `requires`, which would not
/// count a value from the configuration file).
pub(crate) fn registry_credentials(
    username: Option<String>,
    password: Option<String>,
) -> anyhow::Result<Option<(String, String)>> {
    anyhow::ensure!(
        username.is_none() || password.is_some(),
        "--registry-username needs --registry-password (or RBEE_CATALOG_REGISTRY_PASSWORD)"
    );
    Ok(username.zip(password))
}

/// Serves until Ctrl-C or SIGTERM.
pub async fn run(args: Args) -> anyhow::Result<()> {
    let mut config = CatalogConfig::new(&args.data_dir);
    (config.registry_s3, config.presigned_redirects) = args.registry_storage()?;
    config.limits = args.limits.limits();
    config.listen = args.listen;
    config.registry_url = args.registry_url;
    config.registry_credentials =
        registry_credentials(args.registry_username, args.registry_password)?;
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
    config.tokens.ttl = Duration::from_secs(args.token_ttl);
    config.tokens.public = rbee_auth::PublicNamespaces::new(
        args.public_namespaces.into_iter().filter(|n| !n.is_empty()),
    );
    config.tokens.anonymous_pull = !args.no_anonymous_pull;
    config.tokens.dev_open_loopback = args.dev_open_loopback;
    config.catalog_view = !args.no_catalog_view;
    config.database_url = args.database_url;
    config.analytics.enabled = !args.no_analytics;
    config.analytics.retention_days = args.analytics_retention_days;
    config.analytics.stats_ttl = Duration::from_secs(args.stats_cache_secs);
    rbee_registry::server::check_data_dir(&config.data_dir, "data dir (--data-dir)")?;
    let listener = tokio::net::TcpListener::bind(config.listen)
        .await
        .with_context(|| format!("binding {}", config.listen))?;
    // After binding: `--listen 127.0.0.1:0` learns its port here.
    config.public_url = Some(public_url(
        config.public_url.take(),
        listener.local_addr()?,
    )?);
    let demo = args.demo;
    let data_dir = config.data_dir.clone();
    let catalog_repository = config.catalog_repository.clone();
    let running = rbee_catalog::start(config, listener)
        .await
        .context("starting the catalog")?;
    let url = running.url();
    tracing::info!(
        %url,
        public_url = %running.state.public_url,
        embedded_registry = running.registry.is_some(),
        "catalog listening"
    );
    if demo {
        // Into the embedded registry, through this process's own address:
        // the public URL may be a proxy this host cannot reach. The same
        // goes for the token realm the embedded registry's challenges name
        // (under the public URL): its tokens come from this process's own
        // `/token`. Another registry keeps its own token service.
        let local = local_url(running.addr);
        let (registry_url, token_service) = match &running.registry {
            Some(_) => (local.clone(), Some(format!("{local}/token"))),
            None => (running.state.registry_public_url.clone(), None),
        };
        let published = crate::demo::publish_with_demo_key(
            &running.state.store,
            &data_dir,
            &registry_url,
            &catalog_repository,
            token_service.as_deref(),
        );
        let started = std::time::Instant::now();
        match published.await {
            Ok(true) => tracing::info!(
                took_ms = started.elapsed().as_millis() as u64,
                "published the example worker and rbee's worker set: try {url}/v1/workers"
            ),
            Ok(false) => tracing::info!("the example worker set is already published"),
            Err(e) => tracing::warn!(error = %e, "could not publish the example worker set"),
        }
        crate::demo::print_demo_license(&data_dir);
    }
    running
        .wait(rbee_registry::server::shutdown_signal())
        .await?;
    Ok(())
}

/// The public URL: the one given (checked), or the listen address when a
/// client can use it. Listening on every interface (`0.0.0.0`, `[::]`)
/// says nothing about the address clients use, so it needs the flag:
/// `http://0.0.0.0:8787/...` download URLs work nowhere.
fn public_url(given: Option<String>, listen: SocketAddr) -> anyhow::Result<String> {
    let Some(given) = given else {
        anyhow::ensure!(
            !listen.ip().is_unspecified(),
            "--listen {listen} listens on every interface, so download URLs need \
             --public-url (RBEE_CATALOG_PUBLIC_URL): the address clients reach this \
             server at, e.g. https://catalog.example.com or http://192.0.2.10:{}",
            listen.port()
        );
        return Ok(format!("http://{listen}"));
    };
    let url = reqwest::Url::parse(&given)
        .with_context(|| format!("--public-url `{given}` is not a URL"))?;
    anyhow::ensure!(
        matches!(url.scheme(), "http" | "https") && url.host().is_some(),
        "--public-url `{given}` must be an http:// or https:// URL with a host"
    );
    let unspecified = url
        .host_str()
        .map(|h| h.trim_start_matches('[').trim_end_matches(']'))
        .and_then(|h| h.parse::<std::net::IpAddr>().ok())
        .is_some_and(|ip| ip.is_unspecified());
    anyhow::ensure!(
        !unspecified,
        "--public-url `{given}` is no address a client can reach (0.0.0.0 or [::])"
    );
    anyhow::ensure!(
        url.query().is_none() && url.fragment().is_none(),
        "--public-url `{given}` must not have a query or fragment"
    );
    Ok(given.trim_end_matches('/').to_owned())
}

/// `http://` and `addr`, with a loopback address for an unspecified one
/// (a connection to 0.0.0.0 is not portable).
fn local_url(addr: SocketAddr) -> String {
    let ip = match addr.ip() {
        std::net::IpAddr::V4(ip) if ip.is_unspecified() => std::net::Ipv4Addr::LOCALHOST.into(),
        std::net::IpAddr::V6(ip) if ip.is_unspecified() => std::net::Ipv6Addr::LOCALHOST.into(),
        ip => ip,
    };
    format!("http://{}", SocketAddr::new(ip, addr.port()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_unusable_public_url_is_refused() {
        let every = "0.0.0.0:8787".parse().unwrap();
        let err = public_url(None, every).unwrap_err().to_string();
        assert!(err.contains("--public-url"), "{err}");
        for bad in [
            "http://0.0.0.0:8787",
            "ftp://x",
            "catalog.example.com",
            "http://[::]:1",
        ] {
            assert!(public_url(Some(bad.into()), every).is_err(), "{bad}");
        }
        assert_eq!(
            public_url(Some("https://c.example/".into()), every).unwrap(),
            "https://c.example"
        );
        let local = "127.0.0.1:8787".parse().unwrap();
        assert_eq!(public_url(None, local).unwrap(), "http://127.0.0.1:8787");
    }

    #[test]
    fn the_demo_publishes_through_a_loopback_address() {
        assert_eq!(
            local_url("0.0.0.0:9".parse().unwrap()),
            "http://127.0.0.1:9"
        );
        assert_eq!(local_url("[::]:9".parse().unwrap()), "http://[::1]:9");
        assert_eq!(
            local_url("127.0.0.1:9".parse().unwrap()),
            "http://127.0.0.1:9"
        );
    }
}
