//! The TCP server: accepts native protocol v4 connections on a loopback address and answers
//! each request frame from the shared in-memory [`Database`].

use std::collections::{HashMap, VecDeque};
use std::hash::{DefaultHasher, Hash, Hasher};
use std::net::SocketAddr;
use std::sync::{Arc, Mutex, MutexGuard};

use cassandra_protocol::compression::Compression;
use cassandra_protocol::frame::message_request::RequestBody;
use cassandra_protocol::frame::{Envelope, ParseEnvelopeError, StreamId};
use cassandra_protocol::query::{QueryParams, QueryValues};
use cassandra_protocol::types::value::Value;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;

use crate::engine::{self, BoundValue, Context, Paging};
use crate::error::{CqlError, CqlErrorKind};
use crate::parser::{self, Parsed};
use crate::protocol;
use crate::schema::State;

/// The in-memory data of a double. Clones share the data, so a double can be stopped and a
/// new one started on the same data (a node restart that keeps its disk).
#[derive(Debug, Clone, Default)]
pub struct Database {
    state: Arc<Mutex<State>>,
    consistencies: Arc<Mutex<HashMap<String, ObservedConsistency>>>,
    timeouts: Arc<Mutex<HashMap<String, VecDeque<WriteTimeout>>>>,
}

/// A write timeout the double answers a statement with instead of its result (see
/// [`Database::time_out_next`]), as a Cassandra coordinator does when a lightweight transaction
/// does not finish in time: the client cannot tell whether it was applied.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WriteTimeout {
    /// The statement is not applied.
    NotApplied,
    /// The statement is applied, then the timeout is answered (the Paxos round finished after
    /// the coordinator gave up).
    Applied,
}

/// The consistency levels a client last sent with a statement (the double accepts and ignores
/// them; tests check that a client sends what it should).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ObservedConsistency {
    /// The consistency, e.g. `LocalQuorum`.
    pub consistency: String,
    /// The serial consistency, e.g. `LocalSerial`, if sent.
    pub serial_consistency: Option<String>,
}

impl Database {
    /// An empty database (no keyspaces).
    pub fn new() -> Self {
        Self::default()
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        // Statements are applied without calling out while the lock is held, so a poisoned
        // lock still holds consistent data.
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The names of the keyspaces.
    pub fn keyspaces(&self) -> Vec<String> {
        self.lock().keyspaces.keys().cloned().collect()
    }

    /// The number of rows of `keyspace.table`, if the table exists.
    pub fn row_count(&self, keyspace: &str, table: &str) -> Option<usize> {
        let state = self.lock();
        Some(
            state
                .keyspaces
                .get(keyspace)?
                .tables
                .get(table)?
                .row_count(),
        )
    }

    /// The consistency levels last sent with the statement `cql` (as the client wrote it).
    pub fn observed_consistency(&self, cql: &str) -> Option<ObservedConsistency> {
        self.consistencies
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .get(cql)
            .cloned()
    }

    /// Answers the next execution of the statement `cql` (as the client wrote it) with a CQL
    /// `WriteTimeout` of write type `CAS`, applying the statement first or not as `timeout`
    /// says. Calls queue up: each execution takes the oldest queued timeout.
    pub fn time_out_next(&self, cql: &str, timeout: WriteTimeout) {
        self.timeouts
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .entry(cql.to_owned())
            .or_default()
            .push_back(timeout);
    }

    /// The queued timeout for the next execution of `cql`, if any.
    fn take_timeout(&self, cql: &str) -> Option<WriteTimeout> {
        let mut map = self.timeouts.lock().unwrap_or_else(|p| p.into_inner());
        let queue = map.get_mut(cql)?;
        let next = queue.pop_front();
        if queue.is_empty() {
            map.remove(cql);
        }
        next
    }

    fn observe(&self, cql: &str, params: &QueryParams) {
        let observed = ObservedConsistency {
            consistency: format!("{:?}", params.consistency),
            serial_consistency: params.serial_consistency.map(|c| format!("{c:?}")),
        };
        let mut map = self.consistencies.lock().unwrap_or_else(|p| p.into_inner());
        // Bounded: one entry per distinct statement text a client sends.
        if map.len() < 10_000 || map.contains_key(cql) {
            map.insert(cql.to_owned(), observed);
        }
    }

    /// The number of partitions of `keyspace.table`, if the table exists.
    pub fn partition_count(&self, keyspace: &str, table: &str) -> Option<usize> {
        let state = self.lock();
        Some(state.keyspaces.get(keyspace)?.tables.get(table)?.rows.len())
    }
}

/// An error starting the double.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    /// The address cannot be bound.
    #[error("CQL test double: cannot listen on {addr}: {source}")]
    Bind {
        /// The address.
        addr: SocketAddr,
        /// Why.
        #[source]
        source: std::io::Error,
    },
}

