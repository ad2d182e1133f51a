//! What `rbee-pusher` publishes, end to end, on our registry AND CNCF
//! Distribution 2.8 (which has no referrers API): a four-platform release
//! of the example worker read back with skopeo, oras-py and plain HTTP,
//! down to running the published binary; idempotent and conflicting
//! re-pushes; the `latest` rules.
//!
//! The real `rbee-pusher` binary is run wherever the command line is the
//! point (exit codes, `--json`, messages); the library (`rbee_pusher`) is
//! used where a test only needs something published, which is quicker and
//! gives typed summaries. Each body below runs once per registry: see
//! [`on_both_registries`].

mod common;

use std::collections::BTreeSet;
use std::path::Path;

use common::publishing::*;
use common::*;
use serde_json::{Value, json};

const VERSION: &str = "0.1.0";

on_both_registries!(
    release_reads_back_with_oci_clients,
    re_push_is_a_no_op,
    conflicting_re_push_is_refused_unless_forced,
    a_different_pkgbuild_is_a_conflict_too,
    latest_follows_the_highest_stable_version,
);

/// `--platform` flags for all four platforms: the real example binary for
/// the host, stand-ins (written to `dir`) for the others.
fn four_platform_args(hello_worker: &Path, dir: &Path) -> Vec<String> {
    let host = host_platform().expect("the tests run on a platform the example worker lists");
    let mut args = Vec::new();
    for (platform, _, _) in PLATFORMS {
        let path = if platform == host {
            hello_worker.to_owned()
        } else {
            let path = dir.join(format!("build-{platform}"));
            std::fs::write(&path, stand_in(platform, 0)).unwrap();
            path
        };
        args.push("--platform".to_owned());
        args.push(format!("{platform}={}", path.display()));
    }
    args
}

/// The summary entry of `platform`.
fn summary_of<'a>(summary: &'a Value, platform: &str) -> &'a Value {
    summary["platforms"]
        .as_array()
        .expect("summary lists platforms")
        .iter()
        .find(|p| p["platform"] == platform)
        .unwrap_or_else(|| panic!("no {platform} in {summary}"))
}

/// The PKGBUILD referrers of `index`: through the referrers API on our
/// registry (which Distribution does not have: 404 there), else through
/// the fallback tag `sha256-<hex>`.
async fn pkgbuild_referrers(reg: &UnderTest, index: &str) -> Vec<Value> {
    let listing = match reg {
        UnderTest::Ours(ours) => {
            let query = format!("?artifactType={PKGBUILD_TYPE}");
            ours.referrers(REPO, index, &query).await.1
        }
        UnderTest::Distribution(..) => {
            let resp = reqwest::Client::builder()
                .no_proxy()
                .build()
                .unwrap()
                .get(format!("{}/v2/{REPO}/referrers/{index}", reg.url()))
                .send()
                .await
                .unwrap();
            assert_eq!(resp.status(), 404, "Distribution 2.8 has no referrers API");
            let tag = index.replace(':', "-");
            let fallback = reg.expect_manifest(REPO, &tag).await;
            assert_eq!(fallback.json["mediaType"], OCI_INDEX, "fallback tag {tag}");
            fallback.json
        }
    };
    listing["manifests"]
        .as_array()
        .expect("a referrers index")
        .iter()
        .filter(|d| d["artifactType"] == PKGBUILD_TYPE)
        .cloned()
        .collect()
}

