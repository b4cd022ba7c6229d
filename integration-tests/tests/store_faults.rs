//! The durable store misbehaves under a running replica (it is down, hangs, breaks batches off
//! half-way, fails at random, answers slowly): the replica keeps serving from memory, reports the
//! store unhealthy, retries with backoff, and once the store answers again everything pending is
//! written, so a restart from the store finds every value. Runs on every backend, each wrapped
//! in `dd_core::store::fault::FaultInjectingStore`.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use std::time::Duration;

use dd_core::Key;
use dd_core::cluster::StaticCluster;
use dd_core::crdt::{GCounter, ORSet};
use dd_core::durable::{CrdtValueStore, DurableHealth};
use dd_core::replicator::{
    DistributedData, ReadConsistency, Replicator, ReplicatorError, WriteConsistency,
};
use dd_core::store::DurableStateStore;
use dd_core::store::fault::{Fault, FaultInjectingStore, FaultSwitch};
use dd_core::transport::memory::{Faults, MemoryNetwork};
use dd_core::{ReplicaId, UniqueReplicaId};
use dd_durable::{DurableDistributedDataStore, DurableOptions, WriteMode};
use integration_tests::{
    BackendKind, ReplicaConfig, StoreLocation, backend_tests, eventually, start_alone,
    test_settings,
};

const BOUND: Duration = Duration::from_secs(60);
const WRITE_BEHIND: WriteMode = WriteMode::WriteBehind {
    interval: Duration::from_millis(30),
};

/// Quick retries, so recovery is quick; an operation timeout short enough for the hang test and
/// long enough for a loaded machine.
fn options(write_mode: WriteMode) -> DurableOptions {
    DurableOptions {
        write_mode,
        retry_interval: Duration::from_millis(20),
        max_retry_backoff: Duration::from_millis(200),
        operation_timeout: Some(Duration::from_secs(2)),
        ..DurableOptions::default()
    }
}

/// One replica over a fault-injecting wrapper of a fresh store of `backend`.
struct Faulty {
    location: StoreLocation,
    switch: FaultSwitch,
    durable: Arc<DurableDistributedDataStore>,
    replica: Replicator,
    /// What every counter and the set must hold.
    counters: BTreeMap<String, u128>,
    elements: BTreeSet<String>,
}

const NAME: &str = "faulty";

fn counter(i: usize) -> Key<GCounter> {
    Key::new(format!("faults/counter-{i}"))
}

fn set() -> Key<ORSet<String>> {
    Key::new("faults/set")
}

impl Faulty {
    async fn start(backend: BackendKind, label: &str, write_mode: WriteMode) -> Self {
        let location = backend.fresh_location(label).await.unwrap();
        Self::start_at(
            location,
            write_mode,
            MemoryNetwork::new(1, Faults::default()),
            &[],
        )
        .await
    }

    async fn start_at(
        location: StoreLocation,
        write_mode: WriteMode,
        network: MemoryNetwork,
        peers: &[ReplicaId],
    ) -> Self {
        let faulty = FaultInjectingStore::from_arc(location.open().await.unwrap());
        let switch = faulty.switch();
        let store: Arc<dyn DurableStateStore> = Arc::new(faulty);
        let durable = Arc::new(DurableDistributedDataStore::from_arc(
            store,
            options(write_mode),
        ));
        let id = UniqueReplicaId::new_incarnation(ReplicaId::new(NAME));
        let cluster = StaticCluster::new(id.clone(), peers.iter().cloned());
        let settings = test_settings().durable_store(Arc::clone(&durable) as Arc<_>);
        let replica = DistributedData::start(cluster, network.join(id), settings)
            .await
            .unwrap();
        Self {
            location,
            switch,
            durable,
            replica,
            counters: BTreeMap::new(),
            elements: BTreeSet::new(),
        }
    }

    /// Adds 1 to counter `i` and `element` to the set; returns the two results.
    async fn update(&mut self, i: usize, element: String) -> Vec<Result<(), ReplicatorError>> {
        let node = self.replica.self_id();
        *self.counters.entry(counter(i).id().to_owned()).or_default() += 1;
        self.elements.insert(element.clone());
        let bumped = self
            .replica
            .update(
                &counter(i),
                GCounter::new(),
                WriteConsistency::Local,
                move |c| c.increment(&node, 1),
            )
            .await
            .map(drop);
        let node = self.replica.self_id();
        let added = self
            .replica
            .update(&set(), ORSet::new(), WriteConsistency::Local, move |s| {
                s.add(&node, element);
                Ok::<_, ReplicatorError>(())
            })
            .await
            .map(drop);
        vec![bumped, added]
    }

