//! The open-time probe refuses a server that ignores conditional writes, unless single-writer
//! mode is chosen.
//!
//! The server is a private s3s-fs without authentication (requests are anonymous, so a proxy can
//! drop the signed `If-Match`/`If-None-Match` headers) behind a proxy that drops those headers.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::process::Stdio;
use std::time::Duration;

use common::TestEndpoint;
use common::proxy::{Mode, Proxy};
use dd_core::store::{DurableStateStore, Revision, StoreError, WriteOutcome};
use dd_store_s3::{S3Options, S3Store};

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
    let direct = S3Store::open(anonymous_options(&server.endpoint, &prefix).build())
        .await
        .expect("open s3s-fs directly");
    assert!(direct.server_features().conditional_put);

    // Behind the stripping proxy it does not: open refuses with a clear configuration error.
    let proxy = Proxy::start(&server.endpoint, Mode::StripConditions).await;
    let err = S3Store::open(anonymous_options(&proxy.endpoint(), &prefix).build())
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
    let store = S3Store::open(
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