/// Checks the PKGBUILD referrer `digest` of `index`: its subject, its two
/// layers, and the PKGBUILD bytes against `pkgbuild`.
async fn check_pkgbuild_referrer(reg: &UnderTest, digest: &str, index: &str, pkgbuild: &[u8]) {
    let manifest = reg.expect_manifest(REPO, digest).await.json;
    assert_eq!(manifest["artifactType"], PKGBUILD_TYPE);
    assert_eq!(manifest["subject"]["digest"], index);
    assert_eq!(manifest["subject"]["mediaType"], OCI_INDEX);
    assert_eq!(
        manifest["config"]["mediaType"],
        "application/vnd.oci.empty.v1+json"
    );
    let layers = manifest["layers"].as_array().unwrap();
    let titles: Vec<&Value> = layers.iter().map(|l| &l["annotations"][TITLE]).collect();
    assert_eq!(titles, [&json!("PKGBUILD"), &json!(".SRCINFO")]);
    assert_eq!(layers[0]["mediaType"], "text/x-pkgbuild");
    assert_eq!(layers[1]["mediaType"], "text/x-srcinfo");
    let served = reg.blob(REPO, layers[0]["digest"].as_str().unwrap()).await;
    assert_eq!(served, pkgbuild, "the PKGBUILD layer is the file");
    let srcinfo = reg.blob(REPO, layers[1]["digest"].as_str().unwrap()).await;
    let srcinfo = String::from_utf8(srcinfo).unwrap();
    assert!(
        srcinfo.starts_with("pkgbase = hello-worker-rbee-cpu\n") && srcinfo.contains("\tpkgver = "),
        "{srcinfo}"
    );
}

// ---- 1. what a push writes, read back with real clients --------------------

