//! Runs that did not finish, and the ways on: refuse, resume, undo.
//!
//! A real run leaves a marker (`.runbook/active/<run-id>`) for as long as it runs, and
//! journals, for every effect, its `intent` before it is performed, each change on disk
//! (`disk`: a rename into place with the new file's inode, a move to the trash, an append
//! with what it appends) before it is made, and its `action` when it is done. A marker that
//! outlives its run (the workspace lock is free) is a run that was killed; its log says how
//! far each effect got, and the disk says which of the logged changes happened:
//!
//! * a write happened when the file at its path has the inode the log gave its temp file;
//! * a move (to the trash, or elsewhere) when its source is gone and its destination exists;
//! * an append when the file holds the appended text at the logged offset;
//! * a copy or a directory when the destination exists;
//! * a git checkout is taken as begun: it logged each file's content hash before and after,
//!   and undo restores only the files that hold what it wrote.
//!
//! **Refuse.** A real run that finds such a run refuses to start and names the three ways
//! on: `runbook resume RUN_ID`, `runbook undo RUN_ID`, or `--force`. runbook's temp files left
//! in the directories the dead run was changing are moved to its trash, and named.
//!
//! **Resume** runs the same runbook, with the same parameters, under the same run id. It
//! starts from a view of the workspace as the dead run found it (every change that happened,
//! reversed, in the overlay) and goes through the effects the dead run completed again,
//! checking each against its journal and simulating it, so the script's reads and decisions
//! are the ones it made the first time; at the first effect not done, the door goes live.
//! An effect that was cut short is redone; a half-done one is completed the same way.
//!
//! **Undo** reverses every change that happened, newest first, through the door (so an undo
//! is itself a run, journaled, with its own trash, and `--dry-run` shows it), after checking
//! that the workspace still holds what the run left, unless `--force`. A git checkout is
//! undone from its log entry: the old content of each file it overwrote (the trash copy of
//! uncommitted work, or the blob in the `HEAD` it was made on), the index entries reset to
//! that `HEAD` and the saved patch of staged work applied to the index again. Commits, tags
//! and staging are not undone (a commit may be pushed already); neither is any git change
//! resumed, since the replay's view reverses files, not the index or the history.

use super::disk;
use super::own;
use super::path::RelPath;
use super::sandbox::kind;
use super::{Effect, Entry, Overlay, Record, Workspace};
use crate::error::{Error, Result};
use rustix::fs::FileType;
use serde_json::{json, Value};
use std::io::Read;

/// One change on disk a run logged, and whether it happened.
#[derive(Debug, Clone)]
pub struct DiskOp {
    pub seq: usize,
    pub op: Value,
    pub happened: bool,
    /// An append that had only created its file (empty) when the run died: nothing was
    /// written, but the file is the run's, so reversing the run takes it away.
    pub created_empty: bool,
}

impl DiskOp {
    /// Whether reversing the run must reverse this change.
    fn to_reverse(&self) -> bool {
        self.happened || self.created_empty
    }
}

/// What a run's log says it did.
#[derive(Debug)]
pub struct LoggedRun {
    pub run_id: String,
    pub start: Value,
    pub ended: Option<Value>,
    /// Canonical effect descriptions by sequence number.
    pub intents: Vec<(usize, Value)>,
    /// Sequence numbers whose action was recorded.
    pub completed: std::collections::BTreeSet<usize>,
    pub disk: Vec<DiskOp>,
    pub last_seq: usize,
}

fn log_rel(run_id: &str) -> RelPath {
    RelPath::from_trusted(format!(".runbook/runs/{run_id}.jsonl"))
}

fn check_run_id(run_id: &str) -> Result<()> {
    if run_id.is_empty()
        || !run_id
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '-')
    {
        return Err(Error::Usage(format!(
            "`{run_id}` is not a run id; `ls .runbook/runs` (or `runbook trash list`) shows them"
        )));
    }
    Ok(())
}

