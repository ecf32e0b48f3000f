//! The run log: what a person reads on the console and what an auditor reads later.
//!
//! Every run, dry runs included, writes one JSON object per line to
//! `.runbook/runs/<run-id>.jsonl` in the workspace. Each line carries `ts` (RFC 3339),
//! `run_id`, `event` (`run_start`, `step_start`, `action`, `log`, `step_end`, `run_end`) and
//! `dry_run`. Lines are flushed as they are written, so a crash leaves the log up to the
//! moment it happened. The console gets the same story in prose: each step as it starts and
//! ends, the actions it took (or would take), and a summary; a dry run ends with the plan,
//! the actions grouped by kind.
//!
//! The journal keeps the stack of open steps so nested steps are numbered `2.1`, `2.2`, and
//! so a failure can name the step it happened in.
//!
//! It lives in `effects/` because an action is recorded only by the door that performs (or
//! simulates) it: [`Journal::action`] is private to the effect layer, so no primitive can
//! change something without its record, or record something it did not do. `applied` means
//! "changed the workspace": true for an effect of a real run, false for a dry run's and for
//! every check, in either mode.

use super::sandbox::Root;
use crate::error::{Error, Result};
use serde_json::{json, Map, Value};
use std::cell::RefCell;
use std::fs::File;
use std::io::{self, BufWriter, Write};
use std::path::{Path, PathBuf};
use std::time::Instant;

/// What an action did, for the plan summary of a dry run and the tallies of a real one.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum ActionKind {
    Registry,
    FileRemoved,
    FileWritten,
    FileMoved,
    Git,
    Process,
    /// A program runbook started (an external predictor), with its argv.
    Command,
    /// A notification sent to the configured sinks (`notify::send`).
    Notification,
    /// A read-only check whose result belongs in the audit trail (metrics, gates).
    Check,
}

impl ActionKind {
    pub fn heading(self) -> &'static str {
        match self {
            ActionKind::Registry => "registry changes",
            ActionKind::FileRemoved => "files removed (moved to the trash)",
            ActionKind::FileWritten => "files written",
            ActionKind::FileMoved => "files moved",
            ActionKind::Git => "git changes",
            ActionKind::Process => "processes stopped",
            ActionKind::Command => "commands run",
            ActionKind::Notification => "notifications",
            ActionKind::Check => "checks",
        }
    }

    /// The `kind` field of an action event.
    pub fn as_str(self) -> &'static str {
        match self {
            ActionKind::Registry => "registry",
            ActionKind::FileRemoved => "file_removed",
            ActionKind::FileWritten => "file_written",
            ActionKind::FileMoved => "file_moved",
            ActionKind::Git => "git",
            ActionKind::Process => "process",
            ActionKind::Command => "command",
            ActionKind::Notification => "notification",
            ActionKind::Check => "check",
        }
    }

    /// Read-only actions change nothing, so they count as neither applied nor planned changes.
    pub fn changes_workspace(self) -> bool {
        self != ActionKind::Check
    }
}

/// Final status of a step or a run.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Status {
    Ok,
    Failed,
    Interrupted,
}

impl Status {
    pub fn as_str(self) -> &'static str {
        match self {
            Status::Ok => "ok",
            Status::Failed => "failed",
            Status::Interrupted => "interrupted",
        }
    }
}

struct OpenStep {
    number: String,
    name: String,
    started: Instant,
    children: usize,
}

struct PlannedAction {
    kind: ActionKind,
    summary: String,
}

struct State {
    log: Option<BufWriter<File>>,
    /// Where the first write error went, so a full disk is reported once, not per line.
    log_error: Option<io::Error>,
    stack: Vec<OpenStep>,
    top_level_steps: usize,
    steps_ok: usize,
    steps_failed: usize,
    actions: Vec<PlannedAction>,
    failed_step: Option<String>,
}

/// Where the console output goes. Tests and embedders may silence it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Console {
    Stdout,
    Quiet,
}

pub struct Journal {
    run_id: String,
    dry_run: bool,
    console: Console,
    log_path: std::cell::OnceCell<PathBuf>,
    started: Instant,
    state: RefCell<State>,
    /// The events kept in memory while a plan is recorded (see `plan.rs`).
    capture: RefCell<Option<Vec<Value>>>,
}

