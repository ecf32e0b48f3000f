//! Runs, checks, lists and documents runbooks: the library's embedding API.
//!
//! [`run`] is the whole life of a run: read and check the script and its parameters before
//! anything is touched, open the workspace and the journal, execute, and turn whatever Rhai
//! reports into one [`Error`] with a file, line and column. [`check`] does the first half
//! without a workspace; [`docs`] renders the primitives' reference from the engine's own
//! metadata.

use crate::context::{RunContext, FATAL_TOKEN};
use crate::effects::{Durability, Workspace};
use crate::engine::{self, INTERRUPT_TOKEN, TIMEOUT_TOKEN};
use crate::error::{Error, Location, Result};
use crate::header::{params_map, Header, ParamValue};
use crate::journal::{Console, Journal, Status};
use rhai::{EvalAltResult, Scope, AST};
use sha2::{Digest, Sha256};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

#[derive(Debug, Clone)]
pub struct RunOptions {
    pub file: PathBuf,
    pub workspace: PathBuf,
    pub dry_run: bool,
    pub params: Vec<(String, String)>,
    pub timeout: Option<Duration>,
    pub console: Console,
    pub durability: Durability,
}

#[derive(Debug, Clone)]
pub struct RunOutcome {
    pub run_id: String,
    pub log_path: Option<PathBuf>,
}

/// A runbook read from disk, with its header parsed and its script compiled.
pub struct Loaded {
    pub path: PathBuf,
    pub display: String,
    pub text: String,
    pub header: Header,
    pub ast: AST,
}

fn runbooks_dir(path: &Path) -> PathBuf {
    match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
        _ => PathBuf::from("."),
    }
}

/// Read, parse the header of, and compile a runbook with a primitives-free engine.
pub fn load(path: &Path) -> Result<Loaded> {
    let (display, text, header) = read_runbook(path)?;
    let ast = compile(&engine::compiler(&runbooks_dir(path)), &display, &text)?;
    Ok(Loaded {
        path: path.to_path_buf(),
        display,
        text,
        header,
        ast,
    })
}

/// Read a runbook and parse its header.
fn read_runbook(path: &Path) -> Result<(String, String, Header)> {
    let display = path.display().to_string();
    let text = std::fs::read_to_string(path).map_err(|e| match e.kind() {
        std::io::ErrorKind::NotFound => Error::Usage(format!(
            "runbook `{display}` does not exist; `runbook list` shows the runbooks in `runbooks/`"
        )),
        _ => Error::Usage(format!("cannot read runbook `{display}`: {e}")),
    })?;
    let header = Header::parse(&display, &text)?;
    Ok((display, text, header))
}

fn compile(engine: &rhai::Engine, display: &str, text: &str) -> Result<AST> {
    let mut ast = engine.compile(text).map_err(|e| {
        let pos = e.position();
        let line = pos.line().unwrap_or(1);
        Error::Compile {
            location: location_in(display, text, line, pos.position().unwrap_or(1)),
            message: engine::strip_position(&e.err_type().to_string()),
        }
    })?;
    ast.set_source(display.to_string());
    Ok(ast)
}

fn location_in(file: &str, text: &str, line: usize, column: usize) -> Box<Location> {
    Box::new(Location {
        file: file.to_string(),
        line,
        column,
        source_line: text.lines().nth(line.saturating_sub(1)).map(String::from),
        called_from: None,
    })
}

/// A run id that sorts by time and does not collide between runs in the same second.
fn new_run_id() -> String {
    let now = chrono::Utc::now();
    let nanos = now.timestamp_subsec_nanos();
    let salt = (std::process::id() as u64).wrapping_mul(0x9E37_79B9_7F4A_7C15) ^ nanos as u64;
    format!(
        "{}-{:04x}",
        now.format("%Y%m%dT%H%M%SZ"),
        (salt ^ (salt >> 29)) & 0xffff
    )
}

