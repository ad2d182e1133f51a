//! Delta upgrades (issue 19): the pusher attaches deltas to a new release
//! (on our registry through the referrers API, on CNCF Distribution
//! through the fallback tag), the catalog answers one for `?from=`, and
//! `Installer::upgrade` rebuilds the new archive from the cached one,
//! or, on any failure (no cached archive, a delta from another build or
//! for another platform, a corrupt delta or cache), downloads it whole;
//! either way the bytes installed are the new release's.

mod common;

use std::path::Path;
use std::time::Duration;

use axum::Router;
use axum::routing::get;
use common::catalog::{CREATED, TestCatalog, WORKER};
use common::distribution::Distribution;
use common::hostile::Peer;
use common::publishing::{CATALOG_REPO, Fixture, PLATFORMS, path_arg, pusher};
use rbee_pusher::auth::Credentials;
use rbee_pusher::client::{RegistryClient, RetryPolicy};
use rbee_pusher::delta::{DeltaOptions, DeltaSummary, attach_deltas};
use rbee_pusher::progress::Reporter;
use rbee_pusher::publish::{Compression, PublishOptions, PublishSummary, publish};
use rbee_pusher::release::Release;
use rbee_worker_client::{CatalogClient, Installer, Platform, Via};
use serde_json::Value;

const PLATFORM: &str = "linux-x86_64";
const BINARY: &str = "hello-worker-rbee";

/// A build that compresses like machine code: 16-byte words drawn from a
/// small vocabulary, different for every `seed`.
fn code_like(seed: u64, len: usize) -> Vec<u8> {
    let vocabulary = common::pseudo_random(seed, 16 * 512);
    let picks = common::pseudo_random(seed ^ 0x5eed, len / 16 + 1);
    let mut out = Vec::with_capacity(len);
    for (i, p) in picks.iter().enumerate() {
        let word = (*p as usize + i % 2 * 256) * 16;
        out.extend_from_slice(&vocabulary[word..word + 16]);
    }
    out.truncate(len);
    out
}

/// `build` after a one-line source change: a few bytes inserted (every
/// address after it shifts) and a few rewritten further on.
fn one_change(build: &[u8]) -> Vec<u8> {
    let mut next = build.to_vec();
    next.splice(
        build.len() / 3..build.len() / 3,
        b"one more line".iter().copied(),
    );
    let at = 2 * build.len() / 3;
    for b in &mut next[at..at + 64] {
        *b ^= 0x5a;
    }
    next
}

/// The two releases of every test: 0.1.0, and 0.2.0 with one change per
/// platform build.
struct Pair {
    old: Fixture,
    new: Fixture,
}

impl Pair {
    fn new(len: usize) -> Pair {
        let old = Fixture::new("0.1.0");
        let new = Fixture::new("0.2.0");
        for (i, (platform, _, _)) in PLATFORMS.iter().enumerate() {
            let build = code_like(100 + i as u64, len);
            old.set_build(platform, &build);
            new.set_build(platform, &one_change(&build));
        }
        Pair { old, new }
    }

    fn new_build(&self) -> Vec<u8> {
        std::fs::read(self.new.build(PLATFORM)).unwrap()
    }
}

fn registry_client(url: &str) -> RegistryClient {
    RegistryClient::new(
        reqwest::Url::parse(url).unwrap(),
        Credentials::anonymous(),
        RetryPolicy {
            attempts: 2,
            base_delay: Duration::from_millis(50),
            max_delay: Duration::from_secs(1),
        },
    )
    .unwrap()
}

/// Publishes `fixture` as tar+zstd (the pusher's default) through the
/// library.
async fn publish_zstd(url: &str, fixture: &Fixture) -> PublishSummary {
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
        .unwrap_or_else(|e| panic!("publishing to {url}: {e}"))
}

/// Attaches the deltas of `repo` `version` (from the two versions before).
async fn attach(url: &str, repo: &str, version: &str) -> Vec<DeltaSummary> {
    attach_deltas(
        &registry_client(url),
        repo,
        &semver::Version::parse(version).unwrap(),
        &DeltaOptions::default(),
        &Reporter::new(true),
    )
    .await
    .unwrap()
}

