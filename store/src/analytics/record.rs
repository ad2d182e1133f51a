//! Writing a batch of download events with its rollups, in one
//! transaction.
//!
//! The batch is first added up in memory (one row per rollup key), and the
//! keys are written in sorted order: two catalog nodes writing batches at
//! the same time on PostgreSQL then lock rollup rows in the same order and
//! cannot deadlock. Unique clients are counted by inserting the day's
//! client hashes with `ON CONFLICT DO NOTHING RETURNING`: only hashes no
//! node had seen that day come back, and each adds one.

use std::collections::{BTreeMap, BTreeSet};

use sqlx::QueryBuilder;

use super::{NewDownload, day_key};
use crate::db::with_pool;
use crate::{Store, StoreError};

/// Rows per multi-row `INSERT`: 12 parameters a row stays well under
/// SQLite's limit of 32,766 bound parameters.
const ROWS_PER_STATEMENT: usize = 1000;

#[derive(Debug, Default, Clone, Copy)]
struct Sums {
    complete: i64,
    incomplete: i64,
    resumed: i64,
}

impl Sums {
    fn add(&mut self, d: &NewDownload) {
        if d.complete {
            self.complete += 1;
        } else {
            self.incomplete += 1;
        }
        if d.complete && d.resumed {
            self.resumed += 1;
        }
    }
}

