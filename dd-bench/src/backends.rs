//! The backends under test, how to open them, and the raw baselines: the same bytes written and
//! read with the backend's own client and nothing of durable-dd in between.

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, PoisonError};

use aws_sdk_s3::config::{BehaviorVersion, Credentials, Region};
use dd_core::data::TypeRegistry;
use dd_core::store::DurableStateStore;
use dd_durable::record::{self, Record};
use futures::{StreamExt, TryStreamExt};
use serde::{Deserialize, Serialize};

use crate::error::{BenchError, Context, Result};

/// Where a backend's data lives; serialisable so a child process can open the same store.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub enum BackendSpec {
    /// A dd-store-fs directory.
    Fs {
        /// The store directory.
        dir: PathBuf,
    },
    /// A dd-store-sqlite database file.
    Sqlite {
        /// The database file.
        path: PathBuf,
    },
    /// A dd-store-s3 prefix.
    S3 {
        /// Endpoint, bucket, credentials.
        endpoint: S3Endpoint,
        /// The store's key prefix in the bucket.
        prefix: String,
    },
    /// dd-store-cassandra on a real Cassandra cluster (`DD_TEST_CASSANDRA_CONTACT_POINTS`).
    Cassandra {
        /// `host:port,host:port`.
        contact_points: String,
        /// The keyspace.
        keyspace: String,
        /// The table.
        table: String,
    },
    /// dd-store-cassandra on the in-process CQL test double (informational rows only).
    CassandraDouble {
        /// The double's address.
        contact_point: String,
        /// The table.
        table: String,
    },
}

/// An S3 endpoint from the `DD_TEST_S3_*` environment (as `scripts/services/s3.sh` exports).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct S3Endpoint {
    /// `http://127.0.0.1:PORT`.
    pub url: String,
    /// The bucket.
    pub bucket: String,
    /// The region.
    pub region: String,
    /// Access key (empty: anonymous).
    pub access_key: String,
    /// Secret key.
    pub secret_key: String,
    /// Longest object name the server accepts.
    pub max_object_name_len: usize,
}

impl S3Endpoint {
    /// The endpoint from the environment, or why there is none.
    pub fn from_env() -> std::result::Result<S3Endpoint, String> {
        let var =
            |name: &str, default: &str| std::env::var(name).unwrap_or_else(|_| default.to_owned());
        let url = std::env::var("DD_TEST_S3_ENDPOINT").map_err(|_| {
            "skipped: DD_TEST_S3_ENDPOINT is not set (run through scripts/bench.sh, which starts \
             s3s-fs on 127.0.0.1)"
                .to_owned()
        })?;
        let max_object_name_len = var("DD_TEST_S3_MAX_OBJECT_NAME_LEN", "1024")
            .parse()
            .map_err(|_| "DD_TEST_S3_MAX_OBJECT_NAME_LEN is not a number".to_owned())?;
        Ok(S3Endpoint {
            url,
            bucket: var("DD_TEST_S3_BUCKET", "dd-test"),
            region: var("DD_TEST_S3_REGION", "us-east-1"),
            access_key: var("DD_TEST_S3_ACCESS_KEY", ""),
            secret_key: var("DD_TEST_S3_SECRET_KEY", ""),
            max_object_name_len,
        })
    }

    /// A bare AWS SDK client for the same endpoint (plain requests, as dd-store-s3 configures).
    pub async fn raw_client(&self) -> aws_sdk_s3::Client {
        use aws_sdk_s3::config::{RequestChecksumCalculation, ResponseChecksumValidation};
        use aws_smithy_http_client::tls::{self, rustls_provider::CryptoMode};
        let http_client = aws_smithy_http_client::Builder::new()
            .tls_provider(tls::Provider::Rustls(CryptoMode::Ring))
            .build_https();
        let mut loader = aws_config::defaults(BehaviorVersion::latest())
            .http_client(http_client.clone())
            .region(Region::new(self.region.clone()));
        if self.access_key.is_empty() {
            loader = loader.no_credentials();
        } else {
            loader = loader.credentials_provider(Credentials::new(
                self.access_key.clone(),
                self.secret_key.clone(),
                None,
                None,
                "dd-bench",
            ));
        }
        let shared = loader.load().await;
        let config = aws_sdk_s3::config::Builder::from(&shared)
            .http_client(http_client)
            .force_path_style(true)
            .endpoint_url(self.url.clone())
            .request_checksum_calculation(RequestChecksumCalculation::WhenRequired)
            .response_checksum_validation(ResponseChecksumValidation::WhenRequired);
        aws_sdk_s3::Client::from_conf(config.build())
    }
}

