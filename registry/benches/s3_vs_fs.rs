//! `cargo bench -p rbee-registry --bench s3_vs_fs`
//!
//! The release `rbee-registry` on its two backends in one run: a data
//! directory, and a bucket of an `s3s-fs` on loopback (installed by
//! `scripts/install-test-deps.sh`; both on the same disk). Measures:
//!
//! 1. monolithic push of a 256 MiB blob (POST, then PUT `?digest=` with the
//!    body streamed), median MB/s over `RBEE_BENCH_PUSH_REPS` (3);
//! 2. pull of that blob, median MB/s over `RBEE_BENCH_PULL_REPS` (3);
//! 3. the peak RSS (`VmHWM`) of a fresh S3 node during 4 concurrent
//!    1 GiB uploads (`RBEE_BENCH_BIG_MIB`, 1024), against the target of
//!    128 MiB.
//!
//! and prints them as Markdown with the S3/filesystem ratios (recorded in
//! `docs/benchmarks.md`). Needs `cargo build --release -p rbee-registry`
//! first (or `RBEE_REGISTRY_BIN`).

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use bytes::Bytes;
use futures_util::StreamExt;
use rbee_registry::storage::s3_server::{BUCKET, S3TestServer};
use sha2::{Digest as _, Sha256};

const MIB: u64 = 1 << 20;
const REPO: &str = "bench/blobs";

