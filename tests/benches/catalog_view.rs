//! `cargo bench -p rbee-e2e --bench catalog_view`: listings served from
//! the catalog's view in the database next to the registry walk they
//! replace (issue 13), measured in one run on one generated catalog of
//! `RBEE_BENCH_WORKERS` workers (default 1,000) with
//! `RBEE_BENCH_VERSIONS` versions each (default 10), in the embedded
//! registry, SQLite database in the data dir. Targets: `/v1/workers` and
//! the legacy `/workers` answer within 50 ms as the first request after a
//! restart; a push is listed within 1 s.
//!
//! The catalog is generated straight into the registry (one layer blob
//! per worker, a metadata config, a platform manifest and an image index
//! per version, then one catalog index), from the documents the pusher
//! wrote for the example worker, so that generating takes a minute
//! rather than hours. Then, each first request after a fresh start of the
//! server on the same data dir:
//!
//! 1. the view is built (first start on an empty database; its duration
//!    is printed);
//! 2. restart, `GET /v1/workers`; restart, `GET /workers` (the view), then
//!    a few warm requests of each;
//! 3. a new version is published with the pusher, and the time from the
//!    end of the publish until both listings show it is measured;
//! 4. the same two cold requests with the view turned off: the registry
//!    walk (both lists stop at 500 workers, `MAX_LISTED`, on both paths).
//!
//! The figures are printed as a Markdown block for `docs/benchmarks.md`,
//! with the load average; a MISS does not fail the bench, an error does.

#[path = "../tests/common/mod.rs"]
mod common;

use std::path::Path;
use std::time::{Duration, Instant};

use common::catalog::{other_worker, publish_files};
use common::publishing::{CATALOG_REPO, Fixture, REPO};
use common::sha256_digest;
use futures_util::StreamExt;
use rbee_catalog::{CatalogConfig, RunningCatalog};
use serde_json::Value;

type Result<T> = std::result::Result<T, String>;

const TARGET_LIST_MS: f64 = 50.0;
const TARGET_VISIBLE_MS: f64 = 1000.0;
const CONCURRENCY: usize = 16;

