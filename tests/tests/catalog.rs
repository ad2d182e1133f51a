//! The catalog API end to end: the catalog server in-process (embedded
//! registry, and CNCF Distribution 2.8 as an external upstream), releases
//! published with the `rbee-pusher` library, every route called over HTTP,
//! downloads fetched through the returned URL and checked by sha256, the
//! shapes today's rbee-hive deserialises, errors, stale data when the
//! registry is down, invalidation on push, ETags, and JSON snapshots.

mod common;

use std::time::Duration;

use common::catalog::{
    CREATED, Reply, TestCatalog, WORKER, normalise, normalise_text, other_worker, publish_files,
};
use common::distribution::Distribution;
use common::publishing::{
    CATALOG_REPO, Fixture, PKGBUILD_TYPE, PLATFORMS, REPO, WORKER_METADATA, WORKER_TYPE, untar_gz,
};
use common::{OCI_INDEX, OCI_MANIFEST, sha256_digest};
use rbee_catalog::catalog::CacheTtls;
use rbee_pusher::publish::PublishSummary;
use serde::Deserialize;
use serde_json::{Value, json};

/// The platform the download checks use: the host's when the example
/// worker is built for it, else `linux-x86_64`.
fn host_or_linux() -> &'static str {
    common::publishing::host_platform().unwrap_or("linux-x86_64")
}

/// The example worker's platforms, in the catalog's (and the fixture's) order.
fn platform_names() -> Vec<&'static str> {
    PLATFORMS.iter().map(|p| p.0).collect()
}

/// The versions listed by `/v1/workers/:id/versions`, in order.
fn listed_versions(body: &Value) -> Vec<String> {
    body["versions"]
        .as_array()
        .expect("a versions array")
        .iter()
        .map(|v| v["version"].as_str().unwrap().to_owned())
        .collect()
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
    let catalog = TestCatalog::external(&registry.url, |_| {}).await;
    assert_eq!(catalog.registry_url, registry.url);
    let published = publish_three(&registry.url).await;
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

// ---- errors -----------------------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_requests_get_json_errors_and_never_a_500() {
    let catalog = TestCatalog::embedded().await;
    catalog.publish_version("0.1.0").await;
    let (_no_pkgbuild, files) = other_worker("no-pkgbuild-cpu", "0.1.0", false);
    publish_files(&catalog.registry_url, &files).await;

    // Invalid ids, on every route that takes one, sent byte for byte (a
    // URL parser would resolve `%2E%2E` before sending it).
    let long = "a".repeat(101);
    let ids = [
        "UPPER",
        "a_b",
        long.as_str(),
        "%2E%2E",
        "a%2Fb",
        "a.b",
        "%20",
    ];
    let routes = [
        "/workers/{}",
        "/workers/{}/PKGBUILD",
        "/v1/workers/{}",
        "/v1/workers/{}/versions",
        "/v1/workers/{}/latest/download?platform=linux-x86_64",
    ];
    for route in routes {
        for id in ids {
            let body = catalog
                .raw_get(&route.replace("{}", id))
                .await
                .error(400, Some("Invalid worker id"));
            if id == long {
                assert!(body["message"].as_str().unwrap().contains("100"), "{body}");
            }
        }
        // At the limit the id is valid, just not published.
        catalog
            .get(&route.replace("{}", &"a".repeat(100)))
            .await
            .error(404, Some("Worker not found"));
    }

    // Unknown worker: the exact title rbee-hive and the marketplace match.
    for route in routes {
        catalog
            .get(&route.replace("{}", "no-such-worker"))
            .await
            .error(404, Some("Worker not found"));
    }

    // Versions: unknown -> 404, not a version -> 400.
    let download =
        |version: &str, query: &str| format!("/v1/workers/{WORKER}/{version}/download{query}");
    for version in ["9.9.9", "0.1.1", "0.1.0-rc.1"] {
        catalog
            .get(&download(version, "?platform=linux-x86_64"))
            .await
            .error(404, Some("Version not found"));
    }
    for version in ["abc", "1.2", "01.0.0", "v0.1.0", "latest2", "%2E%2E"] {
        catalog
            .raw_get(&download(version, "?platform=linux-x86_64"))
            .await
            .error(400, Some("Bad request"));
    }
    let huge = "1".repeat(5000);
    catalog
        .get(&download(&huge, "?platform=linux-x86_64"))
        .await
        .error(400, Some("Bad request"));

    // Platforms: unknown -> 400 listing the valid names; valid but not
    // built -> 404 listing the built ones; missing -> 400.
    for platform in ["linux-riscv64", "linux", "LINUX-X86_64", ""] {
        let body = catalog
            .get(&download("latest", &format!("?platform={platform}")))
            .await
            .error(400, Some("Unknown platform"));
        let valid: Vec<&str> = body["valid_platforms"]
            .as_array()
            .unwrap()
            .iter()
            .map(|p| p.as_str().unwrap())
            .collect();
        for name in platform_names() {
            assert!(valid.contains(&name), "{name} missing from {body}");
        }
    }
    for version in ["latest", "0.1.0"] {
        let body = catalog
            .get(&download(version, "?platform=macos-x86_64"))
            .await
            .error(404, Some("Platform not available"));
        assert_eq!(body["available_platforms"], json!(platform_names()));
        for name in platform_names() {
            assert!(body["message"].as_str().unwrap().contains(name), "{body}");
        }
    }
    let body = catalog.get(&download("latest", "")).await.error(400, None);
    assert!(
        body["message"].as_str().unwrap().contains("platform"),
        "{body}"
    );

    // Unknown routes.
    for path in [
        "/nope",
        "/v1",
        "/v1/nope",
        "/workers/x/y/z",
        "/v1/workers/x/0.1.0/download/more",
    ] {
        catalog.get(path).await.error(404, Some("Not found"));
    }

    // A worker published without a PKGBUILD.
    catalog.get("/workers/no-pkgbuild-cpu").await.expect(200);
    catalog
        .get("/workers/no-pkgbuild-cpu/PKGBUILD")
        .await
        .error(404, Some("PKGBUILD not found"));

    // The webhook is off without a secret.
    catalog
        .send_json(
            reqwest::Method::POST,
            "/v1/webhooks/registry",
            Some("anything"),
            &json!({ "events": [] }),
        )
        .await
        .error(404, None);
    catalog.stop().await;
}

