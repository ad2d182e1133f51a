//! What rbee-hive embeds to find, download, verify and install a worker.
//!
//! [`CatalogClient`] is a typed client of the catalog's `/v1` routes;
//! [`Installer`] resolves a version for this machine's platform, downloads
//! with resume, verifies the sha256 before anything touches the
//! destination, unpacks safely and installs atomically. When the catalog
//! is down, [`Installer::install_from_registry`] reads the registry
//! directly.

pub mod api;
pub mod download;
pub mod error;
pub mod install;
pub mod oci;
pub mod unpack;

pub use api::CatalogClient;
pub use error::ClientError;
pub use install::{Installed, Installer, Outcome};
pub use oci::RegistrySource;
pub use rbee_schemas::Platform;
