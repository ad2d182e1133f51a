//! Staged, multi-runner publishing (issue 15), played the way CI runs it:
//! three separate `rbee-pusher push --stage` processes, one per platform
//! (one of them through a registry that loses an upload's answer once), a
//! fourth process `rbee-pusher release`, then `rbee-worker install` on the
//! result. A release with a platform missing fails and tags nothing; a
//! reader never sees the version before the release; reruns are no-ops.

mod common;

use std::path::Path;

use axum::http::Method;
use common::faults::{Fault, FaultProxy, Rule};
use common::install::*;
use common::publishing::*;

const WORKER: &str = "hello-worker-rbee-cpu";
/// The three platforms of these releases: the host's, whose build is the
/// real example binary, and two stand-ins.
fn platforms() -> Vec<&'static str> {
    let host = host_platform().expect("the tests run on a platform the example worker lists");
    let mut p = vec![host];
    p.extend(
        ["linux-x86_64", "linux-aarch64", "macos-aarch64"]
            .into_iter()
            .filter(|p| *p != host)
            .take(2),
    );
    p
}

/// A release at `version` declaring [`platforms`], with the real example
/// binary as the host build.
async fn fixture(version: &str) -> Fixture {
    let bins = binaries().await;
    let real = std::fs::read(&bins.hello_worker).unwrap();
    let fixture = release_with_host_build(version, &real);
    let declared = platforms();
    fixture.edit_metadata(|m| m["platforms"] = serde_json::json!(declared));
    fixture
}

/// `rbee-pusher push --stage` of one platform of `fixture`.
async fn stage(registry: &str, fixture: &Fixture, platform: &str) -> PusherRun {
    let build = format!("{platform}={}", fixture.build(platform).display());
    let (metadata, pkgbuild, license, readme) = (
        path_arg(&fixture.metadata),
        path_arg(&fixture.pkgbuild),
        path_arg(&fixture.license),
        path_arg(&fixture.readme),
    );
    pusher(
        &[
            "push",
            "--stage",
            "--registry",
            registry,
            "--metadata",
            &metadata,
            "--pkgbuild",
            &pkgbuild,
            "--license",
            &license,
            "--readme",
            &readme,
            "--platform",
            &build,
            "--json",
        ],
        &[],
    )
    .await
}

async fn release(registry: &str, version: &str, extra: &[&str]) -> PusherRun {
    let mut args = vec!["release", "--registry", registry, WORKER, version, "--json"];
    args.extend_from_slice(extra);
    pusher(&args, &[]).await
}

async fn status(url: &str) -> u16 {
    reqwest::Client::builder()
        .no_proxy()
        .build()
        .unwrap()
        .get(url)
        .header("accept", "application/vnd.oci.image.index.v1+json")
        .send()
        .await
        .unwrap()
        .status()
        .as_u16()
}

