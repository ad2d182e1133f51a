//! The embedded registry's lost events show on the catalog's `/metrics`:
//! a sink that cannot keep up (an analytics writer whose database is slow)
//! loses events rather than holding a request, and the loss is counted.

use std::sync::Arc;

use rbee_catalog::CatalogConfig;
use rbee_registry::QueueSink;
use reqwest::StatusCode;
use sha2::Digest as _;

fn dropped(metrics: &str) -> u64 {
    metrics
        .lines()
        .find_map(|l| l.strip_prefix("rbee_catalog_registry_events_dropped_total "))
        .expect("the counter is exported")
        .parse()
        .unwrap()
}

#[tokio::test]
async fn lost_registry_events_are_counted_on_metrics() {
    let data = tempfile::tempdir().unwrap();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let mut config = CatalogConfig::new(data.path());
    // Pushes anonymously over loopback: the development switch.
    config.tokens.dev_open_loopback = true;
    let running = rbee_catalog::start(config, listener).await.unwrap();
    let http = reqwest::Client::new();
    let url = running.url();
    let metrics = || async {
        let text = http
            .get(format!("{url}/metrics"))
            .send()
            .await
            .unwrap()
            .text()
            .await
            .unwrap();
        dropped(&text)
    };
    assert_eq!(metrics().await, 0);

    let blob = b"a layer".to_vec();
    let digest = format!("sha256:{}", hex::encode(sha2::Sha256::digest(&blob)));
    let resp = http
        .post(format!("{url}/v2/rbee/w/blobs/uploads/?digest={digest}"))
        .body(blob)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::CREATED);

    // A sink whose queue holds one event, and nobody takes it.
    let registry = running.registry.clone().expect("embedded registry");
    let (sink, _stuck) = QueueSink::new(1);
    registry.events().add_sink(Arc::new(sink));
    for _ in 0..3 {
        let resp = http
            .head(format!("{url}/v2/rbee/w/blobs/{digest}"))
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), StatusCode::OK);
    }
    assert_eq!(metrics().await, 2);
    running.stop().await.unwrap();
}
