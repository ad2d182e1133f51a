//! Rows as the tables hold them, and their conversion into domain types.
//! Both dialects decode these (grants are JSON text in both). Licenses
//! and publisher keys share their columns ([`KeyColumns`]) and the
//! list/show/revoke queries ([`KeyTable`]).

use chrono::{DateTime, Utc};

use crate::StoreError;
use crate::model::{AuditEntry, Grant, License, PublisherKey, Status};

/// The columns every key table has, decoded with [`KeyColumns::decode`].
#[derive(Debug, sqlx::FromRow)]
pub(crate) struct KeyColumns {
    id: String,
    key_hash: String,
    owner: String,
    grants: String,
    status: String,
    created_at: DateTime<Utc>,
    revoked_at: Option<DateTime<Utc>>,
}

/// [`KeyColumns`] read into domain values.
pub(crate) struct KeyRecord {
    pub(crate) id: String,
    pub(crate) owner: String,
    pub(crate) grants: Vec<Grant>,
    pub(crate) status: Status,
    pub(crate) created_at: DateTime<Utc>,
    pub(crate) revoked_at: Option<DateTime<Utc>>,
}

impl KeyColumns {
    fn decode(self) -> Result<KeyRecord, StoreError> {
        Ok(KeyRecord {
            grants: parse_grants(&self.grants)?,
            status: Status::parse(&self.status)?,
            id: self.id,
            owner: self.owner,
            created_at: self.created_at,
            revoked_at: self.revoked_at,
        })
    }
}

/// A table of keys (`licenses`, `publisher_keys`): what the shared
/// queries need to know about it.
pub(crate) trait KeyTable:
    for<'r> sqlx::FromRow<'r, sqlx::sqlite::SqliteRow>
    + for<'r> sqlx::FromRow<'r, sqlx::postgres::PgRow>
    + Send
    + Unpin
    + Sized
{
    /// The table.
    const TABLE: &'static str;
    /// What a record is called in errors (`license`, `publisher key`).
    const KIND: &'static str;
    /// The audit actions' prefix (`license` -> `license.revoke`).
    const AUDIT: &'static str;
    /// The domain type.
    type Record;

    /// The shared columns.
    fn columns(&self) -> &KeyColumns;
    /// The domain value.
    fn into_record(self) -> Result<Self::Record, StoreError>;

    /// The SHA-256 its key is stored under.
    fn key_hash(&self) -> &str {
        &self.columns().key_hash
    }
}

#[derive(Debug, sqlx::FromRow)]
pub(crate) struct LicenseRow {
    #[sqlx(flatten)]
    key: KeyColumns,
    expires_at: Option<DateTime<Utc>>,
    perpetual_fallback: bool,
}

impl KeyTable for LicenseRow {
    const TABLE: &'static str = "licenses";
    const KIND: &'static str = "license";
    const AUDIT: &'static str = "license";
    type Record = License;

    fn columns(&self) -> &KeyColumns {
        &self.key
    }

    fn into_record(self) -> Result<License, StoreError> {
        let key = self.key.decode()?;
        Ok(License {
            id: key.id,
            owner: key.owner,
            grants: key.grants,
            status: key.status,
            created_at: key.created_at,
            expires_at: self.expires_at,
            perpetual_fallback: self.perpetual_fallback,
            revoked_at: key.revoked_at,
        })
    }
}

#[derive(Debug, sqlx::FromRow)]
pub(crate) struct PublisherKeyRow {
    #[sqlx(flatten)]
    key: KeyColumns,
}

impl KeyTable for PublisherKeyRow {
    const TABLE: &'static str = "publisher_keys";
    const KIND: &'static str = "publisher key";
    const AUDIT: &'static str = "publisher_key";
    type Record = PublisherKey;

    fn columns(&self) -> &KeyColumns {
        &self.key
    }

    fn into_record(self) -> Result<PublisherKey, StoreError> {
        let key = self.key.decode()?;
        Ok(PublisherKey {
            id: key.id,
            owner: key.owner,
            grants: key.grants,
            status: key.status,
            created_at: key.created_at,
            revoked_at: key.revoked_at,
        })
    }
}

#[derive(Debug, sqlx::FromRow)]
pub(crate) struct AuditRow {
    id: i64,
    at: DateTime<Utc>,
    actor: String,
    action: String,
    subject: Option<String>,
    detail: String,
}

impl From<AuditRow> for AuditEntry {
    fn from(row: AuditRow) -> Self {
        AuditEntry {
            id: row.id,
            at: row.at,
            actor: row.actor,
            action: row.action,
            subject: row.subject,
            detail: row.detail,
        }
    }
}

pub(crate) fn grants_json(grants: &[Grant]) -> String {
    serde_json::to_string(grants).expect("grants serialize to JSON")
}

fn parse_grants(json: &str) -> Result<Vec<Grant>, StoreError> {
    serde_json::from_str(json).map_err(|e| StoreError::Corrupt {
        what: "grants",
        source: Box::new(e),
    })
}
