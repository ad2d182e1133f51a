//! Premium workers in the catalog: listings that say what a license
//! unlocks, downloads refused without one (403 with the purchase URL),
//! signed download URLs that plain HTTP clients fetch with no header and
//! that cannot be stretched, tampered with or pointed at another blob,
//! license verification, and per-address rate limits.

mod common;

use std::time::{SystemTime, UNIX_EPOCH};

use common::catalog::TestCatalog;
use rbee_catalog::rate_limit::RateLimit;
use serde_json::json;
use sha2::{Digest as _, Sha256};

const PREMIUM: &str = "premium-worker-rbee-cuda";
const PREMIUM_OTHER: &str = "premium-worker-rbee-rocm";
const PURCHASE: &str = "https://rbee.dev/buy/premium-worker-rbee-cuda";
const PLATFORM: &str = "linux-x86_64";

/// The repository and layer digest of `id` 1.0.0 on [`PLATFORM`].
async fn build_of(catalog: &TestCatalog, id: &str) -> (String, String) {
    let worker = catalog.get(&format!("/v1/workers/{id}")).await.ok_json();
    let versions = catalog
        .get(&format!("/v1/workers/{id}/versions"))
        .await
        .ok_json();
    let digest = versions["versions"][0]["platforms"]
        .as_array()
        .unwrap()
        .iter()
        .find(|b| b["platform"] == PLATFORM)
        .unwrap()["layer_digest"]
        .as_str()
        .unwrap()
        .to_owned();
    (worker["repository"].as_str().unwrap().to_owned(), digest)
}

fn unix_now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs()
}

/// A `/blob` URL of `id` 1.0.0 signed by the catalog's own key.
fn signed_blob_url(
    catalog: &TestCatalog,
    id: &str,
    repository: &str,
    digest: &str,
    expires: u64,
) -> String {
    let signature = catalog.state().signer.sign(repository, digest, expires);
    format!(
        "{}/v1/workers/{id}/1.0.0/blob?platform={PLATFORM}&expires={expires}&signature={signature}",
        catalog.url
    )
}

/// GETs `url` with a plain client and no header at all.
async fn plain_get(url: &str) -> (u16, Vec<u8>) {
    let resp = reqwest::Client::builder()
        .no_proxy()
        .build()
        .unwrap()
        .get(url)
        .send()
        .await
        .unwrap();
    let status = resp.status().as_u16();
    (status, resp.bytes().await.unwrap().to_vec())
}

#[tokio::test]
async fn premium_download_without_a_license_is_403_with_the_purchase_url() {
    let catalog = TestCatalog::embedded().await;
    let _fixture = catalog.publish_premium(PREMIUM, PURCHASE).await;

    // Listed, with the price; no `unlocked` without a key.
    let list = catalog.get("/v1/workers").await.ok_json();
    let entry = &list["workers"][0];
    assert_eq!(entry["requires_license"], true);
    assert_eq!(entry["pricing"]["purchase_url"], PURCHASE);
    assert_eq!(entry["pricing"]["currency"], "EUR");
    assert!(entry.get("unlocked").is_none(), "{entry}");
    let legacy = catalog.get("/workers").await.ok_json();
    assert_eq!(legacy["workers"][0]["requiresLicense"], true);
    assert_eq!(legacy["workers"][0]["pricing"]["purchase_url"], PURCHASE);

    // With a key that unlocks nothing, each entry says so, and the answer
    // is for this caller only.
    let keyed = catalog
        .get_with(
            "/v1/workers",
            &[("authorization", "Bearer rbee_lic_unknown")],
        )
        .await;
    assert_eq!(keyed.header("cache-control"), "private, no-store");
    assert!(keyed.header("vary").contains("authorization"));
    assert_eq!(keyed.ok_json()["workers"][0]["unlocked"], false);
    let keyed = catalog
        .get_with("/workers", &[("authorization", "Bearer rbee_lic_unknown")])
        .await
        .ok_json();
    assert_eq!(keyed["workers"][0]["unlocked"], false);

    let path = format!("/v1/workers/{PREMIUM}/1.0.0/download?platform={PLATFORM}");
    let body = catalog
        .get(&path)
        .await
        .error(403, Some("License required"));
    assert_eq!(body["purchase_url"], PURCHASE);
    assert!(body.get("download_url").is_none());
    assert!(body["message"].as_str().unwrap().contains("Authorization"));
    for key in ["Bearer rbee_lic_unknown", "Bearer not-a-key", "Basic eDp5"] {
        let body = catalog
            .get_with(&path, &[("authorization", key)])
            .await
            .error(403, Some("License required"));
        assert_eq!(body["purchase_url"], PURCHASE, "{key}");
    }
    // The blob route itself, unsigned.
    let body = catalog
        .get(&format!(
            "/v1/workers/{PREMIUM}/1.0.0/blob?platform={PLATFORM}"
        ))
        .await
        .error(403, Some("License required"));
    assert_eq!(body["purchase_url"], PURCHASE);
    catalog.stop().await;
}

