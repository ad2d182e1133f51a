//! `--demo`: publishes the example worker on first start, so that a
//! newcomer sees the catalog working at once. The host build is a small
//! shell script that prints what the real example binary prints.

use rbee_pusher::auth::Credentials;
use rbee_pusher::client::{RegistryClient, RetryPolicy};
use rbee_pusher::progress::Reporter;
use rbee_pusher::publish::{PublishOptions, publish};
use rbee_pusher::release::{Release, ReleaseFiles};

const METADATA: &str = include_str!("../../../examples/hello-worker/metadata.json");
const PKGBUILD: &str = include_str!("../../../examples/hello-worker/PKGBUILD");
const LICENSE: &str = include_str!("../../../examples/hello-worker/LICENSE");
const README: &str = include_str!("../../../examples/hello-worker/README.md");
const SCRIPT: &str = "#!/bin/sh\necho 'hello-worker-rbee 0.1.0 (cpu)'\n";

/// The file the demo's publisher key is written to, in the data dir.
pub const DEMO_PUBLISHER_KEY_FILE: &str = "demo-publisher.key";

/// Publishes the example worker, as a publisher would: with a publisher
/// key for the `rbee` namespace that it creates in `store` (owner `demo`)
/// and writes to `<data dir>/demo-publisher.key` (mode 0600; keys are never
/// logged), through the token service. Nothing is created when the example
/// is already published.
pub async fn publish_with_demo_key(
    store: &rbee_store::Store,
    data_dir: &std::path::Path,
    registry_url: &str,
    catalog_repository: &str,
) -> Result<bool, String> {
    if is_published(registry_url, catalog_repository).await? {
        return Ok(false);
    }
    let (record, key) = store
        .create_publisher_key(
            "demo",
            rbee_store::NewPublisherKey {
                owner: "demo".into(),
                grants: vec![rbee_store::Grant::Namespace("rbee".into())],
            },
        )
        .await
        .map_err(|e| e.to_string())?;
    let path = data_dir.join(DEMO_PUBLISHER_KEY_FILE);
    rbee_catalog::admin::write_secret_file(&path, &key).map_err(|e| e.to_string())?;
    tracing::warn!(
        id = %record.id,
        path = %path.display(),
        "created a publisher key for the `rbee` namespace (the demo publishes with it); \
         the key is in this file only, revoke it with `rbee-catalog publisher-key revoke`"
    );
    publish_example_as(
        registry_url,
        catalog_repository,
        Credentials::basic("demo", key.expose()),
    )
    .await
}

/// Whether the catalog index at `registry_url` already lists the example.
async fn is_published(registry_url: &str, catalog_repository: &str) -> Result<bool, String> {
    let url = reqwest::Url::parse(registry_url).map_err(|e| e.to_string())?;
    let client = RegistryClient::new(url, Credentials::anonymous(), RetryPolicy::default())
        .map_err(|e| e.to_string())?;
    Ok(
        rbee_pusher::publish::read_catalog(&client, catalog_repository)
            .await
            .map_err(|e| e.to_string())?
            .is_some_and(|index| index.get("hello-worker-rbee-cpu").is_some()),
    )
}

/// Publishes the example worker anonymously (for a registry in
/// development mode) unless the catalog already lists it. Returns whether
/// it published.
pub async fn publish_example(registry_url: &str, catalog_repository: &str) -> Result<bool, String> {
    publish_example_as(registry_url, catalog_repository, Credentials::anonymous()).await
}

/// Publishes the example worker to the registry at `registry_url` with
/// `credentials` unless the catalog already lists it. Returns whether it
/// published.
pub async fn publish_example_as(
    registry_url: &str,
    catalog_repository: &str,
    credentials: Credentials,
) -> Result<bool, String> {
    let url = reqwest::Url::parse(registry_url).map_err(|e| e.to_string())?;
    let client =
        RegistryClient::new(url, credentials, RetryPolicy::default()).map_err(|e| e.to_string())?;
    if let Some(index) = rbee_pusher::publish::read_catalog(&client, catalog_repository)
        .await
        .map_err(|e| e.to_string())?
        && index.get("hello-worker-rbee-cpu").is_some()
    {
        return Ok(false);
    }
    let dir = tempfile::tempdir().map_err(|e| e.to_string())?;
    let write = |name: &str, text: &str| {
        std::fs::write(dir.path().join(name), text).map_err(|e| e.to_string())
    };
    write("metadata.json", METADATA)?;
    write("PKGBUILD", PKGBUILD)?;
    write("LICENSE", LICENSE)?;
    write("README.md", README)?;
    write("hello-worker-rbee", SCRIPT)?;
    let build = dir.path().join("hello-worker-rbee");
    let platform = rbee_schemas::Platform::current().unwrap_or(rbee_schemas::Platform::LinuxX86_64);
    let files = ReleaseFiles {
        metadata: dir.path().join("metadata.json"),
        builds: vec![(platform.to_string(), build)],
        pkgbuild: Some(dir.path().join("PKGBUILD")),
        license: None,
        readme: None,
    };
    let release = Release::load(&files).map_err(|e| e.to_string())?;
    let opts = PublishOptions {
        namespace: None,
        catalog_repository: catalog_repository.to_owned(),
        force: false,
        dry_run: false,
        compression: 6,
        created: "2026-01-01T00:00:00Z".into(),
    };
    publish(&client, &release, &opts, &Reporter::new(true))
        .await
        .map_err(|e| e.to_string())?;
    Ok(true)
}
