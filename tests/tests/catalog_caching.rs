//! The catalog's caching end to end: stale data with a warning when the
//! registry is down (walking it) and the view's listings served through an
//! outage, a push to the embedded registry visible at once,
//! Distribution's webhook and notifications updating the view and
//! invalidating the cache, and HTTP caching (ETags, 304, `Cache-Control`).

mod common;

use std::time::Duration;

use common::catalog::{Reply, TestCatalog, WORKER, listed_versions, other_worker, publish_files};
use common::distribution::Distribution;
use common::publishing::{CATALOG_REPO, Fixture, REPO};
use common::{OCI_INDEX, sha256_digest};
use rbee_catalog::catalog::CacheTtls;
use serde_json::{Value, json};

// ---- stale data when the registry is down ------------------------------------------

/// Walking the registry (`--no-catalog-view`): what was read is served
/// stale, with a warning; what was never read is a 502.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn registry_down_serves_stale_data_with_a_warning() {
    let Some(registry) = Distribution::start().await else {
        return;
    };
    let ttl = Duration::from_secs(1);
    let catalog = TestCatalog::external(&registry.url, |c| {
        c.catalog_view = false;
        c.ttls = CacheTtls {
            index: ttl,
            metadata: ttl,
        };
    })
    .await;
    publish_files(&registry.url, &Fixture::new("0.1.0").files()).await;
    let (_other, files) = other_worker("never-cached-cpu", "0.1.0", true);
    publish_files(&registry.url, &files).await;

    // Warm the cache for one worker only.
    let warm = [
        format!("/v1/workers/{WORKER}/versions"),
        format!("/workers/{WORKER}"),
        format!("/workers/{WORKER}/PKGBUILD"),
        format!("/v1/workers/{WORKER}/0.1.0/download?platform=linux-x86_64"),
    ];
    let mut fresh = Vec::new();
    for path in &warm {
        let reply = catalog.get(path).await.expect(200);
        assert_eq!(reply.header("warning"), "", "{path} is fresh");
        fresh.push(reply.body);
    }

    // The registry goes away, and the TTLs run out.
    let registry_url = registry.url.clone();
    drop(registry);
    tokio::time::sleep(ttl + Duration::from_millis(300)).await;

    for (path, before) in warm.iter().zip(&fresh) {
        let reply = catalog.get(path).await.expect(200);
        assert!(
            reply.header("warning").starts_with("110 "),
            "{path}: Warning {:?}",
            reply.header("warning")
        );
        assert_eq!(
            reply.header("cache-control"),
            "public, max-age=10",
            "{path}: stale data is not kept long downstream"
        );
        assert_eq!(&reply.body, before, "{path}: the last good data");
    }
    let ready = catalog.get("/ready").await.ok_json();
    assert_eq!(ready["stale"], true, "{ready}");

    // A worker whose release was never read: nothing to fall back on.
    let body = catalog
        .get("/v1/workers/never-cached-cpu/versions")
        .await
        .error(502, Some("Registry unavailable"));
    assert!(
        !body["message"].as_str().unwrap().contains("127.0.0.1"),
        "internal addresses stay in the log: {body}"
    );
    catalog
        .get("/workers/never-cached-cpu")
        .await
        .error(502, Some("Registry unavailable"));

    // A catalog that never reached the registry.
    let cold = TestCatalog::external(&registry_url, |c| c.catalog_view = false).await;
    let worker = format!("/workers/{WORKER}");
    for (path, status) in [
        ("/ready", 503),
        ("/v1/workers", 502),
        (worker.as_str(), 502),
    ] {
        let body = cold.get(path).await.error(status, None);
        assert!(
            !body["message"].as_str().unwrap().contains("127.0.0.1"),
            "{path}: internal addresses stay in the log: {body}"
        );
    }
    cold.stop().await;
    catalog.stop().await;
}

