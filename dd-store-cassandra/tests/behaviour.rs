//! Backend-specific behaviour: LWT conflict semantics, scans across buckets, odd keys, schema
//! handling and the URL form.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::collections::BTreeSet;

use futures::TryStreamExt;

use dd_store::{DurableStateStore, Revision, StoreError, WriteOp, WriteOutcome};
use dd_store_cassandra::schema::{Cql, bucket_of};
use dd_store_cassandra::{BUCKETS, open_url};

#[tokio::test]
async fn lwt_conflicts_report_the_actual_revision() {
    let target = common::target("lwt_conflicts_report_the_actual_revision").await;
    let store = dd_store_cassandra::open(target.options.clone())
        .await
        .unwrap();
    let r = "lwt";
    assert_eq!(
        store
            .put(r, "k", Some(Revision(3)), "x".into())
            .await
            .unwrap(),
        WriteOutcome::Conflict { actual: None },
        "update of a missing record"
    );
    assert_eq!(
        store.delete(r, "k", Revision(1)).await.unwrap(),
        WriteOutcome::Conflict { actual: None },
        "delete of a missing record"
    );
    assert_eq!(
        store.put(r, "k", None, "a".into()).await.unwrap(),
        WriteOutcome::Written(Revision(1))
    );
    assert_eq!(
        store.put(r, "k", None, "b".into()).await.unwrap(),
        WriteOutcome::Conflict {
            actual: Some(Revision(1))
        },
        "create of an existing record"
    );
    assert_eq!(
        store
            .put(r, "k", Some(Revision(1)), "c".into())
            .await
            .unwrap(),
        WriteOutcome::Written(Revision(2))
    );
    assert_eq!(
        store
            .put(r, "k", Some(Revision(1)), "d".into())
            .await
            .unwrap(),
        WriteOutcome::Conflict {
            actual: Some(Revision(2))
        },
        "stale update"
    );
    assert_eq!(
        store.delete(r, "k", Revision(1)).await.unwrap(),
        WriteOutcome::Conflict {
            actual: Some(Revision(2))
        },
        "stale delete"
    );
    let record = store.get(r, "k").await.unwrap().unwrap();
    assert_eq!(
        (record.revision, &record.value[..]),
        (Revision(2), &b"c"[..])
    );

    // Two handles racing to create the same key: exactly one wins, the other sees revision 1.
    let other = dd_store_cassandra::open(target.options.clone())
        .await
        .unwrap();
    let (a, b) = tokio::join!(
        store.put(r, "race", None, "from a".into()),
        other.put(r, "race", None, "from b".into())
    );
    let outcomes = [a.unwrap(), b.unwrap()];
    assert_eq!(
        outcomes
            .iter()
            .filter(|o| **o == WriteOutcome::Written(Revision(1)))
            .count(),
        1,
        "{outcomes:?}"
    );
    assert!(
        outcomes.contains(&WriteOutcome::Conflict {
            actual: Some(Revision(1))
        }),
        "{outcomes:?}"
    );
}

#[tokio::test]
async fn batch_orders_same_key_ops_and_reports_in_op_order() {
    let target = common::target("batch_orders_same_key_ops_and_reports_in_op_order").await;
    let store = dd_store_cassandra::open(target.options.clone())
        .await
        .unwrap();
    let mut ops = Vec::new();
    for i in 0..40 {
        ops.push(WriteOp::Put {
            key: format!("k{i}"),
            expected: None,
            value: "1".into(),
        });
        ops.push(WriteOp::Put {
            key: format!("k{i}"),
            expected: Some(Revision(1)),
            value: "2".into(),
        });
        ops.push(WriteOp::Delete {
            key: format!("k{i}"),
            expected: Revision(5),
        });
    }
    let outcomes = store.write_batch("batch", ops).await.unwrap();
    for chunk in outcomes.chunks(3) {
        assert_eq!(
            chunk,
            [
                WriteOutcome::Written(Revision(1)),
                WriteOutcome::Written(Revision(2)),
                WriteOutcome::Conflict {
                    actual: Some(Revision(2))
                }
            ]
        );
    }
}

