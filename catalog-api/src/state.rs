//! What every catalog handler shares.

use std::sync::Arc;

use crate::catalog::Catalog;
use crate::metrics::Metrics;

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
}

impl AppState {
    /// Base of `/v2/...` download URLs.
    pub fn download_base(&self) -> &str {
        &self.registry_public_url
    }
}
