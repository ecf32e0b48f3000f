//! runbook's own files in a workspace: `.runbook/` with the lock, the run logs (`runs/`),
//! the trash (`trash/`) and the scratch area (`tmp/`).
//!
//! They are opened like every other file, relative to the workspace's directory handle with
//! no link followed, and a run refuses to start when `.runbook` or one of its entries is a
//! symlink: a planted `.runbook/lock -> /etc/x` or `.runbook/trash -> /tmp/x` would otherwise
//! make runbook itself write outside the workspace. Scripts cannot reach any of this: the door
//! refuses script paths that resolve into `.runbook/`.

use super::disk;
use super::path::RelPath;
use super::sandbox::{kind, Root};
use crate::error::{Error, Result};
use rustix::fs::{FileType, FlockOperation, Mode, OFlags};
use std::fs::File;
use std::io::{Read, Write};

pub const DIR: &str = ".runbook";
const ENTRIES_CHECKED: &[&str] = &["runs", "trash", "tmp", "active"];

fn rel(path: &str) -> RelPath {
    RelPath::from_trusted(path.to_string())
}

/// Refuse a `.runbook` that is a link, or that holds links where runbook writes.
pub fn check(root: &Root) -> Result<()> {
    let refuse = |what: &str| {
        Error::sandbox(
            what,
            "it is a symlink, and runbook writes its logs, lock and trash there; remove the link (runbook never follows links for its own files)",
        )
    };
    match root.lstat(&rel(DIR)) {
        Err(_) => return Ok(()),
        Ok(st) if kind(&st) == FileType::Symlink => return Err(refuse(DIR)),
        Ok(st) if kind(&st) != FileType::Directory => {
            return Err(Error::invalid(
                format!("`{DIR}`"),
                "is not a directory; move it away so runbook can keep its logs there",
            ))
        }
        Ok(_) => {}
    }
    let listed = disk::list(root, &rel(DIR)).map_err(|e| Error::io(DIR, "list", e))?;
    for (name, ft) in &listed {
        let path = format!("{DIR}/{name}");
        if *ft == FileType::Symlink {
            return Err(refuse(&path));
        }
        if *ft == FileType::Directory && ENTRIES_CHECKED.contains(&name.as_str()) {
            let inner =
                disk::list(root, &rel(&path)).map_err(|e| Error::io(path.clone(), "list", e))?;
            if let Some((n, _)) = inner.iter().find(|(_, t)| *t == FileType::Symlink) {
                return Err(refuse(&format!("{path}/{n}")));
            }
        }
    }
    Ok(())
}

/// Make `.runbook/` (and its `.gitignore`, so git never sees logs and trash: otherwise
/// `git add -A` would commit them and a dry run would make the tree look dirty). The links
/// check ([`check`]) runs once, when a run or a command opens the workspace; every open
/// here is `O_NOFOLLOW` anyway, so a link planted since makes it fail, not escape.
pub fn ensure(root: &Root) -> Result<()> {
    if root.own_ready.load(std::sync::atomic::Ordering::Relaxed) {
        return Ok(());
    }
    ensure_now(root)?;
    root.own_ready
        .store(true, std::sync::atomic::Ordering::Relaxed);
    Ok(())
}

fn ensure_now(root: &Root) -> Result<()> {
    let dir = root
        .make_dirs(&rel(DIR))
        .map_err(|e| Error::io(DIR, "create the directory", e))?;
    match rustix::fs::openat(
        &dir,
        ".gitignore",
        OFlags::WRONLY | OFlags::CREATE | OFlags::EXCL | OFlags::NOFOLLOW | OFlags::CLOEXEC,
        Mode::from_raw_mode(0o644),
    ) {
        Ok(fd) => File::from(fd)
            .write_all(b"# Written by runbook: run logs and trash stay out of git.\n*\n")
            .map_err(|e| Error::io(".runbook/.gitignore", "write", e)),
        Err(rustix::io::Errno::EXIST) => Ok(()),
        Err(e) => Err(Error::io(".runbook/.gitignore", "write", e.into())),
    }
}