fn install_ctrlc_handler() {
    static ONCE: std::sync::Once = std::sync::Once::new();
    ONCE.call_once(|| {
        // If a handler cannot be installed the run still works; Ctrl-C then just kills it.
        let _ = ctrlc::set_handler(|| {
            engine::INTERRUPTED.store(true, std::sync::atomic::Ordering::SeqCst)
        });
    });
}

/// Run a runbook against a workspace.
pub fn run(opts: &RunOptions) -> Result<RunOutcome> {
    // Everything that can be wrong with the script or its parameters is found before the
    // workspace is touched; only then does the run log start.
    let (display, text, header) = read_runbook(&opts.file)?;
    let params = header.resolve_params(&opts.params)?;
    if !opts.workspace.is_dir() {
        return Err(Error::Usage(format!(
            "workspace `{}` is not a directory; pass `--workspace DIR`",
            opts.workspace.display()
        )));
    }
    let run_id = new_run_id();
    let ws =
        Workspace::open(&opts.workspace, &run_id, opts.dry_run)?.with_durability(opts.durability);
    let root = ws.root().to_path_buf();
    let ctx = RunContext::new(
        ws,
        Journal::without_log(&run_id, opts.dry_run, opts.console),
    );
    let deadline = opts.timeout.map(|t| Instant::now() + t);
    ctx.set_deadline(deadline);
    // One engine both compiles and runs: building Rhai's standard library is most of the
    // start-up cost.
    let engine = engine::for_run(&ctx, &runbooks_dir(&opts.file), deadline);
    let ast = compile(&engine, &display, &text)?;
    let loaded = Loaded {
        path: opts.file.clone(),
        display,
        text,
        header,
        ast,
    };
    // Only a run that may change the workspace takes it; dry runs never wait.
    let _lock = if opts.dry_run {
        None
    } else {
        Some(ctx.ws.lock()?)
    };
    let log_path = Some(ctx.journal.open_log(&root)?);
    install_ctrlc_handler();

    let params_json: serde_json::Map<String, serde_json::Value> = params
        .iter()
        .map(|(k, v)| (k.clone(), v.to_json()))
        .collect();
    let sha: String = Sha256::digest(loaded.text.as_bytes())
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    ctx.journal.run_start(
        &loaded.display,
        &loaded.header.name,
        &loaded.header.version.to_string(),
        &sha,
        serde_json::Value::Object(params_json),
        &root,
    );
    let mut scope = Scope::new();
    scope.push_constant("params", params_map(&params));
    scope.push_constant("DRY_RUN", opts.dry_run);
    scope.push_constant("RUN_ID", run_id.clone());

    let result = engine.run_ast_with_scope(&mut scope, &loaded.ast);
    let outcome = RunOutcome { run_id, log_path };
    let result = match result {
        Ok(()) => {
            ctx.journal.run_end(Status::Ok, None);
            Ok(outcome)
        }
        Err(err) => {
            let error = to_error(&err, &loaded, &ctx, opts.timeout);
            let status = if matches!(error, Error::Interrupted) {
                Status::Interrupted
            } else {
                Status::Failed
            };
            ctx.journal.run_end(status, Some(&error));
            Err(error)
        }
    };
    // Flush what the run changed (and its log) before reporting, whatever the outcome.
    ctx.ws.finish()?;
    result
}

