//! Issuing and verifying tokens.
//!
//! The verifier trusts nothing the token says about how to check it: the
//! algorithm is pinned to EdDSA (so `alg: none` and HS256-with-the-public-
//! key fail before any signature check), the key is looked up by `kid` in
//! the keys it was given (a `jwk`, `jku`, `x5u` or `x5c` header is refused
//! outright rather than ignored), and every claim must be present with the
//! right type, issuer and audience.

use std::collections::{BTreeMap, HashMap};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use chrono::{DateTime, Utc};
use jsonwebtoken::{Algorithm, DecodingKey, Header, Validation};

use crate::claims::{AccessEntry, Claims};
use crate::error::AuthError;
use crate::grant::{Access, Principal};
use crate::keys::{PublicKey, SigningKey};
use crate::scope::{Actions, Repository, Scope};

/// The one algorithm tokens are signed and verified with.
pub const ALGORITHM: Algorithm = Algorithm::EdDSA;

/// The default registry service name: tokens' `aud`, challenges' `service`.
pub const DEFAULT_SERVICE: &str = "rbee-registry";

/// The default issuer name: tokens' `iss`.
pub const DEFAULT_ISSUER: &str = "rbee-token-service";

/// How long a token lives. Docker's token specification asks for at least
/// 60 seconds (clients such as skopeo assume it), and revocation must
/// reach issued tokens within 60 seconds: exactly 60 meets both.
pub const DEFAULT_TTL: Duration = Duration::from_secs(60);

/// The longest a token may live (and the bound on how long a revoked
/// credential's tokens keep working): the token service refuses to be
/// configured longer.
pub const MAX_TTL: Duration = Duration::from_secs(60);

/// How far `nbf` is set before `iat`, so that a verifier whose clock is a
/// little behind the issuer's accepts a fresh token.
pub const NBF_BACKDATE: u64 = 10;

/// Seconds since the epoch, now.
pub fn unix_now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

/// A signed token, as the token endpoint answers it.
#[derive(Debug, Clone)]
pub struct IssuedToken {
    /// The compact JWT.
    pub token: String,
    /// Seconds it stays valid.
    pub expires_in: u64,
    /// When it was issued (RFC 3339 in the answer).
    pub issued_at: DateTime<Utc>,
    /// Its `jti`, for logs.
    pub jti: String,
}

/// Signs tokens for one registry service.
#[derive(Debug)]
pub struct Issuer {
    key: SigningKey,
    issuer: String,
    audience: String,
    ttl: Duration,
}

impl Issuer {
    /// Tokens signed with `key`, naming `issuer` and the registry service
    /// `audience`, living [`DEFAULT_TTL`].
    pub fn new(key: SigningKey, issuer: impl Into<String>, audience: impl Into<String>) -> Self {
        Issuer {
            key,
            issuer: issuer.into(),
            audience: audience.into(),
            ttl: DEFAULT_TTL,
        }
    }

    /// Changes the token lifetime.
    pub fn with_ttl(mut self, ttl: Duration) -> Self {
        self.ttl = ttl;
        self
    }

    /// The signing key.
    pub fn key(&self) -> &SigningKey {
        &self.key
    }

    /// The `iss` of its tokens.
    pub fn issuer(&self) -> &str {
        &self.issuer
    }

    /// The `aud` of its tokens: the registry service name.
    pub fn audience(&self) -> &str {
        &self.audience
    }

    /// A token granting `granted` to `principal` (`None`: anonymous).
    pub fn issue(
        &self,
        principal: Option<&Principal>,
        license: Option<&str>,
        granted: &[Scope],
    ) -> Result<IssuedToken, AuthError> {
        self.issue_at(unix_now(), principal, license, granted)
    }

