//! Opening a store from a URL: the errors for URLs that cannot be opened by this build.
#![allow(clippy::unwrap_used, clippy::expect_used)] // tests may panic

use dd_durable::open::{OpenError, SCHEMES, open_store};
use dd_durable::{DurableDistributedDataStore, DurableOptions};

#[tokio::test]
async fn unknown_scheme_lists_the_supported_ones() {
    let err = open_store("ftp://host/data").await.err().unwrap();
    assert!(
        matches!(&err, OpenError::UnknownScheme { scheme, .. } if scheme == "ftp"),
        "{err:?}"
    );
    let text = err.to_string();
    for scheme in SCHEMES {
        assert!(text.contains(&format!("{scheme}:")), "{text}");
    }
}

#[tokio::test]
async fn url_without_scheme_is_refused() {
    let err = open_store("/var/lib/dd.db").await.err().unwrap();
    assert!(matches!(err, OpenError::NoScheme { .. }), "{err:?}");
    assert!(err.to_string().contains("has no scheme"));
}

/// Every scheme whose feature is off in this build names the missing feature.
#[tokio::test]
async fn disabled_features_are_named() {
    let enabled = [
        ("sqlite", cfg!(feature = "sqlite")),
        ("fs", cfg!(feature = "fs")),
        ("s3", cfg!(feature = "s3")),
        ("cassandra", cfg!(feature = "cassandra")),
    ];
    for (scheme, on) in enabled {
        if on {
            continue;
        }
        let err = open_store(&format!("{scheme}://somewhere"))
            .await
            .err()
            .unwrap();
        assert!(
            matches!(err, OpenError::FeatureDisabled { feature, .. } if feature == scheme),
            "{err:?}"
        );
        assert!(
            err.to_string().contains(&format!(
                "built without the \"{scheme}\" feature of dd-durable"
            )),
            "{err}"
        );
    }
}

/// `memory:` is a scheme of the registry (always enabled, as in dd-node), not an unknown one.
#[tokio::test]
async fn memory_scheme_opens_an_empty_store() {
    let store = open_store("memory:").await.unwrap();
    assert!(store.replicas().await.unwrap().is_empty());
    let err = open_store("ftp://host/data").await.err().unwrap();
    assert!(err.to_string().contains("enabled in this build: "), "{err}");
    assert!(err.to_string().contains("memory:"), "{err}");
}

#[tokio::test]
async fn open_url_reports_the_same_errors() {
    let err = DurableDistributedDataStore::open_url("nope:x", DurableOptions::default())
        .await
        .err()
        .unwrap();
    assert!(matches!(err, OpenError::UnknownScheme { .. }), "{err:?}");
}
