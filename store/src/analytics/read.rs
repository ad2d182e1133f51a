//! Reading the rollups. Every query is bounded by an index on the rollup
//! it reads (worker and day, or day), never by the raw events, except the
//! few newest raw rows of "recent downloads" (read backwards by id).

use chrono::{DateTime, NaiveDate, Utc};

use super::day_key;
use crate::db::with_pool;
use crate::{Store, StoreError};

/// Downloads and attempts of one group.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Counts {
    /// Complete downloads.
    pub complete: u64,
    /// Transfers abandoned before the end.
    pub incomplete: u64,
    /// Complete downloads that resumed an earlier transfer with `Range`.
    pub resumed: u64,
}

impl Counts {
    fn of(complete: i64, incomplete: i64, resumed: i64) -> Counts {
        let n = |v: i64| u64::try_from(v).unwrap_or(0);
        Counts {
            complete: n(complete),
            incomplete: n(incomplete),
            resumed: n(resumed),
        }
    }
}

/// One day of one worker.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DayCounts {
    /// The UTC date.
    pub day: NaiveDate,
    /// Its downloads and attempts.
    pub counts: Counts,
    /// Distinct client addresses that day (by their day's HMAC).
    pub unique_clients: u64,
}

/// A worker's rollups over a range of days.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct WorkerDownloads {
    /// The days that had any event, oldest first.
    pub days: Vec<DayCounts>,
    /// Per version, most downloaded first.
    pub by_version: Vec<(String, Counts)>,
    /// Per platform, most downloaded first.
    pub by_platform: Vec<(String, Counts)>,
}

/// A download in the "recent" list: no client data at all.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RecentDownload {
    /// The worker id.
    pub worker: String,
    /// The version.
    pub version: String,
    /// The rbee platform name.
    pub platform: String,
    /// When it completed.
    pub at: DateTime<Utc>,
}

/// The overview's rollups over a range of days.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct DownloadOverview {
    /// The most downloaded workers, most first.
    pub top_workers: Vec<(String, Counts)>,
    /// The newest complete downloads, newest first.
    pub recent: Vec<RecentDownload>,
    /// Per platform.
    pub by_platform: Vec<(String, Counts)>,
    /// Per source (`v1`, `registry`).
    pub by_source: Vec<(String, Counts)>,
    /// Per client family.
    pub by_client_family: Vec<(String, Counts)>,
}

type GroupRow = (String, i64, i64, i64);

fn groups(rows: Vec<GroupRow>) -> Vec<(String, Counts)> {
    let mut out: Vec<(String, Counts)> = rows
        .into_iter()
        .map(|(key, c, i, r)| (key, Counts::of(c, i, r)))
        .collect();
    out.sort_by(|a, b| b.1.complete.cmp(&a.1.complete).then(a.0.cmp(&b.0)));
    out
}

impl Store {
    /// The rollups of `worker` from `since` (a UTC date, inclusive) on.
    pub async fn worker_downloads(
        &self,
        worker: &str,
        since: NaiveDate,
    ) -> Result<WorkerDownloads, StoreError> {
        let since = day_key(since);
        let (days, by_version, by_platform) = with_pool!(&self.db, pool => {
            let days: Vec<(String, i64, i64, i64, i64)> = sqlx::query_as(
                "SELECT day, complete, incomplete, resumed, unique_clients \
                 FROM analytics_daily_workers WHERE worker = $1 AND day >= $2 ORDER BY day",
            )
            .bind(worker)
            .bind(&since)
            .fetch_all(pool)
            .await?;
            let by_version: Vec<GroupRow> = sqlx::query_as(
                "SELECT version, CAST(SUM(complete) AS BIGINT), CAST(SUM(incomplete) AS BIGINT), \
                 CAST(SUM(resumed) AS BIGINT) FROM analytics_daily \
                 WHERE worker = $1 AND day >= $2 GROUP BY version",
            )
            .bind(worker)
            .bind(&since)
            .fetch_all(pool)
            .await?;
            let by_platform: Vec<GroupRow> = sqlx::query_as(
                "SELECT platform, CAST(SUM(complete) AS BIGINT), CAST(SUM(incomplete) AS BIGINT), \
                 CAST(SUM(resumed) AS BIGINT) FROM analytics_daily \
                 WHERE worker = $1 AND day >= $2 GROUP BY platform",
            )
            .bind(worker)
            .bind(&since)
            .fetch_all(pool)
            .await?;
            (days, by_version, by_platform)
        });
        let days = days
            .into_iter()
            .filter_map(|(day, c, i, r, u)| {
                Some(DayCounts {
                    day: NaiveDate::parse_from_str(&day, "%Y-%m-%d").ok()?,
                    counts: Counts::of(c, i, r),
                    unique_clients: u64::try_from(u).unwrap_or(0),
                })
            })
            .collect();
        Ok(WorkerDownloads {
            days,
            by_version: groups(by_version),
            by_platform: groups(by_platform),
        })
    }

