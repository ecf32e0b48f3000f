//! `git::` — the user's git inside a run: read the repository, restore code from a revision
//! (plan §3.3.2, `git checkout HEAD~1 -- src/sl/`), stage, commit and tag (§4.2).
//!
//! These are bindings only. Every path a script passes is resolved by the workspace sandbox;
//! reads go to `effects::git`, which answers as the run sees the repository (in a dry run,
//! with the checkouts, staging, commits and tags it planned); changes are effects performed
//! or simulated by the door, which also journals them.

use super::{Family, RhaiResult};
use crate::context::Ctx;
use crate::effects::{git, Effect, GitChange as FileChange, Record, RelPath};
use crate::error::{Error, Result};
use rhai::{Array, Dynamic, Map, NativeCallContext};
use serde_json::json;
use std::rc::Rc;

/// How many files a summary names before it says "and N more".
const NAMED_IN_SUMMARY: usize = 8;

/// The git primitives' shared state for one run.
struct Git {
    ctx: Ctx,
}

impl Git {
    fn ws(&self) -> &crate::effects::Workspace {
        &self.ctx.ws
    }

    /// Paths a script gave (one string or an array of strings), checked by the sandbox.
    /// With `changing`, paths that resolve into `.git/` and `.runbook/` are refused too; the
    /// workspace root is allowed (as `.`), since `git checkout REV -- .` and `git add .` are
    /// ordinary.
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
                let rel = self.ws().resolve(p)?;
                if changing && !rel.is_root() {
                    self.ws().resolve_writable(p)
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
        } else if self.ws().is_dir(rel) {
            format!("{rel}/")
        } else {
            rel.to_string()
        }
    }

    fn shown_list(&self, paths: &[RelPath]) -> String {
        let shown: Vec<String> = paths.iter().map(|p| self.shown(p)).collect();
        name_list(&shown)
    }

    fn checkout_changes(&self, rev: &str, given: &Dynamic) -> Result<Array> {
        let paths = self.paths(given, true)?;
        let changes = git::checkout_changes(self.ws(), rev, &paths)?;
        Ok(changes.iter().map(change_map).collect())
    }

    /// `git checkout REV -- PATHS`, saving uncommitted work first.
    fn checkout(&self, rev: &str, given: &Dynamic) -> Result<Map> {
        let paths = self.paths(given, true)?;
        let specs = git::specs(&paths);
        let shown_paths = self.shown_list(&paths);
        let effect = Effect::GitCheckout {
            rev: rev.to_string(),
            paths: paths.clone(),
        };
        let done = self.ws().perform(effect, |out| {
            let g = out.git.clone().unwrap_or_default();
            let described: Vec<String> = g.changes.iter().map(describe_change).collect();
            let files = if g.changes.is_empty() {
                "no file changes".to_string()
            } else {
                format!(
                    "{}: {}",
                    count(g.changes.len(), "file"),
                    name_list_plain(&described)
                )
            };
            let saved_names: Vec<String> = g.saved.iter().map(|p| p.to_string()).collect();
            let kept = if g.saved.is_empty() {
                String::new()
            } else {
                format!(
                    "; uncommitted changes to {} saved first to {}",
                    count(g.uncommitted.len(), "file"),
                    name_list(&saved_names)
                )
            };
            Record::new(
                "git.checkout",
                json!({"rev": rev, "commit": g.commit, "paths": specs}),
                format!("check out {shown_paths} at `{rev}` ({files}){kept}"),
            )
            .with_result(json!({
                "files": g.changes.iter().map(change_json).collect::<Vec<_>>(),
                "uncommitted": g.uncommitted,
                "saved": saved_names,
            }))
        })?;
        let g = done.git.unwrap_or_default();
        let mut out = Map::new();
        out.insert("commit".into(), g.commit.unwrap_or_default().into());
        out.insert(
            "files".into(),
            g.changes
                .iter()
                .map(|c| Dynamic::from(c.path.clone()))
                .collect::<Array>()
                .into(),
        );
        out.insert(
            "saved".into(),
            g.saved
                .iter()
                .map(|p| Dynamic::from(p.to_string()))
                .collect::<Array>()
                .into(),
        );
        Ok(out)
    }

    /// `git add -A -- PATHS`.
    fn add(&self, given: &Dynamic) -> Result<Array> {
        let paths = self.paths(given, true)?;
        let shown_paths = self.shown_list(&paths);
        let specs = git::specs(&paths);
        let done = self.ws().perform(Effect::GitAdd { paths }, |out| {
            let files = out
                .git
                .as_ref()
                .map(|g| g.files.clone())
                .unwrap_or_default();
            let what = if files.is_empty() {
                "nothing changed there".to_string()
            } else {
                format!("{}: {}", count(files.len(), "file"), name_list(&files))
            };
            Record::new(
                "git.add",
                json!({"paths": specs}),
                format!("stage {shown_paths} ({what})"),
            )
            .with_result(json!({"files": files}))
        })?;
        let files = done.git.map(|g| g.files).unwrap_or_default();
        Ok(files.into_iter().map(Dynamic::from).collect())
    }

    /// `git commit -m MESSAGE`, after `git add -A .` when `all` is set.
    fn commit(&self, message: &str, all: bool) -> Result<Map> {
        // Before anything is staged, so that a missing identity leaves the index alone.
        git::check_commit(self.ws(), message, all)?;
        let subject = message.lines().next().unwrap_or_default().to_string();
        let effect = Effect::GitCommit {
            message: message.to_string(),
            all,
        };
        let done = self.ws().perform(effect, |out| {
            let g = out.git.clone().unwrap_or_default();
            Record::new(
                "git.commit",
                json!({"message": message, "all": all}),
                format!("commit {}: \"{subject}\"", count(g.files.len(), "file")),
            )
            .with_result(json!({"commit": g.commit, "files": g.files}))
        })?;
        let g = done.git.unwrap_or_default();
        let mut out = Map::new();
        out.insert(
            "commit".into(),
            g.commit.map(Dynamic::from).unwrap_or(Dynamic::UNIT),
        );
        out.insert(
            "files".into(),
            g.files
                .into_iter()
                .map(Dynamic::from)
                .collect::<Array>()
                .into(),
        );
        Ok(out)
    }

    /// `git tag -a NAME -m MESSAGE` on `HEAD`.
    fn tag(&self, name: &str, message: &str) -> Result<()> {
        let subject = message.lines().next().unwrap_or_default().to_string();
        let effect = Effect::GitTag {
            name: name.to_string(),
            message: message.to_string(),
        };
        self.ws().perform(effect, |out| {
            let head = out.git.as_ref().and_then(|g| g.commit.clone());
            let on = match &head {
                Some(sha) => format!("`{}`", &sha[..sha.len().min(12)]),
                None => "the new commit".into(),
            };
            Record::new(
                "git.tag",
                json!({"name": name, "message": message}),
                format!("create tag `{name}` on {on}: \"{subject}\""),
            )
            .with_result(json!({"commit": head}))
        })?;
        Ok(())
    }

    fn show(&self, rev: &str, path: &str) -> Result<String> {
        let rel = self.ws().resolve(path)?;
        let bytes = git::show(self.ws(), rev, rel.as_str())?;
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
        Ok(git::log(self.ws(), n)?
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
    let git = Rc::new(Git { ctx: ctx.clone() });

    let g = git.clone();
    f.add(
        "head",
        &["String"],
        "The full sha of the commit `HEAD` points at.\n```rhai\nprint(`at ${git::head()}`);\n```",
        move |call: NativeCallContext| -> RhaiResult<String> {
            git::head(g.ws()).map_err(|e| g.ctx.fail_at(&call, e))
        },
    );
    let g = git.clone();
    f.add(
        "branch",
        &["Dynamic"],
        "The current branch, or `()` when `HEAD` is detached.\n```rhai\nlet b = git::branch();\nif b == () { print(\"detached HEAD\"); } else { print(`on ${b}`); }\n```",
        move |call: NativeCallContext| -> RhaiResult<Dynamic> {
            let branch = git::branch(g.ws()).map_err(|e| g.ctx.fail_at(&call, e))?;
            Ok(branch.map(Dynamic::from).unwrap_or(Dynamic::UNIT))
        },
    );
    let g = git.clone();
    f.add(
        "is_clean",
        &["bool"],
        "Whether nothing in the workspace differs from `HEAD`: nothing staged, modified, deleted or untracked (ignored files do not count). In a dry run, the changes the run would have made count.\n```rhai\nassert(git::is_clean(), `uncommitted changes: ${git::dirty()}`);\n```",
        move |call: NativeCallContext| -> RhaiResult<bool> {
            Ok(git::dirty(g.ws(), &[]).map_err(|e| g.ctx.fail_at(&call, e))?.is_empty())
        },
    );
    let g = git.clone();
    f.add(
        "dirty",
        &["Array"],
        "The files that differ from `HEAD` (staged, modified, deleted or untracked), sorted.\n```rhai\nfor p in git::dirty() { print(`changed: ${p}`); }\n```",
        move |call: NativeCallContext| -> RhaiResult<Array> {
            let files = git::dirty(g.ws(), &[]).map_err(|e| g.ctx.fail_at(&call, e))?;
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
                let files = git::dirty(g.ws(), &paths)?;
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
            git::resolve(g.ws(), rev).map_err(|e| g.ctx.fail_at(&call, e))
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
        move |call: NativeCallContext| -> RhaiResult<Array> {
            Ok(git::tags(g.ws()).map_err(|e| g.ctx.fail_at(&call, e))?.into_iter().map(Dynamic::from).collect())
        },
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
            git::check_tag(g.ws(), name).map_err(|e| g.ctx.fail_at(&call, e))
        },
    );
    let g = git.clone();
    f.add(
        "check_commit",
        &["message: &str", "()"],
        "Fail, changing nothing, when `git::commit_all(message)` could not commit because of the message or git's identity: the message is empty, or git does not know the user's name and e-mail. Lets a runbook check before its first change.\n```rhai\ngit::check_commit(\"Backup before SL model implementation\");\n```",
        move |call: NativeCallContext, message: &str| -> RhaiResult<()> {
            git::check_commit(g.ws(), message, true).map_err(|e| g.ctx.fail_at(&call, e))
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
