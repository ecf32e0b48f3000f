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
//!
//! Colour and the live progress line are decided here, once per process: colour on a
//! terminal unless `NO_COLOR` is set or `--color never` (`--color always` forces it); the
//! progress line (the current step and its elapsed time, on stderr) only when both stdout
//! and stderr are terminals and the run is not `--quiet`. Piped output is plain lines.

use std::fmt;
use std::io::{self, Write};
use std::sync::atomic::{AtomicBool, Ordering};

/// Set once stdout has been found closed, so a run stops trying to write to it.
static STDOUT_CLOSED: AtomicBool = AtomicBool::new(false);

/// Whether statuses and changes are coloured (see [`set_color`]).
static COLOR: AtomicBool = AtomicBool::new(false);

/// The live progress line of the step under way, when there is one.
static PROGRESS: std::sync::Mutex<Option<indicatif::ProgressBar>> = std::sync::Mutex::new(None);

/// Choose colour for this process: `always`, `never`, or `auto` (a terminal on stdout, no
/// `NO_COLOR`, a `TERM` other than `dumb`).
pub fn set_color(choice: &str) {
    use std::io::IsTerminal;
    let on = match choice {
        "always" => true,
        "never" => false,
        _ => {
            io::stdout().is_terminal()
                && std::env::var_os("NO_COLOR").is_none_or(|v| v.is_empty())
                && std::env::var("TERM").map_or(true, |t| t != "dumb")
        }
    };
    COLOR.store(on, Ordering::Relaxed);
}

/// `text` in an ANSI style (`32` green, `31;1` bold red, ...) when colour is on.
pub fn paint(style: &str, text: &str) -> String {
    if COLOR.load(Ordering::Relaxed) {
        format!("\x1b[{style}m{text}\x1b[0m")
    } else {
        text.to_string()
    }
}

/// Show `label` as the live progress line, with its elapsed time, until [`progress_end`];
/// nothing unless stdout and stderr are both terminals.
pub fn progress_start(label: &str) {
    use std::io::IsTerminal;
    if !(io::stdout().is_terminal() && io::stderr().is_terminal()) {
        return;
    }
    // Hidden at first: a step that ends within a moment (most do) never draws the line.
    let bar =
        indicatif::ProgressBar::with_draw_target(None, indicatif::ProgressDrawTarget::hidden());
    if let Ok(style) = indicatif::ProgressStyle::with_template("{spinner} {msg} ({elapsed})") {
        bar.set_style(style);
    }
    bar.set_message(label.to_string());
    let generation = PROGRESS_GENERATION.fetch_add(1, Ordering::SeqCst) + 1;
    if let Ok(mut p) = PROGRESS.lock() {
        if let Some(old) = p.replace(bar) {
            old.finish_and_clear();
        }
    }
    std::thread::spawn(move || {
        std::thread::sleep(PROGRESS_AFTER);
        let Ok(p) = PROGRESS.lock() else { return };
        if let (Some(bar), true) = (
            p.as_ref(),
            PROGRESS_GENERATION.load(Ordering::SeqCst) == generation,
        ) {
            bar.set_draw_target(indicatif::ProgressDrawTarget::stderr());
            bar.enable_steady_tick(std::time::Duration::from_millis(120));
        }
    });
}

/// How long a step runs before its progress line appears.
const PROGRESS_AFTER: std::time::Duration = std::time::Duration::from_millis(300);

/// Which step's line is current, so a late timer does not show a finished one.
static PROGRESS_GENERATION: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);

pub fn progress_end() {
    PROGRESS_GENERATION.fetch_add(1, Ordering::SeqCst);
    if let Ok(mut p) = PROGRESS.lock() {
        if let Some(bar) = p.take() {
            bar.finish_and_clear();
        }
    }
}

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
    // A line printed while the progress line is shown goes above it.
    let bar = PROGRESS.lock().ok().and_then(|p| p.clone());
    let written = match bar {
        Some(bar) => bar.suspend(|| write_stdout(args)),
        None => write_stdout(args),
    };
    match written {
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
