//! The catalog against a hostile or broken registry. A real catalog with
//! its embedded registry holds the published workers (the origin); a fake
//! registry in front of it forwards every request, except those its rules
//! turn into misbehaviour: endless or dripping bodies, forged manifests,
//! 404s, 429s, corrupted blobs, a token service. A second catalog reads
//! through it, and must stay bounded in memory, time and upstream traffic,
//! serve what it can, and call invalid data a 502.
//!
//! Most tests read through the registry walk (`--no-catalog-view`), which
//! is also what a catalog with its view does before the view is built and
//! for what the view lacks. The last section runs the view's build and
//! rereads through the same hostile registry: the same limits, the same
//! errors, and a good copy never replaced by invalid data.

mod common;

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::body::Body;
use axum::extract::{Request, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::Response;
use bytes::Bytes;
use common::catalog::{TestCatalog, WORKER, other_worker, publish_files};
use common::publishing::{CATALOG_REPO, REPO};
use common::{OCI_INDEX, OCI_MANIFEST, sha256_digest};
use futures_util::StreamExt;
use serde_json::{Value, json};

// ---- the hostile registry ---------------------------------------------------

/// What the fake registry does to a request for one path.
#[derive(Debug, Clone)]
enum Act {
    /// 200, then one space every interval, forever.
    Drip(Duration),
    /// 200 and `bytes` spaces, announced in `Content-Length` or not.
    Flood { bytes: u64, announce: bool },
    /// 200 with this body.
    Serve(&'static str, Bytes),
    /// This status (and `Retry-After` seconds), no forwarding.
    Status(u16, Option<u64>),
    /// Forward, with the first byte of the body changed.
    Corrupt,
}

struct Shared {
    origin: String,
    url: String,
    rules: Mutex<Vec<(String, Act)>>,
    /// `GET /path?query` of every request seen, in order.
    seen: Mutex<Vec<String>>,
    /// Bytes `Flood` bodies handed to the connection.
    flooded: AtomicU64,
    /// When set, `/v2/` requests need `Authorization: Bearer <this>`,
    /// which `/token` hands out.
    token: Option<&'static str>,
    http: reqwest::Client,
}

struct Hostile {
    url: String,
    shared: Arc<Shared>,
    task: tokio::task::JoinHandle<()>,
}

impl Hostile {
    async fn start(origin: &str, token: Option<&'static str>) -> Hostile {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        let shared = Arc::new(Shared {
            origin: origin.trim_end_matches('/').to_owned(),
            url: url.clone(),
            rules: Mutex::new(Vec::new()),
            seen: Mutex::new(Vec::new()),
            flooded: AtomicU64::new(0),
            token,
            http: reqwest::Client::builder().no_proxy().build().unwrap(),
        });
        let app = axum::Router::new()
            .fallback(handle)
            .with_state(shared.clone());
        let task = tokio::spawn(async move {
            axum::serve(listener, app).await.unwrap();
        });
        Hostile { url, shared, task }
    }

    /// From now on, answer `GET path` with `act`.
    fn rule(&self, path: &str, act: Act) {
        let mut rules = self.shared.rules.lock().unwrap();
        rules.retain(|(p, _)| p != path);
        rules.push((path.to_owned(), act));
    }

    /// Forward everything again.
    fn recover(&self) {
        self.shared.rules.lock().unwrap().clear();
    }

    /// Requests seen whose `GET /path?query` contains `part`.
    fn count(&self, part: &str) -> usize {
        self.shared
            .seen
            .lock()
            .unwrap()
            .iter()
            .filter(|s| s.contains(part))
            .count()
    }

    fn seen(&self) -> Vec<String> {
        self.shared.seen.lock().unwrap().clone()
    }

    /// Waits (bounded) until a request containing `part` was seen.
    async fn wait_for(&self, part: &str) {
        for _ in 0..200 {
            if self.count(part) > 0 {
                return;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        panic!("no request for {part}; seen {:?}", self.seen());
    }
}

impl Drop for Hostile {
    fn drop(&mut self) {
        self.task.abort();
    }
}

fn spaces(n: usize) -> Bytes {
    Bytes::from(vec![b' '; n])
}

async fn handle(State(shared): State<Arc<Shared>>, req: Request) -> Response {
    let path = req.uri().path().to_owned();
    let path_and_query = req
        .uri()
        .path_and_query()
        .map(|p| p.to_string())
        .unwrap_or_default();
    shared
        .seen
        .lock()
        .unwrap()
        .push(format!("{} {path_and_query}", req.method()));
    if let Some(token) = shared.token {
        if path == "/token" {
            return Response::new(Body::from(json!({ "token": token }).to_string()));
        }
        let bearer = format!("Bearer {token}");
        if req
            .headers()
            .get(header::AUTHORIZATION)
            .map(|v| v.as_bytes())
            != Some(bearer.as_bytes())
        {
            let mut resp = Response::new(Body::from(r#"{"errors":[{"code":"UNAUTHORIZED"}]}"#));
            *resp.status_mut() = StatusCode::UNAUTHORIZED;
            let challenge = format!(r#"Bearer realm="{}/token",service="hostile""#, shared.url);
            resp.headers_mut().insert(
                header::WWW_AUTHENTICATE,
                HeaderValue::from_str(&challenge).unwrap(),
            );
            return resp;
        }
    }
    let act = shared
        .rules
        .lock()
        .unwrap()
        .iter()
        .find(|(p, _)| *p == path)
        .map(|(_, a)| a.clone());
    let mut resp = match act {
        Some(Act::Drip(every)) => Response::new(Body::from_stream(futures_util::stream::unfold(
            (),
            move |()| async move {
                tokio::time::sleep(every).await;
                Some((Ok::<_, std::io::Error>(spaces(1)), ()))
            },
        ))),
        Some(Act::Flood { bytes, announce }) => {
            let shared = shared.clone();
            let body = Body::from_stream(futures_util::stream::unfold(0u64, move |sent| {
                let shared = shared.clone();
                async move {
                    if sent >= bytes {
                        return None;
                    }
                    let n = (bytes - sent).min(64 << 10);
                    shared.flooded.fetch_add(n, Ordering::SeqCst);
                    Some((Ok::<_, std::io::Error>(spaces(n as usize)), sent + n))
                }
            }));
            let mut resp = Response::new(body);
            if announce {
                resp.headers_mut()
                    .insert(header::CONTENT_LENGTH, HeaderValue::from(bytes));
            }
            resp
        }
        Some(Act::Serve(content_type, body)) => {
            let mut resp = Response::new(Body::from(body));
            resp.headers_mut()
                .insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
            resp
        }
        Some(Act::Status(status, retry_after)) => {
            let code = match status {
                404 => "MANIFEST_UNKNOWN",
                429 => "TOOMANYREQUESTS",
                _ => "UNAVAILABLE",
            };
            let mut resp = Response::new(Body::from(
                json!({ "errors": [{ "code": code, "message": "hostile" }] }).to_string(),
            ));
            *resp.status_mut() = StatusCode::from_u16(status).unwrap();
            if let Some(secs) = retry_after {
                resp.headers_mut()
                    .insert(header::RETRY_AFTER, HeaderValue::from(secs));
            }
            resp
        }
        Some(Act::Corrupt) | None => {
            let corrupt = matches!(act, Some(Act::Corrupt));
            let mut out = shared
                .http
                .get(format!("{}{path_and_query}", shared.origin));
            for accept in req.headers().get_all(header::ACCEPT) {
                out = out.header(header::ACCEPT, accept);
            }
            let upstream = match out.send().await {
                Ok(r) => r,
                Err(e) => {
                    let mut resp = Response::new(Body::from(e.to_string()));
                    *resp.status_mut() = StatusCode::BAD_GATEWAY;
                    return resp;
                }
            };
            let mut first = corrupt;
            let mut resp = Response::builder().status(upstream.status().as_u16());
            for (name, value) in upstream.headers() {
                resp = resp.header(name, value);
            }
            let body = upstream.bytes_stream().map(move |chunk| {
                let mut chunk = chunk.map_err(std::io::Error::other)?;
                if first && !chunk.is_empty() {
                    first = false;
                    let mut bytes = chunk.to_vec();
                    bytes[0] ^= 0xff;
                    chunk = Bytes::from(bytes);
                }
                Ok::<_, std::io::Error>(chunk)
            });
            resp.body(Body::from_stream(body)).unwrap()
        }
    };
    if !resp.headers().contains_key(header::CONTENT_TYPE) {
        resp.headers_mut()
            .insert(header::CONTENT_TYPE, HeaderValue::from_static(OCI_INDEX));
    }
    resp
}

// ---- setting up --------------------------------------------------------------

/// The origin (a catalog with its embedded registry, the example worker
/// published at 0.1.0), the hostile registry in front of it, and the
/// catalog under test reading through it with `configure` applied.
async fn setup(
    token: Option<&'static str>,
    configure: impl FnOnce(&mut rbee_catalog::CatalogConfig),
) -> (TestCatalog, Hostile, TestCatalog) {
    let origin = TestCatalog::embedded().await;
    origin.publish_version("0.1.0").await;
    let hostile = Hostile::start(&origin.url, token).await;
    let catalog = TestCatalog::external(&hostile.url, |c| {
        c.catalog_view = false;
        c.upstream.deadline = Duration::from_secs(3);
        configure(c);
    })
    .await;
    (origin, hostile, catalog)
}

/// A catalog walking the registry at `url` (no view in its database).
async fn walking(url: &str) -> TestCatalog {
    TestCatalog::external(url, |c| c.catalog_view = false).await
}

fn ttls(secs_index: f64, secs_metadata: f64) -> rbee_catalog::catalog::CacheTtls {
    rbee_catalog::catalog::CacheTtls {
        index: Duration::from_secs_f64(secs_index),
        metadata: Duration::from_secs_f64(secs_metadata),
    }
}

/// A document of the origin's registry, by `/v2/...` path.
async fn origin_get(origin: &TestCatalog, path: &str) -> Bytes {
    let resp = origin
        .http
        .get(format!("{}{path}", origin.url))
        .header(
            header::ACCEPT.as_str(),
            format!("{OCI_INDEX}, {OCI_MANIFEST}"),
        )
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200, "{path}");
    resp.bytes().await.unwrap()
}

async fn origin_json(origin: &TestCatalog, path: &str) -> Value {
    serde_json::from_slice(&origin_get(origin, path).await).unwrap()
}

/// Makes the hostile registry answer release 0.1.0 of the example worker
/// with its real image index, each platform manifest edited by `edit`
/// (served under its new digest). Returns the forged index.
async fn forge_platform_manifests(
    origin: &TestCatalog,
    hostile: &Hostile,
    edit: impl Fn(&mut Value),
) -> Value {
    let mut index = origin_json(origin, &format!("/v2/{REPO}/manifests/0.1.0")).await;
    for entry in index["manifests"].as_array_mut().unwrap() {
        let digest = entry["digest"].as_str().unwrap().to_owned();
        let mut manifest = origin_json(origin, &format!("/v2/{REPO}/manifests/{digest}")).await;
        edit(&mut manifest);
        let bytes = serde_json::to_vec(&manifest).unwrap();
        let forged = sha256_digest(&bytes);
        hostile.rule(
            &format!("/v2/{REPO}/manifests/{forged}"),
            Act::Serve(OCI_MANIFEST, bytes.clone().into()),
        );
        entry["digest"] = forged.into();
        entry["size"] = bytes.len().into();
    }
    hostile.rule(
        &format!("/v2/{REPO}/manifests/0.1.0"),
        Act::Serve(OCI_INDEX, serde_json::to_vec(&index).unwrap().into()),
    );
    index
}

/// Makes the hostile registry serve `index` as the catalog index.
async fn forge_catalog_index(origin: &TestCatalog, hostile: &Hostile, index: &Value) {
    let mut manifest = origin_json(origin, &format!("/v2/{CATALOG_REPO}/manifests/latest")).await;
    let doc = serde_json::to_vec(index).unwrap();
    let digest = sha256_digest(&doc);
    manifest["layers"][0]["digest"] = digest.clone().into();
    manifest["layers"][0]["size"] = doc.len().into();
    hostile.rule(
        &format!("/v2/{CATALOG_REPO}/blobs/{digest}"),
        Act::Serve("application/json", doc.into()),
    );
    hostile.rule(
        &format!("/v2/{CATALOG_REPO}/manifests/latest"),
        Act::Serve(OCI_MANIFEST, serde_json::to_vec(&manifest).unwrap().into()),
    );
}

/// The origin's catalog index document.
async fn catalog_index(origin: &TestCatalog) -> Value {
    let manifest = origin_json(origin, &format!("/v2/{CATALOG_REPO}/manifests/latest")).await;
    let digest = manifest["layers"][0]["digest"].as_str().unwrap();
    origin_json(origin, &format!("/v2/{CATALOG_REPO}/blobs/{digest}")).await
}

fn worker_ids(body: &Value) -> Vec<String> {
    body["workers"]
        .as_array()
        .unwrap()
        .iter()
        .map(|w| w["id"].as_str().unwrap().to_owned())
        .collect()
}

/// The value of one metric sample line, `name{labels} value`.
async fn metric(catalog: &TestCatalog, sample: &str) -> f64 {
    let text = catalog.get("/metrics").await.expect(200).text();
    text.lines()
        .find_map(|l| l.strip_prefix(sample)?.strip_prefix(' ')?.parse().ok())
        .unwrap_or_else(|| panic!("no {sample} in\n{text}"))
}

const LATEST_MANIFEST: &str = "/v2/rbee/catalog/manifests/latest";

// ---- size limits ------------------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn oversized_manifests_are_refused_without_being_read_whole() {
    let (_origin, hostile, catalog) = setup(None, |_| {}).await;

    // 3 GiB announced: refused on the Content-Length.
    hostile.rule(
        LATEST_MANIFEST,
        Act::Flood {
            bytes: 3 << 30,
            announce: true,
        },
    );
    catalog
        .get("/v1/workers")
        .await
        .error(502, Some("Registry data invalid"));
    let flooded = hostile.shared.flooded.load(Ordering::SeqCst);
    eprintln!("3 GiB announced: {flooded} bytes handed to the connection");
    assert!(flooded < 64 << 20, "{flooded} bytes of 3 GiB were sent");

    // 50 MB, not announced: reading stops at the 4 MiB cap.
    hostile.shared.flooded.store(0, Ordering::SeqCst);
    hostile.rule(
        LATEST_MANIFEST,
        Act::Flood {
            bytes: 50_000_000,
            announce: false,
        },
    );
    catalog.get("/ready").await.error(503, Some("Not ready"));
    catalog
        .get("/workers")
        .await
        .error(502, Some("Registry data invalid"));
    let flooded = hostile.shared.flooded.load(Ordering::SeqCst);
    eprintln!("50 MB unannounced, read twice: {flooded} bytes handed to the connection");
    assert!(
        flooded < 48 << 20,
        "{flooded} bytes of 50 MB were sent for two reads"
    );
}

// ---- time limits ------------------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dripping_manifest_times_out_and_holds_up_no_one() {
    let (_origin, hostile, catalog) = setup(None, |c| {
        c.ttls = ttls(0.2, 600.0);
    })
    .await;
    let warm = catalog.get("/v1/workers").await.ok_json();
    assert_eq!(worker_ids(&warm), [WORKER]);
    hostile.rule(LATEST_MANIFEST, Act::Drip(Duration::from_millis(500)));
    tokio::time::sleep(Duration::from_millis(300)).await; // past the index TTL

    // Every list, `/ready` and the other routes answer from the cache at
    // once (stale), together, while one refresh drips.
    let started = Instant::now();
    let paths = [
        "/v1/workers",
        "/workers",
        "/ready",
        "/v1/workers",
        "/workers",
        "/ready",
    ];
    let replies = futures_util::future::join_all(paths.iter().map(|p| catalog.get(p))).await;
    let took = started.elapsed();
    for reply in replies {
        let reply = reply.expect(200);
        if reply.request.contains("/ready") {
            assert_eq!(reply.json()["stale"], true);
        } else {
            assert!(
                reply.header("warning").starts_with("110 "),
                "{}",
                reply.request
            );
            assert_eq!(worker_ids(&reply.json()), [WORKER]);
        }
    }
    assert!(took < Duration::from_secs(2), "stale answers took {took:?}");
    assert_eq!(
        hostile.count(&format!("GET {LATEST_MANIFEST}")),
        2,
        "the warm-up and one shared refresh"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_nothing_cached_waiters_share_one_fetch_until_the_deadline() {
    let (_origin, hostile, catalog) = setup(None, |_| {}).await;
    hostile.rule(LATEST_MANIFEST, Act::Drip(Duration::from_millis(500)));
    let started = Instant::now();
    let replies = futures_util::future::join_all(
        ["/v1/workers", "/workers", "/v1/workers", "/ready"]
            .iter()
            .map(|p| catalog.get(p)),
    )
    .await;
    let took = started.elapsed();
    for reply in replies {
        let status = reply.status;
        assert!(
            status == 502 || status == 503,
            "{}: {status}",
            reply.request
        );
    }
    // One fetch with a 3 s deadline, not four in a row.
    assert!(took < Duration::from_secs(5), "took {took:?}");
    assert!(took >= Duration::from_secs(3), "took {took:?}");
    assert_eq!(hostile.count(&format!("GET {LATEST_MANIFEST}")), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stopping_does_not_wait_for_a_dripping_registry() {
    let (_origin, hostile, catalog) = setup(None, |c| {
        // A deadline far longer than the stop may take.
        c.upstream.deadline = Duration::from_secs(60);
    })
    .await;
    hostile.rule(LATEST_MANIFEST, Act::Drip(Duration::from_millis(500)));
    let url = format!("{}/v1/workers", catalog.url);
    let http = catalog.http.clone();
    let waiting = tokio::spawn(async move { http.get(url).send().await.map(|r| r.status()) });
    hostile.wait_for(LATEST_MANIFEST).await;
    let started = Instant::now();
    tokio::time::timeout(Duration::from_secs(10), catalog.stop())
        .await
        .expect("the catalog stops");
    let took = started.elapsed();
    assert!(took < Duration::from_secs(3), "stop took {took:?}");
    let answer = waiting.await.unwrap();
    assert!(
        answer.as_ref().map_or(true, |s| *s == 502),
        "the waiting request: {answer:?}"
    );
}

// ---- counts and fan-out -------------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn too_many_or_duplicate_platforms_are_invalid_and_never_replace_a_good_copy() {
    let (origin, hostile, catalog) = setup(None, |c| {
        c.ttls = ttls(600.0, 0.2);
    })
    .await;
    let download = format!("/v1/workers/{WORKER}/0.1.0/download?platform=linux-x86_64");
    let good = catalog.get(&download).await.ok_json();

    let real = origin_json(&origin, &format!("/v2/{REPO}/manifests/0.1.0")).await;
    let first = real["manifests"][0].clone();
    let with_entries = |entries: Vec<Value>| {
        let mut index = real.clone();
        index["manifests"] = entries.into();
        Act::Serve(OCI_INDEX, serde_json::to_vec(&index).unwrap().into())
    };
    // 2,000 entries, all distinct digests: refused on the count, before
    // any of them is read.
    let many: Vec<Value> = (0..2000)
        .map(|n| {
            let mut e = first.clone();
            e["digest"] = format!("sha256:{n:064x}").into();
            e
        })
        .collect();
    // The same platform twice.
    let twice = vec![first.clone(), first.clone()];
    for (what, act) in [
        ("2,000 platforms", with_entries(many)),
        ("a platform twice", with_entries(twice)),
    ] {
        hostile.rule(&format!("/v2/{REPO}/manifests/0.1.0"), act);
        tokio::time::sleep(Duration::from_millis(300)).await; // past the release TTL
        let before = hostile.count("/manifests/sha256:");
        // The good copy stands in, marked stale.
        let reply = catalog.get(&download).await.expect(200);
        assert!(reply.header("warning").starts_with("110 "), "{what}");
        assert_eq!(reply.json(), good, "{what}");
        assert_eq!(
            hostile.count("/manifests/sha256:"),
            before,
            "{what}: fan-out"
        );
    }

    // A catalog with nothing cached answers 502.
    let cold = walking(&hostile.url).await;
    cold.get(&download)
        .await
        .error(502, Some("Registry data invalid"));

    // Once the registry recovers, the real release is served fresh.
    hostile.recover();
    tokio::time::sleep(Duration::from_millis(300)).await;
    let reply = catalog.get(&download).await.expect(200);
    assert_eq!(reply.header("warning"), "");
    assert_eq!(reply.json(), good);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unreadable_worker_is_left_out_and_a_huge_list_is_capped() {
    let (origin, hostile, catalog) = setup(None, |_| {}).await;
    let (_broken, files) = other_worker("broken-cpu", "0.1.0", false);
    publish_files(&origin.registry_url, &files).await;
    // Its version tag is gone.
    hostile.rule(
        "/v2/rbee/broken-cpu/manifests/0.1.0",
        Act::Status(404, None),
    );
    for path in ["/workers", "/v1/workers"] {
        let body = catalog.get(path).await.ok_json();
        assert_eq!(worker_ids(&body), [WORKER], "{path}");
    }
    catalog.get("/ready").await.expect(200);
    catalog
        .get("/v1/workers/broken-cpu")
        .await
        .error(404, Some("Worker not found"));
    let skipped = metric(
        &catalog,
        r#"rbee_catalog_list_skipped_total{reason="unreadable"}"#,
    )
    .await;
    assert_eq!(skipped, 2.0);
    assert_eq!(
        hostile.count("GET /v2/rbee/catalog/manifests/latest"),
        1,
        "each list read the index once (and the second from the cache)"
    );

    // 2,000 more workers whose repositories do not answer: the list reads
    // at most 500 releases and still serves the one that works.
    let mut index = catalog_index(&origin).await;
    let template = index["workers"][0].clone();
    let workers = index["workers"].as_array_mut().unwrap();
    for n in 0..2000 {
        let mut w = template.clone();
        w["id"] = format!("zz-{n:04}").into();
        w["repository"] = format!("rbee/zz-{n:04}").into();
        workers.push(w);
    }
    let listed = workers.len();
    forge_catalog_index(&origin, &hostile, &index).await;
    let fresh = walking(&hostile.url).await;
    let body = fresh.get("/v1/workers").await.ok_json();
    assert!(worker_ids(&body).contains(&WORKER.to_owned()), "{body}");
    let asked = hostile.count("GET /v2/rbee/zz-");
    assert!(asked <= 500, "{asked} upstream reads for one list");
    let over = metric(
        &fresh,
        r#"rbee_catalog_list_skipped_total{reason="over_limit"}"#,
    )
    .await;
    assert_eq!(over as usize, listed - 500);
}

/// With the index always expired, each read of it is an upstream fetch:
/// a list must read it once, not once more per worker (which also made a
/// list answer 404 when the index changed between two reads).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_list_reads_the_catalog_index_once() {
    let (origin, hostile, catalog) = setup(None, |c| {
        c.ttls = ttls(0.0, 600.0);
    })
    .await;
    for id in ["second-cpu", "third-cpu"] {
        let (_fixture, files) = other_worker(id, "0.1.0", false);
        publish_files(&origin.registry_url, &files).await;
    }
    for path in [
        "/workers".to_owned(),
        "/v1/workers".to_owned(),
        format!("/v1/workers/{WORKER}"),
        format!("/v1/workers/{WORKER}/versions"),
    ] {
        let before = hostile.count(&format!("GET {LATEST_MANIFEST}"));
        catalog.get(&path).await.ok_json();
        let reads = hostile.count(&format!("GET {LATEST_MANIFEST}")) - before;
        assert_eq!(reads, 1, "{path} read the catalog index {reads} times");
    }
}

// ---- the blob proxy and file names --------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_corrupted_blob_is_never_a_clean_200() {
    let (origin, hostile, catalog) = setup(None, |_| {}).await;
    let download = catalog
        .get(&format!(
            "/v1/workers/{WORKER}/0.1.0/download?platform=linux-x86_64"
        ))
        .await
        .ok_json();
    let digest = download["checksum"].as_str().unwrap();
    hostile.rule(&format!("/v2/{REPO}/blobs/{digest}"), Act::Corrupt);
    let blob = format!(
        "{}/v1/workers/{WORKER}/0.1.0/blob?platform=linux-x86_64",
        catalog.url
    );
    let resp = catalog.http.get(&blob).send().await.unwrap();
    assert_eq!(resp.status(), 200, "the headers went out before the bytes");
    let body = resp.bytes().await;
    assert!(
        body.is_err(),
        "a complete transfer of wrong bytes: {:?}",
        body.map(|b| b.len())
    );

    // Uncorrupted, the same route delivers the right bytes.
    hostile.recover();
    let resp = catalog.http.get(&blob).send().await.unwrap();
    assert_eq!(resp.status(), 200);
    let bytes = resp.bytes().await.unwrap();
    assert_eq!(sha256_digest(&bytes), digest);
    assert_eq!(bytes.len() as u64, download["size"].as_u64().unwrap());
    drop(origin);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn titles_are_one_encoded_file_name_and_control_characters_are_a_502() {
    let (origin, hostile, catalog) = setup(None, |_| {}).await;
    let set_title = |title: &'static str| {
        move |m: &mut Value| {
            m["layers"][0]["annotations"]["org.opencontainers.image.title"] = title.into();
        }
    };
    forge_platform_manifests(&origin, &hostile, set_title(r#"x"; filename="evil.sh"#)).await;
    let resp = catalog
        .http
        .get(format!(
            "{}/v1/workers/{WORKER}/0.1.0/blob?platform=linux-x86_64",
            catalog.url
        ))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    let disposition = resp.headers()["content-disposition"]
        .to_str()
        .unwrap()
        .to_owned();
    assert_eq!(
        disposition,
        r#"attachment; filename="x___filename__evil.sh"; filename*=UTF-8''x%22%3B%20filename%3D%22evil.sh"#
    );
    resp.bytes().await.unwrap();

    // A CR/LF in the title is invalid upstream data: 502, on every route
    // that reads the release, not a 400 blamed on the client.
    let cold = walking(&hostile.url).await;
    forge_platform_manifests(&origin, &hostile, set_title("a.tar.gz\r\nSet-Cookie: x=y")).await;
    for path in [
        format!("/v1/workers/{WORKER}/0.1.0/blob?platform=linux-x86_64"),
        format!("/v1/workers/{WORKER}/0.1.0/download?platform=linux-x86_64"),
    ] {
        cold.get(&path)
            .await
            .error(502, Some("Registry data invalid"));
    }
}

// ---- rate limits and auth ---------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_429_with_nothing_cached_is_not_retried_on_every_request() {
    let (_origin, hostile, catalog) = setup(None, |_| {}).await;
    hostile.rule(LATEST_MANIFEST, Act::Status(429, Some(30)));
    for _ in 0..5 {
        let reply = catalog.get("/v1/workers").await;
        let retry: u64 = reply.header("retry-after").parse().unwrap();
        assert!((29..=30).contains(&retry), "Retry-After {retry}");
        reply.error(503, Some("Registry rate-limited"));
    }
    assert_eq!(hostile.count(&format!("GET {LATEST_MANIFEST}")), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn auth_is_answered_once_per_scope_and_never_probed() {
    let (_origin, hostile, catalog) = setup(Some("good-token"), |_| {}).await;
    for _ in 0..2 {
        catalog.get("/v1/workers").await.ok_json();
        catalog
            .get(&format!("/v1/workers/{WORKER}/versions"))
            .await
            .ok_json();
        catalog
            .get(&format!("/workers/{WORKER}/PKGBUILD"))
            .await
            .expect(200);
    }
    let seen = hostile.seen();
    assert_eq!(
        seen.iter().filter(|s| *s == "GET /v2/").count(),
        0,
        "no /v2/ probe: {seen:#?}"
    );
    // One token for the catalog's repository, one for the worker's.
    assert_eq!(hostile.count("GET /token"), 2, "{seen:#?}");
}

// ---- CPU -------------------------------------------------------------------------

/// On a single-threaded runtime, anything heavy done on the async thread
/// would stall every other request: a large catalog index must be parsed
/// and validated elsewhere.
#[tokio::test(flavor = "current_thread")]
async fn parsing_a_large_index_holds_up_no_other_request() {
    let (origin, hostile, catalog) = setup(None, |c| {
        c.upstream.deadline = Duration::from_secs(60);
    })
    .await;
    // Large, yet within the schema's limits (1,000 versions per worker,
    // 10,000 workers, 4 MiB): the index must still be served, not refused.
    let mut index = catalog_index(&origin).await;
    let versions = index["workers"][0]["versions"].as_array_mut().unwrap();
    versions.extend((0..998).map(|n| Value::from(format!("0.0.{n}"))));
    let pad = index["workers"][0].clone();
    let workers = index["workers"].as_array_mut().unwrap();
    workers.extend((0..9_000).map(|n| {
        let mut entry = pad.clone();
        entry["id"] = Value::from(format!("zz-pad-{n:05}"));
        entry["repository"] = Value::from(format!("rbee/zz-pad-{n:05}"));
        entry["versions"] = serde_json::json!(["0.1.0"]);
        entry["latest"] = Value::from("0.1.0");
        entry
    }));
    forge_catalog_index(&origin, &hostile, &index).await;
    // A heartbeat on the (only) async thread: any stall shows as a late tick.
    let beating = Arc::new(std::sync::atomic::AtomicBool::new(true));
    let heartbeat = {
        let beating = beating.clone();
        tokio::spawn(async move {
            let mut slowest = Duration::ZERO;
            while beating.load(Ordering::SeqCst) {
                let tick = Instant::now();
                tokio::time::sleep(Duration::from_millis(10)).await;
                slowest = slowest.max(tick.elapsed());
            }
            slowest
        })
    };
    let started = Instant::now();
    let status = catalog.get("/v1/workers").await.status;
    let took = started.elapsed();
    beating.store(false, Ordering::SeqCst);
    let slowest = heartbeat.await.unwrap();
    eprintln!(
        "list of a 9,001-worker index: {status} after {took:?}; longest stall of the async thread {slowest:?}"
    );
    assert_eq!(status, 200);
    assert!(
        slowest < Duration::from_millis(300),
        "the async thread stalled for {slowest:?}"
    );
}

// ---- the view, built and reread through the hostile registry ------------------------

/// Waits (at most 10 s) until `catalog`'s view was built.
async fn view_built(catalog: &TestCatalog) {
    let view = catalog.state().catalog.view().expect("the view is on");
    for _ in 0..1000 {
        if view.is_ready() {
            return;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    panic!("the view was not built within 10 s");
}

/// A catalog index flooding the view's first build: the build reads it
/// only up to the cap, listings answer the walk's 502 until the registry
/// recovers, the view is then built by the periodic check, and from then
/// on the hostile registry cannot take the listings away.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_view_is_built_within_the_same_limits_and_errors() {
    let origin = TestCatalog::embedded().await;
    origin.publish_version("0.1.0").await;
    let hostile = Hostile::start(&origin.url, None).await;
    let flood = Act::Flood {
        bytes: 50_000_000,
        announce: false,
    };
    hostile.rule(LATEST_MANIFEST, flood.clone());
    let catalog = TestCatalog::external(&hostile.url, |c| {
        c.upstream.deadline = Duration::from_secs(3);
        // The index digest is compared every second.
        c.ttls = ttls(1.0, 600.0);
    })
    .await;
    catalog
        .get("/v1/workers")
        .await
        .error(502, Some("Registry data invalid"));
    catalog.get("/ready").await.error(503, Some("Not ready"));
    assert!(!catalog.state().catalog.view().unwrap().is_ready());
    let per_read = |hostile: &Hostile| {
        let reads = hostile.count(&format!("GET {LATEST_MANIFEST}")) as u64;
        hostile.shared.flooded.load(Ordering::SeqCst) / reads.max(1)
    };
    assert!(
        per_read(&hostile) < 24 << 20,
        "{} bytes of 50 MB sent per read",
        per_read(&hostile)
    );

    hostile.recover();
    view_built(&catalog).await;
    hostile.rule(LATEST_MANIFEST, flood);
    for path in ["/v1/workers", "/workers"] {
        let reply = catalog.get(path).await.expect(200);
        assert_eq!(worker_ids(&reply.json()), [WORKER], "{path}");
    }
    // The periodic check meets the flood again, still within the cap.
    hostile.wait_for(LATEST_MANIFEST).await;
    tokio::time::sleep(Duration::from_millis(1500)).await;
    assert!(
        per_read(&hostile) < 24 << 20,
        "{} bytes per read",
        per_read(&hostile)
    );
    assert_eq!(
        worker_ids(&catalog.get("/v1/workers").await.ok_json()),
        [WORKER]
    );
}

/// Releases forged into something invalid (2,000 platforms, a platform
/// twice, a title with CR/LF) are refused by the view's reread as by the
/// walk, before any platform manifest is read: a stored good copy stays
/// (a registry turning hostile cannot replace it), and a view built from
/// the forged registry leaves them out and answers the walk's 502.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn invalid_releases_never_enter_the_view_nor_replace_a_good_copy() {
    let (origin, hostile, catalog) = setup(None, |c| c.catalog_view = true).await;
    let download = format!("/v1/workers/{WORKER}/0.1.0/download?platform=linux-x86_64");
    let good = catalog.get(&download).await.ok_json();
    assert!(catalog.state().catalog.view().unwrap().is_ready());

    let real = origin_json(&origin, &format!("/v2/{REPO}/manifests/0.1.0")).await;
    let first = real["manifests"][0].clone();
    let with_entries = |entries: Vec<Value>| {
        let mut index = real.clone();
        index["manifests"] = entries.into();
        Act::Serve(OCI_INDEX, serde_json::to_vec(&index).unwrap().into())
    };
    let many: Vec<Value> = (0..2000)
        .map(|n| {
            let mut e = first.clone();
            e["digest"] = format!("sha256:{n:064x}").into();
            e
        })
        .collect();
    let twice = vec![first.clone(), first.clone()];
    for (what, act) in [
        ("2,000 platforms", with_entries(many)),
        ("a platform twice", with_entries(twice)),
    ] {
        hostile.rule(&format!("/v2/{REPO}/manifests/0.1.0"), act);
        let before = hostile.count("/manifests/sha256:");
        // As a webhook would: the repository changed. The next read
        // waits for the reread.
        catalog.state().catalog.heard(REPO);
        let reply = catalog.get(&download).await.expect(200);
        assert_eq!(reply.header("warning"), "", "{what}: from the view");
        assert_eq!(reply.json(), good, "{what}");
        assert_eq!(
            hostile.count("/manifests/sha256:"),
            before,
            "{what}: fan-out"
        );
    }
    hostile.recover();
    forge_platform_manifests(&origin, &hostile, |m| {
        m["layers"][0]["annotations"]["org.opencontainers.image.title"] =
            "a.tar.gz\r\nSet-Cookie: x=y".into();
    })
    .await;
    catalog.state().catalog.heard(REPO);
    assert_eq!(catalog.get(&download).await.ok_json(), good, "CR/LF title");

    // A view built from the forged registry: the release is left out of
    // the listings, and reading it is the walk's 502.
    let cold = TestCatalog::external(&hostile.url, |_| {}).await;
    view_built(&cold).await;
    assert!(worker_ids(&cold.get("/v1/workers").await.ok_json()).is_empty());
    for path in [
        download.clone(),
        format!("/v1/workers/{WORKER}/0.1.0/blob?platform=linux-x86_64"),
    ] {
        cold.get(&path)
            .await
            .error(502, Some("Registry data invalid"));
    }
}