/// A prepared statement, kept per running server (a restarted double has forgotten them and
/// answers `UNPREPARED`, as a restarted Cassandra node may).
struct PreparedEntry {
    cql: String,
    parsed: Parsed,
    keyspace: Option<String>,
}

struct Shared {
    database: Database,
    prepared: Mutex<HashMap<Vec<u8>, Arc<PreparedEntry>>>,
    addr: SocketAddr,
}

/// A running CQL test double. See the [crate docs](crate).
#[derive(Debug)]
pub struct CqlTestDouble {
    addr: SocketAddr,
    database: Database,
    shutdown: CancellationToken,
    task: Option<tokio::task::JoinHandle<()>>,
}

impl CqlTestDouble {
    /// Starts a double with an empty database on `127.0.0.1` and a free port.
    pub async fn start() -> Result<Self, StartError> {
        Self::start_with(Database::new(), SocketAddr::from(([127, 0, 0, 1], 0))).await
    }

    /// Starts a double serving `database` on `addr` (port 0: any free port).
    pub async fn start_with(database: Database, addr: SocketAddr) -> Result<Self, StartError> {
        let listener = TcpListener::bind(addr)
            .await
            .map_err(|source| StartError::Bind { addr, source })?;
        let addr = listener
            .local_addr()
            .map_err(|source| StartError::Bind { addr, source })?;
        let shutdown = CancellationToken::new();
        let shared = Arc::new(Shared {
            database: database.clone(),
            prepared: Mutex::new(HashMap::new()),
            addr,
        });
        let task = tokio::spawn(accept_loop(listener, shared, shutdown.clone()));
        tracing::info!(%addr, "CQL test double listening");
        Ok(Self {
            addr,
            database,
            shutdown,
            task: Some(task),
        })
    }

    /// The address the double listens on.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// The double's data.
    pub fn database(&self) -> &Database {
        &self.database
    }

    /// Stops listening and closes every connection; the data stays in [`Self::database`].
    /// Returns once the port is free again.
    pub async fn shutdown(mut self) {
        self.shutdown.cancel();
        if let Some(task) = self.task.take()
            && let Err(e) = task.await
        {
            tracing::warn!(error = %e, "CQL test double accept loop ended abnormally");
        }
        tracing::info!(addr = %self.addr, "CQL test double stopped");
    }
}

impl Drop for CqlTestDouble {
    fn drop(&mut self) {
        self.shutdown.cancel();
    }
}

async fn accept_loop(listener: TcpListener, shared: Arc<Shared>, shutdown: CancellationToken) {
    let mut connections = JoinSet::new();
    loop {
        tokio::select! {
            () = shutdown.cancelled() => break,
            accepted = listener.accept() => match accepted {
                Ok((stream, peer)) => {
                    let shared = shared.clone();
                    connections.spawn(async move {
                        if let Err(e) = serve(stream, shared).await {
                            tracing::debug!(%peer, error = %e, "CQL connection closed");
                        }
                    });
                }
                Err(e) => tracing::warn!(error = %e, "CQL test double: accept failed"),
            },
            Some(_) = connections.join_next(), if !connections.is_empty() => {}
        }
    }
    drop(listener);
    connections.shutdown().await;
}

