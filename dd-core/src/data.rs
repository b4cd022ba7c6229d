//! Type-erased CRDT values and the registry that decodes them by type name.
//!
//! The replicator holds values of many CRDT types under string keys, receives them as bytes from
//! peers and reads them back from durable stores. [`ErasedData`] is the object-safe face of any
//! [`Crdt`]; [`TypeRegistry`] turns a `(type name, bytes)` pair back into a value.
//!
//! ```
//! use dd_core::crdt::GCounter;
//! use dd_core::data::{ErasedData, TypeRegistry};
//! use dd_core::{TypeName, UniqueReplicaId};
//! let registry = TypeRegistry::with_builtin_types();
//! let mut c = GCounter::new();
//! c.increment(&UniqueReplicaId::new("a", 1), 7).unwrap();
//! let bytes = c.encode().unwrap();
//! let back = registry.decode(&GCounter::type_name(), &bytes).unwrap();
//! assert_eq!(back.downcast_ref::<GCounter>().unwrap().value(), 7);
//! ```

use std::any::Any;
use std::collections::{BTreeSet, HashMap};
use std::fmt::Debug;
use std::sync::{Arc, RwLock};

use crate::crdt::{
    Crdt, DeltaReplicatedData, Flag, GCounter, GSet, LWWMap, LWWRegister, MVRegister, ORMap,
    ORMultiMap, ORSet, PNCounter, PNCounterMap, RemovedNodePruning, ReplicatedData, TypeName,
    VersionVector,
};
use crate::replica::UniqueReplicaId;

/// Errors of type-erased operations.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum DataError {
    /// No type with this name was registered.
    #[error("unknown CRDT type '{type_name}': register it with TypeRegistry::register")]
    UnknownType {
        /// The unknown type name.
        type_name: String,
    },
    /// Two values of different types were combined.
    #[error("type mismatch: expected '{expected}', found '{found}'")]
    TypeMismatch {
        /// The type that was expected.
        expected: String,
        /// The type that was found.
        found: String,
    },
    /// Bytes could not be decoded as the named type.
    #[error("cannot decode a value of type '{type_name}': {source}")]
    Decode {
        /// The type being decoded.
        type_name: String,
        /// The decoder's error.
        #[source]
        source: postcard::Error,
    },
    /// A value could not be encoded.
    #[error("cannot encode a value of type '{type_name}': {source}")]
    Encode {
        /// The type being encoded.
        type_name: String,
        /// The encoder's error.
        #[source]
        source: postcard::Error,
    },
}

/// The object-safe face of a [`Crdt`]. Implemented for every `Crdt`.
pub trait ErasedData: Send + Sync + Debug + 'static {
    /// The value's stable type name (its [`TypeName`]).
    fn data_type_name(&self) -> String;
    /// As `Any`, to downcast to the concrete type.
    fn as_any(&self) -> &dyn Any;
    /// As mutable `Any`, to downcast to the concrete type.
    fn as_any_mut(&mut self) -> &mut dyn Any;
    /// A boxed clone.
    fn clone_boxed(&self) -> Box<dyn ErasedData>;
    /// Equality with another erased value (false across types).
    fn eq_erased(&self, other: &dyn ErasedData) -> bool;
    /// Merges another value of the same type into this one.
    fn merge_erased(&mut self, other: &dyn ErasedData) -> Result<(), DataError>;
    /// The full state, serialised with postcard.
    fn encode(&self) -> Result<Vec<u8>, DataError>;
    /// The accumulated delta, serialised with postcard, if there is one.
    fn encode_delta(&self) -> Result<Option<Vec<u8>>, DataError>;
    /// Forgets the accumulated delta.
    fn reset_delta(&mut self);
    /// Merges a serialised delta of this type.
    fn merge_delta_bytes(&mut self, delta: &[u8]) -> Result<(), DataError>;
    /// See [`DeltaReplicatedData::requires_causal_delivery`].
    fn requires_causal_delivery(&self) -> bool;
    /// See [`RemovedNodePruning::modified_by_nodes`].
    fn modified_by_nodes(&self) -> BTreeSet<UniqueReplicaId>;
    /// See [`RemovedNodePruning::replicas_in_state`].
    fn replicas_in_state(&self) -> BTreeSet<UniqueReplicaId>;
    /// See [`RemovedNodePruning::needs_pruning_from`].
    fn needs_pruning_from(&self, removed: &UniqueReplicaId) -> bool;
    /// See [`RemovedNodePruning::prune`].
    fn prune(&mut self, removed: &UniqueReplicaId, collapse_into: &UniqueReplicaId);
    /// See [`RemovedNodePruning::prune_cleanup`].
    fn prune_cleanup(&mut self, removed: &UniqueReplicaId);
    /// See [`RemovedNodePruning::mentions`].
    fn mentions(&self, removed: &UniqueReplicaId) -> bool;
    /// See [`RemovedNodePruning::prunes_by_collapsing`].
    fn prunes_by_collapsing(&self) -> bool;
}

