//! Fresh backend locations for one area of one run, and the replicators the areas start.

use std::path::Path;
use std::sync::Arc;

use dd_core::cluster::StaticCluster;
use dd_core::durable::CrdtValueStore;
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

/// Where the Cassandra rows of an area run.
#[derive(Debug, Clone)]
pub enum CassandraAt {
    /// A real cluster: `host:port,...` and a keyspace.
    Cluster {
        /// The contact points.
        contact_points: String,
        /// The keyspace.
        keyspace: String,
    },
    /// The in-process CQL test double at this address (informational rows).
    Double(String),
}

impl CassandraAt {
    /// The real cluster named by `DD_TEST_CASSANDRA_CONTACT_POINTS` (+
    /// `DD_TEST_CASSANDRA_KEYSPACE`, default `dd_bench`), as `scripts/services/cassandra.sh`
    /// exports it, if set.
    pub fn cluster_from_env() -> Option<CassandraAt> {
        let contact_points = std::env::var("DD_TEST_CASSANDRA_CONTACT_POINTS")
            .ok()
            .filter(|p| !p.is_empty())?;
        let keyspace =
            std::env::var("DD_TEST_CASSANDRA_KEYSPACE").unwrap_or_else(|_| "dd_bench".to_owned());
        Some(CassandraAt::Cluster {
            contact_points,
            keyspace,
        })
    }
}

/// Fresh locations under `root` (and a fresh S3 prefix / Cassandra table) for `area`.
pub fn fresh(root: &Path, area: &str, cassandra: Option<&CassandraAt>) -> Result<Backends> {
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
    let table = format!("dd_{area}_{}", unique_suffix());
    match cassandra {
        Some(CassandraAt::Cluster {
            contact_points,
            keyspace,
        }) => specs.push(BackendSpec::Cassandra {
            contact_points: contact_points.clone(),
            keyspace: keyspace.clone(),
            table,
        }),
        Some(CassandraAt::Double(contact_point)) => specs.push(BackendSpec::CassandraDouble {
            contact_point: contact_point.clone(),
            table,
        }),
        None => {}
    }
    Ok(Backends { specs, skipped })
}

/// A replicator alone in its cluster (in-memory transport, no peers), with an optional durable
/// store.
pub async fn lone_replicator(
    name: &str,
    durable: Option<Arc<dyn CrdtValueStore>>,
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
