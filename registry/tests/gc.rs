//! Garbage collection: what it removes, what a dry run reports, and that
//! pushes running during a collection lose nothing they were told was
//! stored; each test on the filesystem (`fs::`) and on S3 (`s3::`, a real
//! `s3s-fs`, which must be installed).

mod common;

use std::time::Duration;

use common::*;
use rbee_registry::gc::GcOptions;
use reqwest::StatusCode;

/// Runs each test on both backends: `fs::NAME` on a data directory,
/// `s3::NAME` on a bucket of its own.
macro_rules! on_both_backends {
    ($($name:ident),* $(,)?) => {
        mod fs {
            $(
                #[tokio::test]
                async fn $name() {
                    super::$name(super::TestRegistry::start().await).await;
                }
            )*
        }
        mod s3 {
            $(
                #[tokio::test]
                async fn $name() {
                    super::$name(super::TestRegistry::start_on_s3().await).await;
                }
            )*
        }
    };
}

on_both_backends!(
    a_dry_run_removes_nothing_and_a_run_frees_what_it_listed,
    recent_garbage_is_kept_within_its_grace,
    pushes_during_collections_lose_nothing_acknowledged,
);

/// No grace at all: everything unreferenced is garbage at once, the
/// hardest setting for pushes in flight.
fn eager(dry_run: bool) -> GcOptions {
    GcOptions {
        dry_run,
        blob_grace: Duration::ZERO,
        untagged_grace: Duration::ZERO,
    }
}

async fn a_dry_run_removes_nothing_and_a_run_frees_what_it_listed(reg: TestRegistry) {
    let (_, kept) = reg.push_image("rbee/w", "1.0.0", b"kept layer").await;
    // An untagged manifest over a layer of its own, and a blob nothing names.
    let (untagged_body, untagged) = reg.push_image("rbee/w", "gone", b"dropped layer").await;
    let resp = reg
        .delete("/v2/rbee/w/manifests/gone")
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::ACCEPTED);
    let orphan = reg.push_blob("rbee/o", b"an orphan blob").await;
    let registry = reg.server.registry.clone();
    reg.let_writes_age().await;

    let files_before = reg.files_in("");
    let dry = registry.collect_garbage(&eager(true)).await.unwrap();
    assert!(dry.dry_run);
    assert_eq!(reg.files_in(""), files_before, "a dry run removes nothing");
    assert_eq!(dry.manifests, [format!("rbee/w@{untagged}")]);
    let freed: Vec<String> = dry.blobs.iter().map(|(d, _)| d.to_string()).collect();
    for digest in [&untagged, &orphan, &sha256(b"dropped layer")] {
        assert!(freed.contains(digest), "{digest} listed in {freed:?}");
    }
    let expected_bytes =
        (untagged_body.len() + b"an orphan blob".len() + b"dropped layer".len()) as u64;
    assert_eq!(dry.bytes_freed, expected_bytes);

    let run = registry.collect_garbage(&eager(false)).await.unwrap();
    assert!(!run.dry_run);
    assert_eq!(run.manifests, dry.manifests);
    assert_eq!(
        run.bytes_freed, expected_bytes,
        "the bytes freed are reported"
    );
    for digest in [&untagged, &orphan, &sha256(b"dropped layer")] {
        assert!(!reg.blob_path(digest).exists(), "{digest} removed");
    }
    let resp = reg
        .get(&format!("/v2/rbee/w/manifests/{untagged}"))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::NOT_FOUND);
    // What a tag reaches stays, whole.
    assert_pulls(&reg, "rbee/w", "1.0.0", &kept, b"kept layer").await;
    // A second run finds nothing more.
    let again = registry.collect_garbage(&eager(false)).await.unwrap();
    assert_eq!(again.bytes_freed, 0, "{again:?}");
    reg.stop().await;
}

async fn recent_garbage_is_kept_within_its_grace(reg: TestRegistry) {
    reg.push_blob("rbee/o", b"young orphan").await;
    let report = reg
        .server
        .registry
        .collect_garbage(&GcOptions::default())
        .await
        .unwrap();
    assert!(
        report.blobs.is_empty() && report.links.is_empty(),
        "{report:?}"
    );
    assert!(reg.blob_path(&sha256(b"young orphan")).exists());
    reg.stop().await;
}

/// Pushes config, layer and a manifest tagged `tag`; `Some(digest)` when
/// every step was acknowledged.
async fn try_push(reg: &TestRegistry, repo: &str, tag: &str, layer: &[u8]) -> Option<String> {
    let config = br#"{"architecture":"amd64","os":"linux"}"#;
    for blob in [&config[..], layer] {
        let resp = reg
            .post(&format!(
                "/v2/{repo}/blobs/uploads/?digest={}",
                sha256(blob)
            ))
            .body(blob.to_vec())
            .send()
            .await
            .unwrap();
        if resp.status() != StatusCode::CREATED {
            return None;
        }
    }
    let body = json_bytes(&oci_manifest(
        descriptor("application/vnd.oci.image.config.v1+json", config),
        vec![descriptor(OCI_LAYER, layer)],
    ));
    let resp = reg.put_manifest(repo, tag, OCI_MANIFEST, &body).await;
    (resp.status() == StatusCode::CREATED).then(|| sha256(&body))
}

async fn assert_pulls(reg: &TestRegistry, repo: &str, tag: &str, digest: &str, layer: &[u8]) {
    let resp = reg
        .get(&format!("/v2/{repo}/manifests/{tag}"))
        .header("accept", OCI_MANIFEST)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::OK, "{repo}:{tag}");
    let body = resp.bytes().await.unwrap();
    assert_eq!(sha256(&body), digest, "{repo}:{tag}");
    let manifest: serde_json::Value = serde_json::from_slice(&body).unwrap();
    let config = manifest["config"]["digest"].as_str().unwrap();
    let resp = reg
        .get(&format!("/v2/{repo}/blobs/{config}"))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::OK, "{repo}:{tag} config");
    assert_eq!(
        reg.blob_bytes(repo, &sha256(layer)).await,
        layer,
        "{repo}:{tag} layer"
    );
}

