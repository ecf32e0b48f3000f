//! A directory's entries by name, as the run's listing cache keeps them ([`super::disk::Listing`]).
//!
//! Big directories are the point: a 10,000-version registry keeps 20,000 files in `models/`,
//! and the rollback lists it once to check every model file and match its globs. Every name
//! goes into one string and a hash table holds (offset, length, type) into it, so a listing
//! makes no allocation per name; the directory is read with `getdents64` into one buffer
//! sized from the directory, so the kernel walks its hash tree in one or a few calls, not
//! thirty (measured on ext4 with 20,000 entries: 6.0 ms against 7.8 ms with 32 KiB reads).

use rustix::fd::BorrowedFd;
use rustix::fs::FileType;
use std::hash::BuildHasher;
use std::io;
use std::mem::MaybeUninit;

/// The names in one directory (`.` and `..` left out, names that are not UTF-8 skipped),
/// each with its type as the directory reports it (links as links).
#[derive(Clone)]
pub struct Names {
    /// Every name, one after another; a removed name's bytes stay until the next compaction.
    text: String,
    table: hashbrown::HashTable<Slot>,
    hasher: foldhash::fast::RandomState,
    /// Bytes of `text` no slot points at any more.
    dead: usize,
}

#[derive(Clone, Copy)]
struct Slot {
    at: usize,
    len: u16,
    ft: FileType,
}

impl Default for Names {
    fn default() -> Self {
        Names {
            text: String::new(),
            table: hashbrown::HashTable::new(),
            hasher: foldhash::fast::RandomState::default(),
            dead: 0,
        }
    }
}

impl std::fmt::Debug for Names {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_map().entries(self.iter()).finish()
    }
}

/// The smallest and largest read buffer: a small directory needs no more than one page or
/// so, and past 8 MiB (about 170,000 entries) more calls cost less than the memory.
const MIN_BUF: usize = 32 * 1024;
const MAX_BUF: usize = 8 * 1024 * 1024;

impl Names {
    /// Read the directory `dir`, which must be open for reading and not read from yet.
    pub fn read(dir: BorrowedFd) -> io::Result<Names> {
        // An ext4 directory's size is about 40 bytes an entry; `getdents64` gives about 48.
        let size = rustix::fs::fstat(dir)
            .map(|st| usize::try_from(st.st_size).unwrap_or(usize::MAX))
            .unwrap_or(0);
        let cap = size.saturating_mul(3).div_ceil(2).clamp(MIN_BUF, MAX_BUF);
        let mut buf: Vec<MaybeUninit<u8>> = Vec::with_capacity(cap);
        // SAFETY: `MaybeUninit<u8>` needs no initialisation; the kernel writes what is read.
        unsafe { buf.set_len(cap) };
        let mut names = Names::with_capacity(size / 40, size / 2);
        let mut raw = rustix::fs::RawDir::new(dir, &mut buf);
        while let Some(entry) = raw.next() {
            let entry = entry?;
            if let Some((name, ft)) =
                super::disk::listed_entry(dir, entry.file_name(), entry.file_type())?
            {
                names.insert(name, ft);
            }
        }
        Ok(names)
    }

    fn with_capacity(entries: usize, bytes: usize) -> Names {
        Names {
            text: String::with_capacity(bytes),
            table: hashbrown::HashTable::with_capacity(entries),
            ..Names::default()
        }
    }

    fn name(&self, slot: &Slot) -> &str {
        &self.text[slot.at..slot.at + usize::from(slot.len)]
    }

    fn find(&self, name: &str, hash: u64) -> Option<&Slot> {
        self.table.find(hash, |s| self.name(s) == name)
    }

    /// The type of entry `name`, if the directory has it.
    pub fn get(&self, name: &str) -> Option<FileType> {
        self.find(name, self.hasher.hash_one(name)).map(|s| s.ft)
    }

    /// Add `name` (or change its type).
    pub fn insert(&mut self, name: &str, ft: FileType) {
        // A file name is at most 255 bytes on every filesystem Linux has; a longer one cannot
        // be on disk, so it cannot be listed either.
        let Ok(len) = u16::try_from(name.len()) else {
            return;
        };
        let hash = self.hasher.hash_one(name);
        let (text, hasher) = (&self.text, &self.hasher);
        let at = self.text.len();
        match self.table.entry(
            hash,
            |s| &text[s.at..s.at + usize::from(s.len)] == name,
            |s| hasher.hash_one(&text[s.at..s.at + usize::from(s.len)]),
        ) {
            hashbrown::hash_table::Entry::Occupied(mut o) => o.get_mut().ft = ft,
            hashbrown::hash_table::Entry::Vacant(v) => {
                v.insert(Slot { at, len, ft });
                self.text.push_str(name);
            }
        }
    }

