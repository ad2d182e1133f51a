//! The library rbee-hive embeds carries no CLI and no server: with the
//! default `cli` feature off, `cargo tree` shows neither clap nor
//! indicatif, no web framework, no server crate of this workspace, no
//! OpenAPI generator (rbee-schemas' `openapi` feature is the catalog's), and
//! hyper without its server half. (About a second: `cargo tree` resolves
//! from `Cargo.lock`, offline.)

use std::process::Command;

#[test]
fn the_library_alone_pulls_no_cli_and_no_server_crate() {
    let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    let out = Command::new(cargo)
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .args([
            "tree",
            "-p",
            "rbee-worker-client",
            "--no-default-features",
            "-e",
            "features,normal",
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
    assert!(tree.contains("rbee-worker-client"), "{tree}");
    let crate_names: Vec<&str> = tree
        .lines()
        .filter(|l| !l.contains(" feature "))
        .filter_map(|l| l.split_whitespace().next())
        .collect();
    for banned in [
        "clap",
        "indicatif",
        "axum",
        "axum-core",
        "actix-web",
        "warp",
        "rbee-registry",
        "rbee-catalog",
        "rbee-pusher",
        "utoipa",
    ] {
        assert!(
            !crate_names.contains(&banned),
            "{banned} is in the library's tree"
        );
    }
    for line in tree.lines() {
        let server_half = (line.starts_with("hyper feature")
            || line.starts_with("hyper-util feature"))
            && line.contains("server");
        assert!(!server_half, "hyper's server half is in: {line}");
    }
}
