//! The workspace as a directory handle: how every file of a run is found and opened.
//!
//! The workspace root is opened once ([`Root::open`]) and every later open, create, rename,
//! link and removal is done relative to that descriptor with the `*at` system calls, never
//! by joining strings onto the root's path. Two steps keep a path inside:
//!
//! 1. [`Root::canonical`] resolves a normalised path's symlinks one component at a time
//!    (`fstatat` and `readlinkat` relative to the directory reached so far). A link that
//!    leads out of the workspace, relatively or absolutely, is refused; a link inside is
//!    followed, so `self/.git/config` (with `self -> .`) resolves to `.git/config`, and what
//!    is forbidden is decided on that resolved name, not on the spelling.
//! 2. The operation then opens the canonical path with **no** symlink allowed anywhere on the
//!    way (`openat2` with `RESOLVE_BENEATH | RESOLVE_NO_SYMLINKS | RESOLVE_NO_MAGICLINKS`, or,
//!    where the kernel lacks `openat2`, a walk of `O_NOFOLLOW` opens). The canonical path has
//!    no links, so a directory swapped for a link between the two steps makes the operation
//!    fail instead of landing outside: there is no check-then-use window to win.
//!
//! Final components are created with `O_EXCL | O_NOFOLLOW` (temp files get unpredictable
//! names), renames into place use `RENAME_NOREPLACE` where nothing may be overwritten, and
//! appends refuse a file whose link count says it is also reachable from somewhere else.

use rustix::fd::{AsFd, OwnedFd};
use rustix::fs::{AtFlags, FileType, Mode, OFlags, ResolveFlags, Stat};
use rustix::io::Errno;
use std::collections::VecDeque;
use std::fs::File;
use std::io;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};

use super::path::RelPath;

/// How many symlinks one resolution may follow before it is called a loop (as Linux's 40).
const MAX_LINKS: usize = 40;

/// Set once `openat2` answered ENOSYS: then every open walks components instead.
static NO_OPENAT2: AtomicBool = AtomicBool::new(false);

/// The workspace root: its descriptor, and its canonical absolute path (for messages, for
/// external tools that need a working directory, and to recognise absolute links into it).
pub struct Root {
    fd: OwnedFd,
    path: PathBuf,
    /// Set once `.runbook/` and its `.gitignore` are known to exist (see `own::ensure`):
    /// a run asks three times (lock, run marker, log).
    pub(in crate::effects) own_ready: AtomicBool,
}

impl Root {
    pub fn open(path: &Path) -> io::Result<Root> {
        let path = std::fs::canonicalize(path)?;
        let fd = rustix::fs::open(
            &path,
            OFlags::PATH | OFlags::DIRECTORY | OFlags::CLOEXEC,
            Mode::empty(),
        )?;
        Ok(Root {
            fd,
            path,
            own_ready: AtomicBool::new(false),
        })
    }

    /// The root's absolute path. Only for messages and for the working directory of a
    /// child process; never to build paths that are then opened.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The absolute path of `rel`, for a child process that must be given a file name (an
    /// external predictor's model file). Such a child is outside the sandbox anyway.
    pub fn display_abs(&self, rel: &RelPath) -> PathBuf {
        if rel.is_root() {
            self.path.clone()
        } else {
            self.path.join(rel.as_str())
        }
    }

