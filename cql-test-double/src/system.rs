//! The system tables a driver reads at connect and for metadata: `system.local`,
//! `system.peers`, `system.peers_v2` and `system_schema.*`, computed from the current state.
//!
//! The double is one node owning the whole token ring, in data center `datacenter1`, rack
//! `rack1`. Tables it does not know (for example ScyllaDB's `system_schema.scylla_tables`) are
//! "unconfigured table" errors, as on Cassandra.

use std::net::IpAddr;

use crate::schema::{Column, RowValues, State};
use crate::types::{CqlType, CqlValue};

/// The host id of the double's single node.
pub const HOST_ID: [u8; 16] = [
    0xdd, 0x00, 0xc0, 0x1d, 0x7e, 0x57, 0x40, 0x00, 0x80, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x01,
];

/// The data center of the double's node.
pub const DATA_CENTER: &str = "datacenter1";

/// The keyspaces whose tables are virtual.
pub fn is_system_keyspace(keyspace: &str) -> bool {
    matches!(keyspace, "system" | "system_schema")
}

/// A virtual table's columns and rows.
pub struct VirtualTable {
    /// The columns.
    pub columns: Vec<Column>,
    /// The rows.
    pub rows: Vec<RowValues>,
}

fn col(name: &str, ty: CqlType) -> Column {
    Column {
        name: name.to_owned(),
        ty,
    }
}

fn text(s: &str) -> Option<CqlValue> {
    Some(CqlValue::Text(s.to_owned()))
}

fn set_of_text() -> CqlType {
    CqlType::Set(Box::new(CqlType::Text))
}

fn list_of_text() -> CqlType {
    CqlType::List(Box::new(CqlType::Text))
}

fn map_of_text() -> CqlType {
    CqlType::Map(Box::new(CqlType::Text), Box::new(CqlType::Text))
}

fn peer_columns(v2: bool) -> Vec<Column> {
    let mut columns = vec![
        col("peer", CqlType::Inet),
        col("data_center", CqlType::Text),
        col("host_id", CqlType::Uuid),
        col("rack", CqlType::Text),
        col("release_version", CqlType::Text),
        col("schema_version", CqlType::Uuid),
        col("tokens", set_of_text()),
    ];
    if v2 {
        columns.push(col("peer_port", CqlType::Int));
        columns.push(col("native_address", CqlType::Inet));
        columns.push(col("native_port", CqlType::Int));
    } else {
        columns.push(col("rpc_address", CqlType::Inet));
    }
    columns
}

/// The virtual table `keyspace.table`, if the double has it.
pub fn virtual_table(
    state: &State,
    keyspace: &str,
    table: &str,
    node_ip: IpAddr,
) -> Option<VirtualTable> {
    let schema_version = Some(CqlValue::Uuid(state.schema_version()));
    let table = match (keyspace, table) {
        ("system", "local") => VirtualTable {
            columns: vec![
                col("key", CqlType::Text),
                col("broadcast_address", CqlType::Inet),
                col("cluster_name", CqlType::Text),
                col("cql_version", CqlType::Text),
                col("data_center", CqlType::Text),
                col("host_id", CqlType::Uuid),
                col("listen_address", CqlType::Inet),
                col("native_protocol_version", CqlType::Text),
                col("partitioner", CqlType::Text),
                col("rack", CqlType::Text),
                col("release_version", CqlType::Text),
                col("rpc_address", CqlType::Inet),
                col("schema_version", CqlType::Uuid),
                col("tokens", set_of_text()),
            ],
            rows: vec![vec![
                text("local"),
                Some(CqlValue::Inet(node_ip)),
                text("cql-test-double"),
                text("3.4.5"),
                text(DATA_CENTER),
                Some(CqlValue::Uuid(HOST_ID)),
                Some(CqlValue::Inet(node_ip)),
                text("4"),
                text("org.apache.cassandra.dht.Murmur3Partitioner"),
                text("rack1"),
                text("4.1.0-cql-test-double"),
                Some(CqlValue::Inet(node_ip)),
                schema_version,
                Some(CqlValue::List(vec![CqlValue::Text("0".to_owned())])),
            ]],
        },
        ("system", "peers") => VirtualTable {
            columns: peer_columns(false),
            rows: Vec::new(),
        },
        ("system", "peers_v2") => VirtualTable {
            columns: peer_columns(true),
            rows: Vec::new(),
        },
        ("system_schema", "keyspaces") => VirtualTable {
            columns: vec![
                col("keyspace_name", CqlType::Text),
                col("durable_writes", CqlType::Boolean),
                col("replication", map_of_text()),
            ],
            rows: state
                .keyspaces
                .iter()
                .map(|(name, ks)| {
                    vec![
                        text(name),
                        Some(CqlValue::Boolean(ks.durable_writes)),
                        Some(CqlValue::Map(
                            ks.replication
                                .iter()
                                .map(|(k, v)| {
                                    (CqlValue::Text(k.clone()), CqlValue::Text(v.clone()))
                                })
                                .collect(),
                        )),
                    ]
                })
                .collect(),
        },
        ("system_schema", "tables") => VirtualTable {
            columns: vec![
                col("keyspace_name", CqlType::Text),
                col("table_name", CqlType::Text),
                col("id", CqlType::Uuid),
            ],
            rows: state
                .keyspaces
                .iter()
                .flat_map(|(ks_name, ks)| {
                    ks.tables.keys().enumerate().map(move |(i, table_name)| {
                        let mut id = HOST_ID;
                        id[15] = u8::try_from(i % 256).unwrap_or(0);
                        vec![text(ks_name), text(table_name), Some(CqlValue::Uuid(id))]
                    })
                })
                .collect(),
        },
        ("system_schema", "columns") => VirtualTable {
            columns: vec![
                col("keyspace_name", CqlType::Text),
                col("table_name", CqlType::Text),
                col("column_name", CqlType::Text),
                col("clustering_order", CqlType::Text),
                col("kind", CqlType::Text),
                col("position", CqlType::Int),
                col("type", CqlType::Text),
            ],
            rows: state
                .keyspaces
                .iter()
                .flat_map(|(ks_name, ks)| {
                    ks.tables.iter().flat_map(move |(table_name, table)| {
                        table.columns.iter().enumerate().map(move |(i, column)| {
                            let (kind, position) = table.column_kind(i);
                            let order = if kind == "clustering" { "asc" } else { "none" };
                            vec![
                                text(ks_name),
                                text(table_name),
                                text(&column.name),
                                text(order),
                                text(kind),
                                Some(CqlValue::Int(position)),
                                text(&column.ty.cql_name()),
                            ]
                        })
                    })
                })
                .collect(),
        },
        ("system_schema", "types") => VirtualTable {
            columns: vec![
                col("keyspace_name", CqlType::Text),
                col("type_name", CqlType::Text),
                col("field_names", list_of_text()),
                col("field_types", list_of_text()),
            ],
            rows: Vec::new(),
        },
        ("system_schema", "views") => VirtualTable {
            columns: vec![
                col("keyspace_name", CqlType::Text),
                col("view_name", CqlType::Text),
                col("base_table_name", CqlType::Text),
                col("id", CqlType::Uuid),
            ],
            rows: Vec::new(),
        },
        ("system_schema", "functions" | "aggregates") => VirtualTable {
            columns: vec![
                col("keyspace_name", CqlType::Text),
                col("function_name", CqlType::Text),
                col("argument_types", list_of_text()),
            ],
            rows: Vec::new(),
        },
        _ => return None,
    };
    Some(table)
}
