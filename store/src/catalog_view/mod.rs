//! The catalog's own view of the registry (issue 13): the workers the
//! catalog index lists, every release whose index was read whole, its
//! platform builds, its yank state and (later) its signature. The catalog
//! serves its listings from these tables instead of walking the registry;
//! the registry stays the source of truth, and `rbee-catalog sync`
//! rebuilds them from it.
//!
//! What lives here is storage only: rows in, rows out, in the shapes the
//! tables hold. The catalog's domain (`catalog-api/src/domain/view/`)
//! decides what to read from the registry and when, and turns rows into
//! its own types.
//!
//! With PostgreSQL several catalog nodes share the view: every change is
//! announced with `NOTIFY` on [`VIEW_CHANNEL`] in the transaction that
//! makes it, so the others drop their caches ([`ViewListener`]).

mod listen;
mod rows;

use std::collections::HashSet;

use crate::db::{Db, with_pool};
use crate::store::now;
use crate::{Store, StoreError};

pub use listen::{VIEW_CHANNEL, ViewChange, ViewListener};
pub use rows::{ViewBuild, ViewRelease, ViewState, ViewWorker, ViewYank};

use listen::NotifyIn;
use rows::{BuildRow, ReleaseRow, WorkerRow, attach_builds};

const RELEASE_COLUMNS: &str = "v.repository, v.version, v.index_digest, v.published_at, \
    v.metadata, v.yanked, v.yank_reason, v.yanked_at, v.signature";
const BUILD_COLUMNS: &str =
    "b.repository, b.version, b.platform, b.manifest_digest, b.layer_digest, b.size, b.filename";

impl Store {
    /// The view's state row: `None` when the view was never built (an
    /// empty database, or one emptied by [`Store::clear_view`]).
    pub async fn view_state(&self) -> Result<Option<ViewState>, StoreError> {
        let row: Option<(i64, Option<String>, chrono::DateTime<chrono::Utc>)> = with_pool!(&self.db, pool => {
            sqlx::query_as(
                "SELECT CAST(format AS BIGINT), catalog_digest, synced_at FROM catalog_view_state WHERE id = 1",
            )
            .fetch_optional(pool)
            .await?
        });
        Ok(row.map(|(format, catalog_digest, synced_at)| ViewState {
            format,
            catalog_digest,
            synced_at,
        }))
    }

    /// Empties the view (workers, releases, builds, state): what `sync`
    /// does before a full rebuild, and what a test does to start over.
    pub async fn clear_view(&self) -> Result<(), StoreError> {
        with_pool!(&self.db, pool => {
            let mut tx = pool.begin().await?;
            for table in ["catalog_builds", "catalog_versions", "catalog_workers", "catalog_view_state"] {
                sqlx::query(&format!("DELETE FROM {table}")).execute(&mut *tx).await?;
            }
            NotifyIn::notify(&mut *tx, "*").await?;
            tx.commit().await?;
        });
        Ok(())
    }

    /// Replaces the worker list with `workers` (a catalog index) and drops
    /// the releases it no longer lists. Returns the `(repository, version)`
    /// pairs listed that have no release row yet: what the caller reads
    /// from the registry next, before it records the index as synced
    /// ([`Store::set_view_state`]).
    pub async fn replace_view_workers(
        &self,
        workers: &[ViewWorker],
    ) -> Result<Vec<(String, String)>, StoreError> {
        let listed: HashSet<(String, String)> = workers
            .iter()
            .flat_map(|w| w.versions.iter().map(|v| (w.repository.clone(), v.clone())))
            .collect();
        let missing = with_pool!(&self.db, pool => {
            let mut tx = pool.begin().await?;
            sqlx::query("DELETE FROM catalog_workers").execute(&mut *tx).await?;
            for (position, w) in workers.iter().enumerate() {
                sqlx::query(
                    "INSERT INTO catalog_workers \
                     (id, position, repository, latest, versions, requires_license, updated_at) \
                     VALUES ($1, $2, $3, $4, $5, $6, $7)",
                )
                .bind(&w.id)
                .bind(position as i64)
                .bind(&w.repository)
                .bind(&w.latest)
                .bind(serde_json::to_string(&w.versions).unwrap_or_else(|_| "[]".into()))
                .bind(w.requires_license)
                .bind(&w.updated_at)
                .execute(&mut *tx)
                .await?;
            }
            let stored: Vec<(String, String)> =
                sqlx::query_as("SELECT repository, version FROM catalog_versions")
                    .fetch_all(&mut *tx)
                    .await?;
            let stored_set: HashSet<(String, String)> = stored.iter().cloned().collect();
            for key in stored.iter().filter(|k| !listed.contains(*k)) {
                sqlx::query("DELETE FROM catalog_versions WHERE repository = $1 AND version = $2")
                    .bind(&key.0)
                    .bind(&key.1)
                    .execute(&mut *tx)
                    .await?;
            }
            NotifyIn::notify(&mut *tx, "*").await?;
            tx.commit().await?;
            listed
                .into_iter()
                .filter(|k| !stored_set.contains(k))
                .collect::<Vec<_>>()
        });
        let mut missing = missing;
        missing.sort();
        Ok(missing)
    }