    /// Resolve the symlinks of `rel` inside the workspace. With `follow_last`, a link in the
    /// last place is followed too (reads, writes); without, it is the link itself that is
    /// named (removal, moves). `Err` carries the reason a path leaves the workspace.
    pub fn canonical(&self, rel: &RelPath, follow_last: bool) -> Result<RelPath, String> {
        let mut pending: VecDeque<String> = rel.components().map(str::to_string).collect();
        let mut resolved: Vec<String> = Vec::new();
        // `fds[i]` is the open directory `resolved[..=i]`; past `fds.len()` the components
        // do not exist (or are not directories) and are kept as spelled.
        let mut fds: Vec<OwnedFd> = Vec::new();
        let mut links = 0;
        while let Some(comp) = pending.pop_front() {
            if comp.is_empty() || comp == "." {
                continue;
            }
            if comp == ".." {
                if resolved.pop().is_none() {
                    return Err("a symlink on the way leads out of the workspace".into());
                }
                fds.truncate(resolved.len().min(fds.len()));
                continue;
            }
            if resolved.len() > fds.len() {
                resolved.push(comp);
                continue;
            }
            let dir = fds.last().map(|f| f.as_fd()).unwrap_or(self.fd.as_fd());
            let last = pending.is_empty();
            let stat = match rustix::fs::statat(dir, comp.as_str(), AtFlags::SYMLINK_NOFOLLOW) {
                Ok(st) => st,
                Err(Errno::NOENT) | Err(Errno::NOTDIR) => {
                    resolved.push(comp);
                    continue;
                }
                Err(e) => return Err(format!("`{comp}` cannot be inspected: {e}")),
            };
            match FileType::from_raw_mode(stat.st_mode) {
                FileType::Symlink if follow_last || !last => {
                    links += 1;
                    let shown = shown_path(&resolved, &comp);
                    if links > MAX_LINKS {
                        return Err(format!("`{shown}` is part of a symlink loop"));
                    }
                    let target = rustix::fs::readlinkat(dir, comp.as_str(), Vec::new())
                        .map_err(|e| format!("`{shown}` cannot be read as a symlink: {e}"))?;
                    let target = target
                        .into_string()
                        .map_err(|_| format!("`{shown}` is a symlink to a non-UTF-8 name"))?;
                    let outside =
                        || format!("`{shown}` is a symlink that points outside the workspace");
                    let rest: Vec<String> = if let Some(abs) = target.strip_prefix('/') {
                        let inside = Path::new("/")
                            .join(abs)
                            .strip_prefix(&self.path)
                            .map(|p| p.to_path_buf())
                            .map_err(|_| outside())?;
                        resolved.clear();
                        fds.clear();
                        inside
                            .to_str()
                            .ok_or_else(outside)?
                            .split('/')
                            .map(str::to_string)
                            .collect()
                    } else {
                        target.split('/').map(str::to_string).collect()
                    };
                    for part in rest.into_iter().rev() {
                        pending.push_front(part);
                    }
                }
                FileType::Directory => {
                    let fd = rustix::fs::openat(
                        dir,
                        comp.as_str(),
                        OFlags::PATH | OFlags::DIRECTORY | OFlags::NOFOLLOW | OFlags::CLOEXEC,
                        Mode::empty(),
                    )
                    .map_err(|e| {
                        format!("`{}` cannot be opened: {e}", shown_path(&resolved, &comp))
                    })?;
                    fds.push(fd);
                    resolved.push(comp);
                }
                _ => {
                    // A file (or, without `follow_last`, a link named as itself): anything
                    // below it cannot exist, so the rest is kept as spelled.
                    resolved.push(comp);
                }
            }
        }
        Ok(RelPath::from_trusted(resolved.join("/")))
    }

    /// Open directory `rel` (canonical: no symlinks on it) as an `O_PATH` handle.
    pub fn dir(&self, rel: &RelPath) -> io::Result<OwnedFd> {
        self.open_beneath(rel, OFlags::PATH | OFlags::DIRECTORY)
    }

    /// Open directory `rel` for listing.
    pub fn dir_for_listing(&self, rel: &RelPath) -> io::Result<OwnedFd> {
        self.open_beneath(rel, OFlags::RDONLY | OFlags::DIRECTORY)
    }

    /// Open `rel` with `flags`, allowing no symlink anywhere on the way (nor at the end).
    fn open_beneath(&self, rel: &RelPath, flags: OFlags) -> io::Result<OwnedFd> {
        let flags = flags | OFlags::CLOEXEC | OFlags::NOFOLLOW;
        let name = if rel.is_root() { "." } else { rel.as_str() };
        if !NO_OPENAT2.load(Ordering::Relaxed) {
            match rustix::fs::openat2(
                &self.fd,
                name,
                flags,
                Mode::empty(),
                ResolveFlags::BENEATH | ResolveFlags::NO_SYMLINKS | ResolveFlags::NO_MAGICLINKS,
            ) {
                Err(Errno::NOSYS) => NO_OPENAT2.store(true, Ordering::Relaxed),
                // `openat2` reports a link on the way as ELOOP, as the walk below does.
                other => return other.map_err(io::Error::from),
            }
        }
        let mut comps: Vec<&str> = rel.components().collect();
        let Some(last) = comps.pop() else {
            return Ok(rustix::fs::openat(&self.fd, ".", flags, Mode::empty())?);
        };
        let mut cur: Option<OwnedFd> = None;
        for comp in comps {
            let at = cur.as_ref().map(|f| f.as_fd()).unwrap_or(self.fd.as_fd());
            let next = rustix::fs::openat(
                at,
                comp,
                OFlags::PATH | OFlags::DIRECTORY | OFlags::NOFOLLOW | OFlags::CLOEXEC,
                Mode::empty(),
            )?;
            cur = Some(next);
        }
        let at = cur.as_ref().map(|f| f.as_fd()).unwrap_or(self.fd.as_fd());
        Ok(rustix::fs::openat(at, last, flags, Mode::empty())?)
    }

    /// The directory holding `rel` and `rel`'s own name. `rel` must not be the root.
    pub fn parent(&self, rel: &RelPath) -> io::Result<(OwnedFd, String)> {
        let parent = rel
            .parent()
            .ok_or_else(|| io::Error::from(io::ErrorKind::InvalidInput))?;
        Ok((self.dir(&parent)?, rel.file_name().to_string()))
    }

    /// Like [`parent`](Self::parent), creating the missing directories on the way.
    pub fn parent_made(&self, rel: &RelPath) -> io::Result<(OwnedFd, String)> {
        let parent = rel
            .parent()
            .ok_or_else(|| io::Error::from(io::ErrorKind::InvalidInput))?;
        Ok((self.make_dirs(&parent)?, rel.file_name().to_string()))
    }

