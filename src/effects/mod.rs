//! The effect layer: the one door through which a run reads and changes the workspace.
//!
//! A primitive describes what it wants as an [`Effect`] value and hands it to
//! [`Workspace::perform`]. That one call applies the sandbox, performs the effect in a real
//! run or simulates it in a dry run, and records its journal action, so no primitive can do
//! one without the other, and none holds an `if dry_run`: the flag is stored here, once.
//! Checks (a metric, a gate, a process with nothing to stop) are recorded through
//! [`Workspace::check`], which changes nothing and is never `applied`.
//!
//! * **Sandbox** (`sandbox.rs`). Every path is resolved and opened relative to a directory
//!   handle of the workspace root; links that leave it are refused, links inside are
//!   followed, and what is off limits (`.git/`, `.runbook/`) is decided on the resolved name.
//! * **Nothing lost** (`disk.rs`, `trash.rs`). Writes go to an unguessable temp file renamed
//!   over the target, so a crash leaves the old or the new file. A removed or overwritten
//!   file is kept in `.runbook/trash/<run-id>/<path>` first.
//! * **Dry run** (`overlay.rs`). Mutations land in an in-memory overlay instead, and every
//!   read consults it first, so later steps see the state earlier steps would have produced.
//!   Git effects are simulated against that overlay too (`git.rs`).
//!
//! Mutating git commands (`gitcli.rs`), process signals (`process.rs`) and raw paths exist
//! only inside this module.

mod batch;
pub mod command;
pub mod disk;
pub mod git;
pub mod gitcli;
pub mod journal;
pub mod names;
pub mod notify;
pub mod overlay;
mod own;
pub mod path;
pub mod plan;
mod process;
pub mod recovery;
mod sandbox;
pub mod stamp;
pub mod trash;

pub use disk::WalkFilter;
pub use git::{GitChange, GitOutcome};
pub use journal::{ActionKind, Console, Journal, Status};
pub use overlay::Content;
pub use own::{Scratch, WorkspaceLock};
pub use path::RelPath;
pub use process::{check_identity, cmdline, is_alive, usage, ProcessOutcome, Usage};
pub use stamp::{Stamp, Stamped};

use crate::error::{Error, Result};
use overlay::{Entry, Lookup, Overlay};
use sandbox::Root;
use serde_json::Value;
use std::cell::RefCell;
use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::io;
use std::path::Path;
use std::rc::Rc;
use std::time::{Duration, SystemTime};

/// The largest file the door reads whole into memory (validation data has its own loaders
/// and limits).
pub const MAX_READ_BYTES: u64 = 1 << 30;

/// A file found by a listing, with its modification time.
#[derive(Debug, Clone)]
pub struct Listed {
    pub path: RelPath,
    pub mtime: SystemTime,
}

/// When changes are forced to disk. Every write is atomic (temp file, then rename) whatever
/// the setting: a crash of runbook leaves the old or the new file. Durability is about a
/// power cut: `EachWrite` fsyncs every file and directory as it is written, `EndOfRun`
/// fsyncs exactly the files the run wrote and the directories whose entries it changed, once,
/// when the run ends and before it reports, and `None` leaves it to the kernel.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Durability {
    EachWrite,
    EndOfRun,
    None,
}

/// What a primitive asks the door to do. Paths are ones the door resolved (see
/// [`Workspace::resolve_writable`]); registry changes are applied by their store.
pub enum Effect<'a> {
    /// Write a file atomically; the old content goes to the trash.
    Write { path: RelPath, bytes: Vec<u8> },
    /// Append to a file (creating it); for append-only logs.
    Append { path: RelPath, bytes: Vec<u8> },
    /// Copy a file or tree; the destination must not exist.
    Copy { src: RelPath, dst: RelPath },
    /// Move a file or tree; the destination must not exist.
    Move { src: RelPath, dst: RelPath },
    /// Move a file or tree into the trash.
    Remove { path: RelPath },
    /// Make a directory and its parents.
    Mkdir { path: RelPath },
    /// `git checkout REV -- PATHS`, saving uncommitted work it would overwrite first.
    GitCheckout { rev: String, paths: Vec<RelPath> },
    /// `git add -A -- PATHS`.
    GitAdd { paths: Vec<RelPath> },
    /// `git commit -m MESSAGE` (after `git add -A .` with `all`).
    GitCommit { message: String, all: bool },
    /// `git tag -a NAME -m MESSAGE` on `HEAD`.
    GitTag { name: String, message: String },
    /// Index entries of `paths` back to `commit`'s, then the `staged` patch applied to the
    /// index: `runbook undo` of a checkout.
    GitRestoreIndex {
        commit: String,
        paths: Vec<RelPath>,
        staged: Option<RelPath>,
    },
    /// Stop the process a pid file names: SIGTERM, wait, SIGKILL; the pid file to the trash.
    StopProcess {
        pidfile: RelPath,
        pid: i32,
        /// What the process's command line must contain (see `process::check_identity`).
        expect: String,
        timeout: Duration,
    },
    /// Send a message to the configured sinks (`notify.rs`); a dry run sends nothing.
    Notify {
        sinks: &'a [notify::Sink],
        message: &'a Value,
    },
    /// A change of the model registry, written by its store through a [`StoreWriter`].
    Registry {
        store: &'a dyn crate::registry::Store,
        change: &'a crate::registry::Change,
    },
}

/// A test hook for the crash tests: with `RUNBOOK_CRASH_AT=N` in the environment the
/// process kills itself (SIGKILL, as a power cut or the OOM killer would) at the N-th point
/// where the door is between two steps of an effect. Unset, it costs one load of a cached
/// value.
pub(in crate::effects) fn crash_point() {
    use std::sync::atomic::{AtomicUsize, Ordering};
    static AT: std::sync::OnceLock<Option<usize>> = std::sync::OnceLock::new();
    static SEEN: AtomicUsize = AtomicUsize::new(0);
    let Some(at) = *AT.get_or_init(|| std::env::var("RUNBOOK_CRASH_AT").ok()?.parse().ok()) else {
        return;
    };
    if SEEN.fetch_add(1, Ordering::SeqCst) + 1 == at {
        // SAFETY: raising a signal at ourselves; SIGKILL cannot be caught and ends the process.
        unsafe {
            libc::raise(libc::SIGKILL);
        }
    }
}

/// The crash tests' other hook: with `RUNBOOK_CRASH_AFTER_US=N` the process kills itself
/// N microseconds after its workspace was opened, wherever it is then.
fn crash_timer() {
    let Some(us) = std::env::var("RUNBOOK_CRASH_AFTER_US")
        .ok()
        .and_then(|v| v.parse::<u64>().ok())
    else {
        return;
    };
    std::thread::spawn(move || {
        std::thread::sleep(Duration::from_micros(us));
        // SAFETY: raising a signal at ourselves; SIGKILL cannot be caught and ends the process.
        unsafe {
            libc::raise(libc::SIGKILL);
        }
    });
}

impl Effect<'_> {
    /// What the effect is, without its content: the journal's `intent`, and what a
    /// resumed run compares its effects with (content such as a registry's timestamps
    /// legitimately differs between the two runs; the targets must not).
    fn describe(&self) -> Value {
        use serde_json::json;
        match self {
            Effect::Write { path, bytes } => json!({"write": path.as_str(), "bytes": bytes.len()}),
            Effect::Append { path, .. } => json!({"append": path.as_str()}),
            Effect::Copy { src, dst } => json!({"copy": src.as_str(), "to": dst.as_str()}),
            Effect::Move { src, dst } => json!({"move": src.as_str(), "to": dst.as_str()}),
            Effect::Remove { path } => json!({"remove": path.as_str()}),
            Effect::Mkdir { path } => json!({"mkdir": path.as_str()}),
            Effect::GitCheckout { rev, paths } => {
                json!({"git_checkout": rev, "paths": paths.iter().map(|p| p.as_str()).collect::<Vec<_>>()})
            }
            Effect::GitAdd { paths } => {
                json!({"git_add": paths.iter().map(|p| p.as_str()).collect::<Vec<_>>()})
            }
            Effect::GitCommit { message, all } => json!({"git_commit": message, "all": all}),
            Effect::GitTag { name, .. } => json!({"git_tag": name}),
            Effect::GitRestoreIndex { commit, paths, .. } => {
                json!({"git_restore_index": commit, "paths": paths.iter().map(|p| p.as_str()).collect::<Vec<_>>()})
            }
            Effect::StopProcess { pidfile, pid, .. } => {
                json!({"stop_process": pidfile.as_str(), "pid": pid})
            }
            Effect::Notify { sinks, message } => json!({
                "notify": message["text"],
                "sinks": sinks.iter().map(|s| s.describe()).collect::<Vec<_>>(),
            }),
            Effect::Registry { store, change } => json!({
                "registry": store.name(),
                "op": change.ops(),
                "entries": change.changed.iter().map(|c| format!("{} {}", c.name, c.version)).collect::<Vec<_>>(),
            }),
        }
    }

    fn kind(&self) -> ActionKind {
        match self {
            Effect::Write { .. }
            | Effect::Append { .. }
            | Effect::Copy { .. }
            | Effect::Mkdir { .. } => ActionKind::FileWritten,
            Effect::Move { .. } => ActionKind::FileMoved,
            Effect::Remove { .. } => ActionKind::FileRemoved,
            Effect::GitCheckout { .. }
            | Effect::GitAdd { .. }
            | Effect::GitCommit { .. }
            | Effect::GitTag { .. }
            | Effect::GitRestoreIndex { .. } => ActionKind::Git,
            Effect::StopProcess { .. } => ActionKind::Process,
            Effect::Registry { .. } => ActionKind::Registry,
            Effect::Notify { .. } => ActionKind::Notification,
        }
    }
}

/// What an effect did (or, in a dry run, would do), for the primitive's return value and
/// its journal record.
#[derive(Default, Debug)]
pub struct Outcome {
    /// Where the old content (write) or the removed path (remove) is kept in the trash.
    pub kept: Option<RelPath>,
    /// Files copied.
    pub files: usize,
    /// Whether a directory was created (false: it already existed).
    pub made: bool,
    pub git: Option<GitOutcome>,
    pub process: Option<ProcessOutcome>,
    /// What each sink of a notification did.
    pub deliveries: Vec<notify::Delivery>,
}

/// The journal record of an effect: the primitive's name for it, its arguments, a short
/// imperative summary (``remove `models/x.json` ``) and an optional result.
pub struct Record {
    pub op: String,
    pub args: Value,
    pub summary: String,
    pub result: Option<Value>,
}

