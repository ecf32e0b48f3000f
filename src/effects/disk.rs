//! Disk operations of the effect layer, all relative to the workspace's directory handle
//! ([`Root`]): atomic writes, appends, moves that never overwrite, copies of files and trees,
//! directory listings, the parallel walk behind `fs::newer`, and glob matching.
//!
//! Nothing here follows a symlink: paths come in canonical (see `sandbox.rs`), every open
//! uses `O_NOFOLLOW`, walks and globs list links but never descend through them, and copies
//! copy a link as a link. Nothing here decides *whether* to change something, either: that
//! is the door's job (`mod.rs`), which calls in here only in a real run.

use super::names::Names;
use super::path::RelPath;
use super::sandbox::{kind, random_suffix, Root};
use rustix::fd::{AsFd, BorrowedFd, OwnedFd};
use rustix::fs::{AtFlags, FileType, Mode, OFlags, RenameFlags, Timestamps};
use rustix::io::Errno;
use std::fs::File;
use std::io::{self, Read, Write};
use std::time::SystemTime;

/// The marker in the names of runbook's temp files: `.<name>.runbook-<random>.tmp`. A run
/// that finds such a file left by a dead run knows it is runbook's own.
pub const TEMP_MARK: &str = ".runbook-";

pub fn temp_name(name: &str) -> String {
    format!(".{name}{TEMP_MARK}{}.tmp", random_suffix())
}

/// Whether `name` is one of runbook's temp files (see [`temp_name`]).
pub fn is_temp_name(name: &str) -> bool {
    name.starts_with('.') && name.ends_with(".tmp") && name.contains(TEMP_MARK)
}

fn create_excl(dir: BorrowedFd, name: &str, mode: u32) -> io::Result<File> {
    let fd = rustix::fs::openat(
        dir,
        name,
        OFlags::WRONLY | OFlags::CREATE | OFlags::EXCL | OFlags::NOFOLLOW | OFlags::CLOEXEC,
        Mode::from_raw_mode(mode),
    )?;
    Ok(File::from(fd))
}

/// Start writing a file's dirty pages back, without waiting (`sync_file_range` with
/// `SYNC_FILE_RANGE_WRITE`): a later fsync then only waits. Not durable by itself (no
/// metadata, no cache flush), so it only ever comes before an fsync; failure is harmless.
pub fn start_writeback(file: &std::fs::File) {
    use std::os::fd::AsRawFd;
    // SAFETY: a plain syscall on a descriptor `file` owns for the duration of the call.
    unsafe {
        libc::sync_file_range(file.as_raw_fd(), 0, 0, libc::SYNC_FILE_RANGE_WRITE);
    }
}

/// A file at least this big that the run wrote has its writeback started as soon as it is
/// whole, so the disk works while the run goes on and the fsync at the end of the run only
/// waits for what is left: a 15 MB registry and its backup took 13 ms of fsync at the end
/// of a 50,000-version rollback. Smaller files are left to that fsync (one syscall fewer
/// each, and their write is quick).
const EARLY_WRITEBACK: u64 = 1 << 20;

/// Start the writeback of `file` now when it is big (see [`EARLY_WRITEBACK`]).
fn start_writeback_if_big(file: &File, len: u64) {
    if len >= EARLY_WRITEBACK {
        start_writeback(file);
    }
}

/// fsync a directory given by an `O_PATH` handle (fsync needs a readable descriptor).
pub fn sync_dir(dir: BorrowedFd) -> io::Result<()> {
    let fd = rustix::fs::openat(
        dir,
        ".",
        OFlags::RDONLY | OFlags::DIRECTORY | OFlags::CLOEXEC,
        Mode::empty(),
    )?;
    rustix::fs::fsync(&fd)?;
    Ok(())
}

