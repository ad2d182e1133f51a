//! The rbee-facing catalog API over any OCI registry: legacy `/workers`
//! routes for today's rbee-hive and marketplace, `/v1` routes with
//! versions and downloads, caching with stale-on-error, and (by default)
//! the embedded registry under `/v2/` in the same process.
//!
//! [`web`] serves the catalog's web pages at `/` from the same domain calls.
//!
//! [`domain`] is what the catalog knows (workers, releases, the cache, how
//! to read a registry); everything else is the HTTP edge (routes, error
//! mapping, metrics, OpenAPI, JSON shapes, the server), which depends on the
//! domain and never the other way round.

pub mod admin;
pub mod analytics;
pub mod config;
pub mod domain;
pub mod error;
pub mod extract;
pub mod metrics;
pub mod openapi;
pub mod rate_limit;
mod respond;
pub mod routes;
pub mod server;
pub mod signed_url;
pub mod state;
pub mod sync;
pub mod tokens;
pub mod web;
pub mod wire;

pub use config::CatalogConfig;
// The domain modules under their old paths, so that callers need not know
// where they live.
pub use domain::{cache, catalog, upstream};
pub use server::{RunningCatalog, start};
