//! The HTTP/JSON API (axum). See the README for the full reference.
//!
//! | method and path | what it does |
//! | --- | --- |
//! | `GET /openapi.json` | the OpenAPI document of this API ([`openapi`]) |
//! | `GET /health` | 503 while the durable state loads, then 200 with the replica, members and store; 503 `"degraded"` while the store fails (the node still serves) |
//! | `GET /health/live` | 200 as long as the process answers (for liveness probes) |
//! | `GET /metrics` | Prometheus text |
//! | `GET /` | the live dashboard (HTML) |
//! | `GET /keys` | the ids of every key with a value |
//! | `GET /members` | this replica's view of the members (state, incarnation, last heard) and removed incarnations |
//! | `DELETE /members/{name}` | removes a replica gone for good (`?force=true` for a live one); its entries are pruned |
//! | `GET /values` | every key with its type and value (at most [`MAX_VALUES`]) |
//! | `GET /keys/{type}/{key}` | reads a key (`?consistency=&timeout_ms=`) |
//! | `POST /keys/{type}/{key}` | applies operations (JSON body) |
//! | `DELETE /keys/{type}/{key}` | deletes a key for good |
//! | `GET /keys/{type}/{key}/subscribe` | server-sent events: the value now and after every change |

use std::collections::BTreeMap;
use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::{Arc, OnceLock};
use std::time::Instant;

use axum::body::Bytes;
use axum::extract::rejection::{BytesRejection, PathRejection, QueryRejection};
use axum::extract::{DefaultBodyLimit, Path, Query, State};
use axum::http::{StatusCode, header};
use axum::response::sse::{Event, KeepAlive, Sse};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use dd_core::cluster::{Cluster, Members};
use dd_core::{ReadConsistency, Replicator, ReplicatorError};
use futures::StreamExt;
use serde_json::{Map, Value, json};
use tokio::sync::watch;
use tokio_util::sync::CancellationToken;

use crate::apply;
use crate::consistency::ConsistencyQuery;
use crate::membership::{NodeCluster, RemoveError};
use crate::metrics::{Metrics, StatusLabel};
use crate::openapi::{
    DeletedBody, ErrorBody, HealthBody, KeyPath, KeysBody, LiveBody, MembersBody, RemovedBody,
    UpdateBody, ValueBody, ValuesBody,
};
use crate::ops::{OpError, parse_body};
use crate::types::DataType;

/// An error response: a status and a JSON body `{"error": "...", ...details}`.
#[derive(Debug, Clone, PartialEq)]
pub struct ApiError {
    /// The HTTP status.
    pub status: StatusCode,
    /// What went wrong, for a person.
    pub message: String,
    /// Further fields of the body.
    pub details: Map<String, Value>,
}

impl ApiError {
    /// An error with no details.
    pub fn new(status: StatusCode, message: impl Into<String>) -> Self {
        Self {
            status,
            message: message.into(),
            details: Map::new(),
        }
    }

    /// Adds a detail field.
    pub fn with(mut self, field: &str, value: impl Into<Value>) -> Self {
        self.details.insert(field.to_owned(), value.into());
        self
    }

    /// The JSON body.
    pub fn body(&self) -> Value {
        let mut body = Map::new();
        body.insert("error".into(), Value::String(self.message.clone()));
        body.extend(self.details.clone());
        Value::Object(body)
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        (self.status, Json(self.body())).into_response()
    }
}

/// The API name of a dd-core type name where there is one, else the dd-core name.
fn api_type_name(crdt_name: &str) -> String {
    DataType::from_crdt_type_name(crdt_name)
        .map(|t| t.name().to_owned())
        .unwrap_or_else(|| crdt_name.to_owned())
}

impl From<ReplicatorError> for ApiError {
    fn from(e: ReplicatorError) -> Self {
        let message = e.to_string();
        match e {
            ReplicatorError::NotFound { key } => {
                ApiError::new(StatusCode::NOT_FOUND, message).with("key", key)
            }
            ReplicatorError::Deleted { key } => {
                ApiError::new(StatusCode::GONE, message).with("key", key)
            }
            ReplicatorError::WrongType {
                key,
                expected,
                found,
            } => ApiError::new(
                StatusCode::CONFLICT,
                format!(
                    "key '{key}' is of type {}, not {}; nothing was applied",
                    api_type_name(&found),
                    api_type_name(&expected)
                ),
            )
            .with("key", key)
            .with("expected", api_type_name(&expected))
            .with("found", api_type_name(&found)),
            ReplicatorError::Timeout {
                key,
                required,
                received,
                applied_locally,
            } => ApiError::new(StatusCode::GATEWAY_TIMEOUT, message)
                .with("key", key)
                .with("required", required)
                .with("received", received)
                .with("applied_locally", applied_locally),
            ReplicatorError::ModifyFailed { key, .. } => ApiError::new(
                StatusCode::UNPROCESSABLE_ENTITY,
                format!("{message}; nothing was applied"),
            )
            .with("key", key),
            ReplicatorError::StoreFailure { key, .. } => {
                ApiError::new(StatusCode::SERVICE_UNAVAILABLE, message)
                    .with("key", key)
                    .with("applied_locally", true)
            }
            ReplicatorError::Shutdown => ApiError::new(StatusCode::SERVICE_UNAVAILABLE, message),
            // The cluster pruned this node's incarnation: nothing was applied, and nothing will
            // be until the node restarts with a new incarnation.
            ReplicatorError::IncarnationPruned { key, incarnation } => {
                ApiError::new(StatusCode::SERVICE_UNAVAILABLE, message)
                    .with("key", key)
                    .with("incarnation", incarnation)
                    .with("applied_locally", false)
            }
            _ => ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, message),
        }
    }
}

