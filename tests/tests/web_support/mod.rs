//! Helpers of the web page tests (`web.rs`, `web_browser.rs`): a catalog
//! holding a small worker set that exercises every part of the pages (two
//! versions, one yanked; a second backend; a worker built for one platform
//! only; a premium worker with a price; a worker whose name and
//! description carry HTML), and real downloads, counted, so the charts
//! have data.

#![allow(dead_code)]

use std::time::Duration;

use rbee_pusher::auth::Credentials;
use rbee_pusher::client::{RegistryClient, RetryPolicy};
use rbee_pusher::progress::Reporter;

use crate::common::catalog::{TestCatalog, WORKER, other_worker, publish_files};
use crate::common::publishing::Fixture;

/// The premium worker's id and where it is sold.
pub const PREMIUM: &str = "premium-worker-rbee-cuda";
pub const PURCHASE_URL: &str = "https://rbee.dev/buy/premium-worker-rbee-cuda";
/// A CUDA worker.
pub const CUDA: &str = "llm-worker-rbee-cuda";
/// A worker built for `macos-aarch64` only.
pub const METAL: &str = "llm-worker-rbee-metal";
/// A worker whose name and description hold markup and script.
pub const HOSTILE: &str = "hostile-worker-rbee-cpu";
/// Its description: it must show as this very text and never run.
pub const HOSTILE_DESCRIPTION: &str =
    "<script>window.__pwned = 1; document.title = 'pwned'</script> & <b>bold</b> \"quoted\"";
/// Its name.
pub const HOSTILE_NAME: &str = "Hostile <img src=x onerror=\"window.__pwned=2\">";
/// The reason the example worker's 0.2.0 is yanked.
pub const YANK_REASON: &str = "crashes on start";

/// A catalog whose stats are never cached, holding the worker set.
pub async fn catalog_with_worker_set() -> (TestCatalog, Vec<Fixture>) {
    let catalog = TestCatalog::start(|config| {
        config.analytics.stats_ttl = Duration::ZERO;
    })
    .await;
    let fixtures = publish_worker_set(&catalog).await;
    (catalog, fixtures)
}

/// Publishes the set; the fixtures must outlive the reads of their builds.
pub async fn publish_worker_set(catalog: &TestCatalog) -> Vec<Fixture> {
    let mut fixtures = Vec::new();
    let (v1, _) = catalog.publish_version("0.1.0").await;
    fixtures.push(v1);
    let (v2, _) = catalog.publish_version("0.2.0").await;
    fixtures.push(v2);
    yank(catalog, WORKER, "0.2.0", YANK_REASON).await;

    let (cuda, files) = other_worker(CUDA, "0.2.0", true);
    cuda.edit_metadata(|m| {
        m["backend"] = "cuda".into();
        m["family"] = "llm-worker-rbee".into();
        m["description"] = "Large language models on NVIDIA GPUs.".into();
        m["capabilities"]["supported_formats"] = serde_json::json!(["gguf", "safetensors"]);
        m["capabilities"]["max_context_length"] = 32768.into();
        m["capabilities"]["batching"] = true.into();
    });
    publish_files(&catalog.registry_url, &files).await;
    fixtures.push(cuda);

    let (metal, mut files) = other_worker(METAL, "0.2.0", true);
    metal.edit_metadata(|m| {
        m["backend"] = "metal".into();
        m["family"] = "llm-worker-rbee".into();
        m["description"] = "Large language models on Apple silicon.".into();
        m["platforms"] = serde_json::json!(["macos-aarch64"]);
    });
    files.builds.retain(|(p, _)| p == "macos-aarch64");
    publish_files(&catalog.registry_url, &files).await;
    fixtures.push(metal);

    let (premium, files) = other_worker(PREMIUM, "1.0.0", true);
    premium.edit_metadata(|m| {
        m["backend"] = "cuda".into();
        m["family"] = "premium-worker-rbee".into();
        m["description"] = "The fast one, for paying customers.".into();
        m["license"] = "LicenseRef-rbee-commercial".into();
        m["distribution"]["requires_license"] = true.into();
        m["pricing"] = serde_json::json!({
            "amount": 49.0, "currency": "EUR", "purchase_url": PURCHASE_URL
        });
    });
    publish_files(&catalog.registry_url, &files).await;
    fixtures.push(premium);

    fixtures.push(publish_hostile(catalog).await);
    catalog.state().catalog.invalidate_all();
    fixtures
}