impl LoggedRun {
    pub fn read(ws: &Workspace, run_id: &str) -> Result<LoggedRun> {
        check_run_id(run_id)?;
        let rel = log_rel(run_id);
        let mut text = String::new();
        ws.root
            .open_read(&rel)
            .and_then(|mut f| f.read_to_string(&mut text))
            .map_err(|e| match e.kind() {
                std::io::ErrorKind::NotFound => Error::Usage(format!(
                    "there is no run `{run_id}` in `{}` (no `{rel}`)",
                    ws.display_root().display()
                )),
                _ => Error::io(rel.to_string(), "read", e),
            })?;
        let mut run = LoggedRun {
            run_id: run_id.to_string(),
            start: Value::Null,
            ended: None,
            intents: Vec::new(),
            completed: Default::default(),
            disk: Vec::new(),
            last_seq: 0,
        };
        for line in text.lines() {
            // A run killed mid-line leaves a torn last line; everything before it counts.
            let Ok(event) = serde_json::from_str::<Value>(line) else {
                continue;
            };
            let seq = event["seq"].as_u64().map(|s| s as usize);
            if let Some(s) = seq {
                run.last_seq = run.last_seq.max(s);
            }
            match event["event"].as_str() {
                Some("run_start") if run.start.is_null() => run.start = event,
                Some("run_end") => run.ended = Some(event),
                Some("intent") => run
                    .intents
                    .push((seq.unwrap_or(0), event["effect"].clone())),
                Some("action") => {
                    if let Some(s) = seq {
                        run.completed.insert(s);
                    }
                }
                Some("disk") => run.disk.push(DiskOp {
                    seq: seq.unwrap_or(0),
                    op: event["op"].clone(),
                    happened: false,
                    created_empty: false,
                }),
                Some("resume") => run.ended = None,
                _ => {}
            }
        }
        if run.start.is_null() {
            return Err(Error::invalid(
                format!("run `{run_id}`"),
                "its log has no `run_start`; it cannot be resumed or undone",
            ));
        }
        // A completed effect's changes all happened (its action proves it; a later change of
        // the same run may have replaced what one of them left). Only the effect under way
        // when the run died needs the disk to say how far it got.
        let completed = run.completed.clone();
        for op in &mut run.disk {
            op.happened = completed.contains(&op.seq) || happened(ws, &op.op);
            op.created_empty = !op.happened
                && op.op["at"].as_u64() == Some(0)
                && rel_of(&op.op["append"])
                    .and_then(|p| ws.root.lstat(&p).ok())
                    .is_some_and(|st| st.st_size == 0);
        }
        Ok(run)
    }

    /// Whether effect `seq` is done: its action was recorded, or every change it logged
    /// happened (it was killed after the last one).
    fn done(&self, seq: usize) -> bool {
        if self.completed.contains(&seq) {
            return true;
        }
        let ops: Vec<&DiskOp> = self.disk.iter().filter(|d| d.seq == seq).collect();
        if ops.is_empty() || !ops.iter().all(|d| d.happened) {
            return false;
        }
        // A registry change is a write and then the history's append: with only the write
        // logged, the run died before the append, so the change is not done.
        let registry = self
            .intents
            .iter()
            .any(|(s, e)| *s == seq && e.get("registry").is_some());
        !registry || ops.iter().any(|d| d.op.get("append").is_some())
    }

    /// The first git change the run made (or began) that `kinds` cannot take back.
    fn refuses_reversal(&self, kinds: &[&str]) -> Option<String> {
        self.intents.iter().find_map(|(seq, e)| {
            let git = kinds.iter().find(|k| e.get(**k).is_some())?;
            (self.done(*seq) || self.disk.iter().any(|d| d.seq == *seq)).then(|| git.to_string())
        })
    }
}

fn rel_of(v: &Value) -> Option<RelPath> {
    v.as_str().map(|s| RelPath::from_trusted(s.to_string()))
}

fn exists(ws: &Workspace, rel: &RelPath) -> bool {
    ws.root.lstat(rel).is_ok()
}

/// Whether one logged change on disk happened.
/// Git changes a resume cannot replay: its view of the workspace can reverse files, not
/// the index or the history.
const NOT_RESUMABLE: &[&str] = &[
    "git_checkout",
    "git_add",
    "git_commit",
    "git_tag",
    "git_restore_index",
];