impl From<OpError> for ApiError {
    fn from(e: OpError) -> Self {
        let err = ApiError::new(StatusCode::BAD_REQUEST, e.to_string());
        match &e {
            OpError::Unsupported {
                data_type,
                supported,
                ..
            } => err
                .with("type", data_type.name())
                .with("supported", supported.clone())
                .with("usage", crate::ops::usage(*data_type)),
            OpError::Missing { data_type, .. } | OpError::Unexpected { data_type, .. } => err
                .with("type", data_type.name())
                .with("usage", crate::ops::usage(*data_type)),
            _ => err,
        }
    }
}

fn parse_type(name: &str) -> Result<DataType, ApiError> {
    name.parse::<DataType>().map_err(|e| {
        ApiError::new(StatusCode::BAD_REQUEST, e.to_string())
            .with("type", name)
            .with("supported", DataType::names())
    })
}

fn query(q: Result<Query<ConsistencyQuery>, QueryRejection>) -> Result<ConsistencyQuery, ApiError> {
    match q {
        Ok(Query(q)) => Ok(q),
        Err(e) => Err(ApiError::new(
            StatusCode::BAD_REQUEST,
            format!(
                "bad query: {}; parameters are consistency and timeout_ms",
                e.body_text()
            ),
        )),
    }
}

/// The largest request body accepted, in bytes (a larger one is refused with 413).
pub const MAX_BODY_BYTES: usize = 2 * 1024 * 1024;

/// The `{type}` and `{key}` of the path, or a JSON error naming what is wrong with them (e.g. a
/// percent-encoded key that is not UTF-8).
fn key_path(
    path: Result<Path<(String, String)>, PathRejection>,
) -> Result<(String, String), ApiError> {
    path.map(|Path(p)| p).map_err(|e| {
        ApiError::new(
            e.status(),
            format!(
                "bad path: {}; /keys/{{type}}/{{key}} takes a type name and a key of \
                 percent-encoded UTF-8",
                e.body_text()
            ),
        )
    })
}

/// The request body, or a JSON error (413 when it is larger than [`MAX_BODY_BYTES`]).
fn request_body(body: Result<Bytes, BytesRejection>) -> Result<Bytes, ApiError> {
    body.map_err(|e| {
        let status = e.status();
        let message = if status == StatusCode::PAYLOAD_TOO_LARGE {
            format!(
                "request body too large: the limit is {MAX_BODY_BYTES} bytes ({})",
                e.body_text()
            )
        } else {
            format!("cannot read the request body: {}", e.body_text())
        };
        ApiError::new(status, message)
    })
}

fn bad_consistency(e: crate::consistency::ConsistencyError) -> ApiError {
    ApiError::new(StatusCode::BAD_REQUEST, e.to_string())
}

/// What `/health` reports once the replica serves.
#[derive(Debug)]
struct Ready {
    replicator: Replicator,
    cluster: NodeCluster,
    members: watch::Receiver<Members>,
}

/// The shared state of the handlers.
#[derive(Debug, Clone)]
pub struct AppState {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    replica: String,
    store: String,
    write_mode: String,
    ready: OnceLock<Ready>,
    metrics: Arc<Metrics>,
    shutdown: CancellationToken,
}

impl AppState {
    /// State of a node that is starting (every key request answers 503 until
    /// [`set_ready`](Self::set_ready)).
    pub fn new(
        replica: impl Into<String>,
        store: impl Into<String>,
        write_mode: impl Into<String>,
        metrics: Arc<Metrics>,
        shutdown: CancellationToken,
    ) -> Self {
        Self {
            inner: Arc::new(Inner {
                replica: replica.into(),
                store: store.into(),
                write_mode: write_mode.into(),
                ready: OnceLock::new(),
                metrics,
                shutdown,
            }),
        }
    }

    /// The replica serves: requests go to `replicator` from now on, and `/members` shows (and
    /// `DELETE /members/{name}` changes) `cluster`.
    pub fn set_ready(&self, replicator: Replicator, cluster: impl Into<NodeCluster>) {
        let cluster = cluster.into();
        let members = cluster.members();
        // Set once at start; a second call would be a bug in the caller and is ignored.
        let _ = self.inner.ready.set(Ready {
            replicator,
            cluster,
            members,
        });
    }

    fn cluster(&self) -> Result<&NodeCluster, ApiError> {
        self.replicator()?;
        self.inner
            .ready
            .get()
            .map(|r| &r.cluster)
            .ok_or_else(|| ApiError::new(StatusCode::SERVICE_UNAVAILABLE, "starting"))
    }

    fn replicator(&self) -> Result<&Replicator, ApiError> {
        self.inner
            .ready
            .get()
            .map(|r| &r.replicator)
            .ok_or_else(|| {
                ApiError::new(
                    StatusCode::SERVICE_UNAVAILABLE,
                    format!(
                        "replica '{}' is starting: loading durable state from {}",
                        self.inner.replica, self.inner.store
                    ),
                )
            })
    }

