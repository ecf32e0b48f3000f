//! Git inside a run: the effects (`checkout`, `add`, `commit`, `tag`) and the dry-run-aware
//! reads (`head`, `log`, `dirty`, `show`, `checkout_changes`, ...).
//!
//! A real run drives the user's `git` (`gitcli.rs`). A dry run runs no git command that
//! changes the repository, the index or the work tree; it keeps a model of what it would have
//! done instead ([`Plan`]): the index entries it staged, the commits it made (each as the
//! paths whose content differs from the real `HEAD`), the tags it created. A checkout writes
//! the revision's files into the overlay, computed against what the dry run's earlier steps
//! left, not against the disk; `dirty` compares the run's view of the work tree with the
//! model's index and `HEAD`; `HEAD`, `HEAD~N` and the current branch name resolve through
//! the planned commits (a planned commit is shown as `planned:N`, since its sha cannot be
//! known without writing objects). So `fs::remove(f)` then `git::checkout("HEAD", dir)`
//! restores `f` in both modes, and `git::dirty()` after a planned commit is what the real
//! run will see.
//!
//! Nothing lost: before a checkout overwrites files that have uncommitted changes (or are
//! untracked), it keeps a binary patch of those changes against `HEAD` (`git apply` puts
//! them back) and a copy of each such file in `.runbook/trash/<run-id>/`.

use super::gitcli::{FileChange, LogEntry, Repo};
use super::path::RelPath;
use super::Workspace;
use crate::error::{Error, Result};
use std::cell::RefCell;
use std::collections::{BTreeMap, BTreeSet};
use std::rc::Rc;

pub use super::gitcli::FileChange as GitChange;

type Bytes = Option<Rc<[u8]>>;

/// What a git effect did (or would do).
#[derive(Debug, Default, Clone)]
pub struct GitOutcome {
    /// The commit a checkout read from, a commit made (`None` in a dry run), or the commit a
    /// tag points at (`None`: the commit this dry run plans).
    pub commit: Option<String>,
    /// The files a checkout changes.
    pub changes: Vec<FileChange>,
    /// Files staged (`add`) or committed (`commit`).
    pub files: Vec<String>,
    /// Files with uncommitted changes that a checkout overwrote.
    pub uncommitted: Vec<String>,
    /// Where those changes were saved first.
    pub saved: Vec<RelPath>,
}

#[derive(Default)]
pub(super) struct GitState {
    /// Opened on first use, so runbooks that never touch git work outside a repository.
    repo: RefCell<Option<Repo>>,
    plan: RefCell<Plan>,
}

/// What a dry run would have done to the repository so far.
#[derive(Default, Clone)]
struct Plan {
    /// Index entries staged by this dry run: path → content (`None`: a deletion).
    index: BTreeMap<String, Bytes>,
    /// Planned commits, oldest first; each holds every path whose content differs from
    /// the real `HEAD`'s at that commit (so the newest one alone describes the new `HEAD`).
    commits: Vec<PlannedCommit>,
    /// Planned tags and the commit each points at.
    tags: BTreeMap<String, Rev>,
}

#[derive(Clone)]
struct PlannedCommit {
    subject: String,
    tree: BTreeMap<String, Bytes>,
}

/// A revision as the run sees it: a real one, or the N-th commit this dry run plans.
#[derive(Clone, Debug, PartialEq)]
enum Rev {
    Real(String),
    Planned(usize),
}

pub(super) fn repo(ws: &Workspace) -> Result<Repo> {
    // Git reads the work tree itself: a registry change the step staged is written first.
    ws.settle()?;
    if let Some(repo) = ws.git.repo.borrow().as_ref() {
        return Ok(repo.clone());
    }
    let repo = Repo::open(ws.root.path())?;
    *ws.git.repo.borrow_mut() = Some(repo.clone());
    Ok(repo)
}

fn plan(ws: &Workspace) -> std::cell::Ref<'_, Plan> {
    ws.git.plan.borrow()
}

/// Pathspecs for git: workspace-relative, `.` for the root.
pub fn specs(paths: &[RelPath]) -> Vec<String> {
    paths
        .iter()
        .map(|p| {
            if p.is_root() {
                ".".to_string()
            } else {
                p.as_str().to_string()
            }
        })
        .collect()
}

