//! `GET /stats`: the download overview for maintainers: totals, downloads
//! per day, the top workers, platforms, client families and sources, and
//! the latest downloads (worker, version, platform and time; never any
//! client data, which the stats do not hold either). `?days=` as on the
//! stats routes (1 to 365, default 30).

use std::sync::Arc;

use askama::Template;
use axum::extract::{RawQuery, State};
use axum::http::HeaderMap;
use axum::response::Response;
use rbee_schemas::v1::{DownloadCount, RecentDownload, StatsOverview};

use super::chart::{Columns, Rows};
use super::layout::{Layout, Section};
use super::list::Choice;
use super::{PageError, html, stats_max_age};
use crate::respond::Caching;
use crate::routes::stats::{days_param, downloads_per_day_json, overview_json};
use crate::state::AppState;

/// The periods offered as links.
const PERIODS: [u32; 4] = [7, 30, 90, 365];

/// One of the latest downloads.
#[derive(Debug)]
pub struct Recent {
    pub worker: String,
    pub href: String,
    pub version: String,
    pub platform: String,
    /// `2026-11-30 12:00:00 UTC`.
    pub at: String,
    /// RFC 3339, for `<time datetime>`.
    pub at_rfc3339: String,
}

/// `templates/overview.html`.
#[derive(Debug, Template)]
#[template(path = "overview.html")]
pub struct OverviewPage {
    pub page: Layout,
    pub days: u32,
    pub periods: Vec<Choice>,
    pub total: u64,
    pub per_day: Columns,
    pub top_workers: Rows,
    /// The top workers' pages, in the chart's order.
    pub top_links: Vec<Choice>,
    pub by_platform: Rows,
    pub by_client_family: Rows,
    pub by_source: Rows,
    pub recent: Vec<Recent>,
}

/// `GET /stats`
pub async fn page(
    State(state): State<Arc<AppState>>,
    RawQuery(raw): RawQuery,
    headers: HeaderMap,
) -> Result<Response, PageError> {
    let mut days = None;
    for (key, value) in form_urlencoded::parse(raw.as_deref().unwrap_or("").as_bytes()) {
        if key == "days" && !value.is_empty() {
            days = Some(value.parse::<u32>().map_err(|_| {
                PageError::bad_request("`days` is a number from 1 to 365".to_owned())
            })?);
        }
    }
    let days = days_param(days)?;
    let overview: StatsOverview = serde_json::from_slice(&overview_json(&state, days).await?)
        .map_err(|e| PageError::bad_data(&e))?;
    let per_day: Vec<DownloadCount> =
        serde_json::from_slice(&downloads_per_day_json(&state, days).await?)
            .map_err(|e| PageError::bad_data(&e))?;
    let body = OverviewPage::new(overview, &per_day)
        .render()
        .map_err(|e| PageError::render(&e))?;
    let secs = stats_max_age(&state, u32::MAX);
    Ok(html(&headers, body, false, Caching::Public(secs)))
}

fn points(counts: &[DownloadCount]) -> Vec<(String, u64)> {
    counts
        .iter()
        .map(|c| (c.key.clone(), c.downloads))
        .collect()
}

impl OverviewPage {
    /// The page of `overview`, with every worker's downloads `per_day`.
    pub fn new(overview: StatsOverview, per_day: &[DownloadCount]) -> OverviewPage {
        let days = overview.days;
        OverviewPage {
            page: Layout::new("Downloads", Section::Stats, false),
            days,
            periods: PERIODS
                .into_iter()
                .map(|d| Choice {
                    label: format!("{d} days"),
                    href: format!("/stats?days={d}"),
                    current: d == days,
                })
                .collect(),
            total: overview.total,
            per_day: Columns::new("per-day", "Downloads per day", &points(per_day)),
            top_workers: Rows::new("top-workers", "Top workers", &points(&overview.top_workers)),
            top_links: overview
                .top_workers
                .iter()
                .map(|c| Choice {
                    label: c.key.clone(),
                    href: format!("/worker/{}", c.key),
                    current: false,
                })
                .collect(),
            by_platform: Rows::new("by-platform", "Platforms", &points(&overview.by_platform)),
            by_client_family: Rows::new(
                "by-client",
                "Client families",
                &points(&overview.by_client_family),
            ),
            by_source: Rows::new("by-source", "Sources", &points(&overview.by_source)),
            recent: overview.recent_downloads.into_iter().map(recent).collect(),
        }
    }
}

fn recent(r: RecentDownload) -> Recent {
    let at = chrono::DateTime::parse_from_rfc3339(&r.at)
        .map(|t| {
            t.with_timezone(&chrono::Utc)
                .format("%Y-%m-%d %H:%M:%S UTC")
                .to_string()
        })
        .unwrap_or_else(|_| r.at.clone());
    Recent {
        href: format!("/worker/{}", r.worker_id),
        worker: r.worker_id,
        version: r.version,
        platform: r.platform,
        at,
        at_rfc3339: r.at,
    }
}
