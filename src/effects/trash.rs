//! The trash: the other half of "nothing lost", and `runbook trash list|restore|purge`.
//!
//! Runs never delete: a removed file, and the old content of an overwritten one, goes to
//! `.runbook/trash/<run-id>/<workspace path>`, and a second one of the same path in one run
//! gets a `~N` suffix. This file is the one place that knows that layout. The commands work
//! like a run does, relative to the workspace's directory handle and without following
//! links: a restore never lands outside the workspace, never overwrites, and refuses to put
//! two kept versions onto one path.

use super::disk;
use super::path::RelPath;
use super::sandbox::Root;
use crate::error::{Error, Result};
use crate::output::outln;
use rustix::fs::FileType;
use std::path::Path;

pub const TRASH: &str = ".runbook/trash";

/// `.runbook/trash/<run-id>/<rel>`, or with `~1`, `~2`… until `taken` says it is free.
pub fn place(run_id: &str, rel: &RelPath, taken: impl Fn(&RelPath) -> bool) -> RelPath {
    let base = format!("{TRASH}/{run_id}/{}", rel.as_str());
    std::iter::once(base.clone())
        .chain((1..).map(|n| format!("{base}~{n}")))
        .map(RelPath::from_trusted)
        .find(|r| !taken(r))
        .expect("an unbounded sequence of names has a free one")
}

/// The workspace path a trash entry came from: `a/b.json~2` came from `a/b.json`.
pub fn original_path(entry: &str) -> &str {
    match entry.rsplit_once('~') {
        Some((base, n))
            if !n.is_empty() && n.chars().all(|c| c.is_ascii_digit()) && !base.ends_with('/') =>
        {
            base
        }
        _ => entry,
    }
}

fn check_run_id(run_id: &str) -> Result<()> {
    if run_id.is_empty() || run_id.contains(['/', '\\']) || run_id.starts_with('.') {
        return Err(Error::Usage(format!(
            "`{run_id}` is not a run id; `runbook trash list` shows them"
        )));
    }
    Ok(())
}

fn run_dir(root: &Root, run_id: &str) -> Result<RelPath> {
    check_run_id(run_id)?;
    let dir = RelPath::from_trusted(format!("{TRASH}/{run_id}"));
    if root.dir(&dir).is_err() {
        return Err(Error::Usage(format!(
            "run `{run_id}` has nothing in the trash of `{}`; `runbook trash list` shows what there is",
            root.path().display()
        )));
    }
    Ok(dir)
}

/// Files (and links) below `dir`, as paths relative to it, sorted. Links are not followed.
fn files_below(root: &Root, dir: &RelPath) -> Vec<String> {
    let mut out = Vec::new();
    let mut stack = vec![String::new()];
    while let Some(sub) = stack.pop() {
        let here = if sub.is_empty() {
            dir.clone()
        } else {
            dir.join(&sub)
        };
        let Ok(list) = disk::list(root, &here) else {
            continue;
        };
        for (name, ft) in list {
            let path = if sub.is_empty() {
                name
            } else {
                format!("{sub}/{name}")
            };
            if ft == FileType::Directory {
                stack.push(path);
            } else {
                out.push(path);
            }
        }
    }
    out.sort();
    out
}

fn open(workspace: &Path) -> Result<Root> {
    let root = Root::open(workspace)
        .map_err(|e| Error::io(workspace.display().to_string(), "open the workspace", e))?;
    super::own::check(&root)?;
    Ok(root)
}

fn run_ids(root: &Root) -> Vec<String> {
    let mut runs: Vec<String> = disk::list(root, &RelPath::from_trusted(TRASH.into()))
        .unwrap_or_default()
        .into_iter()
        .filter(|(_, ft)| *ft == FileType::Directory)
        .map(|(n, _)| n)
        .collect();
    runs.sort();
    runs
}

pub fn list(workspace: &Path) -> Result<()> {
    let root = open(workspace)?;
    let runs = run_ids(&root);
    if runs.is_empty() {
        outln!("the trash of `{}` is empty", workspace.display());
        return Ok(());
    }
    for id in runs {
        let files = files_below(&root, &RelPath::from_trusted(format!("{TRASH}/{id}")));
        outln!("run {id}: {} file(s)", files.len());
        for f in files {
            outln!("    {f}");
        }
    }
    outln!("restore with `runbook trash restore RUN_ID [PATH...]`, delete with `runbook trash purge RUN_ID`");
    Ok(())
}

