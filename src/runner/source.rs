//! Where a runbook comes from: a file path, a name in the workspace's `runbooks/`, or one of
//! the runbooks shipped inside the binary (`include_str!` of `runbooks/*.rhai` and
//! `runbooks/lib/*`), in that order, so `runbook run full_rollback.rhai` works in any
//! workspace. A shipped runbook is named `shipped:NAME.rhai` wherever a path would be shown
//! (errors, the run log, `resume`), and its imports come from the shipped helpers only, so
//! the set that was tested together runs together. `runbook eject` copies a shipped runbook
//! and its helpers into the workspace for editing, and `runbook new` starts one from a
//! template; both write through the effect door, in a journaled run of their own, and never
//! overwrite a file.

use crate::effects::{Console, Durability, Effect, Record, Status, Workspace};
use crate::error::{Error, Result};
use serde_json::json;
use std::path::{Path, PathBuf};

/// What a shipped runbook's path starts with.
pub const SHIPPED_PREFIX: &str = "shipped:";

/// The runbooks and helpers compiled into the binary, by their path under `runbooks/`.
pub const SHIPPED: &[(&str, &str)] = &[
    (
        "full_rollback.rhai",
        include_str!("../../runbooks/full_rollback.rhai"),
    ),
    (
        "quick_verification.rhai",
        include_str!("../../runbooks/quick_verification.rhai"),
    ),
    (
        "restore_config.rhai",
        include_str!("../../runbooks/restore_config.rhai"),
    ),
    (
        "revert_code.rhai",
        include_str!("../../runbooks/revert_code.rhai"),
    ),
    (
        "verify_rollback.rhai",
        include_str!("../../runbooks/verify_rollback.rhai"),
    ),
    (
        "version_control.rhai",
        include_str!("../../runbooks/version_control.rhai"),
    ),
    (
        "create_backup.rhai",
        include_str!("../../runbooks/create_backup.rhai"),
    ),
    (
        "revert_model.rhai",
        include_str!("../../runbooks/revert_model.rhai"),
    ),
    (
        "remove_model_files.rhai",
        include_str!("../../runbooks/remove_model_files.rhai"),
    ),
    (
        "post_rollback_checks.rhai",
        include_str!("../../runbooks/post_rollback_checks.rhai"),
    ),
    (
        "rollback_checklist.rhai",
        include_str!("../../runbooks/rollback_checklist.rhai"),
    ),
    (
        "lib/procedures.rhai",
        include_str!("../../runbooks/lib/procedures.rhai"),
    ),
    (
        "lib/models.rhai",
        include_str!("../../runbooks/lib/models.rhai"),
    ),
    (
        "lib/validation.rhai",
        include_str!("../../runbooks/lib/validation.rhai"),
    ),
];

/// The text of a shipped file, by its path under `runbooks/` (`lib/models` or
/// `lib/models.rhai`).
pub fn shipped(name: &str) -> Option<&'static str> {
    let name = name.strip_prefix(SHIPPED_PREFIX).unwrap_or(name);
    let name = name.strip_prefix("runbooks/").unwrap_or(name);
    let with_ext = if name.ends_with(".rhai") {
        name.to_string()
    } else {
        format!("{name}.rhai")
    };
    SHIPPED
        .iter()
        .find(|(n, _)| *n == with_ext)
        .map(|(_, text)| *text)
}

/// Whether `path` names a shipped runbook (`shipped:NAME.rhai`).
pub fn is_shipped(path: &Path) -> bool {
    path.to_string_lossy().starts_with(SHIPPED_PREFIX)
}

/// The shipped runbooks (not the helpers under `lib/`), by file name.
pub fn shipped_runbooks() -> impl Iterator<Item = (&'static str, &'static str)> {
    SHIPPED.iter().copied().filter(|(n, _)| !n.contains('/'))
}

/// Read a runbook or module as the run names it: a file, or `shipped:NAME`.
pub fn read_text(path: &Path) -> std::io::Result<String> {
    let shown = path.to_string_lossy();
    if let Some(name) = shown.strip_prefix(SHIPPED_PREFIX) {
        return shipped(name)
            .map(str::to_string)
            .ok_or_else(|| std::io::Error::from(std::io::ErrorKind::NotFound));
    }
    std::fs::read_to_string(path)
}

