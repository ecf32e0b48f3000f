//! `cargo bench`: the side-by-side benchmarks of `benches/bench.py`, run against the binary
//! cargo just built with the bench profile (release settings).
//!
//! The measurements are whole-process wall times of `runbook` next to shell scripts, GNU
//! `find` and pandas, so the harness lives in Python; this target only hands it the binary.
//! Options go after `--`: `cargo bench -- --quick`, `cargo bench -- --only find,steps`.

use std::process::{exit, Command};

fn main() {
    let root = env!("CARGO_MANIFEST_DIR");
    // cargo passes `--bench` to harness-less targets; bench.py has no use for it.
    let args = std::env::args().skip(1).filter(|a| a != "--bench");
    let status = Command::new("python3")
        .arg(format!("{root}/benches/bench.py"))
        .arg("--bin")
        .arg(env!("CARGO_BIN_EXE_runbook"))
        .args(args)
        .current_dir(root)
        .status();
    match status {
        Ok(s) => exit(s.code().unwrap_or(1)),
        Err(e) => {
            eprintln!("compare: cannot run python3 benches/bench.py: {e}");
            exit(1);
        }
    }
}
