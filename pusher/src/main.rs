//! `rbee-pusher`: validate and publish a worker release.

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use clap::{Args, Parser, Subcommand};
use rbee_pusher::PushError;
use rbee_pusher::auth::Credentials;
use rbee_pusher::client::{RegistryClient, RetryPolicy, Timeouts, host_of};
use rbee_pusher::delta::{self, DeltaOptions};
use rbee_pusher::progress::Reporter;
use rbee_pusher::publish::{self, Compression, PublishOptions};
use rbee_pusher::release::{Release, ReleaseFiles};
use rbee_pusher::release_staged::{self, ReleaseOptions};
use rbee_pusher::sign::{self, KeyPassword, SigningKey};
use rbee_pusher::{stage, validate, yank};

#[derive(Parser)]
#[command(
    name = "rbee-pusher",
    version,
    about = "Publish rbee worker releases as OCI artifacts",
    after_help = "Exit codes: 0 published (or already), 1 a local file could not be written, \
2 bad command line, 3 invalid or missing release files (nothing pushed), \
4 the version exists with other content, 5 the registry is unreachable, refused or kept failing, \
6 missing or refused credentials."
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Check metadata, PKGBUILD, .SRCINFO and builds without pushing
    /// anything (and, with --registry, that the version is new).
    Validate(ValidateArgs),
    /// Package and push a release (or, with --stage, one runner's platforms).
    Push(PushArgs),
    /// Tag a staged version: assemble its index from the staged platforms.
    Release(ReleaseCmdArgs),
    /// Withdraw a released version from `latest` and listings.
    Yank(YankArgs),
    /// Undo a yank.
    Unyank(UnyankArgs),
    /// Make a minisign key pair to sign releases with (readable by
    /// minisign; the password from RBEE_PUSHER_SECRET_KEY_PASSWORD or
    /// --secret-key-password-file, or --unencrypted-key).
    Keygen(KeygenArgs),
}

/// How releases are signed (minisign keys; see docs/security.md).
#[derive(Args)]
struct SigningArgs {
    /// minisign secret key file: sign the release with it (`minisign -G`
    /// or `rbee-pusher keygen`). Its password comes from
    /// RBEE_PUSHER_SECRET_KEY_PASSWORD or --secret-key-password-file; it is
    /// never asked for.
    #[arg(long, env = "RBEE_PUSHER_SECRET_KEY")]
    secret_key: Option<PathBuf>,
    /// A file whose first line is the secret key's password.
    #[arg(long, env = "RBEE_PUSHER_SECRET_KEY_PASSWORD_FILE")]
    secret_key_password_file: Option<PathBuf>,
    /// The secret key is not encrypted (`minisign -G -W`; for CI runners
    /// that keep the key file itself as a secret).
    #[arg(long, env = "RBEE_PUSHER_UNENCRYPTED_KEY")]
    unencrypted_key: bool,
}

impl SigningArgs {
    fn password(&self) -> Result<KeyPassword, PushError> {
        let env = std::env::var("RBEE_PUSHER_SECRET_KEY_PASSWORD").ok();
        match (self.unencrypted_key, &self.secret_key_password_file, env) {
            (true, None, None) => Ok(KeyPassword::Unencrypted),
            (true, _, _) => Err(PushError::Invalid(
                "--unencrypted-key and a password (RBEE_PUSHER_SECRET_KEY_PASSWORD or \
                 --secret-key-password-file) exclude each other"
                    .into(),
            )),
            (false, Some(file), _) => Ok(KeyPassword::File(file.clone())),
            (false, None, Some(text)) => Ok(KeyPassword::Text(text)),
            (false, None, None) => Err(PushError::Invalid(
                "the secret key's password is missing: set RBEE_PUSHER_SECRET_KEY_PASSWORD, give \
                 --secret-key-password-file, or pass --unencrypted-key for a key made \
                 without one"
                    .into(),
            )),
        }
    }

    fn key(&self) -> Result<Option<SigningKey>, PushError> {
        match &self.secret_key {
            Some(path) => SigningKey::load(path, &self.password()?).map(Some),
            None => Ok(None),
        }
    }
}

#[derive(Args)]
struct KeygenArgs {
    #[command(flatten)]
    signing: SigningArgs,
    /// Where to write the public key (minisign.pub format); it must not
    /// exist yet.
    #[arg(long)]
    public_key: PathBuf,
    /// Print a JSON summary on stdout.
    #[arg(long)]
    json: bool,
}

