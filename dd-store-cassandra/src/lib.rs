//! `dd-store-cassandra`: see the crate README (work in progress).
