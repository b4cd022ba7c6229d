//! The blocking implementation: a store directory with a directory per replica and a file per
//! key. Everything here does blocking file I/O and runs on tokio's blocking pool.

use std::collections::HashMap;
use std::fs::{self, File};
use std::io::{self, Read, Write};
use std::path::{Path, PathBuf};

use bytes::Bytes;
use dd_store::revision;
use dd_store::{Revision, ScanPage, StoredRecord, WriteOp, WriteOutcome, batch_subject};
use tracing::{debug, warn};

use crate::error::FsError;
use crate::lock::{DirLock, LOCK_FILE};
use crate::name::{self, FileName};
use crate::record;

/// The marker file that makes a directory a dd-store-fs directory.
pub const MARKER_FILE: &str = ".dd-store-fs";
/// The marker file's content: the layout version.
pub const MARKER_CONTENT: &str = "dd-store-fs layout 1\n";
/// The file in a hashed replica directory that holds the replica's full name.
pub const REPLICA_NAME_FILE: &str = ".replica";
/// The prefix of temporary files.
pub const TEMP_PREFIX: &str = ".tmp-";
/// How many threads write and sync the files of one batch at most.
pub const SYNC_WORKERS: usize = 8;
/// Longest key accepted when listing hashed names (guards against damaged headers).
const MAX_LISTED_KEY_LEN: usize = 16 * 1024 * 1024;

fn is_reserved(file_name: &str) -> bool {
    file_name == LOCK_FILE || file_name == REPLICA_NAME_FILE || file_name.starts_with(TEMP_PREFIX)
}

/// `replica 'r' key 'k'`, for errors.
fn record_subject(replica: &str, key: &str) -> String {
    format!("replica '{replica}' key '{key}'")
}

fn temp_name() -> String {
    format!("{TEMP_PREFIX}{:016x}", rand::random::<u64>())
}

/// A store directory (canonical path).
#[derive(Debug)]
pub struct StoreDir {
    dir: PathBuf,
}

/// What a batch knows about one key.
struct KeyState {
    revision: Option<Revision>,
    value: Option<Bytes>,
    dirty: bool,
}

impl StoreDir {
    /// Opens (creating it if needed) a store directory: checks or writes the marker and removes
    /// temporary files left by a crash.
    pub fn open(dir: &Path) -> Result<StoreDir, FsError> {
        fs::create_dir_all(dir).map_err(|e| FsError::io(dir, "create directory", dir, e))?;
        let dir = fs::canonicalize(dir).map_err(|e| FsError::io(dir, "canonicalize", dir, e))?;
        let store = StoreDir { dir };
        // On a read-only file system the lock file cannot be opened for writing: the store opens
        // for reading (writes fail with a read-only error until the file system is remounted
        // read-write) if it is a store already; a directory that is not one cannot become one.
        let lock = match DirLock::acquire(&store.dir, &store.dir) {
            Ok(lock) => Some(lock),
            Err(e) if e.is_read_only() => None,
            Err(e) => return Err(e),
        };
        store.check_marker()?;
        let Some(lock) = lock else {
            warn!(dir = %store.dir.display(), "the store's file system is read-only: records can \
                be read, writes fail until it is remounted read-write");
            return Ok(store);
        };
        store.remove_temp_files(&store.dir)?;
        drop(lock);
        // A replica being written right now (its lock is held) may have a live temporary file;
        // its leftovers, if any, are removed at a later open.
        for replica_dir in store.replica_dirs(false)? {
            if let Some(_lock) = DirLock::try_acquire(&store.dir, &replica_dir)? {
                store.remove_temp_files(&replica_dir)?;
            }
        }
        Ok(store)
    }

    /// The canonical store directory.
    pub fn path(&self) -> &Path {
        &self.dir
    }

    fn io(&self, op: &'static str, path: &Path, e: io::Error) -> FsError {
        FsError::io(&self.dir, op, path, e)
    }

