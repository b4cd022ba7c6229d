//! Typed keys.

use std::fmt;
use std::marker::PhantomData;

use crate::crdt::ReplicatedData;

/// A key naming one replicated value of type `T`.
///
/// The type travels with the key, so reading a `Key<GCounter>` can only ever give a `GCounter`;
/// the replicator refuses to read or update a key whose stored value has another type.
///
/// ```
/// use dd_core::Key;
/// use dd_core::crdt::GCounter;
/// let hits: Key<GCounter> = Key::new("hits");
/// assert_eq!(hits.id(), "hits");
/// ```
pub struct Key<T> {
    id: String,
    _type: PhantomData<fn() -> T>,
}

impl<T: ReplicatedData> Key<T> {
    /// A key with the given id.
    pub fn new(id: impl Into<String>) -> Self {
        Self {
            id: id.into(),
            _type: PhantomData,
        }
    }

    /// The key's id, unique across all types in one replicator.
    pub fn id(&self) -> &str {
        &self.id
    }

    /// The stable type name of the values this key holds (see [`crate::TypeName`]).
    pub fn type_name(&self) -> String {
        T::type_name()
    }
}

impl<T> Clone for Key<T> {
    fn clone(&self) -> Self {
        Self {
            id: self.id.clone(),
            _type: PhantomData,
        }
    }
}

impl<T> PartialEq for Key<T> {
    fn eq(&self, other: &Self) -> bool {
        self.id == other.id
    }
}

impl<T> Eq for Key<T> {}

impl<T> std::hash::Hash for Key<T> {
    fn hash<H: std::hash::Hasher>(&self, state: &mut H) {
        self.id.hash(state)
    }
}

impl<T> fmt::Debug for Key<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_tuple("Key").field(&self.id).finish()
    }
}

impl<T> fmt::Display for Key<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.id)
    }
}
