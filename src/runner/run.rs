//! `runbook run`: the whole life of a run. Read and check the script and its parameters
//! before anything is touched, open the workspace and the journal, execute, and turn
//! whatever Rhai reports into one [`Error`] with a file, line and column.

use super::{compile, location_in, read_runbook, runbooks_dir, Loaded};
use crate::context::{RunContext, FATAL_TOKEN};
use crate::effects::{Console, Durability, Status, Workspace};
use crate::engine::{self, INTERRUPT_TOKEN, TIMEOUT_TOKEN};
use crate::error::{Error, Location, Result};
use crate::header::params_map;
use rhai::{EvalAltResult, Scope};
use sha2::{Digest, Sha256};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

#[derive(Debug, Clone)]
pub struct RunOptions {
    pub file: PathBuf,
    pub workspace: PathBuf,
    pub dry_run: bool,
    /// After a dry run, write the state it ended with here (see `Workspace::view_state`).
    pub dry_run_state: Option<PathBuf>,
    pub params: Vec<(String, String)>,
    pub timeout: Option<Duration>,
    pub console: Console,
    pub durability: Durability,
    /// Run even though an earlier run on the workspace did not finish.
    pub force: bool,
    /// Refuse every command a runbook would start.
    pub no_exec: bool,
    /// After the run, write its Markdown report here (see `report.rs`); outside the workspace.
    pub report: Option<PathBuf>,
}

#[derive(Debug, Clone)]
pub struct RunOutcome {
    pub run_id: String,
    pub log_path: Option<PathBuf>,
}

/// A run id that sorts by time and does not collide between runs in the same second.
pub(crate) fn new_run_id() -> String {
    let now = chrono::Utc::now();
    let nanos = now.timestamp_subsec_nanos();
    let salt = (std::process::id() as u64).wrapping_mul(0x9E37_79B9_7F4A_7C15) ^ nanos as u64;
    format!(
        "{}-{:04x}",
        now.format("%Y%m%dT%H%M%SZ"),
        (salt ^ (salt >> 29)) & 0xffff
    )
}

/// Ctrl-C (SIGINT) sets [`engine::INTERRUPTED`]; the engine stops at its next operation.
/// A plain `sigaction` handler: storing to an atomic is async-signal-safe, so no thread is
/// needed to run it (the `ctrlc` crate starts one, which cost a clone and 0.1-0.2 ms of every
/// run's start-up). `SA_RESTART` keeps reads and writes in progress from failing with EINTR.
fn install_ctrlc_handler() {
    extern "C" fn on_sigint(_: libc::c_int) {
        engine::INTERRUPTED.store(true, std::sync::atomic::Ordering::SeqCst);
    }
    static ONCE: std::sync::Once = std::sync::Once::new();
    ONCE.call_once(|| {
        // SAFETY: a zeroed sigaction with a handler that only stores to an atomic; if it
        // cannot be installed the run still works and Ctrl-C just kills it.
        unsafe {
            let mut action: libc::sigaction = std::mem::zeroed();
            action.sa_sigaction = on_sigint as extern "C" fn(libc::c_int) as usize;
            action.sa_flags = libc::SA_RESTART;
            libc::sigemptyset(&mut action.sa_mask);
            libc::sigaction(libc::SIGINT, &action, std::ptr::null_mut());
        }
    });
}

/// Run a runbook against a workspace.
pub fn run(opts: &RunOptions) -> Result<RunOutcome> {
    execute(opts, None)
}

/// `runbook resume RUN_ID`: finish a run that was killed (see `effects::recovery`), with its
/// runbook (refused if the file changed since) and its parameters, under its run id.
pub fn resume(
    workspace: &std::path::Path,
    run_id: &str,
    console: Console,
    force: bool,
) -> Result<RunOutcome> {
    let probe = Workspace::open(workspace, run_id, false, Console::Quiet)?;
    probe.check_own_files()?;
    let logged = crate::effects::recovery::LoggedRun::read(&probe, run_id)?;
    if !probe.is_unfinished(run_id) {
        return Err(Error::Usage(format!(
            "run `{run_id}` is not unfinished (it ended, was undone or was resumed already); there is nothing to resume"
        )));
    }
    if logged.start["dry_run"] == true {
        return Err(Error::Usage(format!(
            "run `{run_id}` was a dry run; there is nothing to resume"
        )));
    }
    let start = &logged.start;
    let file = PathBuf::from(start["runbook_path"].as_str().unwrap_or_default());
    let params = param_args(start);
    let text = super::source::read_text(&file).map_err(|e| {
        Error::Usage(format!(
            "cannot read the runbook of run `{run_id}`, `{}`: {e}",
            file.display()
        ))
    })?;
    if sha256_hex(&text) != start["sha256"].as_str().unwrap_or_default() {
        return Err(Error::Usage(format!(
            "the runbook `{}` changed since run `{run_id}` started; resume runs exactly what was started, so restore that version, or undo the run with `runbook undo {run_id}`",
            file.display()
        )));
    }
    let durability = match start["durability"].as_str() {
        Some("each") => Durability::EachWrite,
        Some("none") => Durability::None,
        _ => Durability::EndOfRun,
    };
    let opts = RunOptions {
        file,
        workspace: workspace.to_path_buf(),
        dry_run: false,
        dry_run_state: None,
        params,
        timeout: None,
        console,
        durability,
        force,
        no_exec: false,
        report: None,
    };
    drop(probe);
    execute(&opts, Some(logged))
}

