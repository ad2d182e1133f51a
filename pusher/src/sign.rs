//! Signing releases (issue 17) with a minisign key: each platform archive
//! gets a minisign signature whose trusted comment is the
//! [`SignedStatement`] (worker, version, platform, digest), and the
//! release's signatures go into one artifact, a referrer of the release
//! index (`rbee_schemas::signature`).
//!
//! Where signing happens: in the job that writes the index (`push`, or
//! `release` after `push --stage`), before the index is tagged, so no
//! reader sees the version unsigned. It signs the archives as the
//! registry serves them, streamed back (never held in memory), and keeps
//! a signature only when the bytes hash to the digest the release names:
//! for `push` the digest it packaged itself; for `release` the digest of
//! the staged platform manifest. The key never leaves this process and
//! is never logged (`SigningKey`'s `Debug` is redacted).
//!
//! Keys are minisign's own files (`minisign -G`, or `rbee-pusher keygen`),
//! encrypted with a password (scrypt) or, for CI runners that hold it as a
//! secret, unencrypted (`minisign -G -W`).

use std::io::Read;
use std::path::Path;
use std::sync::Arc;

use bytes::Bytes;
use rbee_schemas::oci::{Descriptor, ImageIndex, ImageManifest};
use rbee_schemas::signature::{
    ANNOTATION_KEY_ID, PlatformSignature, ReleaseSignature, SIGNATURE_ARTIFACT_TYPE,
    SignedStatement,
};
use rbee_schemas::{Platform, annotations as ann, media_types as mt};
use reqwest::Method;
use sha2::{Digest as _, Sha256};

use crate::client::RegistryClient;
use crate::error::PushError;
use crate::progress::Reporter;
use crate::referrers;

/// A loaded secret key, ready to sign.
#[derive(Clone)]
pub struct SigningKey {
    secret: minisign::SecretKey,
    public: minisign::PublicKey,
    key_id: String,
}

impl std::fmt::Debug for SigningKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // minisign's own `Debug` prints the secret bytes.
        f.debug_struct("SigningKey")
            .field("key_id", &self.key_id)
            .finish_non_exhaustive()
    }
}

/// Where the key's password comes from.
#[derive(Clone, Default)]
pub enum KeyPassword {
    /// The key file is not encrypted (`minisign -G -W`); said explicitly.
    #[default]
    Unencrypted,
    /// The password itself (from the environment).
    Text(String),
    /// A file whose first line is the password.
    File(std::path::PathBuf),
}

impl std::fmt::Debug for KeyPassword {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            KeyPassword::Unencrypted => f.write_str("Unencrypted"),
            KeyPassword::Text(_) => f.write_str("Text(<redacted>)"),
            KeyPassword::File(path) => f.debug_tuple("File").field(path).finish(),
        }
    }
}

impl KeyPassword {
    fn read(&self) -> Result<Option<String>, PushError> {
        match self {
            KeyPassword::Unencrypted => Ok(None),
            KeyPassword::Text(t) => Ok(Some(t.clone())),
            KeyPassword::File(path) => {
                let text = std::fs::read_to_string(path).map_err(|e| {
                    PushError::Invalid(format!(
                        "cannot read the key password file {}: {e}",
                        path.display()
                    ))
                })?;
                Ok(Some(text.lines().next().unwrap_or_default().to_owned()))
            }
        }
    }
}

impl SigningKey {
    /// Loads a minisign secret key file. Never prompts: an encrypted key
    /// needs its password given, an unencrypted one must be said to be.
    pub fn load(path: &Path, password: &KeyPassword) -> Result<SigningKey, PushError> {
        let text = std::fs::read_to_string(path).map_err(|e| {
            PushError::Invalid(format!(
                "cannot read the secret key {}: {e}",
                path.display()
            ))
        })?;
        let pw = password.read()?;
        let text = if pw.is_none() {
            with_checksum(&text)
        } else {
            text
        };
        let boxed = minisign::SecretKeyBox::from_string(&text)
            .map_err(|e| PushError::Invalid(format!("{}: {e}", path.display())))?;
        let secret = match pw {
            Some(pw) => minisign::SecretKey::from_box(boxed, Some(pw)),
            None => minisign::SecretKey::from_unencrypted_box(boxed),
        }
        .map_err(|e| {
            let hint = match password {
                KeyPassword::Unencrypted => {
                    " (an encrypted key needs its password: RBEE_PUSHER_SECRET_KEY_PASSWORD or \
                     --secret-key-password-file)"
                }
                _ => " (wrong password, or an unencrypted key: then pass --unencrypted-key)",
            };
            PushError::Invalid(format!(
                "cannot load the secret key {}: {e}{hint}",
                path.display()
            ))
        })?;
        let public = minisign::PublicKey::from_secret_key(&secret)
            .map_err(|e| PushError::Invalid(format!("{}: {e}", path.display())))?;
        let key_id = key_id(&public);
        Ok(SigningKey {
            secret,
            public,
            key_id,
        })
    }

