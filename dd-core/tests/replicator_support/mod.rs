//! Helpers shared by the replicator tests.
#![allow(dead_code, clippy::unwrap_used, clippy::expect_used)]

use std::future::Future;
use std::time::Duration;

use dd_core::cluster::StaticCluster;
use dd_core::crdt::GCounter;
use dd_core::replicator::{DistributedData, ReadConsistency, Replicator, Settings};
use dd_core::transport::memory::MemoryNetwork;
use dd_core::{Key, ReplicaId, UniqueReplicaId};

/// Short intervals so that tests converge quickly.
pub fn fast_settings() -> Settings {
    Settings::builder()
        .gossip_interval(Duration::from_millis(100))
        .delta_propagation_interval(Duration::from_millis(30))
        .notify_interval(Duration::from_millis(20))
        .pruning_interval(Duration::from_millis(200))
        .build()
        .unwrap()
}

pub fn names(n: usize) -> Vec<ReplicaId> {
    (0..n).map(|i| ReplicaId::new(format!("r{i}"))).collect()
}

/// Starts one replica of the static cluster `all` on the memory network.
pub async fn start_memory(
    net: &MemoryNetwork,
    name: &ReplicaId,
    incarnation: u64,
    all: &[ReplicaId],
    settings: Settings,
) -> (Replicator, StaticCluster) {
    let id = UniqueReplicaId::new(name.clone(), incarnation);
    let peers = all.iter().filter(|p| *p != name).cloned();
    let cluster = StaticCluster::new(id.clone(), peers);
    let transport = net.join(id);
    let r = DistributedData::start(cluster.clone(), transport, settings)
        .await
        .unwrap();
    (r, cluster)
}

pub async fn start_memory_cluster(net: &MemoryNetwork, n: usize) -> Vec<Replicator> {
    let all = names(n);
    let mut out = Vec::new();
    for (i, name) in all.iter().enumerate() {
        out.push(
            start_memory(net, name, i as u64 + 1, &all, fast_settings())
                .await
                .0,
        );
    }
    out
}

/// Polls `check` every 50 ms until it is true; fails after `bound`.
pub async fn eventually<F, Fut>(what: &str, bound: Duration, mut check: F)
where
    F: FnMut() -> Fut,
    Fut: Future<Output = bool>,
{
    let deadline = tokio::time::Instant::now() + bound;
    loop {
        if check().await {
            return;
        }
        if tokio::time::Instant::now() >= deadline {
            panic!("not reached within {bound:?}: {what}");
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// The local value of a counter (0 when absent).
pub async fn counter(r: &Replicator, key: &Key<GCounter>) -> u128 {
    match r.get(key, ReadConsistency::Local).await {
        Ok(c) => c.value(),
        Err(_) => 0,
    }
}

/// Waits until every replica's counter is `expected`.
pub async fn converge_counter(rs: &[Replicator], key: &Key<GCounter>, expected: u128) {
    eventually(
        &format!("all replicas see {key} = {expected}"),
        Duration::from_secs(60),
        || async {
            for r in rs {
                if counter(r, key).await != expected {
                    return false;
                }
            }
            true
        },
    )
    .await;
}

pub const LONG: Duration = Duration::from_secs(60);

/// A durable store that keeps values in memory (survives replicator restarts in one test).
#[derive(Default)]
pub struct MapStore {
    map: std::sync::Mutex<
        std::collections::BTreeMap<(ReplicaId, String), dd_core::durable::DurableValue>,
    >,
}

#[async_trait::async_trait]
impl dd_core::durable::CrdtValueStore for MapStore {
    fn describe(&self) -> String {
        "map store".into()
    }

    fn load<'a>(
        &'a self,
        replica: &'a ReplicaId,
        _registry: &'a dd_core::data::TypeRegistry,
    ) -> dd_core::durable::DurableEntryStream<'a> {
        let entries: Vec<_> = self
            .map
            .lock()
            .unwrap()
            .iter()
            .filter(|((r, _), _)| r == replica)
            .map(|((_, k), v)| Ok((k.clone(), v.clone())))
            .collect();
        Box::pin(futures::stream::iter(entries))
    }

    async fn store(
        &self,
        replica: &ReplicaId,
        entries: Vec<(String, dd_core::durable::DurableValue)>,
    ) -> Result<dd_core::durable::StoreReport, dd_core::durable::DurableError> {
        let mut map = self.map.lock().unwrap();
        for (k, v) in entries {
            map.insert((replica.clone(), k), v);
        }
        Ok(Default::default())
    }

    async fn flush(&self) -> Result<(), dd_core::durable::DurableError> {
        Ok(())
    }
}