    fn count_error(&self, e: &ApiError) {
        self.inner
            .metrics
            .errors
            .get_or_create(&StatusLabel {
                status: e.status.as_u16(),
            })
            .inc();
    }

    fn observe<T>(&self, result: Result<T, ApiError>) -> Result<T, ApiError> {
        if let Err(e) = &result {
            self.count_error(e);
        }
        result
    }
}

/// The OpenAPI document of the whole API, from the handlers' `#[utoipa::path]` attributes and
/// the body shapes of [`crate::openapi`].
#[derive(utoipa::OpenApi)]
#[openapi(
    info(
        title = "dd-node",
        description = "A durable-dd replica: typed CRDT keys over HTTP/JSON. Every error is JSON \
            `{\"error\": \"...\", ...details}`."
    ),
    paths(
        health,
        live,
        metrics,
        openapi_json,
        dashboard,
        list_keys,
        list_values,
        list_members,
        remove_member,
        read_key,
        update_key,
        delete_key,
        subscribe_key
    )
)]
pub struct ApiDoc;

/// The OpenAPI document of the API, as served at `/openapi.json`.
pub fn openapi() -> utoipa::openapi::OpenApi {
    <ApiDoc as utoipa::OpenApi>::openapi()
}

#[utoipa::path(get, path = "/openapi.json", tag = "node",
    description = "This document",
    responses(
        (status = 200, description = "The OpenAPI document", body = Object),
        (status = "4XX", description = "Bad request", body = ErrorBody),
    ))]
async fn openapi_json() -> Json<utoipa::openapi::OpenApi> {
    Json(openapi())
}

/// The dashboard: one static page (HTML, CSS and JavaScript, no external resources) that reads
/// `/health` and `/values` and follows keys over their `/subscribe` event streams.
const DASHBOARD_HTML: &str = include_str!("dashboard.html");

#[utoipa::path(get, path = "/", tag = "node",
    description = "The live dashboard of this replica (HTML)",
    responses(
        (status = 200, description = "The page", body = String, content_type = "text/html"),
        (status = "4XX", description = "Bad request", body = ErrorBody),
    ))]
async fn dashboard() -> Response {
    (
        [(header::CONTENT_TYPE, "text/html; charset=utf-8")],
        DASHBOARD_HTML,
    )
        .into_response()
}

/// The most keys `/values` answers.
pub const MAX_VALUES: usize = 500;

#[utoipa::path(get, path = "/values", tag = "keys",
    description = "Every key with a value, with its type and local value (the first 500 keys in \
        order; `truncated` says there are more). A key in a type conflict lists its `conflict` \
        types and the kept value",
    responses(
        (status = 200, description = "The keys and values", body = ValuesBody),
        (status = "4XX", description = "Bad request, unknown key or endpoint, wrong type, deleted key, failed operation", body = ErrorBody),
        (status = "5XX", description = "Starting, store failure, shutting down, pruned incarnation, not enough replicas in time", body = ErrorBody),
    ))]
async fn list_values(State(state): State<AppState>) -> Result<Json<Value>, ApiError> {
    let result = async {
        let replicator = state.replicator()?;
        let keys = replicator.keys().await?;
        let truncated = keys.len() > MAX_VALUES;
        let mut values = Vec::new();
        for key in keys.into_iter().take(MAX_VALUES) {
            for data_type in DataType::ALL {
                match apply::read(replicator, data_type, &key, ReadConsistency::Local).await {
                    Ok(value) => {
                        let mut entry =
                            json!({"key": key, "type": data_type.name(), "value": value});
                        if let Some(types) = replicator.type_conflict(&key) {
                            entry["conflict"] =
                                json!(types.iter().map(|t| api_type_name(t)).collect::<Vec<_>>());
                        }
                        values.push(entry);
                        break;
                    }
                    // Another type, or gone since the listing.
                    Err(ReplicatorError::WrongType { .. } | ReplicatorError::NotFound { .. }) => {}
                    Err(ReplicatorError::Deleted { .. }) => break,
                    Err(e) => return Err(ApiError::from(e)),
                }
            }
        }
        Ok(Json(json!({ "values": values, "truncated": truncated })))
    }
    .await;
    state.observe(result)
}

#[utoipa::path(get, path = "/members", tag = "node",
    description = "This replica's view of the cluster: each member with its cluster address, the \
        incarnation heard from, its state (`self`; `up`: heard from; `joining`: not yet; \
        `unreachable`: the gossip failure detector no longer hears from it) and how long ago it \
        was last heard from; the incarnations removed from the cluster (their entries are \
        pruned)",
    responses(
        (status = 200, description = "The members", body = MembersBody),
        (status = "4XX", description = "Bad request, unknown key or endpoint, wrong type, deleted key, failed operation", body = ErrorBody),
        (status = "5XX", description = "Starting, store failure, shutting down, pruned incarnation, not enough replicas in time", body = ErrorBody),
    ))]
