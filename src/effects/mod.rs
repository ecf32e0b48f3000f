//! The effect layer: the one place where the workspace is read and changed.
//!
//! Every primitive reaches the workspace through a [`Workspace`]. It does three jobs:
//!
//! * **Sandbox.** Paths are relative to the workspace root. Absolute paths, `..` that climbs
//!   out, and symlinks that point outside are refused before any I/O. `.runbook/` (logs and
//!   trash) and `.git/` cannot be changed by scripts.
//! * **Nothing lost.** Writes go to a temp file that is renamed over the target, so a crash
//!   leaves the old or the new file, never half of one. A file that is removed or overwritten
//!   is moved (or hard-linked) into `.runbook/trash/<run-id>/<its path>` first, where
//!   `runbook trash` can restore it until the user purges it.
//! * **Dry run.** In a dry run nothing on disk changes: mutations land in an in-memory
//!   overlay instead, and every read consults the overlay first. Later steps of a dry run
//!   therefore see the state earlier steps would have produced, and there is no second code
//!   path that could drift from the real one: the decision is taken here, next to the I/O.

use crate::error::{Error, Result};
use std::cell::RefCell;
use std::collections::BTreeMap;
use std::fs;
use std::io::{self, Write};
use std::path::{Component, Path, PathBuf};
use std::rc::Rc;
use std::time::SystemTime;

pub mod gitcli;

/// A normalised workspace-relative path: `/`-separated, no `.` or `..`, no trailing slash.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct RelPath(String);

impl RelPath {
    pub fn as_str(&self) -> &str {
        &self.0
    }

    pub fn is_root(&self) -> bool {
        self.0.is_empty()
    }

    pub fn join(&self, child: &str) -> RelPath {
        if self.0.is_empty() {
            RelPath(child.to_string())
        } else {
            RelPath(format!("{}/{}", self.0, child))
        }
    }

    pub fn parent(&self) -> Option<RelPath> {
        if self.0.is_empty() {
            return None;
        }
        Some(RelPath(
            self.0
                .rsplit_once('/')
                .map(|(p, _)| p.to_string())
                .unwrap_or_default(),
        ))
    }

    pub fn file_name(&self) -> &str {
        self.0.rsplit('/').next().unwrap_or("")
    }

    /// True when `self` is `dir` or lies below it.
    pub fn is_within(&self, dir: &RelPath) -> bool {
        dir.0.is_empty()
            || self.0 == dir.0
            || (self.0.starts_with(&dir.0) && self.0.as_bytes().get(dir.0.len()) == Some(&b'/'))
    }

    fn first_component(&self) -> &str {
        self.0.split('/').next().unwrap_or("")
    }
}

impl std::fmt::Display for RelPath {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        if self.0.is_empty() {
            f.write_str(".")
        } else {
            f.write_str(&self.0)
        }
    }
}

/// The content of a file as the run sees it: on disk, or in the dry-run overlay.
#[derive(Debug, Clone)]
pub enum Content {
    Disk(PathBuf),
    Bytes(Rc<[u8]>),
}

impl Content {
    pub fn bytes(&self, display: &RelPath) -> Result<Rc<[u8]>> {
        match self {
            Content::Bytes(b) => Ok(b.clone()),
            Content::Disk(p) => fs::read(p)
                .map(Rc::from)
                .map_err(|e| Error::io(display.to_string(), "read", e)),
        }
    }
}

/// What a file was when it was read: enough to notice any change since, so that parsed
/// copies (the registry, datasets) can be reused until the file really changes.
#[derive(Clone, Debug)]
pub enum Stamp {
    Disk {
        dev: u64,
        ino: u64,
        len: u64,
        mtime_ns: i128,
        ctime_ns: i128,
    },
    /// A file a dry run simulated. Its bytes are immutable and held here, so the same
    /// allocation means the same content (and the address cannot be reused meanwhile).
    Overlay(Rc<[u8]>),
}

impl PartialEq for Stamp {
    fn eq(&self, other: &Stamp) -> bool {
        match (self, other) {
            (Stamp::Overlay(a), Stamp::Overlay(b)) => Rc::ptr_eq(a, b),
            (
                Stamp::Disk {
                    dev,
                    ino,
                    len,
                    mtime_ns,
                    ctime_ns,
                },
                Stamp::Disk {
                    dev: d2,
                    ino: i2,
                    len: l2,
                    mtime_ns: m2,
                    ctime_ns: c2,
                },
            ) => (dev, ino, len, mtime_ns, ctime_ns) == (d2, i2, l2, m2, c2),
            _ => false,
        }
    }
}

impl Stamp {
    /// The stamp of a file's current content, as the run sees it.
    pub fn of(content: &Content, rel: &RelPath) -> Result<Stamp> {
        use std::os::unix::fs::MetadataExt;
        match content {
            Content::Bytes(b) => Ok(Stamp::Overlay(b.clone())),
            Content::Disk(abs) => {
                let md =
                    std::fs::metadata(abs).map_err(|e| Error::io(rel.to_string(), "read", e))?;
                let ns = |secs: i64, nsec: i64| i128::from(secs) * 1_000_000_000 + i128::from(nsec);
                Ok(Stamp::Disk {
                    dev: md.dev(),
                    ino: md.ino(),
                    len: md.len(),
                    mtime_ns: ns(md.mtime(), md.mtime_nsec()),
                    ctime_ns: ns(md.ctime(), md.ctime_nsec()),
                })
            }
        }
    }
}

#[derive(Debug, Clone)]
enum Entry {
    File {
        content: Content,
        mtime: SystemTime,
    },
    /// A directory made in the dry run. `shadows_disk` is set when it replaced a removed
    /// directory, so what was on disk below it no longer counts.
    Dir {
        shadows_disk: bool,
    },
    Removed,
}

enum Lookup {
    Overlay(Entry),
    /// Below a directory the overlay removed.
    Hidden,
    Disk,
}

/// A file found by a listing, with its modification time.
#[derive(Debug, Clone)]
pub struct Listed {
    pub path: RelPath,
    pub mtime: SystemTime,
}