fn under(path: &str, specs: &[String]) -> bool {
    specs.is_empty()
        || specs.iter().any(|s| {
            s == "."
                || path == s
                || (path.starts_with(s.as_str()) && path.as_bytes().get(s.len()) == Some(&b'/'))
        })
}

/// Resolve `rev` through the planned commits: `HEAD`, `@`, `HEAD~N`, `HEAD^`, the current
/// branch and planned tags move with them; anything else is a real revision.
fn translate(ws: &Workspace, rev: &str) -> Result<Rev> {
    let plan = plan(ws);
    if let Some(n) = rev
        .strip_prefix("planned:")
        .and_then(|n| n.parse::<usize>().ok())
    {
        if n >= 1 && n <= plan.commits.len() {
            return Ok(Rev::Planned(n));
        }
    }
    if let Some(target) = plan.tags.get(rev) {
        return Ok(target.clone());
    }
    let k = plan.commits.len();
    if k == 0 {
        return Ok(Rev::Real(rev.to_string()));
    }
    let (base, back) = match rev.split_once('~') {
        Some((b, "")) => (b, 1),
        Some((b, n)) => match n.parse::<usize>() {
            Ok(n) => (b, n),
            Err(_) => return Ok(Rev::Real(rev.to_string())),
        },
        None => match rev.strip_suffix('^') {
            Some(b) => (b, 1),
            None => (rev, 0),
        },
    };
    let is_head = base == "HEAD" || base == "@" || {
        drop(plan);
        repo(ws)?.branch()?.as_deref() == Some(base)
    };
    if !is_head {
        return Ok(Rev::Real(rev.to_string()));
    }
    Ok(if back < k {
        Rev::Planned(k - back)
    } else if back == k {
        Rev::Real("HEAD".into())
    } else {
        Rev::Real(format!("HEAD~{}", back - k))
    })
}

/// The content of `path` at a revision, or `None` when it has no such file.
fn content_at(ws: &Workspace, repo: &Repo, rev: &Rev, path: &str) -> Result<Bytes> {
    match rev {
        Rev::Planned(j) => {
            if let Some(v) = plan(ws).commits[j - 1].tree.get(path) {
                return Ok(v.clone());
            }
            content_at(ws, repo, &Rev::Real("HEAD".into()), path)
        }
        Rev::Real(r) => {
            let commit = repo.resolve(r)?;
            if !repo.files_at(&commit, &[path])?.iter().any(|p| p == path) {
                return Ok(None);
            }
            Ok(Some(Rc::from(repo.show(&commit, path)?)))
        }
    }
}

/// The files under `specs` in a revision.
fn files_at(ws: &Workspace, repo: &Repo, rev: &Rev, specs: &[String]) -> Result<Vec<String>> {
    match rev {
        Rev::Real(r) => repo.files_at(r, specs),
        Rev::Planned(j) => {
            let mut files: BTreeSet<String> = match repo.head() {
                Ok(_) => repo.files_at("HEAD", specs)?.into_iter().collect(),
                Err(_) => BTreeSet::new(),
            };
            for (p, v) in &plan(ws).commits[j - 1].tree {
                if under(p, specs) {
                    if v.is_some() {
                        files.insert(p.clone());
                    } else {
                        files.remove(p);
                    }
                }
            }
            Ok(files.into_iter().collect())
        }
    }
}

/// The run's view of a work-tree file: its content, or `None` when it does not exist (or
/// is a directory).
fn view(ws: &Workspace, path: &str) -> Bytes {
    let rel = ws.resolve(path).ok()?;
    if !ws.exists(&rel) || ws.is_dir(&rel) {
        return None;
    }
    ws.read(&rel).ok()
}

/// Contents of one path in the model: `HEAD` and the index.
struct Model<'a> {
    ws: &'a Workspace,
    repo: &'a Repo,
    head_files: BTreeSet<String>,
    real_staged: BTreeSet<String>,
}