    /// Every worker's downloads on each day from `since` on, oldest first
    /// (days without any are left out): the overview's per-day chart. Read
    /// from the per-source rollup, where each download is counted once.
    pub async fn downloads_per_day(
        &self,
        since: NaiveDate,
    ) -> Result<Vec<(NaiveDate, Counts)>, StoreError> {
        let since = day_key(since);
        let rows: Vec<(String, i64, i64)> = with_pool!(&self.db, pool => {
            sqlx::query_as(
                "SELECT day, CAST(SUM(complete) AS BIGINT), CAST(SUM(incomplete) AS BIGINT) \
                 FROM analytics_daily_dimensions WHERE dimension = $1 AND day >= $2 \
                 GROUP BY day ORDER BY day",
            )
            .bind("source")
            .bind(&since)
            .fetch_all(pool)
            .await?
        });
        Ok(rows
            .into_iter()
            .filter_map(|(day, c, i)| {
                Some((
                    NaiveDate::parse_from_str(&day, "%Y-%m-%d").ok()?,
                    Counts::of(c, i, 0),
                ))
            })
            .collect())
    }

    /// The overview's rollups from `since` on: the `top` most downloaded
    /// workers and the `recent` newest downloads.
    pub async fn download_overview(
        &self,
        since: NaiveDate,
        top: u32,
        recent: u32,
    ) -> Result<DownloadOverview, StoreError> {
        let since = day_key(since);
        let (top_workers, recent, dimensions) = with_pool!(&self.db, pool => {
            let top_workers: Vec<GroupRow> = sqlx::query_as(
                "SELECT worker, CAST(SUM(complete) AS BIGINT) AS n, \
                 CAST(SUM(incomplete) AS BIGINT), CAST(SUM(resumed) AS BIGINT) \
                 FROM analytics_daily_workers WHERE day >= $1 \
                 GROUP BY worker ORDER BY n DESC, worker LIMIT $2",
            )
            .bind(&since)
            .bind(i64::from(top))
            .fetch_all(pool)
            .await?;
            let recent: Vec<(String, String, String, DateTime<Utc>)> = sqlx::query_as(
                "SELECT worker, version, platform, at FROM download_events \
                 WHERE complete = $1 ORDER BY id DESC LIMIT $2",
            )
            .bind(true)
            .bind(i64::from(recent))
            .fetch_all(pool)
            .await?;
            let dimensions: Vec<(String, String, i64, i64)> = sqlx::query_as(
                "SELECT dimension, key, CAST(SUM(complete) AS BIGINT), \
                 CAST(SUM(incomplete) AS BIGINT) FROM analytics_daily_dimensions \
                 WHERE day >= $1 GROUP BY dimension, key",
            )
            .bind(&since)
            .fetch_all(pool)
            .await?;
            (top_workers, recent, dimensions)
        });
        let mut overview = DownloadOverview {
            top_workers: groups(top_workers),
            recent: recent
                .into_iter()
                .map(|(worker, version, platform, at)| RecentDownload {
                    worker,
                    version,
                    platform,
                    at,
                })
                .collect(),
            ..DownloadOverview::default()
        };
        let (mut platform, mut source, mut family) = (Vec::new(), Vec::new(), Vec::new());
        for (dimension, key, c, i) in dimensions {
            let row = (key, c, i, 0);
            match dimension.as_str() {
                "platform" => platform.push(row),
                "source" => source.push(row),
                "client_family" => family.push(row),
                _ => {}
            }
        }
        overview.by_platform = groups(platform);
        overview.by_source = groups(source);
        overview.by_client_family = groups(family);
        Ok(overview)
    }
}
