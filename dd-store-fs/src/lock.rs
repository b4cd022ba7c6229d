//! Exclusion of writers: advisory `flock` locks on a `.lock` file per replica directory (across
//! processes and across handles), plus striped async mutexes (within this process, so that
//! racing writers of one process wait on the runtime instead of parking blocking threads).

use std::collections::hash_map::DefaultHasher;
use std::fs::{File, OpenOptions, TryLockError};
use std::hash::{Hash, Hasher};
use std::path::{Path, PathBuf};
use std::sync::LazyLock;

use tokio::sync::{Mutex, MutexGuard};

use crate::error::FsError;

/// The name of the lock file in the store directory and in each replica directory.
pub const LOCK_FILE: &str = ".lock";

const STRIPES: usize = 64;

static STRIPE_LOCKS: LazyLock<Vec<Mutex<()>>> =
    LazyLock::new(|| (0..STRIPES).map(|_| Mutex::new(())).collect());

/// Takes the in-process stripe lock for `dir` (a canonical replica directory path).
pub async fn stripe(dir: &Path) -> MutexGuard<'static, ()> {
    let mut hasher = DefaultHasher::new();
    dir.hash(&mut hasher);
    let index = (hasher.finish() % STRIPES as u64) as usize;
    STRIPE_LOCKS[index].lock().await
}

/// An exclusive `flock` on `<dir>/.lock`, released when dropped (the file is closed).
#[derive(Debug)]
pub struct DirLock {
    _file: File,
}

impl DirLock {
    /// Blocks until the exclusive lock on `dir`'s lock file is held.
    pub fn acquire(store_dir: &Path, dir: &Path) -> Result<DirLock, FsError> {
        let (file, path) = open_lock_file(store_dir, dir)?;
        file.lock()
            .map_err(|e| FsError::io(store_dir, "lock", &path, e))?;
        Ok(DirLock { _file: file })
    }

    /// Takes the lock if nobody holds it; `None` if another writer does.
    pub fn try_acquire(store_dir: &Path, dir: &Path) -> Result<Option<DirLock>, FsError> {
        let (file, path) = open_lock_file(store_dir, dir)?;
        match file.try_lock() {
            Ok(()) => Ok(Some(DirLock { _file: file })),
            Err(TryLockError::WouldBlock) => Ok(None),
            Err(TryLockError::Error(e)) => Err(FsError::io(store_dir, "lock", &path, e)),
        }
    }
}

fn open_lock_file(store_dir: &Path, dir: &Path) -> Result<(File, PathBuf), FsError> {
    let path = dir.join(LOCK_FILE);
    let file = OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(false)
        .open(&path)
        .map_err(|e| FsError::io(store_dir, "open lock file", &path, e))?;
    Ok((file, path))
}