/// Held while a real run may change the workspace.
pub struct WorkspaceLock {
    _file: File,
}

/// Take the workspace for a run that changes it (an `flock` on `.runbook/lock`, which goes
/// away with the process however it ends, so no stale lock can block an incident). A second
/// real run is refused, naming the first.
pub fn lock(root: &Root, run_id: &str) -> Result<WorkspaceLock> {
    ensure(root)?;
    let dir = root.dir(&rel(DIR)).map_err(|e| Error::io(DIR, "open", e))?;
    let fd = rustix::fs::openat(
        &dir,
        "lock",
        OFlags::RDWR | OFlags::CREATE | OFlags::NOFOLLOW | OFlags::CLOEXEC,
        Mode::from_raw_mode(0o644),
    )
    .map_err(|e| Error::io(".runbook/lock", "open", e.into()))?;
    let mut file = File::from(fd);
    if rustix::fs::flock(&file, FlockOperation::NonBlockingLockExclusive).is_err() {
        // The holder writes its details right after it takes the lock: wait a moment for
        // them rather than report an empty holder.
        let mut holder = String::new();
        for _ in 0..50 {
            holder.clear();
            let _ = rustix::fs::seek(&file, rustix::fs::SeekFrom::Start(0));
            let _ = file.read_to_string(&mut holder);
            if holder.trim().ends_with(')') || holder.contains(" by pid ") {
                break;
            }
            std::thread::sleep(std::time::Duration::from_millis(10));
        }
        let holder = if holder.trim().is_empty() {
            "a run that has not said who it is yet".to_string()
        } else {
            holder.trim().to_string()
        };
        return Err(Error::invalid(
            format!("workspace `{}`", root.path().display()),
            format!("another run is changing it ({holder}); wait for it to finish (a dry run can go ahead)"),
        ));
    }
    let _ = file.set_len(0);
    let _ = writeln!(file, "run {run_id} by pid {}", std::process::id());
    Ok(WorkspaceLock { _file: file })
}

/// Create this run's log file, `.runbook/runs/<run-id>.jsonl` (never an existing one), or
/// with `append` open an existing one to go on writing it.
pub fn create_log(root: &Root, run_id: &str, append: bool) -> Result<(File, std::path::PathBuf)> {
    ensure(root)?;
    let dir_rel = rel(".runbook/runs");
    let dir = root
        .make_dirs(&dir_rel)
        .map_err(|e| Error::io(".runbook/runs", "create the run log directory", e))?;
    let name = format!("{run_id}.jsonl");
    let flags = if append {
        OFlags::WRONLY | OFlags::APPEND | OFlags::NOFOLLOW | OFlags::CLOEXEC
    } else {
        OFlags::WRONLY | OFlags::CREATE | OFlags::EXCL | OFlags::NOFOLLOW | OFlags::CLOEXEC
    };
    let fd = rustix::fs::openat(&dir, name.as_str(), flags, Mode::from_raw_mode(0o644)).map_err(
        |e| {
            Error::io(
                format!(".runbook/runs/{name}"),
                "create the run log",
                e.into(),
            )
        },
    )?;
    Ok((File::from(fd), root.display_abs(&dir_rel.join(&name))))
}

/// The marker of a real run under way: `.runbook/active/<run-id>`, made when the run
/// starts and removed when it ends, however it ends, unless the process dies. A marker
/// that outlives its run (the lock is free) names a run that was killed.
pub fn mark_active(root: &Root, run_id: &str, about: &serde_json::Value, sync: bool) -> Result<()> {
    ensure(root)?;
    let dir = root
        .make_dirs(&rel(".runbook/active"))
        .map_err(|e| Error::io(".runbook/active", "create the directory", e))?;
    let fd = rustix::fs::openat(
        &dir,
        run_id,
        OFlags::WRONLY | OFlags::CREATE | OFlags::TRUNC | OFlags::NOFOLLOW | OFlags::CLOEXEC,
        Mode::from_raw_mode(0o644),
    )
    .map_err(|e| Error::io(format!(".runbook/active/{run_id}"), "create", e.into()))?;
    let mut f = File::from(fd);
    f.write_all(about.to_string().as_bytes())
        .and_then(|_| if sync { f.sync_data() } else { Ok(()) })
        .map_err(|e| Error::io(format!(".runbook/active/{run_id}"), "write", e))?;
    // Durable at once only under `--sync each`; otherwise with the run's other changes.
    if sync {
        let _ = disk::sync_dir(rustix::fd::AsFd::as_fd(&dir));
    }
    Ok(())
}

