//! The domain's error type: what looking up a worker or a release can fail
//! with, by meaning. `crate::error` maps it to a status and a JSON body;
//! nothing here knows about HTTP.

use crate::domain::upstream::UpstreamError;

/// Everything a catalog lookup can fail with.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum CatalogError {
    /// No worker with this id is in the catalog index.
    #[error("no worker with this id is published")]
    WorkerNotFound,
    /// The worker has no such version.
    #[error("version `{0}` of this worker is not published")]
    VersionNotFound(String),
    /// A version asked for is neither `latest` nor a semver version.
    #[error("`{version}` is not a semver version")]
    BadVersion {
        /// The version as asked for.
        version: String,
        /// Why it does not parse.
        #[source]
        source: semver::Error,
    },
    /// The registry failed (missing, rate-limited, down, invalid data)
    /// and nothing cached could stand in.
    #[error(transparent)]
    Upstream(#[from] UpstreamError),
}

impl CatalogError {
    /// True when the registry itself failed or rate-limited (as opposed to
    /// the content being gone or invalid): lists then mark themselves stale
    /// and pass the failure on when nothing at all could be read.
    pub fn is_unavailable(&self) -> bool {
        matches!(
            self,
            CatalogError::Upstream(
                UpstreamError::Unavailable(_) | UpstreamError::RateLimited { .. }
            )
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::error::Error as _;

    #[test]
    fn a_bad_version_keeps_its_cause() {
        let source = semver::Version::parse("1.x").unwrap_err();
        let e = CatalogError::BadVersion {
            version: "1.x".into(),
            source,
        };
        assert_eq!(e.to_string(), "`1.x` is not a semver version");
        assert!(e.source().is_some(), "the semver error is the source");
    }
}
