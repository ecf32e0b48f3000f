//! Builds the Rhai engine a runbook runs in: limits, the sandboxed module resolver, the
//! `step "name" { ... }` syntax, the timeout and Ctrl-C watch, and the primitives.
//!
//! Three flavours share one setup: [`compiler`] has the syntax and limits but no primitives
//! (enough to parse and check a script without a workspace), [`for_run`] adds the
//! primitives bound to one run's context, and [`for_reference`] is the same with the
//! primitives' documentation, for `runbook docs` and `check`. Limits are set explicitly
//! because Rhai's defaults differ between debug and release builds.
//!
//! Start-up is most of a small rollback, and building Rhai's whole standard library was the
//! largest part of it (`Engine::new` builds and registers every package eagerly). So an engine
//! starts raw and gets the packages runbooks use (strings, arrays, maps, function pointers)
//! registered eagerly, and the rest of the standard library (arithmetic and logic on other
//! number types, math, ranges, blobs, bit fields, time) lazily: every function is there,
//! and one that is not in the eager set is found from the package's manifest the first time
//! a run calls it. The packages are built once per thread and shared by every engine.

use crate::context::{Ctx, FATAL_TOKEN};
use crate::effects::Status;
use rhai::module_resolvers::FileModuleResolver;
use rhai::packages::{
    BasicArrayPackage, BasicFnPackage, BasicMapPackage, BasicStringPackage, LanguageCorePackage,
    MoreStringPackage, Package, StandardPackage,
};
use rhai::{Dynamic, Engine, EvalAltResult, Module, ModuleResolver, Position, Shared};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Instant;

/// Set by the Ctrl-C handler; the engine stops at the next operation.
pub static INTERRUPTED: AtomicBool = AtomicBool::new(false);

pub const TIMEOUT_TOKEN: &str = "runbook:timeout";
pub const INTERRUPT_TOKEN: &str = "runbook:interrupted";

/// Explicit limits, documented in README: generous for any real runbook, tight enough that a
/// runaway script fails fast with a clear error instead of eating the machine.
pub mod limits {
    pub const MAX_OPERATIONS: u64 = 2_000_000_000;
    pub const MAX_CALL_LEVELS: usize = 64;
    pub const MAX_EXPR_DEPTH: usize = 128;
    pub const MAX_FN_EXPR_DEPTH: usize = 64;
    pub const MAX_STRING_SIZE: usize = 64 * 1024 * 1024;
    pub const MAX_ARRAY_SIZE: usize = 2_000_000;
    pub const MAX_MAP_SIZE: usize = 100_000;
    pub const MAX_MODULES: usize = 256;
}

/// An engine that can compile runbooks but has no primitives.
pub fn compiler(runbooks_dir: &Path) -> Engine {
    let mut engine = base(runbooks_dir);
    engine
        .register_custom_syntax(["step", "$expr$", "$block$"], false, |context, inputs| {
            // Without a run context (check, docs) a step just runs its block.
            let _ = context.eval_expression_tree(&inputs[0])?;
            context.eval_expression_tree(&inputs[1])
        })
        .expect("the step syntax is valid");
    engine
}

/// What `Engine::new` keeps interned (property names, short strings); `new_raw` keeps none.
const MAX_STRINGS_INTERNED: usize = 256;

/// The standard library as shared modules, in registration order: the lazy whole first, so
/// that it is searched last, then the packages runbooks call all the time, registered
/// eagerly so that their functions are found without a scan of the manifests.
fn standard_library() -> Vec<Shared<Module>> {
    thread_local! {
        // `ManuallyDrop`: the modules live as long as the thread; the process never spends
        // its last moments freeing them.
        static PACKAGES: std::mem::ManuallyDrop<Vec<Shared<Module>>> =
            std::mem::ManuallyDrop::new(vec![
                StandardPackage::new_lazy().as_shared_module(),
                LanguageCorePackage::new().as_shared_module(),
                BasicFnPackage::new().as_shared_module(),
                BasicStringPackage::new().as_shared_module(),
                MoreStringPackage::new().as_shared_module(),
                BasicArrayPackage::new().as_shared_module(),
                BasicMapPackage::new().as_shared_module(),
            ]);
    }
    PACKAGES.with(|p| p.to_vec())
}

