//! Restarts of whole clusters over every backend: two replicas writing the same keys
//! concurrently come back with the merged value, and a three-replica TCP cluster comes back with
//! every CRDT type and a deleted key still deleted.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::sync::Arc;

use dd_core::Key;
use dd_core::Replicator;
use dd_core::crdt::GCounter;
use dd_core::replicator::{ReadConsistency, ReplicatorError, WriteConsistency};
use dd_core::store::DurableStateStore;
use integration_tests::{
    BackendKind, CONVERGENCE_BOUND, EveryType, EveryTypeKeys, ReplicaConfig, TransportKind,
    backend_tests, eventually, start_cluster, stop_all,
};

/// Every replica's values, when all of them can be read and are equal.
async fn common_value(rs: &[Replicator], keys: &EveryTypeKeys) -> Option<EveryType> {
    let mut first: Option<EveryType> = None;
    for r in rs {
        let value = keys.read(r).await.ok()?;
        match &first {
            None => first = Some(value),
            Some(f) if *f == value => {}
            Some(_) => return None,
        }
    }
    first
}

/// Waits until every replica holds the same values, with every tag's contribution merged in.
async fn converge(rs: &[Replicator], keys: &EveryTypeKeys, tags: &[&str]) -> EveryType {
    eventually(
        &format!("{} replicas converge on {tags:?}", rs.len()),
        CONVERGENCE_BOUND,
        || async {
            common_value(rs, keys)
                .await
                .is_some_and(|v| v.check_contributions(tags).is_ok())
        },
    )
    .await
    .unwrap();
    common_value(rs, keys).await.unwrap()
}

/// Every replica writes its contribution to every key at the same time.
async fn write_concurrently(rs: &[Replicator], keys: &EveryTypeKeys, tags: &[&str]) {
    let writes = rs.iter().zip(tags).map(|(r, tag)| {
        let (r, keys, tag) = (r.clone(), keys.clone(), tag.to_string());
        tokio::spawn(async move { keys.write_contribution(&r, &tag).await })
    });
    for w in futures::future::join_all(writes).await {
        w.unwrap().unwrap();
    }
}

/// Test 3: Two replicas (in-memory transport, one shared store) write the same keys concurrently,
/// converge, stop and start: each comes back with the merged value and they converge again.
async fn two_replicas_restart_with_the_merged_value(backend: BackendKind) {
    let location = backend.fresh_location("two").await.unwrap();
    let keys = EveryTypeKeys::new("k/");
    let store = location.open().await.unwrap();
    let members = [
        (ReplicaConfig::new("left"), store.clone()),
        (ReplicaConfig::new("right"), store.clone()),
    ];
    let rs = start_cluster(TransportKind::Memory, &members)
        .await
        .unwrap();
    write_concurrently(&rs, &keys, &["left1", "right1"]).await;
    let merged = converge(&rs, &keys, &["left1", "right1"]).await;
    stop_all(&rs).await.unwrap();
    drop((rs, store, members));

    let store = location.open().await.unwrap();
    let members = [
        (ReplicaConfig::new("left"), store.clone()),
        (ReplicaConfig::new("right"), store.clone()),
    ];
    let rs = start_cluster(TransportKind::Memory, &members)
        .await
        .unwrap();
    for r in &rs {
        // Read at once: the value comes from the store, not from the peer.
        assert_eq!(
            keys.read(r).await.unwrap(),
            merged,
            "{} after the restart on {backend}",
            r.self_id()
        );
    }
    write_concurrently(&rs, &keys, &["left2", "right2"]).await;
    let again = converge(&rs, &keys, &["left1", "right1", "left2", "right2"]).await;
    assert_ne!(again, merged);
    stop_all(&rs).await.unwrap();
}

/// Waits until `key` is deleted on every replica.
async fn converge_deleted(rs: &[Replicator], key: &Key<GCounter>) {
    eventually(
        "the deletion reaches every replica",
        CONVERGENCE_BOUND,
        || async {
            for r in rs {
                let got = r.get(key, ReadConsistency::Local).await;
                if !matches!(got, Err(ReplicatorError::Deleted { .. })) {
                    return false;
                }
            }
            true
        },
    )
    .await
    .unwrap();
}

/// Test 4: A three-replica TCP cluster, each replica with its own store location, writes every CRDT
/// type and deletes a key; after a full-cluster restart every replica has every value and the
/// key is still deleted, and the restarted cluster converges on new writes.
async fn three_replica_tcp_cluster_full_restart(backend: BackendKind) {
    let names = ["n1", "n2", "n3"];
    let mut locations = Vec::new();
    for name in names {
        locations.push(backend.fresh_location(name).await.unwrap());
    }
    let keys = EveryTypeKeys::new("cluster/");
    let doomed: Key<GCounter> = Key::new("cluster/doomed");
    let open_all = || async {
        let mut members: Vec<(ReplicaConfig, Arc<dyn DurableStateStore>)> = Vec::new();
        for (name, location) in names.iter().zip(&locations) {
            members.push((ReplicaConfig::new(*name), location.open().await.unwrap()));
        }
        members
    };

    let rs = start_cluster(TransportKind::Tcp, &open_all().await)
        .await
        .unwrap();
    let me = rs[0].self_id();
    rs[0]
        .update(
            &doomed,
            GCounter::new(),
            WriteConsistency::Local,
            move |c| c.increment(&me, 5),
        )
        .await
        .unwrap();
    eventually("the doomed key reaches n3", CONVERGENCE_BOUND, || async {
        rs[2]
            .get(&doomed, ReadConsistency::Local)
            .await
            .is_ok_and(|c| c.value() == 5)
    })
    .await
    .unwrap();
    rs[2]
        .delete(&doomed, WriteConsistency::Local)
        .await
        .unwrap();
    write_concurrently(&rs, &keys, &names).await;
    let before = converge(&rs, &keys, &names).await;
    converge_deleted(&rs, &doomed).await;
    stop_all(&rs).await.unwrap();
    drop(rs);

    let rs = start_cluster(TransportKind::Tcp, &open_all().await)
        .await
        .unwrap();
    for r in &rs {
        assert_eq!(
            keys.read(r).await.unwrap(),
            before,
            "{} after the restart",
            r.self_id()
        );
        let got = r.get(&doomed, ReadConsistency::Local).await;
        assert!(
            matches!(got, Err(ReplicatorError::Deleted { .. })),
            "{}: the deleted key must stay deleted, got {got:?}",
            r.self_id()
        );
    }
    // The restarted cluster works: a write on one replica reaches the others, and the deleted
    // key cannot be written again.
    keys.write_contribution(&rs[1], "after").await.unwrap();
    let after = converge(&rs, &keys, &["n1", "n2", "n3", "after"]).await;
    assert_ne!(after, before);
    let me = rs[0].self_id();
    let rewrite = rs[0]
        .update(
            &doomed,
            GCounter::new(),
            WriteConsistency::Local,
            move |c| c.increment(&me, 1),
        )
        .await;
    assert!(
        matches!(rewrite, Err(ReplicatorError::Deleted { .. })),
        "{rewrite:?}"
    );
    stop_all(&rs).await.unwrap();
}

backend_tests!(
    two_replicas_restart_with_the_merged_value,
    three_replica_tcp_cluster_full_restart,
);
