//! Two `rbee-catalog serve` processes on one PostgreSQL database (issue
//! 13, "several catalog nodes"): node A serves its embedded registry, node
//! B reads A's registry over HTTP (`--registry-url`), and both keep their
//! listings in the one catalog view. A push to A, which only A hears (its
//! registry's events; B has no webhook and minutes-long TTLs, and had
//! cached the empty list), is listed by B within a second, through the
//! view's `NOTIFY`. Needs the test PostgreSQL (`RBEE_TEST_POSTGRES_URL`);
//! fails without it when `CI` is set.

mod common;

use std::time::Duration;

use common::Node;
use rbee_store::testing::TestDatabase;

/// How soon a push must be listed by every node (`docs/api.md`).
const WITHIN: Duration = Duration::from_secs(1);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_push_heard_by_one_process_is_listed_by_the_other_within_a_second() {
    let Some(db) = TestDatabase::postgres().await else {
        return;
    };
    // A publishes anonymously over loopback: the development switch.
    let a = Node::start(db.url(), &["--dev-open-loopback"]).await;
    let b = Node::start(db.url(), &["--registry-url", &a.url]).await;
    // B answers, and caches, the empty list (for the index TTL, 300 s).
    assert!(b.listed().await.is_empty());
    assert!(b.listed().await.is_empty());

    let published = rbee_catalog_cli::demo::publish_example(&a.url, "rbee/catalog")
        .await
        .unwrap();
    assert!(published);
    let pushed = tokio::time::Instant::now();
    let worker = "hello-worker-rbee-cpu".to_owned();
    loop {
        let listed = b.listed().await;
        if listed == [worker.clone()] {
            break;
        }
        assert!(
            pushed.elapsed() < WITHIN,
            "node B lists {listed:?} {:?} after the push\nA:\n{}\nB:\n{}",
            pushed.elapsed(),
            a.log.lock().unwrap(),
            b.log.lock().unwrap()
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    eprintln!(
        "listed by the other process {:?} after the push",
        pushed.elapsed()
    );
    assert_eq!(a.listed().await, [worker]);
    a.stop().await;
    b.stop().await;
    db.finish().await;
}
