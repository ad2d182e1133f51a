//! The grammars of repository names, tags and digests (distribution-spec
//! "Pulling manifests" and image-spec "Digests"). Every path segment that
//! reaches storage has passed through one of these parsers first, which is
//! what keeps a hostile name from escaping the data directory.

use std::fmt;
use std::str::FromStr;

use crate::error::RegistryError;

/// Longest repository name accepted. The spec leaves room for the host name
/// in the 255 characters most clients allow for a full reference; we keep
/// the whole budget for the name, as CNCF Distribution does.
pub const MAX_NAME_LEN: usize = 255;
/// Longest tag: one leading character plus 127 more.
pub const MAX_TAG_LEN: usize = 128;

/// A validated repository name such as `rbee/llm-worker-rbee-cpu`.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct RepoName(String);

impl RepoName {
    /// Parses `s` against
    /// `[a-z0-9]+((\.|_|__|-+)[a-z0-9]+)*(/[a-z0-9]+((\.|_|__|-+)[a-z0-9]+)*)*`.
    pub fn parse(s: &str) -> Result<Self, RegistryError> {
        let invalid = |why: &str| RegistryError::NameInvalid(format!("`{}`: {why}", truncate(s)));
        if s.is_empty() {
            return Err(invalid("empty name"));
        }
        if s.len() > MAX_NAME_LEN {
            return Err(invalid(&format!("longer than {MAX_NAME_LEN} characters")));
        }
        for component in s.split('/') {
            if !rbee_schemas::is_repository_name_component(component) {
                return Err(invalid(
                    "each `/`-separated component must be lower-case letters and digits, \
                     joined by `.`, `_`, `__` or runs of `-`",
                ));
            }
        }
        Ok(RepoName(s.to_owned()))
    }

    /// The name as written.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for RepoName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// A validated tag: `[a-zA-Z0-9_][a-zA-Z0-9._-]{0,127}`.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Tag(String);

impl Tag {
    /// Parses a tag.
    pub fn parse(s: &str) -> Result<Self, RegistryError> {
        let b = s.as_bytes();
        let first_ok = b
            .first()
            .is_some_and(|&c| c.is_ascii_alphanumeric() || c == b'_');
        let rest_ok = b
            .iter()
            .skip(1)
            .all(|&c| c.is_ascii_alphanumeric() || matches!(c, b'_' | b'.' | b'-'));
        if first_ok && rest_ok && b.len() <= MAX_TAG_LEN {
            Ok(Tag(s.to_owned()))
        } else {
            Err(RegistryError::TagInvalid(format!(
                "`{}` must match [a-zA-Z0-9_][a-zA-Z0-9._-]{{0,127}}",
                truncate(s)
            )))
        }
    }

    /// The tag as written.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for Tag {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// The digest algorithms this registry can verify.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Algorithm {
    /// SHA-256, the algorithm every client uses.
    Sha256,
    /// SHA-512, registered by image-spec and accepted here too.
    Sha512,
}

impl Algorithm {
    /// The name used in a digest string.
    pub fn name(self) -> &'static str {
        match self {
            Algorithm::Sha256 => "sha256",
            Algorithm::Sha512 => "sha512",
        }
    }

    fn hex_len(self) -> usize {
        match self {
            Algorithm::Sha256 => 64,
            Algorithm::Sha512 => 128,
        }
    }
}

/// A running hash of one of the algorithms this registry verifies.
#[derive(Debug, Clone)]
pub enum Hasher {
    /// SHA-256.
    Sha256(sha2::Sha256),
    /// SHA-512.
    Sha512(sha2::Sha512),
}

impl Hasher {
    /// A fresh hash of `algorithm`.
    pub fn new(algorithm: Algorithm) -> Self {
        use sha2::Digest as _;
        match algorithm {
            Algorithm::Sha256 => Hasher::Sha256(sha2::Sha256::new()),
            Algorithm::Sha512 => Hasher::Sha512(sha2::Sha512::new()),
        }
    }

