//! `git::` — the user's git inside a run: read the repository, restore code from a revision
//! (plan §3.3.2, `git checkout HEAD~1 -- src/sl/`), stage, commit and tag (§4.2).
//!
//! [`crate::effects::gitcli::Repo`] runs the commands; this module decides what a run may do with them.
//! Every path a script passes goes through the workspace sandbox before git sees it. A real
//! run calls git and then tells the effect layer that the work tree changed. A dry run runs
//! no git command that changes the repository, the index or the work tree: a checkout puts
//! the files it would write into the dry-run overlay instead, so later reads in the run see
//! them, and what would be staged, committed and tagged is remembered here ([`Planned`]), so
//! that a later commit or tag in the same dry run reports what it would really record.
//!
//! Nothing lost: before a checkout overwrites files that have uncommitted changes (or are
//! untracked), it keeps a binary patch of those changes against `HEAD` (`git apply` puts them
//! back) and a copy of each such file in `.runbook/trash/<run-id>/`, and its log entry says
//! where. There is no switch to skip that: keeping costs a few files, losing work costs more.

use super::{Family, RhaiResult};
use crate::context::Ctx;
use crate::effects::gitcli::{FileChange, Repo};
use crate::effects::RelPath;
use crate::error::{Error, Result};
use crate::journal::ActionKind;
use rhai::{Array, Dynamic, Map, NativeCallContext};
use serde_json::json;
use std::cell::RefCell;
use std::collections::BTreeSet;
use std::rc::Rc;

/// How many files a summary names before it says "and N more".
const NAMED_IN_SUMMARY: usize = 8;

/// What a dry run would have done to the repository so far.
#[derive(Default)]
struct Planned {
    /// Files a `git::add` or `git::checkout` would have staged.
    staged: BTreeSet<String>,
    /// Tags a `git::tag` would have created.
    tags: BTreeSet<String>,
    /// Whether a commit was planned, so that a later tag says it lands on the new commit.
    committed: bool,
}

/// The git primitives' shared state for one run.
struct Git {
    ctx: Ctx,
    /// Opened on first use, so runbooks that never touch git work outside a repository.
    repo: RefCell<Option<Repo>>,
    planned: RefCell<Planned>,
}

impl Git {
    fn repo(&self) -> Result<Repo> {
        if let Some(repo) = self.repo.borrow().as_ref() {
            return Ok(repo.clone());
        }
        let repo = Repo::open(self.ctx.ws.root())?;
        *self.repo.borrow_mut() = Some(repo.clone());
        Ok(repo)
    }

    fn dry_run(&self) -> bool {
        self.ctx.ws.dry_run()
    }

    /// Paths a script gave (one string or an array of strings), checked by the sandbox.
    /// With `changing`, `.git/` and `.runbook/` are refused too; the workspace root is allowed
    /// (as `.`), since `git checkout REV -- .` and `git add .` are ordinary.
    fn paths(&self, given: &Dynamic, changing: bool) -> Result<Vec<RelPath>> {
        let items: Vec<String> = if given.is_string() {
            vec![super::dyn_to_string(given)]
        } else if let Some(array) = given.read_lock::<Array>() {
            array
                .iter()
                .map(|item| {
                    if item.is_string() {
                        Ok(super::dyn_to_string(item))
                    } else {
                        Err(Error::invalid(
                            "paths",
                            format!("must be strings, got `{item}` ({})", item.type_name()),
                        ))
                    }
                })
                .collect::<Result<_>>()?
        } else {
            return Err(Error::invalid(
                "paths",
                format!(
                    "must be a path or an array of paths, got `{given}` ({})",
                    given.type_name()
                ),
            ));
        };
        if items.is_empty() {
            return Err(Error::invalid(
                "paths",
                "are empty; name the files or directories, such as `src/sl/`",
            ));
        }
        items
            .iter()
            .map(|p| {
                let rel = self.ctx.ws.resolve(p)?;
                if changing && !rel.is_root() {
                    self.ctx.ws.resolve_writable(p)
                } else {
                    Ok(rel)
                }
            })
            .collect()
    }

