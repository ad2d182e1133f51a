//! Turning a `/v2/...` path into a route. Names may contain `/`, so the
//! path is read from its last segments; everything before them is the name,
//! which then has to pass the name grammar.

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
            Ok(Route::Manifest(name, Reference::parse(last)?))
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

#[cfg(test)]
mod tests {
    use super::*;

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
}
