//! `rbee-worker`: install, list and uninstall rbee workers.

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use clap::{Parser, Subcommand};
use indicatif::{ProgressBar, ProgressStyle};
use rbee_worker_client::limits::DEFAULT_MAX_DOWNLOAD;
use rbee_worker_client::{
    CatalogClient, ClientError, Installer, Outcome, RegistrySource, Timeouts,
};

#[derive(Parser)]
#[command(version, about = "Install rbee workers from the worker catalog")]
struct Cli {
    /// Catalog address (as rbee-hive reads it).
    #[arg(
        long,
        global = true,
        env = "WORKER_CATALOG_URL",
        default_value = "http://localhost:8787"
    )]
    catalog: String,
    /// Where workers are installed.
    #[arg(long, global = true, env = "RBEE_WORKERS_DIR")]
    dest: Option<PathBuf>,
    /// Seconds to wait for a connection (catalog and registry).
    #[arg(long, global = true, env = "RBEE_CONNECT_TIMEOUT", default_value_t = Timeouts::DEFAULT.connect.as_secs())]
    connect_timeout: u64,
    /// Seconds of silence after which a read fails (a stalled server).
    #[arg(long, global = true, env = "RBEE_READ_TIMEOUT", default_value_t = Timeouts::DEFAULT.read_idle.as_secs())]
    read_timeout: u64,
    /// Seconds one whole download may take.
    #[arg(long, global = true, env = "RBEE_TOTAL_TIMEOUT", default_value_t = Timeouts::DEFAULT.total.as_secs())]
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
    /// Install WORKER[@REQUIREMENT], e.g. llm-worker-rbee-cpu@^0.1.
    Install {
        /// Worker id, optionally with a semver requirement after `@`.
        worker: String,
        /// License key for premium workers (rbee_lic_...). Sent only to the
        /// catalog; prefer the environment variable or --license-file, which
        /// other users cannot read in the process list.
        #[arg(
            long,
            alias = "license-key",
            env = "RBEE_LICENSE_KEY",
            hide_env_values = true
        )]
        license: Option<String>,
        /// A file holding the license key (e.g. with mode 0600).
        #[arg(long, conflicts_with = "license")]
        license_file: Option<PathBuf>,
        /// Registry to install from when the catalog is unreachable.
        #[arg(long, env = "RBEE_REGISTRY_URL")]
        registry: Option<String>,
        /// Repository namespace in that registry.
        #[arg(long, default_value = "rbee")]
        namespace: String,
        /// The largest build (bytes) to download; larger ones are refused
        /// before any byte is fetched.
        #[arg(long, env = "RBEE_MAX_DOWNLOAD", default_value_t = DEFAULT_MAX_DOWNLOAD)]
        max_download: u64,
    },
    /// List installed workers.
    List,
    /// Remove WORKER[@VERSION].
    Uninstall {
        /// Worker id, optionally `@version`.
        worker: String,
    },
}

fn default_dest() -> PathBuf {
    let data = std::env::var_os("XDG_DATA_HOME")
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".local/share")))
        .unwrap_or_else(|| PathBuf::from("."));
    data.join("rbee").join("workers")
}

async fn run(cli: Cli) -> Result<(), ClientError> {
    let dest = cli.dest.clone().unwrap_or_else(default_dest);
    let catalog = cli.catalog()?;
    match cli.command {
        Command::Install {
            worker,
            license,
            license_file,
            registry,
            namespace,
            max_download,
        } => {
            let (id, req) = match worker.split_once('@') {
                Some((id, req)) => (id.to_owned(), Some(req.to_owned())),
                None => (worker.clone(), None),
            };
            let client = match license_file {
                Some(path) => catalog.with_license_file(&path)?,
                None => catalog.with_license_key(license),
            };
            let installer = Installer::new(client, &dest)?.with_max_download(max_download);
            let bar = ProgressBar::new(0);
            bar.set_style(
                ProgressStyle::with_template(
                    "{msg} [{bar:30}] {bytes}/{total_bytes} {bytes_per_sec}",
                )
                .unwrap_or_else(|_| ProgressStyle::default_bar())
                .progress_chars("=> "),
            );
            bar.set_message(id.clone());
            let progress = |done: u64, total: u64| {
                bar.set_length(total);
                bar.set_position(done);
            };
            let outcome = match installer.install(&id, req.as_deref(), &progress).await {
                Err(e) if e.is_unreachable() && registry.is_some() => {
                    // Not `bar.println`: a hidden bar (stderr is not a
                    // terminal, as in logs and scripts) drops its output.
                    bar.suspend(|| {
                        eprintln!("catalog unreachable ({e}); installing from the registry")
                    });
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
            bar.finish_and_clear();
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

#[tokio::main]
async fn main() -> ExitCode {
    match run(Cli::parse()).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e}");
            if let ClientError::LicenseRequired { .. } = e {
                eprintln!("give a license key with --license, RBEE_LICENSE_KEY or --license-file");
            }
            ExitCode::FAILURE
        }
    }
}