    /// Adds `data`.
    pub fn update(&mut self, data: &[u8]) {
        use sha2::Digest as _;
        match self {
            Hasher::Sha256(h) => h.update(data),
            Hasher::Sha512(h) => h.update(data),
        }
    }

    /// The digest of everything added.
    pub fn finish(self) -> Digest {
        use sha2::Digest as _;
        match self {
            Hasher::Sha256(h) => Digest::from_bytes(Algorithm::Sha256, &h.finalize()),
            Hasher::Sha512(h) => Digest::from_bytes(Algorithm::Sha512, &h.finalize()),
        }
    }

    /// The digest of `data`.
    pub fn digest(algorithm: Algorithm, data: &[u8]) -> Digest {
        let mut h = Hasher::new(algorithm);
        h.update(data);
        h.finish()
    }
}

/// A validated content digest such as `sha256:<64 lower-case hex digits>`.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Digest {
    algorithm: Algorithm,
    hex: String,
}

impl Digest {
    /// Parses `algorithm:encoded`. The algorithm must be one we verify and the
    /// encoded part exactly its length in lower-case hex: anything else could
    /// never match content we computed, so it is rejected up front.
    pub fn parse(s: &str) -> Result<Self, RegistryError> {
        let invalid = |why: &str| RegistryError::DigestInvalid(format!("`{}`: {why}", truncate(s)));
        let (alg, hex) = s
            .split_once(':')
            .ok_or_else(|| invalid("expected `algorithm:hex`"))?;
        let algorithm = match alg {
            "sha256" => Algorithm::Sha256,
            "sha512" => Algorithm::Sha512,
            _ => return Err(invalid("unsupported algorithm; use sha256 or sha512")),
        };
        if hex.len() != algorithm.hex_len() {
            return Err(invalid(&format!(
                "{} digests have {} hex digits",
                algorithm.name(),
                algorithm.hex_len()
            )));
        }
        if !hex
            .bytes()
            .all(|c| c.is_ascii_digit() || (b'a'..=b'f').contains(&c))
        {
            return Err(invalid("the encoded part must be lower-case hex"));
        }
        Ok(Digest {
            algorithm,
            hex: hex.to_owned(),
        })
    }

    /// Builds a digest from a computed hash.
    pub fn from_bytes(algorithm: Algorithm, hash: &[u8]) -> Self {
        Digest {
            algorithm,
            hex: hex::encode(hash),
        }
    }

    /// The algorithm.
    pub fn algorithm(&self) -> Algorithm {
        self.algorithm
    }

    /// The lower-case hex part.
    pub fn hex(&self) -> &str {
        &self.hex
    }
}

impl fmt::Display for Digest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}", self.algorithm.name(), self.hex)
    }
}

impl FromStr for Digest {
    type Err = RegistryError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Digest::parse(s)
    }
}

impl serde::Serialize for Digest {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> serde::Deserialize<'de> for Digest {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = <std::borrow::Cow<'de, str>>::deserialize(d)?;
        Digest::parse(&s).map_err(serde::de::Error::custom)
    }
}

/// What a manifest URL names: a tag or a digest.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Reference {
    /// `manifests/<tag>`.
    Tag(Tag),
    /// `manifests/<digest>`.
    Digest(Digest),
}

impl Reference {
    /// A reference containing `:` is a digest, anything else a tag.
    pub fn parse(s: &str) -> Result<Self, RegistryError> {
        if s.contains(':') {
            Digest::parse(s).map(Reference::Digest)
        } else {
            Tag::parse(s).map(Reference::Tag)
        }
    }
}

impl fmt::Display for Reference {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Reference::Tag(t) => t.fmt(f),
            Reference::Digest(d) => d.fmt(f),
        }
    }
}

