//! Docker-style registry tokens for rbee (the token authentication of the
//! distribution specification): scopes as checked types, the JWT claims,
//! Ed25519 signing keys with their JWKS, the grant rules, and a verifier
//! with the algorithm pinned. No HTTP framework and no database: the
//! catalog's `/token` route and the registry's access gate sit on top.
//! See `docs/security.md` for the threat model.

pub mod claims;
pub mod error;
pub mod grant;
pub mod keys;
pub mod scope;
pub mod token;

pub use error::AuthError;
pub use grant::{Access, Principal, PublicNamespaces, Role, Rule, grant};
pub use keys::{PublicKey, SigningKey, jwks, parse_jwks};
pub use scope::{Action, Actions, Repository, Scope};
pub use token::{IssuedToken, Issuer, VerifiedToken, Verifier};
