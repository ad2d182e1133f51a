//! Publisher keys the installer trusts (issue 17): a build is installed
//! only when its minisign signature verifies with a key pinned for its
//! worker, so a compromised registry, bucket, CDN or catalog cannot make
//! rbee-hive install what the publisher did not sign.
//!
//! The trust file (default `$XDG_CONFIG_HOME/rbee/trusted-keys`, else
//! `~/.config/rbee/trusted-keys`; a missing file pins nothing) is text,
//! one rule a line; `#` starts a comment:
//!
//! ```text
//! # trust KEY [for PATTERN...]: KEY is a minisign public key (RW...);
//! # a PATTERN is a worker id, a prefix ending in `*`, or `*` (the default)
//! trust RWQf6LRCGA9i53mlYecO4IzT51TGPpvWucNSCh1CBM0QTaLn73Y7GFO3 for llm-worker-rbee-* sd-worker-rbee-cpu
//! trust RWS...new key... for *
//! # revoke KEY-OR-ID: refuse whatever it signed, pinned or not
//! revoke E7620F1842B4E81F
//! ```
//!
//! The rules: a worker that some `trust` line matches is *pinned* (even if
//! every key pinned for it is revoked): it installs only with a signature
//! by a matching, unrevoked key whose signed statement names exactly this
//! worker, version, platform and digest. A worker nothing pins installs as
//! before (digest checked), unless its signature is by a revoked key. Two
//! keys at once is a rotation: both verify until the old one is revoked.

use std::io::Read as _;
use std::path::{Path, PathBuf};

use rbee_schemas::Platform;
use rbee_schemas::signature::{Minisig, public_key_id};
use rbee_schemas::v1::DownloadSignature;

use crate::error::ClientError;

/// Why a signature was refused. Each names its reason; the destination
/// is untouched.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SignatureRefusal {
    /// The worker is pinned, and the build carries no signature.
    #[error("{worker} is unsigned, but the trust file pins it to key(s) {keys}")]
    Unsigned {
        /// The worker.
        worker: String,
        /// The key ids pinned for it.
        keys: String,
    },
    /// Signed by a key revoked in the trust file.
    #[error("signed by key {key_id}, which is revoked in the trust file")]
    Revoked {
        /// The signing key's id.
        key_id: String,
    },
    /// Signed by a key not trusted for this worker.
    #[error("signed by key {key_id}, which is not trusted for {worker} (trusted: {trusted})")]
    UntrustedKey {
        /// The signing key's id.
        key_id: String,
        /// The worker.
        worker: String,
        /// The key ids pinned for it.
        trusted: String,
    },
    /// The signature does not verify over the archive: the bytes (or the
    /// signature) were changed.
    #[error("the signature by key {key_id} does not match the downloaded archive (tampered)")]
    Tampered {
        /// The signing key's id.
        key_id: String,
    },
    /// The signature is valid but for another build.
    #[error("the signature is for {signed}, not {expected}")]
    OtherBuild {
        /// What the signed statement names.
        signed: String,
        /// What is being installed.
        expected: String,
    },
    /// Not a minisign signature this installer reads.
    #[error("the signature cannot be read: {0}")]
    Malformed(String),
}

/// A publisher key trusted for some workers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TrustedKey {
    /// The key id (16 upper-case hex digits, as `minisign` prints it).
    pub key_id: String,
    /// The public key (`RW...`).
    pub public_key: String,
    /// Worker ids, prefixes ending in `*`, or `*`.
    pub patterns: Vec<String>,
}

impl TrustedKey {
    fn matches(&self, worker: &str) -> bool {
        self.patterns.iter().any(|p| match p.strip_suffix('*') {
            Some(prefix) => worker.starts_with(prefix),
            None => p == worker,
        })
    }
}

/// The keys trusted and revoked: the trust file plus `--trusted-key`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TrustStore {
    keys: Vec<TrustedKey>,
    revoked: Vec<String>,
}

/// What a build must be signed as.
#[derive(Debug, Clone)]
pub(crate) struct Expected<'a> {
    pub worker: &'a str,
    pub version: &'a str,
    pub platform: Platform,
    pub digest: &'a str,
}

impl TrustStore {
    /// Trusts nothing: every install is checked by digest only.
    pub fn empty() -> Self {
        TrustStore::default()
    }

