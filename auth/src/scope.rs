//! Docker token scopes (`repository:NAME:pull,push`, `registry:catalog:*`)
//! as checked types. A scope arrives in a query string from anyone, so it
//! is parsed here before it can name anything: the repository name through
//! the OCI name grammar (the same component rule as the registry's), the
//! actions from a closed set.

use std::fmt;

use crate::error::AuthError;

/// The longest repository name accepted, as in the registry.
pub const MAX_NAME_LEN: usize = 255;

/// A repository name that passed the OCI name grammar.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Repository(String);

impl Repository {
    /// Parses `s` against
    /// `[a-z0-9]+((\.|_|__|-+)[a-z0-9]+)*(/[a-z0-9]+((\.|_|__|-+)[a-z0-9]+)*)*`.
    pub fn parse(s: &str) -> Result<Self, AuthError> {
        if s.is_empty()
            || s.len() > MAX_NAME_LEN
            || !s.split('/').all(rbee_schemas::is_repository_name_component)
        {
            return Err(AuthError::BadScope(format!(
                "invalid repository name `{}`",
                s.chars().take(80).collect::<String>()
            )));
        }
        Ok(Repository(s.to_owned()))
    }

    /// The name as written.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The first path component: `rbee` in `rbee/llm-worker-rbee-cpu`.
    pub fn namespace(&self) -> &str {
        self.0.split('/').next().unwrap_or(&self.0)
    }

    /// The last path component, the worker id by the artifact contract.
    pub fn worker(&self) -> &str {
        self.0.rsplit('/').next().unwrap_or(&self.0)
    }
}

impl fmt::Display for Repository {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// What may be done to a repository.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Action {
    /// Read manifests, blobs, tags and referrers.
    Pull,
    /// Upload blobs and manifests.
    Push,
    /// Delete manifests, tags and blobs.
    Delete,
}

impl Action {
    /// Every action, in the order they are written.
    pub const ALL: [Action; 3] = [Action::Pull, Action::Push, Action::Delete];

    /// The word used in scopes and in the `access` claim.
    pub fn as_str(self) -> &'static str {
        match self {
            Action::Pull => "pull",
            Action::Push => "push",
            Action::Delete => "delete",
        }
    }

    fn parse(s: &str) -> Result<Self, AuthError> {
        match s {
            "pull" => Ok(Action::Pull),
            "push" => Ok(Action::Push),
            "delete" => Ok(Action::Delete),
            other => Err(AuthError::BadScope(format!(
                "unknown action `{}` (pull, push or delete)",
                other.chars().take(20).collect::<String>()
            ))),
        }
    }
}

/// A set of [`Action`]s.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct Actions {
    pull: bool,
    push: bool,
    delete: bool,
}

impl Actions {
    /// No action.
    pub const NONE: Actions = Actions {
        pull: false,
        push: false,
        delete: false,
    };
    /// Pull only.
    pub const PULL: Actions = Actions {
        pull: true,
        push: false,
        delete: false,
    };
    /// Pull and push.
    pub const PULL_PUSH: Actions = Actions {
        pull: true,
        push: true,
        delete: false,
    };
    /// Everything.
    pub const ALL: Actions = Actions {
        pull: true,
        push: true,
        delete: true,
    };

    /// Whether `action` is in the set.
    pub fn contains(self, action: Action) -> bool {
        match action {
            Action::Pull => self.pull,
            Action::Push => self.push,
            Action::Delete => self.delete,
        }
    }

    /// The set with `action` added.
    pub fn with(mut self, action: Action) -> Self {
        match action {
            Action::Pull => self.pull = true,
            Action::Push => self.push = true,
            Action::Delete => self.delete = true,
        }
        self
    }

    /// What both sets hold.
    pub fn intersect(self, other: Actions) -> Actions {
        Actions {
            pull: self.pull && other.pull,
            push: self.push && other.push,
            delete: self.delete && other.delete,
        }
    }

    /// What either set holds.
    pub fn union(self, other: Actions) -> Actions {
        Actions {
            pull: self.pull || other.pull,
            push: self.push || other.push,
            delete: self.delete || other.delete,
        }
    }

    /// True when no action is in the set.
    pub fn is_empty(self) -> bool {
        self == Actions::NONE
    }

    /// The actions in the set, in a fixed order.
    pub fn iter(self) -> impl Iterator<Item = Action> {
        Action::ALL.into_iter().filter(move |a| self.contains(*a))
    }