/// Turn a Rhai error into our error, pointing at the innermost script position.
fn to_error(
    err: &EvalAltResult,
    loaded: &Loaded,
    ctx: &RunContext,
    timeout: Option<Duration>,
) -> Error {
    let location = locate(err, loaded);
    if let EvalAltResult::ErrorTerminated(token, _) = err.unwrap_inner() {
        let t = token.to_string();
        if t == INTERRUPT_TOKEN {
            return Error::Interrupted;
        }
        if t == TIMEOUT_TOKEN {
            return Error::Timeout {
                limit: timeout
                    .map(fmt_duration)
                    .unwrap_or_else(|| "the time limit".into()),
                location,
            };
        }
        if t.starts_with(FATAL_TOKEN) {
            if let Some(fatal) = ctx.take_fatal() {
                let mut e = Error::Failed {
                    location: None,
                    step: ctx.journal.failed_step(),
                    message: fatal.to_string(),
                };
                if let Some(l) = location {
                    e = e.at(l);
                }
                return e;
            }
        }
    }
    if let EvalAltResult::ErrorTooManyOperations(_) = err.unwrap_inner() {
        let message = format!(
            "the script ran more than {} operations; is there an endless loop?",
            engine::limits::MAX_OPERATIONS
        );
        return Error::Failed {
            location,
            step: ctx.journal.failed_step(),
            message,
        };
    }
    let (_, message) = engine::classify(err);
    Error::Failed {
        location,
        step: ctx.journal.failed_step(),
        message,
    }
}

fn locate(err: &EvalAltResult, loaded: &Loaded) -> Option<Box<Location>> {
    let mut source: Option<String> = None;
    let mut cur = err;
    let mut fallback = err.position();
    loop {
        match cur {
            EvalAltResult::ErrorInFunctionCall(_, src, inner, pos) => {
                if !src.is_empty() {
                    source = Some(src.clone());
                }
                if !pos.is_none() && source.is_none() {
                    fallback = *pos;
                }
                cur = inner;
            }
            EvalAltResult::ErrorInModule(path, inner, _) => {
                source = Some(path.clone());
                cur = inner;
            }
            _ => break,
        }
    }
    let mut pos = cur.position();
    if pos.is_none() {
        pos = fallback;
        source = None;
    }
    let line = pos.line()?;
    let column = pos.position().unwrap_or(1);
    match source {
        Some(src) if src != loaded.display => {
            let text = std::fs::read_to_string(&src).unwrap_or_default();
            let mut loc = location_in(&src, &text, line, column);
            // The runbook line that led into the imported code.
            if let (Some(l), Some(c)) = (err.position().line(), err.position().position()) {
                loc.called_from = Some(format!("{}:{l}:{c}", loaded.display));
            }
            Some(loc)
        }
        _ => Some(location_in(&loaded.display, &loaded.text, line, column)),
    }
}

pub fn fmt_duration(d: Duration) -> String {
    let s = d.as_secs_f64();
    if s < 1.0 {
        format!("{} ms", d.as_millis())
    } else if s < 120.0 {
        format!("{s:.0} s")
    } else {
        format!("{:.1} min", s / 60.0)
    }
}

/// Parse `500ms`, `30s`, `5m`, `1h` or a bare number of seconds.
pub fn parse_duration(text: &str) -> std::result::Result<Duration, String> {
    let t = text.trim();
    let split = t
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(t.len());
    let (num, unit) = t.split_at(split);
    let n: f64 = num.parse().map_err(|_| {
        format!("`{text}` is not a duration; write it like `30s`, `5m`, `1h` or `500ms`")
    })?;
    let secs = match unit.trim() {
        "" | "s" | "sec" | "secs" => n,
        "ms" => n / 1000.0,
        "m" | "min" => n * 60.0,
        "h" => n * 3600.0,
        other => {
            return Err(format!(
                "unknown unit `{other}` in `{text}`; use ms, s, m or h"
            ))
        }
    };
    if !(secs > 0.0 && secs.is_finite()) {
        return Err(format!("`{text}` must be longer than zero"));
    }
    Ok(Duration::from_secs_f64(secs))
}

// ----- check -----------------------------------------------------------------------------

/// What `check` found out about a runbook that is fine.
pub struct Checked {
    pub header: Header,
    pub steps: usize,
}

