//! The `main` of the test child binaries (`crash_child`, `disk_fault_child`): one tokio runtime,
//! the body run on it, its error on stderr and the exit code.

use std::fmt::Display;
use std::future::Future;
use std::process::ExitCode;

/// Runs `body` on a new two-thread runtime; an error is printed as `name: error` and exits 1.
pub fn run_child<E: Display>(name: &str, body: impl Future<Output = Result<(), E>>) -> ExitCode {
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("{name}: cannot start a runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(body) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("{name}: {e}");
            ExitCode::FAILURE
        }
    }
}
