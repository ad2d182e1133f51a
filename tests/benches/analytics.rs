//! `cargo bench -p rbee-e2e --bench analytics`: download analytics at
//! scale (issue 13).
//!
//! 1. A generator loads `RBEE_BENCH_EVENTS` events (default 10,000,000:
//!    200 workers x 5 versions x 4 platforms over 90 days, 7 client
//!    families, 2 sources, 100,000 client hashes) through
//!    `Store::record_downloads` in batches of 10,000, into SQLite and (when
//!    the test cluster of `scripts/test-postgres.sh` answers) PostgreSQL,
//!    and prints the ingestion rate (target: at least 50,000 events/s).
//!    The events come oldest first, as a catalog records them (each when
//!    its download ends), so a batch spans an hour or so of one day.
//!    `RBEE_BENCH_ORDER=shuffled` gives each event a random one of the 90
//!    days instead: batches no catalog writes (every batch touches
//!    thousands of rollup rows and 90 days of client hashes), the worst
//!    case the bench measured before 2026-12-01.
//! 2. A catalog on each database answers `GET /v1/workers/:id/stats` and
//!    `GET /v1/stats/overview` with its stats cache off, so every request
//!    queries the rollups: 300 requests each, one at a time, p50 and p99
//!    (target: p99 at most 20 ms).
//! 3. The download route (`GET /v2/.../blobs/<layer>` of the example
//!    worker, each answer a recorded download) with analytics on and off,
//!    `wrk -t2 -c32 -d10s`, interleaved, 3 rounds, medians (target:
//!    recording costs at most 10% of the requests/s).
//!
//! Figures are printed; a MISS does not fail the bench.

#[path = "../tests/common/mod.rs"]
mod common;

use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};
use common::catalog::{TestCatalog, WORKER};
use common::find_tool;
use common::publishing::{Fixture, host_platform};
use rbee_store::analytics::NewDownload;
use rbee_store::testing::TestDatabase;

const WORKERS: u64 = 200;
const VERSIONS: u64 = 5;
const PLATFORMS: [&str; 4] = [
    "linux-x86_64",
    "linux-aarch64",
    "macos-aarch64",
    "windows-x86_64",
];
const FAMILIES: [&str; 7] = [
    "rbee-hive",
    "rbee-worker",
    "oras",
    "skopeo",
    "crane",
    "curl",
    "other",
];
const DAYS: u64 = 90;
const BATCH: usize = 10_000;
const QUERIES: usize = 300;

fn main() {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("tokio runtime");
    runtime.block_on(run());
}

