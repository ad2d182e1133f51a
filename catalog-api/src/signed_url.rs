//! Signed, expiring download URLs for premium builds kept in the catalog's
//! own (local) storage.
//!
//! A licensed `/v1/.../download` answers a URL that works with plain curl
//! and no header: the catalog's `/blob` route with `expires` (Unix
//! seconds) and `signature` (hex HMAC-SHA256) in the query. The MAC covers
//! the blob's digest, its repository and the expiry, so a URL cannot be
//! stretched in time, pointed at another blob or moved to another
//! repository without the server's secret. The secret is 32 random bytes
//! generated into the data directory on first start (file mode 0600); it
//! never leaves the server, and replacing the file invalidates every URL
//! handed out.

use std::io::{self, Write as _};
use std::path::{Path, PathBuf};

use hmac::{Hmac, Mac as _};
use sha2::Sha256;

/// The key file's name in the data directory.
pub const KEY_FILE: &str = "download-url.key";

/// How long a signed URL stays valid: the `expires_in` of a download.
pub const URL_LIFETIME_SECS: u64 = 3600;

const KEY_BYTES: usize = 32;

/// Why a signed URL is refused. Callers answer 403 for both; the kinds
/// are kept apart for the log and for tests.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum SignatureError {
    /// Its expiry is in the past.
    #[error("the download URL has expired")]
    Expired,
    /// The signature does not match (tampered, another blob or
    /// repository, another server's key) or is not hex.
    #[error("the download URL's signature is not valid")]
    Invalid,
}

/// Signs and checks download URLs with the server's secret.
#[derive(Clone)]
pub struct UrlSigner {
    key: [u8; KEY_BYTES],
}

/// The key is the one thing this type must never print.
impl std::fmt::Debug for UrlSigner {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("UrlSigner").finish_non_exhaustive()
    }
}

impl UrlSigner {
    /// A signer with a fixed key (tests, and a key shared by several
    /// catalog nodes).
    pub fn from_key(key: [u8; KEY_BYTES]) -> Self {
        UrlSigner { key }
    }

    /// Reads the key from `<data_dir>/download-url.key`, generating it
    /// (mode 0600, written whole before it appears under its name) when
    /// there is none.
    pub fn load_or_create(data_dir: &Path) -> io::Result<Self> {
        let path = data_dir.join(KEY_FILE);
        match std::fs::read_to_string(&path) {
            Ok(text) => return parse_key(&path, &text),
            Err(e) if e.kind() == io::ErrorKind::NotFound => {}
            Err(e) => return Err(e),
        }
        std::fs::create_dir_all(data_dir)?;
        let mut key = [0u8; KEY_BYTES];
        getrandom::fill(&mut key).map_err(io::Error::other)?;
        // tempfile creates its files with mode 0600 on Unix: the key is
        // never readable by others, not even before the rename.
        let tmp = tempfile::Builder::new()
            .prefix(".download-url.key.")
            .tempfile_in(data_dir)?;
        tmp.as_file().write_all(hex::encode(key).as_bytes())?;
        tmp.as_file().sync_all()?;
        // `persist_noclobber`: when two processes race, the first key wins
        // and the second reads it instead of replacing it.
        match tmp.persist_noclobber(&path) {
            Ok(_) => Ok(UrlSigner { key }),
            Err(e) if e.error.kind() == io::ErrorKind::AlreadyExists => {
                parse_key(&path, &std::fs::read_to_string(&path)?)
            }
            Err(e) => Err(e.error),
        }
    }

    fn mac(&self, repository: &str, digest: &str, expires: u64) -> Hmac<Sha256> {
        let mut mac =
            Hmac::<Sha256>::new_from_slice(&self.key).expect("HMAC accepts keys of any length");
        // Neither a repository name nor a digest contains a line break (both
        // are parsed before they get here), so the fields cannot run into
        // one another.
        mac.update(format!("rbee-download-v1\n{repository}\n{digest}\n{expires}").as_bytes());
        mac
    }

    /// The hex signature of `digest` in `repository`, valid until
    /// `expires` (Unix seconds).
    pub fn sign(&self, repository: &str, digest: &str, expires: u64) -> String {
        hex::encode(
            self.mac(repository, digest, expires)
                .finalize()
                .into_bytes(),
        )
    }

    /// Checks a URL's `signature` for `digest` in `repository` with its
    /// `expires`, at `now` (Unix seconds). The comparison takes the same
    /// time wherever the signatures differ.
    pub fn verify(
        &self,
        repository: &str,
        digest: &str,
        expires: u64,
        signature: &str,
        now: u64,
    ) -> Result<(), SignatureError> {
        let given = hex::decode(signature).map_err(|_| SignatureError::Invalid)?;
        self.mac(repository, digest, expires)
            .verify_slice(&given)
            .map_err(|_| SignatureError::Invalid)?;
        // Checked after the MAC, so that an expiry is only reported for a
        // URL this server made.
        if now >= expires {
            return Err(SignatureError::Expired);
        }
        Ok(())
    }
}

