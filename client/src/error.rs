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
    /// The worker needs a license key and none was given (or a download
    /// URL was refused).
    #[error("this worker requires a license key and none was given{}", purchase_url.as_ref().map(|u| format!("; buy one at {u}")).unwrap_or_default())]
    LicenseRequired {
        /// Where to buy one, when the server says.
        purchase_url: Option<String>,
    },
    /// The license key given does not unlock this worker or version: it is
    /// unknown, revoked, expired, or for other workers (the catalog does not
    /// say which).
    #[error("the license key given does not unlock this worker (unknown, revoked, expired or for other workers){}", purchase_url.as_ref().map(|u| format!("; buy one at {u}")).unwrap_or_default())]
    LicenseNotAccepted {
        /// Where to buy one, when the server says.
        purchase_url: Option<String>,
    },
    /// The catalog or registry could not be reached, or the connection
    /// broke.
    #[error("network error: {0}")]
    Network(String),
    /// The catalog or registry stopped answering: no connection within
    /// the connect timeout, no byte within the read-idle timeout, or the
    /// whole download took longer than the total timeout. A download
    /// stopped this way resumes on the next attempt.
    #[error("timed out: {0}")]
    Timeout(String),
    /// The catalog or registry answered something that breaks its grammar
    /// (a version that is not semver, a digest that is not
    /// `sha256:<64 hex>`, a file name with a `/`) or that does not match
    /// what was asked (another worker, version or platform). Nothing was
    /// written.
    #[error("refused the answer of {source_name}: {message}")]
    BadAnswer {
        /// `catalog` or `registry`.
        source_name: &'static str,
        /// What was wrong.
        message: String,
    },
    /// The download is larger than the installer accepts.
    #[error("the build is {size} bytes, more than the {max} bytes accepted")]
    TooLarge {
        /// The size announced.
        size: u64,
        /// The maximum (`Limits::max_download`).
        max: u64,
    },
    /// Not enough free disk space for the download.
    #[error("not enough disk space: {needed} bytes needed, {available} available")]
    NoSpace {
        /// Bytes still to download.
        needed: u64,
        /// Bytes free for this user on the destination's file system.
        available: u64,
    },
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
    /// The build's publisher signature was refused against the trusted
    /// keys (`trust.rs`); nothing was installed.
    #[error("signature refused: {0}")]
    Signature(#[from] crate::trust::SignatureRefusal),
    /// A bad argument (platform name, version requirement).
    #[error("{0}")]
    Invalid(String),
    /// A local file operation failed.
    #[error("file error: {0}")]
    Io(#[from] std::io::Error),
}

impl From<reqwest::Error> for ClientError {
    fn from(e: reqwest::Error) -> Self {
        // reqwest's own message stops at "error sending request"; the
        // cause (refused, reset, timed out) is what a person needs.
        let mut message = e.to_string();
        let mut source = std::error::Error::source(&e);
        while let Some(cause) = source {
            message.push_str(&format!(": {cause}"));
            source = cause.source();
        }
        if let Some(hint) = hint_for(&message) {
            message.push_str(hint);
        }
        if e.is_timeout() {
            ClientError::Timeout(message)
        } else {
            ClientError::Network(message)
        }
    }
}

/// A hint for the connection errors people meet most, recognised in the
/// text of an error and its causes.
pub(crate) fn hint_for(message: &str) -> Option<&'static str> {
    if message.contains("InvalidContentType") || message.contains("corrupt message") {
        // rustls's words when the server answered in plain HTTP.
        Some(" (the server does not speak TLS: is it plain HTTP? try an http:// URL)")
    } else if message.contains("dns error") || message.contains("failed to lookup address") {
        Some(" (the host name does not resolve)")
    } else if message.contains("Connection refused") {
        Some(" (nothing listens there: is the server running, and the port right?)")
    } else {
        None
    }
}

impl ClientError {
    /// A value from the catalog that cannot be trusted.
    pub(crate) fn catalog(message: impl Into<String>) -> Self {
        ClientError::BadAnswer {
            source_name: "catalog",
            message: message.into(),
        }
    }

    /// A value from the registry that cannot be trusted.
    pub(crate) fn registry(message: impl Into<String>) -> Self {
        ClientError::BadAnswer {
            source_name: "registry",
            message: message.into(),
        }
    }

    /// Whether the catalog could not be reached at all, so the registry
    /// fallback is worth a try.
    ///
    /// A catalog answering 502, 503 or 504 (its proxy or its registry is
    /// down) is as good as unreachable; any other answer is not.
    pub fn is_unreachable(&self) -> bool {
        matches!(
            self,
            ClientError::Network(_)
                | ClientError::Timeout(_)
                | ClientError::Server {
                    status: 502..=504,
                    ..
                }
        )
    }
}