    fn check_marker(&self) -> Result<(), FsError> {
        let marker = self.dir.join(MARKER_FILE);
        match fs::read(&marker) {
            Ok(content) if content == MARKER_CONTENT.as_bytes() => return Ok(()),
            Ok(content) => {
                return Err(FsError::NotAStore {
                    dir: self.dir.clone(),
                    reason: format!(
                        "{} holds {:?}, not {MARKER_CONTENT:?} (an unknown layout version?)",
                        marker.display(),
                        String::from_utf8_lossy(&content[..content.len().min(64)])
                    ),
                });
            }
            Err(e) if e.kind() == io::ErrorKind::NotFound => {}
            Err(e) => return Err(self.io("read", &marker, e)),
        }
        let entries = fs::read_dir(&self.dir).map_err(|e| self.io("list", &self.dir, e))?;
        for entry in entries {
            let entry = entry.map_err(|e| self.io("list", &self.dir, e))?;
            let name = entry.file_name();
            let name = name.to_string_lossy();
            if !is_reserved(&name) {
                return Err(FsError::NotAStore {
                    dir: self.dir.clone(),
                    reason: format!(
                        "the directory is not empty (it holds {name:?}) and has no {MARKER_FILE} marker"
                    ),
                });
            }
        }
        self.write_atomically(&self.dir, &marker, MARKER_CONTENT.as_bytes())?;
        self.sync_dir(&self.dir)
    }

    fn remove_temp_files(&self, dir: &Path) -> Result<(), FsError> {
        let entries = fs::read_dir(dir).map_err(|e| self.io("list", dir, e))?;
        for entry in entries {
            let entry = entry.map_err(|e| self.io("list", dir, e))?;
            if entry.file_name().to_string_lossy().starts_with(TEMP_PREFIX) {
                let path = entry.path();
                warn!(path = %path.display(), "removing a temporary file left by an interrupted write");
                fs::remove_file(&path).map_err(|e| self.io("remove temporary file", &path, e))?;
            }
        }
        Ok(())
    }

    /// The replica directories. With `strict`, any other entry (except dot files and a file
    /// system's `lost+found`) is an [`FsError::ForeignEntry`]; otherwise it is skipped.
    fn replica_dirs(&self, strict: bool) -> Result<Vec<PathBuf>, FsError> {
        let mut dirs = Vec::new();
        let entries = fs::read_dir(&self.dir).map_err(|e| self.io("list", &self.dir, e))?;
        for entry in entries {
            let entry = entry.map_err(|e| self.io("list", &self.dir, e))?;
            let name = entry.file_name();
            let name = name.to_string_lossy();
            if name.starts_with('.') || name == "lost+found" {
                continue;
            }
            let file_type = entry
                .file_type()
                .map_err(|e| self.io("stat", &entry.path(), e))?;
            if file_type.is_dir() {
                dirs.push(entry.path());
            } else if strict {
                return Err(FsError::ForeignEntry {
                    dir: self.dir.clone(),
                    path: entry.path(),
                    reason: "a file where only replica directories belong".to_owned(),
                });
            }
        }
        Ok(dirs)
    }

    /// Refuses an empty replica name or key (the trait requires non-empty names).
    fn check_name(&self, what: &'static str, name: &str) -> Result<(), FsError> {
        if name.is_empty() {
            return Err(FsError::EmptyName {
                dir: self.dir.clone(),
                what,
            });
        }
        Ok(())
    }

    /// The directory of `replica` and whether its name is hashed.
    pub fn replica_dir(&self, replica: &str) -> (PathBuf, bool) {
        let name = FileName::for_name(replica);
        let hashed = matches!(name, FileName::Hashed(_));
        (self.dir.join(name.as_str()), hashed)
    }

    fn corrupt(&self, replica: &str, key: &str, path: &Path, reason: String) -> FsError {
        FsError::Corrupt {
            dir: self.dir.clone(),
            replica: replica.to_owned(),
            key: key.to_owned(),
            path: path.to_path_buf(),
            reason,
        }
    }

