//! `Range` on the catalog's `/v1/.../blob` route (issue 18): one byte
//! range is answered 206 with `Content-Range`, a range past the end 416
//! with `Content-Range: bytes */SIZE`, every answer says
//! `Accept-Ranges: bytes`, on plain and signed (premium) URLs alike, and a
//! range never gets past the signature check. Analytics stay
//! completion-aware: a range that reaches the layer's end counts as the
//! end of a (resumed) download, one that stops short is not recorded.
//! And `rbee-worker-client`'s resume goes through it: a premium download
//! cut in the middle fetches only the rest on the next attempt.

mod analytics_support;
mod common;

use std::time::Duration;

use analytics_support::{catalog_with_release, wait_recorded};
use common::catalog::{TestCatalog, WORKER};
use common::install::{CatalogServer, CuttingProxy, host_build, release_with_host_build};
use common::pseudo_random;
use common::publishing::host_platform;
use rbee_store::{Grant, NewLicense};
use rbee_worker_client::{CatalogClient, ClientError, Installer};
use serde_json::json;

/// GET `path` on `catalog` with `Range: range` (if any).
async fn get(catalog: &TestCatalog, path: &str, range: Option<&str>) -> reqwest::Response {
    let mut req = catalog
        .http
        .get(format!("{}{path}", catalog.url))
        .header("user-agent", "curl/8.5.0");
    if let Some(range) = range {
        req = req.header("range", range);
    }
    req.send().await.unwrap()
}

fn header(resp: &reqwest::Response, name: &str) -> String {
    resp.headers()
        .get(name)
        .map(|v| v.to_str().unwrap().to_owned())
        .unwrap_or_default()
}

fn unix_now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs()
}