impl BackendSpec {
    /// The backend's name in tables.
    pub fn name(&self) -> &'static str {
        match self {
            BackendSpec::Fs { .. } => "fs",
            BackendSpec::Sqlite { .. } => "sqlite",
            BackendSpec::S3 { .. } => "s3",
            BackendSpec::Cassandra { .. } => "cassandra",
            BackendSpec::CassandraDouble { .. } => "cassandra (CQL test double)",
        }
    }

    /// The store URL of the backend (what a child process, dd-node or a user would open). An S3
    /// URL carries the endpoint's credentials: show [`BackendSpec::location`] instead.
    pub fn url(&self) -> String {
        use dd_core::store::url::{encode_path, encode_value};
        match self {
            BackendSpec::Fs { dir } => format!("fs://{}", dir.display()),
            // FULL is the default; named here because the raw baseline uses the same.
            BackendSpec::Sqlite { path } => format!("sqlite://{}?synchronous=full", path.display()),
            BackendSpec::S3 { endpoint, prefix } => {
                let credentials = if endpoint.access_key.is_empty() {
                    "anonymous=true".to_owned()
                } else {
                    format!(
                        "access_key={}&secret_key={}",
                        encode_value(&endpoint.access_key),
                        encode_value(&endpoint.secret_key)
                    )
                };
                format!(
                    "s3://{}/{}?endpoint={}&region={}&path_style=true&create_bucket=true\
                     &max_object_name_len={}&{credentials}",
                    endpoint.bucket,
                    encode_path(prefix),
                    encode_value(&endpoint.url),
                    encode_value(&endpoint.region),
                    endpoint.max_object_name_len
                )
            }
            BackendSpec::Cassandra {
                contact_points,
                keyspace,
                table,
            } => format!(
                "cassandra://{contact_points}/{keyspace}?table={}",
                encode_value(table)
            ),
            BackendSpec::CassandraDouble {
                contact_point,
                table,
            } => format!(
                "cassandra://{contact_point}/dd_bench?table={}",
                encode_value(table)
            ),
        }
    }

    /// Where the backend's data lives, for messages (the URL without credentials).
    pub fn location(&self) -> String {
        match self {
            BackendSpec::S3 { endpoint, prefix } => {
                format!("s3://{}/{prefix} at {}", endpoint.bucket, endpoint.url)
            }
            _ => self.url(),
        }
    }

    /// Opens the dd-durable backend store through the registry of store schemes
    /// ([`dd_durable::open_store`]), by its [URL](BackendSpec::url).
    pub async fn open(&self) -> Result<Arc<dyn DurableStateStore>> {
        dd_durable::open_store(&self.url())
            .await
            .context(|| format!("opening {}", self.location()))
    }
}

