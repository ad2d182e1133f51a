//! `rbee-worker`: install, list and uninstall rbee workers.

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use clap::{Parser, Subcommand};
use rbee_worker_client::limits::DEFAULT_MAX_DOWNLOAD;
use rbee_worker_client::{
    CatalogClient, ClientError, Installer, Outcome, RegistrySource, Timeouts, TrustStore,
    UnpackProgress, Via,
};

mod cli_progress;

#[derive(Parser)]
#[command(
    name = "rbee-worker",
    version,
    about = "Install rbee workers from the worker catalog",
    after_help = EXIT_CODES
)]
struct Cli {
    /// Catalog address (as rbee-hive reads it; its variable
    /// WORKER_CATALOG_URL is read too).
    #[arg(
        long,
        global = true,
        env = "RBEE_WORKER_CATALOG",
        default_value = "http://localhost:8787"
    )]
    catalog: String,
    /// Where workers are installed ($XDG_DATA_HOME/rbee/workers, else
    /// ~/.local/share/rbee/workers).
    #[arg(long, global = true, env = "RBEE_WORKER_DEST", default_value_os_t = default_dest())]
    dest: PathBuf,
    /// Seconds to wait for a connection (catalog and registry).
    #[arg(long, global = true, env = "RBEE_WORKER_CONNECT_TIMEOUT", default_value_t = Timeouts::DEFAULT.connect.as_secs())]
    connect_timeout: u64,
    /// Seconds of silence after which a read fails (a stalled server).
    #[arg(long, global = true, env = "RBEE_WORKER_READ_TIMEOUT", default_value_t = Timeouts::DEFAULT.read_idle.as_secs())]
    read_timeout: u64,
    /// Seconds one whole download may take.
    #[arg(long, global = true, env = "RBEE_WORKER_TOTAL_TIMEOUT", default_value_t = Timeouts::DEFAULT.total.as_secs())]
    total_timeout: u64,
    #[command(subcommand)]
    command: Command,
}

impl Cli {
    fn catalog(&self) -> Result<CatalogClient, ClientError> {
        let secs = |s: u64| Duration::from_secs(s.max(1));
        CatalogClient::new(&self.catalog)?.with_timeouts(Timeouts {
            connect: secs(self.connect_timeout),
            read_idle: secs(self.read_timeout),
            total: secs(self.total_timeout),
        })
    }
}

#[derive(Subcommand)]
enum Command {
    /// Install WORKER[@VERSION], e.g. llm-worker-rbee-cpu@0.1.2 (exactly
    /// that version) or llm-worker-rbee-cpu@^0.1 (the highest match).
    Install {
        /// Worker id, optionally `@` and a version: a bare version is that
        /// version exactly (`@1.2.3`); a range takes an operator (`@^1.2`,
        /// `@~1.2.3`, `@>=1.0`, `@*`). Without one: the highest stable
        /// version.
        worker: String,
        #[command(flatten)]
        license: LicenseArgs,
        /// Registry to install from when the catalog is unreachable (or
        /// answers 502, 503 or 504).
        #[arg(long, env = "RBEE_WORKER_REGISTRY")]
        registry: Option<String>,
        /// Repository namespace in that registry.
        #[arg(long, env = "RBEE_WORKER_NAMESPACE", default_value = "rbee")]
        namespace: String,
        /// The largest build (bytes) to download; larger ones are refused
        /// before any byte is fetched.
        #[arg(long, env = "RBEE_WORKER_MAX_DOWNLOAD", default_value_t = DEFAULT_MAX_DOWNLOAD)]
        max_download: u64,
        #[command(flatten)]
        trust: TrustArgs,
    },
    /// Upgrade an installed WORKER to its latest version, downloading only
    /// a delta when one is published from the installed build and its
    /// archive is still cached (see docs/client.md, "Upgrades").
    Upgrade {
        /// Worker id.
        worker: String,
        #[command(flatten)]
        license: LicenseArgs,
        /// The largest build (bytes) to download.
        #[arg(long, env = "RBEE_WORKER_MAX_DOWNLOAD", default_value_t = DEFAULT_MAX_DOWNLOAD)]
        max_download: u64,
        #[command(flatten)]
        trust: TrustArgs,
    },
    /// List installed workers.
    List,
    /// Remove WORKER[@VERSION].
    Uninstall {
        /// Worker id, optionally `@version`.
        worker: String,
    },
}

