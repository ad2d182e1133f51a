//! What the domain reports while it works: how each cache lookup was
//! answered, and releases left out of lists. The domain owns these
//! definitions and calls a [`CatalogObserver`]; `crate::metrics` implements
//! it as Prometheus counters, so the domain does not know about metrics
//! and each server counts only the lookups of its own catalog.

/// How the upstream cache answered one lookup; each lookup counts once.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CacheOutcome {
    /// A fresh cached value; the registry was not asked.
    Hit,
    /// The registry was asked (and answered, or failed with nothing cached
    /// to stand in).
    Miss,
    /// Old data served because the registry was down or rate-limiting.
    Stale,
}

impl CacheOutcome {
    /// Every outcome.
    pub const ALL: [CacheOutcome; 3] = [CacheOutcome::Hit, CacheOutcome::Miss, CacheOutcome::Stale];
}

/// Why a release was left out of a list (`/workers`, `/v1/workers`,
/// `/v1/workers/:id/versions`) while the rest was served.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SkipReason {
    /// Gone or invalid in the registry (e.g. its tag deleted).
    Unreadable,
    /// The registry failed or rate-limited, with nothing cached for it.
    Unavailable,
    /// Not read before the list's deadline.
    Timeout,
    /// Past the list's cap ([`crate::domain::catalog::MAX_LISTED`]).
    OverLimit,
}

impl SkipReason {
    /// Every reason.
    pub const ALL: [SkipReason; 4] = [
        SkipReason::Unreadable,
        SkipReason::Unavailable,
        SkipReason::Timeout,
        SkipReason::OverLimit,
    ];
}

/// Receives the domain's reports. Calls are made on the request path, so
/// implementations must be cheap and must not block.
pub trait CatalogObserver: Send + Sync + std::fmt::Debug {
    /// One cache lookup was answered so.
    fn cache_lookup(&self, outcome: CacheOutcome);
    /// `n` releases were left out of a list for `reason`.
    fn list_skipped(&self, reason: SkipReason, n: u64);
}

/// An observer that ignores everything (unit tests, tools).
#[derive(Debug, Default, Clone, Copy)]
pub struct Unobserved;

impl CatalogObserver for Unobserved {
    fn cache_lookup(&self, _: CacheOutcome) {}
    fn list_skipped(&self, _: SkipReason, _: u64) {}
}
