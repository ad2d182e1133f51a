//! One module per subcommand of `rbee-catalog`.

pub mod serve;