/// A batch added up per rollup key.
#[derive(Debug, Default)]
struct Rollups {
    /// (worker, day, version, platform)
    daily: BTreeMap<(String, String, String, String), Sums>,
    /// (worker, day)
    workers: BTreeMap<(String, String), Sums>,
    /// (dimension, day, key)
    dimensions: BTreeMap<(&'static str, String, String), Sums>,
    /// (worker, day, client hash)
    clients: BTreeSet<(String, String, String)>,
}

impl Rollups {
    fn of(batch: &[NewDownload]) -> Rollups {
        let mut r = Rollups::default();
        for d in batch {
            let day = day_key(d.at.date_naive());
            r.daily
                .entry((
                    d.worker.clone(),
                    day.clone(),
                    d.version.clone(),
                    d.platform.clone(),
                ))
                .or_default()
                .add(d);
            r.workers
                .entry((d.worker.clone(), day.clone()))
                .or_default()
                .add(d);
            for (dimension, key) in [
                ("platform", &d.platform),
                ("source", &d.source),
                ("client_family", &d.client_family),
            ] {
                r.dimensions
                    .entry((dimension, day.clone(), key.clone()))
                    .or_default()
                    .add(d);
            }
            if let Some(hash) = &d.client_hash {
                r.clients.insert((d.worker.clone(), day, hash.clone()));
            }
        }
        r
    }
}

impl Store {
    /// Records `batch` and updates the rollups, all in one transaction:
    /// on any error nothing of the batch is written (the caller may try
    /// the same batch again).
    pub async fn record_downloads(&self, batch: &[NewDownload]) -> Result<(), StoreError> {
        if batch.is_empty() {
            return Ok(());
        }
        let mut rollups = Rollups::of(batch);
        with_pool!(&self.db, pool => {
            let mut tx = pool.begin().await?;
            for chunk in batch.chunks(ROWS_PER_STATEMENT) {
                let mut q = QueryBuilder::new(
                    "INSERT INTO download_events (at, day, worker, version, platform, source, \
                     client_family, client_hash, license_id, complete, resumed) ",
                );
                q.push_values(chunk, |mut row, d| {
                    row.push_bind(d.at)
                        .push_bind(day_key(d.at.date_naive()))
                        .push_bind(&d.worker)
                        .push_bind(&d.version)
                        .push_bind(&d.platform)
                        .push_bind(&d.source)
                        .push_bind(&d.client_family)
                        .push_bind(&d.client_hash)
                        .push_bind(&d.license_id)
                        .push_bind(d.complete)
                        .push_bind(d.resumed);
                });
                q.build().execute(&mut *tx).await?;
            }

            // New clients of the day: the hashes no one had inserted yet.
            let clients: Vec<_> = std::mem::take(&mut rollups.clients).into_iter().collect();
            let mut new_clients: BTreeMap<(String, String), i64> = BTreeMap::new();
            for chunk in clients.chunks(ROWS_PER_STATEMENT) {
                let mut q = QueryBuilder::new(
                    "INSERT INTO analytics_daily_clients (worker, day, client_hash) ",
                );
                q.push_values(chunk, |mut row, (worker, day, hash)| {
                    row.push_bind(worker).push_bind(day).push_bind(hash);
                });
                q.push(" ON CONFLICT DO NOTHING RETURNING worker, day");
                let inserted: Vec<(String, String)> =
                    q.build_query_as().fetch_all(&mut *tx).await?;
                for key in inserted {
                    *new_clients.entry(key).or_default() += 1;
                }
            }

            let daily: Vec<_> = rollups.daily.iter().collect();
            for chunk in daily.chunks(ROWS_PER_STATEMENT) {
                let mut q = QueryBuilder::new(
                    "INSERT INTO analytics_daily (worker, day, version, platform, complete, \
                     incomplete, resumed) ",
                );
                q.push_values(chunk, |mut row, ((worker, day, version, platform), s)| {
                    row.push_bind(worker)
                        .push_bind(day)
                        .push_bind(version)
                        .push_bind(platform)
                        .push_bind(s.complete)
                        .push_bind(s.incomplete)
                        .push_bind(s.resumed);
                });
                q.push(
                    " ON CONFLICT (worker, day, version, platform) DO UPDATE SET \
                     complete = analytics_daily.complete + excluded.complete, \
                     incomplete = analytics_daily.incomplete + excluded.incomplete, \
                     resumed = analytics_daily.resumed + excluded.resumed",
                );
                q.build().execute(&mut *tx).await?;
            }

            let workers: Vec<_> = rollups.workers.iter().collect();
            for chunk in workers.chunks(ROWS_PER_STATEMENT) {
                let mut q = QueryBuilder::new(
                    "INSERT INTO analytics_daily_workers (worker, day, complete, incomplete, \
                     resumed, unique_clients) ",
                );
                q.push_values(chunk, |mut row, ((worker, day), s)| {
                    let fresh = new_clients
                        .get(&(worker.clone(), day.clone()))
                        .copied()
                        .unwrap_or(0);
                    row.push_bind(worker)
                        .push_bind(day)
                        .push_bind(s.complete)
                        .push_bind(s.incomplete)
                        .push_bind(s.resumed)
                        .push_bind(fresh);
                });
                q.push(
                    " ON CONFLICT (worker, day) DO UPDATE SET \
                     complete = analytics_daily_workers.complete + excluded.complete, \
                     incomplete = analytics_daily_workers.incomplete + excluded.incomplete, \
                     resumed = analytics_daily_workers.resumed + excluded.resumed, \
                     unique_clients = analytics_daily_workers.unique_clients + excluded.unique_clients",
                );
                q.build().execute(&mut *tx).await?;
            }

            let dimensions: Vec<_> = rollups.dimensions.iter().collect();
            for chunk in dimensions.chunks(ROWS_PER_STATEMENT) {
                let mut q = QueryBuilder::new(
                    "INSERT INTO analytics_daily_dimensions (dimension, day, key, complete, \
                     incomplete) ",
                );
                q.push_values(chunk, |mut row, ((dimension, day, key), s)| {
                    row.push_bind(*dimension)
                        .push_bind(day)
                        .push_bind(key)
                        .push_bind(s.complete)
                        .push_bind(s.incomplete);
                });
                q.push(
                    " ON CONFLICT (dimension, day, key) DO UPDATE SET \
                     complete = analytics_daily_dimensions.complete + excluded.complete, \
                     incomplete = analytics_daily_dimensions.incomplete + excluded.incomplete",
                );
                q.build().execute(&mut *tx).await?;
            }
            tx.commit().await?;
        });
        Ok(())
    }
}