    /// `$XDG_CONFIG_HOME/rbee/trusted-keys`, else
    /// `~/.config/rbee/trusted-keys`.
    pub fn default_path() -> Option<PathBuf> {
        let config = std::env::var_os("XDG_CONFIG_HOME")
            .filter(|v| !v.is_empty())
            .map(PathBuf::from)
            .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".config")))?;
        Some(config.join("rbee").join("trusted-keys"))
    }

    /// Reads a trust file; a file that does not exist pins nothing.
    pub fn load(path: &Path) -> Result<Self, ClientError> {
        match std::fs::read_to_string(path) {
            Ok(text) => TrustStore::parse(&text)
                .map_err(|e| ClientError::Invalid(format!("{}: {e}", path.display()))),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(TrustStore::empty()),
            Err(e) => Err(ClientError::Invalid(format!(
                "cannot read the trust file {}: {e}",
                path.display()
            ))),
        }
    }

    /// Reads the trust file's text.
    pub fn parse(text: &str) -> Result<Self, String> {
        let mut store = TrustStore::empty();
        for (n, line) in text.lines().enumerate() {
            let line = line.split('#').next().unwrap_or_default().trim();
            if line.is_empty() {
                continue;
            }
            let at = |e: String| format!("line {}: {e}", n + 1);
            let mut words = line.split_whitespace();
            match words.next() {
                Some("trust") => {
                    let key = words
                        .next()
                        .ok_or_else(|| at("`trust` needs a public key".into()))?;
                    let rest: Vec<&str> = words.collect();
                    let patterns = match rest.split_first() {
                        None => vec!["*".to_owned()],
                        Some((&"for", p)) if !p.is_empty() => {
                            p.iter().map(|s| (*s).to_owned()).collect()
                        }
                        _ => return Err(at("expected `for PATTERN...` after the key".into())),
                    };
                    store.trust(key, patterns).map_err(at)?;
                }
                Some("revoke") => {
                    let key = words
                        .next()
                        .ok_or_else(|| at("`revoke` needs a key or key id".into()))?;
                    store.revoke(key).map_err(at)?;
                }
                Some(other) => {
                    return Err(at(format!("unknown rule `{other}` (trust or revoke)")));
                }
                None => {}
            }
        }
        Ok(store)
    }

    /// Trusts `key` (a public key `RW...`, or the text of a `minisign.pub`
    /// file) for workers matching `patterns`.
    pub fn trust(&mut self, key: &str, patterns: Vec<String>) -> Result<(), String> {
        let public_key = key
            .lines()
            .map(str::trim)
            .find(|l| !l.is_empty() && !l.starts_with("untrusted comment:"))
            .unwrap_or_default()
            .to_owned();
        let key_id = public_key_id(&public_key).map_err(|e| e.to_string())?;
        minisign_verify::PublicKey::from_base64(&public_key).map_err(|e| e.to_string())?;
        for p in &patterns {
            let body = p.strip_suffix('*').unwrap_or(p);
            if !body
                .chars()
                .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-')
            {
                return Err(format!("bad worker pattern `{p}`"));
            }
        }
        self.keys.push(TrustedKey {
            key_id,
            public_key,
            patterns,
        });
        Ok(())
    }

    /// Trusts a key given on the command line (`--trusted-key`): the key
    /// itself, or a file holding it; for every worker.
    pub fn trust_arg(&mut self, arg: &str) -> Result<(), ClientError> {
        let text = if Path::new(arg).is_file() {
            std::fs::read_to_string(arg)
                .map_err(|e| ClientError::Invalid(format!("cannot read {arg}: {e}")))?
        } else {
            arg.to_owned()
        };
        self.trust(&text, vec!["*".into()])
            .map_err(|e| ClientError::Invalid(format!("--trusted-key `{arg}`: {e}")))
    }

    /// Revokes a key (given as a public key or a key id).
    pub fn revoke(&mut self, key: &str) -> Result<(), String> {
        let id = if key.len() == 16 && key.chars().all(|c| c.is_ascii_hexdigit()) {
            key.to_ascii_uppercase()
        } else {
            public_key_id(key).map_err(|e| e.to_string())?
        };
        self.revoked.push(id);
        Ok(())
    }

    /// The keys trusted (revoked ones included).
    pub fn keys(&self) -> &[TrustedKey] {
        &self.keys
    }

    fn is_revoked(&self, key_id: &str) -> bool {
        self.revoked.iter().any(|r| r == key_id)
    }

    /// Checks `archive` (already verified against `expected.digest`)
    /// against the signature the catalog or registry handed over. Returns
    /// the key id it verified with, `None` when nothing pins the worker
    /// and it installs unsigned.
    pub(crate) fn verify(
        &self,
        expected: &Expected<'_>,
        signature: Option<&DownloadSignature>,
        archive: &Path,
    ) -> Result<Option<String>, SignatureRefusal> {
        let pinned: Vec<&TrustedKey> = self
            .keys
            .iter()
            .filter(|k| k.matches(expected.worker))
            .collect();
        let Some(signature) = signature else {
            if pinned.is_empty() {
                return Ok(None);
            }
            return Err(SignatureRefusal::Unsigned {
                worker: expected.worker.to_owned(),
                keys: ids(&pinned),
            });
        };
        // The key id is read from the signature itself, never from what
        // the server says about it.
        let sig = Minisig::parse(&signature.minisig)
            .map_err(|e| SignatureRefusal::Malformed(e.to_string()))?;
        if self.is_revoked(&sig.key_id) {
            return Err(SignatureRefusal::Revoked { key_id: sig.key_id });
        }
        if pinned.is_empty() {
            return Ok(None);
        }
        let Some(key) = pinned
            .iter()
            .find(|k| k.key_id == sig.key_id && !self.is_revoked(&k.key_id))
        else {
            return Err(SignatureRefusal::UntrustedKey {
                key_id: sig.key_id,
                worker: expected.worker.to_owned(),
                trusted: ids(&pinned),
            });
        };
        let public = minisign_verify::PublicKey::from_base64(&key.public_key)
            .map_err(|e| SignatureRefusal::Malformed(e.to_string()))?;
        let decoded = minisign_verify::Signature::decode(&sig.text)
            .map_err(|e| SignatureRefusal::Malformed(e.to_string()))?;
        let tampered = || SignatureRefusal::Tampered {
            key_id: sig.key_id.clone(),
        };
        let mut verifier = public.verify_stream(&decoded).map_err(|_| tampered())?;
        let mut file = std::fs::File::open(archive)
            .map_err(|e| SignatureRefusal::Malformed(format!("cannot read the archive: {e}")))?;
        let mut buf = vec![0u8; 1 << 16];
        loop {
            let n = file.read(&mut buf).map_err(|e| {
                SignatureRefusal::Malformed(format!("cannot read the archive: {e}"))
            })?;
            if n == 0 {
                break;
            }
            verifier.update(&buf[..n]);
        }
        verifier.finalize().map_err(|_| tampered())?;
        // Only now is the trusted comment the publisher's words.
        let statement = sig
            .statement()
            .map_err(|e| SignatureRefusal::Malformed(e.to_string()))?;
        let signed = format!(
            "{} {} {} {}",
            statement.worker_id, statement.version, statement.platform, statement.digest
        );
        let wanted = format!(
            "{} {} {} {}",
            expected.worker, expected.version, expected.platform, expected.digest
        );
        if signed != wanted {
            return Err(SignatureRefusal::OtherBuild {
                signed,
                expected: wanted,
            });
        }
        Ok(Some(sig.key_id))
    }
}

