//! `cargo bench -p rbee-e2e --bench catalog_download`: requests/s and p99
//! of the catalog's `GET /v1/workers/:id/:version/download` at 32
//! connections, next to CNCF Distribution 2.8's `HEAD` of a manifest in the
//! same run (issue 4; targets: at least 3x Distribution's requests/s, p99
//! at most 10 ms).
//!
//! It runs the RELEASE `rbee-catalog serve --demo` (build it first with
//! `cargo build --release --bin rbee-catalog`; it is found next to this
//! bench's executable, or at `RBEE_CATALOG_BIN`), which publishes the
//! example worker to its embedded registry, and Distribution
//! (`docker-registry`) with the same worker published by the pusher
//! library. Both are warmed, then measured one after the other, each
//! measurement only once the machine is quiet (1-minute load under 1.5 and
//! the CPUs 85% idle over 2 s, or after waiting `RBEE_BENCH_QUIET_WAIT`
//! seconds, default 180):
//!
//! 1. `wrk -t2 -c32 -d10s --latency` GET of our download route;
//! 2. the same wrk GET of Distribution's manifest (same tag);
//! 3. Distribution's HEAD of that manifest, and our download route again,
//!    with a small closed-loop load generator (2 threads, 32 keep-alive
//!    connections, one request in flight each, like wrk): wrk 4.1 cannot
//!    send HEAD (its parser waits for the body a HEAD answer announces, so
//!    no request ever completes), and a ratio is only fair with one client.
//!
//! 4. (issue 11) the same wrk GET of the download route of a premium worker
//!    with a license key (`Authorization: Bearer rbee_lic_...`, looked up
//!    in the catalog's database and answered with a freshly signed URL),
//!    against 1 (no auth). The catalog runs with a rate limit too high to
//!    refuse anything, so that its bookkeeping is part of the cost. The
//!    catalog keeps credential lookups in memory for a few seconds
//!    (`rbee_store::CacheConfig`), so most of these requests never reach
//!    SQLite.
//! 5. (issue 11) the embedded registry's `HEAD /v2/rbee/<worker>/blobs/<digest>`
//!    (a public repository) with the generator, without any header and with
//!    `Authorization: Bearer <token>` (a token from `/token` for the license
//!    key, fetched fresh before each measurement: tokens live 60 s): the
//!    token gate's cost (an Ed25519 signature check per request).
//! 6. (issue 11) tokens issued per second by `GET /token` (wrk), with the
//!    license key as HTTP Basic password (a database lookup, a grant, a
//!    signature), against anonymous tokens for a public repository (no
//!    lookup).
//!
//! The measurements are repeated `RBEE_BENCH_ROUNDS` times (default
//! 3), interleaved, and the medians are judged: the ratio on 3 (same
//! client, Distribution's HEAD as the issue says), the p99 on wrk's for
//! ours. A MISS does not fail
//! the bench; an error (a server that does not start, a non-2xx answer, a
//! wrong checksum) does.

#[path = "../tests/common/mod.rs"]
mod common;

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use base64::Engine as _;
use common::catalog::{WORKER, other_worker, publish_files, publish_files_as};
use common::distribution::Distribution;
use common::publishing::{Fixture, REPO};
use common::{OCI_INDEX, find_tool, sha256_digest};
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};

const CONNECTIONS: usize = 32;
const THREADS: usize = 2;
const SECONDS: u64 = 10;
const QUIET_LOAD: f64 = 1.5;
const QUIET_IDLE: f64 = 0.85;
const TARGET_RATIO: f64 = 3.0;
const TARGET_P99_MS: f64 = 10.0;
/// Issue 11: authentication may cost at most 10% of the requests/s.
const TARGET_AUTH_SHARE: f64 = 0.9;
const PREMIUM: &str = "premium-worker-rbee-cpu";

fn main() {
    // `cargo bench` passes `--bench`; there is nothing to filter.
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(THREADS)
        .enable_all()
        .build()
        .expect("tokio runtime");
    if let Err(e) = runtime.block_on(run()) {
        eprintln!("catalog_download bench failed: {e}");
        std::process::exit(1);
    }
}

type Result<T> = std::result::Result<T, String>;

