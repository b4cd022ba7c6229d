//! The child process of the disk-fault tests (see `integration_tests::disk_fault`): reads one
//! JSON request per line on stdin, does it (mounts, filling, store and durable-layer calls) and
//! prints one JSON reply per line on stdout, until stdin closes.

#[cfg(target_os = "linux")]
mod linux {
    use std::fs::{self, File};
    use std::io::{self, BufRead, Write};
    use std::path::Path;
    use std::process::ExitCode;
    use std::sync::Arc;
    use std::time::Duration;

    use bytes::Bytes;
    use dd_core::crdt::GCounter;
    use dd_core::data::TypeRegistry;
    use dd_core::durable::{CrdtValueStore, DurableError, DurableValue};
    use dd_core::store::{DurableStateStore, Revision, StoreError, WriteOp, WriteOutcome};
    use dd_core::{ReplicaId, UniqueReplicaId};
    use dd_durable::{DurableDistributedDataStore, DurableOptions, WriteMode};
    use futures::TryStreamExt;
    use integration_tests::disk_fault::{
        Answer, ErrorReply, FaultMode, OpSpec, OutcomeReply, RecordReply, Reply, Request,
        StatsReply,
    };
    use nix::mount::{MsFlags, mount};
    use nix::sys::resource::{Resource, getrlimit, setrlimit};

    /// The filler file's name.
    const FILLER: &str = "filler";

    struct State {
        mode: FaultMode,
        store: Option<Arc<dyn DurableStateStore>>,
        durable: Option<DurableDistributedDataStore>,
        registry: TypeRegistry,
    }

    fn other(kind: &str, message: impl ToString) -> ErrorReply {
        ErrorReply {
            kind: kind.to_owned(),
            transient: false,
            message: message.to_string(),
        }
    }

    fn store_error(e: &StoreError) -> ErrorReply {
        let kind = match e {
            StoreError::Unavailable { .. } => "Unavailable",
            StoreError::Corrupt { .. } => "Corrupt",
            StoreError::Config { .. } => "Config",
            StoreError::Backend { .. } => "Backend",
            _ => "StoreError",
        };
        ErrorReply {
            kind: kind.to_owned(),
            transient: e.is_transient(),
            message: e.to_string(),
        }
    }

    fn durable_error(e: &DurableError) -> ErrorReply {
        match e {
            DurableError::Store(e) => store_error(e),
            other_error => other("DurableError", other_error),
        }
    }

    fn open_store(state: &State) -> Result<&Arc<dyn DurableStateStore>, ErrorReply> {
        state
            .store
            .as_ref()
            .ok_or_else(|| other("Protocol", "no store is open"))
    }

    fn durable(state: &State) -> Result<&DurableDistributedDataStore, ErrorReply> {
        state
            .durable
            .as_ref()
            .ok_or_else(|| other("Protocol", "no durable layer is open"))
    }

    fn mount_error(what: String) -> impl FnOnce(nix::Error) -> ErrorReply {
        move |e| other("Mount", format!("{what}: {e}"))
    }

    /// Writes zeros to `dir/filler` until the file system is full; the bytes written.
    fn fill(dir: &Path) -> Result<u64, ErrorReply> {
        let path = dir.join(FILLER);
        let io = |e: io::Error| other("Io", format!("filling {}: {e}", path.display()));
        let mut file = File::create(&path).map_err(io)?;
        let chunk = vec![0u8; 64 * 1024];
        let mut written = 0u64;
        // Bounded: a tmpfs of the tests is a few MiB; 1 GiB means the mount did not happen.
        while written < 1 << 30 {
            match file.write(&chunk) {
                Ok(0) => break,
                Ok(n) => written += n as u64,
                Err(e) if e.kind() == io::ErrorKind::StorageFull => break,
                Err(e) => return Err(io(e)),
            }
        }
        if written >= 1 << 30 {
            return Err(other(
                "Io",
                format!("{} never filled up: not a small tmpfs", dir.display()),
            ));
        }
        Ok(written)
    }

    fn file_size_limit(soft: Option<u64>) -> Result<(), ErrorReply> {
        let (_, hard) = getrlimit(Resource::RLIMIT_FSIZE)
            .map_err(|e| other("Rlimit", format!("getrlimit(RLIMIT_FSIZE): {e}")))?;
        setrlimit(Resource::RLIMIT_FSIZE, soft.unwrap_or(hard), hard)
            .map_err(|e| other("Rlimit", format!("setrlimit(RLIMIT_FSIZE): {e}")))
    }