async fn list_members(State(state): State<AppState>) -> Result<Json<Value>, ApiError> {
    let result = async {
        let status = state.replicator()?.status().await?;
        let gossip = state.cluster()?.gossip_members().await;
        let members: Vec<Value> = status
            .members
            .iter()
            .map(|(name, address)| {
                let own = name == status.self_id.replica();
                let incarnation = if own {
                    Some(status.self_id.to_string())
                } else {
                    status.peer_incarnations.get(name).map(ToString::to_string)
                };
                // The latest generation gossip knows of that name.
                let node = gossip.as_ref().and_then(|g| {
                    g.iter()
                        .rfind(|m| &m.replica == name && !m.leaving && !m.removed)
                });
                let member_state = match (own, &incarnation, node) {
                    (true, _, _) => "self",
                    (false, _, Some(n)) if !n.live => "unreachable",
                    (false, Some(_), _) => "up",
                    (false, None, _) => "joining",
                };
                let last_heard = if own {
                    None
                } else {
                    status
                        .peer_last_heard
                        .get(name)
                        .copied()
                        .or_else(|| node.and_then(|n| n.last_heard))
                };
                json!({
                    "name": name.to_string(),
                    "address": address.map(|a| a.to_string()),
                    "incarnation": incarnation,
                    "state": member_state,
                    "last_heard_ms": last_heard.map(|d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX)),
                    "gossip_address": node.map(|n| n.gossip_address.to_string()),
                })
            })
            .collect();
        let removed: Vec<String> = status.removed.iter().map(ToString::to_string).collect();
        Ok(Json(json!({
            "members": members,
            "removed": removed,
            "awaiting_pruning": status.awaiting_pruning,
            "in_data": status.incarnations_in_data.iter().map(ToString::to_string).collect::<Vec<_>>(),
        })))
    }
    .await;
    state.observe(result)
}

/// The query of `DELETE /members/{name}`.
#[derive(Debug, Clone, Default, serde::Deserialize, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct RemoveQuery {
    /// Remove the member even if it is alive (it then refuses writes until it restarts).
    pub force: Option<bool>,
}

#[utoipa::path(delete, path = "/members/{name}", tag = "node",
    description = "Removes a replica that is gone for good, which starts the pruning of its \
        entries. With gossip membership (`--seed`) the removal spreads to every replica; with a \
        fixed `--peer` list it applies to this replica only. Refused (409) for this replica \
        itself (stop it instead: it leaves) and, without `force=true`, for a live member; 404 \
        for an unknown name",
    params(
        ("name" = String, Path, description = "The replica's name"),
        RemoveQuery,
    ),
    responses(
        (status = 200, description = "The incarnation removed", body = RemovedBody),
        (status = "4XX", description = "Bad request, unknown member, this replica or a live member", body = ErrorBody),
        (status = "5XX", description = "Starting or shutting down", body = ErrorBody),
    ))]
async fn remove_member(
    State(state): State<AppState>,
    path: Result<Path<String>, PathRejection>,
    q: Result<Query<RemoveQuery>, QueryRejection>,
) -> Result<Json<Value>, ApiError> {
    let result = async {
        let name = path.map(|Path(p)| p).map_err(|e| {
            ApiError::new(
                e.status(),
                format!(
                    "bad path: {}; /members/{{name}} takes a replica name",
                    e.body_text()
                ),
            )
        })?;
        let force = match q {
            Ok(Query(q)) => q.force.unwrap_or(false),
            Err(e) => {
                return Err(ApiError::new(
                    StatusCode::BAD_REQUEST,
                    format!(
                        "bad query: {}; the parameter is force=true|false",
                        e.body_text()
                    ),
                ));
            }
        };
        let status = state.replicator()?.status().await?;
        let removed = state
            .cluster()?
            .remove(&name, force, &status)
            .await
            .map_err(|e| {
                let code = match e {
                    RemoveError::Unknown(_) => StatusCode::NOT_FOUND,
                    _ => StatusCode::CONFLICT,
                };
                ApiError::new(code, e.to_string()).with("member", name.clone())
            })?;
        Ok(Json(json!({ "removed": removed })))
    }
    .await;
    state.observe(result)
}

/// The router of the API over `state`.
pub fn router(state: AppState) -> Router {
    Router::new()
        .route("/", get(dashboard))
        .route("/values", get(list_values))
        .route("/members", get(list_members))
        .route("/members/{name}", axum::routing::delete(remove_member))
        .route("/openapi.json", get(openapi_json))
        .route("/health", get(health))
        .route("/health/live", get(live))
        .route("/metrics", get(metrics))
        .route("/keys", get(list_keys))
        .route(
            "/keys/{type}/{key}",
            get(read_key).post(update_key).delete(delete_key),
        )
        .route("/keys/{type}/{key}/subscribe", get(subscribe_key))
        .fallback(not_found)
        .method_not_allowed_fallback(method_not_allowed)
        .layer(DefaultBodyLimit::max(MAX_BODY_BYTES))
        .with_state(state)
}

async fn not_found() -> ApiError {
    ApiError::new(
        StatusCode::NOT_FOUND,
        "no such endpoint: see / (dashboard), /openapi.json, /health, /members[/{name}], /metrics, \
         /keys, /values and /keys/{type}/{key}[/subscribe]",
    )
}

async fn method_not_allowed() -> ApiError {
    ApiError::new(
        StatusCode::METHOD_NOT_ALLOWED,
        "method not allowed: /keys/{type}/{key} takes GET, POST and DELETE; the others GET",
    )
}