/// Echoing a 10 kB hostile name back in an error helps nobody.
fn truncate(s: &str) -> String {
    if s.chars().count() <= 80 {
        s.to_owned()
    } else {
        format!("{}…", s.chars().take(80).collect::<String>())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn names_from_the_spec_are_accepted() {
        for ok in [
            "a",
            "rbee/llm-worker-rbee-cpu",
            "a.b/c__d/e---f",
            "0/1",
            "a_b",
        ] {
            RepoName::parse(ok).unwrap_or_else(|e| panic!("{ok}: {e}"));
        }
    }

    #[test]
    fn hostile_names_are_rejected() {
        let long = "a".repeat(256);
        for bad in [
            "..", "a//b", "A", "a/", "/a", "a/../b", "a..b", "a___b", "-a", "a-", "", &long,
        ] {
            assert!(RepoName::parse(bad).is_err(), "{bad:?} accepted");
        }
        assert!(RepoName::parse(&"a".repeat(255)).is_ok());
    }

    #[test]
    fn tags() {
        assert!(Tag::parse("0.1.0").is_ok());
        assert!(Tag::parse("_x-Y.z").is_ok());
        assert!(Tag::parse(&"t".repeat(128)).is_ok());
        for bad in ["", ".x", "-x", "a/b", "a:b", &"t".repeat(129)] {
            assert!(Tag::parse(bad).is_err(), "{bad:?} accepted");
        }
    }

    #[test]
    fn digests() {
        let good = format!("sha256:{}", "a".repeat(64));
        assert_eq!(Digest::parse(&good).unwrap().to_string(), good);
        assert!(Digest::parse(&format!("sha512:{}", "0".repeat(128))).is_ok());
        for bad in [
            "sha256:../../x".to_owned(),
            format!("sha256:{}", "a".repeat(63)),
            format!("sha256:{}", "A".repeat(64)),
            format!("md5:{}", "a".repeat(32)),
            "sha256".to_owned(),
        ] {
            assert!(Digest::parse(&bad).is_err(), "{bad:?} accepted");
        }
    }

    proptest! {
        #[test]
        fn valid_names_round_trip(s in "[a-z0-9]{1,5}((\\.|_|__|-{1,3})[a-z0-9]{1,5}){0,3}(/[a-z0-9]{1,5}((\\.|_|__|-{1,3})[a-z0-9]{1,5}){0,2}){0,3}") {
            let parsed = RepoName::parse(&s).unwrap();
            prop_assert_eq!(parsed.as_str(), s.as_str());
        }

        #[test]
        fn accepted_names_never_escape(s in "\\PC{0,40}") {
            if let Ok(n) = RepoName::parse(&s) {
                for c in n.as_str().split('/') {
                    prop_assert!(!c.is_empty() && c != "." && c != "..");
                    prop_assert!(c.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b"._-".contains(&b)));
                }
            }
        }

        #[test]
        fn valid_tags_round_trip(s in "[a-zA-Z0-9_][a-zA-Z0-9._-]{0,127}") {
            prop_assert!(Tag::parse(&s).is_ok());
        }

        #[test]
        fn accepted_tags_match_the_grammar(s in "\\PC{0,140}") {
            if Tag::parse(&s).is_ok() {
                prop_assert!(s.len() <= 128 && !s.starts_with(['.', '-']));
                prop_assert!(s.bytes().all(|b| b.is_ascii_alphanumeric() || b"._-".contains(&b)));
            }
        }

        #[test]
        fn sha256_digests_round_trip(bytes in proptest::collection::vec(any::<u8>(), 32)) {
            let d = Digest::from_bytes(Algorithm::Sha256, &bytes);
            prop_assert_eq!(Digest::parse(&d.to_string()).unwrap(), d);
        }

        #[test]
        fn accepted_digests_are_canonical(s in "(sha256|sha512|md5|SHA256):[0-9a-fA-F./]{0,130}") {
            if let Ok(d) = Digest::parse(&s) {
                prop_assert_eq!(d.to_string(), s.clone());
                prop_assert!(d.hex().bytes().all(|b| b.is_ascii_hexdigit() && !b.is_ascii_uppercase()));
            }
        }
    }
}
