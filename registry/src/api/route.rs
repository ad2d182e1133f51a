//! Turning a `/v2/...` path into a route. Names may contain `/`, so the
//! path is read from its last segments; everything before them is the name,
//! which then has to pass the name grammar.

use axum::http::Method;
use rbee_auth::{Access, Action, Repository};

use crate::error::{RegistryError, Result};
use crate::reference::{Digest, Reference, RepoName};

/// A parsed `/v2/` path.
#[derive(Debug, PartialEq)]
pub enum Route {
    /// `/v2/_catalog`
    Catalog,
    /// `/v2/<name>/tags/list`
    Tags(RepoName),
    /// `/v2/<name>/manifests/<reference>`
    Manifest(RepoName, Reference),
    /// `/v2/<name>/manifests/<reference>` with a reference that is neither
    /// a tag nor a digest (kept as sent). No manifest can have it, so a
    /// read or delete finds nothing (404 `MANIFEST_UNKNOWN`, as the OCI
    /// conformance suite expects), while a PUT is refused as invalid.
    ImpossibleManifest(RepoName, String),
    /// `/v2/<name>/blobs/<digest>`
    Blob(RepoName, Digest),
    /// `/v2/<name>/blobs/uploads/`
    UploadStart(RepoName),
    /// `/v2/<name>/blobs/uploads/<id>`
    Upload(RepoName, String),
    /// `/v2/<name>/referrers/<digest>`
    Referrers(RepoName, Digest),
}

/// Parses the full request path (starting with `/v2/`).
pub fn parse(path: &str) -> Result<Route> {
    let rest = path.strip_prefix("/v2/").ok_or(RegistryError::NotFound)?;
    if rest == "_catalog" {
        return Ok(Route::Catalog);
    }
    let segments: Vec<&str> = rest.split('/').collect();
    let n = segments.len();
    let name_of = |count: usize| -> Result<RepoName> {
        if n <= count {
            return Err(RegistryError::NotFound);
        }
        RepoName::parse(&segments[..n - count].join("/"))
    };
    let last = segments[n - 1];
    let before = |i: usize| if n > i { segments[n - 1 - i] } else { "" };
    if before(2) == "blobs" && before(1) == "uploads" {
        let name = name_of(3)?;
        return Ok(if last.is_empty() {
            Route::UploadStart(name)
        } else {
            Route::Upload(name, last.to_owned())
        });
    }
    match before(1) {
        "tags" if last == "list" => Ok(Route::Tags(name_of(2)?)),
        "manifests" => {
            let name = name_of(2)?;
            Ok(match Reference::parse(last) {
                Ok(reference) => Route::Manifest(name, reference),
                Err(_) => Route::ImpossibleManifest(name, last.to_owned()),
            })
        }
        "blobs" if last == "uploads" => Ok(Route::UploadStart(name_of(2)?)),
        "blobs" => {
            let name = name_of(2)?;
            Ok(Route::Blob(name, Digest::parse(last)?))
        }
        "referrers" => {
            let name = name_of(2)?;
            Ok(Route::Referrers(name, Digest::parse(last)?))
        }
        _ => Err(RegistryError::NotFound),
    }
}

