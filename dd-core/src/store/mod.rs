//! The durable state store interface, re-exported from the `dd-store` crate (where it lives, so
//! that backends depend on it alone): `dd_core::store::X` is `dd_store::X`.

pub use dd_store::*;
