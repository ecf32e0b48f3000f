//! The review workflow's commands as the command line runs them: make a plan, save it
//! outside the workspace, show it as text, Markdown or JSON. Kept out of `cli.rs` so that
//! file stays the clap definitions and a dispatch.

use super::format::{self, Format};
use super::PlanOptions;
use crate::error::{Error, Result};
use crate::output::out;
use std::path::Path;

/// `runbook plan FILE [-o PLAN] [--format F]`.
pub fn plan_command(opts: &PlanOptions, save: Option<&Path>, fmt: &str) -> Result<i32> {
    let doc = super::plan(opts)?;
    let json = serde_json::to_string_pretty(&doc).unwrap_or_default() + "\n";
    if let Some(path) = save {
        let root = std::fs::canonicalize(&opts.workspace).map_err(|e| {
            Error::io(
                opts.workspace.display().to_string(),
                "open the workspace",
                e,
            )
        })?;
        crate::effects::write_output(path, &root, json.as_bytes())?;
    }
    match Format::parse(fmt) {
        Format::Text => {
            out!("{}", format::text(&doc));
            if let Some(path) = save {
                out!(
                    "plan saved to {}; apply it with `runbook apply {}`\n",
                    path.display(),
                    path.display()
                );
            }
        }
        Format::Markdown => out!("{}", format::markdown(&doc)),
        Format::Json => out!("{json}"),
    }
    Ok(0)
}

/// `runbook check --format json`: every file, checked or with its error; exit 2 if any failed.
pub fn check_json(files: &[std::path::PathBuf]) -> Result<i32> {
    let mut failed = 0;
    let checked: Vec<serde_json::Value> = files
        .iter()
        .map(|f| match super::check(f) {
            Ok(c) => serde_json::json!({
                "file": f.display().to_string(), "ok": true,
                "header": c.header.as_ref().map(super::json::header), "steps": c.steps,
                "functions": c.functions, "error": null,
            }),
            Err(e) => {
                failed += 1;
                serde_json::json!({
                    "file": f.display().to_string(), "ok": false,
                    "header": null, "steps": null, "error": e.to_string(),
                })
            }
        })
        .collect();
    super::json::print(&serde_json::json!({"ok": failed == 0, "files": checked}));
    Ok(if failed > 0 { 2 } else { 0 })
}

/// `runbook list --format json`.
pub fn list_json(dir: &Path) -> Result<i32> {
    let listed = super::list(dir)?;
    let runbooks: Vec<serde_json::Value> = listed
        .iter()
        .map(|l| match &l.header {
            Ok(h) => serde_json::json!({
                "path": l.path.display().to_string(), "header": super::json::header(h), "error": null,
            }),
            Err(e) => serde_json::json!({
                "path": l.path.display().to_string(), "header": null, "error": e.to_string(),
            }),
        })
        .collect();
    super::json::print(
        &serde_json::json!({"dir": dir.display().to_string(), "runbooks": runbooks}),
    );
    Ok(0)
}

/// `runbook log [RUN_ID | --last] --format json`.
pub fn log_json(workspace: &Path, run_id: Option<&str>, last: bool) -> Result<i32> {
    let all = super::log::runs(workspace)?;
    let one = super::log::select(&all, run_id, last)?;
    let doc = match one {
        None => serde_json::json!({
            "runs": all.iter().map(super::json::run_summary).collect::<Vec<_>>(),
        }),
        Some(r) => {
            let root = std::fs::canonicalize(workspace)
                .map_err(|e| Error::io(workspace.display().to_string(), "open the workspace", e))?;
            let log = root.join(format!(".runbook/runs/{}.jsonl", r.run_id));
            let mut doc = super::json::run_summary(r);
            let detail = super::json::run_detail(&super::log::read_events(&log));
            if let (Some(d), serde_json::Value::Object(detail)) = (doc.as_object_mut(), detail) {
                d.extend(detail);
            }
            doc["log"] = serde_json::json!(log.display().to_string());
            doc
        }
    };
    super::json::print(&doc);
    Ok(0)
}

