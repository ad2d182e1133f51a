//! The catalog's HTTP routes, one file per family.

pub mod admin;
pub mod legacy;
pub mod licenses;
pub mod ops;
pub mod range;
pub mod stats;
pub mod token;
pub mod v1;
pub mod webhook;
