//! The admin key: one active at a time, created on the catalog's first
//! start (the catalog writes it to a file in its data dir, mode 0600) and
//! replaced with `rbee-catalog admin-key rotate`.

use crate::audit::insert_audit;
use crate::db::with_pool;
use crate::key::SecretKey;
use crate::model::{CredentialKind, Status};
use crate::store::{new_id, now};
use crate::{Store, StoreError};

/// The actor of actions the catalog takes by itself.
pub const SYSTEM_ACTOR: &str = "system";

impl Store {
    /// Creates the admin key if none is active, and returns it (once);
    /// `None` when one already exists. Safe when several nodes start at
    /// once on one database: exactly one of them gets `Some`.
    pub async fn ensure_admin_key(&self) -> Result<Option<SecretKey>, StoreError> {
        let secret = SecretKey::generate(CredentialKind::Admin)?;
        let id = new_id(CredentialKind::Admin);
        let created = with_pool!(&self.db, pool => {
            let mut tx = pool.begin().await?;
            let inserted = sqlx::query(
                "INSERT INTO admin_keys (id, key_hash, status, active_slot, created_at) \
                 VALUES ($1, $2, $3, 1, $4) ON CONFLICT (active_slot) DO NOTHING",
            )
            .bind(&id)
            .bind(secret.hash())
            .bind(Status::Active.as_str())
            .bind(now())
            .execute(&mut *tx)
            .await?
            .rows_affected();
            if inserted == 1 {
                insert_audit!(&mut *tx, SYSTEM_ACTOR, "admin_key.create", Some(&id), "")?;
            }
            tx.commit().await?;
            inserted == 1
        });
        Ok(created.then_some(secret))
    }

    /// Revokes the active admin key (if any) and creates a new one, which
    /// is returned once.
    pub async fn rotate_admin_key(&self, actor: &str) -> Result<SecretKey, StoreError> {
        let secret = SecretKey::generate(CredentialKind::Admin)?;
        let id = new_id(CredentialKind::Admin);
        let at = now();
        with_pool!(&self.db, pool => {
            let mut tx = pool.begin().await?;
            sqlx::query(
                "UPDATE admin_keys SET status = $1, active_slot = NULL, revoked_at = $2 \
                 WHERE active_slot = 1",
            )
            .bind(Status::Revoked.as_str())
            .bind(at)
            .execute(&mut *tx)
            .await?;
            sqlx::query(
                "INSERT INTO admin_keys (id, key_hash, status, active_slot, created_at) \
                 VALUES ($1, $2, $3, 1, $4)",
            )
            .bind(&id)
            .bind(secret.hash())
            .bind(Status::Active.as_str())
            .bind(at)
            .execute(&mut *tx)
            .await?;
            insert_audit!(&mut *tx, actor, "admin_key.rotate", Some(&id), "")?;
            tx.commit().await?;
        });
        // The old key stops at once on this node; rotations are rare, so
        // forgetting every cached lookup costs nothing that matters.
        if let Some(cache) = &self.cache {
            cache.clear();
        }
        Ok(secret)
    }
}
