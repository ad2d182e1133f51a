//! The audit log: every admin action, who did it and when. Mutations are
//! logged in the same transaction as the change they describe.

use crate::db::with_pool;
use crate::model::AuditEntry;
use crate::rows::AuditRow;
use crate::{Store, StoreError};

/// Most entries one call returns.
pub const AUDIT_PAGE_MAX: u32 = 1000;

/// Inserts an audit entry through `$conn` (a pool or `&mut *transaction`
/// of either dialect).
macro_rules! insert_audit {
    ($conn:expr, $actor:expr, $action:expr, $subject:expr, $detail:expr) => {
        sqlx::query(
            "INSERT INTO audit_log (at, actor, action, subject, detail) VALUES ($1, $2, $3, $4, $5)",
        )
        .bind($crate::store::now())
        .bind($actor)
        .bind($action)
        .bind($subject)
        .bind($detail)
        .execute($conn)
        .await
    };
}
pub(crate) use insert_audit;

impl Store {
    /// Records an action that changed nothing in the store (e.g. an admin
    /// reading the license list through the HTTP API).
    pub async fn record_audit(
        &self,
        actor: &str,
        action: &str,
        subject: Option<&str>,
        detail: &str,
    ) -> Result<(), StoreError> {
        with_pool!(&self.db, pool => {
            insert_audit!(pool, actor, action, subject, detail)?;
        });
        Ok(())
    }

    /// The latest `limit` entries (at most [`AUDIT_PAGE_MAX`]), newest
    /// first; with `before`, only entries with a smaller id (the next page).
    pub async fn audit_log(
        &self,
        limit: u32,
        before: Option<i64>,
    ) -> Result<Vec<AuditEntry>, StoreError> {
        let limit = i64::from(limit.min(AUDIT_PAGE_MAX));
        let before = before.unwrap_or(i64::MAX);
        let rows: Vec<AuditRow> = with_pool!(&self.db, pool => {
            sqlx::query_as(
                "SELECT * FROM audit_log WHERE id < $1 ORDER BY id DESC LIMIT $2",
            )
            .bind(before)
            .bind(limit)
            .fetch_all(pool)
            .await?
        });
        Ok(rows.into_iter().map(AuditEntry::from).collect())
    }
}
