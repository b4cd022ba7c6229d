//! Opening real backends by URL (each test runs when its backend feature is enabled).
#![allow(clippy::unwrap_used, clippy::expect_used)] // tests may panic

mod common;

#[cfg(feature = "fs")]
#[tokio::test]
async fn fs_url_opens_a_working_store() {
    use common::{as_counter, counter, entry, load_all, registry};
    use dd_core::ReplicaId;
    use dd_core::durable::DurableDataStore;
    use dd_durable::{DurableDistributedDataStore, DurableOptions};

    let dir = tempfile::tempdir().unwrap();
    let url = format!("fs://{}", dir.path().display());
    let replica = ReplicaId::new("node-a");
    let durable = DurableDistributedDataStore::open_url(&url, DurableOptions::default())
        .await
        .unwrap();
    assert!(
        durable.describe().starts_with("fs:"),
        "{}",
        durable.describe()
    );
    durable
        .store(
            &replica,
            &registry(),
            vec![entry("k", counter(&[("node-a", 1, 3)]))],
        )
        .await
        .unwrap();
    drop(durable);
    let reopened = DurableDistributedDataStore::open_url(&url, DurableOptions::default())
        .await
        .unwrap();
    let loaded = load_all(&reopened, &replica).await;
    assert_eq!(as_counter(&loaded[0].1), counter(&[("node-a", 1, 3)]));
}