/// Git changes an undo cannot take back: a commit or a tag may be shared by now, and
/// staging has no record of what was staged before. A checkout is undone from what it
/// logged (see [`undo_checkout`]).
const NOT_UNDOABLE: &[&str] = &["git_add", "git_commit", "git_tag", "git_restore_index"];

fn happened(ws: &Workspace, op: &Value) -> bool {
    // A checkout that began is reversed file by file (only files that hold what it wrote),
    // and the index reset is the same whether or not git got to it.
    if op.get("checkout").is_some() {
        return true;
    }
    if let Some(path) = rel_of(&op["write"]) {
        let Ok(st) = ws.root.lstat(&path) else {
            return false;
        };
        // The file the run renamed into place: the same inode, or (in a copy of the
        // workspace) the same size and modification time to the nanosecond.
        let mtime_ns = i128::from(st.st_mtime) * 1_000_000_000 + i128::from(st.st_mtime_nsec);
        return Some(st.st_ino) == op["ino"].as_u64()
            || (Some(st.st_size as u64) == op["size"].as_u64()
                && op["mtime_ns"].as_i64().map(i128::from) == Some(mtime_ns)
                && mtime_ns != 0);
    }
    if let Some(path) = rel_of(&op["append"]) {
        let (at, text) = (
            op["at"].as_u64().unwrap_or(0),
            op["text"].as_str().unwrap_or(""),
        );
        let Ok(bytes) = disk::read(&ws.root, &path) else {
            return false;
        };
        let at = at as usize;
        return bytes.len() >= at + text.len() && &bytes[at..at + text.len()] == text.as_bytes();
    }
    for key in ["remove", "move"] {
        if let Some(src) = rel_of(&op[key]) {
            let Some(dst) = rel_of(&op["to"]) else {
                return false;
            };
            return !exists(ws, &src) && exists(ws, &dst);
        }
    }
    if let Some(dst) = rel_of(&op["to"]).filter(|_| op.get("copy").is_some()) {
        return exists(ws, &dst);
    }
    if let Some(dir) = rel_of(&op["mkdir"]) {
        return exists(ws, &dir);
    }
    false
}

/// The directories a run was changing: where its temp files would be.
fn touched_dirs(run: &LoggedRun) -> std::collections::BTreeSet<RelPath> {
    let mut dirs = std::collections::BTreeSet::new();
    for d in &run.disk {
        for key in ["write", "append", "to", "remove", "move", "copy", "mkdir"] {
            if let Some(p) = rel_of(&d.op[key]) {
                dirs.insert(p.parent().unwrap_or_default());
            }
        }
    }
    dirs
}

/// Move runbook's temp files left in the directories `run` was changing into its trash;
/// returns what was moved where. Called while the lock is held, so no other run can be
/// writing them.
fn sweep_temp_files(ws: &Workspace, run: &LoggedRun) -> Vec<(RelPath, RelPath)> {
    let mut moved = Vec::new();
    for dir in touched_dirs(run) {
        if dir.first_component() == own::DIR {
            continue;
        }
        for (name, ft) in disk::list(&ws.root, &dir).unwrap_or_default() {
            if ft != FileType::RegularFile && ft != FileType::Directory {
                continue;
            }
            if !disk::is_temp_name(&name) {
                continue;
            }
            let from = dir.join(&name);
            let to = super::trash::place(&run.run_id, &from, |r| exists(ws, r));
            if disk::move_noreplace(&ws.root, &from, &to).is_ok() {
                moved.push((from, to));
            }
        }
    }
    moved
}

