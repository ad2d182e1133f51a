//! `rbee-registry`: serve an OCI registry from a local folder.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use anyhow::Context;
use clap::{Parser, Subcommand};
use rbee_registry::RegistryConfig;
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
}

fn main() -> anyhow::Result<()> {
    rbee_registry::server::run_binary(run())
}

async fn run() -> anyhow::Result<()> {
    let Command::Serve(args) = Cli::parse().command;
    let mut config = RegistryConfig::new(&args.data_dir);
    config.delete_enabled = !args.disable_delete;
    config.upload_ttl = Duration::from_secs(args.upload_ttl);
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
