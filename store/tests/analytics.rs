//! Download analytics in the store: batches and their rollups, unique
//! clients, the daily secret, pruning; each on SQLite and PostgreSQL.

use chrono::{DateTime, NaiveDate, TimeZone, Utc};
use rbee_store::analytics::{Counts, NewDownload};
use rbee_store::store_test;

fn at(day: u32, hour: u32) -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 11, day, hour, 0, 0).unwrap()
}

fn download(worker: &str, version: &str, platform: &str, when: DateTime<Utc>) -> NewDownload {
    NewDownload {
        at: when,
        worker: worker.into(),
        version: version.into(),
        platform: platform.into(),
        source: "registry".into(),
        client_family: "oras".into(),
        client_hash: Some("aa".into()),
        license_id: None,
        complete: true,
        resumed: false,
    }
}

fn date(day: u32) -> NaiveDate {
    NaiveDate::from_ymd_opt(2026, 11, day).unwrap()
}

store_test!(async fn a_batch_updates_every_rollup(store) {
    let mut batch = vec![
        download("w", "0.1.0", "linux-x86_64", at(10, 1)),
        download("w", "0.1.0", "linux-aarch64", at(10, 2)),
        download("w", "0.2.0", "linux-x86_64", at(11, 3)),
        download("other", "1.0.0", "linux-x86_64", at(11, 3)),
    ];
    batch[1].client_hash = Some("bb".into());
    batch[1].source = "v1".into();
    batch[1].client_family = "rbee-hive".into();
    let mut aborted = download("w", "0.2.0", "linux-x86_64", at(11, 4));
    aborted.complete = false;
    batch.push(aborted);
    let mut resumed = download("w", "0.2.0", "linux-x86_64", at(11, 5));
    resumed.resumed = true;
    batch.push(resumed);
    store.record_downloads(&batch).await.unwrap();

    let w = store.worker_downloads("w", date(1)).await.unwrap();
    assert_eq!(w.days.len(), 2);
    assert_eq!(w.days[0].day, date(10));
    assert_eq!(w.days[0].counts, Counts { complete: 2, incomplete: 0, resumed: 0 });
    assert_eq!(w.days[0].unique_clients, 2);
    assert_eq!(w.days[1].counts, Counts { complete: 2, incomplete: 1, resumed: 1 });
    assert_eq!(w.days[1].unique_clients, 1);
    assert_eq!(w.by_version[0].0, "0.1.0");
    assert_eq!(w.by_version[1], ("0.2.0".into(), Counts { complete: 2, incomplete: 1, resumed: 1 }));
    assert_eq!(w.by_platform[0], ("linux-x86_64".into(), Counts { complete: 3, incomplete: 1, resumed: 1 }));
    // Only days from `since` on.
    let later = store.worker_downloads("w", date(11)).await.unwrap();
    assert_eq!(later.days.len(), 1);

    let o = store.download_overview(date(1), 10, 3).await.unwrap();
    assert_eq!(o.top_workers[0].0, "w");
    assert_eq!(o.top_workers[0].1.complete, 4);
    assert_eq!(o.top_workers[1].0, "other");
    assert_eq!(o.recent.len(), 3);
    assert_eq!(o.recent[0].worker, "w", "newest first, complete only");
    assert_eq!(o.recent[0].at, at(11, 5));
    let source = |k: &str| o.by_source.iter().find(|(s, _)| s == k).unwrap().1.complete;
    assert_eq!((source("registry"), source("v1")), (4, 1));
    assert_eq!(o.by_client_family[0].0, "oras");
    assert_eq!(o.by_platform.len(), 2);
});

store_test!(async fn a_client_is_counted_once_a_day_across_batches(store) {
    for _ in 0..3 {
        store
            .record_downloads(&[download("w", "0.1.0", "linux-x86_64", at(10, 1))])
            .await
            .unwrap();
    }
    let w = store.worker_downloads("w", date(1)).await.unwrap();
    assert_eq!(w.days[0].counts.complete, 3);
    assert_eq!(w.days[0].unique_clients, 1);
});

store_test!(async fn the_day_secret_is_stable_and_old_ones_are_deleted(store) {
    let first = store.analytics_secret(date(10)).await.unwrap();
    assert_eq!(first.len(), 32);
    assert_eq!(store.analytics_secret(date(10)).await.unwrap(), first);
    let next = store.analytics_secret(date(11)).await.unwrap();
    assert_ne!(next, first);
    // Day 12 deletes day 10's secret (day 11's stays for late events).
    store.analytics_secret(date(12)).await.unwrap();
    assert_eq!(store.analytics_secret(date(11)).await.unwrap(), next);
    let remade = store.analytics_secret(date(10)).await.unwrap();
    assert_ne!(remade, first, "day 10's secret was deleted");
});

store_test!(async fn pruning_drops_old_raw_events_and_keeps_rollups(store) {
    let batch: Vec<_> = (1..=20)
        .map(|d| download("w", "0.1.0", "linux-x86_64", at(d, 0)))
        .collect();
    store.record_downloads(&batch).await.unwrap();
    let deleted = store.prune_downloads(date(11), date(19)).await.unwrap();
    assert_eq!(deleted, 10);
    let o = store.download_overview(date(1), 10, 100).await.unwrap();
    assert_eq!(o.recent.len(), 10, "raw events of days 11-20 remain");
    assert_eq!(o.top_workers[0].1.complete, 20, "rollups are kept");
    assert_eq!(
        store.worker_downloads("w", date(1)).await.unwrap().days.len(),
        20
    );
});
