//! A read-through cache for upstream lookups.
//!
//! - entries live for a TTL per kind (catalog index 5 min, releases 10 min);
//! - concurrent misses of one key make ONE upstream fetch (the others wait
//!   on the key's lock and read what it stored);
//! - when the upstream is down or rate-limits, the last good value is
//!   served, marked stale, and a rate-limited upstream is not asked again
//!   before its back-off ends;
//! - `invalidate` drops entries at once (push events);
//! - every lookup is counted as a hit, a miss or stale in the metrics of
//!   the request it serves ([`crate::metrics`]).

use std::collections::HashMap;
use std::future::Future;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use crate::metrics::{CacheOutcome, record_cache};
use crate::upstream::UpstreamError;

/// A cached value, and whether it is past its TTL (served because the
/// upstream failed).
#[derive(Debug, Clone)]
pub struct Cached<V> {
    /// The value.
    pub value: Arc<V>,
    /// True when this is old data served because the upstream failed.
    pub stale: bool,
}

#[derive(Debug)]
struct Slot<V> {
    value: Option<(Arc<V>, Instant)>,
    /// Do not call the upstream before this (after a 429).
    quiet_until: Option<Instant>,
}

/// Values by key, each kind with its own TTL.
#[derive(Debug)]
pub struct Cache<V> {
    ttl: Duration,
    // The outer lock is a std mutex held only to find a key's slot; the
    // per-key Tokio mutex is held across the upstream fetch, which is what
    // makes concurrent misses wait for one fetch.
    slots: Mutex<HashMap<String, Arc<tokio::sync::Mutex<Slot<V>>>>>,
}

/// Past this many keys, the cache drops everything; it bounds memory
/// against callers that ask for endless distinct keys.
const MAX_KEYS: usize = 50_000;

impl<V> Cache<V> {
    /// An empty cache whose entries are fresh for `ttl`.
    pub fn new(ttl: Duration) -> Self {
        Cache {
            ttl,
            slots: Mutex::new(HashMap::new()),
        }
    }

    fn slot(&self, key: &str) -> Arc<tokio::sync::Mutex<Slot<V>>> {
        let mut slots = self.slots.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(s) = slots.get(key) {
            return s.clone();
        }
        if slots.len() >= MAX_KEYS {
            slots.clear();
        }
        slots
            .entry(key.to_owned())
            .or_insert_with(|| {
                Arc::new(tokio::sync::Mutex::new(Slot {
                    value: None,
                    quiet_until: None,
                }))
            })
            .clone()
    }

    /// The value of `key`: fresh from the cache, else fetched (once, however
    /// many callers wait), else the stale value when the fetch failed for
    /// availability reasons.
    pub async fn get<F, Fut>(&self, key: &str, fetch: F) -> Result<Cached<V>, UpstreamError>
    where
        F: FnOnce() -> Fut,
        Fut: Future<Output = Result<V, UpstreamError>>,
    {
        let slot = self.slot(key);
        let mut slot = slot.lock().await;
        let now = Instant::now();
        if let Some((value, at)) = &slot.value
            && now.duration_since(*at) < self.ttl
        {
            record_cache(CacheOutcome::Hit);
            return Ok(Cached {
                value: value.clone(),
                stale: false,
            });
        }
        if let (Some(until), Some((value, _))) = (slot.quiet_until, &slot.value)
            && now < until
        {
            record_cache(CacheOutcome::Stale);
            return Ok(Cached {
                value: value.clone(),
                stale: true,
            });
        }
        match fetch().await {
            Ok(v) => {
                record_cache(CacheOutcome::Miss);
                let v = Arc::new(v);
                slot.value = Some((v.clone(), Instant::now()));
                slot.quiet_until = None;
                Ok(Cached {
                    value: v,
                    stale: false,
                })
            }
            Err(e) => {
                if let UpstreamError::RateLimited { retry_after } = &e {
                    slot.quiet_until = Some(Instant::now() + *retry_after);
                }
                match (&e, &slot.value) {
                    (
                        UpstreamError::RateLimited { .. } | UpstreamError::Unavailable(_),
                        Some((value, _)),
                    ) => {
                        tracing::warn!(key, error = %e, "upstream failed; serving stale data");
                        record_cache(CacheOutcome::Stale);
                        Ok(Cached {
                            value: value.clone(),
                            stale: true,
                        })
                    }
                    _ => {
                        record_cache(CacheOutcome::Miss);
                        Err(e)
                    }
                }
            }
        }
    }

    /// Drops every entry whose key starts with `prefix` ("" drops all).
    pub fn invalidate(&self, prefix: &str) {
        self.slots
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .retain(|k, _| !k.starts_with(prefix));
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicUsize, Ordering};

    #[tokio::test]
    async fn concurrent_misses_fetch_once() {
        let cache = Arc::new(Cache::<u32>::new(Duration::from_secs(60)));
        let calls = Arc::new(AtomicUsize::new(0));
        let mut tasks = Vec::new();
        for _ in 0..16 {
            let (cache, calls) = (cache.clone(), calls.clone());
            tasks.push(tokio::spawn(async move {
                cache
                    .get("k", || async {
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
        let cache0 = Cache::<u32>::new(Duration::ZERO);
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
        let fresh = Cache::<u32>::new(Duration::ZERO);
        assert!(
            fresh
                .get("k", || async { Err(UpstreamError::NotFound) })
                .await
                .is_err()
        );
    }

    #[tokio::test]
    async fn invalidate_drops_by_prefix() {
        let cache = Cache::<u32>::new(Duration::from_secs(60));
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
