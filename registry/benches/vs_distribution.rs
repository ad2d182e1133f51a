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

use std::fmt::Write as _;
use std::fs;
use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitCode, Stdio};
use std::str::FromStr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail, ensure};
use reqwest::header::{ACCEPT, CONTENT_LENGTH, CONTENT_TYPE, LOCATION};
use sha2::{Digest as _, Sha256};

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
// Test data

struct Blob {
    path: PathBuf,
    size: u64,
    digest: String,
}

fn splitmix64(state: &mut u64) -> u64 {
    *state = state.wrapping_add(0x9E37_79B9_7F4A_7C15);
    let mut z = *state;
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

/// Writes `size` pseudo-random (incompressible) bytes, flushed to disk so
/// that their write-back does not disturb the measurements.
fn write_random(path: &Path, size: u64, seed: u64) -> Result<Blob> {
    let mut state = seed;
    let mut state = splitmix64(&mut state);
    let mut file =
        fs::File::create(path).with_context(|| format!("creating {}", path.display()))?;
    let mut buf = vec![0u8; MIB as usize];
    let mut hasher = Sha256::new();
    let mut left = size;
    while left > 0 {
        let n = left.min(MIB) as usize;
        for word in buf[..n].chunks_mut(8) {
            let bytes = splitmix64(&mut state).to_le_bytes();
            word.copy_from_slice(&bytes[..word.len()]);
        }
        hasher.update(&buf[..n]);
        file.write_all(&buf[..n])?;
        left -= n as u64;
    }
    file.sync_all()?;
    Ok(Blob {
        path: path.to_owned(),
        size,
        digest: format!("sha256:{}", hex::encode(hasher.finalize())),
    })
}

/// Copies `blob` to a new file in `dir` through a 1 MiB buffer, then fsyncs
/// it once: how fast this disk takes a durable 256 MiB file written the
/// simple way (a server that starts write-back while receiving can beat it).
/// Returns MB/s.
fn disk_ceiling(blob: &Blob, dir: &Path) -> Result<f64> {
    use std::io::Read as _;
    let dst = dir.join("disk-ceiling.bin");
    let start = Instant::now();
    let mut src = fs::File::open(&blob.path)?;
    let mut out = fs::File::create(&dst)?;
    let mut buf = vec![0u8; MIB as usize];
    loop {
        let n = src.read(&mut buf)?;
        if n == 0 {
            break;
        }
        out.write_all(&buf[..n])?;
    }
    out.sync_all()?;
    let elapsed = start.elapsed();
    drop(out);
    fs::remove_file(&dst)?;
    Ok(mb_per_s(blob.size, elapsed))
}

fn sha256_digest(bytes: &[u8]) -> String {
    format!("sha256:{}", hex::encode(Sha256::digest(bytes)))
}

// ---------------------------------------------------------------------------
// Processes: the servers, their CPU time and memory

/// A server started by the bench; stopped (TERM, then KILL, with its
/// children) when dropped, also when the bench panics.
struct Server {
    label: &'static str,
    child: Option<Child>,
    base: String,
    log: PathBuf,
}

impl Server {
    fn spawn(label: &'static str, mut cmd: Command, port: u16, log: PathBuf) -> Result<Server> {
        let out = fs::File::create(&log)?;
        let err = out.try_clone()?;
        let child = cmd
            .stdin(Stdio::null())
            .stdout(out)
            .stderr(err)
            .spawn()
            .with_context(|| format!("starting {label}: {cmd:?}"))?;
        Ok(Server {
            label,
            child: Some(child),
            base: format!("http://127.0.0.1:{port}"),
            log,
        })
    }

    fn pid(&self) -> u32 {
        self.child.as_ref().map_or(0, Child::id)
    }

    /// The server's process and its descendants (nginx workers).
    fn pids(&self) -> Vec<u32> {
        process_tree(self.pid())
    }

    fn cpu_ticks(&self) -> Result<u64> {
        self.pids().into_iter().map(cpu_ticks).sum()
    }

    fn log_tail(&self) -> String {
        let text = fs::read_to_string(&self.log).unwrap_or_default();
        let lines: Vec<&str> = text.lines().collect();
        lines[lines.len().saturating_sub(20)..].join("\n")
    }

    /// Waits until the server answers HTTP at all.
    async fn wait_ready(&mut self, client: &reqwest::Client, path: &str) -> Result<()> {
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            if let Some(child) = self.child.as_mut()
                && let Some(status) = child.try_wait()?
            {
                bail!(
                    "{} exited at start ({status}); its log:\n{}",
                    self.label,
                    self.log_tail()
                );
            }
            if client
                .get(format!("{}{path}", self.base))
                .send()
                .await
                .is_ok()
            {
                return Ok(());
            }
            if Instant::now() > deadline {
                bail!(
                    "{} did not answer within 30 s; its log:\n{}",
                    self.label,
                    self.log_tail()
                );
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    fn stop(&mut self) {
        let Some(mut child) = self.child.take() else {
            return;
        };
        let tree = process_tree(child.id());
        signal(child.id(), "TERM");
        let deadline = Instant::now() + Duration::from_secs(5);
        loop {
            match child.try_wait() {
                Ok(None) if Instant::now() < deadline => {
                    std::thread::sleep(Duration::from_millis(50))
                }
                Ok(Some(_)) => break,
                _ => {
                    let _ = child.kill();
                    let _ = child.wait();
                    break;
                }
            }
        }
        // nginx workers outlive a master that was killed.
        for pid in tree.into_iter().skip(1) {
            if Path::new(&format!("/proc/{pid}")).exists() {
                signal(pid, "KILL");
            }
        }
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        self.stop();
    }
}

fn signal(pid: u32, sig: &str) {
    let _ = Command::new("kill")
        .arg(format!("-{sig}"))
        .arg(pid.to_string())
        .stderr(Stdio::null())
        .status();
}

/// The fields of `/proc/<pid>/stat` after the command name.
fn stat_fields(pid: &str) -> Option<Vec<String>> {
    let stat = fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let rest = &stat[stat.rfind(')')? + 1..];
    Some(rest.split_whitespace().map(str::to_owned).collect())
}

fn process_tree(root: u32) -> Vec<u32> {
    let mut parents: Vec<(u32, u32)> = Vec::new();
    if let Ok(entries) = fs::read_dir("/proc") {
        for entry in entries.flatten() {
            let name = entry.file_name();
            let Some(name) = name.to_str() else { continue };
            let Ok(pid) = name.parse::<u32>() else {
                continue;
            };
            if let Some(ppid) = stat_fields(name).and_then(|f| f.get(1)?.parse().ok()) {
                parents.push((pid, ppid));
            }
        }
    }
    let mut tree = vec![root];
    let mut i = 0;
    while i < tree.len() {
        let parent = tree[i];
        tree.extend(
            parents
                .iter()
                .filter(|(_, ppid)| *ppid == parent)
                .map(|(pid, _)| *pid),
        );
        i += 1;
    }
    tree
}

/// utime + stime of a whole process (all its threads), in clock ticks.
fn cpu_ticks(pid: u32) -> Result<u64> {
    let fields =
        stat_fields(&pid.to_string()).with_context(|| format!("reading /proc/{pid}/stat"))?;
    let tick =
        |i: usize| -> Result<u64> { Ok(fields.get(i).context("short /proc stat")?.parse()?) };
    // Fields 14 and 15 of stat(5); the remainder starts at field 3.
    Ok(tick(11)? + tick(12)?)
}

fn self_cpu_ticks() -> Result<u64> {
    cpu_ticks(std::process::id())
}

fn clock_ticks_per_second() -> f64 {
    Command::new("getconf")
        .arg("CLK_TCK")
        .output()
        .ok()
        .and_then(|o| String::from_utf8(o.stdout).ok())
        .and_then(|s| s.trim().parse().ok())
        .unwrap_or(100.0)
}

/// A `kB` line of `/proc/<pid>/status` (`VmRSS`, `VmHWM`), in KiB.
fn status_kib(pid: u32, key: &str) -> u64 {
    let Ok(status) = fs::read_to_string(format!("/proc/{pid}/status")) else {
        return 0;
    };
    status
        .lines()
        .find_map(|l| l.strip_prefix(key)?.strip_prefix(':'))
        .and_then(|v| v.split_whitespace().next()?.parse().ok())
        .unwrap_or(0)
}

// ---------------------------------------------------------------------------
// Starting the three servers

fn free_port() -> Result<u16> {
    Ok(std::net::TcpListener::bind("127.0.0.1:0")?
        .local_addr()?
        .port())
}

fn start_ours(bin: &Path, root: &Path) -> Result<Server> {
    let port = free_port()?;
    let data = root.join("ours");
    let mut cmd = Command::new(bin);
    cmd.arg("serve")
        .arg("--listen")
        .arg(format!("127.0.0.1:{port}"))
        .arg("--data-dir")
        .arg(&data)
        .env("RBEE_LOG", "warn")
        .current_dir(root);
    Server::spawn("rbee-registry", cmd, port, root.join("ours.log"))
}

fn start_distribution(root: &Path) -> Result<Server> {
    let port = free_port()?;
    let data = root.join("distribution");
    fs::create_dir_all(&data)?;
    // The Debian package's defaults (in-memory blob descriptor cache), with
    // warnings only and no access log: our registry logs no request either.
    let config = format!(
        "version: 0.1\n\
         log:\n  level: warn\n  accesslog:\n    disabled: true\n\
         storage:\n  filesystem:\n    rootdirectory: {data}\n  delete:\n    enabled: true\n  \
         cache:\n    blobdescriptor: inmemory\n\
         http:\n  addr: 127.0.0.1:{port}\n",
        data = data.display()
    );
    let config_path = root.join("distribution.yml");
    fs::write(&config_path, config)?;
    let mut cmd = Command::new("docker-registry");
    cmd.arg("serve").arg(&config_path).current_dir(root);
    Server::spawn("Distribution", cmd, port, root.join("distribution.log"))
}

fn start_nginx(root: &Path, www: &Path) -> Result<Server> {
    let port = free_port()?;
    let prefix = root.join("nginx");
    fs::create_dir_all(&prefix)?;
    let p = prefix.display();
    let config = format!(
        "user root;\n\
         worker_processes auto;\n\
         pid {p}/nginx.pid;\n\
         error_log {p}/error.log warn;\n\
         events {{ worker_connections 256; }}\n\
         http {{\n\
         \x20   access_log off;\n\
         \x20   sendfile on;\n\
         \x20   tcp_nopush on;\n\
         \x20   keepalive_requests 100000;\n\
         \x20   default_type application/octet-stream;\n\
         \x20   client_body_temp_path {p}/body;\n\
         \x20   proxy_temp_path {p}/proxy;\n\
         \x20   fastcgi_temp_path {p}/fastcgi;\n\
         \x20   uwsgi_temp_path {p}/uwsgi;\n\
         \x20   scgi_temp_path {p}/scgi;\n\
         \x20   server {{\n\
         \x20       listen 127.0.0.1:{port};\n\
         \x20       root {www};\n\
         \x20   }}\n\
         }}\n",
        www = www.display()
    );
    let config_path = prefix.join("nginx.conf");
    fs::write(&config_path, config)?;
    let mut cmd = Command::new("nginx");
    cmd.arg("-c")
        .arg(&config_path)
        .arg("-p")
        .arg(&prefix)
        .arg("-e")
        .arg(prefix.join("error.log"))
        .arg("-g")
        .arg("daemon off;")
        .current_dir(root);
    Server::spawn("nginx", cmd, port, root.join("nginx.log"))
}

// ---------------------------------------------------------------------------
// The client: the same code for every server

fn upload_url(base: &str, location: &str, digest: &str) -> String {
    let url = if location.starts_with("http://") || location.starts_with("https://") {
        location.to_owned()
    } else {
        format!("{base}{location}")
    };
    let sep = if url.contains('?') { '&' } else { '?' };
    format!("{url}{sep}digest={digest}")
}

/// POST /blobs/uploads/, then PUT `?digest=` with the whole body.
async fn push(
    client: &reqwest::Client,
    base: &str,
    digest: &str,
    size: u64,
    body: reqwest::Body,
) -> Result<()> {
    let resp = client
        .post(format!("{base}/v2/{REPO}/blobs/uploads/"))
        .header(CONTENT_LENGTH, 0)
        .send()
        .await?;
    ensure!(
        resp.status().as_u16() == 202,
        "POST upload answered {}: {}",
        resp.status(),
        resp.text().await?
    );
    let location = resp
        .headers()
        .get(LOCATION)
        .and_then(|v| v.to_str().ok())
        .context("no Location on 202")?
        .to_owned();
    let resp = client
        .put(upload_url(base, &location, digest))
        .header(CONTENT_TYPE, "application/octet-stream")
        .header(CONTENT_LENGTH, size)
        .body(body)
        .send()
        .await?;
    let status = resp.status();
    let echoed = resp
        .headers()
        .get("docker-content-digest")
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned);
    ensure!(
        status.as_u16() == 201,
        "PUT upload answered {status}: {}",
        resp.text().await?
    );
    ensure!(
        echoed.as_deref() == Some(digest),
        "PUT answered digest {echoed:?}, expected {digest}"
    );
    Ok(())
}

/// Pushes a file, its body streamed from disk; returns the elapsed time.
async fn push_file(client: &reqwest::Client, base: &str, blob: &Blob) -> Result<Duration> {
    let start = Instant::now();
    let file = tokio::fs::File::open(&blob.path).await?;
    let stream = tokio_util::io::ReaderStream::with_capacity(file, MIB as usize);
    push(
        client,
        base,
        &blob.digest,
        blob.size,
        reqwest::Body::wrap_stream(stream),
    )
    .await?;
    Ok(start.elapsed())
}

async fn push_bytes(client: &reqwest::Client, base: &str, bytes: &[u8]) -> Result<String> {
    let digest = sha256_digest(bytes);
    push(
        client,
        base,
        &digest,
        bytes.len() as u64,
        reqwest::Body::from(bytes.to_vec()),
    )
    .await?;
    Ok(digest)
}

/// GETs `url`, discarding the bytes (hashing them when `verify`); returns
/// the byte count and, when verifying, the digest.
async fn pull(client: reqwest::Client, url: String, verify: bool) -> Result<(u64, Option<String>)> {
    let mut resp = client.get(&url).send().await?;
    ensure!(
        resp.status().as_u16() == 200,
        "GET {url} answered {}",
        resp.status()
    );
    let mut hasher = verify.then(Sha256::new);
    let mut n = 0u64;
    while let Some(chunk) = resp.chunk().await? {
        n += chunk.len() as u64;
        if let Some(h) = hasher.as_mut() {
            h.update(&chunk);
        }
    }
    Ok((
        n,
        hasher.map(|h| format!("sha256:{}", hex::encode(h.finalize()))),
    ))
}

async fn check_blob(client: &reqwest::Client, base: &str, blob: &Blob) -> Result<()> {
    let resp = client
        .head(format!("{base}/v2/{REPO}/blobs/{}", blob.digest))
        .send()
        .await?;
    let len = resp
        .headers()
        .get(CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok()?.parse::<u64>().ok());
    ensure!(
        resp.status().as_u16() == 200,
        "HEAD blob answered {}",
        resp.status()
    );
    ensure!(
        len == Some(blob.size),
        "HEAD blob Content-Length {len:?}, expected {}",
        blob.size
    );
    Ok(())
}

/// Pushes a config blob, a small layer and an OCI manifest tagged `TAG`.
async fn push_small_image(client: &reqwest::Client, base: &str) -> Result<String> {
    let config =
        br#"{"architecture":"amd64","os":"linux","rootfs":{"type":"layers","diff_ids":[]}}"#;
    let layer = b"rbee benchmark layer\n";
    let config_digest = push_bytes(client, base, config).await?;
    let layer_digest = push_bytes(client, base, layer).await?;
    let manifest = serde_json::to_vec(&serde_json::json!({
        "schemaVersion": 2,
        "mediaType": OCI_MANIFEST,
        "config": {
            "mediaType": "application/vnd.oci.image.config.v1+json",
            "digest": config_digest,
            "size": config.len(),
        },
        "layers": [{
            "mediaType": "application/vnd.oci.image.layer.v1.tar",
            "digest": layer_digest,
            "size": layer.len(),
        }],
        "annotations": { "org.opencontainers.image.title": "rbee benchmark" },
    }))?;
    let url = format!("{base}/v2/{REPO}/manifests/{TAG}");
    let resp = client
        .put(&url)
        .header(CONTENT_TYPE, OCI_MANIFEST)
        .body(manifest.clone())
        .send()
        .await?;
    ensure!(
        resp.status().as_u16() == 201,
        "PUT manifest answered {}: {}",
        resp.status(),
        resp.text().await?
    );
    let digest = sha256_digest(&manifest);
    let resp = client
        .head(&url)
        .header(ACCEPT, OCI_MANIFEST)
        .send()
        .await?;
    let echoed = resp
        .headers()
        .get("docker-content-digest")
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned);
    ensure!(
        resp.status().as_u16() == 200,
        "HEAD manifest answered {}",
        resp.status()
    );
    ensure!(
        echoed.as_deref() == Some(digest.as_str()),
        "HEAD manifest digest {echoed:?}, expected {digest}"
    );
    Ok(url)
}

// ---------------------------------------------------------------------------
// Durability check: which sync calls a push makes (strace, untimed)

struct SyncTrace {
    calls: usize,
    targets: Vec<String>,
}

impl SyncTrace {
    fn describe(&self) -> String {
        if self.calls == 0 {
            return "none".into();
        }
        format!("{} ({})", self.calls, self.targets.join(", "))
    }
}

/// Replaces upload ids and digests in a path by `<id>`.
fn shorten_path(path: &str) -> String {
    path.split('/')
        .map(|part| {
            let long_id =
                part.len() >= 32 && part.chars().all(|c| c.is_ascii_hexdigit() || c == '-');
            if long_id { "<id>" } else { part }
        })
        .collect::<Vec<_>>()
        .join("/")
}

/// Pushes `blob` while `strace` counts fsync-like calls of the server. `None`
/// when strace is missing or may not attach.
async fn traced_push(
    client: &reqwest::Client,
    server: &Server,
    blob: &Blob,
    root: &Path,
) -> Result<Option<SyncTrace>> {
    if which("strace").is_none() {
        return Ok(None);
    }
    let out = root.join(format!("strace-{}.txt", server.pid()));
    let err_path = root.join(format!("strace-{}.err", server.pid()));
    let mut strace = Command::new("strace")
        .args([
            "-f",
            "-y",
            "-e",
            "trace=fsync,fdatasync,sync_file_range,syncfs,sync",
            "-o",
        ])
        .arg(&out)
        .arg("-p")
        .arg(server.pid().to_string())
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(fs::File::create(&err_path)?)
        .spawn()?;
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        if fs::read_to_string(&err_path)
            .unwrap_or_default()
            .contains("attached")
        {
            break;
        }
        if strace.try_wait()?.is_some() || Instant::now() > deadline {
            let _ = strace.kill();
            let _ = strace.wait();
            return Ok(None);
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let pushed = push_file(client, &server.base, blob).await;
    signal(strace.id(), "INT");
    let _ = strace.wait();
    pushed?;
    let text = fs::read_to_string(&out).unwrap_or_default();
    let root_text = format!("{}/", root.display());
    let mut trace = SyncTrace {
        calls: 0,
        targets: Vec::new(),
    };
    for line in text.lines() {
        let Some(call) = [
            "fsync(",
            "fdatasync(",
            "sync_file_range(",
            "syncfs(",
            "sync(",
        ]
        .into_iter()
        .find(|c| line.contains(c)) else {
            continue;
        };
        trace.calls += 1;
        let after = &line[line.find(call).unwrap_or(0) + call.len()..];
        let target = match (after.find('<'), after.find('>')) {
            (Some(a), Some(b)) if a < b => shorten_path(&after[a + 1..b].replace(&root_text, "")),
            _ => "?".into(),
        };
        let target = format!(
            "{}{}",
            &call[..call.len() - 1],
            if target.is_empty() {
                String::new()
            } else {
                format!(" {target}")
            }
        );
        if !trace.targets.contains(&target) {
            trace.targets.push(target);
        }
    }
    Ok(Some(trace))
}

// ---------------------------------------------------------------------------
// HEAD load: wrk 4.1 cannot do HEAD (its parser waits for the body that the
// `Content-Length` of a HEAD answer announces, so no request ever completes),
// hence this closed-loop generator on raw sockets, the same for every server:
// `HEAD_CONNECTIONS` keep-alive connections on the 2-thread client runtime
// (like `wrk -t2 -c32`), one request in flight per connection, a response
// ends at its blank line.

struct LoadResult {
    rps: f64,
    p50_ms: f64,
    p99_ms: f64,
    requests: u64,
    errors: u64,
}

fn find_header_end(buf: &[u8]) -> Option<usize> {
    buf.windows(4).position(|w| w == b"\r\n\r\n").map(|i| i + 4)
}

/// One connection's loop until `deadline`; returns its latencies (ns) and
/// error count.
async fn head_connection(
    addr: String,
    request: Arc<Vec<u8>>,
    start: tokio::time::Instant,
    deadline: Instant,
) -> (Vec<u64>, u64) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut latencies = Vec::with_capacity(1 << 16);
    let mut errors = 0u64;
    let mut buf = vec![0u8; 16 * 1024];
    let mut stream: Option<tokio::net::TcpStream> = None;
    tokio::time::sleep_until(start).await;
    while Instant::now() < deadline {
        let conn = match stream.as_mut() {
            Some(conn) => conn,
            None => match tokio::net::TcpStream::connect(&addr).await {
                Ok(conn) => {
                    let _ = conn.set_nodelay(true);
                    stream.insert(conn)
                }
                Err(_) => {
                    errors += 1;
                    tokio::time::sleep(Duration::from_millis(10)).await;
                    continue;
                }
            },
        };
        let sent = Instant::now();
        if conn.write_all(&request).await.is_err() {
            errors += 1;
            stream = None;
            continue;
        }
        let mut filled = 0;
        let complete = loop {
            match conn.read(&mut buf[filled..]).await {
                Ok(0) | Err(_) => break None,
                Ok(n) => filled += n,
            }
            if let Some(end) = find_header_end(&buf[..filled]) {
                break Some(end);
            }
            if filled == buf.len() {
                break None;
            }
        };
        match complete {
            Some(end) if end == filled && buf.starts_with(b"HTTP/1.1 200 ") => {
                latencies.push(sent.elapsed().as_nanos() as u64);
            }
            _ => {
                errors += 1;
                stream = None;
            }
        }
    }
    (latencies, errors)
}

async fn head_load(url: &str, secs: u64) -> Result<LoadResult> {
    let rest = url
        .strip_prefix("http://")
        .context("http:// URL expected")?;
    let (addr, path) = rest.split_at(rest.find('/').unwrap_or(rest.len()));
    let request = Arc::new(
        format!("HEAD {path} HTTP/1.1\r\nHost: {addr}\r\nAccept: {OCI_MANIFEST}\r\n\r\n")
            .into_bytes(),
    );
    let start = tokio::time::Instant::now() + Duration::from_millis(200);
    let deadline = start.into_std() + Duration::from_secs(secs);
    let tasks: Vec<_> = (0..HEAD_CONNECTIONS)
        .map(|_| {
            tokio::spawn(head_connection(
                addr.to_owned(),
                request.clone(),
                start,
                deadline,
            ))
        })
        .collect();
    let mut latencies = Vec::new();
    let mut errors = 0;
    for task in tasks {
        let (l, e) = task.await?;
        latencies.extend(l);
        errors += e;
    }
    let elapsed = start.elapsed().as_secs_f64();
    ensure!(
        !latencies.is_empty(),
        "no HEAD request to {url} succeeded ({errors} errors)"
    );
    latencies.sort_unstable();
    let pct = |p: f64| {
        latencies[((latencies.len() as f64 * p).ceil() as usize).clamp(1, latencies.len()) - 1]
            as f64
            / 1e6
    };
    Ok(LoadResult {
        rps: latencies.len() as f64 / elapsed,
        p50_ms: pct(0.50),
        p99_ms: pct(0.99),
        requests: latencies.len() as u64,
        errors,
    })
}

// ---------------------------------------------------------------------------
// wrk

#[derive(Clone, Copy)]
struct WrkResult {
    rps: f64,
    p99_ms: f64,
    requests: u64,
    non_2xx: u64,
    socket_errors: u64,
}

fn parse_duration_ms(text: &str) -> Option<f64> {
    let split = text.find(|c: char| c.is_ascii_alphabetic())?;
    let value: f64 = text[..split].parse().ok()?;
    let factor = match &text[split..] {
        "us" => 0.001,
        "ms" => 1.0,
        "s" => 1000.0,
        "m" => 60_000.0,
        "h" => 3_600_000.0,
        _ => return None,
    };
    Some(value * factor)
}

fn parse_wrk(out: &str) -> Result<WrkResult> {
    let mut result = WrkResult {
        rps: f64::NAN,
        p99_ms: f64::NAN,
        requests: 0,
        non_2xx: 0,
        socket_errors: 0,
    };
    for line in out.lines().map(str::trim) {
        if let Some(v) = line.strip_prefix("Requests/sec:") {
            result.rps = v.trim().parse()?;
        } else if let Some(v) = line.strip_prefix("99%") {
            result.p99_ms =
                parse_duration_ms(v.trim()).with_context(|| format!("wrk p99 `{v}`"))?;
        } else if let Some(v) = line.strip_prefix("Non-2xx or 3xx responses:") {
            result.non_2xx = v.trim().parse()?;
        } else if let Some(v) = line.strip_prefix("Socket errors:") {
            result.socket_errors = v
                .split(',')
                .filter_map(|part| part.split_whitespace().last()?.parse::<u64>().ok())
                .sum();
        } else if line.contains(" requests in ") {
            result.requests = line
                .split_whitespace()
                .next()
                .unwrap_or("0")
                .parse()
                .unwrap_or(0);
        }
    }
    ensure!(
        result.rps.is_finite() && result.p99_ms.is_finite(),
        "could not read wrk's output:\n{out}"
    );
    Ok(result)
}

fn run_wrk(script: &Path, url: &str, secs: u64) -> Result<WrkResult> {
    let out = Command::new("wrk")
        .arg("-t2")
        .arg(format!("-c{HEAD_CONNECTIONS}"))
        .arg(format!("-d{secs}s"))
        .arg("--latency")
        .arg("-s")
        .arg(script)
        .arg(url)
        .output()
        .context("running wrk")?;
    let text = String::from_utf8_lossy(&out.stdout);
    ensure!(
        out.status.success(),
        "wrk failed: {}\n{text}",
        String::from_utf8_lossy(&out.stderr)
    );
    let result = parse_wrk(&text)?;
    ensure!(
        result.non_2xx == 0 && result.socket_errors == 0 && result.requests > 0,
        "wrk saw failures against {url}:\n{text}"
    );
    Ok(result)
}

// ---------------------------------------------------------------------------
// Small statistics and formatting

fn median(values: &[f64]) -> f64 {
    let mut v = values.to_vec();
    v.sort_by(f64::total_cmp);
    match v.len() {
        0 => f64::NAN,
        n if n % 2 == 1 => v[n / 2],
        n => (v[n / 2 - 1] + v[n / 2]) / 2.0,
    }
}

fn mb_per_s(bytes: u64, elapsed: Duration) -> f64 {
    bytes as f64 / 1e6 / elapsed.as_secs_f64()
}

fn list(values: &[f64]) -> String {
    values
        .iter()
        .map(|v| format!("{v:.0}"))
        .collect::<Vec<_>>()
        .join(", ")
}

fn verdict(ok: bool) -> &'static str {
    if ok { "PASS" } else { "MISS" }
}