impl Journal {
    /// Start writing the log file `.runbook/runs/<run_id>.jsonl`. Separate from construction
    /// so a run can check its script before it leaves a trace.
    pub(in crate::effects) fn open_log(&self, root: &Root) -> Result<PathBuf> {
        let (file, path) = super::own::create_log(root, &self.run_id, false)?;
        self.state.borrow_mut().log = Some(BufWriter::new(file));
        let _ = self.log_path.set(path.clone());
        Ok(path)
    }

    /// Go on writing an existing run's log (`runbook resume`).
    pub(in crate::effects) fn reopen_log(&self, root: &Root) -> Result<PathBuf> {
        let (file, path) = super::own::create_log(root, &self.run_id, true)?;
        self.state.borrow_mut().log = Some(BufWriter::new(file));
        let _ = self.log_path.set(path.clone());
        Ok(path)
    }

    /// Record what an effect is about to do (`intent`), before it is done: a run killed in
    /// the middle leaves a log that says which effect was under way.
    pub(in crate::effects) fn intent(
        &self,
        seq: usize,
        kind: ActionKind,
        effect: Value,
        sync: bool,
    ) {
        let mut st = self.state.borrow_mut();
        let step = st.stack.last().map(|s| s.number.clone());
        self.emit(
            &mut st,
            "intent",
            json!({"seq": seq, "kind": kind.as_str(), "effect": effect, "step": step}),
        );
        if sync {
            if let Some(log) = st.log.as_mut() {
                let _ = log.get_ref().sync_data();
            }
        }
    }

    /// Record one change on disk an effect is about to make (a rename into place, a move to
    /// the trash, an append), with what undo and resume need to tell whether it happened
    /// and to reverse it.
    pub(in crate::effects) fn disk(&self, seq: usize, op: Value, sync: bool) {
        let mut st = self.state.borrow_mut();
        self.emit(&mut st, "disk", json!({"seq": seq, "op": op}));
        if sync {
            if let Some(log) = st.log.as_mut() {
                let _ = log.get_ref().sync_data();
            }
        }
    }

    /// Any other event (`resume`, `abandoned`, `replayed`).
    pub(in crate::effects) fn event(&self, event: &str, fields: Value) {
        let mut st = self.state.borrow_mut();
        self.emit(&mut st, event, fields);
    }

    /// Flush the log to the kernel and hand back a second handle on it, for the caller to
    /// fsync together with the run's other changes (one shared journal commit, where an
    /// fdatasync of the log first would be a commit of its own).
    pub(in crate::effects) fn flushed(&self) -> Option<File> {
        let mut st = self.state.borrow_mut();
        let log = st.log.as_mut()?;
        let _ = log.flush();
        log.get_ref().try_clone().ok()
    }

    /// Flush the log and force it to disk (with the run's other changes, at its end).
    pub(in crate::effects) fn sync(&self) {
        let mut st = self.state.borrow_mut();
        if let Some(log) = st.log.as_mut() {
            let _ = log.flush();
            let _ = log.get_ref().sync_data();
        }
    }

    /// A journal that only prints: for `check`, `docs` and unit tests.
    pub fn without_log(run_id: &str, dry_run: bool, console: Console) -> Journal {
        Journal {
            run_id: run_id.to_string(),
            dry_run,
            console,
            log_path: std::cell::OnceCell::new(),
            started: Instant::now(),
            state: RefCell::new(State {
                log: None,
                log_error: None,
                stack: Vec::new(),
                top_level_steps: 0,
                steps_ok: 0,
                steps_failed: 0,
                actions: Vec::new(),
                failed_step: None,
            }),
            capture: RefCell::new(None),
        }
    }

    pub fn run_id(&self) -> &str {
        &self.run_id
    }

    pub fn dry_run(&self) -> bool {
        self.dry_run
    }

    pub fn log_path(&self) -> Option<&Path> {
        self.log_path.get().map(PathBuf::as_path)
    }

