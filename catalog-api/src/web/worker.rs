//! `GET /worker/{id}`: one worker's description and metadata, every
//! version newest first (yanked ones marked) with its builds, the install
//! commands for the visitor's platform, the PKGBUILD, download charts, and
//! for a premium worker its price and where to buy a license.
//!
//! `?platform=` picks the build the commands are for (otherwise it is
//! guessed from the `User-Agent`, and the answer varies by it);
//! `?version=` picks the version (otherwise the latest that is not
//! yanked).

use std::sync::Arc;

use askama::Template;
use axum::extract::{Path, RawQuery, State};
use axum::http::{HeaderMap, HeaderValue, header};
use axum::response::Response;
use rbee_schemas::Platform;
use rbee_schemas::v1::WorkerStats;

use super::chart::{Columns, Rows};
use super::install::{self, Command, Endpoints};
use super::layout::{Layout, Section};
use super::list::Choice;
use super::{PageError, html, stats_max_age};
use crate::domain::catalog::Release;
use crate::error::check_worker_id;
use crate::respond::Caching;
use crate::routes::stats::worker_stats_json;
use crate::state::AppState;

/// Days the charts cover.
const DAYS: u32 = 30;

/// A label and a value of the metadata list.
#[derive(Debug)]
pub struct Fact {
    pub label: &'static str,
    pub value: String,
    /// A link for the value (an https URL from the metadata), or empty.
    pub href: String,
}

/// One platform build of a version.
#[derive(Debug)]
pub struct BuildRow {
    pub platform: &'static str,
    /// `1.2 MiB`.
    pub size: String,
    pub bytes: u64,
    /// The layer digest, the sha256 users verify.
    pub digest: String,
    pub filename: String,
}

/// One version.
#[derive(Debug)]
pub struct VersionRow {
    pub version: String,
    /// `2026-11-30 12:00 UTC`, or `unknown`.
    pub published: String,
    /// The RFC 3339 time for `<time datetime>`, or empty.
    pub published_at: String,
    pub yanked: bool,
    pub yank_reason: String,
    /// It is what `latest` resolves to.
    pub latest: bool,
    /// Its install commands on this page.
    pub href: String,
    pub builds: Vec<BuildRow>,
    /// The minisign key id of the publisher key that signed it (the
    /// catalog checks only that the signature is well formed; installers
    /// check it against the keys they trust): shown as "signed by KEY_ID".
    pub signed_by: Option<String>,
}

/// `templates/worker.html`.
#[derive(Debug, Template)]
#[template(path = "worker.html")]
pub struct WorkerPage {
    pub page: Layout,
    pub id: String,
    pub name: String,
    pub description: String,
    pub backend: &'static str,
    pub facts: Vec<Fact>,
    pub premium: bool,
    pub price: Option<String>,
    /// Where to buy a license (an https URL), or empty.
    pub purchase_url: String,
    /// The version the commands are for.
    pub version: String,
    pub version_yanked: bool,
    /// The platform the commands are for.
    pub platform: &'static str,
    /// The platform was guessed from the browser, not asked for.
    pub platform_guessed: bool,
    /// The other builds of that version, as links.
    pub platforms: Vec<Choice>,
    pub commands: Vec<Command>,
    pub versions: Vec<VersionRow>,
    /// The PKGBUILD of the latest version; `None` when it has none or it
    /// could not be read.
    pub pkgbuild: Option<String>,
    pub pkgbuild_href: String,
    /// The latest version's (the PKGBUILD's) version.
    pub latest: String,
    /// Downloads per day, and by platform and version; `None` when the
    /// figures are unavailable.
    pub per_day: Option<Columns>,
    pub by_platform: Option<Rows>,
    pub by_version: Option<Rows>,
    pub total: u64,
    pub days: u32,
}