    async fn health(&self) -> DurableHealth {
        let status = self.replica.status().await.unwrap();
        let health = status
            .durable_health
            .expect("a durable store is configured");
        assert_eq!(health, self.durable.health().clone_without_time(&health));
        health
    }

    /// Waits until the store is healthy with nothing pending.
    async fn wait_caught_up(&self) {
        let durable = Arc::clone(&self.durable);
        eventually("store healthy with nothing pending", BOUND, || {
            let health = durable.health();
            async move { health.healthy && health.pending == 0 }
        })
        .await
        .unwrap();
    }

    /// The replica serves every expected value from memory.
    async fn assert_serves_expected(&self, replica: &Replicator, when: &str) {
        for (key, expected) in &self.counters {
            let value = replica
                .get(&Key::<GCounter>::new(key.clone()), ReadConsistency::Local)
                .await
                .unwrap_or_else(|e| panic!("{when}: reading {key}: {e}"));
            assert_eq!(value.value(), *expected, "{when}: counter {key}");
        }
        if !self.elements.is_empty() {
            let value = replica.get(&set(), ReadConsistency::Local).await.unwrap();
            assert_eq!(value.elements(), self.elements, "{when}: the set");
        }
    }

    /// Stops the replica and starts a new incarnation over the store without faults: every
    /// value must be there.
    async fn restart_and_check(self) {
        self.replica.shutdown().await.unwrap();
        let restarted = start_alone(
            &ReplicaConfig::new(NAME),
            self.location.open().await.unwrap(),
        )
        .await
        .unwrap();
        self.assert_serves_expected(&restarted, "after a restart from the store")
            .await;
        restarted.shutdown().await.unwrap();
    }
}

/// The time-dependent field of two snapshots taken at different moments differs; the rest must
/// agree.
trait CloneWithoutTime {
    fn clone_without_time(&self, like: &DurableHealth) -> DurableHealth;
}

impl CloneWithoutTime for DurableHealth {
    fn clone_without_time(&self, like: &DurableHealth) -> DurableHealth {
        DurableHealth {
            unhealthy_for: like.unhealthy_for,
            ..self.clone()
        }
    }
}

fn assert_store_failures(results: &[Result<(), ReplicatorError>], when: &str) {
    for result in results {
        match result {
            Err(ReplicatorError::StoreFailure { source, .. }) => {
                let message = source.to_string();
                assert!(
                    message.contains("faulty("),
                    "{when}: names the store: {message}"
                );
            }
            other => panic!("{when}: expected a store failure, got {other:?}"),
        }
    }
}

/// Test 1: the store is down. Every synchronous update fails with a store failure naming the
/// store but stays applied; reads serve it; the store is reported unhealthy with the updates
/// pending; once it is back, everything is written without any new update.
async fn sync_updates_made_while_the_store_is_down_are_written_once_it_returns(
    backend: BackendKind,
) {
    let mut f = Faulty::start(backend, "down", WriteMode::Sync).await;
    for result in f.update(0, "before".into()).await {
        result.unwrap();
    }
    assert!(f.health().await.healthy);

    f.switch.set(Fault::Fail);
    // The first failing write reaches the store; its counter is not updated again, so only the
    // retry of that very write can store it.
    let first = f.update(9, "down-first".into()).await;
    assert_store_failures(&first, "the first update while down");
    for round in 0..12 {
        let results = f.update(round % 4, format!("down-{round}")).await;
        assert_store_failures(&results, &format!("round {round} while down"));
    }
    f.assert_serves_expected(&f.replica, "while the store is down")
        .await;
    let health = f.health().await;
    assert!(!health.healthy, "{health:?}");
    assert_eq!(health.pending, 6, "5 counters and the set wait: {health:?}");
    let last_error = health.last_error.unwrap_or_default();
    assert!(last_error.contains("injected fault"), "{last_error}");

    f.switch.clear();
    f.wait_caught_up().await;
    for result in f.update(1, "after".into()).await {
        result.unwrap();
    }
    f.restart_and_check().await;
}

