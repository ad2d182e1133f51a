//! Signing keys and the JWKS document.
//!
//! Tokens are signed with Ed25519 (JWS `EdDSA`): small keys, deterministic
//! signatures (no per-signature nonce to get wrong), and one curve with no
//! parameters to choose. Keys are PKCS#8 documents: generated with
//! `aws-lc-rs` (already in the tree as rustls' and jsonwebtoken's crypto
//! backend, so no extra crypto crate), or read from a file an operator made
//! with `openssl genpkey -algorithm ed25519` (PEM or DER). A key's `kid` is
//! its RFC 7638 thumbprint, so the same key always has the same id.

use std::io::Write;
use std::path::Path;

use aws_lc_rs::signature::{Ed25519KeyPair, KeyPair};
use base64::Engine as _;
use jsonwebtoken::jwk::{
    AlgorithmParameters, CommonParameters, EllipticCurve, Jwk, JwkSet, KeyAlgorithm,
    OctetKeyPairParameters, OctetKeyPairType, PublicKeyUse, ThumbprintHash,
};
use jsonwebtoken::{DecodingKey, EncodingKey};

use crate::error::AuthError;

/// The most public keys a JWKS may hold: the signing key and the one it
/// replaced, during a rotation.
pub const MAX_ACTIVE_KEYS: usize = 2;

/// A private signing key with its id.
pub struct SigningKey {
    encoding: EncodingKey,
    public: PublicKey,
}

impl std::fmt::Debug for SigningKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Never print the private half.
        f.debug_struct("SigningKey")
            .field("kid", &self.public.kid)
            .finish_non_exhaustive()
    }
}

impl SigningKey {
    /// A fresh key, and its PKCS#8 document to keep.
    pub fn generate() -> Result<(SigningKey, Vec<u8>), AuthError> {
        let pair = Ed25519KeyPair::generate().map_err(|e| AuthError::Sign(e.to_string()))?;
        let der = pair
            .to_pkcs8()
            .map_err(|e| AuthError::Sign(e.to_string()))?
            .as_ref()
            .to_vec();
        Ok((SigningKey::from_pkcs8(&der, "generated")?, der))
    }

    /// The key in a PKCS#8 document (v1 or v2). `origin` names it in errors.
    pub fn from_pkcs8(der: &[u8], origin: &str) -> Result<SigningKey, AuthError> {
        let pair = Ed25519KeyPair::from_pkcs8(der).map_err(|e| AuthError::Key {
            path: origin.to_owned(),
            message: format!("not an Ed25519 PKCS#8 private key: {e}"),
        })?;
        Ok(SigningKey {
            encoding: EncodingKey::from_ed_der(der),
            public: PublicKey::new(pair.public_key().as_ref().to_vec()),
        })
    }

    /// Reads a key file: PKCS#8 DER, or PEM (`-----BEGIN PRIVATE KEY-----`).
    pub fn read(path: &Path) -> Result<SigningKey, AuthError> {
        let err = |message: String| AuthError::Key {
            path: path.display().to_string(),
            message,
        };
        let bytes = std::fs::read(path).map_err(|e| err(e.to_string()))?;
        let der = if bytes.starts_with(b"-----BEGIN") {
            pem_body(&bytes).ok_or_else(|| err("malformed PEM".into()))?
        } else {
            bytes
        };
        SigningKey::from_pkcs8(&der, &path.display().to_string())
    }

    /// Reads the key at `path`, or generates one there (mode 0600, written
    /// whole to a temporary file and renamed, so a crash leaves no half
    /// key) when there is none.
    pub fn load_or_generate(path: &Path) -> Result<SigningKey, AuthError> {
        if path.exists() {
            return SigningKey::read(path);
        }
        let err = |e: std::io::Error| AuthError::Key {
            path: path.display().to_string(),
            message: e.to_string(),
        };
        let (key, der) = SigningKey::generate()?;
        let dir = path.parent().unwrap_or(Path::new("."));
        std::fs::create_dir_all(dir).map_err(err)?;
        let mut tmp = tempfile::NamedTempFile::new_in(dir).map_err(err)?;
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            tmp.as_file()
                .set_permissions(std::fs::Permissions::from_mode(0o600))
                .map_err(err)?;
        }
        tmp.write_all(&der).map_err(err)?;
        tmp.as_file().sync_all().map_err(err)?;
        tmp.persist(path).map_err(|e| err(e.error))?;
        tracing::info!(path = %path.display(), kid = %key.kid(), "generated a token signing key");
        Ok(key)
    }

    /// The key id (`kid`).
    pub fn kid(&self) -> &str {
        &self.public.kid
    }

    /// The public half.
    pub fn public(&self) -> &PublicKey {
        &self.public
    }

    pub(crate) fn encoding(&self) -> &EncodingKey {
        &self.encoding
    }
}

/// The base64 body of a PEM document.
fn pem_body(bytes: &[u8]) -> Option<Vec<u8>> {
    let text = std::str::from_utf8(bytes).ok()?;
    let body: String = text
        .lines()
        .filter(|l| !l.starts_with("-----"))
        .map(str::trim)
        .collect();
    base64::engine::general_purpose::STANDARD.decode(body).ok()
}

/// An Ed25519 public key with its id.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PublicKey {
    kid: String,
    raw: Vec<u8>,
}

impl PublicKey {
    fn new(raw: Vec<u8>) -> PublicKey {
        let mut key = PublicKey {
            kid: String::new(),
            raw,
        };
        key.kid = key.to_jwk().thumbprint(ThumbprintHash::SHA256);
        key
    }

    /// The key id (`kid`).
    pub fn kid(&self) -> &str {
        &self.kid
    }