impl<'a> Model<'a> {
    fn new(ws: &'a Workspace, repo: &'a Repo) -> Result<Model<'a>> {
        let head_files = match repo.head() {
            Ok(_) => repo.files_at("HEAD", &[] as &[&str])?.into_iter().collect(),
            Err(_) => BTreeSet::new(),
        };
        let real_staged = repo.staged_paths()?.into_iter().collect();
        Ok(Model {
            ws,
            repo,
            head_files,
            real_staged,
        })
    }

    fn real_head(&self, path: &str) -> Result<Bytes> {
        if !self.head_files.contains(path) {
            return Ok(None);
        }
        Ok(Some(Rc::from(self.repo.show("HEAD", path)?)))
    }

    fn head(&self, path: &str) -> Result<Bytes> {
        if let Some(last) = plan(self.ws).commits.last() {
            if let Some(v) = last.tree.get(path) {
                return Ok(v.clone());
            }
        }
        self.real_head(path)
    }

    fn index(&self, path: &str) -> Result<Bytes> {
        if let Some(v) = plan(self.ws).index.get(path) {
            return Ok(v.clone());
        }
        if self.real_staged.contains(path) {
            return Ok(self.repo.show_staged(path)?.map(Rc::from));
        }
        self.real_head(path)
    }

    fn is_dirty(&self, path: &str) -> Result<bool> {
        let worktree = view(self.ws, path);
        let head = self.head(path)?;
        let index = self.index(path)?;
        if head.is_none() && index.is_none() {
            return Ok(worktree.is_some() && !self.repo.is_ignored(path)?);
        }
        Ok(worktree != head || index != head)
    }
}

/// Files under `paths` (everything when empty) that differ from `HEAD`, staged or not, and
/// untracked files git does not ignore, as the run sees them.
pub fn dirty(ws: &Workspace, paths: &[RelPath]) -> Result<Vec<String>> {
    let repo = repo(ws)?;
    let specs = specs(paths);
    let mut candidates: BTreeSet<String> = repo.dirty_paths(&specs)?.into_iter().collect();
    if !ws.simulating() {
        return Ok(candidates.into_iter().collect());
    }
    let simulated: Vec<String> = ws
        .simulated_files()?
        .into_iter()
        .map(|(p, _)| p.as_str().to_string())
        .filter(|p| under(p, &specs))
        .collect();
    {
        let plan = plan(ws);
        if simulated.is_empty() && plan.index.is_empty() && plan.commits.is_empty() {
            return Ok(candidates.into_iter().collect());
        }
        candidates.extend(simulated);
        candidates.extend(plan.index.keys().filter(|p| under(p, &specs)).cloned());
        if let Some(last) = plan.commits.last() {
            candidates.extend(last.tree.keys().filter(|p| under(p, &specs)).cloned());
        }
    }
    let model = Model::new(ws, &repo)?;
    let mut out = Vec::new();
    for c in candidates {
        if model.is_dirty(&c)? {
            out.push(c);
        }
    }
    Ok(out)
}

fn is_binary(b: &[u8]) -> bool {
    b[..b.len().min(8000)].contains(&0)
}

fn line_counts(old: &[u8], new: &[u8]) -> (u64, u64) {
    let (old, new) = (String::from_utf8_lossy(old), String::from_utf8_lossy(new));
    let diff = similar::TextDiff::from_lines(old.as_ref(), new.as_ref());
    let (mut added, mut deleted) = (0, 0);
    for change in diff.iter_all_changes() {
        match change.tag() {
            similar::ChangeTag::Insert => added += 1,
            similar::ChangeTag::Delete => deleted += 1,
            similar::ChangeTag::Equal => {}
        }
    }
    (added, deleted)
}

