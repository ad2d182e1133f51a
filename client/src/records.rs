//! `installed.json`: what is installed. Written only under the
//! destination's lock, through a temporary file of its own (a unique
//! name), synced, renamed over the old one, and the folder synced, so a
//! reader sees the old list or the new one, and a power cut keeps one of
//! them.

use std::io::Write as _;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::error::ClientError;
use crate::layout::sync_dir;

/// One installed worker build.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Installed {
    /// Worker id.
    pub worker_id: String,
    /// Exact version.
    pub version: String,
    /// rbee platform name.
    pub platform: String,
    /// `sha256:` of the archive it came from.
    pub digest: String,
    /// `sha256:` over the unpacked files' paths and sizes. A build counts
    /// as installed only while its folder still matches it. Absent in
    /// records of older installers, whose builds are then installed again.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub files_digest: Option<String>,
    /// Where it is unpacked.
    pub path: PathBuf,
    /// When it was installed (RFC 3339).
    pub installed_at: String,
}

#[derive(Debug, Default, Serialize, Deserialize)]
pub(crate) struct Records {
    pub workers: Vec<Installed>,
}

fn records_path(dest: &Path) -> PathBuf {
    dest.join("installed.json")
}

impl Records {
    /// The records of `dest` (none when it has no `installed.json`).
    pub fn read(dest: &Path) -> Result<Records, ClientError> {
        let path = records_path(dest);
        match std::fs::read(&path) {
            Ok(bytes) => serde_json::from_slice(&bytes)
                .map_err(|e| ClientError::Invalid(format!("{} is corrupt: {e}", path.display()))),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(Records::default()),
            Err(e) => Err(e.into()),
        }
    }

    /// Replaces `dest`'s records with these, durably. The caller holds the
    /// destination's lock.
    pub fn write(&mut self, dest: &Path) -> Result<(), ClientError> {
        self.workers.sort_by(|a, b| {
            (&a.worker_id, &a.version, &a.platform).cmp(&(&b.worker_id, &b.version, &b.platform))
        });
        let json =
            serde_json::to_vec_pretty(self).map_err(|e| ClientError::Invalid(e.to_string()))?;
        let mut tmp = tempfile::Builder::new()
            .prefix(".installed.json.")
            .suffix(".tmp")
            .tempfile_in(dest)?;
        tmp.write_all(&json)?;
        tmp.as_file().sync_all()?;
        tmp.persist(records_path(dest)).map_err(|e| e.error)?;
        sync_dir(dest)?;
        Ok(())
    }
}
