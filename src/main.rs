//! The `runbook` binary: parse the command line, hand it to the library, map the
//! outcome to an exit code. Everything else lives in the library so it can be embedded.

fn main() {
    std::process::exit(runbook::cli::main());
}