    /// Keep the events of this run in memory too, for the plan it records.
    pub(in crate::effects) fn start_capture(&self) {
        *self.capture.borrow_mut() = Some(Vec::new());
    }

    pub(in crate::effects) fn take_capture(&self) -> Vec<Value> {
        self.capture.borrow_mut().take().unwrap_or_default()
    }

    fn emit(&self, state: &mut State, event: &str, fields: Value) {
        // Every line of the log is a moment a run can be killed at: the crash tests' hook.
        super::crash_point();
        if let Some(events) = self.capture.borrow_mut().as_mut() {
            let mut e = json!({ "event": event });
            if let (Some(o), Value::Object(extra)) = (e.as_object_mut(), &fields) {
                o.extend(extra.clone());
            }
            events.push(e);
        }
        let Some(log) = state.log.as_mut() else {
            return;
        };
        let mut obj = Map::with_capacity(8);
        obj.insert("ts".into(), Value::String(now_rfc3339()));
        obj.insert("run_id".into(), Value::String(self.run_id.clone()));
        obj.insert("event".into(), Value::String(event.into()));
        obj.insert("dry_run".into(), Value::Bool(self.dry_run));
        if let Value::Object(extra) = fields {
            obj.extend(extra);
        }
        let mut line = serde_json::to_vec(&Value::Object(obj)).unwrap_or_default();
        line.push(b'\n');
        // Flushed per line: the log must survive a crash of the run it describes.
        if let Err(e) = log.write_all(&line).and_then(|_| log.flush()) {
            if state.log_error.is_none() {
                eprintln!("warning: cannot write the run log: {e}; the run goes on without it");
                state.log_error = Some(e);
            }
            state.log = None;
        }
    }

    fn say(&self, text: std::fmt::Arguments) {
        if self.console == Console::Stdout {
            // A closed stdout stops the printing, never the run.
            let _ = crate::output::print_in_run(format_args!("{text}\n"));
        }
    }

    fn indent(depth: usize) -> String {
        "    ".repeat(depth)
    }

    #[allow(clippy::too_many_arguments)]
    pub fn run_start(
        &self,
        runbook: &str,
        name: &str,
        version: &str,
        sha256: &str,
        params: Value,
        workspace: &Path,
        extra: Value,
    ) {
        let mut st = self.state.borrow_mut();
        let mut fields = json!({
            "runbook": runbook, "name": name, "version": version, "sha256": sha256,
            "params": params, "workspace": workspace.display().to_string(),
        });
        if let (Some(f), Value::Object(extra)) = (fields.as_object_mut(), extra) {
            f.extend(extra);
        }
        self.emit(&mut st, "run_start", fields);
        drop(st);
        let mode = if self.dry_run {
            " (dry run: nothing will be changed)"
        } else {
            ""
        };
        self.say(format_args!(
            "runbook {name} {version}, run {}{mode}\nworkspace {}",
            self.run_id,
            workspace.display()
        ));
    }

    /// Open a step; returns its number (`3`, `3.1`).
    pub fn step_start(&self, name: &str) -> String {
        let mut st = self.state.borrow_mut();
        let number = match st.stack.last_mut() {
            Some(parent) => {
                parent.children += 1;
                format!("{}.{}", parent.number, parent.children)
            }
            None => {
                st.top_level_steps += 1;
                st.top_level_steps.to_string()
            }
        };
        let depth = st.stack.len();
        self.emit(
            &mut st,
            "step_start",
            json!({ "step": number, "name": name }),
        );
        st.stack.push(OpenStep {
            number: number.clone(),
            name: name.to_string(),
            started: Instant::now(),
            children: 0,
        });
        drop(st);
        self.say(format_args!("{}[{number}] {name}", Self::indent(depth)));
        if depth == 0 && self.console == Console::Stdout {
            crate::output::progress_start(&format!("[{number}] {name}"));
        }
        number
    }

