//! The registry of store URL schemes: which schemes this build can open, which Cargo feature
//! enables each of the others, and the opener of each enabled one.
//!
//! Each backend crate exports one `register(&mut Registry)` function adding its scheme(s) and
//! opener; `dd-durable` declares every scheme it knows with its feature and registers the backends
//! its enabled features compile in (`dd_durable::open::registry()`); programs (dd-node, the tests,
//! the benchmarks) ask the registry instead of matching URL strings.
//!
//! ```
//! # tokio::runtime::Builder::new_current_thread().build().unwrap().block_on(async {
//! use dd_store::registry::{Access, OpenError, Registry};
//! let mut registry = Registry::new().with_build_command("cargo run -p dd-node");
//! registry.declare("memory", "memory");
//! registry.declare("s3", "s3");
//! dd_store::memory::register(&mut registry);
//! assert_eq!(registry.enabled(), ["memory"]);
//! assert_eq!(registry.feature_for("s3"), Some("s3"));
//! let store = registry.open("memory:", Access::ReadWrite).await.unwrap();
//! assert!(store.replicas().await.unwrap().is_empty());
//! // A known scheme whose backend is not compiled in names the flag that adds it.
//! let err = registry.open("s3://bucket/prefix", Access::ReadWrite).await.err().unwrap();
//! assert!(matches!(err, OpenError::FeatureDisabled { .. }));
//! assert!(err.to_string().contains("cargo run -p dd-node --features s3"), "{err}");
//! # });
//! ```

use std::fmt;
use std::future::Future;
use std::path::PathBuf;
use std::pin::Pin;
use std::sync::Arc;

use crate::{DurableStateStore, StoreError};

/// How a store is opened.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Access {
    /// For reading and writing.
    #[default]
    ReadWrite,
    /// For tools that must not change the store (no write probe at open where a backend has one;
    /// backends that have no read-only mode open as for [`Access::ReadWrite`]).
    ReadOnly,
}

/// What an opener returns.
pub type OpenFuture =
    Pin<Box<dyn Future<Output = Result<Arc<dyn DurableStateStore>, StoreError>> + Send>>;

/// Opens the store a URL of its scheme names.
pub type Opener = fn(url: String, access: Access) -> OpenFuture;

/// The local file or directory a URL of its scheme names, if it is valid.
pub type LocalPath = fn(url: &str) -> Option<PathBuf>;

/// One URL scheme of a backend, as its crate registers it.
#[derive(Clone, Copy)]
pub struct Scheme {
    /// The scheme, lower-case, without the `:` (`sqlite`).
    pub name: &'static str,
    /// The backend crate (`dd-store-sqlite`), for messages.
    pub backend: &'static str,
    /// Opens a store from its URL.
    pub open: Opener,
    /// For local backends: the file or directory a URL names (tools that read an existing store
    /// check that it exists instead of creating an empty one).
    pub local_path: Option<LocalPath>,
}

impl fmt::Debug for Scheme {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Scheme")
            .field("name", &self.name)
            .field("backend", &self.backend)
            .field("local", &self.local_path.is_some())
            .finish()
    }
}

#[derive(Debug, Clone)]
struct Entry {
    name: &'static str,
    feature: Option<&'static str>,
    scheme: Option<Scheme>,
}

/// Why a URL could not be opened through a [`Registry`].
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum OpenError {
    /// The URL does not start with `scheme:`.
    #[error("store URL '{url}' has no scheme: expected one of {}", colons(known))]
    NoScheme {
        /// The URL.
        url: String,
        /// The schemes the registry knows.
        known: Vec<&'static str>,
    },
    /// The registry knows no such scheme.
    #[error(
        "unknown store URL scheme '{scheme}': supported are {} (enabled in this build: {})",
        colons(known),
        colons(enabled)
    )]
    UnknownScheme {
        /// The scheme found.
        scheme: String,
        /// Every scheme the registry knows.
        known: Vec<&'static str>,
        /// The schemes this build can open.
        enabled: Vec<&'static str>,
    },
    /// The scheme is known but its backend was not compiled in.
    #[error(
        "cannot open a '{scheme}:' store: this program was built without the \"{feature}\" \
         feature of dd-durable (enabled in this build: {}; add it with: {flag})",
        colons(enabled)
    )]
    FeatureDisabled {
        /// The scheme.
        scheme: &'static str,
        /// The missing Cargo feature (of dd-durable, and of the program's own package).
        feature: &'static str,
        /// The schemes this build can open.
        enabled: Vec<&'static str>,
        /// The exact Cargo flag to add, e.g. `cargo run -p dd-node --features s3`.
        flag: String,
    },
    /// The backend failed to open (bad URL for that backend, unreachable, wrong schema).
    #[error(transparent)]
    Store(#[from] StoreError),
}

