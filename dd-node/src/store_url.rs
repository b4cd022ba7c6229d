//! Opening a backend from a store URL, through the registry of store schemes: everything
//! [`dd_durable::open_store`] opens (`sqlite:`, `fs:`, `s3:`, `cassandra:`, each when dd-node is
//! built with that feature) plus `memory:`, an in-process store that is lost when the process ends
//! (for trying things out). A scheme this build lacks is an error naming the enabled schemes and
//! the exact flag (`cargo run -p dd-node --features s3`).

use std::sync::Arc;

use dd_core::store::DurableStateStore;
use dd_durable::OpenError;
use dd_store::registry::{Access, Registry};

/// The store schemes of this build of dd-node: dd-durable's registry (the backends of the
/// enabled features, and `memory:`), naming `cargo run -p dd-node --features …` for a scheme
/// whose feature is off.
///
/// ```
/// let registry = dd_node::store_url::registry();
/// assert!(registry.is_enabled("memory"));
/// assert_eq!(registry.feature_for("s3"), Some("s3"));
/// assert_eq!(registry.flag_for("s3"), "cargo run -p dd-node --features s3");
/// ```
pub fn registry() -> Registry {
    dd_durable::open::registry().with_build_command("cargo run -p dd-node")
}

/// Opens the store at `url`.
///
/// ```
/// # tokio::runtime::Builder::new_current_thread().build().unwrap().block_on(async {
/// let store = dd_node::store_url::open_state_store("memory:").await.unwrap();
/// assert!(store.replicas().await.unwrap().is_empty());
/// # });
/// ```
pub async fn open_state_store(url: &str) -> Result<Arc<dyn DurableStateStore>, OpenError> {
    registry().open(url, Access::ReadWrite).await
}

/// Opens an existing store for the read-only tools (`inspect`, the source of `migrate`): a
/// `sqlite:` or `fs:` URL whose file or directory does not exist is an error instead of a new,
/// empty store, and an `s3:` store is opened read-only
/// ([`dd_durable::open::open_store_read_only`]: no write probe, writes refused), so that these
/// tools write nothing to the server.
pub async fn open_existing_store(url: &str) -> Result<Arc<dyn DurableStateStore>, OpenError> {
    let registry = registry();
    if let Some(path) = registry.local_path(url).filter(|p| !p.exists()) {
        return Err(OpenError::Store(dd_core::store::StoreError::Config {
            backend: url.split(':').next().unwrap_or("store").to_owned(),
            message: format!("{} does not exist (nothing to read)", path.display()),
        }));
    }
    registry.open(url, Access::ReadOnly).await
}

/// A `scheme://` URL for an absolute or relative path, percent-encoding what a URL path cannot
/// hold as is (spaces, `%`, `?`, `#`, non-ASCII).
///
/// ```
/// use std::path::Path;
/// use dd_node::store_url::path_url;
/// assert_eq!(path_url("sqlite", Path::new("/tmp/my dir/a.db")), "sqlite:///tmp/my%20dir/a.db");
/// assert_eq!(path_url("fs", Path::new("data")), "fs:data");
/// ```
pub fn path_url(scheme: &str, path: &std::path::Path) -> String {
    let text = path.to_string_lossy();
    let mut encoded = String::with_capacity(text.len());
    for b in text.bytes() {
        if b.is_ascii_alphanumeric() || b"/-._~".contains(&b) {
            encoded.push(char::from(b));
        } else {
            encoded.push_str(&format!("%{b:02X}"));
        }
    }
    if path.is_absolute() {
        format!("{scheme}://{encoded}")
    } else {
        format!("{scheme}:{encoded}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn unknown_scheme_names_it_and_the_enabled_schemes() {
        let Err(err) = open_state_store("ftp://host/data").await else {
            panic!("ftp: opened");
        };
        let text = err.to_string();
        assert!(text.contains("unknown store URL scheme 'ftp'"), "{text}");
        assert!(text.contains("memory:"), "{text}");
        for scheme in registry().enabled() {
            assert!(text.contains(&format!("{scheme}:")), "{text}");
        }
    }

    /// Every scheme whose feature is off in this build of dd-node names the enabled schemes and
    /// the exact `cargo run -p dd-node --features …` flag (s3 and cassandra are off by default).
    #[tokio::test]
    async fn disabled_scheme_names_the_dd_node_flag() {
        let registry = registry();
        for (scheme, feature) in dd_durable::open::KNOWN_SCHEMES {
            if registry.is_enabled(scheme) {
                continue;
            }
            let Err(err) = open_state_store(&format!("{scheme}://somewhere/x")).await else {
                panic!("{scheme}: opened");
            };
            assert!(
                matches!(&err, OpenError::FeatureDisabled { feature: f, .. } if *f == feature),
                "{err:?}"
            );
            let text = err.to_string();
            assert!(
                text.contains(&format!("cargo run -p dd-node --features {feature}")),
                "{text}"
            );
            assert!(text.contains("memory:"), "{text}");
        }
    }
}
