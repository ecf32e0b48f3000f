//! Embedding: run runbooks from a Rust program, with primitives of its own.
//!
//! A program builds a [`Runner`], adds families of primitives with [`Runner::family`] (each
//! a [`Family`] built like the shipped ones in `src/primitives/`), and runs a runbook with
//! [`Runner::run`]. An added primitive reaches the workspace only through the effect door it
//! gets in its [`Ctx`]: `ctx.ws.perform(Effect::Write { .. }, |_| Record::new(..))` for a
//! change, `ctx.ws.check(..)` for a read-only judgement. So it is journaled, shown in the
//! plan, simulated in a dry run and sandboxed like every shipped primitive, and it never
//! branches on the mode.
//!
//! ```no_run
//! use runbook::embed::{Ctx, Effect, Family, Record, RunOptions, Runner};
//!
//! fn tickets(ctx: &Ctx) -> Family {
//!     let mut f = Family::new("ticket", "Tickets in `tickets/`.");
//!     let c = ctx.clone();
//!     f.add("open", &["title: &str", "String"], "Open a ticket.",
//!         move |title: &str| -> Result<String, Box<rhai::EvalAltResult>> {
//!             let path = c.ws.resolve_writable("tickets/open.md").map_err(|e| c.fail(e))?;
//!             c.ws.perform(Effect::Write { path: path.clone(), bytes: title.as_bytes().to_vec() },
//!                 |_| Record::new("ticket.open", serde_json::json!({"title": title}), format!("open ticket `{title}`")))
//!                 .map_err(|e| c.fail(e))?;
//!             Ok(path.as_str().to_string())
//!         });
//!     f
//! }
//!
//! let runner = Runner::new().family(tickets);
//! let outcome = runner.run(&RunOptions::new("runbooks/my.rhai", "/srv/workspace"));
//! ```

use std::path::PathBuf;

pub use crate::context::Ctx;
pub use crate::effects::{Effect, Record};
pub use crate::error::{Error, Result};
pub use crate::primitives::Family;
pub use crate::runner::{RunOptions, RunOutcome};

/// Builds a [`Family`] for one run from that run's context.
pub type FamilyBuilder = std::rc::Rc<dyn Fn(&Ctx) -> Family>;

/// Runs runbooks with the shipped primitives plus the families added to it.
#[derive(Default, Clone)]
pub struct Runner {
    families: Vec<FamilyBuilder>,
}

impl Runner {
    pub fn new() -> Runner {
        Runner::default()
    }

    /// Add a family of primitives, built afresh for every run from its context (so its
    /// closures hold that run's door).
    pub fn family(mut self, build: impl Fn(&Ctx) -> Family + 'static) -> Runner {
        self.families.push(std::rc::Rc::new(build));
        self
    }

    /// Run a runbook (a path, a name in the workspace's `runbooks/`, or a shipped runbook)
    /// with these primitives; like `runbook run`.
    pub fn run(&self, opts: &RunOptions) -> Result<RunOutcome> {
        crate::primitives::with_extra_families(self.families.clone(), || crate::runner::run(opts))
    }
}

impl RunOptions {
    /// A real run of `runbook` against `workspace` with the defaults of `runbook run`:
    /// no parameters, the 10-minute timeout, console output, changes synced at the end.
    pub fn new(runbook: impl Into<PathBuf>, workspace: impl Into<PathBuf>) -> RunOptions {
        RunOptions {
            file: runbook.into(),
            workspace: workspace.into(),
            dry_run: false,
            dry_run_state: None,
            params: Vec::new(),
            timeout: Some(std::time::Duration::from_secs(600)),
            console: crate::effects::Console::Stdout,
            durability: crate::effects::Durability::EndOfRun,
            force: false,
            no_exec: false,
            report: None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `note::put(text)`: writes `note.txt` through the door.
    fn notes(ctx: &Ctx) -> Family {
        let mut f = Family::new("note", "A note.");
        let c = ctx.clone();
        f.add(
            "put",
            &["text: &str", "()"],
            "Write `note.txt`.",
            move |text: &str| -> std::result::Result<(), Box<rhai::EvalAltResult>> {
                let rel = c.ws.resolve_writable("note.txt").map_err(|e| c.fail(e))?;
                c.ws.perform(
                    Effect::Write {
                        path: rel.clone(),
                        bytes: text.as_bytes().to_vec(),
                    },
                    |_| Record::new("note.put", serde_json::json!({}), "write the note"),
                )
                .map_err(|e| c.fail(e))?;
                Ok(())
            },
        );
        f
    }

    #[test]
    fn an_added_primitive_goes_through_the_door_real_and_dry() {
        let ws = tempfile::tempdir().unwrap();
        let rb = tempfile::tempdir().unwrap();
        let file = rb.path().join("n.rhai");
        std::fs::write(
            &file,
            "//! name: n\n//! version: 1.0.0\n//! description: d\n\nnote::put(`dry ${DRY_RUN}`);\n",
        )
        .unwrap();
        let runner = Runner::new().family(notes);
        let mut opts = RunOptions::new(&file, ws.path());
        opts.console = crate::effects::Console::Quiet;
        opts.dry_run = true;
        runner.run(&opts).unwrap();
        assert!(!ws.path().join("note.txt").exists());
        opts.dry_run = false;
        runner.run(&opts).unwrap();
        assert_eq!(
            std::fs::read_to_string(ws.path().join("note.txt")).unwrap(),
            "dry false"
        );
        // Without the runner the primitive does not exist.
        assert!(crate::runner::run(&opts).is_err());
    }
}
