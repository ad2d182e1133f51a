//! The access gate: for every `/v2` request, the access it needs (from
//! [`crate::api`]'s `route::access`) against who is asking. It runs before
//! any handler; handlers see the resulting [`Caller`] only where what they
//! show depends on it (the `_catalog` listing, the source of a mount).
//!
//! Who is asking is a bearer token from the token service (docker token
//! auth, verified by [`rbee_auth::Verifier`]), or nobody. Nobody may pull
//! from public namespaces (unless `anonymous_pull` is off) and make the
//! `/v2/` version check when no token service is configured. Everything
//! else needs a token that grants it; without one the answer is 401 with a
//! `WWW-Authenticate: Bearer` challenge naming the token service, so
//! standard clients fetch a token and retry by themselves.

use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;

use axum::extract::{ConnectInfo, Request};
use axum::http::header;
use rbee_auth::{Access, Action, PublicNamespaces, Repository, VerifiedToken, Verifier};

use crate::error::{RegistryError, Result};

/// The token service a registry trusts.
#[derive(Debug, Clone)]
pub struct TokenAuth {
    /// Checks tokens: the service's public keys, issuer and audience.
    pub verifier: Arc<Verifier>,
    /// Where clients get tokens (`https://catalog.example/token`).
    pub realm: String,
    /// The service name clients pass to the realm (the tokens' `aud`).
    pub service: String,
}

/// Who may do what on this registry.
#[derive(Debug, Clone)]
pub struct AccessConfig {
    /// The token service; `None`: no tokens are accepted, so only what
    /// anonymous callers may do is possible (reads of public namespaces).
    pub tokens: Option<TokenAuth>,
    /// Namespaces anyone may read.
    pub public: PublicNamespaces,
    /// Whether public namespaces may be read without any token.
    pub anonymous_pull: bool,
    /// Development only: callers on a loopback address may do everything
    /// without a token. Never for a registry behind a proxy on the same
    /// host (every caller would then come from loopback).
    pub dev_open_loopback: bool,
}

impl Default for AccessConfig {
    /// No token service, public namespaces readable, nothing writable.
    fn default() -> Self {
        AccessConfig {
            tokens: None,
            public: PublicNamespaces::default(),
            anonymous_pull: true,
            dev_open_loopback: false,
        }
    }
}

/// Logs at start what the access configuration allows, loudly when the
/// development switch is on.
pub fn announce(config: &AccessConfig) {
    if config.dev_open_loopback {
        tracing::warn!(
            "DEVELOPMENT MODE (--dev-open-loopback): anyone connecting from a loopback address \
             may pull, push and delete ANY repository WITHOUT A TOKEN. Never use this behind a \
             reverse proxy on the same host or in production."
        );
    }
    match &config.tokens {
        Some(auth) => {
            tracing::info!(realm = %auth.realm, service = %auth.service, "registry tokens required for writes and private reads")
        }
        None if !config.dev_open_loopback => tracing::warn!(
            "no token service configured: public namespaces are readable, every push and delete is refused \
             (give --token-realm and --token-jwks, or --dev-open-loopback for development)"
        ),
        None => {}
    }
    if config.anonymous_pull {
        tracing::info!(public = ?config.public.names(), "anonymous pull allowed on public namespaces");
    }
}

/// Who made a request, once the gate let it through. Inserted into the
/// request's extensions, for the request context of events.
#[derive(Debug, Clone, Default)]
pub struct Caller {
    /// The verified token, if one was presented.
    pub token: Option<VerifiedToken>,
    /// Let in by the development switch: may do everything.
    pub open: bool,
    /// The namespaces anyone may read (copied from the config).
    public: Option<PublicNamespaces>,
    /// Whether they may be read without a token.
    anonymous_pull: bool,
}

impl Caller {
    /// The authenticated subject (the credential id), for events.
    pub fn subject(&self) -> Option<&str> {
        self.token
            .as_ref()
            .map(|t| t.subject.as_str())
            .filter(|s| !s.is_empty())
    }

    /// Whether this caller may pull `repo` (for the catalog listing and
    /// the source of a cross-repository mount).
    pub fn may_pull(&self, repo: &str) -> bool {
        let Ok(repo) = Repository::parse(repo) else {
            return false;
        };
        self.open
            || self
                .token
                .as_ref()
                .is_some_and(|t| t.lists_everything() || t.actions(&repo).contains(Action::Pull))
            || (self.anonymous_pull && self.public.as_ref().is_some_and(|p| p.contains(&repo)))
    }
}

