//! The crate's one error type. The HTTP edges (the token route, the
//! registry's gate) map it to status codes; nothing here knows HTTP.

/// Everything that can go wrong with scopes, keys and tokens.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum AuthError {
    /// A requested scope is malformed (the client's fault: 400).
    #[error("invalid scope: {0}")]
    BadScope(String),
    /// A presented token is not one of ours, or no longer valid. The
    /// reason is for logs; clients only learn that the token was refused.
    #[error("token rejected: {0}")]
    Rejected(String),
    /// A key file could not be read, written or understood.
    #[error("signing key {path}: {message}")]
    Key {
        /// The file concerned.
        path: String,
        /// What went wrong.
        message: String,
    },
    /// A JWKS document is malformed or holds keys we cannot use.
    #[error("JWKS: {0}")]
    Jwks(String),
    /// Signing failed (a broken key; never the caller's fault).
    #[error("signing a token: {0}")]
    Sign(String),
}
