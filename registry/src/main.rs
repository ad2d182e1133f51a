//! `rbee-registry`: serve an OCI registry from a local folder.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use anyhow::Context;
use clap::{FromArgMatches, Parser, Subcommand};
use std::sync::Arc;

use rbee_config::Binary;
use rbee_registry::RegistryConfig;
use rbee_registry::cli::{ServerLimitArgs, StorageArgs};
use rbee_registry::gate::{AccessConfig, TokenAuth};
use rbee_registry::gc::GcOptions;
use rbee_registry::server::shutdown_signal;

#[derive(Parser)]
#[command(
    name = "rbee-registry",
    version,
    about = "An OCI Distribution Spec v1.1 registry for rbee workers"
)]
struct Cli {
    #[command(flatten)]
    config: rbee_config::ConfigFileArg,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Serve the registry over HTTP.
    Serve(Box<ServeArgs>),
    /// Remove untagged manifests past their grace, blob links no kept
    /// manifest names, and content nothing links; print what and how many
    /// bytes. On the filesystem it needs the data directory to itself (stop
    /// `serve`, or use `serve --gc-interval`).
    Gc(GcArgs),
    /// Check the configuration: `config check` prints the settings `serve`
    /// would run with.
    Config(rbee_config::ConfigArgs),
}

#[derive(clap::Args)]
struct GcFlags {
    /// Seconds an unreferenced blob or blob link is kept after it was
    /// written (pushes in flight link blobs before their manifest).
    #[arg(long, env = "RBEE_REGISTRY_GC_BLOB_GRACE", default_value_t = GcOptions::default().blob_grace.as_secs())]
    gc_blob_grace: u64,
    /// Seconds an untagged manifest is kept after it was pushed: pushes in
    /// flight, and staged releases (`rbee-pusher push --stage`) waiting to
    /// be tagged.
    #[arg(long, env = "RBEE_REGISTRY_GC_UNTAGGED_GRACE", default_value_t = GcOptions::default().untagged_grace.as_secs())]
    gc_untagged_grace: u64,
}

impl GcFlags {
    fn options(&self, dry_run: bool) -> GcOptions {
        GcOptions {
            dry_run,
            blob_grace: Duration::from_secs(self.gc_blob_grace),
            untagged_grace: Duration::from_secs(self.gc_untagged_grace),
        }
    }
}

#[derive(clap::Args)]
struct GcArgs {
    /// Folder that holds blobs, manifests and uploads.
    #[arg(
        long,
        env = "RBEE_REGISTRY_DATA_DIR",
        default_value = "rbee-data/registry"
    )]
    data_dir: PathBuf,
    #[command(flatten)]
    storage: StorageArgs,
    /// Seconds an unfinished upload session is kept: older ones are
    /// removed first, their multipart uploads aborted (on S3, so that no
    /// part of an abandoned upload stays in the bucket).
    #[arg(long, env = "RBEE_REGISTRY_UPLOAD_TTL", default_value_t = 24 * 3600)]
    upload_ttl: u64,
    /// List what would be removed; remove nothing.
    #[arg(long)]
    dry_run: bool,
    #[command(flatten)]
    grace: GcFlags,
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
    #[command(flatten)]
    storage: StorageArgs,
    /// Refuse DELETE of manifests, tags and blobs (405 UNSUPPORTED).
    #[arg(long, env = "RBEE_REGISTRY_DISABLE_DELETE")]
    disable_delete: bool,
    /// Seconds an unfinished upload session is kept before it is purged.
    #[arg(long, env = "RBEE_REGISTRY_UPLOAD_TTL", default_value_t = 24 * 3600)]
    upload_ttl: u64,
    #[command(flatten)]
    limits: ServerLimitArgs,
    /// Upload sessions that may be open at once; past it, new uploads get
    /// 503 UNAVAILABLE with Retry-After.
    #[arg(long, env = "RBEE_REGISTRY_MAX_UPLOAD_SESSIONS", default_value_t = RegistryConfig::new("").max_upload_sessions as u32,
          value_parser = clap::value_parser!(u32).range(1..))]
    max_upload_sessions: u32,
    /// URL of the token service clients are sent to in 401 challenges
    /// (e.g. https://catalog.example/token). Needs --token-jwks.
    #[arg(long, env = "RBEE_REGISTRY_TOKEN_REALM")]
    token_realm: Option<String>,
    /// JWKS file with the token service's public keys (one, or two during
    /// a rotation), as served at its /token/jwks.json. Needs --token-realm.
    #[arg(long, env = "RBEE_REGISTRY_TOKEN_JWKS")]
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
    /// Accept manifests whose non-distributable layers (media type
    /// `...layer.nondistributable...` or Docker's `...rootfs.foreign...`,
    /// with `urls`) are not in the registry. Off: every layer must be here.
    #[arg(long, env = "RBEE_REGISTRY_ALLOW_FOREIGN_LAYERS")]
    allow_foreign_layers: bool,
    /// Collect garbage every this many seconds while serving (0: never,
    /// the default). See `rbee-registry gc`.
    #[arg(long, env = "RBEE_REGISTRY_GC_INTERVAL", default_value_t = 0)]
    gc_interval: u64,
    #[command(flatten)]
    grace: GcFlags,
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
            (None, None) => None,
            // Checked here rather than with clap's `requires`, which would
            // not count a value from the configuration file.
            (Some(_), None) => anyhow::bail!("--token-realm needs --token-jwks"),
            (None, Some(_)) => anyhow::bail!("--token-jwks needs --token-realm"),
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

    /// The registry's settings, checked as far as they can be without
    /// opening the storage (the JWKS file is read).
    fn config(&self) -> anyhow::Result<RegistryConfig> {
        let mut config = RegistryConfig::new(&self.data_dir);
        config.delete_enabled = !self.disable_delete;
        config.upload_ttl = Duration::from_secs(self.upload_ttl);
        config.limits = self.limits.limits();
        config.max_upload_sessions = self.max_upload_sessions as usize;
        config.access = self.access()?;
        config.allow_foreign_layers = self.allow_foreign_layers;
        self.storage.apply(&mut config)?;
        Ok(config)
    }
}

