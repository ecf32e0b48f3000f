//! The dry run's overlay: the changes a dry run would have made, kept in memory.
//!
//! Every mutation of a dry run lands here instead of on disk, and every read of the run
//! consults it first, so later steps see the state earlier steps would have produced. An
//! entry is a file (its simulated content and time), a directory the run made, or a removal;
//! a removed or replaced directory hides everything the disk holds below it. Paths are
//! canonical (resolved by the sandbox), so two spellings of one file are one entry.

use super::path::RelPath;
use std::cell::RefCell;
use std::collections::BTreeMap;
use std::rc::Rc;
use std::time::SystemTime;

/// The content of a file as the run sees it: on disk (by its canonical path, opened through
/// the sandbox when read), or bytes the dry run simulated.
#[derive(Debug, Clone)]
pub enum Content {
    Disk(RelPath),
    Bytes(Rc<[u8]>),
}

#[derive(Debug, Clone)]
pub(in crate::effects) enum Entry {
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

pub(in crate::effects) enum Lookup {
    Overlay(Entry),
    /// Below a directory the overlay removed or replaced.
    Hidden,
    Disk,
}

#[derive(Default)]
pub(in crate::effects) struct Overlay {
    entries: RefCell<BTreeMap<RelPath, Entry>>,
}

impl Overlay {
    pub fn is_empty(&self) -> bool {
        self.entries.borrow().is_empty()
    }

    pub fn lookup(&self, rel: &RelPath) -> Lookup {
        let entries = self.entries.borrow();
        if entries.is_empty() {
            return Lookup::Disk;
        }
        if let Some(e) = entries.get(rel) {
            return Lookup::Overlay(e.clone());
        }
        let mut cur = rel.parent();
        while let Some(dir) = cur {
            match entries.get(&dir) {
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

    /// Forget everything (a resume going live: the view now is the disk).
    pub fn clear(&self) {
        self.entries.borrow_mut().clear();
    }

    pub fn set(&self, rel: &RelPath, entry: Entry) {
        self.entries.borrow_mut().insert(rel.clone(), entry);
    }

    /// Forget what the overlay holds strictly below `rel` (it is being removed or replaced).
    pub fn clear_below(&self, rel: &RelPath) {
        self.entries
            .borrow_mut()
            .retain(|p, _| p == rel || !p.is_within(rel));
    }

    /// Whether the overlay holds a file or directory strictly below `rel`.
    pub fn has_children(&self, rel: &RelPath) -> bool {
        self.entries
            .borrow()
            .iter()
            .any(|(p, e)| !matches!(e, Entry::Removed) && p != rel && p.is_within(rel))
    }

    /// What the overlay says about the entries directly in `dir`, for many lookups there:
    /// `None` when `dir` or a directory above it is removed or replaced (then every entry
    /// in it is the overlay's to say, one [`Overlay::lookup`] each), else the names of the
    /// entries the overlay holds directly in `dir`; any other name there is the disk's.
    pub fn direct_entries(&self, dir: &RelPath) -> Option<std::collections::HashSet<String>> {
        let entries = self.entries.borrow();
        let mut cur = Some(dir.clone());
        while let Some(d) = cur {
            if matches!(
                entries.get(&d),
                Some(Entry::Removed | Entry::File { .. } | Entry::Dir { shadows_disk: true })
            ) {
                return None;
            }
            cur = d.parent();
        }
        Some(
            entries
                .keys()
                .filter(|p| !p.is_root() && p.parent().as_ref() == Some(dir))
                .map(|p| p.file_name().to_string())
                .collect(),
        )
    }

    /// A copy of every entry, in path order.
    pub fn snapshot(&self) -> BTreeMap<RelPath, Entry> {
        self.entries.borrow().clone()
    }
}
