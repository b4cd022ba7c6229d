//! Opening a backend from a URL.
//!
//! | URL | backend | Cargo feature of dd-durable |
//! | --- | --- | --- |
//! | `sqlite:...` | `dd_store_sqlite::open_url` | `sqlite` |
//! | `fs:...` | `dd_store_fs::open_url` | `fs` |
//! | `s3:...` | `dd_store_s3::open_url` | `s3` |
//! | `cassandra:...` | `dd_store_cassandra::open_url` | `cassandra` |
//!
//! The rest of the URL is up to the backend (see its README).
//!
//! ```
//! # tokio::runtime::Builder::new_current_thread().build().unwrap().block_on(async {
//! let err = dd_durable::open::open_store("ftp://example").await.err().unwrap();
//! assert!(err.to_string().contains("unknown store URL scheme 'ftp'"));
//! # });
//! ```

use std::sync::Arc;

use dd_core::store::{DurableStateStore, StoreError};

/// The URL schemes [`open_store`] knows, each enabled by the dd-durable feature of the same name.
pub const SCHEMES: [&str; 4] = ["sqlite", "fs", "s3", "cassandra"];

/// Why a store could not be opened.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum OpenError {
    /// The URL does not start with `scheme:`.
    #[error("store URL '{url}' has no scheme: expected one of sqlite:, fs:, s3:, cassandra:")]
    NoScheme {
        /// The URL.
        url: String,
    },
    /// The scheme is not one of [`SCHEMES`].
    #[error("unknown store URL scheme '{scheme}': supported are sqlite:, fs:, s3:, cassandra:")]
    UnknownScheme {
        /// The scheme found.
        scheme: String,
    },
    /// The scheme is known but its backend was not compiled in.
    #[error(
        "cannot open a '{scheme}:' store: this program was built without the \"{feature}\" \
         feature of dd-durable (enable it: dd-durable = {{ features = [\"{feature}\"] }})"
    )]
    FeatureDisabled {
        /// The scheme.
        scheme: &'static str,
        /// The missing Cargo feature of dd-durable.
        feature: &'static str,
    },
    /// The backend failed to open (bad URL for that backend, unreachable, wrong schema).
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// The scheme of `url`, lower-cased: the part before the first `:`.
fn scheme_of(url: &str) -> Result<String, OpenError> {
    let no_scheme = || OpenError::NoScheme {
        url: url.to_owned(),
    };
    let (scheme, _) = url.split_once(':').ok_or_else(no_scheme)?;
    let mut chars = scheme.chars();
    let valid = chars.next().is_some_and(|c| c.is_ascii_alphabetic())
        && chars.all(|c| c.is_ascii_alphanumeric() || matches!(c, '+' | '-' | '.'));
    if !valid {
        return Err(no_scheme());
    }
    Ok(scheme.to_ascii_lowercase())
}

/// Opens the store at `url`, dispatching on its scheme (see the [module docs](self)).
pub async fn open_store(url: &str) -> Result<Arc<dyn DurableStateStore>, OpenError> {
    let scheme = scheme_of(url)?;
    match scheme.as_str() {
        "sqlite" => open_sqlite(url).await,
        "fs" => open_fs(url).await,
        "s3" => open_s3(url).await,
        "cassandra" => open_cassandra(url).await,
        _ => Err(OpenError::UnknownScheme { scheme }),
    }
}

/// Opens the store at `url` for reading only, for tools that must not change it (`dd-node
/// inspect`, the source of `dd-node migrate`): an `s3:` store is opened with `read_only=true`
/// (no write probe at open; writes are refused). The other backends open as with
/// [`open_store`].
pub async fn open_store_read_only(url: &str) -> Result<Arc<dyn DurableStateStore>, OpenError> {
    if scheme_of(url)? == "s3" {
        return open_s3_read_only(url).await;
    }
    open_store(url).await
}

#[cfg(feature = "s3")]
async fn open_s3_read_only(url: &str) -> Result<Arc<dyn DurableStateStore>, OpenError> {
    Ok(Arc::new(dd_store_s3::open_url_read_only(url).await?))
}

#[cfg(not(feature = "s3"))]
async fn open_s3_read_only(_url: &str) -> Result<Arc<dyn DurableStateStore>, OpenError> {
    Err(OpenError::FeatureDisabled {
        scheme: "s3",
        feature: "s3",
    })
}

/// Defines `$open(url)`: the backend's `open_url` when the feature is on, an error naming the
/// feature when it is off.
macro_rules! backend_opener {
    ($open:ident, $feature:literal, $krate:ident) => {
        #[cfg(feature = $feature)]
        async fn $open(url: &str) -> Result<Arc<dyn DurableStateStore>, OpenError> {
            let store = $krate::open_url(url).await?;
            Ok(Arc::new(store))
        }

        #[cfg(not(feature = $feature))]
        async fn $open(_url: &str) -> Result<Arc<dyn DurableStateStore>, OpenError> {
            Err(OpenError::FeatureDisabled {
                scheme: $feature,
                feature: $feature,
            })
        }
    };
}

backend_opener!(open_sqlite, "sqlite", dd_store_sqlite);
backend_opener!(open_fs, "fs", dd_store_fs);
backend_opener!(open_s3, "s3", dd_store_s3);
backend_opener!(open_cassandra, "cassandra", dd_store_cassandra);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scheme_is_the_part_before_the_first_colon() {
        assert_eq!(
            scheme_of("sqlite:/tmp/x.db").ok(),
            Some("sqlite".to_owned())
        );
        assert_eq!(scheme_of("S3://bucket/p").ok(), Some("s3".to_owned()));
        assert!(matches!(
            scheme_of("/tmp/x.db"),
            Err(OpenError::NoScheme { .. })
        ));
        assert!(matches!(scheme_of(":x"), Err(OpenError::NoScheme { .. })));
        assert!(matches!(
            scheme_of("a b:x"),
            Err(OpenError::NoScheme { .. })
        ));
    }
}
