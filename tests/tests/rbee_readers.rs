//! Every catalog reader rbee ships, against our legacy routes: each test
//! reads the real answers of a running catalog holding the full example
//! set (a CPU, a CUDA, a Metal and a premium worker) with a faithful copy
//! of one reader, written from rbee's source (repository
//! `rbee-keeper/rbee`; the file and commit are named on each test).
//! Rust readers are copied type for type with their serde attributes; for
//! the TypeScript readers every field they dereference is checked, as
//! JavaScript would meet it.

mod common;

use common::catalog::TestCatalog;
use common::example_set::{EXAMPLE_IDS, publish_example_set};
use serde::Deserialize;
use serde_json::Value;

/// A catalog with the example set published.
async fn catalog() -> (TestCatalog, Vec<common::publishing::Fixture>) {
    let catalog = TestCatalog::embedded().await;
    let fixtures = publish_example_set(&catalog).await;
    (catalog, fixtures)
}

// ---- rbee-hive `worker install` --------------------------------------------

/// `bin/20_rbee_hive/src/worker_install.rs` @ 5c56459c41ef590e61c304fbff46bcfb8e3c53ec
/// and `bin/25_rbee_hive_crates/worker-provisioner/src/catalog_client.rs`
/// @ 702429eb6b4ce36bd2193ae4151d4d1871328dfb (the same struct).
mod hive_install {
    #[derive(Debug, serde::Deserialize)]
    #[expect(dead_code, reason = "a copy of rbee's type, which reads every field")]
    pub struct WorkerMetadata {
        pub id: String,
        pub name: String,
        pub version: String,
        pub platforms: Vec<String>,
        pub architectures: Vec<String>,
        #[serde(default)]
        pub depends: Vec<String>,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rbee_hive_worker_install_reads_each_worker_and_builds_its_pkgbuild() {
    let (catalog, _fixtures) = catalog().await;
    for id in EXAMPLE_IDS {
        let reply = catalog.get(&format!("/workers/{id}")).await.expect(200);
        let worker: hive_install::WorkerMetadata = reply.parse();
        assert_eq!(worker.id, id);
        // `check_platform_compatibility`: OS and arch names as
        // `std::env::consts` spells them.
        assert!(worker.platforms.iter().any(|p| p == "linux"), "{worker:?}");
        assert!(
            worker.architectures.iter().any(|a| a == "x86_64"),
            "{worker:?}"
        );
        // The PKGBUILD it then downloads must pass rbee-hive's rules (the
        // same checks `rbee-pusher validate` runs, for this id).
        let text = catalog
            .get(&format!("/workers/{id}/PKGBUILD"))
            .await
            .expect(200)
            .text();
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("PKGBUILD");
        std::fs::write(&path, &text).unwrap();
        rbee_pusher::pkgbuild::check(&path, &worker.version, id)
            .unwrap_or_else(|e| panic!("{id}: rbee-hive cannot build the served PKGBUILD: {e}"));
    }
    catalog.stop().await;
}

// ---- rbee-hive CLI `worker catalog list/get` --------------------------------

/// `bin/20_rbee_hive/src/operations/worker.rs` @ 702429eb6b4ce36bd2193ae4151d4d1871328dfb:
/// `handle_worker_catalog_list` indexes a `serde_json::Value`; a missing
/// field shows up as `null` in its table, a non-array `platforms` as
/// "unknown".
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rbee_hive_cli_lists_every_worker_with_its_fields() {
    let (catalog, _fixtures) = catalog().await;
    let catalog_data = catalog.get("/workers").await.ok_json();
    let empty_vec = vec![];
    let workers = catalog_data["workers"].as_array().unwrap_or(&empty_vec);
    assert_eq!(workers.len(), EXAMPLE_IDS.len());
    for w in workers {
        // The table row, built exactly as rbee-hive builds it.
        let row = serde_json::json!({
            "id": w["id"],
            "name": w["name"],
            "type": w["worker_type"],
            "platforms": w["platforms"]
                .as_array()
                .map(|arr| arr.iter()
                    .filter_map(|v| v.as_str())
                    .collect::<Vec<_>>()
                    .join(", "))
                .unwrap_or_else(|| "unknown".to_string()),
            "description": w["description"]
        });
        for (key, value) in row.as_object().unwrap() {
            assert!(value.is_string(), "{key} in {row}");
        }
        assert!(row["platforms"].as_str().unwrap().contains("linux"));
        assert!(
            ["cpu", "cuda", "metal", "rocm"].contains(&row["type"].as_str().unwrap()),
            "{row}"
        );
    }
    // `handle_worker_catalog_get`: success and a JSON body; 404 otherwise.
    for id in EXAMPLE_IDS {
        catalog.get(&format!("/workers/{id}")).await.ok_json();
    }
    catalog.get("/workers/no-such-worker-cpu").await.expect(404);
    catalog.stop().await;
}

// ---- rbee-keeper's marketplace SDK -----------------------------------------

/// `bin/97_contracts/artifacts-contract/src/worker_catalog.rs`
/// @ 546abc4223249cda41193da3a1fa01edc184d4b0 (`WorkerCatalogEntry` and
/// its enums), `bin/97_contracts/artifacts-contract/src/worker.rs` (the
/// TEAM-423 revision: `WorkerType` with `Rocm`, `Platform`), decoded by
/// `bin/79_marketplace_core/marketplace-sdk/src/worker_catalog.rs`
/// @ 1e6eaf498a4158466f70c0af8213123a498d0d59 (branch `production`).
/// Serde attributes as in rbee; tsify and specta derives left out.
mod keeper {
    use serde::{Deserialize, Serialize};