impl Record {
    pub fn new(op: &str, args: Value, summary: impl Into<String>) -> Record {
        Record {
            op: op.to_string(),
            args,
            summary: summary.into(),
            result: None,
        }
    }

    pub fn with_result(mut self, result: Value) -> Record {
        self.result = Some(result);
        self
    }
}

/// How the door treats effects. `Dry` and `Replaying` simulate them in the overlay; `Real`
/// performs them. `Replaying` is `runbook resume` going again through the effects the
/// interrupted run completed (checked against its journal, simulated over a view of the
/// workspace as the run found it); at the first effect it had not done, the door switches to
/// `Real` and drops the overlay, whose view by then equals the disk.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Mode {
    Real,
    Dry,
    Replaying,
}

/// What a resumed run must go through again before it is live: the canonical description
/// of each effect the interrupted run completed, in order.
pub(in crate::effects) struct Replay {
    pub recorded: Vec<Value>,
    pub next: usize,
}

pub struct Workspace {
    root: Root,
    mode: std::cell::Cell<Mode>,
    /// The sequence number of the next effect (journaled with its intent, disk changes and
    /// action, so a killed run's log says how far each effect got).
    seq: std::cell::Cell<usize>,
    /// The effect being performed, for the disk events it logs.
    current: std::cell::Cell<Option<usize>>,
    replay: RefCell<Option<Replay>>,
    /// In a resume: the effects the interrupted run had begun and not completed (their
    /// canonical descriptions), which may be half done.
    cut_short: RefCell<Vec<Value>>,
    no_exec: std::cell::Cell<bool>,
    run_id: String,
    overlay: Overlay,
    /// Resolutions of script-given paths (with `follow_last`) since this run last changed
    /// the disk. Safe against changes by others in between: every open that follows uses
    /// `openat2(RESOLVE_BENEATH | RESOLVE_NO_SYMLINKS)`, so a link that appeared since is
    /// refused, never followed. A path asked about many times (the registry file, a model
    /// file) costs one walk instead of one per question, a third of a small run's syscalls.
    resolved: RefCell<HashMap<(String, bool), RelPath>>,
    /// Set by [`Workspace::hold_remote`].
    holds_remote: std::cell::Cell<bool>,
    /// Directory listings since this run last changed the disk, by canonical path: globs
    /// and `exist_all` over a directory of 100,000 files list it once, not once each. Like
    /// `resolved`, names only; every open still goes through the sandbox.
    listings: RefCell<HashMap<RelPath, disk::Listing>>,
    /// Bumped whenever the run changes a cached listing or drops them: a listing another
    /// thread made meanwhile ([`Workspace::while_listing`]) may be out of date and is dropped.
    listing_epoch: std::cell::Cell<u64>,
    durability: Durability,
    journal: Journal,
    /// What a real run changed, fsynced when it ends under `Durability::EndOfRun`: files
    /// written, and directories whose entries changed.
    touched_files: RefCell<BTreeSet<RelPath>>,
    touched_dirs: RefCell<BTreeSet<RelPath>>,
    /// Under `Durability::EachWrite`, the first directory that could not be flushed after
    /// an entry of it changed: the run fails with it when it ends (`finish`).
    unsynced: RefCell<Option<(RelPath, io::Error)>>,
    git: git::GitState,
    /// A plan being recorded or applied (see `plan.rs`).
    plan: RefCell<plan::Hook>,
    /// The registry change the current step has staged (see `batch.rs`).
    batch: RefCell<batch::Batch>,
}

/// An I/O error of a path the door had resolved: a link that appeared on the way since is
/// a sandbox refusal, anything else an ordinary error.
fn io_error(rel: &RelPath, action: &'static str, e: io::Error) -> Error {
    if e.raw_os_error() == Some(libc::ELOOP) || e.raw_os_error() == Some(libc::EXDEV) {
        return Error::sandbox(
            rel.to_string(),
            "a symlink appeared on the way while the run was using it; runbook never follows it",
        );
    }
    Error::io(rel.to_string(), action, e)
}

fn not_found(rel: &RelPath, action: &'static str) -> Error {
    Error::io(
        rel.to_string(),
        action,
        io::Error::from(io::ErrorKind::NotFound),
    )
}

impl Workspace {
    /// Open a workspace rooted at `root`, which must be an existing directory.
    pub fn open(root: &Path, run_id: &str, dry_run: bool, console: Console) -> Result<Workspace> {
        if !root.is_dir() {
            return Err(Error::Usage(format!(
                "workspace `{}` is not a directory; pass `--workspace DIR`",
                root.display()
            )));
        }
        let root = Root::open(root)
            .map_err(|e| Error::io(root.display().to_string(), "open the workspace", e))?;
        crash_timer();
        Ok(Workspace {
            root,
            mode: std::cell::Cell::new(if dry_run { Mode::Dry } else { Mode::Real }),
            seq: std::cell::Cell::new(1),
            current: std::cell::Cell::new(None),
            replay: RefCell::new(None),
            cut_short: RefCell::new(Vec::new()),
            no_exec: std::cell::Cell::new(false),
            run_id: run_id.to_string(),
            overlay: Overlay::default(),
            resolved: RefCell::new(HashMap::new()),
            holds_remote: std::cell::Cell::new(false),
            listings: RefCell::new(HashMap::new()),
            listing_epoch: std::cell::Cell::new(0),
            durability: Durability::EndOfRun,
            journal: Journal::without_log(run_id, dry_run, console),
            touched_files: RefCell::default(),
            touched_dirs: RefCell::default(),
            unsynced: RefCell::default(),
            git: git::GitState::default(),
            plan: RefCell::default(),
            batch: RefCell::default(),
        })
    }

    pub fn with_durability(mut self, durability: Durability) -> Workspace {
        self.durability = durability;
        self
    }

    /// Refuse a workspace whose `.runbook/` is (or holds) a symlink, before anything runs.
    pub fn check_own_files(&self) -> Result<()> {
        own::check(&self.root)
    }

    /// Take the workspace for a run that changes it (see [`own::lock`]).
    pub fn lock(&self) -> Result<WorkspaceLock> {
        own::lock(&self.root, &self.run_id)
    }

    /// Start the run log `.runbook/runs/<run-id>.jsonl`.
    pub fn open_log(&self) -> Result<std::path::PathBuf> {
        self.journal.open_log(&self.root)
    }

    pub fn journal(&self) -> &Journal {
        &self.journal
    }

    /// The workspace's absolute path, for messages.
    pub fn display_root(&self) -> &Path {
        self.root.path()
    }

    pub fn run_id(&self) -> &str {
        &self.run_id
    }

