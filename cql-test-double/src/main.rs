//! `cql-test-double [ADDR]`: runs the CQL test double (default `127.0.0.1:9042`) until Ctrl-C.
//! For CI and local tests only; it is not a database.

use std::net::SocketAddr;
use std::process::ExitCode;

use cql_test_double::{CqlTestDouble, Database};

#[tokio::main]
async fn main() -> ExitCode {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info")),
        )
        .init();
    let arg = std::env::args().nth(1);
    let addr: SocketAddr = match arg.as_deref().unwrap_or("127.0.0.1:9042").parse() {
        Ok(addr) => addr,
        Err(e) => {
            eprintln!(
                "cql-test-double: bad address {arg:?}: {e} (usage: cql-test-double [IP:PORT])"
            );
            return ExitCode::from(2);
        }
    };
    let double = match CqlTestDouble::start_with(Database::new(), addr).await {
        Ok(double) => double,
        Err(e) => {
            eprintln!("{e}");
            return ExitCode::FAILURE;
        }
    };
    println!(
        "CQL test double (in memory, not a database) listening on {}",
        double.addr()
    );
    if let Err(e) = tokio::signal::ctrl_c().await {
        eprintln!("cql-test-double: cannot wait for Ctrl-C: {e}");
    }
    double.shutdown().await;
    ExitCode::SUCCESS
}