fn cassandra_options(
    contact_points: &str,
    keyspace: &str,
    table: &str,
) -> dd_store_cassandra::CassandraOptions {
    let mut options =
        dd_store_cassandra::CassandraOptions::new(contact_points.split(','), keyspace.to_owned());
    options.table = table.to_owned();
    options
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

/// The raw write baseline of a backend: one key's bytes, with the backend's durability, as
/// directly as its client allows.
pub enum RawWriter {
    /// temp file + fsync + rename + directory fsync.
    Fs {
        /// The directory the files go to.
        dir: PathBuf,
    },
    /// An upsert in its own transaction (WAL, synchronous=FULL).
    Sqlite {
        /// The connection.
        conn: Arc<Mutex<rusqlite::Connection>>,
    },
    /// One PutObject.
    S3 {
        /// The client.
        client: aws_sdk_s3::Client,
        /// The bucket.
        bucket: String,
        /// Object name prefix.
        prefix: String,
    },
    /// The same LWTs as dd-store-cassandra, sent with the bare driver: `INSERT ... IF NOT
    /// EXISTS` for a key's first write, then `UPDATE ... IF revision = ?`.
    Cassandra {
        /// The store whose table and session the raw writes use (its own table).
        store: Arc<dd_store_cassandra::CassandraStore>,
        /// `INSERT ... IF NOT EXISTS` (boxed: a prepared statement is large).
        insert: Box<dd_store_cassandra::scylla::statement::prepared::PreparedStatement>,
        /// `UPDATE ... IF revision = ?`.
        update: Box<dd_store_cassandra::scylla::statement::prepared::PreparedStatement>,
        /// The revision each key has, as this writer left it.
        revisions: Mutex<std::collections::HashMap<String, i64>>,
    },
}

/// What each raw baseline does, for the tables.
pub fn raw_write_description(backend: &str) -> &'static str {
    match backend {
        "fs" => "bare write: temp file + fsync + rename + dir fsync",
        "sqlite" => "bare rusqlite upsert in its own transaction (WAL, synchronous=FULL)",
        "s3" => "bare PutObject",
        "cassandra" => "bare scylla LWT: INSERT IF NOT EXISTS, then UPDATE IF revision = ?",
        _ => "none",
    }
}

impl RawWriter {
    /// A raw writer for `backend`, writing to a place of its own (`place`: a directory, a
    /// database file or an object prefix).
    pub async fn open(spec: &BackendSpec, place: &Path) -> Result<Option<RawWriter>> {
        Ok(match spec {
            BackendSpec::Fs { .. } => {
                std::fs::create_dir_all(place).context(|| format!("creating {place:?}"))?;
                Some(RawWriter::Fs {
                    dir: place.to_path_buf(),
                })
            }
            BackendSpec::Sqlite { .. } => {
                let conn =
                    rusqlite::Connection::open(place).context(|| format!("opening {place:?}"))?;
                conn.pragma_update_and_check(None, "journal_mode", "WAL", |_| Ok(()))
                    .context(|| "journal_mode=WAL".to_owned())?;
                conn.pragma_update(None, "synchronous", "FULL")
                    .context(|| "synchronous=FULL".to_owned())?;
                conn.execute_batch(
                    "CREATE TABLE IF NOT EXISTS raw (replica TEXT NOT NULL, key TEXT NOT NULL, \
                     revision INTEGER NOT NULL, value BLOB NOT NULL, PRIMARY KEY (replica, key))",
                )
                .context(|| "creating the raw table".to_owned())?;
                Some(RawWriter::Sqlite {
                    conn: Arc::new(Mutex::new(conn)),
                })
            }
            BackendSpec::S3 { endpoint, prefix } => Some(RawWriter::S3 {
                client: endpoint.raw_client().await,
                bucket: endpoint.bucket.clone(),
                prefix: format!("{prefix}-raw"),
            }),
            BackendSpec::Cassandra {
                contact_points,
                keyspace,
                table,
            } => {
                Some(raw_cassandra_writer(contact_points, keyspace, &format!("{table}_raw")).await?)
            }
            BackendSpec::CassandraDouble { .. } => None,
        })
    }