fn env_usize(name: &str, default: usize) -> usize {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

fn main() {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("tokio runtime");
    if let Err(e) = runtime.block_on(run()) {
        eprintln!("catalog_view bench failed: {e}");
        std::process::exit(1);
    }
}

async fn start(data: &Path, view: bool) -> Result<RunningCatalog> {
    let mut config = CatalogConfig::new(data);
    config.tokens.dev_open_loopback = true;
    config.catalog_view = view;
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .map_err(|e| e.to_string())?;
    rbee_catalog::start(config, listener)
        .await
        .map_err(|e| e.to_string())
}

/// One client for the whole run: building one loads the system's root
/// certificates, a few milliseconds that are not the server's. Each
/// restarted server is a new address, so its first request still opens a
/// new connection.
fn http() -> reqwest::Client {
    static CLIENT: std::sync::OnceLock<reqwest::Client> = std::sync::OnceLock::new();
    CLIENT
        .get_or_init(|| reqwest::Client::builder().no_proxy().build().unwrap())
        .clone()
}

async fn get_json(url: &str) -> Result<Value> {
    serde_json::from_slice(&get_bytes(url.to_owned()).await?).map_err(|e| e.to_string())
}

async fn get_bytes(url: String) -> Result<Vec<u8>> {
    let url = url.as_str();
    let resp = http().get(url).send().await.map_err(|e| e.to_string())?;
    if !resp.status().is_success() {
        return Err(format!("GET {url}: {}", resp.status()));
    }
    Ok(resp.bytes().await.map_err(|e| e.to_string())?.to_vec())
}

/// One timed GET, from the request to the answer's last byte (the JSON is
/// read after); the number of workers listed and the milliseconds.
async fn timed_list(url: &str) -> Result<(usize, f64)> {
    let started = Instant::now();
    let bytes = get_bytes(url.to_owned()).await?;
    let ms = started.elapsed().as_secs_f64() * 1000.0;
    let body: Value = serde_json::from_slice(&bytes).map_err(|e| e.to_string())?;
    let n = body["workers"].as_array().map_or(0, Vec::len);
    Ok((n, ms))
}

async fn put_blob(registry: &str, repo: &str, bytes: Vec<u8>) -> Result<(String, usize)> {
    let digest = sha256_digest(&bytes);
    let size = bytes.len();
    let resp = http()
        .post(format!(
            "{registry}/v2/{repo}/blobs/uploads/?digest={digest}"
        ))
        .body(bytes)
        .send()
        .await
        .map_err(|e| e.to_string())?;
    if resp.status() != 201 {
        return Err(format!("blob upload to {repo}: {}", resp.status()));
    }
    Ok((digest, size))
}

async fn put_manifest(
    registry: &str,
    repo: &str,
    reference: Option<&str>,
    doc: &Value,
) -> Result<(String, usize)> {
    let bytes = serde_json::to_vec(doc).unwrap();
    let digest = sha256_digest(&bytes);
    let size = bytes.len();
    let media_type = doc["mediaType"].as_str().unwrap_or_default().to_owned();
    let reference = reference.unwrap_or(&digest).to_owned();
    let resp = http()
        .put(format!("{registry}/v2/{repo}/manifests/{reference}"))
        .header("content-type", media_type)
        .body(bytes)
        .send()
        .await
        .map_err(|e| e.to_string())?;
    if resp.status() != 201 {
        let status = resp.status();
        return Err(format!(
            "manifest PUT {repo}:{reference}: {status} {}",
            resp.text().await.unwrap_or_default()
        ));
    }
    Ok((digest, size))
}

/// The example release as the pusher wrote it: templates to copy.
struct Templates {
    index: Value,
    manifest: Value,
    metadata: Value,
    layer: Vec<u8>,
    catalog_manifest: Value,
    catalog: Value,
}

async fn templates(registry: &str) -> Result<Templates> {
    let manifest_of = |repo: &str, reference: &str| {
        let url = format!("{registry}/v2/{repo}/manifests/{reference}");
        async move {
            let resp = http()
                .get(&url)
                .header(
                    "accept",
                    "application/vnd.oci.image.index.v1+json, application/vnd.oci.image.manifest.v1+json",
                )
                .send()
                .await
                .map_err(|e| e.to_string())?;
            resp.json::<Value>().await.map_err(|e| e.to_string())
        }
    };
    let index = manifest_of(REPO, "0.1.0").await?;
    let first = index["manifests"][0]["digest"].as_str().unwrap().to_owned();
    let manifest = manifest_of(REPO, &first).await?;
    let blob = |repo: &str, digest: &str| get_bytes(format!("{registry}/v2/{repo}/blobs/{digest}"));
    let metadata: Value =
        serde_json::from_slice(&blob(REPO, manifest["config"]["digest"].as_str().unwrap()).await?)
            .map_err(|e| e.to_string())?;
    let layer = blob(REPO, manifest["layers"][0]["digest"].as_str().unwrap()).await?;
    let catalog_manifest = manifest_of(CATALOG_REPO, "latest").await?;
    let catalog: Value = serde_json::from_slice(
        &blob(
            CATALOG_REPO,
            catalog_manifest["layers"][0]["digest"].as_str().unwrap(),
        )
        .await?,
    )
    .map_err(|e| e.to_string())?;
    Ok(Templates {
        index,
        manifest,
        metadata,
        layer,
        catalog_manifest,
        catalog,
    })
}

fn worker_id(n: usize) -> String {
    format!("bench{n:04}-worker-rbee-cpu")
}

fn version(v: usize) -> String {
    format!("1.{v}.0")
}

/// Writes one worker: its layer, and per version a config, a platform
/// manifest (the template's with the config replaced) and an index.
async fn generate_worker(registry: &str, t: &Templates, n: usize, versions: usize) -> Result<()> {
    let id = worker_id(n);
    let repo = format!("rbee/{id}");
    put_blob(registry, &repo, t.layer.clone()).await?;
    for v in 0..versions {
        let version = version(v);
        let mut metadata = t.metadata.clone();
        metadata["id"] = id.clone().into();
        metadata["name"] = format!("{id} (bench)").into();
        metadata["binary_name"] = id.clone().into();
        metadata["install_path"] = format!("/usr/local/bin/{id}").into();
        metadata["version"] = version.clone().into();
        let (config, config_size) =
            put_blob(registry, &repo, serde_json::to_vec(&metadata).unwrap()).await?;
        let mut manifest = t.manifest.clone();
        manifest["config"]["digest"] = config.into();
        manifest["config"]["size"] = config_size.into();
        let (digest, size) = put_manifest(registry, &repo, None, &manifest).await?;
        let mut index = t.index.clone();
        index["manifests"] = Value::Array(vec![{
            let mut entry = t.index["manifests"][0].clone();
            entry["digest"] = digest.into();
            entry["size"] = size.into();
            entry
        }]);
        put_manifest(registry, &repo, Some(&version), &index).await?;
    }
    Ok(())
}

async fn generate(registry: &str, t: &Templates, workers: usize, versions: usize) -> Result<()> {
    let mut jobs = futures_util::stream::iter(0..workers)
        .map(|n| generate_worker(registry, t, n, versions))
        .buffer_unordered(CONCURRENCY);
    let mut done = 0;
    while let Some(result) = jobs.next().await {
        result?;
        done += 1;
        if done % 100 == 0 {
            eprintln!("  generated {done}/{workers} workers");
        }
    }
    // The catalog index: the example's entry plus every generated worker.
    let mut catalog = t.catalog.clone();
    let template = catalog["workers"][0].clone();
    let entries = catalog["workers"].as_array_mut().unwrap();
    for n in 0..workers {
        let id = worker_id(n);
        let mut e = template.clone();
        e["id"] = id.clone().into();
        e["repository"] = format!("rbee/{id}").into();
        e["latest"] = version(versions - 1).into();
        e["versions"] = (0..versions).rev().map(version).collect::<Vec<_>>().into();
        entries.push(e);
    }
    entries.sort_by(|a, b| a["id"].as_str().cmp(&b["id"].as_str()));
    let (doc, doc_size) = put_blob(
        registry,
        CATALOG_REPO,
        serde_json::to_vec(&catalog).unwrap(),
    )
    .await?;
    let mut manifest = t.catalog_manifest.clone();
    manifest["layers"][0]["digest"] = doc.into();
    manifest["layers"][0]["size"] = doc_size.into();
    put_manifest(registry, CATALOG_REPO, Some("latest"), &manifest).await?;
    Ok(())
}

/// One restart's figures ([`cold_then_warm`]).
struct Restart {
    /// Workers in the list.
    listed: usize,
    /// Milliseconds the start took, until it serves.
    start: f64,
    /// Milliseconds of the first request.
    cold: f64,
    /// Median milliseconds of the requests after it.
    warm: f64,
}

/// A fresh start of the server (view on or off), the cold request of
/// `path`, then `warm` more.
async fn cold_then_warm(data: &Path, view: bool, path: &str, warm: usize) -> Result<Restart> {
    let starting = Instant::now();
    let running = start(data, view).await?;
    let start = starting.elapsed().as_secs_f64() * 1000.0;
    let url = format!("{}{path}", running.url());
    let (n, cold) = timed_list(&url).await?;
    let mut times = Vec::new();
    for _ in 0..warm {
        times.push(timed_list(&url).await?.1);
    }
    times.sort_by(f64::total_cmp);
    let median = times.get(times.len() / 2).copied().unwrap_or(f64::NAN);
    running.stop().await.map_err(|e| e.to_string())?;
    Ok(Restart {
        listed: n,
        start,
        cold,
        warm: median,
    })
}

fn load1() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .ok()
        .and_then(|l| l.split_whitespace().next().map(str::to_owned))
        .unwrap_or_else(|| "?".into())
}

