//! The documents of a release, computed before they are written: the
//! config (the metadata document), one manifest per platform, and the
//! index that lists them.

use std::collections::BTreeMap;

use bytes::Bytes;
use rbee_schemas::oci::{self as documents, Annotations, Descriptor, ImageIndex, ImageManifest};
use rbee_schemas::{Platform, annotations as ann, media_types as mt};

use super::PublishOptions;
use super::builds::Build;
use crate::release::Release;

fn descriptor(media_type: &str, digest: &str, size: u64) -> Descriptor {
    Descriptor {
        media_type: media_type.to_owned(),
        digest: digest.to_owned(),
        size,
        platform: None,
        artifact_type: None,
        annotations: None,
    }
}

/// The annotations every release document carries.
fn base_annotations(release: &Release) -> Annotations {
    let m = &release.metadata;
    let mut a = Annotations::new();
    a.insert(ann::VERSION.into(), m.version.to_string());
    a.insert(ann::LICENSES.into(), m.license.clone());
    a.insert(ann::DESCRIPTION.into(), m.description.clone());
    a.insert(ann::SOURCE.into(), m.source.url.clone());
    a.insert(ann::WORKER_ID.into(), m.id.clone());
    a.insert(ann::WORKER_FAMILY.into(), m.family.clone());
    a.insert(ann::WORKER_BACKEND.into(), m.backend.to_string());
    a.insert(
        ann::WORKER_REQUIRES_LICENSE.into(),
        m.distribution.requires_license.to_string(),
    );
    a
}

/// One platform's manifest, ready to PUT.
#[derive(Debug, Clone)]
pub(super) struct PlatformManifest {
    pub(super) platform: Platform,
    pub(super) bytes: Bytes,
    /// Its descriptor as the index lists it (platform, artifact type).
    pub(super) descriptor: Descriptor,
}

/// The documents of a release, computed before anything is sent: the
/// config (the metadata document), one manifest per platform, and the
/// index that lists them.
#[derive(Debug, Clone)]
pub(super) struct ReleaseDocuments {
    pub(super) config: Bytes,
    pub(super) manifests: Vec<PlatformManifest>,
    pub(super) index: ImageIndex,
}

impl ReleaseDocuments {
    pub(super) fn new(
        release: &Release,
        opts: &PublishOptions,
        builds: &BTreeMap<Platform, Build>,
    ) -> Self {
        let config = Bytes::from(release.metadata_json.clone());
        let config_desc = documents::describe(mt::WORKER_METADATA, &config);
        let base = base_annotations(release);
        let manifests: Vec<PlatformManifest> = builds
            .iter()
            .map(|(platform, build)| platform_manifest(&base, &config_desc, *platform, build))
            .collect();
        let mut index_annotations = base;
        index_annotations.insert(ann::CREATED.into(), opts.created.clone());
        let index = ImageIndex {
            schema_version: 2,
            media_type: mt::OCI_INDEX.into(),
            artifact_type: Some(mt::WORKER_ARTIFACT_TYPE.into()),
            manifests: manifests.iter().map(|m| m.descriptor.clone()).collect(),
            annotations: Some(index_annotations),
        };
        ReleaseDocuments {
            config,
            manifests,
            index,
        }
    }
}

/// The manifest of one platform's build: the metadata as config, the
/// archive as the one layer.
fn platform_manifest(
    base: &Annotations,
    config: &Descriptor,
    platform: Platform,
    build: &Build,
) -> PlatformManifest {
    let mut layer = descriptor(build.media_type, &build.packed.digest, build.packed.size);
    layer.annotations = Some(Annotations::from([(
        ann::TITLE.into(),
        build.filename.clone(),
    )]));
    let mut annotations = base.clone();
    annotations.insert(ann::WORKER_PLATFORM.into(), platform.to_string());
    let manifest = ImageManifest {
        schema_version: 2,
        media_type: mt::OCI_MANIFEST.into(),
        artifact_type: Some(mt::WORKER_ARTIFACT_TYPE.into()),
        config: config.clone(),
        layers: vec![layer],
        subject: None,
        annotations: Some(annotations),
    };
    let bytes = Bytes::from(documents::to_bytes(&manifest));
    let mut desc = documents::describe(mt::OCI_MANIFEST, &bytes);
    desc.set_worker_platform(platform);
    // No `artifactType` on the index entry: it is optional there (the
    // manifest itself says it), and skopeo 1.9.3 (Debian's; containers/
    // image 5.23) drops it when it rewrites an index, so with it `skopeo
    // copy --all --preserve-digests` refuses the release, and without the
    // flag changes its digest (docs/operations.md, "Mirroring a release").
    PlatformManifest {
        platform,
        bytes,
        descriptor: desc,
    }
}