/// `GET /worker/{id}`
pub async fn page(
    State(state): State<Arc<AppState>>,
    Path(id): Path<String>,
    RawQuery(raw): RawQuery,
    headers: HeaderMap,
) -> Result<Response, PageError> {
    check_worker_id(&id)?;
    let (wanted_platform, wanted_version) = parse_query(raw.as_deref())?;
    let ((entry, releases), stale) = state.catalog.releases(&id).await?;
    if releases.is_empty() {
        return Err(crate::error::ApiError::WorkerNotFound.into());
    }
    // `latest` as `/v1` resolves it: the index's latest unless yanked,
    // then the highest stable version that is not.
    let latest = releases
        .iter()
        .find(|r| {
            r.yank.is_none() && entry.latest.as_deref() == Some(r.version.to_string().as_str())
        })
        .or_else(|| {
            releases
                .iter()
                .find(|r| r.yank.is_none() && r.version.pre.is_empty())
        })
        .or_else(|| releases.iter().find(|r| r.yank.is_none()))
        .unwrap_or(&releases[0])
        .clone();
    let shown = match &wanted_version {
        Some(v) => releases
            .iter()
            .find(|r| r.version == *v)
            .cloned()
            .ok_or_else(|| crate::error::ApiError::VersionNotFound(v.to_string()))?,
        None => latest.clone(),
    };
    let guessed = wanted_platform.is_none();
    let platform = wanted_platform
        .or_else(|| {
            headers
                .get(header::USER_AGENT)
                .and_then(|v| v.to_str().ok())
                .and_then(install::platform_of_user_agent)
        })
        .filter(|p| shown.builds.iter().any(|b| b.platform == *p));
    let build = match platform {
        Some(p) => shown.builds.iter().find(|b| b.platform == p),
        None => shown.builds.first(),
    };
    let (pkgbuild, pkgbuild_stale) = match state.catalog.pkgbuild(&id).await {
        Ok((text, stale)) => (text, stale),
        Err(e) => {
            tracing::debug!(worker = %id, error = %e, "no PKGBUILD for the page");
            (None, false)
        }
    };
    let stats = match worker_stats_json(&state, &id, DAYS).await {
        Ok(json) => serde_json::from_slice::<WorkerStats>(&json).ok(),
        Err(e) => {
            tracing::warn!(worker = %id, error = %e, "download figures unavailable for the page");
            None
        }
    };
    let stale = stale || pkgbuild_stale;
    let endpoints = Endpoints {
        catalog: &state.public_url,
        registry_host: state.catalog.source().registry(),
        plain_http: state.registry_public_url.starts_with("http://"),
    };
    let m = &shown.metadata;
    let page = WorkerPage {
        page: Layout::new(m.name.clone(), Section::Workers, stale),
        id: id.clone(),
        name: m.name.clone(),
        description: m.description.clone(),
        backend: m.backend.as_str(),
        facts: facts(&shown),
        premium: m.distribution.requires_license,
        price: m.pricing.as_ref().map(price_text),
        purchase_url: m
            .pricing
            .as_ref()
            .map(|p| p.purchase_url.clone())
            .filter(|u| u.starts_with("https://"))
            .unwrap_or_default(),
        version: shown.version.to_string(),
        version_yanked: shown.yank.is_some(),
        platform: build.map_or("", |b| b.platform.name()),
        platform_guessed: guessed && build.is_some(),
        platforms: shown
            .builds
            .iter()
            .map(|b| Choice {
                label: b.platform.name().to_owned(),
                href: page_href(&id, &shown, &latest, Some(b.platform)),
                current: build.is_some_and(|x| x.platform == b.platform),
            })
            .collect(),
        commands: build
            .map(|b| install::commands(&shown, b, &endpoints))
            .unwrap_or_default(),
        versions: releases
            .iter()
            .map(|r| version_row(&id, r, &latest, platform))
            .collect(),
        pkgbuild,
        pkgbuild_href: format!("/workers/{id}/PKGBUILD"),
        latest: latest.version.to_string(),
        per_day: stats.as_ref().map(|s| {
            let points: Vec<(String, u64)> = s
                .per_day
                .iter()
                .map(|d| (d.day.clone(), d.downloads))
                .collect();
            Columns::new("per-day", "Downloads per day", &points)
        }),
        by_platform: stats.as_ref().map(|s| {
            let points: Vec<(String, u64)> = s
                .by_platform
                .iter()
                .map(|c| (c.key.clone(), c.downloads))
                .collect();
            Rows::new("by-platform", "Downloads by platform", &points)
        }),
        by_version: stats.as_ref().map(|s| {
            let points: Vec<(String, u64)> = s
                .by_version
                .iter()
                .map(|c| (c.key.clone(), c.downloads))
                .collect();
            Rows::new("by-version", "Downloads by version", &points)
        }),
        total: stats.as_ref().map_or(0, |s| s.total),
        days: DAYS,
    };
    let body = page.render().map_err(|e| PageError::render(&e))?;
    let mut resp = html(
        &headers,
        body,
        stale,
        Caching::Public(stats_max_age(&state, 600)),
    );
    if guessed {
        // The commands follow the browser's platform.
        resp.headers_mut()
            .insert(header::VARY, HeaderValue::from_static("user-agent"));
    }
    Ok(resp)
}

/// `?platform=` and `?version=`; empty values mean "not given".
fn parse_query(
    raw: Option<&str>,
) -> Result<(Option<Platform>, Option<semver::Version>), PageError> {
    let (mut platform, mut version) = (None, None);
    for (key, value) in form_urlencoded::parse(raw.unwrap_or("").as_bytes()) {
        match (key.as_ref(), value.trim()) {
            (_, "") => {}
            ("platform", v) => {
                platform = Some(v.parse::<Platform>().map_err(|_| {
                    PageError::bad_request(format!(
                        "unknown platform; one of {}",
                        Platform::names().join(", ")
                    ))
                })?)
            }
            ("version", v) => {
                version = Some(
                    semver::Version::parse(v)
                        .ok()
                        .filter(|_| v.len() <= 128)
                        .ok_or_else(|| {
                            PageError::bad_request("`version` is a semver version".to_owned())
                        })?,
                )
            }
            _ => {}
        }
    }
    Ok((platform, version))
}

