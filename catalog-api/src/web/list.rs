//! `GET /`: every worker's latest version as a card, with filters by
//! backend, platform and premium, a text search and three orders. Every
//! control is a link or a GET form, so a filtered view is a URL and works
//! without JavaScript.

use std::collections::HashMap;
use std::sync::Arc;

use askama::Template;
use axum::extract::{RawQuery, State};
use axum::http::HeaderMap;
use axum::response::Response;
use rbee_schemas::catalog::CatalogEntry;
use rbee_schemas::v1::DownloadCount;
use rbee_schemas::{Backend, Platform};

use super::layout::{Layout, Section};
use super::query::{ListQuery, Sort};
use super::{PageError, html, stats_max_age};
use crate::domain::catalog::Release;
use crate::respond::Caching;
use crate::routes::stats::worker_totals_json;
use crate::state::AppState;

/// Days the list's download figures cover.
const DAYS: u32 = 30;

/// A link among a group of choices.
#[derive(Debug)]
pub struct Choice {
    /// What it says.
    pub label: String,
    /// Where it leads.
    pub href: String,
    /// It is the current choice (`aria-current`).
    pub current: bool,
}

/// One filter: a label and its choices.
#[derive(Debug)]
pub struct FilterGroup {
    /// What is filtered, e.g. `Backend`.
    pub label: &'static str,
    /// "Any", then each value.
    pub choices: Vec<Choice>,
}

/// A query parameter the search form carries along.
#[derive(Debug)]
pub struct Hidden {
    pub name: &'static str,
    pub value: String,
}

/// One worker on the list.
#[derive(Debug)]
pub struct Card {
    pub id: String,
    pub name: String,
    pub description: String,
    pub backend: &'static str,
    pub version: String,
    /// The platforms the latest version was built for.
    pub platforms: Vec<&'static str>,
    pub premium: bool,
    /// The license's price, e.g. `49.00 EUR`.
    pub price: Option<String>,
    /// The worker's page.
    pub href: String,
    /// Downloads over the last [`DAYS`] days.
    pub downloads: u64,
    /// The latest version's publish date (`2026-11-30`), or empty.
    pub published: String,
    /// The full publish time, for sorting by newest.
    published_at: String,
}

/// `templates/list.html`.
#[derive(Debug, Template)]
#[template(path = "list.html")]
pub struct ListPage {
    pub page: Layout,
    pub filters: Vec<FilterGroup>,
    pub sorts: Vec<Choice>,
    /// The search text, as typed.
    pub search: String,
    /// The other parameters, kept by the search form.
    pub hidden: Vec<Hidden>,
    pub cards: Vec<Card>,
    /// Workers in the catalog, before filtering.
    pub total: usize,
    /// Filters or a search narrow the list.
    pub narrowed: bool,
    /// How many days the download figures cover.
    pub days: u32,
}

/// `GET /`
pub async fn page(
    State(state): State<Arc<AppState>>,
    RawQuery(raw): RawQuery,
    headers: HeaderMap,
) -> Result<Response, PageError> {
    let query = ListQuery::parse(raw.as_deref())?;
    let (latest, stale) = state.catalog.latest_releases().await?;
    // The list is worth showing without the figures: a database failure
    // costs the download counts (and that order), not the page.
    let downloads = match worker_totals_json(&state, DAYS).await {
        Ok(json) => serde_json::from_slice::<Vec<DownloadCount>>(&json)
            .unwrap_or_default()
            .into_iter()
            .map(|c| (c.key, c.downloads))
            .collect(),
        Err(e) => {
            tracing::warn!(error = %e, "download totals unavailable; the list shows none");
            HashMap::new()
        }
    };
    let body = ListPage::new(&latest, &downloads, &query, stale)
        .render()
        .map_err(|e| PageError::render(&e))?;
    Ok(html(
        &headers,
        body,
        stale,
        Caching::Public(stats_max_age(&state, 300)),
    ))
}

