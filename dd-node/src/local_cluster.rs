//! A cluster of `dd-node serve` child processes on 127.0.0.1, for the demo and for black-box
//! tests: free ports, one store per replica in a directory, health polling, graceful stop
//! (SIGTERM), hard kill (SIGKILL) and restart with the same configuration.
//!
//! Every child is killed when the [`LocalCluster`] is dropped, whatever the path (error, panic,
//! Ctrl-C in the parent).

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::{Duration, Instant};

use tokio::process::{Child, Command};

/// Why a cluster operation failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ClusterError {
    /// An I/O error (ports, log files, spawning).
    #[error("{context}: {source}")]
    Io {
        /// What was being done.
        context: String,
        /// The error.
        #[source]
        source: std::io::Error,
    },
    /// A node did not become healthy in time.
    #[error(
        "replica {replica} did not become healthy within {timeout:?} ({detail}); its log: {log}"
    )]
    NotHealthy {
        /// The replica.
        replica: String,
        /// The bound.
        timeout: Duration,
        /// What was seen last.
        detail: String,
        /// Its log file.
        log: String,
    },
    /// A node exited while it should run.
    #[error("replica {replica} exited ({status}); its log: {log}")]
    Exited {
        /// The replica.
        replica: String,
        /// Its exit status.
        status: String,
        /// Its log file.
        log: String,
    },
    /// A node did not stop after SIGTERM in time (it was killed).
    #[error("replica {replica} did not stop within {timeout:?} after SIGTERM (killed)")]
    StopTimeout {
        /// The replica.
        replica: String,
        /// The bound.
        timeout: Duration,
    },
    /// A node stopped with a failure status after SIGTERM.
    #[error("replica {replica} stopped with {status} after SIGTERM; its log: {log}")]
    StopFailed {
        /// The replica.
        replica: String,
        /// Its exit status.
        status: String,
        /// Its log file.
        log: String,
    },
}

fn io(context: impl Into<String>) -> impl FnOnce(std::io::Error) -> ClusterError {
    let context = context.into();
    move |source| ClusterError::Io { context, source }
}

/// One replica of a [`LocalCluster`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NodeSpec {
    /// The replica name.
    pub name: String,
    /// The HTTP port on 127.0.0.1.
    pub http_port: u16,
    /// The cluster port on 127.0.0.1.
    pub cluster_port: u16,
    /// The store URL.
    pub store: String,
}

impl NodeSpec {
    /// The base URL of the HTTP API, e.g. `http://127.0.0.1:8080`.
    pub fn url(&self) -> String {
        format!("http://127.0.0.1:{}", self.http_port)
    }
}

/// Options of a [`LocalCluster`].
#[derive(Debug, Clone)]
pub struct ClusterOptions {
    /// The `dd-node` executable.
    pub exe: PathBuf,
    /// The directory for stores, logs and the config file.
    pub dir: PathBuf,
    /// The replica names.
    pub names: Vec<String>,
    /// The store URL of a replica given the directory and its name.
    pub store_url: fn(&Path, &str) -> String,
    /// `sync` or `write-behind=<ms>`.
    pub write_mode: String,
    /// How long a node may take to become healthy.
    pub health_timeout: Duration,
    /// How long a node may take to stop after SIGTERM.
    pub stop_timeout: Duration,
}

/// The default store of a replica: `sqlite://<dir>/<name>.db`.
pub fn sqlite_store(dir: &Path, name: &str) -> String {
    crate::store_url::path_url("sqlite", &dir.join(format!("{name}.db")))
}

impl ClusterOptions {
    /// Three replicas `a`, `b`, `c` with SQLite stores in `dir`, sync writes, generous bounds.
    pub fn new(exe: PathBuf, dir: PathBuf) -> Self {
        Self {
            exe,
            dir,
            names: vec!["a".into(), "b".into(), "c".into()],
            store_url: sqlite_store,
            write_mode: "sync".into(),
            health_timeout: Duration::from_secs(30),
            stop_timeout: Duration::from_secs(20),
        }
    }
}

/// Running (or stopped) `dd-node serve` processes.
#[derive(Debug)]
pub struct LocalCluster {
    options: ClusterOptions,
    specs: Vec<NodeSpec>,
    children: Vec<Option<Child>>,
    config_file: PathBuf,
}

