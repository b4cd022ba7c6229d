//! The open-time probe refuses a server that ignores conditional writes (both headers, or only
//! `If-Match`), unless single-writer mode is chosen; a read-only open writes nothing.
//!
//! The server is a private s3s-fs without authentication (requests are anonymous, so a proxy can
//! drop the signed `If-Match`/`If-None-Match` headers) behind a proxy that drops those headers.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::process::Stdio;
use std::time::Duration;

use common::TestEndpoint;
use common::proxy::{Mode, Proxy};
use dd_store::{DEFAULT_SCAN_PAGE_SIZE, DurableStateStore, Revision, StoreError, WriteOutcome};
use dd_store_s3::S3Options;
use futures::TryStreamExt;

/// An s3s-fs without authentication on a free port, killed on drop.
struct AnonymousServer {
    child: tokio::process::Child,
    endpoint: String,
    _dir: tempfile::TempDir,
}

impl AnonymousServer {
    async fn start() -> Option<AnonymousServer> {
        let dir = tempfile::tempdir().expect("temp dir");
        std::fs::create_dir(dir.path().join("dd-test")).expect("bucket dir");
        let port = {
            let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("free port");
            listener.local_addr().expect("address").port()
        };
        let child = match tokio::process::Command::new("s3s-fs")
            .args(["--host", "127.0.0.1", "--port", &port.to_string()])
            .arg(dir.path())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .kill_on_drop(true)
            .spawn()
        {
            Ok(child) => child,
            Err(e) => {
                eprintln!("skipped: cannot start s3s-fs ({e}); run scripts/test.sh to install it");
                return None;
            }
        };
        let endpoint = format!("http://127.0.0.1:{port}");
        for _ in 0..300 {
            if tokio::net::TcpStream::connect(("127.0.0.1", port))
                .await
                .is_ok()
            {
                return Some(AnonymousServer {
                    child,
                    endpoint,
                    _dir: dir,
                });
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        panic!("s3s-fs did not listen on {endpoint} within 30 s");
    }
}

impl Drop for AnonymousServer {
    fn drop(&mut self) {
        let _ = self.child.start_kill();
    }
}

fn anonymous_options(endpoint: &str, prefix: &str) -> dd_store_s3::S3OptionsBuilder {
    S3Options::builder("dd-test")
        .prefix(prefix)
        .endpoint(endpoint)
        .region("us-east-1")
        .path_style(true)
        .anonymous(true)
        .max_object_name_len(160)
        .connect_timeout(Duration::from_secs(5))
        .operation_timeout(Duration::from_secs(120))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_server_that_ignores_conditional_writes_is_refused_unless_single_writer() {
    // Runs only where the s3s-fs test server is available (scripts/test.sh installs it).
    if TestEndpoint::from_env().is_none() {
        return;
    }
    let Some(server) = AnonymousServer::start().await else {
        return;
    };
    let prefix = common::unique_prefix("probe");

    // Directly, the server honours conditional writes.
    let direct = dd_store_s3::open(anonymous_options(&server.endpoint, &prefix).build())
        .await
        .expect("open s3s-fs directly");
    let features = direct.server_features();
    assert!(features.conditional_put && features.put_if_none_match && features.put_if_match);

    // Behind the stripping proxy it does not: open refuses with a clear configuration error.
    let proxy = Proxy::start(&server.endpoint, Mode::StripConditions).await;
    let err = dd_store_s3::open(anonymous_options(&proxy.endpoint(), &prefix).build())
        .await
        .expect_err("a server ignoring If-None-Match must be refused");
    let StoreError::Config { message, backend } = &err else {
        panic!("expected a configuration error, got {err:?}");
    };
    assert!(
        message.contains("ignores conditional writes") && message.contains("single_writer"),
        "{message}"
    );
    assert!(backend.contains(&proxy.endpoint()), "{backend}");

    // With single_writer it opens, and read-before-write still detects stale writers.
    let store = dd_store_s3::open(
        anonymous_options(&proxy.endpoint(), &prefix)
            .single_writer(true)
            .build(),
    )
    .await
    .expect("single_writer accepts the server");
    let features = store.server_features();
    assert!(!features.conditional_put && !features.conditional_delete);
    assert_eq!(
        store.put("r", "k", None, "v1".into()).await.unwrap(),
        WriteOutcome::Written(Revision(1))
    );
    assert_eq!(
        store.put("r", "k", None, "v2".into()).await.unwrap(),
        WriteOutcome::Conflict {
            actual: Some(Revision(1))
        }
    );
    assert_eq!(
        store
            .put("r", "k", Some(Revision(1)), "v2".into())
            .await
            .unwrap(),
        WriteOutcome::Written(Revision(2))
    );
    assert_eq!(
        store.delete("r", "k", Revision(1)).await.unwrap(),
        WriteOutcome::Conflict {
            actual: Some(Revision(2))
        }
    );
    assert_eq!(
        store.delete("r", "k", Revision(2)).await.unwrap(),
        WriteOutcome::Written(Revision(2))
    );
    assert_eq!(store.get("r", "k").await.unwrap(), None);
    assert_eq!(direct.replicas().await.unwrap(), Vec::<String>::new());
    // Every probe (three opens) removed its scratch object.
    let probe_dir = server
        ._dir
        .path()
        .join("dd-test")
        .join(&prefix)
        .join(".dd-probe");
    let left: Vec<_> = std::fs::read_dir(&probe_dir)
        .map(|entries| entries.flatten().map(|e| e.file_name()).collect())
        .unwrap_or_default();
    assert!(left.is_empty(), "probe objects left behind: {left:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_server_that_ignores_only_if_match_is_refused_unless_single_writer() {
    // Runs only where the s3s-fs test server is available (scripts/test.sh installs it).
    if TestEndpoint::from_env().is_none() {
        return;
    }
    let Some(server) = AnonymousServer::start().await else {
        return;
    };
    let prefix = common::unique_prefix("probe-if-match");

    // Behind a proxy that drops If-Match only, If-None-Match still works: open must refuse anyway.
    let proxy = Proxy::start(&server.endpoint, Mode::StripIfMatch).await;
    let err = dd_store_s3::open(anonymous_options(&proxy.endpoint(), &prefix).build())
        .await
        .expect_err("a server ignoring If-Match must be refused");
    let StoreError::Config { message, backend } = &err else {
        panic!("expected a configuration error, got {err:?}");
    };
    assert!(
        message.contains("ignores conditional writes")
            && message.contains("If-Match header")
            && message.contains(&proxy.endpoint())
            && message.contains("bucket 'dd-test'")
            && message.contains("single_writer=true"),
        "{message}"
    );
    assert!(backend.contains(&proxy.endpoint()), "{backend}");
    // The probe did send If-Match (the proxy dropped it): a replace with a wrong ETag.
    assert!(
        proxy
            .requests()
            .iter()
            .filter(|r| r.starts_with("PUT "))
            .count()
            >= 3,
        "{:?}",
        proxy.requests()
    );

    // With single_writer it opens; writes check revisions by reading first, never by If-Match.
    let store = dd_store_s3::open(
        anonymous_options(&proxy.endpoint(), &prefix)
            .single_writer(true)
            .build(),
    )
    .await
    .expect("single_writer accepts the server");
    let features = store.server_features();
    assert!(features.put_if_none_match, "{features:?}");
    assert!(
        !features.put_if_match && !features.conditional_put,
        "{features:?}"
    );
    assert_eq!(
        store.put("r", "k", None, "v1".into()).await.unwrap(),
        WriteOutcome::Written(Revision(1))
    );
    assert_eq!(
        store
            .put("r", "k", Some(Revision(1)), "v2".into())
            .await
            .unwrap(),
        WriteOutcome::Written(Revision(2))
    );
    assert_eq!(
        store
            .put("r", "k", Some(Revision(1)), "stale".into())
            .await
            .unwrap(),
        WriteOutcome::Conflict {
            actual: Some(Revision(2))
        }
    );
    assert_eq!(
        store.get("r", "k").await.unwrap().map(|r| r.value),
        Some("v2".into())
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_read_only_open_sends_no_write_and_refuses_writes() {
    let Some(endpoint) = TestEndpoint::from_env() else {
        return;
    };
    let prefix = common::unique_prefix("read-only");
    let writer = dd_store_s3::open(endpoint.options_at(&endpoint.endpoint, &prefix).build())
        .await
        .expect("open for writing");
    writer.put("r", "k", None, "v".into()).await.unwrap();

    // Every request goes through a recording proxy.
    let proxy = Proxy::start(&endpoint.endpoint, Mode::Serialize).await;
    let options = endpoint
        .options_at(&proxy.endpoint(), &prefix)
        .read_only(true)
        .build();
    let store = dd_store_s3::open(options.clone())
        .await
        .expect("open read-only");
    assert!(store.is_read_only());
    assert_eq!(store.replicas().await.unwrap(), vec!["r".to_owned()]);
    let records: Vec<_> = store
        .scan("r", DEFAULT_SCAN_PAGE_SIZE)
        .try_collect()
        .await
        .unwrap();
    assert_eq!(records.len(), 1);
    assert_eq!(store.get("r", "k").await.unwrap().unwrap().value, "v");
    let err = store
        .put("r", "k", Some(Revision(1)), "w".into())
        .await
        .expect_err("a read-only store refuses writes");
    let StoreError::Config { message, .. } = &err else {
        panic!("expected a configuration error, got {err:?}");
    };
    assert!(
        message.contains("read-only") && message.contains("'r'"),
        "{message}"
    );
    assert!(store.delete("r", "k", Revision(1)).await.is_err());
    let requests = proxy.requests();
    assert!(!requests.is_empty(), "the proxy saw nothing");
    let writes: Vec<_> = requests
        .iter()
        .filter(|r| !(r.starts_with("GET ") || r.starts_with("HEAD ")))
        .collect();
    assert!(writes.is_empty(), "a read-only open wrote: {writes:?}");
    assert_eq!(writer.get("r", "k").await.unwrap().unwrap().value, "v");

    // A read-only open never creates a missing bucket, even with create_bucket.
    let mut missing = options;
    missing.bucket = format!("dd-missing-{:08x}", rand::random::<u32>());
    missing.create_bucket = true;
    let err = dd_store_s3::open(missing).await.expect_err("no bucket");
    assert!(err.to_string().contains("does not exist"), "{err}");
    assert!(
        !proxy.requests().iter().any(|r| r.starts_with("PUT ")),
        "{:?}",
        proxy.requests()
    );
}