fn first_line(cmd: &str, args: &[&str]) -> String {
    Command::new(cmd)
        .args(args)
        .output()
        .ok()
        .map(|o| {
            let text = if o.stdout.is_empty() {
                o.stderr
            } else {
                o.stdout
            };
            String::from_utf8_lossy(&text)
                .lines()
                .next()
                .unwrap_or("")
                .trim()
                .to_owned()
        })
        .unwrap_or_default()
}

fn machine(root: &Path) -> String {
    let cpuinfo = fs::read_to_string("/proc/cpuinfo").unwrap_or_default();
    let cpu = cpuinfo
        .lines()
        .find_map(|l| {
            l.strip_prefix("model name")?
                .split_once(':')
                .map(|(_, v)| v.trim().to_owned())
        })
        .unwrap_or_else(|| "?".into());
    let mem_kib = status_like("/proc/meminfo", "MemTotal");
    let kernel = fs::read_to_string("/proc/sys/kernel/osrelease").unwrap_or_default();
    let df = Command::new("df")
        .arg("-T")
        .arg(root)
        .output()
        .ok()
        .map(|o| String::from_utf8_lossy(&o.stdout).into_owned())
        .unwrap_or_default();
    let fs_type = df
        .lines()
        .nth(1)
        .map(|l| {
            let f: Vec<&str> = l.split_whitespace().collect();
            format!(
                "{} on {}",
                f.get(1).unwrap_or(&"?"),
                f.first().unwrap_or(&"?")
            )
        })
        .unwrap_or_else(|| "?".into());
    let nproc = std::thread::available_parallelism().map_or(0, |n| n.get());
    format!(
        "nproc {nproc}, CPU {cpu}, RAM {:.1} GiB, kernel {}, storage {fs_type} (`df -T` of the temp folder)",
        mem_kib as f64 / (1u64 << 20) as f64,
        kernel.trim()
    )
}

