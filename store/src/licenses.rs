//! Licenses: create, list, show, revoke, and look up by key.

use serde_json::json;

use crate::audit::insert_audit;
use crate::db::with_pool;
use crate::key::{SecretKey, parse_presented};
use crate::key_tables;
use crate::model::{CredentialKind, License, NewLicense, Status, validate_grants, validate_owner};
use crate::rows::{KeyTable as _, LicenseRow, grants_json};
use crate::store::{new_id, now};
use crate::{Store, StoreError};

impl Store {
    /// Issues a license. The key is returned once and never stored: hand
    /// it to the customer now. `actor` is who asked (audit log).
    pub async fn create_license(
        &self,
        actor: &str,
        new: NewLicense,
    ) -> Result<(License, SecretKey), StoreError> {
        validate_owner(&new.owner)?;
        validate_grants(&new.grants)?;
        let secret = SecretKey::generate(CredentialKind::License)?;
        let license = License {
            id: new_id(CredentialKind::License),
            owner: new.owner,
            grants: new.grants,
            status: Status::Active,
            created_at: now(),
            expires_at: new
                .expires_at
                .map(|t| chrono::SubsecRound::trunc_subsecs(t, 6)),
            perpetual_fallback: new.perpetual_fallback,
            revoked_at: None,
        };
        let detail = json!({
            "owner": license.owner,
            "grants": license.grants,
            "expires_at": license.expires_at,
            "perpetual_fallback": license.perpetual_fallback,
        })
        .to_string();
        with_pool!(&self.db, pool => {
            let mut tx = pool.begin().await?;
            sqlx::query(
                "INSERT INTO licenses (id, key_hash, owner, grants, status, created_at, expires_at, perpetual_fallback) \
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
            )
            .bind(&license.id)
            .bind(secret.hash())
            .bind(&license.owner)
            .bind(grants_json(&license.grants))
            .bind(license.status.as_str())
            .bind(license.created_at)
            .bind(license.expires_at)
            .bind(license.perpetual_fallback)
            .execute(&mut *tx)
            .await?;
            insert_audit!(&mut *tx, actor, "license.create", Some(&license.id), &detail)?;
            tx.commit().await?;
        });
        Ok((license, secret))
    }

    /// Every license, oldest first.
    pub async fn list_licenses(&self) -> Result<Vec<License>, StoreError> {
        key_tables::list::<LicenseRow>(&self.db).await
    }

    /// One license by id, whatever its status.
    pub async fn license(&self, id: &str) -> Result<Option<License>, StoreError> {
        key_tables::by_id::<LicenseRow>(&self.db, id).await
    }

    /// The license a presented key belongs to, whatever its status or
    /// expiry (the caller decides with [`License::is_valid_at`]); `None`
    /// for malformed or unknown keys and for keys of another kind.
    pub async fn license_by_key(&self, secret: &str) -> Result<Option<License>, StoreError> {
        let Some((CredentialKind::License, hash)) = parse_presented(secret) else {
            return Ok(None);
        };
        key_tables::by_hash::<LicenseRow>(&self.db, &hash, false)
            .await?
            .map(LicenseRow::into_record)
            .transpose()
    }

    /// Revokes a license for good: its key stops authenticating at once
    /// (on this node; see [`crate::CacheConfig`] for the others).
    /// Revoking a revoked license changes nothing (and is still audited).
    pub async fn revoke_license(&self, actor: &str, id: &str) -> Result<License, StoreError> {
        self.revoke::<LicenseRow>(actor, id).await
    }
}
