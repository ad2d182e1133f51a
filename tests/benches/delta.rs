//! `cargo bench -p rbee-e2e --bench delta`: delta upgrades (issue 19), in
//! one run, for two pairs of builds:
//!
//! 1. the example worker (`examples/hello-worker`) built twice with
//!    `cargo build --release`, the second time after a one-line source
//!    change (a new `println!`);
//! 2. a real-world-sized pair: a 100 MiB build that compresses like a
//!    large real build (about 4x) and a copy after a "relink" (a few bytes inserted a
//!    third of the way in, so everything after moves, and 256 small
//!    rewrites spread over the file); synthetic, since two 100 MiB builds
//!    of one change cannot be made here in a bench's time
//!    (`RBEE_BENCH_DELTA_MIB` changes the size).
//!
//! Each pair is published as tar+zstd (the pusher's default) to a catalog
//! with its embedded registry, its delta made by the pusher (timed), and
//! then, through a proxy that throttles what the catalog sends to 50
//! Mbit/s (`RBEE_BENCH_LINK_MBIT`), the new version is installed whole
//! into an empty folder and, in another folder holding the old version,
//! upgraded with the delta. It prints the layer and delta sizes, their
//! ratio (target: at most 20% for the one-change pair), both times and
//! their ratio (target: the upgrade at least 3x faster), and the load
//! average: the machine is shared, so the times are noisy, the sizes not.

#[path = "../tests/common/mod.rs"]
mod common;

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use common::catalog::{CREATED, TestCatalog, WORKER};
use common::publishing::{CATALOG_REPO, Fixture, PLATFORMS};
use rbee_pusher::auth::Credentials;
use rbee_pusher::client::{RegistryClient, RetryPolicy};
use rbee_pusher::delta::{DeltaOptions, attach_deltas};
use rbee_pusher::progress::Reporter;
use rbee_pusher::publish::{Compression, PublishOptions, publish};
use rbee_pusher::release::Release;
use rbee_worker_client::{CatalogClient, Installer, Platform, Via};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

const PLATFORM: &str = "linux-x86_64";

fn main() {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    runtime.block_on(run());
}

async fn run() {
    let mbit: f64 = env_or("RBEE_BENCH_LINK_MBIT", 50.0);
    let mib: usize = env_or("RBEE_BENCH_DELTA_MIB", 100);
    println!("delta upgrades over a link throttled to {mbit} Mbit/s");
    println!("load average before: {}", load_average());
    let (old, new) = example_pair();
    let one_change = measure("example worker, one source change", &old, &new, mbit).await;
    let big = synthetic(mib << 20);
    let relinked = relink(&big);
    let large = measure(&format!("{mib} MiB build, relinked"), &big, &relinked, mbit).await;
    println!("load average after: {}", load_average());
    for (name, m, ratio_target) in [
        ("one change", &one_change, Some(0.20)),
        ("large", &large, None),
    ] {
        let ratio = m.delta as f64 / m.layer as f64;
        let speedup = m.full.as_secs_f64() / m.upgrade.as_secs_f64();
        let size_verdict = match ratio_target {
            Some(t) if ratio <= t => "MET",
            Some(_) => "MISSED",
            None => "-",
        };
        println!(
            "{name}: delta/layer {:.2}% (target <= 20%: {size_verdict}); upgrade {speedup:.1}x faster than a full install (target >= 3x: {})",
            ratio * 100.0,
            if speedup >= 3.0 { "MET" } else { "MISSED" }
        );
    }
}

fn env_or<T: std::str::FromStr>(name: &str, default: T) -> T {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

fn load_average() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .map(|l| l.split_whitespace().take(3).collect::<Vec<_>>().join(" "))
        .unwrap_or_else(|_| "unknown".into())
}

/// What one pair measured.
struct Measured {
    layer: u64,
    delta: u64,
    full: Duration,
    upgrade: Duration,
}

/// The example worker, built twice: as it is, and with one more line.
fn example_pair() -> (Vec<u8>, Vec<u8>) {
    let source = std::fs::read_to_string(
        Path::new(env!("CARGO_MANIFEST_DIR")).join("../examples/hello-worker/src/main.rs"),
    )
    .unwrap();
    let changed = source.replacen(
        "fn main() {",
        "fn main() {\n    println!(\"built with one more line\");",
        1,
    );
    assert_ne!(source, changed, "the example's main changed shape");
    let work = tempfile::tempdir().unwrap();
    let build = |name: &str, main: &str| -> Vec<u8> {
        let dir = work.path().join(name);
        std::fs::create_dir_all(dir.join("src")).unwrap();
        std::fs::write(
            dir.join("Cargo.toml"),
            "[package]\nname = \"hello-worker-rbee\"\nversion = \"0.1.0\"\nedition = \"2024\"\n\n[workspace]\n",
        )
        .unwrap();
        std::fs::write(dir.join("src/main.rs"), main).unwrap();
        let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
        let status = std::process::Command::new(cargo)
            .args(["build", "--release", "--quiet"])
            .current_dir(&dir)
            .env("CARGO_TARGET_DIR", work.path().join("target"))
            .status()
            .unwrap();
        assert!(status.success(), "building the example");
        std::fs::read(work.path().join("target/release/hello-worker-rbee")).unwrap()
    };
    let old = build("old", &source);
    let new = build("new", &changed);
    (old, new)
}