    /// Writes `value` under `key` durably.
    pub async fn write(&self, key: &str, value: bytes::Bytes) -> Result<()> {
        match self {
            RawWriter::Fs { dir } => {
                let dir = dir.clone();
                let key = key.to_owned();
                tokio::task::spawn_blocking(move || raw_fs_write(&dir, &key, &value))
                    .await
                    .context(|| "raw fs write task".to_owned())?
            }
            RawWriter::Sqlite { conn } => {
                let conn = Arc::clone(conn);
                let key = key.to_owned();
                tokio::task::spawn_blocking(move || {
                    let mut conn = lock(&conn);
                    let tx = conn
                        .transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)
                        .context(|| "raw sqlite begin".to_owned())?;
                    tx.prepare_cached(
                        "INSERT INTO raw (replica, key, revision, value) VALUES ('raw', ?1, 1, ?2) \
                         ON CONFLICT (replica, key) DO UPDATE SET revision = revision + 1, \
                         value = excluded.value",
                    )
                    .and_then(|mut s| s.execute(rusqlite::params![key, value.as_ref()]))
                    .context(|| "raw sqlite upsert".to_owned())?;
                    tx.commit().context(|| "raw sqlite commit".to_owned())
                })
                .await
                .context(|| "raw sqlite write task".to_owned())?
            }
            RawWriter::S3 {
                client,
                bucket,
                prefix,
            } => {
                client
                    .put_object()
                    .bucket(bucket)
                    .key(format!("{prefix}/{key}"))
                    .body(value.into())
                    .send()
                    .await
                    .context(|| format!("raw PutObject {prefix}/{key}"))?;
                Ok(())
            }
            RawWriter::Cassandra {
                store,
                insert,
                update,
                revisions,
            } => {
                let bucket = dd_store_cassandra::schema::bucket_of(key);
                let current = lock(revisions).get(key).copied();
                let result = match current {
                    None => {
                        store
                            .session()
                            .execute_unpaged(insert, ("raw", bucket, key, 1_i64, value.as_ref()))
                            .await
                    }
                    Some(revision) => {
                        store
                            .session()
                            .execute_unpaged(
                                update,
                                (value.as_ref(), revision + 1, "raw", bucket, key, revision),
                            )
                            .await
                    }
                }
                .context(|| format!("raw cassandra LWT of key {key}"))?;
                let applied = result
                    .into_rows_result()
                    .ok()
                    .and_then(|rows| rows.first_row::<(bool,)>().ok())
                    .is_some_and(|(applied,)| applied);
                if !applied {
                    return Err(BenchError::Failed(format!(
                        "raw cassandra LWT of key {key} was not applied"
                    )));
                }
                lock(revisions).insert(key.to_owned(), current.map_or(1, |r| r + 1));
                Ok(())
            }
        }
    }
}

/// A raw writer on its own table `table` of the cluster (created through a store, which owns
/// the session).
async fn raw_cassandra_writer(
    contact_points: &str,
    keyspace: &str,
    table: &str,
) -> Result<RawWriter> {
    let options = cassandra_options(contact_points, keyspace, table);
    let cql = dd_store_cassandra::schema::Cql::new(&options);
    let store = dd_store_cassandra::open(options)
        .await
        .context(|| format!("opening cassandra at {contact_points}"))?;
    let insert = store
        .session()
        .prepare(cql.insert_if_not_exists.as_str())
        .await
        .context(|| format!("preparing {}", cql.insert_if_not_exists))?;
    let update = store
        .session()
        .prepare(cql.update_if_revision.as_str())
        .await
        .context(|| format!("preparing {}", cql.update_if_revision))?;
    Ok(RawWriter::Cassandra {
        store: Arc::new(store),
        insert: Box::new(insert),
        update: Box::new(update),
        revisions: Mutex::new(std::collections::HashMap::new()),
    })
}

fn raw_fs_write(dir: &Path, key: &str, value: &[u8]) -> Result<()> {
    use std::io::Write as _;
    let target = dir.join(key);
    let temp = dir.join(format!(".tmp-{key}"));
    let mut f = std::fs::File::create(&temp).context(|| format!("creating {temp:?}"))?;
    f.write_all(value)
        .and_then(|()| f.sync_data())
        .context(|| format!("writing {temp:?}"))?;
    std::fs::rename(&temp, &target).context(|| format!("renaming to {target:?}"))?;
    std::fs::File::open(dir)
        .and_then(|d| d.sync_all())
        .context(|| format!("syncing {dir:?}"))
}

