//! Storage keys: relative `/`-separated paths that cannot escape the root.

use std::fmt;

/// A storage key such as `blobs/sha256/ab/ab12…`.
///
/// Every segment is non-empty, is neither `.` nor `..`, and holds no `/`,
/// `\` or NUL. The registry builds keys only from validated names, tags and
/// digests, so a failure here is a bug, and it panics rather than touch a
/// path outside the data directory.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Key(String);

impl Key {
    /// Joins `segments` into a key. A segment may itself contain `/`
    /// (a repository name does); each part is checked.
    pub fn new<I, S>(segments: I) -> Key
    where
        I: IntoIterator<Item = S>,
        S: AsRef<str>,
    {
        let mut out = String::new();
        for seg in segments {
            for part in seg.as_ref().split('/') {
                assert!(
                    !part.is_empty() && part != "." && part != ".." && !part.contains(['\\', '\0']),
                    "unsafe storage key segment {part:?}"
                );
                if !out.is_empty() {
                    out.push('/');
                }
                out.push_str(part);
            }
        }
        assert!(!out.is_empty(), "empty storage key");
        Key(out)
    }

    /// A key below this one.
    pub fn child(&self, segment: &str) -> Key {
        Key::new([self.0.as_str(), segment])
    }

    /// The key as a relative path string.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for Key {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::Key;

    #[test]
    fn joins_segments() {
        assert_eq!(Key::new(["a/b", "c"]).as_str(), "a/b/c");
    }

    #[test]
    #[should_panic(expected = "unsafe storage key")]
    fn refuses_parent_segments() {
        Key::new(["a", "../b"]);
    }
}
