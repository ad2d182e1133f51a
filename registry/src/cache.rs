//! An in-memory cache of manifest lookups, so that the hot path (HEAD or
//! GET of a manifest by tag, which every client starts with) costs no disk
//! access. Entries are dropped whenever this process changes the
//! repository, and expire after a TTL in case another process did.

use std::collections::HashMap;
use std::sync::RwLock;
use std::time::{Duration, Instant};

use bytes::Bytes;

use crate::reference::{Digest, RepoName};

/// What the registry knows about a stored manifest.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ManifestInfo {
    /// Its digest.
    pub digest: Digest,
    /// The media type it is served with.
    pub media_type: String,
    /// Its size in bytes.
    pub size: u64,
}

/// Past this many entries the cache starts over, which bounds its memory.
const MAX_ENTRIES: usize = 100_000;

/// Lookups of one repository, by reference, with when they were made.
type RepoEntries = HashMap<String, (ManifestInfo, Instant)>;

/// Manifest bodies kept in memory, by digest. Content never changes under
/// its digest, so these need no invalidation, only a size bound.
#[derive(Debug, Default)]
pub struct ManifestBodies {
    // A std lock: never held across an await.
    bodies: RwLock<(HashMap<Digest, Bytes>, usize)>,
}

/// Bodies larger than this are read from storage every time.
const MAX_CACHED_BODY: usize = 256 << 10;
/// Past this many bytes in all, the body cache starts over.
const MAX_CACHED_BODIES: usize = 32 << 20;

impl ManifestBodies {
    /// The body of `digest`, if cached.
    pub fn get(&self, digest: &Digest) -> Option<Bytes> {
        self.bodies
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .0
            .get(digest)
            .cloned()
    }

    /// Keeps a small body.
    pub fn insert(&self, digest: &Digest, body: &Bytes) {
        if body.len() > MAX_CACHED_BODY {
            return;
        }
        let mut guard = self.bodies.write().unwrap_or_else(|e| e.into_inner());
        let (map, total) = &mut *guard;
        if *total + body.len() > MAX_CACHED_BODIES {
            map.clear();
            *total = 0;
        }
        if map.insert(digest.clone(), body.clone()).is_none() {
            *total += body.len();
        }
    }
}

/// Manifest lookups by repository and reference (tag or digest).
#[derive(Debug)]
pub struct ManifestCache {
    ttl: Duration,
    // A std lock, not a Tokio one: it is never held across an await.
    entries: RwLock<HashMap<RepoName, RepoEntries>>,
}

impl ManifestCache {
    /// An empty cache whose entries live for `ttl`.
    pub fn new(ttl: Duration) -> Self {
        ManifestCache {
            ttl,
            entries: RwLock::new(HashMap::new()),
        }
    }

    /// The cached lookup of `reference` in `repo`, if fresh.
    pub fn get(&self, repo: &RepoName, reference: &str) -> Option<ManifestInfo> {
        let entries = self.entries.read().unwrap_or_else(|e| e.into_inner());
        let (info, at) = entries.get(repo)?.get(reference)?;
        (at.elapsed() < self.ttl).then(|| info.clone())
    }

    /// Remembers a lookup.
    pub fn insert(&self, repo: &RepoName, reference: String, info: ManifestInfo) {
        if self.ttl.is_zero() {
            return;
        }
        let mut entries = self.entries.write().unwrap_or_else(|e| e.into_inner());
        if entries.values().map(HashMap::len).sum::<usize>() >= MAX_ENTRIES {
            entries.clear();
        }
        entries
            .entry(repo.clone())
            .or_default()
            .insert(reference, (info, Instant::now()));
    }

    /// Forgets everything about `repo`; called on every change to it.
    pub fn invalidate(&self, repo: &RepoName) {
        self.entries
            .write()
            .unwrap_or_else(|e| e.into_inner())
            .remove(repo);
    }
}