/// The access a request needs: the one place that decides it, before any
/// handler runs. Reads (GET, HEAD) need pull; uploads and manifest PUTs
/// need push, and so does an upload session's status or cancellation (the
/// session belongs to a push); DELETE of a manifest or blob needs delete.
pub fn access(route: &Route, method: &Method) -> Result<Access> {
    let (name, action) = match route {
        Route::Catalog => return Ok(Access::Catalog),
        Route::Tags(name) | Route::Referrers(name, _) => (name, Action::Pull),
        Route::Manifest(name, _) | Route::ImpossibleManifest(name, _) | Route::Blob(name, _) => (
            name,
            match *method {
                Method::GET | Method::HEAD => Action::Pull,
                Method::DELETE => Action::Delete,
                _ => Action::Push,
            },
        ),
        Route::UploadStart(name) | Route::Upload(name, _) => (name, Action::Push),
    };
    // The registry's grammar and the token's are the same; a name one
    // accepts and the other refuses is still refused.
    let repo = Repository::parse(name.as_str())
        .map_err(|_| RegistryError::NameInvalid(name.to_string()))?;
    Ok(Access::Repository(repo, action))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_route_maps_to_the_access_it_needs() {
        let d = d();
        let action = |path: &str, method: Method| match access(&parse(path).unwrap(), &method) {
            Ok(Access::Repository(repo, action)) => {
                assert_eq!(repo.as_str(), "rbee/w", "{path}");
                Some(action)
            }
            Ok(_) => None,
            Err(e) => panic!("{path}: {e}"),
        };
        use Action::*;
        for (path, method, expected) in [
            ("/v2/rbee/w/tags/list", Method::GET, Pull),
            (&format!("/v2/rbee/w/referrers/{d}"), Method::GET, Pull),
            ("/v2/rbee/w/manifests/1.0.0", Method::GET, Pull),
            ("/v2/rbee/w/manifests/1.0.0", Method::HEAD, Pull),
            ("/v2/rbee/w/manifests/1.0.0", Method::PUT, Push),
            ("/v2/rbee/w/manifests/1.0.0", Method::DELETE, Delete),
            (&format!("/v2/rbee/w/blobs/{d}"), Method::GET, Pull),
            (&format!("/v2/rbee/w/blobs/{d}"), Method::HEAD, Pull),
            (&format!("/v2/rbee/w/blobs/{d}"), Method::DELETE, Delete),
            ("/v2/rbee/w/blobs/uploads/", Method::POST, Push),
            ("/v2/rbee/w/blobs/uploads/abc", Method::PATCH, Push),
            ("/v2/rbee/w/blobs/uploads/abc", Method::PUT, Push),
            ("/v2/rbee/w/blobs/uploads/abc", Method::GET, Push),
            ("/v2/rbee/w/blobs/uploads/abc", Method::DELETE, Push),
        ] {
            assert_eq!(
                action(path, method.clone()),
                Some(expected),
                "{method} {path}"
            );
        }
        assert_eq!(
            access(&parse("/v2/_catalog").unwrap(), &Method::GET).unwrap(),
            Access::Catalog
        );
    }

    fn d() -> String {
        format!("sha256:{}", "e".repeat(64))
    }

    #[test]
    fn names_with_slashes_and_keyword_components() {
        let r = parse("/v2/a/blobs/b/manifests/latest").unwrap();
        assert!(matches!(r, Route::Manifest(ref n, _) if n.as_str() == "a/blobs/b"));
        let r = parse(&format!("/v2/x/manifests/y/blobs/{}", d())).unwrap();
        assert!(matches!(r, Route::Blob(ref n, _) if n.as_str() == "x/manifests/y"));
        assert!(matches!(
            parse("/v2/rbee/w/blobs/uploads/").unwrap(),
            Route::UploadStart(_)
        ));
        assert!(matches!(
            parse("/v2/rbee/w/blobs/uploads").unwrap(),
            Route::UploadStart(_)
        ));
        assert!(
            matches!(parse("/v2/rbee/w/blobs/uploads/abc").unwrap(), Route::Upload(_, ref id) if id == "abc")
        );
        assert!(matches!(
            parse("/v2/rbee/w/tags/list").unwrap(),
            Route::Tags(_)
        ));
        assert_eq!(parse("/v2/_catalog").unwrap(), Route::Catalog);
    }

    #[test]
    fn hostile_paths_are_refused() {
        for p in [
            "/v2/../manifests/x",
            "/v2/a//b/manifests/x",
            "/v2/A/manifests/x",
            "/v2/a//manifests/x",
        ] {
            assert!(
                matches!(parse(p), Err(RegistryError::NameInvalid(_))),
                "{p}"
            );
        }
        assert!(matches!(
            parse("/v2/a/blobs/sha256:..%2F..%2Fx"),
            Err(RegistryError::DigestInvalid(_))
        ));
        // Unencoded, the dots split the digest into segments: still refused.
        assert!(parse("/v2/a/blobs/sha256:../../x").is_err());
        assert!(matches!(
            parse("/v2/manifests/x"),
            Err(RegistryError::NotFound)
        ));
        assert!(matches!(
            parse("/v2/a/unknown/x"),
            Err(RegistryError::NotFound)
        ));
    }

    #[test]
    fn references_no_manifest_can_have_are_kept_for_the_handler() {
        for reference in [".INVALID_MANIFEST_NAME", "-x", "sha256:short"] {
            let route = parse(&format!("/v2/rbee/w/manifests/{reference}")).unwrap();
            assert!(
                matches!(route, Route::ImpossibleManifest(ref n, ref r) if n.as_str() == "rbee/w" && r == reference),
                "{route:?}"
            );
            assert_eq!(
                access(&route, &Method::GET).unwrap(),
                access(&parse("/v2/rbee/w/manifests/x").unwrap(), &Method::GET).unwrap()
            );
        }
    }
}