fn parse_key(path: &Path, text: &str) -> io::Result<UrlSigner> {
    let bad = || {
        io::Error::new(
            io::ErrorKind::InvalidData,
            format!(
                "{} must hold {} hex characters (delete it to generate a new key; \
                 URLs already handed out stop working)",
                path.display(),
                KEY_BYTES * 2
            ),
        )
    };
    let bytes = hex::decode(text.trim()).map_err(|_| bad())?;
    let key: [u8; KEY_BYTES] = bytes.try_into().map_err(|_| bad())?;
    Ok(UrlSigner { key })
}

/// Where the key of a data directory lives.
pub fn key_path(data_dir: &Path) -> PathBuf {
    data_dir.join(KEY_FILE)
}

#[cfg(test)]
mod tests {
    use super::*;

    const REPO: &str = "rbee-premium/premium-worker-rbee-cuda";
    const DIGEST: &str = "sha256:0000000000000000000000000000000000000000000000000000000000000001";
    const OTHER: &str = "sha256:0000000000000000000000000000000000000000000000000000000000000002";

    fn signer() -> UrlSigner {
        UrlSigner::from_key([7; KEY_BYTES])
    }

    #[test]
    fn a_signed_url_verifies_until_it_expires() {
        let s = signer();
        let sig = s.sign(REPO, DIGEST, 1000);
        assert_eq!(s.verify(REPO, DIGEST, 1000, &sig, 999), Ok(()));
        assert_eq!(
            s.verify(REPO, DIGEST, 1000, &sig, 1000),
            Err(SignatureError::Expired)
        );
    }

    #[test]
    fn a_changed_field_or_signature_is_refused() {
        let s = signer();
        let sig = s.sign(REPO, DIGEST, 1000);
        let invalid = Err(SignatureError::Invalid);
        assert_eq!(s.verify(REPO, OTHER, 1000, &sig, 0), invalid, "other blob");
        assert_eq!(
            s.verify("rbee/premium-worker-rbee-cuda", DIGEST, 1000, &sig, 0),
            invalid,
            "other repository"
        );
        assert_eq!(
            s.verify(REPO, DIGEST, 1001, &sig, 0),
            invalid,
            "later expiry"
        );
        let mut flipped = sig.clone().into_bytes();
        flipped[10] = if flipped[10] == b'0' { b'1' } else { b'0' };
        let flipped = String::from_utf8(flipped).unwrap();
        assert_eq!(s.verify(REPO, DIGEST, 1000, &flipped, 0), invalid);
        assert_eq!(s.verify(REPO, DIGEST, 1000, "zz", 0), invalid, "not hex");
        assert_eq!(s.verify(REPO, DIGEST, 1000, "", 0), invalid, "empty");
        assert_eq!(
            s.verify(REPO, DIGEST, 1000, &sig[..32], 0),
            invalid,
            "truncated"
        );
        let other_key = UrlSigner::from_key([8; KEY_BYTES]);
        assert_eq!(other_key.verify(REPO, DIGEST, 1000, &sig, 0), invalid);
    }

    #[test]
    fn the_key_is_generated_once_private_and_reused() {
        let dir = tempfile::tempdir().unwrap();
        let first = UrlSigner::load_or_create(dir.path()).unwrap();
        let again = UrlSigner::load_or_create(dir.path()).unwrap();
        assert_eq!(first.key, again.key, "the same key after a restart");
        assert_ne!(first.key, [0; KEY_BYTES]);
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt as _;
            let mode = std::fs::metadata(key_path(dir.path()))
                .unwrap()
                .permissions()
                .mode();
            assert_eq!(mode & 0o777, 0o600);
        }
        let other = tempfile::tempdir().unwrap();
        let elsewhere = UrlSigner::load_or_create(other.path()).unwrap();
        assert_ne!(first.key, elsewhere.key, "each data directory its own key");
    }

    #[test]
    fn a_damaged_key_file_is_an_error_not_a_new_key() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(key_path(dir.path()), "not hex").unwrap();
        let e = UrlSigner::load_or_create(dir.path()).unwrap_err();
        assert_eq!(e.kind(), io::ErrorKind::InvalidData);
        assert!(e.to_string().contains(KEY_FILE), "{e}");
    }

    #[test]
    fn debug_never_prints_the_key() {
        let text = format!("{:?}", signer());
        assert!(!text.contains("7"), "{text}");
    }
}
