//! CORS as a browser on one of rbee's local UIs meets it, with the default
//! configuration: rbee-hive's web UI (`http://localhost:7845`) reads
//! `/workers` from the browser, and the marketplace sends `Content-Type`
//! on its GETs, which makes the browser ask first (a preflight).

use rbee_catalog::CatalogConfig;
use rbee_catalog::config::DEFAULT_CORS_ORIGINS;
use reqwest::StatusCode;

const HIVE_UI: &str = "http://localhost:7845";

async fn start(
    configure: impl FnOnce(&mut CatalogConfig),
) -> (rbee_catalog::RunningCatalog, tempfile::TempDir) {
    let data = tempfile::tempdir().unwrap();
    let mut config = CatalogConfig::new(data.path());
    configure(&mut config);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    (rbee_catalog::start(config, listener).await.unwrap(), data)
}

fn allowed_origin(resp: &reqwest::Response) -> Option<&str> {
    resp.headers()
        .get("access-control-allow-origin")
        .and_then(|v| v.to_str().ok())
}

#[tokio::test]
async fn the_hive_ui_origin_may_read_the_catalog_by_default() {
    let (server, _data) = start(|_| {}).await;
    let http = reqwest::Client::new();
    let url = format!("{}/workers", server.url());

    // Preflight, as a browser sends it before a GET with `Content-Type`.
    let preflight = http
        .request(reqwest::Method::OPTIONS, &url)
        .header("origin", HIVE_UI)
        .header("access-control-request-method", "GET")
        .header("access-control-request-headers", "content-type")
        .send()
        .await
        .unwrap();
    assert!(preflight.status().is_success(), "{}", preflight.status());
    assert_eq!(allowed_origin(&preflight), Some(HIVE_UI));
    let methods = preflight.headers()["access-control-allow-methods"]
        .to_str()
        .unwrap()
        .to_ascii_uppercase();
    assert!(methods.contains("GET"), "{methods}");
    let headers = preflight.headers()["access-control-allow-headers"]
        .to_str()
        .unwrap()
        .to_ascii_lowercase();
    assert!(headers.contains("content-type"), "{headers}");
    assert_eq!(preflight.headers()["access-control-max-age"], "3600");

    // The simple request itself.
    let resp = http
        .get(&url)
        .header("origin", HIVE_UI)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::OK);
    assert_eq!(allowed_origin(&resp), Some(HIVE_UI));
    let body: serde_json::Value = resp.json().await.unwrap();
    assert!(body["workers"].is_array(), "{body}");

    // Every other local UI too, by both loopback names; nobody else.
    for origin in DEFAULT_CORS_ORIGINS {
        let resp = http
            .get(&url)
            .header("origin", origin)
            .send()
            .await
            .unwrap();
        assert_eq!(allowed_origin(&resp), Some(origin));
    }
    for origin in ["http://localhost:8080", "https://evil.example", "null"] {
        let resp = http
            .get(&url)
            .header("origin", origin)
            .send()
            .await
            .unwrap();
        assert_eq!(allowed_origin(&resp), None, "{origin}");
    }
    server.stop().await.unwrap();
}

#[tokio::test]
async fn none_allows_no_origin() {
    let (server, _data) = start(|c| c.cors_origins = vec!["none".into()]).await;
    let resp = reqwest::Client::new()
        .get(format!("{}/workers", server.url()))
        .header("origin", HIVE_UI)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::OK);
    assert_eq!(allowed_origin(&resp), None);
    server.stop().await.unwrap();
}
