//! File stamps: what a file was when it was read, so a parsed copy (the registry, a dataset)
//! is reused until that file really changes, whatever else the run changes meanwhile.
//!
//! A stamp is the file's device, inode, size and modification/change times on disk, or, for
//! a file a dry run simulated, the identity of its (immutable) bytes. Caches key on the
//! stamp of the one file they came from, never on "nothing changed anywhere": a rollback
//! copies and removes other files between registry reads.

use std::rc::Rc;

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
    pub(in crate::effects) fn of_stat(st: &rustix::fs::Stat) -> Stamp {
        let ns = |secs: i64, nsec: i64| i128::from(secs) * 1_000_000_000 + i128::from(nsec);
        Stamp::Disk {
            dev: st.st_dev,
            ino: st.st_ino,
            len: st.st_size as u64,
            mtime_ns: ns(st.st_mtime, st.st_mtime_nsec as i64),
            ctime_ns: ns(st.st_ctime, st.st_ctime_nsec as i64),
        }
    }
}

/// One value cached against the stamp of the file it was made from.
pub struct Stamped<T> {
    stamp: Stamp,
    value: T,
}

impl<T: Clone> Stamped<T> {
    pub fn new(stamp: Stamp, value: T) -> Stamped<T> {
        Stamped { stamp, value }
    }

    /// The value, if the file still has `stamp`.
    pub fn get(&self, stamp: &Stamp) -> Option<T> {
        (&self.stamp == stamp).then(|| self.value.clone())
    }
}