fn main() -> anyhow::Result<()> {
    let cli: Cli = rbee_config::parse(Binary::Registry);
    if let Command::Config(_) = cli.command {
        config_check();
        return Ok(());
    }
    rbee_registry::server::run_binary(run(cli))
}

async fn run(cli: Cli) -> anyhow::Result<()> {
    match cli.command {
        Command::Serve(args) => serve(*args).await,
        Command::Gc(args) => gc(args).await,
        Command::Config(_) => unreachable!("answered before the runtime starts"),
    }
}

/// `config check`: prints what `serve` would run with, or exits 2 naming
/// what is wrong.
fn config_check() {
    let effective = rbee_config::check::effective::<Cli>(Binary::Registry, "serve")
        .unwrap_or_else(|e| e.exit());
    let args = ServeArgs::from_arg_matches(&effective.matches).unwrap_or_else(|e| e.exit());
    if let Err(e) = args.config() {
        rbee_config::exit_invalid(format!("{e:#}"));
    }
    let effective = effective.with_environment(&rbee_registry::cli::CHECKED_ENVIRONMENT);
    print!("{effective}");
}

async fn gc(args: GcArgs) -> anyhow::Result<()> {
    let mut config = RegistryConfig::new(&args.data_dir);
    config.upload_ttl = Duration::from_secs(args.upload_ttl);
    args.storage.apply(&mut config)?;
    let place = args.storage.place(&args.data_dir);
    let registry = rbee_registry::Registry::open_storage(config)
        .await
        .with_context(|| format!("opening storage in {place}"))?;
    let verb = if args.dry_run {
        "would remove"
    } else {
        "removed"
    };
    let uploads = if args.dry_run {
        registry
            .expired_uploads()
            .await
            .context("listing expired upload sessions")?
            .len()
    } else {
        registry
            .purge_expired_uploads()
            .await
            .context("removing expired upload sessions")?
    };
    let report = registry
        .collect_garbage(&args.grace.options(args.dry_run))
        .await
        .context("collecting garbage")?;
    for m in &report.manifests {
        println!("{verb} manifest {m}");
    }
    for l in &report.links {
        println!("{verb} blob link {l}");
    }
    for (digest, size) in &report.blobs {
        println!("{verb} blob {digest} ({size} bytes)");
    }
    println!("{verb} {uploads} expired upload sessions");
    println!(
        "{verb} {} manifests, {} blob links, {} blobs; {} bytes {}",
        report.manifests.len(),
        report.links.len(),
        report.blobs.len(),
        report.bytes_freed,
        if report.dry_run {
            "would be freed"
        } else {
            "freed"
        }
    );
    Ok(())
}

async fn serve(args: ServeArgs) -> anyhow::Result<()> {
    if args.storage.storage.is_none() {
        rbee_registry::server::check_data_dir(&args.data_dir, "data dir (--data-dir)")?;
    }
    let config = args.config()?;
    let place = args.storage.place(&args.data_dir);
    rbee_registry::gate::announce(&config.access);
    let registry = rbee_registry::Registry::open(config)
        .await
        .with_context(|| format!("opening storage in {place}"))?;
    let listener = tokio::net::TcpListener::bind(args.listen)
        .await
        .with_context(|| format!("binding {}", args.listen))?;
    let collector = (args.gc_interval > 0).then(|| {
        rbee_registry::gc::spawn_scheduled(
            &registry,
            Duration::from_secs(args.gc_interval),
            args.grace.options(false),
        )
    });
    tracing::info!(addr = %listener.local_addr()?, storage = %place, "registry listening");
    rbee_registry::server::serve(listener, registry, shutdown_signal()).await?;
    if let Some(collector) = collector {
        collector.abort();
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use clap::CommandFactory;

    use super::*;

    #[test]
    fn the_command_line_with_its_variables_is_well_formed() {
        let args = [std::ffi::OsString::from("rbee")];
        let prepared = rbee_config::prepare(rbee_config::Binary::Registry, Cli::command(), &args)
            .expect("no configuration file");
        prepared.command.debug_assert();
    }
}
