//! `dd-durable`: see the crate README (work in progress).