/// Malformed requests that axum's extractors reject before a handler
/// runs, and methods no route has: still JSON errors.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rejected_before_the_handler_is_still_json() {
    let catalog = TestCatalog::embedded().await;
    catalog.publish_version("0.1.0").await;
    // Not UTF-8 once percent-decoded.
    for path in [
        "/workers/%FF",
        "/v1/workers/%FF/versions",
        &format!("/v1/workers/{WORKER}/%FF/download?platform=linux-x86_64"),
    ] {
        catalog.raw_get(path).await.error(400, None);
    }
    // A query that does not deserialise.
    for query in [
        "?platform=linux-x86_64&platform=linux-aarch64",
        "?platform=%FF",
    ] {
        catalog
            .get(&format!("/v1/workers/{WORKER}/latest/download{query}"))
            .await
            .error(400, None);
    }
    catalog
        .get("/v1/workers?backend=cpu&backend=cuda")
        .await
        .error(400, None);
    // A method the route does not have.
    for path in ["/workers", &format!("/v1/workers/{WORKER}/versions")] {
        let reply = catalog
            .send_json(reqwest::Method::DELETE, path, None, &json!({}))
            .await;
        let allow = reply.header("allow");
        reply.error(405, Some("Method not allowed"));
        assert!(allow.contains("GET"), "{path}: Allow {allow:?}");
    }
    let reply = catalog
        .send_json(
            reqwest::Method::GET,
            "/v1/webhooks/registry",
            None,
            &json!({}),
        )
        .await;
    assert_eq!(reply.header("allow"), "POST");
    reply.error(405, Some("Method not allowed"));
    catalog.stop().await;
}

