//! [`FsError`], the typed error of this backend, and its conversion into [`StoreError`].

use std::io;
use std::path::{Path, PathBuf};

use dd_store::StoreError;

/// An error of the file-system store. Every variant names the store directory; converts into
/// [`StoreError`] (full or read-only disks and similar passing conditions become
/// [`StoreError::Unavailable`]).
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum FsError {
    /// A file-system call failed. The message ends with what the error means and what to do for
    /// the errors an operator can fix (full disk, read-only file system, quota, file-size limit,
    /// permissions).
    #[error("fs:{}: {}{op} {} failed: {source}{}", dir.display(), subject_prefix(subject.as_deref()), path.display(), advice(source.kind()))]
    Io {
        /// The store directory.
        dir: PathBuf,
        /// Which records were being read or written (`replica 'r' key 'k'`), where known.
        subject: Option<String>,
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
            subject: None,
            op,
            path: path.to_path_buf(),
            source,
        }
    }

    /// Names the records concerned (`replica 'r' key 'k'`) in an [`FsError::Io`] that names none
    /// yet; other errors are returned as they are.
    pub(crate) fn about(self, subject: impl FnOnce() -> String) -> FsError {
        match self {
            FsError::Io {
                dir,
                subject: None,
                op,
                path,
                source,
            } => FsError::Io {
                dir,
                subject: Some(subject()),
                op,
                path,
                source,
            },
            other => other,
        }
    }

    /// Whether this is an I/O error of a read-only file system (`EROFS`).
    pub fn is_read_only(&self) -> bool {
        matches!(self, FsError::Io { source, .. } if source.kind() == io::ErrorKind::ReadOnlyFilesystem)
    }
}

fn subject_prefix(subject: Option<&str>) -> String {
    subject.map(|s| format!("{s}: ")).unwrap_or_default()
}

/// What an I/O error an operator can fix means here, and what to do about it (empty for others).
fn advice(kind: io::ErrorKind) -> &'static str {
    use io::ErrorKind::*;
    match kind {
        StorageFull => {
            ". The disk is full (ENOSPC): nothing of this write was stored and the records \
             written before are intact. Free space on the store's file system, then retry: the \
             store writes again once there is room, without a restart"
        }
        QuotaExceeded => {
            ". The disk quota is exhausted (EDQUOT): nothing of this write was stored and the \
             records written before are intact. Raise the quota or free space, then retry: the \
             store writes again once there is room, without a restart"
        }
        FileTooLarge => {
            ". The file exceeds the file-size limit (EFBIG: the process's `ulimit -f` / \
             RLIMIT_FSIZE, or the file system's largest file): nothing of this write was stored \
             and the records written before are intact. Raise the limit, then retry"
        }
        ReadOnlyFilesystem => {
            ". The file system is read-only (EROFS): nothing was written; records can still be \
             read. Remount it read-write, then retry: the store writes again without a restart"
        }
        PermissionDenied => {
            ". Permission denied: the process needs read and write access to the store \
             directory and everything in it"
        }
        _ => "",
    }
}

/// Errors that pass once an operator or the system acts (space freed, file system remounted
/// read-write, lock released).
fn is_passing(kind: io::ErrorKind) -> bool {
    use io::ErrorKind::*;
    matches!(
        kind,
        StorageFull
            | QuotaExceeded
            | FileTooLarge
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
            } if is_passing(source.kind()) => StoreError::unavailable(backend(dir), e),
            FsError::Io { ref dir, .. }
            | FsError::ForeignEntry { ref dir, .. }
            | FsError::EmptyName { ref dir, .. }
            | FsError::Task { ref dir, .. } => StoreError::backend(backend(dir), e),
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
            FsError::NotAStore { ref dir, .. } => StoreError::config(backend(dir), &e),
            FsError::BadUrl { ref url, .. } => StoreError::config(format!("fs ({url})"), &e),
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
        )
        .about(|| "replica 'r' key 'k'".to_owned());
        let text = full.to_string();
        assert!(
            text.starts_with("fs:/data: replica 'r' key 'k': write /data/r/k failed")
                && text.contains("disk is full (ENOSPC)")
                && text.contains("Free space"),
            "{text}"
        );
        assert!(StoreError::from(full).is_transient());
        let read_only = FsError::io(
            dir,
            "create",
            Path::new("/data/r"),
            io::Error::from(io::ErrorKind::ReadOnlyFilesystem),
        );
        assert!(read_only.is_read_only());
        assert!(read_only.to_string().contains("read-only (EROFS)"));
        assert!(StoreError::from(read_only).is_transient());
        let other = FsError::io(dir, "read", dir, io::Error::other("odd"));
        assert_eq!(other.to_string(), "fs:/data: read /data failed: odd");
        assert!(!StoreError::from(other).is_transient());
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