#[derive(Args)]
struct ValidateArgs {
    #[command(flatten)]
    release: ReleaseArgs,
    /// Also check that the version is not published in this registry.
    #[arg(long)]
    registry: Option<String>,
    /// (Re)generate the `.SRCINFO` next to the PKGBUILD instead of
    /// checking it.
    #[arg(long)]
    write_srcinfo: bool,
    /// Repository namespace (with --registry).
    #[arg(long, env = "RBEE_PUSHER_NAMESPACE")]
    namespace: Option<String>,
    /// Registry user name (with --registry).
    #[arg(long, env = "RBEE_PUSHER_USERNAME")]
    username: Option<String>,
    /// Registry password or token (with --registry).
    #[arg(long, env = "RBEE_PUSHER_PASSWORD", hide_env_values = true)]
    password: Option<String>,
    #[command(flatten)]
    budgets: Budgets,
}

/// How long and how often a registry command waits and retries: the same
/// flags on every subcommand that talks to a registry.
#[derive(Args)]
struct Budgets {
    /// Seconds to wait for a connection to the registry.
    #[arg(long, env = "RBEE_PUSHER_CONNECT_TIMEOUT", default_value_t = Timeouts::default().connect.as_secs())]
    connect_timeout: u64,
    /// Seconds a request may go without anything moved (no body sent, no
    /// answer received) before it fails.
    #[arg(long, env = "RBEE_PUSHER_READ_TIMEOUT", default_value_t = Timeouts::default().read_idle.as_secs())]
    read_timeout: u64,
    /// Total seconds allowed for a request with small bodies (manifests,
    /// HEADs, tag lists, tokens); blob uploads have only the read timeout.
    #[arg(long, env = "RBEE_PUSHER_REQUEST_TIMEOUT", default_value_t = Timeouts::default().request.as_secs())]
    request_timeout: u64,
    /// Attempts of each request in all, the first included (1: never
    /// retry), with exponential backoff between them.
    #[arg(long, env = "RBEE_PUSHER_ATTEMPTS", default_value_t = RetryPolicy::default().attempts,
          value_parser = clap::value_parser!(u32).range(1..=20))]
    attempts: u32,
}

impl Budgets {
    /// A client for `url` with these budgets.
    fn client(
        &self,
        url: reqwest::Url,
        credentials: Credentials,
    ) -> Result<RegistryClient, PushError> {
        let timeouts = Timeouts {
            connect: Duration::from_secs(self.connect_timeout),
            read_idle: Duration::from_secs(self.read_timeout),
            request: Duration::from_secs(self.request_timeout),
        };
        let retry = RetryPolicy {
            attempts: self.attempts,
            ..RetryPolicy::default()
        };
        RegistryClient::new(url, credentials, retry)?.with_timeouts(timeouts)
    }
}

/// Where a registry command connects.
#[derive(Args)]
struct Connection {
    /// Registry URL, e.g. http://127.0.0.1:8787 or https://ghcr.io.
    #[arg(long, env = "RBEE_PUSHER_REGISTRY")]
    registry: String,
    /// Repository namespace (default: rbee, or rbee-premium for licensed workers).
    #[arg(long, env = "RBEE_PUSHER_NAMESPACE")]
    namespace: Option<String>,
    /// Repository of the catalog index artifact.
    #[arg(
        long,
        env = "RBEE_PUSHER_CATALOG_REPOSITORY",
        default_value = "rbee/catalog"
    )]
    catalog_repository: String,
    /// Registry user name.
    #[arg(long, env = "RBEE_PUSHER_USERNAME")]
    username: Option<String>,
    /// Registry password or token (prefer the environment variable).
    #[arg(long, env = "RBEE_PUSHER_PASSWORD", hide_env_values = true)]
    password: Option<String>,
    /// Token service host (`host` or `host:port`) on another origin that
    /// may receive the credentials, e.g. auth.docker.io (repeat, or
    /// comma-separate in the environment). The registry's own origin and
    /// an https realm on its host are trusted without it.
    #[arg(
        long = "trust-token-realm",
        env = "RBEE_PUSHER_TRUST_TOKEN_REALM",
        value_delimiter = ','
    )]
    trust_token_realm: Vec<String>,
    /// Print a JSON summary on stdout (progress stays on stderr).
    #[arg(long)]
    json: bool,
    #[command(flatten)]
    budgets: Budgets,
}

impl Connection {
    fn client(&self) -> Result<RegistryClient, PushError> {
        let url = registry_url(&self.registry)?;
        let credentials =
            Credentials::resolve(&host_of(&url), self.username.clone(), self.password.clone());
        Ok(self
            .budgets
            .client(url, credentials)?
            .trust_token_realms(self.trust_token_realm.clone()))
    }
}

