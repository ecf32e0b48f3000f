//! `registry::` — the model registry: query versions, promote, archive, remove, check.
//!
//! Bindings only. The rules live in [`crate::registry`] (production, previous, consistency),
//! the storage in the [`Store`] the workspace's `runbook.yaml` chooses (the JSON file
//! `models/registry.json` by default), and every change is a registry effect performed or
//! simulated by the door, which journals it. Changes a step makes one after another are
//! written once, at the step's end ([`Workspace::change_registry`]); until then the family
//! reads the registry as the staged change leaves it. The store, with its stamp-keyed
//! cache, is this family's own state, opened on first use.
//!
//! [`Workspace::change_registry`]: crate::effects::Workspace::change_registry

use super::{dynamic_to_json, json_to_dynamic, Family, RhaiResult};
use crate::context::Ctx;
use crate::effects::Record;
use crate::error::Result;
use crate::registry::{self as domain, Change, Entry, Registry, Status, Store};
use rhai::{Array, Dynamic, Map, NativeCallContext};
use serde_json::{json, Value};
use std::cell::OnceCell;
use std::rc::Rc;

struct Reg {
    ctx: Ctx,
    store: OnceCell<Rc<dyn Store>>,
}

impl Reg {
    fn store(&self) -> Result<&Rc<dyn Store>> {
        if let Some(s) = self.store.get() {
            return Ok(s);
        }
        let store: Rc<dyn Store> = Rc::from(domain::open_store(&self.ctx.ws)?);
        Ok(self.store.get_or_init(|| store))
    }

    /// The registry as this run sees it: with the change its step has staged, if any.
    fn load(&self) -> Result<(String, Rc<Registry>)> {
        let store = self.store()?;
        if let Some(staged) = self.ctx.ws.staged_registry(store) {
            return Ok((store.name(), staged));
        }
        Ok((store.name(), store.load(&self.ctx.ws)?))
    }

    /// Hand `change` to the door, journaled as `registry.<op>` with `summary`.
    fn apply(
        &self,
        change: Change,
        name: &str,
        version: &str,
        summary: String,
        result: Option<Value>,
    ) -> Result<()> {
        let store = self.store()?;
        let record = Record::new(
            &format!("registry.{}", change.op()),
            json!({"path": store.name(), "name": name, "version": version}),
            summary,
        );
        let record = match result {
            Some(v) => record.with_result(v),
            None => record,
        };
        self.ctx.ws.change_registry(store, change, record)
    }

    fn model_exists(&self, model_path: &str) -> bool {
        self.ctx
            .ws
            .resolve(model_path)
            .map(|p| self.ctx.ws.exists(&p))
            .unwrap_or(false)
    }

    /// `registry::set_production` in both its forms.
    fn promote(&self, name: &str, version: &str, demoted: &str) -> Result<Dynamic> {
        let status = Status::parse(demoted)
            .filter(|s| matches!(s, Status::Superseded | Status::Archived))
            .ok_or_else(|| {
                crate::error::Error::invalid(
                    "registry::set_production",
                    format!("the old production version can become `superseded` or `archived`, not `{demoted}`"),
                )
            })?;
        let (store, reg) = self.load()?;
        let Some((change, demoted_version)) =
            domain::set_production(&reg, &store, name, version, status, |p| {
                self.model_exists(p)
            })?
        else {
            return Ok(Dynamic::UNIT);
        };
        let summary = match &demoted_version {
            Some(d) => format!("make `{name}` `{version}` production (`{d}` becomes {demoted})"),
            None => format!("make `{name}` `{version}` production"),
        };
        self.apply(
            change,
            name,
            version,
            summary,
            Some(json!({"demoted": demoted_version})),
        )?;
        Ok(demoted_version.map(Dynamic::from).unwrap_or(Dynamic::UNIT))
    }

    fn archive(&self, name: &str, version: &str) -> Result<()> {
        let (store, reg) = self.load()?;
        if let Some(change) = domain::archive(&reg, &store, name, version)? {
            self.apply(
                change,
                name,
                version,
                format!("archive `{name}` `{version}`"),
                None,
            )?;
        }
        Ok(())
    }