/// Ports that were free a moment ago (bound together, then released).
pub fn free_ports(n: usize) -> Result<Vec<u16>, ClusterError> {
    let listeners = (0..n)
        .map(|_| std::net::TcpListener::bind("127.0.0.1:0"))
        .collect::<Result<Vec<_>, _>>()
        .map_err(io("finding free ports on 127.0.0.1"))?;
    listeners
        .iter()
        .map(|l| l.local_addr().map(|a| a.port()))
        .collect::<Result<Vec<_>, _>>()
        .map_err(io("finding free ports on 127.0.0.1"))
}

impl LocalCluster {
    /// Plans the cluster (ports, stores, a config file with short gossip intervals); starts
    /// nothing yet.
    pub fn new(options: ClusterOptions) -> Result<Self, ClusterError> {
        let n = options.names.len();
        let ports = free_ports(2 * n)?;
        let specs = options
            .names
            .iter()
            .enumerate()
            .map(|(i, name)| NodeSpec {
                name: name.clone(),
                http_port: ports[2 * i],
                cluster_port: ports[2 * i + 1],
                store: (options.store_url)(&options.dir, name),
            })
            .collect();
        let config_file = options.dir.join("cluster.toml");
        std::fs::write(
            &config_file,
            "# written by dd-node's local cluster\n[replicator]\ngossip_interval_ms = 300\ndelta_propagation_interval_ms = 50\nnotify_interval_ms = 50\n",
        )
        .map_err(io(format!("writing {}", config_file.display())))?;
        Ok(Self {
            children: (0..n).map(|_| None).collect(),
            options,
            specs,
            config_file,
        })
    }

    /// The replicas.
    pub fn nodes(&self) -> &[NodeSpec] {
        &self.specs
    }

    /// The log file of replica `i`.
    pub fn log_path(&self, i: usize) -> PathBuf {
        self.options.dir.join(format!("{}.log", self.specs[i].name))
    }