/// The files `git checkout REV -- PATHS` would change, compared with the run's view.
pub fn checkout_changes(ws: &Workspace, rev: &str, paths: &[RelPath]) -> Result<Vec<FileChange>> {
    let repo = repo(ws)?;
    let specs = specs(paths);
    let target = translate(ws, rev)?;
    if !ws.simulating() {
        return repo.checkout_changes(rev, &specs);
    }
    let files = files_at(ws, &repo, &target, &specs)?;
    let from_git: BTreeMap<String, FileChange> = match &target {
        Rev::Real(r) => repo
            .checkout_changes(r, &specs)?
            .into_iter()
            .map(|c| (c.path.clone(), c))
            .collect(),
        Rev::Planned(_) => {
            for s in &specs {
                if s != "." && !files.iter().any(|f| under(f, std::slice::from_ref(s))) {
                    return Err(Error::Git {
                        command: format!("git checkout {rev} -- {s}"),
                        message: format!("`{s}` does not exist in `{rev}`"),
                    });
                }
            }
            BTreeMap::new()
        }
    };
    let mut touched: BTreeSet<String> = ws
        .simulated_files()?
        .into_iter()
        .map(|(p, _)| p.as_str().to_string())
        .collect();
    if let Rev::Planned(j) = target {
        touched.extend(plan(ws).commits[j - 1].tree.keys().cloned());
    }
    let mut out = Vec::new();
    for f in files {
        if !touched.contains(&f) {
            if let Some(c) = from_git.get(&f) {
                out.push(c.clone());
            }
            continue;
        }
        let Some(new) = content_at(ws, &repo, &target, &f)? else {
            continue;
        };
        let binary = is_binary(&new);
        match view(ws, &f) {
            None => {
                let added = if binary { 0 } else { line_counts(b"", &new).0 };
                out.push(FileChange {
                    path: f,
                    status: 'D',
                    added,
                    deleted: 0,
                    binary,
                });
            }
            Some(old) if old[..] != new[..] => {
                let binary = binary || is_binary(&old);
                let (added, deleted) = if binary {
                    (0, 0)
                } else {
                    line_counts(&old, &new)
                };
                out.push(FileChange {
                    path: f,
                    status: 'M',
                    added,
                    deleted,
                    binary,
                });
            }
            Some(_) => {}
        }
    }
    out.sort_by(|a, b| a.path.cmp(&b.path));
    Ok(out)
}

/// `git checkout REV -- PATHS`, saving uncommitted work it would overwrite first.
pub(super) fn checkout(ws: &Workspace, rev: &str, paths: &[RelPath]) -> Result<GitOutcome> {
    let repo = repo(ws)?;
    let specs = specs(paths);
    let target = translate(ws, rev)?;
    let commit = match &target {
        Rev::Real(r) => repo.resolve(r)?,
        Rev::Planned(j) => format!("planned:{j}"),
    };
    // Also refuses, as git would, a path that matches nothing in the revision.
    let changes = checkout_changes(ws, rev, paths)?;
    // The checkout writes every file under the paths that exists in the revision, into the
    // index and the work tree; such a file with uncommitted changes (or untracked) would
    // lose them.
    let written: Vec<String> = files_at(ws, &repo, &target, &specs)?;
    let written_set: BTreeSet<&String> = written.iter().collect();
    let at_risk: Vec<String> = dirty(ws, paths)?
        .into_iter()
        .filter(|p| written_set.contains(p))
        .collect();
    let (saved, copies) = save(ws, &repo, &at_risk)?;
    if ws.simulating() {
        for f in &written {
            let content = content_at(ws, &repo, &target, f)?;
            if let Some(bytes) = &content {
                if view(ws, f).as_deref() != Some(&bytes[..]) {
                    let rel = ws.resolve_writable(f)?;
                    ws.simulate_write(&rel, bytes);
                }
            }
            ws.git.plan.borrow_mut().index.insert(f.clone(), content);
        }
    } else {
        ws.log_disk(undo_record(
            ws, &repo, &target, &changes, &at_risk, &copies, &saved,
        )?);
        repo.checkout(rev, &specs)?;
        for c in &changes {
            if let Ok(rel) = ws.resolve(&c.path) {
                ws.touch(&rel, true);
            }
        }
    }
    Ok(GitOutcome {
        commit: Some(commit),
        changes,
        uncommitted: at_risk,
        saved,
        ..GitOutcome::default()
    })
}

