//! OpenAPI schemas for the types the catalog serves (the `openapi`
//! feature; only the catalog enables it, so the client links no utoipa).

use std::borrow::Cow;

use utoipa::openapi::RefOr;
use utoipa::openapi::schema::{ObjectBuilder, Schema, SchemaType, Type};
use utoipa::{PartialSchema, ToSchema};

use crate::Platform;

/// An rbee platform name, as a string enum built from [`Platform::names`].
impl PartialSchema for Platform {
    fn schema() -> RefOr<Schema> {
        ObjectBuilder::new()
            .schema_type(SchemaType::Type(Type::String))
            .description(Some(
                "An rbee platform name: `<os>-<arch>`, mapped one-to-one to an OCI platform \
                 (`linux-x86_64` is `linux/amd64`, `macos-aarch64` is `darwin/arm64`).",
            ))
            .enum_values(Some(Platform::names()))
            .into()
    }
}

impl ToSchema for Platform {
    fn name() -> Cow<'static, str> {
        "Platform".into()
    }
}

/// Stands in for the schema of [`WorkerMetadata`](crate::WorkerMetadata)
/// under its name. The authoritative schema is
/// [`WORKER_METADATA_SCHEMA`](crate::WORKER_METADATA_SCHEMA) (draft
/// 2020-12, the dialect of OpenAPI 3.1), which the catalog puts in this
/// placeholder's place rather than describing the document a second time.
#[derive(Debug)]
pub struct WorkerMetadataSchema;

impl PartialSchema for WorkerMetadataSchema {
    fn schema() -> RefOr<Schema> {
        ObjectBuilder::new()
            .schema_type(SchemaType::Type(Type::Object))
            .into()
    }
}

impl ToSchema for WorkerMetadataSchema {
    fn name() -> Cow<'static, str> {
        "WorkerMetadata".into()
    }
}
