//! `rbee-pusher`: validate and publish a worker release.

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use clap::{Args, Parser, Subcommand};
use rbee_pusher::PushError;
use rbee_pusher::auth::Credentials;
use rbee_pusher::client::{RegistryClient, RetryPolicy, Timeouts, host_of};
use rbee_pusher::progress::Reporter;
use rbee_pusher::publish::{self, PublishOptions};
use rbee_pusher::release::{Release, ReleaseFiles};

#[derive(Parser)]
#[command(version, about = "Publish rbee worker releases as OCI artifacts")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Check metadata, PKGBUILD and builds without pushing anything.
    Validate(ReleaseArgs),
    /// Package and push a release.
    Push(PushArgs),
}

#[derive(Args)]
struct ReleaseArgs {
    /// A release file (TOML) naming the files below; flags override it.
    #[arg(long)]
    release: Option<PathBuf>,
    /// Worker metadata document (JSON).
    #[arg(long)]
    metadata: Option<PathBuf>,
    /// A platform build, as PLATFORM=PATH (repeat per platform).
    #[arg(long = "platform", value_parser = ReleaseFiles::parse_platform_arg)]
    platforms: Vec<(String, PathBuf)>,
    /// PKGBUILD to check and attach.
    #[arg(long)]
    pkgbuild: Option<PathBuf>,
    /// LICENSE file (default: LICENSE next to the metadata).
    #[arg(long)]
    license: Option<PathBuf>,
    /// README file (default: README.md next to the metadata).
    #[arg(long)]
    readme: Option<PathBuf>,
}

#[derive(Args)]
struct PushArgs {
    #[command(flatten)]
    release: ReleaseArgs,
    /// Registry URL, e.g. http://127.0.0.1:8787 or https://ghcr.io.
    #[arg(long, env = "RBEE_REGISTRY")]
    registry: String,
    /// Repository namespace (default: rbee, or rbee-premium for licensed workers).
    #[arg(long, env = "RBEE_NAMESPACE")]
    namespace: Option<String>,
    /// Repository of the catalog index artifact.
    #[arg(long, env = "RBEE_CATALOG_REPOSITORY", default_value = "rbee/catalog")]
    catalog_repository: String,
    /// Registry user name.
    #[arg(long, env = "RBEE_REGISTRY_USERNAME")]
    username: Option<String>,
    /// Registry password or token (prefer the environment variable).
    #[arg(long, env = "RBEE_REGISTRY_PASSWORD", hide_env_values = true)]
    password: Option<String>,
    /// Token service host (`host` or `host:port`) on another origin that
    /// may receive the credentials, e.g. auth.docker.io (repeat, or
    /// comma-separate in the environment). The registry's own origin and
    /// an https realm on its host are trusted without it.
    #[arg(
        long = "trust-token-realm",
        env = "RBEE_TRUST_TOKEN_REALM",
        value_delimiter = ','
    )]
    trust_token_realm: Vec<String>,
    /// Seconds to wait for a connection to the registry.
    #[arg(long, env = "RBEE_CONNECT_TIMEOUT", default_value_t = Timeouts::default().connect.as_secs())]
    connect_timeout: u64,
    /// Seconds a request may go without anything moved (no body sent, no
    /// answer received) before it fails.
    #[arg(long, env = "RBEE_READ_TIMEOUT", default_value_t = Timeouts::default().read_idle.as_secs())]
    read_timeout: u64,
    /// Total seconds allowed for a request with small bodies (manifests,
    /// HEADs, tag lists, tokens); blob uploads have only the read timeout.
    #[arg(long, env = "RBEE_REQUEST_TIMEOUT", default_value_t = Timeouts::default().request.as_secs())]
    request_timeout: u64,
    /// Replace an existing version that has different content.
    #[arg(long)]
    force: bool,
    /// Package and check against the registry, push nothing.
    #[arg(long)]
    dry_run: bool,
    /// Print a JSON summary on stdout (progress stays on stderr).
    #[arg(long)]
    json: bool,
    /// gzip level of the archives, 0-9.
    #[arg(long, default_value_t = 6, value_parser = clap::value_parser!(u32).range(0..=9))]
    compression: u32,
}

fn files(args: &ReleaseArgs) -> Result<ReleaseFiles, PushError> {
    let mut files = match &args.release {
        Some(path) => ReleaseFiles::from_file(path)?,
        None => ReleaseFiles::default(),
    };
    if let Some(m) = &args.metadata {
        files.metadata = m.clone();
    }
    if files.metadata.as_os_str().is_empty() {
        return Err(PushError::Invalid(
            "give --metadata FILE or --release FILE".into(),
        ));
    }
    if !args.platforms.is_empty() {
        files.builds = args.platforms.clone();
    }
    files.pkgbuild = args.pkgbuild.clone().or(files.pkgbuild);
    files.license = args.license.clone().or(files.license);
    files.readme = args.readme.clone().or(files.readme);
    Ok(files)
}

fn registry_url(raw: &str) -> Result<reqwest::Url, PushError> {
    let with_scheme = if raw.contains("://") {
        raw.to_owned()
    } else {
        format!("https://{raw}")
    };
    reqwest::Url::parse(&with_scheme)
        .map_err(|e| PushError::Invalid(format!("bad --registry `{raw}`: {e}")))
}

async fn run(cli: Cli) -> Result<(), PushError> {
    match cli.command {
        Command::Validate(args) => {
            let release = Release::load(&files(&args)?)?;
            eprintln!(
                "ok: {} {} for {}",
                release.metadata.id,
                release.metadata.version,
                release
                    .builds
                    .keys()
                    .map(|p| p.name())
                    .collect::<Vec<_>>()
                    .join(", ")
            );
            if let Some((_, srcinfo)) = &release.pkgbuild {
                print!("{srcinfo}");
            }
            Ok(())
        }
        Command::Push(args) => {
            let release = Release::load(&files(&args.release)?)?;
            let url = registry_url(&args.registry)?;
            let host = host_of(&url);
            let credentials = Credentials::resolve(&host, args.username, args.password);
            let timeouts = Timeouts {
                connect: Duration::from_secs(args.connect_timeout),
                read_idle: Duration::from_secs(args.read_timeout),
                request: Duration::from_secs(args.request_timeout),
            };
            let client = RegistryClient::new(url, credentials, RetryPolicy::default())?
                .with_timeouts(timeouts)?
                .trust_token_realms(args.trust_token_realm);
            let opts = PublishOptions {
                namespace: args.namespace,
                catalog_repository: args.catalog_repository,
                force: args.force,
                dry_run: args.dry_run,
                compression: args.compression,
                created: std::env::var("SOURCE_DATE_EPOCH")
                    .ok()
                    .and_then(|s| s.parse::<i64>().ok())
                    .and_then(|s| chrono::DateTime::from_timestamp(s, 0))
                    .unwrap_or_else(chrono::Utc::now)
                    .to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
            };
            let reporter = Reporter::new(false);
            let summary = publish::publish(&client, &release, &opts, &reporter).await?;
            if args.json {
                println!(
                    "{}",
                    serde_json::to_string_pretty(&summary).unwrap_or_default()
                );
            } else {
                eprintln!(
                    "{} {} ({})",
                    summary.status, summary.reference, summary.index_digest
                );
            }
            Ok(())
        }
    }
}

#[tokio::main]
async fn main() -> ExitCode {
    tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_env("RBEE_LOG")
                .unwrap_or_else(|_| "warn".into()),
        )
        .init();
    match run(Cli::parse()).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::from(e.exit_code() as u8)
        }
    }
}
