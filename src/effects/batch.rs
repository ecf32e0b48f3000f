//! One registry write per step: registry changes a step makes one after another are merged
//! and written once, when the step ends or as soon as anything else goes through the door.
//!
//! Each registry change alone rewrites the whole registry (15 MB at 50,000 versions), keeps
//! the old file in the trash and appends to the history. A rollback's step that promotes the
//! previous version and removes the bad one would pay that twice. Here the second change is
//! computed on the first one's result (the registry family reads through
//! [`Workspace::staged_registry`]), and the door performs one registry effect for both:
//! one intent, one write, one history append, and an action per change in the journal.
//!
//! Nothing may come between a staged change and the disk: every other effect, check and
//! read through the door first writes what is staged ([`Workspace::settle`]), so the disk,
//! the journal and a dry run's overlay see the changes in the order the script made them,
//! and a dry run stages exactly as a real run does (its plan names the same effects). A
//! write that fails while a read settles it is reported by the next effect, check or step
//! end, none of which goes on past it. Outside a step nothing ends the batch, so a change
//! made there is performed at once.

use super::{Record, Workspace};
use crate::error::{Error, Result};
use crate::registry::{Change, Registry, Store};
use std::rc::Rc;

/// A change staged in the current step.
pub(super) struct Staged {
    store: Rc<dyn Store>,
    change: Change,
    /// What the registry becomes, as the family reads it until the write.
    view: Rc<Registry>,
    /// The journal action of each change merged into it, in order.
    records: Vec<Record>,
}

/// The door's batch: what is staged, and a failure of a write a read tried to settle.
#[derive(Default)]
pub(super) struct Batch {
    staged: Option<Staged>,
    failed: Option<Error>,
}

impl Workspace {
    /// Make a registry change: staged until the step ends (merged with the changes the step
    /// made just before it), performed at once outside a step.
    pub fn change_registry(
        &self,
        store: &Rc<dyn Store>,
        change: Change,
        record: Record,
    ) -> Result<()> {
        self.settle_other(store)?;
        if self.journal.depth() == 0 {
            return self.perform_registry(store.as_ref(), &change, vec![record]);
        }
        let mut batch = self.batch.borrow_mut();
        let (change, mut records) = match batch.staged.take() {
            Some(s) => (s.change.then(change), s.records),
            None => (change, Vec::new()),
        };
        records.push(record);
        batch.staged = Some(Staged {
            store: store.clone(),
            view: Rc::new(change.next.clone()),
            change,
            records,
        });
        Ok(())
    }

    /// The registry as the change staged for `store` leaves it, if one is staged.
    pub fn staged_registry(&self, store: &Rc<dyn Store>) -> Option<Rc<Registry>> {
        match &self.batch.borrow().staged {
            Some(s) if Rc::ptr_eq(&s.store, store) => Some(s.view.clone()),
            _ => None,
        }
    }

    /// Write what is staged now; report a staged write that failed since.
    pub fn settle(&self) -> Result<()> {
        let (staged, failed) = {
            let mut batch = self.batch.borrow_mut();
            (batch.staged.take(), batch.failed.take())
        };
        if let Some(e) = failed {
            return Err(e);
        }
        match staged {
            Some(s) => self.perform_registry(s.store.as_ref(), &s.change, s.records),
            None => Ok(()),
        }
    }

    /// [`Workspace::settle`] before a read that cannot fail: the read sees the written
    /// registry, and a failed write waits for the next effect, check or step end.
    pub(super) fn settle_for_read(&self) {
        if self.batch.borrow().staged.is_none() {
            return;
        }
        if let Err(e) = self.settle() {
            self.batch.borrow_mut().failed.get_or_insert(e);
        }
    }

    /// Settle a change staged for another store than `store` (two stores in one run are
    /// not merged), and report an earlier failed write.
    fn settle_other(&self, store: &Rc<dyn Store>) -> Result<()> {
        let other = {
            let batch = self.batch.borrow();
            batch.failed.is_some()
                || matches!(&batch.staged, Some(s) if !Rc::ptr_eq(&s.store, store))
        };
        if other {
            self.settle()?;
        }
        Ok(())
    }

    fn perform_registry(
        &self,
        store: &dyn Store,
        change: &Change,
        records: Vec<Record>,
    ) -> Result<()> {
        self.perform_records(super::Effect::Registry { store, change }, |_| records)?;
        Ok(())
    }
}