pub struct Workspace {
    root: PathBuf,
    dry_run: bool,
    run_id: String,
    overlay: RefCell<BTreeMap<RelPath, Entry>>,
    durability: Durability,
}

/// Held while a real run may change the workspace; see [`Workspace::lock`].
pub struct WorkspaceLock {
    _file: fs::File,
}

/// When changes are forced to disk. Every write is atomic (temp file, then rename) whatever
/// the setting: a crash of runbook leaves the old or the new file. Durability is about a
/// power cut: `EachWrite` fsyncs every file and directory as it is written (about 2.5 ms per
/// fsync on this class of disk), `EndOfRun` flushes the whole filesystem once when the run
/// ends, before it reports success, and `None` leaves it to the kernel.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Durability {
    EachWrite,
    EndOfRun,
    None,
}

impl Workspace {
    /// Open a workspace rooted at `root`, which must be an existing directory.
    pub fn open(root: &Path, run_id: &str, dry_run: bool) -> Result<Workspace> {
        let root = fs::canonicalize(root)
            .map_err(|e| Error::io(root.display().to_string(), "open the workspace", e))?;
        if !root.is_dir() {
            return Err(Error::Usage(format!(
                "workspace `{}` is not a directory",
                root.display()
            )));
        }
        Ok(Workspace {
            root,
            dry_run,
            run_id: run_id.to_string(),
            overlay: RefCell::new(BTreeMap::new()),
            durability: Durability::EndOfRun,
        })
    }

    /// Take the workspace for a run that changes it. Two real runs at once would both read
    /// the registry, both roll back, and demote two versions; the second one is refused
    /// instead. The lock is an `flock` on `.runbook/lock`, so it goes away with the process
    /// however that ends, and no stale lock can block an incident.
    pub fn lock(&self) -> Result<WorkspaceLock> {
        use std::os::fd::AsRawFd;
        let dir = self.root.join(".runbook");
        fs::create_dir_all(&dir).map_err(|e| Error::io(".runbook", "create the directory", e))?;
        let path = dir.join("lock");
        let mut file = fs::OpenOptions::new()
            .create(true)
            .truncate(false)
            .read(true)
            .write(true)
            .open(&path)
            .map_err(|e| Error::io(".runbook/lock", "open", e))?;
        // SAFETY: flock on a descriptor we own; it only takes an advisory lock.
        if unsafe { libc::flock(file.as_raw_fd(), libc::LOCK_EX | libc::LOCK_NB) } != 0 {
            let holder = fs::read_to_string(&path).unwrap_or_default();
            return Err(Error::invalid(
                format!("workspace `{}`", self.root.display()),
                format!(
                    "another run is changing it ({}); wait for it to finish (a dry run can go ahead)",
                    holder.trim()
                ),
            ));
        }
        let _ = file.set_len(0);
        let _ = writeln!(file, "run {} by pid {}", self.run_id, std::process::id());
        Ok(WorkspaceLock { _file: file })
    }

    pub fn with_durability(mut self, durability: Durability) -> Workspace {
        self.durability = durability;
        self
    }

    fn sync_each(&self) -> bool {
        self.durability == Durability::EachWrite
    }

    /// Make the run's changes durable, as the durability setting asks. Called once, when the
    /// run ends (successfully or not), so everything it logged as done is on disk.
    pub fn finish(&self) -> Result<()> {
        if self.dry_run || self.durability != Durability::EndOfRun {
            return Ok(());
        }
        let dir = fs::File::open(&self.root)
            .map_err(|e| Error::io(self.root.display().to_string(), "open", e))?;
        use std::os::fd::AsRawFd;
        // SAFETY: syncfs on a file descriptor we own; it only flushes.
        if unsafe { libc::syncfs(dir.as_raw_fd()) } != 0 {
            return Err(Error::io(
                self.root.display().to_string(),
                "flush to disk",
                io::Error::last_os_error(),
            ));
        }
        Ok(())
    }

    pub fn root(&self) -> &Path {
        &self.root
    }

    pub fn dry_run(&self) -> bool {
        self.dry_run
    }

    pub fn run_id(&self) -> &str {
        &self.run_id
    }

    pub fn abs(&self, rel: &RelPath) -> PathBuf {
        if rel.is_root() {
            self.root.clone()
        } else {
            self.root.join(&rel.0)
        }
    }

    // ----- sandbox ---------------------------------------------------------------------

    /// Check a script-given path and normalise it. Refuses absolute paths, `..` that leaves
    /// the workspace, and existing symlinks on the way that point outside.
    pub fn resolve(&self, path: &str) -> Result<RelPath> {
        let rel = Self::normalize(path)?;
        self.check_links(path.trim(), &rel)?;
        Ok(rel)
    }

    /// The lexical half of [`resolve`](Self::resolve): no I/O, no symlink check.
    fn normalize(path: &str) -> Result<RelPath> {
        let trimmed = path.trim();
        if trimmed.is_empty() {
            return Err(Error::invalid(
                "path",
                "an empty path was given; name a file inside the workspace",
            ));
        }
        let mut parts: Vec<&str> = Vec::new();
        for comp in Path::new(trimmed).components() {
            match comp {
                Component::Normal(s) => {
                    let s = s.to_str().ok_or_else(|| {
                        Error::invalid(format!("path `{trimmed}`"), "is not valid UTF-8")
                    })?;
                    parts.push(s);
                }
                Component::CurDir => {}
                Component::ParentDir => {
                    if parts.pop().is_none() {
                        return Err(Error::sandbox(trimmed, "`..` leads out of the workspace"));
                    }
                }
                Component::RootDir | Component::Prefix(_) => {
                    return Err(Error::sandbox(
                        trimmed,
                        "absolute paths are not allowed; give a path relative to the workspace",
                    ));
                }
            }
        }
        Ok(RelPath(parts.join("/")))
    }

