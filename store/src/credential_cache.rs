//! A short-lived, bounded memory of credential lookups, so that a licensed
//! download or a token request does not wait for the database each time.
//!
//! Entries are keyed by the presented key's SHA-256 (the text the database
//! is searched by; never the key itself). A found credential is kept for
//! [`CacheConfig::positive_ttl`] (default 5 s), an unknown or revoked key
//! for [`CacheConfig::negative_ttl`] (default 1 s), and at most
//! [`CacheConfig::capacity`] entries are held: a flood of random keys
//! evicts older entries instead of growing memory. The answer cached is
//! the database's (which active record the hash belongs to), not the
//! decision: expiry is checked again at every use.
//!
//! Revocation through a [`crate::Store`] that holds the cache (the admin
//! API and the catalog's own handle) removes the entry at once; a
//! revocation made elsewhere (another catalog node, the `rbee-catalog
//! license revoke` command run beside a server) reaches this node when
//! the entry expires, within `positive_ttl`. A lookup that was in flight
//! when a revocation happened never stores its (possibly older) answer:
//! each revocation moves a generation counter that such a lookup checks
//! before it stores.
//!
//! The catalog's token service does not use it
//! ([`crate::Store::authenticate_fresh`]): a registry token lives up to
//! 60 s, and must not be issued on an answer a few seconds old.

use std::sync::RwLock;
use std::time::{Duration, Instant};

use crate::model::Credential;

/// How much the cache holds and for how long.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CacheConfig {
    /// Most entries held (found and unknown keys together).
    pub capacity: usize,
    /// How long a found credential is served from memory.
    pub positive_ttl: Duration,
    /// How long an unknown or revoked key is remembered as such.
    pub negative_ttl: Duration,
}

impl Default for CacheConfig {
    /// 10 000 entries (a few MB at most), 5 s for credentials, 1 s for
    /// unknown keys: revocation made on another node still reaches this
    /// one well within the 60 s the design allows.
    fn default() -> Self {
        CacheConfig {
            capacity: 10_000,
            positive_ttl: Duration::from_secs(5),
            negative_ttl: Duration::from_secs(1),
        }
    }
}

#[derive(Debug, Clone)]
struct Entry {
    /// The active credential the hash belongs to; `None`: none.
    found: Option<Credential>,
    /// Served until then.
    until: Instant,
}

/// The cache itself; one per catalog process, shared by every clone of its
/// [`crate::Store`].
#[derive(Debug)]
pub(crate) struct CredentialCache {
    config: CacheConfig,
    entries: quick_cache::sync::Cache<String, Entry>,
    /// Moved by every invalidation; a lookup stores its answer only if the
    /// counter has not moved since it started. Stores hold the read side,
    /// invalidations the write side, so the two never interleave.
    generation: RwLock<u64>,
}

/// A lookup in progress: the generation it started in.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Ticket(u64);

impl CredentialCache {
    pub(crate) fn new(config: CacheConfig) -> Self {
        CredentialCache {
            config,
            entries: quick_cache::sync::Cache::new(config.capacity.max(1)),
            generation: RwLock::new(0),
        }
    }

    /// The cached answer for `hash` at `now`: `Some(found)` on a hit
    /// (`found` itself may be `None`: a known-unknown key), `None` on a
    /// miss, and the [`Ticket`] to store the database's answer with.
    pub(crate) fn get(&self, hash: &str, now: Instant) -> Result<Option<Credential>, Ticket> {
        let ticket = Ticket(*self.generation.read().unwrap_or_else(|e| e.into_inner()));
        match self.entries.get(hash) {
            Some(entry) if now < entry.until => Ok(entry.found),
            _ => Err(ticket),
        }
    }

