//! Soak test of the release `rbee-registry` binary: many clients push,
//! pull, delete, re-tag and mount for minutes while the process is killed
//! (`kill -9`, sometimes SIGTERM) and restarted every so often; after each
//! restart every acknowledged fact is read back.
//!
//! Run it with `scripts/soak.sh` (see docs/registry.md). It is an example
//! and not a test so that CI compiles it without running it.
//!
//! What is checked, after each restart and with the clients paused:
//! every blob and manifest whose last push was acknowledged (and not
//! deleted since) reads back with its digest; every tag names the manifest
//! of its last acknowledged PUT; every acknowledged referrer is listed for
//! its subject; nothing whose delete was acknowledged comes back. A request
//! whose answer was lost because the process died is *unknown*: either
//! outcome is accepted for it, until a later acknowledged request settles
//! the object again. Each client owns its repositories, so its model of
//! them is exact; content is shared between clients (the same blobs are
//! pushed into many repositories at once, and mounted across them).

mod check;
mod model;
mod ops;
mod process;

use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, RwLock};
use std::time::{Duration, Instant};

use anyhow::bail;
use bytes::Bytes;
use clap::Parser;
use reqwest::StatusCode;

use check::check_all;
use model::{RepoModel, Rng, content_pool};
use ops::operation;
use process::{Registry, default_binary};

#[derive(Debug, Parser)]
#[command(about = "Soak test: mixed clients against a registry killed and restarted")]
struct Args {
    /// How long the clients run: `300`, `90s`, `5m`.
    #[arg(long, default_value = "5m", value_parser = parse_duration)]
    duration: Duration,
    /// Concurrent clients, each with two repositories of its own.
    #[arg(long, default_value_t = 16)]
    clients: usize,
    /// Time between two restarts of the registry.
    #[arg(long, default_value = "30s", value_parser = parse_duration)]
    restart_every: Duration,
    /// One stop in this many is a SIGTERM (graceful); the others `kill -9`.
    #[arg(long, default_value_t = 3)]
    sigterm_one_in: u64,
    /// The `rbee-registry` binary (default: the release build under
    /// `$CARGO_TARGET_DIR`, else `target/`).
    #[arg(long, env = "RBEE_REGISTRY_BIN")]
    binary: Option<PathBuf>,
    /// Data directory (default: a fresh temporary one, removed afterwards).
    #[arg(long)]
    data_dir: Option<PathBuf>,
    /// Seed of every random choice.
    #[arg(long, default_value_t = 1)]
    seed: u64,
}

fn parse_duration(s: &str) -> Result<Duration, String> {
    let (number, unit) = match s.strip_suffix('m') {
        Some(n) => (n, 60),
        None => (s.strip_suffix('s').unwrap_or(s), 1),
    };
    number
        .parse::<u64>()
        .map(|n| Duration::from_secs(n * unit))
        .map_err(|_| format!("`{s}` is not a duration like 90, 90s or 5m"))
}

#[derive(Debug, Default)]
struct Counters {
    ops: AtomicU64,
    acked: AtomicU64,
    unknown: AtomicU64,
    checks: AtomicU64,
}

/// What every task shares.
#[derive(Debug)]
struct Soak {
    http: reqwest::Client,
    base: RwLock<String>,
    pool: Vec<(String, Bytes)>,
    /// Clients hold it for reading during an operation; the restarter
    /// takes it for writing to pause them while it restarts and checks.
    gate: tokio::sync::RwLock<()>,
    /// `models[client][repo]`.
    models: Vec<Vec<Mutex<RepoModel>>>,
    stop: AtomicBool,
    counters: Counters,
    violations: Mutex<Vec<String>>,
}

/// The outcome of one request: an answer, or none (the process died).
type Answer = Option<(StatusCode, reqwest::header::HeaderMap, Bytes)>;

impl Soak {
    fn url(&self, path: &str) -> String {
        if path.starts_with("http://") {
            path.to_owned()
        } else {
            format!("{}{path}", self.base.read().unwrap())
        }
    }

    fn violation(&self, what: String) {
        eprintln!("VIOLATION: {what}");
        self.violations.lock().unwrap().push(what);
    }

    fn repo_name(client: usize, repo: usize) -> String {
        format!("soak/c{client}/r{repo}")
    }

    /// Sends a request and reads the whole answer; `None` when the
    /// connection failed, i.e. the outcome is unknown.
    async fn send(&self, req: reqwest::RequestBuilder) -> Answer {
        let resp = req.send().await.ok()?;
        let status = resp.status();
        let headers = resp.headers().clone();
        let body = resp.bytes().await.ok()?;
        Some((status, headers, body))
    }

    /// Expects `want` (or no answer); anything else is a violation.
    /// Returns whether the request was acknowledged.
    fn acked(&self, answer: &Answer, want: StatusCode, what: &str) -> Option<bool> {
        match answer {
            None => Some(false),
            Some((status, _, _)) if *status == want => Some(true),
            Some((status, _, body)) => {
                self.violation(format!(
                    "{what}: answered {status}, expected {want}: {}",
                    String::from_utf8_lossy(body)
                ));
                None
            }
        }
    }

