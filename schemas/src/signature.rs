//! Release signatures (issue 17): a digest proves the bytes match what the
//! catalog says, a signature that the publisher made them.
//!
//! Each platform archive of a release gets a minisign signature (Ed25519,
//! prehashed with BLAKE2b, as `minisign -S` makes them) whose *trusted
//! comment*, which minisign signs too, is the one-line JSON
//! [`SignedStatement`]: worker id, version, platform and the archive's
//! digest. A signature therefore cannot be replayed onto another version,
//! platform or worker. The signatures of one release are one artifact, a
//! referrer of the release's image index: an OCI manifest with
//! `artifactType` [`SIGNATURE_ARTIFACT_TYPE`], the empty config, a first
//! layer holding the JSON [`ReleaseSignature`] (what the catalog reads)
//! and one `.minisig` layer per platform, titled `<archive>.minisig`
//! (what a person who pulled with oras verifies with `minisign -V`). The
//! key id is copied into the manifest's annotations.
//!
//! The key id is minisign's: the 8-byte key number, printed as 16
//! upper-case hex digits of the little-endian number, as `minisign`
//! prints it.

use base64::Engine as _;
use serde::{Deserialize, Serialize};

use crate::annotations as ann;
use crate::media_types as mt;
use crate::oci::{self, Annotations, Descriptor, ImageManifest};
use crate::platform::Platform;

pub use crate::media_types::{MINISIG, SIGNATURE_ARTIFACT_TYPE};

/// Media type of the [`ReleaseSignature`] layer.
pub const SIGNATURE_DOCUMENT: &str = "application/vnd.rbee.worker.signature.v1+json";
/// Annotation on the signature manifest: the signing key's id.
pub const ANNOTATION_KEY_ID: &str = "dev.rbee.worker.signature-key-id";
/// `type` of the statement a signature's trusted comment holds.
pub const STATEMENT_TYPE: &str = "rbee-worker-build/v1";
/// Largest `.minisig` text accepted (a real one is about 350 bytes).
pub const MINISIG_MAX_BYTES: usize = 4096;
/// Largest [`ReleaseSignature`] document read.
pub const DOCUMENT_MAX_BYTES: usize = 64 * 1024;

/// Why a signature document or text was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SignatureError {
    /// Not a minisign signature, or a field is wrong.
    #[error("invalid signature: {0}")]
    Invalid(String),
}

fn invalid(e: impl std::fmt::Display) -> SignatureError {
    SignatureError::Invalid(e.to_string())
}

/// What a signature's trusted comment says, signed with the archive.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SignedStatement {
    /// Always [`STATEMENT_TYPE`].
    #[serde(rename = "type")]
    pub kind: String,
    /// Worker id.
    pub worker_id: String,
    /// The version (semver text).
    pub version: String,
    /// rbee platform name.
    pub platform: Platform,
    /// `sha256:<hex>` of the archive.
    pub digest: String,
}

impl SignedStatement {
    /// The statement for one archive.
    pub fn new(worker_id: &str, version: &str, platform: Platform, digest: &str) -> Self {
        SignedStatement {
            kind: STATEMENT_TYPE.into(),
            worker_id: worker_id.into(),
            version: version.into(),
            platform,
            digest: digest.into(),
        }
    }

    /// The trusted comment: one line of JSON, fields in a fixed order.
    pub fn to_trusted_comment(&self) -> String {
        serde_json::to_string(self).unwrap_or_default()
    }

    /// Reads a trusted comment back.
    pub fn from_trusted_comment(text: &str) -> Result<Self, SignatureError> {
        let s: SignedStatement = serde_json::from_str(text).map_err(invalid)?;
        if s.kind != STATEMENT_TYPE {
            return Err(invalid(format!("statement type `{}`", s.kind)));
        }
        Ok(s)
    }
}

/// A minisign signature text, parsed enough to tell its key and statement
/// (not verified: that needs the archive and a trusted public key).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Minisig {
    /// The whole `.minisig` text, as `minisign -V` reads it.
    pub text: String,
    /// The signing key's id (16 upper-case hex digits).
    pub key_id: String,
    /// The trusted comment (without `trusted comment: `).
    pub trusted_comment: String,
}

