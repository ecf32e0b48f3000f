//! Saved plans at the door: what `runbook plan` records and what `runbook apply` holds a
//! real run to.
//!
//! A plan is the list of effects a dry run sent through [`Workspace::perform`], plus what
//! the dry run read. While a plan is being recorded, the door notes every workspace path a
//! read looked at on disk (a file read, an existence test, a listing, a glob) and, for each
//! effect, its *identity*: the effect's canonical description with its content hashed, and
//! with the two values a later run necessarily has differently, its run id and its start
//! time (`timestamp()`), replaced by the placeholders `<run-id>` and `<timestamp>`; a
//! registry change's new RFC 3339 times become `<now>`. The same workspace and runbook thus
//! give the same identities at any time, and a real run computes the same identities for
//! the same effects.
//!
//! While a plan is being applied, [`Workspace::perform`] compares each effect's identity with
//! the next planned one *before* doing anything, and refuses the first that differs (an
//! uncatchable [`Error::Plan`]), so a run never does what nobody reviewed. Checks and
//! commands are not effects here: they change nothing the plan reviews.
//!
//! The fingerprint ([`Workspace::fingerprint`]) is the state of every path the plan read, as
//! the disk holds it: a file's sha256, a directory, or its absence; the paths below each
//! walked directory; the matches of each glob; git's `HEAD` and dirty paths. A dry run changes
//! nothing on disk, so computing it when the dry run ends gives the state it read.

use super::overlay::Lookup;
use super::{disk, own, Effect, RelPath, WalkFilter, Workspace};
use crate::error::{Error, Result};
use serde_json::{json, Map, Value};
use sha2::{Digest, Sha256};
use std::collections::{BTreeMap, BTreeSet};

/// A walked directory or a glob with more matches than this keeps only their count and hash
/// in the plan (a change is still detected; it is named by the directory or the pattern).
const MAX_LISTED: usize = 2000;

/// The largest diff of a written text file a plan shows; longer ones are summarised.
const MAX_DIFF_BYTES: usize = 64 * 1024;

/// The two values a real run necessarily has differently from the dry run that planned it.
#[derive(Clone, Debug)]
pub struct Placeholders {
    pub run_id: String,
    pub stamp: String,
}

impl Placeholders {
    pub fn text(&self, s: &str) -> String {
        let mut out = s.to_string();
        if !self.run_id.is_empty() {
            out = out.replace(&self.run_id, "<run-id>");
        }
        if !self.stamp.is_empty() {
            out = out.replace(&self.stamp, "<timestamp>");
        }
        out
    }

    pub fn value(&self, v: &Value) -> Value {
        match v {
            Value::String(s) => Value::String(self.text(s)),
            Value::Array(a) => Value::Array(a.iter().map(|x| self.value(x)).collect()),
            Value::Object(m) => Value::Object(
                m.iter()
                    .map(|(k, x)| (self.text(k), self.value(x)))
                    .collect(),
            ),
            other => other.clone(),
        }
    }

    fn bytes(&self, b: &[u8]) -> Vec<u8> {
        match std::str::from_utf8(b) {
            Ok(s) => self.text(s).into_bytes(),
            Err(_) => b.to_vec(),
        }
    }
}

/// What the dry run of a plan read, by kind.
#[derive(Default, Debug, Clone)]
pub struct Reads {
    pub files: BTreeSet<String>,
    pub walks: BTreeSet<String>,
    pub globs: BTreeSet<String>,
}

pub(in crate::effects) struct Recorder {
    placeholders: Placeholders,
    /// Effect sequence number → `{identity, detail}`.
    effects: BTreeMap<usize, Value>,
    reads: Reads,
}

pub(in crate::effects) struct Expected {
    /// The plan file, for messages.
    name: String,
    placeholders: Placeholders,
    planned: Vec<Value>,
    summaries: Vec<String>,
    next: usize,
}

#[derive(Default)]
pub(in crate::effects) enum Hook {
    #[default]
    Off,
    Record(Box<Recorder>),
    Expect(Expected),
}

/// What a recorded dry run hands to `runbook plan`.
pub struct Recorded {
    /// The journal's events (`step_start`, `action` with `summary`, `log`, `step_end`), each
    /// action of an effect with its `identity` and `detail`, placeholders put in.
    pub events: Vec<Value>,
    pub reads: Reads,
}