/// Keep what a checkout would destroy of `files`: a patch of their changes against `HEAD`
/// (and of their staged state when that differs), and a copy of each file as it is now, at
/// its own path in the trash so that `runbook trash restore` knows it.
/// Also returns, for each file copied, where its copy is.
fn save(
    ws: &Workspace,
    repo: &Repo,
    files: &[String],
) -> Result<(Vec<RelPath>, BTreeMap<String, RelPath>)> {
    let mut kept = Vec::new();
    let mut copies = BTreeMap::new();
    if files.is_empty() {
        return Ok((kept, copies));
    }
    let (worktree, staged): (Vec<u8>, Vec<u8>) = if ws.simulating() {
        // Only whether each patch would be empty matters here (a dry run writes neither).
        let model = Model::new(ws, repo)?;
        let (mut wt, mut st, mut differ) = (false, false, false);
        for f in files {
            let (v, h, i) = (view(ws, f), model.head(f)?, model.index(f)?);
            let tracked = h.is_some() || i.is_some();
            wt |= tracked && v != h;
            st |= i != h;
            differ |= tracked && i != v;
        }
        let mark = |b: bool| if b { vec![1u8] } else { Vec::new() };
        let staged = if st && (differ || !wt) {
            vec![2u8]
        } else if st {
            mark(wt)
        } else {
            Vec::new()
        };
        (mark(wt), staged)
    } else {
        (repo.diff_patch(files)?, repo.staged_patch(files)?)
    };
    if !worktree.is_empty() {
        kept.push(ws.keep_in_trash("git-checkout-uncommitted.patch", &worktree)?);
    }
    if !staged.is_empty() && staged != worktree {
        kept.push(ws.keep_in_trash("git-checkout-staged.patch", &staged)?);
    }
    for file in files {
        let rel = ws.resolve(file)?;
        if ws.exists(&rel) && !ws.is_dir(&rel) {
            let bytes = ws.read(&rel)?;
            let copy = ws.keep_in_trash(rel.as_str(), &bytes)?;
            copies.insert(file.clone(), copy.clone());
            kept.push(copy);
        }
    }
    Ok((kept, copies))
}

/// The sha256 of a file's content, hex (`None`: no file).
pub(super) fn sha_hex(bytes: Option<&[u8]>) -> Option<String> {
    use sha2::{Digest, Sha256};
    bytes.map(|b| {
        Sha256::digest(b)
            .iter()
            .map(|x| format!("{x:02x}"))
            .collect()
    })
}

/// What `runbook undo` needs to take a checkout back, logged before git runs (see
/// `recovery.rs`): for every file whose work-tree content or index entry the checkout
/// changes, its content before (the trash copy of a file with uncommitted changes, `HEAD`'s
/// blob for a clean one, nothing for a file that did not exist) and after, as hashes; the
/// `HEAD` it was made on, whose entries the index is reset to; and the patch of what was
/// staged, which is applied to the index again.
fn undo_record(
    ws: &Workspace,
    repo: &Repo,
    target: &Rev,
    changes: &[FileChange],
    at_risk: &[String],
    copies: &BTreeMap<String, RelPath>,
    saved: &[RelPath],
) -> Result<serde_json::Value> {
    let head = repo.head().ok();
    let mut paths: BTreeSet<&str> = changes.iter().map(|c| c.path.as_str()).collect();
    paths.extend(at_risk.iter().map(String::as_str));
    let mut files = Vec::new();
    for path in paths {
        let before = view(ws, path);
        let after = content_at(ws, repo, target, path)?;
        let source = match (&before, copies.get(path)) {
            (None, _) => serde_json::Value::Null,
            (Some(_), Some(copy)) => serde_json::json!({"kept": copy.as_str()}),
            (Some(_), None) => serde_json::json!({"head": head}),
        };
        files.push(serde_json::json!({
            "path": path,
            "before": sha_hex(before.as_deref()),
            "after": sha_hex(after.as_deref()),
            "from": source,
        }));
    }
    // `save` keeps the staged patch apart only when it differs from the work tree's.
    let staged_before = !at_risk.is_empty() && !repo.staged_patch(at_risk)?.is_empty();
    let named = |name: &str| {
        saved
            .iter()
            .find(|k| {
                k.as_str()
                    .rsplit('/')
                    .next()
                    .is_some_and(|n| n.starts_with(name))
            })
            .map(|k| k.as_str().to_string())
    };
    let staged = if staged_before {
        named("git-checkout-staged.patch").or_else(|| named("git-checkout-uncommitted.patch"))
    } else {
        None
    };
    Ok(serde_json::json!({"checkout": head, "files": files, "staged": staged}))
}

