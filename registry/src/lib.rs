//! An OCI Distribution Spec v1.1 registry, the place rbee's worker releases
//! live. Storage is behind the small [`storage::Storage`] trait (filesystem
//! by default); the HTTP surface is [`api::router`]; [`Registry`] holds the
//! rules in between. See `docs/architecture.md` for the map.

pub mod access_log;
pub mod api;
mod cache;
pub mod cli;
pub mod config;
pub mod error;
pub mod events;
pub mod gate;
pub mod gc;
mod layout;
pub mod limits;
pub mod manifest;
pub mod reference;
mod registry;
mod repo_lock;
pub mod server;
pub mod storage;
mod uploads;

pub use cache::ManifestInfo;
pub use config::RegistryConfig;
pub use error::RegistryError;
pub use events::{
    Action, AuthenticatedSubject, ByteRange, Counted, Event, EventBus, EventSink, Offer, QueueSink,
    RequestContext, Target, Transfer,
};
pub use registry::{Registry, StoredManifest};
pub use uploads::UploadStatus;