pub(super) fn sha256_hex(text: &str) -> String {
    Sha256::digest(text.as_bytes())
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

fn execute(
    opts: &RunOptions,
    resuming: Option<crate::effects::recovery::LoggedRun>,
) -> Result<RunOutcome> {
    execute_with(opts, resuming, &mut super::hooks::NoHooks)
}

/// A run with `hooks` around its script (`runbook plan`, `runbook apply`, confirmation).
pub(super) fn execute_with(
    opts: &RunOptions,
    resuming: Option<crate::effects::recovery::LoggedRun>,
    hooks: &mut dyn super::hooks::Hooks,
) -> Result<RunOutcome> {
    // Everything that can be wrong with the script or its parameters is found before the
    // workspace is touched; only then does the run log start. A name that is no file is
    // looked up in the workspace's `runbooks/`, then among the shipped runbooks.
    let found = super::source::find(&opts.file, &opts.workspace)?;
    if let Some(out) = &opts.report {
        super::report::check_target(out, &opts.workspace)?;
    }
    let opts = &RunOptions {
        file: found,
        ..opts.clone()
    };
    let (display, text, header) = read_runbook(&opts.file)?;
    let params = header.resolve_params(&opts.params)?;
    let run_id = match &resuming {
        Some(r) => r.run_id.clone(),
        None => new_run_id(),
    };
    let ws = Workspace::open(&opts.workspace, &run_id, opts.dry_run, opts.console)?
        .with_durability(opts.durability)
        .with_no_exec(opts.no_exec);
    ws.check_own_files()?;
    let root = ws.display_root().to_path_buf();
    let ctx = RunContext::new(ws);
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
    hooks.start(&ctx, &loaded)?;
    let sha = sha256_hex(&loaded.text);
    let runbook_path = std::fs::canonicalize(&opts.file).unwrap_or_else(|_| opts.file.clone());
    let param_args: Vec<[&str; 2]> = opts
        .params
        .iter()
        .map(|(k, v)| [k.as_str(), v.as_str()])
        .collect();
    let durability = match opts.durability {
        Durability::EachWrite => "each",
        Durability::None => "none",
        Durability::EndOfRun => "end",
    };
    let about = serde_json::json!({
        "run_id": run_id, "runbook_path": runbook_path, "sha256": sha,
        "param_args": param_args, "durability": durability, "pid": std::process::id(),
    });
    // A real run refuses to start after one that did not finish (and marks itself under
    // way); resume instead replays the one it finishes.
    if !opts.dry_run {
        ctx.ws.start_real(&about, opts.force)?;
    }
    let log_path = match &resuming {
        Some(logged) => {
            if let Some(ts) = logged.start["started"].as_str() {
                if let Ok(t) = chrono::DateTime::parse_from_rfc3339(ts) {
                    ctx.set_started(t.with_timezone(&chrono::Utc));
                }
            }
            ctx.ws.begin_resume(logged)?;
            ctx.ws.journal().log_path().map(|p| p.to_path_buf())
        }
        None => Some(ctx.ws.open_log()?),
    };
    install_ctrlc_handler();

    let params_json: serde_json::Map<String, serde_json::Value> = params
        .iter()
        .map(|(k, v)| (k.clone(), v.to_json()))
        .collect();
    if resuming.is_none() {
        ctx.journal().run_start(
            &loaded.display,
            &loaded.header.name,
            &loaded.header.version.to_string(),
            &sha,
            serde_json::Value::Object(params_json),
            &root,
            serde_json::json!({
                "runbook_path": runbook_path, "param_args": param_args, "durability": durability,
                "started": ctx.started().to_rfc3339_opts(chrono::SecondsFormat::Nanos, true),
            }),
        );
    }
    let mut scope = Scope::new();
    scope.push_constant("params", params_map(&params));
    scope.push_constant("DRY_RUN", opts.dry_run);
    scope.push_constant("RUN_ID", run_id.clone());

    let result = engine.run_ast_with_scope(&mut scope, &loaded.ast);
    let report_log = log_path.clone();
    let outcome = RunOutcome { run_id, log_path };
    let result = match result.map(|()| hooks.end(&ctx, &loaded)) {
        Ok(Ok(())) => {
            ctx.journal().run_end(Status::Ok, None);
            Ok(outcome)
        }
        Ok(Err(error)) => {
            ctx.journal().run_end(Status::Failed, Some(&error));
            Err(error)
        }
        Err(err) => {
            let error = to_error(&err, &loaded, &ctx, opts.timeout);
            let status = if matches!(error, Error::Interrupted) {
                Status::Interrupted
            } else {
                Status::Failed
            };
            ctx.journal().run_end(status, Some(&error));
            Err(error)
        }
    };
    if let (true, Some(out)) = (opts.dry_run, &opts.dry_run_state) {
        let state = ctx.ws.view_state()?;
        crate::effects::write_output(out, &root, state.to_string().as_bytes())?;
    }
    // Flush what the run changed (and its log) before reporting, whatever the outcome.
    let flushed = ctx.ws.finish();
    if !opts.dry_run {
        ctx.ws.end_real();
    }
    flushed?;
    if let (Some(out), Some(log)) = (&opts.report, &report_log) {
        super::report::write(out, &root, log)?;
    }
    // Not when the run holds a registry server's lock: its store gives it back when
    // dropped, and the engine owns the store.
    if LEAVE_AT_EXIT.load(std::sync::atomic::Ordering::Relaxed) && !ctx.ws.holds_remote() {
        // The process ends right after this run: freeing the engine (every registered
        // function, the packages' tables), the AST and the scope would only make it wait
        // (about 0.2 ms, 4% of a small rollback). Nothing in them is unwritten: the log is
        // written line by line and the changes were flushed above.
        std::mem::forget(engine);
        std::mem::forget(scope);
        std::mem::forget(loaded);
    }
    result
}

/// Set by the binary (never by an embedding program, which runs many runbooks in one
/// process): a run's engine and script are left for the process's exit to reclaim.
pub static LEAVE_AT_EXIT: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);

