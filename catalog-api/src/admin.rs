//! Administration of licenses, publisher keys and the admin key, shared
//! by the `rbee-catalog license|publisher-key|audit|admin-key` commands
//! and the `/admin` HTTP API ([`crate::routes::admin`]): opening the
//! catalog's database, the admin key file, the JSON views of records, and
//! the commands' text output.

use std::io::{self, Write};
use std::path::{Path, PathBuf};

use chrono::{DateTime, SecondsFormat, Utc};
use rbee_store::{
    AuditEntry, Grant, License, NewLicense, NewPublisherKey, PublisherKey, SecretKey, Status,
    Store, StoreError,
};
use serde::Serialize;

use crate::config::CatalogConfig;

/// The audit log's actor for commands run on the server itself.
pub const CLI_ACTOR: &str = "cli";

/// File name of the admin key in the data dir, written on first start.
pub const ADMIN_KEY_FILE: &str = "admin.key";

/// File name of the default SQLite database in the data dir.
pub const DATABASE_FILE: &str = "catalog.db";

/// Opens the catalog's database: `config.database_url`, or by default a
/// SQLite file in the data dir (created with the dir if missing).
pub async fn open_store(config: &CatalogConfig) -> Result<Store, StoreError> {
    match &config.database_url {
        Some(url) => Store::open(url).await,
        None => {
            std::fs::create_dir_all(&config.data_dir).map_err(|e| {
                StoreError::Invalid(format!(
                    "cannot create the data dir {}: {e}",
                    config.data_dir.display()
                ))
            })?;
            Store::open_sqlite(&config.data_dir.join(DATABASE_FILE)).await
        }
    }
}

/// Where the admin key of a catalog with data in `data_dir` is written.
pub fn admin_key_path(data_dir: &Path) -> PathBuf {
    data_dir.join(ADMIN_KEY_FILE)
}

/// Creates the admin key if the database has none and writes it to
/// [`admin_key_path`] (mode 0600): the key is never printed or logged, so
/// that it does not end up in a terminal's scrollback or a log store.
/// Returns the file's path when a key was created.
pub async fn ensure_admin_key(store: &Store, data_dir: &Path) -> io::Result<Option<PathBuf>> {
    let Some(key) = store.ensure_admin_key().await.map_err(io::Error::other)? else {
        return Ok(None);
    };
    let path = admin_key_path(data_dir);
    write_secret_file(&path, &key)?;
    Ok(Some(path))
}

/// Writes `key` to `path` readable by its owner only, atomically (a
/// temporary file in the same folder, then a rename).
pub fn write_secret_file(path: &Path, key: &SecretKey) -> io::Result<()> {
    let dir = path.parent().unwrap_or(Path::new("."));
    std::fs::create_dir_all(dir)?;
    let tmp = path.with_extension("tmp");
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create(true).truncate(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
    let mut file = options.open(&tmp)?;
    file.write_all(key.expose().as_bytes())?;
    file.write_all(b"\n")?;
    file.sync_all()?;
    drop(file);
    std::fs::rename(&tmp, path)
}

/// A license as the admin API and `--json` show it.
#[derive(Debug, Serialize)]
pub struct LicenseView {
    /// `lic_...`.
    pub id: String,
    /// Who it was issued to.
    pub owner: String,
    /// `{"worker": ID}` or `{"namespace": NS}` each.
    pub grants: Vec<Grant>,
    /// `active` or `revoked`.
    pub status: Status,
    /// Whether it is past `expires_at` now.
    pub expired: bool,
    /// RFC 3339.
    pub created_at: DateTime<Utc>,
    /// RFC 3339; absent: never expires.
    pub expires_at: Option<DateTime<Utc>>,
    /// Whether an expired license still unlocks versions published
    /// before `expires_at`.
    pub perpetual_fallback: bool,
    /// RFC 3339, when revoked.
    pub revoked_at: Option<DateTime<Utc>>,
}

impl From<License> for LicenseView {
    fn from(l: License) -> Self {
        LicenseView {
            expired: l.is_expired_at(Utc::now()),
            id: l.id,
            owner: l.owner,
            grants: l.grants,
            status: l.status,
            created_at: l.created_at,
            expires_at: l.expires_at,
            perpetual_fallback: l.perpetual_fallback,
            revoked_at: l.revoked_at,
        }
    }
}

/// A publisher key as the admin API and `--json` show it.
#[derive(Debug, Serialize)]
pub struct PublisherKeyView {
    /// `pub_...`.
    pub id: String,
    /// Who publishes with it.
    pub owner: String,
    /// Where it may push.
    pub grants: Vec<Grant>,
    /// `active` or `revoked`.
    pub status: Status,
    /// RFC 3339.
    pub created_at: DateTime<Utc>,
    /// RFC 3339, when revoked.
    pub revoked_at: Option<DateTime<Utc>>,
}

impl From<PublisherKey> for PublisherKeyView {
    fn from(k: PublisherKey) -> Self {
        PublisherKeyView {
            id: k.id,
            owner: k.owner,
            grants: k.grants,
            status: k.status,
            created_at: k.created_at,
            revoked_at: k.revoked_at,
        }
    }
}

/// A record just created, with its key: the only time the key is shown.
#[derive(Debug, Serialize)]
pub struct Created<T> {
    /// The record.
    #[serde(flatten)]
    pub record: T,
    /// The secret key. Not recoverable later: only its hash is stored.
    pub key: String,
}

/// An audit entry as the admin API and `--json` show it.
#[derive(Debug, Serialize)]
pub struct AuditEntryView {
    /// Increasing; pass the smallest as `before` for the next page.
    pub id: i64,
    /// RFC 3339.
    pub at: DateTime<Utc>,
    /// `adm_...` (HTTP API), `cli` (command line) or `system`.
    pub actor: String,
    /// E.g. `license.create`.
    pub action: String,
    /// The record acted on.
    pub subject: Option<String>,
    /// Non-secret detail, often JSON.
    pub detail: String,
}

impl From<AuditEntry> for AuditEntryView {
    fn from(e: AuditEntry) -> Self {
        AuditEntryView {
            id: e.id,
            at: e.at,
            actor: e.actor,
            action: e.action,
            subject: e.subject,
            detail: e.detail,
        }
    }
}

/// How a command prints its result.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    /// For people.
    Text,
    /// The admin API's JSON, for scripts.
    Json,
}

