//! [`Store`]: the handle every caller shares, and `authenticate`, the one
//! question the token service and the catalog ask of a presented key.

use std::path::Path;
use std::sync::Arc;
use std::time::Instant;

use chrono::{DateTime, SubsecRound, Utc};

use crate::StoreError;
use crate::credential_cache::{CacheConfig, CredentialCache};
use crate::db::{Db, with_pool};
use crate::key::parse_presented;
use crate::key_tables;
use crate::model::{Credential, CredentialKind, Status};
use crate::rows::{KeyTable as _, LicenseRow, PublisherKeyRow};

/// The catalog's database. Cheap to clone: the pools (and the credential
/// cache, when there is one) are shared.
#[derive(Debug, Clone)]
pub struct Store {
    pub(crate) db: Db,
    /// Recent answers of [`Store::authenticate`]; `None`: every lookup
    /// asks the database (the default; the catalog server turns it on).
    pub(crate) cache: Option<Arc<CredentialCache>>,
}

impl Store {
    /// Opens `sqlite:///path/to/catalog.db` (created if missing) or
    /// `postgres://...`, and runs the migrations.
    pub async fn open(url: &str) -> Result<Store, StoreError> {
        Ok(Store {
            db: Db::open(url).await?,
            cache: None,
        })
    }

    /// Opens (or creates) a SQLite database in the file at `path`: the
    /// catalog's default, `<data dir>/catalog.db`.
    pub async fn open_sqlite(path: &Path) -> Result<Store, StoreError> {
        Ok(Store {
            db: Db::open_sqlite(path).await?,
            cache: None,
        })
    }

    /// This store with a new credential cache ([`CacheConfig`]), shared by
    /// its clones: for a long-running server, where every licensed
    /// request would otherwise query the database. Revocations made
    /// through this store (or its clones) take effect at once; those made
    /// elsewhere once the cached entry expires.
    pub fn with_credential_cache(self, config: CacheConfig) -> Store {
        Store {
            cache: Some(Arc::new(CredentialCache::new(config))),
            ..self
        }
    }

    /// How many lookups the credential cache holds (0 without one): for
    /// tests and metrics.
    pub fn cached_credentials(&self) -> usize {
        self.cache.as_ref().map_or(0, |c| c.len())
    }

    /// The pool, for other tables of the same database (analytics).
    pub fn db(&self) -> &Db {
        &self.db
    }

    /// Closes the pool, waiting for queries in flight.
    pub async fn close(&self) {
        self.db.close().await;
    }

    /// Looks a presented secret up (license key `rbee_lic_...`, publisher
    /// key `rbee_pub_...`, admin key `rbee_adm_...`). `Ok(None)` for
    /// malformed, unknown or revoked keys. An expired license is returned
    /// (with its `expires_at`) only when it has the perpetual fallback.
    ///
    /// The lookup is by SHA-256 of the key, so neither a timing nor an
    /// index probe tells anything about a stored key's text. With a
    /// credential cache, a recent answer for the same hash is reused (see
    /// [`CacheConfig`] for how recent).
    pub async fn authenticate(&self, secret: &str) -> Result<Option<Credential>, StoreError> {
        self.authenticate_at(secret, Utc::now()).await
    }

    /// [`Store::authenticate`] from the database, whatever the cache holds
    /// (the answer is not cached either): for decisions that outlive the
    /// request, such as a registry token.
    pub async fn authenticate_fresh(&self, secret: &str) -> Result<Option<Credential>, StoreError> {
        let Some((kind, hash)) = parse_presented(secret) else {
            return Ok(None);
        };
        let found = self.active_credential(kind, &hash).await?;
        Ok(found.filter(|c| c.is_usable_at(Utc::now())))
    }

    /// [`Store::authenticate`] as of `now` (for tests with a moved clock).
    pub async fn authenticate_at(
        &self,
        secret: &str,
        now: DateTime<Utc>,
    ) -> Result<Option<Credential>, StoreError> {
        let Some((kind, hash)) = parse_presented(secret) else {
            return Ok(None);
        };
        let found = match &self.cache {
            None => self.active_credential(kind, &hash).await?,
            Some(cache) => match cache.get(&hash, Instant::now()) {
                Ok(hit) => hit,
                Err(ticket) => {
                    let found = self.active_credential(kind, &hash).await?;
                    cache.insert(ticket, hash, found.clone(), Instant::now());
                    found
                }
            },
        };
        // Expiry is decided at every use, never cached.
        Ok(found.filter(|c| c.is_usable_at(now)))
    }

    /// The active record `hash` belongs to, as a credential, expired or not.
    async fn active_credential(
        &self,
        kind: CredentialKind,
        hash: &str,
    ) -> Result<Option<Credential>, StoreError> {
        match kind {
            CredentialKind::License => {
                let row = key_tables::by_hash::<LicenseRow>(&self.db, hash, true).await?;
                let Some(license) = row.map(LicenseRow::into_record).transpose()? else {
                    return Ok(None);
                };
                Ok(Some(Credential {
                    kind,
                    id: license.id,
                    owner: license.owner,
                    grants: license.grants,
                    expires_at: license.expires_at,
                    perpetual_fallback: license.perpetual_fallback,
                }))
            }
            CredentialKind::Publisher => {
                let row = key_tables::by_hash::<PublisherKeyRow>(&self.db, hash, true).await?;
                let Some(key) = row.map(PublisherKeyRow::into_record).transpose()? else {
                    return Ok(None);
                };
                Ok(Some(Credential {
                    kind,
                    id: key.id,
                    owner: key.owner,
                    grants: key.grants,
                    expires_at: None,
                    perpetual_fallback: false,
                }))
            }
            CredentialKind::Admin => {
                let active = Status::Active.as_str();
                let id: Option<String> = with_pool!(&self.db, pool => {
                    sqlx::query_scalar(
                        "SELECT id FROM admin_keys WHERE key_hash = $1 AND status = $2",
                    )
                    .bind(hash)
                    .bind(active)
                    .fetch_optional(pool)
                    .await?
                });
                Ok(id.map(|id| Credential {
                    kind,
                    id,
                    owner: "admin".into(),
                    grants: Vec::new(),
                    expires_at: None,
                    perpetual_fallback: false,
                }))
            }
        }
    }
}

/// The time written into records: whole microseconds, which is what
/// PostgreSQL keeps, so that both dialects read back what was written.
pub(crate) fn now() -> DateTime<Utc> {
    Utc::now().trunc_subsecs(6)
}

/// A new record id: the kind's prefix and a UUIDv7, so ids sort by
/// creation time in both dialects.
pub(crate) fn new_id(kind: CredentialKind) -> String {
    format!("{}{}", kind.id_prefix(), uuid::Uuid::now_v7().simple())
}
