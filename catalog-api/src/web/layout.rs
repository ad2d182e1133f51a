//! What every page's frame (`templates/base.html`) shows: the asset
//! names, which navigation entry is the current page, and whether the
//! data is stale.

use super::assets::{SCRIPT, STYLESHEET};

/// The navigation entry a page belongs to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Section {
    /// The worker list and worker pages.
    Workers,
    /// The download overview.
    Stats,
    /// An error page.
    None,
}

/// The frame of a page.
#[derive(Debug)]
pub struct Layout {
    /// The `<title>`, before the site's name.
    pub title: String,
    /// The stylesheet's path.
    pub css: &'static str,
    /// The script's path.
    pub js: &'static str,
    /// The worker list is the current section.
    pub in_workers: bool,
    /// The download overview is the current section.
    pub in_stats: bool,
    /// The registry failed and cached data is shown.
    pub stale: bool,
}

impl Layout {
    /// The frame of a page titled `title` in `section`.
    pub fn new(title: impl Into<String>, section: Section, stale: bool) -> Layout {
        Layout {
            title: title.into(),
            css: &STYLESHEET.path,
            js: &SCRIPT.path,
            in_workers: section == Section::Workers,
            in_stats: section == Section::Stats,
            stale,
        }
    }
}
