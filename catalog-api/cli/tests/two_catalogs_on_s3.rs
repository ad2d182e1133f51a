//! Two `rbee-catalog serve` processes as a multi-node deployment runs
//! them (issue 14): each with its embedded registry on one S3 bucket
//! (`--storage s3://...` on `s3s-fs`) and both on one PostgreSQL database
//! (`--database-url`). A worker published through A's `/v2` (with a
//! publisher key, through A's token service) is listed and downloaded
//! through B's `/v1`; a version deleted through B's `/v2` (with the admin
//! key, through B's token service) is no longer listed by A, whose caches
//! B's change reached through the view's `NOTIFY` (see `docs/api.md`,
//! "Several catalog nodes"). Needs `s3s-fs` and the test PostgreSQL
//! (`RBEE_TEST_POSTGRES_URL`); fails without them when `CI` is set.

mod common;

use std::time::Duration;

use common::Node;
use rbee_pusher::auth::Credentials;
use rbee_registry::storage::s3_server::S3TestServer;
use rbee_store::testing::TestDatabase;
use serde_json::Value;
use sha2::Digest as _;

/// How soon a change made through one node must show on the other
/// (`docs/api.md`, "Several catalog nodes": within a second).
const WITHIN: Duration = Duration::from_secs(1);

const WORKER: &str = "hello-worker-rbee-cpu";
const VERSION: &str = "0.1.0";

/// `GET url` as JSON, which must answer `status`.
async fn json(client: &reqwest::Client, url: &str, status: u16, node: &Node) -> Value {
    let resp = client.get(url).send().await.unwrap();
    assert_eq!(
        resp.status(),
        status,
        "GET {url}\n{}",
        node.log.lock().unwrap()
    );
    resp.json().await.unwrap()
}

/// The versions `node` lists for the worker (none when it answers 404).
async fn versions(client: &reqwest::Client, node: &Node) -> Vec<String> {
    let url = format!("{}/v1/workers/{WORKER}/versions", node.url);
    let resp = client.get(&url).send().await.unwrap();
    if resp.status() == 404 {
        return Vec::new();
    }
    assert_eq!(
        resp.status(),
        200,
        "GET {url}\n{}",
        node.log.lock().unwrap()
    );
    let body: Value = resp.json().await.unwrap();
    body["versions"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v["version"].as_str().unwrap().to_owned())
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_catalogs_on_one_bucket_and_one_database_serve_and_forget_the_same_releases() {
    let Some(db) = TestDatabase::postgres().await else {
        return;
    };
    let s3 = S3TestServer::start();
    // The credentials, made in the shared database before the nodes start:
    // a publisher key for `rbee/`, and the admin key (which may delete).
    let store = db.store().await;
    let (_, publisher_key) = store
        .create_publisher_key(
            "test",
            rbee_store::NewPublisherKey {
                owner: "ci".into(),
                grants: vec![rbee_store::Grant::Namespace("rbee".into())],
            },
        )
        .await
        .unwrap();
    let admin_key = store
        .ensure_admin_key()
        .await
        .unwrap()
        .expect("a fresh database has no admin key yet");
    drop(store);

    let storage = s3.process_args("catalog");
    let mut args: Vec<&str> = storage.iter().map(String::as_str).collect();
    let a = Node::start_with_env(db.url(), &args, &s3.process_env()).await;
    // One token signing key for every node, as behind a load balancer (a
    // token from one node is then good on all).
    let signing_key = a.data.path().join("tokens/signing-key.pk8");
    let signing_key = signing_key.to_str().unwrap();
    args.extend(["--token-signing-key", signing_key]);
    let b = Node::start_with_env(db.url(), &args, &s3.process_env()).await;
    let client = reqwest::Client::builder().no_proxy().build().unwrap();
    assert!(b.listed().await.is_empty(), "B caches the empty list");

    // Published through A's /v2, with the publisher key.
    let published = rbee_catalog_cli::demo::publish_example_as(
        &a.url,
        "rbee/catalog",
        Credentials::basic("ci", publisher_key.expose()),
    )
    .await
    .unwrap();
    assert!(published);
    let pushed = tokio::time::Instant::now();
    while b.listed().await != [WORKER] {
        assert!(
            pushed.elapsed() < WITHIN,
            "B does not list {WORKER} {:?} after the push\nA:\n{}\nB:\n{}",
            pushed.elapsed(),
            a.log.lock().unwrap(),
            b.log.lock().unwrap()
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(versions(&client, &b).await, [VERSION]);
    assert_eq!(versions(&client, &a).await, [VERSION]);

    // Downloaded through B: B's embedded registry reads the bucket A wrote.
    let platform = rbee_schemas::Platform::current()
        .unwrap_or(rbee_schemas::Platform::LinuxX86_64)
        .to_string();
    let download = json(
        &client,
        &format!(
            "{}/v1/workers/{WORKER}/{VERSION}/download?platform={platform}",
            b.url
        ),
        200,
        &b,
    )
    .await;
    let url = download["download_url"].as_str().unwrap();
    assert!(url.starts_with(&b.url), "B's own address: {url}");
    let resp = client.get(url).send().await.unwrap();
    assert_eq!(resp.status(), 200, "GET {url}");
    let bytes = resp.bytes().await.unwrap();
    assert_eq!(Some(bytes.len() as u64), download["size"].as_u64());
    assert_eq!(
        download["checksum"].as_str().unwrap(),
        format!("sha256:{}", hex::encode(sha2::Sha256::digest(&bytes))),
        "the bytes B serves are the build A received"
    );

    // The version deleted through B's /v2, with the admin key.
    let token: Value = client
        .get(format!("{}/token", b.url))
        .query(&[
            ("service", "rbee-registry"),
            ("scope", &format!("repository:rbee/{WORKER}:delete")),
        ])
        .basic_auth("admin", Some(admin_key.expose()))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let token = token["token"].as_str().expect("a token for the admin");
    let resp = client
        .delete(format!("{}/v2/rbee/{WORKER}/manifests/{VERSION}", b.url))
        .bearer_auth(token)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 202, "{}", resp.text().await.unwrap());
    // Gone from A's answers too (A had it cached), within a second.
    let deleted = tokio::time::Instant::now();
    loop {
        let on_a = versions(&client, &a).await;
        if !on_a.iter().any(|v| v == VERSION) {
            break;
        }
        assert!(
            deleted.elapsed() < WITHIN,
            "A still lists {on_a:?} {:?} after the delete on B\nA:\n{}\nB:\n{}",
            deleted.elapsed(),
            a.log.lock().unwrap(),
            b.log.lock().unwrap()
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert!(!versions(&client, &b).await.iter().any(|v| v == VERSION));
    let resp = client
        .get(format!(
            "{}/v1/workers/{WORKER}/{VERSION}/download?platform={platform}",
            a.url
        ))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 404, "A no longer serves the deleted version");

    a.stop().await;
    b.stop().await;
    db.finish().await;
}
