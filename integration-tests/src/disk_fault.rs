//! The protocol between the disk-fault tests (`tests/disk_faults.rs`) and the `disk_fault_child`
//! binary, and the test side's driver of that child.
//!
//! Real full-disk and read-only errors need a file system the test can fill and remount. The
//! child runs in its own user and mount namespace (`unshare --user --map-root-user --mount`),
//! where it may mount a small tmpfs over a directory, fill it, free it and bind-remount it
//! read-only — none of which the test process sees. The test therefore drives everything that
//! touches that file system through the child: one JSON [`Request`] per line on the child's
//! stdin, one JSON [`Reply`] per line on its stdout.
//!
//! Where namespaces are not allowed, [`FaultMode::FileSizeLimit`] runs the child without one: it
//! ignores `SIGXFSZ` and "fills the disk" by lowering its own `RLIMIT_FSIZE` soft limit to 0, so
//! that every write that grows a file fails with a real `EFBIG`; "freeing" raises it again.

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

use serde::{Deserialize, Serialize};
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader, Lines};
use tokio::process::{Child, ChildStdin, ChildStdout, Command};

/// How the child makes the disk full.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum FaultMode {
    /// In a user and mount namespace: a small tmpfs filled by a filler file (`ENOSPC`); read-only
    /// bind mounts (`EROFS`).
    Namespace,
    /// No namespace: the `RLIMIT_FSIZE` soft limit lowered to 0 (`EFBIG`). Read-only mounts are
    /// not available in this mode.
    FileSizeLimit,
}

impl FaultMode {
    /// The command-line argument of the child.
    pub fn as_arg(self) -> &'static str {
        match self {
            FaultMode::Namespace => "namespace",
            FaultMode::FileSizeLimit => "file-size-limit",
        }
    }

    /// Parses [`FaultMode::as_arg`].
    pub fn from_arg(arg: &str) -> Option<FaultMode> {
        match arg {
            "namespace" => Some(FaultMode::Namespace),
            "file-size-limit" => Some(FaultMode::FileSizeLimit),
            _ => None,
        }
    }
}

/// One write of a [`Request::Write`] batch.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct OpSpec {
    /// The key.
    pub key: String,
    /// The expected revision (`None`: must not exist).
    pub expected: Option<u64>,
    /// The new value; `None` deletes the key (then `expected` must be set).
    pub value: Option<Vec<u8>>,
}

/// What the test asks the child to do.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum Request {
    /// Mount a tmpfs of `size_bytes` on `dir` (namespace mode).
    MountTmpfs {
        /// The mount point (it must exist).
        dir: PathBuf,
        /// The size of the tmpfs.
        size_bytes: u64,
    },
    /// Bind-mount `dir` onto itself, so that it can be remounted read-only on its own.
    BindSelf {
        /// The directory.
        dir: PathBuf,
    },
    /// Remount the bind mount at `dir` read-only or read-write.
    Remount {
        /// The bind mount.
        dir: PathBuf,
        /// Read-only (`true`) or read-write.
        read_only: bool,
    },
    /// Use up the free space: write a filler file in `dir` until `ENOSPC` (namespace mode), or
    /// lower the file-size limit to 0 (file-size-limit mode).
    Fill {
        /// Where the filler file goes.
        dir: PathBuf,
    },
    /// Give the space back: delete the filler file, or raise the file-size limit again.
    Free {
        /// Where the filler file is.
        dir: PathBuf,
    },
    /// Open the store at `url` (`dd_durable::open_store`); it replaces the open store and drops
    /// the durable layer, unless it fails: then both stay as they were.
    Open {
        /// The store URL.
        url: String,
    },
    /// Drop the open store (and the durable layer over it).
    Close,
    /// `DurableStateStore::write_batch`.
    Write {
        /// The replica.
        replica: String,
        /// The writes.
        ops: Vec<OpSpec>,
    },
    /// `DurableStateStore::get`.
    Get {
        /// The replica.
        replica: String,
        /// The key.
        key: String,
    },
    /// Every record of `replica` through `DurableStateStore::scan`.
    Scan {
        /// The replica.
        replica: String,
    },
    /// Every file under `dir`, recursively, relative to `dir`.
    Files {
        /// The directory.
        dir: PathBuf,
    },
    /// Put a `DurableDistributedDataStore` over the open store; `write_behind_ms` `None` is
    /// `WriteMode::Sync`.
    Durable {
        /// The write-behind interval, if any.
        write_behind_ms: Option<u64>,
    },
    /// `CrdtValueStore::store` of a `GCounter` of value `count` under `key`.
    DurableStore {
        /// The replica.
        replica: String,
        /// The key.
        key: String,
        /// The counter's value.
        count: u64,
    },
    /// `CrdtValueStore::flush`.
    DurableFlush,
    /// The durable layer's counters.
    DurableStats,
    /// Every entry `CrdtValueStore::load` returns for `replica` (all `GCounter`s).
    DurableLoad {
        /// The replica.
        replica: String,
    },
}