async fn release_reads_back_with_oci_clients(reg: UnderTest) {
    if !require_tool("skopeo") || !require_python_module("oras") {
        return;
    }
    let bins = binaries().await;
    let host = host_platform().unwrap();
    let example = example_dir();

    // The example release file, with a build for every platform.
    let mut args = vec![
        "--release".to_owned(),
        path_arg(&example.join("release.toml")),
    ];
    args.extend(four_platform_args(&bins.hello_worker, &reg.dir("builds")));
    let summary = push_json(reg.url(), &args).await;
    assert_eq!(summary["status"], "published");
    assert_eq!(
        summary["reference"],
        format!("{}/{REPO}:{VERSION}", reg.host())
    );
    assert_eq!(summary["latest"], true);
    let index_digest = summary["index_digest"].as_str().unwrap().to_owned();

    // skopeo sees an OCI index with one manifest per platform.
    let remote = format!("docker://{}/{REPO}:{VERSION}", reg.host());
    let raw = skopeo_in(
        true,
        reg.scratch(),
        &["inspect", "--raw", "--tls-verify=false", &remote],
    )
    .await;
    assert_eq!(sha256_digest(&raw.stdout), index_digest);
    let index = raw.json();
    assert_eq!(index["mediaType"], OCI_INDEX);
    assert_eq!(index["artifactType"], WORKER_TYPE);
    let metadata: Value =
        serde_json::from_slice(&std::fs::read(example.join("metadata.json")).unwrap()).unwrap();
    let annotations = &index["annotations"];
    for (key, value) in [
        ("org.opencontainers.image.version", VERSION),
        ("org.opencontainers.image.licenses", "GPL-3.0-or-later"),
        (
            "org.opencontainers.image.description",
            metadata["description"].as_str().unwrap(),
        ),
        (
            "org.opencontainers.image.source",
            metadata["source"]["url"].as_str().unwrap(),
        ),
        ("dev.rbee.worker.id", "hello-worker-rbee-cpu"),
        ("dev.rbee.worker.family", "hello-worker-rbee"),
        ("dev.rbee.worker.backend", "cpu"),
        ("dev.rbee.worker.requires-license", "false"),
    ] {
        assert_eq!(annotations[key], value, "index annotation {key}");
    }
    assert!(
        annotations["org.opencontainers.image.created"].is_string(),
        "{annotations}"
    );
    let entries = index["manifests"].as_array().unwrap();
    let mut platforms: Vec<(String, String, String)> = entries
        .iter()
        .map(|d| {
            assert_eq!(d["mediaType"], OCI_MANIFEST);
            // Only the manifest says it (skopeo mirroring, skopeo_mirror.rs).
            assert!(d.get("artifactType").is_none(), "{d}");
            let name = d["annotations"]["dev.rbee.worker.platform"]
                .as_str()
                .unwrap();
            assert_eq!(d["digest"], summary_of(&summary, name)["manifest_digest"]);
            (
                name.to_owned(),
                d["platform"]["os"].as_str().unwrap().to_owned(),
                d["platform"]["architecture"].as_str().unwrap().to_owned(),
            )
        })
        .collect();
    platforms.sort();
    let mut expected: Vec<(String, String, String)> = PLATFORMS
        .iter()
        .map(|(p, os, arch)| (p.to_string(), os.to_string(), arch.to_string()))
        .collect();
    expected.sort();
    assert_eq!(platforms, expected, "one manifest per platform");

    // Each platform manifest: the metadata as config, one titled layer
    // whose digest is the sha256 of the tar.gz the registry serves, and
    // the tar.gz holds the build, LICENSE, README.md and metadata.json.
    let license = std::fs::read(example.join("LICENSE")).unwrap();
    let readme = std::fs::read(example.join("README.md")).unwrap();
    for (platform, _, _) in PLATFORMS {
        let entry = summary_of(&summary, platform);
        let manifest_digest = entry["manifest_digest"].as_str().unwrap();
        let manifest = reg.expect_manifest(REPO, manifest_digest).await;
        assert_eq!(manifest.digest, manifest_digest);
        let m = &manifest.json;
        assert_eq!(m["artifactType"], WORKER_TYPE);
        assert_eq!(m["config"]["mediaType"], WORKER_METADATA);
        assert_eq!(m["annotations"]["dev.rbee.worker.platform"], platform);
        assert_eq!(
            m["annotations"]["org.opencontainers.image.version"],
            VERSION
        );
        let config = reg
            .blob(REPO, m["config"]["digest"].as_str().unwrap())
            .await;
        let config: Value = serde_json::from_slice(&config).unwrap();
        assert_eq!(config["id"], "hello-worker-rbee-cpu");
        let layers = m["layers"].as_array().unwrap();
        assert_eq!(layers.len(), 1, "{m}");
        let layer = &layers[0];
        let title = format!("hello-worker-rbee-cpu-{VERSION}-{platform}.tar.gz");
        assert_eq!(layer["mediaType"], WORKER_LAYER);
        assert_eq!(layer["annotations"][TITLE], title.as_str());
        assert_eq!(entry["filename"], title.as_str());
        assert_eq!(layer["digest"], entry["layer_digest"]);
        let layer_digest = layer["digest"].as_str().unwrap();
        // `blob` hashes what it downloads and compares with the digest.
        let tar_gz = reg.blob(REPO, layer_digest).await;
        assert_eq!(layer["size"], tar_gz.len());
        assert_eq!(entry["size"], tar_gz.len());
        let files = untar_gz(&tar_gz);
        let names: Vec<&str> = files.iter().map(|f| f.name.as_str()).collect();
        assert_eq!(
            names,
            ["LICENSE", "README.md", "hello-worker-rbee", "metadata.json"]
        );
        for f in &files {
            let mode = if f.name == "hello-worker-rbee" {
                0o755
            } else {
                0o644
            };
            assert_eq!(f.mode, mode, "mode of {}", f.name);
            assert_eq!(
                (f.uid, f.gid, f.mtime),
                (0, 0, 0),
                "{} is reproducible",
                f.name
            );
        }
        assert_eq!(files[0].bytes, license);
        assert_eq!(files[1].bytes, readme);
        let build = if platform == host {
            std::fs::read(&bins.hello_worker).unwrap()
        } else {
            stand_in(platform, 0)
        };
        assert!(
            files[2].bytes == build,
            "{platform}: the binary is the build"
        );
        let packaged: Value = serde_json::from_slice(&files[3].bytes).unwrap();
        assert_eq!(packaged["id"], "hello-worker-rbee-cpu");
        assert_eq!(packaged["version"], VERSION);
    }

    // skopeo with a platform override copies the linux/arm64 build only.
    let arm64 = summary_of(&summary, "linux-aarch64");
    let layout_dir = reg.dir("arm64");
    skopeo_in(
        true,
        reg.scratch(),
        &[
            "copy",
            "--override-arch",
            "arm64",
            "--override-os",
            "linux",
            "--src-tls-verify=false",
            &remote,
            &format!("oci:{}:x", layout_dir.display()),
        ],
    )
    .await;
    let layout = Layout::open(&layout_dir);
    assert_eq!(layout.descriptor("x")["digest"], arm64["manifest_digest"]);
    for (platform, _, _) in PLATFORMS {
        let layer = summary_of(&summary, platform)["layer_digest"]
            .as_str()
            .unwrap();
        assert_eq!(
            layout.has_blob(layer),
            platform == "linux-aarch64",
            "skopeo fetched the layer of {platform}"
        );
    }
    let copied = layout.blob(arm64["layer_digest"].as_str().unwrap());
    assert_eq!(untar_gz(&copied)[2].bytes, stand_in("linux-aarch64", 0));

    // oras-py pulls the host build under its title; the binary in it runs.
    let own = summary_of(&summary, host);
    let pulled_dir = reg.dir("oras");
    let pulled = oras(&[
        "pull",
        "--registry",
        reg.host(),
        "--target",
        &format!("{REPO}@{}", own["manifest_digest"].as_str().unwrap()),
        "--outdir",
        pulled_dir.to_str().unwrap(),
    ])
    .await
    .last_json();
    let title = own["filename"].as_str().unwrap();
    assert_eq!(pulled["files"].as_array().unwrap().len(), 1, "{pulled}");
    let tar_gz =
        std::fs::read(pulled_dir.join(title)).expect("oras wrote the file under its title");
    assert_eq!(
        sha256_digest(&tar_gz),
        own["layer_digest"].as_str().unwrap()
    );
    let binary = untar_gz(&tar_gz).remove(2);
    let installed = reg.dir("installed").join(&binary.name);
    std::fs::write(&installed, &binary.bytes).unwrap();
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&installed, std::fs::Permissions::from_mode(binary.mode)).unwrap();
    }
    let ran = run(installed.to_str().unwrap(), &[], &[]).await;
    assert_eq!(ran.text(), "hello-worker-rbee 0.1.0 (cpu)\n");

    // The PKGBUILD is a referrer of the index (or behind the fallback tag).
    let referrers = pkgbuild_referrers(&reg, &index_digest).await;
    assert_eq!(referrers.len(), 1, "{referrers:?}");
    assert_eq!(referrers[0]["digest"], summary["pkgbuild_digest"]);
    let pkgbuild = std::fs::read(example.join("PKGBUILD")).unwrap();
    check_pkgbuild_referrer(
        &reg,
        referrers[0]["digest"].as_str().unwrap(),
        &index_digest,
        &pkgbuild,
    )
    .await;

    // `latest` is this index; the catalog index lists the worker.
    assert_eq!(
        reg.expect_manifest(REPO, "latest").await.digest,
        index_digest
    );
    let catalog = reg.catalog_document().await;
    assert_eq!(catalog["schema_version"], 1);
    let workers = catalog["workers"].as_array().unwrap();
    assert_eq!(workers.len(), 1, "{catalog}");
    let worker = &workers[0];
    assert_eq!(worker["id"], "hello-worker-rbee-cpu");
    assert_eq!(worker["repository"], REPO);
    assert_eq!(worker["latest"], VERSION);
    assert_eq!(worker["versions"], json!([VERSION]));
    assert_eq!(worker["requires_license"], false);
    reg.stop().await;
}