    fn list_files(root: &Path, dir: &Path, out: &mut Vec<String>) -> io::Result<()> {
        for entry in fs::read_dir(dir)? {
            let entry = entry?;
            let path = entry.path();
            if entry.file_type()?.is_dir() {
                list_files(root, &path, out)?;
            } else {
                let relative = path.strip_prefix(root).unwrap_or(&path);
                out.push(relative.display().to_string());
            }
        }
        Ok(())
    }

    fn op(spec: OpSpec) -> Result<WriteOp, ErrorReply> {
        match (spec.value, spec.expected) {
            (Some(value), expected) => Ok(WriteOp::Put {
                key: spec.key,
                expected: expected.map(Revision),
                value: Bytes::from(value),
            }),
            (None, Some(expected)) => Ok(WriteOp::Delete {
                key: spec.key,
                expected: Revision(expected),
            }),
            (None, None) => Err(other("Protocol", "a delete needs an expected revision")),
        }
    }

    fn record(r: dd_core::store::StoredRecord) -> RecordReply {
        RecordReply {
            key: r.key,
            revision: r.revision.0,
            value: r.value.to_vec(),
        }
    }

    async fn handle(state: &mut State, request: Request) -> Reply {
        match request {
            Request::MountTmpfs { dir, size_bytes } => {
                let options = format!("size={size_bytes},mode=0755");
                mount(
                    Some("tmpfs"),
                    &dir,
                    Some("tmpfs"),
                    MsFlags::empty(),
                    Some(options.as_str()),
                )
                .map_err(mount_error(format!("mount a tmpfs on {}", dir.display())))?;
                Ok(Answer::Done)
            }
            Request::BindSelf { dir } => {
                mount(
                    Some(&dir),
                    &dir,
                    None::<&str>,
                    MsFlags::MS_BIND,
                    None::<&str>,
                )
                .map_err(mount_error(format!("bind-mount {}", dir.display())))?;
                Ok(Answer::Done)
            }
            Request::Remount { dir, read_only } => {
                let mut flags = MsFlags::MS_REMOUNT | MsFlags::MS_BIND;
                if read_only {
                    flags |= MsFlags::MS_RDONLY;
                }
                mount(None::<&str>, &dir, None::<&str>, flags, None::<&str>)
                    .map_err(mount_error(format!("remount {}", dir.display())))?;
                Ok(Answer::Done)
            }
            Request::Fill { dir } => match state.mode {
                FaultMode::Namespace => Ok(Answer::Filled(fill(&dir)?)),
                FaultMode::FileSizeLimit => {
                    file_size_limit(Some(0))?;
                    Ok(Answer::Filled(0))
                }
            },
            Request::Free { dir } => match state.mode {
                FaultMode::Namespace => {
                    let path = dir.join(FILLER);
                    fs::remove_file(&path)
                        .map_err(|e| other("Io", format!("removing {}: {e}", path.display())))?;
                    Ok(Answer::Done)
                }
                FaultMode::FileSizeLimit => {
                    file_size_limit(None)?;
                    Ok(Answer::Done)
                }
            },
            Request::Open { url } => {
                // The open store stays open if the new one cannot be opened.
                let store = dd_durable::open_store(&url).await.map_err(|e| match e {
                    dd_durable::OpenError::Store(e) => store_error(&e),
                    e => other("OpenError", e),
                })?;
                let describe = store.describe();
                state.durable = None;
                state.store = Some(store);
                Ok(Answer::Opened(describe))
            }
            Request::Close => {
                state.durable = None;
                state.store = None;
                Ok(Answer::Done)
            }
            Request::Write { replica, ops } => {
                let ops = ops.into_iter().map(op).collect::<Result<Vec<_>, _>>()?;
                let outcomes = open_store(state)?
                    .write_batch(&replica, ops)
                    .await
                    .map_err(|e| store_error(&e))?;
                Ok(Answer::Outcomes(
                    outcomes
                        .into_iter()
                        .map(|o| match o {
                            WriteOutcome::Written(r) => OutcomeReply::Written(r.0),
                            WriteOutcome::Conflict { actual } => {
                                OutcomeReply::Conflict(actual.map(|r| r.0))
                            }
                        })
                        .collect(),
                ))
            }
            Request::Get { replica, key } => {
                let found = open_store(state)?
                    .get(&replica, &key)
                    .await
                    .map_err(|e| store_error(&e))?;
                Ok(Answer::Record(found.map(record)))
            }
            Request::Scan { replica } => {
                let records: Vec<_> = open_store(state)?
                    .scan(&replica, 7)
                    .try_collect()
                    .await
                    .map_err(|e| store_error(&e))?;
                Ok(Answer::Records(records.into_iter().map(record).collect()))
            }
            Request::Files { dir } => {
                let mut files = Vec::new();
                list_files(&dir, &dir, &mut files)
                    .map_err(|e| other("Io", format!("listing {}: {e}", dir.display())))?;
                files.sort();
                Ok(Answer::Files(files))
            }
            Request::Durable { write_behind_ms } => {
                let store = Arc::clone(open_store(state)?);
                let write_mode = match write_behind_ms {
                    None => WriteMode::Sync,
                    Some(ms) => WriteMode::WriteBehind {
                        interval: Duration::from_millis(ms),
                    },
                };
                let options = DurableOptions {
                    write_mode,
                    retry_interval: Duration::from_millis(20),
                    max_retry_backoff: Duration::from_millis(200),
                    ..DurableOptions::default()
                };
                state.durable = Some(DurableDistributedDataStore::from_arc(store, options));
                Ok(Answer::Done)
            }
            Request::DurableStore {
                replica,
                key,
                count,
            } => {
                let mut counter = GCounter::new();
                counter
                    .increment(&UniqueReplicaId::new("writer", 1), count)
                    .map_err(|e| other("Crdt", e))?;
                let entries = vec![(key, DurableValue::Data(Box::new(counter)))];
                durable(state)?
                    .store(&ReplicaId::new(replica), entries)
                    .await
                    .map_err(|e| durable_error(&e))?;
                Ok(Answer::Done)
            }
            Request::DurableFlush => {
                durable(state)?
                    .flush()
                    .await
                    .map_err(|e| durable_error(&e))?;
                Ok(Answer::Done)
            }
            Request::DurableStats => {
                let stats = durable(state)?.stats();
                Ok(Answer::Stats(StatsReply {
                    pending: stats.pending,
                    write_errors: stats.write_errors,
                    records_written: stats.records_written,
                }))
            }
            Request::DurableLoad { replica } => {
                let replica = ReplicaId::new(replica);
                let loaded: Vec<(String, DurableValue)> = durable(state)?
                    .load(&replica, &state.registry)
                    .try_collect()
                    .await
                    .map_err(|e| durable_error(&e))?;
                let mut counters = Vec::with_capacity(loaded.len());
                for (key, value) in loaded {
                    let DurableValue::Data(data) = value else {
                        return Err(other("Protocol", format!("key {key} is deleted")));
                    };
                    let Some(counter) = data.downcast_ref::<GCounter>() else {
                        return Err(other("Protocol", format!("key {key} is not a GCounter")));
                    };
                    let value = u64::try_from(counter.value())
                        .map_err(|e| other("Protocol", format!("key {key}: {e}")))?;
                    counters.push((key, value));
                }
                Ok(Answer::Counters(counters))
            }
        }
    }

