//! The catalog's view in the database (issue 13), on SQLite and
//! PostgreSQL: a push is listed within a second (embedded registry and
//! webhook), a deleted or incomplete release is not listed, a yank record
//! reaches the view, `sync` rebuilds an emptied view to the same listing,
//! a restarted catalog lists without walking the registry, changes no
//! event announced (a yank, a deleted tag) are found at start and within
//! the metadata TTL, and with PostgreSQL a push notified to one node is
//! listed by another within a second.

mod common;

use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::extract::Request;
use axum::middleware::{self, Next};
use common::catalog::{listed_versions, publish_files};
use common::publishing::{CATALOG_REPO, Fixture, REPO};
use rbee_catalog::{CatalogConfig, RunningCatalog};
use rbee_registry::limits::{BodyBudget, ServerLimits};
use rbee_registry::{Registry, RegistryConfig};
use rbee_store::testing::TestDatabase;
use serde_json::{Value, json};

const WORKER: &str = common::catalog::WORKER;
const SECRET: &str = "view-test-webhook-secret";
/// How soon a push must be listed.
const WITHIN: Duration = Duration::from_secs(1);

/// An external registry (ours, on its own port) that records the path of
/// every request it serves, and can hold every request outside the
/// catalog repository until released.
struct CountingRegistry {
    url: String,
    paths: Arc<Mutex<Vec<String>>>,
    /// False: requests for worker repositories wait.
    open: tokio::sync::watch::Sender<bool>,
    _data: tempfile::TempDir,
}

impl CountingRegistry {
    async fn start() -> CountingRegistry {
        let data = tempfile::tempdir().unwrap();
        let mut config = RegistryConfig::new(data.path());
        config.access.dev_open_loopback = true;
        let registry = Registry::open(config).await.unwrap();
        let paths = Arc::new(Mutex::new(Vec::new()));
        let seen = paths.clone();
        let open = tokio::sync::watch::Sender::new(true);
        let gate = open.subscribe();
        let app = rbee_registry::api::routes(registry).layer(middleware::from_fn(
            move |req: Request, next: Next| {
                let (seen, mut gate) = (seen.clone(), gate.clone());
                async move {
                    let path = req.uri().path().to_owned();
                    seen.lock().unwrap().push(path.clone());
                    if !path.starts_with(&format!("/v2/{CATALOG_REPO}/")) {
                        let _ = gate.wait_for(|open| *open).await;
                    }
                    next.run(req).await
                }
            },
        ));
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        let limits = ServerLimits::default();
        let budget = BodyBudget::new(limits.buffered_body_bytes);
        tokio::spawn(async move {
            rbee_registry::server::serve_router(listener, app, &limits, budget, async {
                std::future::pending::<()>().await
            })
            .await
        });
        CountingRegistry {
            url,
            paths,
            open,
            _data: data,
        }
    }

    fn requests(&self) -> Vec<String> {
        self.paths.lock().unwrap().clone()
    }

    /// Holds (or releases) every request for a worker repository.
    fn hold_workers(&self, hold: bool) {
        self.open.send_replace(!hold);
    }
}

/// A catalog on `database`, with its data in `data`, reading `registry`
/// (embedded when `None`), with the webhook on.
async fn start(data: &Path, database: &str, registry: Option<&str>) -> RunningCatalog {
    start_with(data, database, registry, |_| {}).await
}

/// [`start`], with `configure` applied last.
async fn start_with(
    data: &Path,
    database: &str,
    registry: Option<&str>,
    configure: impl FnOnce(&mut CatalogConfig),
) -> RunningCatalog {
    let _ = tracing_subscriber::fmt()
        .with_max_level(tracing::Level::WARN)
        .with_test_writer()
        .try_init();
    let mut config = CatalogConfig::new(data);
    assert!(config.catalog_view, "the view is the default");
    config.database_url = Some(database.to_owned());
    config.registry_url = registry.map(str::to_owned);
    config.webhook_secret = Some(SECRET.into());
    config.tokens.dev_open_loopback = true;
    configure(&mut config);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    rbee_catalog::start(config, listener).await.unwrap()
}

