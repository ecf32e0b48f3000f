//! `runbook trash`: the other half of "nothing lost".
//!
//! Runs never delete: removed files, and the old content of overwritten ones, are moved to
//! `.runbook/trash/<run-id>/<workspace path>` (a second copy of the same path in one run gets
//! a `~N` suffix). This module lists that trash, moves files back (never over an existing
//! file), and purges it when the user decides the files are no longer needed.

use crate::error::{Error, Result};
use std::fs;
use std::path::{Path, PathBuf};

fn trash_root(workspace: &Path) -> PathBuf {
    workspace.join(".runbook").join("trash")
}

fn run_dir(workspace: &Path, run_id: &str) -> Result<PathBuf> {
    if run_id.is_empty() || run_id.contains(['/', '\\']) || run_id == "." || run_id == ".." {
        return Err(Error::Usage(format!(
            "`{run_id}` is not a run id; `runbook trash list` shows them"
        )));
    }
    let dir = trash_root(workspace).join(run_id);
    if !dir.is_dir() {
        return Err(Error::Usage(format!("run `{run_id}` has nothing in the trash of `{}`; `runbook trash list` shows what there is", workspace.display())));
    }
    Ok(dir)
}

/// Files below `dir`, as paths relative to it, sorted.
fn files_below(dir: &Path) -> Vec<String> {
    let mut out: Vec<String> = walkdir::WalkDir::new(dir)
        .min_depth(1)
        .into_iter()
        .flatten()
        .filter(|e| !e.file_type().is_dir())
        .filter_map(|e| {
            e.path()
                .strip_prefix(dir)
                .ok()
                .and_then(|p| p.to_str())
                .map(String::from)
        })
        .collect();
    out.sort();
    out
}

/// The workspace path a trash entry came from: `a/b.json~2` came from `a/b.json`.
fn original_path(entry: &str) -> &str {
    match entry.rsplit_once('~') {
        Some((base, n))
            if !n.is_empty() && n.chars().all(|c| c.is_ascii_digit()) && !base.ends_with('/') =>
        {
            base
        }
        _ => entry,
    }
}

pub fn list(workspace: &Path) -> Result<()> {
    let root = trash_root(workspace);
    let mut runs: Vec<PathBuf> = match fs::read_dir(&root) {
        Ok(rd) => rd
            .flatten()
            .map(|e| e.path())
            .filter(|p| p.is_dir())
            .collect(),
        Err(_) => Vec::new(),
    };
    if runs.is_empty() {
        println!("the trash of `{}` is empty", workspace.display());
        return Ok(());
    }
    runs.sort();
    for run in runs {
        let files = files_below(&run);
        let id = run
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        println!("run {id}: {} file(s)", files.len());
        for f in files {
            println!("    {f}");
        }
    }
    println!("restore with `runbook trash restore RUN_ID [PATH...]`, delete with `runbook trash purge RUN_ID`");
    Ok(())
}

pub fn restore(workspace: &Path, run_id: &str, paths: &[String]) -> Result<()> {
    let dir = run_dir(workspace, run_id)?;
    let entries = files_below(&dir);
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
        chosen
    };
    // Check every target first, so a refusal leaves everything where it was.
    for e in &chosen {
        let target = workspace.join(original_path(e));
        if fs::symlink_metadata(&target).is_ok() {
            return Err(Error::Usage(format!(
                "`{}` exists in the workspace; move it away first (restore never overwrites)",
                original_path(e)
            )));
        }
    }
    for e in chosen {
        let target = workspace.join(original_path(e));
        if let Some(parent) = target.parent() {
            fs::create_dir_all(parent).map_err(|err| {
                Error::io(parent.display().to_string(), "create the directory", err)
            })?;
        }
        fs::rename(dir.join(e), &target).map_err(|err| Error::io(e.clone(), "restore", err))?;
        println!("restored {}", original_path(e));
    }
    Ok(())
}

pub fn purge(workspace: &Path, run_id: Option<&str>, all: bool) -> Result<()> {
    let dirs: Vec<PathBuf> = match (run_id, all) {
        (Some(id), false) => vec![run_dir(workspace, id)?],
        (None, true) => match fs::read_dir(trash_root(workspace)) {
            Ok(rd) => rd.flatten().map(|e| e.path()).collect(),
            Err(_) => Vec::new(),
        },
        _ => {
            return Err(Error::Usage(
                "name one run id to purge, or pass `--all`".into(),
            ))
        }
    };
    for d in dirs {
        let n = files_below(&d).len();
        fs::remove_dir_all(&d).map_err(|e| Error::io(d.display().to_string(), "purge", e))?;
        println!(
            "purged {} ({n} file(s))",
            d.file_name()
                .map(|n| n.to_string_lossy().into_owned())
                .unwrap_or_default()
        );
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