/// With the catalog's view (the default), what the view holds is served
/// while the registry is down, past every TTL: the listings and downloads
/// of every worker it read, not only those asked for before. What only the
/// registry has (a PKGBUILD never read) is a 502, and a catalog whose view
/// was never built answers as one walking the registry would.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn registry_down_the_view_still_lists_everything_it_read() {
    let Some(registry) = Distribution::start().await else {
        return;
    };
    publish_files(&registry.url, &Fixture::new("0.1.0").files()).await;
    let (_other, files) = other_worker("never-cached-cpu", "0.1.0", true);
    publish_files(&registry.url, &files).await;
    let ttl = Duration::from_secs(1);
    let catalog = TestCatalog::external(&registry.url, |c| {
        c.ttls = CacheTtls {
            index: ttl,
            metadata: ttl,
        };
    })
    .await;
    let listed = [
        "/v1/workers".to_owned(),
        "/workers".to_owned(),
        format!("/v1/workers/{WORKER}/versions"),
        "/v1/workers/never-cached-cpu/versions".to_owned(),
        format!("/v1/workers/{WORKER}/0.1.0/download?platform=linux-x86_64"),
    ];
    let mut before = Vec::new();
    for path in &listed {
        before.push(catalog.get(path).await.ok_json());
    }
    let registry_url = registry.url.clone();
    drop(registry);
    tokio::time::sleep(ttl + Duration::from_millis(300)).await;
    for (path, before) in listed.iter().zip(&before) {
        assert_eq!(&catalog.get(path).await.ok_json(), before, "{path}");
    }
    catalog
        .get("/workers/never-cached-cpu/PKGBUILD")
        .await
        .error(502, Some("Registry unavailable"));

    // A view never built (a new database) walks, and fails like it.
    let cold = TestCatalog::external(&registry_url, |_| {}).await;
    cold.get("/ready").await.error(503, None);
    cold.get("/v1/workers").await.error(502, None);
    cold.stop().await;
    catalog.stop().await;
}

// ---- push -> visible at once ------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_push_to_the_embedded_registry_is_visible_at_once() {
    // Default TTLs (minutes): only the registry's push events can make the
    // second version appear.
    let catalog = TestCatalog::embedded().await;
    catalog.publish_version("0.1.0").await;
    let paths = (
        format!("/v1/workers/{WORKER}/versions"),
        format!("/workers/{WORKER}"),
        "/v1/workers".to_owned(),
        format!("/workers/{WORKER}/PKGBUILD"),
        format!("/v1/workers/{WORKER}/latest/download?platform=linux-x86_64"),
    );
    let versions = catalog.get(&paths.0).await.ok_json();
    assert_eq!(listed_versions(&versions), ["0.1.0"]);
    assert_eq!(catalog.get(&paths.1).await.ok_json()["version"], "0.1.0");
    assert_eq!(
        catalog.get(&paths.2).await.ok_json()["workers"][0]["latest_version"],
        "0.1.0"
    );
    assert!(catalog.get(&paths.3).await.text().contains("pkgver=0.1.0"));
    assert_eq!(catalog.get(&paths.4).await.ok_json()["version"], "0.1.0");

    catalog.publish_version("0.2.0").await;
    let versions = catalog.get(&paths.0).await.ok_json();
    assert_eq!(listed_versions(&versions), ["0.2.0", "0.1.0"]);
    assert_eq!(versions["latest"], "0.2.0");
    assert_eq!(catalog.get(&paths.1).await.ok_json()["version"], "0.2.0");
    assert_eq!(
        catalog.get(&paths.2).await.ok_json()["workers"][0]["latest_version"],
        "0.2.0"
    );
    assert!(catalog.get(&paths.3).await.text().contains("pkgver=0.2.0"));
    assert_eq!(catalog.get(&paths.4).await.ok_json()["version"], "0.2.0");
    catalog.stop().await;
}

// ---- Distribution's webhook and notifications -------------------------------------