    /// Close the innermost open step.
    pub fn step_end(&self, status: Status, error: Option<&str>) {
        let mut st = self.state.borrow_mut();
        let Some(step) = st.stack.pop() else { return };
        let ms = step.started.elapsed().as_secs_f64() * 1000.0;
        let mut fields = json!({
            "step": step.number, "name": step.name, "status": status.as_str(),
            "duration_ms": round3(ms),
        });
        if let Some(e) = error {
            fields["error"] = Value::String(e.to_string());
        }
        self.emit(&mut st, "step_end", fields);
        match status {
            Status::Ok => st.steps_ok += 1,
            _ => {
                st.steps_failed += 1;
                if st.failed_step.is_none() {
                    st.failed_step = Some(step.name.clone());
                }
            }
        }
        let depth = st.stack.len();
        drop(st);
        if depth == 0 {
            crate::output::progress_end();
        }
        let word = match status {
            Status::Ok => crate::output::paint("32", "ok"),
            Status::Failed => crate::output::paint("31;1", "FAILED"),
            Status::Interrupted => crate::output::paint("33;1", "INTERRUPTED"),
        };
        match error {
            Some(e) if status != Status::Ok => self.say(format_args!(
                "{}[{}] {word} {} ({}): {e}",
                Self::indent(depth),
                step.number,
                step.name,
                fmt_ms(ms)
            )),
            _ => self.say(format_args!(
                "{}[{}] {word} {} ({})",
                Self::indent(depth),
                step.number,
                step.name,
                fmt_ms(ms)
            )),
        }
    }

    /// How many steps are open: 0 between top-level steps.
    pub fn depth(&self) -> usize {
        self.state.borrow().stack.len()
    }

    /// The first step that failed in this run.
    pub fn failed_step(&self) -> Option<String> {
        self.state.borrow().failed_step.clone()
    }

    /// Record one action a primitive took, or in a dry run would take.
    /// `summary` is a short imperative phrase: ``remove `models/x.json` ``.
    pub(in crate::effects) fn action(
        &self,
        seq: Option<usize>,
        kind: ActionKind,
        op: &str,
        args: Value,
        summary: &str,
        result: Option<Value>,
    ) {
        let applied = !self.dry_run && kind.changes_workspace();
        let mut st = self.state.borrow_mut();
        let mut fields = json!({
            "op": op, "kind": kind.as_str(), "args": args, "applied": applied,
            "step": st.stack.last().map(|s| s.number.clone()), "summary": summary,
        });
        if let Some(seq) = seq {
            fields["seq"] = json!(seq);
        }
        if let Some(r) = result {
            fields["result"] = r;
        }
        self.emit(&mut st, "action", fields);
        st.actions.push(PlannedAction {
            kind,
            summary: summary.to_string(),
        });
        let depth = st.stack.len();
        drop(st);
        let verb = if !kind.changes_workspace() {
            crate::output::paint("2", "check")
        } else if kind == ActionKind::Command {
            // A predictor really runs in a dry run too (confined), so it is never "would".
            crate::output::paint("35", "ran")
        } else if self.dry_run {
            crate::output::paint("36", "would")
        } else {
            crate::output::paint("32", "done:")
        };
        self.say(format_args!("{}{verb} {summary}", Self::indent(depth)));
    }

    /// A message from the script (`print`, `debug`).
    pub fn message(&self, level: &str, text: &str) {
        let mut st = self.state.borrow_mut();
        let step = st.stack.last().map(|s| s.number.clone());
        self.emit(
            &mut st,
            "log",
            json!({ "level": level, "message": text, "step": step }),
        );
        let depth = st.stack.len();
        drop(st);
        for line in text.lines() {
            self.say(format_args!("{}| {line}", Self::indent(depth)));
        }
    }

