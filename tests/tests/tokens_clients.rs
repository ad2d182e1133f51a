//! Real clients against the token service and the embedded registry's
//! access gate, with keys from the catalog's store (SQLite and PostgreSQL)
//! and no development switch: `rbee-pusher` pushes with a publisher key
//! into its namespace only; skopeo and oras-py pull a premium worker with
//! the license key as password, and are refused without one or with a
//! license for another worker. Refused clients are told not to retry
//! (`skopeo --retry-times 0`, `RBEE_PUSHER_ATTEMPTS=1`, oras-py through
//! `oras_client.py pull --no-retry`), so a refusal costs one round trip,
//! not a backoff.

mod common;

use std::path::Path;

use common::catalog::other_worker;
use common::publishing::{Fixture, pusher};
use common::*;
use rbee_catalog::{CatalogConfig, RunningCatalog};
use rbee_store::testing::TestDatabase;
use rbee_store::{Grant, NewLicense, NewPublisherKey};
use serde_json::Value;

const PREMIUM: &str = "premium-worker-rbee-cuda";
const OTHER: &str = "other-worker-rbee-cpu";

struct Setup {
    catalog: RunningCatalog,
    /// `127.0.0.1:PORT`.
    host: String,
    publisher_key: String,
    license: String,
    other_license: String,
    scratch: tempfile::TempDir,
    _data: tempfile::TempDir,
}

/// A catalog with its embedded registry, as `serve` runs it (tokens
/// required), on `db`, and keys from its store.
async fn setup(db: &TestDatabase) -> Setup {
    let data = tempfile::tempdir().unwrap();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let mut config = CatalogConfig::new(data.path());
    config.database_url = Some(db.url().to_owned());
    let catalog = rbee_catalog::start(config, listener).await.unwrap();
    let store = &catalog.state.store;
    let (_, publisher_key) = store
        .create_publisher_key(
            "test",
            NewPublisherKey {
                owner: "ci".into(),
                // Its namespace, and the catalog index (`rbee/catalog`)
                // that every release updates.
                grants: vec![
                    Grant::Namespace("rbee-premium".into()),
                    Grant::Worker("catalog".into()),
                ],
            },
        )
        .await
        .unwrap();
    let license = |worker: &str| NewLicense {
        owner: "customer".into(),
        grants: vec![Grant::Worker(worker.into())],
        expires_at: None,
        perpetual_fallback: false,
    };
    let (_, license_key) = store
        .create_license("test", license(PREMIUM))
        .await
        .unwrap();
    let (_, other_key) = store.create_license("test", license(OTHER)).await.unwrap();
    Setup {
        host: catalog.addr.to_string(),
        catalog,
        publisher_key: publisher_key.expose().to_owned(),
        license: license_key.expose().to_owned(),
        other_license: other_key.expose().to_owned(),
        scratch: tempfile::tempdir().unwrap(),
        _data: data,
    }
}

/// Pushes a worker with `rbee-pusher` and `password` (if any) as the
/// registry password.
async fn push(s: &Setup, fixture: &Fixture, namespace: &str, password: Option<&str>) -> i32 {
    let url = s.catalog.url();
    let mut args = vec!["push", "--registry", &url, "--namespace", namespace];
    let release = fixture.args();
    args.extend(release.iter().map(String::as_str));
    // A refused push fails on its first attempt instead of backing off.
    let mut env = vec![("RBEE_PUSHER_ATTEMPTS", "1")];
    env.extend(password.map(|p| ("RBEE_PUSHER_PASSWORD", p)));
    pusher(&args, &env).await.code
}

async fn publish_premium(s: &Setup) -> Fixture {
    let (fixture, _) = other_worker(PREMIUM, "1.0.0", true);
    assert_eq!(
        push(s, &fixture, "rbee-premium", Some(&s.publisher_key)).await,
        0
    );
    fixture
}

rbee_store::database_test!(async fn a_publisher_key_pushes_into_its_namespace_only(db) {
    let s = setup(db).await;
    publish_premium(&s).await;
    let manifest = format!(
        "{}/v2/rbee-premium/{PREMIUM}/manifests/1.0.0",
        s.catalog.url()
    );
    // Pushed: the manifest is there (read with the admin's view: a token
    // is needed, so ask the service with the publisher key).
    let token: serde_json::Value = reqwest::Client::new()
        .get(format!(
            "{}/token?scope=repository:rbee-premium/{PREMIUM}:pull",
            s.catalog.url()
        ))
        .basic_auth("ci", Some(&s.publisher_key))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let resp = reqwest::Client::new()
        .head(&manifest)
        .header("accept", "application/vnd.oci.image.index.v1+json")
        .bearer_auth(token["token"].as_str().unwrap())
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);

    // Not into another namespace, and not without a key.
    let (free, _) = other_worker(OTHER, "1.0.0", true);
    assert_ne!(push(&s, &free, "rbee", Some(&s.publisher_key)).await, 0);
    assert_ne!(push(&s, &free, "rbee", None).await, 0);
    assert_ne!(push(&s, &free, "rbee", Some("rbee_pub_not-a-key")).await, 0);
    let resp = reqwest::get(format!("{}/v2/rbee/{OTHER}/tags/list", s.catalog.url()))
        .await
        .unwrap();
    assert_eq!(resp.status(), 404, "nothing was pushed to rbee/{OTHER}");
    s.catalog.stop().await.unwrap();
});

