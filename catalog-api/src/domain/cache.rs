//! A read-through cache for upstream lookups.
//!
//! - entries live for a TTL per kind (catalog index 5 min, releases 10 min);
//! - a fetch runs on its own task under the upstream deadline, and every
//!   caller of a key waits on that one fetch (single flight); a caller
//!   that goes away does not cancel it for the others;
//! - a slow key blocks nobody else: no lock is held across a fetch, and
//!   when a stale copy exists, callers wait at most [`STALE_GRACE`] from
//!   the start of the refresh, then get the stale copy while the refresh
//!   goes on;
//! - when the upstream is down, too slow, rate-limits, or sends invalid
//!   data, the last good value is served, marked stale, and is not
//!   replaced; a rate-limited upstream is not asked again before its
//!   back-off ends, with or without a stale copy (then the caller gets
//!   the rate-limit error and its remaining `Retry-After` at once);
//! - `invalidate` drops entries at once (push events); `shutdown` ends
//!   every running fetch;
//! - every lookup is reported as a hit, a miss or stale to the cache's
//!   [`CatalogObserver`] (the server's metrics count them).

use std::collections::HashMap;
use std::future::Future;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures_util::FutureExt;
use futures_util::future::{BoxFuture, Shared};
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use crate::domain::observe::{CacheOutcome, CatalogObserver, Unobserved};
use crate::domain::upstream::UpstreamError;

/// How long a caller with a stale copy at hand waits for a refresh,
/// counted from the refresh's start: a refresh that answers quickly is
/// served fresh; a slow one is not waited for.
pub const STALE_GRACE: Duration = Duration::from_millis(500);

/// A cached value, and whether it is past its TTL (served because the
/// upstream failed or is slow).
#[derive(Debug, Clone)]
pub struct Cached<V> {
    /// The value.
    pub value: Arc<V>,
    /// True when this is old data served because the upstream failed.
    pub stale: bool,
}

type Fetch<V> = Shared<BoxFuture<'static, Result<Arc<V>, UpstreamError>>>;

struct Refresh<V> {
    started: Instant,
    result: Fetch<V>,
}

struct Slot<V> {
    value: Option<(Arc<V>, Instant)>,
    /// Do not call the upstream before this (after a 429).
    quiet_until: Option<Instant>,
    /// The fetch running for this key, if any.
    refresh: Option<Refresh<V>>,
}

type SlotRef<V> = Arc<Mutex<Slot<V>>>;

/// Values by key, each kind with its own TTL.
pub struct Cache<V> {
    ttl: Duration,
    /// The longest a fetch may take.
    deadline: Duration,
    cancel: CancellationToken,
    /// Told how each lookup was answered.
    observer: Arc<dyn CatalogObserver>,
    // Std mutexes, never held across an await: the outer one to find a
    // key's slot, the slot's own to read or start its fetch.
    slots: Mutex<HashMap<String, SlotRef<V>>>,
}

impl<V> std::fmt::Debug for Cache<V> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Cache")
            .field("ttl", &self.ttl)
            .field("deadline", &self.deadline)
            .finish_non_exhaustive()
    }
}

/// Past this many keys, the cache drops everything; it bounds memory
/// against callers that ask for endless distinct keys.
const MAX_KEYS: usize = 50_000;

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

/// What a caller does after looking at the slot.
enum Next<V> {
    Done(Result<Cached<V>, UpstreamError>),
    Wait {
        fetch: Fetch<V>,
        stale: Option<Arc<V>>,
        until: Instant,
    },
}

