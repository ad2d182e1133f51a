//! The pusher's error type and the exit code each kind maps to.

/// Everything publishing can fail with.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum PushError {
    /// The release files are invalid (metadata, PKGBUILD, platform builds).
    #[error("{0}")]
    Invalid(String),
    /// The version exists with different content and `--force` was not given.
    #[error("{0}")]
    Conflict(String),
    /// The registry refused what we sent (4xx other than auth).
    #[error("{0}")]
    Rejected(String),
    /// The registry could not be reached or kept failing.
    #[error("{0}")]
    Registry(String),
    /// Credentials are missing or refused.
    #[error("{0}")]
    Auth(String),
    /// A staged release is not complete (a declared platform was not
    /// staged), or nothing is staged.
    #[error("{0}")]
    Incomplete(String),
    /// A local file could not be read or written.
    #[error("file error: {0}")]
    Io(#[from] std::io::Error),
}

impl PushError {
    /// The process exit code, as documented in `docs/pusher.md`.
    pub fn exit_code(&self) -> i32 {
        match self {
            PushError::Invalid(_) => 3,
            PushError::Conflict(_) => 4,
            PushError::Rejected(_) | PushError::Registry(_) => 5,
            PushError::Auth(_) => 6,
            PushError::Incomplete(_) => 7,
            PushError::Io(_) => 1,
        }
    }
}