// ---- 2. re-push of the same release ----------------------------------------

async fn re_push_is_a_no_op(reg: UnderTest) {
    let fixture = Fixture::new(VERSION);
    let first = publish_with_library(reg.url(), &fixture, false)
        .await
        .expect("first publish");
    assert_eq!(first.status, "published");
    assert!(first.uploaded_bytes > 0);
    let tags = reg.tag_digests(REPO).await;
    let catalog = reg.tag_digests(CATALOG_REPO).await;
    let mut events = reg.subscribe();

    // The same files through the command line (which stamps another
    // `created` time: the index as first published must be kept)...
    let again = push_json(reg.url(), &fixture.args()).await;
    assert_eq!(again["status"], "unchanged", "{again}");
    assert_eq!(again["uploaded_bytes"], 0);
    assert_eq!(again["index_digest"], first.index_digest.as_str());
    assert_eq!(again["pkgbuild_digest"], json!(first.pkgbuild_digest));
    for p in &first.platforms {
        let e = summary_of(&again, &p.platform);
        assert_eq!(e["manifest_digest"], p.manifest_digest.as_str());
        assert_eq!(e["layer_digest"], p.layer_digest.as_str());
    }
    // ... and once more through the library.
    let third = publish_with_library(reg.url(), &fixture, false)
        .await
        .expect("third publish");
    assert_eq!(
        (third.status, third.uploaded_bytes),
        ("unchanged", 0),
        "{third:?}"
    );

    assert_eq!(writes(&mut events), [], "a re-push writes nothing");
    assert_eq!(reg.tag_digests(REPO).await, tags);
    assert_eq!(reg.tag_digests(CATALOG_REPO).await, catalog);
    reg.stop().await;
}