/// The index entries of `paths` as they are in `commit` (`git reset -q COMMIT -- PATHS`),
/// then a saved patch of staged changes applied to the index again: how `runbook undo`
/// takes back what a checkout did to the index. A dry run sets its model's entries.
pub(super) fn restore_index(
    ws: &Workspace,
    commit: &str,
    paths: &[RelPath],
    staged: Option<&RelPath>,
) -> Result<GitOutcome> {
    let repo = repo(ws)?;
    let files: Vec<String> = paths.iter().map(|p| p.as_str().to_string()).collect();
    if ws.simulating() {
        // The staged patch is not modelled: an undo has no later step that reads the index.
        for f in &files {
            let content = content_at(ws, &repo, &Rev::Real(commit.to_string()), f)?;
            ws.git.plan.borrow_mut().index.insert(f.clone(), content);
        }
    } else {
        repo.reset_index(commit, &files)?;
        if let Some(patch) = staged {
            repo.apply_patch_to_index(&ws.read(patch)?)?;
        }
    }
    Ok(GitOutcome {
        commit: Some(commit.to_string()),
        files,
        ..GitOutcome::default()
    })
}

/// `git add -A -- PATHS`.
pub(super) fn add(ws: &Workspace, paths: &[RelPath]) -> Result<GitOutcome> {
    let repo = repo(ws)?;
    let files = dirty(ws, paths)?;
    if ws.simulating() {
        for f in &files {
            let content = view(ws, f);
            ws.git.plan.borrow_mut().index.insert(f.clone(), content);
        }
    } else {
        repo.add(&specs(paths))?;
    }
    Ok(GitOutcome {
        files,
        ..GitOutcome::default()
    })
}

/// Fail before anything is staged when a commit could not be made.
pub fn check_commit(ws: &Workspace, message: &str, all: bool) -> Result<()> {
    if message.trim().is_empty() {
        return Err(Error::invalid(
            "commit message",
            "is empty; say what the commit changes",
        ));
    }
    let command = if all {
        "git add -A && git commit"
    } else {
        "git commit"
    };
    repo(ws)?.check_identity(command)
}

/// `git commit -m MESSAGE`, after `git add -A .` when `all` is set.
pub(super) fn commit(ws: &Workspace, message: &str, all: bool) -> Result<GitOutcome> {
    check_commit(ws, message, all)?;
    let repo = repo(ws)?;
    let command = if all {
        "git add -A && git commit"
    } else {
        "git commit"
    };
    let nothing = |ws: &Workspace| {
        let why = if all {
            "the work tree is clean"
        } else {
            "nothing is staged; stage changes with `git::add` first, or use `git::commit_all`"
        };
        Error::Git {
            command: command.into(),
            message: format!("nothing to commit in `{}`: {why}", ws.root.path().display()),
        }
    };
    if !ws.simulating() {
        if all {
            repo.add(&[] as &[&str])?;
        }
        let files = repo.staged_paths()?;
        if files.is_empty() {
            return Err(nothing(ws));
        }
        let sha = repo.commit(message)?;
        return Ok(GitOutcome {
            commit: Some(sha),
            files,
            ..GitOutcome::default()
        });
    }
    let model = Model::new(ws, &repo)?;
    let mut candidates: BTreeSet<String> = model.real_staged.clone();
    candidates.extend(plan(ws).index.keys().cloned());
    if all {
        candidates.extend(dirty(ws, &[])?);
    }
    let mut entries: BTreeMap<String, Bytes> = BTreeMap::new();
    for f in candidates {
        let content = if all { view(ws, &f) } else { model.index(&f)? };
        if content != model.head(&f)? {
            // Ignored untracked files are not picked up by `git add -A`.
            if model.head(&f)?.is_none() && model.index(&f)?.is_none() && repo.is_ignored(&f)? {
                continue;
            }
            entries.insert(f, content);
        }
    }
    if entries.is_empty() {
        return Err(nothing(ws));
    }
    let files: Vec<String> = entries.keys().cloned().collect();
    let mut plan = ws.git.plan.borrow_mut();
    let mut tree = plan
        .commits
        .last()
        .map(|c| c.tree.clone())
        .unwrap_or_default();
    for (f, content) in entries {
        plan.index.insert(f.clone(), content.clone());
        tree.insert(f, content);
    }
    plan.commits.push(PlannedCommit {
        subject: message.lines().next().unwrap_or_default().to_string(),
        tree,
    });
    Ok(GitOutcome {
        commit: None,
        files,
        ..GitOutcome::default()
    })
}

