//! What rbee-hive embeds to find, download, verify and install a worker.
//!
//! [`CatalogClient`] is a typed client of the catalog's `/v1` routes;
//! [`Installer`] resolves a version for this machine's platform, checks
//! the catalog's answer against what was asked, downloads with resume
//! within [`Limits`](limits) and [`Timeouts`], verifies the sha256 before
//! anything touches the destination, unpacks safely and installs
//! atomically under the destination's lock; with publisher keys pinned
//! ([`TrustStore`]), the build's minisign signature must verify too. When
//! the catalog is down,
//! [`Installer::install_from_registry`] reads the registry directly, with
//! the same checks.
//!
//! The CLI (`rbee-worker`) and its dependencies are behind the default
//! `cli` feature; embed the library with `default-features = false`.

pub mod api;
pub mod cache;
pub mod checked;
pub mod download;
pub mod error;
pub mod install;
mod layout;
pub mod limits;
pub mod oci;
mod records;
pub mod trust;
pub mod unpack;
pub mod upgrade;

pub use api::CatalogClient;
pub use error::ClientError;
pub use install::{Installed, Installer, Outcome, Resolved, UnpackProgress};
pub use limits::Timeouts;
pub use oci::RegistrySource;
pub use rbee_schemas::Platform;
pub use trust::{SignatureRefusal, TrustStore};
pub use upgrade::{Upgrade, Via};
