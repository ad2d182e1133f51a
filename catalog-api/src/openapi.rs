//! The OpenAPI 3.1 document of the catalog routes, served at
//! `/openapi.json`, generated from the handlers' `#[utoipa::path]`
//! attributes and the wire types' `ToSchema` derives, so that it cannot
//! drift from the code. The embedded registry's `/v2` routes are not in it:
//! they are the OCI Distribution Spec's.
//!
//! A snapshot test keeps the whole document under review: any change to a
//! route, a parameter or a JSON shape shows up as a snapshot diff.

use std::borrow::Cow;
use std::sync::LazyLock;

use utoipa::openapi::header::HeaderBuilder;
use utoipa::openapi::path::{ParameterBuilder, ParameterIn};
use utoipa::openapi::schema::{ObjectBuilder, Schema, SchemaType, Type};
use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa::openapi::{OpenApi as Document, RefOr, Required};
use utoipa::{IntoParams, Modify, OpenApi, PartialSchema, ToSchema};

use rbee_schemas::Platform;

use crate::routes::{legacy, licenses, ops, stats, token, v1, webhook};

/// The `{id}` of worker routes. Parameter descriptions live in these
/// doc-only structs because the handlers take plain `Path<String>`s.
#[derive(Debug, IntoParams)]
#[into_params(parameter_in = Path)]
pub struct WorkerIdPath {
    /// Worker id: lowercase letters, digits and `-`, at most 100 characters;
    /// anything else is 400 `Invalid worker id`.
    #[param(
        pattern = "^[a-z0-9-]+$",
        max_length = 100,
        example = "llm-worker-rbee-cpu"
    )]
    pub id: String,
}

/// The `{id}` and `{version}` of release routes.
#[derive(Debug, IntoParams)]
#[into_params(parameter_in = Path)]
pub struct ReleasePath {
    /// Worker id: lowercase letters, digits and `-`, at most 100 characters.
    #[param(
        pattern = "^[a-z0-9-]+$",
        max_length = 100,
        example = "llm-worker-rbee-cpu"
    )]
    pub id: String,
    /// A semver version such as `0.1.0`, or `latest` for the highest
    /// stable one; anything else is 400 `Bad request`. The pattern is the
    /// grammar the server parses (semver.org's, numbers that fit 64 bits,
    /// at most 128 characters); it says `[0-9]`, not `\d`, because some
    /// regex engines (Python's, which schemathesis uses) match other digits
    /// with `\d`.
    #[param(
        pattern = r"^(latest|(0|[1-9][0-9]{0,18})\.(0|[1-9][0-9]{0,18})\.(0|[1-9][0-9]{0,18})(-(0|[1-9][0-9]{0,18}|[0-9]*[a-zA-Z-][0-9a-zA-Z-]*)(\.(0|[1-9][0-9]{0,18}|[0-9]*[a-zA-Z-][0-9a-zA-Z-]*))*)?(\+[0-9a-zA-Z-]+(\.[0-9a-zA-Z-]+)*)?)$",
        max_length = 128,
        example = "latest"
    )]
    pub version: String,
}

/// The query of `GET /v1/workers`.
#[derive(Debug, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct ListQuery {
    /// Only workers of this backend; another value is 400.
    #[param(value_type = Option<BackendName>)]
    pub backend: Option<String>,
    /// Only workers whose latest version was built for this platform; an
    /// unknown name is 400 `Unknown platform`.
    #[param(value_type = Option<Platform>)]
    pub platform: Option<String>,
}

/// The query of `GET /v1/workers/{id}/versions`.
#[derive(Debug, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct VersionsQuery {
    /// Also list yanked versions (with `yanked: true` and `yank_reason`);
    /// by default they are left out.
    pub include_yanked: Option<bool>,
}

/// The query of download and blob routes.
#[derive(Debug, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct PlatformQuery {
    /// The platform to download; missing is 400 `Bad request`, an unknown
    /// name 400 `Unknown platform` (with `valid_platforms`), a platform
    /// this version was not built for 404 `Platform not available` (with
    /// `available_platforms`).
    #[param(value_type = Platform, example = "linux-x86_64")]
    pub platform: String,
    /// `sha256:<hex>` of the archive the client has installed: the answer
    /// then carries `delta` when the publisher attached a delta from it
    /// (unchanged otherwise). Not a sha256 digest: 400 `Bad request`.
    #[param(pattern = r"^sha256:[0-9a-f]{64}$")]
    pub from: Option<String>,
}

