//! The catalog's routes end to end: every route on the embedded server and
//! with CNCF Distribution 2.8 as the upstream, against what the
//! `rbee-pusher` library published (downloads fetched through the returned
//! URL and checked by sha256, OCI references resolved), the shapes today's
//! rbee-hive deserialises, and insta snapshots of every JSON shape.

mod common;

use common::catalog::{
    CREATED, TestCatalog, WORKER, listed_versions, normalise, normalise_text, platform_names,
    publish_files,
};
use common::distribution::Distribution;
use common::publishing::{Fixture, PKGBUILD_TYPE, REPO, WORKER_METADATA, WORKER_TYPE, untar_gz};
use common::{OCI_INDEX, OCI_MANIFEST, sha256_digest};
use rbee_pusher::publish::PublishSummary;
use serde::Deserialize;
use serde_json::{Value, json};

/// The platform the download checks use: the host's when the example
/// worker is built for it, else `linux-x86_64`.
fn host_or_linux() -> &'static str {
    common::publishing::host_platform().unwrap_or("linux-x86_64")
}

/// The ids listed by a `{"workers": [...]}` body.
fn listed_ids(body: &Value) -> Vec<String> {
    body["workers"]
        .as_array()
        .expect("a workers array")
        .iter()
        .map(|w| w["id"].as_str().unwrap().to_owned())
        .collect()
}

/// A plain HTTP client, as rbee-hive or curl would use for the download.
fn plain_http() -> reqwest::Client {
    reqwest::Client::builder().no_proxy().build().unwrap()
}

// ---- every route ------------------------------------------------------------

/// One published version of the example worker: its files and what the
/// pusher reported.
struct Published {
    fixture: Fixture,
    summary: PublishSummary,
}

/// Publishes 0.1.0, 0.2.0 and 0.10.0 of the example worker to `registry`
/// in that order. 0.10.0 is the newest by semver although it sorts between
/// the others as text.
async fn publish_three(registry: &str) -> Vec<Published> {
    let mut out = Vec::new();
    for version in ["0.1.0", "0.2.0", "0.10.0"] {
        let fixture = Fixture::new(version);
        let summary = publish_files(registry, &fixture.files()).await;
        assert_eq!(summary.status, "published");
        out.push(Published { fixture, summary });
    }
    out
}