    /// Close every step still open (after a failure that unwound past them), then the run.
    pub fn run_end(&self, status: Status, error: Option<&Error>) {
        let message = error.map(|e| e.to_string());
        while !self.state.borrow().stack.is_empty() {
            self.step_end(status, message.as_deref());
        }
        let ms = self.started.elapsed().as_secs_f64() * 1000.0;
        let mut st = self.state.borrow_mut();
        let changes = st
            .actions
            .iter()
            .filter(|a| a.kind.changes_workspace())
            .count();
        let mut fields = json!({
            "status": status.as_str(), "duration_ms": round3(ms),
            "steps_ok": st.steps_ok, "steps_failed": st.steps_failed, "actions": changes,
        });
        if let Some(m) = &message {
            fields["error"] = Value::String(m.clone());
        }
        self.emit(&mut st, "run_end", fields);
        if let Some(log) = st.log.as_mut() {
            // Durability of the log follows the workspace's setting (see `Workspace::finish`).
            let _ = log.flush();
        }
        if self.console == Console::Quiet {
            return;
        }
        let mut text = String::new();
        if self.dry_run {
            text.push_str(&self.plan_text(&st.actions));
        }
        let what = if self.dry_run { "planned" } else { "applied" };
        let shown = match status {
            Status::Ok => crate::output::paint("32;1", status.as_str()),
            _ => crate::output::paint("31;1", status.as_str()),
        };
        text.push_str(&format!(
            "run {shown}: {} step(s) ok, {} failed, {changes} change(s) {what}, {}",
            st.steps_ok,
            st.steps_failed,
            fmt_ms(ms)
        ));
        if let Some(p) = self.log_path.get() {
            text.push_str(&format!("\nlog: {}", p.display()));
        }
        drop(st);
        self.say(format_args!("{text}"));
    }

    fn plan_text(&self, actions: &[PlannedAction]) -> String {
        let mut kinds: Vec<ActionKind> = actions
            .iter()
            .map(|a| a.kind)
            .filter(|k| k.changes_workspace())
            .collect();
        kinds.sort();
        kinds.dedup();
        let mut text = String::from("plan (dry run, nothing was changed):\n");
        if kinds.is_empty() {
            text.push_str("  no changes\n");
        }
        for kind in kinds {
            text.push_str(&format!("  {}:\n", kind.heading()));
            for a in actions.iter().filter(|a| a.kind == kind) {
                text.push_str(&format!("    - {}\n", a.summary));
            }
        }
        text
    }
}

fn round3(ms: f64) -> f64 {
    (ms * 1000.0).round() / 1000.0
}

fn fmt_ms(ms: f64) -> String {
    if ms < 1000.0 {
        format!("{ms:.1} ms")
    } else {
        format!("{:.2} s", ms / 1000.0)
    }
}

pub fn now_rfc3339() -> String {
    chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Micros, true)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn writes_events_with_required_fields() {
        let dir = tempfile::tempdir().unwrap();
        let j = Journal::without_log("r1", true, Console::Quiet);
        j.open_log(&Root::open(dir.path()).unwrap()).unwrap();
        j.run_start(
            "rb.rhai",
            "demo",
            "1.0.0",
            "abc",
            json!({}),
            dir.path(),
            json!({}),
        );
        assert_eq!(j.step_start("outer"), "1");
        assert_eq!(j.step_start("inner"), "1.1");
        j.action(
            None,
            ActionKind::FileRemoved,
            "fs.remove",
            json!({"path": "a"}),
            "remove `a`",
            None,
        );
        j.step_end(Status::Ok, None);
        j.run_end(Status::Failed, Some(&Error::Interrupted));
        let text = std::fs::read_to_string(dir.path().join(".runbook/runs/r1.jsonl")).unwrap();
        let events: Vec<Value> = text
            .lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect();
        let names: Vec<&str> = events
            .iter()
            .map(|e| e["event"].as_str().unwrap())
            .collect();
        assert_eq!(
            names,
            [
                "run_start",
                "step_start",
                "step_start",
                "action",
                "step_end",
                "step_end",
                "run_end"
            ]
        );
        for e in &events {
            assert_eq!(e["run_id"], "r1");
            assert_eq!(e["dry_run"], true);
            assert!(chrono::DateTime::parse_from_rfc3339(e["ts"].as_str().unwrap()).is_ok());
        }
        assert_eq!(events[3]["applied"], false);
        assert_eq!(events[3]["step"], "1.1");
        // The outer step was still open when the run failed: it is closed with the run's status.
        assert_eq!(events[5]["status"], "failed");
        assert_eq!(events[6]["status"], "failed");
        assert!(events[6]["error"].as_str().unwrap().contains("interrupted"));
    }
}