impl Workspace {
    /// Before a real run changes anything: refuse when an earlier run did not finish
    /// (unless `force`), and mark this one as under way. Must be called with the lock held.
    pub fn start_real(&self, about: &Value, force: bool) -> Result<()> {
        let mut unfinished = Vec::new();
        for id in own::active_runs(&self.root) {
            if id == self.run_id {
                continue;
            }
            let Ok(run) = LoggedRun::read(self, &id) else {
                // No log: the run died before it wrote anything; nothing to resume or undo.
                own::clear_active(&self.root, &id);
                continue;
            };
            for (from, to) in sweep_temp_files(self, &run) {
                let _ = crate::output::print_in_run(format_args!(
                    "moved the temp file `{from}` left by run {id} to `{to}`\n"
                ));
            }
            unfinished.push(run);
        }
        if let Some(run) = unfinished.first() {
            if !force {
                let start = &run.start;
                return Err(Error::invalid(
                    format!("workspace `{}`", self.display_root().display()),
                    format!(
                        "run {} of `{}` {} (started {}) did not finish: it was killed or the machine went down after {} of its changes. Nothing was changed now. Choose one: `runbook resume {}` finishes it, `runbook undo {}` reverts what it did, or run again with `--force` to leave it as it is",
                        run.run_id,
                        start["name"].as_str().unwrap_or("?"),
                        start["version"].as_str().unwrap_or("?"),
                        start["ts"].as_str().unwrap_or("?"),
                        run.completed.len(),
                        run.run_id,
                        run.run_id
                    ),
                ));
            }
            for run in &unfinished {
                own::clear_active(&self.root, &run.run_id);
                self.journal
                    .event("forced_past", json!({"unfinished_run": run.run_id}));
            }
        }
        own::mark_active(&self.root, &self.run_id, about, self.sync_each())
    }

    /// Mark this run as under way without looking at others (an undo, which deals with
    /// the run it reverses itself).
    pub fn mark_running(&self, about: &Value) -> Result<()> {
        own::mark_active(&self.root, &self.run_id, about, self.sync_each())
    }

    /// A real run ended (however): it is no longer under way.
    pub fn end_real(&self) {
        own::clear_active(&self.root, &self.run_id);
    }

    /// Whether run `run_id` is marked as under way (killed, since we hold the lock).
    pub fn is_unfinished(&self, run_id: &str) -> bool {
        own::active_runs(&self.root).iter().any(|r| r == run_id)
    }

    /// Set up a resume of `run`: go on writing its log, start from a view of the workspace
    /// as it found it, and replay the effects it completed (see the module docs).
    pub fn begin_resume(&self, run: &LoggedRun) -> Result<()> {
        if let Some(git) = run.refuses_reversal(NOT_RESUMABLE) {
            return Err(Error::invalid(
                format!("run `{}`", run.run_id),
                format!("it made a git change (`{git}`), which resume cannot replay; finish it by hand, or undo its other changes with `runbook undo {}`", run.run_id),
            ));
        }
        for (from, to) in sweep_temp_files(self, run) {
            let _ = crate::output::print_in_run(format_args!(
                "moved the temp file `{from}` left by the run to `{to}`\n"
            ));
        }
        self.journal.reopen_log(&self.root)?;
        // The view as the run found it: every change that happened, reversed, newest first.
        for d in run.disk.iter().rev().filter(|d| d.to_reverse()) {
            reverse_in_view(self, &self.overlay, &d.op)?;
        }
        let recorded: Vec<Value> = run
            .intents
            .iter()
            .filter(|(seq, _)| run.done(*seq))
            .map(|(_, e)| e.clone())
            .collect();
        *self.cut_short.borrow_mut() = run
            .intents
            .iter()
            .filter(|(seq, _)| !run.done(*seq))
            .map(|(_, e)| e.clone())
            .collect();
        self.seq.set(run.last_seq + 1);
        self.mode.set(super::Mode::Replaying);
        *self.replay.borrow_mut() = Some(super::Replay { recorded, next: 0 });
        self.journal
            .event("resume", json!({"replaying": run.completed.len()}));
        Ok(())
    }
}