async fn tags(server: &CatalogServer) -> Vec<String> {
    let body: serde_json::Value = reqwest::Client::builder()
        .no_proxy()
        .build()
        .unwrap()
        .get(format!("{}/v2/rbee/{WORKER}/tags/list", server.url))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap_or_default();
    body["tags"]
        .as_array()
        .map(|t| {
            t.iter()
                .filter_map(|t| t.as_str().map(str::to_owned))
                .collect()
        })
        .unwrap_or_default()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn three_runners_stage_a_fourth_releases_and_the_release_installs() {
    let server = CatalogServer::start().await;
    let fixture = fixture("0.2.0").await;
    let [first, second, third] = <[&str; 3]>::try_from(platforms()).unwrap();
    // The third runner's registry loses the answer to its first blob
    // upload once: the pusher must retry it, not fail or duplicate.
    let flaky = FaultProxy::start(
        &server.url,
        vec![Rule {
            method: Method::PUT,
            path_part: "/blobs/uploads/",
            nth: 1,
            fault: Fault::LoseAnswer,
        }],
    )
    .await;

    let (a, b, c) = tokio::join!(
        stage(&server.url, &fixture, first),
        stage(&server.url, &fixture, second),
        stage(&flaky.url, &fixture, third),
    );
    for run in [a, b, c] {
        assert_eq!(run.expect_code(0).json()["status"], "staged");
    }
    assert!(
        flaky
            .seen()
            .iter()
            .any(|s| s.fault == Some(Fault::LoseAnswer)),
        "the fault was injected"
    );
    // Staged is invisible: no tag, no catalog entry.
    assert!(tags(&server).await.is_empty(), "{:?}", tags(&server).await);
    assert_eq!(
        status(&format!("{}/v2/rbee/{WORKER}/manifests/0.2.0", server.url)).await,
        404
    );
    server.running.state.catalog.invalidate_all();
    assert_eq!(
        status(&format!("{}/v1/workers/{WORKER}/versions", server.url)).await,
        404
    );

    // Re-running a stage step writes nothing new.
    let again = stage(&server.url, &fixture, first).await.expect_code(0);
    assert_eq!(again.json()["status"], "already-staged");

    let released = release(&server.url, "0.2.0", &[])
        .await
        .expect_code(0)
        .json();
    assert_eq!(released["status"], "released");
    let listed: Vec<&str> = released["platforms"]
        .as_object()
        .unwrap()
        .keys()
        .map(String::as_str)
        .collect();
    let mut expected = platforms();
    expected.sort();
    assert_eq!(listed, expected);
    assert_eq!(released["latest"], true);
    // Re-running the release is a no-op, and so is a late stage rerun.
    let rerun = release(&server.url, "0.2.0", &[])
        .await
        .expect_code(0)
        .json();
    assert_eq!(rerun["status"], "unchanged");
    assert_eq!(rerun["index_digest"], released["index_digest"]);
    let late = stage(&server.url, &fixture, second).await.expect_code(0);
    assert_eq!(late.json()["status"], "released");

    // The catalog sees the whole version, its PKGBUILD included.
    server.running.state.catalog.invalidate_all();
    let pkgbuild = reqwest::Client::builder()
        .no_proxy()
        .build()
        .unwrap()
        .get(format!("{}/workers/{WORKER}/PKGBUILD", server.url))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(pkgbuild.contains("pkgver=0.2.0"), "{pkgbuild}");

    // rbee-worker installs it, and it runs.
    let bins = binaries().await;
    let dest = server.path("workers");
    let out = common::run_expecting(
        true,
        bins.rbee_worker.to_str().unwrap(),
        &[
            "--catalog",
            &server.url,
            "--dest",
            dest.to_str().unwrap(),
            "install",
            &format!("{WORKER}@^0.2"),
        ],
        &[],
    )
    .await;
    drop(out);
    let installed = dest.join(WORKER).join("0.2.0").join("hello-worker-rbee");
    let printed = run_installed(Path::new(&installed)).await;
    assert!(printed.contains("hello-worker-rbee"), "{printed}");
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn release_with_a_platform_missing_fails_and_tags_nothing() {
    let server = CatalogServer::start().await;
    let fixture = fixture("0.3.0").await;
    let declared = platforms();
    for platform in &declared[..2] {
        stage(&server.url, &fixture, platform).await.expect_code(0);
    }
    let refused = release(&server.url, "0.3.0", &[]).await.expect_code(7);
    assert!(
        refused.stderr.contains(declared[2]) && refused.stderr.contains("not staged"),
        "{}",
        refused.stderr
    );
    assert!(tags(&server).await.is_empty(), "{:?}", tags(&server).await);
    // Nothing staged at all is refused the same way.
    release(&server.url, "9.9.9", &[]).await.expect_code(7);
    // Once the last runner stages, the release goes through.
    stage(&server.url, &fixture, declared[2])
        .await
        .expect_code(0);
    let released = release(&server.url, "0.3.0", &[])
        .await
        .expect_code(0)
        .json();
    assert_eq!(released["status"], "released");
    assert!(tags(&server).await.contains(&"0.3.0".to_owned()));
    server.stop().await;
}

async fn versions(server: &CatalogServer, query: &str) -> serde_json::Value {
    server.running.state.catalog.invalidate_all();
    reqwest::Client::builder()
        .no_proxy()
        .build()
        .unwrap()
        .get(format!(
            "{}/v1/workers/{WORKER}/versions{query}",
            server.url
        ))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap()
}

fn listed(body: &serde_json::Value) -> Vec<String> {
    body["versions"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v["version"].as_str().unwrap().to_owned())
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn yank_hides_a_version_from_latest_and_listings_and_unyank_restores_it() {
    let server = CatalogServer::start().await;
    let old = Fixture::new("0.1.0");
    server.publish(&old).await;
    let new = Fixture::new("0.2.0");
    server.publish(&new).await;
    assert_eq!(versions(&server, "").await["latest"], "0.2.0");

    let yank = |args: Vec<&'static str>| {
        let url = server.url.clone();
        async move {
            let mut all = vec![args[0], "--registry", &url, WORKER, "0.2.0", "--json"];
            all.extend_from_slice(&args[1..]);
            pusher(&all, &[]).await
        }
    };
    let done = yank(vec!["yank", "--reason", "segfaults on AVX-512"]).await;
    assert_eq!(done.expect_code(0).json()["status"], "yanked");
    let again = yank(vec!["yank", "--reason", "segfaults on AVX-512"]).await;
    assert_eq!(again.expect_code(0).json()["status"], "unchanged");

    let body = versions(&server, "").await;
    assert_eq!(listed(&body), ["0.1.0"]);
    assert_eq!(body["latest"], "0.1.0");
    let all = versions(&server, "?include_yanked=true").await;
    assert_eq!(listed(&all), ["0.2.0", "0.1.0"]);
    assert_eq!(all["versions"][0]["yanked"], true);
    assert_eq!(all["versions"][0]["yank_reason"], "segfaults on AVX-512");

    // The exact version stays downloadable; a range never picks it.
    let host = host_platform().unwrap();
    let exact = status(&format!(
        "{}/v1/workers/{WORKER}/0.2.0/download?platform={host}",
        server.url
    ))
    .await;
    assert_eq!(exact, 200);
    let bins = binaries().await;
    let dest = server.path("workers");
    common::run_expecting(
        false,
        bins.rbee_worker.to_str().unwrap(),
        &[
            "--catalog",
            &server.url,
            "--dest",
            dest.to_str().unwrap(),
            "install",
            &format!("{WORKER}@^0.2"),
        ],
        &[],
    )
    .await;

    let undone = yank(vec!["unyank", "--reason", "fixed"]).await;
    assert_eq!(undone.expect_code(0).json()["status"], "unyanked");
    let body = versions(&server, "").await;
    assert_eq!(listed(&body), ["0.2.0", "0.1.0"]);
    assert_eq!(body["latest"], "0.2.0");
    server.stop().await;
}