    /// This run's scratch directory (see [`Scratch`]).
    pub fn scratch(&self) -> Result<Scratch<'_>> {
        Scratch::create(&self.root, &self.run_id)
    }

    /// Take something a real run holds outside the workspace while it runs (the lock in a
    /// registry server): `take` runs in a real run and its value is returned; a dry run takes
    /// nothing and gets `None`, so it never waits for, nor blocks, another run.
    pub fn hold_remote<T>(&self, take: impl FnOnce() -> Result<T>) -> Result<Option<T>> {
        if self.simulating() {
            return Ok(None);
        }
        self.holds_remote.set(true);
        take().map(Some)
    }

    /// Whether this run took something outside that it gives back when its holder is
    /// dropped (the registry server's lock): then the run's engine must be dropped, not
    /// left to the process's exit.
    pub fn holds_remote(&self) -> bool {
        self.holds_remote.get()
    }

    /// Keep a file fetched from outside (a model artifact a registry server serves) under
    /// `.runbook/tmp/` for this and later runs (see [`own::keep_fetched`]).
    pub fn keep_fetched(&self, rel: &str, bytes: &[u8]) -> Result<RelPath> {
        own::keep_fetched(&self.root, rel, bytes)
    }

    /// The absolute path of a file, for a child process that must be given a name.
    pub fn path_for_child(&self, rel: &RelPath) -> std::path::PathBuf {
        self.root.display_abs(rel)
    }

    fn sync_each(&self) -> bool {
        self.durability == Durability::EachWrite
    }

    /// Whether effects are simulated in the overlay (a dry run, or a resume's replay).
    pub(in crate::effects) fn simulating(&self) -> bool {
        self.mode.get() != Mode::Real
    }

    /// Log the directories a change is about to create above `rel` (outermost first), so an
    /// undo takes them away again.
    fn log_new_parents(&self, rel: &RelPath) {
        if rel.first_component() == own::DIR {
            return;
        }
        let mut missing = Vec::new();
        let mut cur = rel.parent();
        while let Some(p) = cur {
            if p.is_root() || self.root.lstat(&p).is_ok() {
                break;
            }
            cur = p.parent();
            missing.push(p);
        }
        for p in missing.into_iter().rev() {
            self.log_disk(serde_json::json!({"mkdir": p.as_str()}));
        }
    }

    /// Log one change on disk the current effect is about to make (real runs only).
    fn log_disk(&self, op: Value) {
        if let Some(seq) = self.current.get() {
            self.journal.disk(seq, op, self.sync_each());
        }
        crash_point();
    }

    /// Make the run's changes durable, as the durability setting asks: under `EndOfRun`,
    /// fsync exactly what the run wrote and the directories whose entries it changed (never
    /// the whole filesystem, which on a busy host means waiting for everyone's writes).
    pub fn finish(&self) -> Result<()> {
        // A dry run changed nothing, so nothing of it needs to survive a power cut: its log
        // is not flushed either (an fdatasync was a tenth of a small dry run's time).
        if self.durability == Durability::None || self.journal.dry_run() {
            return Ok(());
        }
        if self.simulating() || self.durability != Durability::EndOfRun {
            self.journal.sync();
            if let Some((rel, e)) = self.unsynced.borrow_mut().take() {
                return Err(io_error(&rel, "flush to disk", e));
            }
            return Ok(());
        }
        // Open everything first (the run log among it) and start the writeback of all of
        // it, then fsync one after the other: the first fsync's journal commit carries every
        // file's block allocation, so the rest find their data written and their inode
        // committed and return at once. One commit for the run, without the threads that
        // concurrent fsyncs needed to share one (fsyncs one after another, without the
        // writeback started, each wait for a commit of their own).
        let mut handles: Vec<(RelPath, std::fs::File)> = Vec::new();
        if let Some(log) = self.journal.flushed() {
            handles.push((RelPath::from_trusted(format!("{}/runs", own::DIR)), log));
        }
        let files = self.touched_files.borrow();
        let dirs = self.touched_dirs.borrow();
        let touched = files
            .iter()
            .map(|f| (f, true))
            .chain(dirs.iter().map(|d| (d, false)));
        for (rel, file) in touched {
            if let Ok(f) = self.open_for_flush(rel, file) {
                handles.push((rel.clone(), f));
            }
        }
        for (_, f) in &handles {
            disk::start_writeback(f);
        }
        for (rel, f) in &handles {
            f.sync_all()
                .map_err(|e| io_error(rel, "flush to disk", e))?;
        }
        Ok(())
    }

    /// A handle to fsync `rel` through: the file itself, or the directory's descriptor.
    fn open_for_flush(&self, rel: &RelPath, file: bool) -> io::Result<std::fs::File> {
        if file {
            self.root.open_read(rel)
        } else {
            self.root.dir_for_listing(rel).map(std::fs::File::from)
        }
    }

    fn touch(&self, rel: &RelPath, file: bool) {
        crash_point();
        if self.simulating() {
            return;
        }
        if file {
            self.touched_files.borrow_mut().insert(rel.clone());
        }
        let parent = rel.parent().unwrap_or_default();
        if self.sync_each() {
            // Per write means the directory entry too (a move into the trash, a rename
            // into place), or a power cut can bring back what the log says was removed.
            let synced = self
                .open_for_flush(&parent, false)
                .and_then(|d| d.sync_all());
            if let Err(e) = synced {
                self.unsynced
                    .borrow_mut()
                    .get_or_insert((parent.clone(), e));
            }
        }
        self.touched_dirs.borrow_mut().insert(parent);
        self.relist(rel);
    }

    /// Keep the cached listings true after the run changed `rel`: its entry in its
    /// parent's listing as the disk has it now (one `lstat`), and no listing of anything
    /// at or below it (a directory moved or made). Re-listing `models/` after each removal
    /// was most of a 10,000-version rollback's time.
    fn relist(&self, rel: &RelPath) {
        self.listing_epoch.set(self.listing_epoch.get() + 1);
        let mut listings = self.listings.borrow_mut();
        if listings.is_empty() {
            return;
        }
        let below = format!("{rel}/");
        listings.retain(|dir, _| !(dir == rel || dir.as_str().starts_with(&below)));
        let parent = rel.parent().unwrap_or_default();
        let Some(listed) = listings.get_mut(&parent) else {
            return;
        };
        let entries = std::rc::Rc::make_mut(listed);
        match self.root.lstat(rel) {
            Ok(st) => entries.insert(rel.file_name(), sandbox::kind(&st)),
            Err(_) => entries.remove(rel.file_name()),
        }
    }

    // ----- sandbox ---------------------------------------------------------------------

    /// Check a script-given path and resolve it: relative, no `..` above the root, links
    /// followed only while they stay inside. The result names the real place.
    pub fn resolve(&self, path: &str) -> Result<RelPath> {
        self.canonical(path, true)
    }

    /// [`Root::canonical`] of a script-given path, remembered until the run changes the
    /// disk (see `resolved`). Refusals are not remembered.
    fn canonical(&self, path: &str, follow_last: bool) -> Result<RelPath> {
        let key = (path.to_string(), follow_last);
        if let Some(hit) = self.resolved.borrow().get(&key) {
            return Ok(hit.clone());
        }
        let rel = RelPath::normalize(path)?;
        let canon = self
            .root
            .canonical(&rel, follow_last)
            .map_err(|reason| Error::sandbox(path.trim(), reason))?;
        self.resolved.borrow_mut().insert(key, canon.clone());
        Ok(canon)
    }

    /// Resolve a path a script wants to write: where it really leads must not be the root,
    /// `.runbook/` or `.git/`, however it is spelled.
    pub fn resolve_writable(&self, path: &str) -> Result<RelPath> {
        let rel = self.resolve(path)?;
        Self::check_writable(path, &rel)?;
        Ok(rel)
    }

    /// Resolve a path a script wants to remove or move: a link in the last place names the
    /// link itself (removing `dotgit -> .git` removes the link, not `.git`).
    pub fn resolve_entry(&self, path: &str) -> Result<RelPath> {
        let rel = self.canonical(path, false)?;
        Self::check_writable(path, &rel)?;
        Ok(rel)
    }

    fn check_writable(given: &str, rel: &RelPath) -> Result<()> {
        if rel.is_root() {
            return Err(Error::sandbox(
                given,
                "the workspace root itself cannot be changed",
            ));
        }
        let through = if given
            .trim()
            .trim_start_matches("./")
            .starts_with(rel.first_component())
        {
            String::new()
        } else {
            format!(" (it leads to `{rel}`)")
        };
        match rel.first_component() {
            ".runbook" => Err(Error::sandbox(
                given.trim(),
                format!("`.runbook/` holds the run logs and the trash; scripts cannot change it{through}"),
            )),
            ".git" => Err(Error::sandbox(
                given.trim(),
                format!("`.git/` is changed only through the git primitives{through}"),
            )),
            _ => Ok(()),
        }
    }

    // ----- reads -------------------------------------------------------------------------

    /// The content of a file, from the overlay or the disk.
    pub fn content(&self, rel: &RelPath) -> Result<Content> {
        self.settle()?;
        match self.overlay.lookup(rel) {
            Lookup::Overlay(Entry::File { content, .. }) => Ok(content),
            Lookup::Overlay(Entry::Dir { .. }) => Err(Error::invalid(
                format!("`{rel}`"),
                "is a directory, not a file",
            )),
            Lookup::Overlay(Entry::Removed) | Lookup::Hidden => Err(not_found(rel, "read")),
            Lookup::Disk => {
                self.note_file(rel);
                match self.root.lstat(rel) {
                    Ok(st) if sandbox::kind(&st) == rustix::fs::FileType::Directory => Err(
                        Error::invalid(format!("`{rel}`"), "is a directory, not a file"),
                    ),
                    Ok(_) => Ok(Content::Disk(rel.clone())),
                    Err(e) => Err(io_error(rel, "read", e)),
                }
            }
        }
    }

    /// The bytes of a file's content. Files over [`MAX_READ_BYTES`] are refused before they
    /// are read: a registry, a config or a text a script reads is never that large, and a
    /// run must not exhaust the machine's memory mid-incident.
    pub fn bytes(&self, content: &Content) -> Result<Rc<[u8]>> {
        match content {
            Content::Bytes(b) => Ok(b.clone()),
            Content::Disk(rel) => {
                // The size is the opened file's own (no lstat by path first, which cost a
                // second resolution and could describe another file than the one read).
                let read = |e| io_error(rel, "read", e);
                let file = self.root.open_read(rel).map_err(read)?;
                let size = file.metadata().map_err(read)?.len();
                if size > MAX_READ_BYTES {
                    return Err(Error::invalid(
                        format!("`{rel}`"),
                        format!(
                            "is {} MiB, over the {} MiB runbook reads whole; is it the right file?",
                            size >> 20,
                            MAX_READ_BYTES >> 20
                        ),
                    ));
                }
                disk::read_shared(file, size).map_err(read)
            }
        }
    }

    /// Open a file's content for a loader: the file itself, opened through the sandbox, or
    /// the bytes a dry run simulated.
    pub fn open_content(&self, content: &Content) -> Result<Source> {
        match content {
            Content::Bytes(b) => Ok(Source::Bytes(b.clone())),
            Content::Disk(rel) => self
                .root
                .open_read(rel)
                .map(Source::File)
                .map_err(|e| io_error(rel, "open", e)),
        }
    }

    /// The stamp of a file's current content, as the run sees it.
    pub fn stamp(&self, content: &Content) -> Result<Stamp> {
        match content {
            Content::Bytes(b) => Ok(Stamp::Overlay(b.clone())),
            Content::Disk(rel) => self
                .root
                .lstat(rel)
                .map(|st| Stamp::of_stat(&st))
                .map_err(|e| io_error(rel, "read", e)),
        }
    }

    pub fn read(&self, rel: &RelPath) -> Result<Rc<[u8]>> {
        self.bytes(&self.content(rel)?)
    }

    pub fn read_string(&self, rel: &RelPath) -> Result<String> {
        let bytes = self.read(rel)?;
        String::from_utf8(bytes.to_vec())
            .map_err(|_| Error::invalid(format!("`{rel}`"), "is not UTF-8 text"))
    }

    /// For many script-given paths at once: does each exist, as the run sees the workspace?
    /// Same answers as `resolve` + `exists` path by path (a path the sandbox refuses does not
    /// exist), but each directory is resolved and listed once instead of stat-ing every
    /// file: a registry of 10,000 versions asks about 10,000 files in one directory.
    pub fn exist_all(&self, paths: &[&str]) -> Vec<bool> {
        self.settle_for_read();
        self.note_paths(paths);
        // A directory's listing, and the names in it the overlay (a dry run's changes) has
        // its own say on: `None` when it hides the whole directory.
        type Direct = Option<Rc<std::collections::HashSet<String>>>;
        type Listing = Option<(disk::Listing, Direct)>;
        // Registries keep their files in one or a few directories: the directory of the
        // previous path is kept at hand, so 10,000 paths in `models/` cost one listing and
        // one string compare each, not a map entry and two path copies each.
        let mut listings: foldhash::HashMap<String, Listing> = Default::default();
        let mut last: Option<(&str, Listing)> = None;
        let slow = |given: &str| {
            self.resolve(given)
                .map(|r| self.exists(&r))
                .unwrap_or(false)
        };
        // A lookup in a big listing is two cache misses (its slot, then the name); asking
        // for the paths a few places ahead first overlaps them (`Names::prefetch`): 50,000
        // lookups in a 100,000-name listing another core made took 5.5 ms without, 2.3 ms with.
        const NEAR: usize = 8;
        const FAR: usize = 16;
        let ahead = |k: usize, dir: &str| {
            let t = paths.get(k)?.trim();
            let (parent, name) = t.rsplit_once('/').unwrap_or(("", t));
            (parent == dir).then_some(name)
        };
        paths
            .iter()
            .enumerate()
            .map(|(i, given)| {
                let trimmed = given.trim();
                if !RelPath::is_plain(trimmed) {
                    return slow(given);
                }
                let (parent, name) = trimmed.rsplit_once('/').unwrap_or(("", trimmed));
                if last.as_ref().is_none_or(|(p, _)| *p != parent) {
                    let listing = listings
                        .entry(parent.to_string())
                        .or_insert_with(|| {
                            let dir = if parent.is_empty() {
                                RelPath::root()
                            } else {
                                RelPath::from_trusted(parent.to_string())
                            };
                            let canon = self.root.canonical(&dir, true).ok()?;
                            let names = self.list_disk(&canon).ok()?;
                            Some((names, self.overlay.direct_entries(&canon).map(Rc::new)))
                        })
                        .clone();
                    last = Some((parent, listing));
                }
                let Some((_, Some((names, direct)))) = last.as_ref() else {
                    return slow(given);
                };
                match direct {
                    Some(direct) if !direct.contains(name) => {}
                    _ => return slow(given),
                }
                names.prefetch(ahead(i + FAR, parent), ahead(i + NEAR, parent));
                match names.get(name) {
                    // A symlink may point anywhere: check it the slow, exact way.
                    Some(rustix::fs::FileType::Symlink) => slow(given),
                    Some(_) => true,
                    None => false,
                }
            })
            .collect()
    }

    /// Forget every cached listing (after a change that may have touched any file).
    fn drop_listings(&self) {
        self.listing_epoch.set(self.listing_epoch.get() + 1);
        self.listings.borrow_mut().clear();
    }

    /// Run `f` while another thread lists directory `dir` (script-given) into the run's
    /// cache, for the globs and [`Workspace::exist_all`] that follow: at 10,000 registry
    /// versions, listing `models/` (20,000 entries) and parsing the registry take about
    /// 10 ms each, one after the other. Only a directory big enough to repay a thread
    /// (about 50 µs) is listed ahead, judged by its size on disk; a small one, one not
    /// there, or one already listed leaves `f` to run alone. The directory is opened here,
    /// through the sandbox, so the other thread only reads an open handle; a listing the
    /// run's own changes (in `f`) may have made stale is dropped.
    pub fn while_listing<T>(&self, dir: &str, f: impl FnOnce() -> T) -> T {
        self.settle_for_read();
        /// About 2,000 entries of 30-byte names.
        const WORTH_A_THREAD: u64 = 64 * 1024;
        let ahead = self.canonical(dir, true).ok().and_then(|canon| {
            if self.listings.borrow().contains_key(&canon) {
                return None;
            }
            let fd = self.root.dir_for_listing(&canon).ok()?;
            let size = rustix::fs::fstat(&fd).ok()?.st_size;
            (u64::try_from(size).unwrap_or(0) >= WORTH_A_THREAD).then_some((canon, fd))
        });
        let Some((canon, fd)) = ahead else {
            return f();
        };
        let epoch = self.listing_epoch.get();
        std::thread::scope(|s| {
            let listing = s.spawn(move || names::Names::read(std::os::fd::AsFd::as_fd(&fd)));
            let out = f();
            // A failed listing (or a panic in it) is left to the next use to list again
            // and report.
            if let Ok(Ok(map)) = listing.join() {
                if self.listing_epoch.get() == epoch {
                    self.listings
                        .borrow_mut()
                        .entry(canon)
                        .or_insert_with(|| Rc::new(map));
                }
            }
            out
        })
    }

    /// The entries of directory `dir` (canonical) on disk, from the run's cache.
    fn list_disk(&self, dir: &RelPath) -> std::io::Result<disk::Listing> {
        if let Some(hit) = self.listings.borrow().get(dir) {
            return Ok(hit.clone());
        }
        let listed = disk::listing(&self.root, dir)?;
        self.listings
            .borrow_mut()
            .insert(dir.clone(), listed.clone());
        Ok(listed)
    }

    /// Does the path exist (file or directory) in the state the run sees?
    pub fn exists(&self, rel: &RelPath) -> bool {
        self.settle_for_read();
        match self.overlay.lookup(rel) {
            Lookup::Overlay(Entry::Removed) | Lookup::Hidden => false,
            Lookup::Overlay(_) => true,
            Lookup::Disk => {
                self.note_file(rel);
                self.root.lstat(rel).is_ok() || self.overlay.has_children(rel)
            }
        }
    }

    pub fn is_dir(&self, rel: &RelPath) -> bool {
        self.settle_for_read();
        match self.overlay.lookup(rel) {
            Lookup::Overlay(Entry::Dir { .. }) => true,
            Lookup::Overlay(_) | Lookup::Hidden => false,
            Lookup::Disk => {
                self.note_file(rel);
                self.root.dir(rel).is_ok() || self.overlay.has_children(rel)
            }
        }
    }

    /// The size of a file as the run sees it (a simulated file's length in a dry run).
    pub fn size(&self, rel: &RelPath) -> Result<u64> {
        match self.content(rel)? {
            Content::Bytes(b) => Ok(b.len() as u64),
            Content::Disk(r) => self
                .root
                .lstat(&r)
                .map(|st| st.st_size as u64)
                .map_err(|e| io_error(&r, "read the size of", e)),
        }
    }

    /// Bytes an unprivileged process may still write on the filesystem that holds the
    /// workspace, as `df` reports them (`f_bavail * f_frsize`). A dry run answers for the
    /// disk as it is: it writes nothing, so a plan checks against the real free space.
    pub fn free_bytes(&self) -> Result<u64> {
        let dir = self
            .root
            .dir(&RelPath::root())
            .map_err(|e| io_error(&RelPath::root(), "open", e))?;
        let st = rustix::fs::fstatvfs(&dir)
            .map_err(|e| io_error(&RelPath::root(), "read the free space of", e.into()))?;
        Ok(st.f_bavail.saturating_mul(st.f_frsize))
    }

    pub fn mtime(&self, rel: &RelPath) -> Result<SystemTime> {
        self.settle()?;
        match self.overlay.lookup(rel) {
            Lookup::Overlay(Entry::File { mtime, .. }) => Ok(mtime),
            Lookup::Overlay(Entry::Dir { .. }) => Ok(SystemTime::now()),
            Lookup::Overlay(Entry::Removed) | Lookup::Hidden => {
                Err(not_found(rel, "read the modification time of"))
            }
            Lookup::Disk => {
                self.note_file(rel);
                let st = self
                    .root
                    .lstat(rel)
                    .map_err(|e| io_error(rel, "read the modification time of", e))?;
                Ok(disk::mtime_of(&st))
            }
        }
    }

    /// Whether what the disk holds below `dir` is part of the run's view: `dir` is a
    /// directory on disk and the overlay has not removed or replaced it.
    fn disk_counts_below(&self, dir: &RelPath) -> bool {
        let hidden = matches!(
            self.overlay.lookup(dir),
            Lookup::Hidden
                | Lookup::Overlay(Entry::Removed)
                | Lookup::Overlay(Entry::Dir { shadows_disk: true })
        );
        !hidden && self.root.dir(dir).is_ok()
    }

    /// Every file below `dir` (recursively), as the run sees them, sorted by path.
    /// Symlinks are listed but not followed.
    pub fn walk_files(&self, dir: &RelPath) -> Result<Vec<Listed>> {
        self.walk(dir, &WalkFilter::default())
    }

    /// Like [`walk_files`](Self::walk_files), keeping only the files `filter` accepts. The
    /// name test runs before a file's metadata is read.
    pub fn walk(&self, dir: &RelPath, filter: &WalkFilter) -> Result<Vec<Listed>> {
        self.settle()?;
        self.note_walk(dir);
        let mut out = Vec::new();
        if self.disk_counts_below(dir) {
            let found = disk::walk(&self.root, dir, filter)
                .map_err(|(path, e)| Error::io(path, "list", e))?;
            let overlay_empty = self.overlay.is_empty();
            for (path, mtime) in found {
                // The overlay's version of a file (if any) is added below.
                if overlay_empty || matches!(self.overlay.lookup(&path), Lookup::Disk) {
                    out.push(Listed { path, mtime });
                }
            }
        }
        for (p, e) in self.overlay.snapshot() {
            if let Entry::File { mtime, .. } = e {
                if p.is_within(dir)
                    && &p != dir
                    && p.first_component() != own::DIR
                    && filter.keeps(p.file_name(), mtime)
                    && matches!(self.overlay.lookup(&p), Lookup::Overlay(_))
                {
                    out.push(Listed { path: p, mtime });
                }
            }
        }
        out.sort_by(|a, b| a.path.cmp(&b.path));
        Ok(out)
    }

    /// Files and directories matching a glob pattern relative to the workspace, sorted.
    /// Links are matched by name but never descended through.
    pub fn glob(&self, pattern: &str) -> Result<Vec<RelPath>> {
        self.settle()?;
        let trimmed = pattern.trim();
        if trimmed.starts_with('/') || trimmed.split('/').any(|c| c == "..") {
            return Err(Error::sandbox(
                trimmed,
                "glob patterns must stay inside the workspace: no absolute paths, no `..`",
            ));
        }
        let bad = |e: glob::PatternError| {
            Error::invalid(format!("glob pattern `{trimmed}`"), e.to_string())
        };
        let compiled = glob::Pattern::new(trimmed).map_err(bad)?;
        self.note_glob(trimmed);
        let opts = glob::MatchOptions {
            case_sensitive: true,
            require_literal_separator: true,
            require_literal_leading_dot: true,
        };
        let mut out = Vec::new();
        let list = |dir: &RelPath| self.list_disk(dir);
        for rel in disk::glob(&self.root, trimmed, &compiled, opts, &list).map_err(bad)? {
            if rel.first_component() != own::DIR
                && matches!(self.overlay.lookup(&rel), Lookup::Disk)
            {
                out.push(rel);
            }
        }
        for (p, e) in self.overlay.snapshot() {
            if !matches!(e, Entry::Removed)
                && p.first_component() != own::DIR
                && compiled.matches_with(p.as_str(), opts)
                && matches!(self.overlay.lookup(&p), Lookup::Overlay(_))
            {
                out.push(p);
            }
        }
        out.sort();
        out.dedup();
        Ok(out)
    }

    // ----- the door ----------------------------------------------------------------------

    /// Perform `effect` (real run) or simulate it (dry run), then record it in the journal
    /// with what `describe` makes of the outcome. A directory that already existed makes
    /// `Mkdir` a no-op, which is not recorded.
    pub fn perform(
        &self,
        effect: Effect<'_>,
        describe: impl FnOnce(&Outcome) -> Record,
    ) -> Result<Outcome> {
        self.perform_records(effect, |outcome| vec![describe(outcome)])
    }

    /// [`Workspace::perform`] with any number of journal actions for the one effect (a
    /// merged registry change has one per change). A registry change the step staged is
    /// written first, so effects reach the disk in the order the script made them.
    fn perform_records(
        &self,
        effect: Effect<'_>,
        describe: impl FnOnce(&Outcome) -> Vec<Record>,
    ) -> Result<Outcome> {
        self.settle()?;
        let kind = effect.kind();
        let is_mkdir = matches!(effect, Effect::Mkdir { .. });
        let canonical = effect.describe();
        self.plan_before(&effect, &canonical, self.seq.get())?;
        if self.mode.get() == Mode::Replaying && self.replay_matches(&canonical)? {
            let outcome = self.apply(effect)?;
            self.journal
                .event("replayed", serde_json::json!({"effect": canonical}));
            return Ok(outcome);
        }
        let seq = self.seq.get();
        self.seq.set(seq + 1);
        if self.mode.get() == Mode::Real {
            crash_point();
            self.journal.intent(seq, kind, canonical, self.sync_each());
            crash_point();
        }
        self.current.set(Some(seq));
        let outcome = self.apply(effect);
        self.current.set(None);
        // What was resolved before may lead elsewhere now (a directory made, a file
        // moved). Listings are kept true change by change (`relist`), except after a git
        // command or a notification command, which may change any file.
        self.resolved.borrow_mut().clear();
        if matches!(kind, ActionKind::Git | ActionKind::Notification) {
            self.drop_listings();
        }
        let outcome = outcome?;
        if is_mkdir && !outcome.made {
            return Ok(outcome);
        }
        for record in describe(&outcome) {
            self.journal.action(
                Some(seq),
                kind,
                &record.op,
                record.args,
                &record.summary,
                record.result,
            );
        }
        crash_point();
        Ok(outcome)
    }

    /// In a resume's replay, whether `effect` is the next one the interrupted run
    /// completed (then it is simulated); at the end of those, the door goes live. A
    /// different effect means the runbook took another path this time: refused, since
    /// what it would do next was never reviewed against what was done.
    fn replay_matches(&self, effect: &Value) -> Result<bool> {
        let mut replay = self.replay.borrow_mut();
        let Some(r) = replay.as_mut() else {
            return Ok(false);
        };
        // A stop of a process that is gone now was done, whatever the script sees.
        while r.next < r.recorded.len() && r.recorded[r.next] != *effect {
            let skippable = r.recorded[r.next].get("stop_process").is_some()
                && r.recorded[r.next]["pid"]
                    .as_i64()
                    .is_some_and(|p| !is_alive(p as i32));
            if !skippable {
                break;
            }
            r.next += 1;
        }
        if r.next >= r.recorded.len() {
            *replay = None;
            drop(replay);
            self.overlay.clear();
            self.mode.set(Mode::Real);
            self.journal.event("resume_live", serde_json::json!({}));
            return Ok(false);
        }
        if r.recorded[r.next] != *effect {
            return Err(Error::invalid(
                format!("resuming run `{}`", self.run_id),
                format!(
                    "the runbook took another path than the interrupted run: its effect {} was `{}`, now it is `{}`; nothing more was changed. Undo the run with `runbook undo {}` instead",
                    r.next + 1,
                    r.recorded[r.next],
                    effect,
                    self.run_id
                ),
            ));
        }
        r.next += 1;
        Ok(true)
    }

    fn apply(&self, effect: Effect<'_>) -> Result<Outcome> {
        let outcome = match effect {
            Effect::Write { path, bytes } => Outcome {
                kept: self.write(&path, &bytes)?,
                ..Outcome::default()
            },
            Effect::Append { path, bytes } => {
                self.append(&path, &bytes)?;
                Outcome::default()
            }
            Effect::Copy { src, dst } => Outcome {
                files: self.copy(&src, &dst)?,
                ..Outcome::default()
            },
            Effect::Move { src, dst } => {
                self.rename(&src, &dst)?;
                Outcome::default()
            }
            Effect::Remove { path } => Outcome {
                kept: Some(self.remove(&path)?),
                ..Outcome::default()
            },
            Effect::Mkdir { path } => Outcome {
                made: self.mkdir(&path)?,
                ..Outcome::default()
            },
            Effect::GitCheckout { rev, paths } => Outcome {
                git: Some(git::checkout(self, &rev, &paths)?),
                ..Outcome::default()
            },
            Effect::GitAdd { paths } => Outcome {
                git: Some(git::add(self, &paths)?),
                ..Outcome::default()
            },
            Effect::GitCommit { message, all } => Outcome {
                git: Some(git::commit(self, &message, all)?),
                ..Outcome::default()
            },
            Effect::GitTag { name, message } => Outcome {
                git: Some(git::tag(self, &name, &message)?),
                ..Outcome::default()
            },
            Effect::GitRestoreIndex {
                commit,
                paths,
                staged,
            } => Outcome {
                git: Some(git::restore_index(self, &commit, &paths, staged.as_ref())?),
                ..Outcome::default()
            },
            Effect::StopProcess {
                pidfile,
                pid,
                expect,
                timeout,
            } => Outcome {
                process: Some(process::stop(self, &pidfile, pid, &expect, timeout)?),
                ..Outcome::default()
            },
            Effect::Registry { store, change } => {
                store.apply(&StoreWriter { ws: self }, change)?;
                Outcome::default()
            }
            Effect::Notify { sinks, message } => Outcome {
                deliveries: if self.simulating() {
                    notify::simulate(self, sinks, message)
                } else {
                    notify::deliver(self, sinks, message)
                },
                ..Outcome::default()
            },
        };
        Ok(outcome)
    }

    /// Whether `effect` is one the run this run resumes had begun and not completed: a
    /// primitive that would skip it as already done (a process that is gone now) performs
    /// it so that its last part (the pid file to the trash) happens as it would have.
    pub fn was_cut_short(&self, effect: &Effect<'_>) -> bool {
        self.cut_short.borrow().contains(&effect.describe())
    }

    /// Record a check: something read and judged (a metric, a gate, a process with nothing
    /// to stop). It changes nothing and is never `applied`.
    pub fn check(&self, record: Record) {
        self.settle_for_read();
        self.journal.action(
            None,
            ActionKind::Check,
            &record.op,
            record.args,
            &record.summary,
            record.result,
        );
    }

    // ----- changes (inside the door) -----------------------------------------------------

    fn write(&self, rel: &RelPath, bytes: &[u8]) -> Result<Option<RelPath>> {
        self.write_pieces(rel, &[bytes])
    }

    /// [`Workspace::write`] of the pieces joined: a real run writes them as they are
    /// (`writev`), with no buffer holding them all.
    fn write_pieces(&self, rel: &RelPath, pieces: &[&[u8]]) -> Result<Option<RelPath>> {
        if self.is_dir(rel) {
            return Err(Error::invalid(
                format!("`{rel}`"),
                "is a directory; cannot write a file over it",
            ));
        }
        let existed = self.exists(rel);
        if self.simulating() {
            let kept = existed.then(|| self.trash_place(rel));
            self.ensure_parents(rel);
            self.overlay.set(
                rel,
                Entry::File {
                    content: Content::Bytes(disk::joined(pieces)),
                    mtime: SystemTime::now(),
                },
            );
            return Ok(kept);
        }
        let kept = if existed {
            let t = self.trash_place(rel);
            let copied = disk::keep_old(&self.root, rel, &t)
                .map_err(|e| io_error(rel, "keep the old content of", e))?;
            self.touch(&t, copied);
            Some(t)
        } else {
            None
        };
        self.log_new_parents(rel);
        disk::atomic_write(&self.root, rel, pieces, self.sync_each(), |st| {
            self.log_disk(serde_json::json!({
                "write": rel.as_str(),
                "kept": kept.as_ref().map(|k| k.as_str()),
                "ino": st.st_ino,
                "size": st.st_size,
                "mtime_ns": i128::from(st.st_mtime) * 1_000_000_000 + i128::from(st.st_mtime_nsec),
            }));
        })
        .map_err(|e| io_error(rel, "write", e))?;
        self.touch(rel, true);
        Ok(kept)
    }

    fn append(&self, rel: &RelPath, bytes: &[u8]) -> Result<()> {
        if self.simulating() {
            let mut data = if self.exists(rel) {
                self.read(rel)?.to_vec()
            } else {
                Vec::new()
            };
            data.extend_from_slice(bytes);
            self.ensure_parents(rel);
            self.overlay.set(
                rel,
                Entry::File {
                    content: Content::Bytes(Rc::from(data)),
                    mtime: SystemTime::now(),
                },
            );
            return Ok(());
        }
        self.log_new_parents(rel);
        let before = self
            .root
            .lstat(rel)
            .map(|st| st.st_size as u64)
            .unwrap_or(0);
        self.log_disk(serde_json::json!({
            "append": rel.as_str(),
            "at": before,
            "text": String::from_utf8_lossy(bytes),
            "len": bytes.len(),
        }));
        disk::append(&self.root, rel, bytes, self.sync_each())
            .map_err(|e| io_error(rel, "append to", e))?;
        self.touch(rel, true);
        Ok(())
    }

    fn remove(&self, rel: &RelPath) -> Result<RelPath> {
        if !self.exists(rel) {
            return Err(not_found(rel, "remove"));
        }
        let trash = self.trash_place(rel);
        if self.simulating() {
            self.overlay.clear_below(rel);
            self.overlay.set(rel, Entry::Removed);
            return Ok(trash);
        }
        self.log_disk(serde_json::json!({"remove": rel.as_str(), "to": trash.as_str()}));
        disk::move_noreplace(&self.root, rel, &trash)
            .map_err(|e| io_error(rel, "move to the trash", e))?;
        self.touch(rel, false);
        self.touch(&trash, false);
        Ok(trash)
    }

    fn copy(&self, src: &RelPath, dst: &RelPath) -> Result<usize> {
        self.check_destination(src, dst, "copy")?;
        if self.simulating() {
            return self.overlay_copy(src, dst);
        }
        self.log_new_parents(dst);
        self.log_disk(serde_json::json!({"copy": src.as_str(), "to": dst.as_str()}));
        let mut made = Vec::new();
        let n =
            disk::copy(&self.root, src, dst, &mut made).map_err(|e| io_error(src, "copy", e))?;
        // A copy is new data, like a write: its files, and the directories that name them,
        // are flushed with the run's other changes (a backup that a power cut can leave
        // empty is no backup).
        let made: Vec<(RelPath, bool)> = made
            .into_iter()
            .map(|(rel, file)| {
                (
                    if rel.is_empty() {
                        dst.clone()
                    } else {
                        dst.join(&rel)
                    },
                    file,
                )
            })
            .collect();
        for (rel, file) in &made {
            if *file {
                self.touched_files.borrow_mut().insert(rel.clone());
            } else {
                self.touched_dirs.borrow_mut().insert(rel.clone());
            }
        }
        self.touch(dst, false);
        if self.sync_each() {
            // `touch` flushed `dst`'s directory; the copy's own files and directories now.
            for (rel, file) in &made {
                self.open_for_flush(rel, *file)
                    .and_then(|f| f.sync_all())
                    .map_err(|e| io_error(rel, "flush to disk", e))?;
            }
        }
        Ok(n)
    }

    fn rename(&self, src: &RelPath, dst: &RelPath) -> Result<()> {
        self.check_destination(src, dst, "move")?;
        if self.simulating() {
            self.overlay_copy(src, dst)?;
            self.overlay.clear_below(src);
            self.overlay.set(src, Entry::Removed);
            return Ok(());
        }
        self.log_new_parents(dst);
        self.log_disk(serde_json::json!({"move": src.as_str(), "to": dst.as_str()}));
        disk::move_noreplace(&self.root, src, dst).map_err(|e| io_error(src, "move", e))?;
        self.touch(src, false);
        self.touch(dst, false);
        Ok(())
    }

    /// The dry-run half of `copy` (and of `rename`, which then hides the source): put a
    /// copy of a file or tree into the overlay. On-disk files are referenced, not read.
    fn overlay_copy(&self, src: &RelPath, dst: &RelPath) -> Result<usize> {
        self.ensure_parents(dst);
        if !self.is_dir(src) {
            let (content, mtime) = (self.content(src)?, self.mtime(src)?);
            self.overlay.set(dst, Entry::File { content, mtime });
            return Ok(1);
        }
        self.overlay.set(
            dst,
            Entry::Dir {
                shadows_disk: false,
            },
        );
        let mut files = 0;
        for (path, is_dir) in self.tree(src)? {
            let target = dst.join(&path.as_str()[src.as_str().len() + 1..]);
            if is_dir {
                self.overlay.set(
                    &target,
                    Entry::Dir {
                        shadows_disk: false,
                    },
                );
            } else {
                let (content, mtime) = (self.content(&path)?, self.mtime(&path)?);
                self.overlay.set(&target, Entry::File { content, mtime });
                files += 1;
            }
        }
        Ok(files)
    }

    /// Everything below `dir` as the run sees it, files and directories (links as files,
    /// not followed), in path order, hidden files included: what a copy of `dir` holds.
    fn tree(&self, dir: &RelPath) -> Result<Vec<(RelPath, bool)>> {
        self.note_walk(dir);
        let mut out: BTreeMap<RelPath, bool> = BTreeMap::new();
        if self.disk_counts_below(dir) {
            let mut below = Vec::new();
            disk::all_below(&self.root, dir, &mut below);
            for (p, is_dir) in below {
                if matches!(self.overlay.lookup(&p), Lookup::Disk) {
                    out.insert(p, is_dir);
                }
            }
        }
        for (p, e) in self.overlay.snapshot() {
            if p.is_within(dir)
                && &p != dir
                && matches!(self.overlay.lookup(&p), Lookup::Overlay(_))
            {
                match e {
                    Entry::File { .. } => {
                        out.insert(p, false);
                    }
                    Entry::Dir { .. } => {
                        out.insert(p, true);
                    }
                    Entry::Removed => {}
                }
            }
        }
        Ok(out.into_iter().collect())
    }

    fn mkdir(&self, rel: &RelPath) -> Result<bool> {
        if self.is_dir(rel) {
            return Ok(false);
        }
        if self.exists(rel) {
            return Err(Error::invalid(
                format!("`{rel}`"),
                "exists and is not a directory",
            ));
        }
        if self.simulating() {
            self.ensure_parents(rel);
            let shadows = matches!(
                self.overlay.lookup(rel),
                Lookup::Overlay(Entry::Removed) | Lookup::Hidden
            );
            self.overlay.set(
                rel,
                Entry::Dir {
                    shadows_disk: shadows,
                },
            );
            return Ok(true);
        }
        self.log_new_parents(rel);
        self.log_disk(serde_json::json!({"mkdir": rel.as_str()}));
        let made = disk::mkdir_all(&self.root, rel)
            .map_err(|e| io_error(rel, "create the directory", e))?;
        self.touch(rel, false);
        Ok(made)
    }

    /// A dry run's writes create missing parent directories, as the real ones do, so that
    /// `fs::is_dir`, globs and listings see them.
    fn ensure_parents(&self, rel: &RelPath) {
        let mut missing = Vec::new();
        let mut cur = rel.parent();
        while let Some(p) = cur {
            if p.is_root() || self.is_dir(&p) {
                break;
            }
            cur = p.parent();
            missing.push(p);
        }
        for p in missing {
            let shadows = matches!(self.overlay.lookup(&p), Lookup::Overlay(_) | Lookup::Hidden);
            self.overlay.set(
                &p,
                Entry::Dir {
                    shadows_disk: shadows,
                },
            );
        }
    }

    /// Record in the overlay a file an external tool would write (a git checkout).
    fn simulate_write(&self, rel: &RelPath, bytes: &[u8]) {
        self.ensure_parents(rel);
        self.overlay.set(
            rel,
            Entry::File {
                content: Content::Bytes(Rc::from(bytes)),
                mtime: SystemTime::now(),
            },
        );
    }

    /// Keep `bytes` in this run's trash as `.runbook/trash/<run-id>/<name>` (with a `~N`
    /// suffix when the run already put something there) and return that path: for what an
    /// external tool is about to overwrite, such as uncommitted changes before a checkout.
    /// A dry run only returns the path it would use.
    fn keep_in_trash(&self, name: &str, bytes: &[u8]) -> Result<RelPath> {
        // Checked by hand: `Path::components` would quietly drop a `.` inside the name.
        let plain = name
            .split('/')
            .all(|part| !part.is_empty() && part != "." && part != "..");
        if !plain || name.contains('\\') {
            return Err(Error::invalid(
                format!("trash name `{name}`"),
                "must be a relative path without `.` or `..`",
            ));
        }
        let kept = self.trash_place(&RelPath::from_trusted(name.to_string()));
        if self.simulating() {
            return Ok(kept);
        }
        disk::atomic_write(&self.root, &kept, &[bytes], self.sync_each(), |_| {})
            .map_err(|e| io_error(&kept, "keep a copy in the trash at", e))?;
        self.touch(&kept, true);
        Ok(kept)
    }

    /// The files a dry run has changed so far, outside `.runbook/`: each file it wrote with
    /// the content it would have, each file it removed with `None`. Always empty in a real
    /// run.
    pub fn simulated_files(&self) -> Result<Vec<(RelPath, Option<Content>)>> {
        self.settle()?;
        let overlay = self.overlay.snapshot();
        let mut out: BTreeMap<RelPath, Option<Content>> = BTreeMap::new();
        for (path, entry) in &overlay {
            if path.first_component() == own::DIR {
                continue;
            }
            match entry {
                Entry::File { content, .. } => {
                    if matches!(self.overlay.lookup(path), Lookup::Overlay(_)) {
                        out.insert(path.clone(), Some(content.clone()));
                    }
                }
                Entry::Removed | Entry::Dir { shadows_disk: true } => {
                    // What the disk holds at or below `path` is gone from the run's view,
                    // unless the overlay wrote it again (then the arm above reports it).
                    let Ok(st) = self.root.lstat(path) else {
                        continue;
                    };
                    if sandbox::kind(&st) != rustix::fs::FileType::Directory {
                        out.entry(path.clone()).or_insert(None);
                        continue;
                    }
                    let below = disk::walk(&self.root, path, &WalkFilter::default())
                        .map_err(|(p, e)| Error::io(p, "list", e))?;
                    for (rel, _) in below {
                        if !matches!(
                            self.overlay.lookup(&rel),
                            Lookup::Overlay(Entry::File { .. })
                        ) {
                            out.entry(rel).or_insert(None);
                        }
                    }
                }
                Entry::Dir { .. } => {}
            }
        }
        Ok(out.into_iter().collect())
    }

    fn check_destination(&self, src: &RelPath, dst: &RelPath, verb: &'static str) -> Result<()> {
        if !self.exists(src) {
            return Err(not_found(src, verb));
        }
        if self.exists(dst) {
            return Err(Error::invalid(
                format!("cannot {verb} `{src}` to `{dst}`"),
                "the destination exists; remove it first or choose another name (nothing is overwritten)",
            ));
        }
        if dst.is_within(src) {
            return Err(Error::invalid(
                format!("cannot {verb} `{src}` to `{dst}`"),
                "the destination is inside the source",
            ));
        }
        Ok(())
    }

    /// Where a removed or overwritten path goes (see [`trash::place`]). A dry run reserves
    /// the name, so two removals of the same path report distinct places.
    fn trash_place(&self, rel: &RelPath) -> RelPath {
        let chosen = trash::place(&self.run_id, rel, |r| match self.overlay.lookup(r) {
            Lookup::Overlay(Entry::Removed) | Lookup::Hidden => false,
            Lookup::Overlay(_) => true,
            Lookup::Disk => self.root.lstat(r).is_ok(),
        });
        if self.simulating() {
            self.overlay.set(
                &chosen,
                Entry::Dir {
                    shadows_disk: false,
                },
            );
        }
        chosen
    }

    /// The dry run's view of every file it changed: path → `null` (removed) or
    /// `{"text": ...}` (UTF-8 up to 1 MiB) or `{"sha256": ...}`. For the differential tests
    /// and for reviewers (`runbook run --dry-run --dry-run-state FILE`).
    pub fn view_state(&self) -> Result<Value> {
        use sha2::{Digest, Sha256};
        let mut out = serde_json::Map::new();
        for (rel, content) in self.simulated_files()? {
            let v = match content {
                None => Value::Null,
                Some(c) => {
                    let bytes = self.bytes(&c)?;
                    match std::str::from_utf8(&bytes) {
                        Ok(text) if bytes.len() <= 1 << 20 => serde_json::json!({ "text": text }),
                        _ => {
                            let hash: String = Sha256::digest(&bytes)
                                .iter()
                                .map(|b| format!("{b:02x}"))
                                .collect();
                            serde_json::json!({ "sha256": hash })
                        }
                    }
                }
            };
            out.insert(rel.as_str().to_string(), v);
        }
        Ok(Value::Object(out))
    }
}

