//! Download analytics: raw download events and the daily rollups the
//! stats read (see `docs/analytics.md`).
//!
//! - `record.rs`: [`Store::record_downloads`] writes a batch of events and
//!   updates every rollup in the same transaction, so that the figures
//!   never disagree with the raw rows and no reader scans raw events.
//! - `read.rs`: the rollups a worker's stats and the overview are made of.
//! - `upkeep.rs`: the daily HMAC secret of client addresses, and pruning.
//!
//! Days are UTC dates, stored as `YYYY-MM-DD` text in both dialects.
//! Nothing here ever sees a client address: callers hand in an HMAC of it.

mod read;
mod record;
mod upkeep;

use chrono::{DateTime, NaiveDate, Utc};

pub use read::{Counts, DayCounts, DownloadOverview, RecentDownload, WorkerDownloads};

/// One download to record.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewDownload {
    /// When it ended (its day is the UTC date of this).
    pub at: DateTime<Utc>,
    /// The worker id.
    pub worker: String,
    /// The version, e.g. `0.1.0`.
    pub version: String,
    /// The rbee platform name.
    pub platform: String,
    /// `v1` or `registry`.
    pub source: String,
    /// `rbee-hive`, `rbee-worker`, `oras`, `skopeo`, `crane`, `curl` or
    /// `other`.
    pub client_family: String,
    /// HMAC of the client address under the day's secret (hex), if the
    /// address was known.
    pub client_hash: Option<String>,
    /// The license the download was made under, if any.
    pub license_id: Option<String>,
    /// Whether the whole layer was sent; false for an abandoned transfer.
    pub complete: bool,
    /// Whether it completed a transfer resumed with `Range` (so the
    /// incomplete attempt before it is not a failure).
    pub resumed: bool,
}

/// `YYYY-MM-DD` of a date, the form days are stored in.
pub fn day_key(day: NaiveDate) -> String {
    day.format("%Y-%m-%d").to_string()
}
