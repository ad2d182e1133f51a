//! The worker list's query string: filters, search and sort, parsed into
//! checked values (an unknown value is a 400 page), and turned back into
//! links, so that every filtered view is a URL that can be shared and
//! works without JavaScript.

use rbee_schemas::{Backend, Platform};

use super::PageError;

/// The longest search text kept (longer input is cut, not refused).
const MAX_SEARCH: usize = 100;

/// How the list is ordered.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Sort {
    /// By name (the default).
    #[default]
    Name,
    /// Newest release first.
    Newest,
    /// Most downloads over the last 30 days first.
    Downloads,
}

impl Sort {
    /// Every order, as offered on the page.
    pub const ALL: [Sort; 3] = [Sort::Name, Sort::Newest, Sort::Downloads];

    /// The query value.
    pub fn as_str(self) -> &'static str {
        match self {
            Sort::Name => "name",
            Sort::Newest => "newest",
            Sort::Downloads => "downloads",
        }
    }

    /// What the page calls it.
    pub fn label(self) -> &'static str {
        match self {
            Sort::Name => "Name",
            Sort::Newest => "Newest",
            Sort::Downloads => "Most downloaded",
        }
    }
}

/// The list's filters, search text and order.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ListQuery {
    /// Only this backend.
    pub backend: Option<Backend>,
    /// Only workers whose latest version has a build for this platform.
    pub platform: Option<Platform>,
    /// Only premium (`true`) or only free (`false`) workers.
    pub premium: Option<bool>,
    /// Only workers whose id, name, family or description contains this
    /// (case-insensitive); empty: all.
    pub search: String,
    /// The order.
    pub sort: Sort,
}

impl ListQuery {
    /// Reads a raw query string. Empty values mean "any"; unknown
    /// parameters are ignored; a repeated one takes its last value.
    pub fn parse(raw: Option<&str>) -> Result<ListQuery, PageError> {
        let mut q = ListQuery::default();
        for (key, value) in form_urlencoded::parse(raw.unwrap_or("").as_bytes()) {
            let value = value.trim();
            match key.as_ref() {
                "backend" if value.is_empty() => q.backend = None,
                "backend" => {
                    q.backend = Some(
                        Backend::ALL
                            .into_iter()
                            .find(|b| b.as_str() == value)
                            .ok_or_else(|| {
                                PageError::bad_request(format!(
                                    "unknown backend `{}`; one of cpu, cuda, metal, rocm",
                                    cut(value)
                                ))
                            })?,
                    )
                }
                "platform" if value.is_empty() => q.platform = None,
                "platform" => {
                    q.platform = Some(value.parse().map_err(|_| {
                        PageError::bad_request(format!(
                            "unknown platform `{}`; one of {}",
                            cut(value),
                            Platform::names().join(", ")
                        ))
                    })?)
                }
                "premium" => {
                    q.premium = match value {
                        "" => None,
                        "premium" => Some(true),
                        "free" => Some(false),
                        other => {
                            return Err(PageError::bad_request(format!(
                                "`premium` is `premium` or `free`, not `{}`",
                                cut(other)
                            )));
                        }
                    }
                }
                "q" => q.search = value.chars().take(MAX_SEARCH).collect(),
                "sort" => {
                    q.sort = match value {
                        "" => Sort::default(),
                        v => Sort::ALL
                            .into_iter()
                            .find(|s| s.as_str() == v)
                            .ok_or_else(|| {
                                PageError::bad_request(format!(
                                    "`sort` is name, newest or downloads, not `{}`",
                                    cut(v)
                                ))
                            })?,
                    }
                }
                _ => {}
            }
        }
        Ok(q)
    }

    /// The query's parameters that differ from the defaults, in a fixed
    /// order.
    pub fn pairs(&self) -> Vec<(&'static str, String)> {
        let mut pairs = Vec::new();
        if let Some(b) = self.backend {
            pairs.push(("backend", b.as_str().to_owned()));
        }
        if let Some(p) = self.platform {
            pairs.push(("platform", p.name().to_owned()));
        }
        if let Some(premium) = self.premium {
            pairs.push((
                "premium",
                if premium { "premium" } else { "free" }.to_owned(),
            ));
        }
        if !self.search.is_empty() {
            pairs.push(("q", self.search.clone()));
        }
        if self.sort != Sort::default() {
            pairs.push(("sort", self.sort.as_str().to_owned()));
        }
        pairs
    }

    /// The list's URL for this query: `/` or `/?backend=cuda&q=...`.
    pub fn href(&self) -> String {
        let pairs = self.pairs();
        if pairs.is_empty() {
            return "/".to_owned();
        }
        let mut s = form_urlencoded::Serializer::new(String::new());
        s.extend_pairs(pairs);
        format!("/?{}", s.finish())
    }

    /// Whether any filter or search is applied.
    pub fn narrows(&self) -> bool {
        self.backend.is_some()
            || self.platform.is_some()
            || self.premium.is_some()
            || !self.search.is_empty()
    }
}

/// A value quoted in a message, cut short.
fn cut(value: &str) -> String {
    value.chars().take(40).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_query_round_trips_through_its_link() {
        let q = ListQuery::parse(Some(
            "backend=cuda&platform=linux-x86_64&premium=free&q=a%26b+c&sort=downloads",
        ))
        .unwrap();
        assert_eq!(q.backend, Some(Backend::Cuda));
        assert_eq!(q.platform, Some(Platform::LinuxX86_64));
        assert_eq!(q.premium, Some(false));
        assert_eq!(q.search, "a&b c");
        assert_eq!(q.sort, Sort::Downloads);
        let link = q.href();
        assert_eq!(
            ListQuery::parse(link.strip_prefix("/?")).unwrap(),
            q,
            "{link}"
        );
        assert_eq!(ListQuery::default().href(), "/");
    }

    #[test]
    fn empty_values_mean_any_and_unknown_values_are_refused() {
        let q = ListQuery::parse(Some("backend=&platform=&premium=&q=&sort=&other=1")).unwrap();
        assert_eq!(q, ListQuery::default());
        for bad in [
            "backend=tpu",
            "platform=linux",
            "premium=maybe",
            "sort=size",
        ] {
            assert!(ListQuery::parse(Some(bad)).is_err(), "{bad}");
        }
    }
}