    #[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
    #[serde(rename_all = "lowercase")]
    pub enum WorkerType {
        Cpu,
        Cuda,
        Metal,
        Rocm,
    }

    #[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
    #[serde(rename_all = "lowercase")]
    pub enum Platform {
        Linux,
        #[serde(rename = "macos")]
        MacOS,
        Windows,
    }

    #[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
    #[serde(rename_all = "lowercase")]
    pub enum Architecture {
        X86_64,
        Aarch64,
    }

    #[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
    #[serde(rename_all = "lowercase")]
    pub enum WorkerImplementation {
        Rust,
        Python,
        Cpp,
    }

    #[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
    #[serde(rename_all = "lowercase")]
    pub enum BuildSystem {
        Cargo,
        Make,
        Cmake,
    }

    #[derive(Debug, Clone, Serialize, Deserialize)]
    #[serde(rename_all = "camelCase")]
    pub struct SourceInfo {
        #[serde(rename = "type")]
        pub source_type: String,
        pub url: String,
        #[serde(skip_serializing_if = "Option::is_none")]
        pub branch: Option<String>,
        #[serde(skip_serializing_if = "Option::is_none")]
        pub tag: Option<String>,
        #[serde(skip_serializing_if = "Option::is_none")]
        pub path: Option<String>,
    }

    #[derive(Debug, Clone, Serialize, Deserialize)]
    #[serde(rename_all = "camelCase")]
    pub struct BuildConfig {
        #[serde(skip_serializing_if = "Option::is_none")]
        pub features: Option<Vec<String>>,
        #[serde(skip_serializing_if = "Option::is_none")]
        pub profile: Option<String>,
        #[serde(skip_serializing_if = "Option::is_none")]
        pub flags: Option<Vec<String>>,
    }

    #[derive(Debug, Clone, Serialize, Deserialize)]
    #[serde(rename_all = "camelCase")]
    pub struct WorkerCatalogEntry {
        pub id: String,
        pub implementation: WorkerImplementation,
        pub worker_type: WorkerType,
        pub version: String,
        pub platforms: Vec<Platform>,
        pub architectures: Vec<Architecture>,
        pub name: String,
        pub description: String,
        pub license: String,
        pub pkgbuild_url: String,
        pub build_system: BuildSystem,
        pub source: SourceInfo,
        pub build: BuildConfig,
        pub depends: Vec<String>,
        pub makedepends: Vec<String>,
        pub binary_name: String,
        pub install_path: String,
        pub supported_formats: Vec<String>,
        #[serde(skip_serializing_if = "Option::is_none")]
        pub max_context_length: Option<u32>,
        pub supports_streaming: bool,
        pub supports_batching: bool,
    }

