//! What every catalog handler shares, and how it is assembled.

use std::io;
use std::sync::Arc;

use rbee_registry::Registry;
use rbee_store::Store;

use crate::analytics::Analytics;
use crate::config::CatalogConfig;
use crate::domain::catalog::Catalog;
use crate::domain::in_process::InProcess;
use crate::domain::license::LicenseLookup;
use crate::domain::source::RegistryRead;
use crate::domain::upstream::{Upstream, registry_host};
use crate::metrics::Metrics;
use crate::rate_limit::RateLimiter;
use crate::signed_url::UrlSigner;
use crate::tokens::TokenService;

/// Shared state of the catalog routes.
#[derive(Debug)]
pub struct AppState {
    /// The registry view, with its caches.
    pub catalog: Catalog,
    /// The catalog's own public base URL (`http://127.0.0.1:8787`).
    pub public_url: String,
    /// Base URL of the registry as clients reach it, for download URLs:
    /// the catalog itself when the registry is embedded.
    pub registry_public_url: String,
    /// Shared secret of the registry webhook; `None` disables the webhook.
    pub webhook_secret: Option<String>,
    /// This server's Prometheus metrics (`/metrics`).
    pub metrics: Arc<Metrics>,
    /// The catalog's database: licenses, keys, the audit log.
    pub store: Store,
    /// Where presented license keys are looked up (the store).
    pub licenses: Arc<dyn LicenseLookup>,
    /// Signs and checks the download URLs of premium builds.
    pub signer: UrlSigner,
    /// The per-client-address buckets of the rate-limited routes (wrap a
    /// router of such routes with [`RateLimiter::wrap`]).
    pub rate_limiter: RateLimiter,
    /// The token service behind `/token`.
    pub tokens: Arc<TokenService>,
    /// Download analytics: the queue to the database writer, the stats
    /// cache.
    pub analytics: Arc<Analytics>,
}

impl AppState {
    /// The state of a catalog configured by `config`. With an `embedded`
    /// registry, the catalog reads it in process (served at
    /// `registry_url`, which names it in OCI references); without one, it
    /// reads the registry at `registry_url` over HTTP. `store` is the
    /// opened database ([`crate::admin::open_store`]).
    pub fn new(
        config: &CatalogConfig,
        embedded: Option<&Arc<Registry>>,
        registry_url: &str,
        public_url: String,
        registry_public_url: String,
        store: Store,
        tokens: Arc<TokenService>,
    ) -> io::Result<Self> {
        let source: Arc<dyn RegistryRead> = match embedded {
            Some(registry) => Arc::new(InProcess::new(
                registry.clone(),
                registry_host(registry_url).map_err(io::Error::other)?,
                config.upstream.deadline,
            )),
            None => Arc::new(
                Upstream::new(
                    registry_url,
                    config.registry_credentials.clone(),
                    config.upstream.clone(),
                )
                .map_err(io::Error::other)?,
            ),
        };
        let mut metrics = Metrics::new();
        let analytics = Arc::new(Analytics::new(config.analytics.clone()));
        metrics.export_analytics(analytics.clone());
        if let Some(registry) = embedded {
            metrics.export_registry_events(registry.events().clone());
        }
        let metrics = Arc::new(metrics);
        Ok(AppState {
            catalog: {
                let catalog = Catalog::new(
                    source,
                    config.catalog_repository.clone(),
                    config.ttls.clone(),
                    metrics.cache().clone(),
                );
                // Listings from the database's view (issue 13), unless
                // turned off (the benchmark measures the walk beside it).
                if config.catalog_view {
                    catalog.with_view(store.clone())
                } else {
                    catalog
                }
            },
            public_url,
            registry_public_url,
            webhook_secret: config.webhook_secret.clone(),
            metrics,
            licenses: Arc::new(store.clone()),
            store,
            signer: UrlSigner::load_or_create(&config.data_dir)?,
            rate_limiter: RateLimiter::new(config.rate_limit),
            tokens,
            analytics,
        })
    }

    /// Base of `/v2/...` download URLs.
    pub fn download_base(&self) -> &str {
        &self.registry_public_url
    }
}