/// A record as the child read it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RecordReply {
    /// The key.
    pub key: String,
    /// The revision.
    pub revision: u64,
    /// The stored bytes.
    pub value: Vec<u8>,
}

/// The outcome of one write.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum OutcomeReply {
    /// Written at this revision.
    Written(u64),
    /// Conflict: the actual revision.
    Conflict(Option<u64>),
}

/// The counters of the durable layer.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct StatsReply {
    /// Entries queued, not yet written.
    pub pending: usize,
    /// Failed writes so far.
    pub write_errors: u64,
    /// Records written so far.
    pub records_written: u64,
}

/// What a request returned.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum Answer {
    /// Done, nothing to report.
    Done,
    /// The filler file took this many bytes (0 in file-size-limit mode).
    Filled(u64),
    /// The store opened; its `describe()`.
    Opened(String),
    /// The outcomes of a batch.
    Outcomes(Vec<OutcomeReply>),
    /// One record, if any.
    Record(Option<RecordReply>),
    /// Records of a scan, in order.
    Records(Vec<RecordReply>),
    /// File paths, sorted.
    Files(Vec<String>),
    /// The durable layer's counters.
    Stats(StatsReply),
    /// Counter values by key, as loaded.
    Counters(Vec<(String, u64)>),
}

/// An error the child saw.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ErrorReply {
    /// The error's variant (`Unavailable`, `Corrupt`, `Config`, `Backend`, or another name for
    /// errors that are not `StoreError`s).
    pub kind: String,
    /// `StoreError::is_transient`.
    pub transient: bool,
    /// The error's message (its `Display`).
    pub message: String,
}

/// The child's reply to one request.
pub type Reply = Result<Answer, ErrorReply>;

/// How long the test waits for one reply.
pub const REPLY_BOUND: Duration = Duration::from_secs(60);

/// The running child, as the test drives it.
#[derive(Debug)]
pub struct FaultChild {
    child: Child,
    stdin: ChildStdin,
    lines: Lines<BufReader<ChildStdout>>,
    mode: FaultMode,
}

impl FaultChild {
    /// Starts the child binary `exe` in `mode` (in a new user and mount namespace for
    /// [`FaultMode::Namespace`], with `SIGXFSZ` ignored for [`FaultMode::FileSizeLimit`]).
    pub fn spawn(exe: &Path, mode: FaultMode) -> std::io::Result<FaultChild> {
        let mut command = match mode {
            FaultMode::Namespace => {
                let mut c = Command::new("unshare");
                c.args([
                    "--user",
                    "--map-root-user",
                    "--mount",
                    "--propagation",
                    "private",
                ]);
                c.arg(exe);
                c
            }
            FaultMode::FileSizeLimit => {
                // An ignored signal stays ignored across exec: writes past the limit then fail
                // with EFBIG instead of killing the child.
                let mut c = Command::new("sh");
                c.args(["-c", "trap '' XFSZ && exec \"$0\" \"$@\""]);
                c.arg(exe);
                c
            }
        };
        let mut child = command
            .arg(mode.as_arg())
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .kill_on_drop(true)
            .spawn()?;
        let missing = || std::io::Error::other("the child's pipes are missing");
        let stdin = child.stdin.take().ok_or_else(missing)?;
        let stdout = child.stdout.take().ok_or_else(missing)?;
        Ok(FaultChild {
            child,
            stdin,
            lines: BufReader::new(stdout).lines(),
            mode,
        })
    }

    /// The mode the child runs in.
    pub fn mode(&self) -> FaultMode {
        self.mode
    }

