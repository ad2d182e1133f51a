//! Publishing rbee worker releases as OCI artifacts: the library behind
//! `rbee-pusher`. [`release::Release::load`] checks a release,
//! [`publish::publish`] pushes it through a [`client::RegistryClient`].
//! The format it writes is described in `docs/artifact-format.md`.

pub mod auth;
pub mod client;
pub mod delta;
pub mod error;
pub mod package;
pub mod pkgbuild;
pub mod progress;
pub mod publish;
pub mod referrers;
pub mod release;
pub mod release_staged;
pub mod sign;
pub mod stage;
pub mod validate;
pub mod yank;

pub use error::PushError;