    /// `mkdir -p rel`, relative to the root and without following links; returns the handle.
    pub fn make_dirs(&self, rel: &RelPath) -> io::Result<OwnedFd> {
        match self.dir(rel) {
            Ok(fd) => return Ok(fd),
            Err(e) if e.raw_os_error() == Some(libc::ENOENT) => {}
            Err(e) => return Err(e),
        }
        let mut cur = rustix::fs::openat(
            &self.fd,
            ".",
            OFlags::PATH | OFlags::DIRECTORY | OFlags::CLOEXEC,
            Mode::empty(),
        )?;
        for comp in rel.components() {
            match rustix::fs::mkdirat(&cur, comp, Mode::from_raw_mode(0o777)) {
                Ok(()) | Err(Errno::EXIST) => {}
                Err(e) => return Err(e.into()),
            }
            cur = rustix::fs::openat(
                &cur,
                comp,
                OFlags::PATH | OFlags::DIRECTORY | OFlags::NOFOLLOW | OFlags::CLOEXEC,
                Mode::empty(),
            )?;
        }
        Ok(cur)
    }

    /// `lstat` of `rel`: the metadata of the last component itself, links not followed.
    pub fn lstat(&self, rel: &RelPath) -> io::Result<Stat> {
        if rel.is_root() {
            return Ok(rustix::fs::fstat(&self.fd)?);
        }
        let (dir, name) = self.parent(rel)?;
        Ok(rustix::fs::statat(
            &dir,
            name.as_str(),
            AtFlags::SYMLINK_NOFOLLOW,
        )?)
    }

    /// Open a file for reading. `rel` is canonical, so a link in its place is refused.
    pub fn open_read(&self, rel: &RelPath) -> io::Result<File> {
        Ok(File::from(self.open_beneath(rel, OFlags::RDONLY)?))
    }
}

fn shown_path(resolved: &[String], comp: &str) -> String {
    if resolved.is_empty() {
        comp.to_string()
    } else {
        format!("{}/{comp}", resolved.join("/"))
    }
}

/// What kind of file a `Stat` describes.
pub fn kind(stat: &Stat) -> FileType {
    FileType::from_raw_mode(stat.st_mode)
}

/// A name no other process can guess, for temp files created with `O_EXCL`.
pub fn random_suffix() -> String {
    let mut bytes = [0u8; 8];
    if rustix::rand::getrandom(&mut bytes, rustix::rand::GetRandomFlags::empty()).is_err() {
        // Still unique with `O_EXCL`; only guessable.
        let t = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_nanos() as u64)
            .unwrap_or(0);
        bytes = (t ^ u64::from(std::process::id())).to_le_bytes();
    }
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::symlink;

    fn rel(p: &str) -> RelPath {
        RelPath::normalize(p).unwrap()
    }

    #[test]
    fn canonical_follows_links_inside_and_refuses_links_out() {
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path();
        std::fs::create_dir_all(d.join(".git")).unwrap();
        std::fs::create_dir_all(d.join("models/sub")).unwrap();
        symlink(".", d.join("self")).unwrap();
        symlink(".git", d.join("dotgit")).unwrap();
        symlink("/tmp", d.join("out")).unwrap();
        symlink("../..", d.join("models/up")).unwrap();
        symlink(d.join("models"), d.join("absin")).unwrap();
        symlink("loop", d.join("loop")).unwrap();
        let root = Root::open(d).unwrap();
        assert_eq!(
            root.canonical(&rel("self/.git/config"), true)
                .unwrap()
                .as_str(),
            ".git/config"
        );
        assert_eq!(
            root.canonical(&rel("dotgit/x"), true).unwrap().as_str(),
            ".git/x"
        );
        assert_eq!(
            root.canonical(&rel("absin/sub/f"), true).unwrap().as_str(),
            "models/sub/f"
        );
        assert_eq!(
            root.canonical(&rel("models/missing/f"), true)
                .unwrap()
                .as_str(),
            "models/missing/f"
        );
        assert_eq!(
            root.canonical(&rel("dotgit"), false).unwrap().as_str(),
            "dotgit"
        );
        assert!(root
            .canonical(&rel("out/x"), true)
            .unwrap_err()
            .contains("outside"));
        assert!(root.canonical(&rel("models/up/x"), true).is_err());
        assert!(root
            .canonical(&rel("loop"), true)
            .unwrap_err()
            .contains("loop"));
    }

    #[test]
    fn opening_refuses_a_link_anywhere_on_the_way() {
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path();
        std::fs::create_dir_all(d.join("models")).unwrap();
        std::fs::write(d.join("models/a"), "A").unwrap();
        symlink("models", d.join("m")).unwrap();
        let root = Root::open(d).unwrap();
        assert!(root.open_read(&rel("models/a")).is_ok());
        assert!(root.open_read(&rel("m/a")).is_err());
        let made = root.make_dirs(&rel("x/y/z"));
        assert!(made.is_ok());
        assert!(d.join("x/y/z").is_dir());
        assert!(root.make_dirs(&rel("m/new")).is_err());
        assert!(!d.join("models/new").exists());
    }
}
