//! Per-repository write locks, so that changes of one repository compose
//! like some serial order. (Unserialised, a tag PUT that had checked its
//! manifest could write the tag after a DELETE of that manifest had
//! finished: a tag pointing at nothing.)
//!
//! Additions (manifest and tag PUTs) only ever add records, and any two of
//! them interleave like one after the other, so they share the lock and run
//! in parallel; removals (manifest, tag and blob DELETEs) take it alone.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use tokio::sync::{OwnedRwLockReadGuard, OwnedRwLockWriteGuard, RwLock};

use crate::reference::RepoName;

/// Held while manifests or tags are added to one repository.
pub type AddGuard = OwnedRwLockReadGuard<()>;
/// Held while something is removed from one repository.
pub type RemoveGuard = OwnedRwLockWriteGuard<()>;

/// Past this many repositories, locks nobody holds or waits for are dropped.
const PRUNE_AT: usize = 1024;

/// The lock of each repository changed since start. Only ever held across
/// storage calls on small objects, never across a client's body.
#[derive(Debug, Default)]
pub struct RepoLocks {
    // A std mutex: held only to find or create a lock, never across an await.
    locks: Mutex<HashMap<RepoName, Arc<RwLock<()>>>>,
}

impl RepoLocks {
    fn of(&self, repo: &RepoName) -> Arc<RwLock<()>> {
        let mut locks = self.locks.lock().unwrap_or_else(|e| e.into_inner());
        if locks.len() >= PRUNE_AT {
            // Only the map holds these: nobody has or awaits them.
            locks.retain(|_, lock| Arc::strong_count(lock) > 1);
        }
        locks.entry(repo.clone()).or_default().clone()
    }

    /// Waits until `repo` may be added to (alongside other additions).
    /// Callers that must not be cancelled half-way move the guard into a
    /// task of their own.
    pub async fn add(&self, repo: &RepoName) -> AddGuard {
        self.of(repo).read_owned().await
    }

    /// Waits until nothing else changes `repo`, for a removal. Tokio's lock
    /// is fair, so a stream of additions cannot starve it.
    pub async fn remove(&self, repo: &RepoName) -> RemoveGuard {
        self.of(repo).write_owned().await
    }
}

#[cfg(test)]
mod tests {
    use futures_util::FutureExt;

    use super::*;

    #[tokio::test]
    async fn removals_wait_for_everything_additions_only_for_removals() {
        let locks = RepoLocks::default();
        let (a, b) = (RepoName::parse("a").unwrap(), RepoName::parse("b").unwrap());
        let adding = locks.add(&a).await;
        let _also_adding = locks.add(&a).await;
        let mut removing = std::pin::pin!(locks.remove(&a));
        assert!(
            removing.as_mut().now_or_never().is_none(),
            "a removal waits for additions"
        );
        let _elsewhere = locks.remove(&b).await;
        drop((adding, _also_adding));
        let removal = removing.await;
        let mut next_addition = std::pin::pin!(locks.add(&a));
        assert!(
            next_addition.as_mut().now_or_never().is_none(),
            "an addition waits for a removal"
        );
        drop(removal);
        let _added = next_addition.await;
    }
}
