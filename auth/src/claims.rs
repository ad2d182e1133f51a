//! The JWT claims, as Docker's token specification writes them, plus the
//! license id. Times are integers (seconds since the epoch): a token that
//! writes them as strings does not deserialize and is refused.

use serde::{Deserialize, Serialize};

use crate::scope::{Actions, Repository, Scope};

/// One entry of the `access` claim: `{"type": "repository", "name":
/// "rbee/x", "actions": ["pull"]}`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AccessEntry {
    /// `repository` or `registry`.
    #[serde(rename = "type")]
    pub kind: String,
    /// The repository name, or `catalog`.
    pub name: String,
    /// `pull`, `push`, `delete`, or `*` for the catalog.
    pub actions: Vec<String>,
}

impl AccessEntry {
    /// The entry granting `scope`.
    pub fn from_scope(scope: &Scope) -> Self {
        match scope {
            Scope::Repository(name, actions) => AccessEntry {
                kind: "repository".into(),
                name: name.to_string(),
                actions: actions.iter().map(|a| a.as_str().to_owned()).collect(),
            },
            Scope::Catalog => AccessEntry {
                kind: "registry".into(),
                name: "catalog".into(),
                actions: vec!["*".into()],
            },
        }
    }

    /// The scope this entry grants, when it is one we know. Entries that
    /// are not (other resource types, unknown actions) grant nothing.
    pub fn to_scope(&self) -> Option<Scope> {
        match self.kind.as_str() {
            "registry" if self.name == "catalog" && self.actions.iter().any(|a| a == "*") => {
                Some(Scope::Catalog)
            }
            "repository" => {
                let name = Repository::parse(&self.name).ok()?;
                let actions = Actions::parse(&self.actions.join(",")).ok()?;
                Some(Scope::Repository(name, actions))
            }
            _ => None,
        }
    }
}

/// The claims of an rbee registry token. Every field but `license` is
/// required on verification.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Claims {
    /// The token service that issued it.
    pub iss: String,
    /// The credential id (`lic_...`, `pub_...`, `adm_...`), or `""` for an
    /// anonymous caller, as Docker's spec says.
    pub sub: String,
    /// The registry service the token is for.
    pub aud: String,
    /// Expiry, seconds since the epoch.
    pub exp: u64,
    /// Not valid before, seconds since the epoch.
    pub nbf: u64,
    /// Issued at, seconds since the epoch.
    pub iat: u64,
    /// A random id, unique per token (for logs and replay analysis).
    pub jti: String,
    /// What the token grants.
    pub access: Vec<AccessEntry>,
    /// The license the token was issued for, when it was a license key.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub license: Option<String>,
}