impl ListPage {
    /// The page for `query` over `latest` (each worker's catalog entry and
    /// latest release) with `downloads` by worker id.
    pub fn new(
        latest: &[(CatalogEntry, Arc<Release>)],
        downloads: &HashMap<String, u64>,
        query: &ListQuery,
        stale: bool,
    ) -> ListPage {
        let needle = query.search.to_lowercase();
        let mut cards: Vec<Card> = latest
            .iter()
            .map(|(_, r)| r)
            .filter(|r| query.backend.is_none_or(|b| r.metadata.backend == b))
            .filter(|r| {
                query
                    .platform
                    .is_none_or(|p| r.builds.iter().any(|b| b.platform == p))
            })
            .filter(|r| {
                query
                    .premium
                    .is_none_or(|p| r.metadata.distribution.requires_license == p)
            })
            .filter(|r| needle.is_empty() || matches(r, &needle))
            .map(|r| card(r, downloads))
            .collect();
        match query.sort {
            Sort::Name => cards.sort_by(|a, b| {
                (a.name.to_lowercase(), &a.id).cmp(&(b.name.to_lowercase(), &b.id))
            }),
            Sort::Newest => cards.sort_by(|a, b| {
                b.published_at
                    .cmp(&a.published_at)
                    .then_with(|| a.id.cmp(&b.id))
            }),
            Sort::Downloads => {
                cards.sort_by(|a, b| b.downloads.cmp(&a.downloads).then_with(|| a.id.cmp(&b.id)))
            }
        }
        let title = if query.narrows() {
            format!("Workers ({} found)", cards.len())
        } else {
            "Workers".to_owned()
        };
        ListPage {
            page: Layout::new(title, Section::Workers, stale),
            filters: filters(query),
            sorts: Sort::ALL
                .into_iter()
                .map(|s| {
                    let q = ListQuery {
                        sort: s,
                        ..query.clone()
                    };
                    Choice {
                        label: s.label().to_owned(),
                        href: q.href(),
                        current: s == query.sort,
                    }
                })
                .collect(),
            search: query.search.clone(),
            hidden: query
                .pairs()
                .into_iter()
                .filter(|(name, _)| *name != "q")
                .map(|(name, value)| Hidden { name, value })
                .collect(),
            cards,
            total: latest.len(),
            narrowed: query.narrows(),
            days: DAYS,
        }
    }
}

/// Whether the search text (lower case) is in the worker's id, name,
/// family or description.
fn matches(r: &Release, needle: &str) -> bool {
    let m = &r.metadata;
    [&m.id, &m.name, &m.family, &m.description]
        .iter()
        .any(|field| field.to_lowercase().contains(needle))
}

fn card(r: &Release, downloads: &HashMap<String, u64>) -> Card {
    let m = &r.metadata;
    let published_at = r.published_at.clone().unwrap_or_default();
    Card {
        id: m.id.clone(),
        name: m.name.clone(),
        description: m.description.clone(),
        backend: m.backend.as_str(),
        version: r.version.to_string(),
        platforms: r.builds.iter().map(|b| b.platform.name()).collect(),
        premium: m.distribution.requires_license,
        price: m.pricing.as_ref().map(super::worker::price_text),
        href: format!("/worker/{}", m.id),
        downloads: downloads.get(&m.id).copied().unwrap_or(0),
        published: published_at.chars().take(10).collect(),
        published_at,
    }
}

/// The three filters, each as links that keep the rest of the query.
fn filters(query: &ListQuery) -> Vec<FilterGroup> {
    let choice = |label: &str, q: ListQuery, current: bool| Choice {
        label: label.to_owned(),
        href: q.href(),
        current,
    };
    let mut backend = vec![choice(
        "Any",
        ListQuery {
            backend: None,
            ..query.clone()
        },
        query.backend.is_none(),
    )];
    backend.extend(Backend::ALL.into_iter().map(|b| {
        choice(
            b.as_str(),
            ListQuery {
                backend: Some(b),
                ..query.clone()
            },
            query.backend == Some(b),
        )
    }));
    let mut platform = vec![choice(
        "Any",
        ListQuery {
            platform: None,
            ..query.clone()
        },
        query.platform.is_none(),
    )];
    platform.extend(Platform::ALL.into_iter().map(|p| {
        choice(
            p.name(),
            ListQuery {
                platform: Some(p),
                ..query.clone()
            },
            query.platform == Some(p),
        )
    }));
    let premium = [
        ("Any", None),
        ("Free", Some(false)),
        ("Premium", Some(true)),
    ]
    .into_iter()
    .map(|(label, premium)| {
        choice(
            label,
            ListQuery {
                premium,
                ..query.clone()
            },
            query.premium == premium,
        )
    })
    .collect();
    vec![
        FilterGroup {
            label: "Backend",
            choices: backend,
        },
        FilterGroup {
            label: "Platform",
            choices: platform,
        },
        FilterGroup {
            label: "License",
            choices: premium,
        },
    ]
}