// ---- 3. different content under a published version ------------------------

async fn conflicting_re_push_is_refused_unless_forced(reg: UnderTest) {
    let fixture = Fixture::new(VERSION);
    let first = publish_with_library(reg.url(), &fixture, false)
        .await
        .expect("first publish");
    let tags = reg.tag_digests(REPO).await;
    let catalog = reg.tag_digests(CATALOG_REPO).await;
    let mut events = reg.subscribe();

    fixture.set_build("linux-aarch64", &stand_in("linux-aarch64", 1));
    let mut args = vec!["push", "--registry", reg.url()];
    let release_args = fixture.args();
    args.extend(release_args.iter().map(String::as_str));
    let refused = pusher(&args, &[]).await.expect_code(4);
    for needle in [
        "rbee/hello-worker-rbee-cpu:0.1.0",
        "already exists with different content",
        "--force",
    ] {
        assert!(
            refused.stderr.contains(needle),
            "{needle}: {}",
            refused.stderr
        );
    }
    assert_eq!(refused.stdout, "");
    assert_eq!(writes(&mut events), [], "a refused push writes nothing");
    assert_eq!(reg.tag_digests(REPO).await, tags);
    assert_eq!(reg.tag_digests(CATALOG_REPO).await, catalog);

    // --force replaces the version; unchanged platforms keep their digests.
    let mut forced_args = release_args.clone();
    forced_args.push("--force".to_owned());
    let forced = push_json(reg.url(), &forced_args).await;
    assert_eq!(forced["status"], "published");
    let new_index = forced["index_digest"].as_str().unwrap();
    assert_ne!(new_index, first.index_digest);
    assert_eq!(reg.expect_manifest(REPO, VERSION).await.digest, new_index);
    assert_eq!(reg.expect_manifest(REPO, "latest").await.digest, new_index);
    for p in &first.platforms {
        let e = summary_of(&forced, &p.platform);
        assert_eq!(
            e["layer_digest"] == p.layer_digest.as_str(),
            p.platform != "linux-aarch64",
            "{}: only the changed build differs",
            p.platform
        );
    }
    let arm64 = summary_of(&forced, "linux-aarch64")["layer_digest"]
        .as_str()
        .unwrap();
    let tar_gz = reg.blob(REPO, arm64).await;
    assert_eq!(untar_gz(&tar_gz)[2].bytes, stand_in("linux-aarch64", 1));
    let referrers = pkgbuild_referrers(&reg, new_index).await;
    assert_eq!(referrers.len(), 1, "the new index has its PKGBUILD");
    reg.stop().await;
}

