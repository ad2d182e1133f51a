//! Archive unpacking (`rbee_worker_client::unpack::unpack`), fed arbitrary
//! bytes as a tar stream (gzipped here, so the fuzzer works on tar
//! headers) or, when the first byte is odd, as the `.tar.gz` itself.
//!
//! The archive and the target directory sit in a fresh temporary folder
//! next to a sentinel file. Invariants, whatever the bytes: no panic;
//! nothing appears in that folder outside the target directory and the
//! sentinel is untouched; nothing in the target is a symlink or anything
//! but a plain file or directory; when unpacking succeeds, every path it
//! returns is relative, inside the target, a plain file, and their sizes
//! stay within the cap.
#![no_main]

use std::fs;
use std::io::Write as _;
use std::path::{Component, Path};

use libfuzzer_sys::fuzz_target;
use rbee_worker_client::unpack::unpack;

/// Small, so that the size cap is exercised too.
const MAX_UNPACKED: u64 = 64 << 10;
const SENTINEL: &[u8] = b"outside the target";

fuzz_target!(|data: &[u8]| {
    let Some((&selector, rest)) = data.split_first() else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();
    let archive = root.join("a.tar.gz");
    if selector & 1 == 1 {
        fs::write(&archive, rest).unwrap();
    } else {
        let mut gz = flate2::write::GzEncoder::new(
            fs::File::create(&archive).unwrap(),
            flate2::Compression::fast(),
        );
        gz.write_all(rest).unwrap();
        gz.finish().unwrap();
    }
    fs::write(root.join("sentinel"), SENTINEL).unwrap();
    let target = root.join("t");
    fs::create_dir(&target).unwrap();

    let result = unpack(&archive, &target, MAX_UNPACKED);

    let mut outside: Vec<_> = fs::read_dir(root)
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    outside.sort();
    assert_eq!(outside, ["a.tar.gz", "sentinel", "t"], "written outside");
    assert_eq!(fs::read(root.join("sentinel")).unwrap(), SENTINEL);
    assert!(fs::symlink_metadata(&target).unwrap().is_dir());
    walk(&target);

    if let Ok(files) = result {
        let mut total = 0;
        let mut seen = std::collections::BTreeSet::new();
        for f in &files {
            assert!(
                f.components().all(|c| matches!(c, Component::Normal(_))),
                "{f:?}"
            );
            let meta = fs::symlink_metadata(target.join(f)).unwrap();
            assert!(meta.is_file(), "{f:?}");
            if seen.insert(f) {
                total += meta.len();
            }
        }
        assert!(total <= MAX_UNPACKED, "{total} bytes unpacked");
    }
});

/// Everything under `dir` is a plain file or a directory.
fn walk(dir: &Path) {
    for entry in fs::read_dir(dir).unwrap() {
        let entry = entry.unwrap();
        let meta = fs::symlink_metadata(entry.path()).unwrap();
        if meta.is_dir() {
            walk(&entry.path());
        } else {
            assert!(
                meta.is_file(),
                "{:?} is {:?}",
                entry.path(),
                meta.file_type()
            );
        }
    }
}