    /// `src/sl/` for a directory, `.` for the root: how a person writes the pathspec.
    fn shown(&self, rel: &RelPath) -> String {
        if rel.is_root() {
            ".".into()
        } else if self.ctx.ws.is_dir(rel) {
            format!("{rel}/")
        } else {
            rel.to_string()
        }
    }

    fn shown_list(&self, paths: &[RelPath]) -> String {
        let shown: Vec<String> = paths.iter().map(|p| self.shown(p)).collect();
        name_list(&shown)
    }

    /// Files under `paths` (everything when empty) that differ from `HEAD`, untracked files
    /// included, as the run sees them. In a dry run that is the disk with the overlay's writes
    /// and removals applied: a file the run would have restored to its `HEAD` content is clean,
    /// a new file is dirty unless `.gitignore` ignores it.
    fn dirty(&self, repo: &Repo, paths: &[RelPath]) -> Result<Vec<String>> {
        let specs = specs(paths);
        let mut dirty: BTreeSet<String> = repo.dirty_paths(&specs)?.into_iter().collect();
        if !self.dry_run() {
            return Ok(dirty.into_iter().collect());
        }
        let simulated: Vec<_> = self
            .ctx
            .ws
            .simulated_files()?
            .into_iter()
            .filter(|(rel, _)| paths.is_empty() || paths.iter().any(|p| rel.is_within(p)))
            .collect();
        if simulated.is_empty() {
            return Ok(dirty.into_iter().collect());
        }
        // One listing of HEAD, so that only files written over tracked ones need their
        // content from git; a dry run may have removed thousands of files.
        let in_head: BTreeSet<String> = match repo.head() {
            Ok(_) => repo.files_at("HEAD", &specs)?.into_iter().collect(),
            Err(_) => BTreeSet::new(),
        };
        for (rel, content) in simulated {
            let tracked = in_head.contains(rel.as_str());
            let differs = match content {
                None => tracked,
                Some(_) if !tracked => true,
                Some(content) => {
                    let at_head = repo.show("HEAD", rel.as_str())?;
                    content.bytes(&rel)?[..] != at_head[..]
                }
            };
            // A new file counts only if `git add -A` would pick it up.
            if differs && (tracked || !repo.is_ignored(rel.as_str())?) {
                dirty.insert(rel.as_str().to_string());
            } else {
                dirty.remove(rel.as_str());
            }
        }
        Ok(dirty.into_iter().collect())
    }

    fn checkout_changes(&self, rev: &str, given: &Dynamic) -> Result<Array> {
        let paths = self.paths(given, true)?;
        let repo = self.repo()?;
        let changes = repo.checkout_changes(rev, &specs(&paths))?;
        Ok(changes.iter().map(change_map).collect())
    }