/// A CNCF Distribution notification envelope for manifest pushes (and a
/// pull, which must not count) as Distribution sends it.
fn distribution_envelope(registry_host: &str, pushes: &[(&str, &str, &str)]) -> Value {
    let mut events: Vec<Value> = pushes
        .iter()
        .map(|(repository, tag, digest)| {
            json!({
                "id": "5b3b1d9e-0f4c-4a71-9d44-2d1f0b6f1a10",
                "timestamp": "2026-01-01T00:00:00.000000000Z",
                "action": "push",
                "target": {
                    "mediaType": OCI_INDEX,
                    "size": 1234,
                    "digest": digest,
                    "length": 1234,
                    "repository": repository,
                    "url": format!("http://{registry_host}/v2/{repository}/manifests/{digest}"),
                    "tag": tag,
                },
                "request": {
                    "id": "0f0e0d0c-0b0a-0908-0706-050403020100",
                    "addr": "127.0.0.1:50000",
                    "host": registry_host,
                    "method": "PUT",
                    "useragent": "rbee-pusher",
                },
                "actor": {},
                "source": { "addr": registry_host, "instanceID": "3f1c2b4a-6d5e-4f70-8a9b-0c1d2e3f4a5b" },
            })
        })
        .collect();
    let mut pull = events[0].clone();
    pull["action"] = "pull".into();
    pull["request"]["method"] = "GET".into();
    events.push(pull);
    json!({ "events": events })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn distribution_webhook_updates_the_view() {
    webhook_makes_a_push_visible(true).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn distribution_webhook_invalidates_the_cache() {
    webhook_makes_a_push_visible(false).await;
}

/// A push Distribution tells nobody of is not seen (the view, or the
/// cache, answers) until the webhook is called; then it is, at once.
async fn webhook_makes_a_push_visible(view: bool) {
    let Some(registry) = Distribution::start().await else {
        return;
    };
    let secret = "webhook-test-secret";
    // The first release is there before the catalog starts, which reads
    // it (the view's first build, or the first walk).
    publish_files(&registry.url, &Fixture::new("0.1.0").files()).await;
    let catalog = TestCatalog::external(&registry.url, |c| {
        c.catalog_view = view;
        c.webhook_secret = Some(secret.to_owned());
    })
    .await;
    let versions = format!("/v1/workers/{WORKER}/versions");
    assert_eq!(
        listed_versions(&catalog.get(&versions).await.ok_json()),
        ["0.1.0"]
    );

    // Distribution tells nobody by itself here: the cache still answers.
    let second = publish_files(&registry.url, &Fixture::new("0.2.0").files()).await;
    assert_eq!(
        listed_versions(&catalog.get(&versions).await.ok_json()),
        ["0.1.0"],
        "cached until told"
    );

    let catalog_digest = sha256_digest(b"catalog");
    let envelope = distribution_envelope(
        &registry.host,
        &[
            (REPO, "0.2.0", second.index_digest.as_str()),
            (CATALOG_REPO, "latest", catalog_digest.as_str()),
        ],
    );
    let post = |bearer: Option<&'static str>, body: Vec<u8>| {
        let mut req = catalog
            .http
            .post(format!("{}/v1/webhooks/registry", catalog.url))
            .header(
                "content-type",
                "application/vnd.docker.distribution.events.v1+json",
            )
            .body(body);
        if let Some(b) = bearer {
            req = req.header("authorization", format!("Bearer {b}"));
        }
        async move {
            let resp = req.send().await.unwrap();
            Reply {
                request: "POST /v1/webhooks/registry".into(),
                status: resp.status().as_u16(),
                headers: resp.headers().clone(),
                body: resp.bytes().await.unwrap().to_vec(),
            }
        }
    };
    let body = serde_json::to_vec(&envelope).unwrap();

    // No secret, or the wrong one: 401, nothing invalidated.
    post(None, body.clone())
        .await
        .error(401, Some("Unauthorized"));
    post(Some("wrong-secret"), body.clone())
        .await
        .error(401, Some("Unauthorized"));
    post(Some("webhook-test-secret-but-longer"), body.clone())
        .await
        .error(401, Some("Unauthorized"));
    assert_eq!(
        listed_versions(&catalog.get(&versions).await.ok_json()),
        ["0.1.0"]
    );
    // The right secret with a body that is not an envelope: 400.
    post(Some(secret), b"not json".to_vec())
        .await
        .error(400, None);

    // The right secret: both pushes count, the pull does not.
    let answer = post(Some(secret), body).await.ok_json();
    assert_eq!(answer["invalidated"], 2, "{answer}");
    let now = catalog.get(&versions).await.ok_json();
    assert_eq!(listed_versions(&now), ["0.2.0", "0.1.0"]);
    assert_eq!(now["latest"], "0.2.0");
    assert_eq!(
        catalog.get(&format!("/workers/{WORKER}")).await.ok_json()["version"],
        "0.2.0"
    );

    // A worker the catalog never saw: found right after the webhook. (Not
    // checked unseen before: the second reread of the webhook above may
    // already have run.)
    let (_new, files) = other_worker("new-after-start-cpu", "0.1.0", false);
    let new = publish_files(&registry.url, &files).await;
    let envelope = distribution_envelope(
        &registry.host,
        &[
            (
                "rbee/new-after-start-cpu",
                "0.1.0",
                new.index_digest.as_str(),
            ),
            (CATALOG_REPO, "latest", catalog_digest.as_str()),
        ],
    );
    post(Some(secret), serde_json::to_vec(&envelope).unwrap())
        .await
        .ok_json();
    assert_eq!(
        catalog.get("/workers/new-after-start-cpu").await.ok_json()["version"],
        "0.1.0"
    );
    catalog.stop().await;
}

/// Distribution configured, as `routes/webhook.rs` documents, to notify the
/// catalog itself: a push becomes visible without anyone posting by hand.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn distribution_notifications_reach_the_webhook() {
    let secret = "notify-test-secret";
    // The catalog's address must be in Distribution's configuration, and
    // Distribution's in the catalog's: bind the catalog's port first.
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let catalog_addr = listener.local_addr().unwrap();
    let notifications = format!(
        "notifications:
  endpoints:
    - name: rbee-catalog
      url: http://{catalog_addr}/v1/webhooks/registry
      headers:
        Authorization: [Bearer {secret}]
      timeout: 2s
      threshold: 3
      backoff: 100ms
"
    );
    let Some(registry) = Distribution::start_with_config(&notifications).await else {
        return;
    };
    let catalog = TestCatalog::start_on(listener, |c| {
        c.registry_url = Some(registry.url.clone());
        c.webhook_secret = Some(secret.to_owned());
    })
    .await;
    let versions = format!("/v1/workers/{WORKER}/versions");
    for (version, expected) in [("0.1.0", vec!["0.1.0"]), ("0.2.0", vec!["0.2.0", "0.1.0"])] {
        publish_files(&registry.url, &Fixture::new(version).files()).await;
        listed_after_notification(&catalog, &registry, &versions, &expected).await;
    }
    catalog.stop().await;
}

