//! Listings: `tags/list`, `_catalog` and `referrers`, with `n`/`last`
//! pagination and `Link` headers.

use std::collections::HashMap;

use axum::Json;
use axum::extract::Request;
use axum::http::{HeaderValue, header};
use axum::response::{IntoResponse, Response};
use rbee_schemas::media_types;
use serde_json::json;

use crate::error::{RegistryError, Result};
use crate::gate::Caller;
use crate::reference::{Digest, RepoName};
use crate::registry::Registry;

/// The most entries one page holds, whatever `n` asks for. `n` only ever
/// selects from a list that exists; nothing is allocated from it.
pub const MAX_PAGE: usize = 1000;

/// A page of a sorted list: the entries after `last`, at most `n`.
struct Page<'a, T> {
    items: &'a [T],
    /// The `last` value for the next page, when there is one.
    next: Option<&'a T>,
}

/// Reads `n`: a non-negative integer; larger than [`MAX_PAGE`] is clamped.
fn page_size(q: &HashMap<String, String>) -> Result<usize> {
    match q.get("n") {
        None => Ok(MAX_PAGE),
        Some(raw) => {
            if raw.is_empty() || !raw.bytes().all(|b| b.is_ascii_digit()) {
                return Err(RegistryError::PaginationInvalid(format!(
                    "n must be a non-negative integer, got `{}`",
                    raw.chars().take(40).collect::<String>()
                )));
            }
            // All digits: only overflow can fail, and that is "very large".
            Ok(raw.parse::<usize>().unwrap_or(usize::MAX).min(MAX_PAGE))
        }
    }
}

fn paginate<'a, T, K>(
    all: &'a [T],
    key: impl Fn(&T) -> &K,
    n: usize,
    last: Option<&K>,
) -> Page<'a, T>
where
    K: Ord + ?Sized,
{
    let start = match last {
        Some(last) => all.partition_point(|x| key(x) <= last),
        None => 0,
    };
    let end = start.saturating_add(n).min(all.len());
    let items = &all[start..end];
    let next = (end < all.len() && !items.is_empty()).then(|| &items[items.len() - 1]);
    Page { items, next }
}

/// Adds the `Link` to the next page, when there is one. `filter` is the
/// rest of the query (already escaped), which every page must repeat.
fn with_link(
    mut resp: Response,
    path: &str,
    n: usize,
    last: Option<String>,
    filter: &str,
) -> Response {
    if let Some(last) = last {
        let link = format!("<{path}?n={n}&last={last}{filter}>; rel=\"next\"");
        if let Ok(v) = HeaderValue::from_str(&link) {
            resp.headers_mut().insert(header::LINK, v);
        }
    }
    resp
}

pub async fn tags(reg: &Registry, name: &RepoName, req: Request) -> Result<Response> {
    let q = super::query(&req)?;
    let n = page_size(&q)?;
    let all = reg.tags(name).await?;
    let page = paginate(&all, |s| s.as_str(), n, q.get("last").map(String::as_str));
    let resp = Json(json!({ "name": name.as_str(), "tags": page.items })).into_response();
    Ok(with_link(
        resp,
        &format!("/v2/{name}/tags/list"),
        n,
        page.next.cloned(),
        "",
    ))
}

/// `GET /v2/_catalog`: the repositories the caller may pull, and no
/// others (a name alone says that a premium worker exists).
pub async fn catalog(reg: &Registry, caller: &Caller, req: Request) -> Result<Response> {
    let q = super::query(&req)?;
    let n = page_size(&q)?;
    let mut all = reg.repositories().await?;
    all.retain(|repo| caller.may_pull(repo));
    let page = paginate(&all, |s| s.as_str(), n, q.get("last").map(String::as_str));
    let resp = Json(json!({ "repositories": page.items })).into_response();
    Ok(with_link(resp, "/v2/_catalog", n, page.next.cloned(), ""))
}

pub async fn referrers(
    reg: &Registry,
    name: &RepoName,
    subject: &Digest,
    req: Request,
) -> Result<Response> {
    let q = super::query(&req)?;
    let n = page_size(&q)?;
    let filter = q.get("artifactType").map(String::as_str);
    let all = reg.referrers(name, subject, filter).await?;
    let last = q.get("last").map(|l| Digest::parse(l)).transpose()?;
    let page = paginate(&all, |d| &d.digest, n, last.as_ref());
    let body = json!({
        "schemaVersion": 2,
        "mediaType": media_types::OCI_INDEX,
        "manifests": page.items,
    });
    let mut resp = Json(body).into_response();
    resp.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static(media_types::OCI_INDEX),
    );
    if filter.is_some() {
        resp.headers_mut().insert(
            "oci-filters-applied",
            HeaderValue::from_static("artifactType"),
        );
    }
    let next = page.next.map(|d| d.digest.to_string());
    // The next page is filtered too (and says so): the filter travels in
    // the link.
    let filter = filter
        .map(|t| format!("&artifactType={}", query_escape(t)))
        .unwrap_or_default();
    Ok(with_link(
        resp,
        &format!("/v2/{name}/referrers/{subject}"),
        n,
        next,
        &filter,
    ))
}

/// Percent-encodes everything but RFC 3986's unreserved characters, so a
/// value survives a query string whole (a `+` in a media type would
/// otherwise come back as a space).
fn query_escape(value: &str) -> String {
    let mut out = String::with_capacity(value.len());
    for b in value.bytes() {
        if b.is_ascii_alphanumeric() || b"-._~".contains(&b) {
            out.push(char::from(b));
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pages_follow_last() {
        let all: Vec<String> = ["a", "b", "c", "d"].map(String::from).to_vec();
        let p = paginate(&all, |s| s.as_str(), 2, None);
        assert_eq!(p.items, ["a", "b"]);
        assert_eq!(p.next.map(String::as_str), Some("b"));
        let p = paginate(&all, |s| s.as_str(), 2, Some("b"));
        assert_eq!(p.items, ["c", "d"]);
        assert!(p.next.is_none());
        let p = paginate(&all, |s| s.as_str(), 0, None);
        assert!(p.items.is_empty() && p.next.is_none());
    }

    #[test]
    fn query_values_are_escaped_whole() {
        assert_eq!(
            query_escape("application/vnd.x+json; a=b&c"),
            "application%2Fvnd.x%2Bjson%3B%20a%3Db%26c"
        );
        assert_eq!(query_escape("é"), "%C3%A9");
    }

    #[test]
    fn n_is_checked_and_clamped() {
        let q = |v: &str| HashMap::from([("n".to_owned(), v.to_owned())]);
        assert_eq!(page_size(&q("5")).unwrap(), 5);
        assert_eq!(page_size(&q("1000000000000")).unwrap(), MAX_PAGE);
        assert_eq!(
            page_size(&q("99999999999999999999999999")).unwrap(),
            MAX_PAGE
        );
        assert!(page_size(&q("-1")).is_err());
        assert!(page_size(&q("abc")).is_err());
        assert!(page_size(&q("")).is_err());
    }
}
