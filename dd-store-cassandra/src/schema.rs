//! The schema and the CQL of every statement the store runs.
//!
//! ```text
//! CREATE TABLE <ks>.<table> (
//!     replica text, bucket int, key text, revision bigint, value blob,
//!     PRIMARY KEY ((replica, bucket), key)
//! ) WITH CLUSTERING ORDER BY (key ASC)
//! CREATE TABLE <ks>.<table>_replicas (replica text PRIMARY KEY)
//! ```
//!
//! A replica's keys are spread over [`BUCKETS`] partitions by a CRC-32 of the key, so that a
//! replica with a million keys makes partitions of ~16k rows instead of one huge partition;
//! within a partition rows are ordered by key (Cassandra orders `text` by its UTF-8 bytes, the
//! order the trait asks for). See the crate README for the trade-offs.

use crate::options::CassandraOptions;

/// The number of partitions per replica. Part of the on-disk format: changing it makes
/// existing records unreachable.
pub const BUCKETS: i32 = 64;

/// The bucket of `key`: CRC-32 (IEEE) of its UTF-8 bytes, modulo [`BUCKETS`].
pub fn bucket_of(key: &str) -> i32 {
    let hash = crc32fast::hash(key.as_bytes());
    // BUCKETS is a small positive constant, so the remainder fits in an i32.
    i32::try_from(hash % BUCKETS.unsigned_abs()).unwrap_or(0)
}

/// The CQL of every statement, for one keyspace and table.
#[derive(Debug, Clone)]
pub struct Cql {
    /// `CREATE KEYSPACE IF NOT EXISTS`.
    pub create_keyspace: String,
    /// `CREATE TABLE IF NOT EXISTS` for the records.
    pub create_table: String,
    /// `CREATE TABLE IF NOT EXISTS` for the replica names.
    pub create_replicas_table: String,
    /// Reads one record.
    pub get: String,
    /// Creates a record if it does not exist (LWT).
    pub insert_if_not_exists: String,
    /// Replaces a record if its revision matches (LWT).
    pub update_if_revision: String,
    /// Deletes a record if its revision matches (LWT).
    pub delete_if_revision: String,
    /// The first rows of a bucket.
    pub scan_bucket_first: String,
    /// The rows of a bucket after a key.
    pub scan_bucket_after: String,
    /// Every row of a bucket (paged by the driver).
    pub scan_bucket_all: String,
    /// Registers a replica name (idempotent).
    pub register_replica: String,
    /// Lists registered replica names.
    pub list_replicas: String,
}

impl Cql {
    /// The statements for `options`' keyspace and table (names already validated).
    pub fn new(options: &CassandraOptions) -> Self {
        let t = format!("{}.{}", options.keyspace, options.table);
        let r = format!("{}.{}_replicas", options.keyspace, options.table);
        let replication = options.replication.to_cql();
        Self {
            create_keyspace: format!(
                "CREATE KEYSPACE IF NOT EXISTS {} WITH replication = {replication} AND durable_writes = true",
                options.keyspace
            ),
            create_table: format!(
                "CREATE TABLE IF NOT EXISTS {t} (replica text, bucket int, key text, revision bigint, value blob, \
                 PRIMARY KEY ((replica, bucket), key)) WITH CLUSTERING ORDER BY (key ASC)"
            ),
            create_replicas_table: format!(
                "CREATE TABLE IF NOT EXISTS {r} (replica text PRIMARY KEY)"
            ),
            get: format!(
                "SELECT revision, value FROM {t} WHERE replica = ? AND bucket = ? AND key = ?"
            ),
            insert_if_not_exists: format!(
                "INSERT INTO {t} (replica, bucket, key, revision, value) VALUES (?, ?, ?, ?, ?) IF NOT EXISTS"
            ),
            update_if_revision: format!(
                "UPDATE {t} SET value = ?, revision = ? WHERE replica = ? AND bucket = ? AND key = ? IF revision = ?"
            ),
            delete_if_revision: format!(
                "DELETE FROM {t} WHERE replica = ? AND bucket = ? AND key = ? IF revision = ?"
            ),
            scan_bucket_first: format!(
                "SELECT key, revision, value FROM {t} WHERE replica = ? AND bucket = ? LIMIT ?"
            ),
            scan_bucket_after: format!(
                "SELECT key, revision, value FROM {t} WHERE replica = ? AND bucket = ? AND key > ? LIMIT ?"
            ),
            scan_bucket_all: format!(
                "SELECT key, revision, value FROM {t} WHERE replica = ? AND bucket = ?"
            ),
            register_replica: format!("INSERT INTO {r} (replica) VALUES (?)"),
            list_replicas: format!("SELECT replica FROM {r}"),
        }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use super::*;

    #[test]
    fn buckets_are_stable_and_in_range() {
        // Part of the stored format: these values must never change.
        assert_eq!(bucket_of("a"), (crc32fast::hash(b"a") % 64) as i32);
        let mut seen = std::collections::BTreeSet::new();
        for i in 0..10_000 {
            let b = bucket_of(&format!("key-{i}"));
            assert!((0..BUCKETS).contains(&b));
            seen.insert(b);
        }
        assert_eq!(
            seen.len(),
            BUCKETS as usize,
            "keys spread over every bucket"
        );
    }
}
