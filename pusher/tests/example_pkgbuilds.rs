//! Every example PKGBUILD (`examples/*/PKGBUILD`) passes `rbee-pusher
//! validate`'s checks, rbee-hive's rules included, for the worker id of
//! the `metadata.json` beside it: what we ship as an example is something
//! rbee-hive can build.

use std::path::{Path, PathBuf};

use rbee_pusher::pkgbuild;

fn examples() -> Vec<PathBuf> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../examples");
    let mut found: Vec<PathBuf> = std::fs::read_dir(&root)
        .expect("the examples folder")
        .map(|e| e.expect("an examples entry").path().join("PKGBUILD"))
        .filter(|p| p.is_file())
        .collect();
    found.sort();
    found
}

#[test]
fn every_example_pkgbuild_follows_rbee_hives_rules() {
    let pkgbuilds = examples();
    assert!(!pkgbuilds.is_empty(), "no examples/*/PKGBUILD found");
    for path in pkgbuilds {
        let metadata_path = path.with_file_name("metadata.json");
        let metadata = rbee_schemas::WorkerMetadata::from_json(
            &std::fs::read_to_string(&metadata_path).expect("metadata.json beside the PKGBUILD"),
        )
        .unwrap_or_else(|e| panic!("{}: {e}", metadata_path.display()));
        let read = pkgbuild::check(&path, &metadata.version.to_string(), &metadata.id)
            .unwrap_or_else(|e| panic!("{e}"));
        // The rules above, spelled out for the reader of this test.
        let source = read.get("source").unwrap();
        assert!(source.iter().all(|s| s.starts_with("git+")), "{source:?}");
        assert!(!read.text.contains("${pkgver}"), "{}", path.display());
    }
}
