//! Wire types shared by every part of rbee's worker distribution: media
//! types, annotation keys and rbee platform names with their OCI mapping.
//!
//! This crate does no I/O. The worker metadata document and the catalog
//! index document join it with the publishing work (see `docs/`).

pub mod media_types;
pub mod platform;

pub use platform::{OciPlatform, Platform, PlatformError};
