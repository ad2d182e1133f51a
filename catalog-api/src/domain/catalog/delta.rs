//! Deltas of a release (`rbee_schemas::delta`): the referrers of its image
//! index that rebuild one of its builds from an earlier one. Looked up at
//! request time, only by a download that names the build it has
//! (`?from=`), through a cache of each release's delta list; the database
//! view does not hold them, so this works the same with or without it
//! (the view lists releases; only downloads need deltas).

use std::sync::Arc;

use rbee_schemas::delta::{DELTA_ARTIFACT_TYPE, DeltaInfo};
use rbee_schemas::oci::ImageManifest;

use super::{Catalog, PlatformBuild, Release};
use crate::domain::source::RegistryRead;
use crate::domain::upstream::UpstreamError;

/// At most this many deltas of one release are read: a publisher makes K
/// per platform (`rbee-pusher --deltas`, 2 by default).
pub const MAX_DELTAS: usize = 64;

impl Catalog {
    /// The delta that rebuilds `build` of `release` from the layer
    /// `from`, when one is attached. A registry that cannot list or serve
    /// them means no delta (logged), never a failed download.
    pub async fn delta(
        &self,
        release: &Release,
        build: &PlatformBuild,
        from: &str,
    ) -> Option<DeltaInfo> {
        let key = format!("{}@{}#deltas", release.repository, release.index_digest);
        let (source, repo, subject) = (
            self.source.clone(),
            release.repository.clone(),
            release.index_digest.clone(),
        );
        let listed = self
            .deltas
            .get(&key, || deltas_of(source, repo, subject))
            .await;
        match listed {
            Ok(listed) => listed
                .value
                .iter()
                .find(|d| {
                    d.source == from
                        && d.target == build.layer_digest
                        && d.platform == build.platform
                })
                .cloned(),
            Err(e) => {
                tracing::warn!(release = %key, error = %e, "cannot read the deltas; answering without");
                None
            }
        }
    }
}

/// Every well-formed delta attached to `subject` in `repo`; malformed ones
/// are logged and left out.
async fn deltas_of(
    source: Arc<dyn RegistryRead>,
    repo: String,
    subject: String,
) -> Result<Vec<DeltaInfo>, UpstreamError> {
    let listed = source
        .referrers(&repo, &subject, DELTA_ARTIFACT_TYPE)
        .await?;
    let mut deltas = Vec::new();
    for (digest, _) in listed.into_iter().take(MAX_DELTAS) {
        let (bytes, _) = source.manifest(&repo, &digest).await?;
        let read = serde_json::from_slice::<ImageManifest>(&bytes)
            .map_err(|e| e.to_string())
            .and_then(|m| DeltaInfo::from_manifest(&m).map_err(|e| e.to_string()));
        match read {
            Ok(info) => deltas.push(info),
            Err(e) => {
                tracing::warn!(%repo, %digest, error = %e, "a delta referrer is malformed; left out")
            }
        }
    }
    Ok(deltas)
}
