//! The seed corpus: valid encodings of every kind of input each target decodes, built with the
//! encoders of the crates under test so that the seeds follow format changes.
//!
//! The committed copy lives in `fuzz/seeds/<target>/<seed name>`; the `seeds` test of this crate
//! checks it equals what these functions generate, and rewrites it when `DD_FUZZ_WRITE_SEEDS=1`.
//! Every seed is deterministic (fixed replica ids, timestamps and nonces).

use std::collections::BTreeSet;

use dd_core::crdt::{
    Element, Flag, GCounter, GSet, LWWMap, LWWRegister, MVRegister, ORMap, ORMultiMap, ORSet,
    PNCounter, PNCounterMap, VersionVector,
};
use dd_core::data::{ErasedData, builtin_type_names};
use dd_core::transport::tcp::{Handshake, PROTOCOL_VERSION};
use dd_core::transport::{Message, WireDelta, WireEntry, WirePruning, WireState};
use dd_core::{ReplicaId, ReplicatedData, TypeName, UniqueReplicaId};
use dd_durable::record::{self, Record};

use crate::crdt;

/// One seed input.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Seed {
    /// Its file name under `fuzz/seeds/<target>/`: ASCII letters, digits, `-` and `_`.
    pub name: String,
    /// The input.
    pub bytes: Vec<u8>,
}

/// Why the seeds could not be generated.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum SeedError {
    /// An encoder of the crate under test failed.
    #[error("cannot encode seed '{seed}': {reason}")]
    Encode {
        /// The seed being built.
        seed: String,
        /// The encoder's error.
        reason: String,
    },
    /// A built-in CRDT type has no sample value here.
    #[error("built-in CRDT type '{0}' has no sample value; add one to dd_fuzz_checks::seeds")]
    MissingType(String),
    /// A sample value is not of a built-in type.
    #[error("sample value of type '{0}' is not a built-in CRDT type")]
    NotBuiltin(String),
}

fn encode_error(seed: &str, reason: impl ToString) -> SeedError {
    SeedError::Encode {
        seed: seed.to_owned(),
        reason: reason.to_string(),
    }
}

/// A file-name-safe form of a CRDT type name: `ORMap<String, ORSet<u64>>` becomes
/// `ORMap_String_ORSet_u64`.
pub fn file_name_of(type_name: &str) -> String {
    let mut out = String::with_capacity(type_name.len());
    for c in type_name.chars() {
        if c.is_ascii_alphanumeric() {
            out.push(c);
        } else if !out.is_empty() && !out.ends_with('_') {
            out.push('_');
        }
    }
    while out.ends_with('_') {
        out.pop();
    }
    out
}

fn node_a() -> UniqueReplicaId {
    UniqueReplicaId::new("replica-a", 1)
}

fn node_b() -> UniqueReplicaId {
    UniqueReplicaId::new("replica-b", 7)
}

/// Two distinct sample elements of each element type of the built-in CRDTs.
trait SampleElement: Element {
    fn samples() -> (Self, Self);
}

impl SampleElement for String {
    fn samples() -> (Self, Self) {
        ("milk".to_owned(), "eggs".to_owned())
    }
}

impl SampleElement for u64 {
    fn samples() -> (Self, Self) {
        (7, 1 << 40)
    }
}

impl SampleElement for i64 {
    fn samples() -> (Self, Self) {
        (-3, 1 << 33)
    }
}

impl SampleElement for Vec<u8> {
    fn samples() -> (Self, Self) {
        (vec![1, 2, 3], Vec::new())
    }
}

/// A clock that ticks once per write, so the seeds do not depend on the wall clock.
fn tick<T>(current: i64, _value: &T) -> i64 {
    current.saturating_add(1)
}