    fn remove(&self, name: &str, version: &str) -> Result<Value> {
        let (store, reg) = self.load()?;
        let (change, removed) = domain::remove(&reg, &store, name, version)?;
        self.apply(
            change,
            name,
            version,
            format!("remove `{name}` `{version}` from the registry"),
            None,
        )?;
        Ok(removed)
    }

    fn register(&self, entry: Value) -> Result<Value> {
        let (store, reg) = self.load()?;
        let (change, value) = domain::register(&reg, &store, entry)?;
        let (name, version) = (
            change.changed[0].name.clone(),
            change.changed[0].version.clone(),
        );
        self.apply(
            change,
            &name,
            &version,
            format!("register `{name}` `{version}`"),
            None,
        )?;
        Ok(value)
    }

    fn check(&self) -> Result<Vec<String>> {
        // The check lists the model files' directory: a big one not listed yet is listed
        // by another core while the registry is read (or taken from the cache).
        let (_, reg) = match self.store()?.files_dir() {
            Some(dir) => self.ctx.ws.while_listing(&dir, || self.load()),
            None => self.load(),
        }?;
        let paths: Vec<&str> = reg.entries.iter().map(|e| e.model_path.as_str()).collect();
        let exists = self.ctx.ws.exist_all(&paths);
        let mut problems = reg.check(&exists);
        problems.extend(self.store()?.problems());
        Ok(problems)
    }
}

fn entry_to_dynamic(e: &Entry) -> Dynamic {
    json_to_dynamic(&e.value())
}