    /// The key as a JWK (`kty: OKP`, `crv: Ed25519`, `alg: EdDSA`,
    /// `use: sig`).
    pub fn to_jwk(&self) -> Jwk {
        Jwk {
            common: CommonParameters {
                public_key_use: Some(PublicKeyUse::Signature),
                key_algorithm: Some(KeyAlgorithm::EdDSA),
                key_id: (!self.kid.is_empty()).then(|| self.kid.clone()),
                ..Default::default()
            },
            algorithm: AlgorithmParameters::OctetKeyPair(OctetKeyPairParameters {
                key_type: OctetKeyPairType::OctetKeyPair,
                curve: EllipticCurve::Ed25519,
                x: base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(&self.raw),
            }),
        }
    }

    /// Reads an Ed25519 key from a JWK. Keys of any other kind, without a
    /// `kid`, or whose `kid` is not their thumbprint are refused, so a key
    /// set cannot smuggle in an RSA or HMAC key.
    pub fn from_jwk(jwk: &Jwk) -> Result<PublicKey, AuthError> {
        let AlgorithmParameters::OctetKeyPair(params) = &jwk.algorithm else {
            return Err(AuthError::Jwks(
                "only Ed25519 (OKP) keys are accepted".into(),
            ));
        };
        if params.curve != EllipticCurve::Ed25519
            || !matches!(jwk.common.key_algorithm, None | Some(KeyAlgorithm::EdDSA))
        {
            return Err(AuthError::Jwks(
                "only Ed25519 (EdDSA) keys are accepted".into(),
            ));
        }
        let raw = base64::engine::general_purpose::URL_SAFE_NO_PAD
            .decode(&params.x)
            .ok()
            .filter(|raw| raw.len() == 32)
            .ok_or_else(|| AuthError::Jwks("`x` is not a 32-byte Ed25519 key".into()))?;
        let key = PublicKey::new(raw);
        match &jwk.common.key_id {
            Some(kid) if *kid == key.kid => Ok(key),
            Some(kid) => Err(AuthError::Jwks(format!(
                "kid `{kid}` is not the key's RFC 7638 thumbprint"
            ))),
            None => Err(AuthError::Jwks("a key without `kid`".into())),
        }
    }

    pub(crate) fn decoding(&self) -> DecodingKey {
        DecodingKey::from_ed_der(&self.raw)
    }
}

/// The JWKS document of `keys` (at most [`MAX_ACTIVE_KEYS`]; extra keys
/// are left out, the first ones kept).
pub fn jwks<'a>(keys: impl IntoIterator<Item = &'a PublicKey>) -> JwkSet {
    JwkSet {
        keys: keys
            .into_iter()
            .take(MAX_ACTIVE_KEYS)
            .map(PublicKey::to_jwk)
            .collect(),
    }
}

/// Parses a JWKS document (as served at `/token/jwks.json`) into its keys.
pub fn parse_jwks(text: &str) -> Result<Vec<PublicKey>, AuthError> {
    let set: JwkSet =
        serde_json::from_str(text).map_err(|e| AuthError::Jwks(format!("not a JWKS: {e}")))?;
    if set.keys.is_empty() || set.keys.len() > MAX_ACTIVE_KEYS {
        return Err(AuthError::Jwks(format!(
            "a JWKS must hold 1 to {MAX_ACTIVE_KEYS} keys, this one holds {}",
            set.keys.len()
        )));
    }
    set.keys.iter().map(PublicKey::from_jwk).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn generated_keys_persist_with_mode_0600_and_the_same_kid() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("tokens/signing-key.pk8");
        let first = SigningKey::load_or_generate(&path).unwrap();
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(&path).unwrap().permissions().mode();
            assert_eq!(mode & 0o777, 0o600);
        }
        let again = SigningKey::load_or_generate(&path).unwrap();
        assert_eq!(first.kid(), again.kid());
        assert!(!format!("{first:?}").contains("encoding"));
    }

    #[test]
    fn pem_key_files_are_read() {
        let (key, der) = SigningKey::generate().unwrap();
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("key.pem");
        let b64 = base64::engine::general_purpose::STANDARD.encode(&der);
        std::fs::write(
            &path,
            format!("-----BEGIN PRIVATE KEY-----\n{b64}\n-----END PRIVATE KEY-----\n"),
        )
        .unwrap();
        assert_eq!(SigningKey::read(&path).unwrap().kid(), key.kid());
        std::fs::write(&path, "-----BEGIN PRIVATE KEY-----\n!!\n").unwrap();
        assert!(SigningKey::read(&path).is_err());
    }

    #[test]
    fn jwks_round_trips_and_refuses_foreign_keys() {
        let (a, _) = SigningKey::generate().unwrap();
        let (b, _) = SigningKey::generate().unwrap();
        let doc = serde_json::to_string(&jwks([a.public(), b.public()])).unwrap();
        let keys = parse_jwks(&doc).unwrap();
        assert_eq!(keys, vec![a.public().clone(), b.public().clone()]);

        let mut wrong_kid: serde_json::Value = serde_json::from_str(&doc).unwrap();
        wrong_kid["keys"][0]["kid"] = "other".into();
        assert!(parse_jwks(&wrong_kid.to_string()).is_err());
        let hmac = r#"{"keys":[{"kty":"oct","k":"c2VjcmV0","kid":"x","alg":"HS256"}]}"#;
        assert!(parse_jwks(hmac).is_err());
        assert!(parse_jwks(r#"{"keys":[]}"#).is_err());
        let (c, _) = SigningKey::generate().unwrap();
        let three = serde_json::json!({"keys": [a.public().to_jwk(), b.public().to_jwk(), c.public().to_jwk()]});
        assert!(parse_jwks(&three.to_string()).is_err());
    }
}
