//! Who may do what: the rules a credential carries, which namespaces are
//! public, and the grant of a token request (the intersection of what was
//! asked and what the caller may do; a partial grant is not an error).

use std::collections::BTreeMap;

use crate::scope::{Action, Actions, Repository, Scope};

/// The namespaces anyone may pull from without a credential.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PublicNamespaces(Vec<String>);

impl Default for PublicNamespaces {
    /// `rbee`: the free workers and the catalog index.
    fn default() -> Self {
        PublicNamespaces(vec!["rbee".to_owned()])
    }
}

impl PublicNamespaces {
    /// These namespaces (an empty list: no anonymous pull at all).
    pub fn new(namespaces: impl IntoIterator<Item = String>) -> Self {
        PublicNamespaces(namespaces.into_iter().collect())
    }

    /// Whether `repo` is in a public namespace.
    pub fn contains(&self, repo: &Repository) -> bool {
        self.0.iter().any(|ns| ns == repo.namespace())
    }

    /// The namespaces, for messages.
    pub fn names(&self) -> &[String] {
        &self.0
    }
}

/// What kind of secret a caller presented.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    /// A license key: pull on what it unlocks.
    License,
    /// A publisher key: pull and push on its namespaces or repositories.
    Publisher,
    /// The admin key: everything, everywhere, including the full catalog.
    Admin,
}

/// One thing a credential unlocks.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Rule {
    /// A worker id: every repository `<any namespace>/<id>`.
    Worker(String),
    /// A namespace: every repository `<ns>/...`.
    Namespace(String),
}

impl Rule {
    fn covers(&self, repo: &Repository) -> bool {
        match self {
            Rule::Worker(id) => repo.worker() == id && repo.as_str().contains('/'),
            Rule::Namespace(ns) => repo.namespace() == ns && repo.as_str().contains('/'),
        }
    }
}

/// An authenticated caller, as the token service sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Principal {
    /// What kind of key it presented.
    pub role: Role,
    /// The credential's id (never the secret): the token's `sub`.
    pub id: String,
    /// What it unlocks (ignored for [`Role::Admin`]).
    pub rules: Vec<Rule>,
    /// When the credential expires, seconds since the epoch: tokens never
    /// outlive it.
    pub expires_at: Option<u64>,
}

impl Principal {
    /// The actions this principal may take on `repo`, public namespaces
    /// included.
    pub fn allowed(&self, repo: &Repository, public: &PublicNamespaces) -> Actions {
        let base = if public.contains(repo) {
            Actions::PULL
        } else {
            Actions::NONE
        };
        let own = match self.role {
            Role::Admin => Actions::ALL,
            Role::Publisher if self.rules.iter().any(|r| r.covers(repo)) => Actions::PULL_PUSH,
            Role::License if self.rules.iter().any(|r| r.covers(repo)) => Actions::PULL,
            _ => Actions::NONE,
        };
        base.union(own)
    }
}

/// The grant for `requested` scopes: for each, what was asked and is
/// allowed, merged per repository; scopes that grant nothing are left out.
/// `principal` is `None` for an anonymous caller, who gets pull on public
/// namespaces only. `registry:catalog:*` is granted to the admin only
/// (everyone else's catalog listing is filtered to what they may pull).
pub fn grant(
    principal: Option<&Principal>,
    requested: &[Scope],
    public: &PublicNamespaces,
) -> Vec<Scope> {
    let mut repos: BTreeMap<Repository, Actions> = BTreeMap::new();
    let mut catalog = false;
    for scope in requested {
        match scope {
            Scope::Catalog => {
                catalog |= principal.is_some_and(|p| p.role == Role::Admin);
            }
            Scope::Repository(repo, asked) => {
                let allowed = match principal {
                    Some(p) => p.allowed(repo, public),
                    None if public.contains(repo) => Actions::PULL,
                    None => Actions::NONE,
                };
                let granted = asked.intersect(allowed);
                if !granted.is_empty() {
                    let entry = repos.entry(repo.clone()).or_default();
                    *entry = entry.union(granted);
                }
            }
        }
    }
    let mut out: Vec<Scope> = repos
        .into_iter()
        .map(|(repo, actions)| Scope::Repository(repo, actions))
        .collect();
    if catalog {
        out.push(Scope::Catalog);
    }
    out
}

/// What one `/v2` request needs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Access {
    /// `GET /v2/`: the version check; anyone may make it.
    Base,
    /// `GET /v2/_catalog`: anyone may list, and sees what they may pull.
    Catalog,
    /// An action on a repository.
    Repository(Repository, Action),
}

impl Access {
    /// The scope a client should ask the token service for, for the
    /// `WWW-Authenticate` challenge.
    pub fn scope(&self) -> Option<Scope> {
        match self {
            Access::Base => None,
            Access::Catalog => Some(Scope::Catalog),
            Access::Repository(repo, action) => {
                // Docker clients ask for pull along with push; asking for
                // both spares them a second round trip.
                let actions = match action {
                    Action::Pull => Actions::PULL,
                    Action::Push => Actions::PULL_PUSH,
                    Action::Delete => Actions::NONE.with(Action::Delete),
                };
                Some(Scope::Repository(repo.clone(), actions))
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn scopes(list: &[&str]) -> Vec<Scope> {
        list.iter().map(|s| Scope::parse(s).unwrap()).collect()
    }

    fn principal(role: Role, rules: Vec<Rule>) -> Principal {
        Principal {
            role,
            id: "lic_1".into(),
            rules,
            expires_at: None,
        }
    }

    #[test]
    fn anonymous_callers_get_pull_on_public_namespaces_only() {
        let public = PublicNamespaces::default();
        let asked = scopes(&[
            "repository:rbee/a:pull,push",
            "repository:rbee-premium/b:pull",
            "registry:catalog:*",
        ]);
        assert_eq!(
            grant(None, &asked, &public),
            scopes(&["repository:rbee/a:pull"])
        );
    }

    #[test]
    fn a_license_grants_pull_on_its_worker_in_any_namespace() {
        let public = PublicNamespaces::default();
        let lic = principal(Role::License, vec![Rule::Worker("b".into())]);
        let asked = scopes(&[
            "repository:rbee-premium/b:pull,push",
            "repository:rbee-premium/c:pull",
            "repository:b:pull",
        ]);
        assert_eq!(
            grant(Some(&lic), &asked, &public),
            scopes(&["repository:rbee-premium/b:pull"])
        );
    }

    #[test]
    fn a_publisher_pushes_only_into_its_namespace() {
        let public = PublicNamespaces::default();
        let publisher = principal(Role::Publisher, vec![Rule::Namespace("acme".into())]);
        let asked = scopes(&[
            "repository:acme/w:pull,push,delete",
            "repository:rbee/w:pull,push",
            "repository:rbee-premium/w:pull",
        ]);
        assert_eq!(
            grant(Some(&publisher), &asked, &public),
            scopes(&["repository:acme/w:pull,push", "repository:rbee/w:pull"])
        );
    }

    #[test]
    fn the_admin_gets_everything_and_scopes_merge() {
        let public = PublicNamespaces::new([]);
        let admin = principal(Role::Admin, vec![]);
        let asked = scopes(&[
            "repository:x/y:pull",
            "repository:x/y:delete",
            "registry:catalog:*",
        ]);
        assert_eq!(
            grant(Some(&admin), &asked, &public),
            scopes(&["repository:x/y:pull,delete", "registry:catalog:*"])
        );
    }
}