async fn run() -> Result<()> {
    let binary = catalog_binary()?;
    for tool in ["wrk", "docker-registry"] {
        if find_tool(tool).is_none() {
            eprintln!(
                "`{tool}` is not installed; run scripts/install-test-deps.sh \
                 (or apt-get install wrk docker-registry)"
            );
            std::process::exit(2);
        }
    }
    let platform = common::publishing::host_platform().unwrap_or("linux-x86_64");

    // Ours: the release binary, embedded registry, the demo worker.
    let dir = tempfile::tempdir().map_err(|e| e.to_string())?;
    let catalog = CatalogProcess::start(&binary, dir.path()).await?;
    let download_path = format!("/v1/workers/{WORKER}/0.1.0/download?platform={platform}");
    let ours_url = format!("{}{download_path}", catalog.url);
    let blob_url = check_download(&ours_url, None).await?;

    // A premium worker and a license for it, in the same catalog.
    let (premium_fixture, premium_files) = other_worker(PREMIUM, "0.1.0", false);
    premium_fixture.edit_metadata(|m| {
        m["distribution"]["requires_license"] = true.into();
        m["pricing"] = serde_json::json!({
            "amount": 10.0, "currency": "EUR", "purchase_url": "https://rbee.dev/buy"
        });
    });
    // The embedded registry requires tokens: publish with a publisher key
    // for the premium namespace and the catalog index.
    let publisher_key = catalog.create_publisher_key().await?;
    publish_files_as(
        &catalog.url,
        &premium_files,
        rbee_pusher::auth::Credentials::basic("bench", publisher_key),
    )
    .await;
    let license_key = catalog.create_license(PREMIUM).await?;
    let licensed_path = format!("/v1/workers/{PREMIUM}/0.1.0/download?platform={platform}");
    let licensed_url = format!("{}{licensed_path}", catalog.url);
    check_download(&licensed_url, Some(&license_key)).await?;
    let auth_header = format!("Authorization: Bearer {license_key}");

    // The registry's blob HEAD (public repository), and the token service.
    let public_scope = format!("repository:{REPO}:pull");
    let token_url =
        |scope: &str| format!("{}/token?service=rbee-registry&scope={scope}", catalog.url);
    let anonymous_token_url = token_url(&public_scope);
    let licensed_token_url = token_url(&format!("repository:rbee-premium/{PREMIUM}:pull"));
    let basic_header = format!(
        "Authorization: Basic {}",
        base64::engine::general_purpose::STANDARD.encode(format!("bench:{license_key}"))
    );
    let fresh_bearer = || fetch_token(&anonymous_token_url, &license_key);
    check_blob_head(&blob_url, None).await?;
    check_blob_head(&blob_url, Some(&fresh_bearer().await?)).await?;

    // Distribution with the same worker published.
    let registry = Distribution::start()
        .await
        .ok_or("docker-registry is missing")?;
    publish_files(&registry.url, &Fixture::new("0.1.0").files()).await;
    let head_url = format!("{}/v2/{REPO}/manifests/0.1.0", registry.url);
    check_head(&head_url).await?;

    // Warm both (caches, connections, page cache).
    for (url, method) in [(&ours_url, "GET"), (&head_url, "HEAD")] {
        load(url, method, Duration::from_secs(2)).await?;
    }
    run_wrk_for(&licensed_url, &[auth_header.as_str()], 2)?;
    load_with(&blob_url, "HEAD", None, Duration::from_secs(2)).await?;
    run_wrk_for(&licensed_token_url, &[basic_header.as_str()], 2)?;

    let rounds: usize = std::env::var("RBEE_BENCH_ROUNDS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(3)
        .max(1);
    let mut rows = Vec::new();
    let mut all: [Vec<Figures>; 9] = Default::default();
    for round in 1..=rounds {
        all[0].push(
            measure(&mut rows, round, "ours: GET download (wrk)", || {
                wrk(ours_url.clone(), None)
            })
            .await?,
        );
        all[1].push(
            measure(&mut rows, round, "Distribution: GET manifest (wrk)", || {
                wrk(head_url.clone(), Some(OCI_INDEX))
            })
            .await?,
        );
        all[2].push(
            measure(
                &mut rows,
                round,
                "Distribution: HEAD manifest (generator)",
                || async { load(&head_url, "HEAD", Duration::from_secs(SECONDS)).await },
            )
            .await?,
        );
        all[3].push(
            measure(
                &mut rows,
                round,
                "ours: GET download (generator)",
                || async { load(&ours_url, "GET", Duration::from_secs(SECONDS)).await },
            )
            .await?,
        );
        all[4].push(
            measure(
                &mut rows,
                round,
                "ours: GET premium download, license key (wrk)",
                || {
                    let url = licensed_url.clone();
                    let header = auth_header.clone();
                    async move {
                        tokio::task::spawn_blocking(move || {
                            run_wrk_for(&url, &[header.as_str()], SECONDS)
                        })
                        .await
                        .map_err(|e| e.to_string())?
                    }
                },
            )
            .await?,
        );
        all[5].push(
            measure(
                &mut rows,
                round,
                "ours: HEAD /v2 blob, no auth (generator)",
                || async { load_with(&blob_url, "HEAD", None, Duration::from_secs(SECONDS)).await },
            )
            .await?,
        );
        let bearer = format!("Authorization: Bearer {}", fresh_bearer().await?);
        all[6].push(
            measure(
                &mut rows,
                round,
                "ours: HEAD /v2 blob, bearer token (generator)",
                || async {
                    load_with(
                        &blob_url,
                        "HEAD",
                        Some(&bearer),
                        Duration::from_secs(SECONDS),
                    )
                    .await
                },
            )
            .await?,
        );
        all[7].push(
            measure(
                &mut rows,
                round,
                "ours: GET /token, anonymous (wrk)",
                || wrk_with(anonymous_token_url.clone(), Vec::new()),
            )
            .await?,
        );
        all[8].push(
            measure(
                &mut rows,
                round,
                "ours: GET /token, license key (wrk)",
                || wrk_with(licensed_token_url.clone(), vec![basic_header.clone()]),
            )
            .await?,
        );
    }
    let [
        ours_wrk,
        dist_wrk,
        dist_head,
        ours_gen,
        licensed_wrk,
        blob_anon,
        blob_bearer,
        token_anon,
        token_licensed,
    ] = all.map(|f| median(&f));
    let auth_share = licensed_wrk.rps / ours_wrk.rps;
    let bearer_share = blob_bearer.rps / blob_anon.rps;
    let token_share = token_licensed.rps / token_anon.rps;

    let ratio = ours_gen.rps / dist_head.rps;
    let wrk_ratio = ours_wrk.rps / dist_wrk.rps;
    let verdict = |ok: bool| if ok { "PASS" } else { "MISS" };
    println!();
    println!("## Catalog download (issue 4)");
    println!();
    println!("{}", machine());
    println!("rbee-catalog: {} ({})", binary.display(), modified(&binary));
    println!(
        "ours: GET {download_path} (embedded registry, `serve --demo`); Distribution: HEAD/GET /v2/{REPO}/manifests/0.1.0 (Accept: OCI index)"
    );
    println!();
    println!("| measure | client | req/s | p50 ms | p99 ms | requests | load before -> after |");
    println!("|---|---|---:|---:|---:|---:|---|");
    let medians = [
        ("ours: GET download", "wrk", ours_wrk),
        ("Distribution: GET manifest", "wrk", dist_wrk),
        ("Distribution: HEAD manifest", "generator", dist_head),
        ("ours: GET download", "generator", ours_gen),
        (
            "ours: GET premium download, license key",
            "wrk",
            licensed_wrk,
        ),
        ("ours: HEAD /v2 blob, no auth", "generator", blob_anon),
        (
            "ours: HEAD /v2 blob, bearer token",
            "generator",
            blob_bearer,
        ),
        ("ours: GET /token, anonymous", "wrk", token_anon),
        ("ours: GET /token, license key", "wrk", token_licensed),
    ];
    for (what, client, f) in medians {
        println!(
            "| **{what}, median of {rounds}** | {client} | **{:.0}** | {:.3} | **{:.3}** | {} | |",
            f.rps, f.p50_ms, f.p99_ms, f.requests
        );
    }
    for row in &rows {
        println!("{row}");
    }
    println!();
    println!("| target (medians) | figure | result |");
    println!("|---|---|---|");
    println!(
        "| ours >= {TARGET_RATIO}x Distribution's HEAD manifest req/s (same generator) | {ratio:.2}x ({:.0} vs {:.0}) | {} |",
        ours_gen.rps,
        dist_head.rps,
        verdict(ratio >= TARGET_RATIO)
    );
    println!(
        "| ours p99 <= {TARGET_P99_MS} ms (wrk) | {:.3} ms | {} |",
        ours_wrk.p99_ms,
        verdict(ours_wrk.p99_ms <= TARGET_P99_MS)
    );
    println!(
        "| (cross-check) ours p99 <= {TARGET_P99_MS} ms (generator) | {:.3} ms | {} |",
        ours_gen.p99_ms,
        verdict(ours_gen.p99_ms <= TARGET_P99_MS)
    );
    println!(
        "| (cross-check) wrk GET vs wrk GET manifest, ratio | {wrk_ratio:.2}x ({:.0} vs {:.0}) | {} |",
        ours_wrk.rps,
        dist_wrk.rps,
        verdict(wrk_ratio >= TARGET_RATIO)
    );
    println!(
        "| (issue 11) licensed download >= {:.0}% of the free download's req/s (wrk) | {:.1}% ({:.0} vs {:.0}) | {} |",
        TARGET_AUTH_SHARE * 100.0,
        auth_share * 100.0,
        licensed_wrk.rps,
        ours_wrk.rps,
        verdict(auth_share >= TARGET_AUTH_SHARE)
    );
    println!(
        "| (issue 11) licensed download p99 <= {TARGET_P99_MS} ms (wrk) | {:.3} ms | {} |",
        licensed_wrk.p99_ms,
        verdict(licensed_wrk.p99_ms <= TARGET_P99_MS)
    );
    println!(
        "| (issue 11) /v2 blob HEAD with a bearer token >= {:.0}% of the same without auth (generator) | {:.1}% ({:.0} vs {:.0}) | {} |",
        TARGET_AUTH_SHARE * 100.0,
        bearer_share * 100.0,
        blob_bearer.rps,
        blob_anon.rps,
        verdict(bearer_share >= TARGET_AUTH_SHARE)
    );
    println!(
        "| (issue 11) /v2 blob HEAD with a bearer token p99 <= {TARGET_P99_MS} ms (generator) | {:.3} ms | {} |",
        blob_bearer.p99_ms,
        verdict(blob_bearer.p99_ms <= TARGET_P99_MS)
    );
    println!(
        "| (issue 11, no target) tokens issued per second, license key (wrk) | {:.0}/s, {:.1}% of anonymous tokens ({:.0}/s), {:.1}% of the free download; p99 {:.3} ms | — |",
        token_licensed.rps,
        token_share * 100.0,
        token_anon.rps,
        token_licensed.rps / ours_wrk.rps * 100.0,
        token_licensed.p99_ms
    );
    drop(registry);
    drop(catalog);
    drop(premium_fixture);
    Ok(())
}

// ---- the catalog process -----------------------------------------------------

/// The release `rbee-catalog`: `RBEE_CATALOG_BIN`, else next to this
/// bench's executable (`<target>/release/deps/catalog_download-*` ->
/// `<target>/release/rbee-catalog`).
fn catalog_binary() -> Result<PathBuf> {
    let path = match std::env::var_os("RBEE_CATALOG_BIN") {
        Some(p) => PathBuf::from(p),
        None => std::env::current_exe()
            .map_err(|e| e.to_string())?
            .parent()
            .and_then(Path::parent)
            .ok_or("no parent of the bench executable")?
            .join("rbee-catalog"),
    };
    if !path.is_file() {
        eprintln!(
            "{} does not exist. Build the release binary first, with the same \
             CARGO_TARGET_DIR:\n    cargo build --release --bin rbee-catalog\n\
             or point RBEE_CATALOG_BIN at one.",
            path.display()
        );
        std::process::exit(2);
    }
    Ok(path)
}

/// `rbee-catalog serve --demo` on a free port, killed on drop.
struct CatalogProcess {
    child: Child,
    url: String,
    data_dir: PathBuf,
}

impl CatalogProcess {
    /// Issues a license for `worker` in the catalog's own database (the
    /// SQLite file in its data dir, opened next to the running server, as
    /// `rbee-catalog license create` does) and returns its key.
    async fn create_license(&self, worker: &str) -> Result<String> {
        let store = self.open_store().await?;
        let (_, key) = store
            .create_license(
                "bench",
                rbee_store::NewLicense {
                    owner: "bench".into(),
                    grants: vec![rbee_store::Grant::Worker(worker.into())],
                    expires_at: None,
                    perpetual_fallback: false,
                },
            )
            .await
            .map_err(|e| format!("creating a license: {e}"))?;
        store.close().await;
        Ok(key.expose().to_owned())
    }

    /// Issues a publisher key for the premium namespace and the catalog
    /// index, in the catalog's own database, and returns it.
    async fn create_publisher_key(&self) -> Result<String> {
        let store = self.open_store().await?;
        let (_, key) = store
            .create_publisher_key(
                "bench",
                rbee_store::NewPublisherKey {
                    owner: "bench".into(),
                    grants: vec![
                        rbee_store::Grant::Namespace("rbee-premium".into()),
                        rbee_store::Grant::Worker("catalog".into()),
                    ],
                },
            )
            .await
            .map_err(|e| format!("creating a publisher key: {e}"))?;
        store.close().await;
        Ok(key.expose().to_owned())
    }

    /// The SQLite file in its data dir, opened next to the running server
    /// (as the `rbee-catalog license` commands do).
    async fn open_store(&self) -> Result<rbee_store::Store> {
        let url = format!("sqlite://{}", self.data_dir.join("catalog.db").display());
        rbee_store::Store::open(&url)
            .await
            .map_err(|e| format!("opening {url}: {e}"))
    }

    async fn start(binary: &Path, dir: &Path) -> Result<CatalogProcess> {
        let mut last = String::new();
        // A port found free may be taken before the server binds it: retry.
        for attempt in 0..3 {
            let port = std::net::TcpListener::bind("127.0.0.1:0")
                .and_then(|l| l.local_addr())
                .map_err(|e| e.to_string())?
                .port();
            let log_path = dir.join(format!("catalog-{attempt}.log"));
            let log = std::fs::File::create(&log_path).map_err(|e| e.to_string())?;
            let data_dir = dir.join(format!("data-{attempt}"));
            let child = Command::new(binary)
                .args(["serve", "--demo", "--listen"])
                .arg(format!("127.0.0.1:{port}"))
                .arg("--data-dir")
                .arg(&data_dir)
                // Measured, never refusing: 32 connections from one address
                // are far over the default limit.
                .args(["--rate-limit-per-second", "1000000"])
                .args(["--rate-limit-burst", "1000000"])
                .env("NO_PROXY", "127.0.0.1")
                .stdin(Stdio::null())
                .stdout(log.try_clone().map_err(|e| e.to_string())?)
                .stderr(log)
                .spawn()
                .map_err(|e| format!("starting {}: {e}", binary.display()))?;
            let mut process = CatalogProcess {
                child,
                url: format!("http://127.0.0.1:{port}"),
                data_dir,
            };
            if process.wait_for_demo().await {
                return Ok(process);
            }
            last = std::fs::read_to_string(&log_path).unwrap_or_default();
        }
        Err(format!("rbee-catalog did not start; its log:\n{last}"))
    }

    /// Waits until the demo worker is listed (the demo publishes it after
    /// the server starts).
    async fn wait_for_demo(&mut self) -> bool {
        let http = client();
        let url = format!("{}/v1/workers/{WORKER}/versions", self.url);
        let started = Instant::now();
        while started.elapsed() < Duration::from_secs(30) {
            if let Ok(Some(_)) = self.child.try_wait() {
                return false;
            }
            if let Ok(resp) = http.get(&url).send().await
                && resp.status() == 200
            {
                return true;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        false
    }
}

impl Drop for CatalogProcess {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn client() -> reqwest::Client {
    reqwest::Client::builder().no_proxy().build().unwrap()
}

/// The download route answers (with `license` as a bearer key, when
/// given), and its URL serves the checksum's bytes with no header.
/// Returns that URL.
async fn check_download(url: &str, license: Option<&str>) -> Result<String> {
    let mut req = client().get(url);
    if let Some(key) = license {
        req = req.bearer_auth(key);
    }
    let resp = req.send().await.map_err(|e| e.to_string())?;
    if resp.status() != 200 {
        return Err(format!("GET {url}: {}", resp.status()));
    }
    let body: serde_json::Value = resp.json().await.map_err(|e| e.to_string())?;
    let blob_url = body["download_url"].as_str().ok_or("no download_url")?;
    let bytes = client()
        .get(blob_url)
        .send()
        .await
        .map_err(|e| e.to_string())?
        .bytes()
        .await
        .map_err(|e| e.to_string())?;
    if body["checksum"] != sha256_digest(&bytes).as_str() {
        return Err(format!("{blob_url} does not match {}", body["checksum"]));
    }
    Ok(blob_url.to_owned())
}

/// A token from `url` (`/token?...`) for the license key.
async fn fetch_token(url: &str, license: &str) -> Result<String> {
    let resp = client()
        .get(url)
        .basic_auth("bench", Some(license))
        .send()
        .await
        .map_err(|e| e.to_string())?;
    if resp.status() != 200 {
        return Err(format!("GET {url}: {}", resp.status()));
    }
    let body: serde_json::Value = resp.json().await.map_err(|e| e.to_string())?;
    body["token"]
        .as_str()
        .map(str::to_owned)
        .ok_or_else(|| format!("no token from {url}: {body}"))
}

/// The registry answers the blob HEAD with 200 (with `token` as bearer
/// token, when given).
async fn check_blob_head(url: &str, token: Option<&str>) -> Result<()> {
    let mut req = client().head(url);
    if let Some(token) = token {
        req = req.bearer_auth(token);
    }
    let resp = req.send().await.map_err(|e| e.to_string())?;
    if resp.status() != 200 {
        return Err(format!("HEAD {url}: {}", resp.status()));
    }
    Ok(())
}

/// Distribution answers the HEAD with 200 and a digest.
async fn check_head(url: &str) -> Result<()> {
    let resp = client()
        .head(url)
        .header("accept", OCI_INDEX)
        .send()
        .await
        .map_err(|e| e.to_string())?;
    if resp.status() != 200 || resp.headers().get("docker-content-digest").is_none() {
        return Err(format!(
            "HEAD {url}: {} {:?}",
            resp.status(),
            resp.headers()
        ));
    }
    Ok(())
}

// ---- measuring -----------------------------------------------------------------

#[derive(Debug, Clone, Copy)]
struct Figures {
    rps: f64,
    p50_ms: f64,
    p99_ms: f64,
    requests: u64,
}

/// The median of each figure on its own (rounds are few and odd-sized by
/// default, so this is one round's value per figure).
fn median(rounds: &[Figures]) -> Figures {
    let pick = |get: fn(&Figures) -> f64| {
        let mut v: Vec<f64> = rounds.iter().map(get).collect();
        v.sort_by(f64::total_cmp);
        v[v.len() / 2]
    };
    Figures {
        rps: pick(|f| f.rps),
        p50_ms: pick(|f| f.p50_ms),
        p99_ms: pick(|f| f.p99_ms),
        requests: pick(|f| f.requests as f64) as u64,
    }
}

/// Waits for a quiet machine, runs `f`, and adds a table row.
async fn measure<F, Fut>(rows: &mut Vec<String>, round: usize, label: &str, f: F) -> Result<Figures>
where
    F: FnOnce() -> Fut,
    Fut: std::future::Future<Output = Result<Figures>>,
{
    let before = wait_until_quiet(label).await;
    let figures = f().await?;
    let after = load1();
    eprintln!(
        "round {round}, {label}: {:.0} req/s, p50 {:.3} ms, p99 {:.3} ms ({} requests; load {before:.2} -> {after:.2})",
        figures.rps, figures.p50_ms, figures.p99_ms, figures.requests
    );
    let (what, client) = label.rsplit_once(" (").unwrap_or((label, ")"));
    rows.push(format!(
        "| {what}, round {round} | {} | {:.0} | {:.3} | {:.3} | {} | {before:.2} -> {after:.2} |",
        client.trim_end_matches(')'),
        figures.rps,
        figures.p50_ms,
        figures.p99_ms,
        figures.requests
    ));
    Ok(figures)
}

/// The 1-minute load average.
fn load1() -> f64 {
    std::fs::read_to_string("/proc/loadavg")
        .ok()
        .and_then(|s| s.split_whitespace().next()?.parse().ok())
        .unwrap_or(f64::NAN)
}

/// The share of all CPU time that was busy over the next `window`, from
/// `/proc/stat` (the load average lags by about a minute; this sees a
/// compile that started seconds ago).
async fn cpu_busy(window: Duration) -> f64 {
    fn sample() -> Option<(u64, u64)> {
        let stat = std::fs::read_to_string("/proc/stat").ok()?;
        let fields: Vec<u64> = stat
            .lines()
            .next()?
            .split_whitespace()
            .skip(1)
            .filter_map(|f| f.parse().ok())
            .collect();
        // user nice system idle iowait irq softirq steal ...
        let idle = fields.get(3)? + fields.get(4).unwrap_or(&0);
        Some((fields.iter().take(8).sum(), idle))
    }
    let Some((total0, idle0)) = sample() else {
        return f64::NAN;
    };
    tokio::time::sleep(window).await;
    let Some((total1, idle1)) = sample() else {
        return f64::NAN;
    };
    let total = total1.saturating_sub(total0).max(1) as f64;
    1.0 - idle1.saturating_sub(idle0) as f64 / total
}

/// Waits until the machine is quiet (other people compile on these
/// cores): the 1-minute load under [`QUIET_LOAD`] and the CPUs at least
/// [`QUIET_IDLE`] idle over the last 2 s; at most `RBEE_BENCH_QUIET_WAIT`
/// seconds. Returns the load when measuring starts.
async fn wait_until_quiet(label: &str) -> f64 {
    let limit = std::env::var("RBEE_BENCH_QUIET_WAIT")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(180u64);
    let started = Instant::now();
    let mut said = false;
    loop {
        let load = load1();
        let busy = if load < QUIET_LOAD {
            cpu_busy(Duration::from_secs(2)).await
        } else {
            f64::NAN
        };
        if load < QUIET_LOAD && busy <= 1.0 - QUIET_IDLE {
            return load;
        }
        if started.elapsed() >= Duration::from_secs(limit) {
            eprintln!(
                "{label}: still busy (load {load:.2}, CPU busy {:.0}%) after {limit} s; measuring anyway",
                busy * 100.0
            );
            return load;
        }
        if !said {
            eprintln!(
                "{label}: load {load:.2}, waiting up to {limit} s for it to drop under {QUIET_LOAD} and the CPUs to be {:.0}% idle",
                QUIET_IDLE * 100.0
            );
            said = true;
        }
        tokio::time::sleep(Duration::from_secs(3)).await;
    }
}

/// `wrk -t2 -c32 -d10s --latency` GET of `url`, off the runtime's threads.
async fn wrk(url: String, accept: Option<&'static str>) -> Result<Figures> {
    tokio::task::spawn_blocking(move || run_wrk(&url, accept))
        .await
        .map_err(|e| e.to_string())?
}

/// wrk GET of `url` with extra `headers`, off the runtime's threads.
async fn wrk_with(url: String, headers: Vec<String>) -> Result<Figures> {
    tokio::task::spawn_blocking(move || {
        let headers: Vec<&str> = headers.iter().map(String::as_str).collect();
        run_wrk_for(&url, &headers, SECONDS)
    })
    .await
    .map_err(|e| e.to_string())?
}

fn run_wrk(url: &str, accept: Option<&str>) -> Result<Figures> {
    let accept = accept.map(|a| format!("Accept: {a}"));
    run_wrk_for(url, accept.as_deref().as_slice(), SECONDS)
}

/// wrk GET of `url` with extra `headers`, for `seconds`.
fn run_wrk_for(url: &str, headers: &[&str], seconds: u64) -> Result<Figures> {
    let mut cmd = Command::new("wrk");
    cmd.args([
        format!("-t{THREADS}"),
        format!("-c{CONNECTIONS}"),
        format!("-d{seconds}s"),
        "--latency".to_owned(),
    ]);
    for header in headers {
        cmd.arg("-H").arg(header);
    }
    let out = cmd.arg(url).output().map_err(|e| format!("wrk: {e}"))?;
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    if !out.status.success() {
        return Err(format!(
            "wrk failed: {}\n{text}",
            String::from_utf8_lossy(&out.stderr)
        ));
    }
    parse_wrk(&text).map_err(|e| format!("{e}\n{text}"))
}

fn parse_wrk(text: &str) -> Result<Figures> {
    let mut figures = Figures {
        rps: f64::NAN,
        p50_ms: f64::NAN,
        p99_ms: f64::NAN,
        requests: 0,
    };
    for line in text.lines().map(str::trim) {
        if let Some(v) = line.strip_prefix("Requests/sec:") {
            figures.rps = v.trim().parse().map_err(|_| "bad Requests/sec")?;
        } else if let Some(v) = line.strip_prefix("50%") {
            figures.p50_ms = duration_ms(v.trim()).ok_or("bad p50")?;
        } else if let Some(v) = line.strip_prefix("99%") {
            figures.p99_ms = duration_ms(v.trim()).ok_or("bad p99")?;
        } else if line.starts_with("Non-2xx or 3xx responses:") {
            return Err(format!("wrk saw failed requests: {line}"));
        } else if let Some((n, _)) = line.split_once(" requests in ") {
            figures.requests = n.trim().parse().map_err(|_| "bad request count")?;
        }
    }
    if figures.rps.is_nan() || figures.p99_ms.is_nan() || figures.requests == 0 {
        return Err("could not read wrk's output".into());
    }
    Ok(figures)
}

/// `1.23ms`, `850.00us`, `1.02s` in milliseconds.
fn duration_ms(text: &str) -> Option<f64> {
    let split = text.find(|c: char| c.is_ascii_alphabetic())?;
    let value: f64 = text[..split].parse().ok()?;
    let factor = match &text[split..] {
        "us" => 0.001,
        "ms" => 1.0,
        "s" => 1000.0,
        "m" => 60_000.0,
        _ => return None,
    };
    Some(value * factor)
}

/// Closed-loop load: [`CONNECTIONS`] keep-alive connections, one request
/// in flight on each, for `duration`; every answer must be a 200.
async fn load(url: &str, method: &str, duration: Duration) -> Result<Figures> {
    load_with(url, method, None, duration).await
}

/// [`load`] with one extra request header line (`Name: value`).
async fn load_with(
    url: &str,
    method: &str,
    header: Option<&str>,
    duration: Duration,
) -> Result<Figures> {
    let rest = url.strip_prefix("http://").ok_or("http:// URL expected")?;
    let (host, path) = rest.split_at(rest.find('/').unwrap_or(rest.len()));
    let mut extra = if path.contains("/manifests/") {
        format!("Accept: {OCI_INDEX}\r\n")
    } else {
        String::new()
    };
    if let Some(header) = header {
        extra.push_str(header);
        extra.push_str("\r\n");
    }
    let request =
        Arc::new(format!("{method} {path} HTTP/1.1\r\nHost: {host}\r\n{extra}\r\n").into_bytes());
    let head = method == "HEAD";
    let start = Instant::now();
    let deadline = start + duration;
    let tasks: Vec<_> = (0..CONNECTIONS)
        .map(|_| tokio::spawn(connection(host.to_owned(), request.clone(), head, deadline)))
        .collect();
    let mut latencies = Vec::new();
    for task in tasks {
        latencies.extend(task.await.map_err(|e| e.to_string())??);
    }
    let elapsed = start.elapsed().as_secs_f64();
    if latencies.is_empty() {
        return Err(format!("no {method} {url} completed"));
    }
    latencies.sort_unstable();
    let pct = |p: f64| {
        let i = ((latencies.len() as f64 * p).ceil() as usize).clamp(1, latencies.len()) - 1;
        latencies[i] as f64 / 1e6
    };
    Ok(Figures {
        rps: latencies.len() as f64 / elapsed,
        p50_ms: pct(0.50),
        p99_ms: pct(0.99),
        requests: latencies.len() as u64,
    })
}

/// One connection's loop; the latencies in nanoseconds.
async fn connection(
    host: String,
    request: Arc<Vec<u8>>,
    head: bool,
    deadline: Instant,
) -> Result<Vec<u64>> {
    let mut tcp = tokio::net::TcpStream::connect(&host)
        .await
        .map_err(|e| format!("connect {host}: {e}"))?;
    tcp.set_nodelay(true).map_err(|e| e.to_string())?;
    let mut latencies = Vec::with_capacity(1 << 15);
    let mut buf = vec![0u8; 64 << 10];
    while Instant::now() < deadline {
        let sent = Instant::now();
        tcp.write_all(&request).await.map_err(|e| e.to_string())?;
        let mut filled = 0;
        let mut need = None;
        loop {
            if let Some(n) = need
                && filled >= n
            {
                break;
            }
            if filled == buf.len() {
                return Err("answer larger than the buffer".into());
            }
            let n = tcp
                .read(&mut buf[filled..])
                .await
                .map_err(|e| e.to_string())?;
            if n == 0 {
                return Err(format!("{host} closed the connection"));
            }
            filled += n;
            if need.is_none()
                && let Some(end) = buf[..filled].windows(4).position(|w| w == b"\r\n\r\n")
            {
                let headers = std::str::from_utf8(&buf[..end]).map_err(|e| e.to_string())?;
                if !headers.starts_with("HTTP/1.1 200 ") {
                    return Err(format!(
                        "not a 200: {}",
                        headers.lines().next().unwrap_or("")
                    ));
                }
                let length = headers
                    .lines()
                    .find_map(|l| {
                        let (k, v) = l.split_once(':')?;
                        k.eq_ignore_ascii_case("content-length")
                            .then(|| v.trim().parse::<usize>().ok())?
                    })
                    .ok_or("no Content-Length")?;
                need = Some(end + 4 + if head { 0 } else { length });
            }
        }
        if need != Some(filled) {
            return Err("more bytes than one answer".into());
        }
        latencies.push(sent.elapsed().as_nanos() as u64);
    }
    Ok(latencies)
}

// ---- the machine -----------------------------------------------------------------

fn machine() -> String {
    let cpuinfo = std::fs::read_to_string("/proc/cpuinfo").unwrap_or_default();
    let model = cpuinfo
        .lines()
        .find_map(|l| {
            l.strip_prefix("model name")?
                .split_once(':')
                .map(|x| x.1.trim().to_owned())
        })
        .unwrap_or_else(|| "unknown CPU".into());
    let meminfo = std::fs::read_to_string("/proc/meminfo").unwrap_or_default();
    let ram_gib = meminfo
        .lines()
        .find_map(|l| l.strip_prefix("MemTotal:"))
        .and_then(|v| v.split_whitespace().next()?.parse::<f64>().ok())
        .map(|kib| kib / (1024.0 * 1024.0))
        .unwrap_or(f64::NAN);
    let nproc = std::thread::available_parallelism().map_or(0, |n| n.get());
    let kernel = std::fs::read_to_string("/proc/sys/kernel/osrelease").unwrap_or_default();
    let version = |cmd: &str, arg: &str| {
        Command::new(cmd)
            .arg(arg)
            .output()
            .ok()
            .map(|o| {
                let text = [o.stdout, o.stderr].concat();
                String::from_utf8_lossy(&text)
                    .lines()
                    .next()
                    .unwrap_or("")
                    .trim()
                    .to_owned()
            })
            .unwrap_or_default()
    };
    format!(
        "machine: nproc {nproc}, {model}, RAM {ram_gib:.1} GiB, kernel {}; {}; {}",
        kernel.trim(),
        version("wrk", "-v"),
        version("docker-registry", "--version"),
    )
}

fn modified(path: &Path) -> String {
    let Ok(modified) = std::fs::metadata(path).and_then(|m| m.modified()) else {
        return "modification time unknown".into();
    };
    let age = modified.elapsed().unwrap_or_default().as_secs();
    format!("built {age} s ago")
}
