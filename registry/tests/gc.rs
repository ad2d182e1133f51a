//! Garbage collection: what it removes, what a dry run reports, and that
//! pushes running during a collection lose nothing they were told was
//! stored.

mod common;

use std::time::Duration;

use common::*;
use rbee_registry::gc::GcOptions;
use reqwest::StatusCode;

/// No grace at all: everything unreferenced is garbage at once, the
/// hardest setting for pushes in flight.
fn eager(dry_run: bool) -> GcOptions {
    GcOptions {
        dry_run,
        blob_grace: Duration::ZERO,
        untagged_grace: Duration::ZERO,
    }
}

#[tokio::test]
async fn a_dry_run_removes_nothing_and_a_run_frees_what_it_listed() {
    let reg = TestRegistry::start().await;
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

#[tokio::test]
async fn recent_garbage_is_kept_within_its_grace() {
    let reg = TestRegistry::start().await;
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

#[tokio::test]
async fn pushes_during_collections_lose_nothing_acknowledged() {
    let reg = TestRegistry::start().await;
    let registry = reg.server.registry.clone();
    let mut acknowledged = Vec::new();
    for round in 0..12 {
        // Each round: four pushes (two re-pushing content an earlier round
        // left as garbage) racing one collection with no grace at all.
        let collect = tokio::spawn({
            let registry = registry.clone();
            async move { registry.collect_garbage(&eager(false)).await }
        });
        let pushes = (0..4).map(|i| {
            let layer = format!("layer {} of round {round}", i % 2).into_bytes();
            let repo = format!("rbee/w{}", i % 2);
            let tag = format!("r{round}-{i}");
            let reg = &reg;
            async move {
                let pushed = try_push(reg, &repo, &tag, &layer).await;
                pushed.map(|digest| (repo, tag, digest, layer))
            }
        });
        let results = futures_util::future::join_all(pushes).await;
        collect.await.unwrap().unwrap();
        acknowledged.extend(results.into_iter().flatten());
        // Untag half of what was pushed, so later rounds have garbage.
        if round % 2 == 1
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