impl dyn ErasedData {
    /// Downcasts to a concrete CRDT type.
    pub fn downcast_ref<T: 'static>(&self) -> Option<&T> {
        self.as_any().downcast_ref::<T>()
    }

    /// Downcasts to a mutable concrete CRDT type.
    pub fn downcast_mut<T: 'static>(&mut self) -> Option<&mut T> {
        self.as_any_mut().downcast_mut::<T>()
    }
}

impl Clone for Box<dyn ErasedData> {
    fn clone(&self) -> Self {
        self.clone_boxed()
    }
}

fn mismatch<T: TypeName>(other: &dyn ErasedData) -> DataError {
    DataError::TypeMismatch {
        expected: T::type_name(),
        found: other.data_type_name(),
    }
}

impl<T: Crdt> ErasedData for T {
    fn data_type_name(&self) -> String {
        T::type_name()
    }

    fn as_any(&self) -> &dyn Any {
        self
    }

    fn as_any_mut(&mut self) -> &mut dyn Any {
        self
    }

    fn clone_boxed(&self) -> Box<dyn ErasedData> {
        Box::new(self.clone())
    }

    fn eq_erased(&self, other: &dyn ErasedData) -> bool {
        other.as_any().downcast_ref::<T>() == Some(self)
    }

    fn merge_erased(&mut self, other: &dyn ErasedData) -> Result<(), DataError> {
        let other = other
            .as_any()
            .downcast_ref::<T>()
            .ok_or_else(|| mismatch::<T>(other))?;
        ReplicatedData::merge(self, other);
        Ok(())
    }

    fn encode(&self) -> Result<Vec<u8>, DataError> {
        postcard::to_stdvec(self).map_err(|source| DataError::Encode {
            type_name: T::type_name(),
            source,
        })
    }

    fn encode_delta(&self) -> Result<Option<Vec<u8>>, DataError> {
        match DeltaReplicatedData::delta(self) {
            None => Ok(None),
            Some(d) => postcard::to_stdvec(&d)
                .map(Some)
                .map_err(|source| DataError::Encode {
                    type_name: T::type_name(),
                    source,
                }),
        }
    }

    fn reset_delta(&mut self) {
        DeltaReplicatedData::reset_delta(self)
    }

    fn merge_delta_bytes(&mut self, delta: &[u8]) -> Result<(), DataError> {
        let d: T::Delta = postcard::from_bytes(delta).map_err(|source| DataError::Decode {
            type_name: T::type_name(),
            source,
        })?;
        DeltaReplicatedData::merge_delta(self, &d);
        Ok(())
    }

    fn requires_causal_delivery(&self) -> bool {
        T::requires_causal_delivery()
    }

    fn modified_by_nodes(&self) -> BTreeSet<UniqueReplicaId> {
        RemovedNodePruning::modified_by_nodes(self)
    }

    fn replicas_in_state(&self) -> BTreeSet<UniqueReplicaId> {
        RemovedNodePruning::replicas_in_state(self)
    }

    fn needs_pruning_from(&self, removed: &UniqueReplicaId) -> bool {
        RemovedNodePruning::needs_pruning_from(self, removed)
    }

    fn prune(&mut self, removed: &UniqueReplicaId, collapse_into: &UniqueReplicaId) {
        RemovedNodePruning::prune(self, removed, collapse_into)
    }

    fn prune_cleanup(&mut self, removed: &UniqueReplicaId) {
        RemovedNodePruning::prune_cleanup(self, removed)
    }

    fn mentions(&self, removed: &UniqueReplicaId) -> bool {
        RemovedNodePruning::mentions(self, removed)
    }

    fn prunes_by_collapsing(&self) -> bool {
        RemovedNodePruning::prunes_by_collapsing(self)
    }
}

type DecodeFn = fn(&[u8]) -> Result<Box<dyn ErasedData>, DataError>;
type ZeroFn = fn() -> Option<Box<dyn ErasedData>>;

#[derive(Clone, Copy)]
struct Codec {
    decode: DecodeFn,
    zero: ZeroFn,
}

fn decode_as<T: Crdt>(bytes: &[u8]) -> Result<Box<dyn ErasedData>, DataError> {
    postcard::from_bytes::<T>(bytes)
        .map(|v| Box::new(v) as Box<dyn ErasedData>)
        .map_err(|source| DataError::Decode {
            type_name: T::type_name(),
            source,
        })
}

fn zero_of<T: Crdt>() -> Option<Box<dyn ErasedData>> {
    T::zero().map(|v| Box::new(v) as Box<dyn ErasedData>)
}

/// Decodes serialised CRDT values by their stable type name.
///
/// Cheap to clone (shared). [`with_builtin_types`](Self::with_builtin_types) knows every built-in
/// CRDT over the common element types; register your own combinations with
/// [`register`](Self::register).
#[derive(Clone, Default)]
pub struct TypeRegistry {
    codecs: Arc<RwLock<HashMap<String, Codec>>>,
}