fn colons(schemes: &[&'static str]) -> String {
    if schemes.is_empty() {
        return "none".to_owned();
    }
    schemes
        .iter()
        .map(|s| format!("{s}:"))
        .collect::<Vec<_>>()
        .join(", ")
}

/// The schemes a build knows and can open. See the [module docs](self).
#[derive(Debug, Clone)]
pub struct Registry {
    entries: Vec<Entry>,
    build_command: String,
}

impl Default for Registry {
    fn default() -> Self {
        Registry::new()
    }
}

impl Registry {
    /// An empty registry; the flag it names for a disabled scheme is
    /// `cargo build -p dd-durable --features FEATURE`.
    pub fn new() -> Registry {
        Registry {
            entries: Vec::new(),
            build_command: "cargo build -p dd-durable".to_owned(),
        }
    }

    /// The same registry, naming `command` (`cargo run -p dd-node`) in the flag of a disabled
    /// scheme: `cargo run -p dd-node --features s3`. The program's package must have a feature of
    /// the same name as dd-durable's.
    pub fn with_build_command(mut self, command: impl Into<String>) -> Registry {
        self.build_command = command.into();
        self
    }

    /// Declares a scheme this build could open, enabled by the Cargo feature `feature`.
    pub fn declare(&mut self, scheme: &'static str, feature: &'static str) {
        match self.entries.iter_mut().find(|e| e.name == scheme) {
            Some(entry) => entry.feature = Some(feature),
            None => self.entries.push(Entry {
                name: scheme,
                feature: Some(feature),
                scheme: None,
            }),
        }
    }

    /// Enables a scheme with its opener (what each backend crate's `register` calls).
    pub fn register(&mut self, scheme: Scheme) {
        match self.entries.iter_mut().find(|e| e.name == scheme.name) {
            Some(entry) => entry.scheme = Some(scheme),
            None => self.entries.push(Entry {
                name: scheme.name,
                feature: None,
                scheme: Some(scheme),
            }),
        }
    }

    /// The schemes this build can open, in the order they were declared or registered.
    pub fn enabled(&self) -> Vec<&'static str> {
        self.entries
            .iter()
            .filter(|e| e.scheme.is_some())
            .map(|e| e.name)
            .collect()
    }

    /// Every scheme the registry knows, enabled or not.
    pub fn known(&self) -> Vec<&'static str> {
        self.entries.iter().map(|e| e.name).collect()
    }

    /// Whether `scheme` can be opened by this build.
    pub fn is_enabled(&self, scheme: &str) -> bool {
        self.entry(scheme).is_some_and(|e| e.scheme.is_some())
    }

    /// The Cargo feature that enables `scheme` (`s3` for `s3`), if the registry knows one.
    pub fn feature_for(&self, scheme: &str) -> Option<&'static str> {
        self.entry(scheme).and_then(|e| e.feature)
    }

    /// The exact Cargo command line that builds this program with `feature`.
    pub fn flag_for(&self, feature: &str) -> String {
        format!("{} --features {feature}", self.build_command)
    }

    fn entry(&self, scheme: &str) -> Option<&Entry> {
        let scheme = scheme.to_ascii_lowercase();
        self.entries.iter().find(|e| e.name == scheme)
    }

    /// The registered scheme of `url`, or why it cannot be opened by this build.
    pub fn scheme_of(&self, url: &str) -> Result<&Scheme, OpenError> {
        let Some(name) = crate::url::scheme_of(url) else {
            return Err(OpenError::NoScheme {
                url: url.to_owned(),
                known: self.known(),
            });
        };
        let Some(entry) = self.entry(name) else {
            return Err(OpenError::UnknownScheme {
                scheme: name.to_ascii_lowercase(),
                known: self.known(),
                enabled: self.enabled(),
            });
        };
        match (&entry.scheme, entry.feature) {
            (Some(scheme), _) => Ok(scheme),
            (None, feature) => {
                let feature = feature.unwrap_or(entry.name);
                Err(OpenError::FeatureDisabled {
                    scheme: entry.name,
                    feature,
                    enabled: self.enabled(),
                    flag: self.flag_for(feature),
                })
            }
        }
    }

    /// The local file or directory `url` names, for the schemes of local backends.
    pub fn local_path(&self, url: &str) -> Option<PathBuf> {
        self.scheme_of(url).ok()?.local_path.and_then(|f| f(url))
    }

    /// Opens the store at `url` with the opener of its scheme.
    pub async fn open(
        &self,
        url: &str,
        access: Access,
    ) -> Result<Arc<dyn DurableStateStore>, OpenError> {
        let scheme = self.scheme_of(url)?;
        Ok((scheme.open)(url.to_owned(), access).await?)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn registry() -> Registry {
        let mut r = Registry::new().with_build_command("cargo run -p dd-node");
        r.declare("sqlite", "sqlite");
        r.declare("s3", "s3");
        crate::memory::register(&mut r);
        r
    }

    #[tokio::test]
    async fn unknown_scheme_names_it_and_the_enabled_ones() {
        let err = registry()
            .open("ftp://host/x", Access::ReadWrite)
            .await
            .err();
        let Some(err) = err else {
            panic!("ftp: opened");
        };
        assert!(
            matches!(&err, OpenError::UnknownScheme { scheme, .. } if scheme == "ftp"),
            "{err:?}"
        );
        let text = err.to_string();
        assert!(text.contains("'ftp'"), "{text}");
        assert!(text.contains("enabled in this build: memory:"), "{text}");
        assert!(text.contains("sqlite:, s3:, memory:"), "{text}");
    }

    #[tokio::test]
    async fn disabled_scheme_names_the_cargo_flag() {
        let err = registry().open("S3://b/p", Access::ReadOnly).await.err();
        let Some(err) = err else {
            panic!("s3: opened");
        };
        assert!(
            matches!(
                &err,
                OpenError::FeatureDisabled {
                    scheme: "s3",
                    feature: "s3",
                    ..
                }
            ),
            "{err:?}"
        );
        let text = err.to_string();
        assert!(text.contains("'s3:'"), "{text}");
        assert!(text.contains("enabled in this build: memory:"), "{text}");
        assert!(
            text.contains("cargo run -p dd-node --features s3"),
            "{text}"
        );
    }

    #[tokio::test]
    async fn no_scheme_is_refused() {
        let err = registry().open("/var/lib/x", Access::ReadWrite).await.err();
        assert!(matches!(err, Some(OpenError::NoScheme { .. })), "{err:?}");
    }

    /// Moved from dd-durable's `open.rs`: the scheme is the part before the first colon.
    #[test]
    fn scheme_is_the_part_before_the_first_colon() {
        let r = registry();
        assert_eq!(
            r.scheme_of("memory:/tmp/x").map(|s| s.name).ok(),
            Some("memory")
        );
        assert_eq!(
            r.scheme_of("MEMORY://p").map(|s| s.name).ok(),
            Some("memory")
        );
        for url in ["/tmp/x.db", ":x", "a b:x"] {
            assert!(
                matches!(r.scheme_of(url), Err(OpenError::NoScheme { .. })),
                "{url}"
            );
        }
    }

    #[test]
    fn queries() {
        let r = registry();
        assert_eq!(r.enabled(), ["memory"]);
        assert_eq!(r.known(), ["sqlite", "s3", "memory"]);
        assert!(r.is_enabled("MEMORY"));
        assert!(!r.is_enabled("sqlite"));
        assert_eq!(r.feature_for("sqlite"), Some("sqlite"));
        assert_eq!(r.feature_for("memory"), None);
        assert_eq!(r.local_path("memory:"), None);
        assert_eq!(
            Registry::new().flag_for("fs"),
            "cargo build -p dd-durable --features fs"
        );
    }
}
