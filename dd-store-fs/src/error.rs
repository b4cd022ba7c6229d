//! [`FsError`], the typed error of this backend, and its conversion into [`StoreError`].

use std::io;
use std::path::{Path, PathBuf};

use dd_core::store::StoreError;

/// An error of the file-system store. Every variant names the store directory; converts into
/// [`StoreError`] (full or read-only disks and similar passing conditions become
/// [`StoreError::Unavailable`]).
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum FsError {
    /// A file-system call failed.
    #[error("fs:{}: {op} {} failed: {source}", dir.display(), path.display())]
    Io {
        /// The store directory.
        dir: PathBuf,
        /// What was being done ("read", "rename", ...).
        op: &'static str,
        /// The file or directory concerned.
        path: PathBuf,
        /// The I/O error.
        #[source]
        source: io::Error,
    },
    /// A record file (or a replica's name file) is truncated, foreign or damaged. It is left as
    /// it is.
    #[error("fs:{}: record of replica '{replica}' key '{key}' in {} is corrupt: {reason}", dir.display(), path.display())]
    Corrupt {
        /// The store directory.
        dir: PathBuf,
        /// The replica the file belongs to.
        replica: String,
        /// The key (or, for a file whose name is not an escaped key, the file name).
        key: String,
        /// The damaged file.
        path: PathBuf,
        /// What is wrong.
        reason: String,
    },
    /// An entry of the store directory is not one this store writes.
    #[error("fs:{}: unexpected entry {}: {reason}", dir.display(), path.display())]
    ForeignEntry {
        /// The store directory.
        dir: PathBuf,
        /// The entry.
        path: PathBuf,
        /// Why it is not one of the store's.
        reason: String,
    },
    /// The directory is not empty and is not a dd-store-fs directory, or has an unknown format.
    #[error("fs:{}: not a usable dd-store-fs directory: {reason}", dir.display())]
    NotAStore {
        /// The directory.
        dir: PathBuf,
        /// Why.
        reason: String,
    },
    /// A URL is not an `fs:` URL this store understands.
    #[error("invalid fs store URL '{url}': {reason}")]
    BadUrl {
        /// The URL.
        url: String,
        /// What is wrong with it.
        reason: String,
    },
    /// A replica name or key is empty (the store interface requires non-empty names).
    #[error("fs:{}: the {what} name is empty; replica names and keys must be non-empty", dir.display())]
    EmptyName {
        /// The store directory.
        dir: PathBuf,
        /// "replica" or "key".
        what: &'static str,
    },
    /// A blocking file-system task panicked or was cancelled.
    #[error("fs:{}: a file-system task failed: {message}", dir.display())]
    Task {
        /// The store directory.
        dir: PathBuf,
        /// What happened.
        message: String,
    },
}

impl FsError {
    /// An [`FsError::Io`].
    pub(crate) fn io(dir: &Path, op: &'static str, path: &Path, source: io::Error) -> FsError {
        FsError::Io {
            dir: dir.to_path_buf(),
            op,
            path: path.to_path_buf(),
            source,
        }
    }
}

fn is_passing(kind: io::ErrorKind) -> bool {
    use io::ErrorKind::*;
    matches!(
        kind,
        StorageFull
            | QuotaExceeded
            | ReadOnlyFilesystem
            | ResourceBusy
            | TimedOut
            | Interrupted
            | WouldBlock
            | OutOfMemory
    )
}

impl From<FsError> for StoreError {
    fn from(e: FsError) -> StoreError {
        let backend = |dir: &Path| format!("fs:{}", dir.display());
        match e {
            FsError::Io {
                ref dir,
                ref source,
                ..
            } if is_passing(source.kind()) => StoreError::Unavailable {
                backend: backend(dir),
                source: Box::new(e),
            },
            FsError::Io { ref dir, .. }
            | FsError::ForeignEntry { ref dir, .. }
            | FsError::EmptyName { ref dir, .. }
            | FsError::Task { ref dir, .. } => StoreError::Backend {
                backend: backend(dir),
                message: e.to_string(),
                source: Some(Box::new(e)),
            },
            FsError::Corrupt {
                dir,
                replica,
                key,
                path,
                reason,
            } => StoreError::Corrupt {
                backend: backend(&dir),
                replica,
                key,
                reason: format!("{} ({reason})", path.display()),
            },
            FsError::NotAStore { ref dir, .. } => StoreError::Config {
                backend: backend(dir),
                message: e.to_string(),
            },
            FsError::BadUrl { ref url, .. } => StoreError::Config {
                backend: format!("fs ({url})"),
                message: e.to_string(),
            },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn full_disk_is_unavailable_and_corrupt_names_the_key() {
        let dir = Path::new("/data");
        let full = FsError::io(
            dir,
            "write",
            Path::new("/data/r/k"),
            io::Error::from(io::ErrorKind::StorageFull),
        );
        assert!(StoreError::from(full).is_transient());
        let corrupt = StoreError::from(FsError::Corrupt {
            dir: dir.to_path_buf(),
            replica: "r".into(),
            key: "k".into(),
            path: PathBuf::from("/data/r/k"),
            reason: "checksum mismatch".into(),
        });
        let text = corrupt.to_string();
        assert!(
            text.contains("fs:/data") && text.contains("'k'") && text.contains("'r'"),
            "{text}"
        );
    }
}
