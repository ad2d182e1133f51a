//! The stats as text, for `rbee-catalog stats`: the same figures as the
//! JSON routes, in aligned columns.

use std::fmt::Write as _;

use rbee_schemas::v1::{DownloadCount, StatsOverview, WorkerStats};

fn table(out: &mut String, title: &str, rows: &[DownloadCount]) {
    let _ = writeln!(out, "\n{title}:");
    if rows.is_empty() {
        let _ = writeln!(out, "  (none)");
    }
    let width = rows.iter().map(|r| r.key.len()).max().unwrap_or(0);
    for r in rows {
        let _ = writeln!(
            out,
            "  {:<width$}  {:>10} downloads  {:>8} incomplete",
            r.key, r.downloads, r.incomplete
        );
    }
}

fn rate(r: Option<f64>) -> String {
    r.map_or_else(|| "-".to_owned(), |r| format!("{:.1}%", r * 100.0))
}

/// One worker's stats.
pub fn worker_stats(s: &WorkerStats) -> String {
    let mut out = format!(
        "{} — last {} days\ndownloads: {}  incomplete: {}  completion rate: {}\n",
        s.worker_id,
        s.days,
        s.total,
        s.incomplete,
        rate(s.completion_rate)
    );
    table(&mut out, "by version", &s.by_version);
    table(&mut out, "by platform", &s.by_platform);
    let _ = writeln!(out, "\nper day:");
    for d in s.per_day.iter().filter(|d| d.downloads + d.incomplete > 0) {
        let _ = writeln!(
            out,
            "  {}  {:>10} downloads  {:>8} incomplete  {:>8} unique clients",
            d.day, d.downloads, d.incomplete, d.unique_clients
        );
    }
    out
}

/// The overview.
pub fn overview(s: &StatsOverview) -> String {
    let mut out = format!(
        "all workers — last {} days\ndownloads: {}\n",
        s.days, s.total
    );
    table(&mut out, "top workers", &s.top_workers);
    table(&mut out, "by platform", &s.by_platform);
    table(&mut out, "by source", &s.by_source);
    table(&mut out, "by client family", &s.by_client_family);
    let _ = writeln!(out, "\nrecent downloads:");
    for r in &s.recent_downloads {
        let _ = writeln!(
            out,
            "  {}  {} {} {}",
            r.at, r.worker_id, r.version, r.platform
        );
    }
    out
}

/// The stats as the routes answer them, indented, for `--json`.
pub fn json<T: serde::Serialize>(value: &T) -> String {
    serde_json::to_string_pretty(value).unwrap_or_default() + "\n"
}