    async fn serve(mode: FaultMode) -> Result<(), String> {
        let mut state = State {
            mode,
            store: None,
            durable: None,
            registry: TypeRegistry::with_builtin_types(),
        };
        let stdin = io::stdin();
        for line in stdin.lock().lines() {
            let line = line.map_err(|e| format!("stdin: {e}"))?;
            let reply: Reply = match serde_json::from_str::<Request>(&line) {
                Ok(request) => handle(&mut state, request).await,
                Err(e) => Err(other("Protocol", format!("not a request: {e}: {line:?}"))),
            };
            let text = serde_json::to_string(&reply).map_err(|e| format!("reply: {e}"))?;
            let mut out = io::stdout().lock();
            writeln!(out, "{text}").map_err(|e| format!("stdout: {e}"))?;
            out.flush().map_err(|e| format!("stdout: {e}"))?;
        }
        if let Some(durable) = state.durable.take() {
            durable.close().await.map_err(|e| format!("close: {e}"))?;
        }
        Ok(())
    }

    pub fn main() -> ExitCode {
        let args: Vec<String> = std::env::args().skip(1).collect();
        let Some(mode) = args.first().and_then(|a| FaultMode::from_arg(a)) else {
            eprintln!("disk_fault_child: expected one argument: namespace | file-size-limit");
            return ExitCode::from(2);
        };
        integration_tests::child::run_child("disk_fault_child", serve(mode))
    }
}

#[cfg(target_os = "linux")]
fn main() -> std::process::ExitCode {
    linux::main()
}

#[cfg(not(target_os = "linux"))]
fn main() -> std::process::ExitCode {
    eprintln!("disk_fault_child: the disk-fault tests need Linux (mount namespaces, tmpfs)");
    std::process::ExitCode::from(2)
}