impl Minisig {
    /// Parses a `.minisig` text: four lines, prehashed Ed25519 (`ED`).
    pub fn parse(text: &str) -> Result<Self, SignatureError> {
        if text.len() > MINISIG_MAX_BYTES {
            return Err(invalid(format!(
                "{} bytes, at most {MINISIG_MAX_BYTES}",
                text.len()
            )));
        }
        let decoded = minisign_verify::Signature::decode(text).map_err(invalid)?;
        let line = text.lines().nth(1).unwrap_or_default();
        let bytes = base64::engine::general_purpose::STANDARD
            .decode(line.trim())
            .map_err(invalid)?;
        if bytes.get(..2) != Some(b"ED") {
            return Err(invalid(
                "not a prehashed signature (legacy minisign signatures are not accepted)",
            ));
        }
        let key_id = key_id_of_bytes(&bytes[2..10]);
        Ok(Minisig {
            text: text.to_owned(),
            key_id,
            trusted_comment: decoded.trusted_comment().to_owned(),
        })
    }

    /// The statement its trusted comment holds.
    pub fn statement(&self) -> Result<SignedStatement, SignatureError> {
        SignedStatement::from_trusted_comment(&self.trusted_comment)
    }
}

/// The key id of a minisign public key (`RW...` base64, or a
/// `minisign.pub` file's text).
pub fn public_key_id(key: &str) -> Result<String, SignatureError> {
    let line = key
        .lines()
        .map(str::trim)
        .find(|l| !l.is_empty() && !l.starts_with("untrusted comment:"))
        .ok_or_else(|| invalid("empty public key"))?;
    let bytes = base64::engine::general_purpose::STANDARD
        .decode(line)
        .map_err(invalid)?;
    if bytes.len() != 42 || bytes.get(..2) != Some(b"Ed") {
        return Err(invalid("not a minisign Ed25519 public key"));
    }
    Ok(key_id_of_bytes(&bytes[2..10]))
}

/// minisign's printing of a key number: the little-endian u64 in hex.
fn key_id_of_bytes(keynum: &[u8]) -> String {
    let mut n = [0u8; 8];
    n.copy_from_slice(keynum);
    format!("{:016X}", u64::from_le_bytes(n))
}

/// One platform archive's signature in a [`ReleaseSignature`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PlatformSignature {
    /// rbee platform name.
    pub platform: Platform,
    /// `sha256:<hex>` of the archive signed.
    pub digest: String,
    /// The archive's file name (the `.minisig` layer is it plus `.minisig`).
    pub filename: String,
    /// The `.minisig` text.
    pub minisig: String,
}

/// The signatures of one release, the JSON layer of its signature
/// artifact.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ReleaseSignature {
    /// The signing key's id.
    pub key_id: String,
    /// Worker id.
    pub worker_id: String,
    /// The version.
    pub version: String,
    /// One per platform archive.
    pub signatures: Vec<PlatformSignature>,
}

impl ReleaseSignature {
    /// Reads the document, checked: every signature parses, is by
    /// `key_id`, and states this worker, version, its platform and digest.
    pub fn from_json(bytes: &[u8]) -> Result<Self, SignatureError> {
        if bytes.len() > DOCUMENT_MAX_BYTES {
            return Err(invalid(format!(
                "{} bytes, at most {DOCUMENT_MAX_BYTES}",
                bytes.len()
            )));
        }
        let doc: ReleaseSignature = serde_json::from_slice(bytes).map_err(invalid)?;
        doc.check()?;
        Ok(doc)
    }

    /// The document, as the layer holds it.
    pub fn to_json(&self) -> Vec<u8> {
        oci::to_bytes(self)
    }

    /// The signature of `platform`'s archive, parsed.
    pub fn for_platform(&self, platform: Platform) -> Option<Minisig> {
        self.signatures
            .iter()
            .find(|s| s.platform == platform)
            .and_then(|s| Minisig::parse(&s.minisig).ok())
    }

    fn check(&self) -> Result<(), SignatureError> {
        for s in &self.signatures {
            let sig = Minisig::parse(&s.minisig)?;
            if sig.key_id != self.key_id {
                return Err(invalid(format!(
                    "{}: signed by {}, the document says {}",
                    s.platform, sig.key_id, self.key_id
                )));
            }
            let st = sig.statement()?;
            if st.worker_id != self.worker_id
                || st.version != self.version
                || st.platform != s.platform
                || st.digest != s.digest
            {
                return Err(invalid(format!(
                    "{}: the signed statement does not match the document",
                    s.platform
                )));
            }
        }
        Ok(())
    }

    /// The manifest annotations: the key id and when.
    pub fn annotations(&self, created: &str) -> Annotations {
        Annotations::from([
            (ANNOTATION_KEY_ID.into(), self.key_id.clone()),
            (ann::CREATED.into(), created.to_owned()),
        ])
    }

