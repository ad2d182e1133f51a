//! `cargo bench -p rbee-registry --bench vs_distribution`
//!
//! Starts the release `rbee-registry` binary, CNCF Distribution 2.8
//! (`docker-registry`) and nginx (`sendfile on`, the practical limit for a
//! large pull) on free loopback ports, each with temporary storage, and
//! measures them in one run with the same client:
//!
//! 1. monolithic push of a 256 MiB blob (POST, then PUT `?digest=` with the
//!    body streamed from a file), median MB/s over repetitions;
//! 2. pull of a 256 MiB blob, median MB/s, and the server's CPU seconds
//!    (user + sys) per GiB served;
//! 3. `HEAD /v2/<name>/manifests/<tag>` at 32 connections: requests/s and
//!    p99 latency, from the bench's own raw-socket client (wrk 4.1 cannot do
//!    HEAD), with `wrk` measuring GET of the same manifest as a cross-check;
//! 4. the peak RSS of each server during 4 concurrent 1 GiB pulls.
//!
//! It prints the figures, the ratios and the targets of issue 2 as Markdown
//! (see `docs/benchmarks.md` for the method and the recorded figures).
//!
//! Knobs (environment): `RBEE_REGISTRY_BIN` (binary to test, default
//! `<target>/release/rbee-registry`), `RBEE_BENCH_PUSH_REPS` (5),
//! `RBEE_BENCH_PULL_REPS` (10), `RBEE_BENCH_BLOB_MIB` (256),
//! `RBEE_BENCH_BIG_MIB` (1024), `RBEE_BENCH_HEAD_SECS` (10),
//! `RBEE_BENCH_HEAD_ROUNDS` (1), `RBEE_BENCH_REPORT` (also write the Markdown
//! to this file), `RBEE_BENCH_KEEP=1` (keep the temporary folder).

mod client;
mod data;
mod load;
mod measure;
mod report;
mod servers;
mod sync_trace;

use std::fs;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::str::FromStr;
use std::time::Duration;

use anyhow::{Context, Result, ensure};

use crate::client::push_small_image;
use crate::data::write_random;
use crate::report::{Run, loadavg, machine, say};
use crate::servers::{clock_ticks_per_second, start_distribution, start_nginx, start_ours};

const MIB: u64 = 1 << 20;
const GIB: f64 = (1u64 << 30) as f64;
const REPO: &str = "bench/blobs";
const TAG: &str = "v1";
const OCI_MANIFEST: &str = "application/vnd.oci.image.manifest.v1+json";
const HEAD_CONNECTIONS: u32 = 32;
const RSS_SAMPLE_EVERY: Duration = Duration::from_millis(50);

// ---------------------------------------------------------------------------
// Settings and the binaries under test

struct Settings {
    push_reps: usize,
    pull_reps: usize,
    blob_mib: u64,
    big_mib: u64,
    head_secs: u64,
    head_rounds: usize,
    pullers: usize,
}

fn env_num<T: FromStr>(name: &str, default: T) -> Result<T> {
    match std::env::var(name) {
        Ok(v) => v
            .trim()
            .parse()
            .ok()
            .with_context(|| format!("{name}={v} is not a number")),
        Err(_) => Ok(default),
    }
}

impl Settings {
    fn from_env() -> Result<Settings> {
        let s = Settings {
            push_reps: env_num("RBEE_BENCH_PUSH_REPS", 5)?,
            pull_reps: env_num("RBEE_BENCH_PULL_REPS", 10)?,
            blob_mib: env_num("RBEE_BENCH_BLOB_MIB", 256)?,
            big_mib: env_num("RBEE_BENCH_BIG_MIB", 1024)?,
            head_secs: env_num("RBEE_BENCH_HEAD_SECS", 10)?,
            head_rounds: env_num("RBEE_BENCH_HEAD_ROUNDS", 1)?,
            pullers: 4,
        };
        ensure!(
            s.push_reps > 0 && s.pull_reps > 0 && s.head_rounds > 0,
            "repetitions must be at least 1"
        );
        ensure!(
            s.blob_mib > 0 && s.big_mib > 0 && s.head_secs > 0,
            "sizes and durations must be positive"
        );
        Ok(s)
    }
}

/// `<target>/release/rbee-registry`: the bench executable lives in
/// `<target>/release/deps/`.
fn registry_binary() -> Option<PathBuf> {
    if let Some(path) = std::env::var_os("RBEE_REGISTRY_BIN") {
        return Some(PathBuf::from(path));
    }
    let exe = std::env::current_exe().ok()?;
    Some(exe.parent()?.parent()?.join("rbee-registry"))
}

