//! `--demo`: publishes the example worker and rbee's worker set
//! (`examples/workers/`) on first start, so that a newcomer sees a
//! realistic catalog at once, and issues a demo license key that unlocks
//! the premium worker. Every build is a stand-in: a small shell script
//! that says it is one (the example worker's prints what the real example
//! binary prints).

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
/// The file the demo's license key is written to, in the data dir.
pub const DEMO_LICENSE_KEY_FILE: &str = "demo-license.key";

/// One worker of rbee's set: its id and release files.
struct SetWorker {
    id: &'static str,
    metadata: &'static str,
    pkgbuild: Option<&'static str>,
    license: &'static str,
    readme: &'static str,
}

macro_rules! set_worker {
    ($id:literal, pkgbuild) => {
        SetWorker {
            pkgbuild: Some(include_str!(concat!(
                "../../../examples/workers/",
                $id,
                "/PKGBUILD"
            ))),
            ..set_worker!($id)
        }
    };
    ($id:literal) => {
        SetWorker {
            id: $id,
            metadata: include_str!(concat!("../../../examples/workers/", $id, "/metadata.json")),
            pkgbuild: None,
            license: include_str!(concat!("../../../examples/workers/", $id, "/LICENSE")),
            readme: include_str!(concat!("../../../examples/workers/", $id, "/README.md")),
        }
    };
}

/// rbee's worker set, as `examples/workers/` holds it.
fn worker_set() -> [SetWorker; 5] {
    [
        set_worker!("llm-worker-rbee-cpu", pkgbuild),
        set_worker!("llm-worker-rbee-cuda", pkgbuild),
        set_worker!("llm-worker-rbee-metal", pkgbuild),
        set_worker!("sd-worker-rbee-cpu", pkgbuild),
        set_worker!("llm-worker-rbee-premium"),
    ]
}

/// The premium worker of the set, which the demo license unlocks.
pub const DEMO_PREMIUM_WORKER: &str = "llm-worker-rbee-premium";

/// Every worker id `--demo` publishes.
pub fn demo_worker_ids() -> Vec<&'static str> {
    let mut ids = vec!["hello-worker-rbee-cpu"];
    ids.extend(worker_set().iter().map(|w| w.id));
    ids
}

/// A stand-in build of `id` for `platform`, labelled as one.
fn stand_in(id: &str, platform: &str) -> String {
    format!(
        "#!/bin/sh\n# DEMO STAND-IN published by `rbee-catalog serve --demo`: not the real {id}.\n\
         echo '{id} 0.1.0 ({platform}): demo stand-in build, not the real worker'\n"
    )
}

/// Publishes the example worker, as a publisher would: with a publisher
/// key for the `rbee` and `rbee-premium` namespaces that it creates in
/// `store` (owner `demo`) and writes to `<data dir>/demo-publisher.key`
/// (mode 0600; keys are never logged), through the token service, then
/// rbee's worker set the same way; and creates a license for the premium
/// worker, written to `<data dir>/demo-license.key`. Nothing is created
/// when the set is already published.
///
/// `token_service`, when given, is asked for registry tokens instead of
/// the realm the registry's challenges name: that realm is under
/// `--public-url`, which this machine may not reach (a proxy, a name that
/// resolves only outside), while this process's own token service always
/// answers on its listen address.
pub async fn publish_with_demo_key(
    store: &rbee_store::Store,
    data_dir: &std::path::Path,
    registry_url: &str,
    catalog_repository: &str,
    token_service: Option<&str>,
) -> Result<bool, String> {
    let target = Target {
        registry_url,
        token_service,
    };
    if is_published(&target, catalog_repository).await? {
        return Ok(false);
    }
    let (license, license_key) = store
        .create_license(
            "demo",
            rbee_store::NewLicense {
                owner: "demo".into(),
                grants: vec![rbee_store::Grant::Worker(DEMO_PREMIUM_WORKER.into())],
                expires_at: None,
                perpetual_fallback: false,
            },
        )
        .await
        .map_err(|e| e.to_string())?;
    let license_path = data_dir.join(DEMO_LICENSE_KEY_FILE);
    rbee_catalog::admin::write_secret_file(&license_path, &license_key)
        .map_err(|e| e.to_string())?;
    tracing::warn!(
        id = %license.id,
        path = %license_path.display(),
        "created a demo license for {DEMO_PREMIUM_WORKER}; revoke it with `rbee-catalog license revoke`"
    );
    let (record, key) = store
        .create_publisher_key(
            "demo",
            rbee_store::NewPublisherKey {
                owner: "demo".into(),
                grants: vec![
                    rbee_store::Grant::Namespace("rbee".into()),
                    rbee_store::Grant::Namespace("rbee-premium".into()),
                ],
            },
        )
        .await
        .map_err(|e| e.to_string())?;
    let path = data_dir.join(DEMO_PUBLISHER_KEY_FILE);
    rbee_catalog::admin::write_secret_file(&path, &key).map_err(|e| e.to_string())?;
    tracing::warn!(
        id = %record.id,
        path = %path.display(),
        "created a publisher key for the `rbee` and `rbee-premium` namespaces (the demo publishes with it); \
         the key is in this file only, revoke it with `rbee-catalog publisher-key revoke`"
    );
    let client = target.client(Credentials::basic("demo", key.expose()))?;
    publish_example_with(&client, catalog_repository).await?;
    publish_worker_set_with(&client, catalog_repository).await?;
    Ok(true)
}

