//! `runbook plan`: a dry run whose result is kept as a document, to review and to apply.
//!
//! The plan holds the runbook (path, name, version, sha256), its parameters, every step with
//! its effects, checks and messages in order, the effects' identities (what `apply` holds the
//! real run to, see `effects::plan`), and the fingerprint of what the dry run read: the
//! files, listings and globs it looked at, git's `HEAD` and dirty paths, and the registry's
//! entries. It is plain JSON with keys in a fixed order and no run id, duration or dry-run
//! trash path in it; the run id and the run's start time appear as `<run-id>` and
//! `<timestamp>`, the values the real run fills in. So the same workspace and runbook give
//! the same file byte for byte, except `created_at`.

use super::hooks::Hooks;
use super::run::{execute_with, sha256_hex};
use super::{Loaded, RunOptions};
use crate::context::RunContext;
use crate::effects::plan::{Placeholders, Reads};
use crate::effects::{Console, Durability, Workspace};
use crate::error::{Error, Result};
use serde_json::{json, Map, Value};
use std::path::{Path, PathBuf};
use std::time::Duration;

/// The version of the plan document; `apply` refuses others.
pub const PLAN_FORMAT: u64 = 1;

#[derive(Debug, Clone)]
pub struct PlanOptions {
    pub file: PathBuf,
    pub workspace: PathBuf,
    pub params: Vec<(String, String)>,
    pub timeout: Option<Duration>,
    pub no_exec: bool,
}

struct Recording {
    given: String,
    param_args: Vec<(String, String)>,
    doc: Option<Value>,
}

impl Hooks for Recording {
    fn start(&mut self, ctx: &RunContext, _loaded: &Loaded) -> Result<()> {
        ctx.ws.record_plan(Placeholders {
            run_id: ctx.ws.run_id().to_string(),
            stamp: ctx.stamp(),
        });
        Ok(())
    }

    fn end(&mut self, ctx: &RunContext, loaded: &Loaded) -> Result<()> {
        let recorded = ctx
            .ws
            .take_recorded()
            .ok_or_else(|| Error::Usage("the dry run recorded no plan".into()))?;
        let mut fingerprint = ctx.ws.fingerprint(&recorded.reads)?;
        fingerprint["registry"] = registry_fingerprint(ctx.ws.display_root());
        let params: Map<String, Value> = loaded
            .header
            .resolve_params(&self.param_args)?
            .iter()
            .map(|(k, v)| (k.clone(), v.to_json()))
            .collect();
        // A shipped runbook keeps its `shipped:NAME` name: apply reads it from the binary.
        let path = if super::source::is_shipped(&loaded.path) {
            loaded.path.clone()
        } else {
            std::fs::canonicalize(&loaded.path).unwrap_or_else(|_| loaded.path.clone())
        };
        let (steps, effects) = steps_and_effects(&recorded.events);
        self.doc = Some(json!({
            "plan_format": PLAN_FORMAT,
            "created_at": crate::effects::journal::now_rfc3339(),
            "runbook": {
                "path": path,
                "given": self.given,
                "name": loaded.header.name,
                "version": loaded.header.version.to_string(),
                "sha256": sha256_hex(&loaded.text),
            },
            "params": params,
            "param_args": self.param_args.iter().map(|(k, v)| json!([k, v])).collect::<Vec<_>>(),
            "placeholders": {
                "<run-id>": "the id of the real run that applies this plan",
                "<timestamp>": "when that run starts, as `timestamp()` gives it (YYYYmmdd_HHMMSS)",
                "<now>": "the moment the real run makes the change",
            },
            "summary": summary(&effects),
            "steps": steps,
            "effects": effects,
            "fingerprint": fingerprint,
        }));
        Ok(())
    }
}

/// Make the plan of a runbook against a workspace (a dry run; nothing changes but its log).
/// A dry run that fails gives no plan: its error is returned.
pub fn plan(opts: &PlanOptions) -> Result<Value> {
    let run = RunOptions {
        file: opts.file.clone(),
        workspace: opts.workspace.clone(),
        dry_run: true,
        dry_run_state: None,
        params: opts.params.clone(),
        timeout: opts.timeout,
        console: Console::Quiet,
        durability: Durability::EndOfRun,
        force: false,
        no_exec: opts.no_exec,
        report: None,
    };
    let mut rec = Recording {
        given: opts.file.display().to_string(),
        param_args: opts.params.clone(),
        doc: None,
    };
    execute_with(&run, None, &mut rec)?;
    rec.doc
        .ok_or_else(|| Error::Usage("the dry run recorded no plan".into()))
}

