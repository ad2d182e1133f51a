//! The client's error type: callers can tell "not found", "no build for
//! this platform", "license required", a bad download and network trouble
//! apart, and act on each.

/// Everything finding, downloading or installing a worker can fail with.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ClientError {
    /// The worker or version does not exist.
    #[error("not found: {0}")]
    NotFound(String),
    /// No published version satisfies the requirement.
    #[error("no version of {worker} matches `{requirement}` (published: {})", published.join(", "))]
    NoMatchingVersion {
        /// The worker.
        worker: String,
        /// What was asked for.
        requirement: String,
        /// What exists.
        published: Vec<String>,
    },
    /// The version was not built for this platform.
    #[error("no build for {platform}; available: {}", available.join(", "))]
    NoBuildForPlatform {
        /// The platform asked for.
        platform: String,
        /// The platforms built.
        available: Vec<String>,
    },
    /// The worker needs a license key (none given, or it was refused).
    #[error("this worker requires a license{}", purchase_url.as_ref().map(|u| format!("; buy one at {u}")).unwrap_or_default())]
    LicenseRequired {
        /// Where to buy one, when the server says.
        purchase_url: Option<String>,
    },
    /// The catalog or registry could not be reached.
    #[error("network error: {0}")]
    Network(String),
    /// The server answered an error.
    #[error("server error {status}: {message}")]
    Server {
        /// HTTP status.
        status: u16,
        /// The server's message.
        message: String,
    },
    /// The download does not match the published checksum.
    #[error("checksum mismatch: expected {expected}, got {actual}")]
    Checksum {
        /// The published checksum.
        expected: String,
        /// What the download hashes to.
        actual: String,
    },
    /// The archive tries to write outside its target or holds what a
    /// worker never needs (devices, oversize entries).
    #[error("unsafe archive: {0}")]
    UnsafeArchive(String),
    /// A bad argument (platform name, version requirement).
    #[error("{0}")]
    Invalid(String),
    /// A local file operation failed.
    #[error("file error: {0}")]
    Io(#[from] std::io::Error),
}

impl From<reqwest::Error> for ClientError {
    fn from(e: reqwest::Error) -> Self {
        ClientError::Network(e.to_string())
    }
}
