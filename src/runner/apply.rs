//! `runbook apply PLAN`: run for real exactly what a saved plan showed, or nothing.
//!
//! Before anything is logged or changed, with the workspace taken: the plan's runbook must
//! have the sha256 the plan recorded, and the fingerprint of what the plan read must still
//! hold (every file, listing, glob, git's `HEAD` and dirty paths, each registry entry);
//! otherwise the refusal names each thing that changed, like a stale Terraform plan. Then the
//! runbook runs with the plan's parameters and the door compares each effect with the
//! planned one before performing it (`effects::plan`); a run that ends with planned effects
//! left undone fails too.

use super::hooks::Hooks;
use super::plan::{reads_of, registry_fingerprint, PLAN_FORMAT};
use super::run::{execute_with, sha256_hex};
use super::{Loaded, RunOptions, RunOutcome};
use crate::context::RunContext;
use crate::effects::plan::Placeholders;
use crate::effects::{Console, Durability};
use crate::error::{Error, Result};
use serde_json::Value;
use std::path::{Path, PathBuf};

#[derive(Debug, Clone)]
pub struct ApplyOptions {
    pub plan: PathBuf,
    pub workspace: PathBuf,
    /// Apply without asking (needed when there is no terminal to ask on).
    pub yes: bool,
    pub console: Console,
    pub timeout: Option<std::time::Duration>,
}

struct Applying<'a> {
    name: String,
    doc: &'a Value,
    yes: bool,
}

impl Hooks for Applying<'_> {
    fn start(&mut self, ctx: &RunContext, _loaded: &Loaded) -> Result<()> {
        let planned = &self.doc["fingerprint"];
        let mut now = ctx.ws.fingerprint(&reads_of(planned))?;
        now["registry"] = registry_fingerprint(ctx.ws.display_root());
        let changes = differences(planned, &now);
        if !changes.is_empty() {
            return Err(Error::Plan {
                plan: self.name.clone(),
                message: format!(
                    "the workspace changed since the plan was made, so it no longer shows what would happen; nothing was changed:\n{}\nmake a new plan with `runbook plan` and review it",
                    changes
                        .iter()
                        .map(|c| format!("  - {c}"))
                        .collect::<Vec<_>>()
                        .join("\n")
                ),
            });
        }
        if !self.yes {
            let summary = super::format::text(self.doc);
            super::confirm::confirm(
                &summary,
                "apply this plan",
                "`runbook apply` changes the workspace; pass `--yes` to apply without asking",
            )?;
        }
        let effects = self.doc["effects"].as_array().cloned().unwrap_or_default();
        ctx.ws.expect_plan(
            &self.name,
            Placeholders {
                run_id: ctx.ws.run_id().to_string(),
                stamp: ctx.stamp(),
            },
            effects.iter().map(|e| e["identity"].clone()).collect(),
            effects
                .iter()
                .map(|e| e["summary"].as_str().unwrap_or("").to_string())
                .collect(),
        );
        Ok(())
    }

    fn end(&mut self, ctx: &RunContext, _loaded: &Loaded) -> Result<()> {
        match ctx.ws.plan_progress() {
            Some((done, total)) if done < total => Err(Error::Plan {
                plan: self.name.clone(),
                message: format!(
                    "the run ended after {done} of the {total} planned effects; the rest were not performed. `runbook log --last` shows what was done"
                ),
            }),
            _ => Ok(()),
        }
    }
}

/// Read a plan file and check it is one `apply` understands.
pub fn read_plan(path: &Path) -> Result<Value> {
    let shown = path.display().to_string();
    let text = std::fs::read_to_string(path).map_err(|e| Error::io(&shown, "read", e))?;
    let doc: Value = serde_json::from_str(&text).map_err(|e| Error::Parse {
        path: shown.clone(),
        format: "JSON",
        line: e.line(),
        column: e.column(),
        message: e.to_string(),
    })?;
    if doc["plan_format"].as_u64() != Some(PLAN_FORMAT) {
        return Err(Error::Usage(format!(
            "`{shown}` is not a plan this runbook can apply (`plan_format` {} instead of {PLAN_FORMAT}); make it again with `runbook plan`",
            doc["plan_format"]
        )));
    }
    Ok(doc)
}

