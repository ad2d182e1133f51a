//! The catalog's domain: what workers and releases are published, read
//! from a registry through [`source::RegistryRead`], checked as untrusted
//! data, and cached with stale-on-error. It knows nothing of HTTP serving:
//!
//! - it fails with [`CatalogError`] (and [`upstream::UpstreamError`]), which
//!   the HTTP edge maps to a status and a JSON body in `crate::error`;
//! - it reports cache lookups and left-out releases to a
//!   [`observe::CatalogObserver`], which `crate::metrics` implements;
//! - its types carry no JSON or OpenAPI shape: `crate::wire` builds those.
//!
//! The rule, checked by `domain_imports_nothing_from_the_http_edge` below:
//! no module under `domain/` names axum, `http` status codes, or the
//! crate's `metrics`, `openapi`, `routes`, `error`, `wire`, `state` or
//! `server` modules. That is what lets another front (a CLI, a job, a
//! different server) reuse the domain, and auth, object storage or a
//! database slot in behind [`source::RegistryRead`] without touching it.

pub mod cache;
pub mod catalog;
pub mod error;
pub mod in_process;
pub mod license;
pub mod observe;
pub mod referrers;
pub mod signature;
pub mod source;
pub mod stats;
pub mod upstream;
pub mod view;

pub use error::CatalogError;

#[cfg(test)]
mod tests {
    /// Every domain source file, by path, embedded at build time so that a
    /// new file cannot escape the check without being listed here (the
    /// `mod` list above and this one are compared).
    const FILES: &[(&str, &str)] = &[
        ("domain/mod.rs", include_str!("mod.rs")),
        ("domain/cache.rs", include_str!("cache.rs")),
        ("domain/catalog.rs", include_str!("catalog.rs")),
        ("domain/catalog/delta.rs", include_str!("catalog/delta.rs")),
        ("domain/catalog/fetch.rs", include_str!("catalog/fetch.rs")),
        ("domain/error.rs", include_str!("error.rs")),
        ("domain/in_process.rs", include_str!("in_process.rs")),
        ("domain/license.rs", include_str!("license.rs")),
        ("domain/observe.rs", include_str!("observe.rs")),
        ("domain/signature.rs", include_str!("signature.rs")),
        ("domain/referrers/mod.rs", include_str!("referrers/mod.rs")),
        (
            "domain/referrers/yank.rs",
            include_str!("referrers/yank.rs"),
        ),
        ("domain/source.rs", include_str!("source.rs")),
        ("domain/stats.rs", include_str!("stats.rs")),
        ("domain/upstream/mod.rs", include_str!("upstream/mod.rs")),
        ("domain/upstream/auth.rs", include_str!("upstream/auth.rs")),
        ("domain/upstream/body.rs", include_str!("upstream/body.rs")),
        ("domain/view/mod.rs", include_str!("view/mod.rs")),
        (
            "domain/view/reconcile.rs",
            include_str!("view/reconcile.rs"),
        ),
        ("domain/view/sync.rs", include_str!("view/sync.rs")),
    ];

    /// What the domain must not name: the HTTP server framework, the HTTP
    /// status codes it answers with, and the crate's HTTP-edge modules.
    /// (The upstream client reads a registry's status codes through
    /// `reqwest`; that is the registry's HTTP, not the catalog's.)
    const FORBIDDEN: &[&str] = &[
        "axum",
        "utoipa",
        "http::StatusCode",
        "IntoResponse",
        "crate::metrics",
        "crate::openapi",
        "crate::routes",
        "crate::error",
        "crate::wire",
        "crate::state",
        "crate::server",
        "crate::respond",
        "crate::extract",
        "ApiError",
        "task_local",
    ];

    /// Code lines only: comments may explain the rule.
    fn code_lines(text: &str) -> impl Iterator<Item = (usize, &str)> {
        text.lines()
            .enumerate()
            .filter(|(_, l)| !l.trim_start().starts_with("//"))
            .map(|(n, l)| (n + 1, l))
    }

    #[test]
    fn domain_imports_nothing_from_the_http_edge() {
        let mut found = Vec::new();
        for (path, text) in FILES {
            // The test module of this file lists the names on purpose.
            let text = match *path {
                "domain/mod.rs" => text.split("#[cfg(test)]").next().unwrap_or(""),
                _ => text,
            };
            for (line, code) in code_lines(text) {
                for name in FORBIDDEN {
                    if code.contains(name) {
                        found.push(format!("{path}:{line}: `{name}` in `{}`", code.trim()));
                    }
                }
            }
        }
        assert!(
            found.is_empty(),
            "the domain reaches into the HTTP edge:\n{}",
            found.join("\n")
        );
    }

    #[test]
    fn every_domain_file_is_checked() {
        let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
        let mut on_disk = Vec::new();
        let mut stack = vec![dir.join("domain")];
        while let Some(d) = stack.pop() {
            for entry in std::fs::read_dir(&d).unwrap() {
                let p = entry.unwrap().path();
                if p.is_dir() {
                    stack.push(p);
                } else if p.extension().is_some_and(|e| e == "rs") {
                    let rel = p
                        .strip_prefix(&dir)
                        .unwrap()
                        .to_string_lossy()
                        .replace('\\', "/");
                    on_disk.push(rel);
                }
            }
        }
        on_disk.sort();
        let mut listed: Vec<String> = FILES.iter().map(|(p, _)| (*p).to_owned()).collect();
        listed.sort();
        assert_eq!(on_disk, listed, "list every domain file in FILES");
    }

    #[test]
    fn the_check_catches_an_http_import() {
        let bad = "use axum::http::StatusCode;\nuse crate::metrics::record;";
        let hits: Vec<_> = code_lines(bad)
            .filter(|(_, c)| FORBIDDEN.iter().any(|n| c.contains(n)))
            .collect();
        assert_eq!(hits.len(), 2);
    }
}
