//! `dd-node`: a durable-dd replica as a process (see the README).

fn main() -> std::process::ExitCode {
    dd_node::cli::main()
}