#[utoipa::path(get, path = "/health", tag = "node",
    description = "Readiness: 200 once serving, 503 while starting or while the durable store fails",
    responses(
        (status = 200, description = "Serving", body = HealthBody),
        (status = 503, description = "Starting or degraded", body = HealthBody),
        (status = "4XX", description = "Bad request, unknown key or endpoint, wrong type, deleted key, failed operation", body = ErrorBody),
    ))]
async fn health(State(state): State<AppState>) -> Response {
    let inner = &state.inner;
    match inner.ready.get() {
        None => (
            StatusCode::SERVICE_UNAVAILABLE,
            Json(json!({
                "status": "starting",
                "replica": inner.replica,
                "store": inner.store,
            })),
        )
            .into_response(),
        Some(ready) => {
            let members: BTreeMap<String, Option<String>> = ready
                .members
                .borrow()
                .iter()
                .map(|(r, a)| (r.to_string(), a.map(|a: SocketAddr| a.to_string())))
                .collect();
            // Read from the store directly: a status call would walk every key in the replica
            // task on each probe.
            let store_health = inner.metrics.durable_health();
            let healthy = store_health.as_ref().is_none_or(|h| h.healthy);
            let status = if healthy {
                StatusCode::OK
            } else {
                StatusCode::SERVICE_UNAVAILABLE
            };
            let body = json!({
                "status": if healthy { "ok" } else { "degraded" },
                "replica": inner.replica,
                "incarnation": ready.replicator.self_id().to_string(),
                "members": members,
                "store": inner.store,
                "write_mode": inner.write_mode,
                "store_health": store_health.map(|h| json!({
                    "healthy": h.healthy,
                    "pending": h.pending,
                    "consecutive_failures": h.consecutive_failures,
                    "unhealthy_for_ms": h.unhealthy_for.map(|d| d.as_millis() as u64),
                    "last_error": h.last_error,
                })),
            });
            (status, Json(body)).into_response()
        }
    }
}

/// Liveness: the process answers. A node whose store fails is degraded, not dead: restarting it
/// would drop the writes it keeps pending in memory.
#[utoipa::path(get, path = "/health/live", tag = "node",
    description = "Liveness: 200 whenever the process answers",
    responses(
        (status = 200, description = "Alive", body = LiveBody),
        (status = "4XX", description = "Bad request, unknown key or endpoint, wrong type, deleted key, failed operation", body = ErrorBody),
    ))]
async fn live(State(state): State<AppState>) -> Json<Value> {
    Json(json!({ "status": "alive", "replica": state.inner.replica }))
}

#[utoipa::path(get, path = "/metrics", tag = "node",
    description = "Prometheus text format",
    responses(
        (status = 200, description = "The metrics", body = String, content_type = "text/plain"),
        (status = "4XX", description = "Bad request, unknown key or endpoint, wrong type, deleted key, failed operation", body = ErrorBody),
        (status = "5XX", description = "Starting, store failure, shutting down, pruned incarnation, not enough replicas in time", body = ErrorBody),
    ))]
async fn metrics(State(state): State<AppState>) -> Response {
    if let Some(ready) = state.inner.ready.get() {
        let conflicts = ready.replicator.type_conflicts().len();
        state
            .inner
            .metrics
            .type_conflicts
            .set(i64::try_from(conflicts).unwrap_or(i64::MAX));
    }
    match state.inner.metrics.encode() {
        Ok(text) => (
            [(
                header::CONTENT_TYPE,
                "text/plain; version=0.0.4; charset=utf-8",
            )],
            text,
        )
            .into_response(),
        Err(e) => ApiError::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            format!("encoding metrics: {e}"),
        )
        .into_response(),
    }
}

#[utoipa::path(get, path = "/keys", tag = "keys",
    description = "The ids of every key with a value",
    responses(
        (status = 200, description = "The keys", body = KeysBody),
        (status = "4XX", description = "Bad request, unknown key or endpoint, wrong type, deleted key, failed operation", body = ErrorBody),
        (status = "5XX", description = "Starting, store failure, shutting down, pruned incarnation, not enough replicas in time", body = ErrorBody),
    ))]
async fn list_keys(State(state): State<AppState>) -> Result<Json<Value>, ApiError> {
    let result = async {
        let keys = state.replicator()?.keys().await?;
        Ok(Json(json!({ "keys": keys })))
    }
    .await;
    state.observe(result)
}

/// The answer to a read of a key that replicas created with different types (see
/// [`dd_core::replicator::TypeConflicts`]): 409 naming every type and the one kept (the caller
/// adds the kept value).
fn type_conflict(key: &str, types: &std::collections::BTreeSet<String>) -> ApiError {
    let names: Vec<String> = types.iter().map(|t| api_type_name(t)).collect();
    let kept = names.first().cloned().unwrap_or_default();
    ApiError::new(
        StatusCode::CONFLICT,
        format!(
            "type conflict: key '{key}' was created as {} on different replicas; every replica \
             keeps the {kept} value (the type whose dd-core name sorts first) and dropped the \
             others",
            names.join(" and as ")
        ),
    )
    .with("key", key)
    .with("types", names)
    .with("kept", kept)
}

fn value_body(data_type: DataType, key: &str, value: Value) -> Json<Value> {
    Json(json!({ "key": key, "type": data_type.name(), "value": value }))
}

