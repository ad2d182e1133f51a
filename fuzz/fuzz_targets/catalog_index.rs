//! The catalog index document (`CatalogIndex::from_json`, serde,
//! `validate`, `upsert`, `CatalogEntry::insert_version`), fed arbitrary
//! text.
//!
//! Invariants: serde and `from_json` agree; an accepted index validates,
//! has unique ids sorted, every `latest` one of its `versions`, every
//! repository a name the registry accepts, and reads back to itself from
//! its JSON; rebuilding each entry with `insert_version` gives the highest
//! stable version as `latest`, newest first, and the index stays valid and
//! sorted through `upsert`.
#![no_main]

use libfuzzer_sys::fuzz_target;
use rbee_registry::reference::RepoName;
use rbee_schemas::{CatalogEntry, CatalogIndex};

fuzz_target!(|text: &str| {
    let read = CatalogIndex::from_json(text);
    assert_eq!(
        serde_json::from_str::<CatalogIndex>(text).is_ok(),
        read.is_ok()
    );
    let index = match read {
        Ok(index) => index,
        Err(e) => {
            assert!(!e.issues.is_empty());
            assert!(e.issues.iter().all(|i| i.path.starts_with('$')));
            return;
        }
    };
    assert_eq!(index.validate(), Ok(()));
    let json = index.to_json_pretty();
    assert_eq!(
        CatalogIndex::from_json(&json).as_ref(),
        Ok(&index),
        "{json}"
    );
    assert!(index.workers.windows(2).all(|w| w[0].id < w[1].id));
    for e in &index.workers {
        assert_eq!(index.get(&e.id), Some(e));
        assert!(RepoName::parse(&e.repository).is_ok(), "{:?}", e.repository);
        if let Some(latest) = &e.latest {
            assert!(e.versions.contains(latest));
        }
    }

    // Rebuild the index entry by entry, as the pusher does.
    let mut rebuilt = CatalogIndex::new(index.updated_at.clone());
    for e in index.workers.iter().rev() {
        let mut fresh = CatalogEntry {
            versions: Vec::new(),
            latest: None,
            ..e.clone()
        };
        for v in &e.versions {
            fresh.insert_version(&semver::Version::parse(v).unwrap());
        }
        let parsed: Vec<semver::Version> = fresh
            .versions
            .iter()
            .map(|v| semver::Version::parse(v).unwrap())
            .collect();
        assert!(
            parsed.windows(2).all(|w| w[0] > w[1]),
            "{:?}",
            fresh.versions
        );
        let highest_stable = parsed.iter().filter(|v| v.pre.is_empty()).max();
        assert_eq!(
            fresh.latest,
            highest_stable.map(ToString::to_string),
            "{:?}",
            fresh.versions
        );
        let mut sorted_in = e.versions.clone();
        sorted_in.sort();
        let mut sorted_out = fresh.versions.clone();
        sorted_out.sort();
        assert_eq!(sorted_in, sorted_out);
        rebuilt.upsert(fresh);
    }
    assert_eq!(rebuilt.validate(), Ok(()));
    let ids: Vec<&str> = rebuilt.workers.iter().map(|e| e.id.as_str()).collect();
    let want: Vec<&str> = index.workers.iter().map(|e| e.id.as_str()).collect();
    assert_eq!(ids, want);
});
