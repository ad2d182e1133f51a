//! `rbee-registry`: serve an OCI registry from a local folder.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use anyhow::Context;
use clap::{Parser, Subcommand};
use rbee_registry::RegistryConfig;
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
}

impl ServeArgs {
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
