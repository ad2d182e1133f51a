//! The queries licenses and publisher keys share: list, show, revoke, and
//! the active record of a key hash. One generic function each, over
//! [`KeyTable`]; the table names are constants, never input.

use crate::audit::insert_audit;
use crate::db::{Db, with_pool};
use crate::model::Status;
use crate::rows::KeyTable;
use crate::store::now;
use crate::{Store, StoreError};

/// Every record of the table, oldest first.
pub(crate) async fn list<R: KeyTable>(db: &Db) -> Result<Vec<R::Record>, StoreError> {
    let sql = format!("SELECT * FROM {} ORDER BY id", R::TABLE);
    let rows: Vec<R> = with_pool!(db, pool => {
        sqlx::query_as(&sql).fetch_all(pool).await?
    });
    rows.into_iter().map(R::into_record).collect()
}

/// One record by id, whatever its status.
pub(crate) async fn by_id<R: KeyTable>(db: &Db, id: &str) -> Result<Option<R::Record>, StoreError> {
    let sql = format!("SELECT * FROM {} WHERE id = $1", R::TABLE);
    let row: Option<R> = with_pool!(db, pool => {
        sqlx::query_as(&sql).bind(id).fetch_optional(pool).await?
    });
    row.map(R::into_record).transpose()
}

/// The row of a key hash: only an active one with `active_only`.
pub(crate) async fn by_hash<R: KeyTable>(
    db: &Db,
    hash: &str,
    active_only: bool,
) -> Result<Option<R>, StoreError> {
    let mut sql = format!("SELECT * FROM {} WHERE key_hash = $1", R::TABLE);
    if active_only {
        sql.push_str(" AND status = $2");
    }
    Ok(with_pool!(db, pool => {
        let query = sqlx::query_as(&sql).bind(hash);
        let query = if active_only {
            query.bind(Status::Active.as_str())
        } else {
            query
        };
        query.fetch_optional(pool).await?
    }))
}

impl Store {
    /// Revokes a record of `R`'s table for good, in one transaction with
    /// its audit entry (`<kind>.revoke`), and forgets its key in this
    /// store's credential cache at once. Revoking a revoked record changes
    /// nothing (and is still audited).
    pub(crate) async fn revoke<R: KeyTable>(
        &self,
        actor: &str,
        id: &str,
    ) -> Result<R::Record, StoreError> {
        let at = now();
        let update = format!(
            "UPDATE {} SET status = $1, revoked_at = COALESCE(revoked_at, $2) WHERE id = $3",
            R::TABLE
        );
        let select = format!("SELECT * FROM {} WHERE id = $1", R::TABLE);
        let action = format!("{}.revoke", R::AUDIT);
        let row: Option<R> = with_pool!(&self.db, pool => {
            let mut tx = pool.begin().await?;
            let changed = sqlx::query(&update)
                .bind(Status::Revoked.as_str())
                .bind(at)
                .bind(id)
                .execute(&mut *tx)
                .await?
                .rows_affected();
            if changed == 0 {
                None
            } else {
                insert_audit!(&mut *tx, actor, &action, Some(id), "")?;
                let row: R = sqlx::query_as(&select).bind(id).fetch_one(&mut *tx).await?;
                tx.commit().await?;
                Some(row)
            }
        });
        let row = row.ok_or_else(|| StoreError::NotFound {
            kind: R::KIND,
            id: id.to_owned(),
        })?;
        if let Some(cache) = &self.cache {
            cache.invalidate(row.key_hash());
        }
        row.into_record()
    }
}