    /// `git checkout REV -- PATHS`, saving uncommitted work first.
    fn checkout(&self, rev: &str, given: &Dynamic) -> Result<Map> {
        let ws = &self.ctx.ws;
        let paths = self.paths(given, true)?;
        let specs = specs(&paths);
        let repo = self.repo()?;
        let commit = repo.resolve(rev)?;
        // Also refuses, as git would, a path that matches nothing in the revision.
        let changes = repo.checkout_changes(rev, &specs)?;

        // The checkout writes every file under the paths that exists in the revision, into
        // the index and the work tree; such a file with uncommitted changes (or untracked)
        // would lose them.
        let written: BTreeSet<String> = repo.files_at(&commit, &specs)?.into_iter().collect();
        let at_risk: Vec<String> = self
            .dirty(&repo, &paths)?
            .into_iter()
            .filter(|p| written.contains(p))
            .collect();
        let saved = self.save(&repo, &at_risk)?;

        if ws.dry_run() {
            for change in &changes {
                let rel = ws.resolve(&change.path)?;
                let bytes = repo.show(&commit, &change.path)?;
                ws.simulate_write(&rel, &bytes);
                // The index gets the revision's content too; it is a staged change unless
                // that is what `HEAD` has.
                if repo.show("HEAD", &change.path).ok().as_deref() != Some(&bytes[..]) {
                    self.planned.borrow_mut().staged.insert(change.path.clone());
                }
            }
        } else {
            repo.checkout(rev, &specs)?;
        }

        let described: Vec<String> = changes.iter().map(describe_change).collect();
        let files = if changes.is_empty() {
            "no file changes".to_string()
        } else {
            format!(
                "{}: {}",
                count(changes.len(), "file"),
                name_list_plain(&described)
            )
        };
        let saved_names: Vec<String> = saved.iter().map(|p| p.to_string()).collect();
        let kept = if saved.is_empty() {
            String::new()
        } else {
            format!(
                "; uncommitted changes to {} saved first to {}",
                count(at_risk.len(), "file"),
                name_list(&saved_names)
            )
        };
        self.ctx.journal.action(
            ActionKind::Git,
            "git.checkout",
            json!({"rev": rev, "commit": commit, "paths": specs}),
            &format!(
                "check out {} at `{rev}` ({files}){kept}",
                self.shown_list(&paths)
            ),
            Some(json!({
                "files": changes.iter().map(change_json).collect::<Vec<_>>(),
                "uncommitted": at_risk,
                "saved": saved_names,
            })),
        );
        let mut out = Map::new();
        out.insert("commit".into(), commit.into());
        out.insert(
            "files".into(),
            changes
                .iter()
                .map(|c| Dynamic::from(c.path.clone()))
                .collect::<Array>()
                .into(),
        );
        out.insert(
            "saved".into(),
            saved_names
                .into_iter()
                .map(Dynamic::from)
                .collect::<Array>()
                .into(),
        );
        Ok(out)
    }

    /// Keep what a checkout would destroy of `files`: a patch of their changes against
    /// `HEAD` (and of their staged state when that differs), and a copy of each file as it is
    /// now, at its own path in the trash so that `runbook trash restore` knows it.
    fn save(&self, repo: &Repo, files: &[String]) -> Result<Vec<RelPath>> {
        let ws = &self.ctx.ws;
        let mut kept = Vec::new();
        if files.is_empty() {
            return Ok(kept);
        }
        let worktree = repo.diff_patch(files)?;
        if !worktree.is_empty() {
            kept.push(ws.keep_in_trash("git-checkout-uncommitted.patch", &worktree)?);
        }
        let staged = repo.staged_patch(files)?;
        if !staged.is_empty() && staged != worktree {
            kept.push(ws.keep_in_trash("git-checkout-staged.patch", &staged)?);
        }
        for file in files {
            let rel = ws.resolve(file)?;
            if ws.exists(&rel) && !ws.is_dir(&rel) {
                let bytes = ws.read(&rel)?;
                kept.push(ws.keep_in_trash(rel.as_str(), &bytes)?);
            }
        }
        Ok(kept)
    }

    /// `git add -A -- PATHS`.
    fn add(&self, given: &Dynamic) -> Result<Array> {
        let paths = self.paths(given, true)?;
        let repo = self.repo()?;
        let files = self.dirty(&repo, &paths)?;
        if self.dry_run() {
            self.planned
                .borrow_mut()
                .staged
                .extend(files.iter().cloned());
        } else {
            repo.add(&specs(&paths))?;
        }
        let what = if files.is_empty() {
            "nothing changed there".to_string()
        } else {
            format!("{}: {}", count(files.len(), "file"), name_list(&files))
        };
        self.ctx.journal.action(
            ActionKind::Git,
            "git.add",
            json!({"paths": specs(&paths)}),
            &format!("stage {} ({what})", self.shown_list(&paths)),
            Some(json!({"files": files})),
        );
        Ok(files.into_iter().map(Dynamic::from).collect())
    }