fn json(value: &impl Serialize) -> String {
    serde_json::to_string_pretty(value).expect("views serialize to JSON") + "\n"
}

fn time(t: DateTime<Utc>) -> String {
    t.to_rfc3339_opts(SecondsFormat::Secs, true)
}

fn grants(grants: &[Grant]) -> String {
    grants
        .iter()
        .map(ToString::to_string)
        .collect::<Vec<_>>()
        .join(",")
}

fn license_text(l: &LicenseView) -> String {
    let expires = match (l.expires_at, l.expired) {
        (None, _) => "never".to_owned(),
        (Some(t), false) => time(t),
        (Some(t), true) => format!("{} (expired)", time(t)),
    };
    let mut text = format!(
        "id:        {}\nowner:     {}\nstatus:    {}\ngrants:    {}\ncreated:   {}\nexpires:   {}\nfallback:  {}\n",
        l.id,
        l.owner,
        l.status.as_str(),
        grants(&l.grants),
        time(l.created_at),
        expires,
        if l.perpetual_fallback {
            "versions published before expiry stay unlocked"
        } else {
            "none"
        },
    );
    if let Some(at) = l.revoked_at {
        text.push_str(&format!("revoked:   {}\n", time(at)));
    }
    text
}

const SHOWN_ONCE: &str =
    "This key is shown only now and cannot be recovered: only its hash is stored.\n";

/// `license create`: issues a license and prints it with its key.
pub async fn license_create(
    store: &Store,
    new: NewLicense,
    format: Format,
) -> Result<String, StoreError> {
    let (license, key) = store.create_license(CLI_ACTOR, new).await?;
    let created = Created {
        record: LicenseView::from(license),
        key: key.expose().to_owned(),
    };
    Ok(match format {
        Format::Json => json(&created),
        Format::Text => format!(
            "{}key:       {}\n{SHOWN_ONCE}",
            license_text(&created.record),
            created.key
        ),
    })
}

/// `license list`: every license, oldest first.
pub async fn license_list(store: &Store, format: Format) -> Result<String, StoreError> {
    let licenses: Vec<LicenseView> = store
        .list_licenses()
        .await?
        .into_iter()
        .map(LicenseView::from)
        .collect();
    Ok(match format {
        Format::Json => json(&licenses),
        Format::Text => {
            let mut text = String::from("ID\tSTATUS\tOWNER\tEXPIRES\tGRANTS\n");
            for l in &licenses {
                let status = if l.status == Status::Active && l.expired {
                    "expired"
                } else {
                    l.status.as_str()
                };
                text.push_str(&format!(
                    "{}\t{}\t{}\t{}\t{}\n",
                    l.id,
                    status,
                    l.owner,
                    l.expires_at.map_or("never".to_owned(), time),
                    grants(&l.grants)
                ));
            }
            text
        }
    })
}

