//! The rbee-facing catalog API over any OCI registry: legacy `/workers`
//! routes for today's rbee-hive and marketplace, `/v1` routes with
//! versions and downloads, caching with stale-on-error, and (by default)
//! the embedded registry under `/v2/` in the same process.

pub mod cache;
pub mod catalog;
pub mod config;
pub mod demo;
pub mod error;
pub mod extract;
pub mod metrics;
pub mod openapi;
mod respond;
pub mod routes;
pub mod server;
pub mod state;
pub mod upstream;
pub mod wire;

pub use config::CatalogConfig;
pub use server::{RunningCatalog, start};
