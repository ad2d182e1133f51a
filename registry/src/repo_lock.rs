//! Per-repository write locks, so that changes of one repository compose
//! like some serial order. (Unserialised, a tag PUT that had checked its
//! manifest could write the tag after a DELETE of that manifest had
//! finished: a tag pointing at nothing.)
//!
//! Manifest and tag PUTs take the lock too, not only removals: a PUT that
//! fails part-way (a full disk) rolls back the records it wrote, and a
//! rollback is a removal. Two PUTs of one manifest sharing the lock could
//! see one roll back the record the other's tag was just written to name.
//! Pushes write a handful of manifests one after another, so serialising
//! them per repository costs a release push nothing measurable.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use tokio::sync::{Mutex as AsyncMutex, OwnedMutexGuard};

use crate::reference::RepoName;

/// Held while one repository's manifests, tags or blob links change.
pub type WriteGuard = OwnedMutexGuard<()>;

/// Past this many repositories, locks nobody holds or waits for are dropped.
const PRUNE_AT: usize = 1024;

/// The lock of each repository changed since start. Only ever held across
/// storage calls on small objects, never across a client's body.
#[derive(Debug, Default)]
pub struct RepoLocks {
    // A std mutex: held only to find or create a lock, never across an await.
    locks: Mutex<HashMap<RepoName, Arc<AsyncMutex<()>>>>,
}

impl RepoLocks {
    fn of(&self, repo: &RepoName) -> Arc<AsyncMutex<()>> {
        let mut locks = self.locks.lock().unwrap_or_else(|e| e.into_inner());
        if locks.len() >= PRUNE_AT {
            // Only the map holds these: nobody has or awaits them.
            locks.retain(|_, lock| Arc::strong_count(lock) > 1);
        }
        locks.entry(repo.clone()).or_default().clone()
    }

    /// Waits until nothing else changes `repo`. Tokio's mutex is fair
    /// (first come, first served), so no writer starves. Callers that must
    /// not be cancelled half-way move the guard into a task of their own.
    pub async fn lock(&self, repo: &RepoName) -> WriteGuard {
        self.of(repo).lock_owned().await
    }
}

#[cfg(test)]
mod tests {
    use futures_util::FutureExt;

    use super::*;

    #[tokio::test]
    async fn writes_of_one_repository_wait_for_each_other_not_for_others() {
        let locks = RepoLocks::default();
        let (a, b) = (RepoName::parse("a").unwrap(), RepoName::parse("b").unwrap());
        let writing = locks.lock(&a).await;
        let mut next = std::pin::pin!(locks.lock(&a));
        assert!(
            next.as_mut().now_or_never().is_none(),
            "a second write of the same repository waits"
        );
        let _elsewhere = locks
            .lock(&b)
            .now_or_never()
            .expect("another repository does not wait");
        drop(writing);
        let _next = next.await;
    }
}