    /// The key id, as `minisign` prints it.
    pub fn key_id(&self) -> &str {
        &self.key_id
    }

    /// The public key (`RW...`), to pin in installers' trust files.
    pub fn public_key(&self) -> String {
        self.public.to_base64()
    }
}

/// An unencrypted secret key file with its checksum filled in when it
/// has none: Debian's minisign 0.11 (`minisign -G -W`) writes zeros
/// there, which the `minisign` crate reads as an encrypted key. The
/// checksum is BLAKE2b-256 over the algorithm, the key number and the
/// key, as minisign defines it; any other text is returned as it is (and
/// refused by the crate if it is wrong).
fn with_checksum(text: &str) -> String {
    use base64::Engine as _;
    use blake2::Digest as _;
    let engine = base64::engine::general_purpose::STANDARD;
    let mut lines: Vec<&str> = text.lines().collect();
    let Some(Ok(mut bytes)) = lines.get(1).map(|l| engine.decode(l.trim())) else {
        return text.to_owned();
    };
    // sig_alg 2, kdf_alg 2, chk_alg 2, salt 32, opslimit 8, memlimit 8,
    // then key number 8, secret key 64, checksum 32.
    const KEYNUM: usize = 2 + 2 + 2 + 32 + 8 + 8;
    const CHK: usize = KEYNUM + 8 + 64;
    if bytes.len() != CHK + 32 || bytes[2..4] != [0, 0] || bytes[CHK..].iter().any(|b| *b != 0) {
        return text.to_owned();
    }
    let mut h = blake2::Blake2b::<blake2::digest::consts::U32>::new();
    h.update(&bytes[..2]);
    h.update(&bytes[KEYNUM..CHK]);
    bytes[CHK..].copy_from_slice(&h.finalize());
    let encoded = engine.encode(&bytes);
    lines[1] = &encoded;
    let mut out = lines.join("\n");
    out.push('\n');
    out
}

fn key_id(public: &minisign::PublicKey) -> String {
    let mut n = [0u8; 8];
    n.copy_from_slice(public.keynum());
    format!("{:016X}", u64::from_le_bytes(n))
}

/// What `rbee-pusher keygen` wrote.
#[derive(Debug, Clone, serde::Serialize)]
pub struct KeygenSummary {
    /// The key id.
    pub key_id: String,
    /// The public key (`RW...`).
    pub public_key: String,
}

/// Makes a key pair and writes the two files (never over existing ones):
/// the public key as `minisign.pub` holds it, the secret key encrypted
/// with `password` (or unencrypted), both readable by `minisign`.
pub fn keygen(
    secret_path: &Path,
    public_path: &Path,
    password: &KeyPassword,
) -> Result<KeygenSummary, PushError> {
    let err = |e: minisign::PError| PushError::Invalid(format!("cannot make a key: {e}"));
    let pair = match password.read()? {
        Some(pw) if pw.is_empty() => {
            return Err(PushError::Invalid("the key password is empty".into()));
        }
        Some(pw) => minisign::KeyPair::generate_encrypted_keypair(Some(pw)).map_err(err)?,
        None => minisign::KeyPair::generate_unencrypted_keypair().map_err(err)?,
    };
    let secret = pair.sk.to_box(None).map_err(err)?.into_string();
    let public = pair.pk.to_box().map_err(err)?.into_string();
    write_new(secret_path, &secret, 0o600)?;
    write_new(public_path, &public, 0o644)?;
    Ok(KeygenSummary {
        key_id: key_id(&pair.pk),
        public_key: pair.pk.to_base64(),
    })
}