#[utoipa::path(get, path = "/keys/{type}/{key}", tag = "keys",
    description = "Reads a key. 409 when the key holds another type, or when replicas created it \
        with different types (`types`, `kept`, and the kept `value`)",
    params(
        KeyPath,
        ConsistencyQuery,
    ),
    responses(
        (status = 200, description = "The value", body = ValueBody),
        (status = "4XX", description = "Bad request, unknown key or endpoint, wrong type, deleted key, failed operation", body = ErrorBody),
        (status = "5XX", description = "Starting, store failure, shutting down, pruned incarnation, not enough replicas in time", body = ErrorBody),
    ))]
async fn read_key(
    State(state): State<AppState>,
    path: Result<Path<(String, String)>, PathRejection>,
    q: Result<Query<ConsistencyQuery>, QueryRejection>,
) -> Result<Json<Value>, ApiError> {
    let result = async {
        let (type_name, key) = key_path(path)?;
        let data_type = parse_type(&type_name)?;
        let consistency = query(q)?.read().map_err(bad_consistency)?;
        let replicator = state.replicator()?;
        if let Some(types) = replicator.type_conflict(&key) {
            let mut err = type_conflict(&key, &types);
            // The kept value, so that the key stays readable while its conflict is listed.
            if let Some(kept) = types.first().and_then(|t| DataType::from_crdt_type_name(t))
                && let Ok(value) = apply::read(replicator, kept, &key, consistency).await
            {
                err = err.with("value", value);
            }
            return Err(err);
        }
        let value = apply::read(replicator, data_type, &key, consistency).await?;
        state
            .inner
            .metrics
            .reads
            .get_or_create(&crate::metrics::TypeLabel {
                data_type: data_type.name().to_owned(),
            })
            .inc();
        Ok(value_body(data_type, &key, value))
    }
    .await;
    state.observe(result)
}

#[utoipa::path(post, path = "/keys/{type}/{key}", tag = "keys",
    description = "Applies one operation or a list of them (atomically, in order)",
    params(
        KeyPath,
        ConsistencyQuery,
    ),
    request_body(content = UpdateBody, content_type = "application/json"),
    responses(
        (status = 200, description = "The new value", body = ValueBody),
        (status = "4XX", description = "Bad request, unknown key or endpoint, wrong type, deleted key, failed operation", body = ErrorBody),
        (status = "5XX", description = "Starting, store failure, shutting down, pruned incarnation, not enough replicas in time", body = ErrorBody),
    ))]
async fn update_key(
    State(state): State<AppState>,
    path: Result<Path<(String, String)>, PathRejection>,
    q: Result<Query<ConsistencyQuery>, QueryRejection>,
    body: Result<Bytes, BytesRejection>,
) -> Result<Json<Value>, ApiError> {
    let result = async {
        let (type_name, key) = key_path(path)?;
        let data_type = parse_type(&type_name)?;
        let consistency = query(q)?.write().map_err(bad_consistency)?;
        let ops = parse_body(data_type, &request_body(body)?)?;
        let count = ops.len();
        let started = Instant::now();
        let value = apply::update(state.replicator()?, data_type, &key, ops, consistency).await?;
        state
            .inner
            .metrics
            .record_update(data_type.name(), count, started.elapsed());
        Ok(value_body(data_type, &key, value))
    }
    .await;
    state.observe(result)
}

#[utoipa::path(delete, path = "/keys/{type}/{key}", tag = "keys",
    description = "Deletes a key for good (the tombstone wins everywhere)",
    params(
        KeyPath,
        ConsistencyQuery,
    ),
    responses(
        (status = 200, description = "Deleted", body = DeletedBody),
        (status = "4XX", description = "Bad request, unknown key or endpoint, wrong type, deleted key, failed operation", body = ErrorBody),
        (status = "5XX", description = "Starting, store failure, shutting down, pruned incarnation, not enough replicas in time", body = ErrorBody),
    ))]
async fn delete_key(
    State(state): State<AppState>,
    path: Result<Path<(String, String)>, PathRejection>,
    q: Result<Query<ConsistencyQuery>, QueryRejection>,
) -> Result<Json<Value>, ApiError> {
    let result = async {
        let (type_name, key) = key_path(path)?;
        let data_type = parse_type(&type_name)?;
        let consistency = query(q)?.write().map_err(bad_consistency)?;
        apply::delete(state.replicator()?, data_type, &key, consistency).await?;
        state
            .inner
            .metrics
            .deletes
            .get_or_create(&crate::metrics::TypeLabel {
                data_type: data_type.name().to_owned(),
            })
            .inc();
        Ok(Json(
            json!({ "key": key, "type": data_type.name(), "deleted": true }),
        ))
    }
    .await;
    state.observe(result)
}

#[utoipa::path(get, path = "/keys/{type}/{key}/subscribe", tag = "keys",
    description = "Server-sent events `event: value`, `data: <value as JSON>`: the current value \
        first (if any), then after every change",
    params(
        KeyPath,
    ),
    responses(
        (status = 200, description = "The event stream", body = String, content_type = "text/event-stream"),
        (status = "4XX", description = "Bad request, unknown key or endpoint, wrong type, deleted key, failed operation", body = ErrorBody),
        (status = "5XX", description = "Starting, store failure, shutting down, pruned incarnation, not enough replicas in time", body = ErrorBody),
    ))]
