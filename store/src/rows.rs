//! Rows as the tables hold them, and their conversion into domain types.
//! Both dialects decode these (grants are JSON text in both).

use chrono::{DateTime, Utc};

use crate::StoreError;
use crate::model::{AuditEntry, Grant, License, PublisherKey, Status};

#[derive(Debug, sqlx::FromRow)]
pub(crate) struct LicenseRow {
    id: String,
    #[expect(dead_code, reason = "selected with `*`; only looked up by")]
    key_hash: String,
    owner: String,
    grants: String,
    status: String,
    created_at: DateTime<Utc>,
    expires_at: Option<DateTime<Utc>>,
    perpetual_fallback: bool,
    revoked_at: Option<DateTime<Utc>>,
}

impl LicenseRow {
    pub(crate) fn into_license(self) -> Result<License, StoreError> {
        Ok(License {
            grants: parse_grants(&self.grants)?,
            status: Status::parse(&self.status)?,
            id: self.id,
            owner: self.owner,
            created_at: self.created_at,
            expires_at: self.expires_at,
            perpetual_fallback: self.perpetual_fallback,
            revoked_at: self.revoked_at,
        })
    }
}

#[derive(Debug, sqlx::FromRow)]
pub(crate) struct PublisherKeyRow {
    id: String,
    #[expect(dead_code, reason = "selected with `*`; only looked up by")]
    key_hash: String,
    owner: String,
    grants: String,
    status: String,
    created_at: DateTime<Utc>,
    revoked_at: Option<DateTime<Utc>>,
}

impl PublisherKeyRow {
    pub(crate) fn into_publisher_key(self) -> Result<PublisherKey, StoreError> {
        Ok(PublisherKey {
            grants: parse_grants(&self.grants)?,
            status: Status::parse(&self.status)?,
            id: self.id,
            owner: self.owner,
            created_at: self.created_at,
            revoked_at: self.revoked_at,
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