pub fn family(ctx: &Ctx) -> Family {
    let mut f = Family::new(
        "registry",
        "The model registry (`models/registry.json`, or the store `runbook.yaml` names): query versions, promote, archive, remove, check.",
    );
    let reg = Rc::new(Reg {
        ctx: ctx.clone(),
        store: OnceCell::new(),
    });
    let c = reg.clone();
    f.add(
        "versions",
        &["name: &str", "Array"],
        "Every entry of model `name`, in file order.\n```rhai\nfor e in registry::versions(\"sl_forecaster\") { print(e.version + \" \" + e.status); }\n```",
        move |call: NativeCallContext, name: &str| -> RhaiResult<Array> {
            let (_, r) = c.load().map_err(|e| c.ctx.fail_at(&call, e))?;
            Ok(r.versions(name).map(entry_to_dynamic).collect())
        },
    );
    let c = reg.clone();
    f.add(
        "get",
        &["name: &str", "version: &str", "Dynamic"],
        "The entry for `name` `version`, or `()` when there is none.\n```rhai\nlet e = registry::get(\"sl_forecaster\", \"v4\");\nif e == () { throw \"no v4\"; }\n```",
        move |call: NativeCallContext, name: &str, version: &str| -> RhaiResult<Dynamic> {
            let (_, r) = c.load().map_err(|e| c.ctx.fail_at(&call, e))?;
            Ok(r.get(name, version).map(entry_to_dynamic).unwrap_or(Dynamic::UNIT))
        },
    );
    let c = reg.clone();
    f.add(
        "production",
        &["name: &str", "Dynamic"],
        "The production entry of `name`, or `()` when it has none. Fails if it has more than one.\n```rhai\nlet cur = registry::production(\"sl_forecaster\");\nprint(`production is ${cur.version}`);\n```",
        move |call: NativeCallContext, name: &str| -> RhaiResult<Dynamic> {
            let (store, r) = c.load().map_err(|e| c.ctx.fail_at(&call, e))?;
            Ok(r.production(&store, name).map_err(|e| c.ctx.fail_at(&call, e))?.map(entry_to_dynamic).unwrap_or(Dynamic::UNIT))
        },
    );
    let c = reg.clone();
    f.add(
        "previous",
        &["name: &str", "Dynamic"],
        "The previous production entry of `name`: the `superseded` one with the latest `promoted_at`, or `()`.\n```rhai\nlet prev = registry::previous(\"sl_forecaster\");\nassert(prev != (), \"nothing to roll back to\");\n```",
        move |call: NativeCallContext, name: &str| -> RhaiResult<Dynamic> {
            let (_, r) = c.load().map_err(|e| c.ctx.fail_at(&call, e))?;
            Ok(r.previous(name).map(entry_to_dynamic).unwrap_or(Dynamic::UNIT))
        },
    );
    let c = reg.clone();
    f.add(
        "set_production",
        &["name: &str", "version: &str", "Dynamic"],
        "Make `version` the production version of `name`; the old production version becomes `superseded` and the new one gets `promoted_at` = now. Refuses a version whose model file is missing. Returns the demoted version, or `()`.\n```rhai\nregistry::set_production(\"sl_forecaster\", \"v4\");\n```",
        move |call: NativeCallContext, name: &str, version: &str| -> RhaiResult<Dynamic> {
            c.promote(name, version, "superseded").map_err(|e| c.ctx.fail_at(&call, e))
        },
    );
    let c = reg.clone();
    f.add(
        "set_production",
        &["name: &str", "version: &str", "demoted_status: &str", "Dynamic"],
        "Like `registry::set_production(name, version)`, with the status the old production version gets: `superseded` or `archived`. A rollback archives the bad version in the same atomic write that promotes the good one, so there is no moment in which the bad one would be the next rollback target.\n```rhai\nregistry::set_production(\"sl_forecaster\", \"v4\", \"archived\");\n```",
        move |call: NativeCallContext, name: &str, version: &str, demoted_status: &str| -> RhaiResult<Dynamic> {
            c.promote(name, version, demoted_status).map_err(|e| c.ctx.fail_at(&call, e))
        },
    );
    let c = reg.clone();
    f.add(
        "archive",
        &["name: &str", "version: &str", "()"],
        "Mark `name` `version` as `archived` (it can no longer be chosen as a rollback target). Refuses the production version.\n```rhai\nregistry::archive(\"sl_forecaster\", \"v5\");\n```",
        move |call: NativeCallContext, name: &str, version: &str| -> RhaiResult<()> {
            c.archive(name, version).map_err(|e| c.ctx.fail_at(&call, e))
        },
    );
    let c = reg.clone();
    f.add(
        "remove",
        &["name: &str", "version: &str", "Map"],
        "Take `name` `version` out of the registry and return the removed entry. Refuses the production version. The old registry file is kept in the trash.\n```rhai\nlet gone = registry::remove(\"sl_forecaster\", \"v5\");\nprint(gone.model_path);\n```",
        move |call: NativeCallContext, name: &str, version: &str| -> RhaiResult<Dynamic> {
            Ok(json_to_dynamic(&c.remove(name, version).map_err(|e| c.ctx.fail_at(&call, e))?))
        },
    );
    let c = reg.clone();
    f.add(
        "register",
        &["entry: Map", "Map"],
        "Add a new entry (needs `name`, `version`, `model_path`; `status` defaults to `staging`, `created_at` to now). Returns the stored entry.\n```rhai\nregistry::register(#{ name: \"sl_forecaster\", version: \"v6\", model_path: \"models/sl_model_v6.json\" });\n```",
        move |call: NativeCallContext, entry: Map| -> RhaiResult<Dynamic> {
            let json = dynamic_to_json(&Dynamic::from_map(entry));
            Ok(json_to_dynamic(&c.register(json).map_err(|e| c.ctx.fail_at(&call, e))?))
        },
    );
    let c = reg.clone();
    f.add(
        "check",
        &["Array"],
        "Consistency problems of the whole registry, as strings (empty when consistent): duplicate versions, more than one production version per name, `is_production` disagreeing with `status`, missing model files.\n```rhai\nlet problems = registry::check();\nassert(problems.is_empty(), `registry inconsistent: ${problems}`);\n```",
        move |call: NativeCallContext| -> RhaiResult<Array> {
            Ok(c.check().map_err(|e| c.ctx.fail_at(&call, e))?.into_iter().map(Dynamic::from).collect())
        },
    );
    f
}