async fn pushes_during_collections_lose_nothing_acknowledged(reg: TestRegistry) {
    let registry = reg.server.registry.clone();
    // Each round: four pushes (two re-pushing content an earlier round
    // left as garbage) racing one collection with no grace at all.
    let acknowledged =
        push_while_collecting(&reg, &registry, "rbee/w", 12, |r| r, |r| r % 2 == 1).await;
    assert!(
        acknowledged.len() >= 24,
        "most pushes get through: {}",
        acknowledged.len()
    );
    registry.collect_garbage(&eager(false)).await.unwrap();
    for (repo, tag, digest, layer) in &acknowledged {
        assert_pulls(&reg, repo, tag, digest, layer).await;
    }
    reg.stop().await;
}

/// A push acknowledged: repository, tag, manifest digest, layer.
type Pushed = (String, String, String, Vec<u8>);

/// `rounds` rounds of four pushes into `{repo}0` and `{repo}1`, each round
/// racing one collection by `collector` with no grace. The layers of a
/// round are named by `content(round)`, so rounds that share it revive
/// what an earlier one left as garbage; after a round where
/// `untag(round)`, the last acknowledged push is untagged, so later rounds
/// have garbage. Returns the pushes acknowledged and still tagged.
async fn push_while_collecting(
    reg: &TestRegistry,
    collector: &std::sync::Arc<rbee_registry::Registry>,
    repo: &str,
    rounds: u32,
    content: impl Fn(u32) -> u32,
    untag: impl Fn(u32) -> bool,
) -> Vec<Pushed> {
    let mut acknowledged = Vec::new();
    for round in 0..rounds {
        let collect = tokio::spawn({
            let collector = collector.clone();
            async move { collector.collect_garbage(&eager(false)).await }
        });
        let pushes = (0..4).map(|i| {
            let layer = format!("layer {} of round {}", i % 2, content(round)).into_bytes();
            let repo = format!("{repo}{}", i % 2);
            let tag = format!("r{round}-{i}");
            async move {
                let pushed = try_push(reg, &repo, &tag, &layer).await;
                pushed.map(|digest| (repo, tag, digest, layer))
            }
        });
        let results = futures_util::future::join_all(pushes).await;
        collect.await.unwrap().unwrap();
        acknowledged.extend(results.into_iter().flatten());
        if untag(round)
            && let Some((repo, tag, ..)) = acknowledged.pop()
        {
            let resp = reg
                .delete(&format!("/v2/{repo}/manifests/{tag}"))
                .send()
                .await
                .unwrap();
            assert_eq!(resp.status(), StatusCode::ACCEPTED);
        }
    }
    acknowledged
}

/// An upload nobody finishes leaves nothing in the bucket once it has
/// expired: the purge aborts its multipart upload (no part stays on the
/// S3 server) and deletes its record and its tail.
#[tokio::test]
async fn s3_abandoned_uploads_leave_no_parts_once_purged() {
    let reg = TestRegistry::start_on_s3_with(|c| c.upload_ttl = Duration::ZERO).await;
    let session = reg.start_upload("rbee/w").await;
    // One whole part (5 MiB here) and a tail.
    let data = pseudo_random((7 << 20) + 5, 3);
    let resp = reg
        .patch(&session)
        .header("content-range", format!("0-{}", data.len() - 1))
        .body(data)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::ACCEPTED);
    assert!(
        !reg.multipart_leftovers().is_empty(),
        "a part was uploaded into a multipart upload"
    );
    assert!(
        reg.files_in("uploads").len() >= 2,
        "the session's record and tail: {:?}",
        reg.files_in("uploads")
    );

    let purged = reg.server.registry.purge_expired_uploads().await.unwrap();
    assert_eq!(purged, 1);
    assert_eq!(reg.multipart_leftovers(), Vec::<String>::new());
    assert_eq!(reg.files_in("uploads"), Vec::<std::path::PathBuf>::new());
    assert_eq!(reg.files_in("_data"), Vec::<std::path::PathBuf>::new());
    let resp = reg.get(&session).send().await.unwrap();
    expect_error(resp, 404, "BLOB_UPLOAD_UNKNOWN").await;
    reg.stop().await;
}

/// As on a multi-node deployment: the collector is another process's
/// registry on the same bucket (it shares no lock with the node the
/// pushes go to), and runs with no grace while pushes revive content an
/// earlier round left as garbage; every push acknowledged still pulls.
#[tokio::test]
async fn s3_pushes_through_another_node_during_collections_lose_nothing_acknowledged() {
    let reg = TestRegistry::start_on_s3().await;
    let mut config = open_config(&reg.data_dir);
    config.s3 = Some(reg.s3.as_ref().unwrap().options(S3_PREFIX));
    let collector = rbee_registry::Registry::open_storage(config)
        .await
        .expect("a second registry on the bucket");
    // Rounds share content: what one round untags, the next revives.
    let acknowledged =
        push_while_collecting(&reg, &collector, "rbee/n", 8, |r| r / 2, |r| r % 2 == 0).await;
    assert!(
        acknowledged.len() >= 12,
        "most pushes get through: {}",
        acknowledged.len()
    );
    collector.collect_garbage(&eager(false)).await.unwrap();
    for (repo, tag, digest, layer) in &acknowledged {
        assert_pulls(&reg, repo, tag, digest, layer).await;
    }
    reg.stop().await;
}