/// Parse and check a runbook without running it: header, syntax, and calls to primitives
/// (`family::function`) or imported modules that do not exist.
pub fn check(path: &Path) -> Result<Checked> {
    let loaded = load(path)?;
    let dir = runbooks_dir(path);
    let mut checker = Checker {
        known: known_functions(),
        resolver: engine::SandboxedResolver::new(&dir),
        compiler: engine::compiler(&dir),
        visited: std::collections::HashSet::new(),
    };
    let steps = checker.check_ast(&loaded.ast, &loaded.display, &loaded.text, None)?;
    Ok(Checked {
        header: loaded.header,
        steps,
    })
}

/// Walks a script, and every module it imports, for calls that cannot work.
struct Checker {
    /// `family -> function -> arities` of the primitives.
    known: &'static BTreeMap<String, FnTable>,
    resolver: engine::SandboxedResolver,
    compiler: rhai::Engine,
    /// Modules already checked (an import graph may share or repeat them).
    visited: std::collections::HashSet<PathBuf>,
}

type FnTable = BTreeMap<String, Vec<usize>>;

impl Checker {
    /// Check one script; `source` is its absolute path when it is an imported module (imports
    /// inside it resolve relative to it). Returns the number of `step` blocks.
    fn check_ast(
        &mut self,
        ast: &AST,
        display: &str,
        text: &str,
        source: Option<&str>,
    ) -> Result<usize> {
        use rhai::{ASTNode, Expr, Stmt};
        let mut aliases: BTreeMap<String, Option<FnTable>> = BTreeMap::new();
        let mut imports: Vec<PathBuf> = Vec::new();
        let mut problems: Vec<(rhai::Position, String)> = Vec::new();
        let mut steps = 0;
        ast.walk(&mut |nodes: &[ASTNode]| {
            match nodes.last() {
                Some(ASTNode::Stmt(Stmt::Import(x, _))) => {
                    let (expr, alias) = &**x;
                    if let Expr::StringConstant(p, pos) = expr {
                        match self.resolver.locate(source, p) {
                            Ok(file) => {
                                let fns = self.compiler.compile_file(file.clone()).ok().map(|m| {
                                    let mut t = FnTable::new();
                                    for f in m.iter_functions() {
                                        t.entry(f.name.to_string()).or_default().push(f.params.len());
                                    }
                                    t
                                });
                                aliases.insert(alias.name.to_string(), fns);
                                imports.push(file);
                            }
                            Err(msg) => problems.push((*pos, msg)),
                        }
                    }
                }
                Some(ASTNode::Expr(Expr::Custom(c, _))) if c.tokens.first().is_some_and(|t| t == "step") => steps += 1,
                Some(ASTNode::Expr(Expr::FnCall(call, pos))) | Some(ASTNode::Stmt(Stmt::FnCall(call, pos)))
                    if !call.namespace.is_empty() =>
                {
                    let module = call.namespace.root().to_string();
                    let name = call.name.to_string();
                    let arity = call.args.len();
                    let table = self.known.get(&module).or_else(|| aliases.get(&module).and_then(Option::as_ref));
                    match table {
                        Some(fns) => match fns.get(&name) {
                            Some(arities) if arities.contains(&arity) => {}
                            Some(arities) => problems.push((
                                *pos,
                                format!("`{module}::{name}` takes {} argument(s), not {arity}", join_arities(arities)),
                            )),
                            None => problems.push((*pos, format!("there is no primitive `{module}::{name}`; `runbook docs` lists them"))),
                        },
                        None if aliases.contains_key(&module) => {}
                        None => problems.push((
                            *pos,
                            format!("unknown module `{module}` in `{module}::{name}`; `runbook docs` lists the primitive families"),
                        )),
                    }
                }
                _ => {}
            }
            true
        });
        if let Some((pos, message)) = problems.into_iter().next() {
            let line = pos.line().unwrap_or(1);
            return Err(Error::Compile {
                location: location_in(display, text, line, pos.position().unwrap_or(1)),
                message,
            });
        }
        // Then the imported modules themselves: a typo in `runbooks/lib/` is as fatal as one
        // in the runbook, and would otherwise surface only mid-incident.
        for file in imports {
            if !self.visited.insert(file.clone()) {
                continue;
            }
            let shown = file.display().to_string();
            let text =
                std::fs::read_to_string(&file).map_err(|e| Error::io(shown.clone(), "read", e))?;
            let ast = compile(&self.compiler, &shown, &text)?;
            self.check_ast(&ast, &shown, &text, Some(&shown))?;
        }
        Ok(steps)
    }
}

