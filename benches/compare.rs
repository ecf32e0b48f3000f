//! `cargo bench`: the side-by-side benchmarks of `benches/bench.py`.
//!
//! The measurements are whole-process wall times of `runbook` next to shell scripts, GNU
//! `find` and pandas, so the harness lives in Python; this target only starts it. It does
//! not hand over the binary cargo built for the bench profile: bench.py builds and measures
//! the one users get (`cargo dist`: the `dist` profile with fat LTO, linked statically).
//! Options go after `--`: `cargo bench -- --quick`, `cargo bench -- --only find,steps`.

use std::process::{exit, Command};

fn main() {
    let root = env!("CARGO_MANIFEST_DIR");
    // cargo passes `--bench` to harness-less targets; bench.py has no use for it.
    let args = std::env::args().skip(1).filter(|a| a != "--bench");
    let status = Command::new("python3")
        .arg(format!("{root}/benches/bench.py"))
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