/// Marks a fixture's worker premium (with the pricing that needs).
fn premium(fixture: &common::publishing::Fixture) {
    fixture.edit_metadata(|m| {
        m["distribution"]["requires_license"] = true.into();
        m["pricing"] = json!({
            "amount": 49.0, "currency": "EUR", "purchase_url": "https://rbee.dev/buy"
        });
    });
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_blob_route_serves_one_range_and_refuses_one_past_the_end() {
    let (catalog, build) = catalog_with_release(None, 10_000).await;
    let platform = host_platform().unwrap();
    let path = format!("/v1/workers/{WORKER}/0.1.0/blob?platform={platform}");
    let size = build.size;
    let whole = get(&catalog, &path, None).await;
    assert_eq!(whole.status(), 200);
    assert_eq!(header(&whole, "accept-ranges"), "bytes");
    let whole = whole.bytes().await.unwrap();
    assert_eq!(whole.len() as u64, size);

    for (range, start, end) in [
        ("bytes=0-99".to_owned(), 0, 100),
        (format!("bytes={}-", size / 2), size / 2, size),
        ("bytes=-10".to_owned(), size - 10, size),
    ] {
        let resp = get(&catalog, &path, Some(&range)).await;
        assert_eq!(resp.status(), 206, "{range}");
        assert_eq!(header(&resp, "accept-ranges"), "bytes", "{range}");
        assert_eq!(
            header(&resp, "content-range"),
            format!("bytes {start}-{}/{size}", end - 1),
            "{range}"
        );
        assert_eq!(header(&resp, "content-length"), (end - start).to_string());
        let body = resp.bytes().await.unwrap();
        assert_eq!(&body[..], &whole[start as usize..end as usize], "{range}");
    }

    let past = get(&catalog, &path, Some(&format!("bytes={size}-"))).await;
    assert_eq!(past.status(), 416);
    assert_eq!(header(&past, "content-range"), format!("bytes */{size}"));
    let body: serde_json::Value = past.json().await.unwrap();
    assert_eq!(body["error"], "Range not satisfiable", "{body}");

    // A free build ignores a signed URL's `expires`, but one that is not
    // Unix seconds is the client's bug: a JSON 400, never the bytes.
    let odd = get(&catalog, &format!("{path}&expires=null"), None).await;
    assert_eq!(odd.status(), 400);
    let body: serde_json::Value = odd.json().await.unwrap();
    assert_eq!(body["error"], "Bad request", "{body}");
    let fine = get(&catalog, &format!("{path}&expires=1798765432"), None).await;
    assert_eq!(fine.status(), 200);
    catalog.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_signed_premium_url_serves_ranges_and_an_unsigned_one_nothing() {
    let catalog = TestCatalog::embedded().await;
    let host = host_platform().unwrap();
    let fixture = release_with_host_build("1.0.0", &pseudo_random(7, 1 << 20));
    premium(&fixture);
    let summary = catalog.publish(&fixture).await;
    let build = summary
        .platforms
        .iter()
        .find(|p| p.platform == host)
        .unwrap();
    let repository = format!("rbee-premium/{WORKER}");
    let expires = unix_now() + 600;
    let signature = catalog
        .state()
        .signer
        .sign(&repository, &build.layer_digest, expires);
    let path = format!("/v1/workers/{WORKER}/1.0.0/blob?platform={host}");
    let signed = format!("{path}&expires={expires}&signature={signature}");

    let resp = get(&catalog, &signed, Some("bytes=10-19")).await;
    assert_eq!(resp.status(), 206);
    assert_eq!(
        header(&resp, "content-range"),
        format!("bytes 10-19/{}", build.size)
    );
    assert_eq!(resp.bytes().await.unwrap().len(), 10);
    let resp = get(&catalog, &signed, Some(&format!("bytes={}-", build.size))).await;
    assert_eq!(resp.status(), 416);
    // A range is no way around the signature.
    let resp = get(&catalog, &path, Some("bytes=10-19")).await;
    assert_eq!(resp.status(), 403);
    catalog.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_range_counts_as_a_download_only_when_it_reaches_the_end() {
    let (catalog, build) = catalog_with_release(None, 10_000).await;
    let platform = host_platform().unwrap();
    let path = format!("/v1/workers/{WORKER}/0.1.0/blob?platform={platform}");
    // A probe of the first bytes: not a download, not recorded.
    let probe = get(&catalog, &path, Some("bytes=0-99")).await;
    assert_eq!(probe.status(), 206);
    assert_eq!(probe.bytes().await.unwrap().len(), 100);
    // Unsatisfiable: nothing is streamed, nothing recorded.
    let past = get(&catalog, &path, Some(&format!("bytes={}-", build.size))).await;
    assert_eq!(past.status(), 416);
    // The second half, as a resumed download sends it: its end.
    let half = build.size / 2;
    let rest = get(&catalog, &path, Some(&format!("bytes={half}-"))).await;
    assert_eq!(rest.status(), 206);
    assert_eq!(rest.bytes().await.unwrap().len() as u64, build.size - half);

    wait_recorded(&catalog, 1).await;
    // Transfers are queued and written in order; had the probe been
    // recorded, a second event would follow within the writer's next
    // batch (well under two seconds).
    let recorded = catalog
        .state()
        .analytics
        .wait_recorded(2, Duration::from_secs(2))
        .await;
    assert_eq!(recorded, 1, "only the range that reached the end counts");
    let stats = catalog
        .get(&format!("/v1/workers/{WORKER}/stats"))
        .await
        .ok_json();
    assert_eq!(stats["total"], 1, "{stats:#}");
    assert_eq!(stats["incomplete"], 0, "{stats:#}");
    catalog.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cut_premium_download_resumes_through_the_catalog() {
    const CUT: u64 = 1 << 20;
    let mut proxy = CuttingProxy::bind().await;
    let proxy_url = proxy.url.clone();
    // Download URLs (the signed `/blob` ones) point at the proxy; the
    // catalog API is asked directly.
    let catalog = CatalogServer::start_with(|config| config.public_url = Some(proxy_url)).await;
    proxy.start(catalog.running.addr, CUT);
    let fixture = release_with_host_build("0.1.0", &pseudo_random(11, 4 << 20));
    premium(&fixture);
    let summary = catalog.publish(&fixture).await;
    let build = host_build(&summary);
    assert!(build.size > 2 * CUT, "the archive is {} bytes", build.size);
    let (_, key) = catalog
        .running
        .state
        .store
        .create_license(
            "test",
            NewLicense {
                owner: "customer".into(),
                grants: vec![Grant::Worker(WORKER.into())],
                expires_at: None,
                perpetual_fallback: false,
            },
        )
        .await
        .unwrap();
    let dest = catalog.path("dest");
    let installer = || {
        let client = CatalogClient::new(&catalog.url)
            .unwrap()
            .with_license_key(Some(key.expose().to_owned()));
        Installer::new(client, &dest).unwrap()
    };
    let nothing = |_: u64, _: u64| {};
    match installer().install(WORKER, None, &nothing).await {
        Err(ClientError::Network(message)) => eprintln!("first attempt: {message}"),
        other => panic!("expected a network error, got {other:?}"),
    }
    let outcome = installer()
        .install(WORKER, None, &nothing)
        .await
        .expect("the second attempt completes the download");
    assert_eq!(outcome.installed().digest, build.layer_digest);

    let connections = proxy.log();
    assert_eq!(connections.len(), 2, "{connections:#?}");
    assert!(
        connections.iter().all(|c| c
            .request_head
            .starts_with(&format!("GET /v1/workers/{WORKER}/0.1.0/blob?"))),
        "both attempts GET the signed blob URL: {connections:#?}"
    );
    assert_eq!(
        connections[1].request_header("range"),
        Some(format!("bytes={CUT}-"))
    );
    assert!(
        connections[1].response_head.starts_with("HTTP/1.1 206"),
        "{connections:#?}"
    );
    assert_eq!(
        connections[1].body_bytes,
        build.size - CUT,
        "only the remainder is fetched"
    );
    catalog.stop().await;
}
