//! `dd-node`: the runnable node (work in progress).
fn main() {}
