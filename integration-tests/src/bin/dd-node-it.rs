//! The `dd-node` binary, built inside integration-tests so that the black-box tests
//! (`tests/node_*.rs`) can run it as `env!("CARGO_BIN_EXE_dd-node-it")`: Cargo only exposes the
//! binaries of the package under test, and the dd-node binary is exactly this one line.

fn main() -> std::process::ExitCode {
    dd_node::cli::main()
}