    fn check_links(&self, given: &str, rel: &RelPath) -> Result<()> {
        let mut p = self.root.clone();
        for part in rel.0.split('/').filter(|s| !s.is_empty()) {
            p.push(part);
            match fs::symlink_metadata(&p) {
                Ok(md) if md.file_type().is_symlink() => {
                    let inside = fs::canonicalize(&p)
                        .map(|t| t.starts_with(&self.root))
                        .unwrap_or(false);
                    if !inside {
                        return Err(Error::sandbox(
                            given,
                            format!(
                                "`{}` is a symlink that points outside the workspace (or nowhere)",
                                p.strip_prefix(&self.root).unwrap_or(&p).display()
                            ),
                        ));
                    }
                }
                Ok(_) => {}
                Err(_) => break,
            }
        }
        Ok(())
    }

    /// Resolve a path a script wants to change. `.runbook/` and `.git/` are off limits.
    pub fn resolve_writable(&self, path: &str) -> Result<RelPath> {
        let rel = self.resolve(path)?;
        if rel.is_root() {
            return Err(Error::sandbox(
                path,
                "the workspace root itself cannot be changed",
            ));
        }
        match rel.first_component() {
            ".runbook" => Err(Error::sandbox(
                path,
                "`.runbook/` holds the run logs and the trash; scripts cannot change it",
            )),
            ".git" => Err(Error::sandbox(
                path,
                "`.git/` is changed only through the git primitives",
            )),
            _ => Ok(rel),
        }
    }

    // ----- reads -------------------------------------------------------------------------

    fn lookup(&self, rel: &RelPath) -> Lookup {
        let overlay = self.overlay.borrow();
        if overlay.is_empty() {
            return Lookup::Disk;
        }
        if let Some(e) = overlay.get(rel) {
            return Lookup::Overlay(e.clone());
        }
        let mut cur = rel.parent();
        while let Some(dir) = cur {
            match overlay.get(&dir) {
                Some(Entry::Removed) | Some(Entry::Dir { shadows_disk: true }) => {
                    return Lookup::Hidden
                }
                Some(Entry::File { .. }) => return Lookup::Hidden,
                _ => {}
            }
            cur = dir.parent();
        }
        Lookup::Disk
    }

    /// The content of a file, from the overlay or the disk.
    pub fn content(&self, rel: &RelPath) -> Result<Content> {
        let not_found = || {
            Error::io(
                rel.to_string(),
                "read",
                io::Error::from(io::ErrorKind::NotFound),
            )
        };
        match self.lookup(rel) {
            Lookup::Overlay(Entry::File { content, .. }) => Ok(content),
            Lookup::Overlay(Entry::Dir { .. }) => Err(Error::invalid(
                format!("`{rel}`"),
                "is a directory, not a file",
            )),
            Lookup::Overlay(Entry::Removed) | Lookup::Hidden => Err(not_found()),
            Lookup::Disk => {
                let abs = self.abs(rel);
                match fs::metadata(&abs) {
                    Ok(md) if md.is_dir() => Err(Error::invalid(
                        format!("`{rel}`"),
                        "is a directory, not a file",
                    )),
                    Ok(_) => Ok(Content::Disk(abs)),
                    Err(e) => Err(Error::io(rel.to_string(), "read", e)),
                }
            }
        }
    }

    pub fn read(&self, rel: &RelPath) -> Result<Rc<[u8]>> {
        self.content(rel)?.bytes(rel)
    }

    pub fn read_string(&self, rel: &RelPath) -> Result<String> {
        let bytes = self.read(rel)?;
        String::from_utf8(bytes.to_vec())
            .map_err(|_| Error::invalid(format!("`{rel}`"), "is not UTF-8 text"))
    }

    /// For many script-given paths at once: does each exist, as the run sees the workspace?
    /// Same answers as `resolve` + `exists` path by path (a path the sandbox refuses does not
    /// exist), but each directory is checked and listed once instead of stat-ing every file:
    /// a registry of 10,000 versions asks about 10,000 files in one directory.
    pub fn exist_all(&self, paths: &[&str]) -> Vec<bool> {
        use std::collections::HashMap;
        let mut listings: HashMap<Option<RelPath>, Option<HashMap<String, fs::FileType>>> =
            HashMap::new();
        paths
            .iter()
            .map(|given| {
                let Ok(rel) = Self::normalize(given) else {
                    return false;
                };
                if !matches!(self.lookup(&rel), Lookup::Disk) {
                    return self.exists(&rel);
                }
                let parent = rel.parent();
                let listing = listings.entry(parent.clone()).or_insert_with(|| {
                    let dir = parent.clone().unwrap_or(RelPath(String::new()));
                    self.check_links(given, &dir).ok()?;
                    let entries = fs::read_dir(self.abs(&dir)).ok()?;
                    Some(
                        entries
                            .flatten()
                            .filter_map(|e| {
                                Some((e.file_name().into_string().ok()?, e.file_type().ok()?))
                            })
                            .collect(),
                    )
                });
                match listing.as_ref().and_then(|l| l.get(rel.file_name())) {
                    // A symlink may point anywhere: check it the slow, exact way.
                    Some(ft) if ft.is_symlink() => self
                        .resolve(given)
                        .map(|r| self.exists(&r))
                        .unwrap_or(false),
                    Some(_) => true,
                    None => false,
                }
            })
            .collect()
    }

    /// Does the path exist (file or directory) in the state the run sees?
    pub fn exists(&self, rel: &RelPath) -> bool {
        match self.lookup(rel) {
            Lookup::Overlay(Entry::Removed) | Lookup::Hidden => false,
            Lookup::Overlay(_) => true,
            Lookup::Disk => {
                fs::symlink_metadata(self.abs(rel)).is_ok() || self.overlay_has_children(rel)
            }
        }
    }

    pub fn is_dir(&self, rel: &RelPath) -> bool {
        match self.lookup(rel) {
            Lookup::Overlay(Entry::Dir { .. }) => true,
            Lookup::Overlay(_) | Lookup::Hidden => false,
            Lookup::Disk => self.abs(rel).is_dir() || self.overlay_has_children(rel),
        }
    }

