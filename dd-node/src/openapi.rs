//! The shapes of the HTTP API's bodies, for its OpenAPI document (`GET /openapi.json`, built by
//! `utoipa` from these types and the `#[utoipa::path]` attributes of the handlers in
//! [`crate::api`]). The handlers build their bodies with `serde_json`; the black-box tests and
//! `scripts/schemathesis.sh` check that what they answer matches these shapes.

use std::collections::BTreeMap;

use serde::Serialize;
use serde_json::Value;
use utoipa::ToSchema;

/// Every error: what was wrong, for a person, and further fields depending on the error (e.g.
/// `key`, `expected`, `found`, `supported`, `usage`, `applied_locally`).
#[derive(Debug, Serialize, ToSchema)]
pub struct ErrorBody {
    /// What was wrong.
    pub error: String,
}

/// A key type of the API (the `{type}` of the paths).
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum TypeName {
    /// `GCounter`
    GCounter,
    /// `PNCounter`
    PNCounter,
    /// `GSet<String>`
    GSet,
    /// `ORSet<String>`
    ORSet,
    /// `Flag`
    Flag,
    /// `LWWRegister<String>`
    LWWRegister,
    /// `MVRegister<String>`
    MVRegister,
    /// `LWWMap<String, String>`
    LWWMap,
    /// `PNCounterMap<String>`
    PNCounterMap,
    /// `ORMultiMap<String, String>`
    ORMultiMap,
}

/// The path parameters of `/keys/{type}/{key}` and `/keys/{type}/{key}/subscribe`.
#[derive(Debug, utoipa::IntoParams)]
#[into_params(parameter_in = Path)]
pub struct KeyPath {
    /// The key's type
    #[param(rename = "type")]
    pub data_type: TypeName,
    /// The key id (one percent-encoded UTF-8 segment)
    pub key: String,
}

/// A key's value (a read, or the new value after an update).
#[derive(Debug, Serialize, ToSchema)]
pub struct ValueBody {
    /// The key id.
    pub key: String,
    /// The key's type.
    #[serde(rename = "type")]
    pub data_type: TypeName,
    /// The value: a number, boolean, string, array or object depending on the type (counters
    /// beyond 64 bits are decimal strings).
    pub value: Value,
}

/// A deleted key.
#[derive(Debug, Serialize, ToSchema)]
pub struct DeletedBody {
    /// The key id.
    pub key: String,
    /// The key's type.
    #[serde(rename = "type")]
    pub data_type: TypeName,
    /// Always true.
    pub deleted: bool,
}

/// The keys with a value.
#[derive(Debug, Serialize, ToSchema)]
pub struct KeysBody {
    /// Key ids.
    pub keys: Vec<String>,
}

/// One operation on a key; which fields it takes depends on the type and `op` (see the README's
/// table of operations).
#[derive(Debug, Serialize, ToSchema)]
pub struct Operation {
    /// The operation, e.g. `increment`, `add`, `put`.
    pub op: String,
    /// How much to increment or decrement (default 1), 0 to 18446744073709551615.
    #[schema(minimum = 0)]
    pub by: Option<u64>,
    /// The element of a set operation.
    pub element: Option<String>,
    /// The map key of a map operation.
    pub key: Option<String>,
    /// The value of a register or map operation.
    pub value: Option<String>,
    /// The values of an `ormultimap` `put`.
    pub values: Option<Vec<String>>,
}

/// The body of an update: one operation or a list applied atomically in order.
#[derive(Debug, Serialize, ToSchema)]
#[serde(untagged)]
#[schema(example = json!({"op": "increment", "by": 2}))]
pub enum UpdateBody {
    /// One operation.
    One(Operation),
    /// Operations applied as one update.
    Many(Vec<Operation>),
}

/// The durable store's health.
#[derive(Debug, Serialize, ToSchema)]
pub struct StoreHealthBody {
    /// Whether the store keeps up with the writes.
    pub healthy: bool,
    /// Writes waiting for the store.
    pub pending: u64,
    /// Failed attempts in a row.
    pub consecutive_failures: u64,
    /// How long the store has been unhealthy.
    pub unhealthy_for_ms: Option<u64>,
    /// The last store error.
    pub last_error: Option<String>,
}

/// Readiness: `ok`, `starting` (durable state loading) or `degraded` (the store fails).
#[derive(Debug, Serialize, ToSchema)]
pub struct HealthBody {
    /// `ok`, `starting` or `degraded`.
    pub status: String,
    /// This replica's name.
    pub replica: String,
    /// The durable store's URL.
    pub store: String,
    /// This replica's incarnation (once started).
    pub incarnation: Option<String>,
    /// The members by name, with their cluster address where known (once started).
    pub members: Option<BTreeMap<String, Option<String>>>,
    /// `sync` or `write-behind=MS` (once started).
    pub write_mode: Option<String>,
    /// The store's health (once started, when the store reports it).
    pub store_health: Option<StoreHealthBody>,
}

/// Liveness.
#[derive(Debug, Serialize, ToSchema)]
pub struct LiveBody {
    /// Always `alive`.
    pub status: String,
    /// This replica's name.
    pub replica: String,
}

/// One key of `/values`.
#[derive(Debug, Serialize, ToSchema)]
pub struct KeyValue {
    /// The key id.
    pub key: String,
    /// The key's type (the kept one for a key in a type conflict).
    #[serde(rename = "type")]
    pub data_type: TypeName,
    /// The local value.
    pub value: Value,
    /// For a key in a type conflict: every type it was created with.
    pub conflict: Option<Vec<TypeName>>,
}

/// Every key with its type and value.
#[derive(Debug, Serialize, ToSchema)]
pub struct ValuesBody {
    /// The keys, in order.
    pub values: Vec<KeyValue>,
    /// Whether there are more keys than listed.
    pub truncated: bool,
}

/// One member of `/members`.
#[derive(Debug, Serialize, ToSchema)]
pub struct MemberBody {
    /// The replica's name.
    pub name: String,
    /// Its cluster (TCP) address, where known.
    pub address: Option<String>,
    /// The incarnation heard from (`name#hex`), if any yet.
    pub incarnation: Option<String>,
    /// `self`, `up` (heard from), `joining` (not heard from yet) or `unreachable` (the gossip
    /// failure detector no longer hears from it).
    pub state: String,
    /// How long ago it was last heard from, in milliseconds (`null` for this replica and for
    /// a member not heard from yet).
    pub last_heard_ms: Option<u64>,
    /// Its membership gossip (UDP) address (`null` with a fixed `--peer` list).
    pub gossip_address: Option<String>,
}

/// The answer of `DELETE /members/{name}`.
#[derive(Debug, Serialize, ToSchema)]
pub struct RemovedBody {
    /// The incarnation removed (`name#hex`), or the name of a member never heard from.
    pub removed: String,
}

/// This replica's view of the cluster.
#[derive(Debug, Serialize, ToSchema)]
pub struct MembersBody {
    /// The members, by name.
    pub members: Vec<MemberBody>,
    /// Incarnations removed from the cluster (left or restarted); their entries are pruned.
    pub removed: Vec<String>,
    /// Keys whose value still holds entries of a removed incarnation (0 once pruning is
    /// complete on this replica).
    pub awaiting_pruning: u64,
    /// Every incarnation with entries in some value of this replica (a removed one is gone
    /// from here once its pruning is complete).
    pub in_data: Vec<String>,
}