fn join_arities(a: &[usize]) -> String {
    let mut v: Vec<String> = a.iter().map(usize::to_string).collect();
    v.sort();
    v.dedup();
    v.join(" or ")
}

/// An engine with every primitive registered, bound to a throwaway context: for `check`
/// and `docs`, which need the registrations but never call them.
fn reference_engine() -> rhai::Engine {
    let dir = std::env::temp_dir();
    let ws = Workspace::open(&dir, "reference", true).expect("the temp dir exists");
    let ctx = RunContext::new(ws, Journal::without_log("reference", true, Console::Quiet));
    engine::for_run(&ctx, &dir, None)
}

fn metadata() -> serde_json::Value {
    let json = reference_engine()
        .gen_fn_metadata_to_json(false)
        .expect("metadata serialises");
    serde_json::from_str(&json).expect("rhai writes valid JSON")
}

/// `family -> function -> arities` of every registered primitive. Built once per process:
/// `runbook check runbooks/*.rhai` would otherwise build an engine and its metadata per file.
fn known_functions() -> &'static BTreeMap<String, FnTable> {
    static KNOWN: std::sync::OnceLock<BTreeMap<String, FnTable>> = std::sync::OnceLock::new();
    KNOWN.get_or_init(build_known_functions)
}

fn build_known_functions() -> BTreeMap<String, FnTable> {
    let meta = metadata();
    let mut out = BTreeMap::new();
    if let Some(modules) = meta["modules"].as_object() {
        for (mname, m) in modules {
            let mut fns: BTreeMap<String, Vec<usize>> = BTreeMap::new();
            for f in m["functions"].as_array().into_iter().flatten() {
                let name = f["name"].as_str().unwrap_or_default().to_string();
                fns.entry(name)
                    .or_default()
                    .push(f["numParams"].as_u64().unwrap_or(0) as usize);
            }
            out.insert(mname.clone(), fns);
        }
    }
    out
}