fn verdict(ms: f64, target: f64) -> &'static str {
    if ms <= target { "PASS" } else { "MISS" }
}

async fn run() -> Result<()> {
    let workers = env_usize("RBEE_BENCH_WORKERS", 1000);
    let versions = env_usize("RBEE_BENCH_VERSIONS", 10).max(1);
    // `RBEE_BENCH_DATA_DIR` keeps the generated catalog (and its built
    // view) for the next run, which then only measures.
    let kept = std::env::var_os("RBEE_BENCH_DATA_DIR").map(std::path::PathBuf::from);
    let temp = tempfile::tempdir().map_err(|e| e.to_string())?;
    let data = kept.as_deref().unwrap_or(temp.path());
    let marker = data.join("bench-generated");
    let load_start = load1();

    // Seconds to generate the catalog and to build its view, when this run
    // did (not with a kept catalog).
    let mut prepared = None;
    if !marker.exists() {
        eprintln!("generating {workers} workers x {versions} versions ...");
        let generating = Instant::now();
        {
            let running = start(data, false).await?;
            let url = running.url();
            publish_files(&url, &Fixture::new("0.1.0").files()).await;
            let t = templates(&url).await?;
            generate(&url, &t, workers, versions).await?;
            running.stop().await.map_err(|e| e.to_string())?;
        }
        let generate_secs = generating.elapsed().as_secs_f64();

        eprintln!("building the view (first start, empty database) ...");
        let building = Instant::now();
        let running = start(data, true).await?;
        let view = running.state.catalog.view().cloned().ok_or("no view")?;
        while !view.is_ready() {
            if building.elapsed() > Duration::from_secs(1800) {
                return Err("the view was not built within 30 minutes".into());
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        prepared = Some((generate_secs, building.elapsed().as_secs_f64()));
        // The view holds the registry; the next start needs it free.
        drop(view);
        running.stop().await.map_err(|e| e.to_string())?;
        if kept.is_some() {
            std::fs::write(&marker, format!("{workers}x{versions}\n"))
                .map_err(|e| e.to_string())?;
        }
    } else {
        eprintln!("reusing the catalog generated in {}", data.display());
    }

    eprintln!("measuring ...");
    let view_v1 = cold_then_warm(data, true, "/v1/workers", 10).await?;
    let view_legacy = cold_then_warm(data, true, "/workers", 10).await?;

    // A push, and how long until both listings show it.
    let running = start(data, true).await?;
    let url = running.url();
    timed_list(&format!("{url}/v1/workers")).await?;
    timed_list(&format!("{url}/workers")).await?;
    let pushed = worker_id(0);
    // A new version on each run (a kept catalog has the last run's).
    let new_version = format!(
        "2.{}.0",
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_secs())
    );
    let (_fixture, files) = other_worker(&pushed, &new_version, false);
    publish_files(&url, &files).await;
    let published = Instant::now();
    loop {
        let versions = get_json(&format!("{url}/v1/workers/{pushed}/versions")).await?;
        let legacy = get_json(&format!("{url}/workers")).await?;
        let in_v1 = versions["versions"][0]["version"] == new_version.as_str();
        let in_legacy = legacy["workers"].as_array().is_some_and(|ws| {
            ws.iter()
                .any(|w| w["id"] == pushed.as_str() && w["version"] == new_version.as_str())
        });
        if in_v1 && in_legacy {
            break;
        }
        if published.elapsed() > Duration::from_secs(60) {
            return Err("the push was not listed within 60 s".into());
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    let visible_ms = published.elapsed().as_secs_f64() * 1000.0;
    running.stop().await.map_err(|e| e.to_string())?;

    let walk_v1 = cold_then_warm(data, false, "/v1/workers", 3).await?;
    let walk_legacy = cold_then_warm(data, false, "/workers", 3).await?;
    let load_end = load1();

    println!("\n### Results\n");
    println!(
        "{workers} workers x {versions} versions (+ the example worker), embedded registry, SQLite; \
         1-minute load average {load_start} at the start, {load_end} at the end. \
         {}\n",
        match prepared {
            None =>
                "The catalog and its view were kept from an earlier run (`RBEE_BENCH_DATA_DIR`)."
                    .to_owned(),
            Some((generate_secs, build_secs)) => format!(
                "Generating took {generate_secs:.0} s; building the view on first start {build_secs:.1} s."
            ),
        }
    );
    println!("| request (first after a restart) | view in the database | registry walk | target |");
    println!("|---|---|---|---|");
    println!(
        "| `GET /v1/workers` ({} / {} listed) | {:.1} ms | {:.1} ms | <= {TARGET_LIST_MS} ms: {} |",
        view_v1.listed,
        walk_v1.listed,
        view_v1.cold,
        walk_v1.cold,
        verdict(view_v1.cold, TARGET_LIST_MS)
    );
    println!(
        "| `GET /workers` ({} / {} listed) | {:.1} ms | {:.1} ms | <= {TARGET_LIST_MS} ms: {} |",
        view_legacy.listed,
        walk_legacy.listed,
        view_legacy.cold,
        walk_legacy.cold,
        verdict(view_legacy.cold, TARGET_LIST_MS)
    );
    println!(
        "| the same, warm (median) | {:.1} / {:.1} ms | {:.1} / {:.1} ms | |",
        view_v1.warm, view_legacy.warm, walk_v1.warm, walk_legacy.warm
    );
    println!(
        "| start until serving (the restarts above; the view's includes reading the listings) | {:.0} / {:.0} ms | {:.0} / {:.0} ms | |",
        view_v1.start, view_legacy.start, walk_v1.start, walk_legacy.start
    );
    println!(
        "| push listed (end of publish to both lists) | {visible_ms:.0} ms | | <= {TARGET_VISIBLE_MS} ms: {} |",
        verdict(visible_ms, TARGET_VISIBLE_MS)
    );
    Ok(())
}