    /// The signature as a referrer of `subject` (the release index): the
    /// manifest, its descriptor, and the blobs to upload first (the empty
    /// config, the document, one `.minisig` per platform).
    pub fn artifact(&self, subject: &Descriptor, created: &str) -> SignatureArtifact {
        let empty = b"{}".to_vec();
        let document = self.to_json();
        let mut layers = vec![oci::describe(SIGNATURE_DOCUMENT, &document)];
        let mut blobs = vec![empty.clone(), document];
        for s in &self.signatures {
            let text = s.minisig.clone().into_bytes();
            let mut d = oci::describe(MINISIG, &text);
            d.annotations = Some(Annotations::from([
                (ann::TITLE.into(), format!("{}.minisig", s.filename)),
                (ann::WORKER_PLATFORM.into(), s.platform.to_string()),
            ]));
            layers.push(d);
            blobs.push(text);
        }
        let subject = Descriptor {
            media_type: subject.media_type.clone(),
            digest: subject.digest.clone(),
            size: subject.size,
            platform: None,
            artifact_type: None,
            annotations: None,
        };
        let manifest = ImageManifest {
            schema_version: 2,
            media_type: mt::OCI_MANIFEST.into(),
            artifact_type: Some(SIGNATURE_ARTIFACT_TYPE.into()),
            config: oci::describe(mt::OCI_EMPTY, &empty),
            layers,
            subject: Some(subject),
            annotations: Some(self.annotations(created)),
        };
        let manifest = oci::to_bytes(&manifest);
        let mut descriptor = oci::describe(mt::OCI_MANIFEST, &manifest);
        descriptor.artifact_type = Some(SIGNATURE_ARTIFACT_TYPE.into());
        descriptor.annotations = Some(self.annotations(created));
        SignatureArtifact {
            manifest,
            descriptor,
            blobs,
        }
    }
}

/// A release signature ready to push.
#[derive(Debug, Clone)]
pub struct SignatureArtifact {
    /// The manifest bytes.
    pub manifest: Vec<u8>,
    /// Its descriptor, with `artifactType` and the annotations.
    pub descriptor: Descriptor,
    /// The blobs it references.
    pub blobs: Vec<Vec<u8>>,
}

/// Among a referrers list, the signature artifacts, newest first (by the
/// `created` annotation; the catalog shows the newest).
pub fn signature_referrers<'a>(
    referrers: impl IntoIterator<Item = &'a Descriptor>,
) -> Vec<&'a Descriptor> {
    let mut found: Vec<&Descriptor> = referrers
        .into_iter()
        .filter(|d| d.artifact_type.as_deref() == Some(SIGNATURE_ARTIFACT_TYPE))
        .collect();
    let created = |d: &Descriptor| {
        d.annotations
            .as_ref()
            .and_then(|a| a.get(ann::CREATED).cloned())
            .unwrap_or_default()
    };
    found.sort_by_key(|d| std::cmp::Reverse(created(d)));
    found
}

#[cfg(test)]
mod tests {
    use super::*;

    // minisign's own test vectors (a key and a legacy-mode signature, as
    // `minisign-verify`'s tests use them).
    const PUBLIC: &str = "RWQf6LRCGA9i53mlYecO4IzT51TGPpvWucNSCh1CBM0QTaLn73Y7GFO3";
    const LEGACY_SIG: &str = "untrusted comment: signature from minisign secret key
RWQf6LRCGA9i59SLOFxz6NxvASXDJeRtuZykwQepbDEGt87ig1BNpWaVWuNrm73YiIiJbq71Wi+dP9eKL8OC351vwIasSSbXxwA=
trusted comment: timestamp:1555779966\tfile:test
QtKMXWyYcwdpZAlPF7tE2ENJkRd1ujvKjlj1m9RtHTBnZPa5WKU5uWRs5GoP5M/VqE81QFuMKI5k/SfNQUaOAA==
";

    #[test]
    fn key_ids_are_printed_as_minisign_prints_them() {
        let id = public_key_id(PUBLIC).unwrap();
        assert_eq!(id.len(), 16);
        assert_eq!(
            public_key_id(&format!("untrusted comment: x\n{PUBLIC}\n")).unwrap(),
            id
        );
        assert_eq!(id, "E7620F1842B4E81F");
        assert!(public_key_id("RWQnotakey").is_err());
    }

    #[test]
    fn legacy_signatures_are_refused() {
        let e = Minisig::parse(LEGACY_SIG).unwrap_err();
        assert!(e.to_string().contains("legacy"), "{e}");
        assert!(Minisig::parse("not\na\nsignature\n").is_err());
    }