/// Write a file the user named on the command line (a dry run's state, a report, a plan):
/// atomically, where they said, and never inside the workspace, which a dry run must leave
/// as it was and a real run changes only through the door.
pub fn write_output(path: &Path, workspace: &Path, bytes: &[u8]) -> Result<()> {
    let shown = path.display().to_string();
    let parent = match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
        _ => std::path::PathBuf::from("."),
    };
    let dir = std::fs::canonicalize(&parent)
        .map_err(|e| Error::io(parent.display().to_string(), "open", e))?;
    if dir.starts_with(workspace) {
        return Err(Error::Usage(format!(
            "`{shown}` is inside the workspace; write it somewhere else (the workspace changes only through runbooks)"
        )));
    }
    let name = path
        .file_name()
        .ok_or_else(|| Error::Usage(format!("`{shown}` is not a file name")))?
        .to_string_lossy()
        .into_owned();
    let tmp = dir.join(disk::temp_name(&name));
    let result = (|| {
        use std::io::Write;
        let mut f = std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .open(&tmp)?;
        f.write_all(bytes)?;
        std::fs::rename(&tmp, dir.join(&name))
    })();
    if result.is_err() {
        let _ = std::fs::remove_file(&tmp);
    }
    result.map_err(|e| Error::io(shown, "write", e))
}