/// A prepared raw scan of one backend (clients built before the clock starts).
pub enum RawScan {
    /// Read the files of the replica's directory.
    Fs(PathBuf),
    /// SELECT from the database file.
    Sqlite(PathBuf),
    /// ListObjectsV2 + GetObject under the replica's prefix.
    S3 {
        /// The client.
        client: aws_sdk_s3::Client,
        /// The bucket.
        bucket: String,
        /// The store's prefix.
        prefix: String,
    },
    /// `SELECT key, revision, value` of each of the replica's bucket partitions (every bucket at
    /// once, paged by the driver), on the store's own table.
    Cassandra {
        /// A store on that table (it owns the session).
        store: Box<dd_store_cassandra::CassandraStore>,
        /// The prepared bucket scan (boxed: a prepared statement is large).
        scan: Box<dd_store_cassandra::scylla::statement::prepared::PreparedStatement>,
    },
}

impl RawScan {
    /// Prepares a raw scan of `spec`.
    pub async fn prepare(spec: &BackendSpec) -> Result<RawScan> {
        match spec {
            BackendSpec::Fs { dir } => Ok(RawScan::Fs(dir.clone())),
            BackendSpec::Sqlite { path } => Ok(RawScan::Sqlite(path.clone())),
            BackendSpec::S3 { endpoint, prefix } => Ok(RawScan::S3 {
                client: endpoint.raw_client().await,
                bucket: endpoint.bucket.clone(),
                prefix: prefix.clone(),
            }),
            BackendSpec::Cassandra {
                contact_points,
                keyspace,
                table,
            } => {
                let options = cassandra_options(contact_points, keyspace, table);
                let cql = dd_store_cassandra::schema::Cql::new(&options);
                let store = dd_store_cassandra::open(options)
                    .await
                    .context(|| format!("opening cassandra at {contact_points}"))?;
                let scan = store
                    .session()
                    .prepare(cql.scan_bucket_all.as_str())
                    .await
                    .context(|| format!("preparing {}", cql.scan_bucket_all))?;
                Ok(RawScan::Cassandra {
                    store: Box::new(store),
                    scan: Box::new(scan),
                })
            }
            BackendSpec::CassandraDouble { .. } => Err(BenchError::Failed(
                "no raw scan for the CQL test double".into(),
            )),
        }
    }

    /// Reads every record of `replica` straight from the backend; returns how many there were.
    /// With `decode`, every value (fs: the value inside the record file) is also checked and
    /// decoded as dd-durable does (record format, then the CRDT by its type name); S3 bodies are not
    /// decoded (their header format is private to dd-store-s3).
    pub async fn scan(&self, replica: &str, decode: bool) -> Result<u64> {
        match self {
            RawScan::Fs(dir) => {
                let replica_dir = dir.join(dd_store_fs::name::FileName::for_name(replica).as_str());
                tokio::task::spawn_blocking(move || raw_fs_scan(&replica_dir, decode))
                    .await
                    .context(|| "raw fs scan task".to_owned())?
            }
            RawScan::Sqlite(path) => {
                let path = path.clone();
                let replica = replica.to_owned();
                tokio::task::spawn_blocking(move || raw_sqlite_scan(&path, &replica, decode))
                    .await
                    .context(|| "raw sqlite scan task".to_owned())?
            }
            RawScan::S3 {
                client,
                bucket,
                prefix,
            } => raw_s3_scan(client, bucket, &format!("{prefix}/{replica}/")).await,
            RawScan::Cassandra { store, scan } => {
                raw_cassandra_scan(store, scan, replica, decode).await
            }
        }
    }
}

/// Checks and decodes one record as dd-durable's load does.
fn decode_value(registry: &TypeRegistry, bytes: &[u8]) -> Result<()> {
    match record::decode(bytes).context(|| "decoding a record".to_owned())? {
        Record::Tombstone => Ok(()),
        Record::Data { type_name, payload } => {
            let value = registry
                .decode(type_name, payload)
                .context(|| format!("decoding a {type_name}"))?;
            std::hint::black_box(value);
            Ok(())
        }
    }
}