    /// Drop `name`, if the directory has it.
    pub fn remove(&mut self, name: &str) {
        let hash = self.hasher.hash_one(name);
        let text = &self.text;
        if let Ok(o) = self
            .table
            .find_entry(hash, |s| &text[s.at..s.at + usize::from(s.len)] == name)
        {
            let (slot, _) = o.remove();
            self.dead += usize::from(slot.len);
        }
        // A run that removes most of a big directory should not keep all its names.
        if self.dead > 4096 && self.dead > self.text.len() / 2 {
            *self = self.iter().fold(
                Names::with_capacity(self.len(), self.text.len() - self.dead),
                |mut fresh, (name, ft)| {
                    fresh.insert(name, ft);
                    fresh
                },
            );
        }
    }

    pub fn len(&self) -> usize {
        self.table.len()
    }

    pub fn is_empty(&self) -> bool {
        self.table.is_empty()
    }

    /// Every entry, in no particular order.
    pub fn iter(&self) -> impl Iterator<Item = (&str, FileType)> {
        self.table.iter().map(|s| (self.name(s), s.ft))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeMap;
    use std::os::fd::AsFd;

    fn sorted(n: &Names) -> BTreeMap<String, FileType> {
        n.iter().map(|(k, v)| (k.to_string(), v)).collect()
    }

    #[test]
    fn reads_a_directory_of_many_entries_with_their_types() {
        let dir = tempfile::tempdir().unwrap();
        for i in 0..5000 {
            std::fs::write(dir.path().join(format!("sl_model_v{i}.json")), "m").unwrap();
        }
        std::fs::create_dir(dir.path().join("archive")).unwrap();
        std::os::unix::fs::symlink("/etc", dir.path().join("link")).unwrap();
        let fd = std::fs::File::open(dir.path()).unwrap();
        let names = Names::read(fd.as_fd()).unwrap();
        assert_eq!(names.len(), 5002);
        assert_eq!(
            names.get("sl_model_v4999.json"),
            Some(FileType::RegularFile)
        );
        assert_eq!(names.get("archive"), Some(FileType::Directory));
        assert_eq!(names.get("link"), Some(FileType::Symlink));
        assert_eq!(names.get("."), None);
        assert_eq!(names.get("sl_model_v5000.json"), None);
        let on_disk: BTreeMap<String, FileType> = std::fs::read_dir(dir.path())
            .unwrap()
            .map(|e| {
                let e = e.unwrap();
                let ft = e.file_type().unwrap();
                let ft = if ft.is_symlink() {
                    FileType::Symlink
                } else if ft.is_dir() {
                    FileType::Directory
                } else {
                    FileType::RegularFile
                };
                (e.file_name().into_string().unwrap(), ft)
            })
            .collect();
        assert_eq!(sorted(&names), on_disk);
    }

    #[test]
    fn insert_and_remove_keep_every_other_name() {
        let mut names = Names::default();
        for i in 0..10_000 {
            names.insert(&format!("f{i}"), FileType::RegularFile);
        }
        names.insert("f7", FileType::Directory);
        assert_eq!(names.len(), 10_000);
        assert_eq!(names.get("f7"), Some(FileType::Directory));
        // Removing most of them compacts the text at some point; the rest stay findable.
        for i in (0..10_000).filter(|i| i % 10 != 0) {
            names.remove(&format!("f{i}"));
        }
        names.remove("absent");
        assert_eq!(names.len(), 1000);
        assert!(names.text.len() < 10_000, "compacted: {}", names.text.len());
        for i in 0..10_000 {
            let want = (i % 10 == 0).then_some(FileType::RegularFile);
            assert_eq!(names.get(&format!("f{i}")), want, "f{i}");
        }
        let copy = names.clone();
        names.remove("f0");
        assert_eq!(copy.get("f0"), Some(FileType::RegularFile));
        assert_eq!(names.get("f0"), None);
        assert!(!names.is_empty());
    }
}
