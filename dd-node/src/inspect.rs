//! `dd-node inspect`: the keys of a store with their type, size, revision and value.
//!
//! Records are decoded as dd-durable writes them (the record format, then the CRDT state by its type
//! name with [`TypeRegistry::with_builtin_types`]) and rendered as plain JSON. A record that cannot
//! be read is listed with its error (and the command fails at the end); nothing is ever written.

use std::sync::Arc;

use clap::Args;
use dd_core::data::TypeRegistry;
use dd_core::replicator::{RESERVED_PREFIX, register_record_types};
use dd_core::store::{DEFAULT_SCAN_PAGE_SIZE, DurableStateStore, StoreError, StoredRecord};
use dd_durable::record::{self, Record};
use futures::TryStreamExt;
use serde::Serialize;
use serde_json::Value;

use crate::render::render_erased;
use crate::store_url::open_existing_store;
use crate::types::DataType;

/// The flags of `dd-node inspect`.
#[derive(Debug, Clone, Args)]
pub struct InspectArgs {
    /// The store URL (e.g. sqlite:///var/lib/dd/a.db).
    #[arg(long, env = "DD_NODE_STORE", value_name = "URL")]
    pub store: String,
    /// Only these replicas (repeatable; default: every replica in the store).
    #[arg(long, value_name = "NAME")]
    pub replica: Vec<String>,
    /// Print JSON instead of a table.
    #[arg(long)]
    pub json: bool,
}

/// Why inspection failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum InspectError {
    /// The store could not be opened.
    #[error("opening store {url}: {source}")]
    Open {
        /// The URL.
        url: String,
        /// The error.
        #[source]
        source: dd_durable::OpenError,
    },
    /// The store failed.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// A replica asked for has no records.
    #[error("replica '{replica}' has no records in {store} (replicas there: {})", if known.is_empty() { "none".to_owned() } else { known.join(", ") })]
    NoSuchReplica {
        /// The replica asked for.
        replica: String,
        /// The store.
        store: String,
        /// The replicas in the store.
        known: Vec<String>,
    },
    /// Some records could not be read (they are listed in the output).
    #[error("{0} record(s) could not be read (see the output)")]
    Unreadable(usize),
}

/// One key of one replica.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct KeyReport {
    /// The key id.
    pub key: String,
    /// The API type name (`pncounter`, ...), the dd-core type name for other types, or
    /// `deleted` for a tombstone.
    #[serde(rename = "type")]
    pub data_type: String,
    /// The dd-core type name (`None` for a tombstone).
    pub crdt_type: Option<String>,
    /// The stored record's size in bytes.
    pub size: usize,
    /// The stored record's revision.
    pub revision: u64,
    /// The value as plain JSON (`null` for a tombstone or an unreadable record).
    pub value: Value,
    /// Why the record could not be read, if it could not.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

/// The keys of one replica.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ReplicaReport {
    /// The replica name.
    pub replica: String,
    /// Its keys in key order.
    pub keys: Vec<KeyReport>,
}

/// What `inspect --json` prints.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct StoreReport {
    /// The store's description.
    pub store: String,
    /// Every replica inspected, in name order.
    pub replicas: Vec<ReplicaReport>,
}

/// Decodes one stored record.
pub fn describe_record(record: &StoredRecord, registry: &TypeRegistry) -> KeyReport {
    let mut report = KeyReport {
        key: record.key.clone(),
        data_type: "unknown".to_owned(),
        crdt_type: None,
        size: record.value.len(),
        revision: record.revision.0,
        value: Value::Null,
        error: None,
    };
    match record::decode(&record.value) {
        Err(e) => report.error = Some(e.to_string()),
        Ok(Record::Tombstone) => report.data_type = "deleted".to_owned(),
        Ok(Record::Data { type_name, payload }) => {
            report.crdt_type = Some(type_name.to_owned());
            report.data_type = DataType::from_crdt_type_name(type_name)
                .map(|t| t.name().to_owned())
                .unwrap_or_else(|| type_name.to_owned());
            match registry.decode(type_name, payload) {
                Err(e) => report.error = Some(e.to_string()),
                Ok(value) => match render_erased(value.as_ref()) {
                    Some(v) => report.value = v,
                    // The replicator's own bookkeeping (pruning markers): shown as it is.
                    None if record.key.starts_with(RESERVED_PREFIX) => {
                        report.value = Value::String(format!("{value:?}"))
                    }
                    None => {
                        report.error = Some(format!("no JSON rendering for type '{type_name}'"))
                    }
                },
            }
        }
    }
    report
}

/// Inspects the given replicas (every replica when empty) of `store`.
pub async fn inspect_store(
    store: &Arc<dyn DurableStateStore>,
    replicas: &[String],
) -> Result<StoreReport, InspectError> {
    let mut known = store.replicas().await?;
    known.sort();
    let selected: Vec<String> = if replicas.is_empty() {
        known.clone()
    } else {
        for r in replicas {
            if !known.contains(r) {
                return Err(InspectError::NoSuchReplica {
                    replica: r.clone(),
                    store: store.describe(),
                    known,
                });
            }
        }
        replicas.to_vec()
    };
    let registry = TypeRegistry::with_builtin_types();
    register_record_types(&registry);
    let mut report = StoreReport {
        store: store.describe(),
        replicas: Vec::new(),
    };
    for replica in selected {
        let records: Vec<StoredRecord> = store
            .scan(&replica, DEFAULT_SCAN_PAGE_SIZE)
            .try_collect()
            .await?;
        let keys = records
            .iter()
            .map(|r| describe_record(r, &registry))
            .collect();
        report.replicas.push(ReplicaReport { replica, keys });
    }
    Ok(report)
}

