//! Helpers of the dd-node black-box tests: run `dd-node` processes, talk HTTP, poll with bounds.
//! Every child process is killed when its [`TestCluster`] is dropped (also when a test fails).

#![allow(dead_code, clippy::unwrap_used, clippy::expect_used)]

use std::future::Future;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use dd_node::local_cluster::{ClusterOptions, LocalCluster};
use reqwest::StatusCode;
use serde_json::Value;

/// Generous bound of every wait (a loaded 2-core machine).
pub const BOUND: Duration = Duration::from_secs(60);

/// The dd-node executable under test.
pub fn exe() -> PathBuf {
    PathBuf::from(env!("CARGO_BIN_EXE_dd-node-it"))
}

/// `dd-node serve` processes in a temporary directory.
pub struct TestCluster {
    pub cluster: LocalCluster,
    pub client: reqwest::Client,
    pub dir: tempfile::TempDir,
}

impl TestCluster {
    /// Plans and starts replicas `names` with SQLite stores, waits until all are healthy.
    pub async fn start(names: &[&str]) -> Self {
        Self::start_in(tempfile::tempdir().unwrap(), names).await
    }

    /// As [`start`](Self::start), with the stores (`<dir>/<name>.db`) in `dir`.
    pub async fn start_in(dir: tempfile::TempDir, names: &[&str]) -> Self {
        let mut options = ClusterOptions::new(exe(), dir.path().to_owned());
        options.names = names.iter().map(|n| n.to_string()).collect();
        options.health_timeout = BOUND;
        options.stop_timeout = BOUND;
        let mut cluster = LocalCluster::new(options).unwrap();
        let client = reqwest::Client::builder()
            .timeout(Duration::from_secs(30))
            .build()
            .unwrap();
        cluster.start().unwrap();
        let mut tc = Self {
            cluster,
            client,
            dir,
        };
        tc.healthy().await;
        tc
    }

    /// Waits until every replica is healthy (panics with the logs otherwise).
    pub async fn healthy(&mut self) {
        if let Err(e) = self.cluster.wait_healthy(&self.client).await {
            panic!("{e}\n{}", self.cluster.log_tails(30));
        }
    }

    /// The base URL of replica `i`.
    pub fn url(&self, i: usize) -> String {
        self.cluster.nodes()[i].url()
    }

    /// The store URL of replica `i`.
    pub fn store(&self, i: usize) -> String {
        self.cluster.nodes()[i].store.clone()
    }

    pub async fn get(&self, i: usize, path: &str) -> (StatusCode, Value) {
        send(self.client.get(format!("{}{path}", self.url(i)))).await
    }

    pub async fn post(&self, i: usize, path: &str, body: &str) -> (StatusCode, Value) {
        send(
            self.client
                .post(format!("{}{path}", self.url(i)))
                .header("content-type", "application/json")
                .body(body.to_owned()),
        )
        .await
    }

    pub async fn delete(&self, i: usize, path: &str) -> (StatusCode, Value) {
        send(self.client.delete(format!("{}{path}", self.url(i)))).await
    }
}

/// Sends a request; returns the status and the JSON body (`Null` if not JSON).
pub async fn send(request: reqwest::RequestBuilder) -> (StatusCode, Value) {
    let response = request.send().await.unwrap();
    let status = response.status();
    let text = response.text().await.unwrap();
    (status, serde_json::from_str(&text).unwrap_or(Value::Null))
}

/// Polls `check` every 100 ms until it returns `Ok`, at most [`BOUND`]; panics with the last
/// `Err` otherwise.
pub async fn poll_until<F, Fut>(what: &str, mut check: F)
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<(), String>>,
{
    let deadline = Instant::now() + BOUND;
    loop {
        match check().await {
            Ok(()) => return,
            Err(last) => {
                assert!(
                    Instant::now() < deadline,
                    "{what}: not within {BOUND:?}: {last}"
                );
            }
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// The output of a dd-node command.
pub struct CliOutput {
    pub success: bool,
    pub stdout: String,
    pub stderr: String,
}

/// Runs `dd-node <args>` to completion (bounded; the process is killed on timeout).
pub async fn run_cli(args: &[&str]) -> CliOutput {
    let child = tokio::process::Command::new(exe())
        .args(args)
        .env_remove("DD_NODE_STORE")
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    let out = tokio::time::timeout(BOUND, child.wait_with_output())
        .await
        .unwrap_or_else(|_| panic!("dd-node {args:?} did not finish within {BOUND:?}"))
        .unwrap();
    CliOutput {
        success: out.status.success(),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    }
}

/// `dd-node inspect --json` of a store: per replica, `key → (type, size, value)` (revisions
/// differ between stores and are left out).
pub async fn inspect(store: &str) -> Value {
    let out = run_cli(&["inspect", "--store", store, "--json"]).await;
    assert!(out.success, "inspect {store} failed: {}", out.stderr);
    let mut report: Value = serde_json::from_str(&out.stdout).unwrap();
    for replica in report["replicas"].as_array_mut().unwrap() {
        for key in replica["keys"].as_array_mut().unwrap() {
            key.as_object_mut().unwrap().remove("revision");
        }
    }
    report["replicas"].take()
}

/// A store URL for a path.
pub fn url(scheme: &str, path: &Path) -> String {
    dd_node::store_url::path_url(scheme, path)
}

/// An [`inspect`] report without the replicator's own bookkeeping records (keys under
/// `dd_core::replicator::RESERVED_PREFIX`, such as the pruning markers a restarted replica
/// writes), i.e. only the user's data.
pub fn user_data(mut report: Value) -> Value {
    for replica in report.as_array_mut().unwrap() {
        replica["keys"].as_array_mut().unwrap().retain(|k| {
            !k["key"]
                .as_str()
                .unwrap()
                .starts_with(dd_core::replicator::RESERVED_PREFIX)
        });
    }
    report
}
