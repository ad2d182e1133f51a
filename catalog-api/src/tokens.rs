//! The token service behind `GET /token` (docker registry token
//! authentication): the signing keys, who a presented secret belongs to,
//! and the grant. HTTP lives in `routes/token.rs`; this module knows none.
//!
//! Keys: the signing key is `<data dir>/tokens/signing-key.pk8`, generated
//! on first start (mode 0600), or the file `--token-signing-key` names. A
//! previous key (`<data dir>/tokens/previous-signing-key.pk8`, or
//! `--token-previous-key`) is published in the JWKS and still verified, but
//! never signs: that is a rotation (see `docs/security.md`).

use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use rbee_auth::{
    AuthError, IssuedToken, Issuer, Principal, PublicKey, PublicNamespaces, Role, Rule, Scope,
    SigningKey, Verifier,
};
use rbee_store::CredentialKind;

/// A credential the lookup recognised.
#[derive(Debug, Clone)]
pub struct Authenticated {
    /// Who it is and what it unlocks.
    pub principal: Principal,
    /// The license id, when the secret was a license key (it travels in
    /// the token).
    pub license: Option<String>,
}

/// The lookup failed (the database is down): not the caller's fault.
#[derive(Debug, thiserror::Error)]
#[error("credential lookup failed: {0}")]
pub struct LookupError(pub String);

/// Turns a presented secret (`rbee_lic_...`, `rbee_pub_...`,
/// `rbee_adm_...`) into who it belongs to. The store implements it; the
/// trait keeps the token service testable without a database.
#[async_trait]
pub trait CredentialLookup: Send + Sync + fmt::Debug {
    /// `Ok(None)` for a malformed, unknown, revoked or expired secret.
    async fn authenticate(&self, secret: &str) -> Result<Option<Authenticated>, LookupError>;
}

/// The catalog's database answers for the token service: a store
/// credential becomes a [`Principal`] (its kind the role, its grants the
/// rules, its expiry the tokens' limit).
///
/// Always from the database, never from the store's credential cache: a
/// token lives up to 60 s and clients assume it does (Docker's token
/// specification), so the 60 s within which a revocation reaches every
/// token can only hold if no token is issued on a stale answer.
#[async_trait]
impl CredentialLookup for rbee_store::Store {
    async fn authenticate(&self, secret: &str) -> Result<Option<Authenticated>, LookupError> {
        let found = rbee_store::Store::authenticate_fresh(self, secret)
            .await
            .map_err(|e| LookupError(e.to_string()))?;
        Ok(found.map(|credential| {
            let role = match credential.kind {
                CredentialKind::License => Role::License,
                CredentialKind::Publisher => Role::Publisher,
                CredentialKind::Admin => Role::Admin,
            };
            let rules = credential
                .grants
                .iter()
                .map(|g| match g {
                    rbee_store::Grant::Worker(id) => Rule::Worker(id.clone()),
                    rbee_store::Grant::Namespace(ns) => Rule::Namespace(ns.clone()),
                })
                .collect();
            Authenticated {
                license: (role == Role::License).then(|| credential.id.clone()),
                principal: Principal {
                    role,
                    id: credential.id,
                    rules,
                    expires_at: credential
                        .expires_at
                        .map(|at| u64::try_from(at.timestamp()).unwrap_or(0)),
                },
            }
        }))
    }
}

/// How the token service and the embedded registry's gate are set up.
#[derive(Debug, Clone)]
pub struct TokenConfig {
    /// A signing key file (PKCS#8, PEM or DER); default: generated into
    /// `<data dir>/tokens/signing-key.pk8`.
    pub signing_key: Option<PathBuf>,
    /// The key being rotated out (published and verified, never used to
    /// sign); default: `<data dir>/tokens/previous-signing-key.pk8` if it
    /// exists.
    pub previous_key: Option<PathBuf>,
    /// The registry service name (tokens' `aud`).
    pub service: String,
    /// The issuer name (tokens' `iss`).
    pub issuer: String,
    /// How long tokens live: 1 s to [`rbee_auth::token::MAX_TTL`] (60 s,
    /// the default); shorter only for tests and tight revocation needs
    /// (clients fetch tokens more often).
    pub ttl: Duration,
    /// Namespaces anyone may pull from.
    pub public: PublicNamespaces,
    /// Whether public namespaces may be read without any token.
    pub anonymous_pull: bool,
    /// Development only: the embedded registry lets loopback callers do
    /// everything without a token.
    pub dev_open_loopback: bool,
    /// Who presented secrets belong to; `None`: the catalog's store.
    pub credentials: Option<Arc<dyn CredentialLookup>>,
}

