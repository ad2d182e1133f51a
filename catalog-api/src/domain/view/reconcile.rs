//! Finding the changes no event announced: a yank record pushed, or a
//! tag deleted or moved, while no catalog node listened (or on a registry
//! without a webhook). The catalog index's digest says nothing of these,
//! so [`View::reconcile`] compares every stored release with the
//! registry (its tag's digest, its yank in force) at start and every
//! metadata TTL, and queues the repositories that differ for the updater
//! to reread whole ([`View::refresh_repository`]). It only reads: the
//! updater stays the one writer, and reads never wait for a reconcile.

use std::collections::{BTreeSet, HashMap};

use futures_util::StreamExt;
use rbee_store::catalog_view::ViewRelease;

use super::sync::is_unavailable;
use super::{Job, View, ViewError, kept_versions};
use crate::domain::catalog::LIST_CONCURRENCY;
use crate::domain::referrers;
use crate::domain::upstream::UpstreamError;

impl View {
    /// Compares every release the catalog index lists with the registry
    /// (two reads each: the version's tag, and its yank referrers;
    /// [`LIST_CONCURRENCY`] at once) and queues the repositories where
    /// something differs: a tag gone or moved, another yank in force, a
    /// listed release the view lacks. Returns how many were queued; fails
    /// (queueing nothing) when the registry fails or rate-limits.
    pub async fn reconcile(&self) -> Result<usize, ViewError> {
        let workers = self.store.view_workers().await?;
        let mut checks = Vec::new();
        for worker in &workers {
            let mut stored: HashMap<String, ViewRelease> = self
                .store
                .view_releases(&worker.repository)
                .await?
                .into_iter()
                .map(|r| (r.version.clone(), r))
                .collect();
            for version in kept_versions(&worker.versions) {
                let stored = stored.remove(&version);
                checks.push((worker.repository.clone(), version, stored));
            }
        }
        let mut results = futures_util::stream::iter(checks)
            .map(|(repo, version, stored)| async move {
                let differs = self.differs(&repo, &version, stored.as_ref()).await;
                (repo, version, differs)
            })
            .buffer_unordered(LIST_CONCURRENCY);
        let mut changed = BTreeSet::new();
        while let Some((repo, version, differs)) = results.next().await {
            match differs {
                Ok(false) => {}
                Ok(true) => {
                    tracing::info!(%repo, %version, "catalog view: the registry changed unannounced");
                    changed.insert(repo);
                }
                Err(e) if is_unavailable(&e) => return Err(e.into()),
                // Invalid content: the reread decides what stays.
                Err(_) => {
                    changed.insert(repo);
                }
            }
        }
        for repo in &changed {
            self.enqueue(Job::Repository(repo.clone()), false);
        }
        Ok(changed.len())
    }

    /// Whether `repo:version` in the registry differs from `stored`.
    async fn differs(
        &self,
        repo: &str,
        version: &str,
        stored: Option<&ViewRelease>,
    ) -> Result<bool, UpstreamError> {
        // Listed but not stored: left out when it last read; try again.
        let Some(stored) = stored else {
            return Ok(true);
        };
        let digest = match self.source.manifest(repo, version).await {
            Ok((_, digest)) => digest,
            Err(UpstreamError::NotFound) => return Ok(true),
            Err(e) => return Err(e),
        };
        if digest != stored.index_digest {
            return Ok(true);
        }
        let in_force = referrers::yank::in_force(&*self.source, repo, &digest).await?;
        let now = in_force.map(|y| (y.at_rfc3339(), Some(y.reason).filter(|r| !r.is_empty())));
        let before = stored
            .yank
            .as_ref()
            .filter(|y| y.yanked)
            .map(|y| (y.at.clone(), y.reason.clone()));
        Ok(now != before)
    }
}
