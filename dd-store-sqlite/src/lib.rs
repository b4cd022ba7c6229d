//! `dd-store-sqlite`: see the crate README (work in progress).
