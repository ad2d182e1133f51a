//! Mirroring a release as `rbee-pusher` publishes it (zstd layers of the
//! rbee layer type, the metadata config, `artifactType` on index and
//! manifests) with skopeo, Debian's 1.9.3 included: `copy --all
//! --preserve-digests` to another repository and into an OCI layout, the
//! index and every platform manifest keeping their bytes and digests.
//! skopeo 1.9.3 refused releases whose index entries carried
//! `artifactType` (it loses that field when it copies an index); see
//! docs/operations.md, "Mirroring a release".

mod common;

use std::time::Duration;

use common::publishing::Fixture;
use common::*;
use rbee_pusher::auth::Credentials;
use rbee_pusher::client::{RegistryClient, RetryPolicy};
use rbee_pusher::progress::Reporter;
use rbee_pusher::publish::{Compression, PublishOptions, PublishSummary, publish};
use rbee_pusher::release::Release;
use serde_json::Value;

const REPO: &str = "rbee/hello-worker-rbee-cpu";

/// Publishes the example release at 0.1.0 as the pusher does by default.
async fn publish_default(reg: &TestRegistry, fixture: &Fixture) -> PublishSummary {
    let client = RegistryClient::new(
        reqwest::Url::parse(&reg.url).unwrap(),
        Credentials::anonymous(),
        RetryPolicy {
            attempts: 2,
            base_delay: Duration::from_millis(50),
            max_delay: Duration::from_secs(1),
        },
    )
    .unwrap();
    let opts = PublishOptions {
        namespace: None,
        catalog_repository: "rbee/catalog".into(),
        force: false,
        dry_run: false,
        compression: Compression::default(),
        created: "2026-01-01T00:00:00Z".into(),
    };
    let release = Release::load(&fixture.files()).unwrap();
    publish(&client, &release, &opts, &Reporter::new(true))
        .await
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn skopeo_mirrors_a_published_release_with_its_digests() {
    if !require_tool("skopeo") {
        return;
    }
    let reg = TestRegistry::start().await;
    let fixture = Fixture::new("0.1.0");
    let summary = publish_default(&reg, &fixture).await;
    assert!(summary.platforms.len() >= 2, "a multi-platform release");
    let original = reg.get_manifest(REPO, "0.1.0").await.bytes().await.unwrap();
    let index: Value = serde_json::from_slice(&original).unwrap();
    assert_eq!(index["artifactType"], "application/vnd.rbee.worker.v1");
    let source = format!("docker://{}/{REPO}:0.1.0", reg.host);

    // Registry to registry, another repository.
    let mirror = format!("docker://{}/mirror/hello-worker-rbee-cpu:0.1.0", reg.host);
    skopeo(
        &reg,
        &[
            "copy",
            "--all",
            "--preserve-digests",
            "--src-tls-verify=false",
            "--dest-tls-verify=false",
            &source,
            &mirror,
        ],
    )
    .await;
    let copied = reg
        .get_manifest("mirror/hello-worker-rbee-cpu", "0.1.0")
        .await;
    assert_eq!(
        header(&copied, "docker-content-digest"),
        summary.index_digest
    );
    assert_eq!(
        copied.bytes().await.unwrap(),
        original,
        "the index, byte for byte"
    );
    for platform in &summary.platforms {
        let resp = reg
            .get_manifest("mirror/hello-worker-rbee-cpu", &platform.manifest_digest)
            .await;
        assert_eq!(resp.status(), 200, "{} is mirrored", platform.platform);
        let manifest: Value = resp.json().await.unwrap();
        assert_eq!(manifest["artifactType"], "application/vnd.rbee.worker.v1");
        assert_eq!(
            manifest["layers"][0]["digest"],
            platform.layer_digest.as_str()
        );
    }

    // Into an OCI layout (an air-gapped copy).
    let out = reg.dir("layout");
    skopeo(
        &reg,
        &[
            "copy",
            "--all",
            "--preserve-digests",
            "--src-tls-verify=false",
            &source,
            &format!("oci:{}:0.1.0", out.display()),
        ],
    )
    .await;
    let layout = Layout::open(&out);
    assert_eq!(
        layout.descriptor("0.1.0")["digest"],
        summary.index_digest.as_str()
    );
    assert_eq!(layout.blob(&summary.index_digest), original);
    for platform in &summary.platforms {
        assert!(
            layout.has_blob(&platform.layer_digest),
            "{}",
            platform.platform
        );
    }
}
