//! `dd-store-fs`: see the crate README (work in progress).