pub fn clear_active(root: &Root, run_id: &str) {
    if let Ok(dir) = root.dir(&rel(".runbook/active")) {
        let _ = rustix::fs::unlinkat(&dir, run_id, rustix::fs::AtFlags::empty());
    }
}

/// The runs whose marker is still there: killed, or (without the lock) still running.
pub fn active_runs(root: &Root) -> Vec<String> {
    let mut ids: Vec<String> = disk::list(root, &rel(".runbook/active"))
        .unwrap_or_default()
        .into_iter()
        .filter(|(_, ft)| *ft == FileType::RegularFile)
        .map(|(n, _)| n)
        .collect();
    ids.sort();
    ids
}

/// Keep a file runbook fetched for itself (a registry server's model artifact) as
/// `.runbook/tmp/<rel>`, written atomically, in real and dry runs alike: like the scratch
/// directory it is runbook's own, outside what scripts may change, but it outlives the run,
/// so what is immutable (an MLflow model version's artifact) is fetched once. `rel` must be a
/// plain relative path (no `..`). Returns the file's workspace path.
pub fn keep_fetched(root: &Root, rel_path: &str, bytes: &[u8]) -> Result<RelPath> {
    ensure(root)?;
    let inner = RelPath::normalize(rel_path)?;
    if inner.as_str().is_empty() || inner.as_str().split('/').any(|c| c == "..") {
        return Err(Error::sandbox(
            rel_path,
            "a fetched file must stay under `.runbook/tmp/`",
        ));
    }
    let file = rel(&format!("{DIR}/tmp/{inner}"));
    let parent = file.parent().unwrap_or_default();
    root.make_dirs(&parent)
        .map_err(|e| Error::io(parent.to_string(), "create the directory", e))?;
    disk::atomic_write(root, &file, &[bytes], false, |_| {})
        .map_err(|e| Error::io(file.to_string(), "write", e))?;
    Ok(file)
}

/// A run's scratch directory, `.runbook/tmp/<run-id>/`: made on first use, removed with
/// everything in it on drop. It exists on disk even in a dry run (an external predictor
/// needs a real file to read), and it is runbook's own, outside what scripts can reach.
pub struct Scratch<'a> {
    root: &'a Root,
    rel: RelPath,
}

impl<'a> Scratch<'a> {
    pub fn create(root: &'a Root, run_id: &str) -> Result<Scratch<'a>> {
        ensure(root)?;
        let rel = rel(&format!(".runbook/tmp/{run_id}"));
        root.make_dirs(&rel)
            .map_err(|e| Error::io(rel.to_string(), "create the scratch directory", e))?;
        Ok(Scratch { root, rel })
    }

    pub fn abs(&self) -> std::path::PathBuf {
        self.root.display_abs(&self.rel)
    }

    /// Write `bytes` as file `name` in the scratch directory; returns its absolute path.
    pub fn write(&self, name: &str, bytes: &[u8]) -> Result<std::path::PathBuf> {
        let file = self.rel.join(name);
        disk::atomic_write(self.root, &file, &[bytes], false, |_| {})
            .map_err(|e| Error::io(file.to_string(), "write", e))?;
        Ok(self.root.display_abs(&file))
    }
}

impl Drop for Scratch<'_> {
    fn drop(&mut self) {
        let _ = disk::remove_tree(self.root, &self.rel);
        // `.runbook/tmp` itself goes too unless another run is using it.
        if let Ok(dir) = self.root.dir(&rel(DIR)) {
            let _ = rustix::fs::unlinkat(&dir, "tmp", rustix::fs::AtFlags::REMOVEDIR);
        }
    }
}