/// The query of a `/blob` URL: the platform, and for a premium build the
/// signature a licensed download answered.
#[derive(Debug, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct BlobQuery {
    /// The platform to download, as for a download.
    #[param(value_type = Platform, example = "linux-x86_64")]
    pub platform: String,
    /// Premium builds: Unix seconds until which the URL is valid. Not a
    /// number: 403 `Invalid download URL` on a premium build, 400 `Bad
    /// request` on a free one.
    pub expires: Option<u64>,
    /// Premium builds: the server's hex HMAC-SHA256 over the blob's
    /// digest, repository and `expires`.
    pub signature: Option<String>,
    /// Serve the delta from this archive (`sha256:<hex>`) instead of the
    /// archive; 404 `Delta not found` when none is attached.
    #[param(pattern = r"^sha256:[0-9a-f]{64}$")]
    pub from: Option<String>,
}

/// The schema of a backend name (`cpu`, `cuda`, ...), as a string enum
/// built from [`rbee_schemas::Backend::ALL`].
#[derive(Debug)]
pub struct BackendName;

impl PartialSchema for BackendName {
    fn schema() -> RefOr<Schema> {
        ObjectBuilder::new()
            .schema_type(SchemaType::Type(Type::String))
            .description(Some("A worker backend."))
            .enum_values(Some(rbee_schemas::Backend::ALL.map(|b| b.as_str())))
            .into()
    }
}

impl ToSchema for BackendName {
    fn name() -> Cow<'static, str> {
        "Backend".into()
    }
}

/// A string enum schema, for the legacy routes' closed sets.
fn string_enum(description: &str, values: &[&str]) -> RefOr<Schema> {
    ObjectBuilder::new()
        .schema_type(SchemaType::Type(Type::String))
        .description(Some(description))
        .enum_values(Some(values.to_vec()))
        .into()
}

/// An OS name of the legacy routes (rbee's `Platform` enum).
#[derive(Debug)]
pub struct LegacyOs;

impl PartialSchema for LegacyOs {
    fn schema() -> RefOr<Schema> {
        string_enum(
            "An OS name, as `std::env::consts::OS` spells it.",
            &["linux", "macos", "windows"],
        )
    }
}

impl ToSchema for LegacyOs {}

/// A CPU architecture of the legacy routes (rbee's `Architecture` enum).
#[derive(Debug)]
pub struct LegacyArch;

impl PartialSchema for LegacyArch {
    fn schema() -> RefOr<Schema> {
        string_enum(
            "A CPU architecture, as `std::env::consts::ARCH` spells it.",
            &["x86_64", "aarch64"],
        )
    }
}

impl ToSchema for LegacyArch {}

/// An implementation language (rbee's `WorkerImplementation` enum).
#[derive(Debug)]
pub struct LegacyImplementation;

impl PartialSchema for LegacyImplementation {
    fn schema() -> RefOr<Schema> {
        string_enum(
            "An implementation language rbee's readers accept.",
            &rbee_schemas::metadata::IMPLEMENTATIONS,
        )
    }
}

impl ToSchema for LegacyImplementation {}

/// A build system (rbee's `BuildSystem` enum).
#[derive(Debug)]
pub struct LegacyBuildSystem;

impl PartialSchema for LegacyBuildSystem {
    fn schema() -> RefOr<Schema> {
        string_enum(
            "A build system rbee's readers accept.",
            &rbee_schemas::metadata::BUILD_SYSTEMS,
        )
    }
}

impl ToSchema for LegacyBuildSystem {}

/// The schema of a streamed tar.gz: raw bytes, not JSON.
#[derive(Debug)]
pub struct GzipFile;

impl PartialSchema for GzipFile {
    fn schema() -> RefOr<Schema> {
        ObjectBuilder::new()
            .schema_type(SchemaType::Type(Type::String))
            .content_media_type("application/gzip")
            .into()
    }
}

impl ToSchema for GzipFile {}

/// The schema of a streamed tar.zst: raw bytes, not JSON.
#[derive(Debug)]
pub struct ZstdFile;

