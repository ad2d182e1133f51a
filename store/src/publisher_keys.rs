//! Publisher keys (for CI pushes): create, list, show, revoke.

use serde_json::json;

use crate::audit::insert_audit;
use crate::db::with_pool;
use crate::key::SecretKey;
use crate::key_tables;
use crate::model::{
    CredentialKind, NewPublisherKey, PublisherKey, Status, validate_grants, validate_owner,
};
use crate::rows::{PublisherKeyRow, grants_json};
use crate::store::{new_id, now};
use crate::{Store, StoreError};

impl Store {
    /// Issues a publisher key. The key is returned once and never stored.
    pub async fn create_publisher_key(
        &self,
        actor: &str,
        new: NewPublisherKey,
    ) -> Result<(PublisherKey, SecretKey), StoreError> {
        validate_owner(&new.owner)?;
        validate_grants(&new.grants)?;
        let secret = SecretKey::generate(CredentialKind::Publisher)?;
        let key = PublisherKey {
            id: new_id(CredentialKind::Publisher),
            owner: new.owner,
            grants: new.grants,
            status: Status::Active,
            created_at: now(),
            revoked_at: None,
        };
        let detail = json!({ "owner": key.owner, "grants": key.grants }).to_string();
        with_pool!(&self.db, pool => {
            let mut tx = pool.begin().await?;
            sqlx::query(
                "INSERT INTO publisher_keys (id, key_hash, owner, grants, status, created_at) \
                 VALUES ($1, $2, $3, $4, $5, $6)",
            )
            .bind(&key.id)
            .bind(secret.hash())
            .bind(&key.owner)
            .bind(grants_json(&key.grants))
            .bind(key.status.as_str())
            .bind(key.created_at)
            .execute(&mut *tx)
            .await?;
            insert_audit!(&mut *tx, actor, "publisher_key.create", Some(&key.id), &detail)?;
            tx.commit().await?;
        });
        Ok((key, secret))
    }

    /// Every publisher key, oldest first.
    pub async fn list_publisher_keys(&self) -> Result<Vec<PublisherKey>, StoreError> {
        key_tables::list::<PublisherKeyRow>(&self.db).await
    }

    /// One publisher key by id, whatever its status.
    pub async fn publisher_key(&self, id: &str) -> Result<Option<PublisherKey>, StoreError> {
        key_tables::by_id::<PublisherKeyRow>(&self.db, id).await
    }

    /// Revokes a publisher key for good (at once on this node).
    pub async fn revoke_publisher_key(
        &self,
        actor: &str,
        id: &str,
    ) -> Result<PublisherKey, StoreError> {
        self.revoke::<PublisherKeyRow>(actor, id).await
    }
}