pub fn apply(opts: &ApplyOptions) -> Result<RunOutcome> {
    let doc = read_plan(&opts.plan)?;
    let name = opts.plan.display().to_string();
    let file = PathBuf::from(doc["runbook"]["path"].as_str().unwrap_or_default());
    let text = super::source::read_text(&file).map_err(|e| Error::Plan {
        plan: name.clone(),
        message: format!(
            "cannot read its runbook `{}`: {e}; nothing was changed",
            file.display()
        ),
    })?;
    let planned_sha = doc["runbook"]["sha256"].as_str().unwrap_or_default();
    let sha = sha256_hex(&text);
    if sha != planned_sha {
        return Err(Error::Plan {
            plan: name,
            message: format!(
                "its runbook `{}` changed since the plan was made (sha256 {} then, {} now); nothing was changed. Make a new plan with `runbook plan` and review it",
                file.display(),
                short(planned_sha),
                short(&sha)
            ),
        });
    }
    let params = super::run::param_args(&doc);
    let run = RunOptions {
        file,
        workspace: opts.workspace.clone(),
        dry_run: false,
        dry_run_state: None,
        params,
        timeout: opts.timeout,
        console: opts.console,
        durability: Durability::EndOfRun,
        force: false,
        no_exec: false,
        report: None,
    };
    let mut hooks = Applying {
        name,
        doc: &doc,
        yes: opts.yes,
    };
    execute_with(&run, None, &mut hooks)
}

fn short(sha: &str) -> &str {
    &sha[..sha.len().min(12)]
}