    fn overlay_has_children(&self, rel: &RelPath) -> bool {
        let overlay = self.overlay.borrow();
        overlay
            .iter()
            .any(|(p, e)| !matches!(e, Entry::Removed) && p != rel && p.is_within(rel))
    }

    pub fn mtime(&self, rel: &RelPath) -> Result<SystemTime> {
        match self.lookup(rel) {
            Lookup::Overlay(Entry::File { mtime, .. }) => Ok(mtime),
            Lookup::Overlay(Entry::Dir { .. }) => Ok(SystemTime::now()),
            Lookup::Overlay(Entry::Removed) | Lookup::Hidden => Err(Error::io(
                rel.to_string(),
                "read the modification time of",
                io::Error::from(io::ErrorKind::NotFound),
            )),
            Lookup::Disk => fs::metadata(self.abs(rel))
                .and_then(|m| m.modified())
                .map_err(|e| Error::io(rel.to_string(), "read the modification time of", e)),
        }
    }

    /// Every file below `dir` (recursively), as the run sees them, sorted by path.
    /// Symlinks are listed but not followed.
    pub fn walk_files(&self, dir: &RelPath) -> Result<Vec<Listed>> {
        self.walk(dir, &WalkFilter::default())
    }

    /// Like [`walk_files`](Self::walk_files), keeping only the files `filter` accepts. The
    /// name test runs before a file's metadata is read.
    pub fn walk(&self, dir: &RelPath, filter: &WalkFilter) -> Result<Vec<Listed>> {
        let mut out = Vec::new();
        let hidden_root = matches!(
            self.lookup(dir),
            Lookup::Hidden
                | Lookup::Overlay(Entry::Removed)
                | Lookup::Overlay(Entry::Dir { shadows_disk: true })
        );
        if !hidden_root && self.abs(dir).is_dir() {
            let found = walk_disk(&self.root, dir, filter)
                .map_err(|(path, e)| Error::io(path, "list", e))?;
            let overlay_empty = self.overlay.borrow().is_empty();
            for (path, mtime) in found {
                let rel = RelPath(path);
                // The overlay's version of a file (if any) is added below.
                if overlay_empty || matches!(self.lookup(&rel), Lookup::Disk) {
                    out.push(Listed { path: rel, mtime });
                }
            }
        }
        for (p, e) in self.overlay.borrow().iter() {
            if let Entry::File { mtime, .. } = e {
                if p.is_within(dir) && p != dir && filter.keeps(p.file_name(), *mtime) {
                    if let Lookup::Overlay(_) = self.lookup(p) {
                        out.push(Listed {
                            path: p.clone(),
                            mtime: *mtime,
                        });
                    }
                }
            }
        }
        out.sort_by(|a, b| a.path.cmp(&b.path));
        Ok(out)
    }

    /// Files and directories matching a glob pattern relative to the workspace, sorted.
    pub fn glob(&self, pattern: &str) -> Result<Vec<RelPath>> {
        let trimmed = pattern.trim();
        if trimmed.starts_with('/') || trimmed.split('/').any(|c| c == "..") {
            return Err(Error::sandbox(
                trimmed,
                "glob patterns must stay inside the workspace: no absolute paths, no `..`",
            ));
        }
        let compiled = glob::Pattern::new(trimmed)
            .map_err(|e| Error::invalid(format!("glob pattern `{trimmed}`"), e.to_string()))?;
        let opts = glob::MatchOptions {
            case_sensitive: true,
            require_literal_separator: true,
            require_literal_leading_dot: true,
        };
        let mut out = Vec::new();
        for rel in self.glob_disk(trimmed, opts)? {
            if rel.first_component() != ".runbook" && matches!(self.lookup(&rel), Lookup::Disk) {
                out.push(rel);
            }
        }
        for (p, e) in self.overlay.borrow().iter() {
            if !matches!(e, Entry::Removed)
                && p.first_component() != ".runbook"
                && compiled.matches_with(&p.0, opts)
                && matches!(self.lookup(p), Lookup::Overlay(_))
            {
                out.push(p.clone());
            }
        }
        out.sort();
        out.dedup();
        Ok(out)
    }

    /// The on-disk matches of a glob pattern. Walks the pattern one component at a time:
    /// literal components are joined without listing anything, and a directory is listed
    /// only where a component has wildcards, so `models/sl_model_v5.*` costs one listing of
    /// `models/`. Patterns with `**` use the glob crate's recursive walk.
    fn glob_disk(&self, pattern: &str, opts: glob::MatchOptions) -> Result<Vec<RelPath>> {
        let bad = |e: glob::PatternError| {
            Error::invalid(format!("glob pattern `{pattern}`"), e.to_string())
        };
        let components: Vec<&str> = pattern
            .split('/')
            .filter(|c| !c.is_empty() && *c != ".")
            .collect();
        if components.contains(&"**") {
            let full = format!(
                "{}/{}",
                glob::Pattern::escape(&self.root.to_string_lossy()),
                pattern
            );
            let paths = glob::glob_with(&full, opts).map_err(bad)?;
            return Ok(paths
                .flatten()
                .filter_map(|p| {
                    let rel = p
                        .strip_prefix(&self.root)
                        .ok()?
                        .to_str()?
                        .trim_end_matches('/')
                        .to_string();
                    Some(RelPath(rel))
                })
                .collect());
        }
        let mut frontier = vec![RelPath(String::new())];
        for (i, comp) in components.iter().enumerate() {
            let last = i + 1 == components.len();
            let mut next = Vec::new();
            if !comp.contains(['*', '?', '[']) {
                for dir in &frontier {
                    let candidate = dir.join(comp);
                    let abs = self.abs(&candidate);
                    if (last && fs::symlink_metadata(&abs).is_ok()) || abs.is_dir() {
                        next.push(candidate);
                    }
                }
            } else {
                let matcher = glob::Pattern::new(comp).map_err(bad)?;
                for dir in &frontier {
                    let Ok(entries) = fs::read_dir(self.abs(dir)) else {
                        continue;
                    };
                    for entry in entries.flatten() {
                        let Ok(name) = entry.file_name().into_string() else {
                            continue;
                        };
                        if !matcher.matches_with(&name, opts) {
                            continue;
                        }
                        let candidate = dir.join(&name);
                        // Inner components must be directories (following links, as glob does).
                        if last || self.abs(&candidate).is_dir() {
                            next.push(candidate);
                        }
                    }
                }
            }
            frontier = next;
            if frontier.is_empty() {
                break;
            }
        }
        Ok(frontier.into_iter().filter(|p| !p.is_root()).collect())
    }