/// Lets `req` through for `access`, or says why not.
pub fn check(config: &AccessConfig, access: &Access, req: &Request) -> Result<Caller> {
    let mut caller = Caller {
        token: None,
        open: false,
        public: Some(config.public.clone()),
        anonymous_pull: config.anonymous_pull,
    };
    let presented = bearer(req);
    if let (Some(token), Some(auth)) = (presented, &config.tokens) {
        match auth.verifier.verify(token) {
            Ok(token) => caller.token = Some(token),
            Err(e) => {
                // The reason goes to the log at debug level; never the token.
                tracing::debug!(error = %e, "bearer token refused");
                if !dev_open(config, req) {
                    return Err(challenge(config, access, Some("invalid_token")));
                }
            }
        }
    }
    if dev_open(config, req) {
        caller.open = true;
        return Ok(caller);
    }
    let allowed = match access {
        Access::Base => config.tokens.is_none() || caller.token.is_some(),
        Access::Catalog => true,
        Access::Repository(repo, action) => {
            caller.token.as_ref().is_some_and(|t| t.allows(access))
                || (*action == Action::Pull
                    && config.anonymous_pull
                    && config.public.contains(repo))
        }
    };
    if allowed {
        return Ok(caller);
    }
    let error = caller.token.is_some().then_some("insufficient_scope");
    Err(challenge(config, access, error))
}

/// The `Bearer` token of `Authorization`, if any. Basic credentials are
/// not tokens: they go to the token service, not here.
fn bearer(req: &Request) -> Option<&str> {
    let value = req.headers().get(header::AUTHORIZATION)?.to_str().ok()?;
    let (scheme, token) = value.split_once(' ')?;
    scheme
        .eq_ignore_ascii_case("bearer")
        .then(|| token.trim())
        .filter(|t| !t.is_empty())
}

fn dev_open(config: &AccessConfig, req: &Request) -> bool {
    config.dev_open_loopback && peer(req).is_some_and(|ip| ip.is_loopback())
}

/// The address the connection came from, when the server recorded it.
pub fn peer(req: &Request) -> Option<IpAddr> {
    req.extensions()
        .get::<ConnectInfo<SocketAddr>>()
        .map(|c| c.0.ip())
}

/// The refusal for `access`: a Bearer challenge when there is a token
/// service to send the client to, else a plain denial.
fn challenge(config: &AccessConfig, access: &Access, error: Option<&str>) -> RegistryError {
    let Some(auth) = &config.tokens else {
        return RegistryError::Denied(
            "this registry accepts no tokens: only public repositories can be read".into(),
        );
    };
    // Realm, service and scope are operator- or grammar-checked values
    // (scope names pass the name grammar: no quotes).
    let mut value = format!(
        "Bearer realm=\"{}\",service=\"{}\"",
        auth.realm.replace('"', ""),
        auth.service.replace('"', "")
    );
    if let Some(scope) = access.scope() {
        value.push_str(&format!(",scope=\"{scope}\""));
    }
    if let Some(error) = error {
        value.push_str(&format!(",error=\"{error}\""));
    }
    RegistryError::Unauthorized { challenge: value }
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::body::Body;

    fn request_from(peer: &str) -> Request {
        let mut req = Request::new(Body::empty());
        req.extensions_mut()
            .insert(ConnectInfo(peer.parse::<SocketAddr>().unwrap()));
        req
    }

    fn push() -> Access {
        Access::Repository(Repository::parse("rbee/w").unwrap(), Action::Push)
    }

    #[test]
    fn the_development_switch_opens_loopback_callers_only() {
        let config = AccessConfig {
            dev_open_loopback: true,
            ..AccessConfig::default()
        };
        for peer in ["127.0.0.1:5000", "[::1]:5000"] {
            assert!(
                check(&config, &push(), &request_from(peer)).unwrap().open,
                "{peer}"
            );
        }
        for peer in ["10.0.0.7:5000", "192.168.1.2:1", "[2001:db8::1]:5000"] {
            assert!(
                check(&config, &push(), &request_from(peer)).is_err(),
                "{peer}"
            );
        }
        // No recorded peer: not loopback.
        assert!(check(&config, &push(), &Request::new(Body::empty())).is_err());
        // Off by default.
        let closed = AccessConfig::default();
        assert!(check(&closed, &push(), &request_from("127.0.0.1:1")).is_err());
    }
}