    /// Parses `pull,push`. Empty or unknown actions are an error: a scope
    /// names what it wants.
    pub fn parse(s: &str) -> Result<Self, AuthError> {
        let mut set = Actions::NONE;
        for word in s.split(',') {
            set = set.with(Action::parse(word)?);
        }
        Ok(set)
    }
}

impl fmt::Display for Actions {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let words: Vec<&str> = self.iter().map(Action::as_str).collect();
        f.write_str(&words.join(","))
    }
}

/// One scope of a token request, or one entry of a token's grant.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Scope {
    /// `repository:NAME:ACTIONS`.
    Repository(Repository, Actions),
    /// `registry:catalog:*`: listing `/v2/_catalog`.
    Catalog,
}

/// The most scopes one token request may carry.
pub const MAX_SCOPES: usize = 32;

impl Scope {
    /// Parses one `scope` value. The name may itself contain `:` only in
    /// Docker's `host:port/name` form, which a registry never sees, so the
    /// actions are read after the last `:` and the name must pass the
    /// grammar (which has no `:`).
    pub fn parse(s: &str) -> Result<Self, AuthError> {
        if s == "registry:catalog:*" {
            return Ok(Scope::Catalog);
        }
        let rest = s.strip_prefix("repository:").ok_or_else(|| {
            AuthError::BadScope(format!(
                "`{}` is neither `repository:NAME:ACTIONS` nor `registry:catalog:*`",
                s.chars().take(80).collect::<String>()
            ))
        })?;
        let (name, actions) = rest
            .rsplit_once(':')
            .ok_or_else(|| AuthError::BadScope("a repository scope needs actions".into()))?;
        Ok(Scope::Repository(
            Repository::parse(name)?,
            Actions::parse(actions)?,
        ))
    }

    /// Parses the values of repeated `scope` parameters. Docker's clients
    /// also put several scopes in one value, separated by spaces.
    pub fn parse_all<'a>(
        values: impl IntoIterator<Item = &'a str>,
    ) -> Result<Vec<Self>, AuthError> {
        let mut scopes = Vec::new();
        for value in values {
            for part in value.split(' ').filter(|p| !p.is_empty()) {
                if scopes.len() == MAX_SCOPES {
                    return Err(AuthError::BadScope(format!(
                        "more than {MAX_SCOPES} scopes"
                    )));
                }
                scopes.push(Scope::parse(part)?);
            }
        }
        Ok(scopes)
    }
}

impl fmt::Display for Scope {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Scope::Repository(name, actions) => write!(f, "repository:{name}:{actions}"),
            Scope::Catalog => f.write_str("registry:catalog:*"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scopes_round_trip() {
        for s in [
            "repository:rbee/llm-worker-rbee-cpu:pull",
            "repository:rbee-premium/x:pull,push",
            "repository:a:pull,push,delete",
            "registry:catalog:*",
        ] {
            assert_eq!(Scope::parse(s).unwrap().to_string(), s);
        }
        let s = Scope::parse("repository:a/b:push,pull").unwrap();
        assert_eq!(
            s,
            Scope::Repository(Repository::parse("a/b").unwrap(), Actions::PULL_PUSH)
        );
    }

    #[test]
    fn hostile_scopes_are_refused() {
        for s in [
            "",
            "repository:A:pull",
            "repository:../x:pull",
            "repository:a//b:pull",
            "repository:a:",
            "repository:a",
            "repository:a:admin",
            "repository:a:pull,",
            "repository(plugin):a:pull",
            "registry:catalog:pull",
            "repository:localhost:5000/a:pull",
        ] {
            assert!(Scope::parse(s).is_err(), "{s}");
        }
        let long = format!("repository:{}:pull", "a".repeat(256));
        assert!(Scope::parse(&long).is_err());
    }

    #[test]
    fn repeated_and_space_separated_scopes() {
        let all = Scope::parse_all(["repository:a:pull repository:b:push", "registry:catalog:*"])
            .unwrap();
        assert_eq!(all.len(), 3);
        let many = vec!["repository:a:pull"; MAX_SCOPES + 1];
        assert!(Scope::parse_all(many).is_err());
    }

    #[test]
    fn namespace_and_worker_of_a_name() {
        let r = Repository::parse("rbee-premium/sd-worker-rbee-cuda").unwrap();
        assert_eq!(r.namespace(), "rbee-premium");
        assert_eq!(r.worker(), "sd-worker-rbee-cuda");
        let flat = Repository::parse("solo").unwrap();
        assert_eq!((flat.namespace(), flat.worker()), ("solo", "solo"));
    }
}
