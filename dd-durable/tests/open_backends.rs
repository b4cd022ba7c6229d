//! Opening real backends by URL (each test runs when its backend feature is enabled).
#![allow(clippy::unwrap_used, clippy::expect_used)] // tests may panic

mod common;

/// Stores through a store opened from `url`, reopens it from the same URL and loads.
#[cfg(any(feature = "fs", feature = "sqlite"))]
async fn round_trip_via_url(url: &str, describe_prefix: &str) {
    use common::{as_counter, counter, entry, load_all};
    use dd_core::ReplicaId;
    use dd_core::durable::CrdtValueStore;
    use dd_durable::{DurableDistributedDataStore, DurableOptions};

    let replica = ReplicaId::new("node-a");
    let durable = DurableDistributedDataStore::open_url(url, DurableOptions::default())
        .await
        .unwrap();
    assert!(
        durable.describe().starts_with(describe_prefix),
        "{}",
        durable.describe()
    );
    durable
        .store(&replica, vec![entry("k", counter(&[("node-a", 1, 3)]))])
        .await
        .unwrap();
    durable.close().await.unwrap();
    let reopened = DurableDistributedDataStore::open_url(url, DurableOptions::default())
        .await
        .unwrap();
    let loaded = load_all(&reopened, &replica).await;
    assert_eq!(as_counter(&loaded[0].1), counter(&[("node-a", 1, 3)]));
}

#[cfg(feature = "fs")]
#[tokio::test]
async fn fs_url_opens_a_working_store() {
    let dir = tempfile::tempdir().unwrap();
    round_trip_via_url(&format!("fs://{}", dir.path().display()), "fs:").await;
}

#[cfg(feature = "sqlite")]
#[tokio::test]
async fn sqlite_url_opens_a_working_store() {
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}", dir.path().join("dd.db").display());
    round_trip_via_url(&url, "sqlite:").await;
}

#[cfg(feature = "sqlite")]
#[tokio::test]
async fn bad_sqlite_url_is_the_backend_error() {
    let dir = tempfile::tempdir().unwrap();
    let url = format!(
        "sqlite://{}?no_such_option=1",
        dir.path().join("dd.db").display()
    );
    let err = dd_durable::open_store(&url).await.err().unwrap();
    assert!(matches!(err, dd_durable::OpenError::Store(_)), "{err:?}");
}
