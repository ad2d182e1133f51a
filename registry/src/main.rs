//! `rbee-registry`: serve an OCI registry from a local folder.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use anyhow::Context;
use clap::{FromArgMatches, Parser, Subcommand};
use std::sync::Arc;

use rbee_config::Binary;
use rbee_registry::RegistryConfig;
use rbee_registry::cli::ServerLimitArgs;
use rbee_registry::gate::{AccessConfig, TokenAuth};
use rbee_registry::gc::GcOptions;
use rbee_registry::server::shutdown_signal;
use rbee_registry::storage::S3Options;

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
    /// Keep everything in an S3-compatible bucket instead of --data-dir:
    /// `s3://BUCKET/PREFIX` (AWS S3, Cloudflare R2, MinIO). Credentials come
    /// from AWS_ACCESS_KEY_ID / AWS_SECRET_ACCESS_KEY (and AWS_SESSION_TOKEN),
    /// never from flags; see docs/operations.md.
    #[arg(long, env = "RBEE_REGISTRY_STORAGE")]
    storage: Option<String>,
    /// The S3 endpoint, e.g. https://ACCOUNT.r2.cloudflarestorage.com or
    /// http://127.0.0.1:9000 (also AWS_ENDPOINT_URL); AWS when unset.
    #[arg(long, env = "RBEE_REGISTRY_S3_ENDPOINT")]
    s3_endpoint: Option<String>,
    /// The S3 region (`auto` for R2; also AWS_REGION).
    #[arg(long, env = "RBEE_REGISTRY_S3_REGION")]
    s3_region: Option<String>,
    /// Path-style S3 addressing (ENDPOINT/BUCKET/KEY), which MinIO and most
    /// self-hosted servers need; virtual-hosted style otherwise.
    #[arg(long, env = "RBEE_REGISTRY_S3_PATH_STYLE")]
    s3_path_style: bool,
    /// MiB in each part of a multipart upload (all parts but the last have
    /// this size; R2 requires equal parts). Each upload holds about one
    /// part in memory.
    #[arg(long, env = "RBEE_REGISTRY_S3_PART_SIZE_MIB", default_value_t = 8,
          value_parser = clap::value_parser!(u32).range(5..=512))]
    s3_part_size_mib: u32,
    /// Answer blob GET/HEAD with 307 to a presigned URL of the bucket (S3
    /// only), after the same access checks as a direct read.
    #[arg(long, env = "RBEE_REGISTRY_PRESIGNED_REDIRECTS")]
    presigned_redirects: bool,
    /// Seconds a presigned URL stays valid (at most 7 days).
    #[arg(long, env = "RBEE_REGISTRY_PRESIGNED_LIFETIME", default_value_t = rbee_registry::config::PRESIGNED_DEFAULT.as_secs(),
          value_parser = clap::value_parser!(u64).range(1..=rbee_registry::config::PRESIGNED_MAX.as_secs()))]
    presigned_lifetime: u64,
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

    /// The bucket to use, when --storage names one.
    fn s3(&self) -> anyhow::Result<Option<S3Options>> {
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
        config.s3 = self.s3()?;
        if self.presigned_redirects {
            anyhow::ensure!(
                config.s3.is_some(),
                "--presigned-redirects needs --storage s3://..."
            );
            config.presigned_redirects = Some(Duration::from_secs(self.presigned_lifetime));
        }
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
    let effective = effective.with_environment(&[
        ("AWS_ACCESS_KEY_ID", true),
        ("AWS_SECRET_ACCESS_KEY", true),
        ("AWS_SESSION_TOKEN", true),
        ("AWS_REGION", false),
        ("AWS_ENDPOINT_URL", false),
        ("RBEE_LOG", false),
        ("RBEE_LOG_FORMAT", false),
    ]);
    print!("{effective}");
}

async fn gc(args: GcArgs) -> anyhow::Result<()> {
    let registry = rbee_registry::Registry::open(RegistryConfig::new(&args.data_dir))
        .await
        .with_context(|| format!("opening storage in {}", args.data_dir.display()))?;
    let report = registry
        .collect_garbage(&args.grace.options(args.dry_run))
        .await
        .context("collecting garbage")?;
    let verb = if report.dry_run {
        "would remove"
    } else {
        "removed"
    };
    for m in &report.manifests {
        println!("{verb} manifest {m}");
    }
    for l in &report.links {
        println!("{verb} blob link {l}");
    }
    for (digest, size) in &report.blobs {
        println!("{verb} blob {digest} ({size} bytes)");
    }
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
    if args.storage.is_none() {
        rbee_registry::server::check_data_dir(&args.data_dir, "data dir (--data-dir)")?;
    }
    let config = args.config()?;
    let place = match &args.storage {
        Some(url) => url.clone(),
        None => args.data_dir.display().to_string(),
    };
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