/// Waits (at most `within`) until `/v1/workers/:id/versions` lists
/// `expected` (`?include_yanked=true` when `yanked`), else fails with what
/// it listed.
async fn versions_become(catalog: &str, yanked: bool, expected: &[&str], within: Duration) {
    let deadline = tokio::time::Instant::now() + within;
    let query = if yanked { "?include_yanked=true" } else { "" };
    loop {
        let resp = reqwest::Client::new()
            .get(format!("{catalog}/v1/workers/{WORKER}/versions{query}"))
            .send()
            .await
            .unwrap();
        let listed = if resp.status() == 404 {
            Vec::new()
        } else {
            listed_versions(&resp.json().await.unwrap())
        };
        if listed == expected {
            return;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "versions{query}: {listed:?}, not {expected:?} within {within:?}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

async fn get(url: &str) -> Value {
    let resp = reqwest::Client::new().get(url).send().await.unwrap();
    assert_eq!(resp.status(), 200, "GET {url}");
    resp.json().await.unwrap()
}

/// The versions `/v1/workers/:id/versions` lists (none when the worker is
/// not listed).
async fn versions(catalog: &str) -> Vec<String> {
    let resp = reqwest::Client::new()
        .get(format!("{catalog}/v1/workers/{WORKER}/versions"))
        .send()
        .await
        .unwrap();
    if resp.status() == 404 {
        return Vec::new();
    }
    listed_versions(&resp.json().await.unwrap())
}

/// The version the legacy list gives the worker, if it lists it.
async fn legacy_version(catalog: &str) -> Option<String> {
    let body = get(&format!("{catalog}/workers")).await;
    body["workers"]
        .as_array()
        .unwrap()
        .iter()
        .find(|w| w["id"] == WORKER)
        .map(|w| w["version"].as_str().unwrap().to_owned())
}

/// Waits (at most [`WITHIN`]) until both listings show `version` as
/// latest, else fails with what they showed.
async fn listed_within_a_second(catalog: &str, version: &str) {
    let deadline = tokio::time::Instant::now() + WITHIN;
    loop {
        let (legacy, v1) = (legacy_version(catalog).await, versions(catalog).await);
        if legacy.as_deref() == Some(version) && v1.first().map(String::as_str) == Some(version) {
            return;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "{version} not listed within {WITHIN:?}: legacy {legacy:?}, /v1 {v1:?}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

async fn publish(registry: &str, version: &str) -> rbee_pusher::publish::PublishSummary {
    publish_files(registry, &Fixture::new(version).files()).await
}

async fn notify(catalog: &str, repositories: &[&str]) {
    let events: Vec<Value> = repositories
        .iter()
        .map(|r| json!({"action": "push", "target": {"repository": r}}))
        .collect();
    let resp = reqwest::Client::new()
        .post(format!("{catalog}/v1/webhooks/registry"))
        .bearer_auth(SECRET)
        .json(&json!({ "events": events }))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
}

async fn delete(registry: &str, repo: &str, reference: &str) {
    let resp = reqwest::Client::new()
        .delete(format!("{registry}/v2/{repo}/manifests/{reference}"))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 202, "DELETE {repo}:{reference}");
}

rbee_store::database_test!(
    async fn an_embedded_push_is_listed_within_a_second(db) {
        let data = tempfile::tempdir().unwrap();
        let catalog = start(data.path(), db.url(), None).await;
        let url = catalog.url();
        publish(&url, "0.1.0").await;
        listed_within_a_second(&url, "0.1.0").await;
        publish(&url, "0.2.0").await;
        listed_within_a_second(&url, "0.2.0").await;
        assert_eq!(versions(&url).await, ["0.2.0", "0.1.0"]);
        catalog.stop().await.unwrap();
    }
);

rbee_store::database_test!(
    async fn a_webhook_push_is_listed_within_a_second(db) {
        let registry = CountingRegistry::start().await;
        let data = tempfile::tempdir().unwrap();
        let catalog = start(data.path(), db.url(), Some(&registry.url)).await;
        let url = catalog.url();
        publish(&registry.url, "0.1.0").await;
        notify(&url, &[REPO, CATALOG_REPO]).await;
        listed_within_a_second(&url, "0.1.0").await;
        catalog.stop().await.unwrap();
    }
);

rbee_store::database_test!(
    async fn deleted_and_incomplete_releases_are_not_listed(db) {
        let data = tempfile::tempdir().unwrap();
        let catalog = start(data.path(), db.url(), None).await;
        let url = catalog.url();
        publish(&url, "0.1.0").await;
        publish(&url, "0.2.0").await;
        let third = publish(&url, "0.3.0").await;
        listed_within_a_second(&url, "0.3.0").await;

        // Deleted: the version's tag is gone.
        delete(&url, REPO, "0.1.0").await;
        assert_eq!(versions(&url).await, ["0.3.0", "0.2.0"]);

        // Incomplete: a platform manifest its index names is gone.
        let platform = &third.platforms[0].manifest_digest;
        delete(&url, REPO, platform).await;
        assert_eq!(versions(&url).await, ["0.2.0"]);
        assert_eq!(legacy_version(&url).await, None, "latest is unreadable");
        catalog.stop().await.unwrap();
    }
);

rbee_store::database_test!(
    async fn a_yank_record_reaches_the_view(db) {
        let data = tempfile::tempdir().unwrap();
        let catalog = start(data.path(), db.url(), None).await;
        let url = catalog.url();
        let release = publish(&url, "0.1.0").await;
        listed_within_a_second(&url, "0.1.0").await;
        push_yank_record(&url, &release.index_digest, true, "broken build").await;
        let store = catalog.state.catalog.view().unwrap().store().clone();
        // The push event's barrier: the next read sees the record.
        versions(&url).await;
        let row = store.view_release(REPO, "0.1.0").await.unwrap().unwrap();
        let yank = row.yank.expect("the yank record was read");
        assert!(yank.yanked);
        assert_eq!(yank.reason.as_deref(), Some("broken build"));
        catalog.stop().await.unwrap();
    }
);

/// Pushes a yank record (CONTRACTS F) for the index `subject`.
async fn push_yank_record(registry: &str, subject: &str, yanked: bool, reason: &str) {
    let http = reqwest::Client::new();
    let put_blob = |bytes: Vec<u8>| {
        let http = http.clone();
        async move {
            let digest = common::sha256_digest(&bytes);
            let resp = http
                .post(format!(
                    "{registry}/v2/{REPO}/blobs/uploads/?digest={digest}"
                ))
                .body(bytes.clone())
                .send()
                .await
                .unwrap();
            assert_eq!(resp.status(), 201);
            (digest, bytes.len())
        }
    };
    let record = json!({"yanked": yanked, "reason": reason, "at": "2026-11-30T12:00:00Z"});
    let (record, record_size) = put_blob(serde_json::to_vec(&record).unwrap()).await;
    let (empty, empty_size) = put_blob(b"{}".to_vec()).await;
    let index = http
        .get(format!("{registry}/v2/{REPO}/manifests/{subject}"))
        .header("accept", common::OCI_INDEX)
        .send()
        .await
        .unwrap()
        .bytes()
        .await
        .unwrap();
    let manifest = json!({
        "schemaVersion": 2,
        "mediaType": "application/vnd.oci.image.manifest.v1+json",
        "artifactType": rbee_catalog::domain::referrers::yank::YANK_ARTIFACT_TYPE,
        "config": {"mediaType": "application/vnd.oci.empty.v1+json", "digest": empty, "size": empty_size},
        "layers": [{"mediaType": "application/vnd.rbee.worker.yank.v1+json", "digest": record, "size": record_size}],
        "subject": {"mediaType": common::OCI_INDEX, "digest": subject, "size": index.len()},
    });
    let bytes = serde_json::to_vec(&manifest).unwrap();
    let digest = common::sha256_digest(&bytes);
    let resp = http
        .put(format!("{registry}/v2/{REPO}/manifests/{digest}"))
        .header("content-type", "application/vnd.oci.image.manifest.v1+json")
        .body(bytes)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 201, "{}", resp.text().await.unwrap());
}

rbee_store::database_test!(
    async fn sync_rebuilds_an_emptied_view_to_the_same_listing(db) {
        let registry = CountingRegistry::start().await;
        let data = tempfile::tempdir().unwrap();
        let catalog = start(data.path(), db.url(), Some(&registry.url)).await;
        let url = catalog.url();
        publish(&registry.url, "0.1.0").await;
        publish(&registry.url, "0.2.0").await;
        notify(&url, &[REPO, CATALOG_REPO]).await;
        listed_within_a_second(&url, "0.2.0").await;
        let before = (
            get(&format!("{url}/workers")).await,
            get(&format!("{url}/v1/workers")).await,
            get(&format!("{url}/v1/workers/{WORKER}/versions")).await,
        );
        catalog.stop().await.unwrap();

        let store = db.store().await;
        store.clear_view().await.unwrap();
        assert!(store.view_state().await.unwrap().is_none());
        // What `rbee-catalog sync --registry-url` runs.
        let mut config = CatalogConfig::new(data.path());
        config.catalog_view = true;
        config.database_url = Some(db.url().to_owned());
        config.registry_url = Some(registry.url.clone());
        let report = rbee_catalog::sync::sync_view(&config).await.unwrap();
        assert_eq!((report.workers, report.releases, report.left_out), (1, 2, 0));
        assert_eq!(store.view_latest_releases().await.unwrap().len(), 1);
        store.close().await;

        let catalog = start(data.path(), db.url(), Some(&registry.url)).await;
        let url = catalog.url();
        let after = (
            get(&format!("{url}/workers")).await,
            get(&format!("{url}/v1/workers")).await,
            get(&format!("{url}/v1/workers/{WORKER}/versions")).await,
        );
        assert_eq!(after, before);
        catalog.stop().await.unwrap();
    }
);

rbee_store::database_test!(
    async fn a_restarted_catalog_lists_without_walking_the_registry(db) {
        let registry = CountingRegistry::start().await;
        let data = tempfile::tempdir().unwrap();
        let catalog = start(data.path(), db.url(), Some(&registry.url)).await;
        publish(&registry.url, "0.1.0").await;
        publish(&registry.url, "0.2.0").await;
        notify(&catalog.url(), &[REPO, CATALOG_REPO]).await;
        listed_within_a_second(&catalog.url(), "0.2.0").await;
        catalog.stop().await.unwrap();

        // No worker repository answers now: the listings cannot need one
        // (the start-up reconcile's reads wait in the background).
        registry.hold_workers(true);
        let seen = registry.requests().len();
        let catalog = start(data.path(), db.url(), Some(&registry.url)).await;
        let url = catalog.url();
        let started = tokio::time::Instant::now();
        assert_eq!(legacy_version(&url).await.as_deref(), Some("0.2.0"));
        assert_eq!(versions(&url).await, ["0.2.0", "0.1.0"]);
        get(&format!("{url}/v1/workers")).await;
        // Well under the 10 s a held read would take to time out.
        let took = started.elapsed();
        assert!(took < Duration::from_secs(2), "listed in {took:?}");
        // Of the catalog repository, at most the start-up check of the
        // index's digest (and its document when it changed).
        let catalog_reads = registry.requests()[seen..]
            .iter()
            .filter(|p| p.starts_with(&format!("/v2/{CATALOG_REPO}/")))
            .count();
        assert!(catalog_reads <= 2, "{:?}", &registry.requests()[seen..]);
        registry.hold_workers(false);
        catalog.stop().await.unwrap();
    }
);

rbee_store::database_test!(
    async fn changes_made_while_no_catalog_ran_are_found_at_start(db) {
        let registry = CountingRegistry::start().await;
        let data = tempfile::tempdir().unwrap();
        let catalog = start(data.path(), db.url(), Some(&registry.url)).await;
        publish(&registry.url, "0.1.0").await;
        publish(&registry.url, "0.2.0").await;
        let third = publish(&registry.url, "0.3.0").await;
        notify(&catalog.url(), &[REPO, CATALOG_REPO]).await;
        listed_within_a_second(&catalog.url(), "0.3.0").await;
        catalog.stop().await.unwrap();

        // While no catalog runs: 0.3.0 is yanked and 0.1.0's tag deleted,
        // neither of which changes the catalog index.
        push_yank_record(&registry.url, &third.index_digest, true, "broken build").await;
        delete(&registry.url, REPO, "0.1.0").await;

        let catalog = start(data.path(), db.url(), Some(&registry.url)).await;
        let url = catalog.url();
        // The start-up reconcile finds both, with no event and no sync.
        versions_become(&url, false, &["0.2.0"], Duration::from_secs(5)).await;
        versions_become(&url, true, &["0.3.0", "0.2.0"], WITHIN).await;
        assert_eq!(legacy_version(&url).await.as_deref(), Some("0.2.0"));
        let store = catalog.state.catalog.view().unwrap().store().clone();
        let yank = store.view_release(REPO, "0.3.0").await.unwrap().unwrap().yank;
        assert_eq!(yank.unwrap().reason.as_deref(), Some("broken build"));
        assert!(store.view_release(REPO, "0.1.0").await.unwrap().is_none());
        catalog.stop().await.unwrap();
    }
);

rbee_store::database_test!(
    async fn unannounced_changes_are_found_within_the_metadata_ttl(db) {
        let registry = CountingRegistry::start().await;
        let data = tempfile::tempdir().unwrap();
        let ttl = Duration::from_secs(1);
        let catalog = start_with(data.path(), db.url(), Some(&registry.url), |c| {
            c.ttls.metadata = ttl;
        })
        .await;
        let url = catalog.url();
        publish(&registry.url, "0.1.0").await;
        let second = publish(&registry.url, "0.2.0").await;
        notify(&url, &[REPO, CATALOG_REPO]).await;
        listed_within_a_second(&url, "0.2.0").await;

        // A registry without a webhook: nobody tells the catalog.
        push_yank_record(&registry.url, &second.index_digest, true, "bad").await;
        versions_become(&url, false, &["0.1.0"], 2 * ttl + WITHIN).await;
        delete(&registry.url, REPO, "0.1.0").await;
        versions_become(&url, true, &["0.2.0"], 2 * ttl + WITHIN).await;
        catalog.stop().await.unwrap();
    }
);

/// Two catalog nodes on one PostgreSQL database in front of one external
/// registry: a push notified to node A (webhook) is listed by node B
/// within a second, through `NOTIFY`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_push_notified_to_one_node_is_listed_by_another_within_a_second() {
    let Some(db) = TestDatabase::postgres().await else {
        return;
    };
    let registry = CountingRegistry::start().await;
    let (data_a, data_b) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let a = start(data_a.path(), db.url(), Some(&registry.url)).await;
    let b = start(data_b.path(), db.url(), Some(&registry.url)).await;
    publish(&registry.url, "0.1.0").await;
    notify(&a.url(), &[REPO, CATALOG_REPO]).await;
    listed_within_a_second(&b.url(), "0.1.0").await;
    // B has cached its listing; the next push must drop it.
    publish(&registry.url, "0.2.0").await;
    notify(&a.url(), &[REPO, CATALOG_REPO]).await;
    listed_within_a_second(&b.url(), "0.2.0").await;
    a.stop().await.unwrap();
    b.stop().await.unwrap();
    db.finish().await;
}
