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
use std::path::PathBuf;
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
}

#[derive(Debug, Clone)]
pub struct RunOutcome {
    pub run_id: String,
    pub log_path: Option<PathBuf>,
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
    let run_id = new_run_id();
    let ws = Workspace::open(&opts.workspace, &run_id, opts.dry_run, opts.console)?
        .with_durability(opts.durability);
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
    let log_path = Some(ctx.ws.open_log()?);
    install_ctrlc_handler();

    let params_json: serde_json::Map<String, serde_json::Value> = params
        .iter()
        .map(|(k, v)| (k.clone(), v.to_json()))
        .collect();
    let sha: String = Sha256::digest(loaded.text.as_bytes())
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    ctx.journal().run_start(
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
            ctx.journal().run_end(Status::Ok, None);
            Ok(outcome)
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
