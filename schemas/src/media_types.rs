//! Media types the registry understands and the rbee artifact and layer types.

/// OCI image manifest (image-spec v1.1).
pub const OCI_MANIFEST: &str = "application/vnd.oci.image.manifest.v1+json";
/// OCI image index (image-spec v1.1).
pub const OCI_INDEX: &str = "application/vnd.oci.image.index.v1+json";
/// Docker image manifest, schema 2. skopeo and docker still push it.
pub const DOCKER_MANIFEST: &str = "application/vnd.docker.distribution.manifest.v2+json";
/// Docker manifest list, schema 2: the Docker twin of the OCI index.
pub const DOCKER_MANIFEST_LIST: &str = "application/vnd.docker.distribution.manifest.list.v2+json";
/// The empty JSON descriptor's media type (`{}`), used as config by artifacts.
pub const OCI_EMPTY: &str = "application/vnd.oci.empty.v1+json";

/// Every manifest media type the registry stores, in the order it prefers
/// them when a client sends no `Accept` header.
pub const MANIFEST_MEDIA_TYPES: [&str; 4] = [
    OCI_MANIFEST,
    OCI_INDEX,
    DOCKER_MANIFEST,
    DOCKER_MANIFEST_LIST,
];

/// True when `media_type` names an index (a list of manifests) rather than a
/// single manifest.
pub fn is_index(media_type: &str) -> bool {
    media_type == OCI_INDEX || media_type == DOCKER_MANIFEST_LIST
}

/// `artifactType` of a worker release: the image index and each platform
/// manifest.
pub const WORKER_ARTIFACT_TYPE: &str = "application/vnd.rbee.worker.v1";
/// Media type of the worker metadata document, the `config` of a platform
/// manifest.
pub const WORKER_METADATA: &str = "application/vnd.rbee.worker.metadata.v1+json";
/// Media type of a worker layer: the tar.gz with the binary, LICENSE,
/// README and metadata.json.
pub const WORKER_LAYER: &str = "application/vnd.rbee.worker.layer.v1.tar+gzip";
/// Media type of a worker layer compressed with zstd (`.tar.zst`): the
/// same tar as [`WORKER_LAYER`]. Named like it (the OCI `+zstd` suffix on
/// the rbee layer type), so that a worker archive stays recognisable as one.
pub const WORKER_LAYER_ZSTD: &str = "application/vnd.rbee.worker.layer.v1.tar+zstd";
/// Every worker layer media type readers accept, gzip first.
pub const WORKER_LAYERS: [&str; 2] = [WORKER_LAYER, WORKER_LAYER_ZSTD];

/// True when `media_type` is a worker layer of either compression.
pub fn is_worker_layer(media_type: &str) -> bool {
    WORKER_LAYERS.contains(&media_type)
}
/// `artifactType` of the PKGBUILD referrer attached to a release index.
pub const PKGBUILD_ARTIFACT_TYPE: &str = "application/vnd.rbee.pkgbuild.v1";
/// Media type of the PKGBUILD layer of that referrer.
pub const PKGBUILD: &str = "text/x-pkgbuild";
/// Media type of the generated `.SRCINFO` layer of that referrer.
pub const SRCINFO: &str = "text/x-srcinfo";
/// `artifactType` of the catalog index artifact (e.g. `rbee/catalog:latest`).
pub const CATALOG_ARTIFACT_TYPE: &str = "application/vnd.rbee.catalog.v1";
/// Media type of the catalog index document, the layer of that artifact.
pub const CATALOG_INDEX: &str = "application/vnd.rbee.catalog.index.v1+json";
/// `artifactType` of a release's signature artifact, a referrer of the
/// release index (`rbee_schemas::signature`).
pub const SIGNATURE_ARTIFACT_TYPE: &str = "application/vnd.rbee.worker.signature.v1+json";
/// Media type of one platform archive's minisign signature (the text
/// `minisign -V` reads), a layer of the signature artifact.
pub const MINISIG: &str = "application/vnd.rbee.worker.signature.v1.minisig";