/// A premium worker's license key, for an install or upgrade.
#[derive(Debug, clap::Args)]
struct LicenseArgs {
    /// License key for premium workers (rbee_lic_...). Sent only to the
    /// catalog; prefer the environment variable or --license-file, which
    /// other users cannot read in the process list.
    #[arg(
        long,
        alias = "license-key",
        env = "RBEE_WORKER_LICENSE",
        hide_env_values = true
    )]
    license: Option<String>,
    /// A file holding the license key (e.g. with mode 0600).
    #[arg(long, env = "RBEE_WORKER_LICENSE_FILE", conflicts_with = "license")]
    license_file: Option<PathBuf>,
}

impl LicenseArgs {
    /// `catalog`, sending this license key (read from its file if given).
    fn apply(self, catalog: CatalogClient) -> Result<CatalogClient, ClientError> {
        match self.license_file {
            Some(path) => catalog.with_license_file(&path),
            None => Ok(catalog.with_license_key(self.license)),
        }
    }
}

/// The publisher keys an install or upgrade trusts.
#[derive(Debug, clap::Args)]
struct TrustArgs {
    /// A publisher's minisign public key (RW...) or a file holding it,
    /// trusted for every worker on top of the trust file: the build
    /// must be signed with it (repeat for several; comma-separated in
    /// the environment).
    #[arg(long, env = "RBEE_WORKER_TRUSTED_KEY", value_delimiter = ',')]
    trusted_key: Vec<String>,
    /// The trust file (pinned and revoked publisher keys; see
    /// docs/client.md). Default: $XDG_CONFIG_HOME/rbee/trusted-keys,
    /// else ~/.config/rbee/trusted-keys; a missing file pins nothing.
    #[arg(long, env = "RBEE_WORKER_TRUST_FILE")]
    trust_file: Option<PathBuf>,
}

impl TrustArgs {
    /// The trust file (a missing one pins nothing) plus `--trusted-key`.
    fn load(self) -> Result<TrustStore, ClientError> {
        let mut trust = match self.trust_file.or_else(TrustStore::default_path) {
            Some(path) => TrustStore::load(&path)?,
            None => TrustStore::empty(),
        };
        for key in &self.trusted_key {
            trust.trust_arg(key)?;
        }
        Ok(trust)
    }
}

fn default_dest() -> PathBuf {
    let data = std::env::var_os("XDG_DATA_HOME")
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".local/share")))
        .unwrap_or_else(|| PathBuf::from("."));
    data.join("rbee").join("workers")
}