fn raw_fs_scan(dir: &Path, decode: bool) -> Result<u64> {
    let registry = TypeRegistry::with_builtin_types();
    let mut count = 0u64;
    let mut bytes = 0usize;
    for entry in std::fs::read_dir(dir).context(|| format!("listing {dir:?}"))? {
        let entry = entry.context(|| format!("listing {dir:?}"))?;
        if entry.file_name().to_string_lossy().starts_with('.') {
            continue;
        }
        let data = std::fs::read(entry.path()).context(|| format!("reading {:?}", entry.path()))?;
        bytes += data.len();
        if decode {
            let file = dd_store_fs::record::decode(bytes::Bytes::from(data))
                .map_err(|e| BenchError::Failed(format!("{:?}: {e}", entry.path())))?;
            decode_value(&registry, &file.value)?;
        }
        count += 1;
    }
    std::hint::black_box(bytes);
    Ok(count)
}

fn raw_sqlite_scan(path: &Path, replica: &str, decode: bool) -> Result<u64> {
    let registry = TypeRegistry::with_builtin_types();
    let conn =
        rusqlite::Connection::open_with_flags(path, rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY)
            .context(|| format!("opening {path:?}"))?;
    let mut stmt = conn
        .prepare("SELECT key, revision, value FROM dd_state WHERE replica = ?1 ORDER BY key")
        .context(|| "preparing the raw scan".to_owned())?;
    let mut rows = stmt.query([replica]).context(|| "raw scan".to_owned())?;
    let mut count = 0u64;
    let mut bytes = 0usize;
    while let Some(row) = rows.next().context(|| "raw scan".to_owned())? {
        let key: String = row.get(0).context(|| "raw scan key".to_owned())?;
        let revision: i64 = row.get(1).context(|| "raw scan revision".to_owned())?;
        let value: Vec<u8> = row.get(2).context(|| "raw scan value".to_owned())?;
        bytes += key.len() + value.len() + usize::from(revision > 0);
        if decode {
            decode_value(&registry, &value)?;
        }
        count += 1;
    }
    std::hint::black_box(bytes);
    Ok(count)
}

async fn raw_cassandra_scan(
    store: &dd_store_cassandra::CassandraStore,
    scan: &dd_store_cassandra::scylla::statement::prepared::PreparedStatement,
    replica: &str,
    decode: bool,
) -> Result<u64> {
    let registry = TypeRegistry::with_builtin_types();
    let registry = &registry;
    let buckets = dd_store_cassandra::schema::BUCKETS;
    let counts: Vec<u64> = futures::stream::iter(0..buckets)
        .map(|bucket| async move {
            let what = || format!("raw scan of replica {replica} bucket {bucket}");
            let pager = store
                .session()
                .execute_iter(scan.clone(), (replica, bucket))
                .await
                .context(what)?;
            let mut rows = pager
                .rows_stream::<(String, i64, Vec<u8>)>()
                .context(what)?;
            let mut count = 0u64;
            let mut bytes = 0usize;
            while let Some((key, revision, value)) = rows.try_next().await.context(what)? {
                bytes += key.len() + value.len() + usize::from(revision > 0);
                if decode {
                    decode_value(registry, &value)?;
                }
                count += 1;
            }
            std::hint::black_box(bytes);
            Ok::<u64, BenchError>(count)
        })
        .buffer_unordered(buckets as usize)
        .try_collect()
        .await?;
    Ok(counts.iter().sum())
}

/// Requests in flight when fetching objects: dd-store-s3's default `concurrency`.
const S3_FETCH_CONCURRENCY: usize = 16;

