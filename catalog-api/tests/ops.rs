//! The server's operational surface, against the real server on
//! `127.0.0.1:0`: Prometheus `/metrics` counts by route template and per
//! server, `/openapi.json` lists every catalog route and the responses
//! match its schemas, and the layers every response passes through
//! (security headers, request ids, CORS). The routes' behaviour is tested
//! end to end in the workspace's `tests/` crate.

use std::collections::BTreeSet;

use rbee_catalog::{CatalogConfig, RunningCatalog};
use reqwest::StatusCode;
use serde_json::{Value, json};

/// A running catalog with its own data directory.
struct Server {
    running: RunningCatalog,
    http: reqwest::Client,
    _data: tempfile::TempDir,
}

impl Server {
    async fn start(configure: impl FnOnce(&mut CatalogConfig)) -> Server {
        let data = tempfile::tempdir().unwrap();
        let mut config = CatalogConfig::new(data.path());
        // Publishes anonymously over loopback: the development switch.
        config.tokens.dev_open_loopback = true;
        config.listen = "127.0.0.1:0".parse().unwrap();
        configure(&mut config);
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let running = rbee_catalog::start(config, listener).await.unwrap();
        Server {
            running,
            http: reqwest::Client::new(),
            _data: data,
        }
    }

    fn url(&self, path: &str) -> String {
        format!("{}{path}", self.running.url())
    }

    async fn get(&self, path: &str) -> reqwest::Response {
        self.http.get(self.url(path)).send().await.unwrap()
    }

    async fn metrics(&self) -> String {
        let resp = self.get("/metrics").await;
        assert_eq!(resp.status(), StatusCode::OK);
        assert!(
            resp.headers()["content-type"]
                .to_str()
                .unwrap()
                .starts_with("application/openmetrics-text"),
        );
        resp.text().await.unwrap()
    }

    async fn openapi(&self) -> Value {
        let resp = self.get("/openapi.json").await;
        assert_eq!(resp.status(), StatusCode::OK);
        resp.json().await.unwrap()
    }

    /// Publishes the example worker through the embedded registry.
    async fn publish_example(&self) -> String {
        let published = rbee_catalog_cli::demo::publish_example(
            &self.running.state.registry_public_url,
            "rbee/catalog",
        )
        .await
        .unwrap();
        assert!(published);
        "hello-worker-rbee-cpu".to_owned()
    }
}

/// The value of the sample of `metric` whose labels are exactly `labels`.
fn sample(metrics: &str, metric: &str, labels: &str) -> Option<f64> {
    let prefix = format!("{metric}{{{labels}}} ");
    metrics
        .lines()
        .find_map(|l| l.strip_prefix(&prefix))
        .map(|v| v.trim().parse().unwrap())
}

