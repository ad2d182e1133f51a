//! [`Store`]: the handle every caller shares, and `authenticate`, the one
//! question the token service and the catalog ask of a presented key.

use std::path::Path;

use chrono::{DateTime, SubsecRound, Utc};

use crate::StoreError;
use crate::db::{Db, with_pool};
use crate::key::parse_presented;
use crate::model::{Credential, CredentialKind, Status};
use crate::rows::{LicenseRow, PublisherKeyRow};

/// The catalog's database. Cheap to clone: the pools are shared.
#[derive(Debug, Clone)]
pub struct Store {
    pub(crate) db: Db,
}

impl Store {
    /// Opens `sqlite:///path/to/catalog.db` (created if missing) or
    /// `postgres://...`, and runs the migrations.
    pub async fn open(url: &str) -> Result<Store, StoreError> {
        Ok(Store {
            db: Db::open(url).await?,
        })
    }

    /// Opens (or creates) a SQLite database in the file at `path`: the
    /// catalog's default, `<data dir>/catalog.db`.
    pub async fn open_sqlite(path: &Path) -> Result<Store, StoreError> {
        Ok(Store {
            db: Db::open_sqlite(path).await?,
        })
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
    /// index probe tells anything about a stored key's text.
    pub async fn authenticate(&self, secret: &str) -> Result<Option<Credential>, StoreError> {
        self.authenticate_at(secret, Utc::now()).await
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
        let active = Status::Active.as_str();
        match kind {
            CredentialKind::License => {
                let row: Option<LicenseRow> = with_pool!(&self.db, pool => {
                    sqlx::query_as(
                        "SELECT * FROM licenses WHERE key_hash = $1 AND status = $2",
                    )
                    .bind(&hash)
                    .bind(active)
                    .fetch_optional(pool)
                    .await?
                });
                let Some(license) = row.map(LicenseRow::into_license).transpose()? else {
                    return Ok(None);
                };
                if license.is_expired_at(now) && !license.perpetual_fallback {
                    return Ok(None);
                }
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
                let row: Option<PublisherKeyRow> = with_pool!(&self.db, pool => {
                    sqlx::query_as(
                        "SELECT * FROM publisher_keys WHERE key_hash = $1 AND status = $2",
                    )
                    .bind(&hash)
                    .bind(active)
                    .fetch_optional(pool)
                    .await?
                });
                let Some(key) = row.map(PublisherKeyRow::into_publisher_key).transpose()? else {
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
                let id: Option<String> = with_pool!(&self.db, pool => {
                    sqlx::query_scalar(
                        "SELECT id FROM admin_keys WHERE key_hash = $1 AND status = $2",
                    )
                    .bind(&hash)
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