fn ids(keys: &[&TrustedKey]) -> String {
    keys.iter()
        .map(|k| k.key_id.as_str())
        .collect::<Vec<_>>()
        .join(", ")
}

#[cfg(test)]
mod tests {
    use super::*;

    const KEY: &str = "RWQf6LRCGA9i53mlYecO4IzT51TGPpvWucNSCh1CBM0QTaLn73Y7GFO3";

    #[test]
    fn the_trust_file_reads_pins_patterns_and_revocations() {
        let store = TrustStore::parse(&format!(
            "# pins\ntrust {KEY} for llm-worker-rbee-* sd-worker-rbee-cpu\n\nrevoke 0123456789abcdef # old\n"
        ))
        .unwrap();
        let key = &store.keys()[0];
        assert_eq!(key.key_id, "E7620F1842B4E81F");
        assert!(key.matches("llm-worker-rbee-cuda"));
        assert!(key.matches("sd-worker-rbee-cpu"));
        assert!(!key.matches("sd-worker-rbee-cuda"));
        assert!(store.is_revoked("0123456789ABCDEF"));
        let all = TrustStore::parse(&format!("trust {KEY}")).unwrap();
        assert!(all.keys()[0].matches("anything"));
    }

    #[test]
    fn bad_trust_lines_are_refused_with_their_line_number() {
        for bad in [
            "trust".to_owned(),
            "trust RWQnotakey".to_owned(),
            format!("trust {KEY} for"),
            format!("trust {KEY} on x"),
            format!("trust {KEY} for ../x"),
            "distrust x".to_owned(),
            "revoke nothex".to_owned(),
        ] {
            let e = TrustStore::parse(&format!("# c\n{bad}\n")).unwrap_err();
            assert!(e.starts_with("line 2:"), "{bad}: {e}");
        }
    }