    fn count(&self, acked: bool) {
        self.counters.ops.fetch_add(1, Ordering::Relaxed);
        let counter = if acked {
            &self.counters.acked
        } else {
            &self.counters.unknown
        };
        counter.fetch_add(1, Ordering::Relaxed);
    }
}

/// One client: random operations until told to stop, each under the
/// gate so that the restarter can pause them all.
async fn client_loop(soak: Arc<Soak>, client: usize, seed: u64) {
    let mut rng = Rng::new(seed ^ ((client as u64 + 1) * 7919));
    let mut n = 0;
    while !soak.stop.load(Ordering::Relaxed) {
        let _running = soak.gate.read().await;
        n += 1;
        match operation(&soak, &mut rng, client, n).await {
            Some(acked) => soak.count(acked),
            None => {
                soak.counters.ops.fetch_add(1, Ordering::Relaxed);
            }
        }
    }
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let binary = args.binary.clone().unwrap_or_else(default_binary);
    if !binary.exists() {
        bail!(
            "{} does not exist; build it with `cargo build --release -p rbee-registry`",
            binary.display()
        );
    }
    let temp = tempfile::tempdir()?;
    let root = args
        .data_dir
        .clone()
        .unwrap_or_else(|| temp.path().to_owned());
    std::fs::create_dir_all(&root)?;
    let soak = Arc::new(Soak {
        http: reqwest::Client::builder()
            .timeout(Duration::from_secs(60))
            .build()?,
        base: RwLock::new(String::new()),
        pool: content_pool(),
        gate: tokio::sync::RwLock::new(()),
        models: (0..args.clients)
            .map(|_| (0..2).map(|_| Mutex::new(RepoModel::default())).collect())
            .collect(),
        stop: AtomicBool::new(false),
        counters: Counters::default(),
        violations: Mutex::new(Vec::new()),
    });
    let mut registry = Registry {
        binary,
        data_dir: root.join("data"),
        log: root.join("registry.log"),
        child: None,
    };
    registry.start(&soak).await?;
    println!(
        "soak: {} clients for {}s, a restart every {}s, data in {}",
        args.clients,
        args.duration.as_secs(),
        args.restart_every.as_secs(),
        root.display()
    );

    let clients: Vec<_> = (0..args.clients)
        .map(|c| tokio::spawn(client_loop(soak.clone(), c, args.seed)))
        .collect();
    let started = Instant::now();
    let mut rng = Rng::new(args.seed);
    let (mut kills, mut terms) = (0, 0);
    loop {
        let left = args.duration.saturating_sub(started.elapsed());
        if left.is_zero() {
            break;
        }
        tokio::time::sleep(left.min(args.restart_every)).await;
        let done = started.elapsed() >= args.duration;
        if done {
            // The clients stop first, so the last check sees a quiet registry.
            soak.stop.store(true, Ordering::Relaxed);
            for c in clients.iter() {
                while !c.is_finished() {
                    tokio::time::sleep(Duration::from_millis(10)).await;
                }
            }
        }
        let graceful = !done && rng.next().is_multiple_of(args.sigterm_one_in.max(1));
        // Stopped while the clients run, so requests are cut off mid-way.
        registry.stop(graceful).await?;
        if graceful {
            terms += 1
        } else {
            kills += 1
        }
        let _paused = soak.gate.write().await;
        registry.start(&soak).await?;
        let found = check_all(&soak).await;
        println!(
            "soak: {:>4}s  restart {:>2} ({})  ops {:>7}  acked {:>7}  unknown {:>5}  checks {:>8}  new violations {found}",
            started.elapsed().as_secs(),
            kills + terms,
            if graceful { "SIGTERM" } else { "kill -9" },
            soak.counters.ops.load(Ordering::Relaxed),
            soak.counters.acked.load(Ordering::Relaxed),
            soak.counters.unknown.load(Ordering::Relaxed),
            soak.counters.checks.load(Ordering::Relaxed),
        );
        if done {
            break;
        }
    }
    for c in clients {
        c.await?;
    }
    registry.stop(true).await?;

    let violations = soak.violations.lock().unwrap();
    println!(
        "soak: done in {}s: {} operations ({} acknowledged, {} unknown), {} restarts ({kills} kill -9, {terms} SIGTERM), {} reads checked, {} violations",
        started.elapsed().as_secs(),
        soak.counters.ops.load(Ordering::Relaxed),
        soak.counters.acked.load(Ordering::Relaxed),
        soak.counters.unknown.load(Ordering::Relaxed),
        kills + terms,
        soak.counters.checks.load(Ordering::Relaxed),
        violations.len(),
    );
    for v in violations.iter().take(30) {
        println!("  {v}");
    }
    if !violations.is_empty() {
        // Exiting here skips the temporary directory's clean-up on purpose.
        println!("soak: data and registry.log kept in {}", root.display());
        std::process::exit(1);
    }
    Ok(())
}
