//! What `runbook plan`, `runbook apply` and confirmation add to a run, at two moments of
//! [`super::run::execute_with`]: after the workspace is taken and before anything is logged
//! or changed (`start`: check a plan still holds, ask for confirmation, tell the door what to
//! record or expect), and after the script ran to its end, before the run ends (`end`: turn
//! what the door recorded into a plan, check every planned effect was performed). A plain run
//! has none ([`NoHooks`]), so `run.rs` knows only these two calls.

use super::Loaded;
use crate::context::RunContext;
use crate::error::Result;

pub(crate) trait Hooks {
    fn start(&mut self, _ctx: &RunContext, _loaded: &Loaded) -> Result<()> {
        Ok(())
    }

    fn end(&mut self, _ctx: &RunContext, _loaded: &Loaded) -> Result<()> {
        Ok(())
    }
}

pub(crate) struct NoHooks;

impl Hooks for NoHooks {}