    /// Records that the view reflects the catalog index whose manifest
    /// digest is `catalog_digest`, in row layout `format`.
    pub async fn set_view_state(
        &self,
        catalog_digest: Option<&str>,
        format: i64,
    ) -> Result<(), StoreError> {
        let synced_at = now();
        with_pool!(&self.db, pool => {
            sqlx::query(
                "INSERT INTO catalog_view_state (id, format, catalog_digest, synced_at) \
                 VALUES (1, $1, $2, $3) \
                 ON CONFLICT (id) DO UPDATE SET format = excluded.format, \
                 catalog_digest = excluded.catalog_digest, synced_at = excluded.synced_at",
            )
            .bind(format)
            .bind(catalog_digest)
            .bind(synced_at)
            .execute(pool)
            .await?;
        });
        Ok(())
    }

    /// Writes `releases` (each replacing the row of its repository and
    /// version, builds included) in one transaction.
    pub async fn put_view_releases(&self, releases: &[ViewRelease]) -> Result<(), StoreError> {
        if releases.is_empty() {
            return Ok(());
        }
        let indexed_at = now();
        let mut repositories: Vec<&str> = releases.iter().map(|r| r.repository.as_str()).collect();
        repositories.sort_unstable();
        repositories.dedup();
        with_pool!(&self.db, pool => {
            let mut tx = pool.begin().await?;
            for r in releases {
                sqlx::query("DELETE FROM catalog_versions WHERE repository = $1 AND version = $2")
                    .bind(&r.repository)
                    .bind(&r.version)
                    .execute(&mut *tx)
                    .await?;
                let yank = r.yank.as_ref();
                sqlx::query(
                    "INSERT INTO catalog_versions (repository, version, index_digest, published_at, \
                     metadata, yanked, yank_reason, yanked_at, signature, indexed_at) \
                     VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)",
                )
                .bind(&r.repository)
                .bind(&r.version)
                .bind(&r.index_digest)
                .bind(&r.published_at)
                .bind(&r.metadata)
                .bind(yank.is_some_and(|y| y.yanked))
                .bind(yank.and_then(|y| y.reason.clone()))
                .bind(yank.map(|y| y.at.clone()))
                .bind(&r.signature)
                .bind(indexed_at)
                .execute(&mut *tx)
                .await?;
                for b in &r.builds {
                    sqlx::query(
                        "INSERT INTO catalog_builds (repository, version, platform, \
                         manifest_digest, layer_digest, size, filename) \
                         VALUES ($1, $2, $3, $4, $5, $6, $7)",
                    )
                    .bind(&r.repository)
                    .bind(&r.version)
                    .bind(&b.platform)
                    .bind(&b.manifest_digest)
                    .bind(&b.layer_digest)
                    .bind(i64::try_from(b.size).unwrap_or(i64::MAX))
                    .bind(&b.filename)
                    .execute(&mut *tx)
                    .await?;
                }
            }
            for repository in &repositories {
                NotifyIn::notify(&mut *tx, repository).await?;
            }
            tx.commit().await?;
        });
        Ok(())
    }

    /// Removes the release `repository`/`version` (gone from the registry).
    pub async fn delete_view_release(
        &self,
        repository: &str,
        version: &str,
    ) -> Result<bool, StoreError> {
        let deleted = with_pool!(&self.db, pool => {
            let mut tx = pool.begin().await?;
            let done = sqlx::query(
                "DELETE FROM catalog_versions WHERE repository = $1 AND version = $2",
            )
            .bind(repository)
            .bind(version)
            .execute(&mut *tx)
            .await?
            .rows_affected();
            NotifyIn::notify(&mut *tx, repository).await?;
            tx.commit().await?;
            done
        });
        Ok(deleted > 0)
    }