impl PartialSchema for ZstdFile {
    fn schema() -> RefOr<Schema> {
        ObjectBuilder::new()
            .schema_type(SchemaType::Type(Type::String))
            .content_media_type("application/zstd")
            .into()
    }
}

impl ToSchema for ZstdFile {}

#[derive(OpenApi)]
#[openapi(
    info(
        title = "rbee catalog API",
        description = "The rbee-facing worker catalog: the legacy `/workers` routes today's \
            rbee-hive and the marketplace read, the `/v1` routes with versions and downloads, \
            and operational routes. Errors are JSON `{\"error\", \"message\"}`. The embedded \
            OCI registry under `/v2/` follows the OCI Distribution Spec and is not described \
            here. Human-readable reference: docs/api.md."
    ),
    paths(
        legacy::list,
        legacy::get,
        legacy::pkgbuild,
        v1::list,
        v1::get,
        v1::versions,
        v1::download,
        v1::blob,
        stats::worker,
        stats::overview,
        licenses::verify,
        webhook::registry_events,
        ops::health,
        ops::ready,
        ops::metrics,
        ops::openapi,
        token::token,
        token::jwks,
    ),
    components(schemas(
        crate::error::ErrorBody,
        BackendName,
        Platform,
        LegacyOs,
        LegacyArch,
        LegacyImplementation,
        LegacyBuildSystem
    )),
    tags(
        (name = "legacy", description = "Routes kept compatible with today's rbee-hive and marketplace."),
        (name = "v1", description = "Workers, versions and downloads (snake_case JSON)."),
        (name = "ops", description = "Health, readiness, metrics, this document, and the registry webhook."),
        (name = "tokens", description = "Docker registry token authentication for `/v2/` (public keys at `/token/jwks.json`)."),
    ),
    modifiers(&CachingHeaders, &WebhookSecret, &LicenseKey),
)]
struct ApiDoc;

/// Every route answered through `respond.rs` carries the same caching
/// headers and honours `If-None-Match`. Those routes are the ones that
/// document a 304; this adds the headers to them once instead of repeating
/// them in each attribute.
struct CachingHeaders;

impl Modify for CachingHeaders {
    fn modify(&self, doc: &mut Document) {
        let string = || ObjectBuilder::new().schema_type(SchemaType::Type(Type::String));
        let header = |description: &str| {
            HeaderBuilder::new()
                .schema(string())
                .description(Some(description))
                .build()
        };
        for item in doc.paths.paths.values_mut() {
            let Some(op) = item.get.as_mut() else {
                continue;
            };
            if !op.responses.responses.contains_key("304") {
                continue;
            }
            op.parameters.get_or_insert_with(Vec::new).push(
                ParameterBuilder::new()
                    .name("If-None-Match")
                    .parameter_in(ParameterIn::Header)
                    .required(Required::False)
                    .description(Some(
                        "An ETag from an earlier answer; 304 with no body when it still matches.",
                    ))
                    .schema(Some(string()))
                    .build(),
            );
            for (status, response) in op.responses.responses.iter_mut() {
                let RefOr::T(response) = response else {
                    continue;
                };
                if status != "200" && status != "304" {
                    continue;
                }
                response.headers.insert(
                    "ETag".into(),
                    header("Strong validator of the body (a hash of it)."),
                );
                response.headers.insert(
                    "Cache-Control".into(),
                    header(
                        "`public, max-age=N` with N the route's lifetime; `public, max-age=10` \
                         when the data is stale.",
                    ),
                );
                if status == "200" {
                    response.headers.insert(
                        "Warning".into(),
                        header(
                            "`110 - \"Response is Stale\"` when the registry failed and cached \
                             data was served; absent otherwise.",
                        ),
                    );
                }
            }
        }
    }
}

/// The registry webhook's shared secret, as a bearer token.
struct WebhookSecret;

impl Modify for WebhookSecret {
    fn modify(&self, doc: &mut Document) {
        doc.components
            .get_or_insert_with(Default::default)
            .add_security_scheme(
            "webhook_secret",
            SecurityScheme::Http(
                HttpBuilder::new()
                    .scheme(HttpAuthScheme::Bearer)
                    .description(Some(
                        "The secret set with `--webhook-secret` / `RBEE_CATALOG_WEBHOOK_SECRET`.",
                    ))
                    .build(),
            ),
        );
    }
}