/// Put into the overlay the state before one logged change.
fn reverse_in_view(ws: &Workspace, overlay: &Overlay, op: &Value) -> Result<()> {
    let file_from = |rel: &RelPath| -> Result<Entry> {
        let st = ws
            .root
            .lstat(rel)
            .map_err(|e| Error::io(rel.to_string(), "read", e))?;
        Ok(Entry::File {
            content: super::Content::Disk(rel.clone()),
            mtime: disk::mtime_of(&st),
        })
    };
    // A tree the run moved away: each of its files, in view, at its old place.
    let restore_tree = |from: &RelPath, to: &RelPath| -> Result<()> {
        let st = ws
            .root
            .lstat(from)
            .map_err(|e| Error::io(from.to_string(), "read", e))?;
        if kind(&st) != FileType::Directory {
            overlay.set(to, file_from(from)?);
            return Ok(());
        }
        overlay.set(to, Entry::Dir { shadows_disk: true });
        let mut below = Vec::new();
        disk::all_below(&ws.root, from, &mut below);
        for (p, is_dir) in below {
            let target = to.join(&p.as_str()[from.as_str().len() + 1..]);
            if is_dir {
                overlay.set(&target, Entry::Dir { shadows_disk: true });
            } else {
                overlay.set(&target, file_from(&p)?);
            }
        }
        Ok(())
    };
    if let Some(path) = rel_of(&op["write"]) {
        match rel_of(&op["kept"]) {
            Some(kept) => {
                overlay.set(&path, file_from(&kept)?);
                overlay.set(&kept, Entry::Removed);
            }
            None => overlay.set(&path, Entry::Removed),
        }
    } else if let Some(path) = rel_of(&op["append"]) {
        let at = op["at"].as_u64().unwrap_or(0) as usize;
        if at == 0 {
            overlay.set(&path, Entry::Removed);
        } else {
            let bytes =
                disk::read(&ws.root, &path).map_err(|e| Error::io(path.to_string(), "read", e))?;
            overlay.set(
                &path,
                Entry::File {
                    content: super::Content::Bytes(std::rc::Rc::from(
                        &bytes[..at.min(bytes.len())],
                    )),
                    mtime: std::time::SystemTime::now(),
                },
            );
        }
    } else if let (Some(src), Some(dst)) = (
        rel_of(&op["remove"]).or_else(|| rel_of(&op["move"])),
        rel_of(&op["to"]),
    ) {
        restore_tree(&dst, &src)?;
        overlay.clear_below(&dst);
        overlay.set(&dst, Entry::Removed);
    } else if let (Some(_), Some(dst)) = (rel_of(&op["copy"]), rel_of(&op["to"])) {
        overlay.set(&dst, Entry::Removed);
    } else if let Some(dir) = rel_of(&op["mkdir"]) {
        overlay.set(&dir, Entry::Removed);
    }
    Ok(())
}