/// `license show ID`.
pub async fn license_show(store: &Store, id: &str, format: Format) -> Result<String, StoreError> {
    let license = store
        .license(id)
        .await?
        .ok_or_else(|| StoreError::NotFound {
            kind: "license",
            id: id.to_owned(),
        })?;
    let view = LicenseView::from(license);
    Ok(match format {
        Format::Json => json(&view),
        Format::Text => license_text(&view),
    })
}

/// `license revoke ID`.
pub async fn license_revoke(store: &Store, id: &str, format: Format) -> Result<String, StoreError> {
    let view = LicenseView::from(store.revoke_license(CLI_ACTOR, id).await?);
    Ok(match format {
        Format::Json => json(&view),
        Format::Text => format!("revoked license {}\n", view.id),
    })
}

fn publisher_key_text(k: &PublisherKeyView) -> String {
    let mut text = format!(
        "id:        {}\nowner:     {}\nstatus:    {}\ngrants:    {}\ncreated:   {}\n",
        k.id,
        k.owner,
        k.status.as_str(),
        grants(&k.grants),
        time(k.created_at),
    );
    if let Some(at) = k.revoked_at {
        text.push_str(&format!("revoked:   {}\n", time(at)));
    }
    text
}

/// `publisher-key create`: issues a key and prints it once.
pub async fn publisher_key_create(
    store: &Store,
    new: NewPublisherKey,
    format: Format,
) -> Result<String, StoreError> {
    let (record, key) = store.create_publisher_key(CLI_ACTOR, new).await?;
    let created = Created {
        record: PublisherKeyView::from(record),
        key: key.expose().to_owned(),
    };
    Ok(match format {
        Format::Json => json(&created),
        Format::Text => format!(
            "{}key:       {}\n{SHOWN_ONCE}",
            publisher_key_text(&created.record),
            created.key
        ),
    })
}

/// `publisher-key list`.
pub async fn publisher_key_list(store: &Store, format: Format) -> Result<String, StoreError> {
    let keys: Vec<PublisherKeyView> = store
        .list_publisher_keys()
        .await?
        .into_iter()
        .map(PublisherKeyView::from)
        .collect();
    Ok(match format {
        Format::Json => json(&keys),
        Format::Text => {
            let mut text = String::from("ID\tSTATUS\tOWNER\tGRANTS\n");
            for k in &keys {
                text.push_str(&format!(
                    "{}\t{}\t{}\t{}\n",
                    k.id,
                    k.status.as_str(),
                    k.owner,
                    grants(&k.grants)
                ));
            }
            text
        }
    })
}

/// `publisher-key revoke ID`.
pub async fn publisher_key_revoke(
    store: &Store,
    id: &str,
    format: Format,
) -> Result<String, StoreError> {
    let view = PublisherKeyView::from(store.revoke_publisher_key(CLI_ACTOR, id).await?);
    Ok(match format {
        Format::Json => json(&view),
        Format::Text => format!("revoked publisher key {}\n", view.id),
    })
}

/// `audit`: the latest `limit` entries, newest first.
pub async fn audit(store: &Store, limit: u32, format: Format) -> Result<String, StoreError> {
    let entries: Vec<AuditEntryView> = store
        .audit_log(limit, None)
        .await?
        .into_iter()
        .map(AuditEntryView::from)
        .collect();
    Ok(match format {
        Format::Json => json(&entries),
        Format::Text => {
            let mut text = String::from("ID\tAT\tACTOR\tACTION\tSUBJECT\tDETAIL\n");
            for e in &entries {
                text.push_str(&format!(
                    "{}\t{}\t{}\t{}\t{}\t{}\n",
                    e.id,
                    time(e.at),
                    e.actor,
                    e.action,
                    e.subject.as_deref().unwrap_or("-"),
                    e.detail
                ));
            }
            text
        }
    })
}

/// `admin-key rotate`: revokes the admin key and writes a new one to the
/// data dir's key file. Prints where, never the key.
pub async fn admin_key_rotate(store: &Store, data_dir: &Path) -> Result<String, StoreError> {
    let key = store.rotate_admin_key(CLI_ACTOR).await?;
    let path = admin_key_path(data_dir);
    write_secret_file(&path, &key).map_err(|e| {
        StoreError::Invalid(format!(
            "the admin key was rotated but could not be written to {}: {e}; rotate again",
            path.display()
        ))
    })?;
    Ok(format!(
        "the admin key was replaced; the new one is in {} (the old one no longer works)\n",
        path.display()
    ))
}
