//! Licenses as the catalog sees them: which workers a presented key
//! unlocks, and from which releases on. Where keys are kept (the store's
//! database) is behind [`LicenseLookup`]; the rules are here, pure.

use std::fmt::Debug;

use chrono::{DateTime, Utc};

/// What a license unlocks.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Grant {
    /// One worker id, in whichever namespace it is published.
    Worker(String),
    /// Every repository `<namespace>/...`.
    Namespace(String),
}

/// A license the store found for a presented key: never the key itself.
#[derive(Debug, Clone)]
pub struct License {
    /// Its id, e.g. `lic_01H...`: safe to log.
    pub id: String,
    /// The workers and namespaces it unlocks.
    pub grants: Vec<Grant>,
    /// When it expires; `None`: never.
    pub expires_at: Option<DateTime<Utc>>,
    /// Whether, once expired, it still unlocks the versions published
    /// before its expiry.
    pub perpetual_fallback: bool,
}

impl License {
    /// Whether it has not expired at `now`.
    pub fn is_current(&self, now: DateTime<Utc>) -> bool {
        self.expires_at.is_none_or(|e| now < e)
    }

    /// Whether its grants name the worker `worker_id` published in
    /// `repository` (`<namespace>/<id>`).
    pub fn covers(&self, worker_id: &str, repository: &str) -> bool {
        let namespace = repository.rsplit_once('/').map(|(ns, _)| ns);
        self.grants.iter().any(|g| match g {
            Grant::Worker(id) => id == worker_id,
            Grant::Namespace(ns) => namespace == Some(ns.as_str()),
        })
    }

    /// Whether it unlocks the release of `worker_id` in `repository`
    /// published at `published_at`, at `now`: it must cover the worker,
    /// and be current, or have the perpetual fallback and have expired
    /// after the release was published. A release whose publish time is
    /// unknown is not unlocked by an expired license.
    pub fn unlocks(
        &self,
        worker_id: &str,
        repository: &str,
        published_at: Option<DateTime<Utc>>,
        now: DateTime<Utc>,
    ) -> bool {
        if !self.covers(worker_id, repository) {
            return false;
        }
        if self.is_current(now) {
            return true;
        }
        match (self.perpetual_fallback, self.expires_at, published_at) {
            (true, Some(expired), Some(published)) => published < expired,
            _ => false,
        }
    }

    /// The worker ids its grants name (namespace grants are not listed).
    pub fn worker_ids(&self) -> Vec<String> {
        self.grants
            .iter()
            .filter_map(|g| match g {
                Grant::Worker(id) => Some(id.clone()),
                Grant::Namespace(_) => None,
            })
            .collect()
    }
}

/// A release's `published_at` annotation (RFC 3339), parsed; `None` when
/// it is missing or not RFC 3339.
pub fn published_at(annotation: Option<&str>) -> Option<DateTime<Utc>> {
    annotation
        .and_then(|t| DateTime::parse_from_rfc3339(t).ok())
        .map(|t| t.with_timezone(&Utc))
}

/// The lookup could not be made (the database failed). Callers answer
/// "try again later", never "no license".
#[derive(Debug, thiserror::Error)]
#[error("the license store failed: {0}")]
pub struct LicenseLookupError(#[source] pub Box<dyn std::error::Error + Send + Sync>);

/// Where presented keys are looked up.
#[async_trait::async_trait]
pub trait LicenseLookup: Send + Sync + Debug {
    /// The license of `key`. `Ok(None)` for a malformed, unknown, revoked
    /// or expired key, and for keys that are not license keys; an expired
    /// license is returned only when it has the perpetual fallback.
    async fn license(&self, key: &str) -> Result<Option<License>, LicenseLookupError>;
}

/// The catalog's database holds the licenses. Only license keys count
/// here: a publisher or admin key unlocks no download through the catalog
/// (they pull through the registry's token service instead).
#[async_trait::async_trait]
impl LicenseLookup for rbee_store::Store {
    async fn license(&self, key: &str) -> Result<Option<License>, LicenseLookupError> {
        let credential = self
            .authenticate(key)
            .await
            .map_err(|e| LicenseLookupError(Box::new(e)))?;
        Ok(credential
            .filter(|c| c.kind == rbee_store::CredentialKind::License)
            .map(|c| License {
                id: c.id,
                grants: c
                    .grants
                    .into_iter()
                    .map(|g| match g {
                        rbee_store::Grant::Worker(id) => Grant::Worker(id),
                        rbee_store::Grant::Namespace(ns) => Grant::Namespace(ns),
                    })
                    .collect(),
                expires_at: c.expires_at,
                perpetual_fallback: c.perpetual_fallback,
            }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const REPO: &str = "rbee-premium/premium-worker-rbee-cuda";
    const ID: &str = "premium-worker-rbee-cuda";

    fn at(text: &str) -> DateTime<Utc> {
        published_at(Some(text)).unwrap()
    }

    fn license(grants: Vec<Grant>, expires: Option<&str>, fallback: bool) -> License {
        License {
            id: "lic_1".into(),
            grants,
            expires_at: expires.map(at),
            perpetual_fallback: fallback,
        }
    }

    #[test]
    fn a_current_license_unlocks_the_workers_it_names_only() {
        let now = at("2026-06-01T00:00:00Z");
        let l = license(vec![Grant::Worker(ID.into())], None, false);
        assert!(l.unlocks(ID, REPO, None, now));
        assert!(!l.unlocks("other-worker", "rbee-premium/other-worker", None, now));
        let ns = license(vec![Grant::Namespace("rbee-premium".into())], None, false);
        assert!(ns.unlocks(ID, REPO, None, now));
        assert!(!ns.unlocks(ID, "rbee/premium-worker-rbee-cuda", None, now));
        assert!(!ns.unlocks(ID, "rbee-premium-x/a", None, now));
    }

    #[test]
    fn an_expired_license_unlocks_nothing_without_the_fallback() {
        let l = license(
            vec![Grant::Worker(ID.into())],
            Some("2026-01-01T00:00:00Z"),
            false,
        );
        assert!(l.unlocks(ID, REPO, None, at("2025-12-31T23:59:59Z")));
        assert!(!l.unlocks(
            ID,
            REPO,
            Some(at("2025-01-01T00:00:00Z")),
            at("2026-01-01T00:00:00Z")
        ));
    }

    #[test]
    fn the_perpetual_fallback_unlocks_releases_published_before_expiry() {
        let l = license(
            vec![Grant::Worker(ID.into())],
            Some("2026-01-01T00:00:00Z"),
            true,
        );
        let now = at("2026-06-01T00:00:00Z");
        assert!(l.unlocks(ID, REPO, Some(at("2025-12-31T23:59:59Z")), now));
        assert!(!l.unlocks(ID, REPO, Some(at("2026-01-01T00:00:00Z")), now));
        assert!(!l.unlocks(ID, REPO, Some(at("2026-03-01T00:00:00Z")), now));
        assert!(!l.unlocks(ID, REPO, None, now), "unknown publish time");
        assert!(!l.unlocks(
            "other",
            "rbee-premium/other",
            Some(at("2025-01-01T00:00:00Z")),
            now
        ));
    }

    #[test]
    fn published_at_reads_rfc3339_only() {
        assert_eq!(
            published_at(Some("2026-01-01T01:00:00+01:00")),
            Some(at("2026-01-01T00:00:00Z"))
        );
        assert_eq!(published_at(Some("yesterday")), None);
        assert_eq!(published_at(None), None);
    }
}