async fn serve(stream: TcpStream, shared: Arc<Shared>) -> std::io::Result<()> {
    stream.set_nodelay(true)?;
    let (mut reader, mut writer) = stream.into_split();
    let mut buffer: Vec<u8> = Vec::with_capacity(64 * 1024);
    let mut keyspace: Option<String> = None;
    loop {
        let mut consumed = 0;
        let mut out = Vec::new();
        loop {
            match Envelope::from_buffer(&buffer[consumed..], Compression::None) {
                Ok(parsed) => {
                    consumed += parsed.envelope_len;
                    out.extend(handle(&shared, &mut keyspace, parsed.envelope));
                }
                Err(ParseEnvelopeError::NotEnoughBytes) => break,
                Err(e) => {
                    // The frame cannot be delimited: answer on its stream and close.
                    let stream_id = stream_id_of(&buffer[consumed..]);
                    let message = format!(
                        "Invalid or unsupported protocol version or frame ({e}); the CQL test double speaks v4 only"
                    );
                    out.extend(protocol::error(stream_id, &CqlError::protocol(message)));
                    writer.write_all(&out).await?;
                    return Ok(());
                }
            }
        }
        buffer.drain(..consumed);
        if !out.is_empty() {
            writer.write_all(&out).await?;
        }
        if reader.read_buf(&mut buffer).await? == 0 {
            return Ok(());
        }
    }
}

fn stream_id_of(header: &[u8]) -> StreamId {
    match header {
        [_, _, a, b, ..] => StreamId::from_be_bytes([*a, *b]),
        _ => 0,
    }
}

fn handle(shared: &Shared, keyspace: &mut Option<String>, envelope: Envelope) -> Vec<u8> {
    let stream_id = envelope.stream_id;
    let body = match envelope.request_body() {
        Ok(body) => body,
        Err(e) => {
            return protocol::error(
                stream_id,
                &CqlError::protocol(format!("cannot decode {:?} request: {e}", envelope.opcode)),
            );
        }
    };
    let answer = match body {
        RequestBody::Options(_) => return protocol::supported(stream_id),
        RequestBody::Startup(startup) => {
            if let Some(c) = startup.map.get("COMPRESSION") {
                Err(CqlError::protocol(format!(
                    "compression '{c}' is not supported by the CQL test double"
                )))
            } else {
                return protocol::ready(stream_id);
            }
        }
        RequestBody::Register(_) => return protocol::ready(stream_id),
        RequestBody::Query(query) => {
            tracing::trace!(cql = %query.query, "QUERY");
            shared.database.observe(&query.query, &query.query_params);
            parser::parse(&query.query).and_then(|parsed| {
                run(
                    shared,
                    keyspace,
                    &query.query,
                    &parsed,
                    None,
                    &query.query_params,
                )
            })
        }
        RequestBody::Prepare(prepare) => {
            tracing::trace!(cql = %prepare.query, "PREPARE");
            return match prepare_statement(shared, keyspace.as_deref(), &prepare.query) {
                Ok(bytes) => protocol::prepared(stream_id, bytes.0, &bytes.1),
                Err(e) => protocol::error(stream_id, &e),
            };
        }
        RequestBody::Execute(execute) => {
            let id = execute.id.into_bytes().unwrap_or_default();
            let entry = shared
                .prepared
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .get(&id)
                .cloned();
            if let Some(entry) = &entry {
                shared
                    .database
                    .observe(&entry.cql, &execute.query_parameters);
            }
            match entry {
                Some(entry) => run(
                    shared,
                    keyspace,
                    &entry.cql,
                    &entry.parsed,
                    entry.keyspace.as_deref(),
                    &execute.query_parameters,
                ),
                None => Err(CqlError {
                    kind: CqlErrorKind::Unprepared { id },
                    message: "Prepared query with this id not found (prepare it again)".to_owned(),
                }),
            }
        }
        RequestBody::Batch(_) => Err(CqlError::invalid(
            "BATCH is not supported by the CQL test double",
        )),
        RequestBody::AuthResponse(_) => Err(CqlError::protocol(
            "authentication is not enabled on the CQL test double",
        )),
        other => Err(CqlError::protocol(format!("unexpected request {other:?}"))),
    };
    match answer {
        Ok(bytes) => protocol::result(stream_id, bytes),
        Err(e) => protocol::error(stream_id, &e),
    }
}