/// Polls `versions` (Distribution delivers from a queue) until it lists
/// `expected`, for at most 10 s.
async fn listed_after_notification(
    catalog: &TestCatalog,
    registry: &Distribution,
    versions: &str,
    expected: &[&str],
) {
    let started = std::time::Instant::now();
    loop {
        let reply = catalog.get(versions).await;
        let listed = if reply.status == 404 {
            Vec::new()
        } else {
            listed_versions(&reply.ok_json())
        };
        if listed == expected {
            break;
        }
        assert!(
            started.elapsed() < Duration::from_secs(10),
            "Distribution's notifications did not invalidate the cache: {listed:?}\n{}",
            registry.log()
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

// ---- HTTP caching ------------------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn etags_answer_304_and_cache_control_is_set() {
    let catalog = TestCatalog::embedded().await;
    catalog.publish_version("0.1.0").await;
    let routes = [
        ("/workers".to_owned(), "public, max-age=300"),
        (format!("/workers/{WORKER}"), "public, max-age=600"),
        (format!("/workers/{WORKER}/PKGBUILD"), "public, max-age=600"),
        ("/v1/workers".to_owned(), "public, max-age=300"),
        (format!("/v1/workers/{WORKER}"), "public, max-age=600"),
        (
            format!("/v1/workers/{WORKER}/versions"),
            "public, max-age=600",
        ),
        (
            format!("/v1/workers/{WORKER}/latest/download?platform=linux-x86_64"),
            "public, max-age=300",
        ),
        (
            format!("/v1/workers/{WORKER}/0.1.0/download?platform=linux-x86_64"),
            "public, max-age=3600",
        ),
    ];
    let mut etags = Vec::new();
    for (path, cache_control) in &routes {
        let first = catalog.get(path).await.expect(200);
        let etag = first.header("etag");
        assert!(
            etag.len() > 2 && etag.starts_with('"') && etag.ends_with('"'),
            "{path}: ETag {etag:?}"
        );
        assert_eq!(first.header("cache-control"), *cache_control, "{path}");
        // Security headers ride along on every answer.
        assert_eq!(first.header("x-content-type-options"), "nosniff");
        assert_eq!(first.header("x-frame-options"), "DENY");
        assert!(
            first
                .header("content-security-policy")
                .contains("default-src 'none'")
        );
        assert!(
            !first.header("x-request-id").is_empty(),
            "{path}: request id"
        );

        let again = catalog.get(path).await.expect(200);
        assert_eq!(again.header("etag"), etag, "{path}: the ETag is stable");
        for matching in [etag.clone(), format!("\"other\", {etag}"), "*".to_owned()] {
            let not_modified = catalog
                .get_with(path, &[("if-none-match", &matching)])
                .await
                .expect(304);
            assert!(not_modified.body.is_empty(), "{path}: 304 has no body");
            assert_eq!(not_modified.header("etag"), etag);
            assert_eq!(not_modified.header("cache-control"), *cache_control);
        }
        catalog
            .get_with(path, &[("if-none-match", "\"something-else\"")])
            .await
            .expect(200);
        etags.push(etag);
    }

    // A new version changes what the worker routes answer, and their ETags.
    catalog.publish_version("0.2.0").await;
    for ((path, _), etag) in routes.iter().zip(&etags) {
        let reply = catalog.get_with(path, &[("if-none-match", etag)]).await;
        if path.contains("/0.1.0/") {
            // That version did not change.
            reply.expect(304);
        } else {
            let reply = reply.expect(200);
            assert_ne!(&reply.header("etag"), etag, "{path}");
        }
    }
    catalog.stop().await;
}
