//! The day's secret of client-address HMACs, and pruning.
//!
//! A client is counted once per day by an HMAC of its address under that
//! day's secret. The secret is random, made by whichever node first needs
//! it (the others read the same row), and deleted once the day after it is
//! over: the hashes of two days cannot be linked, and once its secret is
//! gone, a day's hashes cannot be tested against a guessed address.

use chrono::{Days, NaiveDate};

use super::day_key;
use crate::db::with_pool;
use crate::{Store, StoreError};

/// Bytes of a day's secret.
pub const SECRET_LEN: usize = 32;

/// Raw events deleted per statement when pruning, so that pruning a large
/// backlog never holds a long write lock.
const PRUNE_CHUNK: i64 = 10_000;

impl Store {
    /// The secret of `day` (created if missing), after deleting the
    /// secrets of days before the day before it (events queued over
    /// midnight still find yesterday's).
    pub async fn analytics_secret(&self, day: NaiveDate) -> Result<Vec<u8>, StoreError> {
        let key = day_key(day);
        let mut fresh = vec![0u8; SECRET_LEN];
        getrandom::fill(&mut fresh).map_err(StoreError::Random)?;
        let oldest_kept = day_key(day.checked_sub_days(Days::new(1)).unwrap_or(day));
        let secret: Vec<u8> = with_pool!(&self.db, pool => {
            sqlx::query(
                "INSERT INTO analytics_secrets (day, secret) VALUES ($1, $2) ON CONFLICT DO NOTHING",
            )
            .bind(&key)
            .bind(&fresh)
            .execute(pool)
            .await?;
            sqlx::query("DELETE FROM analytics_secrets WHERE day < $1")
                .bind(&oldest_kept)
                .execute(pool)
                .await?;
            sqlx::query_scalar("SELECT secret FROM analytics_secrets WHERE day = $1")
                .bind(&key)
                .fetch_one(pool)
                .await?
        });
        Ok(secret)
    }

    /// Deletes raw events of days before `events_before`, and the client
    /// hashes (kept only to count each client once a day) of days before
    /// `clients_before`. The rollups stay. Returns the raw events deleted.
    pub async fn prune_downloads(
        &self,
        events_before: NaiveDate,
        clients_before: NaiveDate,
    ) -> Result<u64, StoreError> {
        let (events_before, clients_before) = (day_key(events_before), day_key(clients_before));
        let mut deleted = 0;
        loop {
            let n = with_pool!(&self.db, pool => {
                sqlx::query(
                    "DELETE FROM download_events WHERE id IN \
                     (SELECT id FROM download_events WHERE day < $1 LIMIT $2)",
                )
                .bind(&events_before)
                .bind(PRUNE_CHUNK)
                .execute(pool)
                .await?
                .rows_affected()
            });
            deleted += n;
            if n < PRUNE_CHUNK as u64 {
                break;
            }
        }
        with_pool!(&self.db, pool => {
            sqlx::query("DELETE FROM analytics_daily_clients WHERE day < $1")
                .bind(&clients_before)
                .execute(pool)
                .await?;
        });
        Ok(deleted)
    }
}