/// Where the demo publishes.
struct Target<'a> {
    registry_url: &'a str,
    token_service: Option<&'a str>,
}

impl Target<'_> {
    /// A registry client for the target with `credentials`.
    fn client(&self, credentials: Credentials) -> Result<RegistryClient, String> {
        let url = reqwest::Url::parse(self.registry_url).map_err(|e| e.to_string())?;
        let client = RegistryClient::new(url, credentials, RetryPolicy::default())
            .map_err(|e| e.to_string())?;
        Ok(match self.token_service {
            Some(service) => client.with_token_service(
                reqwest::Url::parse(service).map_err(|e| format!("{service}: {e}"))?,
            ),
            None => client,
        })
    }
}

/// Publishes rbee's worker set with stand-in builds for every declared
/// platform, one worker after the other (each updates the catalog index).
pub async fn publish_worker_set_as(
    registry_url: &str,
    catalog_repository: &str,
    credentials: Credentials,
) -> Result<(), String> {
    let target = Target {
        registry_url,
        token_service: None,
    };
    publish_worker_set_with(&target.client(credentials)?, catalog_repository).await
}

async fn publish_worker_set_with(
    client: &RegistryClient,
    catalog_repository: &str,
) -> Result<(), String> {
    for worker in worker_set() {
        let started = std::time::Instant::now();
        let dir = tempfile::tempdir().map_err(|e| e.to_string())?;
        let write = |name: &str, text: &str| {
            std::fs::write(dir.path().join(name), text).map_err(|e| e.to_string())
        };
        write("metadata.json", worker.metadata)?;
        write("LICENSE", worker.license)?;
        write("README.md", worker.readme)?;
        if let Some(pkgbuild) = worker.pkgbuild {
            write("PKGBUILD", pkgbuild)?;
        }
        let metadata = rbee_schemas::WorkerMetadata::from_json(worker.metadata)
            .map_err(|e| format!("{}: {e}", worker.id))?;
        let mut builds = Vec::new();
        for platform in &metadata.platforms {
            let name = format!("build-{platform}");
            write(&name, &stand_in(worker.id, platform.name()))?;
            builds.push((platform.to_string(), dir.path().join(name)));
        }
        let files = ReleaseFiles {
            metadata: dir.path().join("metadata.json"),
            builds,
            pkgbuild: worker.pkgbuild.map(|_| dir.path().join("PKGBUILD")),
            license: None,
            readme: None,
        };
        let release = Release::load(&files).map_err(|e| format!("{}: {e}", worker.id))?;
        publish(
            client,
            &release,
            &demo_options(catalog_repository),
            &Reporter::new(true),
        )
        .await
        .map_err(|e| format!("{}: {e}", worker.id))?;
        tracing::info!(
            worker = worker.id,
            platforms = metadata.platforms.len(),
            took_ms = started.elapsed().as_millis() as u64,
            "published a demo worker (stand-in builds)"
        );
    }
    Ok(())
}

fn demo_options(catalog_repository: &str) -> PublishOptions {
    PublishOptions {
        namespace: None,
        catalog_repository: catalog_repository.to_owned(),
        force: false,
        dry_run: false,
        compression: rbee_pusher::publish::Compression::default(),
        created: "2026-01-01T00:00:00Z".into(),
    }
}

/// Whether the catalog index at `registry_url` already lists every demo
/// worker.
async fn is_published(target: &Target<'_>, catalog_repository: &str) -> Result<bool, String> {
    let client = target.client(Credentials::anonymous())?;
    Ok(
        rbee_pusher::publish::read_catalog(&client, catalog_repository)
            .await
            .map_err(|e| e.to_string())?
            .is_some_and(|index| demo_worker_ids().iter().all(|id| index.get(id).is_some())),
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
    let target = Target {
        registry_url,
        token_service: None,
    };
    publish_example_with(&target.client(credentials)?, catalog_repository).await
}

/// Publishes the example worker with `client` unless the catalog already
/// lists it. Returns whether it published.
async fn publish_example_with(
    client: &RegistryClient,
    catalog_repository: &str,
) -> Result<bool, String> {
    if let Some(index) = rbee_pusher::publish::read_catalog(client, catalog_repository)
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
    publish(
        client,
        &release,
        &demo_options(catalog_repository),
        &Reporter::new(true),
    )
    .await
    .map_err(|e| e.to_string())?;
    Ok(true)
}

/// Prints the demo license key (from `<data dir>/demo-license.key`) on
/// stdout, for the person who ran `serve --demo`: a demo's key is meant to
/// be copied. It is never logged.
pub fn print_demo_license(data_dir: &std::path::Path) {
    if let Ok(key) = std::fs::read_to_string(data_dir.join(DEMO_LICENSE_KEY_FILE)) {
        println!(
            "demo license key (unlocks {DEMO_PREMIUM_WORKER}): {}",
            key.trim()
        );
    }
}