    /// [`Issuer::issue`] as if the time were `now` (seconds since the
    /// epoch). A token never outlives its credential.
    pub fn issue_at(
        &self,
        now: u64,
        principal: Option<&Principal>,
        license: Option<&str>,
        granted: &[Scope],
    ) -> Result<IssuedToken, AuthError> {
        let mut exp = now.saturating_add(self.ttl.as_secs());
        if let Some(limit) = principal.and_then(|p| p.expires_at) {
            exp = exp.min(limit);
        }
        let mut jti = [0u8; 16];
        aws_lc_rs::rand::fill(&mut jti).map_err(|e| AuthError::Sign(e.to_string()))?;
        let claims = Claims {
            iss: self.issuer.clone(),
            sub: principal.map(|p| p.id.clone()).unwrap_or_default(),
            aud: self.audience.clone(),
            exp,
            nbf: now.saturating_sub(NBF_BACKDATE),
            iat: now,
            jti: hex::encode(jti),
            access: granted.iter().map(AccessEntry::from_scope).collect(),
            license: license.map(str::to_owned),
        };
        let mut header = Header::new(ALGORITHM);
        header.kid = Some(self.key.kid().to_owned());
        let token = jsonwebtoken::encode(&header, &claims, self.key.encoding())
            .map_err(|e| AuthError::Sign(e.to_string()))?;
        Ok(IssuedToken {
            token,
            expires_in: exp.saturating_sub(now),
            issued_at: DateTime::from_timestamp(now as i64, 0).unwrap_or_default(),
            jti: claims.jti,
        })
    }
}

/// Tokens a [`Verifier`] remembers having verified: enough for the
/// clients of a busy registry (a client reuses its token for every request
/// of a pull), a few MB at most.
pub const VERIFIED_CACHE_CAPACITY: usize = 4096;

/// Checks tokens for one registry service against a fixed set of keys.
///
/// A token that verified is remembered (by its exact text, at most
/// [`VERIFIED_CACHE_CAPACITY`] of them): the same bytes again skip the
/// signature check, which is most of a request's cost, and only `exp` and
/// `nbf` are checked against the clock. Nothing else about a token can
/// change, since the keys, issuer and audience of a verifier are fixed.
pub struct Verifier {
    keys: HashMap<String, DecodingKey>,
    validation: Validation,
    verified: quick_cache::sync::Cache<String, Verified>,
}

/// A token that passed, with the times it must still be checked against.
#[derive(Clone)]
struct Verified {
    token: VerifiedToken,
    exp: u64,
    nbf: u64,
}

impl std::fmt::Debug for Verifier {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Verifier")
            .field("kids", &self.keys.keys().collect::<Vec<_>>())
            .field("iss", &self.validation.iss)
            .field("aud", &self.validation.aud)
            .field("verified", &self.verified.len())
            .finish()
    }
}

