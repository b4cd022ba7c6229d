//! Opening a backend from a store URL: everything [`dd_durable::open_store`] opens (`sqlite:`,
//! `fs:`, `s3:`, `cassandra:`, each when dd-node is built with that feature) plus `memory:`, an
//! in-process store that is lost when the process ends (for trying things out).

use std::sync::Arc;

use dd_core::store::DurableStateStore;
use dd_core::store::memory::MemoryStore;
use dd_durable::OpenError;

/// Opens the store at `url`.
///
/// ```
/// # tokio::runtime::Builder::new_current_thread().build().unwrap().block_on(async {
/// let store = dd_node::store_url::open_state_store("memory:").await.unwrap();
/// assert!(store.replicas().await.unwrap().is_empty());
/// # });
/// ```
pub async fn open_state_store(url: &str) -> Result<Arc<dyn DurableStateStore>, OpenError> {
    if url.starts_with("memory:") {
        return Ok(Arc::new(MemoryStore::new()));
    }
    dd_durable::open_store(url).await
}

/// The local path a `sqlite:` or `fs:` URL names, when dd-node is built with that backend.
fn local_path(url: &str) -> Option<std::path::PathBuf> {
    #[cfg(feature = "sqlite")]
    if url.starts_with("sqlite:") {
        return dd_store_sqlite::parse_url(url).ok().map(|(path, _)| path);
    }
    #[cfg(feature = "fs")]
    if url.starts_with("fs:") {
        return dd_store_fs::parse_url(url).ok();
    }
    let _ = url;
    None
}

/// Opens an existing store for the read-only tools (`inspect`, the source of `migrate`): a
/// `sqlite:` or `fs:` URL whose file or directory does not exist is an error instead of a new,
/// empty store, and an `s3:` store is opened read-only
/// ([`dd_durable::open::open_store_read_only`]: no write probe, writes refused), so that these
/// tools write nothing to the server.
pub async fn open_existing_store(url: &str) -> Result<Arc<dyn DurableStateStore>, OpenError> {
    if let Some(path) = local_path(url).filter(|p| !p.exists()) {
        return Err(OpenError::Store(dd_core::store::StoreError::Config {
            backend: url.split(':').next().unwrap_or("store").to_owned(),
            message: format!("{} does not exist (nothing to read)", path.display()),
        }));
    }
    if url.starts_with("memory:") {
        return open_state_store(url).await;
    }
    dd_durable::open::open_store_read_only(url).await
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
