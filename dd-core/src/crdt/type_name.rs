//! Stable type names, written into gossip frames and durable records.

/// A stable, human-readable name for a type, used to tag serialised CRDT values on the wire and
/// on disk (for example `"ORSet<String>"`).
///
/// Unlike [`std::any::type_name`], it does not change between compiler versions. CRDTs build
/// their name from their element types' names. Implement it for your own element types with
/// [`impl_type_name!`](crate::impl_type_name):
///
/// ```
/// use dd_core::TypeName;
/// #[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
/// struct UserId(u64);
/// dd_core::impl_type_name!(UserId => "myapp.UserId");
/// assert_eq!(UserId::type_name(), "myapp.UserId");
/// assert_eq!(<Vec<UserId>>::type_name(), "Vec<myapp.UserId>");
/// ```
pub trait TypeName {
    /// The stable name of the type.
    fn type_name() -> String;
}

/// Implements [`TypeName`] for a type with the given fixed name.
#[macro_export]
macro_rules! impl_type_name {
    ($($ty:ty => $name:expr),+ $(,)?) => {
        $(impl $crate::TypeName for $ty {
            fn type_name() -> ::std::string::String {
                ::std::string::String::from($name)
            }
        })+
    };
}

impl_type_name!(
    String => "String",
    bool => "bool",
    char => "char",
    u8 => "u8",
    u16 => "u16",
    u32 => "u32",
    u64 => "u64",
    u128 => "u128",
    i8 => "i8",
    i16 => "i16",
    i32 => "i32",
    i64 => "i64",
    i128 => "i128",
    () => "()",
);

impl<T: TypeName> TypeName for Vec<T> {
    fn type_name() -> String {
        format!("Vec<{}>", T::type_name())
    }
}

impl<T: TypeName> TypeName for Option<T> {
    fn type_name() -> String {
        format!("Option<{}>", T::type_name())
    }
}

impl<A: TypeName, B: TypeName> TypeName for (A, B) {
    fn type_name() -> String {
        format!("({}, {})", A::type_name(), B::type_name())
    }
}
