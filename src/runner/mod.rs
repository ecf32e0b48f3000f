//! Runs, checks, lists and documents runbooks: the library's embedding API, one file per
//! command (`run`, `check`, `docs`, `list`). This file holds what they share: reading a
//! runbook and its header, compiling it, and pointing an error at a line of it.

mod apply;
mod check;
mod confirm;
mod docs;
pub mod format;
mod hooks;
mod json;
mod list;
pub mod log;
mod plan;
pub mod report;
pub mod review;
mod run;
pub mod source;
pub mod view;

pub use apply::{apply, read_plan, ApplyOptions};
pub use check::{check, Checked};
pub use docs::docs;
pub(crate) use docs::{explain_not_found, known_functions};
pub use list::{describe_default, list, Listed};
pub use plan::{plan, PlanOptions};
pub use run::{
    fmt_duration, parse_duration, resume, run, undo, RunOptions, RunOutcome, LEAVE_AT_EXIT,
};

use crate::engine;
use crate::error::{Error, Location, Result};
use crate::header::Header;
use rhai::AST;
use std::path::{Path, PathBuf};

/// A runbook read from disk, with its header parsed and its script compiled.
pub struct Loaded {
    pub path: PathBuf,
    pub display: String,
    pub text: String,
    pub header: Header,
    pub ast: AST,
}

pub(crate) fn runbooks_dir(path: &Path) -> PathBuf {
    if source::is_shipped(path) {
        return PathBuf::from(source::SHIPPED_PREFIX);
    }
    match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
        _ => PathBuf::from("."),
    }
}

/// Read, parse the header of, and compile a runbook with a primitives-free engine.
pub fn load(path: &Path) -> Result<Loaded> {
    let (display, text, header) = read_runbook(path)?;
    let ast = compile(&engine::compiler(&runbooks_dir(path)), &display, &text)?;
    Ok(Loaded {
        path: path.to_path_buf(),
        display,
        text,
        header,
        ast,
    })
}

/// Read a runbook and parse its header.
pub(crate) fn read_runbook(path: &Path) -> Result<(String, String, Header)> {
    let display = path.display().to_string();
    let text = source::read_text(path).map_err(|e| match e.kind() {
        std::io::ErrorKind::NotFound => Error::Usage(format!(
            "runbook `{display}` does not exist; `runbook list` shows the runbooks in `runbooks/`"
        )),
        _ => Error::Usage(format!("cannot read runbook `{display}`: {e}")),
    })?;
    let header = Header::parse(&display, &text)?;
    Ok((display, text, header))
}

pub(crate) fn compile(engine: &rhai::Engine, display: &str, text: &str) -> Result<AST> {
    let mut ast = engine.compile(text).map_err(|e| {
        let pos = e.position();
        let line = pos.line().unwrap_or(1);
        Error::Compile {
            location: location_in(display, text, line, pos.position().unwrap_or(1)),
            message: engine::strip_position(&e.err_type().to_string()),
        }
    })?;
    ast.set_source(display.to_string());
    Ok(ast)
}

pub(crate) fn location_in(file: &str, text: &str, line: usize, column: usize) -> Box<Location> {
    Box::new(Location {
        file: file.to_string(),
        line,
        column,
        source_line: text.lines().nth(line.saturating_sub(1)).map(String::from),
        called_from: None,
    })
}
