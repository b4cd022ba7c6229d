//! The in-memory data of the double: keyspaces, tables and their rows.

use std::collections::BTreeMap;

use crate::types::{CqlType, CqlValue};

/// One column of a table.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Column {
    /// The column name.
    pub name: String,
    /// Its type.
    pub ty: CqlType,
}

/// The values of a row, one per column of the table (`None`: null).
pub type RowValues = Vec<Option<CqlValue>>;

/// The rows of one partition, by clustering key, in ascending order.
pub type Partition = BTreeMap<Vec<CqlValue>, RowValues>;

/// A table: its schema and its rows.
#[derive(Debug, Clone)]
pub struct Table {
    /// Columns in declaration order.
    pub columns: Vec<Column>,
    /// Indexes of the partition key columns.
    pub partition_key: Vec<usize>,
    /// Indexes of the clustering columns.
    pub clustering: Vec<usize>,
    /// Partitions by partition key.
    pub rows: BTreeMap<Vec<CqlValue>, Partition>,
}

impl Table {
    /// The index of a column.
    pub fn column_index(&self, name: &str) -> Option<usize> {
        self.columns.iter().position(|c| c.name == name)
    }

    /// The kind of a column as `system_schema.columns` says it, and its position.
    pub fn column_kind(&self, index: usize) -> (&'static str, i32) {
        let position = |list: &[usize]| {
            list.iter()
                .position(|i| *i == index)
                .and_then(|p| i32::try_from(p).ok())
        };
        if let Some(p) = position(&self.partition_key) {
            ("partition_key", p)
        } else if let Some(p) = position(&self.clustering) {
            ("clustering", p)
        } else {
            ("regular", -1)
        }
    }

    /// Column indexes in the order Cassandra returns `*`: partition key, clustering, then the
    /// other columns by name.
    pub fn star_order(&self) -> Vec<usize> {
        let mut regular: Vec<usize> = (0..self.columns.len())
            .filter(|i| !self.partition_key.contains(i) && !self.clustering.contains(i))
            .collect();
        regular.sort_by(|a, b| self.columns[*a].name.cmp(&self.columns[*b].name));
        self.partition_key
            .iter()
            .chain(&self.clustering)
            .copied()
            .chain(regular)
            .collect()
    }

    /// How many rows the table holds.
    pub fn row_count(&self) -> usize {
        self.rows.values().map(BTreeMap::len).sum()
    }
}

/// A keyspace.
#[derive(Debug, Clone)]
pub struct Keyspace {
    /// The replication options (`class`, `replication_factor`, ...).
    pub replication: Vec<(String, String)>,
    /// `durable_writes`.
    pub durable_writes: bool,
    /// Tables by name.
    pub tables: BTreeMap<String, Table>,
}

/// Everything the double stores.
#[derive(Debug, Clone, Default)]
pub struct State {
    /// Keyspaces by name.
    pub keyspaces: BTreeMap<String, Keyspace>,
    /// Bumped on every schema change; reported as `schema_version`.
    pub schema_generation: u64,
}

impl State {
    /// The schema version as a UUID (version 4 layout, derived from the generation).
    pub fn schema_version(&self) -> [u8; 16] {
        let mut uuid = [0u8; 16];
        uuid[..8].copy_from_slice(&0x5ca1_ab1e_0000_4000_u64.to_be_bytes());
        uuid[8..].copy_from_slice(&(0x8000_0000_0000_0000 | self.schema_generation).to_be_bytes());
        uuid
    }
}