/// A sample value of every built-in type over element type `T`, each with its delta.
fn samples_over<T: SampleElement>() -> Vec<Box<dyn ErasedData>> {
    let (x, y) = T::samples();
    let (a, b) = (node_a(), node_b());
    let k = || "k".to_owned();
    let j = || "j".to_owned();

    let gset: GSet<T> = [x.clone(), y.clone()].into_iter().collect();

    let mut orset = ORSet::new();
    orset.add(&a, x.clone());
    orset.add(&b, y.clone());
    orset.remove(&a, &y);
    orset.add(&a, y.clone());

    let register = LWWRegister::with_timestamp(&a, x.clone(), 42);

    let mut mv = MVRegister::new();
    mv.set(&a, x.clone());
    let mut concurrent = MVRegister::new();
    concurrent.set(&b, y.clone());
    mv.merge(&concurrent);

    let mut lww_map = LWWMap::new();
    lww_map.put(&a, k(), x.clone(), &tick::<T>);
    lww_map.put(&b, j(), y.clone(), &tick::<T>);
    lww_map.remove(&a, &j());

    let mut multi = ORMultiMap::new();
    multi.add_binding(&a, k(), x.clone());
    multi.add_binding(&b, k(), y.clone());
    multi.add_binding(&a, j(), x.clone());
    multi.remove_binding(&a, &j(), &x);

    let mut of_orsets: ORMap<String, ORSet<T>> = ORMap::new();
    of_orsets.update(&a, k(), ORSet::new(), |s| s.add(&a, x.clone()));
    of_orsets.update(&b, j(), ORSet::new(), |s| s.add(&b, y.clone()));

    let mut of_gsets: ORMap<String, GSet<T>> = ORMap::new();
    of_gsets.update(&a, k(), GSet::new(), |s| s.add(x.clone()));

    let mut of_registers: ORMap<String, LWWRegister<T>> = ORMap::new();
    of_registers.put(&a, k(), LWWRegister::with_timestamp(&a, y.clone(), 9));

    let mut of_mv: ORMap<String, MVRegister<T>> = ORMap::new();
    of_mv.update(&b, k(), MVRegister::new(), |r| r.set(&b, x.clone()));

    vec![
        Box::new(gset),
        Box::new(orset),
        Box::new(register),
        Box::new(mv),
        Box::new(lww_map),
        Box::new(multi),
        Box::new(of_orsets),
        Box::new(of_gsets),
        Box::new(of_registers),
        Box::new(of_mv),
    ]
}

/// A sample value of every built-in CRDT type, each with its accumulated delta.
pub(crate) fn sample_values() -> Result<Vec<Box<dyn ErasedData>>, SeedError> {
    let (a, b) = (node_a(), node_b());
    let counter_error = |e: dd_core::crdt::CrdtError| encode_error("counter sample", e);

    let mut gcounter = GCounter::new();
    gcounter.increment(&a, 3).map_err(counter_error)?;
    gcounter.increment(&b, 5).map_err(counter_error)?;

    let mut pncounter = PNCounter::new();
    pncounter.increment(&a, 7).map_err(counter_error)?;
    pncounter.decrement(&b, 2).map_err(counter_error)?;

    let mut version_vector = VersionVector::new();
    version_vector.increment(&a);
    version_vector.increment(&a);
    version_vector.increment(&b);

    let mut flag = Flag::new();
    flag.switch_on();

    let mut of_gcounters: ORMap<String, GCounter> = ORMap::new();
    of_gcounters
        .try_update(&a, "k".to_owned(), GCounter::new(), |c| c.increment(&a, 4))
        .map_err(counter_error)?;
    let mut of_pncounters: ORMap<String, PNCounter> = ORMap::new();
    of_pncounters
        .try_update(&b, "k".to_owned(), PNCounter::new(), |c| c.change(&b, -4))
        .map_err(counter_error)?;
    let mut of_flags: ORMap<String, Flag> = ORMap::new();
    of_flags.update(&a, "k".to_owned(), Flag::new(), Flag::switch_on);

    let mut pncounter_map = PNCounterMap::new();
    pncounter_map
        .increment(&a, "k".to_owned(), 3)
        .map_err(counter_error)?;
    pncounter_map
        .decrement(&b, "j".to_owned(), 1)
        .map_err(counter_error)?;

    let mut values: Vec<Box<dyn ErasedData>> = vec![
        Box::new(gcounter),
        Box::new(pncounter),
        Box::new(flag),
        Box::new(version_vector),
        Box::new(of_gcounters),
        Box::new(of_pncounters),
        Box::new(of_flags),
        Box::new(pncounter_map),
    ];
    values.extend(samples_over::<String>());
    values.extend(samples_over::<u64>());
    values.extend(samples_over::<i64>());
    values.extend(samples_over::<Vec<u8>>());

    let have: BTreeSet<String> = values.iter().map(|v| v.data_type_name()).collect();
    if let Some(missing) = builtin_type_names().into_iter().find(|n| !have.contains(n)) {
        return Err(SeedError::MissingType(missing));
    }
    Ok(values)
}