/// Keys crowded into one bucket make that bucket "truncated" on every page, which bounds the
/// merged page; every key still comes exactly once, in byte order.
#[tokio::test]
async fn scans_merge_buckets_in_byte_order() {
    let target = common::target("scans_merge_buckets_in_byte_order").await;
    let store = dd_store_cassandra::open(target.options.clone())
        .await
        .unwrap();
    let crowded: Vec<String> = (0..5000)
        .map(|i| format!("crowd-{i}"))
        .filter(|k| bucket_of(k) == 7)
        .take(60)
        .collect();
    assert_eq!(crowded.len(), 60);
    let mut keys: BTreeSet<String> = crowded.into_iter().collect();
    for k in [
        "Zebra",
        "apple",
        "é-accent",
        "a",
        "a\u{0}b",
        "日本",
        "~tilde",
        "'quote'",
        "?",
    ] {
        keys.insert(k.to_owned());
    }
    for i in 0..40 {
        keys.insert(format!("spread-{i}"));
    }
    let ops = keys
        .iter()
        .map(|k| WriteOp::Put {
            key: k.clone(),
            expected: None,
            value: k.clone().into(),
        })
        .collect();
    store.write_batch("scan", ops).await.unwrap();
    let mut sorted: Vec<&String> = keys.iter().collect();
    sorted.sort_by(|a, b| a.as_bytes().cmp(b.as_bytes()));
    for limit in [1, 3, 17, 1000] {
        let mut seen = Vec::new();
        let mut after: Option<String> = None;
        for _ in 0..=keys.len() {
            let page = store
                .scan_page("scan", after.as_deref(), limit)
                .await
                .unwrap();
            assert!(page.records.len() <= limit);
            assert!(!page.records.is_empty() || page.next.is_none());
            for r in &page.records {
                assert_eq!(&r.value[..], r.key.as_bytes());
            }
            seen.extend(page.records.into_iter().map(|r| r.key));
            match page.next {
                Some(next) => after = Some(next),
                None => break,
            }
        }
        let seen: Vec<&String> = seen.iter().collect();
        assert_eq!(seen, sorted, "limit {limit}");
        // scan() merges one driver-paged stream per bucket instead of paging with scan_page.
        let streamed: Vec<String> = store
            .scan("scan", limit)
            .map_ok(|r| r.key)
            .try_collect()
            .await
            .unwrap();
        let streamed: Vec<&String> = streamed.iter().collect();
        assert_eq!(streamed, sorted, "scan() with page size {limit}");
    }
    if let Some(double) = &target.double {
        let partitions = double
            .database()
            .partition_count(&target.options.keyspace, &target.options.table)
            .unwrap();
        assert!(
            partitions > 1 && partitions <= BUCKETS as usize,
            "{partitions}"
        );
    }
}

#[tokio::test]
async fn odd_and_long_keys_and_replica_names() {
    let target = common::target("odd_and_long_keys_and_replica_names").await;
    let store = dd_store_cassandra::open(target.options.clone())
        .await
        .unwrap();
    let long = "k".repeat(10_000);
    let keys = [
        "'; DROP TABLE x; --",
        "\"quoted\"",
        "line\nbreak",
        "nul\u{0}byte",
        "emoji-🦀",
        long.as_str(),
    ];
    for replica in ["r/with/slashes", "r'quote", "日本-replica"] {
        for key in keys {
            let value = bytes::Bytes::copy_from_slice(key.as_bytes());
            let outcome = store.put(replica, key, None, value).await.unwrap();
            assert_eq!(outcome, WriteOutcome::Written(Revision(1)), "{key:?}");
            let got = store.get(replica, key).await.unwrap().unwrap();
            assert_eq!(&got.value[..], key.as_bytes());
        }
    }
    let listed = store.replicas().await.unwrap();
    for replica in ["r/with/slashes", "r'quote", "日本-replica"] {
        assert!(listed.iter().any(|r| r == replica), "{listed:?}");
    }
}

#[tokio::test]
async fn existing_schema_is_required_without_create_schema() {
    let target = common::target("existing_schema_is_required_without_create_schema").await;
    let mut options = target.options.clone();
    // First let the store create the keyspace (and its own table), then point at a table that
    // does not exist.
    dd_store_cassandra::open(options.clone()).await.unwrap();
    options.table = common::unique_table("missing");
    options.create_schema = false;
    let err = dd_store_cassandra::open(options.clone()).await.unwrap_err();
    println!("error: {err}");
    assert!(matches!(err, StoreError::Config { .. }), "{err:?}");
    assert!(err.to_string().contains(&options.table), "{err}");
    // With the schema in place, create_schema = false uses it as it is.
    let mut existing = target.options.clone();
    existing.create_schema = false;
    let store = dd_store_cassandra::open(existing).await.unwrap();
    store.put("r", "k", None, "v".into()).await.unwrap();
}

#[tokio::test]
async fn opens_from_a_url() {
    let target = common::target("opens_from_a_url").await;
    let o = &target.options;
    let url = format!(
        "cassandra://{}/{}?table={}&consistency=local_quorum&serial_consistency=local_serial&replication=simple:1",
        o.contact_points.join(","),
        o.keyspace,
        o.table
    );
    let store = open_url(&url).await.unwrap();
    assert_eq!(store.describe(), o.describe());
    store.put("url", "k", None, "v".into()).await.unwrap();
    let err = open_url("cassandra://127.0.0.1:1/Not-Valid")
        .await
        .unwrap_err();
    assert!(matches!(err, StoreError::Config { .. }), "{err:?}");
}

