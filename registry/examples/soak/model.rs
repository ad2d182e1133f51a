//! What the soak knows: the pool of blob contents, and each client's exact
//! model of its repositories, where a request without an answer leaves an
//! object in the state `Either`.

use std::collections::{BTreeMap, BTreeSet};

use bytes::Bytes;
use sha2::Digest as _;

/// Blob contents every client draws from, so that the same content is
/// pushed into many repositories concurrently.
pub const POOL: usize = 36;

/// A small xorshift generator: the soak needs cheap, seedable choices,
/// not cryptographic ones.
#[derive(Debug)]
pub struct Rng(u64);

impl Rng {
    pub fn new(seed: u64) -> Rng {
        Rng(seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1)
    }
    pub fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
    pub fn below(&mut self, n: usize) -> usize {
        (self.next() % n.max(1) as u64) as usize
    }
    pub fn chance(&mut self, percent: u64) -> bool {
        self.next() % 100 < percent
    }
}

pub fn sha256(data: &[u8]) -> String {
    format!("sha256:{}", hex::encode(sha2::Sha256::digest(data)))
}

/// The pool of blob contents, from 150 bytes to 2.5 MB.
pub fn content_pool() -> Vec<(String, Bytes)> {
    const SIZES: [usize; 6] = [150, 3_000, 40_000, 200_000, 700_001, 2_500_000];
    (0..POOL)
        .map(|i| {
            let mut rng = Rng::new(1000 + i as u64);
            let data: Vec<u8> = (0..SIZES[i % SIZES.len()])
                .map(|_| rng.next() as u8)
                .collect();
            (sha256(&data), Bytes::from(data))
        })
        .collect()
}

/// What an object should look like after a restart.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Expect {
    /// The last push was acknowledged, no delete since.
    Present,
    /// The last delete was acknowledged (or it was never pushed).
    Absent,
    /// The last request about it lost its answer.
    Either,
}

impl Expect {
    /// After a push: acknowledged, or unknown.
    pub fn pushed(self, acked: bool) -> Expect {
        match (acked, self) {
            (true, _) | (false, Expect::Present) => Expect::Present,
            (false, _) => Expect::Either,
        }
    }
    /// After a delete: acknowledged, or unknown.
    pub fn deleted(self, acked: bool) -> Expect {
        match (acked, self) {
            (true, _) | (false, Expect::Absent) => Expect::Absent,
            (false, _) => Expect::Either,
        }
    }
}

#[derive(Debug, Clone)]
pub struct ManifestModel {
    pub expect: Expect,
    pub body: Bytes,
    pub subject: Option<String>,
    /// The blobs it references, which a PUT of it again needs present.
    pub blobs: Vec<String>,
}

/// One client's exact knowledge of one of its repositories.
#[derive(Debug, Default)]
pub struct RepoModel {
    pub blobs: BTreeMap<String, Expect>,
    pub manifests: BTreeMap<String, ManifestModel>,
    /// Per tag, the digests it may name (`None`: no tag); one when settled.
    pub tags: BTreeMap<String, BTreeSet<Option<String>>>,
    /// Manifests in push order, oldest first, for trimming.
    pub order: Vec<String>,
}

impl RepoModel {
    pub fn present_blobs(&self) -> Vec<String> {
        self.blobs
            .iter()
            .filter(|(_, e)| **e == Expect::Present)
            .map(|(d, _)| d.clone())
            .collect()
    }
    pub fn present_manifests(&self) -> Vec<String> {
        self.order
            .iter()
            .filter(|d| self.manifests.get(*d).map(|m| m.expect) == Some(Expect::Present))
            .cloned()
            .collect()
    }
    pub fn set_tag(&mut self, tag: &str, digest: Option<String>, acked: bool) {
        let set = self.tags.entry(tag.to_owned()).or_insert_with(|| {
            let mut s = BTreeSet::new();
            s.insert(None);
            s
        });
        if acked {
            set.clear();
        }
        set.insert(digest);
    }
    /// Keeps the most recent deleted manifests only, so that the checks
    /// after a restart do not grow with the length of the run.
    pub fn forget_old_deletes(&mut self) {
        const KEEP: usize = 40;
        let absent: Vec<String> = self
            .order
            .iter()
            .filter(|d| self.manifests.get(*d).map(|m| m.expect) == Some(Expect::Absent))
            .cloned()
            .collect();
        if absent.len() <= KEEP {
            return;
        }
        let forget: BTreeSet<&String> = absent[..absent.len() - KEEP].iter().collect();
        // A subject's referrers may still be listed; keep what they name.
        let subjects: BTreeSet<String> = self
            .manifests
            .values()
            .filter_map(|m| m.subject.clone())
            .collect();
        for d in &forget {
            if !subjects.contains(*d) {
                self.manifests.remove(*d);
            }
        }
        self.order.retain(|d| self.manifests.contains_key(d));
    }

    /// A delete of manifest `digest` also removes every tag naming it.
    pub fn manifest_deleted(&mut self, digest: &str, acked: bool) {
        if let Some(m) = self.manifests.get_mut(digest) {
            m.expect = m.expect.deleted(acked);
        }
        for set in self.tags.values_mut() {
            if set.contains(&Some(digest.to_owned())) {
                if acked {
                    set.remove(&Some(digest.to_owned()));
                }
                set.insert(None);
            }
        }
    }
}