/// What every engine has: limits, `eval` disabled, the sandboxed resolver, the standard
/// library (see the module documentation).
fn base(runbooks_dir: &Path) -> Engine {
    let mut engine = Engine::new_raw();
    engine.set_max_strings_interned(MAX_STRINGS_INTERNED);
    for package in standard_library() {
        engine.register_global_module(package);
    }
    engine
        .set_max_operations(limits::MAX_OPERATIONS)
        .set_max_call_levels(limits::MAX_CALL_LEVELS)
        .set_max_expr_depths(limits::MAX_EXPR_DEPTH, limits::MAX_FN_EXPR_DEPTH)
        .set_max_string_size(limits::MAX_STRING_SIZE)
        .set_max_array_size(limits::MAX_ARRAY_SIZE)
        .set_max_map_size(limits::MAX_MAP_SIZE)
        .set_max_modules(limits::MAX_MODULES);
    // `eval` would run text the reviewer never saw in the runbook.
    engine.disable_symbol("eval");
    engine.set_module_resolver(SandboxedResolver::new(runbooks_dir));
    engine
}

/// The engine `runbook docs` and `runbook check` read the registrations of: a run's engine
/// with every primitive's parameter names and documentation attached, which a run does
/// without. It is never run.
pub fn for_reference(ctx: &Ctx, runbooks_dir: &Path) -> Engine {
    crate::primitives::with_metadata(|| for_run(ctx, runbooks_dir, None))
}

/// The engine for one run: the shared setup plus primitives, the journaled `step` syntax,
/// journal hooks, and the timeout/interrupt watch.
pub fn for_run(ctx: &Ctx, runbooks_dir: &Path, deadline: Option<Instant>) -> Engine {
    let mut engine = base(runbooks_dir);
    // A run also finds helpers in its workspace's `runbooks/`.
    engine.set_module_resolver(
        SandboxedResolver::new(runbooks_dir).or_in(&ctx.ws.display_root().join("runbooks")),
    );
    let c = ctx.clone();
    engine.on_print(move |text| c.journal().message("info", text));
    let c = ctx.clone();
    engine.on_debug(move |text, _source, _pos| c.journal().message("debug", text));
    engine.on_progress(move |ops| {
        if INTERRUPTED.load(Ordering::Relaxed) {
            return Some(Dynamic::from(INTERRUPT_TOKEN));
        }
        // Reading the clock every operation would cost more than the operation.
        if ops & 0x3ff == 0 {
            if let Some(d) = deadline {
                if Instant::now() >= d {
                    return Some(Dynamic::from(TIMEOUT_TOKEN));
                }
            }
        }
        None
    });
    let c = ctx.clone();
    engine
        .register_custom_syntax(
            ["step", "$expr$", "$block$"],
            false,
            move |context, inputs| {
                let name = context.eval_expression_tree(&inputs[0])?;
                let name = match name.clone().into_immutable_string() {
                    Ok(s) => s.to_string(),
                    Err(_) => name.to_string(),
                };
                if c.journal().depth() == 0 {
                    match c.ask_step(&name) {
                        crate::context::StepAnswer::Run => {}
                        crate::context::StepAnswer::Skip => {
                            c.journal()
                                .message("info", &format!("skipped step `{name}` (answered skip)"));
                            return Ok(Dynamic::UNIT);
                        }
                        crate::context::StepAnswer::Abort => {
                            return Err(c.fail(crate::error::Error::NotConfirmed(format!(
                                "stopped before step `{name}` (answered abort); the steps before it were done, `runbook log --last` shows them"
                            ))));
                        }
                    }
                }
                c.journal().step_start(&name);
                let mut result = context.eval_expression_tree(&inputs[1]);
                // The registry change the step staged is written before the step ends,
                // whether it succeeded or not: what the script did, happened.
                if let Err(e) = c.ws.settle() {
                    result = match result {
                        Ok(_) => Err(c.fail(e)),
                        Err(first) => {
                            c.journal().message("error", &format!("{e}"));
                            Err(first)
                        }
                    };
                }
                match &result {
                    Ok(_) => c.journal().step_end(Status::Ok, None),
                    // `return` inside a step unwinds as a pseudo-error: the step itself succeeded.
                    Err(e) if e.is_pseudo_error() => c.journal().step_end(Status::Ok, None),
                    Err(e) => {
                        let (status, message) = classify(e);
                        c.journal().step_end(status, Some(&message));
                    }
                }
                result
            },
        )
        .expect("the step syntax is valid");
    crate::primitives::register_all(&mut engine, ctx);
    engine
}