    /// The listed workers, in catalog index order.
    pub async fn view_workers(&self) -> Result<Vec<ViewWorker>, StoreError> {
        let rows: Vec<WorkerRow> = with_pool!(&self.db, pool => {
            sqlx::query_as(
                "SELECT id, repository, latest, versions, requires_license, updated_at \
                 FROM catalog_workers ORDER BY position",
            )
            .fetch_all(pool)
            .await?
        });
        rows.into_iter().map(WorkerRow::into_worker).collect()
    }

    /// The release each listed worker's `latest` names, for the workers
    /// that have one stored, in catalog index order: the whole worker
    /// list in two queries.
    pub async fn view_latest_releases(&self) -> Result<Vec<ViewRelease>, StoreError> {
        let (releases, builds): (Vec<ReleaseRow>, Vec<BuildRow>) = with_pool!(&self.db, pool => {
            let releases = sqlx::query_as(&format!(
                "SELECT {RELEASE_COLUMNS} FROM catalog_workers w JOIN catalog_versions v \
                 ON v.repository = w.repository AND v.version = w.latest ORDER BY w.position",
            ))
            .fetch_all(pool)
            .await?;
            let builds = sqlx::query_as(&format!(
                "SELECT {BUILD_COLUMNS} FROM catalog_workers w JOIN catalog_builds b \
                 ON b.repository = w.repository AND b.version = w.latest",
            ))
            .fetch_all(pool)
            .await?;
            (releases, builds)
        });
        Ok(attach_builds(releases, builds))
    }

    /// Every stored release of `repository` (any order).
    pub async fn view_releases(&self, repository: &str) -> Result<Vec<ViewRelease>, StoreError> {
        let (releases, builds): (Vec<ReleaseRow>, Vec<BuildRow>) = with_pool!(&self.db, pool => {
            let releases = sqlx::query_as(&format!(
                "SELECT {RELEASE_COLUMNS} FROM catalog_versions v WHERE v.repository = $1",
            ))
            .bind(repository)
            .fetch_all(pool)
            .await?;
            let builds = sqlx::query_as(&format!(
                "SELECT {BUILD_COLUMNS} FROM catalog_builds b WHERE b.repository = $1",
            ))
            .bind(repository)
            .fetch_all(pool)
            .await?;
            (releases, builds)
        });
        Ok(attach_builds(releases, builds))
    }

    /// One stored release.
    pub async fn view_release(
        &self,
        repository: &str,
        version: &str,
    ) -> Result<Option<ViewRelease>, StoreError> {
        let (releases, builds): (Vec<ReleaseRow>, Vec<BuildRow>) = with_pool!(&self.db, pool => {
            let releases = sqlx::query_as(&format!(
                "SELECT {RELEASE_COLUMNS} FROM catalog_versions v \
                 WHERE v.repository = $1 AND v.version = $2",
            ))
            .bind(repository)
            .bind(version)
            .fetch_all(pool)
            .await?;
            let builds = sqlx::query_as(&format!(
                "SELECT {BUILD_COLUMNS} FROM catalog_builds b \
                 WHERE b.repository = $1 AND b.version = $2",
            ))
            .bind(repository)
            .bind(version)
            .fetch_all(pool)
            .await?;
            (releases, builds)
        });
        Ok(attach_builds(releases, builds).into_iter().next())
    }

    /// Announces a change of `repository`'s rows (`*`: everything) to the
    /// other catalog nodes on this database; nothing on SQLite.
    pub async fn notify_view_changed(&self, repository: &str) -> Result<(), StoreError> {
        if let Db::Postgres(pool) = &self.db {
            let mut conn = pool.acquire().await?;
            NotifyIn::notify(&mut *conn, repository).await?;
        }
        Ok(())
    }

    /// Listens for the view changes other nodes make: `None` on SQLite,
    /// where one process owns the database and tells itself in process.
    pub async fn listen_view_changes(&self) -> Result<Option<ViewListener>, StoreError> {
        match &self.db {
            Db::Sqlite(_) => Ok(None),
            Db::Postgres(pool) => Ok(Some(ViewListener::connect(pool).await?)),
        }
    }
}