    // ----- changes ---------------------------------------------------------------------

    /// Write a file atomically. An existing file's old content is kept in the trash; its
    /// trash path is returned.
    pub fn write(&self, rel: &RelPath, bytes: &[u8]) -> Result<Option<RelPath>> {
        if self.is_dir(rel) {
            return Err(Error::invalid(
                format!("`{rel}`"),
                "is a directory; cannot write a file over it",
            ));
        }
        let existed = self.exists(rel);
        if self.dry_run {
            let trash = existed.then(|| self.trash_path(rel));
            self.set(
                rel,
                Entry::File {
                    content: Content::Bytes(Rc::from(bytes)),
                    mtime: SystemTime::now(),
                },
            );
            return Ok(trash);
        }
        let abs = self.abs(rel);
        let trash = if existed {
            let t = self.trash_path(rel);
            let tabs = self.abs(&t);
            create_parent(&tabs, &t)?;
            // A hard link keeps the old bytes without copying them; the rename below then
            // swaps the new file in atomically.
            if fs::hard_link(&abs, &tabs).is_err() {
                fs::copy(&abs, &tabs)
                    .map_err(|e| Error::io(rel.to_string(), "keep the old content of", e))?;
            }
            Some(t)
        } else {
            None
        };
        atomic_write(&abs, bytes, self.sync_each())
            .map_err(|e| Error::io(rel.to_string(), "write", e))?;
        Ok(trash)
    }