/// This page's URL for `release` and `platform`, at the install commands.
fn page_href(id: &str, release: &Release, latest: &Release, platform: Option<Platform>) -> String {
    let mut pairs: Vec<(&str, String)> = Vec::new();
    if release.version != latest.version {
        pairs.push(("version", release.version.to_string()));
    }
    if let Some(p) = platform {
        pairs.push(("platform", p.name().to_owned()));
    }
    let mut href = format!("/worker/{id}");
    if !pairs.is_empty() {
        let mut s = form_urlencoded::Serializer::new(String::new());
        s.extend_pairs(pairs);
        href.push('?');
        href.push_str(&s.finish());
    }
    href.push_str("#install");
    href
}

fn version_row(id: &str, r: &Release, latest: &Release, platform: Option<Platform>) -> VersionRow {
    let published_at = r.published_at.clone().unwrap_or_default();
    let published = chrono::DateTime::parse_from_rfc3339(&published_at)
        .map(|t| {
            t.with_timezone(&chrono::Utc)
                .format("%Y-%m-%d %H:%M UTC")
                .to_string()
        })
        .unwrap_or_else(|_| "unknown".to_owned());
    VersionRow {
        version: r.version.to_string(),
        published,
        published_at,
        yanked: r.yank.is_some(),
        yank_reason: r
            .yank
            .as_ref()
            .map(|y| y.reason.clone())
            .unwrap_or_default(),
        latest: r.version == latest.version,
        href: page_href(
            id,
            r,
            latest,
            platform.filter(|p| r.builds.iter().any(|b| b.platform == *p)),
        ),
        builds: r
            .builds
            .iter()
            .map(|b| BuildRow {
                platform: b.platform.name(),
                size: human_size(b.size),
                bytes: b.size,
                digest: b.layer_digest.clone(),
                filename: b.filename.clone(),
            })
            .collect(),
        signed_by: r.signature.as_ref().map(|s| s.key_id.clone()),
    }
}

/// The metadata shown as a list of facts.
fn facts(r: &Release) -> Vec<Fact> {
    let m = &r.metadata;
    let yes_no = |b: bool| if b { "yes" } else { "no" }.to_owned();
    let fact = |label, value: String| Fact {
        label,
        value,
        href: String::new(),
    };
    let mut source = m.source.url.clone();
    if let Some(tag) = &m.source.tag {
        source.push_str(&format!(" (tag {tag})"));
    } else if let Some(branch) = &m.source.branch {
        source.push_str(&format!(" (branch {branch})"));
    }
    let source_link = m
        .source
        .url
        .strip_prefix("git+")
        .unwrap_or(&m.source.url)
        .to_owned();
    let caps = &m.capabilities;
    vec![
        fact("Worker id", m.id.clone()),
        fact("Family", m.family.clone()),
        fact("Backend", m.backend.as_str().to_owned()),
        fact(
            "Model formats",
            if caps.supported_formats.is_empty() {
                "none listed".to_owned()
            } else {
                caps.supported_formats.join(", ")
            },
        ),
        fact(
            "Context length",
            caps.max_context_length
                .map_or_else(|| "not stated".to_owned(), |n| format!("{n} tokens")),
        ),
        fact("Streaming", yes_no(caps.streaming)),
        fact("Batching", yes_no(caps.batching)),
        fact("License", m.license.clone()),
        Fact {
            label: "Source",
            value: source,
            href: if source_link.starts_with("https://") {
                source_link
            } else {
                String::new()
            },
        },
        fact(
            "Implementation",
            format!("{} ({})", m.implementation, m.build_system),
        ),
        fact("Repository", r.repository.clone()),
    ]
}

/// A price as the pages show it: `49.00 EUR`.
pub fn price_text(p: &rbee_schemas::Pricing) -> String {
    format!("{:.2} {}", p.amount, p.currency)
}

/// Bytes as people read them: `980 B`, `1.0 KiB`, `12.3 MiB`.
fn human_size(bytes: u64) -> String {
    const UNITS: [&str; 4] = ["KiB", "MiB", "GiB", "TiB"];
    if bytes < 1024 {
        return format!("{bytes} B");
    }
    let mut value = bytes as f64 / 1024.0;
    let mut unit = 0;
    while value >= 1024.0 && unit < UNITS.len() - 1 {
        value /= 1024.0;
        unit += 1;
    }
    format!("{value:.1} {}", UNITS[unit])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_read_like_people_write_them() {
        assert_eq!(human_size(980), "980 B");
        assert_eq!(human_size(1024), "1.0 KiB");
        assert_eq!(human_size(12_900_000), "12.3 MiB");
    }

    #[test]
    fn the_page_query_refuses_unknown_platforms_and_bad_versions() {
        assert_eq!(
            parse_query(Some("platform=linux-x86_64&version=1.2.3")).unwrap(),
            (
                Some(Platform::LinuxX86_64),
                Some(semver::Version::new(1, 2, 3))
            )
        );
        assert_eq!(
            parse_query(Some("platform=&version=")).unwrap(),
            (None, None)
        );
        assert!(parse_query(Some("platform=amiga")).is_err());
        assert!(parse_query(Some("version=latest")).is_err());
    }
}