/// Find the runbook `name` for a run against `workspace`: the file `name` when it exists,
/// else `name` (with `.rhai` added when it has no extension, a leading `runbooks/` left
/// out) in the workspace's `runbooks/`, else the shipped runbook of that name.
pub fn find(name: &Path, workspace: &Path) -> Result<PathBuf> {
    if name.is_file() || is_shipped(name) {
        return Ok(name.to_path_buf());
    }
    let text = name.to_string_lossy();
    let base = text.strip_prefix("runbooks/").unwrap_or(&text);
    let base = if Path::new(base).extension().is_none() {
        format!("{base}.rhai")
    } else {
        base.to_string()
    };
    let in_workspace = workspace.join("runbooks").join(&base);
    if !base.contains("..") && in_workspace.is_file() {
        return Ok(in_workspace);
    }
    if !base.contains('/') && shipped(&base).is_some() {
        return Ok(PathBuf::from(format!("{SHIPPED_PREFIX}{base}")));
    }
    let names: Vec<&str> = shipped_runbooks().map(|(n, _)| n).collect();
    Err(Error::Usage(format!(
        "runbook `{text}` does not exist: it is no file, not in `{}`, and no shipped runbook has that name ({}); `runbook list` shows them",
        workspace.join("runbooks").display(),
        names.join(", ")
    )))
}

/// The helpers a runbook imports (`import "lib/x" as x;`), transitively, shipped ones only.
fn shipped_imports(text: &str, out: &mut Vec<&'static str>) {
    for line in text.lines() {
        let Some(rest) = line.trim_start().strip_prefix("import \"") else {
            continue;
        };
        let Some((module, _)) = rest.split_once('"') else {
            continue;
        };
        let file = format!("{module}.rhai");
        if let Some((name, text)) = SHIPPED.iter().find(|(n, _)| *n == file) {
            if !out.contains(name) {
                out.push(name);
                shipped_imports(text, out);
            }
        }
    }
}

/// Write new files into `workspace` through the door, in a journaled run named `label`;
/// refuses, writing nothing, when one of them exists with other content (an identical one is
/// left as it is). Returns the paths written.
fn write_new(
    workspace: &Path,
    label: &str,
    files: &[(String, String)],
    console: Console,
) -> Result<Vec<String>> {
    let run_id = super::run::new_run_id();
    let ws =
        Workspace::open(workspace, &run_id, false, console)?.with_durability(Durability::EndOfRun);
    ws.check_own_files()?;
    let _lock = ws.lock()?;
    let mut todo = Vec::new();
    for (path, text) in files {
        let rel = ws.resolve_writable(path)?;
        if ws.exists(&rel) {
            if ws.read_string(&rel).ok().as_deref() == Some(text.as_str()) {
                continue;
            }
            return Err(Error::Usage(format!(
                "`{}` exists in the workspace with other content; move it away first (nothing was written: {label} never overwrites)",
                rel
            )));
        }
        todo.push((rel, text));
    }
    ws.open_log()?;
    let root = ws.display_root().to_path_buf();
    ws.journal().run_start(
        label,
        label.split(' ').next().unwrap_or(label),
        env!("CARGO_PKG_VERSION"),
        "",
        json!({}),
        &root,
        json!({}),
    );
    let mut written = Vec::new();
    let result = (|| {
        for (rel, text) in todo {
            ws.perform(
                Effect::Write {
                    path: rel.clone(),
                    bytes: text.as_bytes().to_vec(),
                },
                |_| {
                    Record::new(
                        "fs.write",
                        json!({"path": rel.as_str(), "bytes": text.len()}),
                        format!("write `{rel}` ({} bytes)", text.len()),
                    )
                },
            )?;
            written.push(rel.as_str().to_string());
        }
        Ok(())
    })();
    match &result {
        Ok(()) => ws.journal().run_end(Status::Ok, None),
        Err(e) => ws.journal().run_end(Status::Failed, Some(e)),
    }
    ws.finish()?;
    result.map(|_| written)
}