/// An external predictor to run through the door.
pub struct Predictor<'a> {
    pub command: &'a [String],
    pub model_file: &'a Path,
    pub data: &'a crate::validation::Dataset,
    pub scratch: &'a Scratch<'a>,
    pub timeout: Duration,
}

impl Workspace {
    /// Forbid every command (`--no-exec`).
    pub fn with_no_exec(self, no_exec: bool) -> Workspace {
        self.no_exec.set(no_exec);
        self
    }

    pub(in crate::effects) fn command_policy(&self) -> Result<command::Policy> {
        let rel = self.resolve(crate::registry::CONFIG_FILE)?;
        let doc = if self.exists(&rel) {
            Some(crate::document::parse_yaml(
                &self.read(&rel)?,
                crate::registry::CONFIG_FILE,
            )?)
        } else {
            None
        };
        command::Policy::read(doc.as_ref(), self.no_exec.get())
    }

    /// Run an external predictor, as the workspace's command policy allows (see
    /// `command::predict`), and journal it as a command with its argv. Returns its
    /// predictions; `describe` gets the seconds it took.
    pub fn predict(
        &self,
        run: Predictor<'_>,
        describe: impl FnOnce(f64) -> Record,
    ) -> Result<ndarray::Array1<f64>> {
        self.settle()?;
        // A predictor allowed to run unconfined may change any file.
        self.drop_listings();
        let policy = self.command_policy()?;
        let started = std::time::Instant::now();
        let values = command::predict(
            &policy,
            self.simulating(),
            run.command,
            run.model_file,
            run.data,
            &run.scratch.abs(),
            Some(self.root.path()),
            run.timeout,
        )?;
        let record = describe(started.elapsed().as_secs_f64());
        self.journal.action(
            None,
            ActionKind::Command,
            &record.op,
            record.args,
            &record.summary,
            record.result,
        );
        Ok(values)
    }
}