impl Debug for TypeRegistry {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let mut names: Vec<String> = match self.codecs.read() {
            Ok(m) => m.keys().cloned().collect(),
            Err(p) => p.into_inner().keys().cloned().collect(),
        };
        names.sort();
        f.debug_struct("TypeRegistry")
            .field("types", &names)
            .finish()
    }
}

impl TypeRegistry {
    /// An empty registry.
    pub fn new() -> Self {
        Self::default()
    }

    /// A registry that knows every built-in CRDT over the common element types
    /// (see [`register_builtin_types`]).
    pub fn with_builtin_types() -> Self {
        let r = Self::new();
        register_builtin_types(&r);
        r
    }

    /// Registers `T` under `T::type_name()`. Registering twice is harmless.
    pub fn register<T: Crdt>(&self) {
        let codec = Codec {
            decode: decode_as::<T>,
            zero: zero_of::<T>,
        };
        match self.codecs.write() {
            Ok(mut m) => m.insert(T::type_name(), codec),
            Err(p) => p.into_inner().insert(T::type_name(), codec),
        };
    }

    fn codec(&self, type_name: &str) -> Result<Codec, DataError> {
        let found = match self.codecs.read() {
            Ok(m) => m.get(type_name).copied(),
            Err(p) => p.into_inner().get(type_name).copied(),
        };
        found.ok_or_else(|| DataError::UnknownType {
            type_name: type_name.to_owned(),
        })
    }

    /// Whether a type with this name is registered.
    pub fn contains(&self, type_name: &str) -> bool {
        self.codec(type_name).is_ok()
    }

    /// Decodes a full state of the named type.
    pub fn decode(&self, type_name: &str, bytes: &[u8]) -> Result<Box<dyn ErasedData>, DataError> {
        (self.codec(type_name)?.decode)(bytes)
    }

    /// The empty value of the named type that a delta can be applied to, if the type has one.
    pub fn zero(&self, type_name: &str) -> Result<Option<Box<dyn ErasedData>>, DataError> {
        Ok((self.codec(type_name)?.zero)())
    }
}

/// Registers every built-in CRDT type, over the common element types, in `registry`. Called by
/// [`TypeRegistry::with_builtin_types`].
///
/// The registered names are those of [`builtin_type_names`].
pub fn register_builtin_types(registry: &TypeRegistry) {
    macro_rules! register_elements {
        ($($t:ty),+) => {$(
            registry.register::<GSet<$t>>();
            registry.register::<ORSet<$t>>();
            registry.register::<LWWRegister<$t>>();
            registry.register::<MVRegister<$t>>();
            registry.register::<LWWMap<String, $t>>();
            registry.register::<ORMultiMap<String, $t>>();
            registry.register::<ORMap<String, ORSet<$t>>>();
            registry.register::<ORMap<String, GSet<$t>>>();
            registry.register::<ORMap<String, LWWRegister<$t>>>();
            registry.register::<ORMap<String, MVRegister<$t>>>();
        )+};
    }
    registry.register::<GCounter>();
    registry.register::<PNCounter>();
    registry.register::<Flag>();
    registry.register::<VersionVector>();
    register_elements!(String, u64, i64, Vec<u8>);
    registry.register::<ORMap<String, GCounter>>();
    registry.register::<ORMap<String, PNCounter>>();
    registry.register::<ORMap<String, Flag>>();
    registry.register::<PNCounterMap<String>>();
}

/// The names of the types [`register_builtin_types`] registers, for documentation and checks.
///
/// ```
/// use dd_core::data::{TypeRegistry, builtin_type_names};
/// let registry = TypeRegistry::with_builtin_types();
/// assert!(builtin_type_names().iter().all(|n| registry.contains(n)));
/// assert!(builtin_type_names().contains(&"ORMap<String, PNCounter>".to_string()));
/// ```
pub fn builtin_type_names() -> Vec<String> {
    let mut names: Vec<String> = ["GCounter", "PNCounter", "Flag", "VersionVector"]
        .into_iter()
        .map(String::from)
        .collect();
    for t in ["String", "u64", "i64", "Vec<u8>"] {
        names.push(format!("GSet<{t}>"));
        names.push(format!("ORSet<{t}>"));
        names.push(format!("LWWRegister<{t}>"));
        names.push(format!("MVRegister<{t}>"));
        names.push(format!("LWWMap<String, {t}>"));
        names.push(format!("ORMultiMap<String, {t}>"));
        names.push(format!("ORMap<String, ORSet<{t}>>"));
        names.push(format!("ORMap<String, GSet<{t}>>"));
        names.push(format!("ORMap<String, LWWRegister<{t}>>"));
        names.push(format!("ORMap<String, MVRegister<{t}>>"));
    }
    for v in ["GCounter", "PNCounter", "Flag"] {
        names.push(format!("ORMap<String, {v}>"));
    }
    names.push("PNCounterMap<String>".into());
    names
}