pub fn restore(workspace: &Path, run_id: &str, paths: &[String]) -> Result<()> {
    let root = open(workspace)?;
    let dir = run_dir(&root, run_id)?;
    let entries = files_below(&root, &dir);
    let chosen: Vec<&String> = if paths.is_empty() {
        entries.iter().collect()
    } else {
        let mut chosen = Vec::new();
        for p in paths {
            let p = p.trim_end_matches('/');
            let matched: Vec<&String> = entries
                .iter()
                .filter(|e| {
                    e.as_str() == p || original_path(e) == p || e.starts_with(&format!("{p}/"))
                })
                .collect();
            if matched.is_empty() {
                return Err(Error::Usage(format!("run `{run_id}` did not put `{p}` in the trash; `runbook trash list` shows what it did")));
            }
            chosen.extend(matched);
        }
        chosen.sort();
        chosen.dedup();
        chosen
    };
    // Check every target first, so a refusal leaves everything where it was: two kept
    // versions of one path (`a.json`, `a.json~1`) cannot both go back, and nothing is
    // restored over an existing file or outside the workspace.
    let mut targets: std::collections::BTreeMap<String, Vec<&String>> = Default::default();
    for e in &chosen {
        targets
            .entry(original_path(e).to_string())
            .or_default()
            .push(e);
    }
    for (target, from) in &targets {
        if from.len() > 1 {
            let names: Vec<String> = from.iter().map(|f| format!("`{f}`")).collect();
            return Err(Error::Usage(format!(
                "run `{run_id}` kept {} versions of `{target}` ({}); restore one of them by its trash name, such as `runbook trash restore {run_id} {}`",
                from.len(),
                names.join(", "),
                from[0]
            )));
        }
    }
    let mut planned = Vec::new();
    for (target, from) in &targets {
        let lexical = RelPath::normalize(target)?;
        let canon = root
            .canonical(&lexical, false)
            .map_err(|reason| Error::sandbox(target.clone(), reason))?;
        if matches!(canon.first_component(), ".runbook" | ".git") {
            return Err(Error::sandbox(
                target.clone(),
                "it resolves into `.runbook/` or `.git/`",
            ));
        }
        if root.lstat(&canon).is_ok() {
            return Err(Error::Usage(format!(
                "`{target}` exists in the workspace; move it away first (restore never overwrites)"
            )));
        }
        planned.push((dir.join(from[0]), canon, target.clone()));
    }
    for (src, dst, shown) in planned {
        disk::move_noreplace(&root, &src, &dst)
            .map_err(|e| Error::io(shown.clone(), "restore", e))?;
        outln!("restored {shown}");
    }
    Ok(())
}

/// Delete runs' trash for good: one run, every run (`all`), or the runs older than
/// `older_than` (by the time in their run id).
pub fn purge(
    workspace: &Path,
    run_id: Option<&str>,
    all: bool,
    older_than: Option<std::time::Duration>,
) -> Result<()> {
    let root = open(workspace)?;
    let ids: Vec<String> = match (run_id, all, older_than) {
        (Some(id), false, None) => {
            run_dir(&root, id)?;
            vec![id.to_string()]
        }
        (None, true, None) => run_ids(&root),
        (None, false, Some(age)) => {
            let cutoff = chrono::Utc::now()
                - chrono::Duration::from_std(age).unwrap_or(chrono::Duration::MAX);
            run_ids(&root)
                .into_iter()
                .filter(|id| {
                    id.get(..16)
                        .and_then(|t| {
                            chrono::NaiveDateTime::parse_from_str(t, "%Y%m%dT%H%M%SZ").ok()
                        })
                        .is_some_and(|t| t.and_utc() < cutoff)
                })
                .collect()
        }
        _ => {
            return Err(Error::Usage(
                "name one run id to purge, or pass `--all` or `--older-than DURATION`".into(),
            ))
        }
    };
    for id in ids {
        let dir = RelPath::from_trusted(format!("{TRASH}/{id}"));
        let n = files_below(&root, &dir).len();
        disk::remove_tree(&root, &dir).map_err(|e| Error::io(dir.to_string(), "purge", e))?;
        outln!("purged {id} ({n} file(s))");
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn original_path_strips_repeat_suffix() {
        assert_eq!(original_path("models/a.json~2"), "models/a.json");
        assert_eq!(original_path("models/a.json"), "models/a.json");
        assert_eq!(original_path("notes~draft"), "notes~draft");
    }
}