#[tokio::test]
async fn sends_the_configured_consistency_levels() {
    // Always on the test double: only it records the consistency each statement was sent with.
    println!(
        "sends_the_configured_consistency_levels: uses the CQL test double (it records the \
         consistency levels sent)"
    );
    let double = cql_test_double::CqlTestDouble::start().await.unwrap();
    let mut options =
        dd_store_cassandra::CassandraOptions::new([double.addr().to_string()], "dd_test");
    options.table = common::unique_table("dd");
    let target = common::Target {
        options,
        double: None,
    };
    let store = dd_store_cassandra::open(target.options.clone())
        .await
        .unwrap();
    store.put("c", "k", None, "v".into()).await.unwrap();
    store
        .put("c", "k", Some(Revision(1)), "w".into())
        .await
        .unwrap();
    store.get("c", "k").await.unwrap();
    let cql = Cql::new(&target.options);
    for statement in [&cql.insert_if_not_exists, &cql.update_if_revision] {
        let observed = double.database().observed_consistency(statement).unwrap();
        assert_eq!(observed.consistency, "LocalQuorum", "{statement}");
        assert_eq!(
            observed.serial_consistency.as_deref(),
            Some("LocalSerial"),
            "{statement}"
        );
    }
    let observed = double.database().observed_consistency(&cql.get).unwrap();
    assert_eq!(observed.consistency, "LocalQuorum");

    let mut options = target.options.clone();
    options.consistency = dd_store_cassandra::Consistency::Quorum;
    options.serial_consistency = dd_store_cassandra::SerialConsistency::Serial;
    let store = dd_store_cassandra::open(options).await.unwrap();
    store.delete("c", "k", Revision(2)).await.unwrap();
    let observed = double
        .database()
        .observed_consistency(&cql.delete_if_revision)
        .unwrap();
    assert_eq!(observed.consistency, "Quorum");
    assert_eq!(observed.serial_consistency.as_deref(), Some("Serial"));
}

/// The production setup on one node: a `NetworkTopologyStrategy` keyspace in the node's own data
/// center, `LOCAL_QUORUM` reads and writes and `LOCAL_SERIAL` LWTs (the defaults) all work, and
/// so do `QUORUM` / `SERIAL`.
#[tokio::test]
async fn network_topology_keyspace_with_local_and_global_levels() {
    let target = common::target("network_topology_keyspace_with_local_and_global_levels").await;
    // The node's data center, as the cluster reports it.
    let probe = dd_store_cassandra::open(target.options.clone())
        .await
        .unwrap();
    let rows = probe
        .session()
        .query_unpaged("SELECT data_center FROM system.local", &[])
        .await
        .unwrap()
        .into_rows_result()
        .unwrap();
    let (dc,) = rows.single_row::<(String,)>().unwrap();
    println!("data center: {dc}");
    let mut options = target.options.clone();
    options.keyspace = format!("{}_nts", target.options.keyspace);
    options.replication = dd_store_cassandra::Replication::NetworkTopology {
        datacenters: vec![(dc, 1)],
    };
    for (consistency, serial) in [
        (
            dd_store_cassandra::Consistency::LocalQuorum,
            dd_store_cassandra::SerialConsistency::LocalSerial,
        ),
        (
            dd_store_cassandra::Consistency::Quorum,
            dd_store_cassandra::SerialConsistency::Serial,
        ),
    ] {
        options.consistency = consistency;
        options.serial_consistency = serial;
        let store = dd_store_cassandra::open(options.clone()).await.unwrap();
        let replica = format!("nts-{consistency:?}");
        assert_eq!(
            store.put(&replica, "k", None, "a".into()).await.unwrap(),
            WriteOutcome::Written(Revision(1))
        );
        assert_eq!(
            store
                .put(&replica, "k", Some(Revision(1)), "b".into())
                .await
                .unwrap(),
            WriteOutcome::Written(Revision(2))
        );
        assert_eq!(
            store.put(&replica, "k", None, "c".into()).await.unwrap(),
            WriteOutcome::Conflict {
                actual: Some(Revision(2))
            }
        );
        let record = store.get(&replica, "k").await.unwrap().unwrap();
        assert_eq!(&record.value[..], b"b");
        let page = store.scan_page(&replica, None, 10).await.unwrap();
        assert_eq!(page.records.len(), 1);
        assert_eq!(
            store.delete(&replica, "k", Revision(2)).await.unwrap(),
            WriteOutcome::Written(Revision(2))
        );
    }
}