/// How a loader gets a file: opened through the sandbox, or a dry run's simulated bytes.
pub enum Source {
    File(std::fs::File),
    Bytes(Rc<[u8]>),
}

/// The writes a registry store may make, and only while the door performs its change.
pub struct StoreWriter<'a> {
    ws: &'a Workspace,
}

impl StoreWriter<'_> {
    /// Write `rel` atomically (its old content to the trash) as the pieces joined, without
    /// joining them first.
    pub fn write_pieces(&self, rel: &RelPath, pieces: &[&[u8]]) -> Result<Option<RelPath>> {
        self.ws.write_pieces(rel, pieces)
    }

    pub fn append(&self, rel: &RelPath, bytes: &[u8]) -> Result<()> {
        self.ws.append(rel, bytes)
    }

    /// Fail now, before anything is written, when [`append`](Self::append) to `rel` would
    /// be refused: a file with more than one hard link, or not a regular file.
    pub fn check_appendable(&self, rel: &RelPath) -> Result<()> {
        match self.ws.root.lstat(rel) {
            Ok(st) if sandbox::kind(&st) != rustix::fs::FileType::RegularFile => Err(Error::io(
                rel.to_string(),
                "append to",
                io::Error::other("it is not a regular file"),
            )),
            Ok(st) if st.st_nlink > 1 => Err(Error::io(
                rel.to_string(),
                "append to",
                io::Error::other(format!(
                    "it has {} hard links, so appending would also change another file (perhaps outside the workspace); replace it with a copy",
                    st.st_nlink
                )),
            )),
            _ => Ok(()),
        }
    }

    pub fn run_id(&self) -> &str {
        self.ws.run_id()
    }

    /// Perform a store's change outside the workspace (a request to a registry server):
    /// `send` runs in a real run and its answer is returned; a dry run sends nothing and
    /// gets `None`, and the store then keeps the change as its simulated view. The door
    /// journals the change either way.
    pub fn remote<T>(&self, send: impl FnOnce() -> Result<T>) -> Result<Option<T>> {
        if self.ws.simulating() {
            return Ok(None);
        }
        send().map(Some)
    }

    /// The stamp of a file as just written, so a store's cache can keep what it wrote.
    pub fn stamp(&self, rel: &RelPath) -> Result<Stamp> {
        let content = self.ws.content(rel)?;
        self.ws.stamp(&content)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::fs;

    fn ws(dry: bool) -> (tempfile::TempDir, Workspace) {
        let dir = tempfile::tempdir().unwrap();
        fs::create_dir_all(dir.path().join("models/archive")).unwrap();
        fs::write(dir.path().join("models/a.json"), "A").unwrap();
        fs::write(dir.path().join("models/archive/old.bin"), "x").unwrap();
        let w = Workspace::open(dir.path(), "run1", dry, Console::Quiet).unwrap();
        (dir, w)
    }

    fn rel(w: &Workspace, p: &str) -> RelPath {
        w.resolve(p).unwrap()
    }

    fn record(_: &Outcome) -> Record {
        Record::new("test", Value::Null, "test")
    }

    #[test]
    fn cached_listings_follow_the_runs_own_changes_and_moved_directories() {
        let (_dir, w) = ws(false);
        let names = |w: &Workspace, pattern: &str| -> Vec<String> {
            w.glob(pattern)
                .unwrap()
                .iter()
                .map(|p| p.as_str().to_string())
                .collect()
        };
        assert_eq!(names(&w, "models/*"), ["models/a.json", "models/archive"]);
        assert_eq!(names(&w, "models/archive/*"), ["models/archive/old.bin"]);
        w.perform(
            Effect::Write {
                path: rel(&w, "models/b.json"),
                bytes: b"B".to_vec(),
            },
            record,
        )
        .unwrap();
        w.perform(
            Effect::Remove {
                path: rel(&w, "models/a.json"),
            },
            record,
        )
        .unwrap();
        assert_eq!(names(&w, "models/*"), ["models/archive", "models/b.json"]);
        // A directory moved away takes its cached listing with it.
        w.perform(
            Effect::Move {
                src: rel(&w, "models/archive"),
                dst: rel(&w, "old"),
            },
            record,
        )
        .unwrap();
        assert_eq!(names(&w, "models/*"), ["models/b.json"]);
        assert!(names(&w, "models/archive/*").is_empty());
        assert_eq!(names(&w, "old/*"), ["old/old.bin"]);
        assert_eq!(
            w.exist_all(&["models/a.json", "models/b.json"]),
            [false, true]
        );
    }

    #[test]
    fn sandbox_refuses_escapes_and_decides_on_the_resolved_name() {
        let (dir, w) = ws(false);
        assert!(matches!(
            w.resolve("/etc/passwd"),
            Err(Error::Sandbox { .. })
        ));
        assert!(matches!(
            w.resolve("models/../../x"),
            Err(Error::Sandbox { .. })
        ));
        assert_eq!(
            w.resolve("models/../models/./a.json").unwrap().as_str(),
            "models/a.json"
        );
        std::os::unix::fs::symlink("/tmp", dir.path().join("out")).unwrap();
        assert!(matches!(w.resolve("out/x"), Err(Error::Sandbox { .. })));
        assert!(matches!(
            w.resolve_writable(".runbook/runs/x"),
            Err(Error::Sandbox { .. })
        ));
        std::os::unix::fs::symlink(".", dir.path().join("self")).unwrap();
        let err = w
            .resolve_writable("self/.git/config")
            .unwrap_err()
            .to_string();
        assert!(err.contains("it leads to `.git/config`"), "{err}");
        // Removing a link names the link itself.
        assert_eq!(w.resolve_entry("self").unwrap().as_str(), "self");
    }

    #[test]
    fn dry_run_overlay_is_seen_by_later_reads_and_disk_is_untouched() {
        let (dir, w) = ws(true);
        let (a, b) = (rel(&w, "models/a.json"), rel(&w, "backups/a.json"));
        w.perform(
            Effect::Copy {
                src: a.clone(),
                dst: b.clone(),
            },
            record,
        )
        .unwrap();
        w.perform(Effect::Remove { path: a.clone() }, record)
            .unwrap();
        let new = rel(&w, "models/new.txt");
        w.perform(
            Effect::Write {
                path: new,
                bytes: b"N".to_vec(),
            },
            record,
        )
        .unwrap();
        assert!(!w.exists(&a));
        assert_eq!(&*w.read(&b).unwrap(), b"A");
        assert!(w.is_dir(&rel(&w, "backups")));
        let globbed: Vec<_> = w
            .glob("models/*")
            .unwrap()
            .into_iter()
            .map(|p| p.as_str().to_string())
            .collect();
        assert_eq!(globbed, ["models/archive", "models/new.txt"]);
        w.perform(
            Effect::Remove {
                path: rel(&w, "models/archive"),
            },
            record,
        )
        .unwrap();
        let files: Vec<_> = w
            .walk_files(&rel(&w, "models"))
            .unwrap()
            .into_iter()
            .map(|l| l.path.as_str().to_string())
            .collect();
        assert_eq!(files, ["models/new.txt"]);
        // Nothing happened on disk.
        assert_eq!(
            fs::read_to_string(dir.path().join("models/a.json")).unwrap(),
            "A"
        );
        assert!(!dir.path().join("backups").exists());
        assert!(dir.path().join("models/archive/old.bin").exists());
        assert!(!dir.path().join("models/new.txt").exists());
    }

    #[test]
    fn real_remove_and_overwrite_keep_old_content_in_trash() {
        let (dir, w) = ws(false);
        let a = rel(&w, "models/a.json");
        let out = w
            .perform(
                Effect::Write {
                    path: a.clone(),
                    bytes: b"B".to_vec(),
                },
                record,
            )
            .unwrap();
        let kept = out.kept.unwrap();
        assert_eq!(kept.as_str(), ".runbook/trash/run1/models/a.json");
        assert_eq!(
            fs::read_to_string(dir.path().join(kept.as_str())).unwrap(),
            "A"
        );
        let t = w
            .perform(Effect::Remove { path: a }, record)
            .unwrap()
            .kept
            .unwrap();
        assert_eq!(t.as_str(), ".runbook/trash/run1/models/a.json~1");
        assert_eq!(
            fs::read_to_string(dir.path().join(t.as_str())).unwrap(),
            "B"
        );
        assert!(!dir.path().join("models/a.json").exists());
        // No temp file is left behind.
        let names: Vec<String> = fs::read_dir(dir.path().join("models"))
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        assert!(names.iter().all(|n| !disk::is_temp_name(n)), "{names:?}");
    }

    #[test]
    fn keep_in_trash_writes_in_a_real_run_and_only_names_the_place_in_a_dry_run() {
        let (dir, w) = ws(false);
        let first = w.keep_in_trash("git-checkout.patch", b"P").unwrap();
        assert_eq!(first.as_str(), ".runbook/trash/run1/git-checkout.patch");
        let second = w.keep_in_trash("git-checkout.patch", b"Q").unwrap();
        assert_eq!(second.as_str(), ".runbook/trash/run1/git-checkout.patch~1");
        assert_eq!(fs::read(dir.path().join(first.as_str())).unwrap(), b"P");
        assert_eq!(fs::read(dir.path().join(second.as_str())).unwrap(), b"Q");
        for bad in ["", "../x", "/etc/x", "a/./b"] {
            assert!(w.keep_in_trash(bad, b"x").is_err(), "{bad}");
        }
        let (dir, w) = ws(true);
        let kept = w.keep_in_trash("src/a.py", b"A").unwrap();
        assert_eq!(kept.as_str(), ".runbook/trash/run1/src/a.py");
        assert!(!dir.path().join(".runbook").exists());
    }

    #[test]
    fn simulated_files_lists_what_a_dry_run_wrote_and_removed() {
        let (_dir, w) = ws(true);
        w.simulate_write(&rel(&w, "src/new.py"), b"N");
        w.perform(
            Effect::Remove {
                path: rel(&w, "models/archive"),
            },
            record,
        )
        .unwrap();
        w.keep_in_trash("x.patch", b"P").unwrap();
        let listed: Vec<(String, Option<Vec<u8>>)> = w
            .simulated_files()
            .unwrap()
            .into_iter()
            .map(|(p, c)| {
                (
                    p.as_str().to_string(),
                    c.map(|c| w.bytes(&c).unwrap().to_vec()),
                )
            })
            .collect();
        assert_eq!(
            listed,
            [
                ("models/archive/old.bin".to_string(), None),
                ("src/new.py".to_string(), Some(b"N".to_vec())),
            ]
        );
    }

    #[test]
    fn copy_never_overwrites_and_copies_trees() {
        let (dir, w) = ws(false);
        let (m, b) = (rel(&w, "models"), rel(&w, "backups/models_1"));
        let out = w
            .perform(
                Effect::Copy {
                    src: m.clone(),
                    dst: b.clone(),
                },
                record,
            )
            .unwrap();
        assert_eq!(out.files, 2);
        assert_eq!(
            fs::read_to_string(dir.path().join("backups/models_1/archive/old.bin")).unwrap(),
            "x"
        );
        assert!(w.perform(Effect::Copy { src: m, dst: b }, record).is_err());
    }

    #[test]
    fn a_copy_is_flushed_like_a_write_file_by_file() {
        // Under `--sync end` the run fsyncs what it touched: a copy's files are new data,
        // and each directory of a copied tree names new entries.
        let (_dir, w) = ws(false);
        let copy = |src: &str, dst: &str| {
            let (src, dst) = (rel(&w, src), rel(&w, dst));
            w.perform(Effect::Copy { src, dst }, record).unwrap();
        };
        copy("models/a.json", "backups/a.json");
        copy("models", "backups/models_1");
        let names = |set: &RefCell<BTreeSet<RelPath>>| -> Vec<String> {
            set.borrow().iter().map(|p| p.to_string()).collect()
        };
        let files = names(&w.touched_files);
        for f in [
            "backups/a.json",
            "backups/models_1/a.json",
            "backups/models_1/archive/old.bin",
        ] {
            assert!(files.contains(&f.to_string()), "{f} not flushed: {files:?}");
        }
        let dirs = names(&w.touched_dirs);
        for d in ["backups", "backups/models_1", "backups/models_1/archive"] {
            assert!(dirs.contains(&d.to_string()), "{d} not flushed: {dirs:?}");
        }
        w.finish().unwrap();
    }

    #[test]
    fn a_listing_made_alongside_is_used_only_while_true() {
        // A directory big enough is listed by another thread while `f` runs; the listing
        // serves the lookups after, unless `f` changed the disk meanwhile.
        let (dir, w) = ws(false);
        let names: Vec<String> = (0..3000).map(|i| format!("sl_model_v{i}.json")).collect();
        for n in &names {
            fs::write(dir.path().join("models").join(n), "m").unwrap();
        }
        let paths: Vec<String> = names.iter().map(|n| format!("models/{n}")).collect();
        let paths: Vec<&str> = paths.iter().map(String::as_str).collect();
        let canon = rel(&w, "models");
        let got = w.while_listing("models", || 7);
        assert_eq!(got, 7);
        let listed = w
            .listings
            .borrow()
            .get(&canon)
            .cloned()
            .expect("listed ahead");
        assert_eq!(listed.len(), 3000 + 2);
        assert!(w.exist_all(&paths).iter().all(|e| *e));
        // Listed already: nothing is listed again.
        w.while_listing("models", || ());
        assert!(Rc::ptr_eq(&listed, &w.listings.borrow()[&canon]));

        let (dir, w) = ws(false);
        for n in &names {
            fs::write(dir.path().join("models").join(n), "m").unwrap();
        }
        w.while_listing("models", || {
            // The run removes a file the other thread has listed by then (a directory of
            // 3,000 entries takes about 2 ms).
            std::thread::sleep(std::time::Duration::from_millis(100));
            let path = rel(&w, &format!("models/{}", names[0]));
            w.perform(Effect::Remove { path }, record).unwrap();
        });
        let exists = w.exist_all(&paths);
        assert!(!exists[0], "a file the run removed is not there");
        assert!(exists[1..].iter().all(|e| *e));

        // A small directory is not worth a thread.
        let (_dir, w) = ws(false);
        w.while_listing("models", || ());
        assert!(w.listings.borrow().get(&rel(&w, "models")).is_none());
        // Nor is one that is not there, or a path outside.
        w.while_listing("nodir", || ());
        w.while_listing("../x", || ());
        assert!(w.listings.borrow().is_empty());
    }

    #[test]
    fn exist_all_agrees_with_resolve_and_exists() {
        let (dir, w) = ws(true);
        let outside = tempfile::tempdir().unwrap();
        fs::write(outside.path().join("x.json"), "x").unwrap();
        std::os::unix::fs::symlink(
            outside.path().join("x.json"),
            dir.path().join("models/out.json"),
        )
        .unwrap();
        std::os::unix::fs::symlink("a.json", dir.path().join("models/in.json")).unwrap();
        w.perform(
            Effect::Remove {
                path: rel(&w, "models/archive/old.bin"),
            },
            record,
        )
        .unwrap();
        let paths = [
            "models/a.json",
            "models/missing.json",
            "../x.json",
            "/etc/passwd",
            "models/out.json",
            "models/in.json",
            "models/archive/old.bin",
            "nodir/a.json",
        ];
        let one_by_one: Vec<bool> = paths
            .iter()
            .map(|p| w.resolve(p).map(|r| w.exists(&r)).unwrap_or(false))
            .collect();
        assert_eq!(
            one_by_one,
            [true, false, false, false, false, true, false, false]
        );
        assert_eq!(w.exist_all(&paths), one_by_one);
    }

    #[test]
    fn exist_all_sees_a_dry_runs_changes_in_a_listed_directory() {
        let (dir, w) = ws(true);
        fs::write(dir.path().join("models/b.json"), "b").unwrap();
        let paths = [
            "models/a.json",
            "models/b.json",
            "models/new.json",
            "models/archive/old.bin",
            "models/archive",
        ];
        // Listed before the changes, as a check early in a run lists `models/`.
        assert_eq!(w.exist_all(&paths), [true, true, false, true, true]);
        let write = Effect::Write {
            path: rel(&w, "models/new.json"),
            bytes: b"n".to_vec(),
        };
        w.perform(write, record).unwrap();
        for gone in ["models/a.json", "models/archive"] {
            let path = rel(&w, gone);
            w.perform(Effect::Remove { path }, record).unwrap();
        }
        let one_by_one: Vec<bool> = paths
            .iter()
            .map(|p| w.resolve(p).map(|r| w.exists(&r)).unwrap_or(false))
            .collect();
        assert_eq!(one_by_one, [false, true, true, false, false]);
        assert_eq!(w.exist_all(&paths), one_by_one);
        // Nothing of it reached the disk.
        assert!(dir.path().join("models/a.json").exists());
        assert!(!dir.path().join("models/new.json").exists());
    }

    #[test]
    fn glob_walks_components_hides_dot_files_and_never_follows_links() {
        let (dir, w) = ws(false);
        fs::write(dir.path().join("models/.hidden.json"), "h").unwrap();
        fs::write(dir.path().join("models/b.json"), "b").unwrap();
        let outside = tempfile::tempdir().unwrap();
        fs::write(outside.path().join("secret.json"), "s").unwrap();
        std::os::unix::fs::symlink(outside.path(), dir.path().join("out")).unwrap();
        let names = |p: &str| -> Vec<String> {
            w.glob(p)
                .unwrap()
                .into_iter()
                .map(|r| r.as_str().to_string())
                .collect()
        };
        assert_eq!(names("models/*.json"), ["models/a.json", "models/b.json"]);
        assert_eq!(names("models/.*.json"), ["models/.hidden.json"]);
        assert_eq!(names("*/archive/*"), ["models/archive/old.bin"]);
        assert_eq!(names("models/a.json"), ["models/a.json"]);
        assert!(names("models/nope/*").is_empty());
        assert_eq!(names("**/old.bin"), ["models/archive/old.bin"]);
        assert!(names("out/*").is_empty());
        assert!(names("**/secret.json").is_empty());
        assert!(matches!(w.glob("../*"), Err(Error::Sandbox { .. })));
    }

    #[test]
    fn appends_refuse_a_file_with_other_hard_links() {
        let (dir, w) = ws(false);
        let outside = tempfile::tempdir().unwrap();
        fs::write(outside.path().join("log"), "outside\n").unwrap();
        fs::hard_link(
            outside.path().join("log"),
            dir.path().join("models/history.jsonl"),
        )
        .unwrap();
        let path = rel(&w, "models/history.jsonl");
        let err = w
            .perform(
                Effect::Append {
                    path,
                    bytes: b"x\n".to_vec(),
                },
                record,
            )
            .unwrap_err();
        assert!(err.to_string().contains("hard links"), "{err}");
        assert_eq!(
            fs::read_to_string(outside.path().join("log")).unwrap(),
            "outside\n"
        );
    }
}