    /// Append to a file (creating it). Used for append-only logs such as the registry history.
    pub fn append(&self, rel: &RelPath, bytes: &[u8]) -> Result<()> {
        if self.dry_run {
            let mut data = if self.exists(rel) {
                self.read(rel)?.to_vec()
            } else {
                Vec::new()
            };
            data.extend_from_slice(bytes);
            self.set(
                rel,
                Entry::File {
                    content: Content::Bytes(Rc::from(data)),
                    mtime: SystemTime::now(),
                },
            );
            return Ok(());
        }
        let abs = self.abs(rel);
        create_parent(&abs, rel)?;
        let mut f = fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&abs)
            .map_err(|e| Error::io(rel.to_string(), "open for appending", e))?;
        // One write call per record: O_APPEND keeps concurrent records whole.
        f.write_all(bytes)
            .and_then(|_| {
                if self.sync_each() {
                    f.sync_data()
                } else {
                    Ok(())
                }
            })
            .map_err(|e| Error::io(rel.to_string(), "append to", e))
    }

    /// Move a file or directory into the trash. Returns where it went (or would go).
    pub fn remove(&self, rel: &RelPath) -> Result<RelPath> {
        if !self.exists(rel) {
            return Err(Error::io(
                rel.to_string(),
                "remove",
                io::Error::from(io::ErrorKind::NotFound),
            ));
        }
        let trash = self.trash_path(rel);
        if self.dry_run {
            self.clear_below(rel);
            self.set(rel, Entry::Removed);
            return Ok(trash);
        }
        let tabs = self.abs(&trash);
        create_parent(&tabs, &trash)?;
        fs::rename(self.abs(rel), &tabs)
            .map_err(|e| Error::io(rel.to_string(), "move to the trash", e))?;
        Ok(trash)
    }

    /// Copy a file or a directory tree. The destination must not exist: a copy never
    /// overwrites. A tree is copied into a temp directory first and renamed into place, so
    /// the destination appears whole or not at all. Returns the number of files copied.
    pub fn copy(&self, src: &RelPath, dst: &RelPath) -> Result<usize> {
        self.check_destination(src, dst, "copy")?;
        let is_dir = self.is_dir(src);
        if self.dry_run {
            return self.overlay_copy(src, dst);
        }
        let (sabs, dabs) = (self.abs(src), self.abs(dst));
        create_parent(&dabs, dst)?;
        let tmp = temp_sibling(&dabs);
        let result = if is_dir {
            copy_tree(&sabs, &tmp)
        } else {
            copy_file(&sabs, &tmp).map(|_| 1)
        };
        let count = match result {
            Ok(n) => n,
            Err(e) => {
                let _ = if is_dir {
                    fs::remove_dir_all(&tmp)
                } else {
                    fs::remove_file(&tmp)
                };
                return Err(Error::io(src.to_string(), "copy", e));
            }
        };
        fs::rename(&tmp, &dabs)
            .map_err(|e| Error::io(dst.to_string(), "move the copy into place at", e))?;
        Ok(count)
    }

    /// Move a file or directory. The destination must not exist.
    pub fn rename(&self, src: &RelPath, dst: &RelPath) -> Result<()> {
        self.check_destination(src, dst, "move")?;
        if self.dry_run {
            self.overlay_copy(src, dst)?;
            self.clear_below(src);
            self.set(src, Entry::Removed);
            return Ok(());
        }
        let dabs = self.abs(dst);
        create_parent(&dabs, dst)?;
        fs::rename(self.abs(src), &dabs).map_err(|e| Error::io(src.to_string(), "move", e))
    }

    /// The dry-run half of `copy` (and of `rename`, which then hides the source): put a
    /// copy of a file or tree into the overlay. On-disk files are referenced, not read.
    fn overlay_copy(&self, src: &RelPath, dst: &RelPath) -> Result<usize> {
        if !self.is_dir(src) {
            let (content, mtime) = (self.content(src)?, self.mtime(src)?);
            self.set(dst, Entry::File { content, mtime });
            return Ok(1);
        }
        let files = self.walk_files(src)?;
        self.set(
            dst,
            Entry::Dir {
                shadows_disk: false,
            },
        );
        for f in &files {
            let suffix = &f.path.0[src.0.len() + 1..];
            let content = self.content(&f.path)?;
            self.set(
                &dst.join(suffix),
                Entry::File {
                    content,
                    mtime: f.mtime,
                },
            );
        }
        Ok(files.len())
    }

    /// Make a directory and its parents. Returns false if it already existed.
    pub fn mkdir(&self, rel: &RelPath) -> Result<bool> {
        if self.is_dir(rel) {
            return Ok(false);
        }
        if self.exists(rel) {
            return Err(Error::invalid(
                format!("`{rel}`"),
                "exists and is not a directory",
            ));
        }
        if self.dry_run {
            let shadows = matches!(
                self.lookup(rel),
                Lookup::Overlay(Entry::Removed) | Lookup::Hidden
            );
            self.set(
                rel,
                Entry::Dir {
                    shadows_disk: shadows,
                },
            );
            return Ok(true);
        }
        fs::create_dir_all(self.abs(rel))
            .map_err(|e| Error::io(rel.to_string(), "create the directory", e))?;
        Ok(true)
    }

    /// Record in the overlay a file an external tool would write (a git checkout, say).
    /// Only meaningful in a dry run; a real run lets the tool write.
    pub fn simulate_write(&self, rel: &RelPath, bytes: &[u8]) {
        debug_assert!(self.dry_run);
        self.set(
            rel,
            Entry::File {
                content: Content::Bytes(Rc::from(bytes)),
                mtime: SystemTime::now(),
            },
        );
    }

    /// Keep `bytes` in this run's trash as `.runbook/trash/<run-id>/<name>` (with a `~N`
    /// suffix when the run already put something there) and return that path. For what a
    /// primitive must save before an external tool overwrites it, such as the uncommitted
    /// changes a `git checkout` would destroy; scripts cannot write below `.runbook/`. A real
    /// run writes the file atomically; a dry run only returns the path it would use.
    /// `name` is a relative path of plain components (no `.`, `..`, empty or leading `/`).
    pub fn keep_in_trash(&self, name: &str, bytes: &[u8]) -> Result<RelPath> {
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
        let kept = self.trash_path(&RelPath(name.to_string()));
        if self.dry_run {
            return Ok(kept);
        }
        atomic_write(&self.abs(&kept), bytes, self.sync_each())
            .map_err(|e| Error::io(kept.to_string(), "keep a copy in the trash at", e))?;
        Ok(kept)
    }

    /// The files a dry run has changed so far, outside `.runbook/`: each file it wrote with
    /// the content it would have, each file it removed with `None`. Always empty in a real
    /// run. Git primitives use it to tell what a commit at this point of a dry run would hold,
    /// since git itself only sees the disk.
    pub fn simulated_files(&self) -> Result<Vec<(RelPath, Option<Content>)>> {
        // A copy, so that `lookup` below can borrow the overlay again.
        let overlay = self.overlay.borrow().clone();
        let mut out: BTreeMap<RelPath, Option<Content>> = BTreeMap::new();
        for (path, entry) in &overlay {
            if path.first_component() == ".runbook" {
                continue;
            }
            match entry {
                Entry::File { content, .. } => {
                    if matches!(self.lookup(path), Lookup::Overlay(_)) {
                        out.insert(path.clone(), Some(content.clone()));
                    }
                }
                Entry::Removed | Entry::Dir { shadows_disk: true } => {
                    // What the disk holds at or below `path` is gone from the run's view,
                    // unless the overlay wrote it again (then the arm above reports it).
                    let abs = self.abs(path);
                    let Ok(md) = fs::symlink_metadata(&abs) else {
                        continue;
                    };
                    if !md.is_dir() {
                        out.entry(path.clone()).or_insert(None);
                        continue;
                    }
                    for e in walkdir::WalkDir::new(&abs).follow_links(false).min_depth(1) {
                        let e = e.map_err(|e| {
                            Error::io(
                                path.to_string(),
                                "list",
                                e.into_io_error()
                                    .unwrap_or_else(|| io::Error::other("filesystem loop")),
                            )
                        })?;
                        if e.file_type().is_dir() {
                            continue;
                        }
                        let Some(rel) = e
                            .path()
                            .strip_prefix(&self.root)
                            .ok()
                            .and_then(Path::to_str)
                        else {
                            continue;
                        };
                        let rel = RelPath(rel.to_string());
                        if !matches!(self.lookup(&rel), Lookup::Overlay(Entry::File { .. })) {
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
            return Err(Error::io(
                src.to_string(),
                verb,
                io::Error::from(io::ErrorKind::NotFound),
            ));
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

    fn set(&self, rel: &RelPath, entry: Entry) {
        self.overlay.borrow_mut().insert(rel.clone(), entry);
    }

    fn clear_below(&self, rel: &RelPath) {
        self.overlay
            .borrow_mut()
            .retain(|p, _| p == rel || !p.is_within(rel));
    }

    /// Where a removed or overwritten path goes: `.runbook/trash/<run-id>/<path>`, with a
    /// `~N` suffix when the run already put something there.
    fn trash_path(&self, rel: &RelPath) -> RelPath {
        let base = format!(".runbook/trash/{}/{}", self.run_id, rel.0);
        let taken = |r: &RelPath| {
            self.overlay.borrow().contains_key(r) || fs::symlink_metadata(self.abs(r)).is_ok()
        };
        let chosen = std::iter::once(base.clone())
            .chain((1..).map(|n| format!("{base}~{n}")))
            .map(RelPath)
            .find(|r| !taken(r))
            .expect("an unbounded sequence of names has a free one");
        if self.dry_run {
            // Reserve it so two removals of the same path in one dry run report distinct places.
            self.set(
                &chosen,
                Entry::Dir {
                    shadows_disk: false,
                },
            );
        }
        chosen
    }
}

/// Which files a walk keeps: by file name (a glob such as `*.pkl`), and by modification
/// time (strictly newer than, as `find -newer`).
#[derive(Default)]
pub struct WalkFilter {
    pub name: Option<glob::Pattern>,
    pub newer_than: Option<SystemTime>,
}

impl WalkFilter {
    fn keeps_name(&self, name: &str) -> bool {
        self.name.as_ref().is_none_or(|p| p.matches(name))
    }

    fn keeps(&self, name: &str, mtime: SystemTime) -> bool {
        self.keeps_name(name) && self.newer_than.is_none_or(|t| mtime > t)
    }
}

/// The files below `dir` on disk that `filter` keeps, as workspace-relative paths with
/// their modification times, sorted. Symlinks are listed, never followed; `.runbook/` is
/// skipped.
///
/// This is the plan's `find models/ -newer REF` and must keep up with GNU find on 100,000
/// files, which is all system calls: each file's metadata is read relative to its open
/// directory (`fstatat` on the directory's descriptor, not a fresh walk of the whole path),
/// and the subdirectories are shared among threads, since the stat calls of different
/// directories do not wait on each other.
fn walk_disk(
    root: &Path,
    dir: &RelPath,
    filter: &WalkFilter,
) -> std::result::Result<Vec<(String, SystemTime)>, (String, io::Error)> {
    use std::sync::{Condvar, Mutex};

    type Found = Vec<(String, SystemTime)>;
    // List one directory: keep its files, return its subdirectories.
    fn list(
        root: &Path,
        rel: &str,
        filter: &WalkFilter,
        found: &mut Found,
    ) -> std::result::Result<Vec<String>, (String, io::Error)> {
        let abs = if rel.is_empty() {
            root.to_path_buf()
        } else {
            root.join(rel)
        };
        let shown = || {
            if rel.is_empty() {
                ".".to_string()
            } else {
                rel.to_string()
            }
        };
        let entries = fs::read_dir(&abs).map_err(|e| (shown(), e))?;
        let mut subdirs = Vec::new();
        for entry in entries {
            let entry = entry.map_err(|e| (shown(), e))?;
            let Ok(name) = entry.file_name().into_string() else {
                continue;
            };
            if rel.is_empty() && name == ".runbook" {
                continue;
            }
            let path = if rel.is_empty() {
                name.clone()
            } else {
                format!("{rel}/{name}")
            };
            let ft = entry.file_type().map_err(|e| (path.clone(), e))?;
            if ft.is_dir() {
                subdirs.push(path);
                continue;
            }
            if !filter.keeps_name(&name) {
                continue;
            }
            let mtime = entry
                .metadata()
                .and_then(|m| m.modified())
                .map_err(|e| (path.clone(), e))?;
            if filter.newer_than.is_none_or(|t| mtime > t) {
                found.push((path, mtime));
            }
        }
        Ok(subdirs)
    }
    // Directories still to list, and how many workers are listing one right now: the walk
    // is over when both are zero.
    struct Queue {
        dirs: Vec<String>,
        busy: usize,
        failed: Option<(String, io::Error)>,
    }
    let queue = Mutex::new(Queue {
        dirs: vec![dir.as_str().to_string()],
        busy: 0,
        failed: None,
    });
    let wake = Condvar::new();
    let threads = std::thread::available_parallelism()
        .map_or(1, |n| n.get())
        .min(4);
    let mut found = Vec::new();
    std::thread::scope(|scope| {
        let workers: Vec<_> = (0..threads)
            .map(|_| {
                scope.spawn(|| {
                    let mut mine = Vec::new();
                    let mut q = queue.lock().expect("walk queue");
                    loop {
                        if q.failed.is_some() {
                            break;
                        }
                        let Some(next) = q.dirs.pop() else {
                            if q.busy == 0 {
                                break;
                            }
                            q = wake.wait(q).expect("walk queue");
                            continue;
                        };
                        q.busy += 1;
                        drop(q);
                        let listed = list(root, &next, filter, &mut mine);
                        q = queue.lock().expect("walk queue");
                        q.busy -= 1;
                        match listed {
                            Ok(subdirs) => q.dirs.extend(subdirs),
                            Err(e) => q.failed = Some(e),
                        }
                        wake.notify_all();
                    }
                    drop(q);
                    mine
                })
            })
            .collect();
        for w in workers {
            found.extend(w.join().expect("a walk worker panicked"));
        }
    });
    if let Some(e) = queue.into_inner().expect("walk queue").failed {
        return Err(e);
    }
    found.sort_unstable_by(|a, b| a.0.cmp(&b.0));
    Ok(found)
}

fn create_parent(abs: &Path, display: &RelPath) -> Result<()> {
    if let Some(parent) = abs.parent() {
        fs::create_dir_all(parent).map_err(|e| {
            Error::io(
                display.parent().map(|p| p.to_string()).unwrap_or_default(),
                "create the directory",
                e,
            )
        })?;
    }
    Ok(())
}

fn temp_sibling(abs: &Path) -> PathBuf {
    let name = abs
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    abs.with_file_name(format!(".{name}.runbook-{}.tmp", std::process::id()))
}

/// Write `bytes` to a temp file next to `abs` and rename it over `abs`; with `sync`, fsync
/// the file before the rename and the directory after it.
pub fn atomic_write(abs: &Path, bytes: &[u8], sync: bool) -> io::Result<()> {
    if let Some(parent) = abs.parent() {
        fs::create_dir_all(parent)?;
    }
    let tmp = temp_sibling(abs);
    let result = (|| {
        let mut f = fs::File::create(&tmp)?;
        f.write_all(bytes)?;
        if let Ok(md) = fs::metadata(abs) {
            f.set_permissions(md.permissions())?;
        }
        if sync {
            f.sync_all()?;
        }
        fs::rename(&tmp, abs)?;
        if let Some(parent) = abs.parent().filter(|_| sync) {
            // Make the rename itself durable.
            if let Ok(d) = fs::File::open(parent) {
                let _ = d.sync_all();
            }
        }
        Ok(())
    })();
    if result.is_err() {
        let _ = fs::remove_file(&tmp);
    }
    result
}

fn copy_file(src: &Path, dst: &Path) -> io::Result<()> {
    fs::copy(src, dst)?;
    // Keep the modification time, as `cp -p` and Python's `copy2` do, so that backups
    // still answer "newer than" questions the way the originals did.
    let mtime = fs::metadata(src)?.modified()?;
    fs::File::options()
        .write(true)
        .open(dst)?
        .set_modified(mtime)
}

fn copy_tree(src: &Path, dst: &Path) -> io::Result<usize> {
    let mut count = 0;
    fs::create_dir_all(dst)?;
    for entry in walkdir::WalkDir::new(src).follow_links(false).min_depth(1) {
        let entry = entry.map_err(|e| {
            e.into_io_error()
                .unwrap_or_else(|| io::Error::other("filesystem loop"))
        })?;
        let rel = entry.path().strip_prefix(src).map_err(io::Error::other)?;
        let target = dst.join(rel);
        let ft = entry.file_type();
        if ft.is_dir() {
            fs::create_dir_all(&target)?;
        } else if ft.is_symlink() {
            // Links are copied as links; following them could pull in files from outside.
            let link = fs::read_link(entry.path())?;
            std::os::unix::fs::symlink(link, &target)?;
        } else {
            copy_file(entry.path(), &target)?;
            count += 1;
        }
    }
    Ok(count)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ws(dry: bool) -> (tempfile::TempDir, Workspace) {
        let dir = tempfile::tempdir().unwrap();
        fs::create_dir_all(dir.path().join("models/archive")).unwrap();
        fs::write(dir.path().join("models/a.json"), "A").unwrap();
        fs::write(dir.path().join("models/archive/old.bin"), "x").unwrap();
        let w = Workspace::open(dir.path(), "run1", dry).unwrap();
        (dir, w)
    }

    #[test]
    fn sandbox_refuses_escapes() {
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
    }

    #[test]
    fn dry_run_overlay_is_seen_by_later_reads_and_disk_is_untouched() {
        let (dir, w) = ws(true);
        let a = w.resolve("models/a.json").unwrap();
        let b = w.resolve("backups/a.json").unwrap();
        w.copy(&a, &b).unwrap();
        w.remove(&a).unwrap();
        w.write(&w.resolve("models/new.txt").unwrap(), b"N")
            .unwrap();
        assert!(!w.exists(&a));
        assert_eq!(&*w.read(&b).unwrap(), b"A");
        let globbed: Vec<_> = w
            .glob("models/*")
            .unwrap()
            .into_iter()
            .map(|p| p.0)
            .collect();
        assert_eq!(globbed, ["models/archive", "models/new.txt"]);
        let arch = w.resolve("models/archive").unwrap();
        w.remove(&arch).unwrap();
        let files: Vec<_> = w
            .walk_files(&w.resolve("models").unwrap())
            .unwrap()
            .into_iter()
            .map(|l| l.path.0)
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
        let a = w.resolve("models/a.json").unwrap();
        let kept = w.write(&a, b"B").unwrap().unwrap();
        assert_eq!(kept.as_str(), ".runbook/trash/run1/models/a.json");
        assert_eq!(
            fs::read_to_string(dir.path().join(kept.as_str())).unwrap(),
            "A"
        );
        let t = w.remove(&a).unwrap();
        assert_eq!(t.as_str(), ".runbook/trash/run1/models/a.json~1");
        assert_eq!(
            fs::read_to_string(dir.path().join(t.as_str())).unwrap(),
            "B"
        );
        assert!(!dir.path().join("models/a.json").exists());
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
        w.simulate_write(&w.resolve("src/new.py").unwrap(), b"N");
        w.remove(&w.resolve("models/archive").unwrap()).unwrap();
        w.keep_in_trash("x.patch", b"P").unwrap();
        let listed: Vec<(String, Option<Vec<u8>>)> = w
            .simulated_files()
            .unwrap()
            .into_iter()
            .map(|(p, c)| {
                let bytes = c.map(|c| c.bytes(&p).unwrap().to_vec());
                (p.0, bytes)
            })
            .collect();
        assert_eq!(
            listed,
            [
                ("models/archive/old.bin".to_string(), None),
                ("src/new.py".to_string(), Some(b"N".to_vec())),
            ]
        );
        let (_dir, w) = ws(false);
        w.write(&w.resolve("models/a.json").unwrap(), b"B").unwrap();
        assert!(w.simulated_files().unwrap().is_empty());
    }

    #[test]
    fn copy_never_overwrites_and_copies_trees() {
        let (dir, w) = ws(false);
        let m = w.resolve("models").unwrap();
        let b = w.resolve("backups/models_1").unwrap();
        assert_eq!(w.copy(&m, &b).unwrap(), 2);
        assert_eq!(
            fs::read_to_string(dir.path().join("backups/models_1/archive/old.bin")).unwrap(),
            "x"
        );
        assert!(w.copy(&m, &b).is_err());
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
        w.remove(&w.resolve("models/archive/old.bin").unwrap())
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
    fn glob_walks_components_and_hides_dot_files() {
        let (dir, w) = ws(false);
        fs::write(dir.path().join("models/.hidden.json"), "h").unwrap();
        fs::write(dir.path().join("models/b.json"), "b").unwrap();
        let names =
            |p: &str| -> Vec<String> { w.glob(p).unwrap().into_iter().map(|r| r.0).collect() };
        assert_eq!(names("models/*.json"), ["models/a.json", "models/b.json"]);
        assert_eq!(names("models/.*.json"), ["models/.hidden.json"]);
        assert_eq!(names("*/archive/*"), ["models/archive/old.bin"]);
        assert_eq!(names("models/a.json"), ["models/a.json"]);
        assert!(names("models/nope/*").is_empty());
        assert_eq!(names("**/old.bin"), ["models/archive/old.bin"]);
        assert!(matches!(w.glob("../*"), Err(Error::Sandbox { .. })));
    }
}