rbee_store::database_test!(async fn skopeo_pulls_a_premium_worker_with_its_license_only(db) {
    if !require_tool("skopeo") {
        return;
    }
    let s = setup(db).await;
    publish_premium(&s).await;
    let remote = format!("docker://{}/rbee-premium/{PREMIUM}:1.0.0", s.host);
    let copy = |creds: Option<String>, out: &str| {
        let dest = format!("oci:{}:1.0.0", s.scratch.path().join(out).display());
        let mut args = vec![
            "copy".to_owned(),
            "--all".into(),
            "--src-tls-verify=false".into(),
            // A refusal is final: no retries with backoff.
            "--retry-times".into(),
            "0".into(),
        ];
        if let Some(creds) = creds {
            args.push("--src-creds".into());
            args.push(creds);
        }
        args.push(remote.clone());
        args.push(dest);
        args
    };
    let run = |success: bool, args: Vec<String>| {
        let scratch = s.scratch.path().to_owned();
        async move {
            let args: Vec<&str> = args.iter().map(String::as_str).collect();
            skopeo_in(success, &scratch, &args).await
        }
    };
    run(true, copy(Some(format!("any:{}", s.license)), "licensed")).await;
    let layout = Layout::open(&s.scratch.path().join("licensed"));
    assert!(!layout.descriptor("1.0.0")["digest"].is_null());

    let refused = run(false, copy(None, "anonymous")).await;
    let text = refused.stderr.to_lowercase();
    assert!(
        text.contains("unauthorized") || text.contains("401"),
        "{text}"
    );
    run(
        false,
        copy(Some(format!("any:{}", s.other_license)), "other"),
    )
    .await;
    run(false, copy(Some("any:rbee_lic_not-a-key".into()), "bogus")).await;
    s.catalog.stop().await.unwrap();
});

/// The index of the premium worker, read with a token for the license.
async fn premium_index(s: &Setup) -> Value {
    let http = reqwest::Client::builder().no_proxy().build().unwrap();
    let token: Value = http
        .get(format!(
            "{}/token?scope=repository:rbee-premium/{PREMIUM}:pull",
            s.catalog.url()
        ))
        .basic_auth("any", Some(&s.license))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    http.get(format!(
        "{}/v2/rbee-premium/{PREMIUM}/manifests/1.0.0",
        s.catalog.url()
    ))
    .header("accept", OCI_INDEX)
    .bearer_auth(token["token"].as_str().unwrap())
    .send()
    .await
    .unwrap()
    .json()
    .await
    .unwrap()
}

/// Runs oras-py's pull of `target` into `out` with `password` (if any) as
/// the password of user `any`.
async fn oras_pull(
    success: bool,
    s: &Setup,
    target: &str,
    out: &Path,
    password: Option<&str>,
) -> Output {
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("scripts/oras_client.py");
    let target = format!("rbee-premium/{PREMIUM}@{target}");
    let mut args = vec![
        script.to_str().unwrap(),
        "pull",
        "--registry",
        &s.host,
        "--target",
        &target,
        "--outdir",
        out.to_str().unwrap(),
    ];
    if !success {
        // oras-py retries a refusal five times with 131 s of backoff in
        // all; a refusal is final here.
        args.push("--no-retry");
    }
    let env: Vec<(&str, &Path)> = password
        .map(|p| vec![("ORAS_PASSWORD", Path::new(p))])
        .unwrap_or_default();
    run_expecting(success, "python3", &args, &env).await
}

rbee_store::database_test!(async fn oras_py_pulls_a_premium_worker_with_its_license_only(db) {
    if !require_python_module("oras") {
        return;
    }
    let s = setup(db).await;
    publish_premium(&s).await;
    // One platform's manifest (oras-py pulls manifests, not indexes).
    let index = premium_index(&s).await;
    let manifest = index["manifests"][0]["digest"].as_str().unwrap().to_owned();

    let out = s.scratch.path().join("oras-licensed");
    let pulled = oras_pull(true, &s, &manifest, &out, Some(&s.license)).await.last_json();
    let files = pulled["files"].as_array().unwrap();
    assert_eq!(files.len(), 1, "{pulled}");
    let file = Path::new(files[0].as_str().unwrap());
    let bytes = std::fs::read(out.join(file.file_name().unwrap())).unwrap();
    assert!(!bytes.is_empty());
    // Byte for byte the layer the manifest names.
    let http = reqwest::Client::builder().no_proxy().build().unwrap();
    let token: Value = http
        .get(format!("{}/token?scope=repository:rbee-premium/{PREMIUM}:pull", s.catalog.url()))
        .basic_auth("any", Some(&s.license))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let platform: Value = http
        .get(format!("{}/v2/rbee-premium/{PREMIUM}/manifests/{manifest}", s.catalog.url()))
        .header("accept", OCI_MANIFEST)
        .bearer_auth(token["token"].as_str().unwrap())
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(platform["layers"][0]["digest"], sha256_digest(&bytes).as_str());

    for (why, password) in [("no credentials", None), ("another worker's license", Some(s.other_license.as_str()))] {
        let out = s.scratch.path().join(format!("oras-refused-{}", why.len()));
        let refused = oras_pull(false, &s, &manifest, &out, password).await;
        let text = refused.stderr.to_lowercase();
        assert!(text.contains("401") || text.contains("unauthorized"), "{why}: {text}");
        assert!(!out.exists() || std::fs::read_dir(&out).unwrap().next().is_none(), "{why}: nothing pulled");
    }
    s.catalog.stop().await.unwrap();
});
