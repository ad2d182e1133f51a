//! One module per subcommand of `rbee-catalog`.

pub mod admin_key;
pub mod audit;
pub mod config;
pub mod database;
pub mod license;
pub mod publisher_key;
pub mod serve;
pub mod stats;
pub mod sync;