/// Write `bytes` to a fresh temp file beside `rel` (created with `O_EXCL`, an unguessable
/// name) and rename it over `rel`, keeping an existing file's permission bits. With `sync`,
/// the file is fsynced before the rename and the directory after it.
pub fn atomic_write(
    root: &Root,
    rel: &RelPath,
    pieces: &[&[u8]],
    sync: bool,
    before_rename: impl FnOnce(&rustix::fs::Stat),
) -> io::Result<()> {
    let (dir, name) = root.parent_made(rel)?;
    let tmp = temp_name(&name);
    let mut file = create_excl(dir.as_fd(), &tmp, 0o666)?;
    let result = (|| {
        write_all_pieces(&mut file, pieces)?;
        match rustix::fs::statat(&dir, name.as_str(), AtFlags::SYMLINK_NOFOLLOW) {
            Ok(st) if kind(&st) == FileType::RegularFile => {
                rustix::fs::fchmod(&file, Mode::from_raw_mode(st.st_mode & 0o7777))?;
            }
            Ok(st) if kind(&st) == FileType::Directory => {
                return Err(io::Error::other("it is a directory"));
            }
            _ => {}
        }
        if sync {
            file.sync_all()?;
        } else {
            start_writeback_if_big(&file, pieces.iter().map(|p| p.len() as u64).sum());
        }
        // The new file's inode (and size and time, which a copy of the workspace keeps) tell,
        // after a crash, whether this rename happened.
        before_rename(&rustix::fs::fstat(&file)?);
        rustix::fs::renameat(&dir, tmp.as_str(), &dir, name.as_str())?;
        if sync {
            sync_dir(dir.as_fd())?;
        }
        Ok(())
    })();
    if result.is_err() {
        let _ = rustix::fs::unlinkat(&dir, tmp.as_str(), AtFlags::empty());
    }
    result
}