// ---- stale data when the registry is down ------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn registry_down_serves_stale_data_with_a_warning() {
    let Some(registry) = Distribution::start().await else {
        return;
    };
    let ttl = Duration::from_secs(1);
    let catalog = TestCatalog::external(&registry.url, |c| {
        c.ttls = CacheTtls {
            index: ttl,
            metadata: ttl,
        };
    })
    .await;
    publish_files(&registry.url, &Fixture::new("0.1.0").files()).await;
    let (_other, files) = other_worker("never-cached-cpu", "0.1.0", true);
    publish_files(&registry.url, &files).await;

    // Warm the cache for one worker only.
    let warm = [
        format!("/v1/workers/{WORKER}/versions"),
        format!("/workers/{WORKER}"),
        format!("/workers/{WORKER}/PKGBUILD"),
        format!("/v1/workers/{WORKER}/0.1.0/download?platform=linux-x86_64"),
    ];
    let mut fresh = Vec::new();
    for path in &warm {
        let reply = catalog.get(path).await.expect(200);
        assert_eq!(reply.header("warning"), "", "{path} is fresh");
        fresh.push(reply.body);
    }

    // The registry goes away, and the TTLs run out.
    let registry_url = registry.url.clone();
    drop(registry);
    tokio::time::sleep(ttl + Duration::from_millis(300)).await;

    for (path, before) in warm.iter().zip(&fresh) {
        let reply = catalog.get(path).await.expect(200);
        assert!(
            reply.header("warning").starts_with("110 "),
            "{path}: Warning {:?}",
            reply.header("warning")
        );
        assert_eq!(
            reply.header("cache-control"),
            "public, max-age=10",
            "{path}: stale data is not kept long downstream"
        );
        assert_eq!(&reply.body, before, "{path}: the last good data");
    }
    let ready = catalog.get("/ready").await.ok_json();
    assert_eq!(ready["stale"], true, "{ready}");

    // A worker whose release was never read: nothing to fall back on.
    let body = catalog
        .get("/v1/workers/never-cached-cpu/versions")
        .await
        .error(502, Some("Registry unavailable"));
    assert!(
        !body["message"].as_str().unwrap().contains("127.0.0.1"),
        "internal addresses stay in the log: {body}"
    );
    catalog
        .get("/workers/never-cached-cpu")
        .await
        .error(502, Some("Registry unavailable"));

    // A catalog that never reached the registry.
    let cold = TestCatalog::external(&registry_url, |_| {}).await;
    let worker = format!("/workers/{WORKER}");
    for (path, status) in [
        ("/ready", 503),
        ("/v1/workers", 502),
        (worker.as_str(), 502),
    ] {
        let body = cold.get(path).await.error(status, None);
        assert!(
            !body["message"].as_str().unwrap().contains("127.0.0.1"),
            "{path}: internal addresses stay in the log: {body}"
        );
    }
    cold.stop().await;
    catalog.stop().await;
}

// ---- push -> visible at once ------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_push_to_the_embedded_registry_is_visible_at_once() {
    // Default TTLs (minutes): only the registry's push events can make the
    // second version appear.
    let catalog = TestCatalog::embedded().await;
    catalog.publish_version("0.1.0").await;
    let paths = (
        format!("/v1/workers/{WORKER}/versions"),
        format!("/workers/{WORKER}"),
        "/v1/workers".to_owned(),
        format!("/workers/{WORKER}/PKGBUILD"),
        format!("/v1/workers/{WORKER}/latest/download?platform=linux-x86_64"),
    );
    let versions = catalog.get(&paths.0).await.ok_json();
    assert_eq!(listed_versions(&versions), ["0.1.0"]);
    assert_eq!(catalog.get(&paths.1).await.ok_json()["version"], "0.1.0");
    assert_eq!(
        catalog.get(&paths.2).await.ok_json()["workers"][0]["latest_version"],
        "0.1.0"
    );
    assert!(catalog.get(&paths.3).await.text().contains("pkgver=0.1.0"));
    assert_eq!(catalog.get(&paths.4).await.ok_json()["version"], "0.1.0");

    catalog.publish_version("0.2.0").await;
    let versions = catalog.get(&paths.0).await.ok_json();
    assert_eq!(listed_versions(&versions), ["0.2.0", "0.1.0"]);
    assert_eq!(versions["latest"], "0.2.0");
    assert_eq!(catalog.get(&paths.1).await.ok_json()["version"], "0.2.0");
    assert_eq!(
        catalog.get(&paths.2).await.ok_json()["workers"][0]["latest_version"],
        "0.2.0"
    );
    assert!(catalog.get(&paths.3).await.text().contains("pkgver=0.2.0"));
    assert_eq!(catalog.get(&paths.4).await.ok_json()["version"], "0.2.0");
    catalog.stop().await;
}

