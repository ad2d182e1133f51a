//! Checked types for every value that comes over the network (or from the
//! user) and ends up in a path, a URL or a file name: a worker id, an
//! exact version, a sha256 digest and an archive's file name. Parsing is
//! the only way to build them, so a path made of them cannot climb out of
//! the destination: none of their grammars allows `/`, `\`, `..` or an
//! empty string.

use std::fmt;

use rbee_schemas::worker_id::validate_worker_id;

/// A worker id: `^[a-z0-9-]+$`, at most 100 characters (the schemas'
/// rule). Safe as a path component and a URL segment.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct WorkerId(String);

impl WorkerId {
    /// Parses `id`, or says why it is not a worker id.
    pub fn parse(id: &str) -> Result<WorkerId, String> {
        validate_worker_id(id)?;
        Ok(WorkerId(id.to_owned()))
    }

    /// The id.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for WorkerId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// Longest version string accepted (the catalog refuses longer ones too).
const MAX_VERSION_LEN: usize = 128;

/// Parses an exact semver version. Its text (digits, letters, `-`, `.`
/// and `+`) is safe as a path component: semver forbids empty
/// identifiers, so neither `.` nor `..` can come out of it.
pub fn parse_version(text: &str) -> Result<semver::Version, String> {
    if text.len() > MAX_VERSION_LEN {
        return Err(format!("a version is at most {MAX_VERSION_LEN} characters"));
    }
    semver::Version::parse(text).map_err(|e| format!("`{}` is not a version: {e}", short(text)))
}

/// A `sha256:<64 lower-case hex>` digest.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Sha256Digest(String);

impl Sha256Digest {
    /// Parses `digest`, or says why it is not a sha256 digest.
    pub fn parse(digest: &str) -> Result<Sha256Digest, String> {
        match digest.strip_prefix("sha256:") {
            Some(hex)
                if hex.len() == 64
                    && hex
                        .bytes()
                        .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b)) =>
            {
                Ok(Sha256Digest(digest.to_owned()))
            }
            _ => Err(format!(
                "`{}` is not a sha256 digest (sha256:<64 lower-case hex>)",
                short(digest)
            )),
        }
    }

    /// `sha256:<hex>`.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The 64 hex digits, safe as a file name.
    pub fn hex(&self) -> &str {
        &self.0["sha256:".len()..]
    }
}

impl fmt::Display for Sha256Digest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// Longest file name accepted (what most file systems allow).
const MAX_FILE_NAME_LEN: usize = 255;

/// Checks that `name` is a plain file name: not empty, not `.` or `..`,
/// at most 255 bytes, no `/`, `\`, `:` or control characters. The
/// installer never builds a path from it (downloads are named after their
/// digest), but it is shown to people and handed to callers.
pub fn check_file_name(name: &str) -> Result<(), String> {
    let bad = name.is_empty()
        || name == "."
        || name == ".."
        || name.len() > MAX_FILE_NAME_LEN
        || name
            .chars()
            .any(|c| c == '/' || c == '\\' || c == ':' || c.is_control());
    if bad {
        Err(format!("`{}` is not a plain file name", short(name)))
    } else {
        Ok(())
    }
}

/// Keeps hostile values short in error messages.
fn short(s: &str) -> String {
    const MAX: usize = 80;
    if s.chars().count() <= MAX {
        s.escape_debug().to_string()
    } else {
        let head: String = s.chars().take(MAX).collect();
        format!("{}…", head.escape_debug())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn path_like_values_are_refused() {
        for bad in ["/srv/victim", "../../x", "..", ".", "", "a/b", "A", "a b"] {
            assert!(WorkerId::parse(bad).is_err(), "{bad:?}");
            assert!(parse_version(bad).is_err(), "{bad:?}");
        }
        assert!(parse_version("1.0.0/../../x").is_err());
        assert!(parse_version("../../../../srv/victim").is_err());
        assert_eq!(
            parse_version("1.2.3-rc.1+b.5").unwrap().to_string(),
            "1.2.3-rc.1+b.5"
        );
        assert!(WorkerId::parse("llm-worker-rbee-cpu").is_ok());
    }

    #[test]
    fn digests_are_sha256_lower_hex_only() {
        let good = format!("sha256:{}", "a".repeat(64));
        assert_eq!(Sha256Digest::parse(&good).unwrap().hex(), "a".repeat(64));
        for bad in [
            "/srv/x".to_owned(),
            format!("sha256:{}", "A".repeat(64)),
            format!("sha256:{}", "a".repeat(63)),
            format!("sha512:{}", "a".repeat(64)),
            format!("sha256:../{}", "a".repeat(61)),
        ] {
            assert!(Sha256Digest::parse(&bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn file_names_have_one_component() {
        assert!(check_file_name("w-0.1.0-linux-x86_64.tar.gz").is_ok());
        for bad in ["", ".", "..", "a/b", "..\\x", "/etc/passwd", "a\nb", "c:x"] {
            assert!(check_file_name(bad).is_err(), "{bad:?}");
        }
    }
}