async fn raw_s3_scan(client: &aws_sdk_s3::Client, bucket: &str, prefix: &str) -> Result<u64> {
    let mut pages = client
        .list_objects_v2()
        .bucket(bucket)
        .prefix(prefix)
        .into_paginator()
        .send();
    let mut count = 0u64;
    let mut bytes = 0usize;
    while let Some(page) = pages.next().await {
        let page = page.context(|| format!("ListObjectsV2 {prefix}"))?;
        let names: Vec<String> = page
            .contents()
            .iter()
            .filter_map(|o| o.key().map(str::to_owned))
            .collect();
        let fetched: Vec<usize> = futures::stream::iter(names)
            .map(|name| {
                let client = client.clone();
                let bucket = bucket.to_owned();
                async move {
                    let body = client
                        .get_object()
                        .bucket(bucket)
                        .key(&name)
                        .send()
                        .await
                        .context(|| format!("GetObject {name}"))?
                        .body
                        .collect()
                        .await
                        .context(|| format!("reading {name}"))?;
                    Ok::<usize, BenchError>(body.into_bytes().len())
                }
            })
            .buffered(S3_FETCH_CONCURRENCY)
            .try_collect()
            .await?;
        count += fetched.len() as u64;
        bytes += fetched.iter().sum::<usize>();
    }
    std::hint::black_box(bytes);
    Ok(count)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The URL of an S3 backend opens the store the builder used to: same bucket, prefix,
    /// endpoint, credentials (secrets with URL characters included) and settings.
    #[test]
    fn s3_url_gives_the_options_of_the_builder() {
        let endpoint = S3Endpoint {
            url: "http://127.0.0.1:9000".to_owned(),
            bucket: "dd-test".to_owned(),
            region: "us-east-1".to_owned(),
            access_key: "AK+1".to_owned(),
            secret_key: "s3/cr+t=&%x".to_owned(),
            max_object_name_len: 160,
        };
        let spec = BackendSpec::S3 {
            endpoint: endpoint.clone(),
            prefix: "bench/run 1".to_owned(),
        };
        let parsed = dd_store_s3::S3Options::from_url(&spec.url()).map_err(|e| e.to_string());
        let expected = dd_store_s3::S3Options::builder("dd-test")
            .prefix("bench/run 1")
            .endpoint("http://127.0.0.1:9000")
            .region("us-east-1")
            .path_style(true)
            .create_bucket(true)
            .max_object_name_len(160)
            .access_key("AK+1", "s3/cr+t=&%x")
            .build();
        assert_eq!(parsed, Ok(expected));
        assert!(!spec.location().contains("s3/cr"), "{}", spec.location());

        let anonymous = BackendSpec::S3 {
            endpoint: S3Endpoint {
                access_key: String::new(),
                ..endpoint
            },
            prefix: "p".to_owned(),
        };
        let parsed = dd_store_s3::S3Options::from_url(&anonymous.url()).map_err(|e| e.to_string());
        assert!(parsed.is_ok_and(|o| o.anonymous && o.credentials.is_none()));
    }

    /// The Cassandra URLs name the contact points, keyspace and table the options did.
    #[test]
    fn cassandra_urls_give_the_options() {
        let spec = BackendSpec::Cassandra {
            contact_points: "127.0.0.1:9042,127.0.0.2:9043".to_owned(),
            keyspace: "dd_bench".to_owned(),
            table: "t_1".to_owned(),
        };
        let parsed =
            dd_store_cassandra::CassandraOptions::from_url(&spec.url()).map_err(|e| e.to_string());
        let expected = cassandra_options("127.0.0.1:9042,127.0.0.2:9043", "dd_bench", "t_1");
        assert_eq!(parsed, Ok(expected));
        let double = BackendSpec::CassandraDouble {
            contact_point: "127.0.0.1:19042".to_owned(),
            table: "t_2".to_owned(),
        };
        let parsed = dd_store_cassandra::CassandraOptions::from_url(&double.url())
            .map_err(|e| e.to_string());
        let mut expected =
            dd_store_cassandra::CassandraOptions::new(["127.0.0.1:19042"], "dd_bench");
        expected.table = "t_2".to_owned();
        assert_eq!(parsed, Ok(expected));
    }
}