/// The reference of every primitive, generated from the engine's registrations.
pub fn docs() -> String {
    let meta = metadata();
    let mut out = String::from(
        "# runbook primitives\n\nGenerated by `runbook docs` from what the engine registers.\n",
    );
    let render_fns = |out: &mut String, prefix: &str, fns: &[serde_json::Value]| {
        for f in fns {
            let sig = f["signature"].as_str().unwrap_or_default();
            out.push_str(&format!("\n### `{prefix}{sig}`\n\n"));
            for c in f["docComments"].as_array().into_iter().flatten() {
                let text: Vec<&str> = c
                    .as_str()
                    .unwrap_or_default()
                    .lines()
                    .map(|l| {
                        l.trim_start_matches("///")
                            .strip_prefix(' ')
                            .unwrap_or(l.trim_start_matches("///"))
                    })
                    .collect();
                out.push_str(&text.join("\n"));
                out.push('\n');
            }
        }
    };
    if let Some(modules) = meta["modules"].as_object() {
        for (name, m) in modules {
            out.push_str(&format!(
                "\n## `{name}::`\n\n{}\n",
                m["doc"].as_str().unwrap_or_default()
            ));
            render_fns(
                &mut out,
                &format!("{name}::"),
                m["functions"]
                    .as_array()
                    .map(Vec::as_slice)
                    .unwrap_or_default(),
            );
        }
    }
    // Global functions are either plain globals or belong to a type the primitives return
    // (a property getter `get$name`, or a method taking the value as `&mut Type`).
    let globals = meta["functions"]
        .as_array()
        .map(Vec::as_slice)
        .unwrap_or_default();
    let receiver = |f: &serde_json::Value| -> Option<String> {
        let ty = f["params"][0]["type"].as_str()?;
        ty.strip_prefix("&mut ").map(str::to_string)
    };
    let documented =
        |f: &&serde_json::Value| f["docComments"].as_array().is_some_and(|c| !c.is_empty());
    let (typed, plain): (Vec<serde_json::Value>, Vec<serde_json::Value>) = globals
        .iter()
        .filter(documented)
        .cloned()
        .partition(|f| receiver(f).is_some());
    out.push_str("\n## Globals\n\nAlso in scope: `params` (the parameters, a map), `DRY_RUN` (bool), `RUN_ID` (string), and the syntax `step \"name\" { ... }`.\n");
    render_fns(&mut out, "", &plain);
    if !typed.is_empty() {
        out.push_str("\n## Types\n\nValues the primitives return to scripts, with their properties (`value.name`) and methods (`value.name()`).\n");
        let as_member: Vec<serde_json::Value> = typed
            .iter()
            .map(|f| {
                let ty = receiver(f).unwrap_or_default();
                let name = f["name"].as_str().unwrap_or_default();
                let ret = f["returnType"].as_str().unwrap_or_default();
                let signature = match name.strip_prefix("get$") {
                    Some(prop) => format!("{ty}.{prop} -> {ret}"),
                    None => format!("{ty}.{name}() -> {ret}"),
                };
                let mut g = f.clone();
                g["signature"] = serde_json::Value::String(signature);
                g
            })
            .collect();
        let mut sorted = as_member;
        sorted.sort_by(|a, b| a["signature"].as_str().cmp(&b["signature"].as_str()));
        render_fns(&mut out, "", &sorted);
    }
    out
}

// ----- list ------------------------------------------------------------------------------

pub struct Listed {
    pub path: PathBuf,
    pub header: Result<Header>,
}

/// The runbooks (`*.rhai`, not under `lib/`) in `dir`, sorted by path.
pub fn list(dir: &Path) -> Result<Vec<Listed>> {
    let entries = std::fs::read_dir(dir)
        .map_err(|e| Error::Usage(format!("cannot list runbooks in `{}`: {e}", dir.display())))?;
    let mut paths: Vec<PathBuf> = entries
        .flatten()
        .map(|e| e.path())
        .filter(|p| p.extension().is_some_and(|x| x == "rhai") && p.is_file())
        .collect();
    paths.sort();
    Ok(paths
        .into_iter()
        .map(|p| {
            let header = std::fs::read_to_string(&p)
                .map_err(|e| Error::io(p.display().to_string(), "read", e))
                .and_then(|t| Header::parse(&p.display().to_string(), &t));
            Listed { path: p, header }
        })
        .collect())
}

/// Render a parameter's default for `list`.
pub fn describe_default(v: &Option<ParamValue>, optional: bool) -> String {
    match v {
        Some(ParamValue::List(items)) => items.join(","),
        Some(other) => other.to_json().to_string().trim_matches('"').to_string(),
        None if optional => "(unset)".into(),
        None => "(required)".into(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations() {
        assert_eq!(parse_duration("500ms").unwrap(), Duration::from_millis(500));
        assert_eq!(parse_duration("2m").unwrap(), Duration::from_secs(120));
        assert_eq!(parse_duration("3").unwrap(), Duration::from_secs(3));
        assert!(parse_duration("0s").is_err());
        assert!(parse_duration("5 parsecs").is_err());
    }

    #[test]
    fn docs_cover_every_family_with_examples() {
        let d = docs();
        for family in crate::primitives::FAMILIES {
            assert!(d.contains(&format!("## `{family}::`")), "{family} missing");
        }
        assert!(
            d.contains("registry::set_production(name: &str, version: &str)")
                || d.contains("registry::set_production(name: String, version: String)"),
            "{d}"
        );
        assert!(d.contains("```rhai"));
    }
}