async fn subscribe_key(
    State(state): State<AppState>,
    path: Result<Path<(String, String)>, PathRejection>,
) -> Result<Response, ApiError> {
    let result = async {
        let (type_name, key) = key_path(path)?;
        let data_type = parse_type(&type_name)?;
        let values = apply::subscribe(state.replicator()?, data_type, &key).await?;
        let shutdown = state.inner.shutdown.clone().cancelled_owned();
        let events = values
            .map(|v| Ok::<Event, Infallible>(Event::default().event("value").data(v.to_string())))
            .take_until(shutdown);
        Ok(Sse::new(events)
            .keep_alive(KeepAlive::default())
            .into_response())
    }
    .await;
    state.observe(result)
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use super::*;

    #[test]
    fn replicator_errors_map_to_statuses() {
        let e = ApiError::from(ReplicatorError::WrongType {
            key: "k".into(),
            expected: "GCounter".into(),
            found: "ORSet<String>".into(),
        });
        assert_eq!(e.status, StatusCode::CONFLICT);
        assert_eq!(
            e.body(),
            json!({
                "error": "key 'k' is of type orset, not gcounter; nothing was applied",
                "key": "k", "expected": "gcounter", "found": "orset"
            })
        );
        let e = ApiError::from(ReplicatorError::NotFound { key: "k".into() });
        assert_eq!(e.status, StatusCode::NOT_FOUND);
        let e = ApiError::from(ReplicatorError::Timeout {
            key: "k".into(),
            required: 3,
            received: 1,
            applied_locally: true,
        });
        assert_eq!(e.status, StatusCode::GATEWAY_TIMEOUT);
        assert_eq!(e.details["applied_locally"], json!(true));
        let e = ApiError::from(ReplicatorError::IncarnationPruned {
            key: "k".into(),
            incarnation: "a#7".into(),
        });
        assert_eq!(e.status, StatusCode::SERVICE_UNAVAILABLE);
        assert_eq!(e.details["applied_locally"], json!(false));
        assert_eq!(e.details["incarnation"], json!("a#7"));
    }

    #[tokio::test]
    async fn health_is_503_until_ready_then_200() {
        use dd_core::cluster::StaticCluster;
        use dd_core::replicator::{DistributedData, Settings};
        use dd_core::transport::memory::{Faults, MemoryNetwork};
        use dd_core::{ReplicaId, UniqueReplicaId};

        let state = AppState::new(
            "a",
            "memory:",
            "sync",
            Arc::new(Metrics::new()),
            CancellationToken::new(),
        );
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let base = format!("http://{}", listener.local_addr().unwrap());
        let server = tokio::spawn(axum::serve(listener, router(state.clone())).into_future());
        let client = reqwest::Client::new();
        let health = client.get(format!("{base}/health")).send().await.unwrap();
        assert_eq!(health.status(), StatusCode::SERVICE_UNAVAILABLE);
        let keys = client.get(format!("{base}/keys")).send().await.unwrap();
        assert_eq!(keys.status(), StatusCode::SERVICE_UNAVAILABLE);
        let body: Value = keys.json().await.unwrap();
        assert!(
            body["error"].as_str().unwrap().contains("is starting"),
            "{body}"
        );

        let net = MemoryNetwork::new(1, Faults::default());
        let id = UniqueReplicaId::new_incarnation(ReplicaId::new("a"));
        let cluster = StaticCluster::new(id.clone(), []);
        let r = DistributedData::start(cluster.clone(), net.join(id), Settings::default())
            .await
            .unwrap();
        state.set_ready(r.clone(), cluster.clone());
        let health = client.get(format!("{base}/health")).send().await.unwrap();
        assert_eq!(health.status(), StatusCode::OK);
        let body: Value = health.json().await.unwrap();
        assert_eq!(body["members"], json!({"a": null}));
        r.shutdown().await.unwrap();
        server.abort();
    }

    #[tokio::test]
    async fn health_and_metrics_report_a_failing_store_and_its_recovery() {
        use dd_core::cluster::StaticCluster;
        use dd_core::replicator::{DistributedData, Settings};
        use dd_core::store::DurableStateStore;
        use dd_core::store::fault::{Fault, FaultInjectingStore};
        use dd_core::store::memory::MemoryStore;
        use dd_core::transport::memory::{Faults, MemoryNetwork};
        use dd_core::{ReplicaId, UniqueReplicaId};
        use dd_durable::{DurableDistributedDataStore, DurableOptions};

        let faulty = FaultInjectingStore::new(MemoryStore::new());
        let switch = faulty.switch();
        let store: Arc<dyn DurableStateStore> = Arc::new(faulty);
        let durable = Arc::new(DurableDistributedDataStore::from_arc(
            store,
            DurableOptions {
                retry_interval: std::time::Duration::from_millis(10),
                max_retry_backoff: std::time::Duration::from_millis(50),
                ..DurableOptions::default()
            },
        ));
        let metrics = Arc::new(Metrics::new());
        metrics.watch_durable(Arc::clone(&durable));
        let state = AppState::new("a", "faulty", "sync", metrics, CancellationToken::new());
        let net = MemoryNetwork::new(1, Faults::default());
        let id = UniqueReplicaId::new_incarnation(ReplicaId::new("a"));
        let cluster = StaticCluster::new(id.clone(), []);
        let settings = Settings::default().durable_store(durable);
        let r = DistributedData::start(cluster.clone(), net.join(id), settings)
            .await
            .unwrap();
        state.set_ready(r.clone(), cluster.clone());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let base = format!("http://{}", listener.local_addr().unwrap());
        let server = tokio::spawn(axum::serve(listener, router(state)).into_future());
        let client = reqwest::Client::new();
        let metric = |text: &str, name: &str| -> String {
            text.lines()
                .find(|l| l.starts_with(name))
                .unwrap_or_else(|| panic!("{name} missing in {text}"))
                .to_owned()
        };

        switch.set(Fault::Fail);
        let update = client
            .post(format!("{base}/keys/gcounter/hits"))
            .json(&json!({"op": "increment", "by": 2}))
            .send()
            .await
            .unwrap();
        assert_eq!(update.status(), StatusCode::SERVICE_UNAVAILABLE);
        let body: Value = update.json().await.unwrap();
        assert_eq!(body["applied_locally"], json!(true), "{body}");
        let read: Value = client
            .get(format!("{base}/keys/gcounter/hits"))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        assert_eq!(read["value"], json!(2), "served from memory: {read}");
        let health = client.get(format!("{base}/health")).send().await.unwrap();
        assert_eq!(health.status(), StatusCode::SERVICE_UNAVAILABLE);
        let body: Value = health.json().await.unwrap();
        assert_eq!(body["status"], json!("degraded"), "{body}");
        assert_eq!(body["store_health"]["healthy"], json!(false), "{body}");
        assert_eq!(body["store_health"]["pending"], json!(1), "{body}");
        let last_error = body["store_health"]["last_error"].as_str().unwrap();
        assert!(last_error.contains("injected fault"), "{last_error}");
        let live = client
            .get(format!("{base}/health/live"))
            .send()
            .await
            .unwrap();
        assert_eq!(live.status(), StatusCode::OK);
        let text = client.get(format!("{base}/metrics")).send().await.unwrap();
        let text = text.text().await.unwrap();
        assert_eq!(
            metric(&text, "dd_durable_healthy "),
            "dd_durable_healthy 0.0"
        );
        assert_eq!(
            metric(&text, "dd_durable_pending_entries "),
            "dd_durable_pending_entries 1.0"
        );

        switch.clear();
        let mut healthy = false;
        for _ in 0..600 {
            let health = client.get(format!("{base}/health")).send().await.unwrap();
            if health.status() == StatusCode::OK {
                healthy = true;
                break;
            }
            tokio::time::sleep(std::time::Duration::from_millis(50)).await;
        }
        assert!(healthy, "the store recovered but /health did not say so");
        let text = client.get(format!("{base}/metrics")).send().await.unwrap();
        let text = text.text().await.unwrap();
        assert_eq!(
            metric(&text, "dd_durable_healthy "),
            "dd_durable_healthy 1.0"
        );
        r.shutdown().await.unwrap();
        server.abort();
    }

    #[test]
    fn openapi_document_covers_every_route_and_type() {
        let doc = serde_json::to_value(openapi()).unwrap();
        let paths: Vec<&str> = doc["paths"]
            .as_object()
            .unwrap()
            .keys()
            .map(String::as_str)
            .collect();
        assert_eq!(
            paths,
            [
                "/",
                "/health",
                "/health/live",
                "/keys",
                "/keys/{type}/{key}",
                "/keys/{type}/{key}/subscribe",
                "/members",
                "/members/{name}",
                "/metrics",
                "/openapi.json",
                "/values"
            ]
        );
        let methods: Vec<&str> = doc["paths"]["/keys/{type}/{key}"]
            .as_object()
            .unwrap()
            .keys()
            .map(String::as_str)
            .collect();
        assert_eq!(methods, ["delete", "get", "post"]);
        // The key endpoints share their parameters' descriptions (`KeyPath`, `ConsistencyQuery`).
        for (path, method, expected) in [
            ("/keys/{type}/{key}", "get", 4),
            ("/keys/{type}/{key}", "post", 4),
            ("/keys/{type}/{key}", "delete", 4),
            ("/keys/{type}/{key}/subscribe", "get", 2),
        ] {
            let params: Vec<(&str, &str)> = doc["paths"][path][method]["parameters"]
                .as_array()
                .unwrap()
                .iter()
                .inspect(|p| assert!(p["description"].as_str().is_some_and(|d| !d.is_empty())))
                .map(|p| (p["name"].as_str().unwrap(), p["in"].as_str().unwrap()))
                .collect();
            let all = [
                ("type", "path"),
                ("key", "path"),
                ("consistency", "query"),
                ("timeout_ms", "query"),
            ];
            assert_eq!(params, all[..expected], "{method} {path}");
        }
        assert_eq!(
            doc["components"]["schemas"]["TypeName"]["enum"],
            json!(DataType::names())
        );
    }

    #[test]
    fn unknown_type_lists_the_supported_ones() {
        let e = parse_type("counter").unwrap_err();
        assert_eq!(e.status, StatusCode::BAD_REQUEST);
        assert_eq!(e.details["supported"][0], json!("gcounter"));
    }
}
