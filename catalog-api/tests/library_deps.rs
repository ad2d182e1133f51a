//! The catalog library is a server, not a publisher: its normal
//! dependencies include neither the pusher (nor its tar, bash and progress
//! bars) nor the CLI package. The `rbee-catalog` binary
//! (`catalog-api/cli/`) composes them. (About a second: `cargo tree`
//! resolves from `Cargo.lock`, offline.)

use std::process::Command;

#[test]
fn the_catalog_library_does_not_link_the_publisher() {
    let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    let out = Command::new(cargo)
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .args([
            "tree",
            "-p",
            "rbee-catalog",
            "-e",
            "normal",
            "--locked",
            "--offline",
            "--prefix",
            "none",
        ])
        .output()
        .expect("cargo runs");
    let tree = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "cargo tree failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let crate_names: Vec<&str> = tree
        .lines()
        .filter_map(|l| l.split_whitespace().next())
        .collect();
    assert!(crate_names.contains(&"rbee-catalog"), "{tree}");
    assert!(crate_names.contains(&"rbee-registry"), "{tree}");
    for banned in ["rbee-pusher", "rbee-catalog-cli", "indicatif"] {
        assert!(
            !crate_names.contains(&banned),
            "{banned} is in the catalog library's tree"
        );
    }
}