/// The status and the plain message of a Rhai error, without Rhai's position suffix.
pub fn classify(err: &EvalAltResult) -> (Status, String) {
    let inner = err.unwrap_inner();
    match inner {
        EvalAltResult::ErrorTerminated(token, _) => {
            let t = token.to_string();
            if t == INTERRUPT_TOKEN {
                (Status::Interrupted, "interrupted (Ctrl-C)".into())
            } else if t == TIMEOUT_TOKEN {
                (Status::Failed, "timed out".into())
            } else {
                let msg = t
                    .strip_prefix(FATAL_TOKEN)
                    .map(|m| m.trim_start_matches(':').to_string())
                    .unwrap_or(t);
                (Status::Failed, msg)
            }
        }
        EvalAltResult::ErrorRuntime(value, _) => (Status::Failed, value.to_string()),
        // Rhai says `Function not found: registry::production (i64)`; say what it takes.
        EvalAltResult::ErrorFunctionNotFound(sig, _) => match crate::runner::explain_not_found(sig)
        {
            Some(msg) => (Status::Failed, msg),
            None => (Status::Failed, strip_position(&inner.to_string())),
        },
        other => (Status::Failed, strip_position(&other.to_string())),
    }
}

/// Rhai appends ` (line N, position M)` to its messages; we print positions ourselves.
pub fn strip_position(msg: &str) -> String {
    match msg.rfind(" (line ") {
        Some(i) if msg.ends_with(')') => msg[..i].to_string(),
        _ => msg.to_string(),
    }
}

/// Imports resolve inside the runbooks directory only: no absolute paths, no `..`, and no
/// symlink that leads out. A module that is not there is looked for in the workspace's
/// `runbooks/` (a run only), then among the helpers shipped in the binary; a shipped
/// runbook imports shipped helpers only (see `runner::source`).
pub struct SandboxedResolver {
    /// The directories searched in order; empty for a shipped runbook.
    roots: Vec<PathBuf>,
    inner: FileModuleResolver,
    /// Shipped modules compiled once per engine.
    shipped: std::cell::RefCell<std::collections::HashMap<String, Shared<Module>>>,
}

impl SandboxedResolver {
    pub fn new(runbooks_dir: &Path) -> Self {
        let roots = if crate::runner::source::is_shipped(runbooks_dir) {
            Vec::new()
        } else {
            vec![std::fs::canonicalize(runbooks_dir).unwrap_or_else(|_| runbooks_dir.to_path_buf())]
        };
        let base = roots.first().cloned().unwrap_or_else(|| PathBuf::from("."));
        let mut inner = FileModuleResolver::new_with_path_and_extension(&base, "rhai");
        inner.enable_cache(true);
        SandboxedResolver {
            roots,
            inner,
            shipped: Default::default(),
        }
    }

    /// Also look in `dir` (the workspace's `runbooks/`) for a module the runbook's own
    /// directory lacks; nothing for a shipped runbook, whose helpers ship with it.
    pub fn or_in(mut self, dir: &Path) -> Self {
        if let (false, Ok(canon)) = (self.roots.is_empty(), std::fs::canonicalize(dir)) {
            if !self.roots.contains(&canon) {
                self.roots.push(canon);
            }
        }
        self
    }