    /// marketplace-sdk's private `WorkersListResponse`.
    #[derive(Debug, Deserialize)]
    pub struct WorkersListResponse {
        pub workers: Vec<WorkerCatalogEntry>,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rbee_keeper_marketplace_sdk_decodes_the_list_and_each_worker() {
    let (catalog, _fixtures) = catalog().await;
    // `list_workers`: `serde_json::from_str::<WorkersListResponse>`.
    let text = catalog.get("/workers").await.expect(200).text();
    let list: keeper::WorkersListResponse = serde_json::from_str(&text)
        .unwrap_or_else(|e| panic!("Failed to parse worker catalog response: {e}\n{text}"));
    let ids: Vec<&str> = list.workers.iter().map(|w| w.id.as_str()).collect();
    assert_eq!(ids.len(), EXAMPLE_IDS.len(), "{ids:?}");
    // `filter_workers` by worker type, platform, architecture, context.
    let cuda: Vec<&str> = list
        .workers
        .iter()
        .filter(|w| w.worker_type == keeper::WorkerType::Cuda)
        .map(|w| w.id.as_str())
        .collect();
    assert_eq!(cuda.len(), 2, "{cuda:?}");
    assert!(list.workers.iter().all(|w| {
        w.platforms.contains(&keeper::Platform::Linux)
            && w.architectures.contains(&keeper::Architecture::Aarch64)
    }));
    let long_context = list
        .workers
        .iter()
        .filter(|w| w.max_context_length.is_some_and(|n| n >= 32768))
        .count();
    assert_eq!(long_context, 1);
    // `get_worker`: one `WorkerCatalogEntry`, `None` on 404.
    for id in EXAMPLE_IDS {
        let entry: keeper::WorkerCatalogEntry = catalog
            .get(&format!("/workers/{id}"))
            .await
            .expect(200)
            .parse();
        assert_eq!(entry.id, id);
        assert!(
            entry
                .supported_formats
                .iter()
                .any(|f| f.eq_ignore_ascii_case("GGUF"))
        );
    }
    let metal: keeper::WorkerCatalogEntry =
        catalog.get("/workers/llm-worker-rbee-metal").await.parse();
    assert_eq!(
        (
            metal.implementation,
            metal.build_system,
            metal.max_context_length
        ),
        (
            keeper::WorkerImplementation::Python,
            keeper::BuildSystem::Make,
            None
        )
    );
    catalog.get("/workers/no-such-worker-cpu").await.expect(404);
    catalog.stop().await;
}

// ---- JavaScript, as the TypeScript readers meet our JSON --------------------

/// `obj.key` as JavaScript evaluates it: reading a property of `undefined`
/// or `null` is the TypeError these tests exist to prevent.
fn get<'a>(obj: &'a Value, key: &str, at: &str) -> &'a Value {
    match obj {
        Value::Null => {
            panic!("TypeError: Cannot read properties of null (reading '{key}') at {at}")
        }
        Value::Object(map) => map.get(key).unwrap_or(&Value::Null),
        other => panic!("{at}: reading '{key}' of {other}"),
    }
}

/// `obj.key` must be an array (its `.join`, `.map`, `.some` or
/// `.includes` is called).
fn array<'a>(obj: &'a Value, key: &str, at: &str) -> &'a [Value] {
    get(obj, key, at)
        .as_array()
        .unwrap_or_else(|| panic!("TypeError: {at}.{key} is not an array: {obj}"))
}

fn string<'a>(obj: &'a Value, key: &str, at: &str) -> &'a str {
    get(obj, key, at)
        .as_str()
        .unwrap_or_else(|| panic!("{at}.{key} is not a string: {obj}"))
}

// ---- rbee-hive web UI -------------------------------------------------------

/// `bin/20_rbee_hive/ui/app/src/hooks/useWorkerCatalog.ts` and
/// `bin/20_rbee_hive/ui/app/src/components/WorkerManagement/SpawnWorkerView.tsx`,
/// both @ 0004e726c188a3b7417c3d70e888bd7a395d7cad: every field they
/// dereference, with the type each use needs.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rbee_hive_web_ui_finds_every_field_it_dereferences() {
    let (catalog, _fixtures) = catalog().await;
    // `fetchWorkerCatalog`: `response.json()`; `getWorkerByType`:
    // `catalog?.workers.find((w) => w.worker_type === workerType)`.
    let body = catalog.get("/workers").await.ok_json();
    let workers = array(&body, "workers", "catalog");
    for worker_type in ["cpu", "cuda", "metal"] {
        let found = workers
            .iter()
            .find(|w| get(w, "worker_type", "w").as_str() == Some(worker_type));
        assert!(found.is_some(), "no {worker_type} worker: {body}");
    }
    for (i, w) in workers.iter().enumerate() {
        let at = format!("catalog.workers[{i}]");
        // `isWorkerSupported`: `worker.platforms.includes(platform)`.
        let platforms = array(w, "platforms", &at);
        assert!(
            platforms
                .iter()
                .all(|p| ["linux", "macos", "windows"].contains(&p.as_str().unwrap_or("")))
        );
        // The option row: `v{workerEntry.version} • {workerEntry.supported_formats.join(', ')}`.
        string(w, "version", &at);
        let formats = array(w, "supported_formats", &at);
        assert!(!formats.is_empty() && formats.iter().all(Value::is_string));
        // The details box.
        for key in ["name", "implementation", "description", "build_system"] {
            assert!(!string(w, key, &at).is_empty(), "{at}.{key}");
        }
        assert!(get(w, "supports_streaming", &at).is_boolean(), "{w}");
        // `worker.max_context_length?.toLocaleString() || 'N/A'`.
        let max = get(w, "max_context_length", &at);
        assert!(
            max.is_null() || max.is_u64(),
            "{at}.max_context_length: {max}"
        );
        assert!(array(w, "platforms", &at).iter().all(Value::is_string));
    }
    catalog.stop().await;
}

