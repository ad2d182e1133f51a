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

/// Publishes the example worker to the registry at `registry_url` unless
/// the catalog already lists it. Returns whether it published.
pub async fn publish_example(registry_url: &str, catalog_repository: &str) -> Result<bool, String> {
    let url = reqwest::Url::parse(registry_url).map_err(|e| e.to_string())?;
    let client = RegistryClient::new(url, Credentials::anonymous(), RetryPolicy::default())
        .map_err(|e| e.to_string())?;
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
