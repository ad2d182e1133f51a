//! The store's one error type.

/// Everything a store operation can fail with. Callers at an HTTP edge map
/// [`StoreError::NotFound`] and [`StoreError::Invalid`] to 4xx and the rest
/// to 500 (the detail goes to the log, not to the client).
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum StoreError {
    /// The URL is neither `sqlite:` nor `postgres://`. Only the scheme is
    /// kept: a PostgreSQL URL may carry a password.
    #[error("unsupported database URL scheme `{scheme}`: use sqlite://PATH or postgres://...")]
    UnsupportedUrl {
        /// What came before `:` in the URL.
        scheme: String,
    },
    /// The database could not be opened or reached.
    #[error("cannot open the database")]
    Connect(#[source] sqlx::Error),
    /// The schema could not be brought up to date.
    #[error("cannot migrate the database")]
    Migrate(#[source] sqlx::migrate::MigrateError),
    /// A query failed (connection lost, lock timeout, constraint...).
    #[error("database query failed")]
    Query(#[from] sqlx::Error),
    /// No record of this kind with this id.
    #[error("no {kind} with id `{id}`")]
    NotFound {
        /// `license`, `publisher key`, ...
        kind: &'static str,
        /// The id asked for.
        id: String,
    },
    /// Input that cannot become a record: an empty owner, a bad grant...
    /// The text is a sentence for the person who typed it.
    #[error("{0}")]
    Invalid(String),
    /// A stored row that this version cannot read (e.g. grants that are
    /// not the JSON it writes).
    #[error("corrupt {what} in the database")]
    Corrupt {
        /// Which column of which table.
        what: &'static str,
        /// Why it could not be read.
        #[source]
        source: Box<dyn std::error::Error + Send + Sync>,
    },
    /// The operating system gave no randomness for a new key.
    #[error("no randomness for a new key")]
    Random(#[source] getrandom::Error),
}