/// Every registry entry by `name version`, with the sha256 of its exact text, as the store
/// holds it now (`null` when the workspace has no readable registry). Read with a workspace
/// of its own, so a dry run's simulated changes are not in it.
pub(super) fn registry_fingerprint(root: &Path) -> Value {
    let read = || -> Result<Value> {
        let ws = Workspace::open(root, "plan", true, Console::Quiet)?;
        let store = crate::registry::open_store(&ws)?;
        let reg = store.load(&ws)?;
        let entries: Map<String, Value> = reg
            .entries
            .iter()
            .map(|e| {
                (
                    format!("{} {}", e.name, e.version),
                    Value::String(sha256_hex(e.raw())),
                )
            })
            .collect();
        Ok(json!({"store": store.name(), "entries": entries}))
    };
    read().unwrap_or(Value::Null)
}

/// The reads a plan's fingerprint covers, from the fingerprint itself.
pub(super) fn reads_of(fingerprint: &Value) -> Reads {
    let keys = |section: &str| {
        fingerprint[section]
            .as_object()
            .map(|m| m.keys().cloned().collect())
            .unwrap_or_default()
    };
    Reads {
        files: keys("files"),
        walks: keys("walks"),
        globs: keys("globs"),
    }
}

/// The steps with their items in order, and the effects alone, from the recorded events.
fn steps_and_effects(events: &[Value]) -> (Vec<Value>, Vec<Value>) {
    let mut steps: Vec<Value> = Vec::new();
    let mut effects: Vec<Value> = Vec::new();
    // The number each journaled effect (`seq`) got in the plan.
    let mut numbered: std::collections::BTreeMap<u64, usize> = Default::default();
    let find = |steps: &mut Vec<Value>, step: &Value| -> usize {
        match steps.iter().position(|s| s["step"] == *step) {
            Some(i) => i,
            None => {
                // An action or message outside every step.
                steps.push(json!({"step": step, "name": "", "status": "ok", "items": []}));
                steps.len() - 1
            }
        }
    };
    for e in events {
        match e["event"].as_str() {
            Some("step_start") => steps.push(json!({
                "step": e["step"], "name": e["name"], "status": "ok", "items": [],
            })),
            Some("step_end") => {
                let i = find(&mut steps, &e["step"]);
                steps[i]["status"] = e["status"].clone();
            }
            Some("log") => {
                let i = find(&mut steps, &e["step"]);
                push_item(
                    &mut steps[i],
                    json!({"type": "message", "text": e["message"]}),
                );
            }
            Some("action") => {
                let i = find(&mut steps, &e["step"]);
                let kind = e["kind"].as_str().unwrap_or("");
                let mut item = json!({
                    "type": match kind { "check" => "check", "command" => "command", _ => "effect" },
                    "kind": kind, "op": e["op"], "args": e["args"], "summary": e["summary"],
                });
                if !e["result"].is_null() {
                    item["result"] = e["result"].clone();
                }
                if !e["detail"].is_null() {
                    item["detail"] = e["detail"].clone();
                }
                if item["type"] == "effect" && !e["identity"].is_null() {
                    item["effect"] = json!(effects.len() + 1);
                    effects.push(json!({
                        "index": effects.len() + 1, "step": e["step"], "kind": kind,
                        "op": e["op"], "summary": e["summary"], "identity": e["identity"],
                    }));
                    if let Some(seq) = e["seq"].as_u64() {
                        numbered.insert(seq, effects.len());
                    }
                } else if item["type"] == "effect" {
                    // A further action of the same effect (a step's merged registry change
                    // has one per change): numbered as the effect it belongs to.
                    if let Some(n) = e["seq"].as_u64().and_then(|s| numbered.get(&s)) {
                        item["effect"] = json!(n);
                    }
                }
                push_item(&mut steps[i], item);
            }
            _ => {}
        }
    }
    (steps, effects)
}

fn push_item(step: &mut Value, item: Value) {
    if let Some(items) = step["items"].as_array_mut() {
        items.push(item);
    }
}

/// How many effects of each kind the plan holds.
fn summary(effects: &[Value]) -> Value {
    let mut counts = Map::new();
    for kind in [
        "registry",
        "file_removed",
        "file_written",
        "file_moved",
        "git",
        "process",
    ] {
        let n = effects.iter().filter(|e| e["kind"] == kind).count();
        counts.insert(kind.into(), json!(n));
    }
    Value::Object(counts)
}