    // Made with Debian's minisign 0.11 over the bytes `archive bytes`.
    const DEBIAN_PUBLIC: &str = "RWRoiUVnMWwCcNF9KNOloywHVogzJcqFfbGzK0RavHtsSbrPy9PwqSJA";
    const DEBIAN_SIG: &str = r#"untrusted comment: signature from minisign secret key
RURoiUVnMWwCcL7lJI5CuNw3Vi1ATAwNankXU88TnZpoHlfmoJgYIEILmGU9Q0mVVTDdYO1wancwCXFCBSm5nJp25wfsOLR0Vgo=
trusted comment: {"type":"rbee-worker-build/v1","worker_id":"w","version":"0.1.0","platform":"linux-x86_64","digest":"sha256:cc9c340301ad4ba5e54aa24b442ff938d1ed84f7f32c4c5a73773c58af37bd1b"}
1V8OZLuMPHe4WwIUCIeacJMz4GiFNzlOa30ChurJM/DFyytnYR1Uthyy0izZSso5quXcPCMqDlxcth5ezFkeBw==
"#;
    const DATA_DIGEST: &str =
        "sha256:cc9c340301ad4ba5e54aa24b442ff938d1ed84f7f32c4c5a73773c58af37bd1b";

    fn signed() -> DownloadSignature {
        let sig = Minisig::parse(DEBIAN_SIG).unwrap();
        DownloadSignature {
            key_id: sig.key_id,
            minisig: sig.text,
            trusted_comment: sig.trusted_comment,
        }
    }

    #[test]
    fn a_pinned_key_verifies_the_archive_and_its_statement() {
        let dir = tempfile::tempdir().unwrap();
        let archive = dir.path().join("a.tar.gz");
        std::fs::write(&archive, b"archive bytes").unwrap();
        let expected = Expected {
            worker: "w",
            version: "0.1.0",
            platform: Platform::LinuxX86_64,
            digest: DATA_DIGEST,
        };
        let store = TrustStore::parse(&format!("trust {DEBIAN_PUBLIC} for w")).unwrap();
        assert_eq!(
            store.verify(&expected, Some(&signed()), &archive),
            Ok(Some("70026C3167458968".into()))
        );
        // Another version, same bytes: the statement says 0.1.0.
        let other = Expected {
            version: "0.2.0",
            ..expected.clone()
        };
        assert!(matches!(
            store.verify(&other, Some(&signed()), &archive),
            Err(SignatureRefusal::OtherBuild { .. })
        ));
        std::fs::write(&archive, b"archive bytez").unwrap();
        assert!(matches!(
            store.verify(&expected, Some(&signed()), &archive),
            Err(SignatureRefusal::Tampered { .. })
        ));
        // A key pinned for this worker but revoked: refused, as is a
        // signature by a revoked key for a worker nothing pins.
        let revoked = TrustStore::parse(&format!(
            "trust {DEBIAN_PUBLIC} for w\nrevoke {DEBIAN_PUBLIC}"
        ))
        .unwrap();
        assert!(matches!(
            revoked.verify(&expected, Some(&signed()), &archive),
            Err(SignatureRefusal::Revoked { .. })
        ));
        let unpinned = TrustStore::parse("revoke 70026C3167458968").unwrap();
        assert!(matches!(
            unpinned.verify(&expected, Some(&signed()), &archive),
            Err(SignatureRefusal::Revoked { .. })
        ));
    }

    #[test]
    fn an_unsigned_build_is_refused_only_when_pinned() {
        let expected = Expected {
            worker: "w",
            version: "0.1.0",
            platform: Platform::LinuxX86_64,
            digest: "sha256:aa",
        };
        let path = Path::new("/nonexistent");
        assert_eq!(TrustStore::empty().verify(&expected, None, path), Ok(None));
        let pinned = TrustStore::parse(&format!("trust {KEY} for w")).unwrap();
        assert!(matches!(
            pinned.verify(&expected, None, path),
            Err(SignatureRefusal::Unsigned { .. })
        ));
        let elsewhere = TrustStore::parse(&format!("trust {KEY} for other")).unwrap();
        assert_eq!(elsewhere.verify(&expected, None, path), Ok(None));
    }
}
