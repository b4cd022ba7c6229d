//! Opening a backend from a URL, through the registry of store schemes
//! ([`dd_store::registry`]).
//!
//! | URL | backend | Cargo feature of dd-durable |
//! | --- | --- | --- |
//! | `sqlite:...` | `dd_store_sqlite::open_url` | `sqlite` |
//! | `fs:...` | `dd_store_fs::open_url` | `fs` |
//! | `s3:...` | `dd_store_s3::open_url` | `s3` |
//! | `cassandra:...` | `dd_store_cassandra::open_url` | `cassandra` |
//! | `memory:` | `dd_store::memory::MemoryStore` (in-process, lost when the process ends) | always |
//!
//! [`KNOWN_SCHEMES`] is the one list of schemes and features; [`registry`] declares them all and
//! registers the backends the enabled features compile in (each backend crate's `register`),
//! plus `memory:`.
//! The rest of the URL is up to the backend (see its README).
//!
//! ```
//! # tokio::runtime::Builder::new_current_thread().build().unwrap().block_on(async {
//! let err = dd_durable::open::open_store("ftp://example").await.err().unwrap();
//! assert!(err.to_string().contains("unknown store URL scheme 'ftp'"));
//! let registry = dd_durable::open::registry();
//! assert_eq!(registry.feature_for("s3"), Some("s3"));
//! assert!(registry.is_enabled("sqlite"));
//! assert!(registry.is_enabled("memory"));
//! # });
//! ```

use std::sync::Arc;

use dd_core::store::DurableStateStore;
use dd_store::registry::{Access, Registry};

pub use dd_store::registry::OpenError;

/// Every URL scheme dd-durable can open, with the Cargo feature (of dd-durable, and of the
/// programs that forward it: dd-node) that compiles its backend in.
pub const KNOWN_SCHEMES: [(&str, &str); 4] = [
    ("sqlite", "sqlite"),
    ("fs", "fs"),
    ("s3", "s3"),
    ("cassandra", "cassandra"),
];

/// The URL schemes [`open_store`] knows: those of [`KNOWN_SCHEMES`], each enabled by the
/// dd-durable feature of the same name, and `memory:`, always enabled.
pub const SCHEMES: [&str; 5] = [
    KNOWN_SCHEMES[0].0,
    KNOWN_SCHEMES[1].0,
    KNOWN_SCHEMES[2].0,
    KNOWN_SCHEMES[3].0,
    "memory",
];

/// The registry of this build: every scheme of [`KNOWN_SCHEMES`] declared, the backends of the
/// enabled features registered, and `memory:` ([`dd_store::memory::MemoryStore`], a new empty
/// store per open). A disabled scheme's error names
/// `cargo build -p dd-durable --features FEATURE`; a program names its own command with
/// [`Registry::with_build_command`].
pub fn registry() -> Registry {
    let mut registry = Registry::new();
    for (scheme, feature) in KNOWN_SCHEMES {
        registry.declare(scheme, feature);
    }
    #[cfg(feature = "sqlite")]
    dd_store_sqlite::register(&mut registry);
    #[cfg(feature = "fs")]
    dd_store_fs::register(&mut registry);
    #[cfg(feature = "s3")]
    dd_store_s3::register(&mut registry);
    #[cfg(feature = "cassandra")]
    dd_store_cassandra::register(&mut registry);
    dd_store::memory::register(&mut registry);
    registry
}

/// Opens the store at `url`, dispatching on its scheme (see the [module docs](self)).
pub async fn open_store(url: &str) -> Result<Arc<dyn DurableStateStore>, OpenError> {
    registry().open(url, Access::ReadWrite).await
}

/// Opens the store at `url` for reading only, for tools that must not change it (`dd-node
/// inspect`, the source of `dd-node migrate`): an `s3:` store is opened with `read_only=true`
/// (no write probe at open; writes are refused). The other backends open as with
/// [`open_store`].
pub async fn open_store_read_only(url: &str) -> Result<Arc<dyn DurableStateStore>, OpenError> {
    registry().open(url, Access::ReadOnly).await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_known_scheme_is_declared_and_the_enabled_ones_registered() {
        let registry = registry();
        assert_eq!(registry.known(), SCHEMES);
        for (scheme, feature) in KNOWN_SCHEMES {
            assert_eq!(registry.feature_for(scheme), Some(feature));
        }
        assert_eq!(registry.is_enabled("sqlite"), cfg!(feature = "sqlite"));
        assert_eq!(registry.is_enabled("fs"), cfg!(feature = "fs"));
        assert_eq!(registry.is_enabled("s3"), cfg!(feature = "s3"));
        assert_eq!(
            registry.is_enabled("cassandra"),
            cfg!(feature = "cassandra")
        );
        assert!(registry.is_enabled("memory"));
        assert_eq!(registry.feature_for("memory"), None);
    }
}
