//! Yank records (CONTRACTS F): referrers of a release's image index of
//! artifact type [`YANK_ARTIFACT_TYPE`], whose one layer is the JSON
//! `{"yanked": true|false, "reason": "...", "at": RFC3339}`. The newest
//! by `at` wins, so an unyank is one more record. The record's type and
//! that rule are `rbee_schemas::yank`'s; this reads them (through
//! [`super::records`]) for `catalog/fetch.rs`, whose `Release::yank` the
//! view stores.

use rbee_schemas::oci::ImageManifest;
use rbee_schemas::yank::{RECORD_MAX_BYTES, YANK_RECORD, YankRecord};

use super::RecordKind;
use crate::domain::source::RegistryRead;
use crate::domain::upstream::UpstreamError;

pub use rbee_schemas::yank::YANK_ARTIFACT_TYPE;

/// The yank record kind.
#[derive(Debug)]
pub struct Yank;

impl RecordKind for Yank {
    const ARTIFACT_TYPE: &'static str = YANK_ARTIFACT_TYPE;
    const DOCUMENT: Option<(&'static str, usize)> = Some((YANK_RECORD, RECORD_MAX_BYTES));
    type Record = YankRecord;

    fn parse(_: &str, _: &ImageManifest, document: Option<&[u8]>) -> Result<YankRecord, String> {
        YankRecord::from_json(document.unwrap_or_default()).map_err(|e| e.to_string())
    }
}

/// The yank in force for the release whose image index is `subject`:
/// its newest record when that one is a yank; `None` when it was never
/// yanked or the newest record is an unyank.
pub async fn in_force(
    source: &dyn RegistryRead,
    repo: &str,
    subject: &str,
) -> Result<Option<YankRecord>, UpstreamError> {
    let records = super::records::<Yank>(source, repo, subject).await?;
    Ok(rbee_schemas::yank::current(records).filter(|r| r.yanked))
}