/// Fail as `git::tag(name, ..)` would because of the name, counting planned tags.
pub fn check_tag(ws: &Workspace, name: &str) -> Result<()> {
    repo(ws)?.check_new_tag(name)?;
    if plan(ws).tags.contains_key(name) {
        return Err(Error::Git {
            command: format!("git tag -a {name}"),
            message: format!(
                "tag `{name}` would already exist: this dry run creates it earlier; choose another name"
            ),
        });
    }
    Ok(())
}

/// `git tag -a NAME -m MESSAGE` on `HEAD`.
pub(super) fn tag(ws: &Workspace, name: &str, message: &str) -> Result<GitOutcome> {
    let repo = repo(ws)?;
    check_tag(ws, name)?;
    if message.trim().is_empty() {
        return Err(Error::invalid(
            format!("message of tag `{name}`"),
            "is empty; an annotated tag needs a message",
        ));
    }
    let planned = plan(ws).commits.len();
    let head = if planned > 0 {
        None
    } else {
        Some(repo.head()?)
    };
    repo.check_identity(&format!("git tag -a {name}"))?;
    if ws.simulating() {
        let target = if planned > 0 {
            Rev::Planned(planned)
        } else {
            Rev::Real(head.clone().unwrap_or_default())
        };
        ws.git
            .plan
            .borrow_mut()
            .tags
            .insert(name.to_string(), target);
    } else {
        repo.tag_annotated(name, message)?;
    }
    Ok(GitOutcome {
        commit: head,
        ..GitOutcome::default()
    })
}

// ----- reads that see the plan ---------------------------------------------------------------

pub fn head(ws: &Workspace) -> Result<String> {
    let k = plan(ws).commits.len();
    if k > 0 {
        return Ok(format!("planned:{k}"));
    }
    repo(ws)?.head()
}

pub fn branch(ws: &Workspace) -> Result<Option<String>> {
    repo(ws)?.branch()
}

pub fn resolve(ws: &Workspace, rev: &str) -> Result<String> {
    match translate(ws, rev)? {
        Rev::Planned(j) => Ok(format!("planned:{j}")),
        Rev::Real(r) => repo(ws)?.resolve(&r),
    }
}

pub fn show(ws: &Workspace, rev: &str, path: &str) -> Result<Vec<u8>> {
    let repo = repo(ws)?;
    match translate(ws, rev)? {
        Rev::Real(r) => repo.show(&r, path),
        planned => content_at(ws, &repo, &planned, path)?
            .map(|b| b.to_vec())
            .ok_or_else(|| Error::Git {
                command: format!("git show {rev}:{path}"),
                message: format!("`{path}` does not exist as a file in `{rev}`"),
            }),
    }
}

pub fn log(ws: &Workspace, n: usize) -> Result<Vec<LogEntry>> {
    let planned: Vec<LogEntry> = plan(ws)
        .commits
        .iter()
        .enumerate()
        .rev()
        .map(|(i, c)| LogEntry {
            commit: format!("planned:{}", i + 1),
            author: "(planned by this dry run)".into(),
            email: String::new(),
            date: chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
            subject: c.subject.clone(),
        })
        .take(n)
        .collect();
    let rest = n - planned.len();
    let mut out = planned;
    out.extend(repo(ws)?.log(rest)?);
    Ok(out)
}

pub fn tags(ws: &Workspace) -> Result<Vec<String>> {
    let mut tags: BTreeSet<String> = repo(ws)?.tags()?.into_iter().collect();
    tags.extend(plan(ws).tags.keys().cloned());
    Ok(tags.into_iter().collect())
}