/// Deltas for upgrades (see docs/publishing.md, "Deltas").
#[derive(Args)]
struct DeltaArgs {
    /// After tagging, attach a delta to each platform build from each of
    /// the K highest earlier versions (0: none).
    #[arg(long = "deltas", env = "RBEE_PUSHER_DELTAS", default_value_t = delta::DEFAULT_DELTAS, value_name = "K")]
    count: usize,
    /// The largest unpacked tar (old or new) a delta is made for, in
    /// bytes; both are held in memory while it is computed.
    #[arg(long = "delta-max-unpacked", env = "RBEE_PUSHER_DELTA_MAX_UNPACKED", default_value_t = delta::DEFAULT_MAX_UNPACKED)]
    max_unpacked: u64,
}

impl DeltaArgs {
    fn options(&self, level_hint: Option<i32>) -> DeltaOptions {
        DeltaOptions {
            count: self.count,
            max_unpacked: self.max_unpacked,
            level_hint,
        }
    }
}

/// Makes the deltas of a version just tagged; a failure is reported, never
/// the command's: the release is out already.
async fn attach_deltas(
    client: &RegistryClient,
    repo: &str,
    version: &semver::Version,
    opts: &DeltaOptions,
    reporter: &Reporter,
) -> Vec<delta::DeltaSummary> {
    match delta::attach_deltas(client, repo, version, opts, reporter).await {
        Ok(made) => made,
        Err(e) => {
            eprintln!("warning: no deltas were made: {e}");
            Vec::new()
        }
    }
}

#[derive(Args)]
struct ReleaseCmdArgs {
    #[command(flatten)]
    connection: Connection,
    #[command(flatten)]
    deltas: DeltaArgs,
    /// Worker id, e.g. llm-worker-rbee-cpu.
    id: String,
    /// The version staged.
    version: semver::Version,
    /// Release although a platform the metadata declares was not staged.
    #[arg(long)]
    allow_missing: bool,
    #[command(flatten)]
    signing: SigningArgs,
}

#[derive(Args)]
struct YankArgs {
    #[command(flatten)]
    connection: Connection,
    /// Worker id.
    id: String,
    /// The released version.
    version: semver::Version,
    /// Why, shown by the catalog next to the version.
    #[arg(long)]
    reason: String,
}

#[derive(Args)]
struct UnyankArgs {
    #[command(flatten)]
    connection: Connection,
    /// Worker id.
    id: String,
    /// The released version.
    version: semver::Version,
    /// Why (kept in the registry's history).
    #[arg(long, default_value = "")]
    reason: String,
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
    #[command(flatten)]
    connection: Connection,
    #[command(flatten)]
    deltas: DeltaArgs,
    /// Replace an existing version that has different content.
    #[arg(long)]
    force: bool,
    /// Package and check against the registry, push nothing.
    #[arg(long)]
    dry_run: bool,
    /// Upload this runner's platform(s) untagged, for `rbee-pusher release`
    /// to tag later (see docs/publishing.md).
    #[arg(long)]
    stage: bool,
    /// Archive compression: zstd or gzip, optionally with a level
    /// (`zstd:19`, `gzip:9`); a bare number is a gzip level.
    #[arg(long, env = "RBEE_PUSHER_COMPRESSION", default_value_t = Compression::default(), value_parser = Compression::parse)]
    compression: Compression,
    #[command(flatten)]
    signing: SigningArgs,
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
        // Said, not silent: a plain-HTTP registry needs `http://`.
        eprintln!("note: --registry `{raw}` has no scheme; using https://{raw}");
        format!("https://{raw}")
    };
    reqwest::Url::parse(&with_scheme)
        .map_err(|e| PushError::Invalid(format!("bad --registry `{raw}`: {e}")))
}