/// The full state of a sample value.
fn state_of(value: &dyn ErasedData) -> Result<Vec<u8>, SeedError> {
    value
        .encode()
        .map_err(|e| encode_error(&value.data_type_name(), e))
}

/// The seeds of `crdt_decode`: for every built-in type, its selector byte followed by the full
/// state of a sample value (`state-<type>`) and, when the sample has one, by its delta
/// (`delta-<type>`).
pub fn crdt() -> Result<Vec<Seed>, SeedError> {
    let mut seeds = Vec::new();
    for value in sample_values()? {
        let type_name = value.data_type_name();
        let selector =
            crdt::selector(&type_name).ok_or_else(|| SeedError::NotBuiltin(type_name.clone()))?;
        let file = file_name_of(&type_name);
        let mut state = vec![selector];
        state.extend(state_of(value.as_ref())?);
        seeds.push(Seed {
            name: format!("state-{file}"),
            bytes: state,
        });
        let delta = value
            .encode_delta()
            .map_err(|e| encode_error(&type_name, e))?;
        if let Some(delta) = delta {
            let mut bytes = vec![selector];
            bytes.extend(delta);
            seeds.push(Seed {
                name: format!("delta-{file}"),
                bytes,
            });
        }
    }
    Ok(seeds)
}

/// The seeds of `record_decode`: a data record holding a few sample states, and a tombstone.
pub fn record() -> Result<Vec<Seed>, SeedError> {
    let wanted = [
        GCounter::type_name(),
        ORSet::<String>::type_name(),
        ORMap::<String, PNCounter>::type_name(),
    ];
    let mut seeds = Vec::new();
    for value in sample_values()? {
        let type_name = value.data_type_name();
        if !wanted.contains(&type_name) {
            continue;
        }
        let name = format!("data-{}", file_name_of(&type_name));
        let payload = state_of(value.as_ref())?;
        let bytes = record::encode(&Record::Data {
            type_name: &type_name,
            payload: &payload,
        })
        .map_err(|e| encode_error(&name, e))?;
        seeds.push(Seed { name, bytes });
    }
    let tombstone = record::encode(&Record::Tombstone).map_err(|e| encode_error("tombstone", e))?;
    seeds.push(Seed {
        name: "tombstone".to_owned(),
        bytes: tombstone,
    });
    Ok(seeds)
}

