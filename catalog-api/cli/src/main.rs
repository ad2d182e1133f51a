//! `rbee-catalog`: the catalog API, with the registry embedded by default.
//! The commands live in the `rbee_catalog_cli` library.

use rbee_catalog_cli::Cli;

fn main() -> anyhow::Result<()> {
    rbee_registry::server::run_binary(rbee_catalog_cli::run(Cli::from_process()))
}