fn write_new(path: &Path, text: &str, mode: u32) -> Result<(), PushError> {
    use std::io::Write as _;
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, mode);
    #[cfg(not(unix))]
    let _ = mode;
    let mut file = options.open(path).map_err(|e| {
        PushError::Invalid(format!(
            "cannot create {} (it must not exist yet): {e}",
            path.display()
        ))
    })?;
    file.write_all(text.as_bytes())?;
    file.sync_all()?;
    Ok(())
}

/// One archive to sign: its platform, layer descriptor and file name.
#[derive(Debug, Clone)]
pub struct ToSign {
    /// The platform.
    pub platform: Platform,
    /// Digest of the archive (the layer).
    pub digest: String,
    /// Its size.
    pub size: u64,
    /// Its file name (the layer's title).
    pub filename: String,
}

/// What [`sign_release`] did.
#[derive(Debug, Clone, serde::Serialize)]
pub struct SignSummary {
    /// `signed`, or `already-signed` (by this key).
    pub status: &'static str,
    /// The key id.
    pub key_id: String,
    /// The signature artifact's digest (when written now).
    pub digest: Option<String>,
}

/// The archives an index names, read from the registry: each platform
/// manifest (checked against its digest) and its worker layer.
pub async fn archives_of(
    client: &RegistryClient,
    repo: &str,
    index: &ImageIndex,
) -> Result<Vec<ToSign>, PushError> {
    let mut out = Vec::new();
    for (platform, d) in index.platform_builds() {
        let found = client
            .get_manifest(repo, &d.digest, true)
            .await?
            .ok_or_else(|| {
                PushError::Registry(format!("{repo}: platform manifest {} is missing", d.digest))
            })?;
        if rbee_schemas::oci::sha256_digest(&found.bytes) != d.digest {
            return Err(PushError::Registry(format!(
                "{repo}: the registry served another document for {}",
                d.digest
            )));
        }
        let m: ImageManifest = serde_json::from_slice(&found.bytes)
            .map_err(|e| PushError::Registry(format!("{repo}@{}: {e}", d.digest)))?;
        let layer = m
            .layers
            .iter()
            .find(|l| mt::is_worker_layer(&l.media_type))
            .ok_or_else(|| PushError::Registry(format!("{repo}@{}: no worker layer", d.digest)))?;
        let filename = layer
            .annotations
            .as_ref()
            .and_then(|a| a.get(ann::TITLE).cloned())
            .unwrap_or_else(|| format!("{platform}.tar"));
        out.push(ToSign {
            platform,
            digest: layer.digest.clone(),
            size: layer.size,
            filename,
        });
    }
    Ok(out)
}

/// Signs `archives` of `worker_id` `version` with `key` and attaches the
/// signature to the index `subject` (before it is tagged: a referrer may
/// precede its subject). Writes nothing when this key signed it already.
#[expect(
    clippy::too_many_arguments,
    reason = "one call per release; the arguments are its parts"
)]
pub async fn sign_release(
    client: &RegistryClient,
    repo: &str,
    worker_id: &str,
    version: &str,
    subject: &Descriptor,
    archives: &[ToSign],
    key: &SigningKey,
    created: &str,
    reporter: &Reporter,
) -> Result<SignSummary, PushError> {
    let existing =
        referrers::listed(client, repo, &subject.digest, SIGNATURE_ARTIFACT_TYPE).await?;
    if existing.iter().any(|d| {
        d.annotations
            .as_ref()
            .and_then(|a| a.get(ANNOTATION_KEY_ID))
            .is_some_and(|k| *k == key.key_id)
    }) {
        reporter.line(&format!("already signed by {}", key.key_id));
        return Ok(SignSummary {
            status: "already-signed",
            key_id: key.key_id.clone(),
            digest: None,
        });
    }
    reporter.step(&format!(
        "signing {} archive(s) with key {}",
        archives.len(),
        key.key_id
    ));
    let mut signatures = Vec::new();
    for a in archives {
        let statement = SignedStatement::new(worker_id, version, a.platform, &a.digest);
        let minisig = sign_blob(client, repo, a, &statement, key).await?;
        reporter.line(&format!("  {}: signed {}", a.platform, a.digest));
        signatures.push(PlatformSignature {
            platform: a.platform,
            digest: a.digest.clone(),
            filename: a.filename.clone(),
            minisig,
        });
    }
    let doc = ReleaseSignature {
        key_id: key.key_id.clone(),
        worker_id: worker_id.to_owned(),
        version: version.to_owned(),
        signatures,
    };
    let artifact = doc.artifact(subject, created);
    for blob in &artifact.blobs {
        client
            .ensure_small_blob(repo, Bytes::from(blob.clone()))
            .await?;
    }
    referrers::add(
        client,
        repo,
        &subject.digest,
        Bytes::from(artifact.manifest.clone()),
        &artifact.descriptor,
    )
    .await?;
    reporter.line(&format!(
        "attached signature ({}): {}",
        key.key_id, artifact.descriptor.digest
    ));
    Ok(SignSummary {
        status: "signed",
        key_id: key.key_id.clone(),
        digest: Some(artifact.descriptor.digest.clone()),
    })
}

