//! Per-repository write locks. Manifest and tag writes and deletes of one
//! repository take its lock, so that they apply one at a time and every
//! outcome is one some serial order could produce. (Unserialised, a tag PUT
//! that had checked its manifest could write the tag after a DELETE of that
//! manifest had finished: a tag pointing at nothing.)

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use crate::reference::RepoName;

/// Held while one repository's manifests or tags change. Only ever held
/// across storage calls on small objects, never across a client's body.
pub type RepoGuard = tokio::sync::OwnedMutexGuard<()>;

/// Past this many repositories, locks nobody holds or waits for are dropped.
const PRUNE_AT: usize = 1024;

/// The lock of each repository written since start.
#[derive(Debug, Default)]
pub struct RepoLocks {
    // A std mutex: held only to find or create a lock, never across an await.
    locks: Mutex<HashMap<RepoName, Arc<tokio::sync::Mutex<()>>>>,
}

impl RepoLocks {
    /// Waits for `repo`'s lock. Callers that must not be cancelled half-way
    /// move the guard into a task of their own.
    pub async fn lock(&self, repo: &RepoName) -> RepoGuard {
        let lock = {
            let mut locks = self.locks.lock().unwrap_or_else(|e| e.into_inner());
            if locks.len() >= PRUNE_AT {
                // Only the map holds these: nobody has or awaits them.
                locks.retain(|_, lock| Arc::strong_count(lock) > 1);
            }
            locks.entry(repo.clone()).or_default().clone()
        };
        lock.lock_owned().await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn one_repository_at_a_time_others_in_parallel() {
        let locks = RepoLocks::default();
        let (a, b) = (RepoName::parse("a").unwrap(), RepoName::parse("b").unwrap());
        let held = locks.lock(&a).await;
        let mut second = std::pin::pin!(locks.lock(&a));
        assert!(
            futures_util::FutureExt::now_or_never(second.as_mut()).is_none(),
            "a second writer of `a` waits"
        );
        let _other = locks.lock(&b).await;
        drop(held);
        let _next = second.await;
    }
}
