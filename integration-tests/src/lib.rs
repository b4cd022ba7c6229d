//! `integration-tests`: see the crate README (work in progress).
