//! The bound every element, key and register value type satisfies.

use std::fmt::Debug;

use serde::Serialize;
use serde::de::DeserializeOwned;

use super::TypeName;

/// What an element of a set, a key of a map or the value of a register must be: ordered (the
/// collections are ordered, so that equal states serialise to equal bytes), cloneable,
/// serialisable and named.
///
/// Implemented for every type with these properties; give your own types a [`TypeName`] with
/// [`impl_type_name!`](crate::impl_type_name).
pub trait Element:
    Ord + Clone + Debug + Serialize + DeserializeOwned + TypeName + Send + Sync + 'static
{
}

impl<T> Element for T where
    T: Ord + Clone + Debug + Serialize + DeserializeOwned + TypeName + Send + Sync + 'static
{
}