/// Calls every catalog route after [`publish_three`] and checks the
/// answers against what was published. `registry_host` is the
/// `host:port` OCI references must name; downloads go through whatever
/// URL the catalog returns.
async fn walk_every_route(catalog: &TestCatalog, published: &[Published], registry_host: &str) {
    let newest = &published[2];
    assert_eq!(newest.summary.version, "0.10.0");

    // Operations.
    let health = catalog.get("/health").await.ok_json();
    assert_eq!(health["status"], "ok", "{health}");
    let ready = catalog.get("/ready").await.ok_json();
    assert_eq!(ready["status"], "ready", "{ready}");

    // Legacy.
    let workers = catalog.get("/workers").await.ok_json();
    assert_eq!(listed_ids(&workers), [WORKER]);
    assert_eq!(workers["workers"][0]["version"], "0.10.0");
    let worker = catalog.get(&format!("/workers/{WORKER}")).await.ok_json();
    assert_eq!(worker["id"], WORKER);
    assert_eq!(worker["version"], "0.10.0", "legacy shows the latest");
    assert_eq!(worker["depends"], json!(["gcc-libs"]));
    let pkgbuild = catalog
        .get(&format!("/workers/{WORKER}/PKGBUILD"))
        .await
        .expect(200);
    assert!(
        pkgbuild.header("content-type").starts_with("text/plain"),
        "{:?}",
        pkgbuild.header("content-type")
    );
    assert_eq!(
        pkgbuild.text(),
        std::fs::read_to_string(&newest.fixture.pkgbuild).unwrap(),
        "the PKGBUILD of the latest release, byte for byte"
    );

    // v1 list and filters.
    let v1 = catalog.get("/v1/workers").await.ok_json();
    assert_eq!(listed_ids(&v1), [WORKER]);
    let entry = &v1["workers"][0];
    assert_eq!(entry["latest_version"], "0.10.0");
    assert_eq!(entry["backend"], "cpu");
    assert_eq!(entry["repository"], REPO);
    assert_eq!(entry["platforms"], json!(platform_names()));
    assert_eq!(
        entry["versions"],
        json!(["0.10.0", "0.2.0", "0.1.0"]),
        "newest first by semver"
    );
    for (query, expected) in [
        ("?backend=cpu", vec![WORKER]),
        ("?backend=cuda", vec![]),
        ("?platform=linux-x86_64", vec![WORKER]),
        ("?platform=windows-x86_64", vec![WORKER]),
        // A valid platform the worker was not built for.
        ("?platform=macos-x86_64", vec![]),
        ("?backend=cpu&platform=linux-aarch64", vec![WORKER]),
        ("?backend=metal&platform=linux-aarch64", vec![]),
    ] {
        let body = catalog.get(&format!("/v1/workers{query}")).await.ok_json();
        assert_eq!(listed_ids(&body), expected, "/v1/workers{query}");
    }
    catalog
        .get("/v1/workers?backend=gpu")
        .await
        .error(400, Some("Bad request"));
    let bad = catalog
        .get("/v1/workers?platform=linux-riscv64")
        .await
        .error(400, Some("Unknown platform"));
    assert!(
        bad["valid_platforms"].as_array().unwrap().len() >= 4,
        "{bad}"
    );

    // v1 worker.
    let one = catalog
        .get(&format!("/v1/workers/{WORKER}"))
        .await
        .ok_json();
    assert_eq!(one["id"], WORKER);
    assert_eq!(one["latest_version"], "0.10.0");
    assert_eq!(one["metadata"]["version"], "0.10.0");
    assert_eq!(one["metadata"]["binary_name"], "hello-worker-rbee");

    // Versions, newest first by semver.
    let body = catalog
        .get(&format!("/v1/workers/{WORKER}/versions"))
        .await
        .ok_json();
    assert_eq!(listed_versions(&body), ["0.10.0", "0.2.0", "0.1.0"]);
    assert_eq!(body["latest"], "0.10.0");
    for p in published {
        let v = body["versions"]
            .as_array()
            .unwrap()
            .iter()
            .find(|v| v["version"] == p.summary.version.as_str())
            .unwrap();
        assert_eq!(v["index_digest"], p.summary.index_digest.as_str());
        assert_eq!(v["published_at"], CREATED);
        let builds = v["platforms"].as_array().unwrap();
        assert_eq!(
            builds
                .iter()
                .map(|b| b["platform"].as_str().unwrap())
                .collect::<Vec<_>>(),
            platform_names()
        );
        for (build, pushed) in builds.iter().zip(&p.summary.platforms) {
            assert_eq!(build["platform"], pushed.platform.as_str());
            assert_eq!(build["manifest_digest"], pushed.manifest_digest.as_str());
            assert_eq!(build["layer_digest"], pushed.layer_digest.as_str());
            assert_eq!(build["size"], pushed.size);
            assert_eq!(build["filename"], pushed.filename.as_str());
        }
    }

    // Downloads: `latest` and an exact version, through the returned URL.
    let host = host_or_linux();
    let cases = [
        ("latest", host, newest),
        ("0.2.0", "linux-aarch64", &published[1]),
        ("0.1.0", host, &published[0]),
    ];
    for (asked, platform, expected) in cases {
        let path = format!("/v1/workers/{WORKER}/{asked}/download?platform={platform}");
        let d = catalog.get(&path).await.ok_json();
        let pushed = expected
            .summary
            .platforms
            .iter()
            .find(|b| b.platform == platform)
            .unwrap();
        assert_eq!(d["worker_id"], WORKER, "{path}");
        assert_eq!(d["version"], expected.summary.version.as_str(), "{path}");
        assert_eq!(d["platform"], platform, "{path}");
        assert_eq!(d["checksum"], pushed.layer_digest.as_str(), "{path}");
        assert_eq!(d["size"], pushed.size, "{path}");
        assert_eq!(
            d["filename"],
            format!("{WORKER}-{}-{platform}.tar.gz", expected.summary.version),
            "{path}"
        );
        assert!(
            d["expires_in"].is_null(),
            "public builds do not expire: {d}"
        );

        let url = d["download_url"].as_str().unwrap();
        let resp = plain_http().get(url).send().await.unwrap();
        assert_eq!(resp.status(), 200, "GET {url}");
        let bytes = resp.bytes().await.unwrap();
        assert_eq!(
            sha256_digest(&bytes),
            d["checksum"].as_str().unwrap(),
            "the download's sha256 is the checksum ({url})"
        );
        assert_eq!(bytes.len() as u64, d["size"].as_u64().unwrap());
        let entries = untar_gz(&bytes);
        let binary = entries
            .iter()
            .find(|e| e.name == "hello-worker-rbee")
            .unwrap_or_else(|| panic!("no binary in {url}"));
        assert_eq!(
            binary.bytes,
            std::fs::read(expected.fixture.build(platform)).unwrap(),
            "the {platform} build of {}",
            expected.summary.version
        );

        // The OCI reference names the platform manifest, by digest, in the
        // registry readers were told about.
        let reference = d["oci_reference"].as_str().unwrap();
        assert_eq!(
            reference,
            format!("{registry_host}/{REPO}@{}", pushed.manifest_digest)
        );
        let (_, digest) = reference.split_once('@').unwrap();
        let manifest = plain_http()
            .get(format!(
                "http://{registry_host}/v2/{REPO}/manifests/{digest}"
            ))
            .header("accept", format!("{OCI_MANIFEST}, {OCI_INDEX}"))
            .send()
            .await
            .unwrap();
        assert_eq!(manifest.status(), 200, "{reference} resolves");
        let raw = manifest.bytes().await.unwrap();
        assert_eq!(sha256_digest(&raw), digest);
        let manifest: Value = serde_json::from_slice(&raw).unwrap();
        assert_eq!(manifest["mediaType"], OCI_MANIFEST);
        assert_eq!(manifest["artifactType"], WORKER_TYPE);
        assert_eq!(manifest["config"]["mediaType"], WORKER_METADATA);
        assert_eq!(manifest["layers"][0]["digest"], d["checksum"]);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_route_answers_on_the_embedded_server() {
    let catalog = TestCatalog::embedded().await;
    assert_eq!(
        catalog.registry_url, catalog.url,
        "the embedded registry is served by the catalog itself"
    );
    let published = publish_three(&catalog.registry_url).await;
    walk_every_route(&catalog, &published, &catalog.host()).await;
    // The embedded registry has the referrers API: the PKGBUILD came
    // through it.
    let referrers: Value = plain_http()
        .get(format!(
            "{}/v2/{REPO}/referrers/{}?artifactType={PKGBUILD_TYPE}",
            catalog.url, published[2].summary.index_digest
        ))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(referrers["manifests"].as_array().unwrap().len(), 1);
    catalog.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_route_answers_over_distribution() {
    let Some(registry) = Distribution::start().await else {
        return;
    };
    // Published before the catalog starts: Distribution tells it nothing
    // here (no webhook), so the catalog's first start reads them (into
    // its view, or by walking the registry) within its first reads.
    // Every route answers the same with the view (the default) and
    // walking the registry (`--no-catalog-view`).
    let published = publish_three(&registry.url).await;
    let walking = TestCatalog::external(&registry.url, |c| c.catalog_view = false).await;
    walk_every_route(&walking, &published, &registry.host).await;
    walking.stop().await;
    let catalog = TestCatalog::external(&registry.url, |_| {}).await;
    assert_eq!(catalog.registry_url, registry.url);
    walk_every_route(&catalog, &published, &registry.host).await;

    // Distribution 2.8 has no referrers API, so the PKGBUILD the walk
    // checked came through the fallback tag.
    let subject = &published[2].summary.index_digest;
    let resp = plain_http()
        .get(format!("{}/v2/{REPO}/referrers/{subject}", registry.url))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 404, "Distribution 2.8 has no referrers API");
    let tags: Value = plain_http()
        .get(format!("{}/v2/{REPO}/tags/list", registry.url))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let fallback = subject.replace(':', "-");
    assert!(
        tags["tags"]
            .as_array()
            .unwrap()
            .iter()
            .any(|t| t == fallback.as_str()),
        "the referrers fallback tag {fallback} exists: {tags}"
    );
    catalog.stop().await;
}

// ---- rbee-hive compatibility --------------------------------------------------

/// What rbee-hive's installer deserialises `/workers/:id` into: exactly
/// these fields, unknown ones ignored (serde's default).
#[derive(Debug, Deserialize)]
struct HiveInstallerWorker {
    id: String,
    name: String,
    version: String,
    platforms: Vec<String>,
    architectures: Vec<String>,
    depends: Vec<String>,
}

/// What rbee-hive's list view reads from `/workers`.
#[derive(Debug, Deserialize)]
struct HiveListEntry {
    id: String,
    name: String,
    worker_type: String,
    platforms: Vec<String>,
    description: String,
}

#[derive(Debug, Deserialize)]
struct HiveList {
    workers: Vec<HiveListEntry>,
}

/// rbee's Rust contract type for a catalog entry, camelCase on the wire.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct ContractEntry {
    id: String,
    implementation: String,
    worker_type: String,
    version: String,
    platforms: Vec<String>,
    architectures: Vec<String>,
    name: String,
    description: String,
    license: String,
    pkgbuild_url: String,
    build_system: String,
    source: ContractSource,
    depends: Vec<String>,
    makedepends: Vec<String>,
    binary_name: String,
    install_path: String,
    supported_formats: Vec<String>,
    max_context_length: Option<u64>,
    supports_streaming: bool,
    supports_batching: bool,
}

#[derive(Debug, Deserialize)]
struct ContractSource {
    #[serde(rename = "type")]
    kind: String,
    url: String,
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rbee_hive_reads_the_legacy_shapes() {
    let catalog = TestCatalog::embedded().await;
    catalog.publish_version("0.1.0").await;

    // The installer, and its platform check against the host.
    let w: HiveInstallerWorker = catalog.get(&format!("/workers/{WORKER}")).await.parse();
    assert_eq!(w.id, WORKER);
    assert_eq!(w.name, "Hello Worker (CPU)");
    assert_eq!(w.version, "0.1.0");
    assert_eq!(w.depends, ["gcc-libs"]);
    for p in &w.platforms {
        assert!(
            ["linux", "macos", "windows"].contains(&p.as_str()),
            "`{p}` is not an OS name rbee-hive knows"
        );
    }
    for a in &w.architectures {
        assert!(
            ["x86_64", "aarch64"].contains(&a.as_str()),
            "`{a}` is not an architecture rbee-hive knows"
        );
    }
    assert_eq!(w.platforms, ["linux", "macos", "windows"]);
    assert_eq!(w.architectures, ["aarch64", "x86_64"]);
    // rbee-hive installs when both of its own names are listed; the
    // example is built for this host, so it must be installable here.
    if common::publishing::host_platform().is_some() {
        assert!(
            w.platforms.iter().any(|p| p == std::env::consts::OS)
                && w.architectures.iter().any(|a| a == std::env::consts::ARCH),
            "{}/{} is not offered: {w:?}",
            std::env::consts::OS,
            std::env::consts::ARCH
        );
    }

    // The list view.
    let list: HiveList = catalog.get("/workers").await.parse();
    assert_eq!(list.workers.len(), 1);
    let entry = &list.workers[0];
    assert_eq!(entry.id, WORKER);
    assert_eq!(entry.name, "Hello Worker (CPU)");
    assert_eq!(entry.worker_type, "cpu");
    assert_eq!(entry.platforms, ["linux", "macos", "windows"]);
    assert!(entry.description.starts_with("A tiny example worker"));

    // rbee's camelCase contract type, one worker and the list.
    let c: ContractEntry = catalog.get(&format!("/workers/{WORKER}")).await.parse();
    assert_eq!(c.id, WORKER);
    assert_eq!(c.name, "Hello Worker (CPU)");
    assert_eq!(c.version, "0.1.0");
    assert_eq!(c.worker_type, "cpu");
    assert_eq!(c.implementation, "rust");
    assert_eq!(c.license, "GPL-3.0-or-later");
    assert_eq!(c.build_system, "cargo");
    assert_eq!(c.binary_name, "hello-worker-rbee");
    assert_eq!(c.install_path, "/usr/local/bin/hello-worker-rbee");
    assert_eq!(c.supported_formats, ["gguf"]);
    assert_eq!(c.max_context_length, Some(4096));
    assert!(c.supports_streaming && !c.supports_batching);
    assert_eq!(c.depends, ["gcc-libs"]);
    assert_eq!(c.makedepends, ["cargo"]);
    assert_eq!(c.platforms, ["linux", "macos", "windows"]);
    assert_eq!(c.architectures, ["aarch64", "x86_64"]);
    assert!(c.description.starts_with("A tiny example worker"));
    assert_eq!(c.source.kind, "git");
    assert_eq!(c.source.url, "https://github.com/rbee/rbee-oci");
    // The PKGBUILD URL is a path on this server, and it works.
    assert_eq!(c.pkgbuild_url, format!("/workers/{WORKER}/PKGBUILD"));
    let pkgbuild = catalog.get(&c.pkgbuild_url).await.expect(200);
    assert!(pkgbuild.text().contains("pkgname=hello-worker-rbee-cpu"));
    #[derive(Debug, Deserialize)]
    struct ContractList {
        workers: Vec<ContractEntry>,
    }
    let all: ContractList = catalog.get("/workers").await.parse();
    assert_eq!(all.workers.len(), 1);
    assert_eq!(all.workers[0].worker_type, "cpu");
    catalog.stop().await;
}

// ---- snapshots ------------------------------------------------------------------------

#[test]
fn normalise_redacts_digests_and_ports() {
    let hex = "ab".repeat(32);
    let v = json!({
        "download_url": format!("http://127.0.0.1:4321/v2/rbee/x/blobs/sha256:{hex}"),
        "oci_reference": format!("127.0.0.1:80/rbee/x@sha256:{hex}"),
        "plain": "sha256: and 127.0.0.1:",
    });
    assert_eq!(
        normalise(&v),
        json!({
            "download_url": "http://127.0.0.1:[port]/v2/rbee/x/blobs/sha256:[digest]",
            "oci_reference": "127.0.0.1:[port]/rbee/x@sha256:[digest]",
            "plain": "sha256: and 127.0.0.1:",
        })
    );
    assert_eq!(normalise_text("no markers"), "no markers");
}

/// Snapshots of every JSON shape the catalog serves, with digests, ports,
/// dates and sizes redacted.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn json_shapes_match_the_snapshots() {
    let catalog = TestCatalog::embedded().await;
    catalog.publish_version("0.1.0").await;
    catalog.publish_version("0.2.0").await;
    let get = |path: String| {
        let catalog = &catalog;
        async move { normalise(&catalog.get(&path).await.json()) }
    };
    let health = get("/health".into()).await;
    insta::assert_json_snapshot!("health", health, { ".version" => "[version]" });
    insta::assert_json_snapshot!("legacy_workers", get("/workers".into()).await);
    insta::assert_json_snapshot!("legacy_worker", get(format!("/workers/{WORKER}")).await);
    insta::assert_json_snapshot!("v1_workers", get("/v1/workers".into()).await);
    insta::assert_json_snapshot!("v1_worker", get(format!("/v1/workers/{WORKER}")).await);
    insta::assert_json_snapshot!(
        "v1_versions",
        get(format!("/v1/workers/{WORKER}/versions")).await,
        { ".**.size" => "[size]", ".**.published_at" => "[date]" }
    );
    insta::assert_json_snapshot!(
        "v1_download",
        get(format!("/v1/workers/{WORKER}/latest/download?platform=linux-x86_64")).await,
        { ".size" => "[size]" }
    );
    let errors = json!({
        "worker_not_found": get("/workers/no-such-worker".into()).await,
        "invalid_id": get("/v1/workers/UPPER".into()).await,
        "version_not_found": get(format!("/v1/workers/{WORKER}/9.9.9/download?platform=linux-x86_64")).await,
        "bad_version": get(format!("/v1/workers/{WORKER}/abc/download?platform=linux-x86_64")).await,
        "unknown_platform": get(format!("/v1/workers/{WORKER}/latest/download?platform=linux-riscv64")).await,
        "platform_not_built": get(format!("/v1/workers/{WORKER}/latest/download?platform=macos-x86_64")).await,
        "missing_platform": get(format!("/v1/workers/{WORKER}/latest/download")).await,
        "unknown_route": get("/nope".into()).await,
    });
    insta::assert_json_snapshot!("errors", errors);
    catalog.stop().await;
}