    /// Stores the database's answer for `hash`, read at `now`, unless an
    /// invalidation happened since `ticket` was taken.
    pub(crate) fn insert(
        &self,
        ticket: Ticket,
        hash: String,
        found: Option<Credential>,
        now: Instant,
    ) {
        let ttl = if found.is_some() {
            self.config.positive_ttl
        } else {
            self.config.negative_ttl
        };
        let generation = self.generation.read().unwrap_or_else(|e| e.into_inner());
        if *generation == ticket.0 && !ttl.is_zero() {
            self.entries.insert(
                hash,
                Entry {
                    found,
                    until: now + ttl,
                },
            );
        }
    }

    /// Forgets `hash` (a revoked key), and any lookup in flight.
    pub(crate) fn invalidate(&self, hash: &str) {
        let mut generation = self.generation.write().unwrap_or_else(|e| e.into_inner());
        *generation += 1;
        self.entries.remove(hash);
    }

    /// Forgets everything (the admin key was rotated).
    pub(crate) fn clear(&self) {
        let mut generation = self.generation.write().unwrap_or_else(|e| e.into_inner());
        *generation += 1;
        self.entries.clear();
    }

    /// How many entries it holds now.
    pub(crate) fn len(&self) -> usize {
        self.entries.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::CredentialKind;

    fn credential(id: &str) -> Credential {
        Credential {
            kind: CredentialKind::License,
            id: id.into(),
            owner: "o".into(),
            grants: Vec::new(),
            expires_at: None,
            perpetual_fallback: false,
        }
    }

    fn cache() -> CredentialCache {
        CredentialCache::new(CacheConfig {
            capacity: 8,
            positive_ttl: Duration::from_secs(5),
            negative_ttl: Duration::from_secs(1),
        })
    }

    #[test]
    fn found_credentials_are_served_for_the_positive_ttl_only() {
        let cache = cache();
        let t0 = Instant::now();
        let ticket = cache.get("h", t0).unwrap_err();
        cache.insert(ticket, "h".into(), Some(credential("lic_1")), t0);
        let hit = cache.get("h", t0 + Duration::from_millis(4999)).unwrap();
        assert_eq!(hit.unwrap().id, "lic_1");
        assert!(cache.get("h", t0 + Duration::from_secs(5)).is_err());
    }

    #[test]
    fn unknown_keys_are_remembered_for_the_shorter_negative_ttl() {
        let cache = cache();
        let t0 = Instant::now();
        let ticket = cache.get("h", t0).unwrap_err();
        cache.insert(ticket, "h".into(), None, t0);
        assert_eq!(
            cache.get("h", t0 + Duration::from_millis(999)).unwrap(),
            None
        );
        assert!(cache.get("h", t0 + Duration::from_secs(1)).is_err());
    }

    #[test]
    fn an_invalidated_key_is_looked_up_again() {
        let cache = cache();
        let t0 = Instant::now();
        let ticket = cache.get("h", t0).unwrap_err();
        cache.insert(ticket, "h".into(), Some(credential("lic_1")), t0);
        cache.invalidate("h");
        assert!(cache.get("h", t0).is_err());
        let ticket = cache.get("h", t0).unwrap_err();
        cache.insert(ticket, "h".into(), Some(credential("lic_1")), t0);
        cache.clear();
        assert!(cache.get("h", t0).is_err());
    }

    #[test]
    fn a_lookup_in_flight_during_a_revocation_does_not_store_its_answer() {
        let cache = cache();
        let t0 = Instant::now();
        // Started before the revocation, answered (active) before it.
        let ticket = cache.get("h", t0).unwrap_err();
        cache.invalidate("h");
        cache.insert(ticket, "h".into(), Some(credential("lic_1")), t0);
        assert!(cache.get("h", t0).is_err(), "the stale answer was stored");
    }

    #[test]
    fn a_flood_of_keys_keeps_the_cache_within_its_capacity() {
        let cache = cache();
        let t0 = Instant::now();
        for i in 0..1000 {
            let hash = format!("{i:064x}");
            let ticket = cache.get(&hash, t0).unwrap_err();
            cache.insert(ticket, hash, None, t0);
        }
        assert!(cache.len() <= 8, "{} entries", cache.len());
    }
}
