//! Standard output and standard error for everything a command prints, with one rule for a
//! reader that went away (`runbook check runbooks/*.rhai | head -1`).
//!
//! `println!` panics when stdout is a closed pipe (Rust ignores `SIGPIPE`, so the write
//! fails with `EPIPE` instead of killing the process). A command's result that nobody reads
//! any more is not worth finishing, so [`print`] ends the process quietly, with status 0, as
//! ripgrep does. A run is different: stopping it halfway through a rollback because a
//! `| head` was satisfied would leave the workspace half rolled back, so output written
//! during a run goes through [`print_in_run`], which stops printing and lets the run go on.
//! Standard error is written with [`eprint`], which never fails the process either: a
//! message that cannot be shown has nowhere else to go.

use std::fmt;
use std::io::{self, Write};
use std::sync::atomic::{AtomicBool, Ordering};

/// Set once stdout has been found closed, so a run stops trying to write to it.
static STDOUT_CLOSED: AtomicBool = AtomicBool::new(false);

/// `print!` through [`print`].
macro_rules! out {
    ($($arg:tt)*) => { $crate::output::print(format_args!($($arg)*)) };
}

/// `println!` through [`print`].
macro_rules! outln {
    () => { $crate::output::print(format_args!("\n")) };
    ($($arg:tt)*) => { $crate::output::print(format_args!("{}\n", format_args!($($arg)*))) };
}

/// `eprintln!` through [`eprint`].
macro_rules! errln {
    ($($arg:tt)*) => { $crate::output::eprint(format_args!("{}\n", format_args!($($arg)*))) };
}

pub(crate) use {errln, out, outln};

/// Write a command's output. If stdout is a closed pipe, end the process quietly (status 0);
/// if writing fails otherwise (a full disk behind a redirection), say so and exit 1.
pub fn print(args: fmt::Arguments) {
    if let Err(e) = write_stdout(args) {
        if e.kind() == io::ErrorKind::BrokenPipe {
            std::process::exit(0);
        }
        eprint(format_args!("error: cannot write to stdout: {e}\n"));
        std::process::exit(1);
    }
}

/// Write output produced during a run. Never ends the process: once stdout is found closed
/// (or failing), later calls print nothing. Returns whether the text was written.
pub fn print_in_run(args: fmt::Arguments) -> bool {
    if STDOUT_CLOSED.load(Ordering::Relaxed) {
        return false;
    }
    match write_stdout(args) {
        Ok(()) => true,
        Err(_) => {
            STDOUT_CLOSED.store(true, Ordering::Relaxed);
            false
        }
    }
}

/// Write to stderr, ignoring failure.
pub fn eprint(args: fmt::Arguments) {
    let _ = io::stderr().lock().write_fmt(args);
}

fn write_stdout(args: fmt::Arguments) -> io::Result<()> {
    let mut out = io::stdout().lock();
    out.write_fmt(args)?;
    // Stdout is line-buffered: without the flush, text without a final newline would only
    // fail (and be reported) at exit, where the error can no longer be handled.
    out.flush()
}