fn env_num(name: &str, default: u64) -> u64 {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

fn registry_binary() -> PathBuf {
    if let Some(path) = std::env::var_os("RBEE_REGISTRY_BIN") {
        return PathBuf::from(path);
    }
    let exe = std::env::current_exe().expect("own path");
    exe.parent()
        .and_then(Path::parent)
        .map(|p| p.join("rbee-registry"))
        .expect("target dir")
}

/// Pseudo-random bytes, the same for the same seed and size.
fn chunk(seed: u64, index: u64) -> Bytes {
    let mut state = seed ^ index.wrapping_mul(0x9e37_79b9_7f4a_7c15);
    let mut out = Vec::with_capacity(MIB as usize);
    while out.len() < MIB as usize {
        state = state.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = state;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        out.extend_from_slice(&(z ^ (z >> 31)).to_le_bytes());
    }
    Bytes::from(out)
}

fn digest_of(seed: u64, mib: u64) -> String {
    let mut h = Sha256::new();
    for i in 0..mib {
        h.update(chunk(seed, i));
    }
    format!("sha256:{}", hex::encode(h.finalize()))
}

fn body(seed: u64, mib: u64) -> reqwest::Body {
    reqwest::Body::wrap_stream(
        futures_util::stream::iter(0..mib).map(move |i| Ok::<_, std::io::Error>(chunk(seed, i))),
    )
}

struct Node {
    child: Child,
    base: String,
}

impl Drop for Node {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

async fn start(bin: &Path, args: &[String], env: &[(&str, String)]) -> Result<Node> {
    let port = std::net::TcpListener::bind("127.0.0.1:0")?
        .local_addr()?
        .port();
    let child = Command::new(bin)
        .args(["serve", "--listen", &format!("127.0.0.1:{port}")])
        .arg("--dev-open-loopback")
        .args(args)
        .envs(env.iter().cloned())
        .env("RBEE_LOG", "warn")
        .stdout(Stdio::null())
        .spawn()
        .with_context(|| format!("starting {}", bin.display()))?;
    let node = Node {
        child,
        base: format!("http://127.0.0.1:{port}"),
    };
    let client = reqwest::Client::new();
    for _ in 0..400 {
        if client
            .get(format!("{}/v2/", node.base))
            .send()
            .await
            .is_ok_and(|r| r.status().is_success())
        {
            return Ok(node);
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    bail!("{} did not start", bin.display())
}

async fn push(
    client: &reqwest::Client,
    base: &str,
    seed: u64,
    mib: u64,
    digest: &str,
) -> Result<()> {
    let resp = client
        .post(format!("{base}/v2/{REPO}/blobs/uploads/"))
        .send()
        .await?;
    let location = resp
        .headers()
        .get("location")
        .context("no Location")?
        .to_str()?
        .to_owned();
    let url = if location.starts_with("http") {
        location
    } else {
        format!("{base}{location}")
    };
    let sep = if url.contains('?') { '&' } else { '?' };
    let resp = client
        .put(format!("{url}{sep}digest={digest}"))
        .header("content-type", "application/octet-stream")
        .body(body(seed, mib))
        .send()
        .await?;
    if resp.status() != reqwest::StatusCode::CREATED {
        bail!("push answered {}: {}", resp.status(), resp.text().await?);
    }
    Ok(())
}

async fn pull(client: &reqwest::Client, base: &str, digest: &str) -> Result<u64> {
    let resp = client
        .get(format!("{base}/v2/{REPO}/blobs/{digest}"))
        .send()
        .await?
        .error_for_status()?;
    let mut stream = resp.bytes_stream();
    let mut n = 0;
    while let Some(c) = stream.next().await {
        n += c?.len() as u64;
    }
    Ok(n)
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

fn peak_rss_mib(pid: u32) -> Result<f64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status"))?;
    let kib: f64 = status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .context("no VmHWM")?
        .trim()
        .trim_end_matches("kB")
        .trim()
        .parse()?;
    Ok(kib / 1024.0)
}

fn loadavg() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .map(|s| s.split_whitespace().take(3).collect::<Vec<_>>().join(" "))
        .unwrap_or_default()
}

async fn bench() -> Result<()> {
    let bin = registry_binary();
    if !bin.is_file() {
        bail!(
            "{} is missing: cargo build --release -p rbee-registry first",
            bin.display()
        );
    }
    let (push_reps, pull_reps) = (
        env_num("RBEE_BENCH_PUSH_REPS", 3),
        env_num("RBEE_BENCH_PULL_REPS", 3),
    );
    let (mib, big_mib) = (
        env_num("RBEE_BENCH_BLOB_MIB", 256),
        env_num("RBEE_BENCH_BIG_MIB", 1024),
    );
    println!(
        "# rbee-registry: S3 (s3s-fs) vs filesystem ({})",
        chrono::Local::now().format("%Y-%m-%d %H:%M")
    );
    println!("load average at start: {}", loadavg());
    let data = tempfile::tempdir()?;
    let server = S3TestServer::start();
    let s3_args = |prefix: &str| {
        vec![
            "--storage".to_owned(),
            format!("s3://{BUCKET}/{prefix}"),
            "--s3-endpoint".into(),
            server.endpoint.clone(),
            "--s3-path-style".into(),
        ]
    };
    let env = server.process_env();
    let fs_node = start(
        &bin,
        &["--data-dir".into(), data.path().display().to_string()],
        &[],
    )
    .await?;
    let s3_node = start(&bin, &s3_args("bench"), &env).await?;
    let client = reqwest::Client::builder().no_proxy().build()?;

    let mut rows = Vec::new();
    for (label, node) in [("filesystem", &fs_node), ("S3 (s3s-fs)", &s3_node)] {
        let mut pushes = Vec::new();
        let mut digest = String::new();
        for rep in 0..push_reps {
            let seed = 100 + rep;
            digest = digest_of(seed, mib);
            let started = Instant::now();
            push(&client, &node.base, seed, mib, &digest).await?;
            pushes.push((mib * MIB) as f64 / 1e6 / started.elapsed().as_secs_f64());
        }
        let mut pulls = Vec::new();
        for _ in 0..pull_reps {
            let started = Instant::now();
            let n = pull(&client, &node.base, &digest).await?;
            anyhow::ensure!(n == mib * MIB, "pulled {n} bytes");
            pulls.push(n as f64 / 1e6 / started.elapsed().as_secs_f64());
        }
        rows.push((label, median(pushes), median(pulls)));
    }
    println!();
    println!(
        "| {mib} MiB blob | push MB/s (median of {push_reps}) | pull MB/s (median of {pull_reps}) |"
    );
    println!("|---|---:|---:|");
    for (label, p, q) in &rows {
        println!("| {label} | {p:.0} | {q:.0} |");
    }
    println!(
        "| S3 / filesystem | {:.2} | {:.2} |",
        rows[1].1 / rows[0].1,
        rows[1].2 / rows[0].2
    );
    drop(fs_node);
    drop(s3_node);

    // A fresh node, so its peak RSS is this load's.
    let node = start(&bin, &s3_args("rss"), &env).await?;
    let pid = node.child.id();
    let idle = peak_rss_mib(pid)?;
    let digest = digest_of(7, big_mib);
    let started = Instant::now();
    let uploads: Vec<_> = (0..4)
        .map(|_| {
            let (client, base, digest) = (client.clone(), node.base.clone(), digest.clone());
            tokio::spawn(async move { push(&client, &base, 7, big_mib, &digest).await })
        })
        .collect();
    for u in uploads {
        u.await??;
    }
    let secs = started.elapsed().as_secs_f64();
    let peak = peak_rss_mib(pid)?;
    println!();
    println!(
        "4 concurrent {big_mib} MiB uploads on S3: {secs:.1} s, peak RSS {peak:.0} MiB (idle {idle:.0} MiB; target <= 128 MiB)"
    );
    println!("load average at end: {}", loadavg());
    Ok(())
}

fn main() -> Result<()> {
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?
        .block_on(bench())
}
