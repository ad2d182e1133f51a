//! The catalog's errors end to end: bad ids, versions, platforms and
//! routes each get a JSON `{"error", "message"}` with the right status and
//! never a 500, also when axum rejects a request before a handler runs.

mod common;

use common::catalog::{TestCatalog, WORKER, other_worker, platform_names, publish_files};
use serde_json::json;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_requests_get_json_errors_and_never_a_500() {
    let catalog = TestCatalog::embedded().await;
    catalog.publish_version("0.1.0").await;
    let (_no_pkgbuild, files) = other_worker("no-pkgbuild-cpu", "0.1.0", false);
    publish_files(&catalog.registry_url, &files).await;

    // Invalid ids, on every route that takes one, sent byte for byte (a
    // URL parser would resolve `%2E%2E` before sending it).
    let long = "a".repeat(101);
    let ids = [
        "UPPER",
        "a_b",
        long.as_str(),
        "%2E%2E",
        "a%2Fb",
        "a.b",
        "%20",
    ];
    let routes = [
        "/workers/{}",
        "/workers/{}/PKGBUILD",
        "/v1/workers/{}",
        "/v1/workers/{}/versions",
        "/v1/workers/{}/latest/download?platform=linux-x86_64",
    ];
    for route in routes {
        for id in ids {
            let body = catalog
                .raw_get(&route.replace("{}", id))
                .await
                .error(400, Some("Invalid worker id"));
            if id == long {
                assert!(body["message"].as_str().unwrap().contains("100"), "{body}");
            }
        }
        // At the limit the id is valid, just not published.
        catalog
            .get(&route.replace("{}", &"a".repeat(100)))
            .await
            .error(404, Some("Worker not found"));
    }

    // Unknown worker: the exact title rbee-hive and the marketplace match.
    for route in routes {
        catalog
            .get(&route.replace("{}", "no-such-worker"))
            .await
            .error(404, Some("Worker not found"));
    }

    // Versions: unknown -> 404, not a version -> 400.
    let download =
        |version: &str, query: &str| format!("/v1/workers/{WORKER}/{version}/download{query}");
    for version in ["9.9.9", "0.1.1", "0.1.0-rc.1"] {
        catalog
            .get(&download(version, "?platform=linux-x86_64"))
            .await
            .error(404, Some("Version not found"));
    }
    for version in ["abc", "1.2", "01.0.0", "v0.1.0", "latest2", "%2E%2E"] {
        catalog
            .raw_get(&download(version, "?platform=linux-x86_64"))
            .await
            .error(400, Some("Bad request"));
    }
    let huge = "1".repeat(5000);
    catalog
        .get(&download(&huge, "?platform=linux-x86_64"))
        .await
        .error(400, Some("Bad request"));

    // Platforms: unknown -> 400 listing the valid names; valid but not
    // built -> 404 listing the built ones; missing -> 400.
    for platform in ["linux-riscv64", "linux", "LINUX-X86_64", ""] {
        let body = catalog
            .get(&download("latest", &format!("?platform={platform}")))
            .await
            .error(400, Some("Unknown platform"));
        let valid: Vec<&str> = body["valid_platforms"]
            .as_array()
            .unwrap()
            .iter()
            .map(|p| p.as_str().unwrap())
            .collect();
        for name in platform_names() {
            assert!(valid.contains(&name), "{name} missing from {body}");
        }
    }
    for version in ["latest", "0.1.0"] {
        let body = catalog
            .get(&download(version, "?platform=macos-x86_64"))
            .await
            .error(404, Some("Platform not available"));
        assert_eq!(body["available_platforms"], json!(platform_names()));
        for name in platform_names() {
            assert!(body["message"].as_str().unwrap().contains(name), "{body}");
        }
    }
    let body = catalog.get(&download("latest", "")).await.error(400, None);
    assert!(
        body["message"].as_str().unwrap().contains("platform"),
        "{body}"
    );

    // Unknown routes.
    for path in [
        "/nope",
        "/v1",
        "/v1/nope",
        "/workers/x/y/z",
        "/v1/workers/x/0.1.0/download/more",
    ] {
        catalog.get(path).await.error(404, Some("Not found"));
    }

    // A worker published without a PKGBUILD.
    catalog.get("/workers/no-pkgbuild-cpu").await.expect(200);
    catalog
        .get("/workers/no-pkgbuild-cpu/PKGBUILD")
        .await
        .error(404, Some("PKGBUILD not found"));

    // The webhook is off without a secret.
    catalog
        .send_json(
            reqwest::Method::POST,
            "/v1/webhooks/registry",
            Some("anything"),
            &json!({ "events": [] }),
        )
        .await
        .error(404, None);
    catalog.stop().await;
}

/// Malformed requests that axum's extractors reject before a handler
/// runs, and methods no route has: still JSON errors.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rejected_before_the_handler_is_still_json() {
    let catalog = TestCatalog::embedded().await;
    catalog.publish_version("0.1.0").await;
    // Not UTF-8 once percent-decoded.
    for path in [
        "/workers/%FF",
        "/v1/workers/%FF/versions",
        &format!("/v1/workers/{WORKER}/%FF/download?platform=linux-x86_64"),
    ] {
        catalog.raw_get(path).await.error(400, None);
    }
    // A query that does not deserialise.
    for query in [
        "?platform=linux-x86_64&platform=linux-aarch64",
        "?platform=%FF",
    ] {
        catalog
            .get(&format!("/v1/workers/{WORKER}/latest/download{query}"))
            .await
            .error(400, None);
    }
    catalog
        .get("/v1/workers?backend=cpu&backend=cuda")
        .await
        .error(400, None);
    // A method the route does not have.
    for path in ["/workers", &format!("/v1/workers/{WORKER}/versions")] {
        let reply = catalog
            .send_json(reqwest::Method::DELETE, path, None, &json!({}))
            .await;
        let allow = reply.header("allow");
        reply.error(405, Some("Method not allowed"));
        assert!(allow.contains("GET"), "{path}: Allow {allow:?}");
    }
    let reply = catalog
        .send_json(
            reqwest::Method::GET,
            "/v1/webhooks/registry",
            None,
            &json!({}),
        )
        .await;
    assert_eq!(reply.header("allow"), "POST");
    reply.error(405, Some("Method not allowed"));
    catalog.stop().await;
}
