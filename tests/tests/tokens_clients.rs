//! Real clients against the token service and the embedded registry's
//! access gate, with keys from the catalog's store (SQLite) and no
//! development switch: `rbee-pusher` pushes with a publisher key into its
//! namespace only; skopeo pulls a premium worker with the license key as
//! password, and is refused without one or with a license for another
//! worker.

mod common;

use common::catalog::other_worker;
use common::publishing::{Fixture, pusher};
use common::*;
use rbee_catalog::{CatalogConfig, RunningCatalog};
use rbee_store::{Grant, NewLicense, NewPublisherKey};

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
/// required), and keys from its store.
async fn setup() -> Setup {
    let data = tempfile::tempdir().unwrap();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let catalog = rbee_catalog::start(CatalogConfig::new(data.path()), listener)
        .await
        .unwrap();
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
    let env: Vec<(&str, &str)> = password
        .map(|p| vec![("RBEE_REGISTRY_PASSWORD", p)])
        .unwrap_or_default();
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

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_publisher_key_pushes_into_its_namespace_only() {
    let s = setup().await;
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
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn skopeo_pulls_a_premium_worker_with_its_license_only() {
    if !require_tool("skopeo") {
        return;
    }
    let s = setup().await;
    publish_premium(&s).await;
    let remote = format!("docker://{}/rbee-premium/{PREMIUM}:1.0.0", s.host);
    let copy = |creds: Option<String>, out: &str| {
        let dest = format!("oci:{}:1.0.0", s.scratch.path().join(out).display());
        let mut args = vec![
            "copy".to_owned(),
            "--all".into(),
            "--src-tls-verify=false".into(),
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
}