    fn sync_dir(&self, dir: &Path) -> Result<(), FsError> {
        File::open(dir)
            .and_then(|d| d.sync_all())
            .map_err(|e| self.io("sync directory", dir, e))
    }

    /// Writes `bytes` to a new temporary file in `dir` and syncs it; returns its path.
    fn write_temp(&self, dir: &Path, bytes: &[u8]) -> Result<PathBuf, FsError> {
        let temp = dir.join(temp_name());
        let written = File::create_new(&temp).and_then(|mut f| {
            f.write_all(bytes)?;
            f.sync_data()
        });
        match written {
            Ok(()) => Ok(temp),
            Err(e) => {
                // Best effort: a leftover temporary file is removed at the next open.
                let _ = fs::remove_file(&temp);
                Err(self.io("write temporary file", &temp, e))
            }
        }
    }

    /// Writes and syncs one temporary file per `(key, bytes)` of `files`, on up to
    /// [`SYNC_WORKERS`] threads (concurrent syncs share journal commits, which is many times
    /// faster than syncing one file after the other). Returns the temporary paths in the order of
    /// `files`; on error removes the ones written and returns the first error, naming its key.
    fn write_temps(
        &self,
        dir: &Path,
        replica: &str,
        files: &[(String, Vec<u8>)],
    ) -> Result<Vec<PathBuf>, FsError> {
        let write_chunk = |chunk: &[(String, Vec<u8>)]| -> Vec<Result<PathBuf, FsError>> {
            chunk
                .iter()
                .map(|(key, bytes)| {
                    self.write_temp(dir, bytes)
                        .map_err(|e| e.about(|| record_subject(replica, key)))
                })
                .collect()
        };
        let workers = files.len().clamp(1, SYNC_WORKERS);
        let results: Vec<Result<PathBuf, FsError>> = if workers == 1 {
            write_chunk(files)
        } else {
            let chunk_len = files.len().div_ceil(workers);
            std::thread::scope(|scope| {
                let handles: Vec<_> = files
                    .chunks(chunk_len)
                    .map(|chunk| (chunk.len(), scope.spawn(move || write_chunk(chunk))))
                    .collect();
                handles
                    .into_iter()
                    .flat_map(|(len, handle)| {
                        handle.join().unwrap_or_else(|_| {
                            (0..len)
                                .map(|_| {
                                    Err(FsError::Task {
                                        dir: self.dir.clone(),
                                        message: "a file-writing thread panicked".to_owned(),
                                    })
                                })
                                .collect()
                        })
                    })
                    .collect()
            })
        };
        let mut temps = Vec::with_capacity(results.len());
        let mut first_error = None;
        for result in results {
            match result {
                Ok(temp) => temps.push(temp),
                Err(e) => {
                    first_error.get_or_insert(e);
                }
            }
        }
        match first_error {
            None => Ok(temps),
            Some(e) => {
                for temp in temps {
                    let _ = fs::remove_file(temp);
                }
                Err(e)
            }
        }
    }

    /// Writes `bytes` to a synced temporary file in `dir` and renames it over `target`. The
    /// caller syncs `dir` afterwards.
    fn write_atomically(&self, dir: &Path, target: &Path, bytes: &[u8]) -> Result<(), FsError> {
        let temp = self.write_temp(dir, bytes)?;
        fs::rename(&temp, target).map_err(|e| {
            let _ = fs::remove_file(&temp);
            self.io("rename into place", target, e)
        })
    }

    /// Reads the record of `key` in `dir`; `None` if there is none.
    fn read_record(
        &self,
        dir: &Path,
        replica: &str,
        key: &str,
    ) -> Result<Option<record::RecordFile>, FsError> {
        let path = dir.join(FileName::for_name(key).as_str());
        let bytes = match fs::read(&path) {
            Ok(bytes) => Bytes::from(bytes),
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(self.io("read", &path, e)),
        };
        let file =
            record::decode(bytes).map_err(|reason| self.corrupt(replica, key, &path, reason))?;
        if file.key != key {
            return Err(self.corrupt(
                replica,
                key,
                &path,
                format!("the file holds key {:?}", file.key),
            ));
        }
        Ok(Some(file))
    }