/// Write every piece, in order, with as few `writev` calls as the kernel allows.
fn write_all_pieces(file: &mut File, pieces: &[&[u8]]) -> io::Result<()> {
    let mut slices: Vec<io::IoSlice> = pieces
        .iter()
        .filter(|p| !p.is_empty())
        .map(|p| io::IoSlice::new(p))
        .collect();
    let mut left = &mut slices[..];
    while !left.is_empty() {
        match file.write_vectored(left) {
            Ok(0) => return Err(io::ErrorKind::WriteZero.into()),
            Ok(n) => io::IoSlice::advance_slices(&mut left, n),
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(())
}

/// Append `bytes` to `rel` (creating it) in one write, so concurrent records stay whole.
/// Refuses a file with more than one hard link: appending through it would also change the
/// other name, which may be outside the workspace.
pub fn append(root: &Root, rel: &RelPath, bytes: &[u8], sync: bool) -> io::Result<()> {
    let (dir, name) = root.parent_made(rel)?;
    let fd = rustix::fs::openat(
        &dir,
        name.as_str(),
        OFlags::WRONLY | OFlags::APPEND | OFlags::CREATE | OFlags::NOFOLLOW | OFlags::CLOEXEC,
        Mode::from_raw_mode(0o666),
    )?;
    let st = rustix::fs::fstat(&fd)?;
    if kind(&st) != FileType::RegularFile {
        return Err(io::Error::other("it is not a regular file"));
    }
    if st.st_nlink > 1 {
        return Err(io::Error::other(format!(
            "it has {} hard links, so appending would also change another file (perhaps outside the workspace); replace it with a copy (`cp {name} {name}.new && mv {name}.new {name}`)",
            st.st_nlink
        )));
    }
    let mut file = File::from(fd);
    file.write_all(bytes)?;
    if sync {
        file.sync_data()?;
    }
    Ok(())
}

/// Keep the current content of `rel` at `kept` (a new name in the trash): a hard link when
/// possible (no bytes copied; the caller then renames the new content over `rel`), a copy
/// otherwise. Returns whether it copied (a copy's data is new and must be flushed).
pub fn keep_old(root: &Root, rel: &RelPath, kept: &RelPath) -> io::Result<bool> {
    let (src_dir, src_name) = root.parent(rel)?;
    let (dst_dir, dst_name) = root.parent_made(kept)?;
    match rustix::fs::linkat(
        &src_dir,
        src_name.as_str(),
        &dst_dir,
        dst_name.as_str(),
        AtFlags::empty(),
    ) {
        Ok(()) => Ok(false),
        Err(Errno::EXIST) => Err(io::Error::from(io::ErrorKind::AlreadyExists)),
        Err(_) => {
            copy_file_at(src_dir.as_fd(), &src_name, dst_dir.as_fd(), &dst_name).map(|_| true)
        }
    }
}

/// Move `src` to `dst` (both canonical, `dst`'s parents made), never replacing what is there.
pub fn move_noreplace(root: &Root, src: &RelPath, dst: &RelPath) -> io::Result<()> {
    let (src_dir, src_name) = root.parent(src)?;
    let (dst_dir, dst_name) = root.parent_made(dst)?;
    rustix::fs::renameat_with(
        &src_dir,
        src_name.as_str(),
        &dst_dir,
        dst_name.as_str(),
        RenameFlags::NOREPLACE,
    )?;
    Ok(())
}

/// Copy one file, keeping its permission bits and modification time (as `cp -p` and
/// Python's `copy2` do, so a backup still answers "newer than" questions as the original).
fn copy_file_at(src_dir: BorrowedFd, src: &str, dst_dir: BorrowedFd, dst: &str) -> io::Result<()> {
    let mut from = File::from(rustix::fs::openat(
        src_dir,
        src,
        OFlags::RDONLY | OFlags::NOFOLLOW | OFlags::CLOEXEC,
        Mode::empty(),
    )?);
    let st = rustix::fs::fstat(&from)?;
    let mut to = create_excl(dst_dir, dst, 0o600)?;
    let copied = (|| {
        let len = io::copy(&mut from, &mut to)?;
        start_writeback_if_big(&to, len);
        rustix::fs::fchmod(&to, Mode::from_raw_mode(st.st_mode & 0o7777))?;
        let times = Timestamps {
            last_access: rustix::fs::Timespec {
                tv_sec: st.st_atime as _,
                tv_nsec: st.st_atime_nsec as _,
            },
            last_modification: rustix::fs::Timespec {
                tv_sec: st.st_mtime as _,
                tv_nsec: st.st_mtime_nsec as _,
            },
        };
        rustix::fs::futimens(&to, &times)?;
        Ok(())
    })();
    if copied.is_err() {
        let _ = rustix::fs::unlinkat(dst_dir, dst, AtFlags::empty());
    }
    copied
}

/// Copy a file or a directory tree from `src` to `dst`. The copy is made under a temp name
/// beside `dst` and renamed into place without replacing anything, so `dst` appears whole
/// or not at all. Returns the number of files copied (links count as files); `made` gets
/// what must be flushed for the copy to survive a power cut: each regular file and
/// directory written, by its path below `dst` (`""` for `dst` itself), `true` for a file.
pub fn copy(
    root: &Root,
    src: &RelPath,
    dst: &RelPath,
    made: &mut Vec<(String, bool)>,
) -> io::Result<usize> {
    let (src_dir, src_name) = root.parent(src)?;
    let (dst_dir, dst_name) = root.parent_made(dst)?;
    let st = rustix::fs::statat(&src_dir, src_name.as_str(), AtFlags::SYMLINK_NOFOLLOW)?;
    let tmp = temp_name(&dst_name);
    let result = match kind(&st) {
        FileType::Directory => {
            rustix::fs::mkdirat(&dst_dir, tmp.as_str(), Mode::from_raw_mode(0o700))?;
            let made = (|| {
                let from = open_dir(src_dir.as_fd(), &src_name)?;
                let to = open_path_dir(dst_dir.as_fd(), &tmp)?;
                let n = copy_tree(from.as_fd(), to.as_fd(), "", made)?;
                made.push((String::new(), false));
                rustix::fs::fchmod(
                    &open_dir(dst_dir.as_fd(), &tmp)?,
                    Mode::from_raw_mode(st.st_mode & 0o7777),
                )?;
                Ok(n)
            })();
            made
        }
        FileType::Symlink => {
            let target = rustix::fs::readlinkat(&src_dir, src_name.as_str(), Vec::new())?;
            rustix::fs::symlinkat(target.as_c_str(), &dst_dir, tmp.as_str())?;
            Ok(1)
        }
        _ => copy_file_at(src_dir.as_fd(), &src_name, dst_dir.as_fd(), &tmp).map(|_| {
            made.push((String::new(), true));
            1
        }),
    };
    let result = result.and_then(|n| {
        rustix::fs::renameat_with(
            &dst_dir,
            tmp.as_str(),
            &dst_dir,
            dst_name.as_str(),
            RenameFlags::NOREPLACE,
        )?;
        Ok(n)
    });
    if result.is_err() {
        let _ = remove_tree_at(dst_dir.as_fd(), &tmp);
    }
    result
}

fn open_dir(at: BorrowedFd, name: &str) -> io::Result<OwnedFd> {
    Ok(rustix::fs::openat(
        at,
        name,
        OFlags::RDONLY | OFlags::DIRECTORY | OFlags::NOFOLLOW | OFlags::CLOEXEC,
        Mode::empty(),
    )?)
}

fn open_path_dir(at: BorrowedFd, name: &str) -> io::Result<OwnedFd> {
    Ok(rustix::fs::openat(
        at,
        name,
        OFlags::PATH | OFlags::DIRECTORY | OFlags::NOFOLLOW | OFlags::CLOEXEC,
        Mode::empty(),
    )?)
}

/// The entries of an open directory: name and type (links reported as links).
fn entries(dir: BorrowedFd) -> io::Result<Vec<(String, FileType)>> {
    let mut out = Vec::new();
    each_entry(dir, |name, ft| out.push((name.to_string(), ft)))?;
    Ok(out)
}

/// Call `f` with each entry of an open directory as [`listed_entry`] reports it.
fn each_entry(dir: BorrowedFd, mut f: impl FnMut(&str, FileType)) -> io::Result<()> {
    for entry in rustix::fs::Dir::read_from(dir)? {
        let entry = entry?;
        if let Some((name, ft)) = listed_entry(dir, entry.file_name(), entry.file_type())? {
            f(name, ft);
        }
    }
    Ok(())
}

/// An entry of directory `dir` as listings report it: `None` for `.`, `..` and names that
/// are not UTF-8; its type read with `fstatat` only where the directory does not say it.
pub(super) fn listed_entry<'n>(
    dir: BorrowedFd,
    name: &'n std::ffi::CStr,
    ft: FileType,
) -> io::Result<Option<(&'n str, FileType)>> {
    let Ok(name) = name.to_str() else {
        return Ok(None);
    };
    if name == "." || name == ".." {
        return Ok(None);
    }
    if ft == FileType::Unknown {
        let st = rustix::fs::statat(dir, name, AtFlags::SYMLINK_NOFOLLOW)?;
        return Ok(Some((name, kind(&st))));
    }
    Ok(Some((name, ft)))
}

/// Copy the entries of `from` into `to`; `rel` is `to`'s path below the copy's top, and
/// `made` gets the path of every file and directory written (see [`copy`]).
fn copy_tree(
    from: BorrowedFd,
    to: BorrowedFd,
    rel: &str,
    made: &mut Vec<(String, bool)>,
) -> io::Result<usize> {
    let below = |name: &str| {
        if rel.is_empty() {
            name.to_string()
        } else {
            format!("{rel}/{name}")
        }
    };
    let mut count = 0;
    for (name, ft) in entries(from)? {
        match ft {
            FileType::Directory => {
                let st = rustix::fs::statat(from, name.as_str(), AtFlags::SYMLINK_NOFOLLOW)?;
                rustix::fs::mkdirat(
                    to,
                    name.as_str(),
                    Mode::from_raw_mode(st.st_mode & 0o7777 | 0o700),
                )?;
                let sub_from = open_dir(from, &name)?;
                let sub_to = open_path_dir(to, &name)?;
                let path = below(&name);
                count += copy_tree(sub_from.as_fd(), sub_to.as_fd(), &path, made)?;
                made.push((path, false));
            }
            FileType::Symlink => {
                // Links are copied as links; following them could pull in files from outside.
                let target = rustix::fs::readlinkat(from, name.as_str(), Vec::new())?;
                rustix::fs::symlinkat(target.as_c_str(), to, name.as_str())?;
                count += 1;
            }
            FileType::RegularFile => {
                copy_file_at(from, &name, to, &name)?;
                made.push((below(&name), true));
                count += 1;
            }
            // Sockets, fifos and devices are not data a backup should hold.
            _ => {}
        }
    }
    Ok(count)
}

/// Make `rel` and its parents; `Ok(false)` when it already was a directory.
pub fn mkdir_all(root: &Root, rel: &RelPath) -> io::Result<bool> {
    if root.dir(rel).is_ok() {
        return Ok(false);
    }
    root.make_dirs(rel)?;
    Ok(true)
}

/// The names and types in directory `rel`.
pub fn list(root: &Root, rel: &RelPath) -> io::Result<Vec<(String, FileType)>> {
    let dir = root.dir_for_listing(rel)?;
    entries(dir.as_fd())
}

/// Remove a file or a whole tree for good. Only for runbook's own temp files and for
/// `runbook trash purge`; scripts never destroy anything.
pub fn remove_tree(root: &Root, rel: &RelPath) -> io::Result<()> {
    let (dir, name) = root.parent(rel)?;
    remove_tree_at(dir.as_fd(), &name)
}

fn remove_tree_at(dir: BorrowedFd, name: &str) -> io::Result<()> {
    match rustix::fs::unlinkat(dir, name, AtFlags::empty()) {
        Ok(()) => return Ok(()),
        Err(Errno::ISDIR) | Err(Errno::PERM) => {}
        Err(Errno::NOENT) => return Ok(()),
        Err(e) => return Err(e.into()),
    }
    let sub = open_dir(dir, name)?;
    for (child, _) in entries(sub.as_fd())? {
        remove_tree_at(sub.as_fd(), &child)?;
    }
    rustix::fs::unlinkat(dir, name, AtFlags::REMOVEDIR)?;
    Ok(())
}

/// A zeroed shared buffer of `len` bytes for its one owner to fill: an exact-size iterator
/// makes the `Rc` in one allocation of exactly `len` bytes.
fn new_shared(len: usize) -> std::rc::Rc<[u8]> {
    std::iter::repeat_n(0u8, len).collect()
}

/// The pieces one after another in one shared buffer, copied once (`concat` and then
/// `Rc::from` would copy a 15 MB registry twice, into two fresh buffers).
pub fn joined(pieces: &[&[u8]]) -> std::rc::Rc<[u8]> {
    let mut buf = new_shared(pieces.iter().map(|p| p.len()).sum());
    let slot = std::rc::Rc::get_mut(&mut buf).expect("a new buffer has one owner");
    let mut at = 0;
    for p in pieces {
        slot[at..at + p.len()].copy_from_slice(p);
        at += p.len();
    }
    buf
}

/// Read the rest of an open file of `size` bytes (its length when opened) into shared
/// memory, in one allocation and one copy: a 15 MB registry read into a `Vec` and then
/// moved into an `Rc<[u8]>` would be copied (and its pages faulted in) twice. The caller
/// refuses sizes too large to hold first.
pub fn read_shared(mut file: File, size: u64) -> io::Result<std::rc::Rc<[u8]>> {
    let size = usize::try_from(size).map_err(|_| io::Error::from(io::ErrorKind::OutOfMemory))?;
    let mut buf = new_shared(size);
    let slot = std::rc::Rc::get_mut(&mut buf).expect("a new buffer has one owner");
    let mut filled = 0;
    while filled < slot.len() {
        match file.read(&mut slot[filled..]) {
            Ok(0) => break,
            Ok(n) => filled += n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    // The file shrank or grew while it was read: fall back to reading what it holds now.
    let mut more = [0u8; 1];
    let grew = filled == slot.len() && file.read(&mut more)? > 0;
    if filled < slot.len() || grew {
        let mut out = slot[..filled].to_vec();
        if grew {
            out.push(more[0]);
            file.read_to_end(&mut out)?;
        }
        return Ok(std::rc::Rc::from(out));
    }
    Ok(buf)
}

/// Read a whole file.
pub fn read(root: &Root, rel: &RelPath) -> io::Result<Vec<u8>> {
    let mut file = root.open_read(rel)?;
    let mut out = Vec::new();
    file.read_to_end(&mut out)?;
    Ok(out)
}

/// Which files a walk keeps: by file name (a glob such as `*.pkl`), and by modification
/// time (strictly newer than, as `find -newer`).
#[derive(Default)]
pub struct WalkFilter {
    pub name: Option<glob::Pattern>,
    pub newer_than: Option<SystemTime>,
}

impl WalkFilter {
    pub(in crate::effects) fn keeps_name(&self, name: &str) -> bool {
        self.name.as_ref().is_none_or(|p| p.matches(name))
    }

    pub(in crate::effects) fn keeps(&self, name: &str, mtime: SystemTime) -> bool {
        self.keeps_name(name) && self.newer_than.is_none_or(|t| mtime > t)
    }
}

pub fn mtime_of(st: &rustix::fs::Stat) -> SystemTime {
    let secs = st.st_mtime;
    let nanos = st.st_mtime_nsec as u32;
    if secs >= 0 {
        SystemTime::UNIX_EPOCH + std::time::Duration::new(secs as u64, nanos)
    } else {
        SystemTime::UNIX_EPOCH - std::time::Duration::from_secs(secs.unsigned_abs())
            + std::time::Duration::from_nanos(u64::from(nanos))
    }
}

/// How many threads a walk should use: one per core that is not already busy (from the
/// 1-minute load average), at most four. On a 2-core machine with the other core busy
/// a second walker only contends for the one free core (measured: slower than one).
fn walk_threads() -> usize {
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    let load = std::fs::read_to_string("/proc/loadavg")
        .ok()
        .and_then(|t| t.split_whitespace().next()?.parse::<f64>().ok())
        .unwrap_or(0.0);
    let free = (cores as f64 - load).round().max(1.0) as usize;
    free.min(cores).clamp(1, 4)
}

/// The files below `dir` that `filter` keeps, with their modification times, sorted by path.
/// Symlinks are listed (as files), never followed; `.runbook/` at the root is skipped.
///
/// This is the plan's `find models/ -newer REF` and must keep up with GNU find on 100,000
/// files, which is all system calls: each directory is opened relative to its parent's
/// descriptor, each file's metadata is read with `fstatat` on its directory's descriptor, and
/// the directories are shared among the threads [`walk_threads`] picks.
pub fn walk(
    root: &Root,
    dir: &RelPath,
    filter: &WalkFilter,
) -> Result<Vec<(RelPath, SystemTime)>, (String, io::Error)> {
    use std::sync::{Arc, Condvar, Mutex};

    type Found = Vec<(String, SystemTime)>;
    /// A directory still to list: its open handle and its path.
    type Pending = (Arc<OwnedFd>, String);
    struct Queue {
        dirs: Vec<Pending>,
        busy: usize,
        failed: Option<(String, io::Error)>,
    }
    let shown = |rel: &str| {
        if rel.is_empty() {
            ".".to_string()
        } else {
            rel.to_string()
        }
    };
    let top = root
        .dir_for_listing(dir)
        .map_err(|e| (shown(dir.as_str()), e))?;
    fn list_one(
        fd: &OwnedFd,
        rel: &str,
        filter: &WalkFilter,
        found: &mut Found,
    ) -> Result<Vec<Pending>, (String, io::Error)> {
        let here = |e: io::Error| {
            (
                if rel.is_empty() {
                    ".".to_string()
                } else {
                    rel.to_string()
                },
                e,
            )
        };
        let mut subdirs = Vec::new();
        for (name, ft) in entries(fd.as_fd()).map_err(here)? {
            if rel.is_empty() && name == ".runbook" {
                continue;
            }
            let path = if rel.is_empty() {
                name.clone()
            } else {
                format!("{rel}/{name}")
            };
            if ft == FileType::Directory {
                let sub = open_dir(fd.as_fd(), &name).map_err(|e| (path.clone(), e))?;
                subdirs.push((Arc::new(sub), path));
                continue;
            }
            if !filter.keeps_name(&name) {
                continue;
            }
            let st = rustix::fs::statat(fd, name.as_str(), AtFlags::SYMLINK_NOFOLLOW)
                .map_err(|e| (path.clone(), io::Error::from(e)))?;
            let mtime = mtime_of(&st);
            if filter.newer_than.is_none_or(|t| mtime > t) {
                found.push((path, mtime));
            }
        }
        Ok(subdirs)
    }
    let queue = Mutex::new(Queue {
        dirs: vec![(Arc::new(top), dir.as_str().to_string())],
        busy: 0,
        failed: None,
    });
    let wake = Condvar::new();
    let threads = walk_threads();
    let mut found: Found = Vec::new();
    let work = || {
        let mut mine = Vec::new();
        let mut q = queue.lock().expect("walk queue");
        loop {
            if q.failed.is_some() {
                break;
            }
            let Some((fd, rel)) = q.dirs.pop() else {
                if q.busy == 0 {
                    break;
                }
                q = wake.wait(q).expect("walk queue");
                continue;
            };
            q.busy += 1;
            drop(q);
            let listed = list_one(&fd, &rel, filter, &mut mine);
            drop(fd);
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
    };
    if threads <= 1 {
        found = work();
    } else {
        std::thread::scope(|scope| {
            let workers: Vec<_> = (0..threads).map(|_| scope.spawn(work)).collect();
            for w in workers {
                found.extend(w.join().expect("a walk worker panicked"));
            }
        });
    }
    if let Some(e) = queue.into_inner().expect("walk queue").failed {
        return Err(e);
    }
    found.sort_unstable_by(|a, b| a.0.cmp(&b.0));
    Ok(found
        .into_iter()
        .map(|(p, t)| (RelPath::from_trusted(p), t))
        .collect())
}

/// Every path (files and directories) below `dir`, recursively, not descending through
/// links; `.runbook/` at the root is skipped. For `**` globs.
pub fn all_below(root: &Root, dir: &RelPath, out: &mut Vec<(RelPath, bool)>) {
    let Ok(fd) = root.dir_for_listing(dir) else {
        return;
    };
    fn rec(fd: BorrowedFd, rel: &RelPath, out: &mut Vec<(RelPath, bool)>) {
        let Ok(list) = entries(fd) else {
            return;
        };
        for (name, ft) in list {
            if rel.is_root() && name == ".runbook" {
                continue;
            }
            let path = rel.join(&name);
            if ft == FileType::Directory {
                out.push((path.clone(), true));
                if let Ok(sub) = open_dir(fd, &name) {
                    rec(sub.as_fd(), &path, out);
                }
            } else {
                out.push((path, false));
            }
        }
    }
    rec(fd.as_fd(), dir, out);
}

/// The on-disk matches of a glob pattern (already checked to stay inside the workspace).
/// Walks the pattern one component at a time: literal components are joined without listing
/// anything, and a directory is listed only where a component has wildcards, so
/// `models/sl_model_v5.*` costs one listing of `models/`. From a `**` on, everything below
/// is listed once and matched whole. Links are matched by name but never descended through.
/// The entries of one directory by name, shared: see [`glob`]'s `list`.
pub type Listing = std::rc::Rc<Names>;

/// [`list`] as a [`Listing`].
pub fn listing(root: &Root, rel: &RelPath) -> io::Result<Listing> {
    let dir = root.dir_for_listing(rel)?;
    Ok(std::rc::Rc::new(Names::read(dir.as_fd())?))
}

/// Expand `pattern` against the disk, one component at a time. `list` gives a directory's
/// entries: the workspace passes its per-run cache, so however many globs a run makes over
/// `models/`, it is listed once until the run changes the disk.
pub fn glob(
    root: &Root,
    pattern: &str,
    compiled: &glob::Pattern,
    opts: glob::MatchOptions,
    list: &dyn Fn(&RelPath) -> io::Result<Listing>,
) -> Result<Vec<RelPath>, glob::PatternError> {
    let components: Vec<&str> = pattern
        .split('/')
        .filter(|c| !c.is_empty() && *c != ".")
        .collect();
    let is_dir = |rel: &RelPath| root.dir(rel).is_ok();
    let mut frontier = vec![RelPath::root()];
    for (i, comp) in components.iter().enumerate() {
        let last = i + 1 == components.len();
        if *comp == "**" || comp.contains("**") {
            let mut below = Vec::new();
            for dir in &frontier {
                all_below(root, dir, &mut below);
            }
            let mut out: Vec<RelPath> = below
                .into_iter()
                .map(|(p, _)| p)
                .filter(|p| compiled.matches_with(p.as_str(), opts))
                .collect();
            // `a/**` also matches `a` itself in the glob crate's semantics.
            out.extend(
                frontier
                    .iter()
                    .filter(|p| !p.is_root() && compiled.matches_with(p.as_str(), opts))
                    .cloned(),
            );
            out.sort();
            return Ok(out);
        }
        let mut next = Vec::new();
        if !comp.contains(['*', '?', '[']) {
            for dir in &frontier {
                let candidate = dir.join(comp);
                if (last && root.lstat(&candidate).is_ok()) || is_dir(&candidate) {
                    next.push(candidate);
                }
            }
        } else {
            let matcher = glob::Pattern::new(comp)?;
            // The literal text before the first wildcard: a name without it cannot match,
            // and a prefix compare is a fraction of a pattern match (a 20,000-name `models/`
            // holds a handful of `sl_model_v5.*`).
            let prefix = if opts.case_sensitive {
                &comp[..comp.find(['*', '?', '[', '\\']).unwrap_or(comp.len())]
            } else {
                ""
            };
            for dir in &frontier {
                let Ok(listed) = list(dir) else {
                    continue;
                };
                for (name, ft) in listed.iter() {
                    if dir.is_root() && name == ".runbook" {
                        continue;
                    }
                    if !name.starts_with(prefix) || !matcher.matches_with(name, opts) {
                        continue;
                    }
                    if last || ft == FileType::Directory {
                        next.push(dir.join(name));
                    }
                }
            }
        }
        frontier = next;
        if frontier.is_empty() {
            break;
        }
    }
    // Sorted: a listing is a map, and a plan's fingerprint must not depend on its order.
    let mut out: Vec<RelPath> = frontier.into_iter().filter(|p| !p.is_root()).collect();
    out.sort();
    Ok(out)
}
