//! Secret keys: `rbee_lic_`, `rbee_pub_` or `rbee_adm_` followed by 256
//! random bits in lower-case base32 (52 characters). Only the SHA-256 of
//! the whole text is ever stored; the text itself is shown once, when the
//! key is created.

use std::fmt;

use sha2::{Digest, Sha256};

use crate::StoreError;

/// Random bytes in a key: 256 bits, well over the 160 the design asks for,
/// so a stolen database of hashes cannot be searched.
const RANDOM_BYTES: usize = 32;
/// Length of the base32 text of [`RANDOM_BYTES`] without padding.
const ENCODED_LEN: usize = (RANDOM_BYTES * 8).div_ceil(5);

/// What a key unlocks, told by its prefix.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum CredentialKind {
    /// A customer's license: pull of the workers or namespaces it names.
    License,
    /// A publisher's key, for CI: push (and pull) to its namespaces.
    Publisher,
    /// The operator's key: everything, including `/admin`.
    Admin,
}

impl CredentialKind {
    /// The text every key of this kind starts with.
    pub fn prefix(self) -> &'static str {
        match self {
            CredentialKind::License => "rbee_lic_",
            CredentialKind::Publisher => "rbee_pub_",
            CredentialKind::Admin => "rbee_adm_",
        }
    }

    /// The start of record ids of this kind (`lic_...`): never a secret.
    pub(crate) fn id_prefix(self) -> &'static str {
        match self {
            CredentialKind::License => "lic_",
            CredentialKind::Publisher => "pub_",
            CredentialKind::Admin => "adm_",
        }
    }

    const ALL: [CredentialKind; 3] = [
        CredentialKind::License,
        CredentialKind::Publisher,
        CredentialKind::Admin,
    ];
}

/// A key's text, held only long enough to hand it to its owner once.
/// `Debug` does not show it, so it cannot leak through a log line.
#[derive(Clone, PartialEq, Eq)]
pub struct SecretKey(String);

impl SecretKey {
    /// A new random key of `kind`.
    pub(crate) fn generate(kind: CredentialKind) -> Result<SecretKey, StoreError> {
        let mut bytes = [0u8; RANDOM_BYTES];
        getrandom::fill(&mut bytes).map_err(StoreError::Random)?;
        let text = data_encoding::BASE32_NOPAD
            .encode(&bytes)
            .to_ascii_lowercase();
        Ok(SecretKey(format!("{}{text}", kind.prefix())))
    }

    /// The key text, to print or write to a file exactly once.
    pub fn expose(&self) -> &str {
        &self.0
    }

    /// The SHA-256 (hex) under which the key is stored.
    pub(crate) fn hash(&self) -> String {
        hash_key(&self.0)
    }
}

impl fmt::Debug for SecretKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("SecretKey(<redacted>)")
    }
}

/// The kind and stored hash of a presented key, or `None` when the text
/// cannot be a key at all (wrong prefix, length or alphabet): such input
/// never reaches the database.
pub(crate) fn parse_presented(secret: &str) -> Option<(CredentialKind, String)> {
    let kind = CredentialKind::ALL
        .into_iter()
        .find(|kind| secret.starts_with(kind.prefix()))?;
    let body = &secret[kind.prefix().len()..];
    let well_formed = body.len() == ENCODED_LEN
        && body
            .bytes()
            .all(|b| b.is_ascii_lowercase() || (b'2'..=b'7').contains(&b));
    well_formed.then(|| (kind, hash_key(secret)))
}

fn hash_key(text: &str) -> String {
    hex::encode(Sha256::digest(text.as_bytes()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn generated_keys_parse_back_to_their_kind_and_hash() {
        for kind in CredentialKind::ALL {
            let key = SecretKey::generate(kind).unwrap();
            assert!(key.expose().starts_with(kind.prefix()));
            assert_eq!(key.expose().len(), kind.prefix().len() + 52);
            assert_eq!(parse_presented(key.expose()), Some((kind, key.hash())));
        }
    }

    #[test]
    fn two_keys_differ() {
        let a = SecretKey::generate(CredentialKind::License).unwrap();
        let b = SecretKey::generate(CredentialKind::License).unwrap();
        assert_ne!(a, b);
    }

    #[test]
    fn malformed_keys_are_refused_before_any_lookup() {
        let good = SecretKey::generate(CredentialKind::License).unwrap();
        let text = good.expose();
        for bad in [
            "",
            "rbee_lic_",
            "rbee_xyz_aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa",
            &text[..text.len() - 1],
            &format!("{text}a"),
            &text.to_ascii_uppercase(),
            &format!("{}1{}", &text[..9], &text[10..]),
            &format!(" {}", &text[1..]),
        ] {
            assert_eq!(parse_presented(bad), None, "{bad:?}");
        }
    }

    #[test]
    fn debug_never_shows_the_key() {
        let key = SecretKey::generate(CredentialKind::Admin).unwrap();
        assert!(!format!("{key:?}").contains(&key.expose()[9..]));
    }
}
