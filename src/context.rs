//! The state one run shares between the engine and every primitive: the workspace (the
//! effect door, which holds the journal), the run's clock and its deadline.
//!
//! Per-family state (the registry store and its cache, loaded datasets, the git model)
//! lives with its family, not here. Primitives hold an `Rc<RunContext>`; a run is
//! single-threaded, so interior mutability through `Cell`/`RefCell` is enough.

use crate::effects::{Journal, Workspace};
use crate::error::Error;
use chrono::{DateTime, Utc};
use rhai::{Dynamic, EvalAltResult, Position};
use std::cell::{Cell, RefCell};
use std::rc::Rc;
use std::time::{Duration, Instant};

pub struct RunContext {
    pub ws: Workspace,
    /// When the run started: `timestamp()` and backup names come from it. A resumed run
    /// keeps the time of the run it finishes, so its names are the ones already used.
    started: Cell<DateTime<Utc>>,
    /// A fatal error (sandbox violation) that scripts must not catch, kept here while Rhai
    /// unwinds with an uncatchable termination.
    fatal: RefCell<Option<Error>>,
    /// When the run must end (`--timeout`). The engine stops scripts at it by itself;
    /// primitives that wait on something outside (a predictor command) bound their waits
    /// with it, since the engine cannot interrupt them.
    deadline: Cell<Option<Instant>>,
    /// Asked before each top-level step (`runbook run --step`); `None` runs every step.
    step_gate: RefCell<Option<StepGate>>,
}

/// What an operator answered before a step (`runbook run --step`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StepAnswer {
    Run,
    Skip,
    Abort,
}

pub type StepGate = Box<dyn FnMut(&str) -> StepAnswer>;

pub type Ctx = Rc<RunContext>;

/// The token an uncatchable termination carries when the real error is in `RunContext::fatal`.
pub const FATAL_TOKEN: &str = "runbook:fatal";

impl RunContext {
    pub fn new(ws: Workspace) -> Ctx {
        Rc::new(RunContext {
            ws,
            started: Cell::new(Utc::now()),
            fatal: RefCell::new(None),
            deadline: Cell::new(None),
            step_gate: RefCell::new(None),
        })
    }

    pub fn journal(&self) -> &Journal {
        self.ws.journal()
    }

    pub fn started(&self) -> DateTime<Utc> {
        self.started.get()
    }

    pub fn set_started(&self, at: DateTime<Utc>) {
        self.started.set(at);
    }

    pub fn set_step_gate(&self, gate: StepGate) {
        *self.step_gate.borrow_mut() = Some(gate);
    }

    /// Whether to run the top-level step `name` (always, without a gate).
    pub fn ask_step(&self, name: &str) -> StepAnswer {
        match self.step_gate.borrow_mut().as_mut() {
            Some(gate) => gate(name),
            None => StepAnswer::Run,
        }
    }

    pub fn set_deadline(&self, deadline: Option<Instant>) {
        self.deadline.set(deadline);
    }

    /// `wait`, shortened so that it ends by the run's deadline, if the run has one.
    pub fn bounded(&self, wait: Duration) -> Duration {
        match self.deadline.get() {
            Some(d) => wait.min(d.saturating_duration_since(Instant::now())),
            None => wait,
        }
    }

    /// The run's timestamp in the plan's backup format, `YYYYmmdd_HHMMSS`.
    pub fn stamp(&self) -> String {
        self.started.get().format("%Y%m%d_%H%M%S").to_string()
    }

    /// Turn a primitive's error into a Rhai error. Sandbox violations end the run and cannot
    /// be caught by the script; everything else is an ordinary runtime error a script may
    /// `try`/`catch`.
    pub fn fail(&self, err: Error) -> Box<EvalAltResult> {
        match err {
            // A run that leaves its plan must stop, whatever the script catches.
            Error::Sandbox { .. } | Error::Plan { .. } | Error::NotConfirmed(_) => {
                let msg = err.to_string();
                *self.fatal.borrow_mut() = Some(err);
                Box::new(EvalAltResult::ErrorTerminated(
                    Dynamic::from(format!("{FATAL_TOKEN}:{msg}")),
                    Position::NONE,
                ))
            }
            other => Box::new(EvalAltResult::ErrorRuntime(
                other.to_string().into(),
                Position::NONE,
            )),
        }
    }

    /// Like [`fail`](Self::fail), pointing the error at the script position of the call:
    /// Rhai does not fill in positions for errors of namespaced native functions.
    pub fn fail_at(&self, call: &rhai::NativeCallContext, err: Error) -> Box<EvalAltResult> {
        let mut e = self.fail(err);
        if e.position().is_none() {
            e.set_position(call.call_position());
        }
        e
    }

    pub fn take_fatal(&self) -> Option<Error> {
        self.fatal.borrow_mut().take()
    }
}
