//! `dd-store-s3`: see the crate README (work in progress).