    /// `git commit -m MESSAGE`, after `git add -A .` when `all` is set.
    fn commit(&self, message: &str, all: bool) -> Result<Map> {
        if message.trim().is_empty() {
            return Err(Error::invalid(
                "commit message",
                "is empty; say what the commit changes",
            ));
        }
        let repo = self.repo()?;
        let command = if all {
            "git add -A && git commit"
        } else {
            "git commit"
        };
        // Before anything is staged, so that a missing identity leaves the index alone.
        repo.check_identity(command)?;
        let files: Vec<String> = if self.dry_run() {
            let mut files: BTreeSet<String> = repo.staged_paths()?.into_iter().collect();
            if all {
                files.extend(self.dirty(&repo, &[])?);
            } else {
                files.extend(self.planned.borrow().staged.iter().cloned());
            }
            files.into_iter().collect()
        } else {
            if all {
                repo.add(&[] as &[&str])?;
            }
            repo.staged_paths()?
        };
        if files.is_empty() {
            let why = if all {
                "the work tree is clean"
            } else {
                "nothing is staged; stage changes with `git::add` first, or use `git::commit_all`"
            };
            return Err(Error::Git {
                command: command.into(),
                message: format!(
                    "nothing to commit in `{}`: {why}",
                    self.ctx.ws.root().display()
                ),
            });
        }
        let sha = if self.dry_run() {
            let mut planned = self.planned.borrow_mut();
            planned.committed = true;
            planned.staged.clear();
            None
        } else {
            let sha = repo.commit(message)?;
            // Hooks may have changed files; cached reads must not trust the old state.
            Some(sha)
        };
        let subject = message.lines().next().unwrap_or_default();
        self.ctx.journal.action(
            ActionKind::Git,
            "git.commit",
            json!({"message": message, "all": all}),
            &format!("commit {}: \"{subject}\"", count(files.len(), "file")),
            Some(json!({"commit": sha, "files": files})),
        );
        let mut out = Map::new();
        out.insert(
            "commit".into(),
            sha.map(Dynamic::from).unwrap_or(Dynamic::UNIT),
        );
        out.insert(
            "files".into(),
            files
                .into_iter()
                .map(Dynamic::from)
                .collect::<Array>()
                .into(),
        );
        Ok(out)
    }