/// The seeds of `transport_frame`: every handshake frame and every replicator message kind,
/// carrying real CRDT states and deltas.
pub fn transport() -> Result<Vec<Seed>, SeedError> {
    let (a, b) = (node_a(), node_b());
    let values = sample_values()?;
    let pick = |type_name: String| {
        values
            .iter()
            .find(|v| v.data_type_name() == type_name)
            .ok_or(SeedError::MissingType(type_name))
    };
    let counter = pick(GCounter::type_name())?;
    let orset = pick(ORSet::<String>::type_name())?;
    let data_state = |value: &dyn ErasedData| -> Result<WireState, SeedError> {
        Ok(WireState::Data {
            type_name: value.data_type_name(),
            bytes: state_of(value)?,
        })
    };
    let counter_entry = WireEntry {
        key: "counter".to_owned(),
        state: data_state(counter.as_ref())?,
        delta_versions: vec![(a.clone(), 3), (b.clone(), 1)],
        pruning: vec![(
            UniqueReplicaId::new("replica-gone", 2),
            WirePruning::Initialized {
                owner: a.clone(),
                seen: vec![ReplicaId::new("replica-a"), ReplicaId::new("replica-b")],
            },
        )],
    };
    let set_entry = WireEntry {
        key: "set".to_owned(),
        state: data_state(orset.as_ref())?,
        delta_versions: vec![(b.clone(), 2)],
        pruning: vec![(
            UniqueReplicaId::new("replica-old", 3),
            WirePruning::Performed {
                owner: Some(b.clone()),
            },
        )],
    };
    let stream_entry = set_entry.clone();
    let deleted_entry = WireEntry {
        key: "deleted".to_owned(),
        state: WireState::Deleted,
        delta_versions: Vec::new(),
        pruning: Vec::new(),
    };
    let mut deltas = Vec::new();
    for (seq, value) in [counter, orset].into_iter().enumerate() {
        let type_name = value.data_type_name();
        let delta = value
            .encode_delta()
            .map_err(|e| encode_error("deltas", e))?
            .ok_or_else(|| encode_error("deltas", format!("sample {type_name} has no delta")))?;
        deltas.push(WireDelta {
            key: format!("key-{seq}"),
            type_name,
            seq: u64::try_from(seq).unwrap_or(0) + 1,
            bytes: delta,
        });
    }

    let handshakes = [
        (
            "handshake-hello",
            Handshake::Hello {
                protocol: PROTOCOL_VERSION,
                cluster: "cluster".to_owned(),
                from: a.clone(),
                nonce: None,
            },
        ),
        (
            "handshake-hello-with-nonce",
            Handshake::Hello {
                protocol: PROTOCOL_VERSION,
                cluster: "cluster".to_owned(),
                from: a.clone(),
                nonce: Some([0x11; 32]),
            },
        ),
        (
            "handshake-challenge",
            Handshake::Challenge {
                from: b.clone(),
                nonce: [0x22; 32],
                proof: [0x33; 32],
            },
        ),
        ("handshake-proof", Handshake::Proof { proof: [0x44; 32] }),
        ("handshake-welcome", Handshake::Welcome { from: b.clone() }),
        (
            "handshake-rejected",
            Handshake::Rejected {
                reason: "cluster name does not match".to_owned(),
            },
        ),
    ];
    let messages = [
        (
            "message-tree",
            Message::Tree {
                depth: 4,
                level: 2,
                nodes: vec![(17, 0x0123_4567_89ab_cdef), (18, 42)],
            },
        ),
        (
            "message-leaf-digests",
            Message::LeafDigests {
                depth: 4,
                whole: false,
                leaves: vec![7, 4096],
                digests: vec![
                    ("counter".to_owned(), 0x0123_4567_89ab_cdef),
                    ("set".to_owned(), 42),
                ],
            },
        ),
        (
            "message-entry-chunk",
            Message::EntryChunk {
                transfer: 3,
                key: "big".to_owned(),
                index: 1,
                count: 2,
                total_bytes: 9,
                bytes: vec![0x11, 0x22, 0x33, 0x44],
            },
        ),
        (
            "message-gossip",
            Message::Gossip {
                entries: vec![counter_entry.clone(), set_entry, deleted_entry],
                request: vec!["wanted".to_owned()],
            },
        ),
        ("message-deltas", Message::Deltas { deltas }),
        (
            "message-write",
            Message::Write {
                request: 17,
                entry: counter_entry.clone(),
            },
        ),
        ("message-write-ack", Message::WriteAck { request: 17 }),
        (
            "message-read",
            Message::Read {
                request: 18,
                key: "counter".to_owned(),
            },
        ),
        (
            "message-read-result",
            Message::ReadResult {
                request: 18,
                entry: Some(counter_entry),
            },
        ),
        (
            "message-read-result-none",
            Message::ReadResult {
                request: 19,
                entry: None,
            },
        ),
        (
            "message-stream-batch",
            Message::StreamBatch {
                stream: 3,
                seq: 20,
                entries: vec![stream_entry],
            },
        ),
        (
            "message-stream-ack",
            Message::StreamAck {
                incarnation: 7,
                stream: 3,
                seq: 20,
            },
        ),
    ];
    let mut seeds = Vec::new();
    for (name, handshake) in handshakes {
        let bytes = handshake.encode().map_err(|e| encode_error(name, e))?;
        seeds.push(Seed {
            name: name.to_owned(),
            bytes,
        });
    }
    for (name, message) in messages {
        let bytes = message.encode().map_err(|e| encode_error(name, e))?;
        seeds.push(Seed {
            name: name.to_owned(),
            bytes,
        });
    }
    Ok(seeds)
}