impl Verifier {
    /// Accepts tokens signed by one of `keys`, issued by `issuer` for the
    /// registry service `audience`, with no leeway on `exp` and `nbf`
    /// (see [`DEFAULT_TTL`] and [`NBF_BACKDATE`] for why none is needed).
    pub fn new<'a>(
        keys: impl IntoIterator<Item = &'a PublicKey>,
        issuer: &str,
        audience: &str,
    ) -> Self {
        let mut validation = Validation::new(ALGORITHM);
        validation.algorithms = vec![ALGORITHM];
        validation.set_issuer(&[issuer]);
        validation.set_audience(&[audience]);
        validation.set_required_spec_claims(&["exp", "nbf", "iss", "aud", "sub"]);
        validation.validate_exp = true;
        validation.validate_nbf = true;
        validation.leeway = 0;
        Verifier {
            keys: keys
                .into_iter()
                .map(|k| (k.kid().to_owned(), k.decoding()))
                .collect(),
            validation,
            verified: quick_cache::sync::Cache::new(VERIFIED_CACHE_CAPACITY),
        }
    }

    /// How many verified tokens it remembers.
    pub fn remembered(&self) -> usize {
        self.verified.len()
    }

    /// Tolerates `seconds` of clock difference on `exp` and `nbf`.
    pub fn with_leeway(mut self, seconds: u64) -> Self {
        self.validation.leeway = seconds;
        self
    }

    /// Verifies `token` and returns what it grants.
    pub fn verify(&self, token: &str) -> Result<VerifiedToken, AuthError> {
        self.verify_at(token, unix_now())
    }

    /// [`Verifier::verify`] with `exp` and `nbf` checked against `now` too
    /// (the signature check itself reads the clock).
    pub fn verify_at(&self, token: &str, now: u64) -> Result<VerifiedToken, AuthError> {
        let verified = match self.verified.get(token) {
            Some(hit) => hit,
            None => {
                let verified = self.verify_signed(token)?;
                self.verified.insert(token.to_owned(), verified.clone());
                verified
            }
        };
        let leeway = self.validation.leeway;
        if verified.exp < now.saturating_sub(leeway) {
            return Err(AuthError::Rejected("the token has expired".into()));
        }
        if verified.nbf > now.saturating_add(leeway) {
            return Err(AuthError::Rejected("the token is not valid yet".into()));
        }
        Ok(verified.token)
    }

    /// The full check: header, key, signature, claims.
    fn verify_signed(&self, token: &str) -> Result<Verified, AuthError> {
        let reject = |why: String| AuthError::Rejected(why);
        let header = jsonwebtoken::decode_header(token)
            .map_err(|e| reject(format!("unreadable header: {e}")))?;
        if header.alg != ALGORITHM {
            return Err(reject(format!(
                "algorithm {:?} is not accepted",
                header.alg
            )));
        }
        if header.jwk.is_some()
            || header.jku.is_some()
            || header.x5u.is_some()
            || header.x5c.is_some()
            || header.crit.is_some()
        {
            return Err(reject(
                "the header names its own key (jwk, jku, x5u, x5c) or critical extensions".into(),
            ));
        }
        let kid = header
            .kid
            .as_deref()
            .ok_or_else(|| reject("no kid".into()))?;
        let key = self
            .keys
            .get(kid)
            .ok_or_else(|| reject("unknown kid".into()))?;
        let data = jsonwebtoken::decode::<Claims>(token, key, &self.validation)
            .map_err(|e| reject(e.to_string()))?;
        let claims = data.claims;
        let mut grants: BTreeMap<Repository, Actions> = BTreeMap::new();
        let mut catalog = false;
        for scope in claims.access.iter().filter_map(AccessEntry::to_scope) {
            match scope {
                Scope::Catalog => catalog = true,
                Scope::Repository(repo, actions) => {
                    let entry = grants.entry(repo).or_default();
                    *entry = entry.union(actions);
                }
            }
        }
        Ok(Verified {
            exp: claims.exp,
            nbf: claims.nbf,
            token: VerifiedToken {
                subject: claims.sub,
                license: claims.license,
                jti: claims.jti,
                grants,
                catalog,
            },
        })
    }
}

/// A token that passed [`Verifier::verify`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VerifiedToken {
    /// The credential id (`""` for an anonymous token).
    pub subject: String,
    /// The license it was issued for, if any.
    pub license: Option<String>,
    /// Its `jti`.
    pub jti: String,
    grants: BTreeMap<Repository, Actions>,
    catalog: bool,
}

impl VerifiedToken {
    /// Whether the token grants `access`. The base and the catalog listing
    /// need no grant (the listing is filtered instead).
    pub fn allows(&self, access: &Access) -> bool {
        match access {
            Access::Base | Access::Catalog => true,
            Access::Repository(repo, action) => self.actions(repo).contains(*action),
        }
    }

    /// What the token grants on `repo`.
    pub fn actions(&self, repo: &Repository) -> Actions {
        self.grants.get(repo).copied().unwrap_or_default()
    }

    /// Whether it holds `registry:catalog:*` (the full listing).
    pub fn lists_everything(&self) -> bool {
        self.catalog
    }
}

#[cfg(test)]
mod tests;
