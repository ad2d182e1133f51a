//! What the store hands out: credentials, licenses, publisher keys and
//! audit entries. These are domain types; the rows they are read from live
//! in the modules that query them.

use std::fmt;
use std::str::FromStr;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::StoreError;
pub use crate::key::CredentialKind;

/// What a license or publisher key covers. Repository names are
/// `<namespace>/<worker id>`.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Grant {
    /// One worker, in any namespace (`<any namespace>/<id>`).
    Worker(String),
    /// Every repository `<namespace>/...`.
    Namespace(String),
}

impl Grant {
    /// Checks the name, so that only OCI repository name components reach
    /// the database and, later, token scopes.
    pub fn validate(&self) -> Result<(), StoreError> {
        match self {
            Grant::Worker(id) => {
                rbee_schemas::validate_published_worker_id(id).map_err(StoreError::Invalid)
            }
            Grant::Namespace(ns) => {
                if ns.len() <= 100 && rbee_schemas::is_repository_name_component(ns) {
                    Ok(())
                } else {
                    Err(StoreError::Invalid(format!(
                        "`{}` is not a namespace: use lower-case letters and digits, separated by `.`, `_` or `-`, at most 100 characters",
                        ns.escape_debug()
                    )))
                }
            }
        }
    }

    /// Whether this grant covers `repository` (`namespace/worker`).
    pub fn covers(&self, repository: &str) -> bool {
        let Some((namespace, worker)) = repository.split_once('/') else {
            return false;
        };
        match self {
            Grant::Worker(id) => worker == id,
            Grant::Namespace(ns) => namespace == ns,
        }
    }
}

/// `worker:ID` or `namespace:NS`, as typed on the command line.
impl FromStr for Grant {
    type Err = StoreError;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        let grant = match text.split_once(':') {
            Some(("worker", id)) => Grant::Worker(id.to_owned()),
            Some(("namespace", ns)) => Grant::Namespace(ns.to_owned()),
            _ => {
                return Err(StoreError::Invalid(format!(
                    "`{}` is not a grant: write worker:ID or namespace:NAME",
                    text.escape_debug()
                )));
            }
        };
        grant.validate()?;
        Ok(grant)
    }
}

impl fmt::Display for Grant {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Grant::Worker(id) => write!(f, "worker:{id}"),
            Grant::Namespace(ns) => write!(f, "namespace:{ns}"),
        }
    }
}

/// Whether a record still works.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Status {
    /// In use.
    Active,
    /// Revoked by an admin; never works again.
    Revoked,
}

impl Status {
    /// `active` or `revoked`, as stored.
    pub fn as_str(self) -> &'static str {
        match self {
            Status::Active => "active",
            Status::Revoked => "revoked",
        }
    }

    pub(crate) fn parse(text: &str) -> Result<Status, StoreError> {
        match text {
            "active" => Ok(Status::Active),
            "revoked" => Ok(Status::Revoked),
            other => Err(StoreError::Corrupt {
                what: "status",
                source: format!("unknown status `{other}`").into(),
            }),
        }
    }
}

/// Who presented a key that the store knows and that still works: what
/// [`crate::Store::authenticate`] returns. Never holds the key itself.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Credential {
    /// License, publisher or admin.
    pub kind: CredentialKind,
    /// The record id (`lic_...`, `pub_...`, `adm_...`), for tokens and logs.
    pub id: String,
    /// Who it was issued to (`admin` for the admin key).
    pub owner: String,
    /// License: pull. Publisher: push and pull. Admin: empty, because it
    /// may do everything (see [`Credential::covers`]).
    pub grants: Vec<Grant>,
    /// When a license ends; `None` for keys that do not expire.
    pub expires_at: Option<DateTime<Utc>>,
    /// An expired license with this flag still unlocks the versions
    /// published before `expires_at`.
    pub perpetual_fallback: bool,
}

impl Credential {
    /// Whether it still unlocks anything at `now`: not expired, or expired
    /// with the perpetual fallback.
    pub(crate) fn is_usable_at(&self, now: DateTime<Utc>) -> bool {
        self.perpetual_fallback || self.expires_at.is_none_or(|end| now < end)
    }

    /// Whether this credential reaches `repository` (`namespace/worker`)
    /// at all; which actions it may take there is the token service's call.
    pub fn covers(&self, repository: &str) -> bool {
        self.kind == CredentialKind::Admin || self.grants.iter().any(|g| g.covers(repository))
    }
}