    fn command(&self, i: usize) -> Result<Command, ClusterError> {
        let spec = &self.specs[i];
        let log_path = self.log_path(i);
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&log_path)
            .map_err(io(format!("opening {}", log_path.display())))?;
        let log2 = log
            .try_clone()
            .map_err(io(format!("opening {}", log_path.display())))?;
        let mut cmd = Command::new(&self.options.exe);
        cmd.arg("serve")
            .arg("--replica")
            .arg(&spec.name)
            .arg("--http-addr")
            .arg(format!("127.0.0.1:{}", spec.http_port))
            .arg("--cluster-addr")
            .arg(format!("127.0.0.1:{}", spec.cluster_port))
            .arg("--store")
            .arg(&spec.store)
            .arg("--write-mode")
            .arg(&self.options.write_mode)
            .arg("--config")
            .arg(&self.config_file);
        for peer in self.specs.iter().filter(|p| p.name != spec.name) {
            cmd.arg("--peer")
                .arg(format!("{}=127.0.0.1:{}", peer.name, peer.cluster_port));
        }
        // Settings come from the flags above only.
        for var in [
            "DD_NODE_CONFIG",
            "DD_NODE_PEERS",
            "DD_NODE_DURABLE_KEYS",
            "DD_NODE_CLUSTER_NAME",
        ] {
            cmd.env_remove(var);
        }
        if std::env::var_os("RUST_LOG").is_none() {
            cmd.env("RUST_LOG", "info");
        }
        cmd.stdin(Stdio::null())
            .stdout(Stdio::from(log))
            .stderr(Stdio::from(log2))
            .kill_on_drop(true);
        Ok(cmd)
    }

    /// Starts every replica that is not running.
    pub fn start(&mut self) -> Result<(), ClusterError> {
        for i in 0..self.specs.len() {
            if self.children[i].is_none() {
                let child = self
                    .command(i)?
                    .spawn()
                    .map_err(io(format!("starting {}", self.options.exe.display())))?;
                self.children[i] = Some(child);
            }
        }
        Ok(())
    }

    /// Waits (bounded) until every replica answers `/health` with 200.
    pub async fn wait_healthy(&mut self, client: &reqwest::Client) -> Result<(), ClusterError> {
        for i in 0..self.specs.len() {
            self.wait_node_healthy(client, i).await?;
        }
        Ok(())
    }

    async fn wait_node_healthy(
        &mut self,
        client: &reqwest::Client,
        i: usize,
    ) -> Result<(), ClusterError> {
        let deadline = Instant::now() + self.options.health_timeout;
        let url = format!("{}/health", self.specs[i].url());
        loop {
            self.check_running(i)?;
            let detail = match client.get(&url).send().await {
                Ok(r) if r.status().is_success() => return Ok(()),
                Ok(r) => format!("last status {}", r.status()),
                Err(e) => format!("last error: {e}"),
            };
            if Instant::now() >= deadline {
                return Err(ClusterError::NotHealthy {
                    replica: self.specs[i].name.clone(),
                    timeout: self.options.health_timeout,
                    detail,
                    log: self.log_path(i).display().to_string(),
                });
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// Fails if replica `i` was started and has exited.
    pub fn check_running(&mut self, i: usize) -> Result<(), ClusterError> {
        let log = self.log_path(i).display().to_string();
        let exited = match &mut self.children[i] {
            Some(child) => child.try_wait().map_err(io("checking a child process"))?,
            None => None,
        };
        if let Some(status) = exited {
            self.children[i] = None;
            return Err(ClusterError::Exited {
                replica: self.specs[i].name.clone(),
                status: status.to_string(),
                log,
            });
        }
        Ok(())
    }

    /// Stops every replica with SIGTERM (graceful: write-behind data is flushed) and waits,
    /// bounded, for each to exit successfully; a replica that does not stop in time is killed.
    pub async fn stop(&mut self) -> Result<(), ClusterError> {
        for child in self.children.iter().flatten() {
            send_sigterm(child);
        }
        let mut first_error = None;
        for i in 0..self.children.len() {
            let Some(mut child) = self.children[i].take() else {
                continue;
            };
            let name = self.specs[i].name.clone();
            let result = match tokio::time::timeout(self.options.stop_timeout, child.wait()).await {
                Ok(Ok(status)) if status.success() => Ok(()),
                Ok(Ok(status)) => Err(ClusterError::StopFailed {
                    replica: name,
                    status: status.to_string(),
                    log: self.log_path(i).display().to_string(),
                }),
                Ok(Err(e)) => Err(io("waiting for a child process")(e)),
                Err(_) => {
                    // Killing a process that may just have exited: nothing more to do.
                    let _ = child.kill().await;
                    Err(ClusterError::StopTimeout {
                        replica: name,
                        timeout: self.options.stop_timeout,
                    })
                }
            };
            if let Err(e) = result {
                first_error.get_or_insert(e);
            }
        }
        first_error.map_or(Ok(()), Err)
    }

    /// Kills every replica with SIGKILL (no flushing: only what the store acknowledged survives)
    /// and reaps it.
    pub async fn kill(&mut self) -> Result<(), ClusterError> {
        for slot in &mut self.children {
            if let Some(mut child) = slot.take() {
                child.kill().await.map_err(io("killing a child process"))?;
            }
        }
        Ok(())
    }

    /// The last `lines` lines of every replica's log, for error reports.
    pub fn log_tails(&self, lines: usize) -> String {
        let mut out = String::new();
        for i in 0..self.specs.len() {
            let path = self.log_path(i);
            let text = std::fs::read_to_string(&path).unwrap_or_default();
            let all: Vec<&str> = text.lines().collect();
            let tail = &all[all.len().saturating_sub(lines)..];
            out.push_str(&format!(
                "--- {} ---\n{}\n",
                path.display(),
                tail.join("\n")
            ));
        }
        out
    }
}

#[cfg(unix)]
fn send_sigterm(child: &Child) {
    use nix::sys::signal::{Signal, kill};
    use nix::unistd::Pid;
    let Some(pid) = child.id().and_then(|id| i32::try_from(id).ok()) else {
        return;
    };
    if let Err(e) = kill(Pid::from_raw(pid), Signal::SIGTERM) {
        tracing::warn!(pid, error = %e, "sending SIGTERM failed");
    }
}

#[cfg(not(unix))]
fn send_sigterm(child: &Child) {
    // No SIGTERM: `stop` waits for the timeout and then kills.
    let _ = child;
}
