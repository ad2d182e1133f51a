//! The full example worker set, published to a test catalog: the example
//! worker (`hello-worker-rbee-cpu`), a CUDA and a Metal worker that use
//! the other values rbee's enums accept (`cpp`/`cmake`, `python`/`make`,
//! no context length), and a premium CUDA worker in `rbee-premium/`.
//! Each has a PKGBUILD. The reader tests and the schemathesis run read
//! the catalog's answers about exactly these.

use super::catalog::{TestCatalog, other_worker, publish_files};
use super::publishing::Fixture;

/// The ids of [`publish_example_set`], in publishing order.
pub const EXAMPLE_IDS: [&str; 4] = [
    "hello-worker-rbee-cpu",
    "llm-worker-rbee-cuda",
    "llm-worker-rbee-metal",
    "premium-worker-rbee-cuda",
];

/// Where the premium worker is sold.
pub const PURCHASE_URL: &str = "https://rbee.dev/buy/premium-worker-rbee-cuda";

/// Publishes the example set to `catalog`; the fixtures must live as long
/// as the test reads builds from them.
pub async fn publish_example_set(catalog: &TestCatalog) -> Vec<Fixture> {
    let (example, _) = catalog.publish_version("0.1.0").await;
    let mut fixtures = vec![example];
    let (cuda, files) = other_worker("llm-worker-rbee-cuda", "0.2.0", true);
    cuda.edit_metadata(|m| {
        m["backend"] = "cuda".into();
        m["family"] = "llm-worker-rbee".into();
        m["implementation"] = "cpp".into();
        m["build_system"] = "cmake".into();
        m["capabilities"]["supported_formats"] = serde_json::json!(["gguf", "safetensors"]);
        m["capabilities"]["max_context_length"] = 32768.into();
        m["capabilities"]["batching"] = true.into();
    });
    publish_files(&catalog.registry_url, &files).await;
    fixtures.push(cuda);
    let (metal, files) = other_worker("llm-worker-rbee-metal", "0.2.0", true);
    metal.edit_metadata(|m| {
        m["backend"] = "metal".into();
        m["family"] = "llm-worker-rbee".into();
        m["implementation"] = "python".into();
        m["build_system"] = "make".into();
        m["capabilities"]["max_context_length"] = serde_json::Value::Null;
    });
    publish_files(&catalog.registry_url, &files).await;
    fixtures.push(metal);
    let (premium, files) = other_worker("premium-worker-rbee-cuda", "1.0.0", true);
    premium.edit_metadata(|m| {
        m["backend"] = "cuda".into();
        m["family"] = "premium-worker-rbee".into();
        m["license"] = "LicenseRef-rbee-commercial".into();
        m["distribution"]["requires_license"] = true.into();
        m["pricing"] = serde_json::json!({
            "amount": 49.0, "currency": "EUR", "purchase_url": PURCHASE_URL
        });
    });
    publish_files(&catalog.registry_url, &files).await;
    fixtures.push(premium);
    fixtures
}
