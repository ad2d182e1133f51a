//! The catalog's database: licenses, publisher keys, the admin key and
//! the audit log, on SQLite (embedded default, one file in the data dir)
//! or PostgreSQL (several catalog nodes sharing one database).
//!
//! Keys are `rbee_lic_`, `rbee_pub_` or `rbee_adm_` followed by 256 random
//! bits in base32. Only their SHA-256 is stored; a key is shown once, when
//! it is created ([`SecretKey`]). [`Store::authenticate`] turns a presented
//! key into a [`Credential`] (or `None`), which is all the token service
//! and the catalog's license checks need.
//!
//! Download analytics (events, daily rollups, the HMAC secret of client
//! addresses) live in [`analytics`].
//!
//! [`catalog_view`] keeps the catalog's own copy of the registry's
//! workers and releases, so that listings do not walk the registry.
//!
//! Other tables of the same database add a migration
//! `NNNN_name.sql` to both `migrations/sqlite` and `migrations/postgres`
//! and reach the pools through [`Store::db`].

mod admin_key;
pub mod analytics;
mod audit;
pub mod catalog_view;
mod credential_cache;
mod db;
mod error;
mod key;
mod key_tables;
mod licenses;
mod model;
mod publisher_keys;
mod rows;
mod store;
#[cfg(feature = "test-support")]
pub mod testing;

pub use admin_key::SYSTEM_ACTOR;
pub use audit::AUDIT_PAGE_MAX;
pub use credential_cache::CacheConfig;
pub use db::Db;
pub use error::StoreError;
pub use key::{CredentialKind, SecretKey};
pub use model::{
    AuditEntry, Credential, Grant, License, NewLicense, NewPublisherKey, PublisherKey, Status,
};
pub use store::Store;