/// A customer's license, as admins see it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct License {
    /// `lic_...`.
    pub id: String,
    /// Who bought it.
    pub owner: String,
    /// The workers and namespaces it unlocks.
    pub grants: Vec<Grant>,
    /// Active or revoked. Expiry is not a status: see [`License::is_valid_at`].
    pub status: Status,
    /// When it was issued.
    pub created_at: DateTime<Utc>,
    /// When it ends; `None`: never.
    pub expires_at: Option<DateTime<Utc>>,
    /// Whether it still unlocks versions published before it expired.
    pub perpetual_fallback: bool,
    /// When it was revoked.
    pub revoked_at: Option<DateTime<Utc>>,
}

impl License {
    /// Active and not expired at `now`: unlocks everything it grants.
    pub fn is_valid_at(&self, now: DateTime<Utc>) -> bool {
        self.status == Status::Active && self.expires_at.is_none_or(|end| now < end)
    }

    /// Whether it is past its end at `now`.
    pub fn is_expired_at(&self, now: DateTime<Utc>) -> bool {
        self.expires_at.is_some_and(|end| now >= end)
    }
}

/// What an admin gives to create a license.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct NewLicense {
    /// Who it is for (a customer name or account id).
    pub owner: String,
    /// At least one worker or namespace.
    pub grants: Vec<Grant>,
    /// When it ends; `None`: never.
    #[serde(default)]
    pub expires_at: Option<DateTime<Utc>>,
    /// Keep unlocking versions published before `expires_at` afterwards.
    #[serde(default)]
    pub perpetual_fallback: bool,
}

/// A publisher's key (for CI pushes), as admins see it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct PublisherKey {
    /// `pub_...`.
    pub id: String,
    /// Who publishes with it.
    pub owner: String,
    /// The workers and namespaces it may push to.
    pub grants: Vec<Grant>,
    /// Active or revoked.
    pub status: Status,
    /// When it was issued.
    pub created_at: DateTime<Utc>,
    /// When it was revoked.
    pub revoked_at: Option<DateTime<Utc>>,
}

/// What an admin gives to create a publisher key.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct NewPublisherKey {
    /// Who publishes with it.
    pub owner: String,
    /// At least one worker or namespace.
    pub grants: Vec<Grant>,
}

/// One admin action: who did what to which record, and when.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct AuditEntry {
    /// Increasing with time.
    pub id: i64,
    /// When.
    pub at: DateTime<Utc>,
    /// Who: an admin key id (`adm_...`) for the HTTP API, `cli` for the
    /// command line on the server.
    pub actor: String,
    /// What, e.g. `license.create`.
    pub action: String,
    /// The record acted on, if any.
    pub subject: Option<String>,
    /// Non-secret detail (owner, grants, expiry...).
    pub detail: String,
}

/// Checks an owner name: some visible text, no control characters.
pub(crate) fn validate_owner(owner: &str) -> Result<(), StoreError> {
    let trimmed = owner.trim();
    if trimmed.is_empty() || owner.len() > 200 || owner.chars().any(char::is_control) {
        return Err(StoreError::Invalid(
            "an owner must be 1 to 200 characters of text, without control characters".into(),
        ));
    }
    Ok(())
}

/// Checks a grant list: at least one, each valid.
pub(crate) fn validate_grants(grants: &[Grant]) -> Result<(), StoreError> {
    if grants.is_empty() {
        return Err(StoreError::Invalid(
            "give at least one grant (worker:ID or namespace:NAME)".into(),
        ));
    }
    if grants.len() > 1000 {
        return Err(StoreError::Invalid("at most 1000 grants".into()));
    }
    grants.iter().try_for_each(Grant::validate)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn grants_parse_from_the_command_line_form_and_print_back() {
        for text in ["worker:llm-worker", "namespace:rbee-premium"] {
            assert_eq!(text.parse::<Grant>().unwrap().to_string(), text);
        }
        for bad in [
            "llm-worker",
            "worker:",
            "worker:Bad",
            "namespace:a/b",
            "repo:x",
        ] {
            assert!(bad.parse::<Grant>().is_err(), "{bad}");
        }
    }

    #[test]
    fn grants_cover_their_repositories_only() {
        let worker = Grant::Worker("llm".into());
        assert!(worker.covers("rbee-premium/llm"));
        assert!(worker.covers("rbee/llm"));
        assert!(!worker.covers("rbee-premium/llm2"));
        assert!(!worker.covers("llm"));
        let ns = Grant::Namespace("acme".into());
        assert!(ns.covers("acme/anything"));
        assert!(!ns.covers("acme2/anything"));
    }

    #[test]
    fn grants_serialize_as_tagged_json() {
        let json =
            serde_json::to_string(&[Grant::Worker("w".into()), Grant::Namespace("n".into())])
                .unwrap();
        assert_eq!(json, r#"[{"worker":"w"},{"namespace":"n"}]"#);
    }
}