fn requests(metrics: &str, route: &str, method: &str, status: &str) -> f64 {
    sample(
        metrics,
        "rbee_catalog_http_requests_total",
        &format!(r#"route="{route}",method="{method}",status="{status}""#),
    )
    .unwrap_or(0.0)
}

fn cache_lookups(metrics: &str, outcome: &str) -> f64 {
    sample(
        metrics,
        "rbee_catalog_cache_lookups_total",
        &format!(r#"outcome="{outcome}""#),
    )
    .unwrap()
}

#[tokio::test]
async fn metrics_count_requests_by_route_template() {
    let server = Server::start(|_| {}).await;
    assert_eq!(server.get("/health").await.status(), StatusCode::OK);
    assert_eq!(server.get("/v1/workers").await.status(), StatusCode::OK);
    assert_eq!(server.get("/v1/workers").await.status(), StatusCode::OK);
    assert_eq!(
        server.get("/workers/no-such-worker").await.status(),
        StatusCode::NOT_FOUND
    );
    assert_eq!(
        server.get("/no/such/route/xyz").await.status(),
        StatusCode::NOT_FOUND
    );

    let m = server.metrics().await;
    assert_eq!(requests(&m, "/health", "GET", "2xx"), 1.0, "{m}");
    assert_eq!(requests(&m, "/v1/workers", "GET", "2xx"), 2.0, "{m}");
    assert_eq!(requests(&m, "/workers/{id}", "GET", "4xx"), 1.0, "{m}");
    assert_eq!(requests(&m, "unmatched", "GET", "4xx"), 1.0, "{m}");
    // Raw paths never become labels: cardinality stays bounded.
    assert!(!m.contains("no-such-worker") && !m.contains("xyz"), "{m}");
    assert_eq!(
        sample(
            &m,
            "rbee_catalog_http_request_duration_seconds_count",
            r#"route="/v1/workers""#
        ),
        Some(2.0),
        "{m}"
    );
    // Listings come from the catalog's view (the default): the first
    // /v1/workers read the worker list and the latest releases from the
    // database (two misses), the second found both cached; /workers/{id}
    // read the cached worker list too.
    assert_eq!(cache_lookups(&m, "miss"), 2.0, "{m}");
    assert_eq!(cache_lookups(&m, "hit"), 3.0, "{m}");
    assert_eq!(cache_lookups(&m, "stale"), 0.0, "{m}");
    assert!(m.ends_with("# EOF\n"));

    // The scrape itself is counted by the next one.
    let m = server.metrics().await;
    assert_eq!(requests(&m, "/metrics", "GET", "2xx"), 1.0, "{m}");
}

/// Without the view (`--no-catalog-view`), a listing walks the registry:
/// the first fetched the catalog index, the second found it cached, and
/// /workers/{id} read the cached index too.
#[tokio::test]
async fn cache_lookups_are_counted_when_walking_the_registry() {
    let server = Server::start(|c| c.catalog_view = false).await;
    for _ in 0..2 {
        assert_eq!(server.get("/v1/workers").await.status(), StatusCode::OK);
    }
    assert_eq!(
        server.get("/workers/no-such-worker").await.status(),
        StatusCode::NOT_FOUND
    );
    let m = server.metrics().await;
    assert_eq!(cache_lookups(&m, "miss"), 1.0, "{m}");
    assert_eq!(cache_lookups(&m, "hit"), 2.0, "{m}");
    assert_eq!(cache_lookups(&m, "stale"), 0.0, "{m}");
}

#[tokio::test]
async fn each_server_counts_only_its_own_requests() {
    let (a, b) = tokio::join!(Server::start(|_| {}), Server::start(|_| {}));
    for _ in 0..3 {
        a.get("/v1/workers").await;
    }
    b.get("/health").await;
    let (ma, mb) = (a.metrics().await, b.metrics().await);
    assert_eq!(requests(&ma, "/v1/workers", "GET", "2xx"), 3.0);
    assert_eq!(requests(&mb, "/v1/workers", "GET", "2xx"), 0.0);
    assert_eq!(requests(&ma, "/health", "GET", "2xx"), 0.0);
    assert_eq!(requests(&mb, "/health", "GET", "2xx"), 1.0);
    // Two lookups per listing from the view: the worker list, the latest
    // releases.
    assert_eq!(cache_lookups(&ma, "miss") + cache_lookups(&ma, "hit"), 6.0);
    assert_eq!(cache_lookups(&mb, "miss") + cache_lookups(&mb, "hit"), 0.0);
}

/// Every catalog route, as `server.rs` registers it. A route added there
/// and not documented (or documented and not routed) fails the test below.
const CATALOG_ROUTES: &[(&str, &str)] = &[
    ("get", "/health"),
    ("get", "/ready"),
    ("get", "/metrics"),
    ("get", "/openapi.json"),
    ("get", "/workers"),
    ("get", "/workers/{id}"),
    ("get", "/workers/{id}/PKGBUILD"),
    ("get", "/v1/workers"),
    ("get", "/v1/workers/{id}"),
    ("get", "/v1/workers/{id}/versions"),
    ("get", "/v1/workers/{id}/{version}/download"),
    ("get", "/v1/workers/{id}/{version}/blob"),
    ("post", "/v1/webhooks/registry"),
    ("post", "/v1/licenses/verify"),
    ("get", "/token"),
    ("get", "/token/jwks.json"),
    ("get", "/v1/workers/{id}/stats"),
    ("get", "/v1/stats/overview"),
];

#[tokio::test]
async fn openapi_lists_every_catalog_route_and_only_those() {
    let server = Server::start(|c| c.webhook_secret = Some("s3cret".into())).await;
    let doc = server.openapi().await;
    assert!(doc["openapi"].as_str().unwrap().starts_with("3.1"));
    let documented: BTreeSet<(String, String)> = doc["paths"]
        .as_object()
        .unwrap()
        .iter()
        .flat_map(|(path, item)| {
            item.as_object()
                .unwrap()
                .keys()
                .map(move |method| (method.clone(), path.clone()))
        })
        .collect();
    let expected: BTreeSet<(String, String)> = CATALOG_ROUTES
        .iter()
        .map(|(m, p)| (m.to_string(), p.to_string()))
        .collect();
    assert_eq!(documented, expected);
    assert!(documented.iter().all(|(_, p)| !p.starts_with("/v2")));

    for (method, path) in &documented {
        let op = &doc["paths"][path][method];
        let tags = op["tags"].as_array().unwrap();
        assert!(
            tags.iter()
                .all(|t| ["legacy", "v1", "ops", "tokens"].contains(&t.as_str().unwrap())),
            "{method} {path}: {tags:?}"
        );
        assert!(op["operationId"].is_string(), "{method} {path}");
        // Every error a route documents has the `{"error","message"}` body.
        for (status, resp) in op["responses"].as_object().unwrap() {
            if status.starts_with('4') || status.starts_with('5') {
                assert_eq!(
                    resp["content"]["application/json"]["schema"]["$ref"],
                    "#/components/schemas/ErrorBody",
                    "{method} {path} {status}"
                );
            }
        }

        // And every documented route is routed: the router's fallback
        // (`no such route`) never answers it.
        let concrete = path
            .replace("{id}", "no-such-worker")
            .replace("{version}", "latest");
        let req = match method.as_str() {
            "get" => server.http.get(server.url(&concrete)),
            "post" => server.http.post(server.url(&concrete)).body("{}"),
            other => panic!("unexpected method {other}"),
        };
        let resp = req
            .query(&[("platform", "linux-x86_64")])
            .send()
            .await
            .unwrap();
        assert_ne!(resp.status(), StatusCode::METHOD_NOT_ALLOWED, "{path}");
        let text = resp.text().await.unwrap();
        assert!(!text.contains("no such route"), "{method} {path}: {text}");
    }
}

#[tokio::test]
async fn openapi_json_is_cacheable() {
    let server = Server::start(|_| {}).await;
    let first = server.get("/openapi.json").await;
    let etag = first.headers()["etag"].clone();
    assert_eq!(first.headers()["content-type"], "application/json");
    let again = server
        .http
        .get(server.url("/openapi.json"))
        .header("if-none-match", etag)
        .send()
        .await
        .unwrap();
    assert_eq!(again.status(), StatusCode::NOT_MODIFIED);
}

/// A validator for the document's schema `name`: the whole document is the
/// schema resource, so `#/components/...` references resolve as written.
fn validator(doc: &Value, name: &str) -> jsonschema::Validator {
    let mut root = doc.clone();
    root["$ref"] = json!(format!("#/components/schemas/{name}"));
    jsonschema::draft202012::new(&root).unwrap()
}

/// The schema `$ref` name of `status`'s JSON body on `GET path`.
fn documented_body(doc: &Value, path: &str, status: u16) -> String {
    let r = doc["paths"][path]["get"]["responses"][status.to_string()]["content"]
        ["application/json"]["schema"]["$ref"]
        .as_str()
        .unwrap_or_else(|| panic!("GET {path} {status} has no JSON schema"));
    r.trim_start_matches("#/components/schemas/").to_owned()
}

#[tokio::test]
async fn responses_match_the_documented_schemas() {
    let server = Server::start(|_| {}).await;
    let id = server.publish_example().await;
    let doc = server.openapi().await;
    let platform = rbee_schemas::Platform::current()
        .unwrap_or(rbee_schemas::Platform::LinuxX86_64)
        .to_string();
    let calls: Vec<(&str, String, u16)> = vec![
        ("/health", "/health".into(), 200),
        ("/ready", "/ready".into(), 200),
        ("/workers", "/workers".into(), 200),
        ("/workers/{id}", format!("/workers/{id}"), 200),
        ("/workers/{id}", "/workers/nope".into(), 404),
        ("/workers/{id}", "/workers/NOPE".into(), 400),
        ("/v1/workers", "/v1/workers".into(), 200),
        ("/v1/workers", "/v1/workers?platform=nope".into(), 400),
        ("/v1/workers/{id}", format!("/v1/workers/{id}"), 200),
        (
            "/v1/workers/{id}/versions",
            format!("/v1/workers/{id}/versions"),
            200,
        ),
        (
            "/v1/workers/{id}/{version}/download",
            format!("/v1/workers/{id}/latest/download?platform={platform}"),
            200,
        ),
        (
            "/v1/workers/{id}/{version}/download",
            format!("/v1/workers/{id}/0.1.0/download?platform=nope"),
            400,
        ),
        (
            "/v1/workers/{id}/{version}/download",
            format!("/v1/workers/{id}/9.9.9/download?platform={platform}"),
            404,
        ),
    ];
    for (template, path, status) in calls {
        let resp = server.get(&path).await;
        assert_eq!(resp.status().as_u16(), status, "GET {path}");
        let body: Value = resp.json().await.unwrap();
        let schema = documented_body(&doc, template, status);
        let v = validator(&doc, &schema);
        let errors: Vec<String> = v.iter_errors(&body).map(|e| e.to_string()).collect();
        assert!(
            errors.is_empty(),
            "GET {path} does not match {schema}: {errors:?}\n{body:#}"
        );
    }

    // The validators do reject what the schemas forbid, down to the worker
    // metadata document embedded from the schemas crate.
    let mut worker: Value = server
        .get(&format!("/v1/workers/{id}"))
        .await
        .json()
        .await
        .unwrap();
    let v = validator(&doc, "Worker");
    assert!(v.is_valid(&worker));
    worker["metadata"]["surprise"] = json!(true);
    assert!(!v.is_valid(&worker), "metadata allows no unknown field");
    assert!(!validator(&doc, "Download").is_valid(&json!({ "size": "big" })));
}

#[tokio::test]
async fn security_headers_and_request_ids_are_on_every_response() {
    let server = Server::start(|_| {}).await;
    // A catalog route, an error, and an embedded registry route.
    for path in ["/health", "/workers/NOPE", "/v2/"] {
        let resp = server.get(path).await;
        let h = resp.headers();
        assert_eq!(h["x-content-type-options"], "nosniff", "{path}");
        assert_eq!(h["x-frame-options"], "DENY", "{path}");
        let csp = h["content-security-policy"].to_str().unwrap();
        assert!(csp.contains("default-src 'none'"), "{path}: {csp}");
        let id = h["x-request-id"].to_str().unwrap();
        assert_eq!(id.len(), 36, "{path}: a UUID, got {id}");
    }
    // A caller's request id is kept, so logs on both sides line up.
    let resp = server
        .http
        .get(server.url("/health"))
        .header("x-request-id", "trace-me-42")
        .send()
        .await
        .unwrap();
    assert_eq!(resp.headers()["x-request-id"], "trace-me-42");
}

#[tokio::test]
async fn cors_answers_configured_origins_only() {
    let server = Server::start(|c| c.cors_origins = vec!["https://rbee.dev".into()]).await;
    let with_origin = |origin: &'static str| {
        server
            .http
            .get(server.url("/v1/workers"))
            .header("origin", origin)
            .send()
    };
    let allowed = with_origin("https://rbee.dev").await.unwrap();
    assert_eq!(
        allowed.headers()["access-control-allow-origin"],
        "https://rbee.dev"
    );
    let foreign = with_origin("https://evil.example").await.unwrap();
    assert!(
        !foreign
            .headers()
            .contains_key("access-control-allow-origin")
    );

    // Preflight: allowed for the configured origin, not for another.
    let preflight = |origin: &'static str| {
        server
            .http
            .request(reqwest::Method::OPTIONS, server.url("/v1/workers"))
            .header("origin", origin)
            .header("access-control-request-method", "GET")
            .send()
    };
    let ok = preflight("https://rbee.dev").await.unwrap();
    assert_eq!(
        ok.headers()["access-control-allow-origin"],
        "https://rbee.dev"
    );
    assert!(
        ok.headers()["access-control-allow-methods"]
            .to_str()
            .unwrap()
            .contains("GET")
    );
    let refused = preflight("https://evil.example").await.unwrap();
    assert!(
        !refused
            .headers()
            .contains_key("access-control-allow-origin")
    );
}