fn sha256_hex(bytes: &[u8]) -> String {
    Sha256::digest(bytes)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// Replace RFC 3339 times (a registry's `promoted_at`) with `<now>`: they are the moment the
/// change is made, which differs between the plan and its run.
fn times_to_placeholder(v: &Value) -> Value {
    match v {
        Value::String(s) if chrono::DateTime::parse_from_rfc3339(s).is_ok() => {
            Value::String("<now>".into())
        }
        other => other.clone(),
    }
}

impl Workspace {
    /// Record this (dry) run as a plan: its effects' identities and the paths it reads.
    pub fn record_plan(&self, placeholders: Placeholders) {
        self.journal.start_capture();
        *self.plan.borrow_mut() = Hook::Record(Box::new(Recorder {
            placeholders,
            effects: BTreeMap::new(),
            reads: Reads::default(),
        }));
    }

    /// Hold this (real) run to a plan: `planned` are the identities of its effects, in
    /// order, and `summaries` what each was shown as.
    pub fn expect_plan(
        &self,
        name: &str,
        placeholders: Placeholders,
        planned: Vec<Value>,
        summaries: Vec<String>,
    ) {
        *self.plan.borrow_mut() = Hook::Expect(Expected {
            name: name.to_string(),
            placeholders,
            planned,
            summaries,
            next: 0,
        });
    }

    /// After an applied run: how many planned effects it performed, of how many.
    pub fn plan_progress(&self) -> Option<(usize, usize)> {
        match &*self.plan.borrow() {
            Hook::Expect(e) => Some((e.next, e.planned.len())),
            _ => None,
        }
    }

    /// The recorded plan, with placeholders put into the journal's events.
    pub fn take_recorded(&self) -> Option<Recorded> {
        let Hook::Record(rec) = std::mem::take(&mut *self.plan.borrow_mut()) else {
            return None;
        };
        // One effect may have several actions (a step's merged registry change has one per
        // change): the effect's identity goes with its first, so the plan lists it once.
        let mut identified = std::collections::BTreeSet::new();
        let events = self
            .journal
            .take_capture()
            .into_iter()
            .map(|mut e| {
                if e["event"] == "action" {
                    if let Some(seq) = e["seq"].as_u64().filter(|s| identified.insert(*s)) {
                        if let Some(extra) = rec.effects.get(&(seq as usize)) {
                            e["identity"] = extra["identity"].clone();
                            if !extra["detail"].is_null() {
                                e["detail"] = extra["detail"].clone();
                            }
                        }
                    }
                }
                rec.placeholders.value(&e)
            })
            .collect();
        Some(Recorded {
            events,
            reads: rec.reads,
        })
    }

    fn recording(&self) -> bool {
        matches!(&*self.plan.borrow(), Hook::Record(_))
    }

    /// Note a path a read looked at on disk (not in the dry run's overlay).
    pub(in crate::effects) fn note_file(&self, rel: &RelPath) {
        if let Hook::Record(rec) = &mut *self.plan.borrow_mut() {
            // A name made of the run's id or start time (a backup's destination, looked at
            // to never overwrite it) is one the real run makes anew; its own effect checks it.
            let made_up = rec.placeholders.text(rel.as_str()) != rel.as_str();
            if rel.first_component() != own::DIR && !rel.is_root() && !made_up {
                rec.reads.files.insert(rel.as_str().to_string());
            }
        }
    }

    pub(in crate::effects) fn note_walk(&self, dir: &RelPath) {
        if let Hook::Record(rec) = &mut *self.plan.borrow_mut() {
            rec.reads.walks.insert(dir.as_str().to_string());
        }
    }

    pub(in crate::effects) fn note_glob(&self, pattern: &str) {
        if let Hook::Record(rec) = &mut *self.plan.borrow_mut() {
            rec.reads.globs.insert(pattern.trim().to_string());
        }
    }

    /// Many script-given paths at once (`exist_all`).
    /// Each directory is resolved once, as `exist_all` does: a registry of 10,000 versions
    /// asks about 10,000 files in one directory.
    pub(in crate::effects) fn note_paths(&self, paths: &[&str]) {
        if !self.recording() {
            return;
        }
        let mut parents: std::collections::HashMap<Option<RelPath>, Option<RelPath>> =
            std::collections::HashMap::new();
        for p in paths {
            let Ok(lexical) = RelPath::normalize(p) else {
                continue;
            };
            if lexical.is_root() {
                continue;
            }
            let parent = lexical.parent();
            let canon = parents
                .entry(parent.clone())
                .or_insert_with(|| self.root.canonical(&parent.unwrap_or_default(), true).ok());
            if let Some(dir) = canon {
                let rel = dir.join(lexical.file_name());
                if matches!(self.overlay.lookup(&rel), Lookup::Disk) {
                    self.note_file(&rel);
                }
            }
        }
    }

    /// The door's plan hook, before an effect is performed: record its identity (plan) or
    /// compare it with the planned one (apply). A `Mkdir` of an existing directory does
    /// nothing and is neither recorded nor compared.
    pub(in crate::effects) fn plan_before(
        &self,
        effect: &Effect<'_>,
        canonical: &Value,
        seq: usize,
    ) -> Result<()> {
        if matches!(&*self.plan.borrow(), Hook::Off) {
            return Ok(());
        }
        if let Effect::Mkdir { path } = effect {
            if self.is_dir(path) {
                return Ok(());
            }
        }
        let mut hook = self.plan.borrow_mut();
        match &mut *hook {
            Hook::Off => Ok(()),
            Hook::Record(rec) => {
                let identity = identity(effect, canonical, &rec.placeholders);
                drop(hook);
                let detail = self.detail(effect);
                if let Hook::Record(rec) = &mut *self.plan.borrow_mut() {
                    let detail = rec.placeholders.value(&detail);
                    rec.effects
                        .insert(seq, json!({"identity": identity, "detail": detail}));
                }
                Ok(())
            }
            Hook::Expect(exp) => {
                let live = identity(effect, canonical, &exp.placeholders);
                let n = exp.next;
                match exp.planned.get(n) {
                    Some(planned) if *planned == live => {
                        exp.next += 1;
                        Ok(())
                    }
                    Some(planned) => Err(Error::Plan {
                        plan: exp.name.clone(),
                        message: format!(
                            "effect {} differs from the plan; it was not performed, and nothing after it was.\n  planned: {} ({})\n  now:     {}\nthe workspace or the runbook's inputs changed in a way the fingerprint did not cover; make a new plan with `runbook plan` and review it",
                            n + 1,
                            planned,
                            exp.summaries.get(n).map(String::as_str).unwrap_or(""),
                            live
                        ),
                    }),
                    None => Err(Error::Plan {
                        plan: exp.name.clone(),
                        message: format!(
                            "the run went on past the {} planned effect(s) with one the plan does not have; it was not performed.\n  now: {live}\nmake a new plan with `runbook plan` and review it",
                            exp.planned.len()
                        ),
                    }),
                }
            }
        }
    }

    /// What a reviewer wants to see of an effect beyond its summary: the fields a registry
    /// change changes (before and after), the unified diff of a text file it writes.
    fn detail(&self, effect: &Effect<'_>) -> Value {
        match effect {
            Effect::Registry { change, .. } => {
                let entries: Vec<Value> = change
                    .changed
                    .iter()
                    .map(|c| {
                        if c.new.is_null() {
                            return json!({"name": c.name, "version": c.version, "removed": true});
                        }
                        let empty = Map::new();
                        let old = c.old.as_object().unwrap_or(&empty);
                        let new = c.new.as_object().unwrap_or(&empty);
                        let mut fields = Map::new();
                        for (k, v) in new {
                            if old.get(k) != Some(v) {
                                let before = old.get(k).cloned().unwrap_or(Value::Null);
                                fields.insert(k.clone(), json!([before, times_to_placeholder(v)]));
                            }
                        }
                        for (k, v) in old {
                            if !new.contains_key(k) {
                                fields.insert(k.clone(), json!([v, Value::Null]));
                            }
                        }
                        if c.old.is_null() {
                            json!({"name": c.name, "version": c.version, "added": true, "fields": fields})
                        } else {
                            json!({"name": c.name, "version": c.version, "fields": fields})
                        }
                    })
                    .collect();
                json!({ "registry": entries })
            }
            Effect::Write { path, bytes } => {
                let Ok(new) = std::str::from_utf8(bytes) else {
                    return json!({"binary": true, "sha256": sha256_hex(bytes)});
                };
                let old = if self.exists(path) {
                    match self.read(path).map(|b| String::from_utf8(b.to_vec())) {
                        Ok(Ok(text)) => Some(text),
                        _ => return json!({"sha256": sha256_hex(bytes)}),
                    }
                } else {
                    None
                };
                diff_of(path.as_str(), old.as_deref(), new, bytes)
            }
            Effect::GitCheckout { rev, paths } => {
                // The files the checkout rewrites, each as the diff from the run's view.
                let Ok(changes) = super::git::checkout_changes(self, rev, paths) else {
                    return Value::Null;
                };
                let files: Vec<Value> = changes
                    .iter()
                    .map(|c| {
                        if c.binary {
                            return json!({"path": c.path, "binary": true});
                        }
                        let old = self
                            .resolve(&c.path)
                            .ok()
                            .filter(|r| self.exists(r))
                            .and_then(|r| self.read_string(&r).ok());
                        let new = super::git::show(self, rev, &c.path).unwrap_or_default();
                        let mut d = diff_of(
                            &c.path,
                            old.as_deref(),
                            &String::from_utf8_lossy(&new),
                            &new,
                        );
                        d["path"] = json!(c.path);
                        d
                    })
                    .collect();
                json!({ "files": files })
            }
            _ => Value::Null,
        }
    }

    /// The state on disk of everything `reads` names (see the module docs). Computed the
    /// same way when the plan is made and when it is applied, and compared as values.
    pub fn fingerprint(&self, reads: &Reads) -> Result<Value> {
        let mut files = Map::new();
        let mut buf = vec![0u8; 1 << 20];
        for p in &reads.files {
            let rel = RelPath::from_trusted(p.clone());
            let state = match self.root.lstat(&rel) {
                Err(_) => json!("absent"),
                Ok(st) if super::sandbox::kind(&st) == rustix::fs::FileType::Directory => {
                    json!("dir")
                }
                Ok(_) => match file_sha256(&self.root, &rel, &mut buf) {
                    Ok(h) => json!({ "sha256": h }),
                    Err(e) => json!({ "unreadable": e.kind().to_string() }),
                },
            };
            files.insert(p.clone(), state);
        }
        let mut walks = Map::new();
        for d in &reads.walks {
            let rel = RelPath::from_trusted(d.clone());
            let paths: Vec<String> = if self.root.dir(&rel).is_ok() {
                disk::walk(&self.root, &rel, &WalkFilter::default())
                    .map_err(|(path, e)| Error::io(path, "list", e))?
                    .into_iter()
                    .map(|(p, _)| p.as_str().to_string())
                    .collect()
            } else {
                Vec::new()
            };
            walks.insert(d.clone(), listing(paths));
        }
        let mut globs = Map::new();
        for g in &reads.globs {
            let opts = glob::MatchOptions {
                case_sensitive: true,
                require_literal_separator: true,
                require_literal_leading_dot: true,
            };
            let paths: Vec<String> = match glob::Pattern::new(g) {
                // Listed afresh, not from the run's cache: this is the disk as it is now.
                Ok(compiled) => disk::glob(&self.root, g, &compiled, opts, &|d: &RelPath| {
                    disk::listing(&self.root, d)
                })
                .unwrap_or_default()
                .into_iter()
                .filter(|r| r.first_component() != own::DIR)
                .map(|r| r.as_str().to_string())
                .collect(),
                Err(_) => Vec::new(),
            };
            globs.insert(g.clone(), listing(paths));
        }
        let git = if self
            .root
            .lstat(&RelPath::from_trusted(".git".into()))
            .is_ok()
        {
            let repo = super::git::repo(self)?;
            let dirty: Vec<String> = repo
                .dirty_paths::<&str>(&[])?
                .into_iter()
                .filter(|p| !p.starts_with(".runbook/") && p != ".runbook")
                .collect();
            // A listing like the others: a workspace with 100,000 untracked data files would
            // otherwise put every name into the plan.
            json!({"head": repo.head().unwrap_or_default(), "dirty": listing(dirty)})
        } else {
            Value::Null
        };
        Ok(json!({"files": files, "walks": walks, "globs": globs, "git": git}))
    }
}

/// The unified diff from `old` (`None`: the file is new) to `new` at `path`, or only the
/// new content's hash when the diff is too long to show.
fn diff_of(path: &str, old: Option<&str>, new: &str, bytes: &[u8]) -> Value {
    let diff = similar::TextDiff::from_lines(old.unwrap_or(""), new)
        .unified_diff()
        .context_radius(3)
        .header(
            &if old.is_some() {
                format!("a/{path}")
            } else {
                "/dev/null".to_string()
            },
            &format!("b/{path}"),
        )
        .to_string();
    if diff.len() > MAX_DIFF_BYTES {
        json!({"diff_omitted": diff.len(), "sha256": sha256_hex(bytes)})
    } else {
        json!({ "diff": diff })
    }
}

/// The sha256 of a file, read in blocks: validation data may be large.
/// `buf` is shared by every file of a fingerprint: a fresh megabyte per file, zeroed, cost
/// more than the hashing on a registry of 10,000 small model files.
fn file_sha256(
    root: &super::sandbox::Root,
    rel: &RelPath,
    buf: &mut [u8],
) -> std::io::Result<String> {
    use std::io::Read;
    let mut f = root.open_read(rel)?;
    let mut hasher = Sha256::new();
    loop {
        let n = f.read(buf)?;
        if n == 0 {
            break;
        }
        hasher.update(&buf[..n]);
    }
    Ok(hasher
        .finalize()
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect())
}

/// A listing as a plan keeps it: every path when there are few, else their count and hash.
fn listing(paths: Vec<String>) -> Value {
    let hash = sha256_hex(paths.join("\n").as_bytes());
    if paths.len() <= MAX_LISTED {
        json!({"count": paths.len(), "sha256": hash, "paths": paths})
    } else {
        json!({"count": paths.len(), "sha256": hash})
    }
}

/// An effect's identity: its canonical description, with the content it writes hashed and a
/// registry change's changed fields, placeholders put in.
fn identity(effect: &Effect<'_>, canonical: &Value, ph: &Placeholders) -> Value {
    let mut id = ph.value(canonical);
    match effect {
        Effect::Write { bytes, .. } | Effect::Append { bytes, .. } => {
            id["sha256"] = Value::String(sha256_hex(&ph.bytes(bytes)));
        }
        Effect::Registry { change, .. } => {
            let changed: Vec<Value> = change
                .changed
                .iter()
                .map(|c| {
                    // Only a time the change sets is the change's own moment.
                    let new = match &c.new {
                        Value::Object(m) => Value::Object(
                            m.iter()
                                .map(|(k, v)| {
                                    if c.old.get(k) == Some(v) {
                                        (k.clone(), v.clone())
                                    } else {
                                        (k.clone(), times_to_placeholder(v))
                                    }
                                })
                                .collect(),
                        ),
                        other => other.clone(),
                    };
                    ph.value(&json!({"name": c.name, "version": c.version, "new": new}))
                })
                .collect();
            id["changed"] = Value::Array(changed);
        }
        _ => {}
    }
    id
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn placeholders_replace_the_run_id_and_the_stamp_everywhere() {
        let ph = Placeholders {
            run_id: "20261201T000000Z-abcd".into(),
            stamp: "20261201_000000".into(),
        };
        let v = json!({"to": "backups/registry_20261201_000000.json",
            "kept": [".runbook/trash/20261201T000000Z-abcd/models/x"], "n": 3});
        assert_eq!(
            ph.value(&v),
            json!({"to": "backups/registry_<timestamp>.json",
                "kept": [".runbook/trash/<run-id>/models/x"], "n": 3})
        );
        assert_eq!(
            times_to_placeholder(&json!("2026-12-01T00:00:00Z")),
            json!("<now>")
        );
        assert_eq!(times_to_placeholder(&json!("v4")), json!("v4"));
    }

    #[test]
    fn a_listing_keeps_paths_only_when_there_are_few() {
        let few = listing(vec!["a".into(), "b".into()]);
        assert_eq!(few["count"], 2);
        assert_eq!(few["paths"], json!(["a", "b"]));
        let many = listing((0..MAX_LISTED + 1).map(|i| i.to_string()).collect());
        assert!(many.get("paths").is_none());
        assert_ne!(few["sha256"], many["sha256"]);
    }
}
