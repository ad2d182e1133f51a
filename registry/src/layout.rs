//! The storage layout: which key holds what. Only this file knows it.
//!
//! ```text
//! blobs/<alg>/<hex[..2]>/<hex>                         content, shared by all repositories
//! uploads/<id>/info (+ backend objects)              an upload session: owner, parts, hash state
//! repositories/<name>/_blobs/<alg>/<hex>               the blob is linked into <name>
//! repositories/<name>/_manifests/<alg>/<hex>           the manifest is in <name>; holds its media type
//! repositories/<name>/_tags/<tag>                      holds the digest the tag points at
//! repositories/<name>/_referrers/<alg>/<hex>/<alg>-<hex> a referrer of subject <hex>; holds its descriptor
//! index/repositories/<name with / as ~>              the repository exists (for `_catalog`)
//! ```
//!
//! Content lives once under `blobs/`; a repository sees it only through its
//! own links, which is what isolates repositories from one another.

use crate::reference::{Algorithm, Digest, RepoName, Tag};
use crate::storage::Key;

/// Where the bytes of `digest` live.
pub fn blob(digest: &Digest) -> Key {
    let hex = digest.hex();
    Key::new(["blobs", digest.algorithm().name(), &hex[..2], hex])
}

/// Where a finished upload `id` is committed when its digest can only be
/// checked by reading it back (a digest other than SHA-256, whose running
/// state the session does not keep).
pub fn upload_verify(id: &str) -> Key {
    Key::new(["uploads", id, "verify"])
}

/// Who owns upload `id`, when it started, and how far it has come (the
/// backend's [`crate::storage::UploadParts`] and the running hash).
pub fn upload_info(id: &str) -> Key {
    Key::new(["uploads", id, "info"])
}

/// Everything of upload `id`.
pub fn upload_dir(id: &str) -> Key {
    Key::new(["uploads", id])
}

/// All upload sessions.
pub fn uploads() -> Key {
    Key::new(["uploads"])
}

fn repo(name: &RepoName) -> Key {
    Key::new(["repositories", name.as_str()])
}

/// The link that makes `digest` readable as a blob of `name`.
pub fn blob_link(name: &RepoName, digest: &Digest) -> Key {
    repo(name).child(&format!(
        "_blobs/{}/{}",
        digest.algorithm().name(),
        digest.hex()
    ))
}

/// The record that `digest` is a manifest of `name`.
pub fn manifest_link(name: &RepoName, digest: &Digest) -> Key {
    repo(name).child(&format!(
        "_manifests/{}/{}",
        digest.algorithm().name(),
        digest.hex()
    ))
}

/// The blob links of `name` made with `algorithm` (file names: hex).
pub fn blob_links(name: &RepoName, algorithm: Algorithm) -> Key {
    repo(name).child(&format!("_blobs/{}", algorithm.name()))
}

/// The manifest records of `name` made with `algorithm` (file names: hex).
pub fn manifest_links(name: &RepoName, algorithm: Algorithm) -> Key {
    repo(name).child(&format!("_manifests/{}", algorithm.name()))
}

/// The content of `algorithm`: folders named by the first two hex digits.
pub fn blobs_of(algorithm: Algorithm) -> Key {
    Key::new(["blobs", algorithm.name()])
}

/// One fan-out folder of [`blobs_of`] (`prefix`: two hex digits, as listed).
pub fn blobs_under(algorithm: Algorithm, prefix: &str) -> Option<Key> {
    (prefix.len() == 2 && prefix.bytes().all(|b| b.is_ascii_hexdigit()))
        .then(|| Key::new(["blobs", algorithm.name(), prefix]))
}

/// A file name under `algorithm`'s folders back to its digest.
pub fn digest_of(algorithm: Algorithm, hex: &str) -> Option<Digest> {
    Digest::parse(&format!("{}:{hex}", algorithm.name())).ok()
}

/// All tags of `name`.
pub fn tags(name: &RepoName) -> Key {
    repo(name).child("_tags")
}

/// The tag `tag` of `name`.
pub fn tag(name: &RepoName, tag: &Tag) -> Key {
    tags(name).child(tag.as_str())
}

/// All referrers of `subject` in `name`.
pub fn referrers(name: &RepoName, subject: &Digest) -> Key {
    repo(name).child(&format!(
        "_referrers/{}/{}",
        subject.algorithm().name(),
        subject.hex()
    ))
}

/// The record that `referrer` refers to `subject` in `name`.
pub fn referrer(name: &RepoName, subject: &Digest, referrer: &Digest) -> Key {
    referrers(name, subject).child(&format!(
        "{}-{}",
        referrer.algorithm().name(),
        referrer.hex()
    ))
}

/// The file name of a referrer record, back to its digest.
pub fn referrer_digest(file_name: &str) -> Option<Digest> {
    let (alg, hex) = file_name.split_once('-')?;
    Digest::parse(&format!("{alg}:{hex}")).ok()
}

/// The directory of repository markers.
pub fn repository_index() -> Key {
    Key::new(["index", "repositories"])
}

/// The marker that `name` exists. `/` is not allowed in a file name and `~`
/// is not allowed in a repository name, so the mapping is reversible.
pub fn repository_marker(name: &RepoName) -> Key {
    repository_index().child(&name.as_str().replace('/', "~"))
}

/// A repository marker's file name, back to the repository name.
pub fn repository_from_marker(file_name: &str) -> Option<RepoName> {
    RepoName::parse(&file_name.replace('~', "/")).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn blob_keys_fan_out_by_prefix() {
        let d = Digest::parse(&format!("sha256:ab{}", "0".repeat(62))).unwrap();
        assert_eq!(
            blob(&d).as_str(),
            format!("blobs/sha256/ab/ab{}", "0".repeat(62))
        );
    }

    #[test]
    fn markers_round_trip() {
        let n = RepoName::parse("rbee/llm-worker-rbee-cpu").unwrap();
        let key = repository_marker(&n);
        let file = key.as_str().rsplit('/').next().unwrap();
        assert_eq!(repository_from_marker(file), Some(n));
    }

    #[test]
    fn referrer_records_round_trip() {
        let d = Digest::parse(&format!("sha256:{}", "1".repeat(64))).unwrap();
        let key = referrer(&RepoName::parse("a").unwrap(), &d, &d);
        assert_eq!(
            referrer_digest(key.as_str().rsplit('/').next().unwrap()),
            Some(d)
        );
    }
}
