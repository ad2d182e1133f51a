//! Download analytics end to end, on SQLite and PostgreSQL: real pulls
//! (oras-py, skopeo, `rbee-worker install`, plain HTTP on `/v2` and on
//! `/v1/.../blob`) are counted, HEADs, manifest reads and the catalog's own
//! reads are not; an abandoned transfer is incomplete; a ranged resume
//! counts once; no stats answer and no database row holds the client's
//! address (nor an answer its hash); the stats are cached with an ETag;
//! two catalogs on one PostgreSQL add up.

mod analytics_support;
mod common;

use std::time::Duration;

use analytics_support::*;
use common::catalog::{TestCatalog, WORKER};
use common::publishing::{binaries, host_platform};
use common::*;
use hmac::{Hmac, Mac};
use rbee_store::database_test;
use rbee_store::testing::TestDatabase;
use serde_json::Value;
use sha2::Sha256;

const CLIENT: &str = "127.0.0.1";

fn count(list: &Value, key: &str) -> u64 {
    list.as_array()
        .expect("a list of counts")
        .iter()
        .find(|c| c["key"] == key)
        .map_or(0, |c| c["downloads"].as_u64().unwrap())
}

/// Every byte of the database that holds analytics, as text: the SQLite
/// files (with the write-ahead log), or each analytics table's rows.
async fn database_text(catalog: &TestCatalog) -> String {
    match catalog.state().store.db() {
        rbee_store::Db::Sqlite(pool) => {
            // Everything written is in the file or its WAL; read both.
            let path: String =
                sqlx::query_scalar("SELECT file FROM pragma_database_list WHERE name = 'main'")
                    .fetch_one(pool)
                    .await
                    .unwrap();
            let mut text = String::new();
            for suffix in ["", "-wal"] {
                if let Ok(bytes) = std::fs::read(format!("{path}{suffix}")) {
                    text.push_str(&String::from_utf8_lossy(&bytes));
                }
            }
            text
        }
        rbee_store::Db::Postgres(pool) => {
            let mut text = String::new();
            for table in [
                "download_events",
                "analytics_daily",
                "analytics_daily_workers",
                "analytics_daily_clients",
                "analytics_daily_dimensions",
            ] {
                let rows: Option<String> =
                    sqlx::query_scalar(&format!("SELECT string_agg(t::text, ' ') FROM {table} t"))
                        .fetch_one(pool)
                        .await
                        .unwrap();
                text.push_str(&rows.unwrap_or_default());
            }
            text
        }
    }
}

