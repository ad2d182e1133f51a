//! `rbee-registry`: serve an OCI registry from a local folder.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use anyhow::Context;
use clap::{Parser, Subcommand};
use std::sync::Arc;

use rbee_registry::RegistryConfig;
use rbee_registry::gate::{AccessConfig, TokenAuth};
use rbee_registry::limits::ServerLimits;
use rbee_registry::server::shutdown_signal;

#[derive(Parser)]
#[command(
    version,
    about = "An OCI Distribution Spec v1.1 registry for rbee workers"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Serve the registry over HTTP.
    Serve(ServeArgs),
}

#[derive(clap::Args)]
struct ServeArgs {
    /// Address to listen on.
    #[arg(long, env = "RBEE_REGISTRY_LISTEN", default_value = "127.0.0.1:5000")]
    listen: SocketAddr,
    /// Folder that holds blobs, manifests and uploads (created if missing).
    #[arg(
        long,
        env = "RBEE_REGISTRY_DATA_DIR",
        default_value = "rbee-data/registry"
    )]
    data_dir: PathBuf,
    /// Refuse DELETE of manifests, tags and blobs (405 UNSUPPORTED).
    #[arg(long, env = "RBEE_REGISTRY_DISABLE_DELETE")]
    disable_delete: bool,
    /// Seconds an unfinished upload session is kept before it is purged.
    #[arg(long, env = "RBEE_REGISTRY_UPLOAD_TTL", default_value_t = 24 * 3600)]
    upload_ttl: u64,
    /// Connections served at once; more wait in the listen queue.
    #[arg(long, env = "RBEE_REGISTRY_MAX_CONNECTIONS", default_value_t = ServerLimits::default().max_connections as u32,
          value_parser = clap::value_parser!(u32).range(1..))]
    max_connections: u32,
    /// Seconds a client has to send a request's headers before the
    /// connection is closed (also the keep-alive idle time).
    #[arg(long, env = "RBEE_REGISTRY_HEADER_TIMEOUT", default_value_t = ServerLimits::default().header_read_timeout.as_secs(),
          value_parser = clap::value_parser!(u64).range(1..))]
    header_timeout: u64,
    /// Seconds a request body may send nothing before it is aborted.
    #[arg(long, env = "RBEE_REGISTRY_BODY_IDLE_TIMEOUT", default_value_t = ServerLimits::default().body_idle_timeout.as_secs(),
          value_parser = clap::value_parser!(u64).range(1..))]
    body_idle_timeout: u64,
    /// MiB that request bodies read into memory may hold in total; past it
    /// such requests get 503 with Retry-After. At least 4 (one manifest).
    #[arg(long, env = "RBEE_REGISTRY_BODY_MEMORY_MIB", default_value_t = (ServerLimits::default().buffered_body_bytes >> 20) as u32,
          value_parser = clap::value_parser!(u32).range(4..))]
    body_memory_mib: u32,
    /// Seconds open requests get to finish after SIGTERM or Ctrl-C before
    /// they are dropped.
    #[arg(long, env = "RBEE_REGISTRY_SHUTDOWN_GRACE", default_value_t = ServerLimits::default().shutdown_grace.as_secs())]
    shutdown_grace: u64,
    /// Upload sessions that may be open at once; past it, new uploads get
    /// 503 UNAVAILABLE with Retry-After.
    #[arg(long, env = "RBEE_REGISTRY_MAX_UPLOAD_SESSIONS", default_value_t = RegistryConfig::new("").max_upload_sessions as u32,
          value_parser = clap::value_parser!(u32).range(1..))]
    max_upload_sessions: u32,
    /// URL of the token service clients are sent to in 401 challenges
    /// (e.g. https://catalog.example/token). Needs --token-jwks.
    #[arg(long, env = "RBEE_REGISTRY_TOKEN_REALM", requires = "token_jwks")]
    token_realm: Option<String>,
    /// JWKS file with the token service's public keys (one, or two during
    /// a rotation), as served at its /token/jwks.json. Needs --token-realm.
    #[arg(long, env = "RBEE_REGISTRY_TOKEN_JWKS", requires = "token_realm")]
    token_jwks: Option<PathBuf>,
    /// The service name: the `service` of challenges and the `aud` tokens
    /// must carry.
    #[arg(long, env = "RBEE_REGISTRY_TOKEN_SERVICE", default_value = rbee_auth::token::DEFAULT_SERVICE)]
    token_service: String,
    /// The `iss` tokens must carry.
    #[arg(long, env = "RBEE_REGISTRY_TOKEN_ISSUER", default_value = rbee_auth::token::DEFAULT_ISSUER)]
    token_issuer: String,
    /// Namespaces anyone may read, comma-separated.
    #[arg(
        long,
        env = "RBEE_REGISTRY_PUBLIC_NAMESPACES",
        value_delimiter = ',',
        default_value = "rbee"
    )]
    public_namespaces: Vec<String>,
    /// Refuse reads without a token, public namespaces included.
    #[arg(long, env = "RBEE_REGISTRY_NO_ANONYMOUS_PULL")]
    no_anonymous_pull: bool,
    /// DEVELOPMENT ONLY: callers on a loopback address may pull, push and
    /// delete anything without a token. Never behind a proxy on the same
    /// host.
    #[arg(long, env = "RBEE_REGISTRY_DEV_OPEN_LOOPBACK")]
    dev_open_loopback: bool,
}

impl ServeArgs {
    fn access(&self) -> anyhow::Result<AccessConfig> {
        let tokens = match (&self.token_realm, &self.token_jwks) {
            (Some(realm), Some(jwks)) => {
                let text = std::fs::read_to_string(jwks)
                    .with_context(|| format!("reading {}", jwks.display()))?;
                let keys = rbee_auth::parse_jwks(&text)
                    .with_context(|| format!("reading {}", jwks.display()))?;
                Some(TokenAuth {
                    verifier: Arc::new(rbee_auth::Verifier::new(
                        &keys,
                        &self.token_issuer,
                        &self.token_service,
                    )),
                    realm: realm.clone(),
                    service: self.token_service.clone(),
                })
            }
            _ => None,
        };
        Ok(AccessConfig {
            tokens,
            public: rbee_auth::PublicNamespaces::new(
                self.public_namespaces
                    .iter()
                    .filter(|n| !n.is_empty())
                    .cloned(),
            ),
            anonymous_pull: !self.no_anonymous_pull,
            dev_open_loopback: self.dev_open_loopback,
        })
    }

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

fn main() -> anyhow::Result<()> {
    rbee_registry::server::run_binary(run())
}

async fn run() -> anyhow::Result<()> {
    let Command::Serve(args) = Cli::parse().command;
    let mut config = RegistryConfig::new(&args.data_dir);
    config.delete_enabled = !args.disable_delete;
    config.upload_ttl = Duration::from_secs(args.upload_ttl);
    config.limits = args.limits();
    config.max_upload_sessions = args.max_upload_sessions as usize;
    config.access = args.access()?;
    rbee_registry::gate::announce(&config.access);
    let registry = rbee_registry::Registry::open(config)
        .await
        .with_context(|| format!("opening storage in {}", args.data_dir.display()))?;
    let listener = tokio::net::TcpListener::bind(args.listen)
        .await
        .with_context(|| format!("binding {}", args.listen))?;
    tracing::info!(addr = %listener.local_addr()?, data_dir = %args.data_dir.display(), "registry listening");
    rbee_registry::server::serve(listener, registry, shutdown_signal()).await?;
    Ok(())
}