    /// Sends `request` and waits (at most [`REPLY_BOUND`]) for the reply. `Err` when the child
    /// cannot be talked to (it died, or replied garbage): the message includes its stderr.
    pub async fn call(&mut self, request: &Request) -> Result<Reply, String> {
        let exchange = async {
            let mut line = serde_json::to_string(request).map_err(|e| e.to_string())?;
            line.push('\n');
            self.stdin
                .write_all(line.as_bytes())
                .await
                .map_err(|e| format!("writing to the child: {e}"))?;
            self.stdin
                .flush()
                .await
                .map_err(|e| format!("writing to the child: {e}"))?;
            let reply = self
                .lines
                .next_line()
                .await
                .map_err(|e| format!("reading from the child: {e}"))?
                .ok_or_else(|| "the child closed its stdout".to_owned())?;
            serde_json::from_str::<Reply>(&reply)
                .map_err(|e| format!("the child replied {reply:?}, not a reply: {e}"))
        };
        match tokio::time::timeout(REPLY_BOUND, exchange).await {
            Ok(Ok(reply)) => Ok(reply),
            Ok(Err(e)) => Err(format!("{e}; the child's stderr:\n{}", self.stderr().await)),
            Err(_) => Err(format!(
                "no reply to {request:?} within {REPLY_BOUND:?}; the child's stderr:\n{}",
                self.stderr().await
            )),
        }
    }

    /// Kills the child and returns what it wrote to stderr.
    async fn stderr(&mut self) -> String {
        let _ = self.child.start_kill();
        let mut text = String::new();
        if let Some(mut stderr) = self.child.stderr.take() {
            let _ = tokio::time::timeout(REPLY_BOUND, stderr.read_to_string(&mut text)).await;
        }
        text
    }

    /// Closes the child's stdin and waits (bounded) for it to exit; `Err` unless it exits
    /// successfully.
    pub async fn finish(mut self) -> Result<(), String> {
        drop(self.stdin);
        match tokio::time::timeout(REPLY_BOUND, self.child.wait()).await {
            Ok(Ok(status)) if status.success() => Ok(()),
            Ok(Ok(status)) => {
                let mut text = String::new();
                if let Some(mut stderr) = self.child.stderr.take() {
                    let _ =
                        tokio::time::timeout(REPLY_BOUND, stderr.read_to_string(&mut text)).await;
                }
                Err(format!(
                    "the child exited with {status}; its stderr:\n{text}"
                ))
            }
            Ok(Err(e)) => Err(format!("waiting for the child: {e}")),
            Err(_) => Err(format!("the child did not exit within {REPLY_BOUND:?}")),
        }
    }
}

/// The environment variable that forces a [`FaultMode`] (`namespace` or `file-size-limit`)
/// instead of probing, e.g. to run the fallback where namespaces work.
pub const FAULT_MODE_VAR: &str = "DD_DISK_FAULT_MODE";

/// Starts the child `exe` with a small disk at `mount_point` (an existing, empty directory).
///
/// In [`FaultMode::Namespace`] (tried first) the child mounts a tmpfs of `size_bytes` there.
/// If that is not possible here (no `unshare`, user namespaces disabled, mounting refused), the
/// reason is printed and a child in [`FaultMode::FileSizeLimit`] is started instead, with
/// `mount_point` an ordinary directory. [`FAULT_MODE_VAR`] forces one mode (no fallback then).
/// Prints the mode used.
pub async fn start_with_small_disk(
    exe: &Path,
    mount_point: &Path,
    size_bytes: u64,
) -> Result<FaultChild, String> {
    let forced = match std::env::var(FAULT_MODE_VAR) {
        Ok(value) => Some(FaultMode::from_arg(&value).ok_or_else(|| {
            format!("{FAULT_MODE_VAR}={value:?}: expected namespace or file-size-limit")
        })?),
        Err(_) => None,
    };
    if forced != Some(FaultMode::FileSizeLimit) {
        let attempt = async {
            let mut child = FaultChild::spawn(exe, FaultMode::Namespace)
                .map_err(|e| format!("cannot start `unshare`: {e}"))?;
            child
                .call(&Request::MountTmpfs {
                    dir: mount_point.to_path_buf(),
                    size_bytes,
                })
                .await?
                .map_err(|e| e.message)?;
            Ok::<FaultChild, String>(child)
        };
        match attempt.await {
            Ok(child) => {
                eprintln!(
                    "disk faults: a {size_bytes}-byte tmpfs on {} in a user and mount namespace \
                     (ENOSPC, EROFS)",
                    mount_point.display()
                );
                return Ok(child);
            }
            Err(reason) if forced.is_none() => eprintln!(
                "disk faults: no mount namespace here ({}); falling back to the RLIMIT_FSIZE \
                 file-size limit (EFBIG)",
                reason.trim().replace('\n', " ")
            ),
            Err(reason) => return Err(format!("{FAULT_MODE_VAR}=namespace: {reason}")),
        }
    } else {
        eprintln!("disk faults: {FAULT_MODE_VAR} forces the RLIMIT_FSIZE file-size limit (EFBIG)");
    }
    FaultChild::spawn(exe, FaultMode::FileSizeLimit)
        .map_err(|e| format!("cannot start the child with `sh`: {e}"))
}
