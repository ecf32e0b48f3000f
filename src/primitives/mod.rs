//! The primitive families a runbook calls: `registry::`, `fs::`, `process::`, `git::`,
//! `config::`, `validate::`, plus a few globals (`assert`, `timestamp`) and the types
//! validation hands to scripts (`Dataset`, `Model`, `Predictions`). Each family is a Rhai module built by one file here and
//! registered as a static module, so scripts write `registry::production("sl_forecaster")`.
//!
//! Every function is registered through [`Family::add`], which attaches its signature and a
//! doc comment with an example; `runbook docs` renders those, so the reference is generated
//! from what the engine actually registers. Mutating functions are marked volatile so the
//! optimizer never runs them at compile time (rhai issue #749).

use crate::context::Ctx;
use rhai::{Dynamic, Engine, EvalAltResult, FuncRegistration, Module, RhaiNativeFunc, Variant};

pub mod config;
pub mod fs;
pub mod git;
pub mod process;
pub mod registry;
pub mod validate;

pub type RhaiResult<T> = Result<T, Box<EvalAltResult>>;

/// One family of primitives under construction.
pub struct Family {
    pub name: &'static str,
    pub module: Module,
}

impl Family {
    pub fn new(name: &'static str, doc: &str) -> Family {
        let mut module = Module::new();
        module.set_id(name);
        module.set_doc(doc);
        Family { name, module }
    }

    /// Register `func` as `<family>::<name>`. `params` are `name: type` strings followed by
    /// the return type, as Rhai's metadata expects; `doc` is Markdown and should contain a
    /// ```` ```rhai ```` example.
    pub fn add<A: 'static, const N: usize, const X: bool, R, const F: bool, FUNC>(
        &mut self,
        name: &str,
        params: &[&str],
        doc: &str,
        func: FUNC,
    ) -> &mut Self
    where
        R: Variant + Clone,
        FUNC: RhaiNativeFunc<A, N, X, R, F> + 'static,
    {
        let comment: String = doc
            .lines()
            .map(|l| format!("/// {l}"))
            .collect::<Vec<_>>()
            .join("\n");
        FuncRegistration::new(name)
            .with_volatility(true)
            .with_params_info(params)
            .with_comments([comment])
            .set_into_module(&mut self.module, func);
        self
    }
}

/// Build every family for a run and register them with the engine, with the custom types
/// their functions take and return.
pub fn register_all(engine: &mut Engine, ctx: &Ctx) {
    for family in [
        registry::family(ctx),
        fs::family(ctx),
        process::family(ctx),
        git::family(ctx),
        config::family(ctx),
        validate::family(ctx),
    ] {
        engine.register_static_module(family.name, family.module.into());
    }
    validate::register_types(engine);
    register_globals(engine, ctx);
}

/// The names of the registered families, for `runbook check`.
pub const FAMILIES: &[&str] = &["registry", "fs", "process", "git", "config", "validate"];

fn register_globals(engine: &mut Engine, ctx: &Ctx) {
    let c = ctx.clone();
    FuncRegistration::new("timestamp")
        .with_volatility(true)
        .with_params_info(["String"])
        .with_comments(["/// The run's start time as `YYYYmmdd_HHMMSS` (UTC), the plan's backup format.\n/// ```rhai\n/// let ts = timestamp();   // \"20261129_173056\"\n/// ```"])
        .register_into_engine(engine, move || c.stamp());
    FuncRegistration::new("now")
        .with_volatility(true)
        .with_params_info(["String"])
        .with_comments([
            "/// The current time, RFC 3339 (UTC).\n/// ```rhai\n/// print(now());\n/// ```",
        ])
        .register_into_engine(engine, || {
            chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
        });
    FuncRegistration::new("assert")
        .with_params_info(["condition: bool", "message: &str", "()"])
        .with_comments(["/// Fail the current step with `message` unless `condition` holds.\n/// ```rhai\n/// assert(fs::exists(\"models/registry.json\"), \"no registry\");\n/// ```"])
        .register_into_engine(engine, |cond: bool, msg: &str| -> RhaiResult<()> {
            if cond {
                Ok(())
            } else {
                Err(format!("assertion failed: {msg}").into())
            }
        });
}

/// A string argument that may also be given as a number or unit-free value.
pub fn dyn_to_string(value: &Dynamic) -> String {
    if let Some(s) = value.read_lock::<rhai::ImmutableString>() {
        return s.to_string();
    }
    value.to_string()
}

/// Convert JSON into a Rhai value (objects become maps, arrays become arrays).
pub fn json_to_dynamic(value: &serde_json::Value) -> Dynamic {
    rhai::serde::to_dynamic(value).unwrap_or(Dynamic::UNIT)
}

/// Convert a Rhai value into JSON, for arguments that end up in files or logs.
pub fn dynamic_to_json(value: &Dynamic) -> serde_json::Value {
    rhai::serde::from_dynamic(value).unwrap_or(serde_json::Value::Null)
}