impl Default for TokenConfig {
    fn default() -> Self {
        TokenConfig {
            signing_key: None,
            previous_key: None,
            service: rbee_auth::token::DEFAULT_SERVICE.into(),
            issuer: rbee_auth::token::DEFAULT_ISSUER.into(),
            ttl: rbee_auth::token::DEFAULT_TTL,
            public: PublicNamespaces::default(),
            anonymous_pull: true,
            dev_open_loopback: false,
            credentials: None,
        }
    }
}

/// Why no token was issued.
#[derive(Debug, thiserror::Error)]
pub enum TokenError {
    /// A secret was presented and it is not a valid credential.
    #[error("the credentials are not valid")]
    BadCredentials,
    /// The credential could not be looked up.
    #[error(transparent)]
    Lookup(#[from] LookupError),
    /// Signing failed.
    #[error(transparent)]
    Sign(#[from] AuthError),
}

/// The token service.
#[derive(Debug)]
pub struct TokenService {
    issuer: Issuer,
    previous: Option<PublicKey>,
    public: PublicNamespaces,
    credentials: Arc<dyn CredentialLookup>,
    jwks: String,
}

impl TokenService {
    /// Loads (or generates) the keys as `config` says, keys kept under
    /// `data_dir`; secrets are looked up in `credentials`.
    pub fn open(
        config: &TokenConfig,
        credentials: Arc<dyn CredentialLookup>,
        data_dir: &Path,
    ) -> Result<Self, AuthError> {
        let dir = data_dir.join("tokens");
        let key = match &config.signing_key {
            Some(path) => SigningKey::read(path)?,
            None => SigningKey::load_or_generate(&dir.join("signing-key.pk8"))?,
        };
        let previous_path = config
            .previous_key
            .clone()
            .or_else(|| Some(dir.join("previous-signing-key.pk8")).filter(|p| p.exists()));
        let previous = previous_path
            .map(|p| SigningKey::read(&p).map(|k| k.public().clone()))
            .transpose()?
            .filter(|p| p.kid() != key.kid());
        let jwks = rbee_auth::jwks(std::iter::once(key.public()).chain(previous.as_ref()));
        let jwks = serde_json::to_string(&jwks).map_err(|e| AuthError::Jwks(e.to_string()))?;
        Ok(TokenService {
            issuer: Issuer::new(key, config.issuer.clone(), config.service.clone()).with_ttl(
                config
                    .ttl
                    .clamp(Duration::from_secs(1), rbee_auth::token::MAX_TTL),
            ),
            previous,
            public: config.public.clone(),
            credentials,
            jwks,
        })
    }

    /// The registry service name its tokens are for.
    pub fn service(&self) -> &str {
        self.issuer.audience()
    }

    /// The JWKS document: the signing key and, during a rotation, the
    /// previous one.
    pub fn jwks(&self) -> &str {
        &self.jwks
    }

    /// A verifier for its tokens (for the embedded registry's gate).
    pub fn verifier(&self) -> Verifier {
        Verifier::new(
            std::iter::once(self.issuer.key().public()).chain(self.previous.as_ref()),
            self.issuer.issuer(),
            self.issuer.audience(),
        )
    }

    /// A token for `scopes`, granted to whoever `secret` belongs to
    /// (`None`: anonymous). A secret that is not a valid credential is an
    /// error, not an anonymous token: a client whose key was revoked must
    /// learn it.
    pub async fn token(
        &self,
        secret: Option<&str>,
        scopes: &[Scope],
    ) -> Result<IssuedToken, TokenError> {
        let caller = match secret {
            Some(secret) => Some(
                self.credentials
                    .authenticate(secret)
                    .await?
                    .ok_or(TokenError::BadCredentials)?,
            ),
            None => None,
        };
        let principal = caller.as_ref().map(|c| &c.principal);
        if principal
            .and_then(|p| p.expires_at)
            .is_some_and(|at| at <= rbee_auth::token::unix_now())
        {
            // An expired license with a perpetual fallback still unlocks
            // old versions through the catalog's downloads; registry tokens
            // cannot tell versions apart, so it gets none.
            return Err(TokenError::BadCredentials);
        }
        let granted = rbee_auth::grant(principal, scopes, &self.public);
        let license = caller.as_ref().and_then(|c| c.license.as_deref());
        Ok(self.issuer.issue(principal, license, &granted)?)
    }
}
