//! Fresh backend locations for one area of one run, and the replicators the areas start.

use std::path::Path;
use std::sync::Arc;

use dd_core::cluster::StaticCluster;
use dd_core::durable::DurableDataStore;
use dd_core::replicator::{DistributedData, Replicator, Settings};
use dd_core::transport::memory::{Faults, MemoryNetwork};
use dd_core::{ReplicaId, UniqueReplicaId};

use crate::backends::{BackendSpec, S3Endpoint};
use crate::error::{Context, Result};

/// Which backends an area runs on.
#[derive(Debug, Clone)]
pub struct Backends {
    /// The backends to measure.
    pub specs: Vec<BackendSpec>,
    /// Backends left out, with the reason.
    pub skipped: Vec<String>,
}

/// A name unique to this run (for S3 prefixes and Cassandra tables).
pub fn unique_suffix() -> String {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.subsec_nanos());
    format!("{:x}{nanos:08x}", std::process::id())
}

/// Fresh locations under `root` (and a fresh S3 prefix / Cassandra table) for `area`.
pub fn fresh(root: &Path, area: &str, cassandra_double: Option<&str>) -> Result<Backends> {
    let dir = root.join(area);
    std::fs::create_dir_all(&dir).context(|| format!("creating {}", dir.display()))?;
    let mut specs = vec![
        BackendSpec::Fs {
            dir: dir.join("fs-store"),
        },
        BackendSpec::Sqlite {
            path: dir.join("store.db"),
        },
    ];
    let mut skipped = Vec::new();
    match S3Endpoint::from_env() {
        Ok(endpoint) => specs.push(BackendSpec::S3 {
            endpoint,
            prefix: format!("dd-bench-{area}-{}", unique_suffix()),
        }),
        Err(reason) => skipped.push(format!("s3 {reason}")),
    }
    if let Some(contact_point) = cassandra_double {
        specs.push(BackendSpec::CassandraDouble {
            contact_point: contact_point.to_owned(),
            table: format!("dd_{area}_{}", unique_suffix()),
        });
    }
    Ok(Backends { specs, skipped })
}

/// A replicator alone in its cluster (in-memory transport, no peers), with an optional durable
/// store.
pub async fn lone_replicator(
    name: &str,
    durable: Option<Arc<dyn DurableDataStore>>,
) -> Result<Replicator> {
    let net = MemoryNetwork::new(1, Faults::default());
    let id = UniqueReplicaId::new_incarnation(ReplicaId::new(name));
    let cluster = StaticCluster::new(id.clone(), []);
    let mut settings = Settings::default();
    if let Some(d) = durable {
        settings = settings.durable_store(d);
    }
    DistributedData::start(cluster, net.join(id), settings)
        .await
        .context(|| format!("starting replicator {name}"))
}
