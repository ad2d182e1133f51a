//! Download statistics, as the catalog shows them (`/v1/workers/:id/stats`,
//! `/v1/stats/overview`, `rbee-catalog stats`, the web pages): built
//! from the store's daily rollups only, never from raw events, and never
//! with a client address or hash in them.

use chrono::{Days, NaiveDate};
use rbee_schemas::v1::{DailyDownloads, DownloadCount, RecentDownload, StatsOverview, WorkerStats};
use rbee_store::analytics::Counts;
use rbee_store::{Store, StoreError};

/// Days covered when none are asked for.
pub const DEFAULT_DAYS: u32 = 30;
/// The most days one answer covers.
pub const MAX_DAYS: u32 = 365;
/// Workers in the overview's top list.
pub const TOP_WORKERS: u32 = 10;
/// Downloads in the overview's recent list.
pub const RECENT_DOWNLOADS: u32 = 20;

/// The first day of the `days` days that end with `today` (included).
fn first_day(today: NaiveDate, days: u32) -> NaiveDate {
    today
        .checked_sub_days(Days::new(u64::from(days.clamp(1, MAX_DAYS) - 1)))
        .unwrap_or(today)
}

fn count((key, c): (String, Counts)) -> DownloadCount {
    DownloadCount {
        key,
        downloads: c.complete,
        incomplete: c.incomplete,
    }
}

/// Complete downloads over attempts. A download resumed with `Range` came
/// after an abandoned transfer of the same file: together they are one
/// attempt, so each resumed download takes one incomplete transfer off
/// the attempts.
pub fn completion_rate(c: Counts) -> Option<f64> {
    let attempts = c.complete + c.incomplete.saturating_sub(c.resumed);
    (attempts > 0).then(|| c.complete as f64 / attempts as f64)
}

/// Worker `id`'s stats over the `days` days (1 to [`MAX_DAYS`]) that end
/// with `today`, every day listed.
pub async fn worker_stats(
    store: &Store,
    id: &str,
    days: u32,
    today: NaiveDate,
) -> Result<WorkerStats, StoreError> {
    let days = days.clamp(1, MAX_DAYS);
    let first = first_day(today, days);
    let rollup = store.worker_downloads(id, first).await?;
    let mut total = Counts::default();
    let mut known = rollup.days.into_iter().peekable();
    let mut per_day = Vec::with_capacity(days as usize);
    for day in first.iter_days().take(days as usize) {
        let mut entry = DailyDownloads {
            day: day.format("%Y-%m-%d").to_string(),
            downloads: 0,
            incomplete: 0,
            unique_clients: 0,
        };
        while let Some(d) = known.next_if(|d| d.day <= day) {
            if d.day == day {
                entry.downloads = d.counts.complete;
                entry.incomplete = d.counts.incomplete;
                entry.unique_clients = d.unique_clients;
                total.complete += d.counts.complete;
                total.incomplete += d.counts.incomplete;
                total.resumed += d.counts.resumed;
            }
        }
        per_day.push(entry);
    }
    Ok(WorkerStats {
        worker_id: id.to_owned(),
        days,
        total: total.complete,
        incomplete: total.incomplete,
        completion_rate: completion_rate(total),
        by_version: rollup.by_version.into_iter().map(count).collect(),
        by_platform: rollup.by_platform.into_iter().map(count).collect(),
        per_day,
    })
}

/// Every worker's stats over the `days` days that end with `today`.
pub async fn overview(
    store: &Store,
    days: u32,
    today: NaiveDate,
) -> Result<StatsOverview, StoreError> {
    let days = days.clamp(1, MAX_DAYS);
    let o = store
        .download_overview(first_day(today, days), TOP_WORKERS, RECENT_DOWNLOADS)
        .await?;
    Ok(StatsOverview {
        days,
        total: o.by_source.iter().map(|(_, c)| c.complete).sum(),
        top_workers: o.top_workers.into_iter().map(count).collect(),
        recent_downloads: o
            .recent
            .into_iter()
            .map(|r| RecentDownload {
                worker_id: r.worker,
                version: r.version,
                platform: r.platform,
                at: r.at.to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
            })
            .collect(),
        by_platform: o.by_platform.into_iter().map(count).collect(),
        by_source: o.by_source.into_iter().map(count).collect(),
        by_client_family: o.by_client_family.into_iter().map(count).collect(),
    })
}

/// The most workers whose totals [`worker_totals`] lists (the catalog
/// lists no more than this many either).
pub const MAX_WORKER_TOTALS: u32 = 1000;

/// Each worker's downloads over the `days` days that end with `today`,
/// most first (workers never downloaded are left out): what the web
/// page's worker list sorts and shows by.
pub async fn worker_totals(
    store: &Store,
    days: u32,
    today: NaiveDate,
) -> Result<Vec<DownloadCount>, StoreError> {
    let o = store
        .download_overview(first_day(today, days), MAX_WORKER_TOTALS, 0)
        .await?;
    Ok(o.top_workers.into_iter().map(count).collect())
}

/// Every worker's downloads on each of the `days` days that end with
/// `today`, every day listed (key: the UTC date, `2026-11-30`).
pub async fn downloads_per_day(
    store: &Store,
    days: u32,
    today: NaiveDate,
) -> Result<Vec<DownloadCount>, StoreError> {
    let days = days.clamp(1, MAX_DAYS);
    let first = first_day(today, days);
    let mut known = store.downloads_per_day(first).await?.into_iter().peekable();
    let mut out = Vec::with_capacity(days as usize);
    for day in first.iter_days().take(days as usize) {
        let mut entry = DownloadCount {
            key: day.format("%Y-%m-%d").to_string(),
            downloads: 0,
            incomplete: 0,
        };
        while let Some((d, c)) = known.next_if(|(d, _)| *d <= day) {
            if d == day {
                entry.downloads = c.complete;
                entry.incomplete = c.incomplete;
            }
        }
        out.push(entry);
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_resumed_download_and_the_transfer_it_resumed_are_one_attempt() {
        let c = |complete, incomplete, resumed| Counts {
            complete,
            incomplete,
            resumed,
        };
        assert_eq!(completion_rate(c(0, 0, 0)), None);
        assert_eq!(completion_rate(c(1, 1, 1)), Some(1.0));
        assert_eq!(completion_rate(c(1, 1, 0)), Some(0.5));
        assert_eq!(completion_rate(c(3, 1, 0)), Some(0.75));
    }

    #[test]
    fn the_range_ends_today_and_is_capped() {
        let today = NaiveDate::from_ymd_opt(2026, 11, 30).unwrap();
        assert_eq!(first_day(today, 1), today);
        assert_eq!(
            first_day(today, 30),
            NaiveDate::from_ymd_opt(2026, 11, 1).unwrap()
        );
        assert_eq!(first_day(today, 10_000), first_day(today, MAX_DAYS));
    }
}