/// The PKGBUILD belongs to the version: the same builds with another
/// PKGBUILD are refused like other content, and `--force` replaces the
/// attached PKGBUILD rather than adding a second one.
async fn a_different_pkgbuild_is_a_conflict_too(reg: UnderTest) {
    let fixture = Fixture::new(VERSION);
    let first = publish_with_library(reg.url(), &fixture, false)
        .await
        .expect("first publish");
    let mut events = reg.subscribe();
    let text = std::fs::read_to_string(&fixture.pkgbuild).unwrap();
    std::fs::write(&fixture.pkgbuild, text.replace("pkgrel=1", "pkgrel=2")).unwrap();
    let mut args = vec!["push", "--registry", reg.url()];
    let release_args = fixture.args();
    args.extend(release_args.iter().map(String::as_str));
    let refused = pusher(&args, &[]).await.expect_code(4);
    assert!(
        refused.stderr.contains("different PKGBUILD"),
        "{}",
        refused.stderr
    );
    assert_eq!(writes(&mut events), [], "a refused push writes nothing");

    let mut forced_args = release_args.clone();
    forced_args.push("--force".to_owned());
    let forced = push_json(reg.url(), &forced_args).await;
    assert_eq!(
        forced["index_digest"],
        first.index_digest.as_str(),
        "the builds did not change"
    );
    let referrers = pkgbuild_referrers(&reg, &first.index_digest).await;
    assert_eq!(
        referrers.len(),
        1,
        "the PKGBUILD was replaced, not added: {referrers:?}"
    );
    assert_eq!(referrers[0]["digest"], forced["pkgbuild_digest"]);
    assert_ne!(
        Some(referrers[0]["digest"].as_str().unwrap()),
        first.pkgbuild_digest.as_deref()
    );
    reg.stop().await;
}

// ---- 4. `latest` ----------------------------------------------------------------

async fn latest_follows_the_highest_stable_version(reg: UnderTest) {
    let mut indexes = std::collections::BTreeMap::new();
    for (version, becomes_latest) in [
        ("0.1.0", true),
        ("0.2.0", true),
        ("0.1.1", false),
        ("0.3.0-rc.1", false),
    ] {
        let summary = publish_with_library(reg.url(), &Fixture::new(version), false)
            .await
            .unwrap_or_else(|e| panic!("publishing {version}: {e}"));
        assert_eq!(summary.latest, becomes_latest, "{version}");
        indexes.insert(version, summary.index_digest);
        let latest = if becomes_latest { version } else { "0.2.0" };
        assert_eq!(
            reg.expect_manifest(REPO, "latest").await.digest,
            indexes[latest],
            "after {version}, latest is {latest}"
        );
    }
    let tags: BTreeSet<String> = reg
        .tags(REPO)
        .await
        .into_iter()
        .filter(|t| !t.starts_with("sha256-"))
        .collect();
    let expected: BTreeSet<String> = ["0.1.0", "0.1.1", "0.2.0", "0.3.0-rc.1", "latest"]
        .map(String::from)
        .into();
    assert_eq!(tags, expected);
    for (version, index) in &indexes {
        assert_eq!(&reg.expect_manifest(REPO, version).await.digest, index);
    }
    let catalog = reg.catalog_document().await;
    let worker = &catalog["workers"][0];
    assert_eq!(worker["latest"], "0.2.0");
    assert_eq!(
        worker["versions"],
        json!(["0.3.0-rc.1", "0.2.0", "0.1.1", "0.1.0"])
    );
    reg.stop().await;
}
