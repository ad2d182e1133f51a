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

/// A repository's count of changes, read before a lookup from storage and
/// checked when its result is cached.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Generation(u64);

/// Manifest lookups by repository and reference (tag or digest).
///
/// A lookup that missed the cache reads storage and then caches what it
/// read. If a write lands between the read and the insert, the write's
/// invalidation comes first and the insert would bring the old value back
/// for a whole TTL after the write was acknowledged. So each repository
/// counts its changes: a lookup notes the [`Generation`] before it reads,
/// and its result is cached only if the count has not moved since.
#[derive(Debug)]
pub struct ManifestCache {
    ttl: Duration,
    // A std lock, not a Tokio one: it is never held across an await.
    inner: RwLock<Inner>,
}

#[derive(Debug, Default)]
struct Inner {
    entries: HashMap<RepoName, RepoEntries>,
    /// Changes per repository since start. Kept when entries are dropped,
    /// so that a count never goes back; one integer per repository this
    /// process changed, which storage bounds anyway.
    generations: HashMap<RepoName, u64>,
}

impl Inner {
    fn generation(&self, repo: &RepoName) -> Generation {
        Generation(self.generations.get(repo).copied().unwrap_or(0))
    }
}

impl ManifestCache {
    /// An empty cache whose entries live for `ttl`.
    pub fn new(ttl: Duration) -> Self {
        ManifestCache {
            ttl,
            inner: RwLock::new(Inner::default()),
        }
    }

    /// The cached lookup of `reference` in `repo`, if fresh.
    pub fn get(&self, repo: &RepoName, reference: &str) -> Option<ManifestInfo> {
        let inner = self.inner.read().unwrap_or_else(|e| e.into_inner());
        let (info, at) = inner.entries.get(repo)?.get(reference)?;
        (at.elapsed() < self.ttl).then(|| info.clone())
    }

    /// Where `repo` stands now; take it before reading storage and hand it
    /// to [`insert`](Self::insert).
    pub fn generation(&self, repo: &RepoName) -> Generation {
        self.inner
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .generation(repo)
    }

    /// Remembers a lookup that read storage when `repo` was at `seen`,
    /// unless `repo` changed since: then the lookup may be stale.
    pub fn insert(&self, repo: &RepoName, seen: Generation, reference: String, info: ManifestInfo) {
        if self.ttl.is_zero() {
            return;
        }
        let mut inner = self.inner.write().unwrap_or_else(|e| e.into_inner());
        if inner.generation(repo) != seen {
            return;
        }
        if inner.entries.values().map(HashMap::len).sum::<usize>() >= MAX_ENTRIES {
            inner.entries.clear();
        }
        inner
            .entries
            .entry(repo.clone())
            .or_default()
            .insert(reference, (info, Instant::now()));
    }

    /// Forgets everything about every repository (another process's
    /// changes may have been missed).
    pub fn invalidate_all(&self) {
        let mut inner = self.inner.write().unwrap_or_else(|e| e.into_inner());
        let mut repos: Vec<RepoName> = inner.entries.drain().map(|(repo, _)| repo).collect();
        repos.extend(inner.generations.keys().cloned());
        for repo in repos {
            *inner.generations.entry(repo).or_default() += 1;
        }
    }

    /// Forgets everything about `repo`; called on every change to it, after
    /// the change is in storage.
    pub fn invalidate(&self, repo: &RepoName) {
        let mut inner = self.inner.write().unwrap_or_else(|e| e.into_inner());
        inner.entries.remove(repo);
        *inner.generations.entry(repo.clone()).or_default() += 1;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::reference::{Algorithm, Hasher};

    fn info(content: &[u8]) -> ManifestInfo {
        ManifestInfo {
            digest: Hasher::digest(Algorithm::Sha256, content),
            media_type: "application/vnd.oci.image.manifest.v1+json".into(),
            size: content.len() as u64,
        }
    }

    #[test]
    fn a_lookup_that_straddles_a_change_is_not_cached() {
        let cache = ManifestCache::new(Duration::from_secs(30));
        let repo = RepoName::parse("rbee/w").unwrap();
        let seen = cache.generation(&repo);
        cache.invalidate(&repo);
        cache.insert(&repo, seen, "latest".into(), info(b"old"));
        assert_eq!(cache.get(&repo, "latest"), None);

        let seen = cache.generation(&repo);
        cache.insert(&repo, seen, "latest".into(), info(b"new"));
        assert_eq!(cache.get(&repo, "latest"), Some(info(b"new")));
    }

    #[test]
    fn changes_to_one_repository_leave_others_cached() {
        let cache = ManifestCache::new(Duration::from_secs(30));
        let (a, b) = (RepoName::parse("a").unwrap(), RepoName::parse("b").unwrap());
        let seen = cache.generation(&b);
        cache.invalidate(&a);
        cache.insert(&b, seen, "latest".into(), info(b"b"));
        assert_eq!(cache.get(&b, "latest"), Some(info(b"b")));
    }
}