/// What differs between the fingerprint a plan recorded and the workspace's now, one line
/// per path, listing or registry entry.
pub(super) fn differences(planned: &Value, now: &Value) -> Vec<String> {
    let mut out = Vec::new();
    let describe = |v: &Value| -> String {
        match v {
            Value::String(s) if s == "absent" => "absent".into(),
            Value::String(s) if s == "dir" => "a directory".into(),
            Value::Object(m) if m.contains_key("sha256") => {
                format!("sha256 {}", short(m["sha256"].as_str().unwrap_or("")))
            }
            other => other.to_string(),
        }
    };
    if let (Some(p), Some(n)) = (planned["files"].as_object(), now["files"].as_object()) {
        for (path, was) in p {
            let is = n.get(path).unwrap_or(&Value::Null);
            if is != was {
                out.push(format!(
                    "`{path}` changed: it was {}, now it is {}",
                    describe(was),
                    describe(is)
                ));
            }
        }
    }
    for (section, what) in [("walks", "files below"), ("globs", "matches of")] {
        if let (Some(p), Some(n)) = (planned[section].as_object(), now[section].as_object()) {
            for (key, was) in p {
                let is = n.get(key).unwrap_or(&Value::Null);
                if is["sha256"] == was["sha256"] {
                    continue;
                }
                let list = |v: &Value| -> Vec<String> {
                    v["paths"]
                        .as_array()
                        .map(|a| {
                            a.iter()
                                .filter_map(|x| x.as_str().map(String::from))
                                .collect()
                        })
                        .unwrap_or_default()
                };
                let (before, after) = (list(was), list(is));
                let added: Vec<String> = after
                    .iter()
                    .filter(|p| !before.contains(p))
                    .map(|p| format!("`{p}`"))
                    .collect();
                let removed: Vec<String> = before
                    .iter()
                    .filter(|p| !after.contains(p))
                    .map(|p| format!("`{p}`"))
                    .collect();
                let shown = if key.is_empty() { "." } else { key.as_str() };
                let mut line = format!("{what} `{shown}` changed");
                if !added.is_empty() {
                    line.push_str(&format!("; new: {}", added.join(", ")));
                }
                if !removed.is_empty() {
                    line.push_str(&format!("; gone: {}", removed.join(", ")));
                }
                if added.is_empty() && removed.is_empty() {
                    line.push_str(&format!(" ({} then, {} now)", was["count"], is["count"]));
                }
                out.push(line);
            }
        }
    }
    let (pg, ng) = (&planned["git"], &now["git"]);
    if pg["head"] != ng["head"] {
        out.push(format!(
            "git `HEAD` moved: it was {}, now it is {}",
            pg["head"], ng["head"]
        ));
    }
    if pg["dirty"]["sha256"] != ng["dirty"]["sha256"] {
        let list = |v: &Value| -> Vec<String> {
            v["paths"]
                .as_array()
                .into_iter()
                .flatten()
                .filter_map(|x| x.as_str().map(String::from))
                .collect()
        };
        let (before, after) = (list(&pg["dirty"]), list(&ng["dirty"]));
        let named = |paths: Vec<&String>| {
            paths
                .iter()
                .map(|p| format!("`{p}`"))
                .collect::<Vec<_>>()
                .join(", ")
        };
        let now_dirty = named(after.iter().filter(|p| !before.contains(p)).collect());
        let now_clean = named(before.iter().filter(|p| !after.contains(p)).collect());
        let mut line = "git's uncommitted changes differ".to_string();
        if !now_dirty.is_empty() {
            line.push_str(&format!("; changed since: {now_dirty}"));
        }
        if !now_clean.is_empty() {
            line.push_str(&format!("; no longer changed: {now_clean}"));
        }
        if now_dirty.is_empty() && now_clean.is_empty() {
            line.push_str(&format!(
                " ({} paths then, {} now)",
                pg["dirty"]["count"], ng["dirty"]["count"]
            ));
        }
        out.push(line);
    }
    let (pr, nr) = (&planned["registry"]["entries"], &now["registry"]["entries"]);
    if let (Some(p), Some(n)) = (pr.as_object(), nr.as_object()) {
        for (key, was) in p {
            let (name, version) = key.split_once(' ').unwrap_or((key, ""));
            match n.get(key) {
                None => out.push(format!("registry entry `{name}` `{version}` is gone")),
                Some(is) if is != was => {
                    out.push(format!("registry entry `{name}` `{version}` changed"))
                }
                _ => {}
            }
        }
        for key in n.keys().filter(|k| !p.contains_key(*k)) {
            let (name, version) = key.split_once(' ').unwrap_or((key, ""));
            out.push(format!("registry entry `{name}` `{version}` is new"));
        }
    } else if pr != nr {
        out.push("the registry cannot be read as it was when the plan was made".into());
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn differences_name_each_path_listing_and_entry() {
        let planned = json!({
            "files": {"a": {"sha256": "1111"}, "b": "absent"},
            "walks": {"models": {"count": 1, "sha256": "x", "paths": ["models/a"]}},
            "globs": {},
            "git": {"head": "h1", "dirty": {"count": 0, "sha256": "e3b0", "paths": []}},
            "registry": {"entries": {"m v1": "s1", "m v2": "s2"}},
        });
        let now = json!({
            "files": {"a": {"sha256": "2222"}, "b": "absent"},
            "walks": {"models": {"count": 2, "sha256": "y", "paths": ["models/a", "models/b"]}},
            "globs": {},
            "git": {"head": "h2", "dirty": {"count": 1, "sha256": "ab12", "paths": ["x.py"]}},
            "registry": {"entries": {"m v1": "s1", "m v2": "changed", "m v3": "s3"}},
        });
        assert_eq!(
            differences(&planned, &now),
            [
                "`a` changed: it was sha256 1111, now it is sha256 2222",
                "files below `models` changed; new: `models/b`",
                "git `HEAD` moved: it was \"h1\", now it is \"h2\"",
                "git's uncommitted changes differ; changed since: `x.py`",
                "registry entry `m` `v2` changed",
                "registry entry `m` `v3` is new",
            ]
        );
        assert!(differences(&planned, &planned).is_empty());
    }
}