fn status_like(path: &str, key: &str) -> u64 {
    fs::read_to_string(path)
        .unwrap_or_default()
        .lines()
        .find_map(|l| l.strip_prefix(key)?.strip_prefix(':'))
        .and_then(|v| v.split_whitespace().next()?.parse().ok())
        .unwrap_or(0)
}

fn loadavg() -> String {
    fs::read_to_string("/proc/loadavg")
        .unwrap_or_default()
        .split_whitespace()
        .take(3)
        .collect::<Vec<_>>()
        .join(" ")
}

fn say(line: impl AsRef<str>) {
    println!("{}", line.as_ref());
    let _ = std::io::stdout().flush();
}

// ---------------------------------------------------------------------------
// The benchmark

/// Peak RSS of `server` (its process tree) while `pullers` clients GET `url`.
struct ConcurrentPull {
    peak_mib: f64,
    mb_s: f64,
    cpu_s_per_gib: f64,
}

async fn concurrent_pull(
    client: &reqwest::Client,
    server: &Server,
    url: &str,
    blob: &Blob,
    pullers: usize,
    hz: f64,
) -> Result<ConcurrentPull> {
    let pids = server.pids();
    // Writing 5 to clear_refs resets VmHWM to the current RSS (Linux >= 4.0).
    for pid in &pids {
        let _ = fs::write(format!("/proc/{pid}/clear_refs"), "5");
    }
    let stop = Arc::new(AtomicBool::new(false));
    let sampler = {
        let (stop, pids) = (stop.clone(), pids.clone());
        std::thread::spawn(move || {
            let mut peak = 0;
            while !stop.load(Ordering::Relaxed) {
                peak = peak.max(pids.iter().map(|&p| status_kib(p, "VmRSS")).sum::<u64>());
                std::thread::sleep(RSS_SAMPLE_EVERY);
            }
            peak
        })
    };
    let cpu0 = server.cpu_ticks()?;
    let start = Instant::now();
    let tasks: Vec<_> = (0..pullers)
        .map(|_| tokio::spawn(pull(client.clone(), url.to_owned(), false)))
        .collect();
    let mut result = Ok(());
    for task in tasks {
        match task.await? {
            Ok((n, _)) if n == blob.size => {}
            Ok((n, _)) => result = Err(anyhow::anyhow!("pulled {n} bytes of {}", blob.size)),
            Err(e) => result = Err(e),
        }
    }
    let elapsed = start.elapsed();
    let cpu1 = server.cpu_ticks()?;
    stop.store(true, Ordering::Relaxed);
    let sampled = sampler.join().unwrap_or(0);
    result?;
    let hwm: u64 = pids.iter().map(|&p| status_kib(p, "VmHWM")).sum();
    let served = (blob.size * pullers as u64) as f64;
    Ok(ConcurrentPull {
        peak_mib: sampled.max(hwm) as f64 / 1024.0,
        mb_s: served / 1e6 / elapsed.as_secs_f64(),
        cpu_s_per_gib: (cpu1 - cpu0) as f64 / hz / (served / GIB),
    })
}

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

    // 1. Push: each repetition pushes a blob new to both registries, the
    //    order alternating.
    say(format!(
        "\n## push {} MiB, monolithic (POST + PUT ?digest=), {} repetitions",
        s.blob_mib, s.push_reps
    ));
    let mut push_mbs = [Vec::new(), Vec::new()];
    let mut disk_mbs = Vec::new();
    for (i, blob) in push_blobs.iter().enumerate() {
        disk_mbs.push(disk_ceiling(blob, &root)?);
        say(format!(
            "  rep {i} local copy     {:>7.0} MB/s (copy + fsync, context)",
            disk_mbs[i]
        ));
        let order = if i % 2 == 0 { [0, 1] } else { [1, 0] };
        for k in order {
            let server = registries[k];
            let elapsed = push_file(&client, &server.base, blob)
                .await
                .with_context(|| server.label)?;
            check_blob(&client, &server.base, blob)
                .await
                .with_context(|| server.label)?;
            push_mbs[k].push(mb_per_s(blob.size, elapsed));
            say(format!(
                "  rep {i} {:<14} {:>7.0} MB/s ({:.2} s)",
                server.label,
                push_mbs[k].last().unwrap_or(&0.0),
                elapsed.as_secs_f64()
            ));
        }
    }
    let mut syncs = Vec::new();
    for server in registries {
        let trace = traced_push(&client, server, &sync_check, &root)
            .await
            .with_context(|| server.label)?;
        let text = trace
            .as_ref()
            .map_or_else(|| "n/a (strace unavailable)".into(), SyncTrace::describe);
        say(format!(
            "  sync calls during one 16 MiB push, {}: {text}",
            server.label
        ));
        syncs.push(trace);
    }

    // 2. Pull: 256 MiB from each server, in rotating order, after one
    //    verified warm-up pull each.
    say(format!(
        "\n## pull {} MiB, {} repetitions",
        s.blob_mib, s.pull_reps
    ));
    let pull_blob = &push_blobs[0];
    let file_name = pull_blob
        .path
        .file_name()
        .and_then(|n| n.to_str())
        .unwrap_or_default();
    let pulled = [&ours, &dist, &nginx];
    let urls = [
        format!("{}/v2/{REPO}/blobs/{}", ours.base, pull_blob.digest),
        format!("{}/v2/{REPO}/blobs/{}", dist.base, pull_blob.digest),
        format!("{}/{file_name}", nginx.base),
    ];
    for (server, url) in pulled.iter().zip(&urls) {
        let (n, digest) = pull(client.clone(), url.clone(), true)
            .await
            .with_context(|| server.label)?;
        ensure!(
            n == pull_blob.size && digest.as_deref() == Some(pull_blob.digest.as_str()),
            "{}: warm-up pull returned wrong bytes",
            server.label
        );
    }
    let mut pull_mbs = [Vec::new(), Vec::new(), Vec::new()];
    let mut server_ticks = [0u64; 3];
    let mut client_ticks = [0u64; 3];
    let mut served = [0u64; 3];
    for rep in 0..s.pull_reps {
        for j in 0..3 {
            let k = (rep + j) % 3;
            let server = pulled[k];
            let (c0, me0) = (server.cpu_ticks()?, self_cpu_ticks()?);
            let start = Instant::now();
            let (n, _) = pull(client.clone(), urls[k].clone(), false)
                .await
                .with_context(|| server.label)?;
            let elapsed = start.elapsed();
            let (c1, me1) = (server.cpu_ticks()?, self_cpu_ticks()?);
            ensure!(
                n == pull_blob.size,
                "{}: pulled {n} bytes of {}",
                server.label,
                pull_blob.size
            );
            server_ticks[k] += c1 - c0;
            client_ticks[k] += me1 - me0;
            served[k] += n;
            pull_mbs[k].push(mb_per_s(n, elapsed));
        }
        say(format!(
            "  rep {rep}: rbee-registry {:>6.0}  Distribution {:>6.0}  nginx {:>6.0} MB/s",
            pull_mbs[0][rep], pull_mbs[1][rep], pull_mbs[2][rep]
        ));
    }
    let per_gib = |ticks: u64, bytes: u64| ticks as f64 / hz / (bytes as f64 / GIB);
    let pull_cpu: Vec<f64> = (0..3)
        .map(|k| per_gib(server_ticks[k], served[k]))
        .collect();
    let client_cpu: Vec<f64> = (0..3)
        .map(|k| per_gib(client_ticks[k], served[k]))
        .collect();

    // 3. HEAD manifest by tag, 32 connections (our generator), with wrk
    //    measuring GET of the same manifest as a cross-check.
    say(format!(
        "\n## HEAD manifest by tag, {HEAD_CONNECTIONS} connections, {} s, {} round(s); wrk GET as a cross-check",
        s.head_secs, s.head_rounds
    ));
    let script = root.join("get-manifest.lua");
    fs::write(
        &script,
        format!("wrk.headers[\"Accept\"] = \"{OCI_MANIFEST}\"\n"),
    )?;
    for url in &head_urls {
        head_load(url, 2).await?; // warm-up
    }
    let mut head: [Vec<LoadResult>; 2] = [Vec::new(), Vec::new()];
    let mut wrk_get: [Vec<WrkResult>; 2] = [Vec::new(), Vec::new()];
    for round in 0..s.head_rounds {
        let order = if round % 2 == 0 { [0, 1] } else { [1, 0] };
        for k in order {
            let label = registries[k].label;
            let r = head_load(&head_urls[k], s.head_secs)
                .await
                .with_context(|| label)?;
            ensure!(r.errors == 0, "{label}: {} HEAD requests failed", r.errors);
            say(format!(
                "  round {round} HEAD {label:<14} {:>9.0} req/s  p50 {:.3} ms  p99 {:.3} ms  ({} requests)",
                r.rps, r.p50_ms, r.p99_ms, r.requests
            ));
            head[k].push(r);
        }
        for k in order {
            let label = registries[k].label;
            let r = run_wrk(&script, &head_urls[k], s.head_secs).with_context(|| label)?;
            say(format!(
                "  round {round} wrk GET {label:<14} {:>9.0} req/s  p99 {:.3} ms  ({} requests)",
                r.rps, r.p99_ms, r.requests
            ));
            wrk_get[k].push(r);
        }
    }
    let med_of = |v: Vec<f64>| median(&v);
    let head_rps: Vec<f64> = head
        .iter()
        .map(|rs| med_of(rs.iter().map(|r| r.rps).collect()))
        .collect();
    let head_p50: Vec<f64> = head
        .iter()
        .map(|rs| med_of(rs.iter().map(|r| r.p50_ms).collect()))
        .collect();
    let head_p99: Vec<f64> = head
        .iter()
        .map(|rs| med_of(rs.iter().map(|r| r.p99_ms).collect()))
        .collect();
    let get_rps: Vec<f64> = wrk_get
        .iter()
        .map(|rs| med_of(rs.iter().map(|r| r.rps).collect()))
        .collect();
    let get_p99: Vec<f64> = wrk_get
        .iter()
        .map(|rs| med_of(rs.iter().map(|r| r.p99_ms).collect()))
        .collect();

    // 4. Peak RSS during concurrent 1 GiB pulls.
    say(format!(
        "\n## {} concurrent pulls of {} MiB",
        s.pullers, s.big_mib
    ));
    let mut big_push = Vec::new();
    for server in registries {
        let elapsed = push_file(&client, &server.base, &big)
            .await
            .with_context(|| server.label)?;
        check_blob(&client, &server.base, &big)
            .await
            .with_context(|| server.label)?;
        big_push.push(mb_per_s(big.size, elapsed));
        say(format!(
            "  push {:<14} {:>7.0} MB/s (context, not a target)",
            server.label,
            mb_per_s(big.size, elapsed)
        ));
    }
    let big_urls = [
        format!("{}/v2/{REPO}/blobs/{}", ours.base, big.digest),
        format!("{}/v2/{REPO}/blobs/{}", dist.base, big.digest),
        format!("{}/big.bin", nginx.base),
    ];
    let idle_rss: Vec<f64> = pulled
        .iter()
        .map(|srv| {
            srv.pids()
                .iter()
                .map(|&p| status_kib(p, "VmRSS"))
                .sum::<u64>() as f64
                / 1024.0
        })
        .collect();
    let mut conc = Vec::new();
    for (server, url) in pulled.iter().zip(&big_urls) {
        let r = concurrent_pull(&client, server, url, &big, s.pullers, hz)
            .await
            .with_context(|| server.label)?;
        say(format!(
            "  {:<14} peak RSS {:>6.1} MiB  (before: {:.1} MiB)  {:>6.0} MB/s aggregate  {:.3} CPU s/GiB",
            server.label,
            r.peak_mib,
            idle_rss[conc.len()],
            r.mb_s,
            r.cpu_s_per_gib
        ));
        conc.push(r);
    }
    let load_end = loadavg();
    drop(nginx);
    drop(dist);
    drop(ours);

    // Figures, ratios and targets.
    let push_med = [median(&push_mbs[0]), median(&push_mbs[1])];
    let pull_med = [
        median(&pull_mbs[0]),
        median(&pull_mbs[1]),
        median(&pull_mbs[2]),
    ];
    let push_ratio = push_med[0] / push_med[1];
    let pull_vs_dist = pull_med[0] / pull_med[1];
    let pull_vs_nginx = pull_med[0] / pull_med[2];
    let head_ratio = head_rps[0] / head_rps[1];
    let p99_ratio = head_p99[0] / head_p99[1];
    let sync_text = |t: &Option<SyncTrace>| {
        t.as_ref().map_or_else(
            || "n/a".into(),
            |t| {
                if t.calls > 0 {
                    format!("yes, {}", t.calls)
                } else {
                    "no".into()
                }
            },
        )
    };

    let mut md = String::new();
    let w = &mut md;
    writeln!(w, "### Run of {}", started.format("%Y-%m-%d %H:%M %Z"))?;
    writeln!(w)?;
    writeln!(
        w,
        "- Command: `{}CARGO_TARGET_DIR=... cargo bench -p rbee-registry --bench vs_distribution`",
        std::env::var("TMPDIR")
            .map(|t| format!("TMPDIR={t} "))
            .unwrap_or_default()
    )?;
    writeln!(w, "- Machine: {machine}")?;
    writeln!(
        w,
        "- Load average (1/5/15 min) at start: {load_start}; at end: {load_end}"
    )?;
    writeln!(
        w,
        "- Servers: rbee-registry {} (release build of {bin_age}), {}, {}; GET cross-check with {}",
        env!("CARGO_PKG_VERSION"),
        first_line("docker-registry", &["--version"]),
        first_line("nginx", &["-v"]),
        first_line("wrk", &["-v"])
            .split(" [")
            .next()
            .unwrap_or_default(),
    )?;
    writeln!(w)?;
    writeln!(
        w,
        "| measure | rbee-registry | Distribution | nginx | ours/Distribution | ours/nginx |"
    )?;
    writeln!(w, "|---|---:|---:|---:|---:|---:|")?;
    writeln!(
        w,
        "| push {} MiB, median MB/s ({} reps) | {:.0} | {:.0} | – | {:.2}x | – |",
        s.blob_mib, s.push_reps, push_med[0], push_med[1], push_ratio
    )?;
    writeln!(
        w,
        "| fsyncs before answering a push (strace, calls) | {} | {} | – | | |",
        sync_text(&syncs[0]),
        sync_text(&syncs[1])
    )?;
    writeln!(
        w,
        "| pull {} MiB, median MB/s ({} reps) | {:.0} | {:.0} | {:.0} | {:.2}x | {:.2}x |",
        s.blob_mib, s.pull_reps, pull_med[0], pull_med[1], pull_med[2], pull_vs_dist, pull_vs_nginx
    )?;
    writeln!(
        w,
        "| pull, server CPU s per GiB (user+sys) | {:.3} | {:.3} | {:.3} | {:.2}x | {:.2}x |",
        pull_cpu[0],
        pull_cpu[1],
        pull_cpu[2],
        pull_cpu[0] / pull_cpu[1],
        pull_cpu[0] / pull_cpu[2]
    )?;
    writeln!(
        w,
        "| pull, client CPU s per GiB (same client) | {:.3} | {:.3} | {:.3} | | |",
        client_cpu[0], client_cpu[1], client_cpu[2]
    )?;
    writeln!(
        w,
        "| HEAD manifest by tag, req/s ({HEAD_CONNECTIONS} conn, {} s, bench's HEAD client) | {:.0} | {:.0} | – | {:.2}x | – |",
        s.head_secs, head_rps[0], head_rps[1], head_ratio
    )?;
    writeln!(
        w,
        "| HEAD manifest by tag, p50 ms | {:.3} | {:.3} | – | {:.2}x | – |",
        head_p50[0],
        head_p50[1],
        head_p50[0] / head_p50[1]
    )?;
    writeln!(
        w,
        "| HEAD manifest by tag, p99 ms | {:.3} | {:.3} | – | {:.2}x | – |",
        head_p99[0], head_p99[1], p99_ratio
    )?;
    writeln!(
        w,
        "| GET manifest by tag (wrk -t2 -c{HEAD_CONNECTIONS}), req/s | {:.0} | {:.0} | – | {:.2}x | – |",
        get_rps[0],
        get_rps[1],
        get_rps[0] / get_rps[1]
    )?;
    writeln!(
        w,
        "| GET manifest by tag (wrk), p99 ms | {:.3} | {:.3} | – | {:.2}x | – |",
        get_p99[0],
        get_p99[1],
        get_p99[0] / get_p99[1]
    )?;
    writeln!(
        w,
        "| peak RSS during {} x {} MiB pulls, MiB | {:.1} | {:.1} | {:.1} | {:.2}x | |",
        s.pullers,
        s.big_mib,
        conc[0].peak_mib,
        conc[1].peak_mib,
        conc[2].peak_mib,
        conc[0].peak_mib / conc[1].peak_mib
    )?;
    writeln!(
        w,
        "| RSS before those pulls, MiB | {:.1} | {:.1} | {:.1} | | |",
        idle_rss[0], idle_rss[1], idle_rss[2]
    )?;
    writeln!(
        w,
        "| {} x {} MiB pulls, aggregate MB/s | {:.0} | {:.0} | {:.0} | {:.2}x | {:.2}x |",
        s.pullers,
        s.big_mib,
        conc[0].mb_s,
        conc[1].mb_s,
        conc[2].mb_s,
        conc[0].mb_s / conc[1].mb_s,
        conc[0].mb_s / conc[2].mb_s
    )?;
    writeln!(
        w,
        "| {} x {} MiB pulls, server CPU s per GiB | {:.3} | {:.3} | {:.3} | {:.2}x | {:.2}x |",
        s.pullers,
        s.big_mib,
        conc[0].cpu_s_per_gib,
        conc[1].cpu_s_per_gib,
        conc[2].cpu_s_per_gib,
        conc[0].cpu_s_per_gib / conc[1].cpu_s_per_gib,
        conc[0].cpu_s_per_gib / conc[2].cpu_s_per_gib
    )?;
    writeln!(
        w,
        "| push {} MiB once, MB/s (context) | {:.0} | {:.0} | – | {:.2}x | – |",
        s.big_mib,
        big_push[0],
        big_push[1],
        big_push[0] / big_push[1]
    )?;
    writeln!(w)?;
    writeln!(w, "| target (issue 2) | figure | result |")?;
    writeln!(w, "|---|---|---|")?;
    let targets = [
        (
            "push >= 1.5x Distribution",
            format!("{push_ratio:.2}x"),
            push_ratio >= 1.5,
        ),
        (
            "pull >= 0.9x nginx",
            format!("{pull_vs_nginx:.2}x"),
            pull_vs_nginx >= 0.9,
        ),
        (
            "pull >= 1.0x Distribution",
            format!("{pull_vs_dist:.2}x"),
            pull_vs_dist >= 1.0,
        ),
        (
            "pull CPU per GiB <= Distribution's",
            format!("{:.3} vs {:.3} s/GiB", pull_cpu[0], pull_cpu[1]),
            pull_cpu[0] <= pull_cpu[1],
        ),
        (
            "HEAD req/s >= 5x Distribution",
            format!("{head_ratio:.2}x"),
            head_ratio >= 5.0,
        ),
        (
            "HEAD p99 <= 1/3 of Distribution's",
            format!(
                "{:.3} ms vs {:.3} ms ({p99_ratio:.2}x)",
                head_p99[0], head_p99[1]
            ),
            p99_ratio <= 1.0 / 3.0,
        ),
        (
            "our peak RSS <= 64 MiB",
            format!("{:.1} MiB", conc[0].peak_mib),
            conc[0].peak_mib <= 64.0,
        ),
    ];
    for (name, figure, ok) in &targets {
        writeln!(w, "| {name} | {figure} | {} |", verdict(*ok))?;
    }
    writeln!(w)?;
    writeln!(w, "Per repetition (MB/s):")?;
    writeln!(w)?;
    writeln!(
        w,
        "- local copy of the same {} MiB through a 1 MiB buffer, then fsync (disk context): {} (median {:.0})",
        s.blob_mib,
        list(&disk_mbs),
        median(&disk_mbs)
    )?;
    writeln!(w, "- push, rbee-registry: {}", list(&push_mbs[0]))?;
    writeln!(w, "- push, Distribution: {}", list(&push_mbs[1]))?;
    writeln!(w, "- pull, rbee-registry: {}", list(&pull_mbs[0]))?;
    writeln!(w, "- pull, Distribution: {}", list(&pull_mbs[1]))?;
    writeln!(w, "- pull, nginx: {}", list(&pull_mbs[2]))?;
    for (k, server) in ["rbee-registry", "Distribution"].iter().enumerate() {
        if let Some(t) = &syncs[k] {
            writeln!(
                w,
                "- sync calls during one push, {server}: {}",
                t.describe()
            )?;
        }
    }

    say("\n## Results (Markdown)\n");
    say(&md);
    let passed = targets.iter().filter(|t| t.2).count();
    say(format!("{passed}/{} targets met", targets.len()));
    if let Ok(path) = std::env::var("RBEE_BENCH_REPORT") {
        fs::write(&path, &md).with_context(|| format!("writing {path}"))?;
        say(format!("report written to {path}"));
    }
    if std::env::var_os("RBEE_BENCH_KEEP").is_some() {
        say(format!("keeping {}", tmp.keep().display()));
    }
    Ok(())
}