/// `runbook undo RUN_ID`: a run of its own that reverses what run `target` changed (see
/// `effects::recovery::undo`), journaled like any run; `--dry-run` shows it.
pub fn undo(
    workspace: &std::path::Path,
    target: &str,
    dry_run: bool,
    force: bool,
    console: Console,
    durability: Durability,
) -> Result<RunOutcome> {
    let run_id = new_run_id();
    let ws = Workspace::open(workspace, &run_id, dry_run, console)?.with_durability(durability);
    ws.check_own_files()?;
    let _lock = if dry_run { None } else { Some(ws.lock()?) };
    let logged = crate::effects::recovery::LoggedRun::read(&ws, target)?;
    if logged.start["dry_run"] == true {
        return Err(Error::Usage(format!(
            "run `{target}` was a dry run: it changed nothing, so there is nothing to undo"
        )));
    }
    if logged.start["undo_of"].is_string() && !force {
        // Undoing an undo is allowed, but say what it means.
        crate::output::errln!(
            "note: run `{target}` was itself an undo; undoing it redoes what that run reverted"
        );
    }
    let root = ws.display_root().to_path_buf();
    if !dry_run {
        ws.mark_running(
            &serde_json::json!({"run_id": run_id, "undo_of": target, "pid": std::process::id()}),
        )?;
    }
    let log_path = Some(ws.open_log()?);
    ws.journal().run_start(
        &format!("undo {target}"),
        "undo",
        env!("CARGO_PKG_VERSION"),
        "",
        serde_json::json!({"run": target, "force": force}),
        &root,
        serde_json::json!({"undo_of": target}),
    );
    let outcome = RunOutcome { run_id, log_path };
    let result = match crate::effects::recovery::undo(&ws, &logged, force) {
        Ok(_) => {
            ws.journal().run_end(Status::Ok, None);
            if !dry_run {
                crate::effects::recovery::settle(&ws, target);
            }
            Ok(outcome)
        }
        Err(e) => {
            ws.journal().run_end(Status::Failed, Some(&e));
            Err(e)
        }
    };
    let flushed = ws.finish();
    if !dry_run {
        ws.end_real();
    }
    flushed?;
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
                    step: ctx.journal().failed_step(),
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
            step: ctx.journal().failed_step(),
            message,
        };
    }
    let (_, message) = engine::classify(err);
    Error::Failed {
        location,
        step: ctx.journal().failed_step(),
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
            let text = super::source::read_text(Path::new(&src)).unwrap_or_default();
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
        "d" => n * 86400.0,
        other => {
            return Err(format!(
                "unknown unit `{other}` in `{text}`; use ms, s, m, h or d"
            ))
        }
    };
    if !(secs > 0.0 && secs.is_finite()) {
        return Err(format!("`{text}` must be longer than zero"));
    }
    Ok(Duration::from_secs_f64(secs))
}

/// The `-p KEY=VALUE` arguments a run log's `run_start` or a plan recorded as
/// `param_args` (`[["key", "value"], ...]`), to run the runbook again with the same ones.
pub(super) fn param_args(doc: &serde_json::Value) -> Vec<(String, String)> {
    doc["param_args"]
        .as_array()
        .map(|a| {
            a.iter()
                .filter_map(|kv| Some((kv[0].as_str()?.to_string(), kv[1].as_str()?.to_string())))
                .collect()
        })
        .unwrap_or_default()
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
}