    /// Reads one record.
    pub fn get(&self, replica: &str, key: &str) -> Result<Option<StoredRecord>, FsError> {
        self.check_name("replica", replica)?;
        self.check_name("key", key)?;
        let (dir, _) = self.replica_dir(replica);
        Ok(self
            .read_record(&dir, replica, key)?
            .map(|file| StoredRecord {
                key: file.key,
                revision: file.revision,
                value: file.value,
            }))
    }

    /// Checks (or, if missing, writes) the name file of a hashed replica directory.
    fn ensure_replica_name(&self, dir: &Path, replica: &str) -> Result<(), FsError> {
        let path = dir.join(REPLICA_NAME_FILE);
        match self.read_replica_name(dir)? {
            Some(name) if name == replica => Ok(()),
            Some(name) => Err(self.corrupt(
                replica,
                REPLICA_NAME_FILE,
                &path,
                format!("the replica directory belongs to replica {name:?}"),
            )),
            None => {
                let bytes = record::encode(replica, Revision::FIRST, &[]);
                self.write_atomically(dir, &path, &bytes)?;
                self.sync_dir(dir)
            }
        }
    }

    /// The full replica name kept in a hashed replica directory.
    fn read_replica_name(&self, dir: &Path) -> Result<Option<String>, FsError> {
        let path = dir.join(REPLICA_NAME_FILE);
        let bytes = match fs::read(&path) {
            Ok(bytes) => Bytes::from(bytes),
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(self.io("read", &path, e)),
        };
        let dir_name = dir
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        let file = record::decode(bytes)
            .map_err(|reason| self.corrupt(&dir_name, REPLICA_NAME_FILE, &path, reason))?;
        Ok(Some(file.key))
    }

    /// Applies a batch under the replica's lock. All current revisions are read (and checked)
    /// before anything is written, so a corrupt record fails the batch with nothing written. An
    /// I/O error names the replica and the key (or the keys of the batch) it concerns.
    pub fn write_batch(
        &self,
        replica: &str,
        ops: Vec<WriteOp>,
    ) -> Result<Vec<WriteOutcome>, FsError> {
        if ops.is_empty() {
            return Ok(Vec::new());
        }
        let keys: Vec<String> = ops.iter().map(|op| op.key().to_owned()).collect();
        self.apply_batch(replica, ops)
            .map_err(|e| e.about(|| batch_subject(replica, &keys)))
    }