    /// Where `import "path"` leads (a file, or `shipped:lib/NAME.rhai`), or why it may not.
    pub fn locate(&self, source: Option<&str>, path: &str) -> Result<PathBuf, String> {
        let shown_root = self
            .roots
            .first()
            .map(|r| r.display().to_string())
            .unwrap_or_else(|| "runbooks/".into());
        if Path::new(path).is_absolute() || path.split(['/', '\\']).any(|c| c == "..") {
            return Err(format!(
                "import `{path}` leaves the runbooks directory `{shown_root}`; imports are relative to it, without `..`"
            ));
        }
        let mut first_missing = None;
        for root in &self.roots {
            let base = source
                .map(Path::new)
                .filter(|s| s.is_absolute() && s.starts_with(root))
                .and_then(Path::parent)
                .unwrap_or(root);
            let mut file = base.join(path);
            if file.extension().is_none() {
                file.set_extension("rhai");
            }
            match std::fs::canonicalize(&file) {
                Ok(canon) if canon.starts_with(root) => return Ok(canon),
                Ok(_) => {
                    return Err(format!(
                        "import `{path}` resolves outside the runbooks directory `{}`",
                        root.display()
                    ))
                }
                Err(_) => {
                    first_missing.get_or_insert(file);
                }
            }
        }
        if crate::runner::source::shipped(path).is_some() {
            let name = if path.ends_with(".rhai") {
                path.to_string()
            } else {
                format!("{path}.rhai")
            };
            return Ok(PathBuf::from(format!(
                "{}{name}",
                crate::runner::source::SHIPPED_PREFIX
            )));
        }
        Err(match first_missing {
            Some(file) => format!(
                "cannot find module `{path}` (looked for `{}`, and among the shipped helpers)",
                file.display()
            ),
            None => format!("cannot find module `{path}` among the shipped helpers"),
        })
    }
}

impl ModuleResolver for SandboxedResolver {
    fn resolve(
        &self,
        engine: &Engine,
        source: Option<&str>,
        path: &str,
        pos: Position,
    ) -> Result<Shared<Module>, Box<EvalAltResult>> {
        let file = self
            .locate(source, path)
            .map_err(|msg| Box::new(EvalAltResult::ErrorRuntime(msg.into(), pos)))?;
        let shown = file.to_string_lossy().to_string();
        if crate::runner::source::is_shipped(&file) {
            if let Some(m) = self.shipped.borrow().get(&shown) {
                return Ok(m.clone());
            }
            let text = crate::runner::source::shipped(&shown).unwrap_or_default();
            let mut ast = engine.compile(text).map_err(|e| {
                Box::new(EvalAltResult::ErrorInModule(shown.clone(), e.into(), pos))
            })?;
            ast.set_source(shown.clone());
            let module: Shared<Module> = Module::eval_ast_as_new(rhai::Scope::new(), &ast, engine)
                .map_err(|e| Box::new(EvalAltResult::ErrorInModule(shown.clone(), e, pos)))?
                .into();
            self.shipped.borrow_mut().insert(shown, module.clone());
            return Ok(module);
        }
        self.inner.resolve(engine, None, &shown, pos)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn resolver_refuses_escapes() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(dir.path().join("rb/lib")).unwrap();
        std::fs::write(dir.path().join("rb/lib/util.rhai"), "fn x() { 1 }").unwrap();
        std::fs::write(dir.path().join("secret.rhai"), "fn x() { 2 }").unwrap();
        std::os::unix::fs::symlink(
            dir.path().join("secret.rhai"),
            dir.path().join("rb/lib/link.rhai"),
        )
        .unwrap();
        let r = SandboxedResolver::new(&dir.path().join("rb"));
        assert!(r.locate(None, "lib/util").is_ok());
        assert!(r
            .locate(None, "../secret")
            .unwrap_err()
            .contains("leaves the runbooks directory"));
        assert!(r.locate(None, "/etc/passwd").is_err());
        assert!(r.locate(None, "lib/link").unwrap_err().contains("outside"));
    }

    #[test]
    fn eval_is_disabled_and_steps_parse() {
        let dir = tempfile::tempdir().unwrap();
        let engine = compiler(dir.path());
        assert!(engine.compile("eval(\"1\")").is_err());
        assert_eq!(
            engine
                .eval::<i64>("step \"a\" { step \"b\" { 41 } + 1 }")
                .unwrap(),
            42
        );
    }
}
