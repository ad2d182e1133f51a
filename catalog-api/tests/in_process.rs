//! The embedded catalog reads its registry in process: answering
//! `/v1/workers/...`, versions, downloads and PKGBUILDs sends no request
//! to its own `/v2` and makes the registry emit no event (so none of its
//! reads counts as a pull), while a client's download through `/v2` still
//! does. Over loopback HTTP (the old way) every catalog read was a
//! `/v2` request and a pull event.

use rbee_catalog::{CatalogConfig, RunningCatalog};
use rbee_registry::{Action, Target};
use reqwest::StatusCode;
use serde_json::Value;
use tokio::sync::broadcast::error::TryRecvError;

const WORKER: &str = "hello-worker-rbee-cpu";

struct Server {
    running: RunningCatalog,
    http: reqwest::Client,
    _data: tempfile::TempDir,
}

impl Server {
    async fn start() -> Server {
        let data = tempfile::tempdir().unwrap();
        let mut config = CatalogConfig::new(data.path());
        // Publishes anonymously over loopback: the development switch.
        config.tokens.dev_open_loopback = true;
        config.listen = "127.0.0.1:0".parse().unwrap();
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let running = rbee_catalog::start(config, listener).await.unwrap();
        Server {
            running,
            http: reqwest::Client::new(),
            _data: data,
        }
    }

    async fn get(&self, path_or_url: &str) -> reqwest::Response {
        let url = if path_or_url.starts_with("http") {
            path_or_url.to_owned()
        } else {
            format!("{}{path_or_url}", self.running.url())
        };
        self.http.get(url).send().await.unwrap()
    }

    async fn json(&self, path: &str) -> Value {
        let resp = self.get(path).await;
        assert_eq!(resp.status(), StatusCode::OK, "{path}");
        resp.json().await.unwrap()
    }

    async fn metrics(&self) -> String {
        self.get("/metrics").await.text().await.unwrap()
    }
}

/// Requests the server answered on its `/v2` routes, any method or status.
fn v2_requests(metrics: &str) -> f64 {
    metrics
        .lines()
        .filter(|l| l.starts_with(r#"rbee_catalog_http_requests_total{route="/v2"#))
        .map(|l| l.rsplit(' ').next().unwrap().parse::<f64>().unwrap())
        .sum()
}

fn cache_misses(metrics: &str) -> f64 {
    metrics
        .lines()
        .find_map(|l| l.strip_prefix(r#"rbee_catalog_cache_lookups_total{outcome="miss"} "#))
        .unwrap()
        .parse()
        .unwrap()
}

#[tokio::test]
async fn the_embedded_catalog_reads_its_registry_without_http_or_pull_events() {
    let server = Server::start().await;
    let published = rbee_catalog_cli::demo::publish_example(
        &server.running.state.registry_public_url,
        "rbee/catalog",
    )
    .await
    .unwrap();
    assert!(published);
    let registry = server.running.registry.clone().expect("embedded registry");
    // Only what happens from here on is seen.
    let mut events = registry.events().subscribe();
    let before = server.metrics().await;

    let worker = server.json(&format!("/v1/workers/{WORKER}")).await;
    let version = worker["latest_version"].as_str().unwrap().to_owned();
    let versions = server.json(&format!("/v1/workers/{WORKER}/versions")).await;
    let platform = versions["versions"][0]["platforms"][0]["platform"]
        .as_str()
        .unwrap()
        .to_owned();
    let download = server
        .json(&format!(
            "/v1/workers/{WORKER}/{version}/download?platform={platform}"
        ))
        .await;
    assert_eq!(server.json("/v1/workers").await["workers"][0]["id"], WORKER);
    let pkgbuild = server.get(&format!("/workers/{WORKER}/PKGBUILD")).await;
    assert_eq!(pkgbuild.status(), StatusCode::OK);
    assert!(pkgbuild.text().await.unwrap().contains("pkgname"));

    let after = server.metrics().await;
    assert!(
        cache_misses(&after) > cache_misses(&before),
        "the catalog read the registry"
    );
    assert_eq!(
        v2_requests(&after),
        v2_requests(&before),
        "the catalog sent requests to its own /v2"
    );
    assert!(
        matches!(events.try_recv(), Err(TryRecvError::Empty)),
        "the catalog's own reads made the registry emit events"
    );

    // A client's download still goes through /v2 and counts as a pull.
    let url = download["download_url"].as_str().unwrap();
    assert!(url.contains("/v2/"), "{url}");
    let blob = server.get(url).await;
    assert_eq!(blob.status(), StatusCode::OK);
    assert_eq!(
        blob.bytes().await.unwrap().len() as u64,
        download["size"].as_u64().unwrap()
    );
    let event = events.try_recv().expect("a pull event for the download");
    assert_eq!((event.action, event.target), (Action::Pull, Target::Blob));
    assert_eq!(
        v2_requests(&server.metrics().await),
        v2_requests(&before) + 1.0
    );
    server.running.stop().await.unwrap();
}
