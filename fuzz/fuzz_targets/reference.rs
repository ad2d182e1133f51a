//! The registry's grammars of repository names, tags, digests and manifest
//! references (`rbee_registry::reference`), fed arbitrary strings.
//!
//! Invariants: whatever is accepted re-serialises to exactly the input and
//! parses again to the same value; an accepted name is a relative path of
//! plain components (it becomes a storage path); an accepted digest is
//! canonical (lower-case hex of its algorithm's length) and survives serde;
//! `Reference` agrees with the tag and digest parsers.
#![no_main]

use std::path::{Component, Path};

use libfuzzer_sys::fuzz_target;
use rbee_registry::reference::{
    Algorithm, Digest, MAX_NAME_LEN, MAX_TAG_LEN, Reference, RepoName, Tag,
};

fuzz_target!(|s: &str| {
    if let Ok(name) = RepoName::parse(s) {
        assert_eq!(name.as_str(), s);
        assert_eq!(name.to_string(), s);
        assert_eq!(RepoName::parse(&name.to_string()).unwrap(), name);
        assert!(!s.is_empty() && s.len() <= MAX_NAME_LEN);
        // The name is joined onto the data directory: every piece of it must
        // be a plain, non-empty path component.
        let components: Vec<_> = Path::new(s).components().collect();
        assert_eq!(components.len(), s.split('/').count(), "{s:?}");
        for c in components {
            let Component::Normal(c) = c else {
                panic!("{s:?} has a {c:?} component");
            };
            let c = c.to_str().unwrap();
            assert!(c != "." && c != "..");
            assert!(
                c.bytes()
                    .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b"._-".contains(&b))
            );
            assert!(rbee_schemas::is_repository_name_component(c));
        }
    }

    let tag = Tag::parse(s);
    if let Ok(tag) = &tag {
        assert_eq!(tag.as_str(), s);
        assert_eq!(tag.to_string(), s);
        assert!(!s.is_empty() && s.len() <= MAX_TAG_LEN);
        assert!(!s.starts_with(['.', '-']));
        // A tag is a file name under the repository: never a path.
        assert!(!s.contains('/') && s != "." && s != "..");
    }

    let digest = Digest::parse(s);
    if let Ok(d) = &digest {
        assert_eq!(d.to_string(), s);
        assert_eq!(&s.parse::<Digest>().unwrap(), d);
        let want = match d.algorithm() {
            Algorithm::Sha256 => 64,
            Algorithm::Sha512 => 128,
        };
        assert_eq!(d.hex().len(), want);
        assert!(
            d.hex()
                .bytes()
                .all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'))
        );
        assert_eq!(s, format!("{}:{}", d.algorithm().name(), d.hex()));
        // serde goes through the same grammar, both ways.
        let json = serde_json::to_string(d).unwrap();
        assert_eq!(json, serde_json::to_string(s).unwrap());
        assert_eq!(&serde_json::from_str::<Digest>(&json).unwrap(), d);
    }
    // serde refuses exactly what `parse` refuses.
    let as_json = serde_json::to_string(s).unwrap();
    assert_eq!(
        serde_json::from_str::<Digest>(&as_json).is_ok(),
        digest.is_ok()
    );

    match Reference::parse(s) {
        Ok(r) => {
            assert_eq!(r.to_string(), s);
            match r {
                Reference::Tag(t) => assert_eq!(Some(&t), tag.as_ref().ok()),
                Reference::Digest(d) => assert_eq!(Some(&d), digest.as_ref().ok()),
            }
        }
        // A reference is a tag or a digest: refused only when it is neither.
        Err(_) => assert!(tag.is_err() && digest.is_err(), "{s:?}"),
    }
});