/// A license key, as a bearer token: premium downloads, and what each
/// listed worker says about it.
struct LicenseKey;

impl Modify for LicenseKey {
    fn modify(&self, doc: &mut Document) {
        doc.components
            .get_or_insert_with(Default::default)
            .add_security_scheme(
                "license_key",
                SecurityScheme::Http(
                    HttpBuilder::new()
                        .scheme(HttpAuthScheme::Bearer)
                        .description(Some(
                            "A license key `rbee_lic_...` (`Authorization: Bearer rbee_lic_...`).",
                        ))
                        .build(),
                ),
            );
    }
}

/// The OpenAPI document as JSON.
pub fn document() -> serde_json::Value {
    let mut doc = serde_json::to_value(ApiDoc::openapi()).unwrap_or_default();
    if let Some(slot) = doc.pointer_mut("/components/schemas/WorkerMetadata") {
        *slot = worker_metadata_schema();
    }
    doc
}

/// The serialised document, built once: it depends only on the code.
pub fn document_bytes() -> &'static [u8] {
    static BYTES: LazyLock<Vec<u8>> =
        LazyLock::new(|| serde_json::to_vec(&document()).unwrap_or_default());
    &BYTES
}

/// The schemas crate's JSON Schema of the worker metadata document, made
/// to live at `#/components/schemas/WorkerMetadata`: its `$id` and
/// `$schema` go (the document's dialect is already 2020-12, and a `$id`
/// would change how tools resolve references), and its internal
/// `#/$defs/...` references are rewritten to point into that location.
fn worker_metadata_schema() -> serde_json::Value {
    const HERE: &str = "#/components/schemas/WorkerMetadata/$defs/";
    fn rewrite(v: &mut serde_json::Value) {
        match v {
            serde_json::Value::Object(map) => {
                for (key, value) in map.iter_mut() {
                    if key == "$ref"
                        && let Some(r) = value.as_str()
                        && let Some(rest) = r.strip_prefix("#/$defs/")
                    {
                        *value = serde_json::Value::String(format!("{HERE}{rest}"));
                    } else {
                        rewrite(value);
                    }
                }
            }
            serde_json::Value::Array(items) => items.iter_mut().for_each(rewrite),
            _ => {}
        }
    }
    let mut schema: serde_json::Value =
        serde_json::from_str(rbee_schemas::WORKER_METADATA_SCHEMA).unwrap_or_default();
    if let Some(map) = schema.as_object_mut() {
        map.remove("$id");
        map.remove("$schema");
    }
    rewrite(&mut schema);
    schema
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn openapi_document_snapshot() {
        // The version changes with every release and says nothing about
        // the API's shape.
        insta::assert_json_snapshot!("openapi", document(), {
            ".info.version" => "[version]",
        });
    }

    #[test]
    fn worker_metadata_is_the_schemas_crate_json_schema() {
        let doc = document();
        let meta = &doc["components"]["schemas"]["WorkerMetadata"];
        assert_eq!(meta["title"], "rbee worker metadata");
        assert!(meta.get("$id").is_none());
        let text = meta.to_string();
        assert!(!text.contains("\"#/$defs/"), "every $ref is rewritten");
        // Every rewritten reference resolves inside the document.
        fn refs(v: &serde_json::Value, out: &mut Vec<String>) {
            match v {
                serde_json::Value::Object(m) => {
                    for (k, x) in m {
                        if k == "$ref" {
                            out.push(x.as_str().unwrap_or_default().to_owned());
                        } else {
                            refs(x, out);
                        }
                    }
                }
                serde_json::Value::Array(a) => a.iter().for_each(|x| refs(x, out)),
                _ => {}
            }
        }
        let mut all = Vec::new();
        refs(&doc, &mut all);
        assert!(!all.is_empty());
        for r in all {
            let pointer = r.strip_prefix('#').expect("local reference");
            assert!(doc.pointer(pointer).is_some(), "{r} does not resolve");
        }
    }

    #[test]
    fn the_document_is_openapi_3_1() {
        let doc = document();
        assert!(doc["openapi"].as_str().unwrap().starts_with("3.1"));
        assert!(
            doc["paths"]
                .as_object()
                .unwrap()
                .keys()
                .all(|p| !p.starts_with("/v2"))
        );
    }
}