/// Publishes the pair and its deltas; the summary of 0.2.0's deltas.
async fn publish_pair(registry_url: &str, pair: &Pair) -> Vec<DeltaSummary> {
    publish_zstd(registry_url, &pair.old).await;
    let summary = publish_zstd(registry_url, &pair.new).await;
    attach(registry_url, &summary.repository, "0.2.0").await
}

/// GETs `url` with no header and no proxy: its status and body.
async fn fetch(url: &str) -> (u16, Vec<u8>) {
    let resp = reqwest::Client::builder()
        .no_proxy()
        .build()
        .unwrap()
        .get(url)
        .send()
        .await
        .unwrap();
    let status = resp.status().as_u16();
    (status, resp.bytes().await.unwrap().to_vec())
}

fn installer(catalog_url: &str, dest: &Path) -> Installer {
    Installer::new(CatalogClient::new(catalog_url).unwrap(), dest)
        .unwrap()
        .with_platform(Platform::LinuxX86_64)
}

fn no_progress(_: u64, _: u64) {}

/// Installs 0.1.0 into `dest` from `catalog_url`.
async fn install_old(catalog_url: &str, dest: &Path) {
    installer(catalog_url, dest)
        .install(WORKER, Some("0.1.0"), &no_progress)
        .await
        .unwrap();
}

fn installed_build(dest: &Path, version: &str) -> Vec<u8> {
    std::fs::read(dest.join(WORKER).join(version).join(BINARY)).unwrap()
}

/// The layer digest of `version`'s build for `platform`.
async fn layer_digest(catalog: &TestCatalog, version: &str, platform: &str) -> String {
    catalog
        .get(&format!(
            "/v1/workers/{WORKER}/{version}/download?platform={platform}"
        ))
        .await
        .ok_json()["checksum"]
        .as_str()
        .unwrap()
        .to_owned()
}

async fn download_from(catalog: &TestCatalog, platform: &str, from: &str) -> Value {
    catalog
        .get(&format!(
            "/v1/workers/{WORKER}/0.2.0/download?platform={platform}&from={from}"
        ))
        .await
        .ok_json()
}