/// `runbook undo RUN_ID`: reverse every change `run` made that happened, newest first,
/// through the door. Refuses (naming the paths) when the workspace no longer holds what the
/// run left, unless `force`. Returns the number of changes reversed.
pub fn undo(ws: &Workspace, run: &LoggedRun, force: bool) -> Result<usize> {
    if let Some(git) = run.refuses_reversal(NOT_UNDOABLE) {
        return Err(Error::invalid(
            format!("run `{}`", run.run_id),
            format!("it made a git change (`{git}`), which undo cannot take back (a commit or tag may be shared already); nothing was changed. Take it back with git (`git revert`, `git tag -d`); files the run overwrote are in `.runbook/trash/{}/`", run.run_id),
        ));
    }
    // A dry run changes nothing, temp files included.
    if !ws.journal.dry_run() {
        for (from, to) in sweep_temp_files(ws, run) {
            let _ = crate::output::print_in_run(format_args!(
                "moved the temp file `{from}` left by the run to `{to}`\n"
            ));
        }
    }
    let ops: Vec<&DiskOp> = run.disk.iter().filter(|d| d.to_reverse()).collect();
    // What the run left must still be there: the last change of the run to each path must
    // still show on disk (an earlier one may have been replaced by the run itself).
    let mut changed = Vec::new();
    let mut seen = std::collections::BTreeSet::new();
    for d in ops.iter().rev() {
        if d.op.get("checkout").is_some() {
            changed.extend(checkout_changed_since(ws, &d.op, &mut seen)?);
            continue;
        }
        for key in ["write", "append", "to", "mkdir"] {
            let Some(p) = rel_of(&d.op[key]) else {
                continue;
            };
            if !seen.insert(p.clone()) {
                continue;
            }
            if !d.created_empty && !happened(ws, &d.op) {
                changed.push(p.to_string());
            }
        }
    }
    if !changed.is_empty() && !force {
        return Err(Error::invalid(
            format!("undo of run `{}`", run.run_id),
            format!(
                "the workspace changed since that run: {}; nothing was changed. Undo anyway with `--force`",
                changed.iter().map(|p| format!("`{p}`")).collect::<Vec<_>>().join(", ")
            ),
        ));
    }
    let mut n = 0;
    fn rec(
        op: &'static str,
        args: Value,
        summary: String,
    ) -> impl FnOnce(&super::Outcome) -> Record {
        move |_| Record::new(op, args, summary)
    }
    for d in ops.iter().rev() {
        let op = &d.op;
        if op.get("checkout").is_some() {
            undo_checkout(ws, run, op)?;
        } else if let Some(path) = rel_of(&op["write"]) {
            if ws.exists(&path) {
                ws.perform(
                    Effect::Remove { path: path.clone() },
                    rec(
                        "undo.remove",
                        json!({"path": path.as_str()}),
                        format!("take away `{path}` as written by run {}", run.run_id),
                    ),
                )?;
            }
            if let Some(kept) = rel_of(&op["kept"]) {
                ws.perform(
                    Effect::Move {
                        src: kept.clone(),
                        dst: path.clone(),
                    },
                    rec(
                        "undo.restore",
                        json!({"from": kept.as_str(), "to": path.as_str()}),
                        format!("put back `{path}` from `{kept}`"),
                    ),
                )?;
            }
        } else if let Some(path) = rel_of(&op["append"]) {
            let at = op["at"].as_u64().unwrap_or(0) as usize;
            let bytes = ws.read(&path)?;
            let effect = if at == 0 {
                Effect::Remove { path: path.clone() }
            } else {
                Effect::Write {
                    path: path.clone(),
                    bytes: bytes[..at.min(bytes.len())].to_vec(),
                }
            };
            ws.perform(
                effect,
                rec(
                    "undo.truncate",
                    json!({"path": path.as_str(), "to_bytes": at}),
                    format!("take back what run {} appended to `{path}`", run.run_id),
                ),
            )?;
        } else if let (Some(src), Some(dst)) = (
            rel_of(&op["remove"]).or_else(|| rel_of(&op["move"])),
            rel_of(&op["to"]),
        ) {
            ws.perform(
                Effect::Move {
                    src: dst.clone(),
                    dst: src.clone(),
                },
                rec(
                    "undo.restore",
                    json!({"from": dst.as_str(), "to": src.as_str()}),
                    format!("put back `{src}` from `{dst}`"),
                ),
            )?;
        } else if let (Some(_), Some(dst)) = (rel_of(&op["copy"]), rel_of(&op["to"])) {
            ws.perform(
                Effect::Remove { path: dst.clone() },
                rec(
                    "undo.remove",
                    json!({"path": dst.as_str()}),
                    format!("take away the copy `{dst}`"),
                ),
            )?;
        } else if let Some(dir) = rel_of(&op["mkdir"]) {
            let empty = ws.exists(&dir)
                && ws
                    .glob(&format!("{}/*", glob::Pattern::escape(dir.as_str())))
                    .map(|g| g.is_empty())
                    .unwrap_or(false)
                && ws.walk_files(&dir).map(|f| f.is_empty()).unwrap_or(false);
            if empty {
                ws.perform(
                    Effect::Remove { path: dir.clone() },
                    rec(
                        "undo.remove",
                        json!({"path": dir.as_str()}),
                        format!("take away the directory `{dir}`"),
                    ),
                )?;
            }
        } else {
            continue;
        }
        n += 1;
    }
    Ok(n)
}

/// The sha256 of a file in the run's view (`None`: no such file).
fn current_sha(ws: &Workspace, rel: &RelPath) -> Result<Option<String>> {
    if !ws.exists(rel) || ws.is_dir(rel) {
        return Ok(None);
    }
    Ok(super::git::sha_hex(Some(&ws.read(rel)?)))
}