#[tokio::test]
async fn signed_urls_tampered_expired_or_for_another_blob_are_403() {
    let catalog = TestCatalog::embedded().await;
    let _a = catalog.publish_premium(PREMIUM, PURCHASE).await;
    let _b = catalog.publish_premium(PREMIUM_OTHER, PURCHASE).await;
    let (repo, digest) = build_of(&catalog, PREMIUM).await;
    let (other_repo, other_digest) = build_of(&catalog, PREMIUM_OTHER).await;

    // A URL the server signed works with no header, and its bytes are the
    // published build.
    let good = signed_blob_url(&catalog, PREMIUM, &repo, &digest, unix_now() + 600);
    let (status, bytes) = plain_get(&good).await;
    assert_eq!(status, 200);
    assert_eq!(
        format!("sha256:{}", hex::encode(Sha256::digest(&bytes))),
        digest
    );

    let refused = |url: String| {
        let catalog = &catalog;
        async move {
            let path = url.strip_prefix(&catalog.url).unwrap().to_owned();
            catalog
                .get(&path)
                .await
                .error(403, Some("Invalid download URL"))
        }
    };
    // Expired: signed by the server, an hour ago.
    refused(signed_blob_url(
        &catalog,
        PREMIUM,
        &repo,
        &digest,
        unix_now() - 3600,
    ))
    .await;
    // Tampered: a later expiry, a flipped signature character, an expiry
    // that is not a number.
    let expires: u64 = good
        .split("expires=")
        .nth(1)
        .and_then(|rest| rest.split('&').next())
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("no expiry in {good}"));
    let later = good.replace(
        &format!("expires={expires}"),
        &format!("expires={}", expires + 86400),
    );
    assert_ne!(later, good);
    refused(later).await;
    let last = good.chars().last().unwrap();
    let flipped = format!(
        "{}{}",
        &good[..good.len() - 1],
        if last == '0' { '1' } else { '0' }
    );
    refused(flipped).await;
    refused(good.replace("expires=", "expires=x")).await;
    // Another blob: worker A's signature on worker B's path.
    let sig_a = good.split("signature=").nth(1).unwrap().to_owned();
    let exp_a = good
        .split("expires=")
        .nth(1)
        .unwrap()
        .split('&')
        .next()
        .unwrap();
    refused(format!(
        "{}/v1/workers/{PREMIUM_OTHER}/1.0.0/blob?platform={PLATFORM}&expires={exp_a}&signature={sig_a}",
        catalog.url
    ))
    .await;
    // ... and another platform's blob of the same release.
    refused(good.replace(PLATFORM, "linux-aarch64")).await;
    // B's own signature works on B.
    let (status, _) = plain_get(&signed_blob_url(
        &catalog,
        PREMIUM_OTHER,
        &other_repo,
        &other_digest,
        unix_now() + 600,
    ))
    .await;
    assert_eq!(status, 200);
    catalog.stop().await;
}

#[tokio::test]
async fn verify_answers_valid_false_for_malformed_and_unknown_keys() {
    let catalog = TestCatalog::embedded().await;
    for token in [
        "",
        "rbee_lic_",
        "not-a-key",
        "rbee_lic_0000000000000000000000000000000000000000",
        "rbee_pub_0000000000000000000000000000000000000000",
    ] {
        let body = catalog
            .send_json(
                reqwest::Method::POST,
                "/v1/licenses/verify",
                None,
                &json!({ "token": token }),
            )
            .await
            .ok_json();
        assert_eq!(body, json!({ "valid": false }), "{token:?}");
    }
    // Not the expected body: 400, and the body is not echoed.
    let reply = catalog
        .send_json(
            reqwest::Method::POST,
            "/v1/licenses/verify",
            None,
            &json!({ "key": "rbee_lic_echo_me" }),
        )
        .await;
    assert!(!reply.text().contains("echo_me"), "{}", reply.text());
    reply.error(400, Some("Bad request"));
    catalog.stop().await;
}

#[tokio::test]
async fn rate_limited_routes_answer_429_with_retry_after() {
    let catalog = TestCatalog::start(|c| {
        c.rate_limit = RateLimit {
            per_second: 1,
            burst: 3,
        }
    })
    .await;
    let body = json!({ "token": "rbee_lic_x" });
    let verify = || catalog.send_json(reqwest::Method::POST, "/v1/licenses/verify", None, &body);
    // The first three pass (the bucket's burst).
    for _ in 0..3 {
        verify().await.expect(200);
    }
    // The download route shares the address's bucket: within a few more
    // requests, whichever route, one is refused (the bucket refills one
    // request a second, so a slow machine may get one more through).
    let download = format!("/v1/workers/{PREMIUM}/1.0.0/download?platform={PLATFORM}");
    let mut refused = None;
    for _ in 0..10 {
        let reply = catalog.get(&download).await;
        if reply.status == 429 {
            refused = Some(reply);
            break;
        }
    }
    let refused = refused.expect("a 429 within 10 requests");
    let retry_after: u64 = refused
        .header("retry-after")
        .parse()
        .unwrap_or_else(|_| panic!("no Retry-After: {:?}", refused.headers));
    assert!((1..=2).contains(&retry_after), "Retry-After {retry_after}");
    refused.error(429, Some("Too many requests"));
    // Routes that check no secret are not limited.
    for _ in 0..5 {
        catalog.get("/v1/workers").await.expect(200);
    }
    catalog.stop().await;
}