/// Bytes that compress about as well as large real builds (zstd -3 made
/// 67 MB of a 265 MB one, 4x): 16-byte words from a vocabulary, each
/// followed by 6 bytes that do not compress (operands, addresses).
fn synthetic(len: usize) -> Vec<u8> {
    let vocabulary = common::pseudo_random(7, 16 * 4096);
    let noise = common::pseudo_random(9, 6 * (len / 22 + 1));
    let picks = common::pseudo_random(8, 2 * (len / 22 + 1));
    let mut out = Vec::with_capacity(len + 22);
    for (i, pair) in picks.chunks(2).enumerate() {
        let word = (usize::from(pair[0]) << 4 | usize::from(pair[1]) >> 4) % 4096 * 16;
        out.extend_from_slice(&vocabulary[word..word + 16]);
        out.extend_from_slice(&noise[i * 6..i * 6 + 6]);
        if out.len() >= len {
            break;
        }
    }
    out.truncate(len);
    out
}

/// `build` after a relink: 13 bytes inserted at a third, 256 rewrites of
/// 8 bytes spread evenly.
fn relink(build: &[u8]) -> Vec<u8> {
    let mut next = build.to_vec();
    next.splice(build.len() / 3..build.len() / 3, *b"one change!!\n");
    let step = next.len() / 257;
    for i in 1..=256 {
        for b in &mut next[i * step..i * step + 8] {
            *b = b.wrapping_add(i as u8);
        }
    }
    next
}

async fn measure(name: &str, old: &[u8], new: &[u8], mbit: f64) -> Measured {
    println!("== {name}: builds of {} and {} bytes", old.len(), new.len());
    let proxy = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let proxy_url = format!("http://{}", proxy.local_addr().unwrap());
    let public = proxy_url.clone();
    let catalog = TestCatalog::start(move |c| {
        c.public_url = Some(public);
        // Nothing here is an attack: no rate limit.
        c.rate_limit.per_second = 0;
    })
    .await;
    let upstream = catalog.host();
    tokio::spawn(throttle(proxy, upstream, mbit * 1_000_000.0 / 8.0));

    let old_fixture = fixture("0.1.0", old);
    let new_fixture = fixture("0.2.0", new);
    // Publishing talks to the catalog directly: only installs are throttled.
    publish_zstd(&catalog.url, &old_fixture).await;
    let published = publish_zstd(&catalog.url, &new_fixture).await;
    let started = Instant::now();
    let made = attach_deltas(
        &registry_client(&catalog.url),
        &published.repository,
        &semver::Version::new(0, 2, 0),
        &DeltaOptions {
            count: 1,
            ..DeltaOptions::default()
        },
        &Reporter::new(true),
    )
    .await
    .unwrap();
    let made_in = started.elapsed();
    let ours = made
        .iter()
        .find(|d| d.platform == PLATFORM)
        .expect("a delta for the platform");
    assert_eq!(ours.status, "attached", "{ours:?}");
    let delta = ours.size.unwrap();
    let layer = ours.full_size;
    println!(
        "layer {layer} bytes, delta {delta} bytes ({:.2}%), made in {:.2} s (all {} platforms)",
        delta as f64 * 100.0 / layer as f64,
        made_in.as_secs_f64(),
        PLATFORMS.len()
    );

    // The alternative not taken: a delta between the compressed layers.
    let layers: Vec<Vec<u8>> = {
        let mut layers = Vec::new();
        for version in ["0.1.0", "0.2.0"] {
            let answer = catalog
                .get(&format!(
                    "/v1/workers/{WORKER}/{version}/download?platform={PLATFORM}"
                ))
                .await
                .ok_json();
            let direct = answer["download_url"]
                .as_str()
                .unwrap()
                .replace(&proxy_url, &catalog.url);
            let bytes = reqwest::Client::builder()
                .no_proxy()
                .build()
                .unwrap()
                .get(direct)
                .send()
                .await
                .unwrap()
                .bytes()
                .await
                .unwrap();
            layers.push(bytes.to_vec());
        }
        layers
    };
    let compressed_delta = patch_from(&layers[0], &layers[1]);
    println!(
        "for comparison, a delta between the compressed layers: {compressed_delta} bytes ({:.2}%)",
        compressed_delta as f64 * 100.0 / layer as f64
    );

    let full_dest = tempfile::tempdir().unwrap();
    let started = Instant::now();
    installer(&proxy_url, full_dest.path())
        .install(WORKER, Some("0.2.0"), &|_, _| {})
        .await
        .unwrap();
    let full = started.elapsed();

    let upgrade_dest = tempfile::tempdir().unwrap();
    installer(&proxy_url, upgrade_dest.path())
        .install(WORKER, Some("0.1.0"), &|_, _| {})
        .await
        .unwrap();
    let started = Instant::now();
    let upgrade = installer(&proxy_url, upgrade_dest.path())
        .upgrade(WORKER, &|_, _| {})
        .await
        .unwrap();
    let upgrade_time = started.elapsed();
    assert!(
        matches!(upgrade.via, Via::Delta { .. }),
        "{:?}",
        upgrade.via
    );
    assert!(same_tree(
        &full_dest.path().join(WORKER).join("0.2.0"),
        &upgrade_dest.path().join(WORKER).join("0.2.0")
    ));
    println!(
        "full install {:.2} s, upgrade with the delta {:.2} s ({:.1}x)",
        full.as_secs_f64(),
        upgrade_time.as_secs_f64(),
        full.as_secs_f64() / upgrade_time.as_secs_f64()
    );
    catalog.stop().await;
    Measured {
        layer,
        delta,
        full,
        upgrade: upgrade_time,
    }
}