/// Test 2: the store stops answering. The write gives up after the operation timeout with an
/// error saying so; later updates do not queue up behind the hang; reads serve from memory; once
/// the store answers, everything is written.
async fn a_hanging_store_times_out_and_recovers(backend: BackendKind) {
    let mut f = Faulty::start(backend, "hang", WriteMode::Sync).await;
    f.switch.set(Fault::Hang);
    // The operation timeout ends the first write; the guard only keeps a broken build from
    // hanging the test run.
    let first = tokio::time::timeout(BOUND, f.update(0, "hung".into()))
        .await
        .expect("a hanging store must not hang the update");
    assert_store_failures(&first, "while the store hangs");
    // Counter 0 is not updated again: only the retry of the write that timed out stores it.
    for round in 1..6 {
        let results = tokio::time::timeout(BOUND, f.update(round, format!("h-{round}")))
            .await
            .expect("later updates must not queue up behind a hanging store");
        assert_store_failures(&results, &format!("round {round} while the store hangs"));
    }
    f.assert_serves_expected(&f.replica, "while the store hangs")
        .await;
    let health = f.health().await;
    assert!(!health.healthy);
    let last_error = health.last_error.unwrap_or_default();
    assert!(last_error.contains("operation timeout"), "{last_error}");

    f.switch.clear();
    f.wait_caught_up().await;
    f.restart_and_check().await;
}

/// Test 3: in both write modes, a store whose batches break off half-way, then a flaky store,
/// then a slow one: whatever the callers were told, once the store behaves every value is
/// stored (a batch that half landed is merged, never overwritten or lost).
async fn partial_batches_and_a_flaky_store_lose_nothing(backend: BackendKind) {
    for (mode, label) in [
        (WriteMode::Sync, "partial-sync"),
        (WRITE_BEHIND, "partial-wb"),
    ] {
        let mut f = Faulty::start(backend, label, mode).await;
        let phases = [
            Fault::PartialBatch { written: 1 },
            Fault::Flaky {
                error_rate: 0.5,
                seed: 11,
            },
            Fault::Latency(Duration::from_millis(5)),
        ];
        let mut round = 0;
        for fault in phases {
            f.switch.set(fault.clone());
            for _ in 0..8 {
                // Errors are expected here, depending on the fault and the mode; what counts is
                // the outcome once the store behaves.
                let _ = f.update(round % 5, format!("{label}-{round}")).await;
                round += 1;
            }
            // Write what is queued under this fault too (write-behind may not have run yet).
            let _ = f.durable.flush().await;
            f.assert_serves_expected(&f.replica, &format!("{label} under {fault:?}"))
                .await;
        }
        f.switch.clear();
        f.wait_caught_up().await;
        f.durable.flush().await.unwrap();
        assert!(f.switch.injected() > 0, "{label}: faults were injected");
        f.restart_and_check().await;
    }
}

/// Test 4: values merged from a peer while this replica's store is down are written once it
/// returns (a merge is stored like an update).
async fn merges_from_a_peer_during_an_outage_are_written_later(backend: BackendKind) {
    let network = MemoryNetwork::new(1, Faults::default());
    let peer_name = ReplicaId::new("peer");
    let location = backend.fresh_location("merge").await.unwrap();
    let mut f = Faulty::start_at(
        location,
        WriteMode::Sync,
        network.clone(),
        std::slice::from_ref(&peer_name),
    )
    .await;
    let peer_id = UniqueReplicaId::new_incarnation(peer_name);
    let peer_cluster = StaticCluster::new(peer_id.clone(), [ReplicaId::new(NAME)]);
    let peer = DistributedData::start(peer_cluster, network.join(peer_id.clone()), test_settings())
        .await
        .unwrap();

    f.switch.set(Fault::Fail);
    for i in 0..3 {
        let node = peer_id.clone();
        peer.update(
            &counter(i),
            GCounter::new(),
            WriteConsistency::Local,
            move |c| c.increment(&node, 5),
        )
        .await
        .unwrap();
        f.counters.insert(counter(i).id().to_owned(), 5);
    }
    let replica = f.replica.clone();
    eventually("the peer's values reach the replica", BOUND, || {
        let replica = replica.clone();
        async move {
            let mut all = true;
            for i in 0..3 {
                let value = replica.get(&counter(i), ReadConsistency::Local).await;
                all &= value.is_ok_and(|c| c.value() == 5);
            }
            all
        }
    })
    .await
    .unwrap();
    // The merges are stored by the durable writer after they are applied: wait for it to fail.
    let durable = Arc::clone(&f.durable);
    eventually(
        "the merges' failed writes make the store unhealthy",
        BOUND,
        || {
            let healthy = durable.health().healthy;
            async move { !healthy }
        },
    )
    .await
    .unwrap();
    assert!(!f.health().await.healthy);

    f.switch.clear();
    f.wait_caught_up().await;
    peer.shutdown().await.unwrap();
    f.restart_and_check().await;
}

backend_tests!(
    sync_updates_made_while_the_store_is_down_are_written_once_it_returns,
    a_hanging_store_times_out_and_recovers,
    partial_batches_and_a_flaky_store_lose_nothing,
    merges_from_a_peer_during_an_outage_are_written_later,
);
