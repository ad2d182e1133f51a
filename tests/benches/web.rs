//! `cargo bench -p rbee-e2e --bench web`: the catalog's worker list page
//! (`GET /`, issue 16) for `RBEE_BENCH_WORKERS` workers (default 100),
//! next to the `/v1/workers` JSON answer for the same workers in the same
//! run. Target: the page within 20 ms on the server.
//!
//! The workers are published with the pusher into the embedded registry;
//! then, once each list is cached (the first request walks the registry
//! and is printed apart), `RBEE_BENCH_ROUNDS` (default 200) requests of
//! each kind are timed over loopback, interleaved, one at a time: the
//! figures include the HTTP round trip, so they bound the server's time
//! from above. A filtered and sorted page (`/?platform=linux-x86_64&
//! sort=downloads&q=worker`) is measured too. The figures are printed as a
//! Markdown block for `docs/benchmarks.md`, with the load average; a MISS
//! does not fail the bench, an error does.

#[path = "../tests/common/mod.rs"]
mod common;

use std::time::{Duration, Instant};

use common::catalog::{other_worker, publish_files};
use rbee_catalog::{CatalogConfig, RunningCatalog};

type Result<T> = std::result::Result<T, String>;

const TARGET_PAGE_MS: f64 = 20.0;

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
        eprintln!("web bench failed: {e}");
        std::process::exit(1);
    }
}

async fn start(data: &std::path::Path) -> Result<RunningCatalog> {
    let mut config = CatalogConfig::new(data);
    config.tokens.dev_open_loopback = true;
    // The bench's own requests would count as nothing (they fetch no
    // layer); leave analytics as configured by default.
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .map_err(|e| e.to_string())?;
    rbee_catalog::start(config, listener)
        .await
        .map_err(|e| e.to_string())
}

/// One GET; its milliseconds and body length. Fails unless 200.
async fn timed(http: &reqwest::Client, url: &str) -> Result<(f64, usize)> {
    let started = Instant::now();
    let resp = http.get(url).send().await.map_err(|e| e.to_string())?;
    if resp.status() != 200 {
        return Err(format!("GET {url}: {}", resp.status()));
    }
    let body = resp.bytes().await.map_err(|e| e.to_string())?;
    Ok((started.elapsed().as_secs_f64() * 1000.0, body.len()))
}

fn percentile(sorted: &[f64], p: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[i.min(sorted.len() - 1)]
}

fn load1() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .ok()
        .and_then(|l| l.split_whitespace().next().map(str::to_owned))
        .unwrap_or_else(|| "?".into())
}

async fn run() -> Result<()> {
    let workers = env_usize("RBEE_BENCH_WORKERS", 100);
    let rounds = env_usize("RBEE_BENCH_ROUNDS", 200);
    let data = tempfile::tempdir().map_err(|e| e.to_string())?;
    let catalog = start(data.path()).await?;
    let base = catalog.url();
    let registry = catalog.state.registry_public_url.clone();

    let started = Instant::now();
    let mut fixtures = Vec::with_capacity(workers);
    for i in 0..workers {
        let id = format!("bench-{i:03}-worker-rbee-cpu");
        let (fixture, files) = other_worker(&id, "0.1.0", true);
        fixture.edit_metadata(|m| {
            m["description"] =
                format!("Benchmark worker number {i}, one of {workers}: <not markup> & more.")
                    .into();
        });
        publish_files(&registry, &files).await;
        fixtures.push(fixture);
    }
    eprintln!(
        "published {workers} workers in {:.1} s",
        started.elapsed().as_secs_f64()
    );
    catalog.state.catalog.invalidate_all();

    let http = reqwest::Client::builder()
        .no_proxy()
        .build()
        .map_err(|e| e.to_string())?;
    let page = format!("{base}/");
    let filtered = format!("{base}/?platform=linux-x86_64&sort=downloads&q=worker");
    let json = format!("{base}/v1/workers");
    let (cold_page, page_bytes) = timed(&http, &page).await?;
    let (cold_json, json_bytes) = timed(&http, &json).await?;
    let cards = {
        let body = http
            .get(&page)
            .send()
            .await
            .map_err(|e| e.to_string())?
            .text()
            .await
            .map_err(|e| e.to_string())?;
        body.matches("<li class=\"card\"").count()
    };
    if cards != workers {
        return Err(format!("the page lists {cards} workers, not {workers}"));
    }
    // Warm-up: connections, caches, the stats cache.
    for _ in 0..10 {
        timed(&http, &page).await?;
        timed(&http, &filtered).await?;
        timed(&http, &json).await?;
    }
    let (mut p, mut f, mut j) = (Vec::new(), Vec::new(), Vec::new());
    for _ in 0..rounds {
        p.push(timed(&http, &page).await?.0);
        f.push(timed(&http, &filtered).await?.0);
        j.push(timed(&http, &json).await?.0);
    }
    for v in [&mut p, &mut f, &mut j] {
        v.sort_by(f64::total_cmp);
    }
    let row = |name: &str, v: &[f64], bytes: String| {
        format!(
            "| {name} | {:.2} | {:.2} | {:.2} | {bytes} |",
            percentile(v, 0.5),
            percentile(v, 0.95),
            percentile(v, 0.99),
        )
    };
    let median = percentile(&p, 0.5);
    println!();
    println!(
        "### Web page, {workers} workers ({rounds} requests each, load average {})",
        load1()
    );
    println!();
    println!("| request | median ms | p95 ms | p99 ms | body |");
    println!("|---|---|---|---|---|");
    println!(
        "{}",
        row("`GET /` (the page)", &p, format!("{page_bytes} B"))
    );
    println!(
        "{}",
        row("`GET /?platform=…&sort=downloads&q=worker`", &f, "—".into())
    );
    println!(
        "{}",
        row("`GET /v1/workers` (JSON)", &j, format!("{json_bytes} B"))
    );
    println!();
    println!(
        "First requests after publishing (the registry walked): page {cold_page:.1} ms, JSON {cold_json:.1} ms."
    );
    println!(
        "Target: the page within {TARGET_PAGE_MS} ms: {} (median {median:.2} ms).",
        if median <= TARGET_PAGE_MS {
            "PASS"
        } else {
            "MISS"
        }
    );
    drop(fixtures);
    tokio::time::timeout(Duration::from_secs(30), catalog.stop())
        .await
        .map_err(|_| "the catalog did not stop".to_owned())?
        .map_err(|e| e.to_string())?;
    Ok(())
}