/// Upgrades `dest` from `catalog_url`, asserting the new build is
/// installed and the archive cached is the new one; how it came.
async fn upgrade_installs_the_new_build(catalog_url: &str, dest: &Path, pair: &Pair) -> Via {
    let upgrade = installer(catalog_url, dest)
        .upgrade(WORKER, &no_progress)
        .await
        .unwrap();
    assert_eq!(upgrade.from_version, "0.1.0");
    let installed = upgrade.outcome.installed();
    assert_eq!(installed.version, "0.2.0");
    assert!(installed_build(dest, "0.2.0") == pair.new_build());
    let cached: Vec<_> = std::fs::read_dir(dest.join(".cache").join(WORKER))
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .collect();
    assert_eq!(
        cached,
        [installed.digest.replace(':', "-")],
        "the new archive replaces the old one in the cache"
    );
    upgrade.via
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn upgrade_applies_the_published_delta_on_our_registry() {
    let catalog = TestCatalog::embedded().await;
    let pair = Pair::new(2 << 20);
    let made = publish_pair(&catalog.registry_url, &pair).await;
    assert_eq!(made.len(), PLATFORMS.len(), "{made:?}");
    for delta in &made {
        assert_eq!(delta.status, "attached", "{delta:?}");
        let size = delta.size.unwrap();
        assert!(
            size * 5 <= delta.full_size,
            "a one-change delta is at most 20% of the layer: {delta:?}"
        );
    }
    // A second run finds them attached and makes nothing.
    let again = attach(&catalog.registry_url, "rbee/hello-worker-rbee-cpu", "0.2.0").await;
    assert!(again.iter().all(|d| d.status == "present"), "{again:?}");

    let old_layer = layer_digest(&catalog, "0.1.0", PLATFORM).await;
    let answer = download_from(&catalog, PLATFORM, &old_layer).await;
    let delta = &answer["delta"];
    assert_eq!(delta["from"], old_layer.as_str());
    assert!(delta["size"].as_u64().unwrap() < answer["size"].as_u64().unwrap() / 5);
    assert_eq!(delta["recompress"], "zstd:3");
    // The delta URL serves the delta blob.
    let (status, bytes) = fetch(delta["url"].as_str().unwrap()).await;
    assert_eq!(status, 200);
    assert_eq!(
        common::sha256_digest(&bytes),
        delta["digest"].as_str().unwrap()
    );

    let dest = tempfile::tempdir().unwrap();
    install_old(&catalog.url, dest.path()).await;
    let via = upgrade_installs_the_new_build(&catalog.url, dest.path(), &pair).await;
    assert_eq!(
        via,
        Via::Delta {
            size: delta["size"].as_u64().unwrap()
        }
    );
    // The latest is installed: nothing to do.
    let again = installer(&catalog.url, dest.path())
        .upgrade(WORKER, &no_progress)
        .await
        .unwrap();
    assert_eq!(again.via, Via::Nothing);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn upgrade_applies_the_published_delta_on_distribution() {
    let Some(registry) = Distribution::start().await else {
        return;
    };
    let pair = Pair::new(1 << 20);
    let made = publish_pair(&registry.url, &pair).await;
    assert!(made.iter().all(|d| d.status == "attached"), "{made:?}");
    // No referrers API there: the deltas are listed by the fallback tag.
    let catalog = TestCatalog::external(&registry.url, |_| {}).await;
    let index = catalog
        .get(&format!("/v1/workers/{WORKER}/versions"))
        .await
        .ok_json();
    assert_eq!(index["latest"], "0.2.0");
    let old_layer = layer_digest(&catalog, "0.1.0", PLATFORM).await;
    let answer = download_from(&catalog, PLATFORM, &old_layer).await;
    assert_eq!(answer["delta"]["from"], old_layer.as_str(), "{answer}");

    let dest = tempfile::tempdir().unwrap();
    install_old(&catalog.url, dest.path()).await;
    let via = upgrade_installs_the_new_build(&catalog.url, dest.path(), &pair).await;
    assert!(matches!(via, Via::Delta { .. }), "{via:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_from_query_is_checked_and_matches_only_its_own_build() {
    let catalog = TestCatalog::embedded().await;
    let pair = Pair::new(256 << 10);
    publish_pair(&catalog.registry_url, &pair).await;
    let old_layer = layer_digest(&catalog, "0.1.0", PLATFORM).await;

    // Without `from`, or from a build no delta starts at: no `delta` key.
    let plain = catalog
        .get(&format!(
            "/v1/workers/{WORKER}/0.2.0/download?platform={PLATFORM}"
        ))
        .await
        .ok_json();
    assert!(plain.get("delta").is_none(), "{plain}");
    let unknown = format!("sha256:{}", "0".repeat(64));
    assert!(
        download_from(&catalog, PLATFORM, &unknown)
            .await
            .get("delta")
            .is_none()
    );
    // The delta of another platform is not this platform's.
    let other_layer = layer_digest(&catalog, "0.1.0", "linux-aarch64").await;
    assert!(
        download_from(&catalog, PLATFORM, &other_layer)
            .await
            .get("delta")
            .is_none()
    );
    assert_eq!(
        download_from(&catalog, "linux-aarch64", &other_layer).await["delta"]["from"],
        other_layer.as_str()
    );
    // A `from` that is not a digest is a 400 with a JSON error.
    let upper = old_layer.to_uppercase();
    for bad in ["sha256:abc", "md5:00", "..%2F..%2Fetc", upper.as_str()] {
        catalog
            .get(&format!(
                "/v1/workers/{WORKER}/0.2.0/download?platform={PLATFORM}&from={bad}"
            ))
            .await
            .error(400, Some("Bad request"));
    }
    // `/blob` serves a delta only when there is one.
    catalog
        .get(&format!(
            "/v1/workers/{WORKER}/0.2.0/blob?platform={PLATFORM}&from={unknown}"
        ))
        .await
        .error(404, Some("Delta not found"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_delta_not_under_half_the_layer_is_not_published() {
    let catalog = TestCatalog::embedded().await;
    let old = Fixture::new("0.1.0");
    let new = Fixture::new("0.2.0");
    for (i, (platform, _, _)) in PLATFORMS.iter().enumerate() {
        // Unrelated, incompressible builds: nothing to share.
        old.set_build(platform, &common::pseudo_random(1 + i as u64, 256 << 10));
        new.set_build(platform, &common::pseudo_random(50 + i as u64, 256 << 10));
    }
    publish_zstd(&catalog.registry_url, &old).await;
    let summary = publish_zstd(&catalog.registry_url, &new).await;
    let made = attach(&catalog.registry_url, &summary.repository, "0.2.0").await;
    assert!(
        made.iter().all(|d| d.status == "skipped"
            && d.reason.as_deref().unwrap_or("").contains("not under half")),
        "{made:?}"
    );
    let old_layer = layer_digest(&catalog, "0.1.0", PLATFORM).await;
    assert!(
        download_from(&catalog, PLATFORM, &old_layer)
            .await
            .get("delta")
            .is_none()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_failed_delta_falls_back_to_the_whole_archive() {
    let catalog = TestCatalog::embedded().await;
    let pair = Pair::new(1 << 20);
    publish_pair(&catalog.registry_url, &pair).await;
    let old_layer = layer_digest(&catalog, "0.1.0", PLATFORM).await;
    let good = download_from(&catalog, PLATFORM, &old_layer).await;
    assert!(good.get("delta").is_some(), "{good}");

    // The cached archive is gone: no delta is even asked for.
    let dest = tempfile::tempdir().unwrap();
    install_old(&catalog.url, dest.path()).await;
    std::fs::remove_dir_all(dest.path().join(".cache")).unwrap();
    let via = upgrade_installs_the_new_build(&catalog.url, dest.path(), &pair).await;
    assert!(
        matches!(&via, Via::Full { reason } if reason.contains("cache")),
        "{via:?}"
    );

    // The cached archive was altered: its digest no longer matches.
    let dest = tempfile::tempdir().unwrap();
    install_old(&catalog.url, dest.path()).await;
    let cached = dest
        .path()
        .join(".cache")
        .join(WORKER)
        .join(old_layer.replace(':', "-"));
    let mut bytes = std::fs::read(&cached).unwrap();
    let middle = bytes.len() / 2;
    bytes[middle] ^= 1;
    std::fs::write(&cached, bytes).unwrap();
    let via = upgrade_installs_the_new_build(&catalog.url, dest.path(), &pair).await;
    assert!(
        matches!(&via, Via::Full { reason } if reason.contains("checksum")),
        "{via:?}"
    );

    // Answers a hostile or confused catalog might give.
    let (status, delta_bytes) = fetch(good["delta"]["url"].as_str().unwrap()).await;
    assert_eq!(status, 200);
    let mut corrupt = delta_bytes;
    let middle = corrupt.len() / 2;
    corrupt[middle] ^= 0xff;
    let other_layer = layer_digest(&catalog, "0.1.0", "linux-aarch64").await;
    let other = download_from(&catalog, "linux-aarch64", &other_layer).await["delta"].clone();
    let corrupt_digest = common::sha256_digest(&corrupt);
    type Bend = Box<dyn Fn(&mut Value, &str)>;
    let bends: Vec<(&str, Bend)> = vec![
        (
            "a delta from another build",
            Box::new(|d: &mut Value, _: &str| {
                d["delta"]["from"] = format!("sha256:{}", "1".repeat(64)).into();
            }),
        ),
        (
            "the delta of another platform",
            Box::new(move |d: &mut Value, _: &str| {
                for key in ["url", "digest", "size", "window_log"] {
                    d["delta"][key] = other[key].clone();
                }
            }),
        ),
        (
            "a corrupt delta that hashes as announced",
            Box::new(move |d: &mut Value, peer: &str| {
                d["delta"]["url"] = format!("{peer}/corrupt").into();
                d["delta"]["digest"] = corrupt_digest.clone().into();
            }),
        ),
        (
            "a delta whose bytes are not the ones announced",
            Box::new(|d: &mut Value, peer: &str| {
                d["delta"]["url"] = format!("{peer}/corrupt").into();
            }),
        ),
    ];
    for (case, bend) in bends {
        // The peer's URL is known only once it serves; the answer is
        // bent in two steps through a shared slot.
        let slot = std::sync::Arc::new(std::sync::Mutex::new(good.clone()));
        let served = slot.clone();
        let corrupt_bytes = corrupt.clone();
        let versions = catalog
            .get(&format!("/v1/workers/{WORKER}/versions"))
            .await
            .ok_json();
        let old = catalog
            .get(&format!(
                "/v1/workers/{WORKER}/0.1.0/download?platform={PLATFORM}"
            ))
            .await
            .ok_json();
        let router = Router::new()
            .route(
                "/v1/workers/{id}/versions",
                get(move || async move { axum::Json(versions) }),
            )
            .route(
                "/v1/workers/{id}/0.1.0/download",
                get(move || async move { axum::Json(old) }),
            )
            .route(
                "/v1/workers/{id}/0.2.0/download",
                get(move || {
                    let answer = served.lock().unwrap().clone();
                    async move { axum::Json(answer) }
                }),
            )
            .route("/corrupt", get(move || async move { corrupt_bytes }));
        let peer = Peer::serve(router).await;
        bend(&mut slot.lock().unwrap(), &peer.url);

        let dest = tempfile::tempdir().unwrap();
        install_old(&peer.url, dest.path()).await;
        let via = upgrade_installs_the_new_build(&peer.url, dest.path(), &pair).await;
        assert!(matches!(via, Via::Full { .. }), "{case}: {via:?}");
    }
}

/// `push` of 0.1.0 and the staged flow (`push --stage` per platform, then
/// `release`) for 0.2.0, through the real binary: the release attaches
/// the deltas, and its `--json` summary lists them.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn release_of_a_staged_version_attaches_its_deltas() {
    let catalog = TestCatalog::embedded().await;
    let pair = Pair::new(256 << 10);
    let registry = catalog.registry_url.clone();
    let zstd = [("RBEE_PUSHER_COMPRESSION", "zstd")];
    let files = |f: &Fixture| {
        vec![
            "--metadata".to_owned(),
            path_arg(&f.metadata),
            "--pkgbuild".to_owned(),
            path_arg(&f.pkgbuild),
            "--license".to_owned(),
            path_arg(&f.license),
            "--readme".to_owned(),
            path_arg(&f.readme),
        ]
    };
    let mut push: Vec<String> = ["push", "--registry", &registry, "--json"]
        .map(String::from)
        .to_vec();
    push.extend(files(&pair.old));
    for (platform, _, _) in PLATFORMS {
        push.push("--platform".into());
        push.push(format!("{platform}={}", pair.old.build(platform).display()));
    }
    let args: Vec<&str> = push.iter().map(String::as_str).collect();
    let first = pusher(&args, &zstd).await.expect_code(0).json();
    assert!(
        first.get("deltas").is_none(),
        "nothing to start from: {first}"
    );

    for (platform, _, _) in PLATFORMS {
        let mut stage: Vec<String> = ["push", "--stage", "--registry", &registry]
            .map(String::from)
            .to_vec();
        stage.extend(files(&pair.new));
        stage.push("--platform".into());
        stage.push(format!("{platform}={}", pair.new.build(platform).display()));
        let args: Vec<&str> = stage.iter().map(String::as_str).collect();
        pusher(&args, &zstd).await.expect_code(0);
    }
    let released = pusher(
        &[
            "release",
            "--registry",
            &registry,
            WORKER,
            "0.2.0",
            "--json",
        ],
        &[],
    )
    .await
    .expect_code(0)
    .json();
    let deltas = released["deltas"].as_array().unwrap();
    assert_eq!(deltas.len(), PLATFORMS.len(), "{released}");
    assert!(
        deltas.iter().all(|d| d["status"] == "attached"),
        "{released}"
    );
    let old_layer = layer_digest(&catalog, "0.1.0", PLATFORM).await;
    assert!(download_from(&catalog, PLATFORM, &old_layer).await["delta"].is_object());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_premium_delta_follows_the_license_and_signed_url_rules() {
    use rbee_store::{Grant, NewLicense};
    let catalog = TestCatalog::embedded().await;
    let pair = Pair::new(256 << 10);
    for f in [&pair.old, &pair.new] {
        f.edit_metadata(|m| {
            m["distribution"]["requires_license"] = true.into();
            m["pricing"] = serde_json::json!({
                "amount": 49.0, "currency": "EUR", "purchase_url": "https://rbee.dev/buy"
            });
        });
    }
    let made = publish_pair(&catalog.registry_url, &pair).await;
    assert!(made.iter().all(|d| d.status == "attached"), "{made:?}");
    let (_, key) = catalog
        .state()
        .store
        .create_license(
            "test",
            NewLicense {
                owner: "customer".into(),
                grants: vec![Grant::Worker(WORKER.into())],
                expires_at: None,
                perpetual_fallback: false,
            },
        )
        .await
        .unwrap();
    let bearer = format!("Bearer {}", key.expose());
    let path = |version: &str, from: &str| {
        format!("/v1/workers/{WORKER}/{version}/download?platform={PLATFORM}{from}")
    };
    let old = catalog
        .get_with(&path("0.1.0", ""), &[("authorization", &bearer)])
        .await
        .ok_json();
    let from = format!("&from={}", old["checksum"].as_str().unwrap());
    // No license, no answer (and no delta).
    catalog
        .get(&path("0.2.0", &from))
        .await
        .error(403, Some("License required"));
    let answer = catalog
        .get_with(&path("0.2.0", &from), &[("authorization", &bearer)])
        .await
        .ok_json();
    let delta = &answer["delta"];
    let url = delta["url"].as_str().unwrap();
    assert!(url.contains("&signature="), "{url}");
    // The signed URL serves the delta to a client with no header...
    let (status, bytes) = fetch(url).await;
    assert_eq!(status, 200);
    assert_eq!(
        common::sha256_digest(&bytes),
        delta["digest"].as_str().unwrap()
    );
    // ...and nothing without its signature, or with the full layer's.
    let unsigned = url.split("&expires=").next().unwrap();
    assert_eq!(fetch(unsigned).await.0, 403);
    let layer_url = answer["download_url"].as_str().unwrap();
    let layer_signature = layer_url.split("&signature=").nth(1).unwrap();
    let swapped = format!(
        "{}&signature={layer_signature}",
        url.split("&signature=").next().unwrap()
    );
    assert_eq!(fetch(&swapped).await.0, 403);
    // The client upgrades through it with the key.
    let dest = tempfile::tempdir().unwrap();
    let licensed = |dest: &Path| {
        Installer::new(
            CatalogClient::new(&catalog.url)
                .unwrap()
                .with_license_key(Some(key.expose().to_owned())),
            dest,
        )
        .unwrap()
        .with_platform(Platform::LinuxX86_64)
    };
    licensed(dest.path())
        .install(WORKER, Some("0.1.0"), &no_progress)
        .await
        .unwrap();
    let upgrade = licensed(dest.path())
        .upgrade(WORKER, &no_progress)
        .await
        .unwrap();
    assert!(matches!(upgrade.via, Via::Delta { .. }), "{upgrade:?}");
    assert!(installed_build(dest.path(), "0.2.0") == pair.new_build());
}