    // Made with Debian's minisign 0.11: `minisign -G -W`, then
    // `minisign -S -t '<statement>'` over the 13 bytes `archive bytes`.
    const DEBIAN_PUBLIC: &str = "RWRoiUVnMWwCcNF9KNOloywHVogzJcqFfbGzK0RavHtsSbrPy9PwqSJA";
    const DEBIAN_SIG: &str = r#"untrusted comment: signature from minisign secret key
RURoiUVnMWwCcL7lJI5CuNw3Vi1ATAwNankXU88TnZpoHlfmoJgYIEILmGU9Q0mVVTDdYO1wancwCXFCBSm5nJp25wfsOLR0Vgo=
trusted comment: {"type":"rbee-worker-build/v1","worker_id":"w","version":"0.1.0","platform":"linux-x86_64","digest":"sha256:cc9c340301ad4ba5e54aa24b442ff938d1ed84f7f32c4c5a73773c58af37bd1b"}
1V8OZLuMPHe4WwIUCIeacJMz4GiFNzlOa30ChurJM/DFyytnYR1Uthyy0izZSso5quXcPCMqDlxcth5ezFkeBw==
"#;
    const DATA_DIGEST: &str =
        "sha256:cc9c340301ad4ba5e54aa24b442ff938d1ed84f7f32c4c5a73773c58af37bd1b";

    fn document(platform: Platform, digest: &str, key_id: &str) -> Vec<u8> {
        ReleaseSignature {
            key_id: key_id.into(),
            worker_id: "w".into(),
            version: "0.1.0".into(),
            signatures: vec![PlatformSignature {
                platform,
                digest: digest.into(),
                filename: "w-0.1.0-linux-x86_64.tar.gz".into(),
                minisig: DEBIAN_SIG.into(),
            }],
        }
        .to_json()
    }

    #[test]
    fn minisign_made_signatures_parse_with_their_key_and_statement() {
        let sig = Minisig::parse(DEBIAN_SIG).unwrap();
        assert_eq!(sig.key_id, "70026C3167458968");
        assert_eq!(sig.key_id, public_key_id(DEBIAN_PUBLIC).unwrap());
        let st = sig.statement().unwrap();
        assert_eq!(
            st,
            SignedStatement::new("w", "0.1.0", Platform::LinuxX86_64, DATA_DIGEST)
        );
    }

    #[test]
    fn a_document_must_agree_with_what_its_signatures_state() {
        let id = "70026C3167458968";
        let good = ReleaseSignature::from_json(&document(Platform::LinuxX86_64, DATA_DIGEST, id));
        assert!(good.is_ok(), "{good:?}");
        let doc = good.unwrap();
        assert!(doc.for_platform(Platform::LinuxX86_64).is_some());
        assert!(doc.for_platform(Platform::MacosAarch64).is_none());
        for bad in [
            document(Platform::LinuxAarch64, DATA_DIGEST, id),
            document(Platform::LinuxX86_64, "sha256:00", id),
            document(Platform::LinuxX86_64, DATA_DIGEST, "0000000000000000"),
        ] {
            assert!(ReleaseSignature::from_json(&bad).is_err());
        }
        assert!(ReleaseSignature::from_json(&vec![b' '; DOCUMENT_MAX_BYTES + 1]).is_err());
    }

    #[test]
    fn the_artifact_refers_to_the_index_and_carries_a_minisig_per_platform() {
        let doc = ReleaseSignature::from_json(&document(
            Platform::LinuxX86_64,
            DATA_DIGEST,
            "70026C3167458968",
        ))
        .unwrap();
        let index = oci::describe(mt::OCI_INDEX, b"{}");
        let a = doc.artifact(&index, "2026-11-30T12:00:00Z");
        let m: ImageManifest = serde_json::from_slice(&a.manifest).unwrap();
        assert_eq!(m.subject.unwrap().digest, index.digest);
        assert_eq!(m.artifact_type.as_deref(), Some(SIGNATURE_ARTIFACT_TYPE));
        assert_eq!(m.layers[0].media_type, SIGNATURE_DOCUMENT);
        assert_eq!(m.layers[1].media_type, MINISIG);
        assert_eq!(
            m.layers[1].annotations.as_ref().unwrap()[ann::TITLE],
            "w-0.1.0-linux-x86_64.tar.gz.minisig"
        );
        assert_eq!(a.blobs.len(), m.layers.len() + 1);
        assert_eq!(signature_referrers([&a.descriptor]).len(), 1);
    }

    #[test]
    fn statements_round_trip_and_refuse_other_types() {
        let s = SignedStatement::new("w", "0.1.0", Platform::LinuxX86_64, "sha256:aa");
        let text = s.to_trusted_comment();
        assert!(!text.contains('\n'));
        assert_eq!(SignedStatement::from_trusted_comment(&text).unwrap(), s);
        let other = text.replace(STATEMENT_TYPE, "something-else");
        assert!(SignedStatement::from_trusted_comment(&other).is_err());
        assert!(SignedStatement::from_trusted_comment("timestamp:1").is_err());
    }
}