/// The report as a table for people.
pub fn render_table(report: &StoreReport) -> String {
    let mut out = format!("store {}\n", report.store);
    if report.replicas.is_empty() {
        out.push_str("(no replicas)\n");
    }
    for r in &report.replicas {
        out.push_str(&format!(
            "\nreplica {} ({} keys)\n",
            r.replica,
            r.keys.len()
        ));
        let rows: Vec<[String; 5]> = r
            .keys
            .iter()
            .map(|k| {
                let value = match &k.error {
                    Some(e) => format!("ERROR: {e}"),
                    None => k.value.to_string(),
                };
                [
                    k.key.clone(),
                    k.data_type.clone(),
                    k.size.to_string(),
                    k.revision.to_string(),
                    value,
                ]
            })
            .collect();
        let header = ["KEY", "TYPE", "SIZE", "REV", "VALUE"].map(String::from);
        let mut widths = [0usize; 4];
        for row in std::iter::once(&header).chain(rows.iter()) {
            for (w, cell) in widths.iter_mut().zip(row.iter()) {
                *w = (*w).max(cell.chars().count());
            }
        }
        for row in std::iter::once(&header).chain(rows.iter()) {
            out.push_str(&format!(
                "  {:<w0$}  {:<w1$}  {:>w2$}  {:>w3$}  {}\n",
                row[0],
                row[1],
                row[2],
                row[3],
                row[4],
                w0 = widths[0],
                w1 = widths[1],
                w2 = widths[2],
                w3 = widths[3],
            ));
        }
    }
    out
}

/// Runs `dd-node inspect`.
pub async fn run(args: InspectArgs) -> Result<(), InspectError> {
    let store = open_existing_store(&args.store)
        .await
        .map_err(|source| InspectError::Open {
            url: args.store.clone(),
            source,
        })?;
    let report = inspect_store(&store, &args.replica).await?;
    if args.json {
        let text = serde_json::to_string_pretty(&report)
            .unwrap_or_else(|e| format!("{{\"error\": \"{e}\"}}"));
        println!("{text}");
    } else {
        print!("{}", render_table(&report));
    }
    let unreadable = report
        .replicas
        .iter()
        .flat_map(|r| &r.keys)
        .filter(|k| k.error.is_some())
        .count();
    if unreadable > 0 {
        return Err(InspectError::Unreadable(unreadable));
    }
    Ok(())
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use super::*;
    use bytes::Bytes;
    use dd_core::UniqueReplicaId;
    use dd_core::crdt::PNCounter;
    use dd_core::data::ErasedData;
    use dd_core::store::Revision;
    use dd_core::store::memory::MemoryStore;

    fn record(key: &str, bytes: Vec<u8>) -> StoredRecord {
        StoredRecord {
            key: key.into(),
            revision: Revision(3),
            value: Bytes::from(bytes),
        }
    }

    #[tokio::test]
    async fn decodes_values_tombstones_and_damage() {
        let mut c = PNCounter::new();
        c.decrement(&UniqueReplicaId::new("a", 1), 4).unwrap();
        let payload = c.encode().unwrap();
        let data = record::encode(&Record::Data {
            type_name: "PNCounter",
            payload: &payload,
        })
        .unwrap();
        let registry = TypeRegistry::with_builtin_types();
        let k = describe_record(&record("c", data.clone()), &registry);
        assert_eq!(
            (k.data_type.as_str(), k.value.clone(), k.revision),
            ("pncounter", serde_json::json!(-4), 3)
        );
        assert!(k.error.is_none());
        let tomb = record::encode(&Record::Tombstone).unwrap();
        assert_eq!(
            describe_record(&record("t", tomb.clone()), &registry).data_type,
            "deleted"
        );
        let mut bad = data.clone();
        bad[12] ^= 0xff;
        assert!(
            describe_record(&record("b", bad), &registry)
                .error
                .is_some()
        );

        let store: Arc<dyn DurableStateStore> = Arc::new(MemoryStore::new());
        store.put("a", "c", None, Bytes::from(data)).await.unwrap();
        store.put("a", "t", None, Bytes::from(tomb)).await.unwrap();
        let report = inspect_store(&store, &[]).await.unwrap();
        assert_eq!(report.replicas.len(), 1);
        assert_eq!(report.replicas[0].keys.len(), 2);
        let table = render_table(&report);
        assert!(
            table.contains("pncounter") && table.contains("-4"),
            "{table}"
        );
        let missing = inspect_store(&store, &["zz".to_owned()]).await.unwrap_err();
        assert!(
            missing.to_string().contains("replicas there: a"),
            "{missing}"
        );
    }
}
