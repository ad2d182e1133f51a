//! The media type of a blob, as the manifests that name it say: a blob GET
//! names only a digest, yet analytics wants to know a layer (the worker's
//! tar.gz) from a config. Every client reads a manifest before its blobs,
//! and every manifest this process stores or serves is noted here, so the
//! media type is known for the pulls that matter; after a restart, until a
//! client has read the manifest again, it is `None`.

use std::collections::{HashMap, HashSet};
use std::sync::RwLock;

use crate::manifest::Manifest;
use crate::reference::Digest;

/// Past this many blobs (or manifests) noted, the table starts over, which
/// bounds its memory (a few MiB).
const MAX_ENTRIES: usize = 50_000;

/// Blob digest → media type, from the manifests seen.
#[derive(Debug, Default)]
pub struct BlobMediaTypes {
    // A std lock: never held across an await.
    inner: RwLock<Inner>,
}

#[derive(Debug, Default)]
struct Inner {
    blobs: HashMap<Digest, String>,
    /// Manifests already noted, so that serving one again costs no parse.
    manifests: HashSet<Digest>,
}

impl BlobMediaTypes {
    /// The media type a manifest gave `blob`, if one was seen.
    pub fn get(&self, blob: &Digest) -> Option<String> {
        self.read().blobs.get(blob).cloned()
    }

    /// Whether the manifest `digest` was noted already.
    pub fn knows_manifest(&self, digest: &Digest) -> bool {
        self.read().manifests.contains(digest)
    }

    /// Notes the media types manifest `digest` gives its blobs.
    pub fn note(&self, digest: &Digest, manifest: &Manifest) {
        let mut inner = self.inner.write().unwrap_or_else(|e| e.into_inner());
        if inner.blobs.len() + manifest.blobs.len() > MAX_ENTRIES
            || inner.manifests.len() >= MAX_ENTRIES
        {
            *inner = Inner::default();
        }
        for blob in &manifest.blobs {
            inner
                .blobs
                .insert(blob.digest.clone(), blob.media_type.clone());
        }
        inner.manifests.insert(digest.clone());
    }

    fn read(&self) -> std::sync::RwLockReadGuard<'_, Inner> {
        self.inner.read().unwrap_or_else(|e| e.into_inner())
    }
}