    /// Fail as `git::tag(name, ..)` would because of the name, counting tags this dry run
    /// would already have made.
    fn check_tag(&self, repo: &Repo, name: &str) -> Result<()> {
        repo.check_new_tag(name)?;
        if self.planned.borrow().tags.contains(name) {
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
    fn tag(&self, name: &str, message: &str) -> Result<()> {
        let repo = self.repo()?;
        self.check_tag(&repo, name)?;
        if message.trim().is_empty() {
            return Err(Error::invalid(
                format!("message of tag `{name}`"),
                "is empty; an annotated tag needs a message",
            ));
        }
        let committed = self.planned.borrow().committed;
        let head = if committed { None } else { Some(repo.head()?) };
        repo.check_identity(&format!("git tag -a {name}"))?;
        if self.dry_run() {
            self.planned.borrow_mut().tags.insert(name.to_string());
        } else {
            repo.tag_annotated(name, message)?;
        }
        let on = match &head {
            Some(sha) => format!("`{}`", &sha[..sha.len().min(12)]),
            None => "the new commit".into(),
        };
        let subject = message.lines().next().unwrap_or_default();
        self.ctx.journal.action(
            ActionKind::Git,
            "git.tag",
            json!({"name": name, "message": message}),
            &format!("create tag `{name}` on {on}: \"{subject}\""),
            Some(json!({"commit": head})),
        );
        Ok(())
    }

    fn tags(&self) -> Result<Array> {
        let mut tags: BTreeSet<String> = self.repo()?.tags()?.into_iter().collect();
        tags.extend(self.planned.borrow().tags.iter().cloned());
        Ok(tags.into_iter().map(Dynamic::from).collect())
    }

    fn show(&self, rev: &str, path: &str) -> Result<String> {
        let rel = self.ctx.ws.resolve(path)?;
        let bytes = self.repo()?.show(rev, rel.as_str())?;
        String::from_utf8(bytes).map_err(|_| {
            Error::invalid(
                format!("`{rel}` at `{rev}`"),
                "is not UTF-8 text; compare binary files with `git::checkout_changes`",
            )
        })
    }

    fn log(&self, n: i64) -> Result<Array> {
        let n = usize::try_from(n).map_err(|_| {
            Error::invalid(
                "git::log",
                format!("the number of commits must be 0 or more, got {n}"),
            )
        })?;
        Ok(self
            .repo()?
            .log(n)?
            .into_iter()
            .map(|e| {
                let mut m = Map::new();
                m.insert("commit".into(), e.commit.into());
                m.insert("author".into(), e.author.into());
                m.insert("email".into(), e.email.into());
                m.insert("date".into(), e.date.into());
                m.insert("subject".into(), e.subject.into());
                Dynamic::from_map(m)
            })
            .collect())
    }
}

/// Pathspecs for git: workspace-relative, `.` for the root.
fn specs(paths: &[RelPath]) -> Vec<String> {
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

fn count(n: usize, noun: &str) -> String {
    if n == 1 {
        format!("1 {noun}")
    } else {
        format!("{n} {noun}s")
    }
}

/// `` `a`, `b` and 3 more `` — names in backticks, the list cut short.
fn name_list(names: &[String]) -> String {
    let quoted: Vec<String> = names.iter().map(|n| format!("`{n}`")).collect();
    name_list_plain(&quoted)
}

fn name_list_plain(items: &[String]) -> String {
    let mut text = items
        .iter()
        .take(NAMED_IN_SUMMARY)
        .cloned()
        .collect::<Vec<_>>()
        .join(", ");
    if items.len() > NAMED_IN_SUMMARY {
        text.push_str(&format!(" and {} more", items.len() - NAMED_IN_SUMMARY));
    }
    text
}

/// `` `src/sl/models/traditional.py` +1 -1 `` (what the checkout writes over what is there).
fn describe_change(c: &FileChange) -> String {
    if c.binary {
        format!("`{}` (binary)", c.path)
    } else if c.status == 'D' {
        format!("`{}` restored +{}", c.path, c.added)
    } else {
        format!("`{}` +{} -{}", c.path, c.added, c.deleted)
    }
}

fn change_json(c: &FileChange) -> serde_json::Value {
    json!({"path": c.path, "status": c.status.to_string(), "added": c.added, "deleted": c.deleted, "binary": c.binary})
}

fn change_map(c: &FileChange) -> Dynamic {
    super::json_to_dynamic(&change_json(c))
}

pub fn family(ctx: &Ctx) -> Family {
    let mut f = Family::new(
        "git",
        "The workspace's git repository, through the user's `git`: read commits, branches, status and history; restore files from a revision, stage, commit and tag. Paths are relative to the workspace. A dry run runs no git command that changes anything; a checkout's files appear in the dry run's view instead.",
    );
    let git = Rc::new(Git {
        ctx: ctx.clone(),
        repo: RefCell::new(None),
        planned: RefCell::new(Planned::default()),
    });

    let g = git.clone();
    f.add(
        "head",
        &["String"],
        "The full sha of the commit `HEAD` points at.\n```rhai\nprint(`at ${git::head()}`);\n```",
        move |call: NativeCallContext| -> RhaiResult<String> {
            g.repo()
                .and_then(|r| r.head())
                .map_err(|e| g.ctx.fail_at(&call, e))
        },
    );
    let g = git.clone();
    f.add(
        "branch",
        &["Dynamic"],
        "The current branch, or `()` when `HEAD` is detached.\n```rhai\nlet b = git::branch();\nif b == () { print(\"detached HEAD\"); } else { print(`on ${b}`); }\n```",
        move |call: NativeCallContext| -> RhaiResult<Dynamic> {
            let branch = g.repo().and_then(|r| r.branch()).map_err(|e| g.ctx.fail_at(&call, e))?;
            Ok(branch.map(Dynamic::from).unwrap_or(Dynamic::UNIT))
        },
    );
    let g = git.clone();
    f.add(
        "is_clean",
        &["bool"],
        "Whether nothing in the workspace differs from `HEAD`: nothing staged, modified, deleted or untracked (ignored files do not count). In a dry run, the changes the run would have made count.\n```rhai\nassert(git::is_clean(), `uncommitted changes: ${git::dirty()}`);\n```",
        move |call: NativeCallContext| -> RhaiResult<bool> {
            let repo = g.repo().map_err(|e| g.ctx.fail_at(&call, e))?;
            Ok(g.dirty(&repo, &[]).map_err(|e| g.ctx.fail_at(&call, e))?.is_empty())
        },
    );
    let g = git.clone();
    f.add(
        "dirty",
        &["Array"],
        "The files that differ from `HEAD` (staged, modified, deleted or untracked), sorted.\n```rhai\nfor p in git::dirty() { print(`changed: ${p}`); }\n```",
        move |call: NativeCallContext| -> RhaiResult<Array> {
            let repo = g.repo().map_err(|e| g.ctx.fail_at(&call, e))?;
            let files = g.dirty(&repo, &[]).map_err(|e| g.ctx.fail_at(&call, e))?;
            Ok(files.into_iter().map(Dynamic::from).collect())
        },
    );
    let g = git.clone();
    f.add(
        "dirty",
        &["paths: Dynamic", "Array"],
        "Like `git::dirty()`, only under `paths` (a path or an array of paths).\n```rhai\nlet edits = git::dirty(\"src/sl/\");\n```",
        move |call: NativeCallContext, paths: Dynamic| -> RhaiResult<Array> {
            let run = || -> Result<Array> {
                let paths = g.paths(&paths, false)?;
                let files = g.dirty(&g.repo()?, &paths)?;
                Ok(files.into_iter().map(Dynamic::from).collect())
            };
            run().map_err(|e| g.ctx.fail_at(&call, e))
        },
    );
    let g = git.clone();
    f.add(
        "resolve",
        &["rev: &str", "String"],
        "The full sha of the commit a revision names (`HEAD~1`, a branch, a tag, a short sha); fails for an unknown one.\n```rhai\nlet previous = git::resolve(\"HEAD~1\");\n```",
        move |call: NativeCallContext, rev: &str| -> RhaiResult<String> {
            g.repo().and_then(|r| r.resolve(rev)).map_err(|e| g.ctx.fail_at(&call, e))
        },
    );
    let g = git.clone();
    f.add(
        "checkout_changes",
        &["rev: &str", "paths: Dynamic", "Array"],
        "The files `git::checkout(rev, paths)` would change, without changing anything: an array of `#{ path, status, added, deleted, binary }`, where `status` is `M` (overwritten), `D` (missing, restored), `T` (type change) or `U` (unmerged), and `added`/`deleted` count the lines the checkout writes and removes (`--stat`-like). Fails, as the checkout would, for an unknown revision or a path that is not in it.\n```rhai\nfor c in git::checkout_changes(\"HEAD~1\", \"src/sl/\") { print(`${c.path} +${c.added} -${c.deleted}`); }\n```",
        move |call: NativeCallContext, rev: &str, paths: Dynamic| -> RhaiResult<Array> {
            g.checkout_changes(rev, &paths).map_err(|e| g.ctx.fail_at(&call, e))
        },
    );
    let g = git.clone();
    f.add(
        "show",
        &["rev: &str", "path: &str", "String"],
        "The text of `path` as it is in `rev` (the plan's `git show REV:PATH`).\n```rhai\nlet old = git::show(\"HEAD~1\", \"src/sl/models/traditional.py\");\n```",
        move |call: NativeCallContext, rev: &str, path: &str| -> RhaiResult<String> { g.show(rev, path).map_err(|e| g.ctx.fail_at(&call, e)) },
    );
    let g = git.clone();
    f.add(
        "log",
        &["n: i64", "Array"],
        "The last `n` commits from `HEAD`, newest first: `#{ commit, author, email, date, subject }`.\n```rhai\nfor c in git::log(5) { print(`${c.commit.sub_string(0, 8)} ${c.subject}`); }\n```",
        move |call: NativeCallContext, n: i64| -> RhaiResult<Array> { g.log(n).map_err(|e| g.ctx.fail_at(&call, e)) },
    );
    let g = git.clone();
    f.add(
        "tags",
        &["Array"],
        "All tag names, sorted (in a dry run, with the tags it would have created).\n```rhai\nassert(\"sl-v1.0\" in git::tags(), \"the release tag is missing\");\n```",
        move |call: NativeCallContext| -> RhaiResult<Array> { g.tags().map_err(|e| g.ctx.fail_at(&call, e)) },
    );
    let g = git.clone();
    f.add(
        "checkout",
        &["rev: &str", "paths: Dynamic", "Map"],
        "Restore `paths` (a path or an array of paths) as they are in `rev`: `git checkout REV -- PATHS` (plan §3.3.2), which writes them into the index and the work tree. Files with uncommitted changes, and untracked files, that it would overwrite are saved first in `.runbook/trash/<run-id>/`: a patch of the changes (`git apply` restores them) and a copy of each file; the log says where. Files that are not in `rev` are left alone. In a dry run nothing runs, and later reads see the restored files. Returns `#{ commit, files, saved }`.\n```rhai\nlet r = git::checkout(\"HEAD~1\", \"src/sl/\");\nprint(`restored ${r.files.len()} files`);\n```",
        move |call: NativeCallContext, rev: &str, paths: Dynamic| -> RhaiResult<Map> { g.checkout(rev, &paths).map_err(|e| g.ctx.fail_at(&call, e)) },
    );
    let g = git.clone();
    f.add(
        "add",
        &["paths: Dynamic", "Array"],
        "Stage new, changed and deleted files under `paths` (`git add -A -- PATHS`; `\".\"` for the whole workspace). Returns the files staged.\n```rhai\ngit::add([\"src/sl/\", \"configs/sl/\"]);\n```",
        move |call: NativeCallContext, paths: Dynamic| -> RhaiResult<Array> { g.add(&paths).map_err(|e| g.ctx.fail_at(&call, e)) },
    );
    let g = git.clone();
    f.add(
        "commit",
        &["message: &str", "Map"],
        "Commit what is staged. Fails when nothing is staged or git does not know the user's name and e-mail. Returns `#{ commit, files }` (`commit` is `()` in a dry run).\n```rhai\ngit::add(\"configs/sl/\");\ngit::commit(\"Restore the original training configuration\");\n```",
        move |call: NativeCallContext, message: &str| -> RhaiResult<Map> { g.commit(message, false).map_err(|e| g.ctx.fail_at(&call, e)) },
    );
    let g = git.clone();
    f.add(
        "commit_all",
        &["message: &str", "Map"],
        "Stage everything in the workspace and commit it (plan §4.2: `git add -A; git commit -m MESSAGE`). Fails when nothing changed. Returns `#{ commit, files }` (`commit` is `()` in a dry run).\n```rhai\nlet c = git::commit_all(\"Backup before SL model implementation\");\nprint(`${c.files.len()} files committed`);\n```",
        move |call: NativeCallContext, message: &str| -> RhaiResult<Map> { g.commit(message, true).map_err(|e| g.ctx.fail_at(&call, e)) },
    );
    let g = git.clone();
    f.add(
        "check_tag",
        &["name: &str", "()"],
        "Fail, changing nothing, when `git::tag(name, ..)` would fail because of the name: it is not a valid tag name, or the tag exists. Lets a runbook check before it commits.\n```rhai\ngit::check_tag(\"sl-v1.1\");\n```",
        move |call: NativeCallContext, name: &str| -> RhaiResult<()> {
            g.repo().and_then(|r| g.check_tag(&r, name)).map_err(|e| g.ctx.fail_at(&call, e))
        },
    );
    let g = git.clone();
    f.add(
        "tag",
        &["name: &str", "message: &str", "()"],
        "Create the annotated tag `name` on `HEAD` (plan §4.2: `git tag -a NAME -m MESSAGE`). Fails when it exists.\n```rhai\ngit::tag(\"sl-v1.1\", \"SL Model Version 1.1\");\n```",
        move |call: NativeCallContext, name: &str, message: &str| -> RhaiResult<()> { g.tag(name, message).map_err(|e| g.ctx.fail_at(&call, e)) },
    );
    f
}