/// What changed since a logged checkout: each file it covered that holds neither what it
/// had before nor what the checkout wrote, and `HEAD` when it moved (the index is reset
/// to the `HEAD` the checkout was made on).
fn checkout_changed_since(
    ws: &Workspace,
    op: &Value,
    seen: &mut std::collections::BTreeSet<RelPath>,
) -> Result<Vec<String>> {
    let mut changed = Vec::new();
    if let Some(head) = op["checkout"].as_str() {
        let now = super::git::head(ws)?;
        if now != head {
            changed.push(format!("HEAD (was {head}, is {now})"));
        }
    }
    for f in op["files"].as_array().into_iter().flatten() {
        let Some(path) = rel_of(&f["path"]) else {
            continue;
        };
        if !seen.insert(path.clone()) {
            continue;
        }
        let now = current_sha(ws, &path)?;
        let was = |key: &str| f[key].as_str().map(str::to_string);
        if now != was("before") && now != was("after") {
            changed.push(path.to_string());
        }
    }
    Ok(changed)
}

/// Take back a logged checkout: every file that holds what the checkout wrote gets its
/// content from before (from the trash copy, or from the `HEAD` the checkout was made on)
/// or goes (it did not exist), then the index entries go back to that `HEAD`'s and the
/// staged patch, if there was one, is applied to the index again.
fn undo_checkout(ws: &Workspace, run: &LoggedRun, op: &Value) -> Result<()> {
    let head = op["checkout"].as_str().map(str::to_string);
    let mut paths = Vec::new();
    for f in op["files"].as_array().into_iter().flatten() {
        let Some(path) = rel_of(&f["path"]) else {
            continue;
        };
        paths.push(path.clone());
        let (before, after) = (f["before"].as_str(), f["after"].as_str());
        if before == after || current_sha(ws, &path)?.as_deref() != after {
            continue;
        }
        if before.is_none() {
            ws.perform(Effect::Remove { path: path.clone() }, |_| {
                Record::new(
                    "undo.remove",
                    json!({"path": path.as_str()}),
                    format!("take away `{path}` as run {} checked it out", run.run_id),
                )
            })?;
            continue;
        }
        let bytes = if let Some(kept) = rel_of(&f["from"]["kept"]) {
            ws.read(&kept)?.to_vec()
        } else if let Some(rev) = f["from"]["head"].as_str() {
            super::git::show(ws, rev, path.as_str())?
        } else {
            return Err(Error::invalid(
                format!("the log of run `{}`", run.run_id),
                format!("it does not say where `{path}` came from before the checkout; nothing more was changed"),
            ));
        };
        if super::git::sha_hex(Some(&bytes)).as_deref() != before {
            return Err(Error::invalid(
                format!("`{path}`"),
                format!("the saved content from before run `{}` is not what the run logged; restore it by hand from `.runbook/trash/{}/`", run.run_id, run.run_id),
            ));
        }
        ws.perform(
            Effect::Write {
                path: path.clone(),
                bytes,
            },
            |_| {
                Record::new(
                    "undo.restore",
                    json!({"path": path.as_str()}),
                    format!("put back `{path}` as it was before run {}", run.run_id),
                )
            },
        )?;
    }
    let Some(head) = head else {
        return Ok(());
    };
    let staged = rel_of(&op["staged"]);
    ws.perform(
        Effect::GitRestoreIndex {
            commit: head.clone(),
            paths: paths.clone(),
            staged: staged.clone(),
        },
        |_| {
            Record::new(
                "undo.git_index",
                json!({"commit": head, "paths": paths.iter().map(|p| p.as_str()).collect::<Vec<_>>(), "staged": staged.as_ref().map(|s| s.as_str())}),
                format!(
                    "index entries of {} path(s) back to {}{}",
                    paths.len(),
                    &head[..head.len().min(12)],
                    if staged.is_some() { ", staged changes staged again" } else { "" }
                ),
            )
        },
    )?;
    Ok(())
}

/// After an undo or a resume: the run is no longer unfinished.
pub fn settle(ws: &Workspace, run_id: &str) {
    if !ws.journal.dry_run() {
        own::clear_active(&ws.root, run_id);
    }
}