fn main() -> ExitCode {
    let bin = match registry_binary() {
        Some(bin) if bin.is_file() => bin,
        other => {
            let shown = other
                .map(|p| p.display().to_string())
                .unwrap_or_else(|| "<unknown>".into());
            eprintln!(
                "vs_distribution: the registry binary {shown} is missing.\n\
                 Build it first with the same target dir:\n    \
                 cargo build --release -p rbee-registry\n\
                 (or point RBEE_REGISTRY_BIN at a built rbee-registry)."
            );
            return ExitCode::from(2);
        }
    };
    for tool in ["docker-registry", "nginx", "wrk"] {
        if which(tool).is_none() {
            eprintln!(
                "vs_distribution: `{tool}` is not installed; install the Debian packages with\n    \
                 apt-get install docker-registry nginx wrk"
            );
            return ExitCode::from(2);
        }
    }
    let result = Settings::from_env().and_then(|settings| {
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .enable_all()
            .build()?;
        runtime.block_on(bench(&settings, &bin))
    });
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("vs_distribution: {e:#}");
            ExitCode::FAILURE
        }
    }
}

fn which(tool: &str) -> Option<PathBuf> {
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path)
        .chain([PathBuf::from("/usr/sbin"), PathBuf::from("/sbin")])
        .map(|dir| dir.join(tool))
        .find(|p| p.is_file())
}

// ---------------------------------------------------------------------------
// The benchmark

/// Runs the four measurements against the three servers and reports them.
async fn bench(s: &Settings, bin: &Path) -> Result<()> {
    let started = chrono::Local::now();
    let hz = clock_ticks_per_second();
    let tmp = tempfile::Builder::new().prefix("rbee-bench-").tempdir()?;
    let root = tmp.path().to_owned();
    let www = root.join("www");
    fs::create_dir_all(&www)?;
    let machine = machine(&root);
    let load_start = loadavg();
    let bin_age = fs::metadata(bin)
        .and_then(|m| m.modified())
        .ok()
        .map(|t| {
            chrono::DateTime::<chrono::Local>::from(t)
                .format("%Y-%m-%d %H:%M")
                .to_string()
        })
        .unwrap_or_default();
    say(format!(
        "# rbee-registry vs CNCF Distribution vs nginx ({})",
        started.format("%Y-%m-%d %H:%M")
    ));
    say(format!("machine: {machine}"));
    say(format!(
        "registry binary: {} (built {bin_age})",
        bin.display()
    ));
    say(format!("load average at start: {load_start}"));

    say(format!(
        "generating {} x {} MiB + {} MiB + 16 MiB of pseudo-random data in {} ...",
        s.push_reps,
        s.blob_mib,
        s.big_mib,
        www.display()
    ));
    let mut push_blobs = Vec::new();
    for i in 0..s.push_reps {
        push_blobs.push(write_random(
            &www.join(format!("push-{i}.bin")),
            s.blob_mib * MIB,
            i as u64 + 1,
        )?);
    }
    let big = write_random(&www.join("big.bin"), s.big_mib * MIB, 1000)?;
    let sync_check = write_random(&www.join("sync-check.bin"), 16 * MIB, 2000)?;

    let client = reqwest::Client::builder()
        .no_proxy()
        .connect_timeout(Duration::from_secs(5))
        .pool_max_idle_per_host(16)
        .build()?;
    // Declared after `tmp`, so they are stopped before it is removed.
    let mut ours = start_ours(bin, &root)?;
    let mut dist = start_distribution(&root)?;
    let mut nginx = start_nginx(&root, &www)?;
    ours.wait_ready(&client, "/v2/").await?;
    dist.wait_ready(&client, "/v2/").await?;
    nginx.wait_ready(&client, "/").await?;
    say(format!(
        "servers: rbee-registry {} (pid {}), Distribution {} (pid {}), nginx {} (pids {:?})",
        ours.base,
        ours.pid(),
        dist.base,
        dist.pid(),
        nginx.base,
        nginx.pids()
    ));
    let registries = [&ours, &dist];

    // Repository set-up, and the small image for the HEAD test.
    let mut head_urls = Vec::new();
    for server in registries {
        head_urls.push(
            push_small_image(&client, &server.base)
                .await
                .with_context(|| server.label)?,
        );
    }

    let pushes = measure::pushes(s, &client, registries, &push_blobs, &sync_check, &root).await?;
    let pulled = [&ours, &dist, &nginx];
    let pulls = measure::pulls(s, &client, pulled, &push_blobs[0], hz).await?;
    let manifest_load = measure::manifest_load(s, registries, &head_urls, &root).await?;
    let concurrent = measure::concurrent_pulls(s, &client, pulled, &big, hz).await?;
    let load_end = loadavg();
    drop(nginx);
    drop(dist);
    drop(ours);

    let run = Run {
        started,
        machine,
        load_start,
        load_end,
        bin_age,
    };
    report::publish(s, &run, &pushes, &pulls, &manifest_load, &concurrent)?;
    if std::env::var_os("RBEE_BENCH_KEEP").is_some() {
        say(format!("keeping {}", tmp.keep().display()));
    }
    Ok(())
}