/// `runbook eject NAME`: copy the shipped runbook `NAME` and the helpers it imports into the
/// workspace's `runbooks/`, where `runbook run NAME` then finds them first.
pub fn eject(workspace: &Path, name: &str, console: Console) -> Result<Vec<String>> {
    let base = name.strip_suffix(".rhai").unwrap_or(name);
    let text = shipped_runbooks()
        .find(|(n, _)| n.strip_suffix(".rhai") == Some(base))
        .map(|(_, t)| t)
        .ok_or_else(|| {
            let names: Vec<&str> = shipped_runbooks().map(|(n, _)| n).collect();
            Error::Usage(format!(
                "no shipped runbook is called `{name}`; the shipped ones are {}",
                names.join(", ")
            ))
        })?;
    let mut helpers = Vec::new();
    shipped_imports(text, &mut helpers);
    let mut files = vec![(format!("runbooks/{base}.rhai"), text.to_string())];
    for h in helpers {
        files.push((
            format!("runbooks/{h}"),
            shipped(h).unwrap_or_default().into(),
        ));
    }
    write_new(workspace, &format!("eject {base}"), &files, console)
}

/// The template `runbook new NAME` starts from: a header, a step that checks before it
/// changes, and one change that a dry run shows without making.
pub fn template(name: &str) -> String {
    format!(
        r#"//! name: {name}
//! version: 0.1.0
//! description: Say what {name} does and which part of the rollback plan it follows.
//! param model: string = sl_forecaster -- registry name of the model
//! param note: string = checked by {name} -- what to write into the note

// Check everything a later step relies on first, so a failure changes nothing.
let prod = step "Check the preconditions" {{
    let prod = if fs::exists("models/registry.json") {{ registry::production(params.model) }} else {{ () }};
    if prod == () {{
        print(`no production version of ${{params.model}}; the note says so`);
    }} else {{
        print(`${{params.model}}: production is ${{prod.version}}`);
    }}
    prod
}};

// Every change goes through a primitive: `runbook run {name} --dry-run` shows it and changes
// nothing; a real run keeps what it overwrites in `.runbook/trash/`.
step "Write a note" {{
    let version = if prod == () {{ "none" }} else {{ prod.version }};
    fs::write(`notes/{name}_${{timestamp()}}.txt`, `${{params.note}}: production ${{version}}`);
}}
"#
    )
}

/// `runbook new NAME`: write `runbooks/NAME.rhai` from [`template`].
pub fn new_runbook(workspace: &Path, name: &str, console: Console) -> Result<Vec<String>> {
    let base = name.strip_suffix(".rhai").unwrap_or(name);
    let valid = !base.is_empty()
        && base.chars().next().is_some_and(|c| c.is_ascii_lowercase())
        && base
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_');
    if !valid {
        return Err(Error::Usage(format!(
            "`{name}` is not a runbook name; use lower-case letters, digits and `_`, starting with a letter, such as `clear_cache`"
        )));
    }
    let path = format!("runbooks/{base}.rhai");
    if workspace.join(&path).exists() {
        return Err(Error::Usage(format!(
            "`{path}` exists already; choose another name, or edit it"
        )));
    }
    write_new(
        workspace,
        &format!("new {base}"),
        &[(path, template(base))],
        console,
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shipped_files_are_found_by_name() {
        assert!(shipped("full_rollback").is_some());
        assert!(shipped("lib/models").is_some());
        assert!(shipped("runbooks/lib/validation.rhai").is_some());
        assert!(shipped("nope").is_none());
        let mut helpers = Vec::new();
        shipped_imports(shipped("full_rollback").unwrap(), &mut helpers);
        assert_eq!(helpers, ["lib/models.rhai", "lib/validation.rhai"]);
    }

    #[test]
    fn every_runbook_file_is_shipped() {
        let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("runbooks");
        for sub in ["", "lib"] {
            for e in std::fs::read_dir(dir.join(sub)).unwrap().flatten() {
                let p = e.path();
                if p.extension().is_some_and(|x| x == "rhai") {
                    let rel = p.strip_prefix(&dir).unwrap().to_string_lossy().to_string();
                    assert_eq!(
                        shipped(&rel),
                        Some(std::fs::read_to_string(&p).unwrap().as_str()),
                        "{rel} is not shipped"
                    );
                }
            }
        }
    }
}