    fn apply_batch(&self, replica: &str, ops: Vec<WriteOp>) -> Result<Vec<WriteOutcome>, FsError> {
        self.check_name("replica", replica)?;
        for op in &ops {
            self.check_name("key", op.key())?;
        }
        let (dir, hashed) = self.replica_dir(replica);
        match fs::create_dir(&dir) {
            Ok(()) => self.sync_dir(&self.dir)?,
            Err(e) if e.kind() == io::ErrorKind::AlreadyExists => {}
            Err(e) => return Err(self.io("create replica directory", &dir, e)),
        }
        let _lock = DirLock::acquire(&self.dir, &dir)?;
        if hashed {
            self.ensure_replica_name(&dir, replica)?;
        }
        let mut states: HashMap<String, KeyState> = HashMap::new();
        let mut outcomes = Vec::with_capacity(ops.len());
        for op in ops {
            let key = op.key().to_owned();
            if !states.contains_key(&key) {
                let revision = self.read_record(&dir, replica, &key)?.map(|f| f.revision);
                let state = KeyState {
                    revision,
                    value: None,
                    dirty: false,
                };
                states.insert(key.clone(), state);
            }
            let Some(state) = states.get_mut(&key) else {
                continue;
            };
            let outcome = match revision::check(&op, state.revision) {
                Err(conflict) => conflict,
                Ok(revision) => {
                    match op {
                        WriteOp::Put { value, .. } => {
                            state.revision = Some(revision);
                            state.value = Some(value);
                        }
                        WriteOp::Delete { .. } => {
                            state.revision = None;
                            state.value = None;
                        }
                    }
                    state.dirty = true;
                    WriteOutcome::Written(revision)
                }
            };
            outcomes.push(outcome);
        }
        // Every new record is written and synced before the first rename, so a failure here
        // leaves the replica as it was.
        let mut targets = Vec::new();
        let mut contents = Vec::new();
        let mut removals = Vec::new();
        for (key, state) in states.into_iter().filter(|(_, s)| s.dirty) {
            let path = dir.join(FileName::for_name(&key).as_str());
            match (state.revision, state.value) {
                (Some(revision), Some(value)) => {
                    let bytes = record::encode(&key, revision, &value);
                    targets.push((key.clone(), path));
                    contents.push((key, bytes));
                }
                _ => removals.push((key, path)),
            }
        }
        let temps = self.write_temps(&dir, replica, &contents)?;
        drop(contents);
        for (i, (temp, (key, target))) in temps.iter().zip(&targets).enumerate() {
            if let Err(e) = fs::rename(temp, target) {
                for unused in &temps[i..] {
                    let _ = fs::remove_file(unused);
                }
                return Err(self
                    .io("rename into place", target, e)
                    .about(|| record_subject(replica, key)));
            }
        }
        for (key, path) in &removals {
            match fs::remove_file(path) {
                Ok(()) => {}
                Err(e) if e.kind() == io::ErrorKind::NotFound => {}
                Err(e) => {
                    return Err(self
                        .io("remove", path, e)
                        .about(|| record_subject(replica, key)));
                }
            }
        }
        if !targets.is_empty() || !removals.is_empty() {
            self.sync_dir(&dir)?;
        }
        debug!(dir = %dir.display(), ops = outcomes.len(), "batch written");
        Ok(outcomes)
    }

    /// The key of the record file `file_name` in `dir` (decoding the name, or reading the key
    /// from a hashed file); `None` for the store's own files and files deleted meanwhile.
    fn listed_key(
        &self,
        dir: &Path,
        replica: &str,
        file_name: &str,
    ) -> Result<Option<String>, FsError> {
        if is_reserved(file_name) {
            return Ok(None);
        }
        if let Some(key) = name::unescape(file_name) {
            return Ok(Some(key));
        }
        let path = dir.join(file_name);
        if !name::is_hashed(file_name) {
            return Err(self.corrupt(
                replica,
                file_name,
                &path,
                "a file whose name is not an escaped key (not written by dd-store-fs)".to_owned(),
            ));
        }
        let mut file = match File::open(&path) {
            Ok(file) => file,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(self.io("open", &path, e)),
        };
        let mut prefix = Vec::new();
        let limit = record::key_prefix_len(MAX_LISTED_KEY_LEN) as u64;
        (&mut file)
            .take(limit)
            .read_to_end(&mut prefix)
            .map_err(|e| self.io("read", &path, e))?;
        match record::decode_key(&prefix) {
            Ok(Some(key)) if FileName::for_name(&key).as_str() == file_name => Ok(Some(key)),
            Ok(Some(key)) => Err(self.corrupt(
                replica,
                file_name,
                &path,
                format!("the file holds key {key:?}, which is not stored under this name"),
            )),
            Ok(None) => Err(self.corrupt(
                replica,
                file_name,
                &path,
                "truncated inside the stored key".to_owned(),
            )),
            Err(reason) => Err(self.corrupt(replica, file_name, &path, reason)),
        }
    }

    /// The keys of `replica` after `after` (all keys without it), in ascending key byte order:
    /// one listing of the replica directory.
    pub fn list_keys(&self, replica: &str, after: Option<&str>) -> Result<Vec<String>, FsError> {
        let mut keys = self.list_unsorted_keys(replica, after)?;
        keys.sort_unstable();
        Ok(keys)
    }