fn prepared_id(cql: &str, keyspace: Option<&str>) -> Vec<u8> {
    let mut id = Vec::with_capacity(16);
    for salt in [0x5eed_u64, 0xcafe] {
        let mut hasher = DefaultHasher::new();
        salt.hash(&mut hasher);
        cql.hash(&mut hasher);
        keyspace.hash(&mut hasher);
        id.extend_from_slice(&hasher.finish().to_be_bytes());
    }
    id
}

fn prepare_statement(
    shared: &Shared,
    keyspace: Option<&str>,
    cql: &str,
) -> Result<(Vec<u8>, engine::Analysis), CqlError> {
    let parsed = parser::parse(cql)?;
    let ctx = Context {
        keyspace,
        node_ip: shared.addr.ip(),
    };
    let analysis = {
        let state = shared.database.lock();
        engine::analyse(&state, &parsed.statement, parsed.markers, &ctx)?
    };
    let id = prepared_id(cql, keyspace);
    shared
        .prepared
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .insert(
            id.clone(),
            Arc::new(PreparedEntry {
                cql: cql.to_owned(),
                parsed,
                keyspace: keyspace.map(str::to_owned),
            }),
        );
    Ok((id, analysis))
}

fn run(
    shared: &Shared,
    connection_keyspace: &mut Option<String>,
    cql: &str,
    parsed: &Parsed,
    prepared_keyspace: Option<&str>,
    params: &QueryParams,
) -> Result<engine::Outcome, CqlError> {
    let bound: Vec<BoundValue> = match &params.values {
        None => Vec::new(),
        Some(QueryValues::SimpleValues(values)) => values
            .iter()
            .map(|v| match v {
                Value::Some(bytes) => BoundValue::Value(bytes.clone()),
                Value::Null => BoundValue::Null,
                Value::NotSet => BoundValue::Unset,
            })
            .collect(),
        Some(QueryValues::NamedValues(_)) => {
            return Err(CqlError::invalid(
                "named bind values are not supported by the CQL test double",
            ));
        }
    };
    if bound.len() != parsed.markers {
        return Err(CqlError::invalid(format!(
            "There were {} markers(?) in CQL but {} bound variables",
            parsed.markers,
            bound.len()
        )));
    }
    let paging = Paging {
        page_size: params.page_size,
        paging_state: params
            .paging_state
            .clone()
            .and_then(|state| state.into_bytes()),
    };
    let keyspace = prepared_keyspace
        .map(str::to_owned)
        .or_else(|| connection_keyspace.clone());
    let ctx = Context {
        keyspace: keyspace.as_deref(),
        node_ip: shared.addr.ip(),
    };
    let timeout = shared.database.take_timeout(cql);
    if timeout == Some(WriteTimeout::NotApplied) {
        return Err(CqlError::cas_write_timeout(params.consistency));
    }
    let outcome = {
        let mut state = shared.database.lock();
        engine::execute(&mut state, &parsed.statement, &bound, &paging, &ctx)?
    };
    if timeout == Some(WriteTimeout::Applied) {
        return Err(CqlError::cas_write_timeout(params.consistency));
    }
    if let engine::Outcome::SetKeyspace(ks) = &outcome {
        *connection_keyspace = Some(ks.clone());
    }
    Ok(outcome)
}