/// A CNCF Distribution notification envelope for manifest pushes (and a
/// pull, which must not count) as Distribution sends it.
fn distribution_envelope(registry_host: &str, pushes: &[(&str, &str, &str)]) -> Value {
    let mut events: Vec<Value> = pushes
        .iter()
        .map(|(repository, tag, digest)| {
            json!({
                "id": "5b3b1d9e-0f4c-4a71-9d44-2d1f0b6f1a10",
                "timestamp": "2026-01-01T00:00:00.000000000Z",
                "action": "push",
                "target": {
                    "mediaType": OCI_INDEX,
                    "size": 1234,
                    "digest": digest,
                    "length": 1234,
                    "repository": repository,
                    "url": format!("http://{registry_host}/v2/{repository}/manifests/{digest}"),
                    "tag": tag,
                },
                "request": {
                    "id": "0f0e0d0c-0b0a-0908-0706-050403020100",
                    "addr": "127.0.0.1:50000",
                    "host": registry_host,
                    "method": "PUT",
                    "useragent": "rbee-pusher",
                },
                "actor": {},
                "source": { "addr": registry_host, "instanceID": "3f1c2b4a-6d5e-4f70-8a9b-0c1d2e3f4a5b" },
            })
        })
        .collect();
    let mut pull = events[0].clone();
    pull["action"] = "pull".into();
    pull["request"]["method"] = "GET".into();
    events.push(pull);
    json!({ "events": events })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn distribution_webhook_invalidates_the_cache() {
    let Some(registry) = Distribution::start().await else {
        return;
    };
    let secret = "webhook-test-secret";
    let catalog = TestCatalog::external(&registry.url, |c| {
        c.webhook_secret = Some(secret.to_owned());
    })
    .await;
    publish_files(&registry.url, &Fixture::new("0.1.0").files()).await;
    let versions = format!("/v1/workers/{WORKER}/versions");
    assert_eq!(
        listed_versions(&catalog.get(&versions).await.ok_json()),
        ["0.1.0"]
    );

    // Distribution tells nobody by itself here: the cache still answers.
    let second = publish_files(&registry.url, &Fixture::new("0.2.0").files()).await;
    assert_eq!(
        listed_versions(&catalog.get(&versions).await.ok_json()),
        ["0.1.0"],
        "cached until told"
    );

    let catalog_digest = sha256_digest(b"catalog");
    let envelope = distribution_envelope(
        &registry.host,
        &[
            (REPO, "0.2.0", second.index_digest.as_str()),
            (CATALOG_REPO, "latest", catalog_digest.as_str()),
        ],
    );
    let post = |bearer: Option<&'static str>, body: Vec<u8>| {
        let mut req = catalog
            .http
            .post(format!("{}/v1/webhooks/registry", catalog.url))
            .header(
                "content-type",
                "application/vnd.docker.distribution.events.v1+json",
            )
            .body(body);
        if let Some(b) = bearer {
            req = req.header("authorization", format!("Bearer {b}"));
        }
        async move {
            let resp = req.send().await.unwrap();
            Reply {
                request: "POST /v1/webhooks/registry".into(),
                status: resp.status().as_u16(),
                headers: resp.headers().clone(),
                body: resp.bytes().await.unwrap().to_vec(),
            }
        }
    };
    let body = serde_json::to_vec(&envelope).unwrap();

    // No secret, or the wrong one: 401, nothing invalidated.
    post(None, body.clone())
        .await
        .error(401, Some("Unauthorized"));
    post(Some("wrong-secret"), body.clone())
        .await
        .error(401, Some("Unauthorized"));
    post(Some("webhook-test-secret-but-longer"), body.clone())
        .await
        .error(401, Some("Unauthorized"));
    assert_eq!(
        listed_versions(&catalog.get(&versions).await.ok_json()),
        ["0.1.0"]
    );
    // The right secret with a body that is not an envelope: 400.
    post(Some(secret), b"not json".to_vec())
        .await
        .error(400, None);

    // The right secret: both pushes count, the pull does not.
    let answer = post(Some(secret), body).await.ok_json();
    assert_eq!(answer["invalidated"], 2, "{answer}");
    let now = catalog.get(&versions).await.ok_json();
    assert_eq!(listed_versions(&now), ["0.2.0", "0.1.0"]);
    assert_eq!(now["latest"], "0.2.0");
    assert_eq!(
        catalog.get(&format!("/workers/{WORKER}")).await.ok_json()["version"],
        "0.2.0"
    );
    catalog.stop().await;
}