/// `runbook docs --format json`.
pub fn docs_json() -> Result<i32> {
    super::json::print(&super::json::docs());
    Ok(0)
}

/// What `runbook run` adds to a run: how to show it, and whom to ask.
#[derive(Debug, Clone, Copy)]
pub struct RunExtras {
    pub format: Format,
    /// Ask before a real run (`--confirm`); the header's `confirm: true` asks too.
    pub confirm: bool,
    /// Ask before each top-level step (`--step`).
    pub step: bool,
    /// Confirmed up front (`--yes`).
    pub yes: bool,
}

struct RunHooks {
    step: bool,
    log: Option<std::path::PathBuf>,
}

impl super::hooks::Hooks for RunHooks {
    fn start(&mut self, ctx: &crate::context::RunContext, _loaded: &super::Loaded) -> Result<()> {
        self.log = Some(
            ctx.ws
                .display_root()
                .join(format!(".runbook/runs/{}.jsonl", ctx.ws.run_id())),
        );
        if self.step {
            ctx.set_step_gate(Box::new(|name: &str| loop {
                let answer = super::confirm::ask(&format!(
                    "next step: {name}\nrun it? [y]es, [s]kip, [a]bort: "
                ));
                match answer.as_deref() {
                    Ok("y" | "yes") => return crate::context::StepAnswer::Run,
                    Ok("s" | "skip") => return crate::context::StepAnswer::Skip,
                    Ok("a" | "abort") | Ok("") | Err(_) => {
                        return crate::context::StepAnswer::Abort
                    }
                    Ok(_) => continue,
                }
            }));
        }
        Ok(())
    }
}

/// `runbook run`: a real run that asks first when it must (see `confirm.rs`), prompts per
/// step with `--step`, and reports as JSON with `--format json`.
pub fn run_command(mut opts: super::RunOptions, extras: RunExtras) -> Result<i32> {
    let json = extras.format == Format::Json;
    if json {
        opts.console = crate::effects::Console::Quiet;
    }
    if !opts.dry_run {
        // By name as `run` finds it: a file, the workspace's `runbooks/`, the shipped ones.
        opts.file = super::source::find(&opts.file, &opts.workspace)?;
        let (display, _, header) = super::read_runbook(&opts.file)?;
        let by_header = header
            .extra
            .get("confirm")
            .is_some_and(|v| v.trim() == "true");
        if (extras.confirm || by_header) && !extras.yes {
            let why = if by_header {
                format!("runbook `{display}` asks for confirmation (`confirm: true` in its header)")
            } else {
                "`--confirm` asks for confirmation".to_string()
            };
            if !super::confirm::can_ask() {
                return Err(Error::NotConfirmed(format!(
                    "{why} and there is no terminal to ask on; pass `--yes` to run it without asking"
                )));
            }
            let doc = super::plan(&PlanOptions {
                file: opts.file.clone(),
                workspace: opts.workspace.clone(),
                params: opts.params.clone(),
                timeout: opts.timeout,
                no_exec: opts.no_exec,
            })?;
            super::confirm::confirm(
                &format::text(&doc),
                "run it for real",
                "pass `--yes` to run it without asking",
            )?;
        }
        if extras.step && !super::confirm::can_ask() {
            return Err(Error::NotConfirmed(
                "`--step` asks before each step and there is no terminal to ask on; run without `--step`"
                    .into(),
            ));
        }
    }
    let mut hooks = RunHooks {
        step: extras.step && !opts.dry_run,
        log: None,
    };
    let result = super::run::execute_with(&opts, None, &mut hooks);
    if json {
        let log = hooks.log.as_deref().filter(|p| p.exists());
        super::json::print(&super::json::run_report(log, result.as_ref().err()));
    }
    result.map(|_| 0)
}