async fn run(cli: Cli) -> Result<(), PushError> {
    match cli.command {
        Command::Validate(args) => {
            let files = files(&args.release)?;
            let release = Release::load(&files)?;
            if args.write_srcinfo {
                validate::write_srcinfo(&files, &release)?;
            }
            let mut problems = validate::offline_problems(&files, &release);
            if let Some(registry) = &args.registry {
                let url = registry_url(registry)?;
                let credentials =
                    Credentials::resolve(&host_of(&url), args.username, args.password);
                let client = args.budgets.client(url, credentials)?;
                let opts = PublishOptions {
                    namespace: args.namespace,
                    catalog_repository: String::new(),
                    force: false,
                    dry_run: true,
                    compression: Compression::default(),
                    created: String::new(),
                };
                problems.extend(validate::published_problem(&client, &release, &opts).await?);
            }
            if !problems.is_empty() {
                return Err(PushError::Invalid(problems.join("\n")));
            }
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
            if args.stage && args.signing.secret_key.is_some() {
                return Err(PushError::Invalid(
                    "--stage does not sign: give --secret-key to `rbee-pusher release`, which \
                     signs the staged archives before it tags the version"
                        .into(),
                ));
            }
            let key = args.signing.key()?;
            let release = Release::load(&files(&args.release)?)?;
            let client = args.connection.client()?;
            let conn = args.connection;
            let opts = PublishOptions {
                namespace: conn.namespace,
                catalog_repository: conn.catalog_repository,
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
            let repo = publish::repository(&release, &opts);
            reporter.step(&format!("checking {} for {repo}", client.host()));
            client.check(&repo).await?;
            if args.stage {
                let summary = stage::stage(&client, &release, &opts, &reporter).await?;
                if conn.json {
                    print_json(&summary);
                } else {
                    eprintln!(
                        "{} {}:{} ({})",
                        summary.status,
                        summary.repository,
                        summary.version,
                        summary
                            .platforms
                            .iter()
                            .map(|p| p.platform.as_str())
                            .collect::<Vec<_>>()
                            .join(", ")
                    );
                }
                return Ok(());
            }
            let mut summary =
                publish::publish_signed(&client, &release, &opts, key.as_ref(), &reporter).await?;
            if !opts.dry_run {
                let level = match opts.compression {
                    Compression::Zstd(level) => Some(level),
                    Compression::Gzip(_) => None,
                };
                summary.deltas = attach_deltas(
                    &client,
                    &summary.repository,
                    &release.metadata.version,
                    &args.deltas.options(level),
                    &reporter,
                )
                .await;
            }
            if conn.json {
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
        Command::Release(args) => {
            let key = args.signing.key()?;
            let client = args.connection.client()?;
            let opts = ReleaseOptions {
                namespace: args.connection.namespace.clone(),
                catalog_repository: args.connection.catalog_repository.clone(),
                allow_missing: args.allow_missing,
                created: created(),
            };
            let reporter = Reporter::new(false);
            let mut summary = release_staged::release_signed(
                &client,
                &args.id,
                &args.version,
                &opts,
                key.as_ref(),
                &reporter,
            )
            .await?;
            summary.deltas = attach_deltas(
                &client,
                &summary.repository,
                &args.version,
                &args.deltas.options(None),
                &reporter,
            )
            .await;
            if args.connection.json {
                print_json(&summary);
            } else {
                eprintln!(
                    "{} {} ({})",
                    summary.status, summary.reference, summary.index_digest
                );
            }
            Ok(())
        }
        Command::Yank(args) => {
            set_yanked(
                &args.connection,
                &args.id,
                &args.version,
                true,
                &args.reason,
            )
            .await
        }
        Command::Keygen(args) => {
            let Some(secret) = &args.signing.secret_key else {
                return Err(PushError::Invalid(
                    "give --secret-key FILE: where to write the secret key".into(),
                ));
            };
            let summary = sign::keygen(secret, &args.public_key, &args.signing.password()?)?;
            if args.json {
                print_json(&summary);
            } else {
                println!("key id {}", summary.key_id);
                println!("public key {}", summary.public_key);
                eprintln!(
                    "wrote {} (keep it secret) and {} (give it to installers)",
                    secret.display(),
                    args.public_key.display()
                );
            }
            Ok(())
        }
        Command::Unyank(args) => {
            set_yanked(
                &args.connection,
                &args.id,
                &args.version,
                false,
                &args.reason,
            )
            .await
        }
    }
}

async fn set_yanked(
    connection: &Connection,
    id: &str,
    version: &semver::Version,
    yanked: bool,
    reason: &str,
) -> Result<(), PushError> {
    let client = connection.client()?;
    let summary = yank::set_yanked(
        &client,
        id,
        version,
        yanked,
        reason,
        connection.namespace.as_deref(),
        &Reporter::new(false),
    )
    .await?;
    if connection.json {
        print_json(&summary);
    } else {
        eprintln!(
            "{} {}:{}",
            summary.status, summary.repository, summary.version
        );
    }
    Ok(())
}

fn print_json(value: &impl serde::Serialize) {
    println!(
        "{}",
        serde_json::to_string_pretty(value).unwrap_or_default()
    );
}

/// `SOURCE_DATE_EPOCH` when set (reproducible builds), else now.
fn created() -> String {
    std::env::var("SOURCE_DATE_EPOCH")
        .ok()
        .and_then(|s| s.parse::<i64>().ok())
        .and_then(|s| chrono::DateTime::from_timestamp(s, 0))
        .unwrap_or_else(chrono::Utc::now)
        .to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
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
    match run(rbee_config::parse(rbee_config::Binary::Pusher)).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::from(e.exit_code() as u8)
        }
    }
}

#[cfg(test)]
mod tests {
    use clap::CommandFactory;

    use super::*;

    #[test]
    fn the_command_line_with_its_variables_is_well_formed() {
        let args = [std::ffi::OsString::from("rbee")];
        let prepared = rbee_config::prepare(rbee_config::Binary::Pusher, Cli::command(), &args)
            .expect("no configuration file");
        prepared.command.debug_assert();
    }
}