// ---- the marketplace site ---------------------------------------------------

/// `frontend/packages/marketplace-core/src/adapters/gwc/types.ts`
/// (`GWCWorker`) and `list.ts` (`convertGWCWorker`, `fetchGWCWorkers`),
/// both @ 03a08d3190b8ef7ebd12c60a559e0e39b5527f30, and `details.ts`
/// (`fetchGWCWorker`) @ 794f3ed9b1bcf9cc606ba1a4a55a9b7b7565930b: every
/// field they dereference.
fn convert_gwc_worker(worker: &Value, at: &str) {
    // `worker.variants?.[0]?.backend || 'cpu'`, and `.map(v => v.backend)`.
    let variants = array(worker, "variants", at);
    assert!(!variants.is_empty(), "{at}: no variants");
    for (i, v) in variants.iter().enumerate() {
        let backend = string(v, "backend", &format!("{at}.variants[{i}]"));
        assert!(
            ["cpu", "cuda", "metal", "rocm"].contains(&backend),
            "{backend}"
        );
    }
    for key in ["id", "name", "description", "license", "version"] {
        string(worker, key, at);
    }
    // `worker.coverImage && {...}`: optional.
    let implementation = string(worker, "implementation", at);
    assert!(["rust", "python", "cpp"].contains(&implementation));
    // `worker.capabilities.supportedFormats.join(', ')` and the two flags.
    let caps = get(worker, "capabilities", at);
    let formats = array(caps, "supportedFormats", &format!("{at}.capabilities"));
    assert!(formats.iter().all(Value::is_string));
    for key in ["supportsStreaming", "supportsBatching"] {
        assert!(get(caps, key, at).is_boolean(), "{at}.capabilities.{key}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn marketplace_site_reads_worker_families_with_variants_and_capabilities() {
    let (catalog, _fixtures) = catalog().await;
    // `fetchGWCWorkers`: `data.workers.length`, then the backend filter
    // `worker.variants.some((variant) => variant.backend === backend)`.
    let data = catalog.get("/workers").await.ok_json();
    let workers = array(&data, "workers", "data");
    assert_eq!(workers.len(), EXAMPLE_IDS.len());
    let cuda = workers
        .iter()
        .filter(|w| {
            array(w, "variants", "worker")
                .iter()
                .any(|v| v["backend"] == "cuda")
        })
        .count();
    assert_eq!(cuda, 2);
    for (i, w) in workers.iter().enumerate() {
        convert_gwc_worker(w, &format!("data.workers[{i}]"));
    }
    // `fetchGWCWorker(workerId)`: one worker, converted the same way.
    for id in EXAMPLE_IDS {
        let worker = catalog.get(&format!("/workers/{id}")).await.ok_json();
        convert_gwc_worker(&worker, id);
    }
    catalog.stop().await;
}

/// The superset's two spellings agree: a reader never sees one value
/// under one name and another under the other.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn both_spellings_of_a_field_carry_the_same_value() {
    #[derive(Deserialize)]
    struct Pairs {
        worker_type: Value,
        #[serde(rename = "workerType")]
        worker_type_camel: Value,
        build_system: Value,
        #[serde(rename = "buildSystem")]
        build_system_camel: Value,
        supported_formats: Value,
        #[serde(rename = "supportedFormats")]
        supported_formats_camel: Value,
        max_context_length: Value,
        #[serde(rename = "maxContextLength")]
        max_context_length_camel: Value,
        supports_streaming: Value,
        #[serde(rename = "supportsStreaming")]
        supports_streaming_camel: Value,
        capabilities: Value,
        variants: Value,
    }
    let (catalog, _fixtures) = catalog().await;
    for id in EXAMPLE_IDS {
        let p: Pairs = catalog.get(&format!("/workers/{id}")).await.parse();
        assert_eq!(p.worker_type, p.worker_type_camel);
        assert_eq!(p.worker_type, p.variants[0]["backend"]);
        assert_eq!(p.build_system, p.build_system_camel);
        assert_eq!(p.supported_formats, p.supported_formats_camel);
        assert_eq!(p.supported_formats, p.capabilities["supportedFormats"]);
        assert_eq!(p.max_context_length, p.max_context_length_camel);
        assert_eq!(p.max_context_length, p.capabilities["maxContextLength"]);
        assert_eq!(p.supports_streaming, p.supports_streaming_camel);
        assert_eq!(p.supports_streaming, p.capabilities["supportsStreaming"]);
    }
    catalog.stop().await;
}
