//! The review workflow's commands as the command line runs them: make a plan, save it
//! outside the workspace, show it as text, Markdown or JSON. Kept out of `cli.rs` so that
//! file stays the clap definitions and a dispatch.

use super::format::{self, Format};
use super::PlanOptions;
use crate::error::{Error, Result};
use crate::output::out;
use std::path::Path;

/// `runbook plan FILE [-o PLAN] [--format F]`.
pub fn plan_command(opts: &PlanOptions, save: Option<&Path>, fmt: &str) -> Result<i32> {
    let doc = super::plan(opts)?;
    let json = serde_json::to_string_pretty(&doc).unwrap_or_default() + "\n";
    if let Some(path) = save {
        let root = std::fs::canonicalize(&opts.workspace).map_err(|e| {
            Error::io(
                opts.workspace.display().to_string(),
                "open the workspace",
                e,
            )
        })?;
        crate::effects::write_output(path, &root, json.as_bytes())?;
    }
    match Format::parse(fmt) {
        Format::Text => {
            out!("{}", format::text(&doc));
            if let Some(path) = save {
                out!(
                    "plan saved to {}; apply it with `runbook apply {}`\n",
                    path.display(),
                    path.display()
                );
            }
        }
        Format::Markdown => out!("{}", format::markdown(&doc)),
        Format::Json => out!("{json}"),
    }
    Ok(0)
}