/// Streams one archive back from the registry into minisign (on the
/// blocking pool, fed chunk by chunk through a bounded channel) while
/// hashing it; the signature is returned only when the bytes are the
/// archive's digest and size.
async fn sign_blob(
    client: &RegistryClient,
    repo: &str,
    archive: &ToSign,
    statement: &SignedStatement,
    key: &SigningKey,
) -> Result<String, PushError> {
    let mut resp = client
        .request(
            repo,
            Method::GET,
            &format!("/v2/{repo}/blobs/{}", archive.digest),
        )
        .await?;
    if !resp.status().is_success() {
        return Err(PushError::Registry(format!(
            "{repo}: reading {} back to sign it: {}",
            archive.digest,
            resp.status()
        )));
    }
    let (tx, rx) = tokio::sync::mpsc::channel::<Bytes>(8);
    let key = Arc::new(key.clone());
    let trusted = statement.to_trusted_comment();
    let untrusted = format!("rbee release signature, key {}", key.key_id);
    let signer = tokio::task::spawn_blocking(move || {
        let reader = ChannelReader {
            rx,
            current: Bytes::new(),
        };
        minisign::sign(
            Some(&key.public),
            &key.secret,
            reader,
            Some(trusted.as_str()),
            Some(untrusted.as_str()),
        )
        .map(|b| b.into_string())
    });
    let idle = client.timeouts().read_idle;
    let mut hasher = Sha256::new();
    let mut size = 0u64;
    let streamed = async {
        loop {
            let chunk = tokio::time::timeout(idle, resp.chunk())
                .await
                .map_err(|_| {
                    PushError::Registry(format!("{repo}: reading {} stalled", archive.digest))
                })?
                .map_err(|e| {
                    PushError::Registry(format!("{repo}: reading {}: {e}", archive.digest))
                })?;
            let Some(chunk) = chunk else { break };
            size += chunk.len() as u64;
            if size > archive.size {
                return Err(PushError::Registry(format!(
                    "{repo}: {} is longer than its {} bytes",
                    archive.digest, archive.size
                )));
            }
            hasher.update(&chunk);
            if tx.send(chunk).await.is_err() {
                break;
            }
        }
        Ok::<(), PushError>(())
    }
    .await;
    drop(tx);
    let signed = signer
        .await
        .map_err(|e| PushError::Io(std::io::Error::other(e)))?;
    streamed?;
    let signed = signed.map_err(|e| PushError::Invalid(format!("signing failed: {e}")))?;
    let actual = format!("sha256:{}", hex::encode(hasher.finalize()));
    if actual != archive.digest || size != archive.size {
        return Err(PushError::Registry(format!(
            "{repo}: the registry served other bytes for {} ({actual}, {size} bytes); nothing \
             was signed",
            archive.digest
        )));
    }
    Ok(signed)
}

/// A `Read` over chunks sent from the async side.
struct ChannelReader {
    rx: tokio::sync::mpsc::Receiver<Bytes>,
    current: Bytes,
}

impl Read for ChannelReader {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        while self.current.is_empty() {
            match self.rx.blocking_recv() {
                Some(next) => self.current = next,
                None => return Ok(0),
            }
        }
        let n = buf.len().min(self.current.len());
        buf[..n].copy_from_slice(&self.current.split_to(n));
        Ok(n)
    }
}
