//! `dd-node demo` runs to the end: a 3-replica cluster survives a full restart.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod node_common;

use node_common::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn demo_succeeds_and_shows_the_table() {
    let dir = tempfile::tempdir().unwrap();
    let out = run_cli(&["demo", "--dir", dir.path().to_str().unwrap()]).await;
    assert!(
        out.success,
        "stdout:\n{}\nstderr:\n{}",
        out.stdout, out.stderr
    );
    assert!(
        out.stdout
            .contains("✓ every value survived a full cluster restart"),
        "{}",
        out.stdout
    );
    for key in ["visits", "tags", "settings", "motd", "launched"] {
        let row = out
            .stdout
            .lines()
            .find(|l| l.trim_start().starts_with(key))
            .unwrap();
        assert!(row.ends_with("✓ same"), "{row}");
    }
    // Each replica's dashboard address is printed.
    assert_eq!(
        out.stdout
            .lines()
            .filter(|l| l.contains("  dashboard http://127.0.0.1:"))
            .count(),
        3,
        "{}",
        out.stdout
    );
    // The replicas' stores stay in --dir.
    for name in ["a", "b", "c"] {
        assert!(dir.path().join(format!("{name}.db")).exists());
    }
    let out = run_cli(&["demo", "--write-mode", "eventually"]).await;
    assert!(!out.success);
    assert!(
        out.stderr.contains("bad write mode 'eventually'"),
        "{}",
        out.stderr
    );
}