/// Distribution configured, as `routes/webhook.rs` documents, to notify the
/// catalog itself: a push becomes visible without anyone posting by hand.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn distribution_notifications_reach_the_webhook() {
    let secret = "notify-test-secret";
    // The catalog's address must be in Distribution's configuration, and
    // Distribution's in the catalog's: bind the catalog's port first.
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let catalog_addr = listener.local_addr().unwrap();
    let notifications = format!(
        "notifications:
  endpoints:
    - name: rbee-catalog
      url: http://{catalog_addr}/v1/webhooks/registry
      headers:
        Authorization: [Bearer {secret}]
      timeout: 2s
      threshold: 3
      backoff: 100ms
"
    );
    let Some(registry) = Distribution::start_with_config(&notifications).await else {
        return;
    };
    let catalog = TestCatalog::start_on(listener, |c| {
        c.registry_url = Some(registry.url.clone());
        c.webhook_secret = Some(secret.to_owned());
    })
    .await;
    publish_files(&registry.url, &Fixture::new("0.1.0").files()).await;
    let versions = format!("/v1/workers/{WORKER}/versions");
    // The first read may race the notifications of the first publish; what
    // matters is that it ends up with 0.1.0, cached for minutes.
    assert_eq!(
        listed_versions(&catalog.get(&versions).await.ok_json()),
        ["0.1.0"]
    );
    publish_files(&registry.url, &Fixture::new("0.2.0").files()).await;
    // Distribution delivers from a queue: poll briefly.
    let started = std::time::Instant::now();
    loop {
        let listed = listed_versions(&catalog.get(&versions).await.ok_json());
        if listed == ["0.2.0", "0.1.0"] {
            break;
        }
        assert!(
            started.elapsed() < Duration::from_secs(10),
            "Distribution's notifications did not invalidate the cache: {listed:?}\n{}",
            registry.log()
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    catalog.stop().await;
}

// ---- HTTP caching ------------------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn etags_answer_304_and_cache_control_is_set() {
    let catalog = TestCatalog::embedded().await;
    catalog.publish_version("0.1.0").await;
    let routes = [
        ("/workers".to_owned(), "public, max-age=300"),
        (format!("/workers/{WORKER}"), "public, max-age=600"),
        (format!("/workers/{WORKER}/PKGBUILD"), "public, max-age=600"),
        ("/v1/workers".to_owned(), "public, max-age=300"),
        (format!("/v1/workers/{WORKER}"), "public, max-age=600"),
        (
            format!("/v1/workers/{WORKER}/versions"),
            "public, max-age=600",
        ),
        (
            format!("/v1/workers/{WORKER}/latest/download?platform=linux-x86_64"),
            "public, max-age=300",
        ),
        (
            format!("/v1/workers/{WORKER}/0.1.0/download?platform=linux-x86_64"),
            "public, max-age=3600",
        ),
    ];
    let mut etags = Vec::new();
    for (path, cache_control) in &routes {
        let first = catalog.get(path).await.expect(200);
        let etag = first.header("etag");
        assert!(
            etag.len() > 2 && etag.starts_with('"') && etag.ends_with('"'),
            "{path}: ETag {etag:?}"
        );
        assert_eq!(first.header("cache-control"), *cache_control, "{path}");
        // Security headers ride along on every answer.
        assert_eq!(first.header("x-content-type-options"), "nosniff");
        assert_eq!(first.header("x-frame-options"), "DENY");
        assert!(
            first
                .header("content-security-policy")
                .contains("default-src 'none'")
        );
        assert!(
            !first.header("x-request-id").is_empty(),
            "{path}: request id"
        );

        let again = catalog.get(path).await.expect(200);
        assert_eq!(again.header("etag"), etag, "{path}: the ETag is stable");
        for matching in [etag.clone(), format!("\"other\", {etag}"), "*".to_owned()] {
            let not_modified = catalog
                .get_with(path, &[("if-none-match", &matching)])
                .await
                .expect(304);
            assert!(not_modified.body.is_empty(), "{path}: 304 has no body");
            assert_eq!(not_modified.header("etag"), etag);
            assert_eq!(not_modified.header("cache-control"), *cache_control);
        }
        catalog
            .get_with(path, &[("if-none-match", "\"something-else\"")])
            .await
            .expect(200);
        etags.push(etag);
    }

    // A new version changes what the worker routes answer, and their ETags.
    catalog.publish_version("0.2.0").await;
    for ((path, _), etag) in routes.iter().zip(&etags) {
        let reply = catalog.get_with(path, &[("if-none-match", etag)]).await;
        if path.contains("/0.1.0/") {
            // That version did not change.
            reply.expect(304);
        } else {
            let reply = reply.expect(200);
            assert_ne!(&reply.header("etag"), etag, "{path}");
        }
    }
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