/// The size of a zstd `--patch-from` delta of `new` against `old`, made
/// as the pusher makes its deltas (its level, long-distance matching, a
/// window covering both).
fn patch_from(old: &[u8], new: &[u8]) -> usize {
    use std::io::Write as _;
    let window = rbee_pusher::delta::window_log_for((old.len() + new.len()) as u64);
    let mut encoder = zstd::stream::write::Encoder::with_ref_prefix(
        Vec::new(),
        rbee_pusher::delta::delta_level(new.len() as u64),
        old,
    )
    .unwrap();
    encoder.window_log(window).unwrap();
    encoder.long_distance_matching(true).unwrap();
    encoder
        .set_pledged_src_size(Some(new.len() as u64))
        .unwrap();
    encoder.write_all(new).unwrap();
    encoder.finish().unwrap().len()
}

fn fixture(version: &str, build: &[u8]) -> Fixture {
    let f = Fixture::new(version);
    for (platform, _, _) in PLATFORMS {
        if platform == PLATFORM {
            f.set_build(platform, build);
        }
    }
    f
}

fn same_tree(a: &Path, b: &Path) -> bool {
    let files = |root: &Path| -> Vec<(PathBuf, Vec<u8>)> {
        let mut out: Vec<_> = std::fs::read_dir(root)
            .unwrap()
            .map(|e| {
                let p = e.unwrap().path();
                (p.file_name().unwrap().into(), std::fs::read(&p).unwrap())
            })
            .collect();
        out.sort();
        out
    };
    files(a) == files(b)
}

fn registry_client(url: &str) -> RegistryClient {
    RegistryClient::new(
        reqwest::Url::parse(url).unwrap(),
        Credentials::anonymous(),
        RetryPolicy::default(),
    )
    .unwrap()
}

async fn publish_zstd(url: &str, fixture: &Fixture) -> rbee_pusher::publish::PublishSummary {
    let release = Release::load(&fixture.files()).unwrap();
    let opts = PublishOptions {
        namespace: None,
        catalog_repository: CATALOG_REPO.to_owned(),
        force: false,
        dry_run: false,
        compression: Compression::Zstd(3),
        created: CREATED.to_owned(),
    };
    publish(&registry_client(url), &release, &opts, &Reporter::new(true))
        .await
        .unwrap()
}

fn installer(catalog: &str, dest: &Path) -> Installer {
    Installer::new(CatalogClient::new(catalog).unwrap(), dest)
        .unwrap()
        .with_platform(Platform::LinuxX86_64)
}

/// A TCP proxy to `upstream` whose answers (upstream to client) share one
/// link of `bytes_per_sec`; requests pass unthrottled.
async fn throttle(listener: TcpListener, upstream: String, bytes_per_sec: f64) {
    let link = Arc::new(Mutex::new(Instant::now()));
    loop {
        let Ok((client, _)) = listener.accept().await else {
            return;
        };
        let (upstream, link) = (upstream.clone(), link.clone());
        tokio::spawn(async move {
            let Ok(server) = TcpStream::connect(&upstream).await else {
                return;
            };
            let (mut client_read, mut client_write) = client.into_split();
            let (mut server_read, mut server_write) = server.into_split();
            let up = tokio::spawn(async move {
                let _ = tokio::io::copy(&mut client_read, &mut server_write).await;
                let _ = server_write.shutdown().await;
            });
            let mut buf = vec![0u8; 16 << 10];
            loop {
                let n = match server_read.read(&mut buf).await {
                    Ok(0) | Err(_) => break,
                    Ok(n) => n,
                };
                // The link is free again at `*link`; this chunk takes it
                // for n / rate seconds after that.
                let ready = {
                    let mut free = link.lock().unwrap();
                    let start = (*free).max(Instant::now());
                    *free = start + Duration::from_secs_f64(n as f64 / bytes_per_sec);
                    *free
                };
                tokio::time::sleep_until(ready.into()).await;
                if client_write.write_all(&buf[..n]).await.is_err() {
                    break;
                }
            }
            let _ = client_write.shutdown().await;
            up.abort();
        });
    }
}
