//! `rbee-catalog sync`: rebuilds the catalog's view in the database from
//! the registry (every listed release reread), for a database that was
//! emptied, restored from an old backup, or written by an older catalog.
//! A running catalog does the same by itself when it starts on an empty
//! view; this is for doing it on purpose, e.g. after a registry was
//! changed behind the catalog's back with no notification.

use std::io;
use std::sync::Arc;

use rbee_registry::{Registry, RegistryConfig};

use crate::config::CatalogConfig;
use crate::domain::in_process::InProcess;
use crate::domain::source::RegistryRead;
use crate::domain::upstream::Upstream;
use crate::domain::view::{SyncReport, View};

/// Rebuilds the view in `config`'s database from `config`'s registry:
/// the external one (`registry_url`), or the embedded one in the data dir
/// (which only one process may open: stop `serve` first, or point
/// `--registry-url` at it).
pub async fn sync_view(config: &CatalogConfig) -> io::Result<SyncReport> {
    let store = crate::admin::open_store(config)
        .await
        .map_err(|e| io::Error::other(format!("opening the catalog's database: {e}")))?;
    let source: Arc<dyn RegistryRead> = match &config.registry_url {
        Some(url) => Arc::new(
            Upstream::new(
                url,
                config.registry_credentials.clone(),
                config.upstream.clone(),
            )
            .map_err(io::Error::other)?,
        ),
        None => {
            let registry_config = RegistryConfig::new(config.data_dir.join("registry"));
            let registry = Registry::open(registry_config).await.map_err(|e| {
                io::Error::other(format!(
                    "opening the embedded registry in {} (stop `serve` first, or pass \
                     --registry-url): {e}",
                    config.data_dir.display()
                ))
            })?;
            // The host only names the registry in OCI references, which
            // the view does not store.
            Arc::new(InProcess::new(
                registry,
                "localhost".into(),
                config.upstream.deadline,
            ))
        }
    };
    let view = View::new(store.clone(), source, config.catalog_repository.clone());
    let report = view.sync().await.map_err(io::Error::other);
    // Tell running nodes on a shared database to drop their caches.
    let _ = store.notify_view_changed("*").await;
    store.close().await;
    report
}