database_test!(async fn real_pulls_count_once_and_nothing_else_does(db) {
    if !require_tool("skopeo") || !require_python_module("oras") {
        return;
    }
    let bins = binaries().await;
    let (catalog, build) = catalog_with_release(Some(db.url()), 10_000).await;
    let host = catalog.host();

    // Not downloads: the catalog's own reads, HEADs, manifests, a probe.
    catalog.get(&format!("/v1/workers/{WORKER}/versions")).await.expect(200);
    catalog.get(&format!("/v1/workers/{WORKER}")).await.expect(200);
    let head = catalog
        .http
        .head(format!("{}{}", catalog.url, blob_path(&build)))
        .send()
        .await
        .unwrap();
    assert_eq!(head.status(), 200);
    catalog
        .get_with(
            &format!("/v2/rbee/{WORKER}/manifests/{}", build.manifest_digest),
            &[("accept", OCI_MANIFEST)],
        )
        .await
        .expect(200);
    assert_eq!(pull_range(&catalog, &build, "0-99").await, 100);

    // Downloads.
    let scratch = tempfile::tempdir().unwrap();
    let by_digest = format!("{host}/rbee/{WORKER}@{}", build.manifest_digest);
    oras(&[
        "pull",
        "--registry",
        &host,
        "--target",
        &format!("rbee/{WORKER}@{}", build.manifest_digest),
        "--outdir",
        scratch.path().join("oras").to_str().unwrap(),
    ])
    .await;
    skopeo_in(
        true,
        scratch.path(),
        &[
            "copy",
            "--src-tls-verify=false",
            &format!("docker://{by_digest}"),
            &format!("dir:{}", scratch.path().join("skopeo").display()),
        ],
    )
    .await;
    run(
        bins.rbee_worker.to_str().unwrap(),
        &[
            "--catalog",
            &catalog.url,
            "--dest",
            scratch.path().join("dest").to_str().unwrap(),
            "install",
            &format!("{WORKER}@0.1.0"),
        ],
        &[],
    )
    .await;
    let platform = host_platform().unwrap();
    let v1 = catalog
        .get_with(
            &format!("/v1/workers/{WORKER}/0.1.0/blob?platform={platform}"),
            &[("user-agent", "curl/8.5.0")],
        )
        .await
        .expect(200);
    assert_eq!(v1.body.len() as u64, build.size);
    pull(&catalog, &build, "curl/8.5.0").await;
    // An abandoned transfer, then its resume from the middle.
    abandoned_pull(&catalog, &build).await;
    let half = build.size / 2;
    assert_eq!(
        pull_range(&catalog, &build, &format!("{half}-")).await as u64,
        build.size - half
    );

    // oras, skopeo, rbee-worker, /v1 blob, /v2 pull, resume: 6 complete;
    // the abandoned pull: 1 incomplete.
    wait_recorded(&catalog, 7).await;
    let stats = catalog
        .get(&format!("/v1/workers/{WORKER}/stats"))
        .await
        .ok_json();
    assert_eq!(stats["total"], 6, "{stats:#}");
    assert_eq!(stats["incomplete"], 1, "{stats:#}");
    assert_eq!(stats["completion_rate"], 1.0, "the abandoned pull was resumed");
    assert_eq!(count(&stats["by_version"], "0.1.0"), 6);
    assert_eq!(count(&stats["by_platform"], platform), 6);
    assert_eq!(stats["days"], 30);
    let today = stats["per_day"].as_array().unwrap().last().unwrap().clone();
    assert_eq!(today["downloads"], 6);
    assert_eq!(today["unique_clients"], 1, "one client address");

    let overview = catalog.get("/v1/stats/overview").await.ok_json();
    assert_eq!(overview["total"], 6, "{overview:#}");
    assert_eq!(count(&overview["top_workers"], WORKER), 6);
    assert_eq!(overview["recent_downloads"].as_array().unwrap().len(), 6);
    assert_eq!(count(&overview["by_source"], "v1"), 2, "rbee-worker and /v1 blob");
    assert_eq!(count(&overview["by_source"], "registry"), 4);
    let families = &overview["by_client_family"];
    assert_eq!(count(families, "skopeo"), 1, "{families}");
    assert_eq!(count(families, "rbee-worker"), 1, "{families}");
    assert_eq!(count(families, "curl"), 3, "{families}");
    // oras-py sends python-requests' user agent on blob GETs.
    assert_eq!(count(families, "other"), 1, "{families}");

    // Privacy: no answer holds the address or its hash; the database holds
    // the hash (so the search below can find what is there) but never the
    // address.
    let secret = catalog
        .state()
        .store
        .analytics_secret(chrono::Utc::now().date_naive())
        .await
        .unwrap();
    let mut mac = Hmac::<Sha256>::new_from_slice(&secret).unwrap();
    mac.update(CLIENT.as_bytes());
    let hash = hex::encode(&mac.finalize().into_bytes()[..16]);
    for path in [
        format!("/v1/workers/{WORKER}/stats"),
        format!("/v1/workers/{WORKER}/stats?days=1"),
        format!("/v1/workers/{WORKER}/stats?days=365"),
        "/v1/stats/overview".to_owned(),
        "/v1/stats/overview?days=365".to_owned(),
    ] {
        let answer = catalog.get(&path).await.expect(200).text();
        assert!(!answer.contains(CLIENT), "{path}: {answer}");
        assert!(!answer.contains(&hash), "{path}: {answer}");
    }
    let stored = database_text(&catalog).await;
    assert!(stored.contains(&hash), "the test finds what the database holds");
    assert!(!stored.contains(CLIENT), "the client address is in the database");

    catalog.stop().await;
});

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stats_are_cached_with_an_etag_and_bad_days_are_refused() {
    let catalog = TestCatalog::start(|_| {}).await;
    let first = catalog.get("/v1/stats/overview").await.expect(200);
    let etag = first.header("etag");
    assert!(first.header("cache-control").contains("max-age=3600"));
    assert_eq!(first.json()["total"], 0);
    catalog
        .get_with("/v1/stats/overview", &[("if-none-match", &etag)])
        .await
        .expect(304);
    // Recorded since, but the answer is cached for an hour.
    catalog
        .state()
        .store
        .record_downloads(&[rbee_store::analytics::NewDownload {
            at: chrono::Utc::now(),
            worker: WORKER.into(),
            version: "0.1.0".into(),
            platform: "linux-x86_64".into(),
            source: "v1".into(),
            client_family: "curl".into(),
            client_hash: None,
            license_id: None,
            complete: true,
            resumed: false,
        }])
        .await
        .unwrap();
    assert_eq!(
        catalog
            .get("/v1/stats/overview")
            .await
            .expect(200)
            .header("etag"),
        etag
    );
    let fresh = catalog.get("/v1/stats/overview?days=7").await.ok_json();
    assert_eq!(fresh["total"], 1, "another key is computed anew");
    let worker = catalog
        .get(&format!("/v1/workers/{WORKER}/stats?days=365"))
        .await
        .ok_json();
    assert_eq!(worker["per_day"].as_array().unwrap().len(), 365);
    for bad in ["0", "366", "-1", "x"] {
        catalog
            .get(&format!("/v1/stats/overview?days={bad}"))
            .await
            .error(400, Some("Bad request"));
    }
    catalog.get("/v1/workers/BAD!/stats").await.expect(400);
    catalog.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_catalogs_on_one_postgres_add_up() {
    let Some(db) = TestDatabase::postgres().await else {
        return;
    };
    let (a, build) = catalog_with_release(Some(db.url()), 10_000).await;
    let b = TestCatalog::start(|config| {
        config.database_url = Some(db.url().to_owned());
        config.analytics.stats_ttl = Duration::ZERO;
    })
    .await;
    assert_eq!(publish_big(&b).await.layer_digest, build.layer_digest);
    let pulls = async |catalog: &TestCatalog, n: usize| {
        for _ in 0..n {
            pull(catalog, &build, "crane/0.20").await;
        }
    };
    tokio::join!(pulls(&a, 3), pulls(&b, 2));
    wait_recorded(&a, 3).await;
    wait_recorded(&b, 2).await;
    for catalog in [&a, &b] {
        let stats = catalog
            .get(&format!("/v1/workers/{WORKER}/stats"))
            .await
            .ok_json();
        assert_eq!(stats["total"], 5, "{stats:#}");
        let overview = catalog.get("/v1/stats/overview").await.ok_json();
        assert_eq!(count(&overview["by_client_family"], "crane"), 5);
    }
    a.stop().await;
    b.stop().await;
    db.finish().await;
}

/// With the registry on S3 and presigned redirects on, the bytes go from
/// the bucket, which no node sees, so a download counts when it is handed
/// out: a registry GET answered with a 307 (a range to the end as a
/// resumed download; a probe, a HEAD, not at all), and a premium
/// `/v1/.../download` answered with a presigned URL, as a `/v1` download.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn presigned_downloads_count_when_handed_out() {
    const PREMIUM: &str = "premium-worker-rbee-cuda";
    let s3 = rbee_registry::storage::s3_server::S3TestServer::start();
    let catalog = TestCatalog::start(|config| {
        config.registry_s3 = Some(s3.options("catalog"));
        config.presigned_redirects = Some(Duration::from_secs(300));
        config.analytics.stats_ttl = Duration::ZERO;
    })
    .await;
    let build = publish_big(&catalog).await;

    // The registry answers a GET with a 307 to the bucket.
    let no_redirects = reqwest::Client::builder()
        .no_proxy()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();
    let answer = no_redirects
        .get(format!("{}{}", catalog.url, blob_path(&build)))
        .header("range", "bytes=0-99")
        .send()
        .await
        .unwrap();
    assert_eq!(answer.status(), 307);
    assert!(
        answer.headers()["location"]
            .to_str()
            .unwrap()
            .starts_with(&s3.endpoint)
    );
    // Followed (reqwest follows 307s, `Range` included): a whole pull, a
    // probe, a resume from the middle; and a HEAD (answered by the node).
    pull(&catalog, &build, "curl/8.5.0").await;
    assert_eq!(pull_range(&catalog, &build, "0-99").await, 100);
    let half = build.size / 2;
    assert_eq!(
        pull_range(&catalog, &build, &format!("{half}-")).await as u64,
        build.size - half
    );
    let head = no_redirects
        .head(format!("{}{}", catalog.url, blob_path(&build)))
        .send()
        .await
        .unwrap();
    assert_eq!(head.status(), 200);

    // A premium download, answered with a presigned URL of the bucket.
    let _premium = catalog
        .publish_premium(PREMIUM, "https://rbee.dev/buy")
        .await;
    let (_, key) = catalog
        .state()
        .store
        .create_license(
            "test",
            rbee_store::NewLicense {
                owner: "customer".into(),
                grants: vec![rbee_store::Grant::Worker(PREMIUM.into())],
                expires_at: None,
                perpetual_fallback: false,
            },
        )
        .await
        .unwrap();
    let platform = host_platform().unwrap();
    let download = catalog
        .get_with(
            &format!("/v1/workers/{PREMIUM}/1.0.0/download?platform={platform}"),
            &[
                ("authorization", &format!("Bearer {}", key.expose())),
                ("user-agent", "rbee-worker/0.1.0"),
            ],
        )
        .await
        .ok_json();
    let url = download["download_url"].as_str().unwrap();
    assert!(url.starts_with(&s3.endpoint), "{download:#}");

    // The whole pull, the resume, the premium download; not the probe
    // (with one event too many, the stats below would show it).
    wait_recorded(&catalog, 3).await;
    let stats = catalog
        .get(&format!("/v1/workers/{WORKER}/stats"))
        .await
        .ok_json();
    assert_eq!(stats["total"], 2, "{stats:#}");
    assert_eq!(stats["incomplete"], 0, "{stats:#}");
    assert_eq!(count(&stats["by_platform"], platform), 2);
    let premium = catalog
        .get(&format!("/v1/workers/{PREMIUM}/stats"))
        .await
        .ok_json();
    assert_eq!(premium["total"], 1, "{premium:#}");
    let overview = catalog.get("/v1/stats/overview").await.ok_json();
    assert_eq!(overview["total"], 3, "{overview:#}");
    assert_eq!(count(&overview["by_source"], "registry"), 2);
    assert_eq!(count(&overview["by_source"], "v1"), 1);
    assert_eq!(count(&overview["by_client_family"], "rbee-worker"), 1);
    // Nothing else arrives later (the probe, the HEAD).
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(catalog.state().analytics.counters().recorded(), 3);
    catalog.stop().await;
}
