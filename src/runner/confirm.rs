//! Asking a person before a run changes anything: `//! confirm: true` in a runbook's
//! header, `runbook run --confirm`, and `runbook apply` without `--yes`.
//!
//! Only a terminal can answer. Without one (a pipe, cron, CI) nobody is there to ask, so a
//! run that needs confirmation is refused with exit 2 unless `--yes` says so up front; a run
//! that needs none never prompts, so scripts and incident automation keep working unattended.
//! Questions and the plan shown before them go to stderr, so `--format json` keeps stdout
//! for its one document.

use crate::error::{Error, Result};
use crate::output::eprint;
use std::io::{BufRead, IsTerminal};

/// Whether there is a person to ask: standard input is a terminal.
pub fn can_ask() -> bool {
    std::io::stdin().is_terminal()
}

/// Ask one yes/no `question`, after showing `summary`. Without a terminal, refuse with
/// `no_terminal`, which says how to go on without asking.
pub fn confirm(summary: &str, question: &str, no_terminal: &str) -> Result<()> {
    if !can_ask() {
        return Err(Error::NotConfirmed(format!(
            "this run must be confirmed and there is no terminal to ask on; {no_terminal}"
        )));
    }
    eprint(format_args!("{summary}"));
    match ask(&format!("{question}? [y/N] "))?.as_str() {
        "y" | "yes" => Ok(()),
        _ => Err(Error::NotConfirmed(
            "not confirmed; nothing was changed".into(),
        )),
    }
}

/// Print `prompt` and read one answer line, trimmed and lower-cased ("" at end of input).
pub fn ask(prompt: &str) -> Result<String> {
    eprint(format_args!("{prompt}"));
    let mut line = String::new();
    std::io::stdin()
        .lock()
        .read_line(&mut line)
        .map_err(|e| Error::io("standard input", "read the answer from", e))?;
    Ok(line.trim().to_lowercase())
}