async fn run() {
    let events: u64 = std::env::var("RBEE_BENCH_EVENTS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(10_000_000);
    let shuffled = std::env::var("RBEE_BENCH_ORDER").is_ok_and(|o| o == "shuffled");
    println!(
        "analytics bench: {events} events, {}; load {}",
        if shuffled {
            "days shuffled"
        } else {
            "oldest first"
        },
        load()
    );

    let sqlite = TestDatabase::sqlite();
    bench_database("sqlite", &sqlite, events, shuffled).await;
    match TestDatabase::postgres().await {
        Some(pg) => {
            bench_database("postgres", &pg, events, shuffled).await;
            pg.finish().await;
        }
        None => println!("postgres: skipped (no test cluster)"),
    }
    bench_download_route().await;
}

async fn bench_database(name: &str, db: &TestDatabase, events: u64, shuffled: bool) {
    let store = db.store().await;
    let started = Instant::now();
    let mut rng = 0x2545_f491_4f6c_dd1du64;
    let today = Utc::now();
    let mut written = 0;
    while written < events {
        let n = BATCH.min((events - written) as usize);
        let batch: Vec<NewDownload> = (0..n)
            .map(|i| {
                let i = if shuffled {
                    next(&mut rng) % events
                } else {
                    written + i as u64
                };
                event(&mut rng, at(today, i, events))
            })
            .collect();
        store.record_downloads(&batch).await.expect("ingest");
        written += n as u64;
        if written.is_multiple_of(1_000_000) {
            println!(
                "{name}: {written} events, {:.0} events/s so far, load {}",
                written as f64 / started.elapsed().as_secs_f64(),
                load()
            );
        }
    }
    let rate = events as f64 / started.elapsed().as_secs_f64();
    println!(
        "{name}: ingestion {rate:.0} events/s in batches of {BATCH} ({}; target >= 50000) load {}",
        verdict(rate >= 50_000.0),
        load()
    );
    store.close().await;

    let catalog = TestCatalog::start(|config| {
        config.database_url = Some(db.url().to_owned());
        config.analytics.stats_ttl = Duration::ZERO;
    })
    .await;
    let mut rng = 7u64;
    let worker = |rng: &mut u64| format!("/v1/workers/worker-{}/stats", next(rng) % WORKERS);
    for (route, path) in [
        ("worker stats", None),
        ("overview", Some("/v1/stats/overview".to_owned())),
    ] {
        let mut times = Vec::with_capacity(QUERIES);
        for _ in 0..QUERIES {
            let path = path.clone().unwrap_or_else(|| worker(&mut rng));
            let t = Instant::now();
            catalog.get(&path).await.expect(200);
            times.push(t.elapsed());
        }
        times.sort();
        let p = |q: f64| times[((times.len() as f64 * q) as usize).min(times.len() - 1)];
        let p99 = p(0.99).as_secs_f64() * 1000.0;
        println!(
            "{name}: {route} p50 {:.2} ms p99 {p99:.2} ms ({}; target p99 <= 20 ms) load {}",
            p(0.5).as_secs_f64() * 1000.0,
            verdict(p99 <= 20.0),
            load()
        );
    }
    catalog.stop().await;
}

/// When event `i` of `events` happened: the events are spread evenly
/// over the last [`DAYS`] days, oldest first, as a catalog records them
/// (each download when it ends).
fn at(today: DateTime<Utc>, i: u64, events: u64) -> DateTime<Utc> {
    let span = chrono::Duration::days(DAYS as i64);
    let before = span.num_seconds() as f64 * (1.0 - i as f64 / events as f64);
    today - chrono::Duration::seconds(before as i64)
}

/// One generated event at `at` (xorshift: reproducible, no dependency).
fn event(rng: &mut u64, at: DateTime<Utc>) -> NewDownload {
    let r = next(rng);
    let worker = r % WORKERS;
    NewDownload {
        at,
        worker: format!("worker-{worker}"),
        version: format!("0.{}.0", (r >> 16) % VERSIONS),
        platform: PLATFORMS[((r >> 20) % 4) as usize].to_owned(),
        source: if (r >> 24).is_multiple_of(3) {
            "v1"
        } else {
            "registry"
        }
        .to_owned(),
        client_family: FAMILIES[((r >> 28) % 7) as usize].to_owned(),
        client_hash: Some(format!("{:032x}", (r >> 32) % 100_000)),
        license_id: None,
        complete: !(r >> 40).is_multiple_of(10),
        resumed: (r >> 44).is_multiple_of(20),
    }
}

fn next(state: &mut u64) -> u64 {
    *state ^= *state << 13;
    *state ^= *state >> 7;
    *state ^= *state << 17;
    *state
}

async fn bench_download_route() {
    if find_tool("wrk").is_none() {
        println!("download route: skipped (no wrk)");
        return;
    }
    let on = TestCatalog::start(|_| {}).await;
    let off = TestCatalog::start(|config| config.analytics.enabled = false).await;
    let platform = host_platform().expect("a platform the example lists");
    let mut url = Vec::new();
    for catalog in [&on, &off] {
        let summary = catalog.publish(&Fixture::new("0.1.0")).await;
        let build = summary
            .platforms
            .iter()
            .find(|p| p.platform == platform)
            .expect("host build");
        url.push(format!(
            "{}/v2/rbee/{WORKER}/blobs/{}",
            catalog.url, build.layer_digest
        ));
    }
    let (mut with, mut without) = (Vec::new(), Vec::new());
    for _ in 0..3 {
        with.push(wrk(&url[0]).await);
        without.push(wrk(&url[1]).await);
    }
    with.sort_by(f64::total_cmp);
    without.sort_by(f64::total_cmp);
    let (a, b) = (with[1], without[1]);
    let counters = on.state().analytics.counters();
    let recorded = on
        .state()
        .analytics
        .wait_recorded(u64::MAX, Duration::from_secs(5))
        .await;
    println!(
        "download route: analytics on {a:.0} req/s, off {b:.0} req/s: on/off {:.1}% ({}; target >= 90%); recorded {recorded}, dropped {} load {}",
        a / b * 100.0,
        verdict(a >= 0.9 * b),
        counters.dropped(),
        load()
    );
    on.stop().await;
    off.stop().await;
}

async fn wrk(url: &str) -> f64 {
    let url = url.to_owned();
    tokio::task::spawn_blocking(move || {
        let out = std::process::Command::new("wrk")
            .args(["-t2", "-c32", "-d10s", &url])
            .output()
            .expect("wrk runs");
        let text = String::from_utf8_lossy(&out.stdout);
        assert!(!text.contains("Non-2xx"), "wrk saw failures: {text}");
        text.lines()
            .find_map(|l| l.strip_prefix("Requests/sec:"))
            .and_then(|v| v.trim().parse().ok())
            .unwrap_or_else(|| panic!("no Requests/sec in {text}"))
    })
    .await
    .expect("wrk task")
}

fn verdict(ok: bool) -> &'static str {
    if ok { "MET" } else { "MISS" }
}

fn load() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .map(|l| l.split_whitespace().take(3).collect::<Vec<_>>().join(" "))
        .unwrap_or_default()
}
