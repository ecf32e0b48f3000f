//! The primitive families a runbook calls: `registry::`, `fs::`, `process::`, `git::`,
//! `config::`, `validate::`, `time::`, `notify::`, plus a few globals (`assert`, `timestamp`) and the types
//! validation hands to scripts (`Dataset`, `Model`, `Predictions`). Each family is a Rhai module built by one file here and
//! registered as a static module, so scripts write `registry::production("sl_forecaster")`.
//!
//! Every function is registered through [`Family::add`], which attaches its signature and a
//! doc comment with an example; `runbook docs` renders those, so the reference is generated
//! from what the engine actually registers. Only the engines built inside [`with_metadata`]
//! (the reference engine of `docs` and `check`) carry that text: a run never reads it, and
//! formatting and storing it was a sizeable part of a small run's start-up. Mutating
//! functions are marked volatile so the optimizer never runs them at compile time (rhai
//! issue #749).

use crate::context::Ctx;
use rhai::{Dynamic, Engine, EvalAltResult, FuncRegistration, Module, RhaiNativeFunc, Variant};
use std::cell::Cell;

pub mod config;
pub mod fs;
pub mod git;
pub mod notify;
pub mod process;
pub mod registry;
pub mod time;
pub mod validate;

pub type RhaiResult<T> = Result<T, Box<EvalAltResult>>;

thread_local! {
    /// Whether the families being built attach their documentation; see [`with_metadata`].
    static WITH_METADATA: Cell<bool> = const { Cell::new(false) };
}

/// Build something (an engine) with the primitives' parameter names, doc comments and
/// family docs attached, as `runbook docs` and `runbook check` need them.
pub fn with_metadata<T>(build: impl FnOnce() -> T) -> T {
    /// Resets the flag even if `build` panics, so a later run is not slowed by it.
    struct Reset(bool);
    impl Drop for Reset {
        fn drop(&mut self) {
            WITH_METADATA.with(|m| m.set(self.0));
        }
    }
    let _reset = Reset(WITH_METADATA.with(|m| m.replace(true)));
    build()
}

thread_local! {
    /// Families an embedding program adds (`embed::Runner`); see [`with_extra_families`].
    static EXTRA: std::cell::RefCell<Vec<crate::embed::FamilyBuilder>> = const { std::cell::RefCell::new(Vec::new()) };
}

/// Run `f` with `families` registered, after the shipped ones, in every engine built for a
/// run meanwhile.
pub fn with_extra_families<T>(
    families: Vec<crate::embed::FamilyBuilder>,
    f: impl FnOnce() -> T,
) -> T {
    /// Restores the previous set even if `f` panics.
    struct Restore(Vec<crate::embed::FamilyBuilder>);
    impl Drop for Restore {
        fn drop(&mut self) {
            EXTRA.with(|e| *e.borrow_mut() = std::mem::take(&mut self.0));
        }
    }
    let _restore = Restore(EXTRA.with(|e| e.replace(families)));
    f()
}

fn metadata_wanted() -> bool {
    WITH_METADATA.with(Cell::get)
}

/// One family of primitives under construction.
pub struct Family {
    pub name: &'static str,
    pub module: Module,
}

impl Family {
    pub fn new(name: &'static str, doc: &str) -> Family {
        let mut module = Module::new();
        module.set_id(name);
        if metadata_wanted() {
            module.set_doc(doc);
        }
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
        let registration = FuncRegistration::new(name).with_volatility(true);
        let registration = if metadata_wanted() {
            let comment: String = doc
                .lines()
                .map(|l| format!("/// {l}"))
                .collect::<Vec<_>>()
                .join("\n");
            registration
                .with_params_info(params)
                .with_comments([comment])
        } else {
            registration
        };
        registration.set_into_module(&mut self.module, func);
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
        time::family(ctx),
        notify::family(ctx),
    ] {
        engine.register_static_module(family.name, family.module.into());
    }
    let extra = EXTRA.with(|e| e.borrow().clone());
    for build in extra {
        let family = build(ctx);
        engine.register_static_module(family.name, family.module.into());
    }
    validate::register_types(engine);
    register_globals(engine, ctx);
}

/// The names of the registered families, for `runbook check`.
pub const FAMILIES: &[&str] = &[
    "registry", "fs", "process", "git", "config", "validate", "time", "notify",
];

/// `registration` with its parameter names and doc comment when metadata is wanted.
fn documented(registration: FuncRegistration, params: &[&str], comment: &str) -> FuncRegistration {
    if metadata_wanted() {
        registration
            .with_params_info(params)
            .with_comments([comment])
    } else {
        registration
    }
}

fn register_globals(engine: &mut Engine, ctx: &Ctx) {
    let c = ctx.clone();
    documented(
        FuncRegistration::new("timestamp").with_volatility(true),
        &["String"],
        "/// The run's start time as `YYYYmmdd_HHMMSS` (UTC), the plan's backup format.\n/// ```rhai\n/// let ts = timestamp();   // \"20261129_173056\"\n/// ```",
    )
    .register_into_engine(engine, move || c.stamp());
    documented(
        FuncRegistration::new("now").with_volatility(true),
        &["String"],
        "/// The current time, RFC 3339 (UTC).\n/// ```rhai\n/// print(now());\n/// ```",
    )
    .register_into_engine(engine, || {
        chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
    });
    documented(
        FuncRegistration::new("assert"),
        &["condition: bool", "message: &str", "()"],
        "/// Fail the current step with `message` unless `condition` holds.\n/// ```rhai\n/// assert(fs::exists(\"models/registry.json\"), \"no registry\");\n/// ```",
    )
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