/// Publishes [`HOSTILE`].
pub async fn publish_hostile(catalog: &TestCatalog) -> Fixture {
    let (hostile, files) = other_worker(HOSTILE, "0.1.0", true);
    hostile.edit_metadata(|m| {
        m["name"] = HOSTILE_NAME.into();
        m["description"] = HOSTILE_DESCRIPTION.into();
    });
    publish_files(&catalog.registry_url, &files).await;
    hostile
}

/// Yanks `id`'s `version` with the pusher's library.
pub async fn yank(catalog: &TestCatalog, id: &str, version: &str, reason: &str) {
    let client = RegistryClient::new(
        reqwest::Url::parse(&catalog.registry_url).unwrap(),
        Credentials::anonymous(),
        RetryPolicy {
            attempts: 2,
            base_delay: Duration::from_millis(50),
            max_delay: Duration::from_secs(1),
        },
    )
    .unwrap();
    rbee_pusher::yank::set_yanked(
        &client,
        id,
        &semver::Version::parse(version).unwrap(),
        true,
        reason,
        None,
        &Reporter::new(true),
    )
    .await
    .expect("the yank is written");
}

/// Downloads `id`'s `version` build for `platform` whole from the
/// registry, `times` times, and waits until the catalog recorded them
/// (`already`: events recorded before).
pub async fn download(
    catalog: &TestCatalog,
    id: &str,
    version: &str,
    platform: &str,
    times: u64,
    already: u64,
) {
    let versions = catalog
        .get(&format!("/v1/workers/{id}/versions?include_yanked=true"))
        .await
        .ok_json();
    let build = versions["versions"]
        .as_array()
        .unwrap()
        .iter()
        .find(|v| v["version"] == version)
        .and_then(|v| {
            v["platforms"]
                .as_array()
                .unwrap()
                .iter()
                .find(|b| b["platform"] == platform)
                .cloned()
        })
        .unwrap_or_else(|| panic!("{id} {version} has no {platform} build: {versions}"));
    let repository = catalog.get(&format!("/v1/workers/{id}")).await.ok_json()["repository"]
        .as_str()
        .unwrap()
        .to_owned();
    for _ in 0..times {
        let url = format!(
            "{}/v2/{repository}/blobs/{}",
            catalog.url,
            build["layer_digest"].as_str().unwrap()
        );
        let resp = catalog
            .http
            .get(&url)
            .header("user-agent", "curl/8.5.0")
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), 200, "{url}");
        let body = resp.bytes().await.unwrap();
        assert_eq!(body.len() as u64, build["size"].as_u64().unwrap());
    }
    let want = already + times;
    let got = catalog
        .state()
        .analytics
        .wait_recorded(want, Duration::from_secs(60))
        .await;
    assert!(got >= want, "recorded {got} downloads, expected {want}");
}

/// `text` as the pages write it: askama escapes `&`, `<`, `>`, `"` and
/// `'` as numeric character references (`&#38;` ...).
pub fn escaped(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&#38;"),
            '<' => out.push_str("&#60;"),
            '>' => out.push_str("&#62;"),
            '"' => out.push_str("&#34;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

/// How often `needle` occurs in `haystack`.
pub fn occurrences(haystack: &str, needle: &str) -> usize {
    haystack.matches(needle).count()
}

/// The HTML of the element that starts at the first `start` (e.g.
/// `<li class="card" data-worker="x"`) up to the next `end`.
pub fn section<'a>(html: &'a str, start: &str, end: &str) -> &'a str {
    let from = html
        .find(start)
        .unwrap_or_else(|| panic!("no `{start}` in the page:\n{html}"));
    let rest = &html[from..];
    let to = rest.find(end).map_or(rest.len(), |i| i + end.len());
    &rest[..to]
}