async fn run(cli: Cli) -> Result<(), ClientError> {
    let dest = cli.dest.clone();
    let catalog = cli.catalog()?;
    match cli.command {
        Command::Install {
            worker,
            license,
            registry,
            namespace,
            max_download,
            trust,
        } => {
            let trust = trust.load()?;
            let (id, req) = match worker.split_once('@') {
                Some((id, req)) => (id.to_owned(), Some(req.to_owned())),
                None => (worker.clone(), None),
            };
            let client = license.apply(catalog)?;
            let bar = cli_progress::Step::new(&format!("downloading {id}"));
            let unpacking = cli_progress::Step::new(&format!("unpacking {id}"));
            let unpack_progress = {
                let (unpacking, bar) = (unpacking.clone(), bar.clone());
                UnpackProgress(std::sync::Arc::new(move |done, total| {
                    bar.finish();
                    unpacking.update(done, total);
                }))
            };
            let installer = Installer::new(client, &dest)?
                .with_max_download(max_download)
                .with_trust(trust)
                .with_unpack_progress(unpack_progress);
            let progress = |done: u64, total: u64| bar.update(done, total);
            let resolved = installer.resolve_release(&id, req.as_deref()).await;
            if let Ok(r) = &resolved
                && let Some(reason) = &r.yanked
            {
                let why = if reason.is_empty() {
                    String::new()
                } else {
                    format!(": {reason}")
                };
                eprintln!(
                    "warning: {id} {} is yanked{why}; installing it because it was asked for \
                     by its exact version (a range never picks a yanked version)",
                    r.version
                );
            }
            let installed = match resolved {
                Ok(resolved) => installer.install_resolved(&id, &resolved, &progress).await,
                Err(e) => Err(e),
            };
            let outcome = match installed {
                Err(e) if e.is_unreachable() && registry.is_some() => {
                    bar.println(&format!(
                        "catalog unavailable ({e}); installing from the registry"
                    ));
                    let source = RegistrySource {
                        url: registry.unwrap_or_default(),
                        namespace,
                    };
                    installer
                        .install_from_registry_with_progress(
                            &source,
                            &id,
                            req.as_deref(),
                            &progress,
                        )
                        .await?
                }
                other => other?,
            };
            bar.finish();
            unpacking.finish();
            match outcome {
                Outcome::Installed(i) => {
                    println!(
                        "installed {} {} ({}) in {}",
                        i.worker_id,
                        i.version,
                        i.digest,
                        i.path.display()
                    )
                }
                Outcome::AlreadyInstalled(i) => {
                    println!(
                        "{} {} is already installed in {}",
                        i.worker_id,
                        i.version,
                        i.path.display()
                    )
                }
            }
        }
        Command::Upgrade {
            worker,
            license,
            max_download,
            trust,
        } => {
            let trust = trust.load()?;
            let client = license.apply(catalog)?;
            let installer = Installer::new(client, &dest)?
                .with_max_download(max_download)
                .with_trust(trust);
            // The same progress as `install`: a bar on a terminal,
            // periodic lines off one.
            let bar = cli_progress::Step::new(&format!("downloading {worker}"));
            let unpacking = cli_progress::Step::new(&format!("unpacking {worker}"));
            let unpack_progress = {
                let (unpacking, bar) = (unpacking.clone(), bar.clone());
                UnpackProgress(std::sync::Arc::new(move |done, total| {
                    bar.finish();
                    unpacking.update(done, total);
                }))
            };
            let installer = installer.with_unpack_progress(unpack_progress);
            let progress = |done: u64, total: u64| bar.update(done, total);
            let upgrade = installer.upgrade(&worker, &progress).await?;
            bar.finish();
            unpacking.finish();
            let i = upgrade.outcome.installed();
            match upgrade.via {
                Via::Nothing => println!(
                    "{} {} is the latest version and installed in {}",
                    i.worker_id,
                    i.version,
                    i.path.display()
                ),
                Via::Delta { size } => println!(
                    "upgraded {} {} -> {} with a delta of {size} bytes ({}) in {}",
                    i.worker_id,
                    upgrade.from_version,
                    i.version,
                    i.digest,
                    i.path.display()
                ),
                Via::Full { reason } => println!(
                    "upgraded {} {} -> {} ({}; whole archive: {reason}) in {}",
                    i.worker_id,
                    upgrade.from_version,
                    i.version,
                    i.digest,
                    i.path.display()
                ),
            }
        }
        Command::List => {
            let installer = Installer::new(catalog, &dest)?;
            for i in installer.list()? {
                println!(
                    "{}\t{}\t{}\t{}\t{}",
                    i.worker_id,
                    i.version,
                    i.platform,
                    i.digest,
                    i.path.display()
                );
            }
        }
        Command::Uninstall { worker } => {
            let (id, version) = match worker.split_once('@') {
                Some((id, v)) => (id, Some(v)),
                None => (worker.as_str(), None),
            };
            let installer = Installer::new(catalog, &dest)?;
            for i in installer.uninstall(id, version)? {
                println!("removed {} {}", i.worker_id, i.version);
            }
        }
    }
    Ok(())
}

/// The exit codes, as `--help` and `docs/client.md` list them.
const EXIT_CODES: &str = "Exit codes: 0 done, 1 local trouble (files, disk, a bad download), \
2 bad command line, 3 not found (worker, version, platform build), \
4 license key missing or not accepted, 5 catalog or registry unreachable or failing, \
6 the publisher signature was refused (unsigned, tampered, untrusted or revoked key, \
signed for another build).";

/// The exit code of an error (see [`EXIT_CODES`]).
fn exit_code(e: &ClientError) -> u8 {
    match e {
        ClientError::Invalid(_) => 2,
        ClientError::NotFound(_)
        | ClientError::NoMatchingVersion { .. }
        | ClientError::NoBuildForPlatform { .. } => 3,
        ClientError::LicenseRequired { .. } | ClientError::LicenseNotAccepted { .. } => 4,
        ClientError::Network(_)
        | ClientError::Timeout(_)
        | ClientError::Server { .. }
        | ClientError::BadAnswer { .. } => 5,
        ClientError::Signature(_) => 6,
        _ => 1,
    }
}

/// Logs (of the library and of the HTTP stack) go to stderr, filtered by
/// `RBEE_LOG` (default `warn`), in colour only on a terminal.
fn init_logs() {
    use std::io::IsTerminal;
    tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .with_ansi(std::io::stderr().is_terminal())
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_env("RBEE_LOG")
                .unwrap_or_else(|_| "warn".into()),
        )
        .init();
}

#[tokio::main]
async fn main() -> ExitCode {
    init_logs();
    match run(rbee_config::parse(rbee_config::Binary::Worker)).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e}");
            if let ClientError::LicenseRequired { .. } = e {
                eprintln!(
                    "give a license key with --license, RBEE_WORKER_LICENSE or --license-file"
                );
            }
            ExitCode::from(exit_code(&e))
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
        let prepared = rbee_config::prepare(rbee_config::Binary::Worker, Cli::command(), &args)
            .expect("no configuration file");
        prepared.command.debug_assert();
    }
}
