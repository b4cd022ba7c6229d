//! The `dd-node` command line.

use std::process::ExitCode;

use clap::{Parser, Subcommand};
use tokio_util::sync::CancellationToken;

use crate::config::ServeArgs;

/// A durable-dd replica as a process, and tools for its stores.
#[derive(Debug, Parser)]
#[command(name = "dd-node", version, about)]
pub struct Cli {
    /// What to do.
    #[command(subcommand)]
    pub command: Command,
}

/// The subcommands.
// Parsed once per process: the size of the `serve` flags does not matter.
#[allow(clippy::large_enum_variant)]
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run one replica: HTTP/JSON API, TCP cluster transport, durable store.
    Serve(ServeArgs),
    /// List the keys of a store with their type, size, revision and value.
    Inspect(crate::inspect::InspectArgs),
    /// Copy every replica's durable records from one store to another and verify the copy.
    Migrate(crate::migrate::MigrateArgs),
    /// Start a 3-replica cluster on this machine, update it, restart it and compare the values.
    Demo(crate::demo::DemoArgs),
    /// List a running replica's members (name, state, incarnation, address, last heard) and
    /// removed incarnations.
    Members(crate::members::MembersArgs),
    /// Removes a replica that is gone for good (`DELETE /members/{name}`): its entries are
    /// pruned.
    Remove(crate::members::RemoveArgs),
}

fn init_tracing(default: &str) {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(default));
    // A second initialisation (tests) keeps the first subscriber.
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .try_init();
}

fn runtime() -> Result<tokio::runtime::Runtime, std::io::Error> {
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
}

/// Runs the command line and returns the process exit code.
pub fn main() -> ExitCode {
    let cli = Cli::parse();
    let log_default = match cli.command {
        Command::Serve(_) => "info",
        _ => "warn",
    };
    init_tracing(log_default);
    let rt = match runtime() {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("dd-node: cannot start the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    let result: Result<(), String> = rt.block_on(async move {
        match cli.command {
            Command::Serve(args) => {
                let config = args.resolve().map_err(|e| e.to_string())?;
                let shutdown = CancellationToken::new();
                crate::serve::cancel_on_signals(shutdown.clone()).map_err(|e| e.to_string())?;
                crate::serve::serve(config, shutdown)
                    .await
                    .map_err(|e| error_chain(&e))
            }
            Command::Inspect(args) => crate::inspect::run(args).await.map_err(|e| error_chain(&e)),
            Command::Migrate(args) => crate::migrate::run(args).await.map_err(|e| error_chain(&e)),
            Command::Demo(args) => crate::demo::run(args).await.map_err(|e| error_chain(&e)),
            Command::Members(args) => crate::members::run(args).await.map_err(|e| error_chain(&e)),
            Command::Remove(args) => crate::members::run_remove(args)
                .await
                .map_err(|e| error_chain(&e)),
        }
    });
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(message) => {
            eprintln!("dd-node: {message}");
            ExitCode::FAILURE
        }
    }
}

/// An error and its sources, joined with `: `.
pub fn error_chain(e: &dyn std::error::Error) -> String {
    let mut text = e.to_string();
    let mut source = e.source();
    while let Some(s) = source {
        let more = s.to_string();
        if !text.contains(&more) {
            text.push_str(": ");
            text.push_str(&more);
        }
        source = s.source();
    }
    text
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use super::*;

    #[test]
    fn serve_flags_parse() {
        let cli = Cli::try_parse_from([
            "dd-node",
            "serve",
            "--replica",
            "a",
            "--peer",
            "b=127.0.0.1:7001,c=127.0.0.1:7002",
            "--peer",
            "d=localhost:7003",
            "--durable-keys",
            "user-*,config",
            "--write-mode",
            "write-behind=50",
        ])
        .unwrap();
        let Command::Serve(args) = cli.command else {
            panic!("not serve")
        };
        assert_eq!(args.peers.len(), 3);
        let config = args.resolve().unwrap();
        assert_eq!(config.peers.len(), 3);
        assert_eq!(config.settings.durable_keys, vec!["user-*", "config"]);
        assert!(Cli::try_parse_from(["dd-node", "migrate", "--from", "x:"]).is_err());
        assert!(
            Cli::try_parse_from([
                "dd-node",
                "migrate",
                "--from",
                "a:",
                "--to",
                "b:",
                "--batch-size",
                "0"
            ])
            .is_err()
        );
    }

    #[test]
    fn error_chain_joins_sources() {
        let e = crate::serve::ServeError::Http(std::io::Error::other("boom"));
        assert_eq!(error_chain(&e), "HTTP server: boom");
    }
}