impl<V: Send + Sync + 'static> Cache<V> {
    /// An empty cache whose entries are fresh for `ttl`, whose fetches
    /// take at most `deadline`, and end early when `cancel` fires. Its
    /// lookups are reported nowhere until [`Cache::observed_by`].
    pub fn new(ttl: Duration, deadline: Duration, cancel: CancellationToken) -> Self {
        Cache {
            ttl,
            deadline,
            cancel,
            observer: Arc::new(Unobserved),
            slots: Mutex::new(HashMap::new()),
        }
    }

    /// This cache, reporting each lookup's outcome to `observer`.
    pub fn observed_by(mut self, observer: Arc<dyn CatalogObserver>) -> Self {
        self.observer = observer;
        self
    }

    fn record(&self, outcome: CacheOutcome) {
        self.observer.cache_lookup(outcome);
    }

    fn slot(&self, key: &str) -> SlotRef<V> {
        let mut slots = lock(&self.slots);
        if let Some(s) = slots.get(key) {
            return s.clone();
        }
        if slots.len() >= MAX_KEYS {
            slots.clear();
        }
        slots
            .entry(key.to_owned())
            .or_insert_with(|| {
                Arc::new(Mutex::new(Slot {
                    value: None,
                    quiet_until: None,
                    refresh: None,
                }))
            })
            .clone()
    }

    /// The value of `key`: fresh from the cache, else from one shared
    /// fetch, else the stale value when the fetch failed, is slow, or
    /// brought invalid data.
    pub async fn get<F, Fut>(&self, key: &str, fetch: F) -> Result<Cached<V>, UpstreamError>
    where
        F: FnOnce() -> Fut,
        Fut: Future<Output = Result<V, UpstreamError>> + Send + 'static,
    {
        let slot = self.slot(key);
        let next = self.look(key, &slot, fetch);
        let (fetch, stale, until) = match next {
            Next::Done(result) => return result,
            Next::Wait {
                fetch,
                stale,
                until,
            } => (fetch, stale, until),
        };
        let Some(stale) = stale else {
            // Nothing to fall back on: wait for the fetch (bounded by its
            // deadline) and pass its answer on.
            let result = fetch.await;
            self.record(CacheOutcome::Miss);
            return result.map(|value| Cached {
                value,
                stale: false,
            });
        };
        let serve_stale = |why: &dyn std::fmt::Display| {
            tracing::debug!(key, %why, "serving stale data");
            self.record(CacheOutcome::Stale);
            Ok(Cached {
                value: stale.clone(),
                stale: true,
            })
        };
        match tokio::time::timeout_at(until, fetch).await {
            Ok(Ok(value)) => {
                self.record(CacheOutcome::Miss);
                Ok(Cached {
                    value,
                    stale: false,
                })
            }
            // Gone upstream: say so rather than serve what no longer exists.
            Ok(Err(UpstreamError::NotFound)) => {
                self.record(CacheOutcome::Miss);
                Err(UpstreamError::NotFound)
            }
            Ok(Err(e)) => serve_stale(&e),
            Err(_) => serve_stale(&"the refresh is still running"),
        }
    }

    /// Decides, under the slot's lock, what this caller does; starts the
    /// fetch when none runs.
    fn look<F, Fut>(&self, key: &str, slot: &SlotRef<V>, fetch: F) -> Next<V>
    where
        F: FnOnce() -> Fut,
        Fut: Future<Output = Result<V, UpstreamError>> + Send + 'static,
    {
        let mut s = lock(slot);
        let now = Instant::now();
        if let Some((value, at)) = &s.value
            && now.duration_since(*at) < self.ttl
        {
            self.record(CacheOutcome::Hit);
            return Next::Done(Ok(Cached {
                value: value.clone(),
                stale: false,
            }));
        }
        if let Some(until) = s.quiet_until
            && now < until
        {
            self.record(CacheOutcome::Stale);
            return Next::Done(match &s.value {
                Some((value, _)) => Ok(Cached {
                    value: value.clone(),
                    stale: true,
                }),
                None => Err(UpstreamError::RateLimited {
                    // Whole seconds, rounded up, for `Retry-After`.
                    retry_after: Duration::from_secs((until - now).as_secs_f64().ceil() as u64),
                }),
            });
        }
        let refresh = match &s.refresh {
            Some(r) => (r.started, r.result.clone()),
            None => {
                let result = self.spawn_fetch(key, slot.clone(), fetch());
                s.refresh = Some(Refresh {
                    started: now,
                    result: result.clone(),
                });
                (now, result)
            }
        };
        Next::Wait {
            fetch: refresh.1,
            stale: s.value.as_ref().map(|(v, _)| v.clone()),
            until: refresh.0 + STALE_GRACE,
        }
    }

    /// Runs `fetch` on its own task under the deadline and the shutdown
    /// token, and stores what it brings.
    fn spawn_fetch(
        &self,
        key: &str,
        slot: SlotRef<V>,
        fetch: impl Future<Output = Result<V, UpstreamError>> + Send + 'static,
    ) -> Fetch<V> {
        let (deadline, cancel, key) = (self.deadline, self.cancel.clone(), key.to_owned());
        let task = tokio::spawn(async move {
            let result = tokio::select! {
                r = tokio::time::timeout(deadline, fetch) => r.unwrap_or_else(|_| {
                    Err(UpstreamError::Unavailable(format!(
                        "the registry did not answer within {deadline:?}"
                    )))
                }),
                () = cancel.cancelled() => {
                    Err(UpstreamError::Unavailable("the catalog is shutting down".into()))
                }
            };
            let result = result.map(Arc::new);
            let mut s = lock(&slot);
            s.refresh = None;
            match &result {
                Ok(v) => {
                    s.value = Some((v.clone(), Instant::now()));
                    s.quiet_until = None;
                }
                Err(UpstreamError::RateLimited { retry_after }) => {
                    s.quiet_until = Some(Instant::now() + *retry_after);
                }
                Err(UpstreamError::NotFound) => s.value = None,
                Err(e @ UpstreamError::Invalid(_)) if s.value.is_some() => {
                    tracing::warn!(%key, error = %e, "invalid upstream data; keeping the last good copy");
                }
                Err(e) => tracing::warn!(%key, error = %e, "upstream fetch failed"),
            }
            result
        });
        async move {
            task.await.unwrap_or_else(|e| {
                Err(UpstreamError::Unavailable(format!(
                    "the fetch task failed: {e}"
                )))
            })
        }
        .boxed()
        .shared()
    }

    /// Drops every entry whose key starts with `prefix` ("" drops all).
    pub fn invalidate(&self, prefix: &str) {
        lock(&self.slots).retain(|k, _| !k.starts_with(prefix));
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicUsize, Ordering};

    fn cache<V: Send + Sync + 'static>(ttl: Duration) -> Cache<V> {
        Cache::new(ttl, Duration::from_secs(5), CancellationToken::new())
    }

    #[tokio::test]
    async fn concurrent_misses_fetch_once() {
        let cache = Arc::new(cache::<u32>(Duration::from_secs(60)));
        let calls = Arc::new(AtomicUsize::new(0));
        let mut tasks = Vec::new();
        for _ in 0..16 {
            let (cache, calls) = (cache.clone(), calls.clone());
            tasks.push(tokio::spawn(async move {
                cache
                    .get("k", || async move {
                        calls.fetch_add(1, Ordering::SeqCst);
                        tokio::time::sleep(Duration::from_millis(20)).await;
                        Ok(7)
                    })
                    .await
                    .unwrap()
            }));
        }
        for t in tasks {
            assert_eq!(*t.await.unwrap().value, 7);
        }
        assert_eq!(calls.load(Ordering::SeqCst), 1);
    }

    #[tokio::test]
    async fn stale_value_is_served_when_upstream_fails_and_429_quiets_it() {
        // A zero TTL makes every entry expired at once.
        let cache0 = cache::<u32>(Duration::ZERO);
        cache0.get("k", || async { Ok(1) }).await.unwrap();
        let got = cache0
            .get("k", || async {
                Err(UpstreamError::Unavailable("down".into()))
            })
            .await
            .unwrap();
        assert!(got.stale);
        assert_eq!(*got.value, 1);
        let got = cache0
            .get("k", || async {
                Err(UpstreamError::RateLimited {
                    retry_after: Duration::from_secs(60),
                })
            })
            .await
            .unwrap();
        assert!(got.stale);
        // Within the back-off the upstream is not called at all.
        let got = cache0
            .get("k", || async { panic!("called during back-off") })
            .await
            .unwrap();
        assert!(got.stale);
        // Not found is not an availability problem: it is passed on.
        let fresh = cache::<u32>(Duration::ZERO);
        assert!(
            fresh
                .get("k", || async { Err(UpstreamError::NotFound) })
                .await
                .is_err()
        );
    }

    #[tokio::test]
    async fn a_429_with_nothing_cached_backs_off_too() {
        let cache = cache::<u32>(Duration::ZERO);
        let calls = Arc::new(AtomicUsize::new(0));
        for _ in 0..5 {
            let calls = calls.clone();
            let got = cache
                .get("k", || async move {
                    calls.fetch_add(1, Ordering::SeqCst);
                    Err(UpstreamError::RateLimited {
                        retry_after: Duration::from_secs(30),
                    })
                })
                .await;
            match got {
                Err(UpstreamError::RateLimited { retry_after }) => {
                    assert!(retry_after > Duration::from_secs(28), "{retry_after:?}");
                    assert!(retry_after <= Duration::from_secs(30), "{retry_after:?}");
                }
                other => panic!("{other:?}"),
            }
        }
        assert_eq!(
            calls.load(Ordering::SeqCst),
            1,
            "asked once, then left alone"
        );
    }

    #[tokio::test]
    async fn invalid_data_does_not_replace_the_good_copy() {
        let cache = cache::<u32>(Duration::ZERO);
        cache.get("k", || async { Ok(1) }).await.unwrap();
        let got = cache
            .get("k", || async { Err(UpstreamError::Invalid("junk".into())) })
            .await
            .unwrap();
        assert_eq!((*got.value, got.stale), (1, true));
        let got = cache.get("k", || async { Ok(2) }).await.unwrap();
        assert_eq!((*got.value, got.stale), (2, false));
    }

    #[tokio::test(start_paused = true)]
    async fn a_slow_refresh_serves_the_stale_copy_and_other_keys_at_once() {
        let cache = Arc::new(cache::<u32>(Duration::ZERO));
        cache.get("slow", || async { Ok(1) }).await.unwrap();
        let started = Instant::now();
        let got = cache
            .get("slow", || async {
                tokio::time::sleep(Duration::from_secs(3600)).await;
                Ok(2)
            })
            .await
            .unwrap();
        assert_eq!((*got.value, got.stale), (1, true));
        assert_eq!(started.elapsed(), STALE_GRACE);
        // Joining the running refresh later: stale at once.
        let joined = Instant::now();
        let got = cache
            .get("slow", || async { panic!("a second fetch") })
            .await
            .unwrap();
        assert_eq!((*got.value, got.stale), (1, true));
        assert_eq!(joined.elapsed(), Duration::ZERO);
        // Another key is not held up.
        let got = cache.get("other", || async { Ok(3) }).await.unwrap();
        assert_eq!(*got.value, 3);
        assert_eq!(joined.elapsed(), Duration::ZERO);
    }

    #[tokio::test(start_paused = true)]
    async fn fetches_end_at_the_deadline_and_at_shutdown() {
        let cancel = CancellationToken::new();
        let cache = Arc::new(Cache::<u32>::new(
            Duration::ZERO,
            Duration::from_secs(5),
            cancel.clone(),
        ));
        let started = Instant::now();
        let got = cache
            .get("k", std::future::pending::<Result<u32, UpstreamError>>)
            .await;
        assert!(matches!(got, Err(UpstreamError::Unavailable(_))), "{got:?}");
        assert_eq!(started.elapsed(), Duration::from_secs(5));
        let waiting = {
            let cache = cache.clone();
            tokio::spawn(async move {
                cache
                    .get("k", std::future::pending::<Result<u32, UpstreamError>>)
                    .await
            })
        };
        tokio::time::sleep(Duration::from_secs(1)).await;
        cancel.cancel();
        let got = waiting.await.unwrap();
        assert!(matches!(got, Err(UpstreamError::Unavailable(_))), "{got:?}");
        assert_eq!(started.elapsed(), Duration::from_secs(6));
    }

    /// Counts what the cache reports.
    #[derive(Debug, Default)]
    struct Counts(Mutex<Vec<CacheOutcome>>);

    impl CatalogObserver for Counts {
        fn cache_lookup(&self, outcome: CacheOutcome) {
            lock(&self.0).push(outcome);
        }
        fn list_skipped(&self, _: crate::domain::observe::SkipReason, _: u64) {}
    }

    #[tokio::test]
    async fn each_lookup_is_reported_to_the_observer_once() {
        let counts = Arc::new(Counts::default());
        let expired = cache::<u32>(Duration::ZERO).observed_by(counts.clone());
        expired.get("k", || async { Ok(1) }).await.unwrap();
        expired
            .get("k", || async {
                Err(UpstreamError::Unavailable("down".into()))
            })
            .await
            .unwrap();
        let fresh = cache::<u32>(Duration::from_secs(60)).observed_by(counts.clone());
        fresh.get("k", || async { Ok(1) }).await.unwrap();
        fresh.get("k", || async { Ok(2) }).await.unwrap();
        assert_eq!(
            *lock(&counts.0),
            [
                CacheOutcome::Miss,
                CacheOutcome::Stale,
                CacheOutcome::Miss,
                CacheOutcome::Hit
            ]
        );
    }

    #[tokio::test]
    async fn invalidate_drops_by_prefix() {
        let cache = cache::<u32>(Duration::from_secs(60));
        cache.get("release/a/1", || async { Ok(1) }).await.unwrap();
        cache.get("release/b/1", || async { Ok(2) }).await.unwrap();
        cache.invalidate("release/a/");
        let a = cache.get("release/a/1", || async { Ok(10) }).await.unwrap();
        let b = cache.get("release/b/1", || async { Ok(20) }).await.unwrap();
        assert_eq!(
            (*a.value, *b.value),
            (10, 2),
            "only the invalidated prefix is fetched again"
        );
    }
}