    /// The keys of `replica` after `after`, in directory order.
    fn list_unsorted_keys(
        &self,
        replica: &str,
        after: Option<&str>,
    ) -> Result<Vec<String>, FsError> {
        self.check_name("replica", replica)?;
        let (dir, _) = self.replica_dir(replica);
        let entries = match fs::read_dir(&dir) {
            Ok(entries) => entries,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(Vec::new()),
            Err(e) => return Err(self.io("list", &dir, e)),
        };
        let mut keys = Vec::new();
        for entry in entries {
            let entry = entry.map_err(|e| self.io("list", &dir, e))?;
            let file_name = entry.file_name();
            let Some(file_name) = file_name.to_str() else {
                return Err(self.corrupt(
                    replica,
                    &file_name.to_string_lossy(),
                    &entry.path(),
                    "a file whose name is not UTF-8 (not written by dd-store-fs)".to_owned(),
                ));
            };
            if let Some(key) = self.listed_key(&dir, replica, file_name)?
                && after.is_none_or(|a| key.as_str() > a)
            {
                keys.push(key);
            }
        }
        Ok(keys)
    }

    /// Reads the records of `keys` of `replica`, in the order of `keys`; a key whose record was
    /// deleted since it was listed is left out.
    pub fn read_records(
        &self,
        replica: &str,
        keys: impl IntoIterator<Item = String>,
    ) -> Result<Vec<StoredRecord>, FsError> {
        let (dir, _) = self.replica_dir(replica);
        let mut records = Vec::new();
        for key in keys {
            if let Some(file) = self.read_record(&dir, replica, &key)? {
                records.push(StoredRecord {
                    key: file.key,
                    revision: file.revision,
                    value: file.value,
                });
            }
        }
        Ok(records)
    }

    /// One page of a replica's records in ascending key byte order. Lists the whole replica
    /// directory (a page is stateless); [`FsStore`](crate::FsStore)'s `scan` lists it once per
    /// scan instead.
    pub fn scan_page(
        &self,
        replica: &str,
        after: Option<&str>,
        limit: usize,
    ) -> Result<ScanPage, FsError> {
        let limit = limit.max(1);
        let mut keys = self.list_unsorted_keys(replica, after)?;
        let more = keys.len() > limit;
        if more {
            keys.select_nth_unstable(limit);
            keys.truncate(limit);
        }
        keys.sort_unstable();
        let next = if more { keys.last().cloned() } else { None };
        // A record deleted since the listing is simply not part of the page.
        let records = self.read_records(replica, keys)?;
        Ok(ScanPage { records, next })
    }

    fn has_records(&self, dir: &Path) -> Result<bool, FsError> {
        let entries = fs::read_dir(dir).map_err(|e| self.io("list", dir, e))?;
        for entry in entries {
            let entry = entry.map_err(|e| self.io("list", dir, e))?;
            if !is_reserved(&entry.file_name().to_string_lossy()) {
                return Ok(true);
            }
        }
        Ok(false)
    }

    /// The names of the replicas that have at least one record, sorted.
    pub fn replicas(&self) -> Result<Vec<String>, FsError> {
        let mut names = Vec::new();
        for dir in self.replica_dirs(true)? {
            let dir_name = dir
                .file_name()
                .map(|n| n.to_string_lossy().into_owned())
                .unwrap_or_default();
            let name = if let Some(name) = name::unescape(&dir_name) {
                name
            } else if name::is_hashed(&dir_name) {
                match self.read_replica_name(&dir)? {
                    Some(name) => name,
                    // Records are only written after the name file, so there are none.
                    None => continue,
                }
            } else {
                return Err(FsError::ForeignEntry {
                    dir: self.dir.clone(),
                    path: dir.clone(),
                    reason: "a directory whose name is not an escaped replica name".to_owned(),
                });
            };
            if self.has_records(&dir)? {
                names.push(name);
            }
        }
        names.sort_unstable();
        Ok(names)
    }
}
