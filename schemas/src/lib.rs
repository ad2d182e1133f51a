//! Wire documents and vocabulary shared by every part of rbee's worker
//! distribution: the worker metadata document and its JSON Schema, the
//! catalog index document, media types, annotation keys, and rbee platform
//! names with their OCI mapping, and the catalog's `/v1` JSON answers
//! ([`v1`]), read by the client and written by the catalog.
//!
//! This crate does no I/O: JSON text goes in, values come out. Every reader
//! reports all the problems of a document at once, each with its JSON path
//! ([`ValidationErrors`]).

pub mod annotations;
pub mod catalog;
pub mod delta;
pub mod limits;
pub mod media_types;
pub mod metadata;
pub mod oci;
#[cfg(feature = "openapi")]
pub mod openapi;
pub mod platform;
mod rules;
pub mod signature;
pub mod v1;
mod validation;
pub mod worker_id;
pub mod yank;

pub use catalog::{CatalogEntry, CatalogIndex};
pub use metadata::{Backend, Capabilities, Distribution, Pricing, Source, WorkerMetadata};
pub use platform::{OciPlatform, Platform, PlatformError};
pub use rules::file_name as validate_file_name;
pub use rules::is_name_component as is_repository_name_component;
pub use validation::{ValidationErrors, ValidationIssue};
pub use worker_id::{WORKER_ID_MAX_LEN, validate_published_worker_id, validate_worker_id};
pub use yank::{YANK_ARTIFACT_TYPE, YankRecord};

/// The JSON Schema (draft 2020-12) of the worker metadata document, the
/// text of `schemas/worker-metadata.schema.json`. Embedded so that tools can
/// serve or check against it without finding the file; the tests keep it in
/// agreement with [`WorkerMetadata::from_json`].
pub const WORKER_METADATA_SCHEMA: &str = include_str!("../worker-metadata.schema.json");
